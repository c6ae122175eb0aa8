//! Signed payment webhooks: the delivery worker.
//!
//! When a QR created with a `callback_url` is paid, the server POSTs one JSON
//! event to it (see [`PaidEvent`]) with these headers:
//!
//! * `Content-Type: application/json`;
//! * `KHQR-Signature: t=<ms>,v1=<64 hex>[,v1=…]`: HMAC-SHA256 under the
//!   secret of the merchant whose key created the QR, over the decimal
//!   timestamp, a `.`, and the raw body ([`bakong_khqr::webhook::sign`]); one
//!   `v1` per live secret of that merchant (two during a rotation, see
//!   [`crate::merchant`]); verify it with
//!   [`bakong_khqr::webhook::verify_webhook_signature`];
//! * `Idempotency-Key: <md5>`: the same on every attempt for one payment;
//! * `KHQR-Attempt: <n>`: 1 for the first attempt, counted across instances
//!   and restarts.
//!
//! Any 2xx answer is success. Anything else (or no answer within the upstream
//! timeout) is retried with exponential backoff and full jitter
//! ([`crate::Config::webhook_backoff_ms`] doubling, at most 60 s apart) until
//! [`crate::Config::webhook_retry_secs`] have passed since the payment was seen.
//! Delivery is at least once: a receiver must treat a repeated key as done.
//!
//! The delivery state (done, attempts) lives in the store; an instance
//! delivers only while it holds the store's lease for that MD5
//! ([`crate::store::Store::delivery`]), so with Redis and several instances
//! one instance delivers each event. The payment watchers (`watch.rs`) call
//! [`Webhooks::paid`]. Where a webhook may go (the IANA special-purpose
//! registries, ports, a checking resolver) is [`target`]'s: each attempt
//! checks the URL again and connects only to an address its one lookup
//! checked.

pub mod target;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;

use self::target::TargetPolicy;
use crate::config::{Config, ConfigError};
use crate::merchant::{signature_header, MerchantStore};
use crate::store::{AnyStore, Delivery, Record, Store};
use crate::time::now_ms;

/// The JSON body of a payment webhook.
#[derive(Debug, Serialize)]
pub struct PaidEvent<'a> {
    /// Always `"khqr.paid"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The QR's MD5: the idempotency key.
    pub md5: &'a str,
    /// The QR's `tran`.
    pub tran: &'a str,
    /// The Bakong account paid (`bakongid`).
    #[serde(rename = "bakongId")]
    pub bakong_id: &'a str,
    /// Amount paid, decimal text as Bakong reported it.
    pub amount: &'a str,
    /// Currency code.
    pub currency: &'a str,
    /// When Bakong acknowledged the payment, ms since the Unix epoch.
    #[serde(rename = "paidAtMs")]
    pub paid_at_ms: Option<u64>,
}

