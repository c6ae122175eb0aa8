//! Bakong KHQR payments, offline: build the payload and its MD5, draw its QR and
//! its printable card, decode and verify any KHQR string, and check payment
//! status through Bakong's Open API — with no network, no clock and no files
//! inside the library: the caller passes the time and moves the bytes.
//!
//! KHQR is Cambodia's national payment QR (National Bank of Cambodia), a profile
//! of EMVCo's *QR Code Specification for Payment Systems: Merchant-Presented
//! Mode* (EMV QRCPS-MPM). A KHQR is a string of TLV data objects: Payload Format
//! Indicator (00), Point of Initiation Method (01), Merchant Account Information
//! (29 for an individual, 30 for a merchant, holding the Bakong account ID),
//! Merchant Category Code (52), Transaction Currency (53), Transaction Amount
//! (54), Country Code (58), Merchant Name (59), Merchant City (60), Additional
//! Data Field Template (62), Merchant Information — Language Template (64), the
//! KHQR timestamps (99) and the CRC (63).
//!
//! # 1. Create a KHQR
//!
//! A [`Request`] carries every field of the official SDK; [`Request::generate`]
//! checks them in the SDK's order and returns the payload and its [`Md5`].
//!
//! ```
//! use bakong_khqr::{Currency, Request};
//!
//! // The caller owns the clock: milliseconds since the Unix epoch.
//! let now_ms = 1_700_000_000_000;
//! let khqr = Request::individual("jonhsmith@nbcq", "Jonh Smith")
//!     .merchant_city("Phnom Penh")
//!     .currency(Currency::Usd)
//!     .amount("1.50")
//!     .expires_in_ms(10 * 60 * 1000)
//!     .generate(now_ms)?;
//!
//! assert_eq!(
//!     khqr.as_str(),
//!     "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith\
//!      6010Phnom Penh9934001317000000000000113170000060000063046070"
//! );
//! // The MD5 is what Bakong's check_transaction_by_md5 looks the payment up by.
//! assert_eq!(khqr.md5().to_string(), "01316d9aa167cbf345617fd5b31b2cf5");
//! assert_eq!(khqr.tran_id().as_str(), "kCjDdYtX"); // a short id for URLs, from the MD5
//!
//! // Anyone can read it back, and check it.
//! let decoded = bakong_khqr::verify(khqr.as_str(), now_ms)?;
//! assert_eq!(decoded.transaction_amount(), Some("1.50"));
//! assert_eq!(decoded.encode(), khqr.as_str());
//! # Ok::<(), bakong_khqr::Error>(())
//! ```
//!
//! # 2. Draw the QR, and 3. the card (feature `render`)
//!
//! [`render::qr_png`] draws the plain QR (mixed-mode segments, error correction M, a
//! 4-module quiet zone, whole pixels per module); [`render::card_png`] draws the
//! branded KHQR card merchants print or show, from the payload alone.
//!
//! ```
//! # #[cfg(feature = "render")] {
//! use bakong_khqr::render::{card_png, qr_png, CardOptions, QrOptions};
//! # let payload = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
//! let qr: Vec<u8> = qr_png(payload, &QrOptions::default())?;     // 1-bit PNG
//! let card: Vec<u8> = card_png(payload, &CardOptions::default())?; // 600×870 px PNG
//! assert_eq!(&qr[1..4], b"PNG");
//! assert_eq!(&card[1..4], b"PNG");
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # 4. Was it paid? (features `status`, `ureq`)
//!
//! With feature `ureq`, [`status::check_khqr`] over the ready
//! `status::UreqTransport` is one call; a payment whose amount or currency is
//! not the QR's comes back as `AmountMismatch`, never `Paid`:
//!
//! ```no_run
//! # #[cfg(feature = "ureq")] {
//! # let payload = "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh9934001317000000000000113170000006000063044947";
//! use bakong_khqr::status::{check_khqr, Api, Token, UreqTransport, PRODUCTION_BASE_URL};
//! let api = Api::new(PRODUCTION_BASE_URL)?.with_token(Token::new(std::env::var("BAKONG_TOKEN")?)?);
//! let status = check_khqr(&UreqTransport::new(), &api, payload)?;
//! println!("{status:?}"); // Paid(..), Pending, AmountMismatch(..), ...
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Underneath, the core is sans-I/O: [`status::Api`] builds Bakong's Open API
//! requests as plain data and the `status::parse_*` functions read the answers;
//! any HTTP client can implement [`status::StatusChecker`], and
//! [`status::wait_for_payment`] polls until the QR is paid or expires (tag 99),
//! on a [`status::Clock`] (`status::SystemClock`, or a fake in tests).
//!
//! ```
//! # #[cfg(feature = "status")] {
//! use bakong_khqr::status::{check_khqr, Api, HttpRequest, HttpResponse, StatusChecker, Token, TransactionStatus, TEST_BASE_URL};
//!
//! struct MyClient; // wraps reqwest, ureq, hyper, a test double…
//! impl StatusChecker for MyClient {
//!     type Error = std::io::Error;
//!     fn send(&self, request: HttpRequest) -> Result<HttpResponse, Self::Error> {
//!         // POST request.body to request.url with request.headers, then:
//!         # let _ = request;
//!         Ok(HttpResponse::new(200, br#"{"responseCode":1,"responseMessage":"Transaction could not be found.","errorCode":1,"data":null}"#.to_vec()))
//!     }
//! }
//!
//! let api = Api::new(TEST_BASE_URL)?.with_token(Token::new("your.bakong.jwt")?);
//! # let payload = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
//! let status = check_khqr(&MyClient, &api, payload)?;
//! assert_eq!(status, TransactionStatus::Pending); // not paid yet: not an error
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/pos.rs` runs the whole flow: a dynamic KHR QR with a 10-minute
//! expiry, its card, and polling through a toy checker; `examples/shop.rs` is
//! a shop's back end on axum that creates a KHQR, serves its card and verifies
//! a signed payment webhook.
//!
//! # Scope
//!
//! * Byte-for-byte the payloads of NBC's official JavaScript SDK (`bakong-khqr`
//!   1.0.20) wherever that SDK is right, with its error codes (1–51) and its
//!   order of checks; a typed error wherever the SDK writes a broken payload
//!   (codes from 52 up).
//! * [`Decoded`] is lossless and zero-copy: every data object and template
//!   sub-object, known or not, in order, borrowed from the input.
//! * [`verify`] says *why* a payload is invalid, with the SDK's codes.
//! * Nothing here does I/O or reads the clock: `now_ms` is an argument.
//!
#![doc = include_str!("../docs/sdk-differences.md")]
//!
//! # Features
//!
//! | feature | what it adds | pulls in |
//! |---|---|---|
//! | (none) | payloads, MD5, decode, verify | `crc`, `md-5` |
//! | `qr` | [`render`]'s plain QR: matrix, PNG, SVG | `qrcode`, `png` |
//! | `card` | `qr` plus the KHQR card PNG (`render::card_png`) | `tiny-skia`, `rustybuzz` |
//! | `render` | both: `qr` and `card` | — |
//! | `serde` | [`json`]: requests in the SDK's JSON shape; [`SdkFields`] serialises | `serde`, `serde_json` |
//! | `status` | [`status`]: Bakong Open API requests and answers, `StatusChecker`, polling, `SystemClock` | `serde`, `serde_json`, `base64`, `httpdate` |
//! | `http` | conversions between `status::HttpRequest`/`HttpResponse` and the `http` crate's `Request<Vec<u8>>`/`Response<Vec<u8>>` | `status`, `http` |
//! | `ureq` | `status::UreqTransport`, a ready blocking transport (rustls) | `http`, `ureq` |
//! | `reqwest` | `status::ReqwestTransport`, a ready async transport (rustls) | `status`, `reqwest` |
//! | `webhook` | [`webhook`]: sign and verify payment webhooks (HMAC-SHA256) | `hmac`, `sha2` |
//! | `std` (default) | `std::error::Error`, [`now_ms`]; without it the core is `no_std` + `alloc` | — |
//!
//! The `khqr` command-line tool is the `khqr-cli` package of the repository's
//! workspace: `cargo install --locked --path cli` from a clone.

#![cfg_attr(not(any(feature = "std", test)), no_std)]
// docs.rs (nightly, `--cfg docsrs`): each item gated by a feature shows a badge
// naming it (`doc_cfg` now derives them from the `#[cfg]`s itself).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

