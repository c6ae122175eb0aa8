//! The KHQR card ("stand"): the branded, print-ready PNG merchants show on a
//! screen or print, made from the payload string alone.
//!
//! Geometry, with `W × H` the card in pixels (`300·scale × 435·scale`, 20:29
//! portrait) — every box is reported by [`card_layout`]:
//!
//! * white card, corners rounded with radius `0.045·H`, transparent outside;
//! * red header (`#E1232E`) `0.12·H` tall with the "KHQR" wordmark (our own
//!   vector letterforms, cap height `0.039·H`) or the caller's logo, centred;
//!   a red dog-ear triangle below it at the right edge;
//! * merchant name (tag 59; regular, `0.03·H` per em, shrunk to `0.022·H`, then
//!   cut with "…" at a cluster boundary) and, for a dynamic QR only, the amount
//!   (tag 54; bold, `0.065·H`) and currency code (tag 53; `0.03·H`),
//!   left-aligned at `0.08·H`;
//! * a light grey dashed separator (dash 6, gap 4, 1 pixel thick, times scale);
//! * the QR at [`CardOptions::ecc`] (default M), its 4-module quiet zone included, as
//!   wide as fits in 92% of `W` at a whole number of pixels per module (never resampled;
//!   85–92% of `W` at scale 2),
//!   centred in the space below the separator, with a centre badge about 18% of
//!   the symbol's width.
//!
//! ```
//! use bakong_khqr::render::{card_layout, card_png, CardOptions};
//! use bakong_khqr::{Currency, Request};
//!
//! let khqr = Request::individual("jonhsmith@nbcq", "Jonh Smith")
//!     .currency(Currency::Usd)
//!     .amount("1234.5")
//!     .expires_in_ms(600_000)
//!     .generate(1_700_000_000_000)?;
//! let options = CardOptions::default().scale(1);
//! let layout = card_layout(khqr.as_str(), &options)?;
//! assert_eq!((layout.width, layout.height), (300, 435));
//! assert_eq!(layout.amount_text.as_deref(), Some("1,234.50"));
//! let png = card_png(khqr.as_str(), &options)?;
//! assert_eq!(&png[1..4], b"PNG");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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

use tiny_skia::{
    FillRule, FilterQuality, IntSize, Mask, Paint, Path, PathBuilder, Pixmap, PixmapPaint, Rect,
    Transform,
};

use super::marks;
use super::symbol::Anatomy;
use super::text::{self, Fonts, Line, Weight};
use super::{Ecc, QrMatrix, RenderError};
use crate::payload::{check_chars_reading, check_not_blank};
use crate::{Currency, Decoded, Error, ErrorCode, Field};

#[path = "card_svg.rs"]
mod card_svg;
pub use card_svg::card_svg;

/// Card width at scale 1, pixels.
pub const CARD_WIDTH_1X: u32 = 300;
/// Card height at scale 1, pixels (20:29 with the width).
pub const CARD_HEIGHT_1X: u32 = 435;
/// The largest accepted scale (3000 × 4350 pixels).
pub const MAX_SCALE: u32 = 10;
/// Header red, `#E1232E`.
pub const KHQR_RED: [u8; 3] = [0xE1, 0x23, 0x2E];

const TEXT: [u8; 3] = [0x14, 0x14, 0x14];
const SEPARATOR: [u8; 3] = [0xC8, 0xC8, 0xC8];
const BADGE_DARK: [u8; 3] = [0x1C, 0x1C, 0x1C];
/// Largest side accepted for a caller's logo PNG, pixels.
const MAX_LOGO_SIDE: u32 = 4096;

/// What sits in the middle of the QR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CentreIcon {
    /// A round dark badge with the currency sign in white: `$` for USD, `៛`
    /// (U+17DB KHMER CURRENCY SYMBOL RIEL) for KHR.
    #[default]
    Currency,
    /// A red (`#E1232E`) badge with the currency sign in white.
    BakongRed,
    /// Nothing: the QR is drawn whole.
    None,
    /// The caller's PNG (any colour type, at most 4096 pixels a side), scaled to
    /// fit the badge's square, aspect kept, on a white backing.
    Custom(Vec<u8>),
}

/// How to draw the card.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CardOptions {
    /// Size multiplier, 1–10: scale 1 is 300 × 435 pixels, 2 (the default)
    /// 600 × 870, 4 is 1200 × 1740 (about A6 at 300 dpi).
    pub scale: u32,
    /// Error-correction level; default M (about 15% recoverable). The centre
    /// badge is sized for the level actually used: it covers at most half the
    /// correction capacity of the symbol's weakest Reed–Solomon block (ISO/IEC
    /// 18004 Table 9), so at L the badge is smaller. H makes the symbol larger
    /// and its modules smaller at the same printed size, which scanned worse
    /// under blur and tilt in our measurements (docs/card.md, "Why the card scans").
    pub ecc: Ecc,
    /// The centre icon; default [`CentreIcon::Currency`].
    pub centre_icon: CentreIcon,
    /// A PNG drawn in the header instead of the "KHQR" wordmark, scaled to fit
    /// 60% of the header's height and 70% of the card's width, aspect kept.
    pub header_logo: Option<Vec<u8>>,
}

impl Default for CardOptions {
    fn default() -> Self {
        CardOptions {
            scale: 2,
            ecc: Ecc::M,
            centre_icon: CentreIcon::Currency,
            header_logo: None,
        }
    }
}

impl CardOptions {
    /// Sets the scale (1–10; checked when drawing).
    #[must_use]
    pub fn scale(mut self, scale: u32) -> Self {
        self.scale = scale;
        self
    }

    /// Sets the error-correction level.
    #[must_use]
    pub fn ecc(mut self, ecc: Ecc) -> Self {
        self.ecc = ecc;
        self
    }

    /// Sets the centre icon.
    #[must_use]
    pub fn centre_icon(mut self, icon: CentreIcon) -> Self {
        self.centre_icon = icon;
        self
    }

    /// Sets a PNG logo for the header (replaces the wordmark).
    #[must_use]
    pub fn header_logo(mut self, png: impl Into<Vec<u8>>) -> Self {
        self.header_logo = Some(png.into());
        self
    }
}

/// An axis-aligned box in card pixels: `x`, `y` of the top left corner, y down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PxRect {
    /// Left edge, pixels from the card's left.
    pub x: u32,
    /// Top edge, pixels from the card's top.
    pub y: u32,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
}

impl PxRect {
    /// One past the right edge, pixels.
    #[must_use]
    pub const fn right(&self) -> u32 {
        self.x + self.width
    }

    /// One past the bottom edge, pixels.
    #[must_use]
    pub const fn bottom(&self) -> u32 {
        self.y + self.height
    }

