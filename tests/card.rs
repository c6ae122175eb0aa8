//! The KHQR card PNG: scanned back with an independent reader (rqrr), its text
//! kept inside the card, its layout boxes checked against the real pixels, and
//! golden images compared by decoded pixels.
//!
//! Regenerate the golden images after an intended change with
//! `KHQR_BLESS=1 cargo test --all-features --test card`, then look at each file
//! in `tests/golden/` before committing it.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::many_single_char_names
)]

mod common;

use bakong_khqr::render::{
    card_layout, card_png, CardLayout, CardOptions, CentreIcon, PxRect, QrMatrix, RenderError,
};
use bakong_khqr::{Currency, Field, Request};

const NOW: u64 = 1_700_000_000_000;

/// A decoded PNG: 8-bit RGBA.
struct Image {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

impl Image {
    fn decode(png_bytes: &[u8]) -> Image {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("PNG data");
        assert_eq!(info.color_type, png::ColorType::Rgba);
        buf.truncate(info.buffer_size());
        Image {
            width: info.width,
            height: info.height,
            rgba: buf,
        }
    }

    fn px(&self, x: u32, y: u32) -> [u8; 4] {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }

    /// Grey level composited over white (transparent corners read as white).
    fn grey(&self, x: u32, y: u32) -> u8 {
        let [r, g, b, a] = self.px(x, y);
        let lum = (u32::from(r) * 30 + u32::from(g) * 59 + u32::from(b) * 11) / 100;
        let a = u32::from(a);
        ((lum * a + 255 * (255 - a)) / 255) as u8
    }

    fn is_white(&self, x: u32, y: u32) -> bool {
        self.px(x, y) == [255, 255, 255, 255]
    }