/// This instance's webhook deliveries.
pub struct Webhooks {
    config: Arc<Config>,
    store: Arc<AnyStore>,
    /// Where webhooks may go (from the `callback_*` options).
    targets: Arc<TargetPolicy>,
    /// The client that delivers them, through [`target::CheckedResolver`].
    client: reqwest::Client,
    /// MD5s whose delivery task runs in this process.
    running: Mutex<HashSet<String>>,
    /// This instance's lease owner name.
    owner: String,
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
            running: Mutex::new(HashSet::new()),
            owner: format!("{:016x}", rand::random::<u64>()),
        })
    }

    fn running_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where webhooks may go: checked at create, and again at each attempt.
    #[must_use]
    pub fn targets(&self) -> &TargetPolicy {
        &self.targets
    }

    /// Whether the delivery for `md5` runs in this process.
    pub fn running(&self, md5: &str) -> bool {
        self.running_set().contains(md5)
    }

    /// The QR `record` is paid (`amount` `currency` at `paid_at_ms`): starts
    /// its delivery in this process unless it runs already or there is no
    /// callback (only a merchant's keyed create has one).
    pub fn paid(
        self: &Arc<Self>,
        tran: &str,
        record: &Record,
        amount: &str,
        currency: &str,
        paid_at_ms: Option<u64>,
    ) {
        let (Some(url), Some(merchant)) = (&record.callback_url, &record.merchant) else {
            return;
        };
        if !self.running_set().insert(record.md5.clone()) {
            return;
        }
        let body = serde_json::to_vec(&PaidEvent {
            kind: "khqr.paid",
            md5: &record.md5,
            tran,
            bakong_id: &record.bakong_id,
            amount,
            currency,
            paid_at_ms,
        })
        .unwrap_or_default();
        let weak = Arc::downgrade(self);
        let md5 = record.md5.clone();
        let target = Target {
            url: url.clone(),
            merchant: merchant.clone(),
        };
        let tran = tran.to_owned();
        tokio::spawn(async move {
            deliver(&weak, &md5, &target, &body).await;
            if let Some(w) = weak.upgrade() {
                if let Err(e) = w.store.watch_remove(&tran).await {
                    tracing::warn!(detail = e.detail(), "webhook: cannot unlist the QR");
                }
                w.running_set().remove(&md5);
            }
        });
    }

    /// The `KHQR-Signature` for `body` now: one `v1` per live secret of the
    /// merchant as it is in the store now (so a rotation applies to retries
    /// too). `None` if the merchant is gone or disabled (nothing is sent).
    async fn signature(&self, merchant: &str, md5: &str, body: &[u8]) -> Option<String> {
        let merchant = match self.store.merchant_get(merchant).await {
            Ok(Some(m)) if !m.disabled => m,
            Ok(_) => {
                tracing::warn!(md5, "webhook: the merchant is gone or disabled");
                return None;
            }
            Err(e) => {
                tracing::warn!(detail = e.detail(), "webhook: store unavailable");
                return None;
            }
        };
        let now = now_ms();
        signature_header(merchant.live_secrets(now).map(str::as_bytes), now, body)
    }

    /// One POST; true on a 2xx answer.
    async fn attempt(&self, target: &Target, md5: &str, body: &[u8], n: u32) -> bool {
        let url = target.url.as_str();
        let Some(signature) = self.signature(&target.merchant, md5, body).await else {
            return false;
        };
        // Checked again: the rules may have changed since the create, and an
        // address literal never reaches the checking resolver.
        let url = match target::check_url(url, &self.targets) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(md5, reason = %e, "webhook: the callback_url is refused");
                return false;
            }
        };
        let sent = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header(bakong_khqr::webhook::SIGNATURE_HEADER, signature)
            .header("Idempotency-Key", md5)
            .header("KHQR-Attempt", n.to_string())
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(resp) => resp.status().is_success(),
            Err(e) => {
                tracing::warn!(md5, attempt = n, error = %e, "webhook: not delivered");
                false
            }
        }
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

/// Where an event goes and whose secrets sign it.
struct Target {
    url: String,
    merchant: String,
}

async fn deliver(webhooks: &Weak<Webhooks>, md5: &str, target: &Target, body: &[u8]) {
    let Some(w) = webhooks.upgrade() else { return };
    let deadline = now_ms().saturating_add(w.config.webhook_retry_ms());
    let lease_ms = w.config.upstream_timeout_ms.saturating_add(2_000);
    drop(w);
    loop {
        let Some(w) = webhooks.upgrade() else { return };
        if now_ms() > deadline {
            tracing::warn!(md5, "webhook: giving up after the retry period");
            return;
        }
        let wait = match w.store.delivery(md5, &w.owner, lease_ms).await {
            Ok(Delivery::Done) => return,
            Ok(Delivery::Busy) => lease_ms / 2,
            Err(e) => {
                tracing::warn!(detail = e.detail(), "webhook: store unavailable");
                1_000
            }
            Ok(Delivery::Leased { attempts }) => {
                let n = attempts.saturating_add(1);
                let ok = w.attempt(target, md5, body, n).await;
                metrics::counter!("khqr_webhook_attempts_total", "result" => if ok { "ok" } else { "failed" })
                    .increment(1);
                let keep = w
                    .config
                    .webhook_retry_ms()
                    .saturating_add(w.config.grace_ms());
                if let Err(e) = w.store.delivery_update(md5, ok, n, keep).await {
                    tracing::warn!(detail = e.detail(), "webhook: cannot record the attempt");
                }
                if ok {
                    tracing::info!(md5, attempts = n, "webhook delivered");
                    return;
                }
                backoff_ms(w.config.webhook_backoff_ms, n)
            }
        };
        drop(w);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
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