    /// Whether the two boxes share at least one pixel.
    #[must_use]
    pub const fn intersects(&self, other: &PxRect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }

    /// Whether pixel `(x, y)` is inside.
    #[must_use]
    pub const fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && x < self.right() && y >= self.y && y < self.bottom()
    }
}

/// Where everything on a card goes, in pixels; what [`card_png`] draws.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CardLayout {
    /// Card width, pixels (`300 × scale`).
    pub width: u32,
    /// Card height, pixels (`435 × scale`).
    pub height: u32,
    /// Corner radius, pixels (`0.045 × height`).
    pub corner_radius: f32,
    /// The red header band (full width).
    pub header: PxRect,
    /// The box of the wordmark or the caller's header logo.
    pub header_mark: PxRect,
    /// Ink box of the merchant name (every pixel the text can touch).
    pub name: PxRect,
    /// The name as drawn: tag 59, possibly cut and ending in "…".
    pub name_text: String,
    /// Font size of the name, pixels per em.
    pub name_px: f32,
    /// Whether the name was cut to fit.
    pub name_truncated: bool,
    /// Ink box of the amount digits; `None` for a static QR (no tag 54, or zero).
    pub amount: Option<PxRect>,
    /// The amount as drawn, grouped: `1,234.56` (USD, two decimals), `1,250,000` (KHR).
    pub amount_text: Option<String>,
    /// Font size of the amount, pixels per em.
    pub amount_px: Option<f32>,
    /// Ink box of the currency code after the amount; `None` for a static QR.
    pub currency: Option<PxRect>,
    /// The currency code: `USD` or `KHR`.
    pub currency_code: &'static str,
    /// The dashed separator line (full width, `scale` pixels thick).
    pub separator: PxRect,
    /// The QR with its 4-module quiet zone: `(modules + 8) × module_px` square.
    pub qr: PxRect,
    /// Modules per side of the symbol, without quiet zone (21–177).
    pub modules: u32,
    /// Pixels per module, a whole number.
    pub module_px: u32,
    /// The centre badge's square (its white backing extends a module beyond);
    /// `None` with [`CentreIcon::None`].
    pub icon: Option<PxRect>,
}

/// Everything needed to draw, computed once.
struct Plan {
    layout: CardLayout,
    matrix: QrMatrix,
    currency: Currency,
    name: Line,
    name_origin: (f32, f32),
    amount: Option<AmountPlan>,
    /// The badge's square in modules of the symbol: first column/row, side.
    badge: Option<(usize, usize)>,
    /// The function-pattern modules inside the badge's square, `(x, y)`.
    badge_functions: Vec<(usize, usize)>,
}

/// The amount and currency code lines with their pen origins `(x, baseline)`.
struct AmountPlan {
    amount: Line,
    amount_at: (f32, f32),
    code: Line,
    code_at: (f32, f32),
}

/// Formats tag 54 for reading through [`Amount::grouped`](crate::Amount::grouped),
/// the one place that formats money: USD with two decimals (`1234.5` →
/// `1,234.50`), KHR whole (`1250000` → `1,250,000`; non-zero decimals kept).
/// `None` for zero.
///
/// # Errors
/// [`RenderError::Field`] with the core's error: code 4
/// ([`ErrorCode::TransactionAmountInvalid`]), field
/// [`Field::TransactionAmount`], for text that is not plain decimal or is over
/// 13 characters.
fn format_amount(raw: &str, currency: Currency) -> Result<Option<String>, RenderError> {
    crate::Amount::grouped(raw, currency).map_err(RenderError::Field)
}

/// The merchant name (tag 59) as the card shows it: the payload's value with
/// surrounding white space trimmed (the text starts at the margin).
///
/// Checked by the core's rules for a merchant name, in the core's order:
/// * absent: code 2 ([`ErrorCode::MerchantNameRequired`]), as `verify`;
/// * blank — nothing but white space and invisible format characters (a
///   zero-width space, joiners, a byte-order mark): code 2, by
///   `payload::check_not_blank`, the rule `generate` and `verify` apply;
/// * a control character: code 53 ([`ErrorCode::InvalidCharacter`]), by
///   `payload::check_chars_reading`, the rule `verify` applies when reading:
///   text outside the Basic Multilingual Plane (an emoji) is accepted, as bank
///   apps print it.
///
/// Not checked: the 25-character limit (a longer name is shrunk, then cut
/// with "…").
fn merchant_name<'a>(decoded: &Decoded<'a>) -> Result<&'a str, RenderError> {
    let field = Field::MerchantName;
    let name = decoded
        .merchant_name()
        .ok_or(RenderError::Field(Error::missing(
            ErrorCode::MerchantNameRequired,
            field,
        )))?;
    check_not_blank(name, ErrorCode::MerchantNameRequired, field).map_err(RenderError::Field)?;
    check_chars_reading(name, field).map_err(RenderError::Field)?;
    Ok(name.trim())
}

/// The transaction currency (tag 53): `116` (KHR) or `840` (USD) exactly.
///
/// # Errors
/// [`RenderError::Field`], field [`Field::TransactionCurrency`], as `verify`:
/// code 9 ([`ErrorCode::CurrencyTypeRequired`]) when absent, 19
/// ([`ErrorCode::TransactionCurrencyLengthInvalid`]) when over 3 characters
/// (the field table's limit), 28 ([`ErrorCode::UnsupportedCurrency`]) for any
/// other value.
fn currency_of(decoded: &Decoded<'_>) -> Result<Currency, RenderError> {
    let field = Field::TransactionCurrency;
    let raw = decoded
        .transaction_currency()
        .ok_or(RenderError::Field(Error::missing(
            ErrorCode::CurrencyTypeRequired,
            field,
        )))?;
    Currency::of_tag_value(raw).map_err(RenderError::Field)
}

/// What the card shows of the payload, checked.
struct Shown<'a> {
    /// Tag 59, trimmed ([`merchant_name`]).
    name: &'a str,
    /// Tag 53.
    currency: Currency,
    /// Tag 54 grouped for reading ([`format_amount`]); `None` for no amount or zero.
    amount_text: Option<String>,
}

impl<'a> Shown<'a> {
    /// Reads and checks the three fields, name first, then currency, then amount.
    fn read(decoded: &Decoded<'a>) -> Result<Self, RenderError> {
        let name = merchant_name(decoded)?;
        let currency = currency_of(decoded)?;
        let amount_text = match decoded.transaction_amount() {
            Some(raw) => format_amount(raw, currency)?,
            None => None,
        };
        Ok(Shown {
            name,
            currency,
            amount_text,
        })
    }
}

