//! The card as SVG (`render::card_svg`), checked from the outside: parsed and
//! rasterised by an independent SVG renderer (`resvg`/`usvg`, built without
//! text support, so text that is not paths would vanish), compared pixel for
//! pixel with `card_png`, and read back by the scan harness's three decoders
//! (rqrr, rxing, zbar) at the PNG's size and at 300 dpi, clean and under the
//! phone and blur σ 2 conditions (issue 9, item 3); and drawn by headless
//! Chromium from the file, then read back again.
//!
//! zbar and chromium must be installed (`apt-get install zbar-tools
//! chromium`, as .ci/run does); the tests fail with that hint when they are
//! not.

mod common;
#[allow(dead_code)]
mod support;

use bakong_khqr::render::{card_layout, card_png, card_svg, CardOptions, CentreIcon, PxRect};
use bakong_khqr::{Currency, Request};
use resvg::{tiny_skia, usvg};
use support::scan::{read_all, require_zbar, Condition, Decoder, Grey};
use support::variants::logo_png;

const NOW: u64 = 1_700_000_000_000;

/// Parses `svg` with usvg (a strict XML parser underneath: a document that is
/// not well-formed is refused) and draws it `k` times the size of its viewBox
/// (`layout.width × layout.height` card pixels), composited over white and
/// turned grey as `Grey::from_png` does.
fn rasterise(svg: &str, w: u32, h: u32, k: u32) -> Grey {
    let tree = usvg::Tree::from_str(svg, &usvg::Options::default()).expect("well-formed SVG");
    let (tw, th) = (w * k, h * k);
    let mut pixmap = tiny_skia::Pixmap::new(tw, th).expect("pixmap");
    let size = tree.size();
    #[allow(clippy::cast_precision_loss)]
    let t = tiny_skia::Transform::from_scale(tw as f32 / size.width(), th as f32 / size.height());
    resvg::render(&tree, t, &mut pixmap.as_mut());
    let px = pixmap
        .pixels()
        .iter()
        .map(|p| {
            // Premultiplied: luminance of the colour already times alpha,
            // plus white behind the transparent part.
            let lum =
                (u32::from(p.red()) * 299 + u32::from(p.green()) * 587 + u32::from(p.blue()) * 114)
                    / 1000;
            (lum + 255 - u32::from(p.alpha())).min(255) as u8
        })
        .collect();
    Grey {
        width: tw as usize,
        height: th as usize,
        px,
    }
}

fn crop(img: &Grey, r: PxRect, k: u32) -> Grey {
    let (x0, y0, w, h) = (
        (r.x * k) as usize,
        (r.y * k) as usize,
        (r.width * k) as usize,
        (r.height * k) as usize,
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

/// Mean absolute difference of two equally sized images over `r`, grey levels.
#[allow(clippy::cast_precision_loss)]
fn mad(a: &Grey, b: &Grey, r: PxRect) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let mut sum = 0u64;
    for y in r.y as usize..r.bottom() as usize {
        for x in r.x as usize..r.right() as usize {
            let i = y * a.width + x;
            sum += u64::from(a.px[i].abs_diff(b.px[i]));
        }
    }
    sum as f64 / (f64::from(r.width) * f64::from(r.height)).max(1.0)
}

fn sample(name: &str, currency: Currency, amount: Option<&str>) -> String {
    let mut r = Request::individual("jonhsmith@nbcq", name).currency(currency);
    if let Some(a) = amount {
        r = r.amount(a).expires_in_ms(600_000);
    }
    r.generate(NOW).expect("payload").as_str().to_owned()
}

fn samples() -> Vec<String> {
    vec![
        sample("ហាងកាហ្វេ Coffee", Currency::Usd, Some("12.5")),
        sample("ហាងកាហ្វេភ្នំពេញស្រីស្អាត", Currency::Khr, Some("1250000")),
        sample("Café Crème Brûlée", Currency::Usd, None),
        sample("Jonh Smith", Currency::Khr, None),
    ]
}

fn option_sets() -> Vec<CardOptions> {
    vec![
        CardOptions::default(),
        CardOptions::default().scale(1),
        CardOptions::default()
            .scale(3)
            .centre_icon(CentreIcon::BakongRed),
        CardOptions::default().centre_icon(CentreIcon::None),
        CardOptions::default()
            .centre_icon(CentreIcon::Custom(logo_png(64, 64)))
            .header_logo(logo_png(120, 40)),
    ]
}

fn icon_name(icon: &CentreIcon) -> &'static str {
    match icon {
        CentreIcon::Currency => "currency",
        CentreIcon::BakongRed => "red",
        CentreIcon::None => "none",
        _ => "logo",
    }
}

