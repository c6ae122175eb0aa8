#!/usr/bin/env node
// The oracle: what the official KHQR SDK answers for each input line.
//
//   cd scripts/oracle && npm ci        # once: the pinned SDKs into ./node_modules
//   node scripts/oracle/gen.js [--sdk-dir DIR] [--timeout-ms N] < in.jsonl > out.jsonl
//
// Input: JSON Lines {"kind": K, "input": I, "now_ms": N, ...}; each line comes
// back with an "expected" object added. `now_ms` replaces Date.now() inside the
// SDK for that call (the real clock when it is null or absent). Kinds:
//   individual / merchant     the SDK's generateIndividual / generateMerchant;
//                             `input` is {bakongAccountID, merchantName,
//                             merchantCity, [merchantID, acquiringBank,]
//                             optional}; `expected` has qr, md5, error_code,
//                             error_message, thrown, and `roundtrip`: the
//                             SDK's own decode and verify of the QR it wrote
//   ts_generate               ts-khqr's KHQR.generate (roundtrip: ts_parse, ts_verify)
//   decode / verify / decodeNonKhqr / ts_parse / ts_verify   {qr} or a string
//   qr_all                    all five readers above on one {qr}
//   crc16 / md5               {data} or a string
// Values JSON cannot hold are written {"$js": "undefined"|"NaN"|"Infinity"|
// "-Infinity"|"-0"} in both directions. Both SDKs loop forever on some
// malformed strings, so every call runs in a worker thread with a time limit
// (--timeout-ms, default 1500): a call past it is {"timeout_ms": N}, and the
// worker is replaced.
//
// The SDK is loaded from DIR/node_modules: DIR is --sdk-dir, else
// $KHQR_ORACLE_DIR, else this script's own folder.
"use strict";

const path = require("path");
const fs = require("fs");
const readline = require("readline");
const { Worker, isMainThread, parentPort, workerData } = require("worker_threads");

// {"$js": ...} markers to JS values (input side).
function fromJson(v) {
    if (Array.isArray(v)) return v.map(fromJson);
    if (v === null || typeof v !== "object") return v;
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "$js") {
        const special = { undefined: undefined, NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity, "-0": -0 };
        if (!(v.$js in special)) throw new Error("unknown $js value " + v.$js);
        return special[v.$js];
    }
    return Object.fromEntries(keys.map((k) => [k, fromJson(v[k])]));
}

// Any SDK value to something JSON holds exactly (output side).
function toJson(v, seen = new Set()) {
    if (v === undefined) return { $js: "undefined" };
    if (typeof v === "number") {
        if (Number.isNaN(v)) return { $js: "NaN" };
        if (v === Infinity || v === -Infinity) return { $js: String(v) };
        return Object.is(v, -0) ? { $js: "-0" } : v;
    }
    if (typeof v === "bigint") return { $js: "bigint", value: String(v) };
    if (typeof v === "function") return { $js: "function" };
    if (v instanceof Error) return { $error: { name: v.name, message: v.message } };
    if (v === null || typeof v !== "object") return v;
    if (seen.has(v)) return { $js: "cycle" };
    seen.add(v);
    let out;
    if (Array.isArray(v)) {
        out = v.map((x) => toJson(x, seen));
    } else {
        out = {};
        // JS enumeration order; undefined members are dropped, as JSON.stringify does.
        for (const k of Object.keys(v)) if (v[k] !== undefined) out[k] = toJson(v[k], seen);
    }
    seen.delete(v);
    return out;
}

function thrown(e) {
    if (e instanceof Error) return { name: e.name, message: e.message };
    return { value: e && typeof e === "object" ? toJson(e) : e };
}

// Worker: one SDK call per message.
function worker() {
    const nm = path.join(workerData.sdkDir, "node_modules");
    const { BakongKHQR, IndividualInfo, MerchantInfo } = require(path.join(nm, "bakong-khqr"));
    const ts = require(path.join(nm, "ts-khqr"));
    const crc16 = require(path.join(nm, "bakong-khqr", "src", "helper", "crc16"));
    const md5 = require(path.join(nm, "md5"));
    const qr = (input) => (typeof input === "string" ? input : input && input.qr);
    const data = (input) => (typeof input === "string" ? input : input.data);
    const ops = {
        individual: (i) =>
            new BakongKHQR().generateIndividual(new IndividualInfo(i.bakongAccountID, i.merchantName, i.merchantCity, i.optional)),
        merchant: (i) =>
            new BakongKHQR().generateMerchant(
                new MerchantInfo(i.bakongAccountID, i.merchantName, i.merchantCity, i.merchantID, i.acquiringBank, i.optional)
            ),
        decode: (i) => BakongKHQR.decode(qr(i)),
        verify: (i) => BakongKHQR.verify(qr(i)),
        decodeNonKhqr: (i) => BakongKHQR.decodeNonKhqr(qr(i)),
        ts_generate: (i) => ts.KHQR.generate(i),
        ts_parse: (i) => ts.KHQR.parse(qr(i)),
        ts_verify: (i) => ts.KHQR.verifyDetail(qr(i)),
        crc16: (i) => crc16(data(i)),
        md5: (i) => md5(data(i)),
    };
    const realNow = Date.now;
    parentPort.on("message", ({ op, input, now_ms }) => {
        let reply;
        Date.now = typeof now_ms === "number" ? () => now_ms : realNow;
        try {
            if (!ops[op]) throw new Error("unknown op " + op);
            reply = { result: toJson(ops[op](fromJson(input))) };
        } catch (e) {
            reply = { thrown: thrown(e) };
        } finally {
            Date.now = realNow;
        }
        parentPort.postMessage(reply);
    });
}

