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
//! cargo bench -p khqr-server --bench load -- --keyed-only # the keyed scenarios only, about 40 s
//! cargo bench -p khqr-server --bench load -- --help      # pipelining, generator threads, create only
//! ```
//!
//! Scenarios: `create`; `qr` and `stand` cached (one QR, drawn once);
//! `stand` uncached (a fresh QR per request); `create` while 8 connections
//! saturate uncached `stand`; then N creates (1 000 000 by default) while the
//! server's RSS is sampled.
//!
//! Then the keyed scenarios: `create` with a merchant's
//! `Authorization: Bearer` key, the anonymous `create` on the same server for
//! comparison, and keyed `create` while 8 connections pull uncached `stand`
//! cards. A merchant lives in the server's store, and a memory store cannot be
//! reached from outside its process (`khqr-server merchant` refuses it), so
//! these run the server inside this process instead: on its own thread and
//! multi-thread tokio runtime, built as `main.rs` builds it (the same
//! options as the child, the memory store, `app()`, `serve()`, mimalloc),
//! after `merchant add` on that store.

#![allow(clippy::many_single_char_names)]

/// As `main.rs`: the keyed scenarios run the server in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    auth: Option<Arc<str>>,
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
            out.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            if let Some(key) = &auth {
                out.extend_from_slice(b"Authorization: Bearer ");
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
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
    /// The server's CPU time (user + system) per request, in µs, where measured.
    cpu_us: Option<f64>,
}

impl Report {
    /// Files the server's CPU time over the scenario: `ms` of CPU time (see
    /// [`cpu_ms`]) spread over the requests answered.
    fn with_cpu(mut self, ms: u64) -> Report {
        #[allow(clippy::cast_precision_loss)]
        let per = ms as f64 * 1000.0 / self.requests.max(1) as f64;
        self.cpu_us = Some(per);
        self
    }

