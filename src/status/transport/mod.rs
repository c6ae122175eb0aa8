//! Ready HTTP transports for the status seam: [`StatusChecker`](super::StatusChecker)
//! over `ureq` (feature `ureq`, blocking) and
//! [`AsyncStatusChecker`](super::AsyncStatusChecker) over `reqwest` (feature
//! `reqwest`, async). Both use rustls and are configured the one way that keeps
//! the typed errors of [`super::ResponseError`] intact:
//!
//! * every HTTP answer, 4xx and 5xx included, is returned as an
//!   [`HttpResponse`](super::HttpResponse), so an expired token (401), a
//!   geo-block (403 HTML) or a 429 with `Retry-After` reaches the parsers;
//! * no redirect is followed: a 3xx is returned as it is (and parses as
//!   [`ResponseError::UnexpectedStatus`](super::ResponseError::UnexpectedStatus)),
//!   because an answer fetched from wherever a redirect points could forge a
//!   payment;
//! * a timeout bounds the whole exchange and a cap bounds the body.
//!
//! The sans-I/O core ([`super::Api`], the `parse_*` functions, [`super::Poller`])
//! does not depend on either.

/// Default timeout of one whole exchange (connect, send, read the answer):
/// 10 000 milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// Default cap on an answer's body: 1 MiB (1 048 576 bytes). Bakong's answers
/// are under 2 KiB; a larger body is refused as a transport error, not read.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Settings shared by the ready transports.
///
/// ```
/// use bakong_khqr::status::TransportConfig;
///
/// let config = TransportConfig::default().timeout_ms(5_000);
/// assert_eq!(config.timeout_ms, 5_000);
/// assert_eq!(config.max_body_bytes, 1 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Timeout of one whole exchange, in milliseconds (default
    /// [`DEFAULT_TIMEOUT_MS`]).
    pub timeout_ms: u64,
    /// Largest answer body accepted, in bytes (default
    /// [`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl TransportConfig {
    /// The same settings with another timeout, in milliseconds.
    #[must_use]
    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }

    /// The same settings with another body cap, in bytes.
    #[must_use]
    pub fn max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }
}

// Implementations, one file per client.
#[cfg(feature = "ureq")]
mod ureq_blocking;
#[cfg(feature = "ureq")]
pub use ureq_blocking::{UreqError, UreqTransport};
#[cfg(feature = "reqwest")]
mod reqwest_async;
#[cfg(feature = "reqwest")]
pub use reqwest_async::{ReqwestError, ReqwestTransport};
