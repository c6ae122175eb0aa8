//! Signed event webhooks: the delivery worker.
//!
//! Every event ([`crate::events`]) about a QR created with a `callback_url`
//! is sent (`POST`) to it, its stored body byte for byte ([`Event::body`]), with
//! these headers:
//!
//! * `Content-Type: application/json`;
//! * `KHQR-Signature: t=<ms>,v1=<64 hex>[,v1=…]`: HMAC-SHA256 under the
//!   secret of the merchant whose key created the QR, over the decimal
//!   timestamp, a `.`, and the raw body ([`bakong_khqr::webhook::sign`]); one
//!   `v1` per live secret of that merchant (two during a rotation, see
//!   [`crate::merchant`]); verify it with
//!   [`bakong_khqr::webhook::verify_webhook_signature`];
//! * `Idempotency-Key: <event id>` and `KHQR-Event-Id: <event id>`: the
//!   event's stable id (`evt_` and 24 hex digits), the same on every attempt
//!   and every replay of one event (before events had ids this was the QR's
//!   MD5);
//! * `KHQR-Attempt: <n>`: 1 for the first attempt, counted across instances,
//!   restarts and replays.
//!
//! Any 2xx answer is success. Anything else (or no answer within the upstream
//! timeout) is retried with exponential backoff and full jitter
//! ([`crate::Config::webhook_backoff_ms`] doubling, at most 60 s apart) until
//! [`crate::Config::webhook_retry_secs`] have passed since the event (or the
//! replay); then the event's delivery state is `failed`. Delivery is at least
//! once: a receiver must treat a repeated `Idempotency-Key` as done.
//!
//! Each attempt is logged ([`EventLog::attempt_add`]: status, error,
//! duration) and the event's state and attempt count kept
//! ([`EventLog::event_delivery`]). An instance sends a run only while it holds
//! the store's lease for it ([`crate::store::Store::delivery`], keyed by the
//! event id; a replay is a run of its own, keyed `<id>:r<ms>`), so with Redis
//! and several instances one instance delivers each event. Events still owed
//! are in the store's outbox ([`EventLog::outbox_add`] when the event is
//! filed, [`EventLog::outbox_remove`] once delivered or given up): every 2 s
//! each instance takes up the owed events no run of its own handles
//! ([`spawn_outbox`]), so a restart, or another instance dying, loses none.
//! A replay cut off by a restart is not taken up again (its event was
//! delivered before; replay it again).
//!
//! Where a webhook may go (the IANA special-purpose registries, ports, a
//! checking resolver) is [`target`]'s: each attempt checks the URL again and
//! connects only to an address its one lookup checked.

pub mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use self::target::TargetPolicy;
use crate::config::{Config, ConfigError};
use crate::ledger::{Attempt, DeliveryState, Event, EventLog};
use crate::merchant::{signature_header, MerchantStore};
use crate::store::{AnyStore, Delivery, Store};
use crate::time::now_ms;

/// Most replays one merchant may have running at once on one instance; the
/// next answers 429 until one ends.
pub const MAX_REPLAYS: usize = 4;

/// Owed events taken up per outbox pass (every 2 s).
const OUTBOX_BATCH: usize = 1_000;

/// Why a replay was refused (nothing was started).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayRefused {
    /// The merchant has [`MAX_REPLAYS`] replays running here.
    TooMany,
    /// A run of this event (its delivery, or another replay) goes on here:
    /// two at once would send it twice and number their attempts alike.
    Running,
}

/// This instance's webhook deliveries.
pub struct Webhooks {
    config: Arc<Config>,
    store: Arc<AnyStore>,
    /// Where webhooks may go (from the `callback_*` options).
    targets: Arc<TargetPolicy>,
    /// The client that delivers them, through [`target::CheckedResolver`].
    client: reqwest::Client,
    /// Event id -> runs of it (first delivery or replays) in this process.
    running: Mutex<HashMap<String, usize>>,
    /// Merchant id -> replays running in this process.
    replays: Mutex<HashMap<String, usize>>,
    /// This instance's lease owner name.
    owner: String,
}

