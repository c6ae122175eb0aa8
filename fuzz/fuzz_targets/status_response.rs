//! Fuzz target `status_response`: see `bakong_khqr_fuzz::feature_oracles::status_response_oracle`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bakong_khqr_fuzz::feature_oracles::status_response_oracle(data));
