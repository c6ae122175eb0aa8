#!/usr/bin/env node
// Times the official SDK (and ts-khqr) on the payloads of benches/khqr.rs.
//
//   node scripts/oracle/bench.js [--sdk-dir DIR] [--iters N] [--runs R]
//
// For each operation: R runs of N calls after a warm-up; prints the median,
// min and max in microseconds per call, then one JSON line with every result
// ({"results": {name: {median_us, min_us, max_us}}, ...}), which
// scripts/bench-vs-sdk.sh reads. The SDK is loaded from DIR/node_modules: DIR
// is --sdk-dir, else $KHQR_ORACLE_DIR, else this script's folder (npm ci there).
"use strict";
const path = require("path");
const os = require("os");

const opts = { sdkDir: process.env.KHQR_ORACLE_DIR || __dirname, iters: 100000, runs: 5 };
for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a === "--sdk-dir") opts.sdkDir = process.argv[++i];
    else if (a === "--iters") opts.iters = Number(process.argv[++i]);
    else if (a === "--runs") opts.runs = Number(process.argv[++i]);
    else throw new Error("unknown argument " + a);
}
const nm = path.join(path.resolve(opts.sdkDir), "node_modules");
const { BakongKHQR, IndividualInfo } = require(path.join(nm, "bakong-khqr"));
const { KHQR } = require(path.join(nm, "ts-khqr"));
const md5 = require(path.join(nm, "md5"));

// An expiration far ahead, so that verify stays true however long this runs.
const FAR = 9999999999999;
const sdk = new BakongKHQR();
const staticInfo = () => new IndividualInfo("jonhsmith@nbcq", "Jonh Smith", "Phnom Penh", {});
const dynamicInfo = () =>
    new IndividualInfo("jonhsmith@nbcq", "Jonh Smith", "Phnom Penh", {
        currency: 840,
        amount: 12.5,
        expirationTimestamp: FAR,
        billNumber: "INV-2024-0001",
        storeLabel: "Shop 1",
        terminalLabel: "T1",
    });
const staticQr = sdk.generateIndividual(staticInfo()).data.qr;
const dynamicQr = sdk.generateIndividual(dynamicInfo()).data.qr;
const tsDynamic = {
    tag: "29",
    accountID: "jonhsmith@nbcq",
    merchantName: "Jonh Smith",
    currency: "840",
    amount: 12.5,
    expirationTimestamp: FAR,
    additionalData: { billNumber: "INV-2024-0001", storeLabel: "Shop 1", terminalLabel: "T1" },
};

// Each result feeds `sink`, so that no call can be optimised away.
let sink = 0;
const ops = {
    "bakong generateIndividual static (incl. md5)": () => (sink += sdk.generateIndividual(staticInfo()).data.md5.length),
    "bakong generateIndividual dynamic USD + 62 (incl. md5)": () => (sink += sdk.generateIndividual(dynamicInfo()).data.md5.length),
    "bakong decode static": () => (sink += BakongKHQR.decode(staticQr).data.crc.length),
    "bakong decode dynamic": () => (sink += BakongKHQR.decode(dynamicQr).data.crc.length),
    "bakong verify static": () => (sink += BakongKHQR.verify(staticQr).isValid ? 1 : 0),
    "bakong verify dynamic": () => (sink += BakongKHQR.verify(dynamicQr).isValid ? 1 : 0),
    "md5 of dynamic QR string only": () => (sink += md5(dynamicQr).length),
    "ts-khqr generate dynamic (incl. md5)": () => (sink += KHQR.generate(tsDynamic).data.md5.length),
    "ts-khqr parse dynamic": () => (sink += KHQR.parse(dynamicQr).data.crc.length),
    "ts-khqr verify dynamic": () => (sink += KHQR.verify(dynamicQr).isValid ? 1 : 0),
};

// Microseconds per call over n calls.
function perCall(fn, n) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    return Number(process.hrtime.bigint() - start) / 1e3 / n;
}

const summary = { node: process.version, iters: opts.iters, runs: opts.runs, cpu: os.cpus()[0].model, results: {} };
console.log(`node ${process.version}, ${summary.cpu}, ${opts.iters} iterations x ${opts.runs} runs`);
for (const [name, fn] of Object.entries(ops)) {
    perCall(fn, Math.min(10000, opts.iters));
    const us = Array.from({ length: opts.runs }, () => perCall(fn, opts.iters)).sort((a, b) => a - b);
    const [median, min, max] = [us[Math.floor(us.length / 2)], us[0], us[us.length - 1]];
    summary.results[name] = { median_us: +median.toFixed(3), min_us: +min.toFixed(3), max_us: +max.toFixed(3) };
    console.log(`${name.padEnd(56)} median ${median.toFixed(2).padStart(7)} µs/op  (min ${min.toFixed(2)}, max ${max.toFixed(2)})`);
}
console.log(JSON.stringify(summary));
if (sink === -1) console.log(sink);