    fn print(&self) {
        #[allow(clippy::cast_precision_loss)]
        let rps = self.requests as f64 / self.secs;
        let cpu = self
            .cpu_us
            .map_or_else(|| "—".to_owned(), |us| format!("{us:.1}"));
        println!(
            "| {:<38} | {:>9} | {:>9.0} | {:>8.2} | {:>8.2} | {:>6} | {:>8} | {:>8} |",
            self.name,
            self.requests,
            rps,
            self.p50_ms,
            self.p99_ms,
            self.errors,
            self.non_json,
            cpu
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

/// Runs one scenario: `conns` connections asking `next` for `secs` seconds
/// (or until `stop`), each with `depth` requests in flight, all with
/// `Authorization: Bearer <auth>` when `auth` is given.
#[allow(clippy::too_many_arguments)]
async fn run_as(
    addr: std::net::SocketAddr,
    name: &str,
    conns: usize,
    secs: f64,
    next: &Next,
    stop: &Arc<AtomicBool>,
    depth: usize,
    auth: Option<&Arc<str>>,
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
                auth.cloned(),
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
        cpu_us: None,
    }
}

/// [`run_as`] without a key (anonymous requests).
async fn run(
    addr: std::net::SocketAddr,
    name: &str,
    conns: usize,
    secs: f64,
    next: &Next,
    stop: &Arc<AtomicBool>,
    depth: usize,
) -> Report {
    run_as(addr, name, conns, secs, next, stop, depth, None).await
}

/// User + system CPU time in ms from the text of a `/proc/…/stat` file
/// (fields 14 and 15, in ticks of 10 ms: `USER_HZ` is 100 on Linux).
fn cpu_ms(stat: &str) -> u64 {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (tick(11) + tick(12)) * 10
}

/// CPU time (ms) of process `pid`, every thread included.
fn process_cpu_ms(pid: u32) -> u64 {
    cpu_ms(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// CPU time (ms) of this process's threads named `name` (the in-process
/// server's runtime threads).
fn threads_cpu_ms(name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .map(|t| cpu_ms(&std::fs::read_to_string(t.path().join("stat")).unwrap_or_default()))
        .sum()
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

/// The options of one bench run.
struct Opts {
    quick: bool,
    /// Seconds per scenario.
    secs: f64,
    /// Creates of the RSS scenario.
    rss_creates: u64,
    /// Requests in flight per connection (create, cached images).
    depth: usize,
    /// Threads of the load generator.
    threads: usize,
    create_only: bool,
    keyed_only: bool,
    /// `--store` of both servers: `sqlite` (a fresh temporary directory) or
    /// `memory`.
    store: String,
}

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let value = |name: &str, default: usize| -> usize {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
                .max(1)
        };
        let quick = args.iter().any(|a| a == "--quick");
        Opts {
            quick,
            secs: if quick { 3.0 } else { 8.0 },
            rss_creates: if quick { 100_000 } else { 1_000_000 },
            depth: value("--pipeline", 1),
            threads: value("--threads", 1),
            create_only: args.iter().any(|a| a == "--create-only"),
            keyed_only: args.iter().any(|a| a == "--keyed-only"),
            store: args
                .iter()
                .position(|a| a == "--store")
                .and_then(|i| args.get(i + 1))
                .map_or("sqlite", String::as_str)
                .to_owned(),
        }
    }

    /// `, pipeline N` for scenario names when pipelining.
    fn pl(&self) -> String {
        if self.depth > 1 {
            format!(", pipeline {}", self.depth)
        } else {
            String::new()
        }
    }

    fn runtime(&self) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .enable_all()
            .build()
            .expect("runtime")
    }
}

/// The server's options in every scenario, for the child process and the
/// in-process server alike: rate limits off (every request comes from one
/// address, with one key), quotas out of reach, warnings only.
fn server_args(addr: std::net::SocketAddr) -> Vec<String> {
    [
        "--listen",
        &addr.to_string(),
        "--rate-per-client",
        "0",
        "--rate-per-account",
        "0",
        "--rate-per-merchant",
        "0",
        "--quota-per-client",
        "100000000",
        "--quota-per-merchant",
        "100000000",
        "--max-connections-per-ip",
        "0",
        "--log",
        "warn",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn free_addr() -> std::net::SocketAddr {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    ([127, 0, 0, 1], port).into()
}

async fn wait_listening(addr: std::net::SocketAddr) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header(what: &str, secs: f64, threads: usize) {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("khqr-server load benchmark: {cpus} CPUs (load average {}), 127.0.0.1, {what}, {secs} s per scenario, {threads} generator thread(s)", load.join(" "));
    println!("| scenario                               |  requests |     req/s |  p50 ms  |  p99 ms  | errors | non-JSON | server CPU µs/req |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: load [--quick] [--pipeline N] [--threads N] [--create-only] [--keyed-only] [--store S]"
        );
        println!("  --quick        3 s per scenario and 100 000 creates for RSS (else 8 s and 1 000 000)");
        println!("  --pipeline N   requests in flight per connection for create and cached images (default 1: none)");
        println!("  --threads N    threads of the load generator (default 1; it shares the CPUs with the server)");
        println!("  --create-only  only the create scenarios (anonymous and keyed)");
        println!("  --keyed-only   only the keyed scenarios (the server in this process)");
        println!("  --store S      the servers' store: sqlite (the default, in a fresh temporary directory) or memory");
        return;
    }
    let opts = Opts::parse(&args);
    if !opts.keyed_only {
        anonymous(&opts);
        println!();
    }
    keyed(&opts);
}

/// The anonymous scenarios, on the release server binary as a child process.
fn anonymous(opts: &Opts) {
    let (quick, secs, rss_creates, depth, threads, create_only) = (
        opts.quick,
        opts.secs,
        opts.rss_creates,
        opts.depth,
        opts.threads,
        opts.create_only,
    );
    let pl = opts.pl();
    let store = opts.store.clone();
    let data_dir = std::env::temp_dir().join(format!("khqr-load-{}", std::process::id()));
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
    let addr = free_addr();
    let mut child = std::process::Command::new(&server_bin)
        .args(server_args(addr))
        .args(["--store", &store, "--data-dir"])
        .arg(&data_dir)
        .env_remove("BAKONG_TOKEN")
        .spawn()
        .expect("start server");
    let pid = child.id();
    let rt = opts.runtime();
    let base = format!("http://{addr}");
    rt.block_on(async {
        wait_listening(addr).await;
        header(&format!("anonymous, server binary pid {pid}, store {store}"), secs, threads);
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));

        let c = counter.clone();
        let create: Next = Arc::new(move |_| {
            let n = c.fetch_add(1, Ordering::Relaxed);
            Some(format!("/khqr/create?amount=1.25&bakongid=bench{}@abaa&merchantname=Bench&username=load", n % 100_000))
        });
        let cpu = process_cpu_ms(pid);
        let r = run(addr, &format!("create (32 connections{pl})"), 32, secs, &create, &stop, depth).await;
        r.with_cpu(process_cpu_ms(pid).saturating_sub(cpu)).print();

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
    if store == "sqlite" {
        disk_cost(&data_dir);
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// What the QRs cost on disk: the database's size (after a checkpoint folds
/// the WAL in) over the QRs it holds.
fn disk_cost(dir: &std::path::Path) {
    let path = dir.join("khqr.sqlite3");
    let Ok(db) = rusqlite::Connection::open(&path) else {
        return;
    };
    let _ = db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    let count = |table: &str| -> i64 {
        db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap_or(0)
    };
    let (qrs, entries, events) = (count("records"), count("entries"), count("events"));
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "store on disk: {} MiB for {qrs} QRs ({entries} in the payment record, {events} events), {} bytes per QR (record JSON, entry, events, indexes, page slack)",
        bytes >> 20,
        bytes / u64::try_from(qrs.max(1)).unwrap_or(1)
    );
}

/// The merchant of the keyed scenarios and the `bakongid` it holds.
const MERCHANT: &str = "bench";
const MERCHANT_ACCOUNT: &str = "bench@abaa";
/// The name of the in-process server's runtime threads.
const SERVER_THREADS: &str = "khqr-server";

/// A server running in this process, as `main.rs` runs it.
struct InProcess {
    /// The merchant's API key.
    key: Arc<str>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Starts the server on `addr` on its own thread and multi-thread tokio
/// runtime, built as `main.rs` builds it ([`khqr_server::Config`] from
/// [`server_args`], the store `store` (`sqlite` in `data_dir`, or `memory`),
/// `app()`, `serve()`), after adding one merchant to its store (a memory
/// store lives inside its process: no `khqr-server merchant` command can
/// reach it).
fn start_in_process(
    addr: std::net::SocketAddr,
    store: &str,
    data_dir: &std::path::Path,
) -> InProcess {
    use khqr_server::merchant::{run as merchant, MerchantCommand};
    use khqr_server::store::{AnyStore, MemoryStore, SqliteStore};
    let sqlite = store == "sqlite";
    let db = data_dir.join("khqr.sqlite3");
    let mut argv = vec!["khqr-server".to_owned()];
    argv.extend(server_args(addr));
    let config = <khqr_server::Config as clap::Parser>::try_parse_from(argv).expect("config");
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let (key_tx, key_rx) = std::sync::mpsc::channel::<String>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        // Named, so that a profile tells the server's threads from the generator's.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .thread_name(SERVER_THREADS)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let store = if sqlite {
                AnyStore::Sqlite(SqliteStore::open(&db, config.limits()).expect("sqlite store"))
            } else {
                AnyStore::Memory(MemoryStore::new(config.limits()))
            };
            let add = MerchantCommand::Add {
                id: MERCHANT.into(),
                name: "Bench".into(),
                bakong_ids: vec![MERCHANT_ACCOUNT.into()],
            };
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let issued = merchant(&store, &add, now_ms).await.expect("merchant add");
            let key = issued["key"].as_str().expect("key").to_owned();
            let app = khqr_server::app(&config, store).expect("app");
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .expect("listen");
            key_tx.send(key).expect("key");
            let _ = khqr_server::serve(listener, app.router(), config.serve(), async {
                let _ = stopped.await;
            })
            .await;
        });
    });
    let key = key_rx.recv().expect("server started");
    InProcess {
        key: key.into(),
        stop,
        thread,
    }
}

