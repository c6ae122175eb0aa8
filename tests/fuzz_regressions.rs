//! Replays every committed fuzz seed and regression input through the fuzz
//! oracles, on stable Rust, in the normal `cargo test`.
//!
//! The oracles are the fuzz crate's own file (`fuzz/src/oracles.rs`), included
//! here as a module. Inputs: `fuzz/seeds/payloads/` (KHQR strings from
//! `tests/data`; targets `decode`, `verify`, `roundtrip`),
//! `fuzz/seeds/build_request/` (the vectors' requests in the `build_request`
//! layout) and `fuzz/regressions/<target>/` (inputs that once failed). Files
//! with an extension (a `README.md`) are not inputs.
//!
//! Regenerate the seeds from the vectors with
//! `cargo test --features serde --test fuzz_regressions -- --ignored write_seeds`.

use std::fs;
use std::path::{Path, PathBuf};

#[allow(dead_code)] // `build_seed` is only used with the `serde` feature
#[path = "../fuzz/src/oracles.rs"]
mod oracles;

type Oracle = fn(&[u8]);

const TARGETS: [(&str, Oracle); 4] = [
    ("decode", oracles::decode_oracle),
    ("verify", oracles::verify_oracle),
    ("roundtrip", oracles::roundtrip_oracle),
    ("build_request", oracles::build_oracle),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_none())
        .map(|p| {
            let data = fs::read(&p).expect("readable input");
            (p, data)
        })
        .collect();
    out.sort();
    out
}

fn replay(dir: &Path, oracle: Oracle) -> usize {
    let inputs = files(dir);
    for (path, data) in &inputs {
        let r = std::panic::catch_unwind(|| oracle(data));
        assert!(r.is_ok(), "fuzz oracle failed on {}", path.display());
    }
    inputs.len()
}

#[test]
fn seeds_pass_every_oracle() {
    let payloads = fuzz_dir().join("seeds/payloads");
    for (name, oracle) in &TARGETS[..3] {
        let n = replay(&payloads, *oracle);
        assert!(n >= 130, "{name}: only {n} payload seeds");
    }
    let n = replay(
        &fuzz_dir().join("seeds/build_request"),
        oracles::build_oracle,
    );
    assert!(n >= 120, "build_request: only {n} seeds");
}

#[test]
fn regressions_pass_every_oracle() {
    for (name, oracle) in TARGETS {
        replay(&fuzz_dir().join("regressions").join(name), oracle);
    }
}

#[test]
fn build_layout_reads_back() {
    let req = bakong_khqr::Request::merchant("a@b", "Shop", "M1", "Bank")
        .currency(bakong_khqr::Currency::Usd)
        .amount("1.5")
        .expires_in_ms(60_000)
        .bill_number("INV-1");
    let bytes = oracles::build_seed(&req, oracles::NOW_MS + 7).expect("expressible");
    let input = oracles::BuildInput::from_bytes(&bytes).expect("UTF-8");
    assert_eq!(input.now_ms(), oracles::NOW_MS + 7);
    let back = input.request();
    assert_eq!(back.bakong_account_id, "a@b");
    assert_eq!(back.account, req.account);
    assert_eq!(back.currency, req.currency);
    assert_eq!(back.amount, req.amount);
    assert_eq!(back.expiration, req.expiration);
    assert_eq!(back.bill_number.as_deref(), Some("INV-1"));
    assert_eq!(back.merchant_category_code, None);
    assert_eq!(
        back.generate(input.now_ms()).expect("valid").as_str(),
        req.generate(oracles::NOW_MS + 7).expect("valid").as_str()
    );
}

/// FNV-1a, for content-addressed seed file names.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(feature = "serde")]
#[test]
#[ignore = "writes fuzz/seeds from the golden vectors in tests/data"]
fn write_seeds() {
    use bakong_khqr::json::{request_from_value, Kind};
    use serde_json::Value;

    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let payloads = fuzz_dir().join("seeds/payloads");
    let builds = fuzz_dir().join("seeds/build_request");
    for d in [&payloads, &builds] {
        fs::create_dir_all(d).expect("mkdir");
    }
    let write = |dir: &Path, data: &[u8]| {
        fs::write(dir.join(format!("{:016x}", fnv(data))), data).expect("write seed");
    };
    for name in ["generate.jsonl", "verify.jsonl", "real-samples.jsonl"] {
        let text = fs::read_to_string(vectors.join(name)).expect("vectors");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).expect("JSON line");
            if let Some(q) = v["qr"].as_str().or(v["expect"]["qr"].as_str()) {
                write(&payloads, q.as_bytes());
            }
            let kind = match v["kind"].as_str() {
                Some("individual") => Kind::Individual,
                Some("merchant") => Kind::Merchant,
                _ => continue,
            };
            let now = v["now_ms"].as_u64().unwrap_or(oracles::NOW_MS);
            if let Ok(req) = request_from_value(kind, &v["request"]) {
                if let Some(bytes) = oracles::build_seed(&req, now) {
                    write(&builds, &bytes);
                }
            }
        }
    }
}
