//! What is scanned: the plain QR PNG and the card at each scale with each
//! centre icon, each drawn with the library's defaults otherwise.

#![allow(dead_code, clippy::cast_precision_loss)]

use bakong_khqr::render::{card_layout, card_png, qr_png, CardOptions, CentreIcon, QrOptions};

use super::scan::Grey;

/// One way of drawing a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `qr_png` with default options.
    PlainQr,
    /// `card_png` at a scale with a centre icon (default options otherwise).
    Card { scale: u32, icon: Icon },
}

/// The centre icons, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icon {
    Currency,
    BakongRed,
    None,
    Logo,
}

impl Icon {
    pub const ALL: [Icon; 4] = [Icon::Currency, Icon::BakongRed, Icon::None, Icon::Logo];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Icon::Currency => "currency",
            Icon::BakongRed => "red",
            Icon::None => "none",
            Icon::Logo => "logo",
        }
    }

    fn centre_icon(self) -> CentreIcon {
        match self {
            Icon::Currency => CentreIcon::Currency,
            Icon::BakongRed => CentreIcon::BakongRed,
            Icon::None => CentreIcon::None,
            Icon::Logo => CentreIcon::Custom(logo_png(64, 64)),
        }
    }
}

impl Variant {
    /// The default card: scale 2, currency badge.
    pub const DEFAULT_CARD: Variant = Variant::Card {
        scale: 2,
        icon: Icon::Currency,
    };

    /// Plain QR, then every card scale 1–4 with every icon.
    #[must_use]
    pub fn all() -> Vec<Variant> {
        let mut v = vec![Variant::PlainQr];
        for scale in 1..=4 {
            for icon in Icon::ALL {
                v.push(Variant::Card { scale, icon });
            }
        }
        v
    }

    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Variant::PlainQr => "plain QR".to_owned(),
            Variant::Card { scale, icon } => format!("card {scale}x {}", icon.name()),
        }
    }

    /// Whether this variant can draw `payload` (a card needs a KHQR with a
    /// name and a known currency; the plain QR takes any text).
    #[must_use]
    pub fn accepts(&self, payload: &str) -> bool {
        match self {
            Variant::PlainQr => true,
            Variant::Card { .. } => card_layout(payload, &CardOptions::default().scale(1)).is_ok(),
        }
    }

    /// Draws `payload`: the image, and the symbol's width in pixels (without
    /// quiet zone), which the conditions scale to.
    #[must_use]
    pub fn draw(&self, payload: &str) -> (Grey, u32) {
        match self {
            Variant::PlainQr => {
                let o = QrOptions::default();
                let png = qr_png(payload, &o).expect("plain QR");
                let img = Grey::from_png(&png);
                let symbol = img.width as u32 - 2 * o.quiet_zone * o.module_px;
                (img, symbol)
            }
            Variant::Card { scale, icon } => {
                let o = CardOptions::default()
                    .scale(*scale)
                    .centre_icon(icon.centre_icon());
                let l = card_layout(payload, &o).expect("card layout");
                let png = card_png(payload, &o).expect("card");
                (Grey::from_png(&png), l.modules * l.module_px)
            }
        }
    }
}

impl Variant {
    /// Like [`Variant::draw`], cropped to the QR with its quiet zone (a card's
    /// `layout.qr`): what a phone frames. The pixels are the card's own.
    #[must_use]
    pub fn draw_framed(&self, payload: &str) -> Grey {
        let (img, _) = self.draw(payload);
        let Variant::Card { scale, icon } = self else {
            return img;
        };
        let o = CardOptions::default()
            .scale(*scale)
            .centre_icon(icon.centre_icon());
        let q = card_layout(payload, &o).expect("card layout").qr;
        let (x0, y0, w, h) = (
            q.x as usize,
            q.y as usize,
            q.width as usize,
            q.height as usize,
        );
        let mut px = Vec::with_capacity(w * h);
        for y in y0..y0 + h {
            px.extend_from_slice(&img.px[y * img.width + x0..y * img.width + x0 + w]);
        }
        Grey {
            width: w,
            height: h,
            px,
        }
    }
}

/// A caller's logo as a small RGBA PNG made here: a dark ring and a red square
/// on white, with a transparent border.
#[must_use]
pub fn logo_png(w: u32, h: u32) -> Vec<u8> {
    let mut data = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f32 - w as f32 / 2.0, y as f32 - h as f32 / 2.0);
            let d = (dx * dx + dy * dy).sqrt() / (w as f32 / 2.0);
            let px = if d > 0.95 {
                [0, 0, 0, 0]
            } else if d > 0.75 {
                [30, 60, 120, 255]
            } else if dx.abs() < w as f32 * 0.18 && dy.abs() < h as f32 * 0.18 {
                [225, 35, 46, 255]
            } else {
                [255, 255, 255, 255]
            };
            data.extend_from_slice(&px);
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().expect("logo header");
    wr.write_image_data(&data).expect("logo data");
    wr.finish().expect("logo end");
    out
}
