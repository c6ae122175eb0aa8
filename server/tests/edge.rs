//! The edge attacks of issue 18 (items 4, 6 and 8), replayed on loopback
//! only: holding every connection, slow reads, forged client addresses, and
//! the routes that were never limited. Distinct loopback source addresses
//! (127.0.0.2, 127.0.0.3, …) are distinct clients to the server. Every loop
//! is bounded in count and in time.

#![allow(clippy::too_many_lines)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{backends, client, config_for, fake_bakong, get, make_store, send, Backend, Fake};
use khqr_server::store::Limits;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The font asset's size, in bytes.
const FONT_BYTES: usize = 93_288;

/// What these tests set; [`start`] maps it onto the server's configuration.
#[derive(Clone, Debug)]
struct Edge {
    max_connections: usize,
    max_connections_per_ip: usize,
    header_timeout_ms: u64,
    write_timeout_ms: u64,
    max_events_per_client: usize,
    max_events: usize,
    /// Serve `/healthz`, `/readyz`, `/metrics` on their own listener.
    admin: bool,
    trusted_proxies: Option<&'static str>,
    client_ip_header: Option<&'static str>,
    limits: Limits,
    assets_rate: u32,
    admin_rate: u32,
    listen: &'static str,
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            max_connections: 4096,
            max_connections_per_ip: 256,
            header_timeout_ms: 5_000,
            write_timeout_ms: 10_000,
            max_events_per_client: 0,
            max_events: 0,
            admin: false,
            trusted_proxies: None,
            client_ip_header: None,
            limits: common::open_limits(),
            assets_rate: 0,
            admin_rate: 0,
            listen: "127.0.0.1:0",
        }
    }
}