/// Ink box of `line` drawn with its pen at `(x, baseline)`; empty at the pen for no ink.
fn ink_rect(fonts: &Fonts, line: &Line, x: f32, baseline: f32) -> PxRect {
    let (ox, oy) = (x.round() as i32, baseline.round() as i32);
    let (l, t, r, b) = line.ink(fonts).unwrap_or((0, 0, 0, 0));
    let x0 = (ox + l).max(0);
    let y0 = (oy + t).max(0);
    PxRect {
        x: x0.unsigned_abs(),
        y: y0.unsigned_abs(),
        width: (ox + r - x0).max(0).unsigned_abs(),
        height: (oy + b - y0).max(0).unsigned_abs(),
    }
}

fn check_options(options: &CardOptions) -> Result<(), RenderError> {
    if !(1..=MAX_SCALE).contains(&options.scale) {
        return Err(RenderError::InvalidOption("scale must be 1 to 10"));
    }
    Ok(())
}

/// The card's size and the fixed lines of its layout, pixels (module docs).
struct Frame {
    /// Card width and height.
    w: u32,
    h: u32,
    /// The same as floats.
    wf: f32,
    hf: f32,
    /// Header height, `0.12·H` rounded.
    header_h: f32,
    /// Left margin of the text, `0.08·H` rounded.
    margin: f32,
    /// Widest text line: the width less both margins.
    max_text: i32,
    /// Top of the separator, `0.325·H` rounded.
    separator_y: f32,
    /// Separator thickness: the scale, at least 1.
    thickness: f32,
}

impl Frame {
    fn new(scale: u32) -> Frame {
        let (w, h) = (CARD_WIDTH_1X * scale, CARD_HEIGHT_1X * scale);
        let (wf, hf) = (w as f32, h as f32);
        let margin = (0.08 * hf).round();
        Frame {
            w,
            h,
            wf,
            hf,
            header_h: (0.12 * hf).round(),
            margin,
            max_text: (wf - 2.0 * margin) as i32,
            separator_y: (0.325 * hf).round(),
            thickness: (scale as f32).round().max(1.0),
        }
    }
}

/// The box of the header's mark: the caller's logo fitted into 70% of the
/// width and 60% of the header, or the wordmark at cap height `0.039·H`; centred.
///
/// # Errors
/// [`RenderError::Image`] when the logo is not a PNG or is too large.
fn header_mark(options: &CardOptions, f: &Frame) -> Result<PxRect, RenderError> {
    if let Some(logo) = &options.header_logo {
        let img = decode_png(logo)?;
        return Ok(fit_box(
            img.width() as f32,
            img.height() as f32,
            0.7 * f.wf,
            0.6 * f.header_h,
            f.wf / 2.0,
            f.header_h / 2.0,
        ));
    }
    let cap = (0.039 * f.hf).round();
    let mw = marks::wordmark_width() * cap;
    Ok(PxRect {
        x: ((f.wf - mw) / 2.0).round() as u32,
        y: ((f.header_h - cap) / 2.0).round() as u32,
        width: mw.round() as u32,
        height: cap as u32,
    })
}

/// The merchant name's line as placed.
struct NamePlan {
    line: Line,
    /// Pen origin `(x, baseline)`.
    at: (f32, f32),
    /// Ink box.
    ink: PxRect,
    /// The text drawn ([`text_of`]).
    text: String,
    truncated: bool,
}

/// Fits the name (regular, `0.03·H`, shrunk to `0.022·H`, then cut) at the
/// left margin: below the header when an amount follows, else centred between
/// the header and the separator.
fn place_name(fonts: &Fonts, name: &str, with_amount: bool, f: &Frame) -> NamePlan {
    let fit = text::fit(
        fonts,
        name,
        Weight::Regular,
        0.03 * f.hf,
        0.022 * f.hf,
        f.max_text,
    );
    let text = text_of(name, &fit);
    let line = fit.line;
    let baseline = if with_amount {
        f.header_h + 0.078 * f.hf
    } else {
        (f32::midpoint(f.header_h, f.separator_y) + 0.3 * line.px).round()
    };
    let (nl, _) = line.extent(fonts);
    let x = f.margin - nl as f32;
    NamePlan {
        ink: ink_rect(fonts, &line, x, baseline),
        line,
        at: (x, baseline),
        text,
        truncated: fit.truncated,
    }
}

/// Places the amount (bold, `0.065·H`) and the currency code after it
/// (regular, `0.03·H`) on `baseline` from the left margin, shrunk together by
/// 5% steps (the code no further than 70%) until both fit; never cut.
///
/// # Errors
/// [`RenderError::Field`] (code 4, [`Field::TransactionAmount`]) if 60 steps
/// do not make it fit (not expected: 13 characters fit long before).
fn place_amount(
    fonts: &Fonts,
    amount: &str,
    code: &str,
    baseline: f32,
    f: &Frame,
) -> Result<AmountPlan, RenderError> {
    let mut k = 1.0f32;
    for _ in 0..60 {
        let a = text::shape(fonts, amount, Weight::Bold, 0.065 * f.hf * k);
        let c = text::shape(fonts, code, Weight::Regular, 0.03 * f.hf * k.max(0.7));
        let (al, ar) = a.extent(fonts);
        let (cl, cr) = c.extent(fonts);
        let gap = 0.3 * c.px;
        let total = (ar - al) as f32 + gap + (cr - cl) as f32;
        if total <= f.max_text as f32 {
            let ax = f.margin - al as f32;
            let cx = (f.margin + (ar - al) as f32 + gap - cl as f32).round();
            return Ok(AmountPlan {
                amount: a,
                amount_at: (ax, baseline),
                code: c,
                code_at: (cx, baseline),
            });
        }
        k *= 0.95;
    }
    Err(RenderError::Field(Error::reason(
        ErrorCode::TransactionAmountInvalid,
        Field::TransactionAmount,
        "does not fit the card",
    )))
}

/// The QR's box, quiet zone included, and its pixels per module: the most
/// whole pixels per module that keep it within [`QR_SHARE`] of the width and
/// the space below the separator (less `0.02·H`), centred in that space.
///
/// # Errors
/// [`RenderError::TooLong`] (`bytes`: `payload_len`) when even one pixel per
/// module does not fit.
fn place_qr(
    matrix: &QrMatrix,
    f: &Frame,
    payload_len: usize,
) -> Result<(PxRect, u32), RenderError> {
    let total = matrix.size() as u32 + 8;
    let top = f.separator_y + f.thickness;
    let avail_h = f.hf - top - 0.02 * f.hf;
    let max_side = (QR_SHARE * f.wf).min(avail_h);
    let module_px = ((max_side / total as f32).floor() as u32).max(1);
    let side = module_px * total;
    if side as f32 > max_side.max(f.wf.min(avail_h)) {
        return Err(RenderError::TooLong { bytes: payload_len });
    }
    let qr = PxRect {
        x: (f.w - side) / 2,
        y: (top + ((f.hf - top - side as f32) / 2.0).floor()) as u32,
        width: side,
        height: side,
    };
    Ok((qr, module_px))
}

