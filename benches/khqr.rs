//! Generate (with MD5), decode and verify, on the official SDK's benchmark
#![allow(missing_docs)] // criterion_group! and criterion_main! write undocumented items
//! payloads (`scripts/oracle/bench.js`) and a ~300-byte Khmer one.
//!
//! `scripts/bench-vs-sdk.sh` runs these next to the SDK's own timing and prints
//! the ratios.

use std::hint::black_box;
use std::time::Duration;

use bakong_khqr::{decode, verify, Currency, Md5, Request};
use criterion::{criterion_group, Criterion};

/// bench.js's clock does not matter for verify: its expiration is far ahead.
const NOW_MS: u64 = 1_700_000_000_000;
/// bench.js's `FAR`: an expiration far in the future, so verify stays true.
const FAR_MS: u64 = 9_999_999_999_999;

/// bench.js `staticInfo()`: the minimal individual KHR QR (91 characters).
fn static_request() -> Request<'static> {
    Request::individual("jonhsmith@nbcq", "Jonh Smith").merchant_city("Phnom Penh")
}

/// bench.js `dynInfo()`: USD 12.50 with bill number, store and terminal labels
/// and tag 99 (about 180 characters).
fn dynamic_request() -> Request<'static> {
    Request::individual("jonhsmith@nbcq", "Jonh Smith")
        .merchant_city("Phnom Penh")
        .currency(Currency::Usd)
        .amount("12.5")
        .expires_at_ms(FAR_MS)
        .bill_number("INV-2024-0001")
        .store_label("Shop 1")
        .terminal_label("T1")
}

/// A merchant KHQR with every additional-data field and the Khmer language
/// template (tag 64): about 300 UTF-8 bytes.
fn khmer_request() -> Request<'static> {
    Request::merchant(bakong_khqr::MerchantInfo {
        bakong_account_id: "coffee.shop@aclb",
        merchant_name: "Srey Mom Coffee",
        merchant_id: "MID-000123",
        acquiring_bank: "ACLEDA Bank",
    })
    .merchant_city("Phnom Penh")
    .currency(Currency::Khr)
    .amount("25000")
    .expires_at_ms(FAR_MS)
    .bill_number("INV-2024-0001")
    .mobile_number("85512345678")
    .store_label("Riverside")
    .terminal_label("POS-07")
    .purpose_of_transaction("Coffee")
    .language_preference("km")
    .merchant_name_alternate_language("ហាងកាហ្វេ ស្រីមុំ")
    .merchant_city_alternate_language("ភ្នំពេញ")
}

fn generate(c: &mut Criterion) {
    let mut g = c.benchmark_group("generate");
    for (name, req) in [
        ("static_md5", static_request()),
        ("dynamic_md5", dynamic_request()),
        ("khmer300_md5", khmer_request()),
    ] {
        // `Request::generate`: the payload in a new `String`, and its MD5.
        g.bench_function(name, |b| {
            b.iter(|| black_box(&req).generate(black_box(NOW_MS)).map(|k| k.md5()));
        });
        // `Request::write` into the caller's buffer, then `Md5::of`: no allocation.
        let mut buf = String::with_capacity(512);
        g.bench_function(format!("{name}_into_buffer"), |b| {
            b.iter(|| {
                buf.clear();
                black_box(&req)
                    .write(black_box(NOW_MS), &mut buf)
                    .map(|()| Md5::of(&buf))
            });
        });
    }
    g.finish();
}

fn md5(c: &mut Criterion) {
    let dynamic = dynamic_request().generate(NOW_MS).expect("valid");
    let mut g = c.benchmark_group("md5");
    g.bench_function("dynamic", |b| {
        b.iter(|| Md5::of(black_box(dynamic.as_str())));
    });
    g.finish();
    // The floor of generate + MD5: the MD5 of the payload and the CRC-16 of
    // the same bytes, which every generate must compute. `generate/
    // dynamic_md5_into_buffer` is measured against it (target <= 1.5x).
    let mut g = c.benchmark_group("floor");
    g.bench_function("md5_crc_dynamic", |b| {
        b.iter(|| {
            let s = black_box(dynamic.as_str());
            (Md5::of(s), bakong_khqr::crc::checksum(s.as_bytes()))
        });
    });
    g.finish();
}

fn decode_and_verify(c: &mut Criterion) {
    let payloads = [
        ("static", static_request().generate(NOW_MS).expect("valid")),
        (
            "dynamic",
            dynamic_request().generate(NOW_MS).expect("valid"),
        ),
        ("khmer300", khmer_request().generate(NOW_MS).expect("valid")),
    ];
    let mut g = c.benchmark_group("decode");
    for (name, k) in &payloads {
        g.bench_function(*name, |b| {
            b.iter(|| decode(black_box(k.as_str())).map(|d| d.crc()));
        });
    }
    g.finish();
    let mut g = c.benchmark_group("verify");
    for (name, k) in &payloads {
        g.bench_function(*name, |b| {
            b.iter(|| verify(black_box(k.as_str()), black_box(NOW_MS)).is_ok());
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = generate, md5, decode_and_verify
}

/// `KHQR_COUNT=<operation>:<n>` runs one operation `n` times and exits, for
/// instruction counts under `valgrind --tool=callgrind` (the difference of two
/// runs, `n` and 0, divided by `n`: see `scripts/bench-vs-sdk.sh`). Operations:
/// `generate_dynamic` (into a buffer, with MD5), `floor_dynamic` (MD5 + CRC of
/// the same payload), `decode_dynamic`, `verify_dynamic`.
fn count(spec: &str) {
    let (op, n) = spec.split_once(':').expect("KHQR_COUNT=<operation>:<n>");
    let n: usize = n.parse().expect("a count");
    let req = dynamic_request();
    let payload = req.generate(NOW_MS).expect("valid").into_string();
    let mut buf = String::with_capacity(512);
    for _ in 0..n {
        match op {
            "generate_dynamic" => {
                buf.clear();
                black_box(&req)
                    .write(black_box(NOW_MS), &mut buf)
                    .expect("valid");
                black_box(Md5::of(&buf));
            }
            "floor_dynamic" => {
                let s = black_box(payload.as_str());
                black_box((Md5::of(s), bakong_khqr::crc::checksum(s.as_bytes())));
            }
            "decode_dynamic" => {
                black_box(decode(black_box(&payload)).map(|d| d.crc()).ok());
            }
            "verify_dynamic" => {
                black_box(verify(black_box(&payload), black_box(NOW_MS)).is_ok());
            }
            _ => panic!("unknown operation {op}"),
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("KHQR_COUNT") {
        count(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
