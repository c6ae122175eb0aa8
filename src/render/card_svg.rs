//! The KHQR card as SVG, for print shops: the layout of [`super::card_png`]
//! (the same [`super::plan`]), every mark as vector paths, text included.

// Pixel geometry as in the parent module: coordinates are at most 4350 (a 10×
// card), far inside f32's exact integer range.
#![allow(clippy::cast_precision_loss)]

use core::fmt::Write as _;

use base64::Engine as _;
use tiny_skia::{Path, PathBuilder, PathSegment, Transform};

use super::text::{self, Fonts, Line};
use super::{
    decode_png, fit_box, marks, plan, rounded_rect, CardOptions, CentreIcon, Plan, PxRect,
    BADGE_DARK, KHQR_RED, SEPARATOR, TEXT,
};
use crate::render::RenderError;

/// The printed width of every card, millimetres: 4 inches, the size the PNG's
/// pHYs chunk gives every scale (75 dpi per unit of scale).
const WIDTH_MM: f32 = 101.6;
/// The printed height, millimetres: 5.8 inches (20:29 with the width).
const HEIGHT_MM: f32 = 147.32;

/// Appends `v` rounded to 1/100 of a card pixel, without trailing zeros
/// (`12`, `3.5`, `-0.25`); `-0` is written `0`.
fn num(out: &mut String, v: f32) {
    let r = (v * 100.0).round() / 100.0;
    let r = if r == 0.0 { 0.0 } else { r };
    let _ = write!(out, "{r}");
}

/// Appends the SVG path data of `path` (absolute `M`, `L`, `Q`, `C`, `Z`
/// commands, coordinates in card pixels to 1/100).
pub(crate) fn path_data(out: &mut String, path: &Path) {
    fn pt(out: &mut String, cmd: char, points: &[tiny_skia::Point]) {
        out.push(cmd);
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            num(out, p.x);
            out.push(' ');
            num(out, p.y);
        }
    }
    for seg in path.segments() {
        match seg {
            PathSegment::MoveTo(p) => pt(out, 'M', &[p]),
            PathSegment::LineTo(p) => pt(out, 'L', &[p]),
            PathSegment::QuadTo(a, p) => pt(out, 'Q', &[a, p]),
            PathSegment::CubicTo(a, b, p) => pt(out, 'C', &[a, b, p]),
            PathSegment::Close => out.push('Z'),
        }
    }
}

fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

/// `<path fill=".." d=".."/>` for `path`, nothing for `None` or an empty `d`.
fn push_path(out: &mut String, path: Option<&Path>, rgb: [u8; 3], extra: &str) {
    let Some(path) = path else { return };
    let mut d = String::new();
    path_data(&mut d, path);
    if d.is_empty() {
        return;
    }
    let _ = write!(out, "<path fill=\"{}\"{extra} d=\"{d}\"/>", hex(rgb));
}

/// Appends a whole-pixel rectangle as path data: `M x y h w v h h -w z`.
fn rect_data(d: &mut String, x: u32, y: u32, w: u32, h: u32) {
    let _ = write!(d, "M{x} {y}h{w}v{h}h-{w}z");
}

/// Appends the glyph outlines of `line`, pen at `(x, baseline)` rounded to
/// whole pixels as [`super::card_png`] places it.
fn push_line(out: &mut String, fonts: &Fonts, line: &Line, x: f32, baseline: f32, rgb: [u8; 3]) {
    let path = line.path(fonts, x.round(), baseline.round());
    push_path(out, path.as_ref(), rgb, "");
}

