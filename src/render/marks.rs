//! Vector marks drawn in code for the card: the "KHQR" wordmark and the round
//! centre badges. Our own geometric letterforms, built from rectangles, polygons
//! and elliptical rings in a unit box whose height is the cap height.

// Pixel geometry: every coordinate is at most 4350 (a 10× card) and glyph
// metrics are a few hundred pixels, far inside f32's exact integer range; the
// values cast to unsigned are clamped non-negative first. Short names (x, y,
// w, h, l, t, r, b) are the usual ones for coordinates.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::many_single_char_names
)]

use tiny_skia::{FillRule, Paint, Path, PathBuilder, Pixmap, Rect, Transform};

/// Stroke weight of the wordmark letters, in cap heights.
const T: f32 = 0.21;
/// Letter widths, in cap heights: K, H, Q, R.
const WIDTHS: [f32; 4] = [0.70, 0.68, 0.96, 0.70];
/// Space between letters, in cap heights.
const GAP: f32 = 0.13;
/// Cubic Bézier constant for a quarter circle.
const KAPPA: f32 = 0.552_284_8;

/// Width of the wordmark for a cap height of 1.
pub(crate) fn wordmark_width() -> f32 {
    WIDTHS.iter().sum::<f32>() + GAP * (WIDTHS.len() as f32 - 1.0)
}

fn rect(pb: &mut PathBuilder, x0: f32, y0: f32, x1: f32, y1: f32) {
    if let Some(r) = Rect::from_ltrb(x0, y0, x1, y1) {
        pb.push_rect(r);
    }
}

fn poly(pb: &mut PathBuilder, pts: &[(f32, f32)]) {
    let mut it = pts.iter();
    if let Some(&(x, y)) = it.next() {
        pb.move_to(x, y);
        for &(x, y) in it {
            pb.line_to(x, y);
        }
        pb.close();
    }
}

/// An ellipse as four cubic arcs, clockwise when `cw`, else anticlockwise (so a
/// smaller ellipse drawn the other way cuts a hole under the non-zero rule).
fn ellipse(pb: &mut PathBuilder, cx: f32, cy: f32, rx: f32, ry: f32, cw: bool) {
    let (kx, ky) = (rx * KAPPA, ry * KAPPA);
    pb.move_to(cx + rx, cy);
    if cw {
        pb.cubic_to(cx + rx, cy + ky, cx + kx, cy + ry, cx, cy + ry);
        pb.cubic_to(cx - kx, cy + ry, cx - rx, cy + ky, cx - rx, cy);
        pb.cubic_to(cx - rx, cy - ky, cx - kx, cy - ry, cx, cy - ry);
        pb.cubic_to(cx + kx, cy - ry, cx + rx, cy - ky, cx + rx, cy);
    } else {
        pb.cubic_to(cx + rx, cy - ky, cx + kx, cy - ry, cx, cy - ry);
        pb.cubic_to(cx - kx, cy - ry, cx - rx, cy - ky, cx - rx, cy);
        pb.cubic_to(cx - rx, cy + ky, cx - kx, cy + ry, cx, cy + ry);
        pb.cubic_to(cx + kx, cy + ry, cx + rx, cy + ky, cx + rx, cy);
    }
    pb.close();
}

/// The right half of a ring (a "D" bowl) from `x0`, between `y0` and `y1`.
fn bowl(pb: &mut PathBuilder, x0: f32, y0: f32, y1: f32, rx: f32) {
    let ry = (y1 - y0) / 2.0;
    let cy = y0 + ry;
    let (irx, iry) = ((rx - T).max(0.01), (ry - T).max(0.01));
    // Outer half, clockwise from top.
    pb.move_to(x0, y0);
    pb.cubic_to(x0 + rx * KAPPA, y0, x0 + rx, cy - ry * KAPPA, x0 + rx, cy);
    pb.cubic_to(x0 + rx, cy + ry * KAPPA, x0 + rx * KAPPA, y1, x0, y1);
    // Back along the inner half, anticlockwise.
    pb.line_to(x0, y1 - T);
    pb.cubic_to(
        x0 + irx * KAPPA,
        y1 - T,
        x0 + irx,
        cy + iry * KAPPA,
        x0 + irx,
        cy,
    );
    pb.cubic_to(
        x0 + irx,
        cy - iry * KAPPA,
        x0 + irx * KAPPA,
        y0 + T,
        x0,
        y0 + T,
    );
    pb.close();
}

