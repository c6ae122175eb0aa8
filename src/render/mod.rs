//! The plain QR code of a payload, as a module matrix, a PNG or an SVG (feature
//! `qr`), and the branded KHQR card (feature `card`; `render` is both).
//!
//! The symbol holds the payload's UTF-8 bytes in the fewest bits: an optimal
//! split into numeric, alphanumeric and byte segments (never Kanji, so Khmer
//! text scans back exactly), with an ECI 26 (UTF-8) designator first when the
//! payload is not all ASCII (ISO/IEC 18004 §7.4). KHQR payloads are mostly
//! digits, so the symbol is one or two versions smaller than a single byte
//! segment: over the test corpus (165 payloads) 156 shrink, the median from
//! version 7 (45 modules) to 6 (41). The `qrcode` crate builds the symbol from
//! those segments (its `Bits`) and picks the mask. It is at error-correction
//! level M by default, and drawn with a quiet zone of 4 modules (ISO/IEC 18004 §6.3.8) at
//! a whole number of pixels per module: no resampling, sharp edges. The PNG is
//! 1-bit greyscale, unfiltered, and identical on every run for the same input.
//!
//! ```
//! use bakong_khqr::render::{qr_png, QrOptions};
//!
//! let payload = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
//! let png = qr_png(payload, &QrOptions::default())?;
//! assert_eq!(&png[1..4], b"PNG");
//! # Ok::<(), bakong_khqr::render::RenderError>(())
//! ```

use core::fmt;

#[cfg(feature = "card")]
mod card;
#[cfg(feature = "card")]
mod marks;
#[cfg(feature = "card")]
mod outline;
mod segment;
mod svg;
mod symbol;
#[cfg(feature = "card")]
mod text;

#[cfg(feature = "card")]
pub use card::card_svg;
#[cfg(feature = "card")]
pub use card::{
    card_layout, card_png, CardLayout, CardOptions, CentreIcon, PxRect, CARD_HEIGHT_1X,
    CARD_WIDTH_1X, KHQR_RED, MAX_SCALE,
};
pub use svg::qr_svg;

/// Error-correction level of the QR symbol (ISO/IEC 18004 §6.5.1): the share of
/// the symbol that can be damaged and still read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ecc {
    /// About 7%.
    L,
    /// About 15%: the default here (bank apps print KHQR at M).
    #[default]
    M,
    /// About 25%.
    Q,
    /// About 30%: for symbols with a logo over the centre.
    H,
}

/// How to draw the plain QR PNG.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct QrOptions {
    /// Pixels per module, 1–100; default 10.
    pub module_px: u32,
    /// Quiet zone around the symbol, in modules, 0–100; default 4 (the standard's
    /// minimum; less may not scan).
    pub quiet_zone: u32,
    /// Error-correction level; default M.
    pub ecc: Ecc,
    /// Colour of the dark modules, RGB; default black.
    pub dark: [u8; 3],
    /// Colour of the light modules and quiet zone, RGB; default white.
    pub light: [u8; 3],
}

impl Default for QrOptions {
    fn default() -> Self {
        QrOptions {
            module_px: 10,
            quiet_zone: 4,
            ecc: Ecc::M,
            dark: [0, 0, 0],
            light: [255, 255, 255],
        }
    }
}

impl QrOptions {
    /// Sets the pixels per module.
    #[must_use]
    pub const fn module_px(mut self, px: u32) -> Self {
        self.module_px = px;
        self
    }

    /// Sets the quiet zone, in modules.
    #[must_use]
    pub const fn quiet_zone(mut self, modules: u32) -> Self {
        self.quiet_zone = modules;
        self
    }

    /// Sets the error-correction level.
    #[must_use]
    pub const fn ecc(mut self, ecc: Ecc) -> Self {
        self.ecc = ecc;
        self
    }

    /// Sets the dark and light module colours, RGB. Scanners need dark modules
    /// on a light background with good contrast (ISO/IEC 18004 §6.2).
    #[must_use]
    pub const fn colours(mut self, dark: [u8; 3], light: [u8; 3]) -> Self {
        self.dark = dark;
        self.light = light;
        self
    }
}