/// The centre badge: its square in modules ([`badge_square`]), the function
/// modules inside it (drawn back over it), and its box in card pixels. All
/// empty with [`CentreIcon::None`] or when no square fits the budget.
struct BadgePlan {
    square: Option<(usize, usize)>,
    functions: Vec<(usize, usize)>,
    icon: Option<PxRect>,
}

fn place_badge(matrix: &QrMatrix, options: &CardOptions, qr: PxRect, module_px: u32) -> BadgePlan {
    let square = if options.centre_icon == CentreIcon::None {
        None
    } else {
        badge_square(matrix, options.ecc)
    };
    let functions = match (square, Anatomy::new(matrix.size(), options.ecc)) {
        (Some((lo, k)), Some(a)) => (lo..lo + k)
            .flat_map(|y| (lo..lo + k).map(move |x| (x, y)))
            .filter(|&(x, y)| a.is_function(x, y))
            .collect(),
        _ => Vec::new(),
    };
    let icon = square.map(|(lo, k)| PxRect {
        x: qr.x + (4 + lo as u32) * module_px,
        y: qr.y + (4 + lo as u32) * module_px,
        width: k as u32 * module_px,
        height: k as u32 * module_px,
    });
    BadgePlan {
        square,
        functions,
        icon,
    }
}

/// Checks the payload's fields and the options, then places everything.
/// Errors come in this order: options, decode, name, currency, amount, QR
/// encode, fonts, header logo, amount fit, QR size.
fn plan(payload: &str, options: &CardOptions) -> Result<Plan, RenderError> {
    check_options(options)?;
    let decoded = Decoded::parse(payload).map_err(RenderError::Decode)?;
    let shown = Shown::read(&decoded)?;
    let matrix = QrMatrix::encode(payload, options.ecc)?;
    let fonts = text::fonts()?;
    let f = Frame::new(options.scale);

    let header_mark = header_mark(options, &f)?;
    let name = place_name(fonts, shown.name, shown.amount_text.is_some(), &f);
    let currency_code = shown.currency.alpha();
    let amount = match &shown.amount_text {
        Some(t) => Some(place_amount(
            fonts,
            t,
            currency_code,
            name.at.1 + 0.088 * f.hf,
            &f,
        )?),
        None => None,
    };
    let ink = |line: &Line, (x, baseline): (f32, f32)| ink_rect(fonts, line, x, baseline);
    let (qr, module_px) = place_qr(&matrix, &f, payload.len())?;
    let badge = place_badge(&matrix, options, qr, module_px);

    let layout = CardLayout {
        width: f.w,
        height: f.h,
        corner_radius: 0.045 * f.hf,
        header: PxRect {
            x: 0,
            y: 0,
            width: f.w,
            height: f.header_h as u32,
        },
        header_mark,
        name: name.ink,
        name_text: name.text,
        name_px: name.line.px,
        name_truncated: name.truncated,
        amount: amount.as_ref().map(|a| ink(&a.amount, a.amount_at)),
        amount_text: shown.amount_text,
        amount_px: amount.as_ref().map(|a| a.amount.px),
        currency: amount.as_ref().map(|a| ink(&a.code, a.code_at)),
        currency_code,
        separator: PxRect {
            x: 0,
            y: f.separator_y as u32,
            width: f.w,
            height: f.thickness as u32,
        },
        qr,
        modules: matrix.size() as u32,
        module_px,
        icon: badge.icon,
    };
    Ok(Plan {
        layout,
        matrix,
        currency: shown.currency,
        name: name.line,
        name_origin: name.at,
        amount,
        badge: badge.square,
        badge_functions: badge.functions,
    })
}

/// The most of the card's width the QR may take, quiet zone included. Larger
/// modules read better under blur and tilt; measured with
/// `benches/scan_report.rs` (docs/card.md, "Why the card scans").
const QR_SHARE: f32 = 0.92;

/// The badge's target side, as a share of the symbol's side (modules).
const BADGE_SHARE: f32 = 0.16;
/// The share of the worst block's correction capacity the badge may use:
/// codewords of any one Reed–Solomon block it touches ≤ capacity × NUM / DEN.
const BUDGET_NUM: usize = 1;
const BUDGET_DEN: usize = 2;

/// The centre square, in whole modules (odd side, centred on the middle
/// module), that the badge clears: the largest with a side of at most
/// [`BADGE_SHARE`] of the symbol whose data modules touch no more codewords of
/// any one block than the budget allows. Function-pattern modules inside it
/// are drawn back over the badge, so they are not counted. `None` when not
/// even a 3-module square fits the budget.
fn badge_square(m: &QrMatrix, ecc: Ecc) -> Option<(usize, usize)> {
    let n = m.size();
    let anatomy = Anatomy::new(n, ecc)?;
    let budget = anatomy.capacity() * BUDGET_NUM / BUDGET_DEN;
    let mut k = ((n as f32 * BADGE_SHARE).round() as usize) | 1;
    while k >= 3 {
        let lo = (n - k) / 2;
        let inside = |x: usize, y: usize| (lo..lo + k).contains(&x) && (lo..lo + k).contains(&y);
        if anatomy.worst_block_damage(inside) <= budget {
            return Some((lo, k));
        }
        k -= 2;
    }
    None
}

/// The text a fitted line shows (the cut prefix plus "…" when truncated).
fn text_of(raw: &str, fit: &text::Fitted) -> String {
    if !fit.truncated {
        return raw.to_owned();
    }
    let end = fit.line.glyphs.iter().map(|g| g.cluster).max().unwrap_or(0);
    // The last glyph is the ellipsis: the text before it is a prefix of `raw`.
    let mut s = raw.get(..end).unwrap_or_default().trim_end().to_owned();
    s.push('…');
    s
}

/// A box of aspect `iw:ih` fitted into `max_w × max_h`, centred on `(cx, cy)`.
fn fit_box(iw: f32, ih: f32, max_w: f32, max_h: f32, cx: f32, cy: f32) -> PxRect {
    let k = (max_w / iw.max(1.0)).min(max_h / ih.max(1.0));
    let (bw, bh) = ((iw * k).round().max(1.0), (ih * k).round().max(1.0));
    PxRect {
        x: (cx - bw / 2.0).round().max(0.0) as u32,
        y: (cy - bh / 2.0).round().max(0.0) as u32,
        width: bw as u32,
        height: bh as u32,
    }
}

