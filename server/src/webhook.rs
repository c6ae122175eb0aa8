//! Signed payment webhooks.
//!
//! When a QR created with a `callback_url` is paid, the server POSTs one JSON
//! event to it (see [`PaidEvent`]) with these headers:
//!
//! * `Content-Type: application/json`;
//! * `KHQR-Signature: t=<ms>,v1=<64 hex>`: HMAC-SHA256 under the operator's
//!   secret over the decimal timestamp, a `.`, and the raw body
//!   ([`bakong_khqr::webhook::sign`]); verify it with
//!   [`bakong_khqr::webhook::verify_webhook_signature`];
//! * `Idempotency-Key: <md5>`: the same on every attempt for one payment;
//! * `KHQR-Attempt: <n>`: 1 for the first attempt, counted across instances
//!   and restarts.
//!
//! Any 2xx answer is success. Anything else (or no answer within the upstream
//! timeout) is retried with exponential backoff and full jitter
//! ([`crate::Config::webhook_backoff_ms`] doubling, at most 60 s apart) until
//! [`crate::Config::webhook_retry_ms`] has passed since the payment was seen.
//! Delivery is at least once: a receiver must treat a repeated key as done.
//!
//! The delivery state (done, attempts) lives in the store; an instance
//! delivers only while it holds the store's lease for that MD5
//! ([`crate::store::Store::delivery`]), so with Redis and several instances
//! one instance delivers each event.

pub mod target;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::checkout::PageStatus;
use crate::store::{Delivery, Record, Store};
use crate::{now_ms, AppState};

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

/// Per-instance delivery bookkeeping.
pub(crate) struct Webhooks {
    /// MD5s whose delivery task runs in this process.
    running: Mutex<HashSet<String>>,
    /// This instance's lease owner name.
    owner: String,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            running: Mutex::new(HashSet::new()),
            owner: format!("{:016x}", rand::random::<u64>()),
        }
    }
}

/// The QR `record` is paid: starts its delivery in this process unless it
/// runs already, there is no callback, or the operator set no secret.
pub(crate) fn paid(state: &Arc<AppState>, tran: &str, record: &Record, status: &PageStatus) {
    let (Some(url), Some(_)) = (&record.callback_url, &state.webhook_secret) else {
        return;
    };
    let PageStatus::Paid {
        amount,
        currency,
        paid_at_ms,
        ..
    } = status
    else {
        return;
    };
    {
        let mut running = state
            .webhooks
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !running.insert(record.md5.clone()) {
            return;
        }
    }
    let body = serde_json::to_vec(&PaidEvent {
        kind: "khqr.paid",
        md5: &record.md5,
        tran,
        bakong_id: &record.bakong_id,
        amount,
        currency,
        paid_at_ms: *paid_at_ms,
    })
    .unwrap_or_default();
    let weak = Arc::downgrade(state);
    let md5 = record.md5.clone();
    let url = url.clone();
    let tran = tran.to_owned();
    tokio::spawn(async move {
        deliver(&weak, &md5, &url, &body).await;
        if let Some(st) = weak.upgrade() {
            if let Err(e) = st.store.watch_remove(&tran).await {
                tracing::warn!(detail = e.detail(), "webhook: cannot unlist the QR");
            }
        }
        if let Some(st) = weak.upgrade() {
            st.webhooks
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&md5);
        }
    });
}

/// Every 2 s, watches here the QRs listed in the store as owed a webhook
/// that no watcher or delivery of this process handles: after a restart, or a
/// QR created by another instance that stopped.
pub(crate) fn spawn_resume(state: std::sync::Weak<AppState>) {
    tokio::spawn(async move {
        loop {
            {
                let Some(st) = state.upgrade() else { return };
                match st.store.watch_list(now_ms(), 1_000).await {
                    Ok(list) => {
                        for (tran, record) in list {
                            let running = st
                                .webhooks
                                .running
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .contains(&record.md5);
                            if !running && !st.hub.watching(&tran) {
                                drop(crate::checkout::subscribe(&st, &tran, &record));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(detail = e.detail(), "webhook: cannot list owed webhooks");
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
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

async fn deliver(state: &std::sync::Weak<AppState>, md5: &str, url: &str, body: &[u8]) {
    let Some(st) = state.upgrade() else { return };
    let deadline = now_ms().saturating_add(st.webhook_retry_ms);
    let lease_ms = st.upstream_timeout_ms.saturating_add(2_000);
    let owner = st.webhooks.owner.clone();
    drop(st);
    loop {
        let Some(st) = state.upgrade() else { return };
        if now_ms() > deadline {
            tracing::warn!(md5, "webhook: giving up after the retry period");
            return;
        }
        let wait = match st.store.delivery(md5, &owner, lease_ms).await {
            Ok(Delivery::Done) => return,
            Ok(Delivery::Busy) => lease_ms / 2,
            Err(e) => {
                tracing::warn!(detail = e.detail(), "webhook: store unavailable");
                1_000
            }
            Ok(Delivery::Leased { attempts }) => {
                let n = attempts.saturating_add(1);
                let ok = attempt(&st, url, md5, body, n).await;
                metrics::counter!("khqr_webhook_attempts_total", "result" => if ok { "ok" } else { "failed" })
                    .increment(1);
                let keep = st.webhook_retry_ms.saturating_add(st.grace_ms);
                if let Err(e) = st.store.delivery_update(md5, ok, n, keep).await {
                    tracing::warn!(detail = e.detail(), "webhook: cannot record the attempt");
                }
                if ok {
                    tracing::info!(md5, attempts = n, "webhook delivered");
                    return;
                }
                backoff_ms(st.webhook_backoff_ms, n)
            }
        };
        drop(st);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// One POST; true on a 2xx answer.
async fn attempt(st: &AppState, url: &str, md5: &str, body: &[u8], n: u32) -> bool {
    let Some(secret) = &st.webhook_secret else {
        return false;
    };
    // Checked again: the rules may have changed since the create, and an
    // address literal never reaches the checking resolver.
    let url = match target::check_url(url, &st.targets) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(md5, reason = %e, "webhook: the callback_url is refused");
            return false;
        }
    };
    let signature = bakong_khqr::webhook::sign(secret, now_ms(), body);
    let sent = st
        .webhook_client
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