/// A running server: its public and admin addresses (the same when the admin
/// routes are not on their own listener).
struct Running {
    base: String,
    addr: SocketAddr,
    admin_base: String,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _fake: Fake,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

async fn start(edge: &Edge, backend: &Backend) -> Running {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.rate_per_client = edge.limits.client_per_sec;
    config.burst_per_client = edge.limits.client_burst;
    config.rate_per_account = edge.limits.account_per_sec;
    config.burst_per_account = edge.limits.account_burst;
    config.quota_per_client = edge.limits.quota_per_client;
    config.header_timeout_ms = edge.header_timeout_ms;
    config.max_connections = edge.max_connections;
    config.max_connections_per_ip = edge.max_connections_per_ip;
    config.drain_secs = 2;
    config.write_timeout_ms = edge.write_timeout_ms;
    config.max_events_per_client = edge.max_events_per_client;
    config.max_events = edge.max_events;
    config.rate_assets_per_client = edge.assets_rate;
    config.rate_admin_per_client = edge.admin_rate;
    config.trusted_proxies = edge
        .trusted_proxies
        .map(|t| {
            t.split(',')
                .map(|n| khqr_server::client_ip::parse_network(n).unwrap())
                .collect()
        })
        .unwrap_or_default();
    config.client_ip_header = edge.client_ip_header.map(|h| h.parse().unwrap());
    let listener = tokio::net::TcpListener::bind(edge.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    config.public_url = Some(format!("http://{addr}"));
    let admin_listener = if edge.admin {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        config.admin_listen = Some(l.local_addr().unwrap());
        Some(l)
    } else {
        None
    };
    let store = make_store(backend, config.limits()).await;
    let app = khqr_server::app(&config, store).unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let base = format!("http://{addr}");
    let mut admin_base = base.clone();
    if let Some(l) = admin_listener {
        admin_base = format!("http://{}", l.local_addr().unwrap());
        let (router, serve, mut rx) = (app.admin_router(), config.admin_serve(), rx.clone());
        tasks.push(tokio::spawn(async move {
            khqr_server::serve(l, router, serve, async move {
                let _ = rx.changed().await;
            })
            .await
            .unwrap();
        }));
    }
    let (router, serve, mut rx) = (app.router(), config.serve(), rx);
    tasks.push(tokio::spawn(async move {
        khqr_server::serve(listener, router, serve, async move {
            let _ = rx.changed().await;
        })
        .await
        .unwrap();
    }));
    Running {
        admin_base,
        base,
        addr,
        stop,
        tasks,
        _fake: fake,
    }
}

/// A raw connection from loopback address `from`, with a receive buffer of
/// `rcvbuf` bytes if given (set before connecting, so the window stays small).
async fn raw_conn(from: &str, to: SocketAddr, rcvbuf: Option<u32>) -> TcpStream {
    let s = if to.is_ipv6() {
        TcpSocket::new_v6().unwrap()
    } else {
        TcpSocket::new_v4().unwrap()
    };
    if let Some(n) = rcvbuf {
        s.set_recv_buffer_size(n).unwrap();
    }
    s.bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// Reads an answer's head (up to the blank line) within `within`: the status,
/// the lowercased head, and the body bytes read with it. `None` if no complete
/// head came in time or the connection ended first.
async fn read_head(s: &mut TcpStream, within: Duration) -> Option<(u16, String, Vec<u8>)> {
    let deadline = Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head.get(9..12)?.parse().ok()?;
            return Some((status, head, buf[end + 4..].to_vec()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
        if buf.len() > 256 * 1024 {
            return None;
        }
    }
}

/// Reads until the server closes (EOF or reset) within `within`: the bytes
/// read and whether it closed.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (usize, bool) {
    let deadline = Instant::now() + within;
    let mut total = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (total, false);
        }
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Err(_) => return (total, false),
            Ok(Ok(0) | Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n,
        }
    }
}

fn request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// Creates a QR from `from` and returns its tran.
async fn create_from(base: &str, from: &str) -> String {
    let c = client(Some(from));
    let a = get(
        &c,
        &format!("{base}/khqr/create?amount=1.25&bakongid=merchant@abaa&merchantname=Shop"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    a.json()["tran"].as_str().unwrap().to_owned()
}

/// Item 4: 512 event streams from 8 addresses against 512 connections. The
/// stream caps (32 per client, 200 in all) refuse the excess with a JSON 429
/// or 503 and close those connections; `/healthz` on the admin listener
/// answers within 100 ms, and a create from another address is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_cannot_hold_every_connection_with_both_stores() {
    let (_redis, backends) = backends();
    for backend in backends {
        let edge = Edge {
            max_connections: 512,
            max_events_per_client: 32,
            max_events: 200,
            admin: true,
            ..Edge::default()
        };
        let server = start(&edge, &backend).await;
        let tran = create_from(&server.base, "127.0.0.10").await;
        // The flood, one address after the other so the counts are exact:
        // 64 streams from each of 127.0.0.2..=9, each answer's head within 3 s.
        let started = Instant::now();
        let mut streams = Vec::new();
        let (mut per_client, mut server_full, mut unanswered) = (0, 0, 0);
        for host in 2..=9 {
            for _ in 0..64 {
                let mut s = raw_conn(&format!("127.0.0.{host}"), server.addr, None).await;
                s.write_all(&request(&format!("/khqr/events/{tran}")))
                    .await
                    .unwrap();
                match read_head(&mut s, Duration::from_secs(3)).await {
                    Some((200, head, _)) => {
                        assert!(head.contains("text/event-stream"), "{head}");
                        streams.push(s);
                    }
                    Some((status @ (429 | 503), head, body)) => {
                        assert!(head.contains("application/json"), "{head}");
                        let v: Value = serde_json::from_slice(&body).unwrap();
                        assert_eq!(v["status"], false);
                        if status == 429 {
                            assert_eq!(v["error"], "too_many_streams", "{v}");
                            per_client += 1;
                        } else {
                            assert_eq!(v["error"], "server_busy", "{v}");
                            server_full += 1;
                        }
                        // The refused connection is closed, giving its place back.
                        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(1)).await;
                        assert!(closed, "a refused stream's connection stayed open");
                    }
                    Some((status, head, _)) => panic!("{backend:?}: stream got {status}: {head}"),
                    None => unanswered += 1,
                }
                if started.elapsed() > Duration::from_secs(40) {
                    break;
                }
            }
        }
        eprintln!(
            "{backend:?}: {} streams held, {per_client} refused per client, {server_full} refused server-wide, {unanswered} unanswered, in {:?}",
            streams.len(),
            started.elapsed()
        );
        // /healthz on the admin listener, five times, each within 100 ms.
        let admin = client(Some("127.0.0.12"));
        let mut worst = Duration::ZERO;
        for _ in 0..5 {
            let t = Instant::now();
            let r = tokio::time::timeout(
                Duration::from_secs(2),
                send(admin.get(format!("{}/healthz", server.admin_base))),
            )
            .await;
            let took = t.elapsed();
            worst = worst.max(took);
            assert!(
                matches!(&r, Ok(a) if a.status == 200),
                "{backend:?}: /healthz unanswered after {took:?}"
            );
        }
        eprintln!("{backend:?}: worst /healthz {worst:?}");
        assert!(
            worst < Duration::from_millis(100),
            "{backend:?}: /healthz took {worst:?}"
        );
        // A create from another address is answered.
        let t = Instant::now();
        let c = client(Some("127.0.0.11"));
        let r = tokio::time::timeout(
            Duration::from_secs(3),
            send(c.get(format!(
                "{}/khqr/create?amount=2&bakongid=other@abaa&merchantname=Other",
                server.base
            ))),
        )
        .await;
        assert!(
            matches!(&r, Ok(a) if a.status == 200),
            "{backend:?}: create unanswered after {:?}",
            t.elapsed()
        );
        eprintln!("{backend:?}: create answered in {:?}", t.elapsed());
        // The caps: 32 per client for six addresses (192), then 8 more from
        // the seventh up to the 200 in all; every other stream refused.
        assert_eq!(unanswered, 0, "{backend:?}");
        assert_eq!(streams.len(), 200, "{backend:?}");
        assert_eq!(per_client, 6 * 32, "{backend:?}");
        assert_eq!(server_full, 512 - 200 - 6 * 32, "{backend:?}");
        // The admin routes are not on the public port.
        let a = get(&c, &format!("{}/healthz", server.base)).await;
        assert_eq!(a.status, 404, "{backend:?}: /healthz on the public port");
        drop(streams);
        server.stop().await;
    }
}

/// Item 4: a few clients holding every connection with idle connections do
/// not keep a newcomer waiting for the header timeout: when the server is
/// full, the biggest holder's oldest connection makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_hogs_are_shed_for_a_newcomer() {
    let edge = Edge {
        max_connections: 64,
        max_connections_per_ip: 0,
        header_timeout_ms: 5_000,
        ..Edge::default()
    };
    let server = start(&edge, &Backend::Memory).await;
    let mut idle = Vec::new();
    for i in 0..64 {
        idle.push(raw_conn(&format!("127.0.0.{}", 2 + i % 2), server.addr, None).await);
    }
    // Give the server time to accept all 64.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s = raw_conn("127.0.0.4", server.addr, None).await;
    let t = Instant::now();
    s.write_all(&request("/khqr/assets/checkout.css"))
        .await
        .unwrap();
    let answer = read_head(&mut s, Duration::from_secs(4)).await;
    let took = t.elapsed();
    eprintln!(
        "newcomer answered {:?} after {took:?}",
        answer.as_ref().map(|a| a.0)
    );
    assert_eq!(answer.map(|a| a.0), Some(200), "after {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "the newcomer waited {took:?}"
    );
    drop(idle);
    server.stop().await;
}

