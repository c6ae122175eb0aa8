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
//! | `GET /healthz`, `GET /readyz`, `GET /metrics` | liveness, readiness (store reachable, token present and unexpired), Prometheus metrics; on their own listener with [`Config::admin_listen`] ([`App::admin_router`]) |
//!
//! * **Merchants** (see [`merchant`]): the operator adds them with
//!   `khqr-server merchant add`; a request with `Authorization: Bearer <key>`
//!   acts for its merchant (only its `bakongid`s; may set `callback_url`,
//!   events signed with the merchant's own secrets; its own rate limit). An
//!   anonymous request gets no webhooks and the per-client limits, and may
//!   not create for a `bakongid` a merchant holds; [`Config::require_key`]
//!   turns anonymous use off.
//! * **State** lives behind [`store::Store`]: in one SQLite file
//!   ([`store::SqliteStore`], the default: kept over restarts and crashes), in
//!   Redis ([`store::RedisStore`], which several instances share), or in memory
//!   ([`store::MemoryStore`], tests and throwaway runs).
//! * **Checks** answer only for QRs this service created, asked with the
//!   `bakongid` that created them (404 otherwise), unless
//!   [`Config::open_relay`]. Statuses are cached (paid: for the QR's life;
//!   pending: [`Config::pending_cache_ms`]) and concurrent checks of one MD5 make
//!   one upstream call, through [`bakong_khqr::status::ReqwestTransport`] (no
//!   redirects, timeout, body cap) with at most [`Config::upstream_concurrency`]
//!   calls at once, and within the Bakong call budget
//!   ([`upstream::budget`]: [`Config::bakong_calls_per_sec`] for the whole
//!   service, checks before watchers before deep links).
//! * **Images** are drawn on [`Config::render_threads`] dedicated threads at a
//!   lower CPU priority (never on the async workers), once per QR, and cached (bounded by bytes), with `ETag` and a
//!   `Cache-Control` that follows the QR's remaining life.
//! * **Creates**: two never share a `tran`; a create may carry
//!   `Idempotency-Key` (same key and parameters: the first answer again;
//!   other parameters: 409), see [`idempotency`]. A `callback_url` must point
//!   at a globally reachable address, checked again at each delivery through
//!   a resolver that connects only to what it checked, see [`webhook::target`].
//! * **Parameters**: see [`params`] (one rule for repeats: refused; invalid
//!   UTF-8, control and bidi characters refused).
//! * **Errors** are JSON (see [`error`]). Bad input: `{"status":false,"message","errorCode","error"}`
//!   where `errorCode`/`error` are the library's code and name for KHQR
//!   validation errors, and `errorCode` 60 (15 for a server fault) with a
//!   lowercase `error` kind (`not_found`, `rate_limited`, `duplicate_parameter`,
//!   `payload_too_large`, …) otherwise. Upstream failures:
//!   `{"responseCode":1,"responseMessage","errorCode","error","data":null}`, plus
//!   `bakongMessage` holding Bakong's own message when Bakong sent one.
//!
//! # Layout
//!
//! Each module imports only modules below it in this list (no cycles), and
//! nothing from the crate root.
//!
//! | module | what lives there |
//! |---|---|
//! | `main.rs` | the binary: parses [`Config`], picks the store, calls [`app`] and [`serve()`] |
//! | [`http`] | `router()`, the route table (every route in one place); `guard` (middleware: client key, size limits, timeout, JSON errors, access log, metrics); `auth` (the caller, by its API key: 401s, `--require-key`); one module per resource: `create`, `image`, `check`, `checkout` (page, events, assets), `events` (a merchant's events: list, one, replay), `admin` (healthz, readyz, metrics) |
//! | `state.rs` | `AppState`: `Arc<Config>` plus what is not configuration (store, Bakong, caches, render pool, watchers, webhooks) |
//! | `serve.rs` | hyper connection serving: head limits, graceful stop; `serve/conns.rs` (connection caps per client group, the biggest holder gives way when full), `serve/write_timeout.rs` (a client that does not read is reset) |
//! | [`recon`] | the reconciliation job: under a store lease, re-checks merchant QRs past expiry in lists of 50 (lowest budget priority): expired or paid late |
//! | [`watch`] | payment watchers: poll Bakong for watched QRs, publish to viewers and, once paid, to the payment record ([`lifecycle::seen`]) |
//! | [`events`] | makes, files and hands out events (`khqr.created`, `khqr.paid`, `khqr.expired`, `khqr.paid_late`): the outbox, then webhook delivery; replays |
//! | [`token`] | the Bakong token's lifecycle: renewal under a store lease, the shared token, alerts (pure decisions, clock as an argument) |
//! | [`webhook`] | the delivery worker, per event id (sign, send, retry with backoff, lease, every attempt logged, owed events taken up from the outbox); [`webhook::target`]: where a webhook may go (IANA special-purpose registries, ports, the checking resolver) |
//! | [`error`] | `ApiError`, the one JSON error body (also for hyper's own errors and the fallbacks) |
//! | [`upstream`] | the Bakong client, token reloads, status cache, coalescing, concurrency; `upstream/budget.rs`: the call budget (one rate of Bakong calls for all instances, by priority) and the watchers' pace |
//! | [`config`] | [`Config`]: the one `clap` struct; [`store::Limits`] and [`ServeConfig`] derive from it |
//! | [`merchant`] | merchants, API keys (SHA-256 stored), webhook secrets and their rotation, the `merchant` subcommands, the [`merchant::MerchantStore`] trait and the memory table |
//! | [`local_limits`] | limits kept in this process: event-stream caps, the rate buckets of the routes the store does not limit (assets, unknown paths, admin routes) |
//! | [`store`] | the [`store::Store`] trait, [`store::AnyStore`]; `store/memory.rs`, `store/sqlite.rs`, `store/redis.rs` (one backend per file), `store/lua/*.lua`; `store/coord.rs`: the budget bucket's arithmetic, shared by every backend; `store/buckets.rs`: the SQLite store's in-process rate limits |
//! | [`client_ip`] | who the client is: trusted proxies, `X-Forwarded-For`/`Forwarded` read right to left, the client group (IPv4 address, IPv6 /64) every per-client limit counts |
//! | [`lifecycle`] | a merchant QR's moves (paid, expired, paid late) by compare-and-set, each emitting its event once; test QRs' status from the record |
//! | [`ledger`] | the payment record's types and traits: [`ledger::EntryLog`] (each merchant QR and its final status), [`ledger::EventLog`] (events, attempts, outbox); backends in `store/entries_*.rs`, `store/events_*.rs` |
//! | [`idempotency`] | `Idempotency-Key`: the key's rules, its caller's scope, the parameters' fingerprint |
//! | [`params`], [`seed`], `render_pool.rs`, `time.rs` | parameters, seed-compatible status JSON, drawing threads, the clock |

