//! The scannability harness: three independent QR decoders (rqrr, rxing — the
//! Rust port of `ZXing` — and zbar's `zbarimg`), deterministic camera-like
//! conditions written here, and the corpus of payloads the read rates are
//! measured on. Shared by `tests/scan.rs` and `benches/scan_report.rs`.

#![allow(
    dead_code,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::many_single_char_names,
    clippy::similar_names
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use bakong_khqr::{Currency, MerchantInfo, Request};

/// A greyscale image, 8 bits per pixel, rows top to bottom.
#[derive(Clone)]
pub struct Grey {
    pub width: usize,
    pub height: usize,
    pub px: Vec<u8>,
}

impl Grey {
    /// Decodes a PNG of any colour type, composited over white.
    #[must_use]
    pub fn from_png(bytes: &[u8]) -> Grey {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("PNG data");
        let (w, h) = (info.width as usize, info.height as usize);
        let n = info.color_type.samples();
        let px = buf[..w * h * n]
            .chunks_exact(n)
            .map(|p| {
                let (r, g, b, a) = match *p {
                    [v] => (v, v, v, 255),
                    [v, a] => (v, v, v, a),
                    [r, g, b] => (r, g, b, 255),
                    [r, g, b, a] => (r, g, b, a),
                    _ => unreachable!(),
                };
                let lum = (u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114) / 1000;
                let a = u32::from(a);
                ((lum * a + 255 * (255 - a)) / 255) as u8
            })
            .collect();
        Grey {
            width: w,
            height: h,
            px,
        }
    }

    fn at(&self, x: usize, y: usize) -> u8 {
        self.px[y * self.width + x]
    }

    /// Bilinear sample at `(x, y)` in pixel-centre coordinates; white outside.
    fn sample(&self, x: f32, y: f32) -> f32 {
        let (x, y) = (x - 0.5, y - 0.5);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let get = |xi: f32, yi: f32| -> f32 {
            if xi < 0.0 || yi < 0.0 || xi >= self.width as f32 || yi >= self.height as f32 {
                255.0
            } else {
                f32::from(self.at(xi as usize, yi as usize))
            }
        };
        let a = get(x0, y0) * (1.0 - fx) + get(x0 + 1.0, y0) * fx;
        let b = get(x0, y0 + 1.0) * (1.0 - fx) + get(x0 + 1.0, y0 + 1.0) * fx;
        a * (1.0 - fy) + b * fy
    }
}

// ---------------------------------------------------------------- conditions