/// The document: parses, is sized for print, has no `<text>`, has one
/// crisp QR path, and embeds logos as PNG data URIs exactly when asked.
#[test]
fn svg_is_well_formed_sized_for_print_and_has_no_text_element() {
    for payload in samples() {
        for o in option_sets() {
            let svg = card_svg(&payload, &o).unwrap();
            let l = card_layout(&payload, &o).unwrap();
            let tree = usvg::Tree::from_str(&svg, &usvg::Options::default())
                .unwrap_or_else(|e| panic!("not a valid SVG ({e}): {svg}"));
            // 101.6 mm at usvg's 96 dpi is 384 px; 147.32 mm is 556.8 px.
            let size = tree.size();
            assert!((size.width() - 384.0).abs() < 0.01, "{size:?}");
            assert!((size.height() - 556.8).abs() < 0.01, "{size:?}");
            assert!(svg.contains(&format!(
                "width=\"101.6mm\" height=\"147.32mm\" viewBox=\"0 0 {} {}\"",
                l.width, l.height
            )));
            assert!(!svg.contains("<text"), "a <text> element");
            assert!(svg.is_ascii());
            // The QR: a path of black modules on the whole-pixel grid, crisp.
            let qr = svg
                .split("<path fill=\"#000000\" shape-rendering=\"crispEdges\" d=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("the QR's path");
            assert!(qr.starts_with('M') && qr.ends_with('z'), "{qr}");
            assert!(
                qr.chars()
                    .all(|c| c.is_ascii_digit() || "Mhvz- ".contains(c)),
                "{qr}"
            );
            let logos = usize::from(o.header_logo.is_some())
                + usize::from(matches!(o.centre_icon, CentreIcon::Custom(_)));
            assert_eq!(svg.matches("data:image/png;base64,").count(), logos);
            // Same input, same bytes.
            assert_eq!(svg, card_svg(&payload, &o).unwrap());
        }
    }
}

/// The errors are `card_png`'s.
#[test]
fn svg_refuses_what_the_png_refuses() {
    let payload = &samples()[0];
    for o in [
        CardOptions::default().scale(0),
        CardOptions::default().scale(11),
        CardOptions::default().centre_icon(CentreIcon::Custom(b"not a png".to_vec())),
        CardOptions::default().header_logo(b"\x89PNG".to_vec()),
    ] {
        let png = card_png(payload, &o).unwrap_err();
        assert_eq!(card_svg(payload, &o).unwrap_err(), png);
    }
    for bad in ["", "nonsense", "000201"] {
        let o = CardOptions::default();
        assert_eq!(
            card_svg(bad, &o).unwrap_err(),
            card_png(bad, &o).unwrap_err()
        );
    }
}

/// Bounds for `svg_draws_the_png_card`: mean absolute differences in grey
/// levels (0–255). Measured on the 4 samples × 5 option sets: whole card
/// 0.001–0.010, text band 0.001–0.046, where the PNG's band against an empty
/// (white) band is 3.0–14.6. Both fill the same glyph outlines with tiny-skia
/// (the SVG's coordinates are rounded to 1/100 pixel, and resvg parses and
/// fills them independently); the QR is compared exactly.
const MAD_CARD: f64 = 0.05;
const MAD_TEXT: f64 = 0.25;
/// The text band's difference must stay under this share of what an empty
/// band would differ: measured at most 0.0032.
const TEXT_SHARE: f64 = 0.03;

/// The rasterised SVG is the PNG card: the QR outside the badge pixel for
/// pixel, the whole card and the text within a few grey levels. The text
/// survives: its band differs from the PNG's far less than an empty band
/// would (the same band painted white; without text paths the share would
/// be 1).
#[test]
fn svg_draws_the_png_card() {
    let mut report = Vec::new();
    for payload in samples() {
        for o in option_sets() {
            let l = card_layout(&payload, &o).unwrap();
            let png = Grey::from_png(&card_png(&payload, &o).unwrap());
            let svg = rasterise(&card_svg(&payload, &o).unwrap(), l.width, l.height, 1);
            let all = PxRect {
                x: 0,
                y: 0,
                width: l.width,
                height: l.height,
            };
            let band = PxRect {
                x: 0,
                y: l.header.bottom(),
                width: l.width,
                height: l.separator.y - l.header.bottom(),
            };
            let white = Grey {
                px: vec![255; png.px.len()],
                ..png.clone()
            };
            let (card, text, empty) = (
                mad(&png, &svg, all),
                mad(&png, &svg, band),
                mad(&png, &white, band),
            );
            report.push(format!(
                "{}, scale {}, icon {}: card {card:.3}, text {text:.3}, empty text {empty:.3}",
                &payload[payload.len() - 4..],
                o.scale,
                icon_name(&o.centre_icon)
            ));
            assert!(card < MAD_CARD, "{}", report.join("\n"));
            assert!(text < MAD_TEXT, "{}", report.join("\n"));
            assert!(text < TEXT_SHARE * empty, "{}", report.join("\n"));
            // The QR with its quiet zone, outside the badge: identical.
            let q = l.qr;
            for y in q.y..q.bottom() {
                for x in q.x..q.right() {
                    if l.icon.is_some_and(|b| b.contains(x, y)) {
                        continue;
                    }
                    let i = y as usize * png.width + x as usize;
                    assert_eq!(png.px[i], svg.px[i], "QR pixel ({x}, {y}), {o:?}");
                }
            }
        }
    }
    println!("{}", report.join("\n"));
}

/// The least share (percent) each decoder must read, `[rqrr, rxing, zbar]`:
/// the PNG card's bars in tests/scan.rs (`floor` for a card), so the SVG
/// reads at least as well as the PNG: 100% clean; the phone ≥ 95% rxing,
/// ≥ 90% zbar; blur σ 2 ≥ 90% rxing (issue 9). rqrr's floors there are its
/// measured rates (no perspective-tolerant sampling, a global binariser).
fn floor(c: Condition) -> [usize; 3] {
    match c {
        Condition::Clean => [100, 100, 100],
        Condition::Blur2 => [30, 90, 45],
        Condition::Phone => [30, 95, 90],
        _ => [75, 97, 95],
    }
}

/// The default card (scale 2, currency badge) as SVG for every card payload
/// of the scan corpus, rasterised by resvg at the PNG's size (600 × 870) and
/// at 300 dpi (1200 × 1740, 2×), read back by rqrr, rxing and zbar: clean
/// (framed to the QR and its quiet zone, as tests/scan.rs frames the PNG)
/// and under the phone combination at both sizes, and under blur σ 2 at the
/// PNG's size (the conditions take the whole card and scale it so that the
/// symbol is 200 / 250 px wide, so at 300 dpi blur σ 2 would repeat the same
/// images; seeded as in tests/scan.rs).
#[test]
fn svg_card_scans_at_png_size_and_300_dpi() {
    require_zbar();
    let corpus = support::scan::corpus(&common::vectors_dir());
    let o = CardOptions::default();
    let payloads: Vec<String> = corpus
        .into_iter()
        .filter(|p| card_layout(p, &o).is_ok())
        .collect();
    let n = payloads.len();
    assert!(n >= 100, "{n} card payloads");
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for k in [1, 2] {
        let drawn = support::scan::par_map(&payloads, |p| {
            let l = card_layout(p, &o).unwrap();
            let img = rasterise(&card_svg(p, &o).unwrap(), l.width, l.height, k);
            let framed = crop(&img, l.qr, k);
            (img, framed, l.modules * l.module_px * k)
        });
        let conditions: &[Condition] = if k == 1 {
            &[Condition::Clean, Condition::Phone, Condition::Blur2]
        } else {
            &[Condition::Clean, Condition::Phone]
        };
        for &c in conditions {
            let indexed: Vec<_> = drawn.iter().enumerate().collect();
            let images = support::scan::par_map(&indexed, |(i, (img, framed, symbol))| {
                if c == Condition::Clean {
                    framed.clone()
                } else {
                    c.apply(img, *symbol, *i as u64)
                }
            });
            let expected: Vec<&str> = payloads.iter().map(String::as_str).collect();
            let got = Decoder::ALL.map(|d| {
                read_all(d, &images, &expected, "svg")
                    .into_iter()
                    .filter(|&ok| ok)
                    .count()
            });
            let dpi = 150 * k;
            report.push(format!(
                "SVG card at {dpi} dpi, {:>9}: rqrr {:>3}  rxing {:>3}  zbar {:>3}  of {n}",
                c.name(),
                got[0],
                got[1],
                got[2]
            ));
            for ((d, g), m) in Decoder::ALL.iter().zip(got).zip(floor(c)) {
                if g * 100 < m * n {
                    failures.push(format!(
                        "{dpi} dpi / {} / {}: {g} of {n}, below {m}%",
                        c.name(),
                        d.name()
                    ));
                }
            }
        }
    }
    println!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "{}\n\n{}",
        failures.join("\n"),
        report.join("\n")
    );
}