/// `<image>` of a decoded logo (re-encoded as 8-bit RGBA PNG, so what is
/// embedded is what the PNG card draws) in `dest`, as a base64 data URI.
fn push_image(out: &mut String, img: &tiny_skia::Pixmap, dest: PxRect) -> Result<(), RenderError> {
    let bytes = img
        .encode_png()
        .map_err(|e| RenderError::Png(e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let _ = write!(
        out,
        "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" \
         xlink:href=\"data:image/png;base64,{b64}\"/>",
        dest.x, dest.y, dest.width, dest.height
    );
    Ok(())
}

/// The centre badge: the light square, the disc, the sign (or the caller's
/// logo), then the function-pattern modules under it drawn back on top.
fn push_badge(
    out: &mut String,
    plan: &Plan,
    options: &CardOptions,
    fonts: &Fonts,
) -> Result<(), RenderError> {
    let (Some(b), Some(_)) = (plan.layout.icon, plan.badge) else {
        return Ok(());
    };
    let mpx = plan.layout.module_px;
    let _ = write!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#ffffff\" shape-rendering=\"crispEdges\"/>",
        b.x, b.y, b.width, b.height
    );
    let cx = b.x as f32 + b.width as f32 / 2.0;
    let cy = b.y as f32 + b.height as f32 / 2.0;
    let r = b.width as f32 / 2.0 - 0.5 * mpx as f32;
    let disc = match &options.centre_icon {
        CentreIcon::None => return Ok(()),
        CentreIcon::Custom(png) => {
            let img = decode_png(png)?;
            let dest = fit_box(
                img.width() as f32,
                img.height() as f32,
                2.0 * r,
                2.0 * r,
                cx,
                cy,
            );
            push_image(out, &img, dest)?;
            None
        }
        CentreIcon::BakongRed => Some(KHQR_RED),
        CentreIcon::Currency => Some(BADGE_DARK),
    };
    if let Some(d) = disc {
        push_path(out, PathBuilder::from_circle(cx, cy, r).as_ref(), d, "");
        // The currency sign: the same sizing and placement as the PNG's.
        if let Some((line, x, baseline)) = super::badge_sign(fonts, plan.currency, cx, cy, r) {
            out.push_str("<g clip-path=\"url(#khqr-badge)\">");
            push_line(out, fonts, &line, x, baseline, [255, 255, 255]);
            out.push_str("</g>");
        }
    }
    // Function-pattern modules under the badge, drawn back on top.
    let (mut dark, mut light) = (String::new(), String::new());
    for &(mx, my) in &plan.badge_functions {
        let x = plan.layout.qr.x + (mx as u32 + 4) * mpx;
        let y = plan.layout.qr.y + (my as u32 + 4) * mpx;
        let d = if plan.matrix.is_dark(mx, my) {
            &mut dark
        } else {
            &mut light
        };
        rect_data(d, x, y, mpx, mpx);
    }
    for (d, fill) in [(light, "#ffffff"), (dark, "#000000")] {
        if !d.is_empty() {
            let _ = write!(
                out,
                "<path fill=\"{fill}\" shape-rendering=\"crispEdges\" d=\"{d}\"/>"
            );
        }
    }
    Ok(())
}

/// Draws the KHQR card for `payload` as an SVG document for print: the same
/// layout, colours and QR modules as [`super::card_png`] with the same
/// `options`, with every mark a vector path and no font needed to print it.
///
/// * **Size.** `width="101.6mm" height="147.32mm"` (4 × 5.8 inches, about A6:
///   the size the PNG's pHYs chunk gives every scale) and a `viewBox` of
///   `0 0 W H` in card pixels at `options.scale` (`W × H` = `300·scale ×
///   435·scale`, as [`super::card_layout`] reports): rasterised at `W × H`
///   it lands on the PNG's pixel grid; at `k·W × k·H` (`k` whole) every
///   module is `k × module_px` pixels. 300 dpi is `1200 × 1740`: scale 4 at
///   `k = 1`, scale 2 at `k = 2`, scale 1 at `k = 4`.
/// * **Text** (merchant name, amount, currency code, the badge's `$` or `៛`)
///   is glyph outlines as `<path>`: shaped with rustybuzz exactly as in the
///   PNG (Khmer subscripts and pre-base vowels, Unicode ch. 16.4), pen
///   positions rounded to whole pixels as the PNG rounds them. There is no
///   `<text>` element.
/// * **QR.** One `<path>` of the dark modules in horizontal runs, on the
///   whole-pixel module grid with `shape-rendering="crispEdges"` (SVG 1.1
///   §11.7.1: no anti-aliasing at a fractional zoom), its 4-module
///   quiet zone (ISO/IEC 18004 §6.3.8) white. The centre badge clears the
///   same budgeted square of whole modules, and the function-pattern modules
///   under it (§6.3) are drawn back on top, as in the PNG.
/// * **Marks** (the "KHQR" wordmark, the header, the dog-ear, the badge's
///   disc, the dashed separator) are paths; the rounded corners are a
///   `clipPath`.
/// * **Logos** (`header_logo`, [`CentreIcon::Custom`]) are embedded as
///   `data:image/png;base64` `<image>` elements: decoded (and checked) as the
///   PNG card decodes them, re-encoded as 8-bit RGBA PNG.
///
/// Coordinates are written to 1/100 of a card pixel. Identical input gives
/// identical text. The document is UTF-8 and ASCII-only.
///
/// ```
/// use bakong_khqr::render::{card_layout, card_svg, CardOptions};
/// use bakong_khqr::{Currency, Request};
///
/// let khqr = Request::individual("jonhsmith@nbcq", "ហាងកាហ្វេ Coffee")
///     .currency(Currency::Usd)
///     .amount("12.5")
///     .expires_in_ms(600_000)
///     .generate(1_700_000_000_000)?;
/// let options = CardOptions::default(); // scale 2: 600 × 870 card pixels
/// let svg = card_svg(khqr.as_str(), &options)?;
/// assert!(svg.starts_with("<svg "));
/// assert!(svg.contains(r#"width="101.6mm" height="147.32mm" viewBox="0 0 600 870""#));
/// assert!(!svg.contains("<text"));
/// let layout = card_layout(khqr.as_str(), &options)?;
/// assert_eq!((layout.width, layout.height), (600, 870));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`super::card_png`]:
/// * [`RenderError::InvalidOption`]: `scale` is not 1–10.
/// * [`RenderError::Decode`]: the payload is not well-formed KHQR TLV.
/// * [`RenderError::Field`]: a field the card shows breaks the core's rule; the
///   [`crate::Error`] inside names the [`Field`](crate::Field) and has the code
///   `generate` and `verify` give: the merchant name (tag 59) absent or blank
///   (only white space and invisible format characters such as U+200B; code 2)
///   or with a control character (53); the currency (tag 53) absent (9) or not
///   116 or 840 (28); the amount (tag 54) not decimal digits with an optional
///   fraction, or over 13 characters (4).
/// * [`RenderError::TooLong`]: the payload does not fit a QR symbol at `ecc`.
/// * [`RenderError::Image`]: a logo is not a PNG, or over 4096 pixels a side.
/// * [`RenderError::Font`], [`RenderError::Png`]: the embedded fonts did not
///   parse or a logo could not be re-encoded (not expected).
pub fn card_svg(payload: &str, options: &CardOptions) -> Result<String, RenderError> {
    let plan = plan(payload, options)?;
    let fonts = text::fonts()?;
    let l = &plan.layout;
    let (w, h) = (l.width, l.height);
    let (wf, hf) = (w as f32, h as f32);
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
         version=\"1.1\" width=\"{WIDTH_MM}mm\" height=\"{HEIGHT_MM}mm\" viewBox=\"0 0 {w} {h}\">"
    );

    // Clips: the rounded card, the text band (between header and separator),
    // the badge square (the PNG fills text and sign only inside those).
    out.push_str("<defs><clipPath id=\"khqr-card\">");
    push_path(
        &mut out,
        rounded_rect(wf, hf, l.corner_radius).as_ref(),
        [0, 0, 0],
        "",
    );
    let band_h = l.separator.y.saturating_sub(l.header.bottom());
    let _ = write!(
        out,
        "</clipPath><clipPath id=\"khqr-band\"><rect x=\"0\" y=\"{}\" width=\"{w}\" height=\"{band_h}\"/></clipPath>",
        l.header.bottom()
    );
    if let Some(b) = l.icon {
        let _ = write!(
            out,
            "<clipPath id=\"khqr-badge\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath>",
            b.x, b.y, b.width, b.height
        );
    }
    out.push_str("</defs><g clip-path=\"url(#khqr-card)\">");
    let _ = write!(
        out,
        "<rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\
         <rect width=\"{w}\" height=\"{}\" fill=\"{}\" shape-rendering=\"crispEdges\"/>",
        l.header.height,
        hex(KHQR_RED)
    );

    // Dog-ear, header mark.
    let header_h = l.header.height as f32;
    let ear = (0.055 * hf).round();
    // The PNG's triangle, reaching one pixel up into the (equally red)
    // header so that no seam shows between them at a fractional zoom.
    let mut pb = PathBuilder::new();
    pb.move_to(wf - ear, header_h - 1.0);
    pb.line_to(wf, header_h - 1.0);
    pb.line_to(wf, header_h + ear);
    pb.line_to(wf - ear, header_h);
    pb.close();
    push_path(&mut out, pb.finish().as_ref(), KHQR_RED, "");
    if let Some(logo) = &options.header_logo {
        push_image(&mut out, &decode_png(logo)?, l.header_mark)?;
    } else {
        let m = l.header_mark;
        let cap = m.height as f32;
        let t = Transform::from_row(cap, 0.0, 0.0, cap, m.x as f32, m.y as f32);
        let path = marks::wordmark_path().and_then(|p| p.transform(t));
        push_path(&mut out, path.as_ref(), [255, 255, 255], "");
    }

    // Text.
    out.push_str("<g clip-path=\"url(#khqr-band)\">");
    let (nx, nb) = plan.name_origin;
    push_line(&mut out, fonts, &plan.name, nx, nb, TEXT);
    if let Some(a) = &plan.amount {
        for (line, (x, b)) in [(&a.amount, a.amount_at), (&a.code, a.code_at)] {
            push_line(&mut out, fonts, line, x, b, TEXT);
        }
    }
    out.push_str("</g>");

    // Dashed separator: dash 6, gap 4 (× scale), whole pixels.
    let s = options.scale;
    let mut d = String::new();
    let mut x = 0;
    while x < w {
        rect_data(
            &mut d,
            x,
            l.separator.y,
            (6 * s).min(w - x),
            l.separator.height,
        );
        x += 10 * s;
    }
    let _ = write!(
        out,
        "<path fill=\"{}\" shape-rendering=\"crispEdges\" d=\"{d}\"/>",
        hex(SEPARATOR)
    );

    // QR: the dark modules in horizontal runs, on the whole-pixel grid. The
    // badge's square is left out (the PNG clears it to white).
    let m = &plan.matrix;
    let mpx = l.module_px;
    let in_badge = |x: usize, y: usize| {
        plan.badge
            .is_some_and(|(lo, k)| (lo..lo + k).contains(&x) && (lo..lo + k).contains(&y))
    };
    let mut d = String::with_capacity(m.size() * m.size() * 4);
    for my in 0..m.size() {
        let mut mx = 0;
        while mx < m.size() {
            if !m.is_dark(mx, my) || in_badge(mx, my) {
                mx += 1;
                continue;
            }
            let start = mx;
            while mx < m.size() && m.is_dark(mx, my) && !in_badge(mx, my) {
                mx += 1;
            }
            rect_data(
                &mut d,
                l.qr.x + (start as u32 + 4) * mpx,
                l.qr.y + (my as u32 + 4) * mpx,
                (mx - start) as u32 * mpx,
                mpx,
            );
        }
    }
    let _ = write!(
        out,
        "<path fill=\"#000000\" shape-rendering=\"crispEdges\" d=\"{d}\"/>"
    );
    push_badge(&mut out, &plan, options, fonts)?;
    out.push_str("</g></svg>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_skia::Rect;

    #[test]
    fn numbers_are_short_and_never_negative_zero() {
        let f = |v: f32| {
            let mut s = String::new();
            num(&mut s, v);
            s
        };
        assert_eq!(f(12.0), "12");
        assert_eq!(f(3.5), "3.5");
        assert_eq!(f(-0.25), "-0.25");
        assert_eq!(f(-0.001), "0");
        assert_eq!(f(1.006), "1.01");
        assert_eq!(f(4350.0), "4350");
    }

    #[test]
    fn path_data_writes_every_segment_kind() {
        let mut pb = PathBuilder::new();
        pb.move_to(1.0, 2.0);
        pb.line_to(3.5, 4.0);
        pb.quad_to(5.0, 6.0, 7.0, 8.0);
        pb.cubic_to(9.0, 10.0, 11.0, 12.0, 13.0, 14.25);
        pb.close();
        let mut d = String::new();
        path_data(&mut d, &pb.finish().unwrap());
        assert_eq!(d, "M1 2L3.5 4Q5 6 7 8C9 10 11 12 13 14.25Z");
    }

    #[test]
    fn rect_data_is_a_closed_whole_pixel_square() {
        let mut d = String::new();
        rect_data(&mut d, 10, 20, 6, 2);
        assert_eq!(d, "M10 20h6v2h-6z");
        let r = Rect::from_xywh(0.0, 0.0, 1.0, 1.0).unwrap();
        let mut d = String::new();
        path_data(&mut d, &PathBuilder::from_rect(r));
        assert_eq!(d, "M0 0L1 0L1 1L0 1Z");
    }
}
