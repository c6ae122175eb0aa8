#!/usr/bin/env bash
# Times the official SDK (bakong-khqr 1.0.20 under node, scripts/oracle/bench.js)
# and this crate's criterion benchmarks on the same payloads, in alternating
# rounds (SDK, Rust, SDK, Rust, ...), and prints for each operation the median
# of the per-round ratios with their min and max: load that drifts over minutes
# moves both sides of a round alike. With valgrind installed it also prints
# instruction counts (callgrind), which hold on a noisy machine.
#
#   scripts/bench-vs-sdk.sh [--quick]
#
# Needs node and npm: the pinned SDK is installed into scripts/oracle/node_modules
# (`npm ci` there) when it is missing.
# Env: KHQR_ORACLE_DIR (another folder holding the SDK's node_modules; default
# scripts/oracle), ROUNDS (default 3, at least 3),
# SDK_ITERS / SDK_RUNS (bench.js iterations and runs per round; default
# 100000 x 3), CARGO_TARGET_DIR (criterion's output is read under it).
# --quick: 20000 x 1 SDK iterations per round and shorter criterion runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
oracle=$root/scripts/oracle
sdk_dir=${KHQR_ORACLE_DIR:-$oracle}
target_dir=${CARGO_TARGET_DIR:-$root/target}
crit_dir=$target_dir/criterion
rounds=${ROUNDS:-3}
((rounds >= 3)) || rounds=3
iters=${SDK_ITERS:-100000}
runs=${SDK_RUNS:-3}
crit_args=(--warm-up-time 1 --measurement-time 3)
if [[ ${1:-} == --quick ]]; then
  iters=20000 runs=1 crit_args=(--warm-up-time 1 --measurement-time 1)
fi

if [[ ! -d $sdk_dir/node_modules/bakong-khqr ]]; then
  [[ $sdk_dir == "$oracle" ]] || { echo "no node_modules/bakong-khqr under $sdk_dir" >&2; exit 1; }
  echo "installing the pinned SDK: npm ci in scripts/oracle" >&2
  (cd "$oracle" && npm ci --no-audit --no-fund) >&2
fi

echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rustc:   $(rustc --version)"
echo "node:    $(node --version)"
echo "rounds:  $rounds (SDK $iters x $runs iterations, then criterion, alternating)"
echo

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The Rust benchmarks each round reads: criterion ids.
ids=(generate/static_md5 generate/static_md5_into_buffer generate/dynamic_md5
  generate/dynamic_md5_into_buffer decode/static decode/dynamic verify/static
  verify/dynamic md5/dynamic floor/md5_crc_dynamic generate/khmer300_md5_into_buffer
  decode/khmer300 verify/khmer300)

cargo bench --bench khqr --no-run >&2
for ((r = 1; r <= rounds; r++)); do
  echo "== round $r/$rounds: official SDK (node bench.js)" >&2
  node "$oracle/bench.js" --sdk-dir "$sdk_dir" --iters "$iters" --runs "$runs" \
    | tail -n 1 > "$tmp/sdk.$r.json"
  echo "== round $r/$rounds: criterion (cargo bench --bench khqr)" >&2
  cargo bench --bench khqr -- "${crit_args[@]}" > "$tmp/crit.$r.log" 2>&1 \
    || { cat "$tmp/crit.$r.log" >&2; exit 1; }
  # Criterion writes $CARGO_TARGET_DIR/criterion/<group>/<function>/new/estimates.json (ns).
  for id in "${ids[@]}"; do
    f=$crit_dir/$id/new/estimates.json
    [[ -f $f ]] || { echo "missing $f (is CARGO_TARGET_DIR right?)" >&2; exit 1; }
    mkdir -p "$tmp/ours.$r/$id" && cp "$f" "$tmp/ours.$r/$id/estimates.json"
  done
done

echo "== render: cargo bench --all-features --bench render (once)" >&2
cargo bench --all-features --bench render -- "${crit_args[@]}" > "$tmp/render.log" 2>&1 \
  || { cat "$tmp/render.log" >&2; exit 1; }