/// Chromium (Skia, a renderer apart from resvg and tiny-skia) draws the SVG
/// from a file, as a print shop's tools would open it: a headless screenshot
/// at 150 and 300 dpi of the printed size (device scale 1.5625 and 3.125 on
/// 96 CSS px per inch), read back by all three decoders. Chromium comes from
/// Debian (`apt-get install chromium`, as .ci/run does; `KHQR_CHROMIUM`
/// points elsewhere); the test fails with that hint when it is missing.
#[test]
fn chromium_draws_a_card_that_scans() {
    let chromium = std::env::var("KHQR_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let found = std::process::Command::new(&chromium)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{chromium} not found: install Debian's chromium (`apt-get install chromium`, as \
         .ci/run does) or set KHQR_CHROMIUM to its path"
    );
    let dir = support::scan::scratch("svg-chromium");
    std::fs::create_dir_all(&dir).unwrap();
    // Every scale and icon: at 150 and 300 dpi the zoom from card pixels is
    // whole for some (scale 2: 1 and 2) and fractional for others (scale 3:
    // 2/3 and 4/3), where crispEdges keeps the modules sharp.
    let options = [
        CardOptions::default(),
        CardOptions::default()
            .scale(1)
            .centre_icon(CentreIcon::BakongRed),
        CardOptions::default()
            .scale(3)
            .centre_icon(CentreIcon::None),
        CardOptions::default()
            .scale(4)
            .centre_icon(CentreIcon::Custom(logo_png(64, 64))),
    ];
    let payloads = samples();
    let mut images = Vec::new();
    let mut expected = Vec::new();
    for (i, (p, o)) in payloads.iter().zip(&options).enumerate() {
        let file = dir.join(format!("card{i}.svg"));
        std::fs::write(&file, card_svg(p, o).unwrap()).unwrap();
        for (dpi, zoom) in [(150, "1.5625"), (300, "3.125")] {
            let shot = dir.join(format!("card{i}-{dpi}.png"));
            let out = std::process::Command::new(&chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--no-first-run",
                    "--window-size=384,557",
                    &format!("--force-device-scale-factor={zoom}"),
                    &format!("--user-data-dir={}", dir.join("profile").display()),
                    &format!("--screenshot={}", shot.display()),
                ])
                .arg(format!("file://{}", file.display()))
                .output()
                .expect("chromium runs");
            let png = std::fs::read(&shot).unwrap_or_else(|e| {
                panic!(
                    "no screenshot ({e}): {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            let img = Grey::from_png(&png);
            // 4 inches at `dpi`: 600 or 1200 pixels wide.
            assert_eq!(img.width, 4 * dpi, "{dpi} dpi");
            images.push(img);
            expected.push(p.as_str());
        }
    }
    let mut failures = Vec::new();
    for d in Decoder::ALL {
        let ok = read_all(d, &images, &expected, "svg-chromium");
        for (i, ok) in ok.iter().enumerate() {
            if !ok {
                failures.push(format!(
                    "{} / card {} (scale {}) at {} dpi",
                    d.name(),
                    i / 2,
                    options[i / 2].scale,
                    150 * (1 + i % 2)
                ));
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        failures.is_empty(),
        "not read back:\n{}",
        failures.join("\n")
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Any merchant name of 1–99 characters (Latin, XML's special characters,
    /// Khmer, combining marks, CJK) gives a well-formed, ASCII, text-free SVG
    /// exactly when the PNG card can be drawn, else the PNG's error.
    #[test]
    fn any_name_gives_a_well_formed_svg_or_the_png_error(
        name in "[a-zA-Z0-9 <>&\"'…\u{1780}-\u{17FF}\u{0300}-\u{036F}\u{4E00}-\u{4E20}]{1,99}"
    ) {
        let len = name.chars().count();
        let payload = format!("000201010211530384059{len:02}{name}5802KH63040000");
        let o = CardOptions::default().scale(1);
        match (card_svg(&payload, &o), card_png(&payload, &o)) {
            (Ok(svg), Ok(_)) => {
                proptest::prop_assert!(usvg::Tree::from_str(&svg, &usvg::Options::default()).is_ok());
                proptest::prop_assert!(svg.is_ascii() && !svg.contains("<text"));
            }
            (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b),
            (a, b) => proptest::prop_assert!(false, "svg {:?} but png {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }

    /// Any text at all: no panic, and the PNG's answer.
    #[test]
    fn any_text_is_answered_like_the_png(payload in "\\PC{0,120}") {
        let o = CardOptions::default().scale(1);
        proptest::prop_assert_eq!(
            card_svg(&payload, &o).map(|_| ()),
            card_png(&payload, &o).map(|_| ())
        );
    }
}
