//! The Bakong token's lifecycle: renewal before it expires, shared by every
//! instance through the store, and alerts as its expiry nears.
//!
//! * **Renewal.** With [`Config::bakong_email`], once the token in use has
//!   less than [`Config::token_renew_before_secs`] left (read from its JWT
//!   `exp`; no token at all counts as expired), one instance (the holder of
//!   the store's lease `bakong-token`, [`Store::lease`]) calls
//!   `/v1/renew_token`, keeps the new token in the store until its expiry
//!   ([`Store::shared_put`] under [`SHARED_TOKEN_KEY`]) and uses it; the others pick it up from the
//!   store every [`Config::token_sync_ms`] (and at once when Bakong answers 401,
//!   see [`Upstream::adopt_shared`]). A failed renewal changes nothing: the
//!   current token stays in use (the renewed one while it lasts, then the
//!   token file's or `BAKONG_TOKEN`'s, see [`crate::upstream::prefer_renewed`]),
//!   and it is retried after [`Config::token_retry_ms`], doubling, at most an
//!   hour apart. Renewal needs no token, so it also recovers an expired one.
//! * **Alerts.** As the time left crosses each of [`Config::token_alert_secs`]
//!   (and 0: expired), a warning and the operator event `token.expiring` (or
//!   `token.expired`). Operator events are log lines on the target
//!   `khqr_server::operator` with a stable `event` field (`token.expiring`,
//!   `token.expired`, `token.renewed`, `token.renewal_failed`), counted by
//!   `khqr_operator_events_total{event}`. `/readyz` shows [`TokenStatus`];
//!   `/metrics` has `khqr_bakong_token_seconds_left`.
//!
//! The decisions are pure functions of the clock ([`decide`], [`alert_due`],
//! [`retry_delay_ms`]); [`TokenKeeper::step`] takes the time as an argument.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bakong_khqr::status::{parse_renew_token, AsyncStatusChecker, Token};
use serde::Serialize;

use crate::config::Config;
use crate::store::{AnyStore, Store};
use crate::time::now_ms;
use crate::upstream::{Upstream, SHARED_TOKEN_KEY};

/// The name of the store lease the renewing instance holds.
pub const LEASE: &str = "bakong-token";

/// The longest wait between two renewal attempts, in ms (one hour).
pub const RETRY_MAX_MS: u64 = 3_600_000;

/// The renewal and alert settings, from [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Renew once the token has less than this left, in ms.
    pub renew_before_ms: u64,
    /// Alert thresholds (time left), in ms, largest first, always ending in 0
    /// (expired), no repeats.
    pub alerts_ms: Vec<u64>,
    /// First retry delay after a failure, in ms (doubles per failure).
    pub retry_first_ms: u64,
    /// Longest retry delay, in ms (at least `retry_first_ms`).
    pub retry_max_ms: u64,
    /// Longest sleep between two looks at the token, in ms.
    pub sync_ms: u64,
}

impl Policy {
    /// The policy `config` gives (thresholds in seconds become ms; the
    /// retry delay is capped at [`RETRY_MAX_MS`], or the first delay if larger).
    #[must_use]
    pub fn from_config(config: &Config) -> Self {
        let mut alerts_ms: Vec<u64> = config
            .token_alert_secs
            .iter()
            .map(|s| s.saturating_mul(1000))
            .chain([0])
            .collect();
        alerts_ms.sort_unstable_by(|a, b| b.cmp(a));
        alerts_ms.dedup();
        Policy {
            renew_before_ms: config.token_renew_before_secs.saturating_mul(1000),
            alerts_ms,
            retry_first_ms: config.token_retry_ms.max(1),
            retry_max_ms: RETRY_MAX_MS.max(config.token_retry_ms),
            sync_ms: config.token_sync_ms.max(1),
        }
    }
}

/// What to do about the token now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Renew it now.
    Renew,
    /// Nothing before this time (ms since the Unix epoch).
    WaitUntil(u64),
}

