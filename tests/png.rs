//! The QR PNG scans back to the exact payload with an independent reader (rqrr).

use bakong_khqr::render::{qr_png, Ecc, QrMatrix, QrOptions};
use bakong_khqr::{verify, Currency, Request};

const NOW: u64 = 1_700_000_000_000;

/// Decodes a PNG (any bit depth the `png` crate expands to 8-bit grey or RGB(A))
/// and reads the QR in it with rqrr.
fn scan(png_bytes: &[u8]) -> (u32, u32, Vec<String>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let grey = |x: usize, y: usize| buf[(y * w + x) * channels];
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, grey);
    let texts = img
        .detect_grids()
        .into_iter()
        .map(|g| g.decode().expect("QR decodes").1)
        .collect();
    (info.width, info.height, texts)
}

fn payloads() -> Vec<(&'static str, String)> {
    let ascii = Request::individual("jonhsmith@nbcq", "Jonh Smith")
        .merchant_city("Phnom Penh")
        .currency(Currency::Usd)
        .amount("1.5")
        .expires_in_ms(60_000)
        .generate(NOW)
        .unwrap();
    let khmer = Request::individual("jonhsmith@nbcq", "Jonh Smith")
        .language_preference("km")
        .merchant_name_alternate_language("ចន ស្មីន")
        .merchant_city_alternate_language("ភ្នំពេញ")
        .generate(NOW)
        .unwrap();
    // Every field at its longest that still fits two-digit template lengths.
    let longest = Request::merchant(bakong_khqr::MerchantInfo {
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
    .language_preference("km")
    .merchant_name_alternate_language("ហ".repeat(25))
    .merchant_city_alternate_language("ព".repeat(15))
    .upi_merchant_account("U".repeat(99))
    .merchant_category_code("5411")
    .generate(NOW)
    .unwrap();
    vec![
        ("ascii", ascii.into_string()),
        ("khmer", khmer.into_string()),
        ("longest", longest.into_string()),
    ]
}

#[test]
fn png_scans_back_to_the_exact_payload() {
    for (name, payload) in payloads() {
        verify(&payload, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        for ecc in [Ecc::M, Ecc::H] {
            let options = QrOptions::default().ecc(ecc);
            let png = qr_png(&payload, &options).unwrap();
            let (w, h, texts) = scan(&png);
            assert_eq!(texts, vec![payload.clone()], "{name} {ecc:?}");
            let size = QrMatrix::encode(&payload, ecc).unwrap().size() as u32;
            assert_eq!(
                (w, h),
                ((size + 8) * 10, (size + 8) * 10),
                "{name}: 10 px/module + quiet zone"
            );
        }
    }
}

#[test]
fn png_is_one_bit_grey_deterministic_and_scaled() {
    let (_, payload) = payloads().remove(0);
    let a = qr_png(&payload, &QrOptions::default()).unwrap();
    let b = qr_png(&payload, &QrOptions::default()).unwrap();
    assert_eq!(a, b, "identical bytes on every run");
    let info = png::Decoder::new(std::io::Cursor::new(&a))
        .read_info()
        .unwrap()
        .info()
        .clone();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::One);
    let small = qr_png(&payload, &QrOptions::default().module_px(3)).unwrap();
    let (w, _, texts) = scan(&small);
    let size = QrMatrix::encode(&payload, Ecc::M).unwrap().size() as u32;
    assert_eq!(w, (size + 8) * 3);
    assert_eq!(texts, vec![payload.clone()]);
    // Each module is a solid square of module_px pixels: the top-left finder
    // pattern's corner module is dark, the quiet zone light.
    let m = QrMatrix::encode(&payload, Ecc::M).unwrap();
    assert!(m.is_dark(0, 0) && m.is_dark(6, 6) && !m.is_dark(7, 7));
    assert!(!m.is_dark(m.size(), 0), "outside the symbol is light");
}

#[test]
fn bad_options_and_oversized_payloads_are_errors() {
    use bakong_khqr::render::RenderError;
    let e = qr_png("x", &QrOptions::default().module_px(0)).unwrap_err();
    assert!(matches!(e, RenderError::InvalidOption(_)));
    let e = qr_png("x", &QrOptions::default().quiet_zone(101)).unwrap_err();
    assert!(matches!(e, RenderError::InvalidOption(_)));
    let huge = "x".repeat(3000);
    assert_eq!(
        qr_png(&huge, &QrOptions::default()).unwrap_err(),
        RenderError::TooLong { bytes: 3000 }
    );
}

#[test]
fn huge_images_are_refused_before_allocating() {
    use bakong_khqr::render::{RenderError, MAX_SIDE_PX};
    let long = "x".repeat(2000);
    let opts = QrOptions::default().module_px(100).quiet_zone(100);
    assert!(matches!(
        qr_png(&long, &opts),
        Err(RenderError::InvalidOption(_))
    ));
    let coloured = opts.colours([0, 0, 128], [255, 255, 255]);
    assert!(matches!(
        qr_png(&long, &coloured),
        Err(RenderError::InvalidOption(_))
    ));
    // Version 1 (21 modules) at 100 px: a quiet zone of 30 modules makes
    // 8 100 px, within the limit; 31 makes 8 300 px, over it.
    assert_eq!(QrMatrix::encode("x", Ecc::M).unwrap().size(), 21);
    const { assert!(MAX_SIDE_PX >= 8100 && MAX_SIDE_PX < 8300) };
    let at = QrOptions::default().module_px(100);
    assert!(qr_png("x", &at.quiet_zone(30)).is_ok());
    assert!(matches!(
        qr_png("x", &at.quiet_zone(31)),
        Err(RenderError::InvalidOption(_))
    ));
}
