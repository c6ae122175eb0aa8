//! Payment status over Bakong's Open API, sans-I/O (feature `status`).
//!
//! "Was this KHQR paid?" is answered by Bakong's Open API
//! (`POST /v1/check_transaction_by_md5` with the MD5 of the exact payload). This
//! module does everything except move the bytes:
//!
//! * [`Api`] builds each request as plain data ([`HttpRequest`]: method, URL,
//!   headers, JSON body bytes) from a base URL you choose
//!   ([`PRODUCTION_BASE_URL`], [`TEST_BASE_URL`], or a relay with a path prefix)
//!   and your [`Token`];
//! * the `parse_*` functions read every answer the API gives — HTTP status,
//!   headers and body bytes ([`HttpResponse`]) — into a typed outcome:
//!   [`TransactionStatus::Pending`] (Bakong's `errorCode` 1, the normal state of
//!   an unpaid QR) is an outcome, not an error; an expired token, a geo-block's
//!   HTML 403, a 429 with `Retry-After`, a 5xx or a truncated body are each a
//!   distinct [`ResponseError`];
//! * [`StatusChecker`] (blocking) and [`AsyncStatusChecker`] are the one seam
//!   between this core and an HTTP client: feature `ureq` gives a ready one
//!   (`UreqTransport`, configured so that 401/403/429/5xx stay typed and no
//!   redirect is followed), or implement it with the client of your choice
//!   (feature `http` converts [`HttpRequest`]/[`HttpResponse`] to and from the
//!   `http` crate's types); [`check_md5`], [`check_khqr`] and
//!   [`wait_for_payment`] drive them, and [`Poller`] is the same polling logic
//!   as a state machine for any other event loop;
//! * [`Token::expires_at_ms`] reads a JWT's `exp` without verifying it, so you
//!   can renew ([`Api::renew_token`]) before it lapses.
//!
//! Outside the transports and [`SystemClock`], nothing here opens a socket,
//! sleeps or reads the clock: `now_ms` (milliseconds since the Unix epoch) and
//! sleeping come from the caller.
//!
//! `HttpRequest`/`HttpResponse` are this crate's own plain types rather than the
//! `http` crate's: the core then needs no HTTP dependency, the `Authorization`
//! header is redacted in `Debug`, and existing transports keep compiling;
//! converting at the edge is one call (feature `http`).
//!
//! Endpoints, bodies and error codes follow the public Bakong Open API document
//! as summarised in the project notes (§10); the official JavaScript SDK only
//! calls two of them, and sends neither a token nor the deep link's
//! `sourceInfo` (it validates it, then drops it) — [`Api`] sends both.
//!
//! ```
//! use bakong_khqr::status::{Api, HttpResponse, Token, TransactionStatus, parse_transaction};
//! use bakong_khqr::Md5;
//!
//! let api = Api::new("https://sit-api-bakong.nbc.gov.kh")?
//!     .with_token(Token::new("eyJhbGciOiJIUzI1NiJ9.e30.c2ln")?);
//! let md5 = Md5::of("00020101021229180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B");
//! let request = api.check_transaction_by_md5(&md5)?;
//! assert_eq!(request.url, "https://sit-api-bakong.nbc.gov.kh/v1/check_transaction_by_md5");
//! assert!(format!("{request:?}").contains("Bearer <redacted>"));
//!
//! // ... send it with any HTTP client, then:
//! let answer = HttpResponse::new(
//!     200,
//!     br#"{"responseCode":1,"responseMessage":"Transaction could not be found.","errorCode":1,"data":null}"#.to_vec(),
//! );
//! assert_eq!(parse_transaction(&answer)?, TransactionStatus::Pending);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checker;
#[cfg(feature = "http")]
mod http_interop;
mod jwt;
mod request;
mod response;
mod transport;

pub use checker::{
    check_khqr, check_khqr_async, check_md5, check_md5_async, wait_for_payment,
    wait_for_payment_async, AsyncStatusChecker, CheckError, Clock, PollOutcome, PollStep, Poller,
    StatusChecker, SystemClock, DEFAULT_POLL_INTERVAL_MS, MIN_POLL_INTERVAL_MS,
};
pub use jwt::{jwt_expiration_ms, JwtError};
pub use request::{
    Api, HttpRequest, Method, RequestError, SourceInfo, Token, MAX_HASH_LIST_LEN, MAX_MD5_LIST_LEN,
    PRODUCTION_BASE_URL, TEST_BASE_URL, USER_AGENT,
};
pub use response::{
    parse_account, parse_deeplink, parse_renew_token, parse_transaction,
    parse_transaction_hash_list, parse_transaction_list, AccountStatus, ApiError, ApiErrorCode,
    HashListEntry, HttpResponse, ListEntry, ResponseError, RetryAfter, Transaction,
    TransactionStatus,
};
#[cfg(feature = "reqwest")]
pub use transport::{ReqwestError, ReqwestTransport};
pub use transport::{TransportConfig, DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_MS};
#[cfg(feature = "ureq")]
pub use transport::{UreqError, UreqTransport};
