//! Shared by the integration tests.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

pub mod fake_bakong;

use std::path::PathBuf;

/// The folder of the official SDK's golden vectors: `tests/data` in this
/// repository (and in the packaged crate), or `$KHQR_VECTORS` to run the tests
/// against freshly regenerated ones (see tests/README.md).
#[must_use]
pub fn vectors_dir() -> PathBuf {
    std::env::var_os("KHQR_VECTORS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
        PathBuf::from,
    )
}

/// The text of the fixture `name` in [`vectors_dir`]; a missing or unreadable
/// fixture fails the test with its full path.
#[must_use]
pub fn read_vectors(name: &str) -> String {
    let path = vectors_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the golden vectors {}: {e} (tests/README.md says how they are made)",
            path.display()
        )
    })
}

/// The JSON lines of the fixture `name` (blank lines skipped), each parsed;
/// a line that is not JSON fails the test with the file and line number.
#[must_use]
pub fn vector_lines(name: &str) -> Vec<serde_json::Value> {
    read_vectors(name)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{name} line {}: not JSON: {e}", i + 1))
        })
        .collect()
}