/// The delay before the next attempt after `failures` failed ones in a row,
/// in ms: the first delay doubled per failure after the first, at most
/// [`Policy::retry_max_ms`]; 0 for no failure.
#[must_use]
pub fn retry_delay_ms(policy: &Policy, failures: u32) -> u64 {
    if failures == 0 {
        return 0;
    }
    let doublings = failures.saturating_sub(1).min(40);
    policy
        .retry_first_ms
        .saturating_mul(1u64 << doublings)
        .min(policy.retry_max_ms)
}

/// Whether to renew at `now_ms` a token expiring at `exp_ms` (ms since the
/// Unix epoch; `Some(0)`: no token; `None`: unreadable, never renewed, since
/// when is unknown), after `failures` failed attempts in a row, the last at
/// `last_failure_ms`. Renew from `exp_ms - renew_before_ms` on, but not
/// before the retry delay after a failure has passed.
#[must_use]
pub fn decide(
    now_ms: u64,
    exp_ms: Option<u64>,
    policy: &Policy,
    failures: u32,
    last_failure_ms: u64,
) -> Decision {
    let Some(exp) = exp_ms else {
        return Decision::WaitUntil(now_ms.saturating_add(policy.sync_ms));
    };
    let due = exp.saturating_sub(policy.renew_before_ms);
    let retry_at = last_failure_ms.saturating_add(retry_delay_ms(policy, failures));
    let at = if failures == 0 {
        due
    } else {
        due.max(retry_at)
    };
    if now_ms >= at {
        Decision::Renew
    } else {
        Decision::WaitUntil(at)
    }
}

/// The alert to raise at `now_ms` for a token expiring at `exp_ms`: the
/// smallest threshold of [`Policy::alerts_ms`] the time left is at or under,
/// if it is smaller than `fired` (the last one raised for this token; `None`:
/// none yet). One alert for several thresholds crossed at once.
#[must_use]
pub fn alert_due(now_ms: u64, exp_ms: u64, policy: &Policy, fired: Option<u64>) -> Option<u64> {
    let left = exp_ms.saturating_sub(now_ms);
    let crossed = policy
        .alerts_ms
        .iter()
        .copied()
        .filter(|&t| left <= t)
        .min()?;
    fired.is_none_or(|f| crossed < f).then_some(crossed)
}

/// Seconds from `now_ms` to `exp_ms` (negative once expired).
#[must_use]
pub fn seconds_left(now_ms: u64, exp_ms: u64) -> i64 {
    let secs = |ms: u64| i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    if exp_ms >= now_ms {
        secs(exp_ms - now_ms)
    } else {
        -secs(now_ms - exp_ms)
    }
}

/// The token's state, for `/readyz`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenStatus {
    /// Seconds until the token in use expires (negative: expired); `None`
    /// without a token or a readable expiry.
    pub seconds_left: Option<i64>,
    /// Where the token in use came from: `env`, `file`, `renewed`, `none`.
    pub source: &'static str,
    /// `off` (no e-mail given), `unknown_expiry`, `waiting` (not due),
    /// `due`, `renewing`, or `failing` (the last attempt failed).
    pub renewal: &'static str,
    /// When renewal is due or next retried, ms since the Unix epoch.
    pub next_renewal_ms: Option<u64>,
    /// When this instance last renewed the token, ms since the Unix epoch.
    pub last_renewed_ms: Option<u64>,
    /// Failed attempts in a row (this instance's).
    pub failures: u32,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Memory {
    failures: u32,
    last_failure_ms: u64,
    last_error: Option<String>,
    last_renewed_ms: Option<u64>,
    renewing: bool,
    /// (the token's expiry, the last threshold alerted for it).
    fired: Option<(u64, u64)>,
}

/// One instance's keeper of the token: renews it under the lease, adopts
/// the shared one, alerts.
pub struct TokenKeeper {
    policy: Policy,
    email: Option<String>,
    store: Arc<AnyStore>,
    upstream: Arc<Upstream>,
    owner: String,
    lease_ms: u64,
    memory: Mutex<Memory>,
}

