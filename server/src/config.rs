//! The server's configuration: one `clap` struct, [`Config`]. Each option's
//! flag, environment variable, default and bounds are written once, on its
//! field; the store's [`Limits`] and the connection options ([`ServeConfig`])
//! are derived from it ([`Config::limits`], [`Config::serve`]); the
//! defaults of the limits are [`Limits::default`]'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::client_ip::{ForwardedHeader, TrustedProxies};
use crate::store::Limits;

/// A secret (the Bakong token): its `Debug` prints
/// `Secret(<redacted>)`, never the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's text.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// The log's format: `Text` (human-readable lines) or `Json` (one JSON
/// object per line). The variants carry no doc comments, so that `--help`
/// lists them on one line as before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[allow(missing_docs)]
pub enum LogFormat {
    Text,
    Json,
}

/// The hosted KHQR service's five endpoints (create, QR PNG, stand card PNG,
/// check by tran, check by MD5) plus /healthz, /readyz and /metrics.
///
/// /khqr/create makes USD QRs unless currency=KHR is given.
///
/// Every field is an option (`--kebab-case` flag and `KHQR_*` variable, the
/// flag winning) except [`Config::token`], which comes from the environment
/// or a file (see `main.rs`), never argv. Webhook secrets are per merchant,
/// in the store (see [`crate::merchant`]).
#[derive(Parser, Clone, Debug)]
#[command(
    name = "khqr-server",
    version,
    about = "The hosted KHQR service's five endpoints (create, QR PNG, stand card PNG, \
             check by tran, check by MD5) plus /healthz, /readyz and /metrics.",
    long_about = "The hosted KHQR service's five endpoints (create, QR PNG, stand card PNG, \
                  check by tran, check by MD5) plus /healthz, /readyz and /metrics.\n\n\
                  /khqr/create makes USD QRs unless currency=KHR is given.",
    after_help = "The Bakong token comes from the BAKONG_TOKEN environment variable or --token-file \
                  (re-read every 10 s, so a rewritten file rotates the token); it is never a flag, \
                  so it never shows in `ps`. Without a token, status checks answer 503 and /readyz fails. \
                  With BAKONG_EMAIL, the server renews the token itself before it expires."
)]
#[allow(clippy::struct_excessive_bools)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "KHQR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Public base URL of this server, used in the `qr/qr_stand` URLs (default: `http://<listen>`).
    #[arg(long, env = "KHQR_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Bakong Open API base URL (test: <https://sit-api-bakong.nbc.gov.kh>; a relay's URL with its path prefix works).
    #[arg(long = "bakong-url", value_name = "BAKONG_URL", env = "BAKONG_API_URL", default_value = bakong_khqr::status::PRODUCTION_BASE_URL)]
    pub bakong_base_url: String,
    /// The Bakong token (from `BAKONG_TOKEN`, never a flag); without one,
    /// status checks answer 503 and `/readyz` fails.
    #[arg(skip)]
    pub token: Option<Secret>,
    /// File holding the Bakong token (re-read every 10 s).
    #[arg(long, env = "BAKONG_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The Bakong account's registered e-mail: with it, the server renews the token (`/v1/renew_token`) before it expires and shares the new one through the store; without it, it only alerts.
    #[arg(long, env = "BAKONG_EMAIL", value_parser = email)]
    pub bakong_email: Option<String>,
    /// Renew the token this many seconds before it expires (above the first --token-alert-secs, so that an alert means renewal has been failing).
    #[arg(long, env = "KHQR_TOKEN_RENEW_BEFORE_SECS", default_value_t = 15 * 86_400, value_parser = clap::value_parser!(u64).range(60..))]
    pub token_renew_before_secs: u64,
    /// Alert (a warning and the operator event `token.expiring`) as the token's time left crosses each of these, in seconds, comma-separated.
    #[arg(
        long,
        env = "KHQR_TOKEN_ALERT_SECS",
        value_delimiter = ',',
        default_value = "1209600,259200,86400"
    )]
    pub token_alert_secs: Vec<u64>,
    /// First retry delay after a failed renewal, in milliseconds (doubles, at most one hour apart).
    #[arg(long, env = "KHQR_TOKEN_RETRY_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_retry_ms: u64,
    /// How often each instance looks at the shared token in the store and at its renewal, in milliseconds.
    #[arg(long, env = "KHQR_TOKEN_SYNC_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(50..))]
    pub token_sync_ms: u64,
    /// Where QRs, owed webhooks and rate limits live: `sqlite` (one file in --data-dir, kept over restarts and crashes: one instance), `sqlite:PATH` (that file), a Redis URL `redis://[user:pass@]host:port[/db]` (shared by several instances), or `memory` (this process only, lost on restart: tests and throwaway runs).
    #[arg(long, env = "KHQR_STORE", default_value = "sqlite")]
    pub store: String,
    /// Directory of the `sqlite` store's database, `khqr.sqlite3` (created if missing).
    #[arg(long, env = "KHQR_DATA_DIR", default_value = "/var/lib/khqr-server")]
    pub data_dir: PathBuf,
    /// Lifetime of a created QR, in seconds (tag 99).
    #[arg(long, env = "KHQR_QR_TTL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub qr_ttl_secs: u64,
    /// How long a QR is kept after it expires, in seconds (late payments can still be checked).
    #[arg(long, env = "KHQR_GRACE_SECS", default_value_t = Limits::default().grace_ms / 1000)]
    pub grace_secs: u64,
    /// How long the payment record keeps a merchant's QRs and events (their
    /// final status, payment and deliveries), in days.
    #[arg(long, env = "KHQR_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=3_650))]
    pub retention_days: u64,
    /// How often the reconciliation job runs (one instance at a time), in
    /// seconds: merchant QRs past expiry and grace are checked with Bakong in
    /// lists of 50 and become expired or paid late.
    #[arg(long, env = "KHQR_RECONCILE_EVERY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub reconcile_every_secs: u64,
    /// How long after its expiry an expired QR is checked again for a late
    /// payment, in hours.
    #[arg(long, env = "KHQR_RECONCILE_WINDOW_HOURS", default_value_t = 72, value_parser = clap::value_parser!(u64).range(0..=8_760))]
    pub reconcile_window_hours: u64,
    /// Most list calls (50 QRs each) the reconciliation job makes per cycle
    /// for each of its two passes (pending past expiry; expired within the window).
    #[arg(long, env = "KHQR_RECONCILE_BATCHES", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub reconcile_batches: u32,
    /// Requests per second one client address (IPv6: its /64) may make; 0 = no limit.
    #[arg(long, env = "KHQR_RATE_PER_CLIENT", default_value_t = Limits::default().client_per_sec)]
    pub rate_per_client: u32,
    /// Burst allowed above --rate-per-client.
    #[arg(long, env = "KHQR_BURST_PER_CLIENT", default_value_t = Limits::default().client_burst, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst_per_client: u32,
    /// Creates and checks per second naming one bakongid; 0 = no limit.
    #[arg(long, env = "KHQR_RATE_PER_ACCOUNT", default_value_t = Limits::default().account_per_sec)]
    pub rate_per_account: u32,
    /// Burst allowed above --rate-per-account.
    #[arg(long, env = "KHQR_BURST_PER_ACCOUNT", default_value_t = Limits::default().account_burst, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst_per_account: u32,
    /// QRs one client address may hold; its next create displaces its own oldest.
    #[arg(long, env = "KHQR_QUOTA_PER_CLIENT", default_value_t = Limits::default().quota_per_client, value_parser = clap::value_parser!(u32).range(1..))]
    pub quota_per_client: u32,
    /// Requests per second of one merchant (requests with its API key); 0 = no limit.
    #[arg(long, env = "KHQR_RATE_PER_MERCHANT", default_value_t = Limits::default().merchant_per_sec)]
    pub rate_per_merchant: u32,
    /// Burst allowed above --rate-per-merchant.
    #[arg(long, env = "KHQR_BURST_PER_MERCHANT", default_value_t = Limits::default().merchant_burst, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst_per_merchant: u32,
    /// QRs one merchant may hold; its next create displaces its own oldest.
    #[arg(long, env = "KHQR_QUOTA_PER_MERCHANT", default_value_t = Limits::default().quota_per_merchant, value_parser = clap::value_parser!(u32).range(1..))]
    pub quota_per_merchant: u32,
    /// Refuse anonymous creates and checks (401): each needs a merchant's API key (Authorization: Bearer). QR images and the checkout page stay open to payers.
    #[arg(long, env = "KHQR_REQUIRE_KEY")]
    pub require_key: bool,
    /// QRs the memory store holds in all, about 1.7 KiB of memory each (least recently used evicted beyond).
    #[arg(long, env = "KHQR_MAX_ENTRIES", default_value_t = Limits::default().max_entries, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_entries: u64,
    /// Proxies whose forwarding header is believed: comma-separated CIDRs or addresses (e.g. `10.0.0.0/8,fd00::/8`); none: the client is always the TCP peer.
    #[arg(long, env = "KHQR_TRUSTED_PROXIES", value_delimiter = ',', value_parser = crate::client_ip::parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header --trusted-proxies write the client's address into: `X-Forwarded-For` (the default), `Forwarded` (RFC 7239), or another list header such as `X-Real-IP`; refused without --trusted-proxies.
    #[arg(long, env = "KHQR_CLIENT_IP_HEADER", value_parser = crate::client_ip::parse_forwarded_header)]
    pub client_ip_header: Option<ForwardedHeader>,
    /// Timeout of one call to Bakong, whole exchange, in milliseconds.
    #[arg(long, env = "KHQR_UPSTREAM_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub upstream_timeout_ms: u64,
    /// Most calls to Bakong in flight at once.
    #[arg(long, env = "KHQR_UPSTREAM_CONCURRENCY", default_value_t = 64, value_parser = at_least_one)]
    pub upstream_concurrency: usize,
    /// Largest answer accepted from Bakong, in bytes.
    #[arg(long, env = "KHQR_UPSTREAM_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub upstream_max_body_bytes: usize,
    /// How long a "pending" status is reused, in milliseconds (paid: for the QR's life).
    #[arg(long, env = "KHQR_PENDING_CACHE_MS", default_value_t = 3_000)]
    pub pending_cache_ms: u64,
    /// Check any MD5 and any tran with any bakongid, as the hosted service does (forwards anyone's questions with your token).
    #[arg(long, env = "KHQR_OPEN_RELAY")]
    pub open_relay: bool,
    /// Threads drawing PNGs, at a lower CPU priority (nice 10) [default: the CPUs].
    #[arg(long, env = "KHQR_RENDER_THREADS", value_parser = at_least_one)]
    pub render_threads: Option<usize>,
    /// Mebibytes of rendered PNGs kept.
    #[arg(long, env = "KHQR_IMAGE_CACHE_MIB", default_value_t = 64)]
    pub image_cache_mib: u64,
    /// Longest a request may take, body included, in milliseconds (then 408).
    #[arg(long, env = "KHQR_REQUEST_TIMEOUT_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,
    /// Longest wait for a request's headers, and longest idle keep-alive, in milliseconds.
    #[arg(long, env = "KHQR_HEADER_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,
    /// Largest request body, in bytes (then 413).
    #[arg(long, env = "KHQR_MAX_BODY_BYTES", default_value_t = 8 * 1024)]
    pub max_body_bytes: usize,
    /// Longest request target (path and query), in bytes (then 414).
    #[arg(long, env = "KHQR_MAX_URI_BYTES", default_value_t = 4 * 1024)]
    pub max_uri_bytes: usize,
    /// Most header bytes in a request (then 431).
    #[arg(long, env = "KHQR_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Most connections open at once.
    #[arg(long, env = "KHQR_MAX_CONNECTIONS", default_value_t = 4096, value_parser = at_least_one)]
    pub max_connections: usize,
    /// Most connections open at once from one client (IPv4 address, IPv6 /64); its next closes its oldest; 0 = no limit. Connections from --trusted-proxies are not counted.
    #[arg(long, env = "KHQR_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
    /// Longest a write may wait for the client to read, in milliseconds (then the connection is reset); every byte read restarts it.
    #[arg(long, env = "KHQR_WRITE_TIMEOUT_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout_ms: u64,
    /// Most event streams (`/khqr/events/{tran}`) open at once per client (then 429); 0 = no limit.
    #[arg(long, env = "KHQR_MAX_EVENTS_PER_CLIENT", default_value_t = 16)]
    pub max_events_per_client: usize,
    /// Most event streams open at once in all (then 503); 0 = no limit.
    #[arg(long, env = "KHQR_MAX_EVENTS", default_value_t = 1024)]
    pub max_events: usize,
    /// Serve /healthz, /readyz and /metrics on this address only (e.g. 127.0.0.1:9090), on their own connections; unset: on the public port.
    #[arg(long, env = "KHQR_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Most connections open at once on --admin-listen.
    #[arg(long, env = "KHQR_ADMIN_MAX_CONNECTIONS", default_value_t = 32, value_parser = at_least_one)]
    pub admin_max_connections: usize,
    /// Requests per second one client may make for the page's assets and unknown paths (burst: 4 s' worth); 0 = no limit.
    #[arg(long, env = "KHQR_RATE_ASSETS_PER_CLIENT", default_value_t = 20)]
    pub rate_assets_per_client: u32,
    /// Requests per second one client may make to /healthz, /readyz and /metrics (burst: 4 s' worth); 0 = no limit.
    #[arg(long, env = "KHQR_RATE_ADMIN_PER_CLIENT", default_value_t = 10)]
    pub rate_admin_per_client: u32,
    /// On SIGTERM/SIGINT, seconds in-flight requests may take to finish.
    #[arg(long, env = "KHQR_DRAIN_SECS", default_value_t = 30)]
    pub drain_secs: u64,
    /// Log format (access logs on target `khqr_server::access`).
    #[arg(long, env = "KHQR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info`, `warn`, `info,khqr_server::access=off`.
    #[arg(long, env = "KHQR_LOG", default_value = "info")]
    pub log: String,
    /// Worker threads of the async runtime [default: the CPUs].
    #[arg(long, env = "KHQR_WORKERS", value_parser = at_least_one)]
    pub workers: Option<usize>,
    /// How often the checkout page's watcher asks for an open QR's status, ms.
    #[arg(long, env = "KHQR_POLL_INTERVAL_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(50..))]
    pub poll_interval_ms: u64,
    /// Longest wait between two polls of one QR by its watcher, ms: the wait
    /// grows from --poll-interval-ms as the QR ages (an eighth of its age).
    #[arg(long, env = "KHQR_POLL_MAX_INTERVAL_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(50..))]
    pub poll_max_interval_ms: u64,
    /// Calls to Bakong per second for the whole service (every instance on one
    /// Redis together): checks first, then watchers, then deep links.
    #[arg(long, env = "KHQR_BAKONG_CALLS_PER_SEC", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub bakong_calls_per_sec: u32,
    /// Calls to Bakong that may be saved up and made at once; watchers leave a
    /// quarter of it to checks, deep links half.
    #[arg(long, env = "KHQR_BAKONG_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub bakong_burst: u32,
    /// URL prefix a create's `success_url` may start with (repeat the option,
    /// or comma-separate in the variable); none: `success_url` is refused.
    #[arg(
        long = "success-url-allow",
        env = "KHQR_SUCCESS_URL_ALLOW",
        value_delimiter = ',',
        value_parser = trimmed
    )]
    pub success_url_allow: Vec<String>,
    /// How long a failing webhook is retried, in seconds.
    #[arg(long, env = "KHQR_WEBHOOK_RETRY_SECS", default_value_t = 86_400)]
    pub webhook_retry_secs: u64,
    /// First webhook retry delay, ms (doubles with jitter, at most 60 s).
    #[arg(long, env = "KHQR_WEBHOOK_BACKOFF_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_backoff_ms: u64,
    /// Lift every rule on webhook targets (addresses, ports, local names):
    /// only for tests or a receiver you trust on your own network; prefer
    /// --callback-allow-ips and --callback-allow-ports.
    #[arg(long, env = "KHQR_CALLBACK_ALLOW_PRIVATE")]
    pub callback_allow_private: bool,
    /// Allow plain-`http` `callback_url`s (only with a receiver you trust the
    /// path to, e.g. on loopback).
    #[arg(long, env = "KHQR_CALLBACK_ALLOW_HTTP")]
    pub callback_allow_http: bool,
    /// Ports a `callback_url` may use besides 443 (80 for allowed http)
    /// (repeat the option, or comma-separate in the variable).
    #[arg(long, env = "KHQR_CALLBACK_ALLOW_PORTS", value_delimiter = ',')]
    pub callback_allow_ports: Vec<u16>,
    /// Networks (CIDR) a webhook may go to although the IANA special-purpose
    /// registries list them, e.g. a receiver on your own network (repeat the
    /// option, or comma-separate in the variable).
    #[arg(long, env = "KHQR_CALLBACK_ALLOW_IPS", value_delimiter = ',', value_parser = network)]
    pub callback_allow_ips: Vec<ipnet::IpNet>,
    /// DNS server (`ip:port`, UDP then TCP) that resolves webhook hosts [default: the system resolver].
    #[arg(long, env = "KHQR_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,
}

