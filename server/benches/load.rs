//! Load benchmark for `khqr-server`, on 127.0.0.1 only, bounded in time and
//! request count. It starts the release server binary as a child process
//! (rate limits off, since every request comes from one address), drives it
//! with keep-alive HTTP/1.1 connections, and prints req/s and latency
//! percentiles per scenario, the server's peak RSS, and how many error answers
//! were not JSON.
//!
//! ```sh
//! cargo build --release -p khqr-server --bin khqr-server   # the server it starts
//! cargo bench -p khqr-server --bench load                # all scenarios, about 2 minutes
//! cargo bench -p khqr-server --bench load -- --quick     # shorter runs, 100 000 creates for RSS
//! cargo bench -p khqr-server --bench load -- --help      # pipelining, generator threads, create only
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

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    non_json_errors: u64,
}

/// What one connection asks for next: a path, or `None` when it is done.
type Next = Arc<dyn Fn(u64) -> Option<String> + Send + Sync>;

/// One keep-alive connection: keeps up to `depth` requests in flight
/// (HTTP/1.1 pipelining when `depth` > 1), parsing answers with `httparse`.
/// A plain client, far cheaper per request than a full HTTP client, so that
/// the generator takes little of the CPU it shares with the server.
async fn connection(
    addr: std::net::SocketAddr,
    next: Next,
    stop: Arc<AtomicBool>,
    deadline: Instant,
    depth: usize,
) -> Tally {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tally = Tally::default();
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        tally.errors += 1;
        return tally;
    };
    let _ = stream.set_nodelay(true);
    let mut sent: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
    let mut out = Vec::with_capacity(4096);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut i = 0u64;
    let mut more = true;
    loop {
        // Send until `depth` requests are in flight.
        out.clear();
        while more && sent.len() < depth {
            if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                more = false;
                break;
            }
            let Some(path) = next(i) else {
                more = false;
                break;
            };
            i += 1;
            out.extend_from_slice(b"GET ");
            out.extend_from_slice(path.as_bytes());
            out.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            sent.push_back(Instant::now());
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            tally.errors += 1;
            return tally;
        }
        if sent.is_empty() {
            return tally;
        }
        // Read at least one whole answer.
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            let parsed = resp.parse(&buf);
            if let Ok(httparse::Status::Complete(head_len)) = parsed {
                let mut body_len = 0usize;
                let mut json = false;
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        body_len = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                    } else if h.name.eq_ignore_ascii_case("content-type") {
                        json = h.value.starts_with(b"application/json");
                    }
                }
                let status = resp.code.unwrap_or(0);
                if buf.len() >= head_len + body_len {
                    buf.drain(..head_len + body_len);
                    let started = sent.pop_front().unwrap_or_else(Instant::now);
                    tally
                        .latencies_us
                        .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                    if !(200..300).contains(&status) {
                        tally.errors += 1;
                        if !json {
                            tally.non_json_errors += 1;
                        }
                    }
                    if !sent.is_empty() && !buf.is_empty() {
                        // Another answer may be buffered already.
                        continue;
                    }
                    break;
                }
            } else if parsed.is_err() {
                tally.errors += 1;
                return tally;
            }
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    tally.errors += 1;
                    return tally;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
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
    depth: usize,
) -> Report {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(connection(
                addr,
                next.clone(),
                stop.clone(),
                deadline,
                depth,
            ))
        })
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
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: load [--quick] [--pipeline N] [--threads N] [--create-only]");
        println!("  --quick        3 s per scenario and 100 000 creates for RSS (else 8 s and 1 000 000)");
        println!("  --pipeline N   requests in flight per connection for create and cached images (default 1: none)");
        println!("  --threads N    threads of the load generator (default 1; it shares the CPUs with the server)");
        println!("  --create-only  only the create scenario");
        return;
    }
    let value = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
            .max(1)
    };
    let depth = value("--pipeline", 1);
    let threads = value("--threads", 1);
    let create_only = args.iter().any(|a| a == "--create-only");
    let pl = if depth > 1 {
        format!(", pipeline {depth}")
    } else {
        String::new()
    };
    let quick = args.iter().any(|a| a == "--quick");
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
        .worker_threads(threads)
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
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("khqr-server load benchmark: {cpus} CPUs (load average {}), 127.0.0.1, server pid {pid}, {secs} s per scenario, {threads} generator thread(s)", load.join(" "));
        println!("| scenario                               |  requests |     req/s |  p50 ms  |  p99 ms  | errors | non-JSON |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));

        let c = counter.clone();
        let create: Next = Arc::new(move |_| {
            let n = c.fetch_add(1, Ordering::Relaxed);
            Some(format!("/khqr/create?amount=1.25&bakongid=bench{}@abaa&merchantname=Bench&username=load", n % 100_000))
        });
        run(addr, &format!("create (32 connections{pl})"), 32, secs, &create, &stop, depth).await.print();

        if create_only {
            return;
        }
        let trans = make_trans(&base, 1).await;
        let one = trans[0].clone();
        let qr: Next = Arc::new(move |_| Some(format!("/khqr/qr/{one}")));
        run(addr, &format!("qr, cached (32 connections{pl})"), 32, secs, &qr, &stop, depth).await.print();
        let one = trans[0].clone();
        let stand: Next = Arc::new(move |_| Some(format!("/khqr/qr/stand/{one}")));
        run(addr, &format!("stand, cached (32 connections{pl})"), 32, secs, &stand, &stop, depth).await.print();

        // Uncached: every request draws a card never drawn before.
        let fresh = Arc::new(make_trans(&base, if quick { 1_500 } else { 5_000 }).await);
        let next_fresh = Arc::new(AtomicUsize::new(0));
        let (f, n) = (fresh.clone(), next_fresh.clone());
        let stand_fresh: Next = Arc::new(move |_| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            f.get(i).map(|t| format!("/khqr/qr/stand/{t}"))
        });
        run(addr, "stand, uncached (8 connections)", 8, secs, &stand_fresh, &stop, 1).await.print();

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
            tokio::spawn(async move { run(addr, "  (stand, uncached, 8 connections, background)", 8, secs + 1.0, &stand_more, &stop, 1).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        run(addr, "create while stand is saturated (4 conn)", 4, secs - 1.0, &create, &stop, 1).await.print();
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
        let r = run(addr, &format!("{rss_creates} creates (32 connections)"), 32, 300.0, &creates, &stop, 1).await;
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
