//! The payment record: every QR a merchant's key created, with its final
//! status (kept for [`crate::Config::retention_days`]), and every event about
//! it with its deliveries.
//!
//! Two traits, each implemented by every backend (one file per backend and
//! trait: `store/entries_{memory,sqlite,redis}.rs`,
//! `store/events_{memory,sqlite,redis}.rs`) and by [`AnyStore`]:
//!
//! * [`EntryLog`]: one [`Entry`] per QR (by MD5), its status moved on only
//!   by compare-and-set ([`EntryLog::entry_settle`]), so that of two
//!   instances (or a watcher and the reconciliation job) exactly one sees a
//!   change and sends its event;
//! * [`EventLog`]: one [`Event`] per (kind, QR) with a stable id
//!   ([`event_id`]), its delivery state and every attempt ([`Attempt`]), and
//!   the outbox of events still owed to a receiver.
//!
//! Lists are ordered oldest first by `(created_ms, id)` and paginated with an
//! opaque [`Cursor`] (the last item's key): a page never repeats or skips an
//! item while new ones are added.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{AnyStore, StoreError};

/// Where a QR stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QrStatus {
    /// Not paid, not expired (or expired and not yet looked at by the
    /// reconciliation job).
    Pending,
    /// Paid before it expired.
    Paid,
    /// Expired unpaid (`khqr.expired` was sent).
    Expired,
    /// Paid after it expired (`khqr.paid_late` was sent).
    PaidLate,
}

impl QrStatus {
    /// Every status, in order.
    pub const ALL: [QrStatus; 4] = [
        QrStatus::Pending,
        QrStatus::Paid,
        QrStatus::Expired,
        QrStatus::PaidLate,
    ];

    /// `pending`, `paid`, `expired`, `paid_late`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            QrStatus::Pending => "pending",
            QrStatus::Paid => "paid",
            QrStatus::Expired => "expired",
            QrStatus::PaidLate => "paid_late",
        }
    }

    /// Paid or paid late.
    #[must_use]
    pub fn is_paid(self) -> bool {
        matches!(self, QrStatus::Paid | QrStatus::PaidLate)
    }
}

impl fmt::Display for QrStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QrStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        QrStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or(UnknownName)
    }
}

/// A name that is not one of the enum's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownName;

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown name")
    }
}

impl std::error::Error for UnknownName {}

/// A payment Bakong reported for a QR (or a test payment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Amount paid: decimal text as Bakong sent it (never a float).
    pub amount: String,
    /// Currency code as Bakong sent it (`USD`, `KHR`).
    pub currency: String,
    /// When Bakong acknowledged it, ms since the Unix epoch (absent if
    /// Bakong gave no time).
    #[serde(rename = "paidAtMs", default, skip_serializing_if = "Option::is_none")]
    pub paid_at_ms: Option<u64>,
    /// Bakong's transaction hash (64 hex digits; `test_…` for a test payment).
    pub hash: String,
    /// The payer's Bakong account ID, if Bakong said.
    #[serde(
        rename = "fromAccountId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub from_account_id: Option<String>,
}

/// One QR a merchant's key created, as the record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// MD5 of the payload, 32 lowercase hex digits: the entry's key.
    pub md5: String,
    /// The QR's short transaction id.
    pub tran: String,
    /// The merchant whose key created it.
    pub merchant: String,
    /// The Bakong account paid (`bakongid`).
    #[serde(rename = "bakongId")]
    pub bakong_id: String,
    /// The `username` given at creation.
    pub username: String,
    /// The amount asked: decimal text as given at create (never a float).
    pub amount: String,
    /// `USD` or `KHR`.
    pub currency: String,
    /// When it was created, ms since the Unix epoch.
    #[serde(rename = "createdMs")]
    pub created_ms: u64,
    /// When it expires (tag 99), ms since the Unix epoch.
    #[serde(rename = "expiresMs")]
    pub expires_ms: u64,
    /// Where it stands.
    pub status: QrStatus,
    /// When `status` last changed, ms since the Unix epoch.
    #[serde(rename = "updatedMs")]
    pub updated_ms: u64,
    /// The payment, once paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<Payment>,
    /// Made with a test key: never paid through Bakong.
    #[serde(default)]
    pub test: bool,
    /// Where its events go (`POST`), if the create gave one.
    #[serde(
        rename = "callbackUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub callback_url: Option<String>,
}

