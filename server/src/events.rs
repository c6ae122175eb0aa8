//! Payment events: what happens to a merchant's QR, logged and sent.
//!
//! [`Events::emit`] makes the event of a kind for an [`Entry`] (its stable
//! id, [`event_id`]; its JSON body, [`EventBody`]), files it in the event log
//! ([`EventLog::event_put`]: once, whichever instance or job emits it) and,
//! if the QR has a `callback_url`, hands it to webhook delivery.
//!
//! The kinds: `khqr.created` (at create), `khqr.paid` (paid before expiry),
//! `khqr.expired` (expired unpaid, found by the reconciliation job),
//! `khqr.paid_late` (paid after expiry).

use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::ledger::{event_id, DeliveryState, Entry, EntryLog, Event, EventKind, EventLog};
use crate::store::{AnyStore, StoreError};

/// The JSON body of every event (the webhook's body, byte for byte what
/// the log keeps and a replay sends again).
#[derive(Debug, Serialize)]
pub struct EventBody<'a> {
    /// The event's stable id (`evt_` and 24 hex digits).
    pub id: &'a str,
    /// `khqr.created`, `khqr.paid`, `khqr.expired` or `khqr.paid_late`.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When it happened, ms since the Unix epoch.
    #[serde(rename = "createdMs")]
    pub created_ms: u64,
    /// A test event (made with a test key; no money moved).
    pub test: bool,
    /// The QR's MD5.
    pub md5: &'a str,
    /// The QR's `tran`.
    pub tran: &'a str,
    /// The Bakong account (`bakongid`).
    #[serde(rename = "bakongId")]
    pub bakong_id: &'a str,
    /// For `khqr.paid`/`khqr.paid_late`: the amount paid as Bakong reported
    /// it; otherwise the amount asked. Decimal text.
    pub amount: &'a str,
    /// Currency code.
    pub currency: &'a str,
    /// When the QR expires, ms since the Unix epoch.
    #[serde(rename = "expiresMs")]
    pub expires_ms: u64,
    /// When Bakong acknowledged the payment, ms since the Unix epoch.
    #[serde(rename = "paidAtMs", skip_serializing_if = "Option::is_none")]
    pub paid_at_ms: Option<u64>,
    /// Bakong's transaction hash of the payment.
    #[serde(rename = "hash", skip_serializing_if = "Option::is_none")]
    pub hash: Option<&'a str>,
}

/// The event log's writer.
pub struct Events {
    config: Arc<Config>,
    store: Arc<AnyStore>,
}

impl Events {
    /// Events on `store`.
    pub fn new(config: Arc<Config>, store: Arc<AnyStore>) -> Self {
        Events { config, store }
    }

    /// The event `kind` of `entry` at `now_ms`: its body and log record.
    #[must_use]
    pub fn make(&self, kind: EventKind, entry: &Entry, now_ms: u64) -> Event {
        let id = event_id(kind, &entry.md5);
        let paid = entry
            .payment
            .as_ref()
            .filter(|_| matches!(kind, EventKind::Paid | EventKind::PaidLate));
        let body = EventBody {
            id: &id,
            kind,
            created_ms: now_ms,
            test: entry.test,
            md5: &entry.md5,
            tran: &entry.tran,
            bakong_id: &entry.bakong_id,
            amount: paid.map_or(entry.amount.as_str(), |p| p.amount.as_str()),
            currency: paid.map_or(entry.currency.as_str(), |p| p.currency.as_str()),
            expires_ms: entry.expires_ms,
            paid_at_ms: paid.and_then(|p| p.paid_at_ms),
            hash: paid.map(|p| p.hash.as_str()),
        };
        let body = serde_json::to_string(&body).unwrap_or_default();
        Event {
            id,
            kind,
            merchant: entry.merchant.clone(),
            md5: entry.md5.clone(),
            tran: entry.tran.clone(),
            created_ms: now_ms,
            test: entry.test,
            body,
            callback_url: entry.callback_url.clone(),
            delivery: if entry.callback_url.is_some() {
                DeliveryState::Pending
            } else {
                DeliveryState::None
            },
            attempts: 0,
        }
    }

    /// Files the event `kind` of `entry` (once: a second emit of the same
    /// kind for the same QR files nothing) and, if this call filed it and
    /// the QR has a `callback_url`, starts its delivery. The filed event, or
    /// `None` if it was filed before.
    ///
    /// # Errors
    /// [`StoreError`] if the log cannot be written.
    pub async fn emit(
        &self,
        kind: EventKind,
        entry: &Entry,
        now_ms: u64,
    ) -> Result<Option<Event>, StoreError> {
        let event = self.make(kind, entry, now_ms);
        let keep = now_ms.saturating_add(self.config.retention_ms());
        if !self.store.event_put(&event, keep).await? {
            return Ok(None);
        }
        metrics::counter!("khqr_events_total", "type" => kind.as_str()).increment(1);
        Ok(Some(event))
    }

    /// A merchant's QR was created: files its [`Entry`] and `khqr.created`.
    ///
    /// # Errors
    /// [`StoreError`] if the record cannot be written.
    pub async fn created(&self, entry: &Entry) -> Result<(), StoreError> {
        let keep = entry.created_ms.saturating_add(self.config.retention_ms());
        self.store.entry_put(entry, keep).await?;
        self.emit(EventKind::Created, entry, entry.created_ms)
            .await?;
        Ok(())
    }
}
