//! Glyph outlines as `tiny-skia` paths, read with `ttf-parser` (through
//! `rustybuzz`, which shapes the same faces): the card's text is filled as
//! anti-aliased vector paths, and the vector card writes the same paths.
//!
//! Font units are y-up with the origin at the pen on the baseline (OpenType
//! `glyf`/`CFF` outlines); pixel space here is y-down, so a point `(fx, fy)` in
//! font units lands at `(x + fx·scale, y − fy·scale)`.

use rustybuzz::ttf_parser::{Face, GlyphId, OutlineBuilder};
use tiny_skia::PathBuilder;

/// Forwards `ttf-parser`'s outline callbacks into a `tiny-skia` path builder,
/// mapping font units to pixels.
struct Sink<'a> {
    pb: &'a mut PathBuilder,
    scale: f32,
    x: f32,
    y: f32,
}

impl Sink<'_> {
    fn at(&self, fx: f32, fy: f32) -> (f32, f32) {
        (self.x + fx * self.scale, self.y - fy * self.scale)
    }
}

impl OutlineBuilder for Sink<'_> {
    fn move_to(&mut self, x: f32, y: f32) {
        let (x, y) = self.at(x, y);
        self.pb.move_to(x, y);
    }

    fn line_to(&mut self, x: f32, y: f32) {
        let (x, y) = self.at(x, y);
        self.pb.line_to(x, y);
    }

    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let (x1, y1) = self.at(x1, y1);
        let (x, y) = self.at(x, y);
        self.pb.quad_to(x1, y1, x, y);
    }

    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let (x1, y1) = self.at(x1, y1);
        let (x2, y2) = self.at(x2, y2);
        let (x, y) = self.at(x, y);
        self.pb.cubic_to(x1, y1, x2, y2, x, y);
    }

    fn close(&mut self) {
        self.pb.close();
    }
}

/// Appends glyph `glyph`'s outline to `pb`, `scale` pixels per font unit, pen
/// at `(x, y)` on the baseline (pixels, y down). Returns whether the glyph has
/// an outline (a space, a missing id or an unreadable glyph adds nothing).
pub(crate) fn push_glyph(
    pb: &mut PathBuilder,
    face: &Face<'_>,
    glyph: u16,
    scale: f32,
    x: f32,
    y: f32,
) -> bool {
    if !(scale.is_finite() && x.is_finite() && y.is_finite()) {
        return false;
    }
    let mut sink = Sink { pb, scale, x, y };
    face.outline_glyph(GlyphId(glyph), &mut sink).is_some()
}

/// One glyph's outline in pixel space (y down), pen at (x, y) on the baseline;
/// None for no outline.
///
/// `scale` is pixels per font unit (`px_per_em / units_per_em`). The path is
/// filled with the non-zero winding rule (TrueType and CFF outlines both use
/// it). `None` for a glyph with no contours (a space), an id the face does not
/// have, or non-finite arguments.
// The card (PNG and SVG) draws whole lines through `Line::path`/`push_glyph`;
// this one-glyph form is what the unit tests below check.
#[cfg(test)]
pub(crate) fn glyph_path(
    face: &Face<'_>,
    glyph: u16,
    scale: f32,
    x: f32,
    y: f32,
) -> Option<tiny_skia::Path> {
    let mut pb = PathBuilder::new();
    if !push_glyph(&mut pb, face, glyph, scale, x, y) {
        return None;
    }
    pb.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::text::{fonts, FaceId};

    #[test]
    fn outline_bounds_are_the_glyph_box_scaled_and_flipped() {
        let f = fonts().unwrap();
        let face = &f.face(FaceId::LatinBold).shaper;
        let h = face.glyph_index('H').unwrap();
        let bb = face.glyph_bounding_box(h).unwrap();
        let scale = 0.05;
        let p = glyph_path(face, h.0, scale, 100.0, 200.0).unwrap();
        let r = p.bounds();
        let near = |a: f32, e: f32| (a - e).abs() < 0.01;
        assert!(
            near(r.left(), 100.0 + f32::from(bb.x_min) * scale),
            "{r:?} {bb:?}"
        );
        assert!(
            near(r.right(), 100.0 + f32::from(bb.x_max) * scale),
            "{r:?} {bb:?}"
        );
        // y down: the top of the H is above the baseline at 200.
        assert!(
            near(r.top(), 200.0 - f32::from(bb.y_max) * scale),
            "{r:?} {bb:?}"
        );
        assert!(
            near(r.bottom(), 200.0 - f32::from(bb.y_min) * scale),
            "{r:?} {bb:?}"
        );
        assert!(r.top() < 200.0 && r.bottom() <= 200.01);
    }

    #[test]
    fn a_space_or_a_missing_glyph_has_no_outline() {
        let f = fonts().unwrap();
        let face = &f.face(FaceId::LatinRegular).shaper;
        let space = face.glyph_index(' ').unwrap();
        assert!(glyph_path(face, space.0, 0.05, 0.0, 0.0).is_none());
        assert!(glyph_path(face, u16::MAX, 0.05, 0.0, 0.0).is_none());
        let h = face.glyph_index('H').unwrap();
        assert!(glyph_path(face, h.0, f32::NAN, 0.0, 0.0).is_none());
    }
}
