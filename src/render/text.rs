//! Text for the KHQR card: font choice by script, OpenType shaping with
//! `rustybuzz`, measuring, fitting, and filling the shaped glyphs' outlines
//! (read by `ttf-parser`, see [`super::outline`]) as anti-aliased `tiny-skia`
//! paths.
//!
//! Khmer needs shaping: a consonant after COENG (U+17D2) becomes a subscript
//! glyph, and pre-base vowels such as U+17C1 `េ` are drawn before their base
//! although they are stored after it (Unicode Standard, ch. 16.4 Khmer). A
//! one-glyph-per-character renderer gets both wrong.

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

use std::sync::OnceLock;

use super::RenderError;

const NUNITO_REGULAR: &[u8] = include_bytes!("../../assets/fonts/NunitoSans-Regular.ttf");
const NUNITO_BOLD: &[u8] = include_bytes!("../../assets/fonts/NunitoSans-Bold.ttf");
const KANTUMRUY_REGULAR: &[u8] = include_bytes!("../../assets/fonts/KantumruyPro-Regular.ttf");
const KANTUMRUY_BOLD: &[u8] = include_bytes!("../../assets/fonts/KantumruyPro-Bold.ttf");

/// Weight of a run of text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Weight {
    Regular,
    Bold,
}

/// One of the four embedded faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaceId {
    LatinRegular,
    LatinBold,
    KhmerRegular,
    KhmerBold,
}

impl FaceId {
    const fn new(khmer: bool, weight: Weight) -> Self {
        match (khmer, weight) {
            (false, Weight::Regular) => FaceId::LatinRegular,
            (false, Weight::Bold) => FaceId::LatinBold,
            (true, Weight::Regular) => FaceId::KhmerRegular,
            (true, Weight::Bold) => FaceId::KhmerBold,
        }
    }
}

/// A face, parsed once: `rustybuzz` shapes with it, and its outlines are read
/// through the `ttf_parser::Face` it dereferences to. Parsing reads the table
/// directory only (tables are read lazily, in place in the embedded bytes).
pub(crate) struct Face {
    /// The face for shaping; derefs to `ttf_parser::Face` for outlines.
    pub(crate) shaper: rustybuzz::Face<'static>,
    /// Font units per em (the `head` table), as f32.
    pub(crate) units_per_em: f32,
}

pub(crate) struct Fonts {
    faces: [Face; 4],
}

fn load(data: &'static [u8]) -> Result<Face, String> {
    let shaper = rustybuzz::Face::from_slice(data, 0).ok_or("font does not parse")?;
    let units_per_em = f32::from(u16::try_from(shaper.units_per_em()).unwrap_or(1000));
    Ok(Face {
        shaper,
        units_per_em,
    })
}

/// The embedded fonts, parsed once per process.
///
/// # Errors
/// [`RenderError::Font`] if an embedded font does not parse (not expected: the
/// files are fixed at build time).
pub(crate) fn fonts() -> Result<&'static Fonts, RenderError> {
    static FONTS: OnceLock<Result<Fonts, String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            Ok(Fonts {
                faces: [
                    load(NUNITO_REGULAR)?,
                    load(NUNITO_BOLD)?,
                    load(KANTUMRUY_REGULAR)?,
                    load(KANTUMRUY_BOLD)?,
                ],
            })
        })
        .as_ref()
        .map_err(|e| RenderError::Font(e.clone()))
}

impl Fonts {
    pub(crate) fn face(&self, id: FaceId) -> &Face {
        let [a, b, c, d] = &self.faces;
        match id {
            FaceId::LatinRegular => a,
            FaceId::LatinBold => b,
            FaceId::KhmerRegular => c,
            FaceId::KhmerBold => d,
        }
    }
}

/// Whether `c` is in the Khmer (U+1780–U+17FF) or Khmer Symbols (U+19E0–U+19FF) block.
pub(crate) const fn is_khmer(c: char) -> bool {
    matches!(c, '\u{1780}'..='\u{17FF}' | '\u{19E0}'..='\u{19FF}')
}

