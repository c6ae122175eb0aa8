//! The plain QR PNG (`render::qr_png`) against the QR encode alone
//! (`render::QrMatrix::encode`), on the official SDK's dynamic benchmark
//! payload; and the card (`render::card_png`) at scales 1, 2 and 4, each group
//! beside the bare encode of the same payload at ECC M (issue 9's budget: the
//! scale-2 card within 10× the encode).
#![allow(missing_docs)] // criterion_group! and criterion_main! write undocumented items

use std::hint::black_box;
use std::time::Duration;

use bakong_khqr::render::{card_png, qr_png, CardOptions, Ecc, QrMatrix, QrOptions};
use bakong_khqr::{Currency, Request};
use criterion::{criterion_group, criterion_main, Criterion};

fn render(c: &mut Criterion) {
    let khqr = Request::individual("jonhsmith@nbcq", "Jonh Smith")
        .merchant_city("Phnom Penh")
        .currency(Currency::Usd)
        .amount("12.5")
        .expires_at_ms(9_999_999_999_999)
        .bill_number("INV-2024-0001")
        .store_label("Shop 1")
        .terminal_label("T1")
        .generate(1_700_000_000_000)
        .expect("valid");
    let payload = khqr.as_str();
    let mut g = c.benchmark_group("qr");
    g.bench_function("encode_dynamic", |b| {
        b.iter(|| QrMatrix::encode(black_box(payload), Ecc::M).map(|m| m.size()));
    });
    let options = QrOptions::default();
    g.bench_function("png_dynamic", |b| {
        b.iter(|| qr_png(black_box(payload), &options).map(|p| p.len()));
    });
    g.finish();
    for scale in [1, 2, 4] {
        let mut g = c.benchmark_group(format!("card_{scale}x"));
        g.bench_function("encode_m", |b| {
            b.iter(|| QrMatrix::encode(black_box(payload), Ecc::M).map(|m| m.size()));
        });
        let options = CardOptions::default().scale(scale);
        g.bench_function("card_png", |b| {
            b.iter(|| card_png(black_box(payload), &options).map(|p| p.len()));
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = render
}
criterion_main!(benches);