/// Lays out the card for `payload` without drawing it: the boxes [`card_png`]
/// fills, in pixels.
///
/// # Errors
/// As [`card_png`].
pub fn card_layout(payload: &str, options: &CardOptions) -> Result<CardLayout, RenderError> {
    plan(payload, options).map(|p| p.layout)
}

fn paint(rgb: [u8; 3]) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(rgb[0], rgb[1], rgb[2], 255);
    p.anti_alias = true;
    p
}

/// A rounded rectangle `w × h` at the origin with corner radius `r`.
fn rounded_rect(w: f32, h: f32, r: f32) -> Option<Path> {
    const K: f32 = 0.552_284_8;
    let r = r.min(w / 2.0).min(h / 2.0);
    let k = r * K;
    let mut pb = PathBuilder::new();
    pb.move_to(r, 0.0);
    pb.line_to(w - r, 0.0);
    pb.cubic_to(w - r + k, 0.0, w, r - k, w, r);
    pb.line_to(w, h - r);
    pb.cubic_to(w, h - r + k, w - r + k, h, w - r, h);
    pb.line_to(r, h);
    pb.cubic_to(r - k, h, 0.0, h - r + k, 0.0, h - r);
    pb.line_to(0.0, r);
    pb.cubic_to(0.0, r - k, r - k, 0.0, r, 0.0);
    pb.close();
    pb.finish()
}

/// Decodes a PNG into a premultiplied pixmap with tiny-skia's `png-format`
/// decoder (the png crate, with its default memory limits), then refuses
/// logos over [`MAX_LOGO_SIDE`] pixels a side.
fn decode_png(bytes: &[u8]) -> Result<Pixmap, RenderError> {
    let img = Pixmap::decode_png(bytes).map_err(|e| RenderError::Image(e.to_string()))?;
    let (w, h) = (img.width(), img.height());
    if w > MAX_LOGO_SIDE || h > MAX_LOGO_SIDE {
        return Err(RenderError::Image(format!(
            "logo of {w}×{h} pixels is larger than {MAX_LOGO_SIDE} a side"
        )));
    }
    Ok(img)
}

/// Draws `img` scaled into `dest` (bicubic: it is a logo, not the QR).
fn draw_image(canvas: &mut Pixmap, img: &Pixmap, dest: PxRect) {
    let sx = dest.width as f32 / img.width() as f32;
    let sy = dest.height as f32 / img.height() as f32;
    let paint = PixmapPaint {
        quality: FilterQuality::Bicubic,
        ..PixmapPaint::default()
    };
    let t = Transform::from_row(sx, 0.0, 0.0, sy, dest.x as f32, dest.y as f32);
    canvas.draw_pixmap(0, 0, img.as_ref(), &paint, t, None);
}

/// Fills `area` with opaque `rgb`, whole pixels written directly (no
/// anti-aliasing to do); the part outside the canvas is skipped.
fn fill_px(canvas: &mut Pixmap, area: PxRect, rgb: [u8; 3]) {
    let w = canvas.width() as usize;
    let (x0, x1) = (area.x as usize, (area.right() as usize).min(w));
    if x0 >= x1 {
        return;
    }
    let rows = area.y as usize..area.bottom() as usize;
    for row in canvas
        .data_mut()
        .chunks_exact_mut(w * 4)
        .skip(rows.start)
        .take(rows.len())
    {
        if let Some(span) = row.get_mut(x0 * 4..x1 * 4) {
            for px in span.chunks_exact_mut(4) {
                px.copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
            }
        }
    }
}

/// A clip mask for `area` when any of `inks` reaches outside it, else `None`
/// (the usual case: the layout keeps the text inside, and filling without a
/// mask skips a canvas-sized allocation).
fn clip_to(canvas: &Pixmap, area: PxRect, inks: &[PxRect]) -> Result<Option<Mask>, RenderError> {
    let inside = |b: &PxRect| {
        b.x >= area.x && b.y >= area.y && b.right() <= area.right() && b.bottom() <= area.bottom()
    };
    if inks.iter().all(inside) {
        return Ok(None);
    }
    let mut mask = Mask::new(canvas.width(), canvas.height())
        .ok_or(RenderError::InvalidOption("empty card"))?;
    if let Some(r) = Rect::from_xywh(
        area.x as f32,
        area.y as f32,
        area.width as f32,
        area.height as f32,
    ) {
        mask.fill_path(
            &PathBuilder::from_rect(r),
            FillRule::Winding,
            false,
            Transform::identity(),
        );
    }
    Ok(Some(mask))
}

fn draw_icon(
    canvas: &mut Pixmap,
    plan: &Plan,
    options: &CardOptions,
    fonts: &Fonts,
) -> Result<(), RenderError> {
    let (Some(b), Some(_)) = (plan.layout.icon, plan.badge) else {
        return Ok(());
    };
    let w = canvas.width() as usize;
    let mpx = plan.layout.module_px;
    // The badge's square, cleared to light in whole modules.
    fill_px(canvas, b, [255, 255, 255]);
    let cx = b.x as f32 + b.width as f32 / 2.0;
    let cy = b.y as f32 + b.height as f32 / 2.0;
    let r = b.width as f32 / 2.0 - 0.5 * mpx as f32;
    let (disc, sign_rgb) = match &options.centre_icon {
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
            draw_image(canvas, &img, dest);
            (None, None)
        }
        CentreIcon::BakongRed => (Some(KHQR_RED), Some([255, 255, 255])),
        CentreIcon::Currency => (Some(BADGE_DARK), Some([255, 255, 255])),
    };
    if let Some(d) = disc {
        marks::draw_disc(canvas, cx, cy, r, &paint(d));
    }
    if let Some(sign_rgb) = sign_rgb {
        if let Some((line, x, baseline)) = badge_sign(fonts, plan.currency, cx, cy, r) {
            let (x, baseline) = (x.round(), baseline.round());
            let clip = clip_to(canvas, b, &[ink_rect(fonts, &line, x, baseline)])?;
            line.fill(fonts, canvas, &paint(sign_rgb), x, baseline, clip.as_ref());
        }
    }
    // Function-pattern modules under the badge, drawn back on top.
    let m = &plan.matrix;
    let data = canvas.data_mut();
    for &at in &plan.badge_functions {
        let v = if m.is_dark(at.0, at.1) { 0 } else { 255 };
        fill_module(data, w * 4, plan.layout.qr, mpx as usize, at, v);
    }
    Ok(())
}

