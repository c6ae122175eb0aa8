//! The cost of the first card in a process against a warm one: draws the
//! default card (scale 2) once, then again, then 50 more times, and prints the
//! first, the second and the median warm time in milliseconds. The difference
//! is what a one-shot program (the `khqr` CLI) pays once: loading the fonts,
//! first touches of the embedded font bytes and of fresh heap pages.
//!
//! ```text
//! cargo run --release --example card_first --features card [-- --khmer]
//! ```
//!
//! `--khmer` draws a KHR card with a Khmer merchant name (Kantumruy Pro and
//! Nunito Sans both used); the default is the benches' USD card (Nunito Sans
//! only). Run it on a quiet machine: it measures wall-clock time once.

use std::time::Instant;

use bakong_khqr::render::{card_png, CardOptions};
use bakong_khqr::{Currency, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let khmer = std::env::args().any(|a| a == "--khmer");
    let khqr = if khmer {
        Request::individual("jonhsmith@nbcq", "ហាងកាហ្វេ ភ្នំពេញ")
            .currency(Currency::Khr)
            .amount("1250000")
    } else {
        Request::individual("jonhsmith@nbcq", "Jonh Smith")
            .currency(Currency::Usd)
            .amount("12.5")
    }
    .merchant_city("Phnom Penh")
    .expires_at_ms(9_999_999_999_999)
    .bill_number("INV-2024-0001")
    .store_label("Shop 1")
    .terminal_label("T1")
    .generate(1_700_000_000_000)?;
    let payload = khqr.as_str();
    let options = CardOptions::default();

    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let first = card_png(payload, &options)?;
    let first_ms = ms(t);
    let t = Instant::now();
    let second = card_png(payload, &options)?;
    let second_ms = ms(t);
    assert_eq!(first, second, "the same card twice gives the same bytes");

    let mut warm: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let png = card_png(payload, &options).map(|p| p.len());
            let elapsed = ms(t);
            assert_eq!(png.ok(), Some(first.len()));
            elapsed
        })
        .collect();
    warm.sort_by(f64::total_cmp);
    let median = warm.get(warm.len() / 2).copied().unwrap_or(f64::NAN);

    println!(
        "card at scale 2 ({}, {} bytes of PNG)",
        if khmer { "KHR, Khmer name" } else { "USD" },
        first.len()
    );
    println!("first card:  {first_ms:.2} ms");
    println!("second card: {second_ms:.2} ms");
    println!("warm median: {median:.2} ms (50 cards)");
    println!("first - warm median: {:.2} ms", first_ms - median);
    Ok(())
}