/// Why a QR could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenderError {
    /// The payload is longer than a version-40 symbol holds at this level
    /// (2 331 bytes at M).
    TooLong {
        /// The payload's length in UTF-8 bytes.
        bytes: usize,
    },
    /// An option is out of range.
    InvalidOption(&'static str),
    /// The PNG encoder failed (it writes to memory, so this is not expected).
    Png(String),
    /// The card's payload is not well-formed KHQR (see [`crate::Decoded::parse`]).
    Decode(crate::Error),
    /// A field the card shows is missing or unusable: the merchant name (tag
    /// 59), the currency (tag 53) or the amount (tag 54). The error names the
    /// field ([`crate::Error::field`], which knows its tag) and carries the
    /// core's code for the rule it broke ([`crate::Error::code`]), the same
    /// code `generate` and `verify` give: e.g. 2 for a blank name, 53 for a
    /// control character, 28 for a currency other than 116 or 840.
    Field(crate::Error),
    /// A caller's logo is not a decodable PNG, or is too large.
    Image(String),
    /// An embedded font did not parse (not expected: they are fixed at build time).
    Font(String),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::TooLong { bytes } => {
                write!(f, "payload of {bytes} bytes does not fit in a QR symbol at this error-correction level")
            }
            RenderError::InvalidOption(what) => write!(f, "invalid option: {what}"),
            RenderError::Png(e) => write!(f, "PNG encoding failed: {e}"),
            RenderError::Decode(e) => write!(f, "not a KHQR payload: {e}"),
            RenderError::Field(e) => write!(f, "cannot draw the card: {e}"),
            RenderError::Image(e) => write!(f, "logo image: {e}"),
            RenderError::Font(e) => write!(f, "embedded font: {e}"),
        }
    }
}

impl std::error::Error for RenderError {}

/// A QR symbol: a square of dark and light modules, without quiet zone.
#[derive(Clone, PartialEq, Eq)]
pub struct QrMatrix {
    size: usize,
    dark: Vec<bool>,
}

impl QrMatrix {
    /// Encodes `payload`'s UTF-8 bytes at level `ecc` in the fewest bits:
    /// numeric, alphanumeric and byte segments split optimally, never Kanji,
    /// with an ECI 26 (UTF-8) designator first when the payload is not all
    /// ASCII (module docs). Chooses the smallest version that holds it and the
    /// mask with the lowest penalty (ISO/IEC 18004 §7.8.3).
    ///
    /// # Errors
    /// [`RenderError::TooLong`] if no version holds the payload.
    pub fn encode(payload: &str, ecc: Ecc) -> Result<Self, RenderError> {
        let (size, dark) = segment::encode(payload, ecc)?;
        Ok(QrMatrix { size, dark })
    }

    /// Width and height in modules (21 for version 1, up to 177).
    #[must_use]
    pub const fn size(&self) -> usize {
        self.size
    }

    /// Whether the module at column `x`, row `y` is dark; light outside the symbol.
    #[must_use]
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.dark.get(y * self.size + x).copied().unwrap_or(false)
    }
}

impl fmt::Debug for QrMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrMatrix")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The largest side, in pixels, of a plain QR image: 8 192 (a 1-bit PNG of
/// that size needs 8 MiB of pixels, an RGB one 192 MiB).
pub const MAX_SIDE_PX: usize = 8192;

/// Checks the ranges of [`QrOptions`] shared by the PNG and SVG renderers.
pub(crate) fn check_options(options: &QrOptions) -> Result<(), RenderError> {
    if !(1..=100).contains(&options.module_px) {
        return Err(RenderError::InvalidOption(
            "module_px must be 1 to 100 pixels",
        ));
    }
    if options.quiet_zone > 100 {
        return Err(RenderError::InvalidOption(
            "quiet_zone must be at most 100 modules",
        ));
    }
    Ok(())
}

/// The image side in pixels, refused before anything is allocated when it is
/// over [`MAX_SIDE_PX`].
fn image_side(m: &QrMatrix, module_px: usize, quiet_zone: usize) -> Result<usize, RenderError> {
    if module_px == 0 {
        return Err(RenderError::InvalidOption("module_px must be at least 1"));
    }
    quiet_zone
        .checked_mul(2)
        .and_then(|q| q.checked_add(m.size))
        .and_then(|n| n.checked_mul(module_px))
        .filter(|&side| side <= MAX_SIDE_PX)
        .ok_or(RenderError::InvalidOption(
            "the image would be over 8192 pixels square: lower module_px or quiet_zone",
        ))
}

