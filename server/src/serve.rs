//! The connection loop: HTTP/1.1 through hyper with a header-read timeout
//! (which also bounds an idle keep-alive connection: hyper starts that timer
//! whenever it waits for a request head), a write timeout (`write_timeout.rs`:
//! a client that does not read is reset), a cap on connections in all and per
//! client group (`conns.rs`: IPv4 address, IPv6 /64; when full, the biggest
//! holder gives way), and a graceful drain on shutdown.

mod conns;
mod write_timeout;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

use self::conns::Conns;
use self::write_timeout::WriteTimeout;
use crate::client_ip::ClientGroup;

pub use crate::config::ServeConfig;

/// The most bytes of a request head hyper reads (request line and headers);
/// a longer head gets hyper's own 431, made JSON by [`JsonParseErrors`]. The
/// application's own, smaller limits (`max_uri_bytes`, `max_header_bytes`)
/// answer first for anything up to this size.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The socket address of the peer, put in every request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// The HTTP/1.1 connection builder for `config`.
fn http1(config: &ServeConfig) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to [`ServeConfig::drain_timeout`] for open requests.
///
/// Each connection is booked under its peer's client group
/// ([`crate::client_ip::ClientGroup`]) for the per-group cap, unless the peer
/// is a trusted proxy; when the server is full, the biggest holder's oldest
/// connection makes room (see `serve/conns.rs`). Every connection's writes
/// are bounded by [`ServeConfig::write_timeout`] (see `serve/write_timeout.rs`).
///
/// # Errors
/// None so far: accept errors (e.g. out of file descriptors) are logged and
/// retried after 50 ms; the signature keeps room for bind-time failures.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let conns = Conns::new(config.max_connections_per_ip);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = http1(&config);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(permit) = conns.take_slot(&slots, shutdown.as_mut()).await else {
            break;
        };
        let (slot, close) = if config.trusted_proxies.contains(peer.ip()) {
            (None, Arc::new(Notify::new()))
        } else {
            let (slot, close) = conns.admit(ClientGroup::of(peer.ip()));
            (Some(slot), close)
        };
        let _ = stream.set_nodelay(true);
        write_timeout::limit_unsent(&stream);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
        });
        let io = JsonParseErrors::new(WriteTimeout::new(stream, config.write_timeout));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                () = close.notified() => {}
            }
            drop(permit);
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!("drain timeout: closing the remaining connections");
        }
    }
    Ok(())
}

/// A connection whose writes are watched for hyper's own error answers.
///
/// When hyper cannot parse a request (bytes that are not HTTP, a malformed
/// header line, a head over [`MAX_HEAD_BYTES`], more than 100 headers) it
/// answers by itself, before any service runs, with an empty `400`, `414` or
/// `431` and closes the connection; hyper 1 offers no hook to change that
/// answer (hyperium/hyper#2583, #3225). The application's own error answers
/// always carry `content-type: application/json` (see `http/guard.rs`), so a `4xx`
/// head without any `content-type` can only be hyper's: this wrapper writes the
/// JSON error for the same status in its place, with `connection: close`.
pub struct JsonParseErrors<S> {
    inner: S,
    /// The replacement being written and the length of hyper's head it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<S> JsonParseErrors<S> {
    /// Wraps a connection.
    pub fn new(inner: S) -> Self {
        JsonParseErrors {
            inner,
            pending: None,
        }
    }
}

/// The JSON answer standing for hyper's own empty error head `head`, if it is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    if !(head.starts_with(b"HTTP/1.1 4") || head.starts_with(b"HTTP/1.0 4")) {
        return None;
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = head[..end].to_ascii_lowercase();
    let typed = head.windows(13).any(|w| w == b"content-type:");
    let empty = head.windows(18).any(|w| w == b"content-length: 0\r")
        || head.ends_with(b"content-length: 0");
    if typed || !empty {
        return None;
    }
    let (status, kind, message) = match &head[9..12] {
        b"431" => (
            "431 Request Header Fields Too Large",
            "headers_too_large",
            "the request head is too large (bytes or number of headers)",
        ),
        b"414" => (
            "414 URI Too Long",
            "uri_too_long",
            "the request target is too long",
        ),
        _ => (
            "400 Bad Request",
            "bad_request",
            "the request is not HTTP/1.1 this server can read",
        ),
    };
    let body = crate::error::error_json(
        bakong_khqr::ErrorCode::InvalidRequest.number(),
        kind,
        message,
    );
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> JsonParseErrors<S> {
    /// Writes the pending replacement; `Ready(Ok(n))` with hyper's length once done.
    fn drain(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        while let Some((out, pos, claimed)) = &mut self.pending {
            if *pos >= out.len() {
                let n = *claimed;
                self.pending = None;
                return Poll::Ready(Ok(n));
            }
            match std::pin::Pin::new(&mut self.inner).poll_write(cx, &out[*pos..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => *pos += n,
                other => return other,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.pending.is_none() {
            match replacement(buf) {
                Some(out) => self.pending = Some((out, 0, buf.len())),
                None => return std::pin::Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        self.drain(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.pending.is_none() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            match replacement(first) {
                Some(out) => {
                    let claimed = bufs.iter().map(|b| b.len()).sum();
                    self.pending = Some((out, 0, claimed));
                }
                None => return std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            }
        }
        self.drain(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn hyper_error_heads_become_json_and_ours_pass() {
        for (head, status, kind) in [
            (&b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n"[..], "431", "headers_too_large"),
            (b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n", "400", "bad_request"),
            (b"HTTP/1.1 414 URI Too Long\r\nContent-Length: 0\r\n\r\n", "414", "uri_too_long"),
        ] {
            let out = String::from_utf8(replacement(head).unwrap()).unwrap();
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
            let (h, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(h.contains("content-type: application/json"));
            assert!(h.contains(&format!("content-length: {}", body.len())));
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!((v["status"].as_bool(), v["error"].as_str()), (Some(false), Some(kind)));
            assert_eq!(v["errorCode"], 60);
        }
        // Our own answers, success or JSON error, and bodies, are left alone.
        for other in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0",
            b"{\"status\":false}",
            b"",
        ] {
            assert!(replacement(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }
}