/// The keyed scenarios, on a server in this process ([`start_in_process`]):
/// create with the merchant's key, anonymous create on the same server (to
/// compare with the child process's), and keyed create while 8 connections
/// pull uncached stand cards.
fn keyed(opts: &Opts) {
    let (secs, depth) = (opts.secs, opts.depth);
    let pl = opts.pl();
    let addr = free_addr();
    let data_dir = std::env::temp_dir().join(format!("khqr-load-keyed-{}", std::process::id()));
    let server = start_in_process(addr, &opts.store, &data_dir);
    let rt = opts.runtime();
    let base = format!("http://{addr}");
    rt.block_on(async {
        wait_listening(addr).await;
        header(&format!("keyed, server in this process, store {}", opts.store), secs, opts.threads);
        let stop = Arc::new(AtomicBool::new(false));
        let key = Some(&server.key);
        let counter = Arc::new(AtomicU64::new(0));
        let c = counter.clone();
        // One merchant, one account: amounts vary so that orders differ.
        let create_keyed: Next = Arc::new(move |_| {
            let n = c.fetch_add(1, Ordering::Relaxed) % 100_000;
            Some(format!(
                "/khqr/create?amount={}.{:02}&bakongid={MERCHANT_ACCOUNT}&merchantname=Bench&username=load",
                1 + n / 100,
                n % 100
            ))
        });
        let cpu = threads_cpu_ms(SERVER_THREADS);
        let r = run_as(addr, &format!("keyed create (32 connections{pl})"), 32, secs, &create_keyed, &stop, depth, key).await;
        r.with_cpu(threads_cpu_ms(SERVER_THREADS).saturating_sub(cpu)).print();
        let c = counter.clone();
        let create_anon: Next = Arc::new(move |_| {
            let n = c.fetch_add(1, Ordering::Relaxed);
            Some(format!("/khqr/create?amount=1.25&bakongid=bench{}@abaa&merchantname=Bench&username=load", n % 100_000))
        });
        let cpu = threads_cpu_ms(SERVER_THREADS);
        let r = run(addr, &format!("anonymous create, same process (32 conn{pl})"), 32, secs, &create_anon, &stop, depth).await;
        r.with_cpu(threads_cpu_ms(SERVER_THREADS).saturating_sub(cpu)).print();
        if opts.create_only {
            return;
        }
        let fresh = Arc::new(make_trans(&base, if opts.quick { 1_500 } else { 5_000 }).await);
        let next_fresh = Arc::new(AtomicUsize::new(0));
        let (f, n) = (fresh.clone(), next_fresh.clone());
        let stand_fresh: Next = Arc::new(move |_| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            f.get(i).map(|t| format!("/khqr/qr/stand/{t}"))
        });
        let stand_bg = {
            let stop = stop.clone();
            tokio::spawn(async move { run(addr, "  (stand, uncached, 8 connections, background)", 8, secs + 1.0, &stand_fresh, &stop, 1).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        run_as(addr, "keyed create while stand saturated (4 conn)", 4, secs - 1.0, &create_keyed, &stop, 1, key).await.print();
        stand_bg.await.expect("bg").print();
    });
    drop(rt);
    let _ = server.stop.send(());
    let _ = server.thread.join();
    if opts.store == "sqlite" {
        disk_cost(&data_dir);
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}
