#!/usr/bin/env bash
# Times the official SDK (bakong-khqr 1.0.20 under node, ../shared/oracle/bench.js)
# and this crate's criterion benchmarks on the same payloads, in one go, and
# prints the ratios side by side.
#
#   scripts/bench-vs-sdk.sh [--quick]
#
# Env: KHQR_ORACLE_DIR (default ../scratch/oracle; set up with
# ../shared/oracle/setup.sh when missing, which needs node and npm),
# SDK_ITERS / SDK_RUNS (bench.js iterations and runs; default 100000 x 5).
# --quick: 20000 x 3 SDK iterations and shorter criterion runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared=$root/../shared
sdk_dir=${KHQR_ORACLE_DIR:-$root/../scratch/oracle}
iters=${SDK_ITERS:-100000}
runs=${SDK_RUNS:-5}
crit_args=()
if [[ ${1:-} == --quick ]]; then
  iters=20000 runs=3 crit_args=(--warm-up-time 1 --measurement-time 2)
fi

if [[ ! -d $sdk_dir/node_modules/bakong-khqr ]]; then
  "$shared/oracle/setup.sh" "$sdk_dir" >&2
fi

echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rustc:   $(rustc --version)"
echo "node:    $(node --version)"
echo

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== official SDK: node bench.js --iters $iters --runs $runs" >&2
node "$shared/oracle/bench.js" --sdk-dir "$sdk_dir" --iters "$iters" --runs "$runs" | tee "$tmp/sdk.txt" >&2
tail -n 1 "$tmp/sdk.txt" > "$tmp/sdk.json"

echo "== criterion: cargo bench --all-features --bench khqr --bench render" >&2
cargo bench --all-features --bench khqr --bench render -- "${crit_args[@]}" >&2

# Criterion writes target/criterion/<group>/<function>/new/estimates.json (ns).
node - "$tmp/sdk.json" "$root/target/criterion" <<'JS'
const fs = require("fs"), path = require("path");
const [sdkFile, critDir] = process.argv.slice(2);
const sdk = JSON.parse(fs.readFileSync(sdkFile, "utf8")).results;
const ours = (id) => {
  const f = path.join(critDir, ...id.split("/"), "new", "estimates.json");
  return JSON.parse(fs.readFileSync(f, "utf8")).median.point_estimate / 1000; // µs
};
const rows = [
  // [SDK operation, our benchmark, target ratio]
  ["bakong generateIndividual static (incl. md5)", "generate/static_md5", 30],
  ["bakong generateIndividual static (incl. md5)", "generate/static_md5_into_buffer", 30],
  ["bakong generateIndividual dynamic USD + 62 (incl. md5)", "generate/dynamic_md5", 30],
  ["bakong generateIndividual dynamic USD + 62 (incl. md5)", "generate/dynamic_md5_into_buffer", 30],
  ["bakong decode static", "decode/static", 50],
  ["bakong decode dynamic", "decode/dynamic", 50],
  ["bakong verify static", "verify/static", 50],
  ["bakong verify dynamic", "verify/dynamic", 50],
  ["md5 of dynamic QR string only", "md5/dynamic", null],
  ["ts-khqr generate dynamic (incl. md5)", "generate/dynamic_md5", null],
  ["ts-khqr parse dynamic", "decode/dynamic", null],
  ["ts-khqr verify dynamic", "verify/dynamic", null],
];
const pad = (s, n) => String(s).padEnd(n), lpad = (s, n) => String(s).padStart(n);
console.log(`${pad("SDK operation (median µs/op)", 56)} ${lpad("SDK µs", 8)}  ${pad("ours (criterion median)", 34)} ${lpad("ours µs", 8)} ${lpad("ratio", 8)}  target`);
let fail = 0;
for (const [op, id, target] of rows) {
  const s = sdk[op].median_us, o = ours(id), r = s / o;
  const verdict = target === null ? "" : r >= target ? `>= ${target}x ok` : `>= ${target}x MISSED`;
  if (target !== null && r < target) fail++;
  console.log(`${pad(op, 56)} ${lpad(s.toFixed(2), 8)}  ${pad(id, 34)} ${lpad(o.toFixed(3), 8)} ${lpad(r.toFixed(1) + "x", 8)}  ${verdict}`);
}
console.log();
console.log(`${pad("ours only (criterion median)", 56)} ${lpad("µs", 8)}`);
for (const id of ["generate/khmer300_md5", "generate/khmer300_md5_into_buffer", "decode/khmer300", "verify/khmer300", "qr/encode_dynamic", "qr/png_dynamic"]) {
  console.log(`${pad(id, 56)} ${lpad(ours(id).toFixed(3), 8)}`);
}
const png = ours("qr/png_dynamic"), enc = ours("qr/encode_dynamic"), pr = png / enc;
if (pr > 1.5) fail++;
console.log(`${pad("qr_png / QrMatrix::encode", 56)} ${lpad(pr.toFixed(2) + "x", 8)}  target <= 1.5x ${pr <= 1.5 ? "ok" : "MISSED"}`);
process.exitCode = fail ? 1 : 0;
JS