/// A count of at least 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

/// One e-mail address, as `/v1/renew_token` takes it (the library's rule:
/// one `@` with text on both sides, no whitespace or control character).
fn email(s: &str) -> Result<String, String> {
    let s = s.trim();
    bakong_khqr::status::Api::new(bakong_khqr::status::PRODUCTION_BASE_URL)
        .map_err(|e| e.to_string())?
        .renew_token(s)
        .map(|_| s.to_owned())
        .map_err(|_| format!("`{s}` is not one e-mail address (name@domain)"))
}

/// A network in CIDR notation, or one address (a /32 or /128).
fn network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is neither a network (CIDR) nor an address"))
}

/// An allow-list entry, trimmed (an empty entry allows nothing).
#[allow(clippy::unnecessary_wraps)]
fn trimmed(s: &str) -> Result<String, String> {
    Ok(s.trim().to_owned())
}

impl Config {
    /// Every default, with `public_url` as this server's public base URL; no
    /// environment variable or argument is read (for tests and embedding).
    #[must_use]
    pub fn new(public_url: impl Into<String>) -> Self {
        let command = Config::command().mut_args(|a| a.env(None));
        let matches = command.get_matches_from(["khqr-server"]);
        let mut config = Config::from_arg_matches(&matches)
            .unwrap_or_else(|_| unreachable!("the defaults parse"));
        config.public_url = Some(public_url.into());
        config
    }

