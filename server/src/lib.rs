//! `khqr-server`: the hosted KHQR service's five endpoints, built on
//! `bakong-khqr`, made to face the internet.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /khqr/create?amount&bakongid&merchantname[&username][&currency][&success_url][&callback_url]` | `{status, message, qr, qr_stand, checkout, md5, tran}`; `qr`/`qr_stand` are URLs on this server; `currency` is `USD` (the default) or `KHR` |
//! | `GET /khqr/qr/{tran}` | the QR as PNG |
//! | `GET /khqr/qr/stand/{tran}` | the KHQR stand card as PNG |
//! | `GET\|POST /khqr/check/{tran_id}` (also `/check/{tran_id}`, as the hosted docs' example) | the payment status; `bakongid` in the query or the body |
//! | `GET\|POST /check_by_md5` | the same by `md5` and `bakongid` |
//! | `GET /khqr/pay/{tran}` | the checkout page (HTML; see [`checkout`]); `create` returns its URL as `checkout` |
//! | `GET /khqr/events/{tran}` | the page's live status as server-sent events |
//! | `GET /khqr/assets/{name}` | the page's script, style sheet and Khmer font |
//! | `GET /healthz`, `GET /readyz`, `GET /metrics` | liveness, readiness (store reachable, token present and unexpired), Prometheus metrics |
//!
//! * **State** lives behind [`store::Store`]: in memory ([`store::MemoryStore`])
//!   or in Redis ([`store::RedisStore`]), which several instances share.
//! * **Checks** answer only for QRs this service created, asked with the
//!   `bakongid` that created them (404 otherwise), unless
//!   [`Config::open_relay`]. Statuses are cached (paid: for the QR's life;
//!   pending: [`Config::pending_cache_ms`]) and concurrent checks of one MD5 make
//!   one upstream call, through [`bakong_khqr::status::ReqwestTransport`] (no
//!   redirects, timeout, body cap) with at most [`Config::upstream_concurrency`]
//!   calls at once.
//! * **Images** are drawn on [`Config::render_threads`] dedicated threads at a
//!   lower CPU priority (never on the async workers), once per QR, and cached (bounded by bytes), with `ETag` and a
//!   `Cache-Control` that follows the QR's remaining life.
//! * **Parameters**: see [`params`] (one rule for repeats: refused; invalid
//!   UTF-8, control and bidi characters refused).
//! * **Errors** are JSON. Bad input: `{"status":false,"message","errorCode","error"}`
//!   where `errorCode`/`error` are the library's code and name for KHQR
//!   validation errors, and `errorCode` 60 (15 for a server fault) with a
//!   lowercase `error` kind (`not_found`, `rate_limited`, `duplicate_parameter`,
//!   `payload_too_large`, …) otherwise. Upstream failures:
//!   `{"responseCode":1,"responseMessage","errorCode","error","data":null}`, plus
//!   `bakongMessage` holding Bakong's own message when Bakong sent one.

// Handlers return `Result<_, Response>` so that an early error is already the
// answer; the size of `Response` does not matter on that path.
#![allow(clippy::result_large_err)]

pub mod checkout;
pub mod idempotency;
pub mod params;
mod render_pool;
pub mod seed;
mod serve;
pub mod store;
pub mod webhook;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use bakong_khqr::render::{card_png, qr_png, CardOptions, QrOptions};
use bakong_khqr::status::{
    check_md5_async, Api, CheckError, RequestError, ReqwestError, ReqwestTransport, ResponseError,
    RetryAfter, Token, TransactionStatus, TransportConfig,
};
use bakong_khqr::{Amount, Currency, ErrorCode, Md5, Request as KhqrRequest};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use tokio::sync::Semaphore;

pub use seed::{amount_with_currency_decimals, seed_json};
pub use serve::{serve, PeerAddr, ServeConfig};
use store::{AnyStore, Created, Limited, Record, Store, StoreError};

