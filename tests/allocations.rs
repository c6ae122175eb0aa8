//! Heap allocations per operation, counted by an instrumented global allocator
//! (`stats_alloc`). Run with `--nocapture` to see the table.
//!
//! One `#[test]` only: the counter is process-wide, and a second test running
//! in parallel would allocate inside the measured regions.

use std::alloc::System;

use bakong_khqr::{decode, verify, Currency, Md5, Request};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const NOW_MS: u64 = 1_700_000_000_000;
const RUNS: usize = 10;

/// Allocations (including reallocations) per call of `f`, over `RUNS` calls.
///
/// The counter is process-wide, and the test harness's own thread may allocate
/// while a batch runs (seen once in CI: 4 stray allocations, 0 freed). Such noise
/// can only add, so the batch with the fewest allocations of `BATCHES` is the
/// operation's own count.
fn allocations_per_call(mut f: impl FnMut()) -> usize {
    const BATCHES: usize = 5;
    f(); // warm up: lazily initialised statics are not the operation's cost
    let stats = (0..BATCHES)
        .map(|_| {
            let region = Region::new(GLOBAL);
            for _ in 0..RUNS {
                f();
            }
            region.change()
        })
        .min_by_key(|s| s.allocations + s.reallocations)
        .expect("at least one batch");
    let n = stats.allocations + stats.reallocations;
    assert_eq!(
        n % RUNS,
        0,
        "allocation count varies between runs: {stats:?}"
    );
    n / RUNS
}

fn dynamic_request() -> Request<'static> {
    Request::individual("jonhsmith@nbcq", "Jonh Smith")
        .merchant_city("Phnom Penh")
        .currency(Currency::Usd)
        .amount("12.5")
        .expires_at_ms(9_999_999_999_999)
        .bill_number("INV-2024-0001")
        .store_label("Shop 1")
        .terminal_label("T1")
}

fn khmer_request() -> Request<'static> {
    Request::merchant(bakong_khqr::MerchantInfo {
        bakong_account_id: "coffee.shop@aclb",
        merchant_name: "Srey Mom Coffee",
        merchant_id: "MID-000123",
        acquiring_bank: "ACLEDA Bank",
    })
    .currency(Currency::Khr)
    .amount("25000")
    .expires_at_ms(9_999_999_999_999)
    .bill_number("INV-2024-0001")
    .mobile_number("85512345678")
    .store_label("Riverside")
    .terminal_label("POS-07")
    .purpose_of_transaction("Coffee")
    .language_preference("km")
    .merchant_name_alternate_language("ហាងកាហ្វេ ស្រីមុំ")
    .merchant_city_alternate_language("ភ្នំពេញ")
}

#[test]
fn allocations_per_operation() {
    let dynamic = dynamic_request();
    let khmer = khmer_request();
    let payload = dynamic.generate(NOW_MS).expect("valid").into_string();
    let khmer_payload = khmer.generate(NOW_MS).expect("valid").into_string();
    assert!(khmer_payload.len() >= 280, "{}", khmer_payload.len());
    let mut buf = String::with_capacity(512);

    let mut rows: Vec<(&str, usize, usize)> = Vec::new();
    let mut row = |name, expected, f: &mut dyn FnMut()| {
        rows.push((name, expected, allocations_per_call(f)));
    };
    row("Request::write into a String with capacity", 0, &mut || {
        buf.clear();
        dynamic.write(NOW_MS, &mut buf).expect("valid");
    });
    row("Request::write, Khmer 300-byte payload", 0, &mut || {
        buf.clear();
        khmer.write(NOW_MS, &mut buf).expect("valid");
    });
    row("Md5::of", 0, &mut || {
        std::hint::black_box(Md5::of(&payload));
    });
    row("Md5::to_hex and tran_id", 0, &mut || {
        let m = Md5::of(&payload);
        std::hint::black_box((m.to_hex(), m.tran_id()));
    });
    row("Request::generate (the payload's String)", 1, &mut || {
        std::hint::black_box(dynamic.generate(NOW_MS).expect("valid"));
    });
    row("decode", 0, &mut || {
        std::hint::black_box(decode(&payload).expect("valid").crc());
    });
    row("decode, Khmer 300-byte payload", 0, &mut || {
        std::hint::black_box(decode(&khmer_payload).expect("valid").crc());
    });
    row("verify", 0, &mut || {
        std::hint::black_box(verify(&payload, NOW_MS).expect("valid").crc());
    });
    row("verify, Khmer 300-byte payload", 0, &mut || {
        std::hint::black_box(verify(&khmer_payload, NOW_MS).expect("valid").crc());
    });
    row(
        "Decoded::encode_into a String with capacity",
        0,
        &mut || {
            buf.clear();
            decode(&payload).expect("valid").encode_into(&mut buf);
        },
    );

    println!("{:<48} {:>8} {:>8}", "operation", "expected", "measured");
    for (name, expected, measured) in &rows {
        println!("{name:<48} {expected:>8} {measured:>8}");
    }
    // The QR symbol and PNG allocate inside qrcode and png: reported, not pinned.
    #[cfg(feature = "render")]
    {
        use bakong_khqr::render::{qr_png, Ecc, QrMatrix, QrOptions};
        let encode = allocations_per_call(|| {
            std::hint::black_box(QrMatrix::encode(&payload, Ecc::M).expect("fits"));
        });
        let png = allocations_per_call(|| {
            std::hint::black_box(qr_png(&payload, &QrOptions::default()).expect("fits"));
        });
        println!("{:<48} {:>8} {encode:>8}", "render::QrMatrix::encode", "-");
        println!("{:<48} {:>8} {png:>8}", "render::qr_png", "-");
        assert!(png >= encode, "qr_png encodes the matrix too");
    }
    for (name, expected, measured) in rows {
        assert_eq!(measured, expected, "allocations of {name}");
    }
}