/// One delivery run of an event.
struct Run {
    event: Event,
    /// The lease (and attempt counter) key: the event id, or
    /// `<id>:r<ms>` for a replay.
    key: String,
    /// Attempts of the event before this run (its `KHQR-Attempt` goes on).
    base: u32,
    /// When this run gives up, ms since the Unix epoch.
    until_ms: u64,
    /// A replay (counted against its merchant's [`MAX_REPLAYS`]).
    replay: bool,
}

/// What one attempt got.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn failed(error: impl Into<String>) -> Self {
        Outcome {
            status: None,
            error: Some(error.into()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts one more of `key` in `map`.
fn count_up(map: &Mutex<HashMap<String, usize>>, key: &str) {
    *lock(map).entry(key.to_owned()).or_insert(0) += 1;
}

/// Counts one fewer of `key` in `map` (gone at zero).
fn count_down(map: &Mutex<HashMap<String, usize>>, key: &str) {
    let mut m = lock(map);
    if let Some(n) = m.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            m.remove(key);
        }
    }
}

impl Webhooks {
    /// No deliveries yet; a random lease owner name.
    ///
    /// # Errors
    /// [`ConfigError`] if the HTTP client cannot be built.
    pub fn new(config: Arc<Config>, store: Arc<AnyStore>) -> Result<Self, ConfigError> {
        let targets = Arc::new(TargetPolicy {
            allow_http: config.callback_allow_http,
            allow_any: config.callback_allow_private,
            allow_ports: config.callback_allow_ports.clone(),
            allow_nets: config.callback_allow_ips.clone(),
        });
        let client = target::webhook_client(
            targets.clone(),
            config.dns_server,
            config.upstream_timeout_ms,
        )
        .map_err(|e| ConfigError(format!("webhook HTTP client: {e}")))?;
        Ok(Webhooks {
            config,
            store,
            targets,
            client,
            running: Mutex::new(HashMap::new()),
            replays: Mutex::new(HashMap::new()),
            owner: format!("{:016x}", rand::random::<u64>()),
        })
    }

    /// Where webhooks may go: checked at create, and again at each attempt.
    #[must_use]
    pub fn targets(&self) -> &TargetPolicy {
        &self.targets
    }

    /// Whether a run of event `id` (its delivery or a replay) goes on in
    /// this process.
    pub fn running(&self, id: &str) -> bool {
        lock(&self.running).contains_key(id)
    }

    /// Starts the delivery of `event` (filed and listed in the outbox by its
    /// emitter) in this process, unless a run of it goes on here already or
    /// it has no `callback_url`. It gives up
    /// [`crate::Config::webhook_retry_secs`] after the event's time.
    pub fn deliver(self: &Arc<Self>, event: Event) {
        if event.callback_url.is_none() || self.running(&event.id) {
            return;
        }
        let until_ms = event
            .created_ms
            .saturating_add(self.config.webhook_retry_ms());
        let run = Run {
            key: event.id.clone(),
            base: 0,
            until_ms,
            replay: false,
            event,
        };
        self.start(run);
    }

    /// Sends `event` again now: one attempt (same id, same body, numbered on
    /// from the event's attempts), logged as any other. The caller checked
    /// that it has a `callback_url`.
    ///
    /// # Errors
    /// [`ReplayRefused::Running`] if a run of this event (its delivery or a
    /// replay) goes on here, [`ReplayRefused::TooMany`] if its merchant has
    /// [`MAX_REPLAYS`] replays running here (nothing was started).
    pub fn replay(self: &Arc<Self>, event: Event, now_ms: u64) -> Result<(), ReplayRefused> {
        {
            // Under the replays lock: two replays of one event cannot both
            // pass the check before either is counted as running.
            let mut r = lock(&self.replays);
            if self.running(&event.id) {
                return Err(ReplayRefused::Running);
            }
            let n = r.entry(event.merchant.clone()).or_insert(0);
            if *n >= MAX_REPLAYS {
                return Err(ReplayRefused::TooMany);
            }
            *n += 1;
            count_up(&self.running, &event.id);
        }
        let run = Run {
            key: format!("{}:r{now_ms}", event.id),
            base: event.attempts,
            until_ms: now_ms.saturating_add(self.config.webhook_retry_ms()),
            replay: true,
            event,
        };
        self.spawn_counted(run);
        Ok(())
    }