/// Which entries a list wants. Times are ms since the Unix epoch, `from`
/// inclusive, `to` exclusive, on `created_ms`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Created at or after.
    pub from_ms: Option<u64>,
    /// Created before.
    pub to_ms: Option<u64>,
    /// Only this status.
    pub status: Option<QrStatus>,
    /// Only this `bakongid` (compared as stored).
    pub bakong_id: Option<String>,
}

impl EntryFilter {
    /// Whether `e` passes.
    #[must_use]
    pub fn admits(&self, e: &Entry) -> bool {
        self.from_ms.is_none_or(|f| e.created_ms >= f)
            && self.to_ms.is_none_or(|t| e.created_ms < t)
            && self.status.is_none_or(|s| e.status == s)
            && self.bakong_id.as_deref().is_none_or(|b| e.bakong_id == b)
    }
}

/// A position in a list: the last item's `(ms, id)`. Written as
/// `<ms>.<id>`; an item comes after a cursor if its key is greater.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// The item's time (ms since the Unix epoch).
    pub ms: u64,
    /// The item's id (an MD5 or an event id).
    pub id: String,
}

impl Cursor {
    /// The cursor just past `(ms, id)`.
    #[must_use]
    pub fn new(ms: u64, id: &str) -> Self {
        Cursor {
            ms,
            id: id.to_owned(),
        }
    }

    /// Whether the item `(ms, id)` comes after this cursor.
    #[must_use]
    pub fn before(&self, ms: u64, id: &str) -> bool {
        (ms, id) > (self.ms, self.id.as_str())
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.ms, self.id)
    }
}

impl FromStr for Cursor {
    type Err = UnknownName;
    /// `<ms>.<id>`, the id 1 to 64 of `a-z`, `0-9`, `_`.
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        let (ms, id) = s.split_once('.').ok_or(UnknownName)?;
        let ms = ms.parse().map_err(|_| UnknownName)?;
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Cursor::new(ms, id))
        } else {
            Err(UnknownName)
        }
    }
}

/// What an event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// `khqr.created`: a QR was made.
    #[serde(rename = "khqr.created")]
    Created,
    /// `khqr.paid`: paid before it expired.
    #[serde(rename = "khqr.paid")]
    Paid,
    /// `khqr.expired`: expired unpaid.
    #[serde(rename = "khqr.expired")]
    Expired,
    /// `khqr.paid_late`: paid after it expired.
    #[serde(rename = "khqr.paid_late")]
    PaidLate,
}

impl EventKind {
    /// Every kind, in order.
    pub const ALL: [EventKind; 4] = [
        EventKind::Created,
        EventKind::Paid,
        EventKind::Expired,
        EventKind::PaidLate,
    ];

    /// `khqr.created`, `khqr.paid`, `khqr.expired`, `khqr.paid_late`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "khqr.created",
            EventKind::Paid => "khqr.paid",
            EventKind::Expired => "khqr.expired",
            EventKind::PaidLate => "khqr.paid_late",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        EventKind::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or(UnknownName)
    }
}

/// The stable id of the event `kind` about the QR `md5`: `evt_` and 24
/// lowercase hex digits of SHA-256 over `kind`, `:`, `md5`. Every instance
/// computes the same id, so an event is stored (and sent) once.
#[must_use]
pub fn event_id(kind: EventKind, md5: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    h.update(b":");
    h.update(md5.as_bytes());
    let digest = h.finalize();
    format!("evt_{}", hex::encode(&digest[..12]))
}

/// Where an event's delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Its QR has no `callback_url`: kept for the list only.
    None,
    /// Owed: being delivered or waiting for a retry.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Given up after the retry period (a replay may send it again).
    Failed,
}