/// The wordmark's outline in a box `wordmark_width() × 1` (y down, cap height 1).
pub(crate) fn wordmark_path() -> Option<Path> {
    let mut pb = PathBuilder::new();
    let [wk, wh, wq, wr] = WIDTHS;
    // K: stem, an arm up to the right, a leg down to the right.
    let mut x = 0.0;
    rect(&mut pb, x, 0.0, x + T, 1.0);
    poly(
        &mut pb,
        &[
            (x + T, 0.50),
            (x + wk - 0.27, 0.0),
            (x + wk, 0.0),
            (x + T, 0.80),
        ],
    );
    poly(
        &mut pb,
        &[
            (x + 0.33, 0.44),
            (x + wk, 1.0),
            (x + wk - 0.27, 1.0),
            (x + T + 0.02, 0.62),
        ],
    );
    // H: two stems and a bar.
    x += wk + GAP;
    rect(&mut pb, x, 0.0, x + T, 1.0);
    rect(&mut pb, x + wh - T, 0.0, x + wh, 1.0);
    rect(&mut pb, x, 0.5 - T / 2.0, x + wh, 0.5 + T / 2.0);
    // Q: an elliptical ring and a tail through its lower right.
    x += wh + GAP;
    let (cx, rx) = (x + wq / 2.0, wq / 2.0);
    ellipse(&mut pb, cx, 0.5, rx, 0.5, true);
    ellipse(&mut pb, cx, 0.5, rx - T * 1.05, 0.5 - T, false);
    poly(
        &mut pb,
        &[
            (x + wq * 0.52, 0.70),
            (x + wq * 0.70, 0.58),
            (x + wq + 0.04, 1.04),
            (x + wq - 0.18, 1.04),
        ],
    );
    // R: stem, a bowl on the upper 58%, a leg.
    x += wq + GAP;
    rect(&mut pb, x, 0.0, x + T, 1.0);
    let bowl_x = x + T * 0.5;
    rect(&mut pb, x, 0.0, bowl_x + 0.01, T);
    rect(&mut pb, x, 0.58 - T, bowl_x + 0.01, 0.58);
    bowl(&mut pb, bowl_x, 0.0, 0.58, wr - T * 0.5 - 0.02);
    poly(
        &mut pb,
        &[
            (x + 0.28, 0.50),
            (x + 0.50, 0.50),
            (x + wr, 1.0),
            (x + wr - 0.25, 1.0),
        ],
    );
    pb.finish()
}

/// Fills the wordmark in `colour` with cap height `cap` pixels, its box's top
/// left corner at `(x, y)` pixels.
pub(crate) fn draw_wordmark(pixmap: &mut Pixmap, x: f32, y: f32, cap: f32, paint: &Paint<'_>) {
    if let Some(path) = wordmark_path() {
        let t = Transform::from_row(cap, 0.0, 0.0, cap, x, y);
        pixmap.fill_path(&path, paint, FillRule::Winding, t, None);
    }
}

/// Fills a disc of radius `r` pixels centred at `(cx, cy)`.
pub(crate) fn draw_disc(pixmap: &mut Pixmap, cx: f32, cy: f32, r: f32, paint: &Paint<'_>) {
    if let Some(path) = PathBuilder::from_circle(cx, cy, r) {
        pixmap.fill_path(&path, paint, FillRule::Winding, Transform::identity(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wordmark_fills_its_box() {
        let path = wordmark_path().unwrap();
        let b = path.bounds();
        assert!(b.left().abs() < 1e-3);
        assert!(b.top().abs() < 1e-3);
        // The Q's tail dips 4% below the baseline and past its box.
        assert!((b.bottom() - 1.04).abs() < 1e-3, "{b:?}");
        assert!(b.right() <= wordmark_width() + 0.05, "{b:?}");
        assert!(b.right() >= wordmark_width() - 0.01, "{b:?}");
    }
}