    /// The QR texts rqrr finds.
    fn scan(&self) -> Vec<String> {
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(
            self.width as usize,
            self.height as usize,
            |x, y| self.grey(x as u32, y as u32),
        );
        img.detect_grids()
            .into_iter()
            .map(|g| g.decode().expect("QR decodes").1)
            .collect()
    }
}

fn dynamic(name: &str, currency: Currency, amount: &str) -> String {
    Request::individual("jonhsmith@nbcq", name)
        .merchant_city("Phnom Penh")
        .currency(currency)
        .amount(amount)
        .expires_in_ms(600_000)
        .generate(NOW)
        .unwrap()
        .as_str()
        .to_owned()
}

fn static_qr(name: &str, currency: Currency) -> String {
    Request::individual("jonhsmith@nbcq", name)
        .currency(currency)
        .generate(NOW)
        .unwrap()
        .as_str()
        .to_owned()
}

const KHMER_25: &str = "ហាងកាហ្វេភ្នំពេញស្រីស្អាត";

/// A small RGBA PNG made here: a blue-to-green gradient with a transparent border.
fn logo_png(w: u32, h: u32) -> Vec<u8> {
    let mut data = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let border = x < 2 || y < 2 || x >= w - 2 || y >= h - 2;
            let a = if border { 0 } else { 255 };
            data.extend_from_slice(&[20, (x * 255 / w) as u8, (y * 255 / h) as u8, a]);
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().unwrap();
    wr.write_image_data(&data).unwrap();
    wr.finish().unwrap();
    out
}

/// Checks one card: size, scan, boxes inside the card and apart, and the pixels
/// against the boxes. Returns the decoded image.
#[track_caller]
fn check_card(payload: &str, options: &CardOptions) -> (CardLayout, Image) {
    let png = card_png(payload, options).unwrap();
    let layout = card_layout(payload, options).unwrap();
    let img = Image::decode(&png);
    let s = options.scale;
    assert_eq!((img.width, img.height), (300 * s, 435 * s));
    assert_eq!((layout.width, layout.height), (img.width, img.height));

    // The QR scans back to the exact payload.
    assert_eq!(img.scan(), vec![payload.to_owned()], "{layout:#?}");

    // Transparent outside the rounded corners, opaque inside.
    assert_eq!(img.px(0, 0)[3], 0);
    assert_eq!(img.px(img.width - 1, img.height - 1)[3], 0);
    assert_eq!(img.px(img.width / 2, img.height / 2)[3], 255);
    let r = layout.corner_radius;
    assert!((r - 0.045 * img.height as f32).abs() < 1e-3);

    // Header: red band 0.12·H.
    assert_eq!(
        layout.header.height,
        (0.12 * img.height as f32).round() as u32
    );
    assert_eq!(
        &img.px(img.width / 8, layout.header.height / 2)[..3],
        &[0xE1, 0x23, 0x2E]
    );

    // Text boxes: inside the margins, between the header and the separator, apart.
    let margin = (0.08 * img.height as f32).round() as u32;
    let mut boxes = vec![("name", layout.name)];
    boxes.extend(layout.amount.map(|b| ("amount", b)));
    boxes.extend(layout.currency.map(|b| ("currency", b)));
    for (what, b) in &boxes {
        assert!(b.width > 0 && b.height > 0, "{what} box empty: {b:?}");
        assert!(b.x >= margin, "{what} starts left of the margin: {b:?}");
        assert!(
            b.right() <= img.width - margin,
            "{what} runs past the right margin: {b:?}"
        );
        assert!(
            b.y >= layout.header.bottom(),
            "{what} overlaps the header: {b:?}"
        );
        assert!(
            b.bottom() <= layout.separator.y,
            "{what} crosses the separator: {b:?}"
        );
    }
    for (i, (a, ba)) in boxes.iter().enumerate() {
        for (b, bb) in &boxes[i + 1..] {
            assert!(!ba.intersects(bb), "{a} {ba:?} overlaps {b} {bb:?}");
        }
    }

    // Pixels: between the header and the separator, everything outside the text
    // boxes (and the dog-ear) is white; every box holds dark ink.
    let ear = (0.055 * img.height as f32).round() as u32 + 1;
    for y in layout.header.bottom()..layout.separator.y {
        for x in 0..img.width {
            let in_ear = y < layout.header.bottom() + ear && x + ear >= img.width;
            if in_ear || boxes.iter().any(|(_, b)| b.contains(x, y)) {
                continue;
            }
            assert!(
                img.is_white(x, y),
                "stray pixel {:?} at ({x}, {y}) outside the text boxes",
                img.px(x, y)
            );
        }
    }
    for (what, b) in &boxes {
        let dark = (b.y..b.bottom())
            .flat_map(|y| (b.x..b.right()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.grey(x, y) < 100)
            .count();
        assert!(dark > 0, "{what} box has no ink");
        // The box is tight: ink within a pixel of its left and top edges.
        let ink = |x: u32, y: u32| !img.is_white(x, y);
        assert!(
            (b.y..b.bottom()).any(|y| ink(b.x, y) || ink(b.x + 1, y)),
            "{what} left edge"
        );
        assert!(
            (b.x..b.right()).any(|x| ink(x, b.y) || ink(x, b.y + 1)),
            "{what} top edge"
        );
    }

    // Separator: light grey dashes, dash 6 and gap 4 at scale 1.
    let sy = layout.separator.y;
    assert_eq!(layout.separator.height, s);
    assert_eq!(&img.px(margin, sy)[..3], &img.px(margin + 10 * s, sy)[..3]);
    let dash: Vec<bool> = (0..10 * s).map(|x| !img.is_white(20 * s + x, sy)).collect();
    assert_eq!(
        dash.iter().filter(|&&d| d).count() as u32,
        6 * s,
        "{dash:?}"
    );

    // QR: below the separator, inside the card, at most 92% of the width, whole modules.
    let q = layout.qr;
    assert!(q.y > layout.separator.bottom());
    assert!(q.bottom() < img.height && q.right() < img.width);
    assert_eq!(q.width, (layout.modules + 8) * layout.module_px);
    assert!((q.x * 2 + q.width).abs_diff(img.width) <= 1, "QR centred");
    let share = q.width as f32 / img.width as f32;
    assert!((0.6..=0.92).contains(&share), "QR is {share} of the width");
    // Every module outside the centre badge is one flat colour, black or white.
    let m = layout.module_px;
    let icon = layout.icon.map(|b| PxRect {
        x: b.x.saturating_sub(2 * m),
        y: b.y.saturating_sub(2 * m),
        width: b.width + 4 * m,
        height: b.height + 4 * m,
    });
    for my in 0..layout.modules + 8 {
        for mx in 0..layout.modules + 8 {
            let (x0, y0) = (q.x + mx * m, q.y + my * m);
            if icon.is_some_and(|b| {
                b.intersects(&PxRect {
                    x: x0,
                    y: y0,
                    width: m,
                    height: m,
                })
            }) {
                continue;
            }
            let first = img.px(x0, y0);
            assert!(first == [0, 0, 0, 255] || first == [255, 255, 255, 255]);
            for y in y0..y0 + m {
                for x in x0..x0 + m {
                    assert_eq!(img.px(x, y), first, "module ({mx}, {my}) not flat");
                }
            }
            if mx < 4 || my < 4 || mx >= layout.modules + 4 || my >= layout.modules + 4 {
                assert_eq!(
                    first,
                    [255, 255, 255, 255],
                    "quiet zone module ({mx}, {my})"
                );
            }
        }
    }
    if let Some(b) = layout.icon {
        // The badge clears a centred square of whole modules, at most 16% of
        // the symbol's side, rounded, then odd.
        let k = b.width / m;
        assert_eq!((b.width, b.height), (k * m, k * m));
        assert_eq!(k % 2, 1, "odd side, centred on the middle module");
        let most = ((0.16 * layout.modules as f32).round() as u32) | 1;
        assert!(k >= 3 && k <= most, "{k} modules of {}", layout.modules);
        assert_eq!((b.x - q.x) / m * 2 + k, layout.modules + 8, "centred");
        // Versions 7–13, 21–27 and 35–40 have an alignment pattern at the
        // centre: it is drawn back over the badge, module for module.
        let version = (layout.modules - 17) / 4;
        if matches!(version, 7..=13 | 21..=27 | 35..=40) {
            let matrix = QrMatrix::encode(payload, options.ecc).unwrap();
            let c = layout.modules / 2;
            for my in c - 2..=c + 2 {
                for mx in c - 2..=c + 2 {
                    let (x0, y0) = (q.x + (mx + 4) * m, q.y + (my + 4) * m);
                    let want = if matrix.is_dark(mx as usize, my as usize) {
                        0
                    } else {
                        255
                    };
                    for y in y0..y0 + m {
                        for x in x0..x0 + m {
                            assert_eq!(
                                img.px(x, y),
                                [want, want, want, 255],
                                "alignment module ({mx}, {my})"
                            );
                        }
                    }
                }
            }
        }
    }
    (layout, img)
}

#[test]
fn card_matrix_scans_and_keeps_text_inside() {
    let usd = dynamic("Coffee Corner", Currency::Usd, "1234.56");
    let khr = dynamic("Jonh Smith", Currency::Khr, "1250000");
    for scale in [1, 2, 4] {
        let o = CardOptions::default().scale(scale);
        let (l, _) = check_card(&usd, &o);
        assert_eq!(l.amount_text.as_deref(), Some("1,234.56"));
        assert_eq!(l.currency_code, "USD");
        assert_eq!(l.name_text, "Coffee Corner");
        assert!(!l.name_truncated);
        let (l, _) = check_card(&khr, &o);
        assert_eq!(l.amount_text.as_deref(), Some("1,250,000"));
        assert_eq!(l.currency_code, "KHR");
    }
}

#[test]
fn static_cards_show_no_amount() {
    for (currency, scale) in [(Currency::Usd, 1), (Currency::Khr, 2)] {
        let p = static_qr("Jonh Smith", currency);
        let (l, _) = check_card(&p, &CardOptions::default().scale(scale));
        assert_eq!(l.amount, None);
        assert_eq!(l.amount_text, None);
        assert_eq!(l.currency, None);
        // The name sits in the middle of the band between header and separator.
        let mid = u32::midpoint(l.header.bottom(), l.separator.y);
        assert!(l.name.y < mid && l.name.bottom() > mid, "{:?}", l.name);
    }
}

#[test]
fn widest_legal_inputs_stay_on_the_card() {
    let wide = "W".repeat(25);
    for scale in [1, 2] {
        let o = CardOptions::default().scale(scale);
        let p = dynamic(&wide, Currency::Khr, "9999999999999");
        let (l, _) = check_card(&p, &o);
        assert_eq!(l.amount_text.as_deref(), Some("9,999,999,999,999"));
        // 25 W's cannot fit at the minimum size: cut with "…".
        assert!(l.name_truncated);
        assert!(l.name_text.ends_with('…') && l.name_text.starts_with("WWWWW"));
        assert!(l.name_px <= 0.022 * l.height as f32 + 0.01);
        let amount_px = l.amount_px.unwrap();
        assert!(amount_px < 0.065 * l.height as f32, "amount shrunk to fit");

        let p = dynamic(KHMER_25, Currency::Usd, "1234567890.99");
        let (l, _) = check_card(&p, &o);
        assert_eq!(l.amount_text.as_deref(), Some("1,234,567,890.99"));
        // A cut Khmer name keeps whole clusters: it is a prefix of the original
        // ending at a cluster start (no dangling coeng or vowel).
        let shown = l.name_text.trim_end_matches('…');
        assert!(KHMER_25.starts_with(shown));
        let next = KHMER_25[shown.len()..].chars().next();
        if let Some(c) = next {
            assert!(
                !('\u{17B4}'..='\u{17D3}').contains(&c),
                "cut before mark {c:?}"
            );
            assert!(!shown.ends_with('\u{17D2}'));
        }
    }
}

#[test]
fn khmer_names_render_and_scan() {
    let p = dynamic("ហាងកាហ្វេ ភ្នំពេញ", Currency::Khr, "15000");
    let (l, _) = check_card(&p, &CardOptions::default().scale(2));
    assert_eq!(l.name_text, "ហាងកាហ្វេ ភ្នំពេញ");
    assert!(!l.name_truncated);
    // The subscripts reach below the Latin baseline region: the name box is
    // deeper than a Latin name's at the same size.
    let latin = card_layout(
        &dynamic("Jonh Smith", Currency::Khr, "15000"),
        &CardOptions::default().scale(2),
    )
    .unwrap();
    assert!(l.name.bottom() > latin.name.bottom());
}

#[test]
fn icons_and_logos() {
    let p = dynamic("Logo Shop", Currency::Usd, "5");
    let logo = logo_png(96, 40);
    let o = CardOptions::default()
        .scale(2)
        .header_logo(logo.clone())
        .centre_icon(CentreIcon::Custom(logo_png(32, 32)));
    let (l, img) = check_card(&p, &o);
    // The header logo's pixels are there (blue-green, not red or white).
    let c = img.px(
        l.header_mark.x + l.header_mark.width / 2,
        l.header_mark.y + l.header_mark.height / 2,
    );
    assert!(c[0] < 100 && c[1] > 60, "{c:?}");
    let b = l.header_mark;
    assert!(b.height <= (0.6 * l.header.height as f32).ceil() as u32);
    assert_eq!(b.width * 40 / 96, b.height, "aspect kept: {b:?}");

    for icon in [CentreIcon::BakongRed, CentreIcon::None] {
        let o = CardOptions::default().scale(1).centre_icon(icon.clone());
        let (l, img) = check_card(&p, &o);
        if icon == CentreIcon::None {
            assert_eq!(l.icon, None);
        } else {
            assert!(count_colour(&img, l.icon.unwrap(), [0xE1, 0x23, 0x2E]) > 0);
        }
    }
    // The badge is dark by default.
    let (l, img) = check_card(&p, &CardOptions::default().scale(1));
    assert!(count_colour(&img, l.icon.unwrap(), [0x1C, 0x1C, 0x1C]) > 0);
}

/// Pixels of exactly `rgb` inside `b`.
fn count_colour(img: &Image, b: PxRect, rgb: [u8; 3]) -> usize {
    (b.y..b.bottom())
        .flat_map(|y| (b.x..b.right()).map(move |x| (x, y)))
        .filter(|&(x, y)| img.px(x, y)[..3] == rgb)
        .count()
}

#[test]
fn longest_payload_fits_at_whole_modules() {
    let p = Request::merchant(bakong_khqr::MerchantInfo {
        bakong_account_id: format!("{}@abaa", "a".repeat(27)),
        merchant_name: "ក".repeat(25),
        merchant_id: "1".repeat(32),
        acquiring_bank: "B".repeat(23),
    })
    .merchant_city("ភ".repeat(15))
    .currency(Currency::Khr)
    .amount("9999999999999")
    .expires_in_ms(600_000)
    .bill_number("b".repeat(25))
    .mobile_number("1".repeat(25))
    .store_label("ស".repeat(25))
    .terminal_label("T".repeat(8))
    .generate(NOW)
    .unwrap();
    let (l, _) = check_card(p.as_str(), &CardOptions::default().scale(2));
    assert!(l.module_px >= 2);
}

#[test]
fn identical_input_gives_identical_bytes() {
    let p = dynamic("ហាងកាហ្វេ", Currency::Khr, "1000");
    let o = CardOptions::default().scale(1);
    assert_eq!(card_png(&p, &o).unwrap(), card_png(&p, &o).unwrap());
}

#[test]
fn errors_are_typed() {
    let p = dynamic("Shop", Currency::Usd, "1");
    for scale in [0, 11] {
        assert!(matches!(
            card_png(&p, &CardOptions::default().scale(scale)),
            Err(RenderError::InvalidOption(_))
        ));
    }
    assert!(matches!(
        card_png("", &CardOptions::default()),
        Err(RenderError::Decode(_))
    ));
    // No tag 59.
    let e = card_png("00020101021153031165802KH63041234", &CardOptions::default());
    assert_eq!(field_error(e), (Field::MerchantName, 2));
    // Currency 999.
    let e = card_png(
        "000201010211530399958020KH5904Shop63041234"
            .replace("58020KH", "5802KH")
            .as_str(),
        &CardOptions::default(),
    );
    assert_eq!(field_error(e), (Field::TransactionCurrency, 28));
    // No tag 53.
    let e = card_png(
        "0002010102115802KH5904Shop63041234",
        &CardOptions::default(),
    );
    assert_eq!(field_error(e), (Field::TransactionCurrency, 9));
    // Currency over 3 characters: the length code, as verify.
    let e = card_png(
        "0002010102115305116.55802KH5904Shop63041234",
        &CardOptions::default(),
    );
    assert_eq!(field_error(e), (Field::TransactionCurrency, 19));
    // A non-decimal amount.
    let e = card_png(
        "0002010102125303840540311e5802KH5904Shop63041234",
        &CardOptions::default(),
    );
    assert_eq!(field_error(e), (Field::TransactionAmount, 4));
    let bad_logo = CardOptions::default().header_logo(b"not a png".to_vec());
    assert!(matches!(
        card_png(&p, &bad_logo),
        Err(RenderError::Image(_))
    ));
}

/// The field and the core's code of a [`RenderError::Field`].
#[track_caller]
fn field_error<T: std::fmt::Debug>(r: Result<T, RenderError>) -> (Field, u16) {
    match r {
        Err(RenderError::Field(e)) => (e.field(), e.code().number()),
        other => panic!("expected a field error, got {other:?}"),
    }
}

/// A static USD payload with merchant name `name` (any text; the CRC is not
/// checked by the card).
fn with_name(name: &str) -> String {
    let len = name.encode_utf16().count();
    format!("000201010211530384059{len:02}{name}5802KH63040000")
}

/// The card checks the merchant name by the core's rules: blank is only white
/// space and invisible format characters (code 2, before the character rule),
/// a control character is code 53, and `generate` refuses each such name with
/// the same code.
#[test]
fn name_rules_are_the_cores() {
    let refused: [(&str, u16); 8] = [
        ("", 2),
        (" ", 2),
        ("\u{200B}", 2),
        (" \u{FEFF}\u{2060} \u{200D}", 2),
        ("\u{3000}\u{00A0}", 2),
        ("\t", 2),
        ("Shop\u{7}", 53),
        ("\u{85}Shop", 53),
    ];
    for (name, code) in refused {
        let e = card_layout(&with_name(name), &CardOptions::default().scale(1));
        assert_eq!(field_error(e), (Field::MerchantName, code), "{name:?}");
        let g = Request::individual("jonhsmith@nbcq", name)
            .generate(NOW)
            .unwrap_err();
        assert_eq!(g.code().number(), code, "generate, {name:?}");
        assert_eq!(g.field(), Field::MerchantName, "generate, {name:?}");
    }
    // The messages are the core's, after the card's prefix.
    let e = card_png(&with_name("\u{200B}"), &CardOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot draw the card: merchant name (tag 59) is blank"
    );
    let e = card_png(&with_name("Shop\u{7}"), &CardOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot draw the card: merchant name (tag 59) contains a control character: \"U+0007\""
    );
    // Not blank: visible text with invisible characters in it, and surrounding
    // spaces (trimmed from what is drawn). Generate accepts each.
    for (name, shown) in [
        ("Sh\u{200B}op", "Sh\u{200B}op"),
        ("  Shop  ", "Shop"),
        ("\u{200B}.", "\u{200B}."),
    ] {
        let l = card_layout(&with_name(name), &CardOptions::default().scale(1)).unwrap();
        assert_eq!(l.name_text, shown, "{name:?}");
        assert!(Request::individual("jonhsmith@nbcq", name)
            .generate(NOW)
            .is_ok());
    }
    // Text outside the BMP is accepted as verify reads a payload (bank apps
    // print emoji), though generate refuses to write it (53).
    let l = card_layout(
        &with_name("Shop \u{1F600}"),
        &CardOptions::default().scale(1),
    )
    .unwrap();
    assert_eq!(l.name_text, "Shop \u{1F600}");
}

/// Golden cards, compared by decoded pixels (±2 per channel).
#[test]
fn golden_cards() {
    let cases: Vec<(&str, String, CardOptions)> = vec![
        (
            "usd_dynamic_2x",
            dynamic("Coffee Corner", Currency::Usd, "1234.56"),
            CardOptions::default(),
        ),
        (
            "khr_khmer_name_2x",
            dynamic("ហាងកាហ្វេ ភ្នំពេញ", Currency::Khr, "1250000"),
            CardOptions::default(),
        ),
        (
            "khr_static_1x",
            static_qr("Jonh Smith", Currency::Khr),
            CardOptions::default().scale(1),
        ),
        (
            "widest_1x",
            dynamic(&"W".repeat(25), Currency::Khr, "9999999999999"),
            CardOptions::default()
                .scale(1)
                .centre_icon(CentreIcon::BakongRed),
        ),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("KHQR_BLESS").is_some();
    for (name, payload, options) in cases {
        let png = card_png(&payload, &options).unwrap();
        let path = dir.join(format!("{name}.png"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &png).unwrap();
            continue;
        }
        let want = Image::decode(&std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run KHQR_BLESS=1 cargo test --all-features --test card",
                path.display()
            )
        }));
        let got = Image::decode(&png);
        assert_eq!((got.width, got.height), (want.width, want.height), "{name}");
        let worst = got
            .rgba
            .iter()
            .zip(&want.rgba)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        assert!(worst <= 2, "{name}: pixels differ by up to {worst}");
    }
}

