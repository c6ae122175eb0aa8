//! The cost of the first card in a process against a warm one.
//!
//! Each run is a fresh process that draws the default card (scale 2) once, then
//! again, then 50 more times, and prints the first, the second and the median
//! warm time in milliseconds. The difference is what a one-shot program (the
//! `khqr` CLI) pays once: parsing the fonts' table directories, first touches
//! of the embedded font bytes and of fresh heap pages.
//!
//! ```text
//! cargo run --release --example card_first --features card [-- OPTIONS]
//!   --runs N   fresh processes to run (default 11); prints each, then the medians
//!   --once     one process only: this one (what each run does)
//!   --khmer    a KHR card with a Khmer merchant name (Kantumruy Pro and Nunito
//!              Sans both used); the default is the benches' USD card
//! ```
//!
//! A single run is at the mercy of the scheduler on a busy machine (one
//! preemption costs several milliseconds); the median over fresh processes is
//! the figure to quote.

use std::process::Command;
use std::time::Instant;

use bakong_khqr::render::{card_png, CardOptions};
use bakong_khqr::{Currency, Request};

/// First card, second card, median of 50 warm cards (ms); PNG bytes.
fn once(khmer: bool) -> Result<([f64; 3], usize), Box<dyn std::error::Error>> {
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
    let mut warm = Vec::with_capacity(50);
    for _ in 0..50 {
        let t = Instant::now();
        let png = card_png(payload, &options)?;
        warm.push(ms(t));
        assert_eq!(png.len(), first.len());
    }
    Ok(([first_ms, second_ms, median(&mut warm)], first.len()))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let khmer = args.iter().any(|a| a == "--khmer");
    if args.iter().any(|a| a == "--once") {
        let ([first, second, warm], bytes) = once(khmer)?;
        println!("{first:.3} {second:.3} {warm:.3} {bytes}");
        return Ok(());
    }
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).ok_or("--runs N")?.parse()?,
        None => 11,
    };
    let me = std::env::current_exe()?;
    let mut cols: [Vec<f64>; 4] = Default::default();
    let mut bytes = String::new();
    println!("first ms  second ms  warm median ms  first - warm ms");
    for _ in 0..runs {
        let mut child = Command::new(&me);
        child.arg("--once");
        if khmer {
            child.arg("--khmer");
        }
        let out = child.output()?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
        }
        let line = String::from_utf8(out.stdout)?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let [first, second, warm] = [0, 1, 2].map(|i| {
            f.get(i)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        });
        f.get(3).copied().unwrap_or_default().clone_into(&mut bytes);
        println!(
            "{first:8.2}  {second:9.2}  {warm:14.2}  {:15.2}",
            first - warm
        );
        for (col, v) in cols.iter_mut().zip([first, second, warm, first - warm]) {
            col.push(v);
        }
    }
    let [a, b, c, d] = cols.map(|mut v| median(&mut v));
    println!(
        "median of {runs} processes ({}, scale 2, {bytes} bytes of PNG): first {a:.2} ms, \
         second {b:.2} ms, warm {c:.2} ms, first - warm {d:.2} ms",
        if khmer { "KHR, Khmer name" } else { "USD" }
    );
    Ok(())
}
