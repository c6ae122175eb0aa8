//! Bakong: the API client ([`Api`] and [`ReqwestTransport`]: no redirects,
//! timeout, body cap), the token (re-read from its file, or renewed and shared
//! through the store: see [`crate::token`]), the status cache, coalescing of
//! concurrent checks of one MD5, the bound on calls in flight, and the call
//! budget ([`budget`]): every call takes a token of the service's rate of
//! calls first, by priority (check, watch, deep link).

pub mod budget;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bakong_khqr::status::{
    check_md5_async, parse_deeplink, parse_transaction_list, Api, AsyncStatusChecker, CheckError,
    ListEntry, RequestError, ReqwestError, ReqwestTransport, ResponseError, Token,
    TransactionStatus, TransportConfig, MAX_MD5_LIST_LEN,
};
use bakong_khqr::Md5;
use tokio::sync::Semaphore;

use crate::config::{Config, ConfigError};
use crate::store::coord::Rate;
use crate::store::{AnyStore, Record, Store};
use crate::time::now_ms;
use budget::{Budget, Priority, Refused};

/// A cached status and how long it stays, in ms.
type StatusEntry = Arc<(TransactionStatus, u64)>;

struct StatusLife;

impl moka::Expiry<String, StatusEntry> for StatusLife {
    fn expire_after_create(&self, _: &String, v: &StatusEntry, _: Instant) -> Option<Duration> {
        Some(Duration::from_millis(v.1))
    }
}

/// Why no status could be given.
#[derive(Debug)]
pub enum UpstreamFail {
    /// Bakong failed, or could not be asked.
    Check(CheckError<ReqwestError>),
    /// Too many calls in flight for the whole upstream timeout.
    Busy,
    /// A watcher's or a page's turn, skipped: the call budget keeps its
    /// tokens for checks.
    Skipped,
    /// A check waited for the call budget and got no token; retry after
    /// this many ms.
    OverBudget(u64),
}

/// The tokens this instance knows: the operator's (`BAKONG_TOKEN` or the
/// token file) and the last renewed one (by any instance, through the store).
#[derive(Default)]
struct Tokens {
    configured: Option<Token>,
    /// `"env"` or `"file"`.
    configured_from: &'static str,
    renewed: Option<Token>,
}

/// The key of the renewed Bakong token among the store's shared values
/// ([`Store::shared_put`]), kept until the token expires.
pub const SHARED_TOKEN_KEY: &str = "bakong-token";

/// Which token to use at `now_ms`, given the expiries (ms since the Unix
/// epoch; `None`: not readable) of the operator's token (`None`: none given)
/// and of the renewed one: `true` for the renewed one. The renewed token is
/// used while it is unexpired and expires no earlier than the operator's (an
/// unreadable expiry counts as 0), so a newer token written to the token file
/// wins, and when the renewed one runs out the operator's is used again.
#[must_use]
pub fn prefer_renewed(now_ms: u64, configured: Option<Option<u64>>, renewed: Option<u64>) -> bool {
    let Some(renewed) = renewed.filter(|&exp| exp > now_ms) else {
        return false;
    };
    configured.is_none_or(|c| renewed >= c.unwrap_or(0))
}

/// The Bakong side of the server, shared by handlers, watchers and webhooks.
pub struct Upstream {
    config: Arc<Config>,
    api: RwLock<Arc<Api>>,
    tokens: Mutex<Tokens>,
    renewal: tokio::sync::RwLock<()>,
    /// The HTTP client (also used for webhooks).
    pub transport: ReqwestTransport,
    slots: Semaphore,
    statuses: moka::future::Cache<String, StatusEntry>,
    /// Deep links known here (none kept: asked again of the store).
    deeplinks: moka::future::Cache<String, String>,
    /// The call budget's bucket, leases and shared answers (the renewed
    /// token among them) live here.
    store: Arc<AnyStore>,
    budget: Budget,
    /// This instance's name in leases.
    instance: String,
}

fn read_token(text: &str) -> Result<Token, ConfigError> {
    Token::new(text.trim()).map_err(|e| ConfigError(format!("Bakong token: {e}")))
}

