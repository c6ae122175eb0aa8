//! Payment watchers: one task per open `tran` per instance polls Bakong
//! through the status cache ([`Upstream::status_of`], so coalesced with
//! `check`) while anyone watches (the checkout page's event stream) or a
//! webhook is owed, and publishes the result: on a `tokio::sync::watch`
//! channel that each viewer reads, and, as the poll lease's holder sees a
//! payment, to the payment record ([`crate::lifecycle::seen`]: `khqr.paid` or
//! `khqr.paid_late`, once across instances). No viewer ever calls Bakong
//! itself.
//!
//! The pace slows as the QR ages ([`poll_delay_ms`]: every
//! [`Config::poll_interval_ms`] at first, at most
//! [`Config::poll_max_interval_ms`]); each poll takes a token of the call
//! budget at watcher priority, or skips its turn. Only one instance polls a
//! QR at a time: the one holding its poll lease in the store (`pl:{md5}`);
//! the others read the payment it shares (`ps:{md5}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bakong_khqr::status::TransactionStatus;
use bakong_khqr::Md5;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::Config;
use crate::events::Events;
use crate::store::{AnyStore, Record, Store};
use crate::time::now_ms;
use crate::upstream::budget::{poll_delay_ms, Priority};
use crate::upstream::Upstream;

/// What a viewer sees: the state of one QR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PageStatus {
    /// Not paid yet.
    Pending,
    /// Paid: Bakong's amount (decimal text), currency, and when (ms since the
    /// Unix epoch; absent if Bakong gave no time).
    Paid {
        /// Amount paid, as Bakong reported it.
        amount: String,
        /// Currency code (`USD`/`KHR`).
        currency: String,
        /// When Bakong acknowledged it, ms since the Unix epoch.
        #[serde(rename = "paidAtMs")]
        paid_at_ms: Option<u64>,
        /// Where the page goes now, if the creator gave an allowed one.
        #[serde(rename = "successUrl", skip_serializing_if = "Option::is_none")]
        success_url: Option<String>,
    },
    /// Expired unpaid (or paid with the wrong amount: not a payment of this QR).
    Expired,
}

impl PageStatus {
    /// Paid or expired: nothing changes any more.
    #[must_use]
    pub fn is_final(&self) -> bool {
        !matches!(self, PageStatus::Pending)
    }

    /// What the page shows for Bakong's `status` of `record` at `now` (ms).
    #[must_use]
    pub fn of(status: &TransactionStatus, record: &Record, now: u64) -> PageStatus {
        match status {
            TransactionStatus::Paid(t) => PageStatus::Paid {
                amount: t.amount.clone(),
                currency: t.currency.clone(),
                paid_at_ms: t.acknowledged_ms.or(t.created_ms),
                success_url: record.success_url.clone(),
            },
            _ if now >= record.expires_ms => PageStatus::Expired,
            _ => PageStatus::Pending,
        }
    }
}

/// The open watchers of this instance, one per `tran`.
pub struct Watchers {
    config: Arc<Config>,
    store: Arc<AnyStore>,
    upstream: Arc<Upstream>,
    events: Arc<Events>,
    /// `tran` -> its status channel while a watcher runs here.
    open: Mutex<HashMap<String, watch::Sender<PageStatus>>>,
}

