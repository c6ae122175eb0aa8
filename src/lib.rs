//! Bakong KHQR payments, offline: build the payload, its MD5, decode and verify
//! any KHQR string, and draw it as a QR PNG — with no network, no clock and no
//! files inside the library.
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
//! # Create, check, verify
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
//! // Put `khqr.as_str()` in a QR symbol; poll Bakong with `khqr.md5()`.
//! assert_eq!(
//!     khqr.as_str(),
//!     "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith\
//!      6010Phnom Penh9934001317000000000000113170000060000063046070"
//! );
//! assert_eq!(khqr.md5().to_string().len(), 32);
//!
//! // Anyone can read it back, and check it.
//! let decoded = bakong_khqr::verify(khqr.as_str(), now_ms)?;
//! assert_eq!(decoded.transaction_amount(), Some("1.50"));
//! assert_eq!(decoded.encode(), khqr.as_str());
//! # Ok::<(), bakong_khqr::Error>(())
//! ```
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
//! # Where we depart from the official SDK
//!
//! The SDK accepts some input it should not; this crate refuses it:
//!
//! * Templates over 99 characters (the SDK writes a three-digit length that no
//!   reader, its own included, can read) → [`ErrorCode::TemplateTooLong`].
//! * Amounts must be plain decimal text: no exponent (`1e+21`), sign, spaces or
//!   separators; USD at most 2 decimals, KHR whole, never rounded.
//! * An expiration given for a static KHQR is refused, not silently dropped.
//! * Account IDs need exactly one `@` with text on both sides and no whitespace;
//!   the Merchant Category Code must be exactly 4 digits; a merchant name cannot
//!   be blank; no control characters, and no text outside the Basic Multilingual
//!   Plane (emoji), whose length readers count differently.
//! * A merchant name in the alternate language needs a language preference (the
//!   SDK returns a `TypeError` as the QR string).
//! * Decoding and verifying never hang (the SDK loops forever on some malformed
//!   lengths) and never panic.
//! * `verify` also requires Payload Format Indicator `01`, Country Code `KH`,
//!   decimal amounts, two-digit lengths, no repeated tag, not both 29 and 30, and
//!   checks the expiration wherever tag 99 stands (the SDK skips it when tag 99
//!   comes before tag 01).
//!
//! # Features
//!
//! | feature | what it adds | pulls in |
//! |---|---|---|
//! | (none) | payloads, MD5, decode, verify | `crc`, `md-5` |
//! | `render` | [`render`]: the plain QR as PNG or SVG, the KHQR card PNG | `fast_qr`, `png`, `tiny-skia`, `rustybuzz`, `fontdue` |
//! | `serde` | [`json`]: requests in the SDK's JSON shape; [`SdkFields`] serialises | `serde`, `serde_json` |
//! | `status` | [`status`]: Bakong Open API requests and answers, `StatusChecker` | `serde`, `serde_json` |
//! | `cli` | the `khqr` command-line tool | `render`, `serde`, `clap` |

#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

mod amount;
pub mod crc;
mod decode;
mod error;
mod hash;
mod payload;
pub mod tag;
pub mod tlv;
mod verify;

#[cfg(feature = "serde")]
pub mod json;
#[cfg(feature = "render")]
pub mod render;
#[cfg(feature = "serde")]
mod serde_impls;
#[cfg(feature = "status")]
pub mod status;

pub use amount::{Amount, Currency, MAX_AMOUNT_LEN};
pub use decode::{Decoded, Entry, MerchantType, SdkFields};
pub use error::{Error, ErrorCode, Field};
pub use hash::{Md5, TranId};
pub use payload::{Account, AmountInput, Expiration, Khqr, Request, DEFAULT_CITY, DEFAULT_MCC};
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
