//! Replays the committed seeds and regressions of the feature-gated fuzz targets
//! (`status_response`, `card`) through their oracles (`fuzz/src/feature_oracles.rs`),
//! on stable Rust, in the normal `cargo test`.

use std::fs;
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/feature_oracles.rs"]
mod feature_oracles;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_none())
        .collect();
    out.sort();
    out
}

fn replay(target: &str, oracle: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in [
        fuzz.join("seeds").join(target),
        fuzz.join("regressions").join(target),
    ] {
        for path in inputs(&dir) {
            let data = fs::read(&path).expect("readable input");
            let r = std::panic::catch_unwind(|| oracle(&data));
            assert!(r.is_ok(), "fuzz oracle failed on {}", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn status_response_seeds_and_regressions() {
    assert!(replay("status_response", feature_oracles::status_response_oracle) >= 10);
}

#[test]
fn card_seeds_and_regressions() {
    assert!(replay("card", feature_oracles::card_oracle) >= 5);
}