/// How the application behaves (the connection limits are in [`ServeConfig`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// Bakong Open API base URL (may carry a relay's path prefix).
    pub bakong_base_url: String,
    /// Bakong token; without one, status checks answer 503 and `/readyz` fails.
    pub token: Option<String>,
    /// A file holding the token, re-read every 10 s (rotate the token by
    /// rewriting the file); wins over [`Config::token`] once read.
    pub token_file: Option<PathBuf>,
    /// This server's public base URL, used in `qr`/`qr_stand` (no trailing `/`).
    pub public_url: String,
    /// Lifetime of a created QR, in milliseconds (tag 99 expiration).
    pub qr_ttl_ms: u64,
    /// Rate limits, quotas and capacity of the store.
    pub limits: store::Limits,
    /// Timeout of one call to Bakong, whole exchange, in milliseconds.
    pub upstream_timeout_ms: u64,
    /// Most calls to Bakong in flight at once; more wait (up to the timeout).
    pub upstream_concurrency: usize,
    /// Largest answer body accepted from Bakong, in bytes.
    pub upstream_max_body_bytes: usize,
    /// Answer `check_by_md5` for any MD5 and `check/:tran` for any `bakongid`,
    /// as the hosted service does (forwards anyone's questions with your token).
    pub open_relay: bool,
    /// How long a "pending" status is reused, in milliseconds.
    pub pending_cache_ms: u64,
    /// Threads drawing PNGs (dedicated threads at nice 10 on Linux, so that a
    /// flood of images cannot take the CPU from the other endpoints).
    pub render_threads: usize,
    /// Bytes of rendered PNGs kept.
    pub image_cache_bytes: u64,
    /// Longest a request may take, body included, in milliseconds (then 408).
    pub request_timeout_ms: u64,
    /// Largest request body, in bytes (then 413).
    pub max_body_bytes: usize,
    /// Longest request target (path and query), in bytes (then 414).
    pub max_uri_bytes: usize,
    /// Most header bytes (names and values) in a request (then 431).
    pub max_header_bytes: usize,
    /// Take the client's address from this header's last entry (e.g.
    /// `X-Forwarded-For` behind a proxy you run) instead of the socket's peer.
    pub client_ip_header: Option<String>,
    /// How often the checkout watcher of an open QR asks for its status, in
    /// ms (through the status cache, so Bakong sees at most one call per
    /// [`Config::pending_cache_ms`] per QR).
    pub poll_interval_ms: u64,
    /// URL prefixes a `success_url` must start with (none: `success_url` refused).
    pub success_url_allow: Vec<String>,
    /// The webhook signing secret (none: `callback_url` refused).
    pub webhook_secret: Option<Vec<u8>>,
    /// How long a webhook is retried after the payment is seen, in ms.
    pub webhook_retry_ms: u64,
    /// First retry delay of a webhook, in ms (doubles, with jitter, up to 60 s).
    pub webhook_backoff_ms: u64,
    /// Allow `callback_url`s on loopback, private and link-local addresses.
    pub callback_allow_private: bool,
    /// Allow plain-`http` `callback_url`s (tests, or a receiver on a private network).
    pub callback_allow_http: bool,
    /// Ports a `callback_url` may use besides 443 (80 for allowed `http`).
    pub callback_allow_ports: Vec<u16>,
    /// Networks a webhook may go to although the IANA special-purpose
    /// registries list them (a receiver on the operator's own network).
    pub callback_allow_ips: Vec<ipnet::IpNet>,
    /// The DNS server (UDP, TCP when truncated) that resolves `callback_url`
    /// hosts; none: the system's resolver.
    pub dns_server: Option<std::net::SocketAddr>,
}