/// Area (box) downscale by `k` < 1: each output pixel is the exact
/// area-weighted mean of the input pixels it covers, as a camera sensor does.
#[must_use]
pub fn area_scale(img: &Grey, k: f64) -> Grey {
    if k >= 1.0 {
        return img.clone();
    }
    let ow = ((img.width as f64 * k).round() as usize).max(1);
    let oh = ((img.height as f64 * k).round() as usize).max(1);
    let (sx, sy) = (img.width as f64 / ow as f64, img.height as f64 / oh as f64);
    // Horizontal pass into f32 rows, then vertical.
    let weights = |n_out: usize, s: f64, n_in: usize| -> Vec<Vec<(usize, f32)>> {
        (0..n_out)
            .map(|o| {
                let (a, b) = (o as f64 * s, ((o + 1) as f64 * s).min(n_in as f64));
                let mut w = Vec::new();
                let mut i = a.floor() as usize;
                while (i as f64) < b && i < n_in {
                    let lo = a.max(i as f64);
                    let hi = b.min((i + 1) as f64);
                    if hi > lo {
                        w.push((i, ((hi - lo) / s) as f32));
                    }
                    i += 1;
                }
                w
            })
            .collect()
    };
    let wx = weights(ow, sx, img.width);
    let wy = weights(oh, sy, img.height);
    let mut tmp = vec![0f32; ow * img.height];
    for y in 0..img.height {
        let row = &img.px[y * img.width..(y + 1) * img.width];
        for (ox, ws) in wx.iter().enumerate() {
            tmp[y * ow + ox] = ws.iter().map(|&(i, w)| f32::from(row[i]) * w).sum();
        }
    }
    let mut px = vec![0u8; ow * oh];
    for (oy, ws) in wy.iter().enumerate() {
        for ox in 0..ow {
            let v: f32 = ws.iter().map(|&(i, w)| tmp[i * ow + ox] * w).sum();
            px[oy * ow + ox] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Grey {
        width: ow,
        height: oh,
        px,
    }
}

/// Separable gaussian blur of standard deviation `sigma` pixels (edges clamped).
#[must_use]
pub fn blur(img: &Grey, sigma: f32) -> Grey {
    let r = (3.0 * sigma).ceil() as isize;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    for v in &mut k {
        *v /= sum;
    }
    let (w, h) = (img.width as isize, img.height as isize);
    let mut tmp = vec![0f32; img.px.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let xx = (x + j as isize - r).clamp(0, w - 1);
                acc += kv * f32::from(img.px[(y * w + xx) as usize]);
            }
            tmp[(y * w + x) as usize] = acc;
        }
    }
    let mut px = vec![0u8; img.px.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let yy = (y + j as isize - r).clamp(0, h - 1);
                acc += kv * tmp[(yy * w + x) as usize];
            }
            px[(y * w + x) as usize] = acc.round().clamp(0.0, 255.0) as u8;
        }
    }
    Grey { px, ..*img }
}

/// JPEG at `quality` (1–100) and back, through the `image` crate's codec.
#[must_use]
pub fn jpeg(img: &Grey, quality: u8) -> Grey {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .encode(
            &img.px,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::L8,
        )
        .expect("JPEG encode");
    let back = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
        .expect("JPEG decode")
        .to_luma8();
    Grey {
        width: back.width() as usize,
        height: back.height() as usize,
        px: back.into_raw(),
    }
}

