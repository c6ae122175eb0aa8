//! [`AsyncStatusChecker`] over `reqwest` (rustls with the webpki roots, no
//! system TLS library).

use core::fmt;
use core::future::Future;
use std::time::Duration;

use super::TransportConfig;
use crate::status::{AsyncStatusChecker, HttpRequest, HttpResponse, Method};

/// Why [`ReqwestTransport`] gave no answer.
///
/// `Display` never contains the request's headers (so never the token).
#[derive(Debug)]
#[non_exhaustive]
pub enum ReqwestError {
    /// The client could not be built (e.g. the TLS backend failed to load).
    Build(reqwest::Error),
    /// The request could not be sent or the answer not read: DNS, connect, TLS,
    /// a reset connection, or a header name or value HTTP does not allow.
    Http(reqwest::Error),
    /// The whole exchange took longer than [`TransportConfig::timeout_ms`].
    Timeout {
        /// The limit, in milliseconds.
        timeout_ms: u64,
    },
    /// The answer's body is longer than [`TransportConfig::max_body_bytes`]; it
    /// was not read past the limit.
    BodyTooLarge {
        /// The limit, in bytes.
        max_body_bytes: usize,
    },
}

impl fmt::Display for ReqwestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReqwestError::Build(e) => write!(f, "cannot build the HTTP client: {e}"),
            ReqwestError::Http(e) => write!(f, "HTTP exchange failed: {e}"),
            ReqwestError::Timeout { timeout_ms } => {
                write!(f, "no complete answer within {timeout_ms} ms")
            }
            ReqwestError::BodyTooLarge { max_body_bytes } => {
                write!(f, "answer body larger than {max_body_bytes} bytes")
            }
        }
    }
}

impl std::error::Error for ReqwestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReqwestError::Build(e) | ReqwestError::Http(e) => Some(e),
            _ => None,
        }
    }
}

/// An [`AsyncStatusChecker`] over a `reqwest` client (feature `reqwest`).
///
/// * No redirect is followed: a 3xx comes back as an [`HttpResponse`] (which
///   [`crate::status::parse_transaction`] refuses as
///   [`crate::status::ResponseError::UnexpectedStatus`]); an answer fetched
///   from wherever a redirect points could forge a payment.
/// * Every HTTP answer, 4xx and 5xx included, is returned as an
///   [`HttpResponse`], so the parsers see 401, 403, 429 (`Retry-After`) and 5xx.
/// * [`TransportConfig::timeout_ms`] bounds the whole exchange: connecting,
///   sending, and reading the whole body.
/// * The body is read chunk by chunk and refused as soon as it passes
///   [`TransportConfig::max_body_bytes`] (or at once when `Content-Length`
///   says so): an oversized answer is never buffered whole.
/// * No proxy from the environment is used, and no cookies are kept.
///
/// It is cheap to clone (the connection pool is shared) and must be used
/// inside a tokio runtime.
///
/// ```
/// use bakong_khqr::status::{ReqwestTransport, TransportConfig};
///
/// let transport = ReqwestTransport::new(TransportConfig::default().timeout_ms(5_000))?;
/// assert_eq!(transport.config().timeout_ms, 5_000);
/// # Ok::<(), bakong_khqr::status::ReqwestError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    config: TransportConfig,
}