/// One event, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// [`event_id`] of `kind` and `md5`.
    pub id: String,
    /// What it says.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The merchant it belongs to.
    pub merchant: String,
    /// Its QR's MD5.
    pub md5: String,
    /// Its QR's `tran`.
    pub tran: String,
    /// When it happened, ms since the Unix epoch.
    #[serde(rename = "createdMs")]
    pub created_ms: u64,
    /// A test event (its QR was made with a test key).
    #[serde(default)]
    pub test: bool,
    /// The exact JSON body sent (and signed) on every attempt.
    pub body: String,
    /// Where it is sent, if anywhere.
    #[serde(
        rename = "callbackUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub callback_url: Option<String>,
    /// Where its delivery stands.
    pub delivery: DeliveryState,
    /// Attempts made so far (across instances and restarts).
    pub attempts: u32,
}

/// One delivery attempt of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The event's id.
    #[serde(rename = "eventId")]
    pub event_id: String,
    /// 1 for the first attempt.
    pub n: u32,
    /// When it was sent, ms since the Unix epoch.
    #[serde(rename = "atMs")]
    pub at_ms: u64,
    /// How long until the answer (or the failure), in ms.
    #[serde(rename = "durationMs")]
    pub duration_ms: u64,
    /// The receiver's HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why there was no answer (connect error, timeout, refused target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether this attempt delivered it (a 2xx answer).
    pub ok: bool,
}

/// Which events a list wants (times on `created_ms`, `from` inclusive, `to`
/// exclusive, ms since the Unix epoch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this kind.
    pub kind: Option<EventKind>,
    /// Happened at or after.
    pub from_ms: Option<u64>,
    /// Happened before.
    pub to_ms: Option<u64>,
}

impl EventFilter {
    /// Whether `e` passes.
    #[must_use]
    pub fn admits(&self, e: &Event) -> bool {
        self.kind.is_none_or(|k| e.kind == k)
            && self.from_ms.is_none_or(|f| e.created_ms >= f)
            && self.to_ms.is_none_or(|t| e.created_ms < t)
    }
}