/// The currency sign of the centre badge, shaped bold so that its ink is about
/// 110% of the disc's radius `r` tall, with the pen position (x, baseline)
/// that centres its ink on (`cx`, `cy`); pixels, not rounded. `None` when the
/// sign has no ink in the font. Shared by the PNG and the SVG card.
fn badge_sign(
    fonts: &Fonts,
    currency: Currency,
    cx: f32,
    cy: f32,
    r: f32,
) -> Option<(text::Line, f32, f32)> {
    let sign = match currency {
        Currency::Usd => "$",
        Currency::Khr => "៛",
    };
    let (l, t, rr, bb) = text::shape(fonts, sign, Weight::Bold, 100.0).ink(fonts)?;
    let ink_h = (bb - t).max(1) as f32;
    let px = 100.0 * (1.1 * r) / ink_h;
    let line = text::shape(fonts, sign, Weight::Bold, px);
    let (l, t, rr, bb) = line.ink(fonts).unwrap_or((l, t, rr, bb));
    let x = cx - (l + rr) as f32 / 2.0;
    let baseline = cy - (t + bb) as f32 / 2.0;
    Some((line, x, baseline))
}

/// Draws the KHQR card for `payload` as a PNG of `300·scale × 435·scale`
/// pixels, transparent outside the rounded corners, with a pHYs chunk (75 dpi
/// per unit of scale). Identical input gives identical bytes.
///
/// The PNG is 8-bit indexed colour with a tRNS chunk when the card has at most
/// 256 colours (the usual case: about 110 at scale 2; lossless), else 8-bit
/// RGBA (a photographic logo). Decoders expand either to the same RGBA pixels.
/// About 14 KB at scale 2.
///
/// The payload is decoded with [`Decoded::parse`]; the card shows tag 59
/// (merchant name), tag 54 (amount; a static QR — no tag 54, or a zero amount —
/// shows none) and tag 53 (currency). The QR encodes `payload` exactly, in byte
/// mode, at `options.ecc` (default M).
///
/// # Errors
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
/// * [`RenderError::Font`], [`RenderError::Png`]: the embedded fonts or the PNG
///   encoder failed (not expected).
pub fn card_png(payload: &str, options: &CardOptions) -> Result<Vec<u8>, RenderError> {
    let plan = plan(payload, options)?;
    let fonts = text::fonts()?;
    let l = &plan.layout;
    let (w, h) = (l.width, l.height);
    // Opaque white (premultiplied white is all 255), written once.
    let size = IntSize::from_wh(w, h).ok_or(RenderError::InvalidOption("empty card"))?;
    let mut canvas = Pixmap::from_vec(vec![255; w as usize * h as usize * 4], size)
        .ok_or(RenderError::InvalidOption("empty card"))?;
    draw_header(&mut canvas, l, options)?;
    draw_text(&mut canvas, &plan, fonts)?;
    draw_separator(&mut canvas, l.separator, options.scale);
    draw_modules(&mut canvas, &plan);
    draw_icon(&mut canvas, &plan, options, fonts)?;
    // Transparent outside the rounded corners.
    cut_corners(&mut canvas, l.corner_radius)?;
    encode(&canvas, options.scale)
}

/// The red header, the dog-ear below it at the right edge (`0.055·H` a
/// side), and the wordmark in white or the caller's logo.
///
/// # Errors
/// [`RenderError::Image`] when the logo is not a PNG or is too large.
fn draw_header(
    canvas: &mut Pixmap,
    l: &CardLayout,
    options: &CardOptions,
) -> Result<(), RenderError> {
    let (wf, hf) = (l.width as f32, l.height as f32);
    let header_h = l.header.height as f32;
    fill_px(canvas, l.header, KHQR_RED);
    let ear = (0.055 * hf).round();
    let mut pb = PathBuilder::new();
    pb.move_to(wf - ear, header_h);
    pb.line_to(wf, header_h);
    pb.line_to(wf, header_h + ear);
    pb.close();
    if let Some(p) = pb.finish() {
        canvas.fill_path(
            &p,
            &paint(KHQR_RED),
            FillRule::Winding,
            Transform::identity(),
            None,
        );
    }
    if let Some(logo) = &options.header_logo {
        let img = decode_png(logo)?;
        draw_image(canvas, &img, l.header_mark);
    } else {
        marks::draw_wordmark(
            canvas,
            l.header_mark.x as f32,
            l.header_mark.y as f32,
            l.header_mark.height as f32,
            &paint([255, 255, 255]),
        );
    }
    Ok(())
}

/// The name, amount and currency code, clipped to the band between the
/// header and the separator when any ink would leave it.
fn draw_text(canvas: &mut Pixmap, plan: &Plan, fonts: &Fonts) -> Result<(), RenderError> {
    let l = &plan.layout;
    let band = PxRect {
        x: 0,
        y: l.header.bottom(),
        width: l.width,
        height: l.separator.y.saturating_sub(l.header.bottom()),
    };
    let inks: Vec<PxRect> = [Some(l.name), l.amount, l.currency]
        .into_iter()
        .flatten()
        .collect();
    let clip = clip_to(canvas, band, &inks)?;
    let ink = paint(TEXT);
    let mut lines = vec![(&plan.name, plan.name_origin)];
    if let Some(a) = &plan.amount {
        lines.extend([(&a.amount, a.amount_at), (&a.code, a.code_at)]);
    }
    for (line, (x, b)) in lines {
        line.fill(fonts, canvas, &ink, x.round(), b.round(), clip.as_ref());
    }
    Ok(())
}

/// The dashed separator in `area`: dash 6, gap 4 (× `scale`), whole pixels.
fn draw_separator(canvas: &mut Pixmap, area: PxRect, scale: u32) {
    let w = area.right();
    for x in (area.x..w).step_by(10 * scale as usize) {
        let dash = PxRect {
            x,
            width: (6 * scale).min(w - x),
            ..area
        };
        fill_px(canvas, dash, SEPARATOR);
    }
}

/// Fills module (`mx`, `my`) of the QR at `qr` (quiet zone included),
/// `mpx` pixels a side, with opaque grey level `v`; pixels outside the
/// canvas are skipped. `data` is the canvas, `stride` bytes a row.
fn fill_module(
    data: &mut [u8],
    stride: usize,
    qr: PxRect,
    mpx: usize,
    (mx, my): (usize, usize),
    v: u8,
) {
    let x0 = qr.x as usize + (mx + 4) * mpx;
    let y0 = qr.y as usize + (my + 4) * mpx;
    for y in y0..y0 + mpx {
        let start = y * stride + x0 * 4;
        if let Some(row) = data.get_mut(start..start + mpx * 4) {
            for px in row.chunks_exact_mut(4) {
                px.copy_from_slice(&[v, v, v, 255]);
            }
        }
    }
}