impl TokenKeeper {
    /// A keeper for `config` (its e-mail, policy and upstream timeout), with a
    /// random lease owner name.
    #[must_use]
    pub fn new(config: &Config, store: Arc<AnyStore>, upstream: Arc<Upstream>) -> Self {
        TokenKeeper {
            policy: Policy::from_config(config),
            email: config.bakong_email.clone().filter(|e| !e.is_empty()),
            store,
            upstream,
            owner: format!("{:016x}", rand::random::<u64>()),
            // The renewal call's timeout and a margin: the lease outlives it.
            lease_ms: config.upstream_timeout_ms.saturating_add(5_000),
            memory: Mutex::new(Memory::default()),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One look at the token at `now_ms` (ms since the Unix epoch): adopts
    /// the shared token, raises the alerts due, renews if due; returns how
    /// long to wait before the next look, in ms (1 to [`Policy::sync_ms`]).
    pub async fn step(&self, now_ms: u64) -> u64 {
        self.upstream.adopt_shared(now_ms).await;
        let exp = self.upstream.expiry();
        if let Some(exp) = exp {
            self.alert(now_ms, exp);
        }
        self.set_gauge(now_ms);
        let (failures, last) = {
            let mut m = self.memory();
            if exp.is_some_and(|e| e.saturating_sub(now_ms) > self.policy.renew_before_ms) {
                // Renewed (here or by another instance): the failures are over.
                m.failures = 0;
                m.last_error = None;
            }
            (m.failures, m.last_failure_ms)
        };
        let wait_until = match decide(now_ms, exp, &self.policy, failures, last) {
            Decision::WaitUntil(at) => at,
            Decision::Renew if self.email.is_some() => {
                self.renew(now_ms).await;
                now_ms.saturating_add(self.policy.sync_ms)
            }
            Decision::Renew => now_ms.saturating_add(self.policy.sync_ms),
        };
        wait_until
            .saturating_sub(now_ms)
            .clamp(1, self.policy.sync_ms)
    }

    fn alert(&self, now_ms: u64, exp: u64) {
        let mut m = self.memory();
        let fired = m.fired.filter(|(e, _)| *e == exp).map(|(_, t)| t);
        let Some(threshold) = alert_due(now_ms, exp, &self.policy, fired) else {
            return;
        };
        m.fired = Some((exp, threshold));
        drop(m);
        let left = seconds_left(now_ms, exp);
        let renewal = if self.email.is_some() { "on" } else { "off" };
        if threshold == 0 {
            operator_event("token.expired");
            tracing::error!(
                target: "khqr_server::operator",
                event = "token.expired",
                seconds_left = left,
                renewal,
                "the Bakong token has expired: status checks fail until it is renewed"
            );
        } else {
            operator_event("token.expiring");
            tracing::warn!(
                target: "khqr_server::operator",
                event = "token.expiring",
                seconds_left = left,
                threshold_secs = threshold / 1000,
                renewal,
                "the Bakong token expires soon"
            );
        }
    }

    /// Renews under the lease, unless another instance holds it or has
    /// renewed already.
    async fn renew(&self, now_ms: u64) {
        let Some(email) = self.email.as_deref() else {
            return;
        };
        match self
            .store
            .lease(LEASE, &self.owner, self.lease_ms, now_ms)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.failed(now_ms, format!("store: {}", e.detail()));
                return;
            }
        }
        // Another instance may have renewed just before the lease was ours.
        self.upstream.adopt_shared(now_ms).await;
        if decide(now_ms, self.upstream.expiry(), &self.policy, 0, 0) == Decision::Renew {
            let _renewing = self.upstream.renewing().await;
            self.memory().renewing = true;
            let outcome = self.call(email).await;
            self.memory().renewing = false;
            match outcome {
                Ok(token) => self.renewed(token, now_ms).await,
                Err(why) => self.failed(now_ms, why),
            }
        }
        // Renewing it for 1 ms gives it up.
        if let Err(e) = self.store.lease(LEASE, &self.owner, 1, now_ms).await {
            tracing::warn!(error = e.detail(), "cannot release the token lease");
        }
    }