/// Characters that belong to the cluster before them: Khmer dependent vowels,
/// signs and COENG (U+17B4–U+17D3, U+17DD), combining diacritics, joiners and
/// variation selectors.
const fn is_mark(c: char) -> bool {
    matches!(
        c,
        '\u{17B4}'..='\u{17D3}'
            | '\u{17DD}'
            | '\u{0300}'..='\u{036F}'
            | '\u{200C}'
            | '\u{200D}'
            | '\u{FE00}'..='\u{FE0F}'
    )
}

/// Byte offsets where a cluster starts (a base character plus its marks, a
/// COENG and the consonant after it), plus `text.len()`. Cutting at these keeps
/// Khmer syllables whole.
pub(crate) fn cluster_starts(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        let joined = is_mark(c) || matches!(prev, Some('\u{17D2}' | '\u{200D}'));
        if !joined || prev.is_none() {
            out.push(i);
        }
        prev = Some(c);
    }
    out.push(text.len());
    out
}

/// A glyph placed on a line, in pixels relative to the pen start on the baseline
/// (y grows downwards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Placed {
    pub face: FaceId,
    pub glyph: u16,
    pub x: f32,
    pub y: f32,
    /// Byte offset in the shaped text of the cluster this glyph belongs to.
    pub cluster: usize,
}

/// A shaped line of text at one size.
#[derive(Clone, Debug, Default)]
pub(crate) struct Line {
    pub glyphs: Vec<Placed>,
    /// Total advance, pixels.
    pub advance: f32,
    /// Font size, pixels per em.
    pub px: f32,
}

/// Ink extent of a line in whole pixels relative to the pen start on the
/// baseline: `(left, top, right, bottom)`, y down.
pub(crate) type Ink = (i32, i32, i32, i32);

fn face_for(fonts: &Fonts, c: char, prev: Option<bool>, weight: Weight) -> bool {
    if is_khmer(c) {
        return true;
    }
    if is_mark(c) || c == '\u{200B}' {
        return prev.unwrap_or(false);
    }
    let latin = fonts.face(FaceId::new(false, weight));
    if latin.shaper.glyph_index(c).is_some() {
        return false;
    }
    let khmer = fonts.face(FaceId::new(true, weight));
    khmer.shaper.glyph_index(c).is_some()
}

/// Shapes `text` at `px` pixels per em: split into runs by script (Khmer blocks
/// to Kantumruy Pro, anything else to Nunito Sans, falling back to the other face
/// for a character the first lacks), each run shaped left to right.
pub(crate) fn shape(fonts: &Fonts, text: &str, weight: Weight, px: f32) -> Line {
    let mut line = Line {
        glyphs: Vec::new(),
        advance: 0.0,
        px,
    };
    let mut runs: Vec<(bool, usize, usize)> = Vec::new();
    let mut prev: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let khmer = face_for(fonts, c, prev, weight);
        let end = i + c.len_utf8();
        match runs.last_mut() {
            Some((k, _, e)) if *k == khmer => *e = end,
            _ => runs.push((khmer, i, end)),
        }
        prev = Some(khmer);
    }
    for (khmer, start, end) in runs {
        let id = FaceId::new(khmer, weight);
        let face = fonts.face(id);
        let scale = px / face.units_per_em;
        let mut buffer = rustybuzz::UnicodeBuffer::new();
        buffer.push_str(text.get(start..end).unwrap_or_default());
        buffer.set_direction(rustybuzz::Direction::LeftToRight);
        buffer.guess_segment_properties();
        let shaped = rustybuzz::shape(&face.shaper, &[], buffer);
        for (info, pos) in shaped.glyph_infos().iter().zip(shaped.glyph_positions()) {
            line.glyphs.push(Placed {
                face: id,
                glyph: u16::try_from(info.glyph_id).unwrap_or(0),
                x: line.advance + pos.x_offset as f32 * scale,
                y: -(pos.y_offset as f32) * scale,
                cluster: start + info.cluster as usize,
            });
            line.advance += pos.x_advance as f32 * scale;
        }
    }
    line
}