/// The QR's dark modules, written as whole pixels (no resampling, no
/// anti-aliasing) on the white canvas.
fn draw_modules(canvas: &mut Pixmap, plan: &Plan) {
    let l = &plan.layout;
    let m = &plan.matrix;
    let stride = canvas.width() as usize * 4;
    let mpx = l.module_px as usize;
    let data = canvas.data_mut();
    for my in 0..m.size() {
        for mx in 0..m.size() {
            if m.is_dark(mx, my) {
                fill_module(data, stride, l.qr, mpx, (mx, my), 0);
            }
        }
    }
}

/// Pixels per metre of a card at `scale`: 75 dpi per unit of scale, so that
/// every scale prints at the same size, 4 × 5.8 inches (101.6 × 147.3 mm,
/// about A6: 105 × 148 mm); scale 4 is 300 dpi.
fn pixels_per_metre(scale: u32) -> u32 {
    (f64::from(scale) * 75.0 / 0.0254).round() as u32
}

/// Makes the pixels outside the rounded rectangle of radius `radius`
/// transparent, anti-aliased: only the four corner squares are touched, their
/// coverage computed on two `width × ⌈radius⌉+1` masks (top and bottom).
///
/// Afterwards the canvas holds **straight** (not premultiplied) RGBA, ready for
/// the PNG: every other pixel is opaque (the card is drawn opaque on opaque
/// white), and a corner pixel keeps its colour with its alpha scaled by the
/// coverage; a fully transparent one becomes `0, 0, 0, 0`. Nothing may be
/// drawn on the canvas after this.
fn cut_corners(canvas: &mut Pixmap, radius: f32) -> Result<(), RenderError> {
    let (w, h) = (canvas.width(), canvas.height());
    let r = (radius.ceil() as u32 + 1).min(w / 2).min(h / 2);
    let Some(path) = rounded_rect(w as f32, h as f32, radius) else {
        return Ok(());
    };
    let data = canvas.data_mut();
    for top in [0, h - r] {
        let mut mask = Mask::new(w, r).ok_or(RenderError::InvalidOption("empty card"))?;
        mask.fill_path(
            &path,
            FillRule::Winding,
            true,
            Transform::from_translate(0.0, -(top as f32)),
        );
        let coverage = mask.data();
        for y in 0..r {
            for x in (0..r).chain(w - r..w) {
                let Some(&cov) = coverage.get((y * w + x) as usize) else {
                    continue;
                };
                if cov == 255 {
                    continue;
                }
                let i = ((top + y) * w + x) as usize * 4;
                if let Some(px) = data.get_mut(i..i + 4) {
                    if cov == 0 {
                        px.fill(0);
                    } else if let Some(a) = px.get_mut(3) {
                        *a = ((u16::from(*a) * u16::from(cov) + 127) / 255) as u8;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The pixels as indices into a palette of at most 256 RGBA colours, in order
/// of first appearance (so the same image gives the same palette); `None` when
/// the image has more colours (a photographic logo). `rgba` is straight RGBA,
/// `width` pixels a row.
///
/// A row equal to the one above reuses its indices, and a pixel equal to the
/// one before reuses its index, so only colour changes reach the hash table
/// (open addressing, 1024 slots, so at most a quarter full).
fn palette_of(rgba: &[u8], width: usize) -> Option<(Vec<[u8; 4]>, Vec<u8>)> {
    const SLOTS: usize = 1024;
    if width == 0 {
        return None;
    }
    let mut palette: Vec<[u8; 4]> = Vec::with_capacity(256);
    let mut table = [(0u32, u16::MAX); SLOTS];
    let mut indices = vec![0u8; rgba.len() / 4];
    let mut above: Option<&[u8]> = None;
    let mut rows = rgba
        .chunks_exact(width * 4)
        .zip(indices.chunks_exact_mut(width));
    let mut prev_out: Option<&[u8]> = None;
    for (row, out) in rows.by_ref() {
        if above == Some(row) {
            if let Some(p) = prev_out {
                out.copy_from_slice(p);
            }
            prev_out = Some(out);
            continue;
        }
        above = Some(row);
        // The previous pixel's colour and index; no colour has key u32::MAX
        // with index 256, so the first pixel always looks up.
        let (mut last, mut last_index) = (u32::MAX, 256u16);
        for (px, o) in row.chunks_exact(4).zip(out.iter_mut()) {
            let c = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
            if c != last || last_index > 255 {
                let mut slot = (c.wrapping_mul(0x9E37_79B1) >> 22) as usize;
                last_index = loop {
                    let (key, index) = table[slot % SLOTS];
                    if index == u16::MAX {
                        let next = u16::try_from(palette.len()).ok().filter(|&n| n < 256)?;
                        palette.push(c.to_le_bytes());
                        table[slot % SLOTS] = (c, next);
                        break next;
                    }
                    if key == c {
                        break index;
                    }
                    slot += 1;
                };
                last = c;
            }
            *o = last_index as u8;
        }
        prev_out = Some(out);
    }
    Some((palette, indices))
}

/// Writes the card (straight RGBA, see [`cut_corners`]) as a PNG with a pHYs
/// chunk: 8-bit indexed colour with a tRNS chunk when it has at most 256
/// colours (the usual card has about 110: flat colours plus anti-aliased
/// edges), else 8-bit RGBA. Lossless either way.
///
/// Deflate is png's `FdeflateUltraFast` (fdeflate). Measured on the scale-2 USD
/// card: indexed with the `Up` filter 0.14 ms and 28 KB, adaptive 0.24 ms and
/// 14 KB; RGBA adaptive 0.69 ms and 34 KB; RGBA at `Compression::Balanced` 5 to
/// 9 ms and 15 KB. The png crate is used directly, not tiny-skia's
/// `Pixmap::encode_png`: that one cannot write pHYs nor choose the compression,
/// and copies the pixels to demultiply them.
fn encode(canvas: &Pixmap, scale: u32) -> Result<Vec<u8>, RenderError> {
    let (w, h) = (canvas.width(), canvas.height());
    let indexed = palette_of(canvas.data(), w as usize);
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_deflate_compression(png::DeflateCompression::FdeflateUltraFast);
        let ppm = pixels_per_metre(scale);
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: ppm,
            yppu: ppm,
            unit: png::Unit::Meter,
        }));
        let pixels: &[u8] = if let Some((palette, indices)) = &indexed {
            enc.set_color(png::ColorType::Indexed);
            enc.set_palette(
                palette
                    .iter()
                    .flat_map(|c| [c[0], c[1], c[2]])
                    .collect::<Vec<u8>>(),
            );
            // tRNS up to the last non-opaque entry (PNG 1.2 §4.2.1.1).
            let alphas: Vec<u8> = palette.iter().map(|c| c[3]).collect();
            let n = alphas.iter().rposition(|&a| a != 255).map_or(0, |i| i + 1);
            if n > 0 {
                enc.set_trns(alphas.get(..n).unwrap_or_default().to_vec());
            }
            enc.set_filter(png::Filter::Adaptive);
            indices
        } else {
            enc.set_color(png::ColorType::Rgba);
            enc.set_filter(png::Filter::Adaptive);
            canvas.data()
        };
        let mut wr = enc
            .write_header()
            .map_err(|e| RenderError::Png(e.to_string()))?;
        wr.write_image_data(pixels)
            .map_err(|e| RenderError::Png(e.to_string()))?;
        wr.finish().map_err(|e| RenderError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_for_reading() {
        let f = |s, c| format_amount(s, c).unwrap();
        assert_eq!(f("1234.56", Currency::Usd).as_deref(), Some("1,234.56"));
        assert_eq!(f("1234.5", Currency::Usd).as_deref(), Some("1,234.50"));
        assert_eq!(f("1", Currency::Usd).as_deref(), Some("1.00"));
        assert_eq!(f("0.05", Currency::Usd).as_deref(), Some("0.05"));
        assert_eq!(f("1250000", Currency::Khr).as_deref(), Some("1,250,000"));
        assert_eq!(f("100", Currency::Khr).as_deref(), Some("100"));
        assert_eq!(f("100.00", Currency::Khr).as_deref(), Some("100"));
        assert_eq!(
            f("9999999999999", Currency::Khr).as_deref(),
            Some("9,999,999,999,999")
        );
        assert_eq!(f("0", Currency::Khr), None);
        assert_eq!(f("0.00", Currency::Usd), None);
        for bad in ["", "1e5", "-1", "1.", ".5", "1,000", " 1", "12345678901234"] {
            assert!(
                matches!(
                    format_amount(bad, Currency::Usd),
                    Err(RenderError::Field(e)) if e.field() == Field::TransactionAmount
                        && e.code() == ErrorCode::TransactionAmountInvalid
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn scale_4_prints_at_300_dpi() {
        assert_eq!(pixels_per_metre(4), 11_811);
        assert_eq!(pixels_per_metre(1), 2_953);
        // Same physical size at every scale, within a pixel.
        let inches =
            |s: u32| f64::from(CARD_WIDTH_1X * s) / (f64::from(pixels_per_metre(s)) * 0.0254);
        for s in 1..=MAX_SCALE {
            assert!(
                (inches(s) - 4.0).abs() < 0.002,
                "scale {s}: {} in",
                inches(s)
            );
        }
    }

    /// Decodes a PNG to 8-bit RGBA (palette and tRNS expanded) and its IHDR
    /// colour type.
    fn decode_rgba(png_bytes: &[u8]) -> (png::ColorType, Vec<u8>) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let color = decoder.read_header_info().unwrap().color_type;
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgba);
        buf.truncate(info.buffer_size());
        (color, buf)
    }

    #[test]
    fn palette_round_trips_and_stops_past_256_colours() {
        // 4 rows of 300 pixels: row 0 has 200 colours, row 1 repeats it, row 2
        // is one colour, row 3 two (one seen before).
        let mut rgba = Vec::new();
        for i in 0..300u32 {
            rgba.extend_from_slice(&[(i % 200) as u8, 7, 9, 255]);
        }
        rgba.extend_from_within(..1200);
        rgba.extend(std::iter::repeat_n([1u8, 2, 3, 0], 300).flatten());
        for i in 0..300u32 {
            rgba.extend_from_slice(if i < 150 {
                &[5, 7, 9, 255]
            } else {
                &[9, 9, 9, 9]
            });
        }
        let (palette, indices) = palette_of(&rgba, 300).unwrap();
        assert_eq!(palette.len(), 202);
        assert_eq!(indices.len(), 1200);
        let back: Vec<u8> = indices
            .iter()
            .flat_map(|&i| palette[usize::from(i)])
            .collect();
        assert_eq!(back, rgba);
        // First appearance order.
        assert_eq!(palette[0], [0, 7, 9, 255]);
        assert_eq!(palette[200], [1, 2, 3, 0]);
        // 257 colours: no palette.
        let many: Vec<u8> = (0..257u32)
            .flat_map(|i| [(i % 256) as u8, (i / 256) as u8, 0, 255])
            .collect();
        assert!(palette_of(&many, 257).is_none());
        assert!(palette_of(&many[..256 * 4], 256).is_some());
    }

    #[test]
    fn card_png_is_indexed_and_lossless_with_rgba_past_256_colours() {
        let payload = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
        let options = CardOptions::default().scale(1);
        let (color, pixels) = decode_rgba(&card_png(payload, &options).unwrap());
        assert_eq!(color, png::ColorType::Indexed);
        // The same pixels as the canvas would give: opaque inside, the corner
        // pixel (0, 0) fully transparent, white in the middle of the bottom row.
        assert_eq!(pixels.len(), 300 * 435 * 4);
        assert_eq!(&pixels[..4], &[0, 0, 0, 0]);
        let mid_bottom = (434 * 300 + 150) * 4;
        assert_eq!(&pixels[mid_bottom..mid_bottom + 4], &[255, 255, 255, 255]);
        // A logo of 64 × 64 distinct colours: more than a palette holds.
        let mut logo = Vec::new();
        {
            let data: Vec<u8> = (0..64u32 * 64)
                .flat_map(|i| [(i % 64 * 4) as u8, (i / 64 * 4) as u8, 128, 255])
                .collect();
            let mut enc = png::Encoder::new(&mut logo, 64, 64);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(&data).unwrap();
        }
        let photo = options.clone().header_logo(logo);
        let (color, rgba) = decode_rgba(&card_png(payload, &photo).unwrap());
        assert_eq!(color, png::ColorType::Rgba);
        assert_eq!(&rgba[..4], &[0, 0, 0, 0]);
        // Away from the header, both cards are the same pixels.
        let below = 60 * 300 * 4;
        assert_eq!(rgba[below..], pixels[below..]);
    }

    #[test]
    fn boxes_intersect_only_when_they_share_a_pixel() {
        let a = PxRect {
            x: 0,
            y: 0,
            width: 10,
            height: 10,
        };
        let b = PxRect { x: 10, ..a };
        let c = PxRect { x: 9, y: 9, ..a };
        assert!(!a.intersects(&b));
        assert!(a.intersects(&c));
        assert!(a.contains(9, 9));
        assert!(!a.contains(10, 9));
    }
}
