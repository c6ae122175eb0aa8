//! [`UreqTransport`]: the blocking [`StatusChecker`] over `ureq` 3 (feature `ureq`).

use core::fmt;
use std::time::Duration;

use crate::status::{HttpRequest, HttpResponse, StatusChecker, TransportConfig};

/// A ready blocking transport for the status checks: `ureq` 3 with rustls and
/// the webpki root certificates.
///
/// Configured so that the typed [`ResponseError`](crate::status::ResponseError)s
/// survive (ureq's defaults would turn a 401 into a transport error):
///
/// * every HTTP status is returned as a response (`http_status_as_error(false)`),
///   so 401, 403, 429 (with `Retry-After`) and 5xx reach the parsers;
/// * no redirect is followed (`max_redirects(0)`): a 3xx comes back as itself
///   and parses as [`ResponseError::UnexpectedStatus`](crate::status::ResponseError::UnexpectedStatus);
/// * [`TransportConfig::timeout_ms`] bounds the whole exchange (connect, send,
///   read), and a body over [`TransportConfig::max_body_bytes`] is refused
///   ([`UreqError::BodyTooLarge`]).
///
/// Proxies named by the usual environment variables (`HTTPS_PROXY`, `ALL_PROXY`,
/// `NO_PROXY`) are honoured, as ureq does by default. One transport keeps a
/// connection pool: build it once and share it (it is `Clone`, `Send`, `Sync`).
///
/// ```no_run
/// use bakong_khqr::status::{check_khqr, Api, Token, UreqTransport, PRODUCTION_BASE_URL};
/// # let payload = "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh9934001317000000000000113170000006000063044947";
/// let api = Api::new(PRODUCTION_BASE_URL)?.with_token(Token::new(std::env::var("BAKONG_TOKEN")?)?);
/// let status = check_khqr(&UreqTransport::new(), &api, payload)?;
/// println!("{status:?}"); // Paid(..), Pending, AmountMismatch(..), ...
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct UreqTransport {
    agent: ureq::Agent,
    max_body_bytes: usize,
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl UreqTransport {
    /// A transport with [`TransportConfig::default`]: 10 000 ms per exchange,
    /// bodies up to 1 MiB.
    #[must_use]
    pub fn new() -> Self {
        Self::with_config(&TransportConfig::default())
    }

    /// A transport with these settings.
    #[must_use]
    pub fn with_config(config: &TransportConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            .build()
            .into();
        UreqTransport {
            agent,
            max_body_bytes: config.max_body_bytes,
        }
    }
}

/// Why [`UreqTransport`] got no answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum UreqError {
    /// The exchange took longer than [`TransportConfig::timeout_ms`].
    Timeout,
    /// The answer's body is longer than [`TransportConfig::max_body_bytes`];
    /// it was not read further.
    BodyTooLarge {
        /// The cap, in bytes.
        limit_bytes: usize,
    },
    /// The request could not be expressed as an `http::Request` (a URL or
    /// header the `http` crate refuses).
    Request(http::Error),
    /// Any other failure: DNS, connection refused, TLS, a broken connection.
    Other(ureq::Error),
}

impl fmt::Display for UreqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UreqError::Timeout => f.write_str("timed out"),
            UreqError::BodyTooLarge { limit_bytes } => {
                write!(f, "answer body larger than {limit_bytes} bytes")
            }
            UreqError::Request(e) => write!(f, "cannot build the HTTP request: {e}"),
            UreqError::Other(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for UreqError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UreqError::Request(e) => Some(e),
            UreqError::Other(e) => Some(e),
            UreqError::Timeout | UreqError::BodyTooLarge { .. } => None,
        }
    }
}

impl UreqTransport {
    fn error(&self, e: ureq::Error) -> UreqError {
        match e {
            ureq::Error::Timeout(_) => UreqError::Timeout,
            ureq::Error::BodyExceedsLimit(_) => UreqError::BodyTooLarge {
                limit_bytes: self.max_body_bytes,
            },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => UreqError::Timeout,
            other => UreqError::Other(other),
        }
    }
}

impl StatusChecker for UreqTransport {
    type Error = UreqError;

    /// Sends `request` and returns the answer, whatever its status.
    ///
    /// # Errors
    /// [`UreqError::Timeout`], [`UreqError::BodyTooLarge`],
    /// [`UreqError::Request`], or [`UreqError::Other`] (no answer came).
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, UreqError> {
        let request = http::Request::<Vec<u8>>::try_from(request).map_err(UreqError::Request)?;
        let response = self.agent.run(request).map_err(|e| self.error(e))?;
        let (parts, mut body) = response.into_parts();
        let body = body
            .with_config()
            .limit(self.max_body_bytes as u64)
            .read_to_vec()
            .map_err(|e| self.error(e))?;
        Ok(HttpResponse::from(http::Response::from_parts(parts, body)))
    }
}
