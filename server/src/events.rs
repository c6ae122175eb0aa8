//! Payment events: what happens to a merchant's QR, logged and sent.
//!
//! [`Events::emit`] makes the event of a kind for an [`Entry`] (its stable
//! id, [`event_id`]; its JSON body, [`EventBody`]), files it in the event log
//! ([`EventLog::event_put`]: once, whichever instance or job emits it) and,
//! if the QR has a `callback_url`, lists it in the outbox
//! ([`EventLog::outbox_add`]) and hands it to webhook delivery
//! ([`Webhooks::deliver`]); [`Events::replay`] sends one again.
//!
//! The kinds: `khqr.created` (at create), `khqr.paid` (paid before expiry),
//! `khqr.expired` (expired unpaid, found by the reconciliation job),
//! `khqr.paid_late` (paid after expiry).

use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::ledger::{event_id, DeliveryState, Entry, Event, EventKind, EventLog};
use crate::store::{AnyStore, Filing, StoreError};
use crate::webhook::{ReplayRefused, Webhooks};

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
    webhooks: Arc<Webhooks>,
}

/// Why [`Events::replay`] sent nothing.
#[derive(Debug)]
pub enum ReplayError {
    /// No such event of this merchant (or it is past its retention).
    NotFound,
    /// Its QR has no `callback_url`: there is nowhere to send it.
    NoCallback,
    /// The merchant has [`crate::webhook::MAX_REPLAYS`] replays running.
    TooMany,
    /// A delivery or replay of this event goes on: wait for it to end.
    Running,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        ReplayError::Store(e)
    }
}

impl Events {
    /// Events on `store`, delivered by `webhooks`.
    pub fn new(config: Arc<Config>, store: Arc<AnyStore>, webhooks: Arc<Webhooks>) -> Self {
        Events {
            config,
            store,
            webhooks,
        }
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
        // Owed first, filed second: a crash between the two leaves an outbox
        // row without its event (skipped, then dropped), never an event
        // filed but owed to nobody.
        if event.callback_url.is_some() {
            self.store
                .outbox_add(&event.id, self.owed_until(now_ms))
                .await?;
        }
        if !self
            .store
            .event_put(&event, self.kept_until(now_ms))
            .await?
        {
            return Ok(None);
        }
        self.filed(&event);
        Ok(Some(event))
    }

    /// Sends event `id` of `merchant` again now (same id, same body; see
    /// [`Webhooks::replay`]): lists it as owed and pending, and answers it
    /// as it is now.
    ///
    /// # Errors
    /// [`ReplayError::NotFound`] (none of this merchant's),
    /// [`ReplayError::NoCallback`], [`ReplayError::TooMany`] (nothing sent),
    /// [`ReplayError::Store`].
    pub async fn replay(
        &self,
        merchant: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<Event, ReplayError> {
        let mut event = self
            .store
            .event_get(merchant, id)
            .await?
            .ok_or(ReplayError::NotFound)?;
        if event.callback_url.is_none() {
            return Err(ReplayError::NoCallback);
        }
        self.webhooks
            .replay(event.clone(), now_ms)
            .map_err(|r| match r {
                ReplayRefused::TooMany => ReplayError::TooMany,
                ReplayRefused::Running => ReplayError::Running,
            })?;
        self.store
            .outbox_add(&event.id, self.owed_until(now_ms))
            .await?;
        event.delivery = DeliveryState::Pending;
        Ok(event)
    }

    /// Until when an event (or entry) made at `at_ms` is kept:
    /// [`Config::retention_ms`] on.
    fn kept_until(&self, at_ms: u64) -> u64 {
        at_ms.saturating_add(self.config.retention_ms())
    }

    /// Until when an event listed as owed at `at_ms` stays owed:
    /// [`Config::webhook_retry_ms`] on.
    fn owed_until(&self, at_ms: u64) -> u64 {
        at_ms.saturating_add(self.config.webhook_retry_ms())
    }

    /// What a merchant's create files with its QR
    /// ([`AnyStore::create_filed`]): `entry`, its `khqr.created` (made at
    /// `entry.created_ms`), each kept for [`Config::retention_ms`]; when the
    /// QR has a `callback_url`, the event's outbox row (owed for
    /// [`Config::webhook_retry_ms`]) and `watch_until_ms` (the QR watched
    /// for its payment until then).
    #[must_use]
    pub fn filing(&self, entry: Entry, watch_until_ms: Option<u64>) -> Filing {
        let at = entry.created_ms;
        let event = self.make(EventKind::Created, &entry, at);
        let keep = self.kept_until(at);
        let owed = event.callback_url.is_some();
        Filing {
            entry,
            entry_keep_ms: keep,
            event,
            event_keep_ms: keep,
            outbox_until_ms: owed.then(|| self.owed_until(at)),
            watch_until_ms: watch_until_ms.filter(|_| owed),
        }
    }

    /// `event` was filed (by [`Events::emit`], or with its QR through
    /// [`Events::filing`]): counts it and starts its delivery.
    pub fn filed(&self, event: &Event) {
        metrics::counter!("khqr_events_total", "type" => event.kind.as_str()).increment(1);
        self.webhooks.deliver(event.clone());
    }
}