/// The bytes the kernel holds queued for sending on the server's sockets
/// (`tx_queue` of every socket whose local port is `port`), from
/// `/proc/net/tcp`.
fn server_queued_bytes(port: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let tx = u64::from_str_radix(f.get(4)?.split(':').next()?, 16).ok()?;
            (local_port == port).then_some(tx)
        })
        .sum()
}

/// Item 4: 64 clients ask for the 93 KB font and never read. Within the
/// write timeout (1 s) and a margin their connections are reset: the bytes
/// queued for them are dropped and none of them gets the whole font.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_cut_off_by_the_write_timeout() {
    let edge = Edge {
        write_timeout_ms: 1_000,
        ..Edge::default()
    };
    let server = start(&edge, &Backend::Memory).await;
    let port = server.addr.port();
    let mut slow = Vec::new();
    for i in 0..64 {
        let mut s = raw_conn(&format!("127.0.0.{}", 2 + i % 8), server.addr, Some(4096)).await;
        s.write_all(&request("/khqr/assets/khmer.ttf"))
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queued_before = server_queued_bytes(port);
    // Write timeout plus a margin.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queued_after = server_queued_bytes(port);
    // A normal client is served meanwhile.
    let c = client(Some("127.0.0.20"));
    let a = get(&c, &format!("{}/khqr/assets/khmer.ttf", server.base)).await;
    assert_eq!((a.status, a.body.len()), (200, FONT_BYTES));
    // Each slow client now reads: it gets part of the font, then the reset.
    let (mut closed, mut whole) = (0, 0);
    for s in &mut slow {
        let (n, was_closed) = read_until_closed(s, Duration::from_secs(2)).await;
        if was_closed {
            closed += 1;
        }
        if n >= FONT_BYTES {
            whole += 1;
        }
    }
    eprintln!(
        "queued on the server: {queued_before} bytes after 0.5 s, {queued_after} after 2.5 s; \
         {closed} of 64 closed, {whole} got the whole font"
    );
    // The kernel's queues are read from /proc (Linux only).
    if std::path::Path::new("/proc/net/tcp").exists() {
        assert!(
            queued_before > 64 * 4096,
            "the attack did not queue: {queued_before}"
        );
        assert!(queued_after < 64 * 1024, "still queued: {queued_after}");
    }
    assert_eq!(closed, 64);
    assert_eq!(whole, 0);
    server.stop().await;
}