    /// This server's public base URL without a trailing `/`: `--public-url`,
    /// else `http://<listen>`.
    #[must_use]
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Lifetime of a created QR, in ms.
    #[must_use]
    pub fn qr_ttl_ms(&self) -> u64 {
        self.qr_ttl_secs.saturating_mul(1000)
    }

    /// How long a QR is kept after it expires, in ms.
    #[must_use]
    pub fn grace_ms(&self) -> u64 {
        self.grace_secs.saturating_mul(1000)
    }

    /// How long the payment record keeps a QR or an event, in ms.
    #[must_use]
    pub fn retention_ms(&self) -> u64 {
        self.retention_days.saturating_mul(86_400_000)
    }

    /// [`Config::reconcile_every_secs`] in ms.
    #[must_use]
    pub fn reconcile_every_ms(&self) -> u64 {
        self.reconcile_every_secs.saturating_mul(1000)
    }

    /// [`Config::reconcile_window_hours`] in ms.
    #[must_use]
    pub fn reconcile_window_ms(&self) -> u64 {
        self.reconcile_window_hours.saturating_mul(3_600_000)
    }

    /// How long a failing webhook is retried, in ms.
    #[must_use]
    pub fn webhook_retry_ms(&self) -> u64 {
        self.webhook_retry_secs.saturating_mul(1000)
    }

