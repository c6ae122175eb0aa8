//! Fuzz target `roundtrip`: see `bakong_khqr_fuzz::oracles::roundtrip_oracle`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bakong_khqr_fuzz::oracles::roundtrip_oracle(data));