/// Item 6: forwarded addresses count only from a trusted proxy. From the
/// trusted 127.0.0.1 each `X-Forwarded-For` client has its own bucket; from
/// 127.0.0.2 rotating forged `X-Forwarded-For` and `Forwarded` headers are
/// ignored and its 500 requests are limited as one client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_client_addresses_are_ignored_with_both_stores() {
    let (_redis, backends) = backends();
    for backend in backends {
        let edge = Edge {
            trusted_proxies: Some("127.0.0.1/32"),
            client_ip_header: Some("X-Forwarded-For"),
            limits: Limits {
                client_per_sec: 5,
                client_burst: 10,
                account_per_sec: 0,
                quota_per_client: 1_000_000,
                ..Limits::default()
            },
            ..Edge::default()
        };
        let server = start(&edge, &backend).await;
        let url = format!("{}/khqr/qr/nosuchtran", server.base);
        // Through the trusted proxy: 30 requests for one forwarded client.
        let proxy = client(Some("127.0.0.1"));
        let mut limited = 0;
        for _ in 0..30 {
            let a = send(proxy.get(&url).header("x-forwarded-for", "198.51.100.7")).await;
            match a.status {
                404 => {}
                429 => limited += 1,
                s => panic!("{backend:?}: {s}"),
            }
        }
        assert!(
            limited >= 10,
            "{backend:?}: the forwarded client was not limited"
        );
        // Another forwarded client has its own bucket.
        let a = send(
            proxy
                .get(&url)
                .header("x-forwarded-for", "1.1.1.1, 198.51.100.8"),
        )
        .await;
        assert_eq!(
            a.status, 404,
            "{backend:?}: another forwarded client was limited"
        );
        // From an untrusted peer: 500 requests, each with a new forged address.
        let stranger = client(Some("127.0.0.2"));
        let started = Instant::now();
        let (mut passed, mut limited) = (0u64, 0u64);
        for i in 0..500u32 {
            let forged = format!("203.0.{}.{}", i / 250, i % 250 + 1);
            let mut req = stranger.get(&url);
            req = if i % 2 == 0 {
                req.header("x-forwarded-for", &forged)
            } else {
                req.header("forwarded", format!("for={forged}"))
                    .header("x-forwarded-for", format!("10.0.0.1, {forged}"))
            };
            match send(req).await.status {
                404 => passed += 1,
                429 => limited += 1,
                s => panic!("{backend:?}: {s}"),
            }
            if started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        let secs = started.elapsed().as_secs() + 1;
        eprintln!(
            "{backend:?}: forged from an untrusted peer: {limited} of {} limited in {:?}",
            passed + limited,
            started.elapsed()
        );
        assert!(
            passed <= 10 + 5 * secs,
            "{backend:?}: {passed} passed the 5/s limit in {secs} s"
        );
        assert!(limited >= 500 - 10 - 5 * secs, "{backend:?}: {limited}");
        server.stop().await;
    }
}