impl Upstream {
    /// The client for `config`'s Bakong URL and token (or token file), its
    /// call budget kept in `store`; a renewed token is read from `store`
    /// ([`Store::shared_get`] of [`SHARED_TOKEN_KEY`]).
    ///
    /// # Errors
    /// [`ConfigError`] for an unusable base URL, token or token file, or an
    /// HTTP client that cannot be built.
    pub fn new(config: Arc<Config>, store: Arc<AnyStore>) -> Result<Self, ConfigError> {
        let mut api = Api::new(&config.bakong_base_url)
            .map_err(|e| ConfigError(format!("Bakong base URL: {e}")))?;
        let mut tokens = Tokens::default();
        if let Some(t) = &config.token {
            tokens.configured = Some(read_token(t.expose())?);
            tokens.configured_from = "env";
        }
        if let Some(path) = &config.token_file {
            let text = std::fs::read_to_string(path).map_err(|_| {
                ConfigError(format!("cannot read the token file {}", path.display()))
            })?;
            tokens.configured = Some(read_token(&text)?);
            tokens.configured_from = "file";
        }
        if let Some(t) = &tokens.configured {
            api.set_token(t.clone());
        }
        let transport = ReqwestTransport::new(
            TransportConfig::default()
                .timeout_ms(config.upstream_timeout_ms)
                .max_body_bytes(config.upstream_max_body_bytes),
        )
        .map_err(|e| ConfigError(format!("HTTP client: {e}")))?;
        Ok(Upstream {
            api: RwLock::new(Arc::new(api)),
            tokens: Mutex::new(tokens),
            renewal: tokio::sync::RwLock::new(()),
            transport,
            slots: Semaphore::new(config.upstream_concurrency),
            statuses: moka::future::Cache::builder()
                .max_capacity(200_000)
                .expire_after(StatusLife)
                .build(),
            deeplinks: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(config.qr_ttl_ms().max(1)))
                .build(),
            store,
            budget: Budget {
                rate: Rate {
                    per_sec: config.bakong_calls_per_sec,
                    burst: config.bakong_burst,
                },
                check_wait_ms: budget::CHECK_WAIT_MS,
            },
            instance: format!("{:016x}", rand::random::<u64>()),
            config,
        })
    }

    /// The API client as it is now (its token changes when the file does).
    pub fn api(&self) -> Arc<Api> {
        self.api
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// This instance's name in the store's leases (random, per process).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Entries in the status cache.
    pub fn cached_statuses(&self) -> u64 {
        self.statuses.entry_count()
    }

    /// The status of `md5` asked with priority `p`: from the cache (paid: for
    /// the QR's life; pending: [`Config::pending_cache_ms`]), else one call to
    /// Bakong shared by every concurrent caller, within the call budget and
    /// [`Config::upstream_concurrency`] calls in flight. A check that joined a
    /// watcher's skipped turn asks again, once, at its own priority. A test
    /// QR's status ([`Record::test`]) comes from the payment record, never
    /// from Bakong ([`crate::lifecycle::test_status`]).
    pub async fn status_of(
        &self,
        md5: &Md5,
        record: Option<&Record>,
        p: Priority,
    ) -> Result<TransactionStatus, Arc<UpstreamFail>> {
        if let Some(r) = record.filter(|r| r.test) {
            return Ok(crate::lifecycle::test_status(&self.store, &r.md5).await);
        }
        match self.status_once(md5, record, p).await {
            Err(e) if p.waits() && matches!(*e, UpstreamFail::Skipped) => {
                self.status_once(md5, record, p).await
            }
            other => other,
        }
    }

    async fn status_once(
        &self,
        md5: &Md5,
        record: Option<&Record>,
        p: Priority,
    ) -> Result<TransactionStatus, Arc<UpstreamFail>> {
        let key = md5.to_string();
        if let Some(hit) = self.statuses.get(&key).await {
            metrics::counter!("khqr_status_cache_total", "result" => "hit").increment(1);
            return Ok(hit.0.clone());
        }
        metrics::counter!("khqr_status_cache_total", "result" => "miss").increment(1);
        let keep_ms = record.map_or(self.config.qr_ttl_ms(), |r| {
            r.expires_ms
                .saturating_add(self.config.grace_ms())
                .saturating_sub(now_ms())
                .max(1000)
        });
        let entry = self
            .statuses
            .try_get_with(key, self.ask(md5, keep_ms, p))
            .await?;
        Ok(entry.0.clone())
    }

    /// A token of the call budget for a call of priority `p`.
    async fn token(&self, p: Priority) -> Result<(), UpstreamFail> {
        match self.budget.take(&*self.store, p, now_ms).await {
            Ok(()) => Ok(()),
            Err(Refused::Skipped) => Err(UpstreamFail::Skipped),
            Err(Refused::Busy { retry_after_ms }) => Err(UpstreamFail::OverBudget(retry_after_ms)),
            Err(Refused::Store(e)) => {
                tracing::warn!(detail = e.detail(), "call budget: store unavailable");
                Err(UpstreamFail::OverBudget(1_000))
            }
        }
    }

    /// One call to Bakong for `md5`, with a token and in a slot; the answer
    /// and its cache life.
    async fn ask(&self, md5: &Md5, keep_ms: u64, p: Priority) -> Result<StatusEntry, UpstreamFail> {
        self.token(p).await?;
        let wait = Duration::from_millis(self.config.upstream_timeout_ms);
        let Ok(Ok(_permit)) = tokio::time::timeout(wait, self.slots.acquire()).await else {
            metrics::counter!("khqr_upstream_errors_total", "kind" => "busy").increment(1);
            return Err(UpstreamFail::Busy);
        };
        let api = self.api();
        let mut result = self.check_once(&api, md5, p).await;
        if matches!(
            result,
            Err(CheckError::Response(ResponseError::Unauthorized { .. }))
        ) && self.newer_token(&api, wait).await
            && self.token(p).await.is_ok()
        {
            // Renewed meanwhile (Bakong may have retired the old token): ask
            // again once, with the new one.
            result = self.check_once(&self.api(), md5, p).await;
        }
        match result {
            Ok(status) => {
                let ttl = match status {
                    TransactionStatus::Pending => self.config.pending_cache_ms.max(1),
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
    }

    async fn check_once(
        &self,
        api: &Api,
        md5: &Md5,
        p: Priority,
    ) -> Result<TransactionStatus, CheckError<ReqwestError>> {
        metrics::counter!("khqr_upstream_calls_total").increment(1);
        metrics::counter!("khqr_bakong_calls_total", "kind" => p.label()).increment(1);
        check_md5_async(&self.transport, api, md5).await
    }

    /// One `check_transaction_by_md5_list` call for `md5s` (at most
    /// [`MAX_MD5_LIST_LEN`], 50; more are refused before any call) at
    /// [`Priority::Reconcile`]: a token of the call budget or none (skipped),
    /// a slot among [`Config::upstream_concurrency`] (waited for at most the
    /// upstream timeout), this client, token and timeout. The request is the
    /// library's ([`Api::check_transaction_by_md5_list`]), and so is the
    /// reading of the answer ([`parse_transaction_list`]): one item per MD5
    /// Bakong echoed.
    ///
    /// # Errors
    /// [`UpstreamFail::Skipped`] (no token for the lowest priority now),
    /// [`UpstreamFail::OverBudget`] (the budget's store failed),
    /// [`UpstreamFail::Busy`] (no slot in time), [`UpstreamFail::Check`]: the
    /// request could not be built (no token; more than 50 MD5s), the transport
    /// failed, or Bakong's answer was an error or unreadable.
    pub async fn check_md5_list(&self, md5s: &[Md5]) -> Result<Vec<ListEntry>, UpstreamFail> {
        if md5s.is_empty() {
            return Ok(Vec::new());
        }
        if md5s.len() > MAX_MD5_LIST_LEN {
            return Err(UpstreamFail::Check(CheckError::Request(
                RequestError::InvalidArgument {
                    what: "md5s",
                    why: "at most 50 in one list call",
                },
            )));
        }
        let mut requests = self
            .api()
            .check_transaction_by_md5_list(md5s)
            .map_err(|e| UpstreamFail::Check(CheckError::Request(e)))?;
        let Some(request) = requests.pop().filter(|_| requests.is_empty()) else {
            return Err(UpstreamFail::Check(CheckError::Request(
                RequestError::InvalidArgument {
                    what: "md5s",
                    why: "must fit one list call",
                },
            )));
        };
        self.token(Priority::Reconcile).await?;
        let wait = Duration::from_millis(self.config.upstream_timeout_ms);
        let Ok(Ok(_permit)) = tokio::time::timeout(wait, self.slots.acquire()).await else {
            metrics::counter!("khqr_upstream_errors_total", "kind" => "busy").increment(1);
            return Err(UpstreamFail::Busy);
        };
        metrics::counter!("khqr_upstream_calls_total").increment(1);
        metrics::counter!("khqr_bakong_calls_total", "kind" => Priority::Reconcile.label())
            .increment(1);
        let result = match self.transport.send(request).await {
            Ok(resp) => parse_transaction_list(&resp).map_err(CheckError::Response),
            Err(e) => Err(CheckError::Transport(e)),
        };
        result.map_err(|e| {
            metrics::counter!("khqr_upstream_errors_total", "kind" => upstream_kind(&e).1)
                .increment(1);
            UpstreamFail::Check(e)
        })
    }

    /// After Bakong refused the token `used` held: whether a newer one is in
    /// use now, read from the store (renewed by another instance) or from
    /// this instance's renewal in flight (waited for, at most `wait`).
    async fn newer_token(&self, used: &Api, wait: Duration) -> bool {
        self.adopt_shared(now_ms()).await;
        let _ = tokio::time::timeout(wait, self.renewal.read()).await;
        self.api().token() != used.token()
    }

    /// Held by this instance's renewal (the call to Bakong until the new
    /// token is in use): a check refused meanwhile waits for it.
    pub async fn renewing(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.renewal.write().await
    }

    /// The deep link for `record` (`None`: none, or not known yet), asked of
    /// Bakong once per QR for every instance (see `ask_deeplink`) and
    /// kept here.
    pub async fn deeplink(&self, record: &Record) -> Option<String> {
        self.deeplinks
            .optionally_get_with(record.md5.clone(), self.ask_deeplink(record))
            .await
    }

    /// The deep link from the store if an instance asked already; else asked
    /// of Bakong by the instance that takes the QR's deep-link lease, within
    /// the call budget (lowest priority) and a slot, and kept in the store for
    /// the QR's life (a refusal or failure, as `""`, for a minute); the other
    /// instances wait up to 1.5 s for that answer. The page waits at most 2 s
    /// for Bakong; a slow Bakong hides the button.
    async fn ask_deeplink(&self, record: &Record) -> Option<String> {
        if record.test {
            // A test QR is never shown to Bakong.
            return None;
        }
        let key = format!("dl:{}", record.md5);
        let now = now_ms();
        let known = |v: String| Some(v).filter(|l| !l.is_empty());
        if let Ok(Some(v)) = self.store.shared_get(&key, now).await {
            return known(v);
        }
        let leased = self.store.lease(&key, &self.instance, 5_000, now).await;
        if !leased.unwrap_or(false) {
            for _ in 0..15 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(Some(v)) = self.store.shared_get(&key, now_ms()).await {
                    return known(v);
                }
            }
            return None;
        }
        self.token(Priority::DeepLink).await.ok()?;
        let asked = async {
            let req = self
                .api()
                .generate_deeplink_by_qr(&record.payload, None, now)
                .ok()?;
            let _permit = self.slots.acquire().await.ok()?;
            metrics::counter!("khqr_bakong_calls_total", "kind" => Priority::DeepLink.label())
                .increment(1);
            let resp = self.transport.send(req).await.ok()?;
            parse_deeplink(&resp)
                .ok()
                .filter(|l| l.starts_with("https://"))
        };
        let link = tokio::time::timeout(Duration::from_secs(2), asked)
            .await
            .ok()
            .flatten();
        let keep = match &link {
            Some(_) => record
                .expires_ms
                .saturating_add(self.config.grace_ms())
                .saturating_sub(now)
                .max(1_000),
            None => 60_000,
        };
        let value = link.as_deref().unwrap_or("");
        let _ = self.store.shared_put(&key, value, keep, now_ms()).await;
        link
    }

    /// Takes `text` as the operator's token (from the token file) if it holds
    /// one; whether the token in use changed.
    fn reload(&self, text: &str) -> Option<bool> {
        let token = Token::new(text.trim()).ok()?;
        let mut tokens = self.lock_tokens();
        tokens.configured = Some(token);
        tokens.configured_from = "file";
        Some(self.install(&tokens, now_ms()))
    }

    /// Takes `token` as the renewed one (by this instance or, through the
    /// store, another); whether the token in use changed (see
    /// [`prefer_renewed`]).
    pub fn set_renewed(&self, token: Token, now_ms: u64) -> bool {
        let mut tokens = self.lock_tokens();
        tokens.renewed = Some(token);
        self.install(&tokens, now_ms)
    }

    /// Reads the shared token from the store and takes it as the renewed one
    /// if it is new; whether the token in use changed. A store error or an
    /// unusable stored token changes nothing (logged).
    pub async fn adopt_shared(&self, now_ms: u64) -> bool {
        let text = match self.store.shared_get(SHARED_TOKEN_KEY, now_ms).await {
            Ok(Some(text)) => text,
            Ok(None) => return self.install(&self.lock_tokens(), now_ms),
            Err(e) => {
                tracing::warn!(error = e.detail(), "cannot read the shared Bakong token");
                return false;
            }
        };
        let Ok(token) = Token::new(text) else {
            tracing::warn!("the store's shared Bakong token is not usable; ignored");
            return false;
        };
        let mut tokens = self.lock_tokens();
        if tokens.renewed.as_ref() == Some(&token) {
            return self.install(&tokens, now_ms);
        }
        tokens.renewed = Some(token);
        self.install(&tokens, now_ms)
    }

    /// The expiry of the token in use, ms since the Unix epoch: `Some(0)`
    /// when there is none, `None` when it is not a JWT with a readable `exp`.
    pub fn expiry(&self) -> Option<u64> {
        match self.api().token() {
            None => Some(0),
            Some(t) => t.expires_at_ms().ok(),
        }
    }

    /// Where the token in use came from: `"env"` (`BAKONG_TOKEN`), `"file"`
    /// (`--token-file`), `"renewed"` (renewed by an instance), or `"none"`.
    pub fn token_source(&self) -> &'static str {
        let tokens = self.lock_tokens();
        let api = self.api();
        match api.token() {
            None => "none",
            Some(t) if tokens.renewed.as_ref() == Some(t) => "renewed",
            Some(_) => tokens.configured_from,
        }
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts the token [`prefer_renewed`] picks from `tokens` in use; whether
    /// it changed.
    fn install(&self, tokens: &Tokens, now_ms: u64) -> bool {
        let exp = |t: &Token| t.expires_at_ms().ok();
        let use_renewed = prefer_renewed(
            now_ms,
            tokens.configured.as_ref().map(exp),
            tokens.renewed.as_ref().and_then(exp),
        );
        let pick = if use_renewed {
            tokens.renewed.as_ref()
        } else {
            tokens.configured.as_ref()
        };
        let Some(token) = pick else { return false };
        let mut slot = self
            .api
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.token() == Some(token) {
            return false;
        }
        let mut api = (**slot).clone();
        api.set_token(token.clone());
        *slot = Arc::new(api);
        true
    }
}

/// Re-reads the token file every 10 s while `upstream` lives.
pub fn spawn_token_watch(upstream: Weak<Upstream>, path: PathBuf) {
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let Some(upstream) = upstream.upgrade() else {
                return;
            };
            let Ok(text) = tokio::fs::read_to_string(&path).await else {
                tracing::warn!("cannot read the token file; keeping the current token");
                continue;
            };
            if text == last {
                continue;
            }
            match upstream.reload(&text) {
                Some(changed) => {
                    if changed {
                        tracing::info!("Bakong token reloaded from the token file");
                    }
                    last = text;
                }
                None => {
                    tracing::warn!("the token file holds no usable token; keeping the current one");
                }
            }
        }
    });
}