/// The SVG's single path, read back run by run, gives exactly the matrix's dark
/// modules, offset by the quiet zone.
#[test]
fn svg_path_is_the_matrix() {
    use bakong_khqr::render::{qr_svg, Ecc, QrMatrix, QrOptions};
    let p = dynamic("ហាងកាហ្វេ", Currency::Khr, "1000");
    let options = QrOptions::default()
        .module_px(3)
        .colours([0x11, 0x22, 0x33], [0xFF, 0xFE, 0xF0]);
    let svg = qr_svg(&p, &options).unwrap();
    let m = QrMatrix::encode(&p, Ecc::M).unwrap();
    let n = m.size() + 8;
    assert!(svg.contains(&format!("viewBox=\"0 0 {n} {n}\"")));
    assert!(svg.contains(&format!("width=\"{}\"", n * 3)));
    assert!(svg.contains("fill=\"#112233\"") && svg.contains("fill=\"#fffef0\""));
    assert_eq!(svg.matches("<path").count(), 1);
    let d = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut dark = vec![false; m.size() * m.size()];
    for run in d.split('z').filter(|r| !r.is_empty()) {
        // M{x} {y}h{len}v1h-{len}
        let rest = run.strip_prefix('M').unwrap();
        let (x, rest) = rest.split_once(' ').unwrap();
        let (y, rest) = rest.split_once('h').unwrap();
        let (len, back) = rest.split_once("v1h-").unwrap();
        assert_eq!(len, back);
        let (x, y, len): (usize, usize, usize) =
            (x.parse().unwrap(), y.parse().unwrap(), len.parse().unwrap());
        for i in 0..len {
            let cell = &mut dark[(y - 4) * m.size() + x - 4 + i];
            assert!(!*cell, "module drawn twice");
            *cell = true;
        }
    }
    for y in 0..m.size() {
        for x in 0..m.size() {
            assert_eq!(dark[y * m.size() + x], m.is_dark(x, y), "({x}, {y})");
        }
    }
}