    /// Spawns `run`, counted in [`Webhooks::running`] while it goes on.
    fn start(self: &Arc<Self>, run: Run) {
        count_up(&self.running, &run.event.id);
        self.spawn_counted(run);
    }

    /// Spawns `run`, counted in [`Webhooks::running`] already; counts it
    /// down when it ends.
    fn spawn_counted(self: &Arc<Self>, run: Run) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            deliver(&weak, &run).await;
            if let Some(w) = weak.upgrade() {
                count_down(&w.running, &run.event.id);
                if run.replay {
                    count_down(&w.replays, &run.event.merchant);
                }
            }
        });
    }

    /// The `KHQR-Signature` for `body` now: one `v1` per live secret of the
    /// merchant as it is in the store now (so a rotation applies to retries
    /// too). An error text if the merchant is gone or disabled (nothing is
    /// sent) or the store cannot say.
    async fn signature(&self, merchant: &str, body: &[u8]) -> Result<String, String> {
        let merchant = match self.store.merchant_get(merchant).await {
            Ok(Some(m)) if !m.disabled => m,
            Ok(_) => return Err("the merchant is gone or disabled".into()),
            Err(e) => {
                tracing::warn!(detail = e.detail(), "webhook: store unavailable");
                return Err("store unavailable".into());
            }
        };
        let now = now_ms();
        signature_header(merchant.live_secrets(now).map(str::as_bytes), now, body)
            .ok_or_else(|| "the merchant has no live secret".to_owned())
    }

    /// One POST of `event` as attempt `n`.
    async fn attempt(&self, event: &Event, n: u32) -> Outcome {
        let id = event.id.as_str();
        let body = event.body.as_bytes();
        let signature = match self.signature(&event.merchant, body).await {
            Ok(s) => s,
            Err(e) => return Outcome::failed(e),
        };
        // Checked again: the rules may have changed since the create, and an
        // address literal never reaches the checking resolver.
        let url =
            match target::check_url(event.callback_url.as_deref().unwrap_or(""), &self.targets) {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(id, reason = %e, "webhook: the callback_url is refused");
                    return Outcome::failed(format!("callback_url refused: {e}"));
                }
            };
        let sent = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header(bakong_khqr::webhook::SIGNATURE_HEADER, signature)
            .header("Idempotency-Key", id)
            .header("KHQR-Event-Id", id)
            .header("KHQR-Attempt", n.to_string())
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(resp) => Outcome {
                status: Some(resp.status().as_u16()),
                error: None,
            },
            Err(e) => {
                tracing::warn!(id, attempt = n, error = %e, "webhook: not delivered");
                let what = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect error"
                } else {
                    "request error"
                };
                Outcome::failed(what)
            }
        }
    }

    /// Logs a store failure of the delivery bookkeeping.
    fn logged(r: Result<(), crate::store::StoreError>) {
        if let Err(e) = r {
            tracing::warn!(detail = e.detail(), "webhook: cannot record the delivery");
        }
    }

    /// The run's event is done: its state `state` after `attempts`, off the
    /// outbox.
    async fn finish(&self, run: &Run, state: DeliveryState, attempts: u32) {
        Self::logged(
            self.store
                .event_delivery(&run.event.id, state, attempts)
                .await,
        );
        Self::logged(self.store.outbox_remove(&run.event.id).await);
    }

    /// The run's lease says delivered (by another instance, or by a run
    /// that stopped before it took the event off the outbox): marks the
    /// event delivered (if not already, keeping its attempt count) and
    /// unlists it.
    async fn delivered_elsewhere(&self, run: &Run) {
        let id = &run.event.id;
        if let Ok(Some(e)) = self.store.event_get(&run.event.merchant, id).await {
            if e.delivery != DeliveryState::Delivered {
                Self::logged(
                    self.store
                        .event_delivery(id, DeliveryState::Delivered, e.attempts)
                        .await,
                );
            }
        }
        Self::logged(self.store.outbox_remove(id).await);
    }

    /// Attempt `run_n` of `run` (under its lease), logged; whether it
    /// delivered.
    async fn attempt_logged(&self, run: &Run, run_n: u32) -> bool {
        let n = run.base.saturating_add(run_n);
        let keep = self
            .config
            .webhook_retry_ms()
            .saturating_add(self.config.grace_ms());
        // Counted before it is sent: an attempt cut off by a crash still
        // counts, so the next one says `KHQR-Attempt: n + 1`.
        Self::logged(
            self.store
                .delivery_update(&run.key, false, run_n, keep)
                .await,
        );
        Self::logged(
            self.store
                .event_delivery(&run.event.id, DeliveryState::Pending, n)
                .await,
        );
        let at_ms = now_ms();
        let started = Instant::now();
        let outcome = self.attempt(&run.event, n).await;
        let ok = outcome.ok();
        let attempt = Attempt {
            event_id: run.event.id.clone(),
            n,
            at_ms,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            status: outcome.status,
            error: outcome.error,
            ok,
        };
        Self::logged(self.store.attempt_add(&attempt).await);
        metrics::counter!("khqr_webhook_attempts_total", "result" => if ok { "ok" } else { "failed" })
            .increment(1);
        Self::logged(self.store.delivery_update(&run.key, ok, run_n, keep).await);
        if ok {
            tracing::info!(id = run.event.id, attempts = n, "webhook delivered");
            self.finish(run, DeliveryState::Delivered, n).await;
        }
        ok
    }
}

