//! Fuzz target `card`: see `bakong_khqr_fuzz::feature_oracles::card_oracle`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bakong_khqr_fuzz::feature_oracles::card_oracle(data));