/// Item 8: the page's assets, unknown paths and the admin routes are rate
/// limited too (each in a bucket of its own), without costing the client its
/// store bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_and_admin_floods_are_limited() {
    let edge = Edge {
        admin: true,
        assets_rate: 10,
        admin_rate: 5,
        limits: Limits {
            client_per_sec: 50,
            client_burst: 200,
            account_per_sec: 0,
            quota_per_client: 1_000_000,
            ..Limits::default()
        },
        ..Edge::default()
    };
    let server = start(&edge, &Backend::Memory).await;
    let c = client(Some("127.0.0.2"));
    let mut report = Vec::new();
    for (base, path, rate) in [
        (&server.base, "/khqr/assets/checkout.css", 10u64),
        (&server.base, "/khqr/assets/khmer.ttf", 10),
        (&server.base, "/no/such/path", 10),
        (&server.admin_base, "/readyz", 5),
        (&server.admin_base, "/metrics", 5),
        (&server.admin_base, "/healthz", 5),
    ] {
        // Wait for the bucket to fill again.
        tokio::time::sleep(Duration::from_millis(4_000 / rate)).await;
        let started = Instant::now();
        let (mut passed, mut limited) = (0u64, 0u64);
        for _ in 0..200 {
            let a = get(&c, &format!("{base}{path}")).await;
            if a.status == 429 {
                let v = a.json();
                assert_eq!(v["error"], "rate_limited");
                assert!(a.header("retry-after").is_some());
                limited += 1;
            } else {
                passed += 1;
            }
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        let secs = started.elapsed().as_secs() + 1;
        report.push(format!("{path}: {limited} of {} limited", passed + limited));
        assert!(limited > 0, "{path}: never limited ({passed} passed)");
        assert!(
            passed <= 4 * rate * 2 + rate * secs,
            "{path}: {passed} passed in {secs} s"
        );
    }
    eprintln!("{}", report.join("; "));
    // The same client's store bucket is untouched: a create passes.
    let a = get(
        &c,
        &format!(
            "{}/khqr/create?amount=1&bakongid=m@abaa&merchantname=S",
            server.base
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    server.stop().await;
}

/// Item 8: `X-Content-Type-Options: nosniff` on every kind of answer: JSON
/// success and errors, PNG, HTML, assets, event streams, 304, the admin
/// routes, and hyper's own 400/431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_says_nosniff() {
    let edge = Edge {
        admin: true,
        ..Edge::default()
    };
    let server = start(&edge, &Backend::Memory).await;
    let c = client(Some("127.0.0.2"));
    let b = &server.base;
    let tran = create_from(b, "127.0.0.2").await;
    let urls = [
        format!("{b}/khqr/create?amount=1&bakongid=m@abaa&merchantname=S"),
        format!("{b}/khqr/create?amount=0&bakongid=m@abaa&merchantname=S"),
        format!("{b}/khqr/qr/{tran}"),
        format!("{b}/khqr/qr/nosuch"),
        format!("{b}/khqr/pay/{tran}"),
        format!("{b}/khqr/assets/checkout.js"),
        format!("{b}/khqr/assets/nosuch"),
        format!("{b}/khqr/check/{tran}?bakongid=m@abaa"),
        format!("{b}/check_by_md5"),
        format!("{b}/no/such/path"),
        format!("{b}/khqr/create?{}", "x".repeat(5000)),
        format!("{}/healthz", server.admin_base),
        format!("{}/readyz", server.admin_base),
        format!("{}/metrics", server.admin_base),
    ];
    let mut missing = Vec::new();
    let mut kinds = Vec::new();
    for url in &urls {
        let a = get(&c, url).await;
        kinds.push(format!("{} {}", a.status, a.content_type));
        if a.header("x-content-type-options").as_deref() != Some("nosniff") {
            missing.push(format!("{} {url:.60}", a.status));
        }
    }
    // 405 and 304.
    let a = send(c.delete(format!("{b}/khqr/create"))).await;
    if a.header("x-content-type-options").as_deref() != Some("nosniff") {
        missing.push(format!("{} DELETE", a.status));
    }
    let etag = get(&c, &format!("{b}/khqr/qr/{tran}"))
        .await
        .header("etag")
        .unwrap();
    let a = send(
        c.get(format!("{b}/khqr/qr/{tran}"))
            .header("if-none-match", etag),
    )
    .await;
    assert_eq!(a.status, 304);
    if a.header("x-content-type-options").as_deref() != Some("nosniff") {
        missing.push("304".into());
    }
    // An event stream's head, and hyper's own errors, over raw connections.
    let raw: [(&str, Vec<u8>); 3] = [
        ("events", request(&format!("/khqr/events/{tran}"))),
        ("hyper 400", b"\xff\xfe garbage\r\n\r\n".to_vec()),
        (
            "hyper 431",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nx: {}\r\n\r\n",
                "p".repeat(70 * 1024)
            )
            .into_bytes(),
        ),
    ];
    for (what, bytes) in raw {
        let mut s = raw_conn("127.0.0.3", server.addr, None).await;
        let _ = s.write_all(&bytes).await;
        let (status, head, _) = read_head(&mut s, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        kinds.push(format!("{status} {what}"));
        if !head.contains("x-content-type-options: nosniff") {
            missing.push(format!("{status} {what}"));
        }
    }
    eprintln!("answers checked: {}", kinds.join(", "));
    assert!(missing.is_empty(), "no nosniff on: {missing:?}");
    server.stop().await;
}

/// Item 4 over IPv6 loopback (skipped where `[::1]` cannot be bound): the
/// per-client connection cap counts the client's /64, and its next connection
/// displaces its own oldest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_capped_by_their_64() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let edge = Edge {
        max_connections_per_ip: 3,
        listen: "[::1]:0",
        ..Edge::default()
    };
    let server = start(&edge, &Backend::Memory).await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(raw_conn("::1", server.addr, None).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, first_closed) = read_until_closed(&mut conns[0], Duration::from_secs(2)).await;
    assert!(first_closed, "the /64's oldest connection was kept");
    // The newest still works.
    let last = conns.last_mut().unwrap();
    last.write_all(&request("/khqr/assets/checkout.css"))
        .await
        .unwrap();
    let head = read_head(last, Duration::from_secs(2)).await;
    assert_eq!(head.map(|h| h.0), Some(200));
    server.stop().await;
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The binary with `args`, its environment cleared but for `PATH`; killed on
/// drop.
fn binary(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_khqr-server"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Items 4 and 6 through the binary: `--admin-listen` serves the admin routes
/// on their own port (and 404 on the public one); `--client-ip-header`
/// without `--trusted-proxies` is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_admin_listen_and_refuses_an_untrusted_header() {
    let (public, admin) = (free_port(), free_port());
    let public_addr = format!("127.0.0.1:{public}");
    let admin_addr = format!("127.0.0.1:{admin}");
    let mut child = binary(&[
        "--listen",
        &public_addr,
        "--admin-listen",
        &admin_addr,
        "--log",
        "warn",
    ])
    .spawn()
    .unwrap();
    let c = client(None);
    let mut up = None;
    for _ in 0..100 {
        if let Ok(r) = c.get(format!("http://{admin_addr}/healthz")).send().await {
            up = Some(r.status().as_u16());
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err).await;
            }
            panic!("the server exited ({status}): {err}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(up, Some(200), "no /healthz on the admin port within 10 s");
    let r = get(&c, &format!("http://{admin_addr}/readyz")).await;
    assert_eq!(r.status, 503, "no token: not ready");
    assert_eq!(r.json()["token"], "missing");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let a = get(&c, &format!("http://{public_addr}{path}")).await;
        assert_eq!(a.status, 404, "{path} on the public port");
    }
    let a = get(
        &c,
        &format!("http://{public_addr}/khqr/assets/checkout.css"),
    )
    .await;
    assert_eq!(a.status, 200);
    let _ = child.kill().await;

    let out = tokio::time::timeout(
        Duration::from_secs(10),
        binary(&[
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--client-ip-header",
            "X-Forwarded-For",
        ])
        .output(),
    )
    .await
    .expect("the server should refuse to start")
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with an untrusted header");
    assert!(err.contains("--trusted-proxies"), "{err}");
}

