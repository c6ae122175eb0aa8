#!/usr/bin/env python3
"""Differential test against the official JavaScript SDK (bakong-khqr 1.0.20).

Generates random requests (seeded), runs them through the SDK with
scripts/oracle/gen.js and through `khqr create --request`, and reports every
disagreement:

  * both produce a QR, but different strings          -> a bug here
  * the SDK refuses with code N, we accept             -> a bug here
  * both refuse, with different codes (SDK code <= 51) -> a precedence bug here
  * the SDK accepts, we refuse                         -> listed with our reason,
    to be checked against the documented departures (docs/sdk-differences.md)

Usage: scripts/oracle-diff.py [--n 2000] [--seed 1] [--sdk-dir DIR]

Needs node and npm: the pinned SDK is installed into scripts/oracle/node_modules
(`npm ci` there) when it is missing; DIR, if given, is another folder holding
such a node_modules. Builds the release `khqr` (cargo build --release -p
khqr-cli) when $CARGO_TARGET_DIR/release/khqr is missing. Exits 1 when there is
a bug-class disagreement (a different QR, or a request we accept and the SDK
refuses).
"""
import argparse, json, os, random, subprocess, sys, collections

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ORACLE = os.path.join(HERE, "oracle")
GEN = os.path.join(ORACLE, "gen.js")
KHQR = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "khqr")

KHMER = "កខគឃងចឆជឈញដឋឌឍណតថទធនបផពភមយរលវសហឡអ"
def text(rng, lo, hi, alphabet):
    n = rng.randint(lo, hi)
    return "".join(rng.choice(alphabet) for _ in range(n))

def field(rng, limit):
    kind = rng.random()
    if kind < 0.5:
        return text(rng, 1, limit, "ABCDEFGHIJ klmnop0123456789-#")
    if kind < 0.7:
        return text(rng, 1, limit, KHMER)
    if kind < 0.85:
        return text(rng, limit, limit + 1, "XYZ")  # at / over the limit
    return ""

def amount(rng):
    c = rng.random()
    if c < 0.3: return str(rng.randint(0, 10**rng.randint(1, 14)))
    if c < 0.6: return f"{rng.randint(0, 99999)}.{rng.randint(0, 99):0{rng.randint(1, 3)}d}"
    if c < 0.7: return rng.choice(["0", "0.00", "1.5", "100.0", "9999999999.99", "12345678901.99", "1e3", "-1", " 5", "1,000"])
    return None

def request(rng, now):
    r = {"bakongAccountID": rng.choice(["jonhsmith@nbcq", "a@b", "ចន@nbcq", "x" * 28 + "@abc", "noat", "a@b@c", "@"]),
         "merchantName": field(rng, 25)}
    if rng.random() < 0.7: r["merchantCity"] = field(rng, 15)
    opt = {}
    if rng.random() < 0.6: opt["currency"] = rng.choice([116, 840, "116", "840", "764"])
    a = amount(rng)
    if a is not None: opt["amount"] = a
    if rng.random() < 0.7: opt["expirationTimestamp"] = now + rng.choice([0, 1, 60000, -1000, 10**13])
    for key, limit in [("billNumber", 25), ("mobileNumber", 25), ("storeLabel", 25), ("terminalLabel", 25),
                       ("purposeOfTransaction", 25), ("accountInformation", 32), ("acquiringBank", 32)]:
        if rng.random() < 0.25: opt[key] = field(rng, limit)
    if rng.random() < 0.2:
        opt["languagePreference"] = rng.choice(["km", "en", "kmr"])
        opt["merchantNameAlternateLanguage"] = field(rng, 25)
    if rng.random() < 0.1: opt["merchantCityAlternateLanguage"] = field(rng, 15)
    if rng.random() < 0.1: opt["upiMerchantAccount"] = field(rng, 99)
    if rng.random() < 0.2: opt["merchantCategoryCode"] = rng.choice(["5999", "5411", "123", "abcd", "0000"])
    return r, opt

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sdk-dir", default=ORACLE)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not os.path.isdir(os.path.join(args.sdk_dir, "node_modules", "bakong-khqr")):
        if os.path.abspath(args.sdk_dir) != ORACLE:
            sys.exit(f"no node_modules/bakong-khqr under {args.sdk_dir}")
        print("installing the pinned SDK: npm ci in scripts/oracle", file=sys.stderr)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ORACLE, check=True, stdout=sys.stderr)
    if not os.path.exists(KHQR):
        print("building the release khqr: cargo build --release -p khqr-cli", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "khqr-cli"], cwd=ROOT, check=True)
    rng = random.Random(args.seed)
    now = 1_700_000_000_000
    cases = []
    for _ in range(args.n):
        kind = rng.choice(["individual", "merchant"])
        r, opt = request(rng, now)
        sdk_input = dict(r, optional=opt)
        flat = dict(r, **opt)
        if kind == "merchant":
            sdk_input["merchantID"] = flat["merchantID"] = field(rng, 32) or "123"
            sdk_input["acquiringBank"] = flat["acquiringBank"] = opt.pop("acquiringBank", None) or "Dev Bank"
            flat.pop("accountInformation", None)
            opt.pop("accountInformation", None)
        cases.append((kind, sdk_input, flat))
    lines = "\n".join(json.dumps({"kind": k, "input": s, "now_ms": now}) for k, s, _ in cases) + "\n"
    out = subprocess.run(["node", GEN, "--sdk-dir", args.sdk_dir], input=lines, capture_output=True, text=True, check=True)
    sdk = [json.loads(l)["expected"] for l in out.stdout.splitlines() if l.strip()]
    tally = collections.Counter()
    problems = []
    for (kind, _, flat), exp in zip(cases, sdk):
        p = subprocess.run([KHQR, "create", "--kind", kind, "--request", json.dumps(flat), "--now-ms", str(now)],
                           capture_output=True, text=True)
        ours = json.loads(p.stdout)
        sdk_qr = exp.get("qr") if isinstance(exp.get("qr"), str) and not exp.get("error_code") else None
        sdk_code = exp.get("error_code")
        if "qr" in ours and sdk_qr:
            tally["both qr, equal" if ours["qr"] == sdk_qr else "BOTH QR, DIFFERENT"] += 1
            if ours["qr"] != sdk_qr: problems.append(("different qr", flat, sdk_qr, ours["qr"]))
        elif "qr" in ours:
            tally["SDK REFUSES (%s), WE ACCEPT" % sdk_code] += 1
            problems.append(("we accept", flat, exp, ours))
        elif sdk_qr:
            tally["SDK accepts, we refuse %d %s" % (ours["error"]["code"], ours["error"]["name"])] += 1
        else:
            ours_code = ours["error"]["code"]
            same = ours_code == sdk_code or (sdk_code is None) or ours_code > 51
            tally["both refuse, same code" if ours_code == sdk_code else f"both refuse: sdk {sdk_code} ours {ours_code}"] += 1
            if not same: problems.append(("code differs", flat, sdk_code, ours["error"]))
    for k, v in sorted(tally.items(), key=lambda kv: -kv[1]):
        print(f"{v:6d}  {k}")
    for p in problems[:20]:
        print(json.dumps(p, ensure_ascii=False)[:600])
    return 1 if any(p[0] in ("different qr", "we accept") for p in problems) else 0

if __name__ == "__main__":
    sys.exit(main())
