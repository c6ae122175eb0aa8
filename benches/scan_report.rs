//! Prints the read-rate table of the KHQR images: decoder × camera condition ×
//! variant (the plain QR; the card at scales 1–4 with each centre icon), over
//! the corpus the scan tests use (the golden vectors' QR strings plus the
//! generated payloads).
//!
//! ```text
//! cargo bench --bench scan_report --features render [-- OPTIONS]
//!   --variants default|all|scaleN   the plain QR and the default card (default),
//!                            every variant, or every icon at scale N
//!   --every N                scan every Nth payload only (default 1)
//!   --dump-corpus FILE       write the corpus to FILE and stop: one payload a
//!                            line, each a JSON string (a payload may hold a
//!                            newline)
//!   --images MANIFEST        also scan images made elsewhere (for instance
//!                            the Python card, scripts/python-card/run.sh):
//!                            MANIFEST has one JSON object a line,
//!                            {"payload", "file", "symbol_px"}, `file`
//!                            relative to MANIFEST's folder
//!   --label TEXT             the name of those images in the table
//!                            (default "external")
//!   --fit symbol|card        what the conditions scale to (default symbol,
//!                            see below)
//! ```
//!
//! Needs zbar's `zbarimg` (`apt-get install zbar-tools`). Each cell is
//! `rqrr / rxing / zbar`: the payloads read back byte for byte, as a count
//! out of the variant's corpus.
//!
//! External images go through the same conditions as ours, normalised the
//! same way: every condition but "clean" scales an image so that its *symbol*
//! (the QR without its quiet zone, `symbol_px` wide in the file) is 250, 150
//! or 200 px wide. So the table compares the cards as printed with the same
//! symbol width and seen from the same distance; a symbol with more modules
//! then has smaller modules. An image already smaller than the target is not
//! upscaled. With `--fit card` every image is instead scaled as if its
//! symbol were 0.6 × the image's width: the cards are printed at the same
//! *card* width and seen from the same distance, 417 px wide for the 250-px
//! conditions, 250 px for "150 px", 333 px for the phone (0.6 is about our
//! default card's symbol share; a card whose QR fills more of its width then
//! has larger modules; the plain QR's PNG counts as its own card). An image
//! narrower than 417 px is first enlarged by repeating each pixel a whole
//! number of times, so that it can be scaled down to those widths. With
//! `--images`, three rows follow ours: every manifest entry; then our default
//! card and the external images on exactly the same payloads (the manifest's
//! payloads that our default card can show).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;

use support::scan::{read_all, require_zbar, Condition, Decoder, Grey};
use support::variants::{Icon, Variant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let corpus = support::scan::corpus(&common::vectors_dir());
    if let Some(file) = opt("--dump-corpus") {
        let mut text = String::new();
        for p in &corpus {
            text.push_str(&serde_json::to_string(p).expect("JSON string"));
            text.push('\n');
        }
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{file}: {e}"));
        eprintln!("{} payloads written to {file}", corpus.len());
        return;
    }
    require_zbar();
    let every: usize = opt("--every").map_or(1, |s| s.parse().expect("--every N"));
    let fit_card = match opt("--fit").as_deref() {
        None | Some("symbol") => false,
        Some("card") => true,
        Some(other) => panic!("--fit {other}: symbol or card"),
    };
    let row = |name: &str, payloads: &[&str], drawn: &[(Grey, u32)]| {
        print_row(name, payloads, drawn, fit_card);
    };
    let variants = match opt("--variants").as_deref() {
        Some("all") => Variant::all(),
        Some(scale) if scale.starts_with("scale") => {
            let scale = scale[5..].parse().expect("--variants scaleN");
            let mut v = vec![Variant::PlainQr];
            v.extend(Icon::ALL.map(|icon| Variant::Card { scale, icon }));
            v
        }
        _ => vec![Variant::PlainQr, Variant::DEFAULT_CARD],
    };
    print!("| variant (n) |");
    for c in Condition::ALL {
        print!(" {} |", c.name());
    }
    println!();
    print!("|---|");
    for _ in Condition::ALL {
        print!("---|");
    }
    println!();
    for v in &variants {
        let payloads: Vec<&str> = corpus
            .iter()
            .map(String::as_str)
            .filter(|p| v.accepts(p))
            .step_by(every)
            .collect();
        let drawn = support::scan::par_map(&payloads, |p| v.draw(p));
        row(&v.name(), &payloads, &drawn);
    }
    if let Some(manifest) = opt("--images") {
        let label = opt("--label").unwrap_or_else(|| "external".to_owned());
        let entries = load_manifest(Path::new(&manifest));
        let all: Vec<&(String, Grey, u32)> = entries.iter().step_by(every).collect();
        row(&label, &payloads_of(&all), &drawn_of(&all));
        // Side by side on exactly the same payloads: those our default card
        // can show and the other renderer drew.
        let both: Vec<&(String, Grey, u32)> = entries
            .iter()
            .filter(|(p, _, _)| Variant::DEFAULT_CARD.accepts(p))
            .step_by(every)
            .collect();
        let payloads: Vec<&str> = both.iter().map(|(p, _, _)| p.as_str()).collect();
        let ours = support::scan::par_map(&payloads, |p| Variant::DEFAULT_CARD.draw(p));
        row(
            &format!("{}, same payloads", Variant::DEFAULT_CARD.name()),
            &payloads,
            &ours,
        );
        row(
            &format!("{label}, same payloads"),
            &payloads,
            &drawn_of(&both),
        );
    }
}

