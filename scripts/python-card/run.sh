#!/usr/bin/env bash
# Scans the Python `bakong-khqr` 0.6.5 card beside ours (issue 9).
#
#   scripts/python-card/run.sh [OUTDIR]      (default: target/python-card)
#
# 1. makes a venv in OUTDIR/venv and installs the Python library with its
#    `image` extra (Pillow + qrcode, which its `KHQR.qr_image` needs), pinned;
# 2. writes our scan corpus (`scan_report --dump-corpus`);
# 3. renders the Python card for every payload (render.py: PNGs + manifest);
# 4. prints the read-rate table: our plain QR and default card, then the
#    Python card, through the same decoders and conditions
#    (`scan_report --images`). Extra arguments for scan_report go in
#    $SCAN_ARGS, e.g. SCAN_ARGS="--every 5".
#
# Needs python3 with venv, network access to PyPI, and zbarimg
# (`apt-get install zbar-tools`). Not run by .ci/run (it needs PyPI).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/target/python-card}
mkdir -p "$out"

# 1. The Python library, pinned with the versions of its dependencies that
#    made the table in docs/card.md.
if [ ! -x "$out/venv/bin/python" ]; then
  python3 -m venv "$out/venv"
fi
"$out/venv/bin/python" -m pip install -q \
  "bakong-khqr[image]==0.6.5" "pillow==13.0.0" "qrcode==8.2"

cd "$root"
# benches/scan_report.rs, a plain program that cargo bench builds optimised.
report=(cargo bench -q --bench scan_report --features render --)

# 2. The corpus, one JSON string a line.
"${report[@]}" --dump-corpus "$out/corpus.jsonl"

# 3. The Python cards.
rm -rf "$out/cards"
"$out/venv/bin/python" "$root/scripts/python-card/render.py" \
  "$out/corpus.jsonl" "$out/cards"

# 4. The table.
# shellcheck disable=SC2086 # SCAN_ARGS is a list of words
"${report[@]}" --images "$out/cards/manifest.jsonl" \
  --label "Python bakong-khqr 0.6.5 card" ${SCAN_ARGS:-}