/// Rounds a glyph's pen position to whole pixels, so that the same glyph looks
/// the same wherever it falls and the ink box is exact in whole pixels.
fn origin(g: &Placed, x0: f32, baseline: f32) -> (i32, i32) {
    ((x0 + g.x).round() as i32, (baseline + g.y).round() as i32)
}

impl Line {
    /// All the line's glyph outlines in one path (pixels, y down), the pen
    /// starting at `(x0, baseline)` and each glyph's pen rounded to whole
    /// pixels as [`Line::draw`] does; `None` for a line with no outline (empty,
    /// or spaces only). Fill with the non-zero winding rule.
    pub(crate) fn path(&self, fonts: &Fonts, x0: f32, baseline: f32) -> Option<tiny_skia::Path> {
        let mut pb = tiny_skia::PathBuilder::new();
        let mut any = false;
        for g in &self.glyphs {
            let face = fonts.face(g.face);
            let (ox, oy) = origin(g, x0, baseline);
            any |= super::outline::push_glyph(
                &mut pb,
                &face.shaper,
                g.glyph,
                self.px / face.units_per_em,
                ox as f32,
                oy as f32,
            );
        }
        if any {
            pb.finish()
        } else {
            None
        }
    }

    /// The ink box: every pixel the filled outlines can touch (the glyphs'
    /// `glyf`/`CFF` bounding boxes, scaled, at their rounded pens, rounded out to
    /// whole pixels), relative to the pen start on the baseline; `None` for a
    /// line with no ink.
    pub(crate) fn ink(&self, fonts: &Fonts) -> Option<Ink> {
        let mut ink: Option<Ink> = None;
        for g in &self.glyphs {
            let face = fonts.face(g.face);
            let Some(bb) = face
                .shaper
                .glyph_bounding_box(rustybuzz::ttf_parser::GlyphId(g.glyph))
            else {
                continue;
            };
            if bb.x_min >= bb.x_max || bb.y_min >= bb.y_max {
                continue;
            }
            let k = self.px / face.units_per_em;
            let (ox, oy) = origin(g, 0.0, 0.0);
            let left = ox + (f32::from(bb.x_min) * k).floor() as i32;
            let right = ox + (f32::from(bb.x_max) * k).ceil() as i32;
            let top = oy - (f32::from(bb.y_max) * k).ceil() as i32;
            let bottom = oy - (f32::from(bb.y_min) * k).floor() as i32;
            ink = Some(match ink {
                None => (left, top, right, bottom),
                Some((l, t, r, b)) => (l.min(left), t.min(top), r.max(right), b.max(bottom)),
            });
        }
        ink
    }

    /// Width the line occupies from the pen start: the larger of its advance and
    /// its ink's right edge, less any ink left of the pen (pixels).
    pub(crate) fn extent(&self, fonts: &Fonts) -> (i32, i32) {
        let adv = self.advance.ceil() as i32;
        match self.ink(fonts) {
            Some((l, _, r, _)) => (l.min(0), r.max(adv)),
            None => (0, adv),
        }
    }

    /// Fills the line's outlines on `canvas` with `paint` (anti-aliased,
    /// non-zero winding), the pen starting at `(x0, baseline)`, through `clip`
    /// when given; pixels outside the canvas are dropped.
    pub(crate) fn fill(
        &self,
        fonts: &Fonts,
        canvas: &mut tiny_skia::Pixmap,
        paint: &tiny_skia::Paint<'_>,
        x0: f32,
        baseline: f32,
        clip: Option<&tiny_skia::Mask>,
    ) {
        if let Some(path) = self.path(fonts, x0, baseline) {
            canvas.fill_path(
                &path,
                paint,
                tiny_skia::FillRule::Winding,
                tiny_skia::Transform::identity(),
                clip,
            );
        }
    }
}

/// A line fitted into a width: the text actually drawn, shaped.
#[derive(Clone, Debug)]
pub(crate) struct Fitted {
    pub line: Line,
    /// Whether the text was cut and ends in "…".
    pub truncated: bool,
}