/// Coloured plain QRs are 8-bit RGB and still scan; black on white stays 1-bit.
#[test]
fn coloured_plain_qr_scans() {
    use bakong_khqr::render::{qr_png, QrOptions};
    let p = dynamic("Shop", Currency::Usd, "2.5");
    let plain = qr_png(&p, &QrOptions::default()).unwrap();
    let info = png::Decoder::new(std::io::Cursor::new(&plain))
        .read_info()
        .unwrap()
        .info()
        .clone();
    assert_eq!(info.bit_depth, png::BitDepth::One);
    let options = QrOptions::default()
        .module_px(4)
        .colours([0x10, 0x20, 0x60], [0xFF, 0xF8, 0xE0]);
    let png_bytes = qr_png(&p, &options).unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&png_bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight)
    );
    // Corner: light; first finder module: dark.
    assert_eq!(&buf[..3], &[0xFF, 0xF8, 0xE0]);
    let at = |x: usize, y: usize| &buf[(y * info.width as usize + x) * 3..][..3];
    assert_eq!(at(16, 16), &[0x10, 0x20, 0x60]);
    let w = info.width as usize;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, w, |x, y| at(x, y)[1]);
    let texts: Vec<String> = img
        .detect_grids()
        .into_iter()
        .map(|g| g.decode().unwrap().1)
        .collect();
    assert_eq!(texts, vec![p]);
}