impl Config {
    /// Defaults: production Bakong, no token, 10-minute QRs, [`store::Limits`]
    /// defaults, 10 s upstream timeout, 64 upstream calls, 1 MiB upstream cap,
    /// no open relay, pending cached 3 s, render threads as many as the CPUs
    /// ([`std::thread::available_parallelism`]), 64 MiB of images, 15 s request timeout, 8 KiB bodies, 4 KiB targets,
    /// 16 KiB of headers.
    #[must_use]
    pub fn new(public_url: impl Into<String>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Config {
            bakong_base_url: bakong_khqr::status::PRODUCTION_BASE_URL.into(),
            token: None,
            token_file: None,
            public_url: public_url.into(),
            qr_ttl_ms: 10 * 60 * 1000,
            limits: store::Limits::default(),
            upstream_timeout_ms: bakong_khqr::status::DEFAULT_TIMEOUT_MS,
            upstream_concurrency: 64,
            upstream_max_body_bytes: bakong_khqr::status::DEFAULT_MAX_BODY_BYTES,
            open_relay: false,
            pending_cache_ms: 3_000,
            render_threads: cpus.max(1),
            image_cache_bytes: 64 << 20,
            request_timeout_ms: 15_000,
            max_body_bytes: 8 * 1024,
            max_uri_bytes: 4 * 1024,
            max_header_bytes: 16 * 1024,
            client_ip_header: None,
            poll_interval_ms: 2_000,
            success_url_allow: Vec::new(),
            webhook_secret: None,
            webhook_retry_ms: 24 * 3600 * 1000,
            webhook_backoff_ms: 1_000,
            callback_allow_private: false,
            callback_allow_http: false,
            callback_allow_ports: Vec::new(),
            callback_allow_ips: Vec::new(),
            dns_server: None,
        }
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

/// A cached status and how long it stays, in ms.
type StatusEntry = Arc<(TransactionStatus, u64)>;

struct StatusLife;

impl moka::Expiry<String, StatusEntry> for StatusLife {
    fn expire_after_create(&self, _: &String, v: &StatusEntry, _: Instant) -> Option<Duration> {
        Some(Duration::from_millis(v.1))
    }
}

struct AppState {
    api: RwLock<Arc<Api>>,
    transport: ReqwestTransport,
    upstream: Semaphore,
    upstream_timeout_ms: u64,
    store: AnyStore,
    public_url: String,
    qr_ttl_ms: u64,
    grace_ms: u64,
    open_relay: bool,
    pending_cache_ms: u64,
    statuses: moka::future::Cache<String, StatusEntry>,
    renders: Semaphore,
    pool: render_pool::RenderPool,
    images: moka::future::Cache<(String, Kind), Bytes>,
    request_timeout: Duration,
    max_uri_bytes: usize,
    max_header_bytes: usize,
    client_ip_header: Option<header::HeaderName>,
    hub: checkout::Hub,
    deeplinks: moka::future::Cache<String, Option<String>>,
    poll_interval_ms: u64,
    success_url_allow: Vec<String>,
    webhooks: webhook::Webhooks,
    webhook_secret: Option<Vec<u8>>,
    webhook_retry_ms: u64,
    webhook_backoff_ms: u64,
    targets: Arc<webhook::target::TargetPolicy>,
    webhook_client: reqwest::Client,
}

/// A running application: its router, ready for [`serve`].
pub struct App {
    router: Router,
    state: Arc<AppState>,
}

impl App {
    /// The router (every route, its limits and its JSON errors).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The store, e.g. to report its size.
    #[must_use]
    pub fn store_kind(&self) -> &'static str {
        self.state.store.kind()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn metrics_handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0,
                ])
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

fn read_token(text: &str) -> Result<Token, ConfigError> {
    Token::new(text.trim()).map_err(|e| ConfigError(format!("Bakong token: {e}")))
}

/// Builds the application on `store`. Call it inside a tokio runtime: it
/// starts two background tasks (rate-limit pruning, and re-reading
/// [`Config::token_file`]) that end when the application is dropped.
///
/// # Errors
/// [`ConfigError`] for an unusable Bakong base URL, token or token file, or if
/// the HTTP client cannot be built.
pub fn app(config: &Config, store: AnyStore) -> Result<App, ConfigError> {
    let mut api = Api::new(&config.bakong_base_url)
        .map_err(|e| ConfigError(format!("Bakong base URL: {e}")))?;
    if let Some(t) = &config.token {
        api.set_token(read_token(t)?);
    }
    if let Some(path) = &config.token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|_| ConfigError(format!("cannot read the token file {}", path.display())))?;
        api.set_token(read_token(&text)?);
    }
    let transport = ReqwestTransport::new(
        TransportConfig::default()
            .timeout_ms(config.upstream_timeout_ms)
            .max_body_bytes(config.upstream_max_body_bytes),
    )
    .map_err(|e| ConfigError(format!("HTTP client: {e}")))?;
    let client_ip_header = match &config.client_ip_header {
        None => None,
        Some(h) => Some(
            header::HeaderName::try_from(h.as_str())
                .map_err(|_| ConfigError(format!("not a header name: {h}")))?,
        ),
    };
    let targets = Arc::new(webhook::target::TargetPolicy {
        allow_http: config.callback_allow_http,
        allow_any: config.callback_allow_private,
        allow_ports: config.callback_allow_ports.clone(),
        allow_nets: config.callback_allow_ips.clone(),
    });
    let webhook_client = webhook::target::webhook_client(
        targets.clone(),
        config.dns_server,
        config.upstream_timeout_ms,
    )
    .map_err(|e| ConfigError(format!("webhook HTTP client: {e}")))?;
    let _ = metrics_handle();
    let state = Arc::new(AppState {
        api: RwLock::new(Arc::new(api)),
        transport,
        upstream: Semaphore::new(config.upstream_concurrency.max(1)),
        upstream_timeout_ms: config.upstream_timeout_ms,
        store,
        public_url: config.public_url.trim_end_matches('/').into(),
        qr_ttl_ms: config.qr_ttl_ms,
        grace_ms: config.limits.grace_ms,
        open_relay: config.open_relay,
        pending_cache_ms: config.pending_cache_ms,
        statuses: moka::future::Cache::builder()
            .max_capacity(200_000)
            .expire_after(StatusLife)
            .build(),
        renders: Semaphore::new(config.render_threads.max(1)),
        pool: render_pool::RenderPool::new(config.render_threads.max(1)),
        images: moka::future::Cache::builder()
            .max_capacity(config.image_cache_bytes.max(1))
            .weigher(|_, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .time_to_live(Duration::from_millis(
                config.qr_ttl_ms.saturating_add(config.limits.grace_ms),
            ))
            .build(),
        request_timeout: Duration::from_millis(config.request_timeout_ms.max(1)),
        max_uri_bytes: config.max_uri_bytes,
        max_header_bytes: config.max_header_bytes,
        client_ip_header,
        hub: checkout::Hub::default(),
        deeplinks: moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_millis(config.qr_ttl_ms.max(1)))
            .build(),
        poll_interval_ms: config.poll_interval_ms.max(50),
        success_url_allow: config.success_url_allow.clone(),
        webhooks: webhook::Webhooks::default(),
        webhook_secret: config.webhook_secret.clone(),
        webhook_retry_ms: config.webhook_retry_ms,
        webhook_backoff_ms: config.webhook_backoff_ms.max(1),
        targets,
        webhook_client,
    });
    if let Some(path) = config.token_file.clone() {
        spawn_token_watch(Arc::downgrade(&state), path);
    }
    spawn_housekeeping(Arc::downgrade(&state));
    if state.webhook_secret.is_some() {
        webhook::spawn_resume(Arc::downgrade(&state));
    }
    let router = Router::new()
        .route("/khqr/create", get(create))
        .route("/khqr/qr/{tran}", get(qr))
        .route("/khqr/qr/stand/{tran}", get(stand))
        .route("/khqr/check/{tran_id}", get(check_tran).post(check_tran))
        .route("/check/{tran_id}", get(check_tran).post(check_tran))
        .route("/check_by_md5", get(check_by_md5).post(check_by_md5))
        .route("/khqr/pay/{tran}", get(checkout::page))
        .route("/khqr/events/{tran}", get(checkout::events))
        .route("/khqr/assets/{name}", get(checkout::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_page))
        .fallback(|| async { bad(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            bad(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take this method",
            )
        })
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state.clone());
    Ok(App { router, state })
}