/// The picture of a plane turned `degrees` about its vertical centre line, seen
/// by a pinhole camera at a distance of 1.5 image widths: the near side grows,
/// the far side shrinks. Same canvas size, white where nothing is seen.
#[must_use]
pub fn tilt(img: &Grey, degrees: f32) -> Grey {
    let (s, c) = degrees.to_radians().sin_cos();
    let f = 1.5 * img.width as f32;
    let (cx, cy) = (img.width as f32 / 2.0, img.height as f32 / 2.0);
    let mut px = vec![0u8; img.px.len()];
    for y in 0..img.height {
        for x in 0..img.width {
            let (xp, yp) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            // Inverse of x' = f·dx·cos / (f + dx·sin), y' = f·dy / (f + dx·sin).
            let den = f * c - xp * s;
            let v = if den <= 0.0 {
                255.0
            } else {
                let dx = xp * f / den;
                let dy = yp * (f + dx * s) / f;
                img.sample(dx + cx, dy + cy)
            };
            px[y * img.width + x] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Grey { px, ..*img }
}

/// Dim light with low contrast: black reads 60, white 150.
#[must_use]
pub fn dim(img: &Grey) -> Grey {
    let px = img
        .px
        .iter()
        .map(|&v| (60.0 + f32::from(v) * (90.0 / 255.0)).round() as u8)
        .collect();
    Grey { px, ..*img }
}

/// A small deterministic generator (`SplitMix64`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
}

/// Gaussian sensor noise of standard deviation `sigma` grey levels, seeded.
#[must_use]
pub fn noise(img: &Grey, sigma: f32, seed: u64) -> Grey {
    let mut rng = Rng(seed);
    let px = img
        .px
        .iter()
        .map(|&v| {
            let (u1, u2) = (rng.unit(), rng.unit());
            let g = (-2.0 * u1.ln()).sqrt() * (core::f32::consts::TAU * u2).cos();
            (f32::from(v) + sigma * g).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    Grey { px, ..*img }
}

/// A camera-like condition applied to a rendered image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The PNG as rendered.
    Clean,
    /// Area-downscaled so that the symbol is 250 pixels wide.
    Px250,
    /// Area-downscaled so that the symbol is 150 pixels wide.
    Px150,
    /// Symbol 250 px, then gaussian blur σ = 1 px.
    Blur1,
    /// Symbol 250 px, then gaussian blur σ = 2 px.
    Blur2,
    /// Symbol 250 px, then JPEG quality 40.
    Jpeg40,
    /// Symbol 250 px, then a 15° perspective tilt.
    Tilt15,
    /// Symbol 250 px, then dim light: black 60, white 150.
    Dim,
    /// Symbol 250 px, then gaussian noise σ = 12 grey levels.
    Noise,
    /// The phone: symbol 200 px, 15° tilt, blur σ 1, dim, noise σ 8, JPEG 40.
    Phone,
}

impl Condition {
    pub const ALL: [Condition; 10] = [
        Condition::Clean,
        Condition::Px250,
        Condition::Px150,
        Condition::Blur1,
        Condition::Blur2,
        Condition::Jpeg40,
        Condition::Tilt15,
        Condition::Dim,
        Condition::Noise,
        Condition::Phone,
    ];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Condition::Clean => "clean",
            Condition::Px250 => "250 px",
            Condition::Px150 => "150 px",
            Condition::Blur1 => "blur σ1",
            Condition::Blur2 => "blur σ2",
            Condition::Jpeg40 => "JPEG 40",
            Condition::Tilt15 => "tilt 15°",
            Condition::Dim => "dim",
            Condition::Noise => "noise",
            Condition::Phone => "phone",
        }
    }

    /// Applies the condition to `img`, whose symbol (without quiet zone) is
    /// `symbol_px` pixels wide; `seed` picks the noise.
    #[must_use]
    pub fn apply(self, img: &Grey, symbol_px: u32, seed: u64) -> Grey {
        let to = |w: f64| area_scale(img, w / f64::from(symbol_px));
        match self {
            Condition::Clean => img.clone(),
            Condition::Px250 => to(250.0),
            Condition::Px150 => to(150.0),
            Condition::Blur1 => blur(&to(250.0), 1.0),
            Condition::Blur2 => blur(&to(250.0), 2.0),
            Condition::Jpeg40 => jpeg(&to(250.0), 40),
            Condition::Tilt15 => tilt(&to(250.0), 15.0),
            Condition::Dim => dim(&to(250.0)),
            Condition::Noise => noise(&to(250.0), 12.0, seed),
            Condition::Phone => {
                let t = tilt(&to(200.0), 15.0);
                jpeg(&noise(&dim(&blur(&t, 1.0)), 8.0, seed), 40)
            }
        }
    }
}

// ------------------------------------------------------------------ decoders

/// One of the independent decoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// `rqrr` (a Rust port of quirc).
    Rqrr,
    /// `rxing`, the Rust port of `ZXing`, with the try-harder hint.
    Rxing,
    /// zbar's `zbarimg` program.
    Zbar,
}

impl Decoder {
    pub const ALL: [Decoder; 3] = [Decoder::Rqrr, Decoder::Rxing, Decoder::Zbar];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Decoder::Rqrr => "rqrr",
            Decoder::Rxing => "rxing",
            Decoder::Zbar => "zbar",
        }
    }
}

/// The texts rqrr reads in `img`.
#[must_use]
pub fn rqrr_read(img: &Grey) -> Vec<String> {
    let mut p =
        rqrr::PreparedImage::prepare_from_greyscale(img.width, img.height, |x, y| img.at(x, y));
    p.detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok().map(|(_, s)| s))
        .collect()
}