impl ReqwestTransport {
    /// A transport with these settings.
    ///
    /// # Errors
    /// [`ReqwestError::Build`] if `reqwest` cannot build its client (its TLS
    /// backend failed to initialise).
    pub fn new(config: TransportConfig) -> Result<Self, ReqwestError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(config.timeout_ms))
            .no_proxy()
            .build()
            .map_err(ReqwestError::Build)?;
        Ok(ReqwestTransport { client, config })
    }

    /// The settings this transport was built with.
    #[must_use]
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    async fn exchange(&self, request: HttpRequest) -> Result<HttpResponse, ReqwestError> {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = self.client.request(method, request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        let timeout_ms = self.config.timeout_ms;
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                ReqwestError::Timeout { timeout_ms }
            } else {
                ReqwestError::Http(e)
            }
        };
        let mut response = builder.body(request.body).send().await.map_err(classify)?;
        let cap = self.config.max_body_bytes;
        let too_large = ReqwestError::BodyTooLarge {
            max_body_bytes: cap,
        };
        if response
            .content_length()
            .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > cap))
        {
            return Err(too_large);
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len().saturating_add(chunk.len()) > cap {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

impl AsyncStatusChecker for ReqwestTransport {
    type Error = ReqwestError;

    fn send(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, ReqwestError>> + Send {
        self.exchange(request)
    }
}

#[cfg(test)]
mod tests {
    //! Against a fake Bakong on 127.0.0.1 (port 0): a raw TCP server that
    //! answers each connection with one canned HTTP/1.1 answer.
    use super::*;
    use crate::status::{check_md5_async, Api, CheckError, ResponseError, RetryAfter, Token};
    use crate::status::{TransactionStatus, USER_AGENT};
    use crate::Md5;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const PAID: &str = r#"{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":{"hash":"5f2a","fromAccountId":"a@abaa","toAccountId":"m@abaa","currency":"USD","amount":1.5,"description":"","createdDateMs":1,"acknowledgedDateMs":2}}"#;
    const PENDING: &str = r#"{"responseCode":1,"responseMessage":"Transaction could not be found.","errorCode":1,"data":null}"#;

    /// What the fake answers: the raw head (status line and headers, no final
    /// blank line), the body, and how long to wait before answering.
    #[derive(Clone)]
    struct Canned {
        head: String,
        body: Vec<u8>,
        delay_ms: u64,
    }

    fn canned(status_line: &str, extra: &str, body: &[u8]) -> Canned {
        Canned {
            head: format!(
                "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}",
                body.len()
            ),
            body: body.to_vec(),
            delay_ms: 0,
        }
    }

    /// Serves `answers` to at most `answers.len()` connections, in order; records
    /// every request head it reads.
    async fn fake(answers: Vec<Canned>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            for answer in answers {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut n = 0;
                    // Read until the end of the head plus the body the client announced.
                    while n < buf.len() {
                        let Ok(k) = socket.read(&mut buf[n..]).await else {
                            return;
                        };
                        if k == 0 {
                            break;
                        }
                        n += k;
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if n >= end + 4 + len {
                                seen.lock().unwrap().push(text);
                                break;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(answer.delay_ms)).await;
                    let _ = socket
                        .write_all(format!("{}\r\n", answer.head).as_bytes())
                        .await;
                    let _ = socket.write_all(&answer.body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        (format!("http://{addr}"), seen)
    }

    fn md5() -> Md5 {
        Md5::of("00020101021229180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B")
    }

    async fn check(
        base: &str,
        config: TransportConfig,
    ) -> Result<TransactionStatus, CheckError<ReqwestError>> {
        let api = Api::new(base)
            .unwrap()
            .with_token(Token::new("good.token.sig").unwrap());
        let transport = ReqwestTransport::new(config).unwrap();
        check_md5_async(&transport, &api, &md5()).await
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn paid_and_pending_and_what_was_sent() {
        rt().block_on(async {
            let (base, seen) = fake(vec![
                canned(
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    PAID.as_bytes(),
                ),
                canned("200 OK", "", PENDING.as_bytes()),
            ])
            .await;
            let TransactionStatus::Paid(tx) =
                check(&base, TransportConfig::default()).await.unwrap()
            else {
                panic!("not paid")
            };
            assert_eq!((tx.amount.as_str(), tx.currency.as_str()), ("1.5", "USD"));
            assert_eq!(
                check(&base, TransportConfig::default()).await.unwrap(),
                TransactionStatus::Pending
            );
            let seen = seen.lock().unwrap().clone();
            assert_eq!(seen.len(), 2);
            let head = seen[0].to_ascii_lowercase();
            assert!(head.starts_with("post /v1/check_transaction_by_md5 http/1.1\r\n"));
            assert!(head.contains("authorization: bearer good.token.sig\r\n"));
            assert_eq!(head.matches("user-agent:").count(), 1);
            assert!(head.contains(&format!("user-agent: {}", USER_AGENT.to_ascii_lowercase())));
            assert!(seen[0].ends_with(&format!(r#"{{"md5":"{}"}}"#, md5())));
        });
    }

    #[test]
    fn error_statuses_are_answers() {
        rt().block_on(async {
            let (base, _) = fake(vec![
                canned("401 Unauthorized", "", br#"{"error":"expired"}"#),
                canned(
                    "403 Forbidden",
                    "Content-Type: text/html\r\n",
                    b"<html><body>Access denied</body></html>",
                ),
                canned("429 Too Many Requests", "Retry-After: 7\r\n", b""),
                canned("503 Service Unavailable", "", b"busy"),
            ])
            .await;
            let c = TransportConfig::default();
            assert!(matches!(
                check(&base, c.clone()).await,
                Err(CheckError::Response(ResponseError::Unauthorized {
                    status: 401
                }))
            ));
            assert!(matches!(
                check(&base, c.clone()).await,
                Err(CheckError::Response(ResponseError::Forbidden))
            ));
            assert!(matches!(
                check(&base, c.clone()).await,
                Err(CheckError::Response(ResponseError::RateLimited {
                    retry_after: Some(RetryAfter::Seconds(7))
                }))
            ));
            assert!(matches!(
                check(&base, c).await,
                Err(CheckError::Response(ResponseError::ServerError {
                    status: 503
                }))
            ));
        });
    }

    #[test]
    fn redirect_is_not_followed() {
        rt().block_on(async {
            // The second server would say "paid"; the redirect points at it.
            let (forger, forger_seen) =
                fake(vec![canned("200 OK", "", PAID.as_bytes())]).await;
            for status in ["301 Moved Permanently", "302 Found", "307 Temporary Redirect"] {
                let location = format!("Location: {forger}/v1/check_transaction_by_md5\r\n");
                let (base, _) = fake(vec![canned(status, &location, b"")]).await;
                let code: u16 = status[..3].parse().unwrap();
                assert!(matches!(
                    check(&base, TransportConfig::default()).await,
                    Err(CheckError::Response(ResponseError::UnexpectedStatus { status })) if status == code
                ));
            }
            assert!(forger_seen.lock().unwrap().is_empty());
        });
    }

    #[test]
    fn slow_answer_times_out() {
        rt().block_on(async {
            let mut slow = canned("200 OK", "", PENDING.as_bytes());
            slow.delay_ms = 3_000;
            let (base, _) = fake(vec![slow]).await;
            let started = std::time::Instant::now();
            let result = check(&base, TransportConfig::default().timeout_ms(300)).await;
            assert!(
                matches!(
                    result,
                    Err(CheckError::Transport(ReqwestError::Timeout {
                        timeout_ms: 300
                    }))
                ),
                "{result:?}"
            );
            assert!(started.elapsed() < Duration::from_millis(2_500));
        });
    }

    #[test]
    fn oversized_body_is_refused() {
        rt().block_on(async {
            let big = vec![b' '; 64 * 1024];
            // Announced by Content-Length, and streamed without one (chunked).
            let mut chunked = Canned {
                head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                    .into(),
                body: Vec::new(),
                delay_ms: 0,
            };
            for _ in 0..16 {
                chunked.body.extend_from_slice(b"1000\r\n");
                chunked.body.extend_from_slice(&[b' '; 0x1000]);
                chunked.body.extend_from_slice(b"\r\n");
            }
            chunked.body.extend_from_slice(b"0\r\n\r\n");
            let (base, _) = fake(vec![canned("200 OK", "", &big), chunked]).await;
            for _ in 0..2 {
                let result = check(&base, TransportConfig::default().max_body_bytes(4096)).await;
                assert!(
                    matches!(
                        result,
                        Err(CheckError::Transport(ReqwestError::BodyTooLarge {
                            max_body_bytes: 4096
                        }))
                    ),
                    "{result:?}"
                );
            }
        });
    }
}