/// Re-reads the token file every 10 s while the application lives.
fn spawn_token_watch(state: std::sync::Weak<AppState>, path: PathBuf) {
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let Some(state) = state.upgrade() else { return };
            let Ok(text) = tokio::fs::read_to_string(&path).await else {
                tracing::warn!("cannot read the token file; keeping the current token");
                continue;
            };
            if text == last {
                continue;
            }
            if let Ok(token) = Token::new(text.trim()) {
                let mut api = (**state
                    .api
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner))
                .clone();
                let changed = api.token() != Some(&token);
                api.set_token(token);
                *state
                    .api
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(api);
                if changed {
                    tracing::info!("Bakong token reloaded from the token file");
                }
                last = text;
            } else {
                tracing::warn!("the token file holds no usable token; keeping the current one");
            }
        }
    });
}

/// Prunes idle rate-limit buckets every 10 s.
fn spawn_housekeeping(state: std::sync::Weak<AppState>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let Some(state) = state.upgrade() else { return };
            if let AnyStore::Memory(m) = &state.store {
                m.prune();
            }
        }
    });
}

#[derive(Serialize)]
struct BadInput<'a> {
    status: bool,
    message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: u16,
    error: &'a str,
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn bad_json(status: StatusCode, error_code: u16, error: &str, message: &str) -> Response {
    let body = serde_json::to_string(&BadInput {
        status: false,
        message,
        error_code,
        error,
    })
    .unwrap_or_default();
    json_response(status, body)
}

/// A server-level refusal: `errorCode` 60 (15 for 5xx) and a lowercase kind.
fn bad(status: StatusCode, kind: &str, message: &str) -> Response {
    let code = if status.is_server_error() {
        ErrorCode::InternalServer
    } else {
        ErrorCode::InvalidRequest
    };
    bad_json(status, code.number(), kind, message)
}

fn khqr_error(e: &bakong_khqr::Error) -> Response {
    let code = e.code();
    bad_json(
        StatusCode::BAD_REQUEST,
        code.number(),
        code.name(),
        &e.to_string(),
    )
}

fn library_code(code: ErrorCode, message: &str) -> Response {
    bad_json(StatusCode::BAD_REQUEST, code.number(), code.name(), message)
}

fn with_retry_after(mut resp: Response, ms: u64) -> Response {
    let secs = ms.div_ceil(1000).max(1);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn rate_limited(l: Limited, route: &'static str) -> Response {
    metrics::counter!("khqr_rate_limited_total", "route" => route).increment(1);
    let secs = l.retry_after_ms.div_ceil(1000).max(1);
    with_retry_after(
        bad(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &format!("too many requests; retry in {secs} s"),
        ),
        l.retry_after_ms,
    )
}

fn store_failed(e: &StoreError) -> Response {
    tracing::error!(detail = e.detail(), "store call failed");
    metrics::counter!("khqr_store_errors_total").increment(1);
    with_retry_after(
        bad(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store is unavailable; try again",
        ),
        1000,
    )
}

fn param_error(e: &params::ParamError) -> Response {
    bad(StatusCode::BAD_REQUEST, e.kind, &e.message)
}

/// The client's rate-limit key: its IP address (an IPv6 address by its /64),
/// from the socket or from [`Config::client_ip_header`].
#[derive(Clone)]
struct Client(String);

fn client_key(state: &AppState, req: &Request) -> String {
    use std::net::IpAddr;
    let from_header = state.client_ip_header.as_ref().and_then(|h| {
        req.headers()
            .get_all(h)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    });
    let ip = from_header.or_else(|| req.extensions().get::<PeerAddr>().map(|p| p.0.ip()));
    match ip {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                v4.to_string()
            } else {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
        None => "unknown".into(),
    }
}

/// A metrics label for the path (a fixed set, so the label cannot grow).
fn route_label(path: &str) -> &'static str {
    match path {
        "/khqr/create" => "create",
        "/check_by_md5" => "check_by_md5",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        p if p.starts_with("/khqr/qr/stand/") => "stand",
        p if p.starts_with("/khqr/pay/") => "checkout",
        p if p.starts_with("/khqr/events/") => "events",
        p if p.starts_with("/khqr/assets/") => "assets",
        p if p.starts_with("/khqr/qr/") => "qr",
        p if p.starts_with("/khqr/check/") || p.starts_with("/check/") => "check",
        _ => "other",
    }
}

/// A metrics label for a status: the usual ones without an allocation.
fn status_label(status: u16) -> metrics::SharedString {
    let fixed = match status {
        200 => "200",
        304 => "304",
        400 => "400",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        414 => "414",
        429 => "429",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return other.to_string().into(),
    };
    fixed.into()
}