/// One table row: `drawn[i]` (image, symbol width in pixels) shows
/// `payloads[i]`; every condition, every decoder. `fit_card`: scale to the
/// image's width instead of the symbol's (`--fit card`; "clean" is still the
/// image as drawn).
fn print_row(name: &str, payloads: &[&str], drawn: &[(Grey, u32)], fit_card: bool) {
    print!("| {name} ({}) |", payloads.len());
    for c in Condition::ALL {
        let images = support::scan::par_map(
            &drawn.iter().enumerate().collect::<Vec<_>>(),
            |(i, (img, symbol))| {
                if fit_card && c != Condition::Clean {
                    let big = enlarge(img);
                    c.apply(&big, card_fit(&big), *i as u64)
                } else {
                    c.apply(img, *symbol, *i as u64)
                }
            },
        );
        let counts: Vec<String> = Decoder::ALL
            .iter()
            .map(|&d| {
                let ok = read_all(d, &images, payloads, "report");
                ok.iter().filter(|&&b| b).count().to_string()
            })
            .collect();
        print!(" {} |", counts.join(" / "));
    }
    println!();
}

/// The symbol width that makes the conditions scale `img` to a fixed image
/// width (`--fit card`): 0.6 × its width, in pixels.
fn card_fit(img: &Grey) -> u32 {
    u32::try_from(img.width * 3 / 5).expect("image width")
}

/// `img` with every pixel repeated k × k times, for the smallest whole k that
/// makes it at least 417 px wide (the widest `--fit card` target): the
/// conditions never upscale, and a whole-number repeat followed by their area
/// downscale gives the same picture as an exact resample of the original.
fn enlarge(img: &Grey) -> Grey {
    let k = 417usize.div_ceil(img.width).max(1);
    if k == 1 {
        return img.clone();
    }
    let w = img.width * k;
    let mut px = Vec::with_capacity(w * img.height * k);
    for row in img.px.chunks_exact(img.width) {
        let wide: Vec<u8> = row
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, k))
            .collect();
        for _ in 0..k {
            px.extend_from_slice(&wide);
        }
    }
    Grey {
        width: w,
        height: img.height * k,
        px,
    }
}

fn payloads_of<'a>(entries: &[&'a (String, Grey, u32)]) -> Vec<&'a str> {
    entries.iter().map(|(p, _, _)| p.as_str()).collect()
}

fn drawn_of(entries: &[&(String, Grey, u32)]) -> Vec<(Grey, u32)> {
    entries
        .iter()
        .map(|(_, img, w)| (img.clone(), *w))
        .collect()
}

/// The manifest's entries: payload, image, symbol width in pixels.
fn load_manifest(path: &Path) -> Vec<(String, Grey, u32)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("manifest: JSON line");
            let payload = v["payload"].as_str().expect("manifest: payload");
            let file = dir.join(v["file"].as_str().expect("manifest: file"));
            let symbol = v["symbol_px"].as_u64().expect("manifest: symbol_px");
            let png = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            (
                payload.to_owned(),
                Grey::from_png(&png),
                u32::try_from(symbol).expect("manifest: symbol_px"),
            )
        })
        .collect()
}
