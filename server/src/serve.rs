//! The connection loop: HTTP/1.1 through hyper with a header-read timeout
//! (which also bounds an idle keep-alive connection: hyper starts that timer
//! whenever it waits for a request head), a cap on connections in all and per
//! client address, and a graceful drain on shutdown.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

pub use crate::config::ServeConfig;

/// The most bytes of a request head hyper reads (request line and headers);
/// a longer head gets hyper's own 431, made JSON by [`JsonParseErrors`]. The
/// application's own, smaller limits (`max_uri_bytes`, `max_header_bytes`)
/// answer first for anything up to this size.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The socket address of the peer, put in every request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// The open connections of each address, oldest first: an id and the signal
/// that closes it.
type PerIp = Arc<Mutex<HashMap<IpAddr, VecDeque<(u64, Arc<Notify>)>>>>;

/// Takes one connection of an address off the books when it ends.
struct IpSlot {
    map: PerIp,
    ip: IpAddr,
    id: u64,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(q) = map.get_mut(&self.ip) {
            q.retain(|(id, _)| *id != self.id);
            if q.is_empty() {
                map.remove(&self.ip);
            }
        }
    }
}

/// Books connection `id` of `ip` (unless per-address caps are off); at the
/// cap, closes that address's oldest connection: a client can only displace
/// its own connections, so a slow or idle flood from one address never locks
/// out the others, nor itself.
fn take_ip_slot(
    per_ip: &PerIp,
    config: &ServeConfig,
    ip: IpAddr,
    id: u64,
    close: &Arc<Notify>,
) -> Option<IpSlot> {
    if config.max_connections_per_ip == 0 {
        return None;
    }
    let mut map = per_ip
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let q = map.entry(ip).or_default();
    if q.len() >= config.max_connections_per_ip {
        if let Some((_, oldest)) = q.pop_front() {
            oldest.notify_one();
            metrics::counter!("khqr_connections_displaced_total").increment(1);
        }
    }
    q.push_back((id, close.clone()));
    Some(IpSlot {
        map: per_ip.clone(),
        ip,
        id,
    })
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to [`ServeConfig::drain_timeout`] for open requests.
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
    let per_ip: PerIp = Arc::new(Mutex::new(HashMap::new()));
    let mut next_id = 0u64;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
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
        // At its cap, an address's new connection closes that address's oldest
        // one: a client can only displace its own connections, so a slow or idle
        // flood from one address never locks out the others, nor itself.
        next_id += 1;
        let close = Arc::new(Notify::new());
        let slot = take_ip_slot(&per_ip, &config, peer.ip(), next_id, &close);
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
        });
        let conn = builder.serve_connection(TokioIo::new(JsonParseErrors::new(stream)), service);
        let conn = graceful.watch(conn);
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
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
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