/// A metrics label for a method: the standard ones, else `other` (so the
/// label cannot grow).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Every request passes here: target and header size limits (414, 431), the
/// request timeout (408), any non-JSON error turned into the JSON error, the
/// access log and the request metrics.
async fn guard(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_label(req.uri().path());
    let method = req.method().clone();
    let client = client_key(&state, &req);
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let header_len: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let resp = if target_len > state.max_uri_bytes {
        bad(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!(
                "the request target is longer than {} bytes",
                state.max_uri_bytes
            ),
        )
    } else if header_len > state.max_header_bytes {
        bad(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!(
                "the request headers are longer than {} bytes",
                state.max_header_bytes
            ),
        )
    } else {
        req.extensions_mut().insert(Client(client.clone()));
        if let Ok(r) = tokio::time::timeout(state.request_timeout, next.run(req)).await {
            r
        } else {
            let mut r = bad(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request took too long",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    };
    let resp = jsonify(resp);
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let status_label = status_label(status);
    metrics::counter!("khqr_http_requests_total", "route" => route, "method" => method_label(&method), "status" => status_label.clone()).increment(1);
    metrics::histogram!("khqr_http_request_duration_seconds", "route" => route, "status" => status_label).record(elapsed.as_secs_f64());
    tracing::info!(
        target: "khqr_server::access",
        method = %method,
        route,
        status,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        client = %client,
        "request"
    );
    resp
}

/// Any error answer that is not JSON (axum's own 405, 413, 400 for a bad path)
/// becomes the JSON error for its status; headers such as `Allow` are kept.
fn jsonify(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (kind, message) = match status {
        StatusCode::BAD_REQUEST => (
            "bad_request",
            "the request is malformed (path, query or body)",
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take this method",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request target is too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported content type")
        }
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "the request headers are too large")
        }
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "the request was refused"),
    };
    let (mut parts, _) = resp.into_parts();
    let fresh = bad(status, kind, message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (_, body) = fresh.into_parts();
    Response::from_parts(parts, body)
}

#[derive(Serialize)]
struct CreatedBody<'a> {
    status: bool,
    message: &'a str,
    qr: String,
    qr_stand: String,
    checkout: String,
    md5: String,
    tran: &'a str,
}

/// Most characters in `username`.
const MAX_USERNAME_CHARS: usize = 64;

/// Most payloads tried for one create when their `tran`s are taken (each a
/// millisecond later in tag 99).
const CREATE_TRIES: u64 = 16;

async fn create(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = match params::Params::parse(query.as_deref(), None, b"") {
        Ok(p) => p,
        Err(e) => return param_error(&e),
    };
    let key = match idempotency::key_of(&headers) {
        Ok(k) => k,
        Err(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                &e.to_string(),
            )
        }
    };
    let get = |k: &str| p.get(k).unwrap_or("");
    let currency = match p.get("currency") {
        None => Currency::Usd,
        Some(c) => match Currency::parse(c) {
            Ok(c) => c,
            Err(e) => return khqr_error(&e),
        },
    };
    let amount_text = get("amount").trim();
    if amount_text.is_empty() {
        return library_code(ErrorCode::TransactionAmountInvalid, "amount is required");
    }
    match Amount::parse(amount_text, currency) {
        Err(e) => return khqr_error(&e),
        Ok(a) if a.is_zero() => {
            return library_code(
                ErrorCode::TransactionAmountInvalid,
                "amount must be greater than zero (a static KHQR cannot be checked)",
            )
        }
        Ok(_) => {}
    }
    for name in ["merchantname", "username"] {
        if let Err(e) = params::check_display_text(name, get(name)) {
            return param_error(&e);
        }
    }
    let username = match p.get("username").map(str::trim) {
        None | Some("") => "unknown_user",
        Some(u) if u.chars().count() > MAX_USERNAME_CHARS => {
            return bad(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                &format!("username is longer than {MAX_USERNAME_CHARS} characters"),
            )
        }
        Some(u) => u,
    };
    let success_url = match p.get("success_url").map(str::trim) {
        None | Some("") => None,
        Some(u) if checkout::success_url_allowed(u, &state.success_url_allow) => Some(u.to_owned()),
        Some(_) => {
            return bad(
                StatusCode::BAD_REQUEST,
                "invalid_success_url",
                "success_url is not on this server's allow-list",
            )
        }
    };
    let callback_url = match p.get("callback_url").map(str::trim) {
        None | Some("") => None,
        Some(_) if state.webhook_secret.is_none() => {
            return bad(
                StatusCode::BAD_REQUEST,
                "webhooks_disabled",
                "this server has no webhook secret; callback_url is not accepted",
            )
        }
        Some(u) => match webhook::target::check_url(u, &state.targets) {
            Ok(url) => Some(url.to_string()),
            Err(e) => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "invalid_callback_url",
                    &format!("callback_url {e}"),
                )
            }
        },
    };
    let bakong_id = get("bakongid");
    let idem = key.map(|k| {
        let fields = [
            Some(amount_text),
            Some(currency.alpha()),
            Some(bakong_id.trim()),
            Some(get("merchantname")),
            Some(username),
            success_url.as_deref(),
            callback_url.as_deref(),
        ];
        // The seam for merchant keys: a keyed request's scope is its merchant.
        let scope = idempotency::scope(&client, None);
        idempotency::Idempotency::new(&scope, k, idempotency::fingerprint(&fields))
    });
    let now = now_ms();
    for attempt in 0..CREATE_TRIES {
        // Two creates of one payload in one millisecond would share its MD5
        // and `tran`: the store refuses a taken `tran`, and the next try
        // moves tag 99's timestamp on by a millisecond.
        let at = now + attempt;
        let khqr = match KhqrRequest::individual(bakong_id, get("merchantname"))
            .currency(currency)
            .amount(amount_text)
            .expires_in_ms(state.qr_ttl_ms)
            .generate(at)
        {
            Ok(k) => k,
            Err(e) => return khqr_error(&e),
        };
        let tran = khqr.tran_id();
        let md5 = khqr.md5().to_string();
        let record = Record {
            md5: md5.clone(),
            bakong_id: bakong_id.trim().to_owned(),
            username: username.to_owned(),
            payload: khqr.into_string(),
            expires_ms: at.saturating_add(state.qr_ttl_ms),
            success_url: success_url.clone(),
            callback_url: callback_url.clone(),
        };
        let created = state
            .store
            .create_keyed(&client, tran.as_str(), &record, now, idem.as_ref())
            .await;
        match created {
            Ok(Created::Stored) => {
                if record.callback_url.is_some() {
                    // Listed in the store so that any instance (or this one after
                    // a restart) delivers it; watched here even if nobody opens the page.
                    let until = record
                        .expires_ms
                        .saturating_add(state.grace_ms)
                        .saturating_add(state.webhook_retry_ms);
                    if let Err(e) = state.store.watch_add(tran.as_str(), until).await {
                        return store_failed(&e);
                    }
                    drop(checkout::subscribe(&state, tran.as_str(), &record));
                }
                return created_body(&state, tran.as_str(), md5);
            }
            Ok(Created::Replayed { tran, md5 }) => return created_body(&state, &tran, md5),
            Ok(Created::KeyReused) => {
                return bad(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with other parameters",
                )
            }
            Ok(Created::Collision) => {}
            Ok(Created::Limited(l)) => return rate_limited(l, "create"),
            Err(e) => return store_failed(&e),
        }
    }
    bad(
        StatusCode::CONFLICT,
        "tran_collision",
        "transaction id collision; create again",
    )
}