/// Fits `text` into `max_width` pixels: shaped at `px`, shrunk step by step (5%)
/// down to `min_px`, then cut at a cluster boundary with "…" appended.
pub(crate) fn fit(
    fonts: &Fonts,
    text: &str,
    weight: Weight,
    px: f32,
    min_px: f32,
    max_width: i32,
) -> Fitted {
    let fits = |l: &Line| {
        let (a, b) = l.extent(fonts);
        b - a <= max_width
    };
    let mut size = px;
    loop {
        let line = shape(fonts, text, weight, size);
        if fits(&line) {
            return Fitted {
                line,
                truncated: false,
            };
        }
        if size <= min_px {
            break;
        }
        size = (size * 0.95).max(min_px);
    }
    // Binary search over cluster boundaries for the longest prefix that fits with "…".
    let starts = cluster_starts(text);
    let candidates: Vec<usize> = starts
        .iter()
        .copied()
        .filter(|&i| i > 0 && i < text.len())
        .collect();
    let with_ellipsis = |cut: usize| {
        let mut s = text.get(..cut).unwrap_or_default().trim_end().to_owned();
        s.push('…');
        shape(fonts, &s, weight, size)
    };
    let (mut lo, mut hi) = (0usize, candidates.len());
    let mut best = shape(fonts, "…", weight, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let cut = candidates.get(mid).copied().unwrap_or(0);
        let line = with_ellipsis(cut);
        if fits(&line) {
            best = line;
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Fitted {
        line: best,
        truncated: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyph_ids(text: &str) -> Vec<u16> {
        let f = fonts().unwrap();
        shape(f, text, Weight::Regular, 40.0)
            .glyphs
            .iter()
            .map(|g| g.glyph)
            .collect()
    }

    /// One glyph per character from the cmap alone: what a renderer without
    /// shaping draws.
    fn naive_ids(text: &str) -> Vec<u16> {
        let f = fonts().unwrap();
        let face = &f.face(FaceId::KhmerRegular).shaper;
        text.chars()
            .map(|c| face.glyph_index(c).map_or(0, |g| g.0))
            .collect()
    }

    fn cmap(c: char) -> u16 {
        let f = fonts().unwrap();
        f.face(FaceId::KhmerRegular)
            .shaper
            .glyph_index(c)
            .map_or(0, |g| g.0)
    }

    #[test]
    fn coeng_consonant_becomes_one_subscript_glyph() {
        // ហាងកាហ្វេ: ហ ា ង ក ា ហ ្ វ េ — 9 characters.
        let text = "ហាងកាហ្វេ";
        let naive = naive_ids(text);
        let shaped = glyph_ids(text);
        assert_eq!(naive.len(), 9);
        // COENG + វ is one subscript glyph, not the coeng sign and a full-size វ.
        assert_eq!(shaped.len(), 8, "{shaped:?}");
        assert!(!shaped.contains(&cmap('\u{17D2}')), "{shaped:?}");
        let full_vo = cmap('វ');
        assert!(
            !shaped.contains(&full_vo),
            "subscript វ must not be the base glyph"
        );
        // The pre-base vowel េ moves before its base ហ: … ហ ្វ េ → … េ ហ ្វ.
        let e = cmap('េ');
        let ho = cmap('ហ');
        let e_at = shaped.iter().position(|&g| g == e).unwrap();
        assert_eq!(shaped.get(e_at + 1), Some(&ho), "{shaped:?}");
        assert_eq!(e_at, 5, "{shaped:?}");
        // Naive order: េ last.
        assert_eq!(naive.last(), Some(&e));
        // ង and ក keep their plain forms (ហ and ា may take contextual ones).
        assert_eq!(shaped[2], naive[2]);
    }

    #[test]
    fn phnom_penh_shapes_subscript_and_pre_base_vowel() {
        // ភ្នំពេញ: ភ ្ ន ំ ព េ ញ — the ន under ភ, េ before ព.
        let text = "ភ្នំពេញ";
        let naive = naive_ids(text);
        let shaped = glyph_ids(text);
        assert_eq!(naive.len(), 7);
        assert_eq!(shaped.len(), 6, "{shaped:?}");
        assert_eq!(shaped[0], cmap('ភ'));
        assert_ne!(shaped[1], cmap('ន'), "ន after coeng is a subscript form");
        assert_ne!(shaped[1], cmap('\u{17D2}'));
        // ំ stays a mark glyph after the subscript.
        assert_eq!(shaped[2], cmap('ំ'));
        // េ ព ញ in visual order.
        assert_eq!(&shaped[3..], &[cmap('េ'), cmap('ព'), cmap('ញ')]);
        // The naive order keeps ព before េ.
        assert_eq!(&naive[4..], &[cmap('ព'), cmap('េ'), cmap('ញ')]);
    }

    #[test]
    fn subscript_sits_below_the_baseline() {
        let f = fonts().unwrap();
        let line = shape(f, "ភ្ន", Weight::Regular, 100.0);
        let base_only = shape(f, "ភ", Weight::Regular, 100.0);
        let (_, _, _, b1) = line.ink(f).unwrap();
        let (_, _, _, b0) = base_only.ink(f).unwrap();
        // The subscript descends well below the base consonant (over 0.2 em).
        assert!(b1 > b0 + 20, "subscript bottom {b1} vs base {b0}");
    }

    #[test]
    fn line_path_covers_the_ink_box() {
        let f = fonts().unwrap();
        let line = shape(f, "ភ្នំពេញ Café", Weight::Regular, 40.0);
        let (l, t, r, b) = line.ink(f).unwrap();
        let p = line.path(f, 10.0, 50.0).unwrap();
        let bb = p.bounds();
        // The ink box is the outline's box rounded out to whole pixels.
        let near = |a: f32, e: i32| (a - e as f32).abs() <= 1.0;
        assert!(near(bb.left(), 10 + l), "{bb:?} vs {:?}", (l, t, r, b));
        assert!(near(bb.top(), 50 + t), "{bb:?} vs {:?}", (l, t, r, b));
        assert!(near(bb.right(), 10 + r), "{bb:?} vs {:?}", (l, t, r, b));
        assert!(near(bb.bottom(), 50 + b), "{bb:?} vs {:?}", (l, t, r, b));
        assert!(shape(f, "   ", Weight::Regular, 40.0)
            .path(f, 0.0, 0.0)
            .is_none());
        assert!(Line::default().path(f, 0.0, 0.0).is_none());
    }

    #[test]
    fn clusters_keep_khmer_syllables_whole() {
        let text = "ភ្នំពេញ";
        // ភ្នំ | ពេ | ញ
        assert_eq!(cluster_starts(text), vec![0, 12, 18, 21]);
        assert_eq!(cluster_starts("AB"), vec![0, 1, 2]);
        assert_eq!(cluster_starts(""), vec![0]);
    }

    #[test]
    fn runs_pick_the_face_by_script() {
        let f = fonts().unwrap();
        let line = shape(f, "Café ហាង", Weight::Bold, 20.0);
        let faces: Vec<FaceId> = line.glyphs.iter().map(|g| g.face).collect();
        assert_eq!(faces.first(), Some(&FaceId::LatinBold));
        assert_eq!(faces.last(), Some(&FaceId::KhmerBold));
    }

    #[test]
    fn fit_shrinks_then_cuts_with_ellipsis() {
        let f = fonts().unwrap();
        let short = fit(f, "Shop", Weight::Regular, 26.0, 18.0, 400);
        assert!(!short.truncated);
        assert!((short.line.px - 26.0).abs() < f32::EPSILON);
        let long = fit(f, &"W".repeat(40), Weight::Regular, 26.0, 18.0, 400);
        assert!(long.truncated);
        assert!((long.line.px - 18.0).abs() < 0.01);
        let (l, r) = long.line.extent(f);
        assert!(r - l <= 400);
        // Nearly full: one more W would not fit.
        assert!(r - l > 400 - 18);
    }
}