/// Writes `pixels` (rows of `side` pixels, packed as `color`/`depth` say) as a
/// PNG: unfiltered, fast deflate.
fn encode_png(
    pixels: &[u8],
    side: usize,
    color: png::ColorType,
    depth: png::BitDepth,
) -> Result<Vec<u8>, RenderError> {
    let side32 = u32::try_from(side).map_err(|_| RenderError::InvalidOption("image too large"))?;
    let mut out = Vec::with_capacity(pixels.len() / 8 + 128);
    {
        let mut enc = png::Encoder::new(&mut out, side32, side32);
        enc.set_color(color);
        enc.set_depth(depth);
        enc.set_filter(png::Filter::NoFilter);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc
            .write_header()
            .map_err(|e| RenderError::Png(e.to_string()))?;
        w.write_image_data(pixels)
            .map_err(|e| RenderError::Png(e.to_string()))?;
        w.finish().map_err(|e| RenderError::Png(e.to_string()))?;
    }
    Ok(out)
}

/// Draws `payload` as a QR code PNG, `(size + 2 × quiet_zone) × module_px`
/// pixels square: 1-bit greyscale for the default black on white, 8-bit RGB
/// when [`QrOptions::dark`] or [`QrOptions::light`] is another colour.
///
/// # Errors
/// [`RenderError::TooLong`] when the payload does not fit a QR symbol;
/// [`RenderError::InvalidOption`] when `module_px` is not 1–100, `quiet_zone`
/// is over 100, or the image would be over [`MAX_SIDE_PX`] pixels square.
pub fn qr_png(payload: &str, options: &QrOptions) -> Result<Vec<u8>, RenderError> {
    check_options(options)?;
    let m = QrMatrix::encode(payload, options.ecc)?;
    if options.dark != [0, 0, 0] || options.light != [255, 255, 255] {
        return matrix_png_rgb(&m, options);
    }
    matrix_png(&m, options.module_px as usize, options.quiet_zone as usize)
}

/// The coloured variant of [`matrix_png`]: 8-bit RGB.
fn matrix_png_rgb(m: &QrMatrix, options: &QrOptions) -> Result<Vec<u8>, RenderError> {
    let (px, qz) = (options.module_px as usize, options.quiet_zone as usize);
    let side = image_side(m, px, qz)?;
    let mut pixels = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            let dark = (x / px).checked_sub(qz).zip((y / px).checked_sub(qz));
            let dark = dark.is_some_and(|(mx, my)| m.is_dark(mx, my));
            pixels.extend_from_slice(if dark { &options.dark } else { &options.light });
        }
    }
    encode_png(&pixels, side, png::ColorType::Rgb, png::BitDepth::Eight)
}

/// Draws an encoded matrix as a 1-bit PNG with the given scale (pixels per
/// module) and quiet zone (modules).
///
/// # Errors
/// [`RenderError::InvalidOption`] for a `module_px` of 0 or an image over
/// [`MAX_SIDE_PX`] pixels square; [`RenderError::Png`] if the encoder fails.
pub fn matrix_png(
    m: &QrMatrix,
    module_px: usize,
    quiet_zone: usize,
) -> Result<Vec<u8>, RenderError> {
    let side = image_side(m, module_px, quiet_zone)?;
    let stride = side.div_ceil(8);
    // White (1 bits) everywhere, then clear the dark modules' bits.
    let mut pixels = vec![0xFFu8; stride * side];
    let mut row = vec![0xFFu8; stride];
    for y in 0..m.size {
        row.fill(0xFF);
        for x in 0..m.size {
            if m.is_dark(x, y) {
                let px0 = (x + quiet_zone) * module_px;
                for px in px0..px0 + module_px {
                    row[px / 8] &= !(0x80 >> (px % 8));
                }
            }
        }
        let py0 = (y + quiet_zone) * module_px;
        for py in py0..py0 + module_px {
            pixels[py * stride..(py + 1) * stride].copy_from_slice(&row);
        }
    }
    // Bits past the right edge of each row stay set; PNG ignores them.
    encode_png(&pixels, side, png::ColorType::Grayscale, png::BitDepth::One)
}