/// Item 6 with RFC 7239: from the trusted proxy, `Forwarded: for=` names the
/// client, an IPv6 client counts by its /64 (another address of the same /64
/// shares the bucket), and an `X-Forwarded-For` is not read when `Forwarded`
/// is the header named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_from_a_trusted_proxy_groups_ipv6_by_64() {
    let edge = Edge {
        trusted_proxies: Some("127.0.0.1"),
        client_ip_header: Some("Forwarded"),
        limits: Limits {
            client_per_sec: 1,
            client_burst: 10,
            account_per_sec: 0,
            quota_per_client: 1_000_000,
            ..Limits::default()
        },
        ..Edge::default()
    };
    let server = start(&edge, &Backend::Memory).await;
    let url = format!("{}/khqr/qr/nosuchtran", server.base);
    let proxy = client(Some("127.0.0.1"));
    let status = |fwd: &'static str| {
        let req = proxy.get(&url).header("forwarded", fwd);
        async move { send(req).await.status }
    };
    let mut limited = 0;
    for _ in 0..20 {
        if status("for=\"[2001:db8:1:2::1]:443\";proto=https").await == 429 {
            limited += 1;
        }
    }
    assert!((9..=10).contains(&limited), "{limited} of 20 limited");
    // The same /64: the same, empty, bucket.
    assert_eq!(status("for=\"[2001:db8:1:2:ffff::9]\"").await, 429);
    // Another /64, and an IPv4 client: their own buckets.
    assert_eq!(status("for=\"[2001:db8:1:3::1]\"").await, 404);
    assert_eq!(status("for=198.51.100.9").await, 404);
    // An obfuscated client counts against the proxy itself.
    assert_eq!(status("for=_hidden").await, 404);
    // X-Forwarded-For is not the header named: these count as the proxy too,
    // whatever they claim, and its bucket empties.
    let mut proxy_limited = 0;
    for i in 0..20 {
        let a = send(
            proxy
                .get(&url)
                .header("x-forwarded-for", format!("203.0.113.{i}")),
        )
        .await;
        if a.status == 429 {
            proxy_limited += 1;
        }
    }
    assert!(proxy_limited >= 9, "{proxy_limited} of 20 limited");
    server.stop().await;
}