fn created_body(state: &AppState, tran: &str, md5: String) -> Response {
    let body = CreatedBody {
        status: true,
        message: "success",
        qr: format!("{}/khqr/qr/{tran}", state.public_url),
        qr_stand: format!("{}/khqr/qr/stand/{tran}", state.public_url),
        checkout: format!("{}/khqr/pay/{tran}", state.public_url),
        md5,
        tran,
    };
    json_response(
        StatusCode::OK,
        serde_json::to_string(&body).unwrap_or_default(),
    )
}

/// Which image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Qr,
    Stand,
}

fn not_found_tran() -> Response {
    bad(StatusCode::NOT_FOUND, "not_found", "no KHQR with this tran")
}

async fn image(
    state: &AppState,
    client: &str,
    tran: &str,
    headers: &HeaderMap,
    kind: Kind,
) -> Response {
    let route = if kind == Kind::Qr { "qr" } else { "stand" };
    let record = match state.store.fetch(client, None, tran, now_ms()).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return not_found_tran(),
        Ok(Err(l)) => return rate_limited(l, route),
        Err(e) => return store_failed(&e),
    };
    let etag = format!(
        "\"{}-{}\"",
        record.md5,
        if kind == Kind::Qr { "q" } else { "s" }
    );
    let remaining_s = record.expires_ms.saturating_sub(now_ms()) / 1000;
    let cache_control = format!("public, max-age={remaining_s}");
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    let meta = |mut r: Response| {
        if let (Ok(e), Ok(c)) = (
            HeaderValue::from_str(&etag),
            HeaderValue::from_str(&cache_control),
        ) {
            r.headers_mut().insert(header::ETAG, e);
            r.headers_mut().insert(header::CACHE_CONTROL, c);
        }
        r
    };
    if fresh {
        metrics::counter!("khqr_image_cache_total", "result" => "not_modified").increment(1);
        return meta(StatusCode::NOT_MODIFIED.into_response());
    }
    let key = (record.md5.clone(), kind);
    if let Some(png) = state.images.get(&key).await {
        metrics::counter!("khqr_image_cache_total", "result" => "hit").increment(1);
        return meta(png_response(png));
    }
    metrics::counter!("khqr_image_cache_total", "result" => "miss").increment(1);
    let payload = record.payload;
    let drawn = state
        .images
        .try_get_with(key, async {
            let wait = Duration::from_secs(5);
            let Ok(Ok(permit)) = tokio::time::timeout(wait, state.renders.acquire()).await else {
                return Err(RenderFail::Busy);
            };
            let out = state
                .pool
                .run(move || match kind {
                    Kind::Qr => qr_png(&payload, &QrOptions::default()),
                    Kind::Stand => card_png(&payload, &CardOptions::default()),
                })
                .await;
            drop(permit);
            match out {
                Ok(Ok(png)) => Ok(Bytes::from(png)),
                _ => Err(RenderFail::Failed),
            }
        })
        .await;
    match drawn {
        Ok(png) => meta(png_response(png)),
        Err(e) if *e == RenderFail::Busy => with_retry_after(
            bad(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many images being drawn; retry",
            ),
            1000,
        ),
        Err(_) => bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            "render_failed",
            "the image could not be drawn",
        ),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RenderFail {
    Busy,
    Failed,
}