    /// Bytes of rendered PNGs kept.
    #[must_use]
    pub fn image_cache_bytes(&self) -> u64 {
        self.image_cache_mib.saturating_mul(1 << 20)
    }

    /// Threads drawing PNGs: `--render-threads`, else the CPUs.
    #[must_use]
    pub fn render_threads(&self) -> usize {
        self.render_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        })
    }

    /// The SQLite database file [`Config::store`] names: `sqlite` gives
    /// `<data_dir>/khqr.sqlite3`, `sqlite:PATH` gives `PATH`; `None` for the
    /// other stores.
    #[must_use]
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        if self.store == "sqlite" {
            return Some(self.data_dir.join(crate::store::sqlite::FILE_NAME));
        }
        self.store
            .strip_prefix("sqlite:")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }

    /// The store's rate limits and capacity.
    #[must_use]
    pub fn limits(&self) -> Limits {
        Limits {
            client_per_sec: self.rate_per_client,
            client_burst: self.burst_per_client,
            account_per_sec: self.rate_per_account,
            account_burst: self.burst_per_account,
            quota_per_client: self.quota_per_client,
            merchant_per_sec: self.rate_per_merchant,
            merchant_burst: self.burst_per_merchant,
            quota_per_merchant: self.quota_per_merchant,
            max_entries: self.max_entries,
            grace_ms: self.grace_ms(),
        }
    }

    /// The connection options for [`crate::serve()`] on the public port.
    #[must_use]
    pub fn serve(&self) -> ServeConfig {
        ServeConfig {
            header_read_timeout: Duration::from_millis(self.header_timeout_ms),
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            trusted_proxies: self.trusted(),
            drain_timeout: Duration::from_secs(self.drain_secs),
        }
    }

    /// The connection options for [`crate::serve()`] on
    /// [`Config::admin_listen`]: [`Config::admin_max_connections`] in all, no
    /// per-client cap (when full, the biggest holder still gives way).
    #[must_use]
    pub fn admin_serve(&self) -> ServeConfig {
        ServeConfig {
            max_connections: self.admin_max_connections,
            max_connections_per_ip: 0,
            trusted_proxies: TrustedProxies::default(),
            ..self.serve()
        }
    }

    /// [`Config::trusted_proxies`] as a set.
    #[must_use]
    pub fn trusted(&self) -> TrustedProxies {
        TrustedProxies::new(self.trusted_proxies.clone())
    }

    /// How the client's address is found: [`Config::client_ip_header`] (by
    /// default `X-Forwarded-For`) from [`Config::trusted_proxies`].
    ///
    /// # Errors
    /// [`ConfigError`] for `--client-ip-header` without `--trusted-proxies`
    /// (it would believe any peer's header).
    pub fn client_addr(&self) -> Result<crate::client_ip::ClientAddr, ConfigError> {
        if self.client_ip_header.is_some() && self.trusted_proxies.is_empty() {
            return Err(ConfigError(
                "--client-ip-header needs --trusted-proxies (the proxies whose header is believed)"
                    .into(),
            ));
        }
        Ok(crate::client_ip::ClientAddr::new(
            self.trusted(),
            self.client_ip_header.clone().unwrap_or_default(),
        ))
    }
}