/// The text rxing reads in `img`, if any.
#[must_use]
pub fn rxing_read(img: &Grey) -> Vec<String> {
    let mut hints = rxing::DecodeHints::default().with(rxing::DecodeHintValue::TryHarder(true));
    rxing::helpers::detect_in_luma_with_hints(
        img.px.clone(),
        img.width as u32,
        img.height as u32,
        Some(rxing::BarcodeFormat::QR_CODE),
        &mut hints,
    )
    .map(|r| vec![r.getText().to_owned()])
    .unwrap_or_default()
}

/// Fails with the install hint when `zbarimg` is missing.
pub fn require_zbar() {
    let ok = Command::new("zbarimg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "zbarimg not found: the scan tests need zbar. Install it with \
         `apt-get install zbar-tools` (Debian/Ubuntu) and run again."
    );
}

/// The text of the separator images between the images of a `zbarimg` batch.
const SEPARATOR: &str = "KHQR-SCAN-SEPARATOR";

/// Reads every image with one `zbarimg` process (its start-up costs more than
/// a decode): returns, per image, the texts zbar read, with zbar's default
/// text conversion (what a phone app built on zbar shows). zbar's `--xml`
/// output is not used: in zbar 0.23 it returns other bytes for UTF-8 text.
/// Its plain output does not say which file a line came from, so a clean
/// separator symbol is read between every two images.
#[must_use]
pub fn zbar_read_all(images: &[Grey], dir: &Path) -> Vec<Vec<String>> {
    if images.is_empty() {
        return Vec::new();
    }
    std::fs::create_dir_all(dir).expect("scratch dir");
    let write = |name: &str, img: &Grey| {
        let p = dir.join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).expect("pgm"));
        write!(f, "P5\n{} {}\n255\n", img.width, img.height).expect("pgm");
        f.write_all(&img.px).expect("pgm");
        f.flush().expect("pgm");
        p
    };
    let sep_png = bakong_khqr::render::qr_png(
        SEPARATOR,
        &bakong_khqr::render::QrOptions::default().module_px(4),
    )
    .expect("separator");
    let sep = write("sep.pgm", &Grey::from_png(&sep_png));
    let mut files = Vec::with_capacity(images.len() * 2);
    for (i, img) in images.iter().enumerate() {
        files.push(write(&format!("{i}.pgm"), img));
        files.push(sep.clone());
    }
    let out = Command::new("zbarimg")
        .args(["--raw", "-q", "-Sdisable", "-Sqrcode.enable"])
        .args(&files)
        .output()
        .unwrap_or_else(|e| {
            panic!("zbarimg could not run ({e}): install it with `apt-get install zbar-tools`")
        });
    // `--raw` ends every symbol's text with a newline; a text may hold
    // newlines itself, so the lines between two separators are one text
    // (every image holds one symbol).
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result: Vec<Vec<String>> = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line == SEPARATOR {
            result.push(if lines.is_empty() {
                Vec::new()
            } else {
                vec![lines.join("\n")]
            });
            lines.clear();
        } else {
            lines.push(line);
        }
    }
    assert_eq!(
        result.len(),
        images.len(),
        "zbarimg missed a separator symbol: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    files.dedup();
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    result
}

