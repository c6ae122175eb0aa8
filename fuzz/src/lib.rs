//! Fuzz targets of `bakong-khqr`: the oracles live in `oracles.rs`, shared with
//! the crate's `tests/fuzz_regressions.rs`.

#[path = "oracles.rs"]
pub mod oracles;

#[path = "feature_oracles.rs"]
pub mod feature_oracles;

/// The `build` target's input as `arbitrary` reads it: 8 header bytes, then the
/// rest of the data as the text fields (see [`oracles::BuildInput`]).
#[derive(Clone, Copy, Debug, arbitrary::Arbitrary)]
pub struct ArbitraryBuildInput<'a> {
    /// Flags, clock and expiration delta.
    pub header: [u8; 8],
    /// The text fields joined by U+001F.
    pub text: &'a str,
}

impl<'a> From<ArbitraryBuildInput<'a>> for oracles::BuildInput<'a> {
    fn from(a: ArbitraryBuildInput<'a>) -> Self {
        oracles::BuildInput {
            header: a.header,
            text: a.text,
        }
    }
}