    /// One call to `/v1/renew_token`: the new token, or why not (no secret in
    /// the text: neither token nor e-mail).
    async fn call(&self, email: &str) -> Result<Token, String> {
        let request = self
            .upstream
            .api()
            .renew_token(email)
            .map_err(|e| format!("the renewal request could not be built: {e}"))?;
        let response = self
            .upstream
            .transport
            .send(request)
            .await
            .map_err(|e| format!("could not reach Bakong: {e}"))?;
        parse_renew_token(&response).map_err(|e| format!("Bakong refused the renewal: {e}"))
    }

    async fn renewed(&self, token: Token, now_ms: u64) {
        let Ok(exp) = token.expires_at_ms() else {
            self.failed(now_ms, "the renewed token has no readable expiry".into());
            return;
        };
        if exp <= now_ms {
            self.failed(now_ms, "the renewed token has expired already".into());
            return;
        }
        if let Err(e) = self
            .store
            .shared_put(SHARED_TOKEN_KEY, token.expose(), exp - now_ms, now_ms)
            .await
        {
            // Still used here; the others renew for themselves.
            tracing::warn!(error = e.detail(), "cannot store the renewed Bakong token");
        }
        self.upstream.set_renewed(token, now_ms);
        metrics::counter!("khqr_token_renewals_total", "result" => "ok").increment(1);
        operator_event("token.renewed");
        tracing::info!(
            target: "khqr_server::operator",
            event = "token.renewed",
            seconds_left = seconds_left(now_ms, exp),
            "the Bakong token was renewed"
        );
        let mut m = self.memory();
        m.last_renewed_ms = Some(now_ms);
        if exp.saturating_sub(now_ms) <= self.policy.renew_before_ms {
            // Bakong's new token is due again at once: back off, as a failure.
            m.failures = m.failures.saturating_add(1);
            m.last_failure_ms = now_ms;
            m.last_error = Some("the renewed token expires within the renewal lead time".into());
        } else {
            m.failures = 0;
            m.last_error = None;
        }
    }

    fn failed(&self, now_ms: u64, why: String) {
        metrics::counter!("khqr_token_renewals_total", "result" => "error").increment(1);
        operator_event("token.renewal_failed");
        let failures = {
            let mut m = self.memory();
            m.failures = m.failures.saturating_add(1);
            m.last_failure_ms = now_ms;
            m.failures
        };
        tracing::warn!(
            target: "khqr_server::operator",
            event = "token.renewal_failed",
            failures,
            retry_in_ms = retry_delay_ms(&self.policy, failures),
            error = %why,
            "Bakong token renewal failed; the current token stays in use"
        );
        self.memory().last_error = Some(why);
    }

    /// The token's state at `now_ms`, for `/readyz`.
    pub fn status(&self, now_ms: u64) -> TokenStatus {
        let exp = self.upstream.expiry();
        let m = self.memory();
        let next =
            exp.map(|e| decide(now_ms, Some(e), &self.policy, m.failures, m.last_failure_ms));
        let renewal = match (&self.email, exp, next) {
            (None, _, _) => "off",
            (Some(_), None, _) => "unknown_expiry",
            _ if m.renewing => "renewing",
            _ if m.failures > 0 => "failing",
            (_, _, Some(Decision::Renew)) => "due",
            _ => "waiting",
        };
        TokenStatus {
            seconds_left: exp.filter(|&e| e > 0).map(|e| seconds_left(now_ms, e)),
            source: self.upstream.token_source(),
            renewal,
            next_renewal_ms: match next {
                Some(Decision::WaitUntil(at)) => Some(at),
                Some(Decision::Renew) => Some(now_ms),
                None => None,
            }
            .filter(|_| self.email.is_some()),
            last_renewed_ms: m.last_renewed_ms,
            failures: m.failures,
            last_error: m.last_error.clone(),
        }
    }

