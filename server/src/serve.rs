//! The connection loop: HTTP/1.1 through hyper with a header-read timeout
//! (which also bounds an idle keep-alive connection: hyper starts that timer
//! whenever it waits for a request head), a cap on connections in all and per
//! client address, and a graceful drain on shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
    /// Most connections open at once from one address (0 = no limit); more are
    /// closed as soon as accepted. Turn it off behind a load balancer.
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

type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Gives back one connection slot of an address when the connection ends.
struct IpSlot {
    map: PerIp,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
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
        let slot = if config.max_connections_per_ip > 0 {
            let ip = peer.ip();
            let mut map = per_ip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = map.entry(ip).or_insert(0);
            if *n >= config.max_connections_per_ip {
                drop(map);
                metrics::counter!("khqr_connections_refused_total").increment(1);
                drop(stream);
                continue;
            }
            *n += 1;
            Some(IpSlot {
                map: per_ip.clone(),
                ip,
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
            let _ = conn.await;
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
