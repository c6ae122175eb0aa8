//! Load benchmark for `khqr-server`, on 127.0.0.1 only, bounded in time and
//! request count. It starts the release server binary as a child process
//! (rate limits off, since every request comes from one address), drives it
//! with keep-alive HTTP/1.1 connections, and prints req/s and latency
//! percentiles per scenario, the server's peak RSS, and how many error answers
//! were not JSON.
//!
//! ```sh
//! cargo build --release -p khqr-server --bin khqr-server --example load
//! target/release/examples/load            # all scenarios, about 2 minutes
//! target/release/examples/load --quick    # shorter runs, 100 000 creates for RSS
//! ```
//!
//! Scenarios: `create`; `qr` and `stand` cached (one QR, drawn once);
//! `stand` uncached (a fresh QR per request); `create` while 8 connections
//! saturate uncached `stand`; then N creates (1 000 000 by default) while the
//! server's RSS is sampled.

#![allow(clippy::many_single_char_names)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    non_json_errors: u64,
}

/// What one connection asks for next: a path, or `None` when it is done.
type Next = Arc<dyn Fn(u64) -> Option<String> + Send + Sync>;

async fn connection(
    addr: std::net::SocketAddr,
    next: Next,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        tally.errors += 1;
        return tally;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        tally.errors += 1;
        return tally;
    };
    tokio::spawn(conn);
    let mut i = 0u64;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let Some(path) = next(i) else { break };
        i += 1;
        let req = hyper::Request::get(path)
            .header("host", "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let started = Instant::now();
        let Ok(resp) = send.send_request(req).await else {
            tally.errors += 1;
            break;
        };
        let status = resp.status();
        let json = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let Ok(_body) = resp.into_body().collect().await else {
            tally.errors += 1;
            break;
        };
        tally
            .latencies_us
            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        if !status.is_success() {
            tally.errors += 1;
            if !json {
                tally.non_json_errors += 1;
            }
        }
    }
    tally
}

struct Report {
    name: String,
    requests: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    non_json: u64,
}