fn png_response(bytes: Bytes) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
        bytes,
    )
        .into_response()
}

async fn qr(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Path(tran): Path<String>,
    headers: HeaderMap,
) -> Response {
    image(&state, &client, &tran, &headers, Kind::Qr).await
}

async fn stand(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Path(tran): Path<String>,
    headers: HeaderMap,
) -> Response {
    image(&state, &client, &tran, &headers, Kind::Stand).await
}

/// The parameters of a status check and the `bakongid` every check requires.
fn check_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(params::Params, String), Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let p = params::Params::parse(query, ct, body).map_err(|e| param_error(&e))?;
    let id = match p.get("bakongid").map(str::trim) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            return Err(library_code(
                ErrorCode::BakongAccountIdRequired,
                "bakongid is required (query or body)",
            ))
        }
    };
    Ok((p, id))
}

fn not_found_check() -> Response {
    bad(
        StatusCode::NOT_FOUND,
        "not_found",
        "no KHQR created here with this id for this Bakong account",
    )
}

async fn check_tran(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Path(tran): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, id) = match check_params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let record = match state.store.fetch(&client, Some(&id), &tran, now_ms()).await {
        Ok(Ok(Some(r))) if state.open_relay || r.bakong_id == id => r,
        Ok(Ok(_)) => return not_found_check(),
        Ok(Err(l)) => return rate_limited(l, "check"),
        Err(e) => return store_failed(&e),
    };
    let Some(md5) = Md5::from_hex(&record.md5) else {
        return not_found_check();
    };
    status_response(&state, &md5, Some(&record)).await
}

async fn check_by_md5(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, id) = match check_params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(md5) = p.get("md5").and_then(|m| Md5::from_hex(m.trim())) else {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "md5 is required: 32 hex digits",
        );
    };
    let tran = md5.tran_id();
    let record = match state
        .store
        .fetch(&client, Some(&id), tran.as_str(), now_ms())
        .await
    {
        Ok(Ok(r)) => r.filter(|r| r.md5 == md5.to_string() && r.bakong_id == id),
        Ok(Err(l)) => return rate_limited(l, "check_by_md5"),
        Err(e) => return store_failed(&e),
    };
    if record.is_none() && !state.open_relay {
        return not_found_check();
    }
    status_response(&state, &md5, record.as_ref()).await
}

/// Why no status could be given.
#[derive(Debug)]
enum UpstreamFail {
    Check(CheckError<ReqwestError>),
    Busy,
}

async fn status_of(
    state: &AppState,
    md5: &Md5,
    record: Option<&Record>,
) -> Result<TransactionStatus, Arc<UpstreamFail>> {
    let key = md5.to_string();
    if let Some(hit) = state.statuses.get(&key).await {
        metrics::counter!("khqr_status_cache_total", "result" => "hit").increment(1);
        return Ok(hit.0.clone());
    }
    metrics::counter!("khqr_status_cache_total", "result" => "miss").increment(1);
    let keep_ms = record.map_or(state.qr_ttl_ms, |r| {
        r.expires_ms
            .saturating_add(state.grace_ms)
            .saturating_sub(now_ms())
            .max(1000)
    });
    let entry = state
        .statuses
        .try_get_with(key, async {
            let wait = Duration::from_millis(state.upstream_timeout_ms);
            let Ok(Ok(_permit)) = tokio::time::timeout(wait, state.upstream.acquire()).await else {
                metrics::counter!("khqr_upstream_errors_total", "kind" => "busy").increment(1);
                return Err(UpstreamFail::Busy);
            };
            let api = state
                .api
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            metrics::counter!("khqr_upstream_calls_total").increment(1);
            match check_md5_async(&state.transport, &api, md5).await {
                Ok(status) => {
                    let ttl = match status {
                        TransactionStatus::Pending => state.pending_cache_ms.max(1),
                        _ => keep_ms,
                    };
                    Ok(Arc::new((status, ttl)))
                }
                Err(e) => {
                    metrics::counter!("khqr_upstream_errors_total", "kind" => upstream_kind(&e).1)
                        .increment(1);
                    Err(UpstreamFail::Check(e))
                }
            }
        })
        .await?;
    Ok(entry.0.clone())
}

#[derive(Serialize)]
struct UpstreamBody<'a> {
    #[serde(rename = "responseCode")]
    response_code: u8,
    #[serde(rename = "responseMessage")]
    response_message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: Option<i64>,
    error: &'static str,
    data: Option<()>,
    #[serde(rename = "bakongMessage", skip_serializing_if = "Option::is_none")]
    bakong_message: Option<&'a str>,
}

