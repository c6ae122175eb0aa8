//! The plain QR as SVG: one `<path>` of dark modules over a light background,
//! in module units (vector, for print shops).

use core::fmt::Write;

use super::{QrMatrix, QrOptions, RenderError};

fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

/// Draws `payload` as an SVG document: a `viewBox` of `size + 2 × quiet_zone`
/// modules square, `width`/`height` of that times `module_px` pixels, a light
/// background `<rect>` and a single `<path>` with one sub-path per horizontal
/// run of dark modules. Encoded like [`super::qr_png`] (mixed-mode segments, `ecc`).
///
/// ```
/// use bakong_khqr::render::{qr_svg, QrOptions};
/// let svg = qr_svg("00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B", &QrOptions::default())?;
/// assert!(svg.starts_with("<svg"));
/// assert_eq!(svg.matches("<path").count(), 1);
/// # Ok::<(), bakong_khqr::render::RenderError>(())
/// ```
///
/// # Errors
/// [`RenderError::TooLong`] when the payload does not fit a QR symbol;
/// [`RenderError::InvalidOption`] when `module_px` is not 1–100 or `quiet_zone`
/// is over 100.
pub fn qr_svg(payload: &str, options: &QrOptions) -> Result<String, RenderError> {
    super::check_options(options)?;
    let m = QrMatrix::encode(payload, options.ecc)?;
    let qz = options.quiet_zone as usize;
    let n = m.size() + 2 * qz;
    let px = n * options.module_px as usize;
    let mut d = String::with_capacity(m.size() * m.size() * 4);
    for y in 0..m.size() {
        let mut x = 0;
        while x < m.size() {
            if !m.is_dark(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < m.size() && m.is_dark(x, y) {
                x += 1;
            }
            let _ = write!(
                d,
                "M{} {}h{}v1h-{}z",
                start + qz,
                y + qz,
                x - start,
                x - start
            );
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{px}\" height=\"{px}\" \
         viewBox=\"0 0 {n} {n}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{n}\" height=\"{n}\" fill=\"{}\"/><path fill=\"{}\" d=\"{d}\"/></svg>\n",
        hex(options.light),
        hex(options.dark)
    ))
}