/// The QR record (see the module's docs), implemented by every backend.
pub trait EntryLog: Send + Sync + 'static {
    /// Files `entry` (kept until `keep_until_ms`) unless one with its MD5 is
    /// there: whether it was filed.
    fn entry_put(
        &self,
        entry: &Entry,
        keep_until_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The entry of `md5`, if kept.
    fn entry_get(
        &self,
        md5: &str,
    ) -> impl Future<Output = Result<Option<Entry>, StoreError>> + Send;

    /// Compare-and-set: if the entry of `md5` has one of the statuses `from`,
    /// sets its status to `to`, its payment to `payment` (if given) and
    /// `updated_ms` to `now_ms`, atomically (one Lua script with Redis), and
    /// returns the entry as it is now; `None` if there is no such entry or
    /// its status is not in `from` (someone else moved it on).
    fn entry_settle(
        &self,
        md5: &str,
        from: &[QrStatus],
        to: QrStatus,
        payment: Option<&Payment>,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<Entry>, StoreError>> + Send;

    /// Up to `limit` entries of `merchant` that pass `filter`, after `after`
    /// (by `(created_ms, md5)`), oldest first.
    fn entry_list(
        &self,
        merchant: &str,
        filter: &EntryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send;

    /// For the reconciliation job, across merchants: up to `limit` entries
    /// with status `status` whose `expires_ms` is in `[from_ms, to_ms)`,
    /// after `after` (by `(expires_ms, md5)`), soonest expiry first.
    fn entry_due(
        &self,
        status: QrStatus,
        from_ms: u64,
        to_ms: u64,
        after: Option<&Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send;

    /// Forgets entries past their keep time at `now_ms`: how many.
    fn entry_prune(&self, now_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// The event log (see the module's docs), implemented by every backend.
pub trait EventLog: Send + Sync + 'static {
    /// Files `event` (kept until `keep_until_ms`) unless one with its id is
    /// there: whether it was filed (the caller that filed it delivers it).
    fn event_put(
        &self,
        event: &Event,
        keep_until_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The event `id` of `merchant`, if kept.
    fn event_get(
        &self,
        merchant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Event>, StoreError>> + Send;

    /// Up to `limit` events of `merchant` that pass `filter`, after `after`
    /// (by `(created_ms, id)`), oldest first.
    fn event_list(
        &self,
        merchant: &str,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// Sets the delivery state and attempt count of event `id`.
    fn event_delivery(
        &self,
        id: &str,
        state: DeliveryState,
        attempts: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Logs one attempt (kept as long as its event).
    fn attempt_add(&self, attempt: &Attempt)
        -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The attempts of event `id`, first first, at most `limit`.
    fn attempt_list(
        &self,
        id: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Attempt>, StoreError>> + Send;

    /// Lists event `id` as owed until `until_ms` (any instance, or this one
    /// after a restart, delivers it).
    fn outbox_add(
        &self,
        id: &str,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes event `id` off the outbox.
    fn outbox_remove(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `max` owed events at `now_ms` (entries past their time dropped).
    fn outbox_list(
        &self,
        now_ms: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// Forgets events (and their attempts) past their keep time: how many.
    fn event_prune(&self, now_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Forwards each method of a trait to the backend in use.
macro_rules! forward_log {
    ($trait:ident { $($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)* }) => {
        impl $trait for AnyStore {
            $(async fn $name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                match self {
                    AnyStore::Memory(s) => s.$name($($arg),*).await,
                    AnyStore::Redis(s) => s.$name($($arg),*).await,
                    AnyStore::Sqlite(s) => s.$name($($arg),*).await,
                }
            })*
        }
    };
}

forward_log!(EntryLog {
    entry_put(entry: &Entry, keep_until_ms: u64) -> bool;
    entry_get(md5: &str) -> Option<Entry>;
    entry_settle(md5: &str, from: &[QrStatus], to: QrStatus, payment: Option<&Payment>, now_ms: u64) -> Option<Entry>;
    entry_list(merchant: &str, filter: &EntryFilter, after: Option<&Cursor>, limit: usize) -> Vec<Entry>;
    entry_due(status: QrStatus, from_ms: u64, to_ms: u64, after: Option<&Cursor>, limit: usize) -> Vec<Entry>;
    entry_prune(now_ms: u64) -> u64;
});

forward_log!(EventLog {
    event_put(event: &Event, keep_until_ms: u64) -> bool;
    event_get(merchant: &str, id: &str) -> Option<Event>;
    event_list(merchant: &str, filter: &EventFilter, after: Option<&Cursor>, limit: usize) -> Vec<Event>;
    event_delivery(id: &str, state: DeliveryState, attempts: u32) -> ();
    attempt_add(attempt: &Attempt) -> ();
    attempt_list(id: &str, limit: usize) -> Vec<Attempt>;
    outbox_add(id: &str, until_ms: u64) -> ();
    outbox_remove(id: &str) -> ();
    outbox_list(now_ms: u64, max: usize) -> Vec<Event>;
    event_prune(now_ms: u64) -> u64;
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in QrStatus::ALL {
            assert_eq!(s.as_str().parse::<QrStatus>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert!("khqr.unknown".parse::<EventKind>().is_err());
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let md5 = "0123456789abcdef0123456789abcdef";
        let a = event_id(EventKind::Paid, md5);
        assert_eq!(a, event_id(EventKind::Paid, md5));
        assert_ne!(a, event_id(EventKind::Expired, md5));
        assert_eq!(a.len(), 28);
        assert!(a.starts_with("evt_"));
    }

    #[test]
    fn cursors_parse_and_order() {
        let c: Cursor = "1700000000000.evt_ab12".parse().unwrap();
        assert_eq!(c.to_string(), "1700000000000.evt_ab12");
        assert!(c.before(1_700_000_000_000, "evt_ab13"));
        assert!(!c.before(1_700_000_000_000, "evt_ab12"));
        assert!(c.before(1_700_000_000_001, "a"));
        for bad in ["", "1", "x.y", "1.", "1.A", "1.a-b"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
