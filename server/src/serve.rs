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

/// The socket address of the peer, put in every request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Connection limits.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Longest wait for a complete request head, and so also the longest a
    /// keep-alive connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Most connections open at once; beyond it the server stops accepting
    /// (new clients wait in the kernel's backlog).
    pub max_connections: usize,
    /// Most connections open at once from one address (0 = no limit); the
    /// address's next connection closes its oldest one. Turn it off behind a
    /// load balancer.
    pub max_connections_per_ip: usize,
    /// On shutdown, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
}

impl Default for ServeConfig {
    /// 5 s header/idle timeout, 4 096 connections, 256 per address, 30 s drain.
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 4096,
            max_connections_per_ip: 256,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

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
        .max_buf_size(64 * 1024);
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
        let slot = if config.max_connections_per_ip > 0 {
            let ip = peer.ip();
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
            q.push_back((next_id, close.clone()));
            Some(IpSlot {
                map: per_ip.clone(),
                ip,
                id: next_id,
            })
        } else {
            None
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
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
