//! Prints the read-rate table of the KHQR images: decoder × camera condition ×
//! variant (the plain QR; the card at scales 1–4 with each centre icon), over
//! the corpus the scan tests use (the golden vectors' QR strings plus the
//! generated payloads).
//!
//! ```text
//! cargo run --release --example scan_report --features render [-- OPTIONS]
//!   --variants default|all|scaleN   the plain QR and the default card (default),
//!                            every variant, or every icon at scale N
//!   --every N                scan every Nth payload only (default 1)
//! ```
//!
//! Needs zbar's `zbarimg` (`apt-get install zbar-tools`). Each cell is
//! `rqrr / rxing / zbar`: the payloads read back byte for byte, as a count
//! out of the variant's corpus.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use support::scan::{read_all, require_zbar, Condition, Decoder};
use support::variants::{Icon, Variant};

fn main() {
    require_zbar();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let every: usize = opt("--every").map_or(1, |s| s.parse().expect("--every N"));
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
    let corpus = support::scan::corpus(&common::vectors_dir());
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
        print!("| {} ({}) |", v.name(), payloads.len());
        for c in Condition::ALL {
            let images = support::scan::par_map(
                &drawn.iter().enumerate().collect::<Vec<_>>(),
                |(i, (img, symbol))| c.apply(img, *symbol, *i as u64),
            );
            let counts: Vec<String> = Decoder::ALL
                .iter()
                .map(|&d| {
                    let ok = read_all(d, &images, &payloads, "report");
                    ok.iter().filter(|&&b| b).count().to_string()
                })
                .collect();
            print!(" {} |", counts.join(" / "));
        }
        println!();
    }
}