/// A scratch directory under the target dir, unique to this process and `tag`.
#[must_use]
pub fn scratch(tag: &str) -> PathBuf {
    let base =
        std::env::var_os("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    base.join(format!("khqr-scan-{}-{tag}", std::process::id()))
}

/// Decodes every image with `decoder`; per image, whether `expected[i]` was
/// read back byte for byte. rqrr and rxing run on `threads` threads.
#[must_use]
pub fn read_all(decoder: Decoder, images: &[Grey], expected: &[&str], tag: &str) -> Vec<bool> {
    assert_eq!(images.len(), expected.len());
    let texts: Vec<Vec<String>> = match decoder {
        Decoder::Zbar => zbar_read_all(images, &scratch(tag)),
        Decoder::Rqrr => par_map(images, rqrr_read),
        Decoder::Rxing => par_map(images, rxing_read),
    };
    texts
        .iter()
        .zip(expected)
        .map(|(t, e)| t.iter().any(|s| s == e))
        .collect()
}

/// `f` over `items` on every available core, results in order.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = items.len().div_ceil(n).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

// -------------------------------------------------------------------- corpus

const NOW: u64 = 1_700_000_000_000;

/// The payloads the rates are measured on: every QR string of the golden
/// vectors (`$KHQR_VECTORS` or `tests/data`, as the other tests read
/// them; real bank samples, generated and verify vectors, deduplicated) plus
/// payloads made here for the cases the vectors miss. `card_ok` filters to the
/// ones a card can show.
#[must_use]
pub fn corpus(vectors: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in ["real-samples.jsonl", "generate.jsonl", "verify.jsonl"] {
        let path = vectors.join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (set KHQR_VECTORS)", path.display()));
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            if let Some(qr) = v["qr"].as_str().or(v["expect"]["qr"].as_str()) {
                if !out.iter().any(|q| q == qr) {
                    out.push(qr.to_owned());
                }
            }
        }
    }
    out.extend(generated());
    out
}

/// Payloads made with the crate's generator: static and dynamic, USD and KHR,
/// Latin, accented Latin and Khmer names, and the longest fields allowed.
#[must_use]
pub fn generated() -> Vec<String> {
    let names = [
        "Jonh Smith",
        "Café Crème Brûlée",
        "Điện Thoại Nguyễn Văn",
        "ហាងកាហ្វេភ្នំពេញស្រីស្អាត",
        "សុខ សៅ",
        "ABCDEFGHIJKLMNOPQRSTUVWXY",
    ];
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for currency in [Currency::Usd, Currency::Khr] {
            let amount = if currency == Currency::Usd {
                "1234.56"
            } else {
                "1250000"
            };
            let s = Request::individual("jonhsmith@nbcq", *name)
                .currency(currency)
                .generate(NOW)
                .expect("static");
            out.push(s.as_str().to_owned());
            let d = Request::merchant(MerchantInfo {
                bakong_account_id: "shop_12345@aclb",
                merchant_name: *name,
                merchant_id: "M-0001",
                acquiring_bank: "ACLEDA",
            })
            .merchant_city(if i % 2 == 0 {
                "Siem Reap"
            } else {
                "សៀមរាប"
            })
            .currency(currency)
            .amount(amount)
            .bill_number("INV-2024-000123")
            .expires_in_ms(600_000)
            .generate(NOW)
            .expect("dynamic");
            out.push(d.as_str().to_owned());
        }
    }
    // The longest: every text field at its limit, tag 62 filled to 99.
    let long = Request::merchant(MerchantInfo {
        bakong_account_id: "abcdefghijklmnopqrstuvwxyz012@ab",
        merchant_name: "ហាងកាហ្វេភ្នំពេញស្រីស្អាត",
        merchant_id: "M123456789012345678901234567890X",
        acquiring_bank: "Advanced Bank of Asia Limited AB",
    })
    .merchant_city("ភ្នំពេញភ្នំពេញភ្ន")
    .currency(Currency::Khr)
    .amount("9999999999999")
    .bill_number("BILL-0123456789-0123456789")
    .mobile_number("85512345678901234567890")
    .store_label("Store ឆ្នាំ២០២៤ Phnom")
    .terminal_label("T-01")
    .upi_merchant_account("UPI")
    .expires_in_ms(600_000);
    for cut in 0..8 {
        // Shorten step by step until the generator accepts it (limits are
        // checked by the generator, which is the source of truth).
        let mut r = long.clone();
        if cut > 0 {
            r = r.merchant_city("Phnom Penh");
        }
        if cut > 1 {
            r = r.bill_number("BILL-0123456789-012345678");
        }
        if cut > 2 {
            r = r.mobile_number("8551234567890123456789012");
        }
        if cut > 3 {
            r = r.store_label("Store ២០២៤");
        }
        if let Ok(k) = r.generate(NOW) {
            out.push(k.as_str().to_owned());
            break;
        }
    }
    out
}