status=0
node - "$tmp" "$rounds" "$crit_dir" <<'JS' || status=$?
const fs = require("fs"), path = require("path");
const [tmp, rounds, critDir] = [process.argv[2], +process.argv[3], process.argv[4]];
const est = (f) => JSON.parse(fs.readFileSync(f, "utf8")).median.point_estimate / 1000; // µs
const R = [...Array(rounds).keys()].map((i) => i + 1);
const sdk = R.map((r) => JSON.parse(fs.readFileSync(path.join(tmp, `sdk.${r}.json`), "utf8")).results);
const ours = (r, id) => est(path.join(tmp, `ours.${r}`, ...id.split("/"), "estimates.json"));
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { med: m, min: s[0], max: s[s.length - 1] };
};
const pad = (s, n) => String(s).padEnd(n), lpad = (s, n) => String(s).padStart(n);
const fmt = (st, d = 1) => `${st.med.toFixed(d)}x (${st.min.toFixed(d)}-${st.max.toFixed(d)})`;
let fail = 0;
const verdict = (st, target, atLeast) => {
  if (target === null) return "";
  const ok = atLeast ? st.med >= target : st.med <= target;
  if (!ok) fail++;
  return `${atLeast ? ">=" : "<="} ${target}x ${ok ? "ok" : "MISSED"}`;
};
const rows = [
  // [SDK operation, our benchmark, target: at least this many times faster]
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
console.log("Speed-up over the SDK: median of the per-round ratios (min-max), µs are medians of the rounds");
console.log(`${pad("SDK operation", 56)} ${lpad("SDK µs", 8)}  ${pad("ours (criterion)", 34)} ${lpad("ours µs", 8)}  ${pad("ratio (min-max)", 22)} target`);
for (const [op, id, target] of rows) {
  const ratios = R.map((r, i) => sdk[i][op].median_us / ours(r, id));
  const st = stats(ratios);
  const s = stats(R.map((r, i) => sdk[i][op].median_us)).med, o = stats(R.map((r) => ours(r, id))).med;
  console.log(`${pad(op, 56)} ${lpad(s.toFixed(2), 8)}  ${pad(id, 34)} ${lpad(o.toFixed(3), 8)}  ${pad(fmt(st), 22)} ${verdict(st, target, true)}`);
}
console.log();
console.log("Ours against our own floors: median of the per-round ratios (min-max)");
const inner = [
  // [what, numerator, denominator, target: at most]
  ["generate+MD5 dynamic / (MD5 + CRC of it)", "generate/dynamic_md5_into_buffer", "floor/md5_crc_dynamic", 1.5],
  ["verify dynamic / decode dynamic", "verify/dynamic", "decode/dynamic", 2],
  ["verify khmer300 / decode khmer300", "verify/khmer300", "decode/khmer300", 2],
];
for (const [what, a, b, target] of inner) {
  const st = stats(R.map((r) => ours(r, a) / ours(r, b)));
  console.log(`${pad(what, 56)} ${pad(fmt(st, 2), 22)} ${verdict(st, target, false)}`);
}
const png = est(path.join(critDir, "qr", "png_dynamic", "new", "estimates.json"));
const enc = est(path.join(critDir, "qr", "encode_dynamic", "new", "estimates.json"));
const pr = png / enc;
if (pr > 1.5) fail++;
console.log(`${pad("qr_png / QrMatrix::encode (one run)", 56)} ${pad(pr.toFixed(2) + "x", 22)} <= 1.5x ${pr <= 1.5 ? "ok" : "MISSED"}`);
process.exitCode = fail ? 1 : 0;
JS

# Instruction counts: KHQR_COUNT=<operation>:<n> makes the bench binary run one
# operation n times; the difference of n and 0 runs, over n, is its cost.
if command -v valgrind > /dev/null; then
  bin=$(cargo bench --bench khqr --no-run --message-format=json 2> /dev/null \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const l of s.split("\n")){try{const m=JSON.parse(l);if(m.executable&&m.target&&m.target.name==="khqr")console.log(m.executable)}catch(e){}}})' | tail -n 1)
  n=2000
  count() {
    KHQR_COUNT=$1:$2 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 \
      | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
  }
  declare -A ins
  for op in floor_dynamic generate_dynamic decode_dynamic verify_dynamic; do
    a=$(count "$op" 0) b=$(count "$op" "$n")
    ins[$op]=$(((b - a) / n))
  done
  echo
  echo "Instructions per call (valgrind --tool=callgrind, $n calls):"
  printf '  %-40s %8d\n' "MD5 + CRC of the dynamic payload" "${ins[floor_dynamic]}" \
    "generate + MD5, dynamic (into a buffer)" "${ins[generate_dynamic]}" \
    "decode, dynamic" "${ins[decode_dynamic]}" "verify, dynamic" "${ins[verify_dynamic]}"
  awk -v g="${ins[generate_dynamic]}" -v f="${ins[floor_dynamic]}" -v v="${ins[verify_dynamic]}" -v d="${ins[decode_dynamic]}" \
    'BEGIN { printf "  %-40s %8.2fx  target <= 1.5x\n  %-40s %8.2fx  target <= 2x\n", "generate+MD5 / (MD5 + CRC)", g / f, "verify / decode", v / d }'
fi
exit "$status"