/// The wait before attempt `n + 1` after `n` failures: `base * 2^(n-1)`, at
/// most 60 s, times a random factor in [0.5, 1) (jitter).
fn backoff_ms(base_ms: u64, failures: u32) -> u64 {
    let exp = base_ms
        .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
        .min(60_000);
    let half = exp / 2;
    half + rand::random_range(0..=half.max(1))
}

/// Runs `run` until delivered (by any instance), or given up.
async fn deliver(webhooks: &Weak<Webhooks>, run: &Run) {
    let Some(w) = webhooks.upgrade() else { return };
    let lease_ms = w.config.upstream_timeout_ms.saturating_add(2_000);
    drop(w);
    loop {
        let Some(w) = webhooks.upgrade() else { return };
        if now_ms() > run.until_ms {
            tracing::warn!(
                id = run.event.id,
                "webhook: giving up after the retry period"
            );
            let attempts = run.event.attempts.max(run.base);
            let attempts = match w.store.event_get(&run.event.merchant, &run.event.id).await {
                Ok(Some(e)) => e.attempts,
                _ => attempts,
            };
            w.finish(run, DeliveryState::Failed, attempts).await;
            return;
        }
        let wait = match w.store.delivery(&run.key, &w.owner, lease_ms).await {
            Ok(Delivery::Done) => {
                // Delivered by a run that stopped before it was unlisted.
                if !run.replay {
                    w.delivered_elsewhere(run).await;
                }
                return;
            }
            Ok(Delivery::Busy) => lease_ms / 2,
            Err(e) => {
                tracing::warn!(detail = e.detail(), "webhook: store unavailable");
                1_000
            }
            Ok(Delivery::Leased { attempts }) => {
                let run_n = attempts.saturating_add(1);
                // A replay is one attempt, logged like any other: it holds
                // one of the merchant's replay slots for one attempt, not
                // for a day of retries (the event stays owed in the outbox
                // if it still is).
                if w.attempt_logged(run, run_n).await || run.replay {
                    return;
                }
                backoff_ms(w.config.webhook_backoff_ms, run_n)
            }
        };
        drop(w);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// Every 2 s while `webhooks` lives: takes up the owed events of the outbox
/// ([`EventLog::outbox_list`]) that no run of this process handles: after a
/// restart, or an event of another instance that stopped. Their runs keep
/// the lease rules, so an event another instance is delivering waits.
pub fn spawn_outbox(webhooks: Weak<Webhooks>) {
    tokio::spawn(async move {
        loop {
            {
                let Some(w) = webhooks.upgrade() else { return };
                match w.store.outbox_list(now_ms(), OUTBOX_BATCH).await {
                    Ok(list) => {
                        for event in list {
                            w.deliver(event);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(detail = e.detail(), "webhook: cannot list owed events");
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        for n in 1..8u32 {
            let full = (100u64 << (n - 1)).min(60_000);
            let d = backoff_ms(100, n);
            assert!(d >= full / 2 && d <= full, "{n}: {d}");
        }
        assert!(backoff_ms(1_000, 30) <= 60_000);
    }
}