/// Every real bank-app sample restyles into a card that scans back exactly.
#[test]
fn real_bank_qrs_restyle() {
    let text = common::read_vectors("real-samples.jsonl");
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let qr = v["qr"].as_str().unwrap();
        let (l, _) = check_card(qr, &CardOptions::default().scale(1));
        assert_eq!(
            l.name_text,
            bakong_khqr::decode(qr).unwrap().merchant_name().unwrap()
        );
        n += 1;
    }
    assert!(n >= 4, "{n} samples");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Any merchant name of 1–99 BMP characters (Latin, Khmer, marks, spaces,
    /// symbols) lays out inside the margins or fails with a typed error.
    #[test]
    fn any_name_stays_inside(name in "[a-zA-Z0-9 …W\u{1780}-\u{17FF}\u{19E0}-\u{19FF}\u{0300}-\u{036F}\u{4E00}-\u{4E20}]{1,99}") {
        let len = name.chars().count();
        let payload = format!("000201010211530384059{len:02}{name}5802KH63040000");
        match card_layout(&payload, &CardOptions::default().scale(1)) {
            Ok(l) => {
                let margin = (0.08 * l.height as f32).round() as u32;
                proptest::prop_assert!(l.name.x >= margin);
                proptest::prop_assert!(l.name.right() <= l.width - margin, "{:?}", l.name);
                proptest::prop_assert!(l.name.y >= l.header.bottom());
                proptest::prop_assert!(l.name.bottom() <= l.separator.y, "{:?}", l.name);
            }
            Err(e) => proptest::prop_assert!(
                matches!(&e, RenderError::Field(f) if f.field() == Field::MerchantName),
                "{e}"
            ),
        }
    }
}

/// Every vector payload, valid or not, lays out or fails with a typed error —
/// never a panic — and a layout keeps its text inside the margins.
#[test]
fn every_vector_lays_out_or_fails_typed() {
    let (mut ok, mut refused) = (0, 0);
    for name in ["verify.jsonl", "generate.jsonl", "real-samples.jsonl"] {
        let text = common::read_vectors(name);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(qr) = v["qr"].as_str().or(v["expect"]["qr"].as_str()) else {
                continue;
            };
            match card_layout(qr, &CardOptions::default().scale(1)) {
                Ok(l) => {
                    let margin = (0.08 * l.height as f32).round() as u32;
                    for b in [Some(l.name), l.amount, l.currency].into_iter().flatten() {
                        assert!(b.x >= margin && b.right() <= l.width - margin, "{qr}");
                        assert!(b.bottom() <= l.separator.y, "{qr}");
                    }
                    ok += 1;
                }
                Err(
                    RenderError::Decode(_) | RenderError::Field(_) | RenderError::TooLong { .. },
                ) => refused += 1,
                Err(e) => panic!("{qr}: unexpected {e}"),
            }
        }
    }
    assert!(ok > 100, "{ok} laid out, {refused} refused");
}