impl Watchers {
    /// No watchers yet.
    pub fn new(
        config: Arc<Config>,
        store: Arc<AnyStore>,
        upstream: Arc<Upstream>,
        events: Arc<Events>,
    ) -> Self {
        Watchers {
            config,
            store,
            upstream,
            events,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<PageStatus>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a watcher for `tran` runs in this process.
    pub fn watching(&self, tran: &str) -> bool {
        self.open().contains_key(tran)
    }

    /// Subscribes to `tran`'s status, starting its watcher if none runs here.
    pub fn subscribe(self: &Arc<Self>, tran: &str, record: &Record) -> watch::Receiver<PageStatus> {
        let mut map = self.open();
        if let Some(tx) = map.get(tran) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(PageStatus::Pending);
        map.insert(tran.to_owned(), tx.clone());
        drop(map);
        tokio::spawn(watch_tran(
            Arc::downgrade(self),
            tran.to_owned(),
            record.clone(),
            tx,
        ));
        rx
    }

    /// One poll: the status now (pending when Bakong cannot say or the turn
    /// is skipped, expired past the QR's life), published; whether the
    /// watcher should stop. `delay` is the wait until the next poll, in ms.
    async fn poll(
        &self,
        tran: &str,
        md5: &Md5,
        record: &Record,
        tx: &watch::Sender<PageStatus>,
        delay: u64,
    ) -> bool {
        let now = now_ms();
        let next = self.turn(md5, record, now, delay).await;
        tx.send_if_modified(|cur| {
            if *cur == next {
                false
            } else {
                *cur = next.clone();
                true
            }
        });
        if matches!(next, PageStatus::Paid { .. }) {
            // Settled when the lease's holder saw it (`turn`); nothing is owed
            // by watching any more.
            if let Err(e) = self.store.watch_remove(tran).await {
                tracing::warn!(
                    detail = e.detail(),
                    "cannot take a paid QR off the watched list"
                );
            }
        }
        let past_grace = now >= record.expires_ms.saturating_add(self.config.grace_ms());
        let wants_webhook = record.callback_url.is_some()
            && !matches!(next, PageStatus::Paid { .. })
            && !past_grace;
        let done = next.is_final() && !(wants_webhook && matches!(next, PageStatus::Expired));
        if done || (tx.receiver_count() == 0 && !wants_webhook) {
            if record.callback_url.is_some() && next == PageStatus::Expired && past_grace {
                let _ = self.store.watch_remove(tran).await;
            }
            return true;
        }
        false
    }

    /// The status at `now` as this instance learns it: the holder of the QR's
    /// poll lease (taken or renewed until just after the next turn, `delay`
    /// ms on) asks Bakong at watcher priority and shares a payment it sees;
    /// the others read that payment from the store. A skipped turn, a failure
    /// or nothing shared: what the clock says (pending, or expired).
    async fn turn(&self, md5: &Md5, record: &Record, now: u64, delay: u64) -> PageStatus {
        let by_clock = if now >= record.expires_ms {
            PageStatus::Expired
        } else {
            PageStatus::Pending
        };
        // Held until the next turn has had time to start and ask Bakong.
        let lease_ms = delay
            .saturating_add(self.config.upstream_timeout_ms)
            .saturating_add(1_000);
        let paid_key = format!("ps:{}", record.md5);
        let lease_key = format!("pl:{}", record.md5);
        let instance = self.upstream.instance();
        let holder = self.store.lease(&lease_key, instance, lease_ms, now).await;
        if !holder.unwrap_or(false) {
            return match self.store.shared_get(&paid_key, now).await {
                Ok(Some(json)) => serde_json::from_str(&json).unwrap_or(by_clock),
                _ => by_clock,
            };
        }
        let asked = self
            .upstream
            .status_of(md5, Some(record), Priority::Watch)
            .await;
        let Ok(status) = asked else {
            return by_clock;
        };
        crate::lifecycle::seen(&self.store, &self.events, record, &status, now).await;
        let next = PageStatus::of(&status, record, now);
        if let PageStatus::Paid { .. } = next {
            let keep = record
                .expires_ms
                .saturating_add(self.config.grace_ms())
                .saturating_sub(now)
                .max(1_000);
            if let Ok(json) = serde_json::to_string(&next) {
                let _ = self.store.shared_put(&paid_key, &json, keep, now).await;
            }
        }
        next
    }
}

/// The watcher: polls until the QR is paid or has expired (and its grace
/// period passed), or nobody needs it any more, slower as the QR ages.
async fn watch_tran(
    watchers: Weak<Watchers>,
    tran: String,
    record: Record,
    tx: watch::Sender<PageStatus>,
) {
    let Some(md5) = Md5::from_hex(&record.md5) else {
        return;
    };
    loop {
        let Some(w) = watchers.upgrade() else { return };
        let born = record.expires_ms.saturating_sub(w.config.qr_ttl_ms());
        let age = now_ms().saturating_sub(born);
        let c = &w.config;
        let delay = poll_delay_ms(age, c.poll_interval_ms, c.poll_max_interval_ms);
        if w.poll(&tran, &md5, &record, &tx, delay).await {
            break;
        }
        drop(w);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some(w) = watchers.upgrade() {
        w.open().remove(&tran);
    }
}

/// Every 2 s, watches here the QRs listed in the store as owed a webhook
/// that no watcher or delivery of this process handles: after a restart, or a
/// QR created by another instance that stopped.
pub fn spawn_resume(watchers: Weak<Watchers>) {
    tokio::spawn(async move {
        loop {
            {
                let Some(w) = watchers.upgrade() else { return };
                match w.store.watch_list(now_ms(), 1_000).await {
                    Ok(list) => {
                        for (tran, record) in list {
                            if !w.watching(&tran) {
                                drop(w.subscribe(&tran, &record));
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