// Main thread: runs calls on a worker, replacing it when a call overruns.
class Sdk {
    constructor(sdkDir, timeoutMs) {
        Object.assign(this, { sdkDir, timeoutMs, worker: null });
    }
    call(op, input, now_ms) {
        if (!this.worker) {
            this.worker = new Worker(__filename, { workerData: { sdkDir: this.sdkDir } });
            this.worker.unref();
        }
        const w = this.worker;
        return new Promise((resolve) => {
            const finish = (reply, dropWorker) => {
                clearTimeout(timer);
                w.removeAllListeners("message");
                w.removeAllListeners("error");
                if (dropWorker) {
                    w.terminate();
                    this.worker = null;
                }
                resolve(reply);
            };
            const timer = setTimeout(() => finish({ timeout_ms: this.timeoutMs }, true), this.timeoutMs);
            w.once("message", (reply) => finish(reply, false));
            w.once("error", (e) => finish({ thrown: thrown(e), worker_crashed: true }, true));
            w.postMessage({ op, input, now_ms });
        });
    }
    close() {
        if (this.worker) this.worker.terminate();
    }
}

const plain = (reply) => (reply.timeout_ms ? { timeout_ms: reply.timeout_ms } : reply.thrown ? { thrown: reply.thrown } : reply.result);

// A generate call's reply, flattened into what the Rust tests assert on.
function generated(reply) {
    const out = { response: null, qr: null, md5: null, error_code: null, error_message: null, thrown: null };
    if (reply.timeout_ms) return { ...out, timeout_ms: reply.timeout_ms };
    if (reply.thrown) return { ...out, thrown: reply.thrown };
    const r = reply.result;
    out.response = r;
    if (r && r.status) {
        out.error_code = r.status.errorCode;
        out.error_message = r.status.message;
        if (r.data) Object.assign(out, { qr: r.data.qr, md5: r.data.md5 });
    }
    return out;
}

async function expectedFor(sdk, kind, input, now_ms) {
    switch (kind) {
        case "individual":
        case "merchant":
        case "ts_generate": {
            const expected = generated(await sdk.call(kind, input, now_ms));
            if (typeof expected.qr === "string") {
                const readers = kind === "ts_generate" ? ["ts_parse", "ts_verify"] : ["decode", "verify"];
                expected.roundtrip = {};
                for (const op of readers) expected.roundtrip[op] = plain(await sdk.call(op, { qr: expected.qr }, now_ms));
            }
            return expected;
        }
        case "qr_all": {
            const expected = {};
            for (const op of ["decode", "verify", "decodeNonKhqr", "ts_parse", "ts_verify"]) {
                expected[op] = plain(await sdk.call(op, input, now_ms));
            }
            return expected;
        }
        case "decode":
        case "verify":
        case "decodeNonKhqr":
        case "ts_parse":
        case "ts_verify":
        case "crc16":
        case "md5":
            return plain(await sdk.call(kind, input, now_ms));
        default:
            return { harness_error: "unknown kind " + kind };
    }
}

function options(argv) {
    const opts = { sdkDir: process.env.KHQR_ORACLE_DIR || __dirname, timeoutMs: 1500 };
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === "--sdk-dir") opts.sdkDir = argv[++i];
        else if (argv[i] === "--timeout-ms") opts.timeoutMs = Number(argv[++i]);
        else if (argv[i] === "-h" || argv[i] === "--help") {
            process.stdout.write("usage: node gen.js [--sdk-dir DIR] [--timeout-ms N] < in.jsonl > out.jsonl\n");
            process.exit(0);
        } else throw new Error("unknown argument " + argv[i]);
    }
    opts.sdkDir = path.resolve(opts.sdkDir);
    if (!fs.existsSync(path.join(opts.sdkDir, "node_modules", "bakong-khqr"))) {
        throw new Error(`bakong-khqr is not under ${opts.sdkDir}/node_modules: run npm ci in ${__dirname}`);
    }
    return opts;
}

async function main() {
    const opts = options(process.argv.slice(2));
    const sdk = new Sdk(opts.sdkDir, opts.timeoutMs);
    const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    for await (const line of lines) {
        if (!line.trim()) continue;
        let out;
        try {
            const req = JSON.parse(line);
            const now_ms = req.now_ms === undefined ? null : req.now_ms;
            out = { ...req, now_ms, expected: await expectedFor(sdk, req.kind, req.input, now_ms) };
        } catch (e) {
            out = { harness_error: String(e && e.message ? e.message : e), line };
        }
        process.stdout.write(JSON.stringify(out) + "\n");
    }
    sdk.close();
}

if (isMainThread) {
    main().catch((e) => {
        process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
        process.exit(1);
    });
} else {
    worker();
}