mod amount;
#[cfg(feature = "std")]
mod clock;
pub mod crc;
mod decode;
mod error;
mod fields;
mod hash;
mod payload;
pub mod tag;
pub mod tlv;
mod verify;

#[cfg(feature = "serde")]
pub mod json;
#[cfg(feature = "qr")]
pub mod render;
#[cfg(feature = "serde")]
mod serde_impls;
#[cfg(feature = "status")]
pub mod status;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use amount::{Amount, Currency, MAX_AMOUNT_LEN};
#[cfg(feature = "std")]
pub use clock::now_ms;
pub use decode::{Decoded, Entry, MerchantType};
pub use error::{Error, ErrorCode};
pub use fields::{Field, SdkFields};
pub use hash::{Md5, ParseIdError, TranId};
pub use payload::{
    Account, AmountInput, Expiration, Khqr, MerchantInfo, Request, DEFAULT_CITY, DEFAULT_MCC,
};
pub use verify::{verify, verify_with, VerifyOptions};

/// Decodes a KHQR string; shorthand for [`Decoded::parse`].
///
/// # Errors
/// As [`Decoded::parse`]: the string is empty (8) or not well-formed TLV (54, or
/// 5 for a broken merchant account template).
pub fn decode(payload: &str) -> Result<Decoded<'_>, Error> {
    Decoded::parse(payload)
}

/// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The examples of `docs/card.md` run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/card.md")]
pub struct CardDocDoctests;

/// The examples of `docs/server.md` run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/server.md")]
pub struct ServerDocDoctests;

/// The examples of `docs/status.md` run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/status.md")]
pub struct StatusDocDoctests;
