//! Fuzz target `verify`: see `bakong_khqr_fuzz::oracles::verify_oracle`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bakong_khqr_fuzz::oracles::verify_oracle(data));