/// HTTP status, kind and our message for an upstream failure.
fn upstream_kind(e: &CheckError<ReqwestError>) -> (StatusCode, &'static str, String) {
    match e {
        CheckError::Request(RequestError::MissingToken) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no_token",
            "this server has no Bakong token; status checks are unavailable".into(),
        ),
        CheckError::Request(_) | CheckError::Khqr(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the status request could not be built".into(),
        ),
        CheckError::Transport(ReqwestError::Timeout { timeout_ms }) => (
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!("Bakong did not answer within {timeout_ms} ms"),
        ),
        CheckError::Transport(ReqwestError::BodyTooLarge { .. }) => (
            StatusCode::BAD_GATEWAY,
            "malformed",
            "Bakong's answer was too large".into(),
        ),
        CheckError::Transport(_) => (
            StatusCode::BAD_GATEWAY,
            "transport",
            "could not reach Bakong".into(),
        ),
        CheckError::Response(r) => match r {
            ResponseError::Unauthorized { .. } => (
                StatusCode::BAD_GATEWAY,
                "unauthorized",
                "Bakong refused this server's token (missing, invalid or expired); the operator must renew it".into(),
            ),
            ResponseError::Forbidden => (
                StatusCode::BAD_GATEWAY,
                "forbidden",
                "Bakong refused this server's address (HTTP 403, often a geo-block)".into(),
            ),
            ResponseError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Bakong is rate-limiting this server".into(),
            ),
            ResponseError::ServerError { status } => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                format!("Bakong failed (HTTP {status})"),
            ),
            ResponseError::UnexpectedStatus { status } => (
                StatusCode::BAD_GATEWAY,
                "unexpected_status",
                format!("Bakong answered HTTP {status}, which is not a status answer"),
            ),
            ResponseError::Api(_) => (
                StatusCode::BAD_GATEWAY,
                "api_error",
                "Bakong refused the status request".into(),
            ),
            _ => (
                StatusCode::BAD_GATEWAY,
                "malformed",
                "Bakong's answer was not readable".into(),
            ),
        },
        // A kind a later library version adds.
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the status check failed".into(),
        ),
    }
}

async fn status_response(state: &AppState, md5: &Md5, record: Option<&Record>) -> Response {
    let fail = match status_of(state, md5, record).await {
        Ok(status) => {
            return json_response(
                StatusCode::OK,
                seed_json(&status, record.map(|r| r.username.as_str())),
            )
        }
        Err(e) => e,
    };
    let (status, kind, message, code, bakong_message, retry) = match &*fail {
        UpstreamFail::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_busy",
            "too many status checks in flight; retry".to_owned(),
            None,
            None,
            Some(1),
        ),
        UpstreamFail::Check(e) => {
            let (status, kind, message) = upstream_kind(e);
            let (code, bakong, retry) = match e {
                CheckError::Response(ResponseError::Unauthorized { .. }) => (Some(6), None, None),
                CheckError::Response(ResponseError::Api(api)) => {
                    (api.error_code, Some(api.message.as_str()), None)
                }
                CheckError::Response(ResponseError::RateLimited { retry_after }) => {
                    let secs = match retry_after {
                        Some(RetryAfter::Seconds(s)) => *s,
                        _ => 1,
                    };
                    (None, None, Some(secs))
                }
                _ => (None, None, None),
            };
            (status, kind, message, code, bakong, retry)
        }
    };
    let body = serde_json::to_string(&UpstreamBody {
        response_code: 1,
        response_message: &message,
        error_code: code,
        error: kind,
        data: None,
        bakong_message,
    })
    .unwrap_or_default();
    let resp = json_response(status, body);
    match retry {
        Some(s) => with_retry_after(resp, s.saturating_mul(1000)),
        None => resp,
    }
}

async fn healthz() -> Response {
    json_response(
        StatusCode::OK,
        r#"{"status":true,"message":"alive"}"#.into(),
    )
}

#[derive(Serialize)]
struct Ready<'a> {
    status: bool,
    store: &'a str,
    token: &'a str,
    #[serde(rename = "tokenExpiresMs")]
    token_expires_ms: Option<u64>,
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let store_ok = state.store.ping().await.is_ok();
    let api = state
        .api
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let expires = api.token().and_then(|t| t.expires_at_ms().ok());
    let token = match (api.token(), expires) {
        (None, _) => "missing",
        (Some(_), Some(exp)) if exp <= now_ms() => "expired",
        (Some(_), Some(_)) => "ok",
        (Some(_), None) => "ok_unknown_expiry",
    };
    let ok = store_ok && token.starts_with("ok");
    let body = serde_json::to_string(&Ready {
        status: ok,
        store: if store_ok { "ok" } else { "unreachable" },
        token,
        token_expires_ms: expires,
    })
    .unwrap_or_default();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body)
}

async fn metrics_page(State(state): State<Arc<AppState>>) -> Response {
    let Some(handle) = metrics_handle() else {
        return bad(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "another metrics recorder is installed",
        );
    };
    if let Ok(n) = state.store.size().await {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("khqr_store_keys", "store" => state.store.kind()).set(n as f64);
    }
    #[allow(clippy::cast_precision_loss)]
    {
        metrics::gauge!("khqr_image_cache_bytes").set(state.images.weighted_size() as f64);
        metrics::gauge!("khqr_status_cache_entries").set(state.statuses.entry_count() as f64);
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        Body::from(handle.render()),
    )
        .into_response()
}

#[allow(dead_code)]
fn _assert_send(m: &Method) -> &Method {
    m
}
