//! `khqr-server`: run the server. `khqr-server --help` lists every option; each
//! is also an environment variable (the flag wins). The Bakong token is never a
//! flag: `BAKONG_TOKEN` in the environment or `--token-file`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bakong_khqr::status::Token;
use clap::{Parser, ValueEnum};
use khqr_server::store::{AnyStore, Limits, MemoryStore, RedisStore};
use khqr_server::{app, serve, Config, ServeConfig};

/// `mimalloc`: the create path allocates a few dozen small blocks per request,
/// and glibc's allocator took about a fifth of the server's time there (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The hosted KHQR service's five endpoints (create, QR PNG, stand card PNG,
/// check by tran, check by MD5) plus /healthz, /readyz and /metrics.
///
/// /khqr/create makes USD QRs unless currency=KHR is given.
#[derive(Parser, Debug)]
#[command(
    name = "khqr-server",
    version,
    after_help = "The Bakong token comes from the BAKONG_TOKEN environment variable or --token-file \
                  (re-read every 10 s, so a rewritten file rotates the token); it is never a flag, \
                  so it never shows in `ps`. Without a token, status checks answer 503 and /readyz fails."
)]
#[allow(clippy::struct_excessive_bools)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "KHQR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Public base URL of this server, used in the `qr/qr_stand` URLs [default: http://<listen>].
    #[arg(long, env = "KHQR_PUBLIC_URL")]
    public_url: Option<String>,
    /// Bakong Open API base URL (test: <https://sit-api-bakong.nbc.gov.kh>; a relay's URL with its path prefix works).
    #[arg(long, env = "BAKONG_API_URL", default_value = bakong_khqr::status::PRODUCTION_BASE_URL)]
    bakong_url: String,
    /// File holding the Bakong token (re-read every 10 s).
    #[arg(long, env = "BAKONG_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Where QRs and rate limits live: `memory` (this process only) or a Redis URL `redis://[user:pass@]host:port[/db]` (shared by every instance, kept over restarts).
    #[arg(long, env = "KHQR_STORE", default_value = "memory")]
    store: String,
    /// Lifetime of a created QR, in seconds (tag 99).
    #[arg(long, env = "KHQR_QR_TTL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    qr_ttl_secs: u64,
    /// How long a QR is kept after it expires, in seconds (late payments can still be checked).
    #[arg(long, env = "KHQR_GRACE_SECS", default_value_t = 300)]
    grace_secs: u64,
    /// Requests per second one client address (IPv6: its /64) may make; 0 = no limit.
    #[arg(long, env = "KHQR_RATE_PER_CLIENT", default_value_t = 50)]
    rate_per_client: u32,
    /// Burst allowed above --rate-per-client.
    #[arg(long, env = "KHQR_BURST_PER_CLIENT", default_value_t = 200)]
    burst_per_client: u32,
    /// Creates and checks per second naming one bakongid; 0 = no limit.
    #[arg(long, env = "KHQR_RATE_PER_ACCOUNT", default_value_t = 20)]
    rate_per_account: u32,
    /// Burst allowed above --rate-per-account.
    #[arg(long, env = "KHQR_BURST_PER_ACCOUNT", default_value_t = 100)]
    burst_per_account: u32,
    /// QRs one client address may hold; its next create displaces its own oldest.
    #[arg(long, env = "KHQR_QUOTA_PER_CLIENT", default_value_t = 1000)]
    quota_per_client: u32,
    /// QRs the memory store holds in all, about 1.7 KiB of memory each (least recently used evicted beyond).
    #[arg(long, env = "KHQR_MAX_ENTRIES", default_value_t = 200_000)]
    max_entries: u64,
    /// Take the client address from this header's last entry (e.g. X-Forwarded-For), only behind a proxy you run that sets it.
    #[arg(long, env = "KHQR_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    /// Timeout of one call to Bakong, whole exchange, in milliseconds.
    #[arg(long, env = "KHQR_UPSTREAM_TIMEOUT_MS", default_value_t = 10_000)]
    upstream_timeout_ms: u64,
    /// Most calls to Bakong in flight at once.
    #[arg(long, env = "KHQR_UPSTREAM_CONCURRENCY", default_value_t = 64)]
    upstream_concurrency: usize,
    /// Largest answer accepted from Bakong, in bytes.
    #[arg(long, env = "KHQR_UPSTREAM_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    upstream_max_body_bytes: usize,
    /// How long a "pending" status is reused, in milliseconds (paid: for the QR's life).
    #[arg(long, env = "KHQR_PENDING_CACHE_MS", default_value_t = 3_000)]
    pending_cache_ms: u64,
    /// Check any MD5 and any tran with any bakongid, as the hosted service does (forwards anyone's questions with your token).
    #[arg(long, env = "KHQR_OPEN_RELAY")]
    open_relay: bool,
    /// Threads drawing PNGs, at a lower CPU priority (nice 10) [default: the CPUs].
    #[arg(long, env = "KHQR_RENDER_THREADS")]
    render_threads: Option<usize>,
    /// Mebibytes of rendered PNGs kept.
    #[arg(long, env = "KHQR_IMAGE_CACHE_MIB", default_value_t = 64)]
    image_cache_mib: u64,
    /// Longest a request may take, body included, in milliseconds (then 408).
    #[arg(long, env = "KHQR_REQUEST_TIMEOUT_MS", default_value_t = 15_000)]
    request_timeout_ms: u64,
    /// Longest wait for a request's headers, and longest idle keep-alive, in milliseconds.
    #[arg(long, env = "KHQR_HEADER_TIMEOUT_MS", default_value_t = 5_000)]
    header_timeout_ms: u64,
    /// Largest request body, in bytes (then 413).
    #[arg(long, env = "KHQR_MAX_BODY_BYTES", default_value_t = 8 * 1024)]
    max_body_bytes: usize,
    /// Longest request target (path and query), in bytes (then 414).
    #[arg(long, env = "KHQR_MAX_URI_BYTES", default_value_t = 4 * 1024)]
    max_uri_bytes: usize,
    /// Most header bytes in a request (then 431).
    #[arg(long, env = "KHQR_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Most connections open at once.
    #[arg(long, env = "KHQR_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Most connections open at once from one address; 0 = no limit (use 0 behind a load balancer).
    #[arg(long, env = "KHQR_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    max_connections_per_ip: usize,
    /// On SIGTERM/SIGINT, seconds in-flight requests may take to finish.
    #[arg(long, env = "KHQR_DRAIN_SECS", default_value_t = 30)]
    drain_secs: u64,
    /// Log format (access logs on target `khqr_server::access`).
    #[arg(long, env = "KHQR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter, e.g. `info`, `warn`, `info,khqr_server::access=off`.
    #[arg(long, env = "KHQR_LOG", default_value = "info")]
    log: String,
    /// Worker threads of the async runtime [default: the CPUs].
    #[arg(long, env = "KHQR_WORKERS")]
    workers: Option<usize>,
    /// How often the checkout page's watcher asks for an open QR's status, ms.
    #[arg(long, env = "KHQR_POLL_INTERVAL_MS", default_value_t = 2_000)]
    poll_interval_ms: u64,
    /// URL prefix a create's `success_url` may start with (repeat the option,
    /// or comma-separate in the variable); none: `success_url` is refused.
    #[arg(
        long = "success-url-allow",
        env = "KHQR_SUCCESS_URL_ALLOW",
        value_delimiter = ','
    )]
    success_url_allow: Vec<String>,
    /// File holding the webhook signing secret (else `KHQR_WEBHOOK_SECRET`);
    /// without one, `callback_url` is refused.
    #[arg(long, env = "KHQR_WEBHOOK_SECRET_FILE")]
    webhook_secret_file: Option<std::path::PathBuf>,
    /// How long a failing webhook is retried, in seconds.
    #[arg(long, env = "KHQR_WEBHOOK_RETRY_SECS", default_value_t = 86_400)]
    webhook_retry_secs: u64,
    /// First webhook retry delay, ms (doubles with jitter, at most 60 s).
    #[arg(long, env = "KHQR_WEBHOOK_BACKOFF_MS", default_value_t = 1_000)]
    webhook_backoff_ms: u64,
    /// Allow `callback_url`s on loopback, private and link-local addresses
    /// (a receiver on your own network).
    #[arg(long, env = "KHQR_CALLBACK_ALLOW_PRIVATE")]
    callback_allow_private: bool,
    /// Allow plain-`http` `callback_url`s (only with a receiver you trust the
    /// path to, e.g. on loopback).
    #[arg(long, env = "KHQR_CALLBACK_ALLOW_HTTP")]
    callback_allow_http: bool,
    /// Ports a `callback_url` may use besides 443 (80 for allowed http)
    /// (repeat the option, or comma-separate in the variable).
    #[arg(long, env = "KHQR_CALLBACK_ALLOW_PORTS", value_delimiter = ',')]
    callback_allow_ports: Vec<u16>,
    /// Networks (CIDR) a webhook may go to although the IANA special-purpose
    /// registries list them, e.g. a receiver on your own network.
    #[arg(long, env = "KHQR_CALLBACK_ALLOW_IPS", value_delimiter = ',')]
    callback_allow_ips: Vec<ipnet::IpNet>,
    /// DNS server (`ip:port`) that resolves callback hosts [default: the system resolver].
    #[arg(long, env = "KHQR_DNS_SERVER")]
    dns_server: Option<SocketAddr>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal: draining");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    let mut config = Config::new(
        cli.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", cli.listen)),
    );
    config.bakong_base_url.clone_from(&cli.bakong_url);
    config.token = std::env::var("BAKONG_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    config.token_file.clone_from(&cli.token_file);
    config.qr_ttl_ms = cli.qr_ttl_secs.saturating_mul(1000);
    config.limits = Limits {
        client_per_sec: cli.rate_per_client,
        client_burst: cli.burst_per_client.max(1),
        account_per_sec: cli.rate_per_account,
        account_burst: cli.burst_per_account.max(1),
        quota_per_client: cli.quota_per_client.max(1),
        max_entries: cli.max_entries.max(1),
        grace_ms: cli.grace_secs.saturating_mul(1000),
    };
    config.upstream_timeout_ms = cli.upstream_timeout_ms.max(1);
    config.upstream_concurrency = cli.upstream_concurrency.max(1);
    config.upstream_max_body_bytes = cli.upstream_max_body_bytes;
    config.pending_cache_ms = cli.pending_cache_ms;
    config.open_relay = cli.open_relay;
    if let Some(n) = cli.render_threads {
        config.render_threads = n.max(1);
    }
    config.image_cache_bytes = cli.image_cache_mib.saturating_mul(1 << 20);
    config.request_timeout_ms = cli.request_timeout_ms.max(1);
    config.max_body_bytes = cli.max_body_bytes;
    config.max_uri_bytes = cli.max_uri_bytes;
    config.max_header_bytes = cli.max_header_bytes;
    config.client_ip_header.clone_from(&cli.client_ip_header);
    config.poll_interval_ms = cli.poll_interval_ms.max(50);
    config.success_url_allow = cli
        .success_url_allow
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let secret = match &cli.webhook_secret_file {
        Some(p) => {
            let Ok(t) = std::fs::read_to_string(p) else {
                eprintln!(
                    "khqr-server: cannot read the webhook secret file {}",
                    p.display()
                );
                return ExitCode::from(2);
            };
            Some(t.trim().to_owned())
        }
        None => std::env::var("KHQR_WEBHOOK_SECRET").ok(),
    };
    config.webhook_secret = secret.filter(|s| !s.is_empty()).map(String::into_bytes);
    config.webhook_retry_ms = cli.webhook_retry_secs.saturating_mul(1000);
    config.webhook_backoff_ms = cli.webhook_backoff_ms.max(1);
    config.callback_allow_private = cli.callback_allow_private;
    config.callback_allow_http = cli.callback_allow_http;
    config
        .callback_allow_ports
        .clone_from(&cli.callback_allow_ports);
    config
        .callback_allow_ips
        .clone_from(&cli.callback_allow_ips);
    config.dns_server = cli.dns_server;
    let serve_config = ServeConfig {
        header_read_timeout: Duration::from_millis(cli.header_timeout_ms.max(1)),
        max_connections: cli.max_connections.max(1),
        max_connections_per_ip: cli.max_connections_per_ip,
        drain_timeout: Duration::from_secs(cli.drain_secs),
    };
    let token_text = config.token.clone().or_else(|| {
        cli.token_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
    });
    match token_text {
        None => tracing::warn!(
            "no Bakong token (BAKONG_TOKEN or --token-file): status checks will answer 503"
        ),
        Some(t) => match Token::new(t.trim())
            .ok()
            .and_then(|t| t.expires_at_ms().ok())
        {
            Some(exp) if exp <= now_ms() => tracing::warn!("the Bakong token expired; renew it"),
            Some(exp) => tracing::info!(days = (exp - now_ms()) / 86_400_000, "Bakong token valid"),
            None => tracing::info!("Bakong token set (no readable expiry)"),
        },
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.workers {
        rt.worker_threads(n.max(1));
    }
    let runtime = match rt.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("khqr-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let store = if cli.store == "memory" {
            AnyStore::Memory(MemoryStore::new(config.limits.clone()))
        } else if cli.store.starts_with("redis://") || cli.store.starts_with("redis+unix://") {
            match RedisStore::connect(&cli.store, config.limits.clone()).await {
                Ok(s) => AnyStore::Redis(s),
                Err(e) => return Err(format!("cannot connect to the store: {}", e.detail())),
            }
        } else {
            return Err("--store must be `memory` or a redis:// URL".into());
        };
        let app = app(&config, store).map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind(cli.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
        tracing::info!(
            listen = %cli.listen,
            store = app.store_kind(),
            bakong = %config.bakong_base_url,
            open_relay = config.open_relay,
            "listening"
        );
        serve(listener, app.router(), serve_config, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("khqr-server: {e}");
            ExitCode::FAILURE
        }
    }
}
