"""Render the Python `bakong-khqr` card for every payload of a corpus file.

Usage: python render.py CORPUS OUTDIR

CORPUS has one payload per line, each a JSON string (`scan_report
--dump-corpus` writes it; JSON so that a payload holding a newline stays on
its line). For payload number i this writes OUTDIR/i.png with the library's
own `KHQR().qr_image(payload, format="png")`, and OUTDIR/manifest.jsonl, one
JSON object per line:

  {"payload": ..., "file": "i.png", "modules": N, "symbol_px": W}

`modules` is the symbol's side in modules without quiet zone (the library
draws with `qrcode`, ECC M, smallest version that fits, border 4, so we run
the same `qrcode` call to learn it). `symbol_px` is the symbol's width in the
PNG in pixels, measured on the image: the width of the box holding the dark
pixels below the card's dashed separator line (the QR is pasted there,
Lanczos-resampled to 280 x 280 px with its quiet zone). The scan conditions
scale every image by this width.

The library takes the payload string as it is (it parses only tags 53, 54 and
59 for the text above the QR), so no payload is regenerated. A payload it
refuses (it raises, e.g. on a tag 54 that is not a number) gets no image and
a line {"payload": ..., "error": ...} in OUTDIR/refused.jsonl instead.
"""

import json
import os
import sys

import qrcode
import qrcode.constants
from PIL import Image

from bakong_khqr import KHQR

# Rows of the 300 x 450 px card at or below this are the QR (the dashed line
# is at y = 150, the QR box starts at y = 160): see the library's
# sdk/image_tools.py.
QR_TOP = 155
DARK = 100  # luminance below this counts as a dark module pixel


def symbol_width(path):
    """Width in pixels of the dark pixels' bounding box below QR_TOP."""
    img = Image.open(path).convert("RGBA")
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    grey = Image.alpha_composite(white, img).convert("L")
    w, h = grey.size
    px = grey.load()
    xs = [x for y in range(QR_TOP, h) for x in range(w) if px[x, y] < DARK]
    return max(xs) - min(xs) + 1


def modules(payload):
    """The symbol's side in modules, as the library's own qrcode call makes it."""
    qr = qrcode.QRCode(version=1, border=4, box_size=10,
                       error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(payload)
    qr.make(fit=True)
    return qr.modules_count


def main():
    corpus, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    khqr = KHQR()
    with open(corpus, encoding="utf-8") as f:
        payloads = [json.loads(line) for line in f if line.strip()]
    refused = 0
    with open(os.path.join(outdir, "manifest.jsonl"), "w", encoding="utf-8") as m, \
            open(os.path.join(outdir, "refused.jsonl"), "w", encoding="utf-8") as r:
        for i, payload in enumerate(payloads):
            name = f"{i}.png"
            path = os.path.join(outdir, name)
            try:
                khqr.qr_image(payload, format="png", output_path=path)
            except Exception as e:  # the library's own refusal, kept as data
                refused += 1
                r.write(json.dumps({"payload": payload, "error": repr(e)},
                                   ensure_ascii=False) + "\n")
                continue
            n, width = modules(payload), symbol_width(path)
            # Cross-check the two: 280 px hold n + 8 modules.
            expect = 280 * n / (n + 8)
            if abs(width - expect) > 2:
                sys.exit(f"{name}: symbol {width} px, expected {expect:.1f}")
            row = {"payload": payload, "file": name,
                   "modules": n, "symbol_px": width}
            m.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(payloads) - refused} cards in {outdir}, {refused} payloads "
          f"refused (refused.jsonl)", file=sys.stderr)


if __name__ == "__main__":
    main()
