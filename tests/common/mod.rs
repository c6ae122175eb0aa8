//! Shared by the integration tests.

use std::path::PathBuf;

/// The official SDK's golden vectors: `$KHQR_VECTORS`, or `../shared/vectors`
/// beside the crate (where CI puts them).
#[must_use]
pub fn vectors_dir() -> PathBuf {
    std::env::var_os("KHQR_VECTORS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors"),
        PathBuf::from,
    )
}