pub mod client_ip;
pub mod config;
pub mod error;
pub mod events;
pub mod http;
pub mod idempotency;
pub mod ledger;
pub mod lifecycle;
pub mod local_limits;
pub mod merchant;
pub mod params;
pub mod recon;
mod render_pool;
pub mod seed;
mod serve;
mod state;
pub mod store;
mod time;
pub mod token;
pub mod upstream;
pub mod watch;
pub mod webhook;

use std::sync::Arc;

use axum::Router;

pub use config::{Config, ConfigError, LogFormat, Secret};
pub use http::checkout;
pub use seed::{amount_with_currency_decimals, seed_json};
pub use serve::{serve, PeerAddr, ServeConfig};
use state::AppState;
use store::AnyStore;

/// A running application: its router, ready for [`serve()`].
pub struct App {
    router: Router,
    state: Arc<AppState>,
}

impl App {
    /// The router (every route, its limits and its JSON errors).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The admin routes alone (`/healthz`, `/readyz`, `/metrics`), to serve
    /// on [`Config::admin_listen`] with [`Config::admin_serve`].
    pub fn admin_router(&self) -> Router {
        http::admin_router(self.state.clone())
    }

    /// The store's kind: `"memory"`, `"redis"` or `"sqlite"`.
    #[must_use]
    pub fn store_kind(&self) -> &'static str {
        self.state.store.kind()
    }

    /// The store the application runs on (to manage the merchants of a
    /// memory store, which no other process can reach).
    #[must_use]
    pub fn store(&self) -> &AnyStore {
        &self.state.store
    }

    /// Runs one reconciliation cycle at `now_ms` (ms since the Unix epoch)
    /// now, as the job does every [`Config::reconcile_every_secs`] (under the
    /// same store lease: another instance holding it makes this a no-op).
    ///
    /// # Errors
    /// [`store::StoreError`] if the payment record cannot be read or written.
    pub async fn reconcile(&self, now_ms: u64) -> Result<recon::Cycle, store::StoreError> {
        self.state.recon.cycle(now_ms).await
    }

    /// The event log's writer (to emit events as the payment lifecycle does).
    #[must_use]
    pub fn events(&self) -> &events::Events {
        &self.state.events
    }
}

/// Builds the application on `store`. Call it inside a tokio runtime: it
/// starts background tasks (rate-limit pruning, re-reading
/// [`Config::token_file`], resuming owed webhooks) that end when the
/// application is dropped.
///
/// # Errors
/// [`ConfigError`] for an unusable Bakong base URL, token or token file, or
/// client IP header, or if the HTTP client cannot be built.
pub fn app(config: &Config, store: AnyStore) -> Result<App, ConfigError> {
    // Before the background tasks start, so that their first metrics count.
    http::admin::install_metrics();
    let state = AppState::start(Arc::new(config.clone()), store)?;
    let router = http::router(state.clone());
    Ok(App { router, state })
}
