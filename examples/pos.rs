//! A point-of-sale flow, end to end and offline:
//!
//! 1. create a dynamic KHR KHQR for 12,500 riel that expires in 10 minutes,
//! 2. write its QR PNG and its printable card PNG,
//! 3. poll Bakong for payment through a toy `StatusChecker` that answers
//!    "not paid yet" twice and then "paid" — where a real POS would plug in its
//!    HTTP client.
//!
//! Run: `cargo run --example pos --features render,status [-- OUT_DIR]`

use std::cell::Cell;
use std::path::PathBuf;

use bakong_khqr::render::{card_png, qr_png, CardOptions, QrOptions};
use bakong_khqr::status::{
    wait_for_payment, Api, Clock, HttpRequest, HttpResponse, PollOutcome, Poller, StatusChecker,
    Token, TEST_BASE_URL,
};
use bakong_khqr::{Currency, Request};

/// A stand-in for Bakong's Open API: pending twice, then paid.
struct ToyBakong {
    calls: Cell<u32>,
    paid_md5: String,
}

impl StatusChecker for ToyBakong {
    type Error = std::convert::Infallible;

    fn send(&self, request: HttpRequest) -> Result<HttpResponse, Self::Error> {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        println!(
            "  -> {:?} {} {}",
            request.method,
            request.url,
            String::from_utf8_lossy(&request.body)
        );
        let body = if n < 3 {
            r#"{"responseCode":1,"responseMessage":"Transaction could not be found.","errorCode":1,"data":null}"#.to_owned()
        } else {
            format!(
                r#"{{"responseCode":0,"responseMessage":"Success","errorCode":null,"data":{{"hash":"8d3c2b1a","fromAccountId":"customer@abaa","toAccountId":"coffee@abaa","currency":"KHR","amount":12500,"description":"{}","createdDateMs":1700000100000,"acknowledgedDateMs":1700000101000}}}}"#,
                self.paid_md5
            )
        };
        Ok(HttpResponse::new(200, body.into_bytes()))
    }
}

/// A clock that only moves when the poller sleeps: the example runs instantly.
struct FakeClock(u64);

impl Clock for FakeClock {
    fn now_ms(&mut self) -> u64 {
        self.0
    }
    fn sleep_ms(&mut self, ms: u64) {
        println!("  (waiting {} s)", ms / 1000);
        self.0 += ms;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(std::env::temp_dir, PathBuf::from);
    let now_ms = 1_700_000_000_000; // a real POS passes the system clock here

    let khqr = Request::merchant(bakong_khqr::MerchantInfo {
        bakong_account_id: "coffee@abaa",
        merchant_name: "ហាងកាហ្វេ Coffee",
        merchant_id: "POS-001",
        acquiring_bank: "ABA Bank",
    })
    .merchant_city("Phnom Penh")
    .currency(Currency::Khr)
    .amount("12500")
    .bill_number("INV-0042")
    .terminal_label("Till 1")
    .expires_in_ms(10 * 60 * 1000)
    .generate(now_ms)?;
    println!("KHQR  {}", khqr.as_str());
    println!("MD5   {}", khqr.md5());
    println!("tran  {}", khqr.tran_id());

    let qr_path = out.join("pos-qr.png");
    std::fs::write(&qr_path, qr_png(khqr.as_str(), &QrOptions::default())?)?;
    let card_path = out.join("pos-card.png");
    std::fs::write(
        &card_path,
        card_png(khqr.as_str(), &CardOptions::default())?,
    )?;
    println!("wrote {} and {}", qr_path.display(), card_path.display());

    let api = Api::new(TEST_BASE_URL)?.with_token(Token::new("demo.token.value")?);
    let bakong = ToyBakong {
        calls: Cell::new(0),
        paid_md5: khqr.md5().to_string(),
    };
    let mut poller = Poller::for_khqr(khqr.as_str(), 3_000)?;
    println!("polling Bakong until {} ms:", now_ms + 600_000);
    match wait_for_payment(&bakong, &api, &mut poller, &mut FakeClock(now_ms))? {
        PollOutcome::Paid(tx) => {
            let from = tx.from_account_id.as_deref().unwrap_or("?");
            println!(
                "PAID  {} {} from {from} (hash {})",
                tx.amount, tx.currency, tx.hash
            );
            assert_eq!(tx.minor_units(), Some(12_500));
        }
        other => return Err(format!("not paid: {other:?}").into()),
    }
    assert_eq!(bakong.calls.get(), 3);
    Ok(())
}