/// HTTP status, kind and our message for an upstream failure.
#[must_use]
pub fn upstream_kind(e: &CheckError<ReqwestError>) -> (StatusCode, &'static str, String) {
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
        CheckError::Response(r) => response_kind(r),
        // A kind a later library version adds.
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the status check failed".into(),
        ),
    }
}

fn response_kind(r: &ResponseError) -> (StatusCode, &'static str, String) {
    match r {
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
    }
}

#[cfg(test)]
mod tests {
    use super::prefer_renewed;

    #[test]
    fn the_renewed_token_while_it_lasts_and_is_the_newest() {
        let now = 1_000_000;
        // No operator token: the renewed one while unexpired.
        assert!(prefer_renewed(now, None, Some(now + 1)));
        assert!(!prefer_renewed(now, None, Some(now)));
        // Later than the operator's (or its expiry unreadable): renewed.
        assert!(prefer_renewed(now, Some(Some(now + 10)), Some(now + 20)));
        assert!(prefer_renewed(now, Some(None), Some(now + 20)));
        // A newer token in the file wins; so does the file once renewal ran out.
        assert!(!prefer_renewed(now, Some(Some(now + 30)), Some(now + 20)));
        assert!(!prefer_renewed(now, Some(Some(now - 5)), Some(now - 1)));
        // No renewed token, or an unreadable one: the operator's.
        assert!(!prefer_renewed(now, Some(Some(now + 10)), None));
    }
}