/// Connection limits.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Longest wait for a complete request head, and so also the longest a
    /// keep-alive connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Longest a write may wait for the peer to read without moving a byte;
    /// then the connection is reset.
    pub write_timeout: Duration,
    /// Most connections open at once; at the cap, a new connection closes
    /// the oldest one of the client group holding the most (if it holds two
    /// or more), else waits in the kernel's backlog.
    pub max_connections: usize,
    /// Most connections open at once from one client group (an IPv4 address
    /// or an IPv6 /64; 0 = no limit); the group's next connection closes its
    /// oldest one.
    pub max_connections_per_ip: usize,
    /// Peers not counted by `max_connections_per_ip` (they carry many clients).
    pub trusted_proxies: TrustedProxies,
    /// On shutdown, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
}

impl Default for ServeConfig {
    /// [`Config`]'s defaults: 5 s header/idle timeout, 15 s write timeout,
    /// 4 096 connections, 256 per client group, no trusted proxy, 30 s drain.
    fn default() -> Self {
        Config::new("http://unset").serve()
    }
}

/// A configuration the server cannot start with.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let mut config = Config::new("https://pay.example");
        config.token = Some("eyJhbGciOiJIUzI1NiJ9.top-secret-token".into());
        let text = format!("{config:?}");
        assert!(!text.contains("top-secret-token"), "{text}");
        assert!(text.contains("token: Some(Secret(<redacted>))"), "{text}");
    }

    #[test]
    fn defaults_and_derived_values() {
        let config = Config::new("https://pay.example/");
        assert_eq!(config.public_base(), "https://pay.example");
        assert_eq!(config.qr_ttl_ms(), 600_000);
        assert_eq!(config.limits(), Limits::default());
        assert_eq!(config.serve().max_connections, 4096);
        assert_eq!(config.pending_cache_ms, 3_000);
        assert_eq!(config.upstream_max_body_bytes, 1 << 20);
        assert_eq!(config.store, "sqlite");
        assert_eq!(
            config.sqlite_path(),
            Some(PathBuf::from("/var/lib/khqr-server/khqr.sqlite3"))
        );
    }

    #[test]
    fn store_choices() {
        let parse = |args: &[&str]| {
            let mut all = vec!["khqr-server"];
            all.extend_from_slice(args);
            Config::try_parse_from(all).unwrap()
        };
        let c = parse(&["--store", "sqlite", "--data-dir", "/srv/khqr"]);
        assert_eq!(
            c.sqlite_path(),
            Some(PathBuf::from("/srv/khqr/khqr.sqlite3"))
        );
        let c = parse(&["--store", "sqlite:/tmp/x.db"]);
        assert_eq!(c.sqlite_path(), Some(PathBuf::from("/tmp/x.db")));
        assert_eq!(parse(&["--store", "memory"]).sqlite_path(), None);
        assert_eq!(parse(&["--store", "sqlite:"]).sqlite_path(), None);
        assert_eq!(
            parse(&["--store", "redis://127.0.0.1:6379/"]).sqlite_path(),
            None
        );
    }

    #[test]
    fn client_addresses_and_admin_connections() {
        let mut config = Config::new("https://pay.example");
        assert!(config.client_addr().is_ok());
        config.client_ip_header = Some("X-Forwarded-For".parse().unwrap());
        let e = config.client_addr().unwrap_err();
        assert!(e.0.contains("--trusted-proxies"), "{e}");
        let parsed = Config::try_parse_from([
            "khqr-server",
            "--trusted-proxies",
            "10.0.0.0/8,192.0.2.7",
            "--client-ip-header",
            "Forwarded",
            "--admin-listen",
            "127.0.0.1:9090",
        ])
        .unwrap();
        assert!(parsed.client_addr().is_ok());
        assert!(parsed.trusted().contains("10.1.2.3".parse().unwrap()));
        assert!(parsed
            .serve()
            .trusted_proxies
            .contains("192.0.2.7".parse().unwrap()));
        let admin = parsed.admin_serve();
        assert_eq!(
            (admin.max_connections, admin.max_connections_per_ip),
            (32, 0)
        );
        assert!(admin.trusted_proxies.is_empty());
        assert_eq!(admin.write_timeout, parsed.serve().write_timeout);
        assert!(Config::try_parse_from(["khqr-server", "--trusted-proxies", "10.0.0/8"]).is_err());
        assert!(Config::try_parse_from(["khqr-server", "--admin-max-connections", "0"]).is_err());
    }

    #[test]
    fn bounds_are_enforced_by_the_parser() {
        for bad in [
            ["khqr-server", "--upstream-concurrency", "0"],
            ["khqr-server", "--burst-per-client", "0"],
            ["khqr-server", "--qr-ttl-secs", "0"],
            ["khqr-server", "--poll-interval-ms", "10"],
            ["khqr-server", "--bakong-email", "ops at shop"],
            ["khqr-server", "--token-renew-before-secs", "59"],
            ["khqr-server", "--token-alert-secs", "86400,soon"],
        ] {
            assert!(Config::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let c = Config::try_parse_from(["khqr-server", "--bakong-email", " ops@shop.example "]);
        assert_eq!(c.unwrap().bakong_email.as_deref(), Some("ops@shop.example"));
        let c = Config::try_parse_from(["khqr-server", "--token-alert-secs", "600,60"]).unwrap();
        assert_eq!(c.token_alert_secs, vec![600, 60]);
        assert_eq!(
            Config::new("http://unset").token_alert_secs,
            vec![1_209_600, 259_200, 86_400]
        );
        let ok = Config::try_parse_from(["khqr-server", "--success-url-allow", " https://a/ "]);
        assert_eq!(ok.unwrap().success_url_allow, vec!["https://a/".to_owned()]);
    }

    #[test]
    fn webhook_target_options() {
        let args = [
            "khqr-server",
            "--callback-allow-ips",
            "10.1.0.0/16, 127.0.0.2,fd00::/8",
            "--callback-allow-ports",
            "8443,9000",
            "--dns-server",
            "127.0.0.1:5353",
        ];
        let config = Config::try_parse_from(args).unwrap();
        let nets: Vec<String> = config
            .callback_allow_ips
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.1.0.0/16", "127.0.0.2/32", "fd00::/8"]);
        assert_eq!(config.callback_allow_ports, [8443, 9000]);
        assert_eq!(config.dns_server, Some(([127, 0, 0, 1], 5353).into()));
        for bad in [
            ["khqr-server", "--callback-allow-ips", "10.1.0.0/33"],
            ["khqr-server", "--callback-allow-ips", "shop.example"],
            ["khqr-server", "--callback-allow-ports", "70000"],
            ["khqr-server", "--dns-server", "127.0.0.1"],
        ] {
            assert!(Config::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