impl Report {
    fn print(&self) {
        #[allow(clippy::cast_precision_loss)]
        let rps = self.requests as f64 / self.secs;
        println!(
            "| {:<38} | {:>9} | {:>9.0} | {:>8.2} | {:>8.2} | {:>6} | {:>8} |",
            self.name, self.requests, rps, self.p50_ms, self.p99_ms, self.errors, self.non_json
        );
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn run(
    addr: std::net::SocketAddr,
    name: &str,
    conns: usize,
    secs: f64,
    next: &Next,
    stop: &Arc<AtomicBool>,
) -> Report {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(connection(addr, next.clone(), stop.clone(), deadline)))
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.expect("task");
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
        all.non_json_errors += t.non_json_errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    Report {
        name: name.into(),
        requests: all.latencies_us.len(),
        secs: elapsed,
        p50_ms: percentile(&all.latencies_us, 0.50),
        p99_ms: percentile(&all.latencies_us, 0.99),
        errors: all.errors,
        non_json: all.non_json_errors,
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Creates `n` QRs and returns their `tran`s.
async fn make_trans(base: &str, n: usize) -> Vec<String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let url = format!(
            "{base}/khqr/create?amount={}.{:02}&bakongid=stand{i}@abaa&merchantname=Stand%20{i}",
            1 + i / 100,
            i % 100
        );
        let v: serde_json::Value = client
            .get(url)
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        out.push(v["tran"].as_str().expect("tran").to_owned());
    }
    out
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = if quick { 3.0 } else { 8.0 };
    let rss_creates: u64 = if quick { 100_000 } else { 1_000_000 };
    let exe = std::env::current_exe().expect("exe");
    let server_bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("khqr-server"))
        .expect("target dir");
    assert!(
        server_bin.exists(),
        "build the server first: cargo build --release -p khqr-server --bin khqr-server"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut child = std::process::Command::new(&server_bin)
        .args(["--listen", &addr.to_string()])
        .args(["--rate-per-client", "0", "--rate-per-account", "0"])
        .args(["--quota-per-client", "100000000"])
        .args(["--max-connections-per-ip", "0"])
        .args(["--log", "warn"])
        .env_remove("BAKONG_TOKEN")
        .spawn()
        .expect("start server");
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let base = format!("http://{addr}");
    rt.block_on(async {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        println!("khqr-server load benchmark: {cpus} CPUs, 127.0.0.1, server pid {pid}, {secs} s per scenario");
        println!("| scenario                               |  requests |     req/s |  p50 ms  |  p99 ms  | errors | non-JSON |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));

        let c = counter.clone();
        let create: Next = Arc::new(move |_| {
            let n = c.fetch_add(1, Ordering::Relaxed);
            Some(format!("/khqr/create?amount=1.25&bakongid=bench{}@abaa&merchantname=Bench&username=load", n % 100_000))
        });
        run(addr, "create (32 connections)", 32, secs, &create, &stop).await.print();

        let trans = make_trans(&base, 1).await;
        let one = trans[0].clone();
        let qr: Next = Arc::new(move |_| Some(format!("/khqr/qr/{one}")));
        run(addr, "qr, cached (32 connections)", 32, secs, &qr, &stop).await.print();
        let one = trans[0].clone();
        let stand: Next = Arc::new(move |_| Some(format!("/khqr/qr/stand/{one}")));
        run(addr, "stand, cached (32 connections)", 32, secs, &stand, &stop).await.print();

        // Uncached: every request draws a card never drawn before.
        let fresh = Arc::new(make_trans(&base, if quick { 1_500 } else { 5_000 }).await);
        let next_fresh = Arc::new(AtomicUsize::new(0));
        let (f, n) = (fresh.clone(), next_fresh.clone());
        let stand_fresh: Next = Arc::new(move |_| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            f.get(i).map(|t| format!("/khqr/qr/stand/{t}"))
        });
        run(addr, "stand, uncached (8 connections)", 8, secs, &stand_fresh, &stop).await.print();

        // create while 8 connections saturate uncached stand.
        let more = Arc::new(make_trans(&base, if quick { 1_500 } else { 5_000 }).await);
        let n2 = Arc::new(AtomicUsize::new(0));
        let (f2, n2c) = (more.clone(), n2.clone());
        let stand_more: Next = Arc::new(move |_| {
            let i = n2c.fetch_add(1, Ordering::Relaxed);
            f2.get(i).map(|t| format!("/khqr/qr/stand/{t}"))
        });
        let stand_bg = {
            let stop = stop.clone();
            tokio::spawn(async move { run(addr, "  (stand, uncached, 8 connections, background)", 8, secs + 1.0, &stand_more, &stop).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        run(addr, "create while stand is saturated (4 conn)", 4, secs - 1.0, &create, &stop).await.print();
        stand_bg.await.expect("bg").print();

        // RSS through N creates.
        let before = rss_kib(pid);
        let done = Arc::new(AtomicU64::new(0));
        let d = done.clone();
        let c2 = counter.clone();
        let creates: Next = Arc::new(move |_| {
            if d.fetch_add(1, Ordering::Relaxed) >= rss_creates {
                return None;
            }
            let n = c2.fetch_add(1, Ordering::Relaxed);
            Some(format!("/khqr/create?amount=1.25&bakongid=rss{n}@abaa&merchantname=Bench"))
        });
        let peak = Arc::new(AtomicU64::new(before));
        let sampler = {
            let peak = peak.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                for _ in 0..6000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let r = run(addr, &format!("{rss_creates} creates (32 connections)"), 32, 300.0, &creates, &stop).await;
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.await;
        r.print();
        println!();
        println!(
            "server RSS: {} MiB before the creates, peak {} MiB during {rss_creates} creates, {} MiB after",
            before / 1024,
            peak.load(Ordering::Relaxed) / 1024,
            rss_kib(pid) / 1024
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}