    /// The gauge `khqr_bakong_token_seconds_left` at `now_ms` (not set without
    /// a token or a readable expiry).
    pub fn set_gauge(&self, now_ms: u64) {
        if let Some(exp) = self.upstream.expiry().filter(|&e| e > 0) {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!("khqr_bakong_token_seconds_left").set(seconds_left(now_ms, exp) as f64);
        }
    }
}

fn operator_event(event: &'static str) {
    metrics::counter!("khqr_operator_events_total", "event" => event).increment(1);
}

/// Runs `keeper`'s [`TokenKeeper::step`] on the wall clock while it lives.
pub fn spawn(keeper: Weak<TokenKeeper>) {
    tokio::spawn(async move {
        loop {
            let wait = {
                let Some(keeper) = keeper.upgrade() else {
                    return;
                };
                keeper.step(now_ms()).await
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    fn policy() -> Policy {
        let mut config = Config::new("http://unset");
        config.token_retry_ms = 60_000;
        Policy::from_config(&config)
    }

    #[test]
    fn the_policy_from_the_defaults() {
        let p = policy();
        assert_eq!(p.renew_before_ms, 15 * DAY);
        assert_eq!(p.alerts_ms, vec![14 * DAY, 3 * DAY, DAY, 0]);
        assert_eq!((p.retry_first_ms, p.retry_max_ms), (60_000, 3_600_000));
        assert_eq!(p.sync_ms, 10_000);
        let mut config = Config::new("http://unset");
        config.token_alert_secs = vec![60, 0, 3600, 60];
        config.token_retry_ms = 7_200_000;
        let p = Policy::from_config(&config);
        assert_eq!(p.alerts_ms, vec![3_600_000, 60_000, 0]);
        assert_eq!(p.retry_max_ms, 7_200_000);
    }

    #[test]
    fn renewal_is_due_at_the_lead_time_and_not_before() {
        let p = policy();
        let now = 1_800_000_000_000;
        // 20 days left: wait until 15 days are left.
        assert_eq!(
            decide(now, Some(now + 20 * DAY), &p, 0, 0),
            Decision::WaitUntil(now + 5 * DAY)
        );
        assert_eq!(decide(now, Some(now + 15 * DAY), &p, 0, 0), Decision::Renew);
        assert_eq!(decide(now, Some(now + 3 * DAY), &p, 0, 0), Decision::Renew);
        // Expired, or no token (0): renew (no token is needed to renew).
        assert_eq!(decide(now, Some(now - DAY), &p, 0, 0), Decision::Renew);
        assert_eq!(decide(now, Some(0), &p, 0, 0), Decision::Renew);
        // Unreadable expiry: never, look again after the sync interval.
        assert_eq!(
            decide(now, None, &p, 0, 0),
            Decision::WaitUntil(now + 10_000)
        );
    }

    #[test]
    fn failures_back_off_doubling_up_to_an_hour() {
        let p = policy();
        let delays: Vec<u64> = (0..10).map(|n| retry_delay_ms(&p, n)).collect();
        assert_eq!(
            delays,
            [
                0, 60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000,
                3_600_000
            ]
        );
        assert_eq!(retry_delay_ms(&p, u32::MAX), 3_600_000);
        let now = 1_800_000_000_000;
        let exp = Some(now + 3 * DAY);
        // Two failures, the last 100 s ago: the next try 120 s after it.
        assert_eq!(
            decide(now, exp, &p, 2, now - 100_000),
            Decision::WaitUntil(now + 20_000)
        );
        assert_eq!(decide(now, exp, &p, 2, now - 120_000), Decision::Renew);
        // A failure long before the lead time does not delay a due renewal.
        assert_eq!(decide(now, exp, &p, 1, now - 30 * DAY), Decision::Renew);
    }

    #[test]
    fn each_alert_once_and_the_tightest_of_those_crossed_together() {
        let p = policy();
        let exp = 1_900_000_000_000;
        assert_eq!(alert_due(exp - 20 * DAY, exp, &p, None), None);
        assert_eq!(alert_due(exp - 14 * DAY, exp, &p, None), Some(14 * DAY));
        assert_eq!(alert_due(exp - 10 * DAY, exp, &p, Some(14 * DAY)), None);
        // Started 2 days before expiry: one alert, for 3 days.
        assert_eq!(alert_due(exp - 2 * DAY, exp, &p, None), Some(3 * DAY));
        assert_eq!(alert_due(exp - 2 * DAY, exp, &p, Some(3 * DAY)), None);
        assert_eq!(alert_due(exp - DAY + 1, exp, &p, Some(3 * DAY)), Some(DAY));
        assert_eq!(alert_due(exp, exp, &p, Some(DAY)), Some(0));
        assert_eq!(alert_due(exp + DAY, exp, &p, Some(0)), None);
    }

    fn jwt(exp_secs: u64) -> String {
        use base64::Engine;
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let header = b64(r#"{"alg":"none"}"#);
        format!("{header}.{}.sig", b64(&format!(r#"{{"exp":{exp_secs}}}"#)))
    }

    /// A keeper on the memory store whose Bakong is a closed loopback port.
    fn keeper(exp_secs: u64, email: Option<&str>) -> TokenKeeper {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let mut config = Config::new("http://unset");
        config.bakong_base_url = format!("http://127.0.0.1:{port}");
        config.token = Some(jwt(exp_secs).into());
        config.bakong_email = email.map(str::to_owned);
        let config = Arc::new(config);
        let store = Arc::new(AnyStore::Memory(crate::store::MemoryStore::new(
            config.limits(),
        )));
        let upstream = Arc::new(Upstream::new(config.clone(), store.clone()).unwrap());
        TokenKeeper::new(&config, store, upstream)
    }

    #[tokio::test]
    async fn the_keeper_alerts_on_its_clock_without_renewing_when_no_email() {
        let exp = 1_900_000_000_000;
        let k = keeper(exp / 1000, None);
        assert_eq!(k.step(exp - 20 * DAY).await, 10_000);
        assert_eq!(k.memory().fired, None);
        k.step(exp - 14 * DAY).await;
        assert_eq!(k.memory().fired, Some((exp, 14 * DAY)));
        k.step(exp - 13 * DAY).await;
        assert_eq!(k.memory().fired, Some((exp, 14 * DAY)));
        k.step(exp + 1000).await;
        assert_eq!(k.memory().fired, Some((exp, 0)));
        let status = k.status(exp + 5000);
        assert_eq!(
            (status.renewal, status.source, status.seconds_left),
            ("off", "env", Some(-5))
        );
        assert_eq!((status.failures, status.next_renewal_ms), (0, None));
    }

    #[tokio::test]
    async fn the_keeper_backs_off_on_its_clock_when_bakong_is_unreachable() {
        let exp = 1_900_000_000_000;
        let k = keeper(exp / 1000, Some("ops@shop.example"));
        let t0 = exp - 20 * DAY;
        assert_eq!(k.status(t0).renewal, "waiting");
        assert_eq!(k.status(t0).next_renewal_ms, Some(exp - 15 * DAY));
        let t1 = exp - 10 * DAY;
        k.step(t1).await;
        let s = k.status(t1);
        assert_eq!((s.renewal, s.failures), ("failing", 1));
        assert!(s.last_error.unwrap().starts_with("could not reach Bakong"));
        assert_eq!(s.next_renewal_ms, Some(t1 + 60_000));
        // Before the retry delay: no attempt; after it: one more, then 120 s.
        k.step(t1 + 30_000).await;
        assert_eq!(k.status(t1 + 30_000).failures, 1);
        k.step(t1 + 60_000).await;
        let s = k.status(t1 + 60_000);
        assert_eq!((s.failures, s.next_renewal_ms), (2, Some(t1 + 180_000)));
        assert_eq!(s.source, "env");
    }

    #[test]
    fn seconds_left_is_signed() {
        assert_eq!(seconds_left(1_000, 260_000), 259);
        assert_eq!(seconds_left(260_000, 1_000), -259);
        assert_eq!(seconds_left(5, 5), 0);
    }
}
