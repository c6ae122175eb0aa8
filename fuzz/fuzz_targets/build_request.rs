//! Fuzz target `build_request` (cargo forbids a binary named `build`): an arbitrary request (via `arbitrary`) either becomes a
//! payload that `verify` accepts at the same `now` and decodes to the same
//! fields, or a typed error; see `bakong_khqr_fuzz::oracles::check_request`.
#![no_main]

use bakong_khqr_fuzz::{oracles, ArbitraryBuildInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: ArbitraryBuildInput<'_>| {
    let input = oracles::BuildInput::from(input);
    oracles::check_request(&input.request(), input.now_ms());
});
