//! Where created QRs live, and the rate limits: the [`Store`] trait, the
//! durable embedded [`SqliteStore`] (one file on disk, the single-instance
//! default), an in-memory [`MemoryStore`] (tests, throwaway runs) and a shared
//! [`RedisStore`] (several instances).
//!
//! Every request makes **one** call to the store, which both applies the rate
//! limits of its [`Payer`] (an anonymous client, or a merchant by its key;
//! for an anonymous create or a check that finds a QR of that account, also
//! the Bakong account's) and reads or writes the QR. With Redis that call is one Lua script, one
//! round trip, so limits and QRs are shared by every instance.
//!
//! A full store never refuses everyone: each client (its IP address, or its
//! IPv6 /64) holds at most [`Limits::quota_per_client`] QRs; its next create
//! displaces its own oldest one (O(1)). The in-memory store additionally holds at
//! most [`Limits::max_entries`] QRs in total and evicts the least recently used
//! beyond that.
//!
//! Merchants live in the store too ([`crate::merchant::MerchantStore`], which
//! every backend and [`AnyStore`] implement).
//!
//! One backend per file: `memory.rs`, `sqlite.rs`, `redis.rs` (its Lua
//! scripts in `lua/`); `buckets.rs` holds the SQLite store's in-process rate
//! limits; `coord.rs` the call budget's arithmetic, shared by every backend.

mod buckets;
pub mod coord;
mod entries_memory;
mod entries_redis;
mod entries_sqlite;
mod events_memory;
mod events_redis;
mod events_sqlite;
mod memory;
mod redis;
pub mod sqlite;

use std::fmt;
use std::future::Future;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::idempotency::Idempotency;
use crate::ledger::{Entry, EntryLog, Event, EventLog};
use crate::merchant::{Merchant, MerchantStore, SaveConflict};

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;
pub use self::sqlite::SqliteStore;

/// One created QR, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// MD5 of the payload, 32 lowercase hex digits.
    pub md5: String,
    /// The Bakong account that created it (`bakongid`).
    pub bakong_id: String,
    /// The `username` given at creation (`unknown_user` when none was).
    pub username: String,
    /// The KHQR payload.
    pub payload: String,
    /// When the QR expires (tag 99), in ms since the Unix epoch.
    pub expires_ms: u64,
    /// Where the checkout page goes once paid (allowed by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_url: Option<String>,
    /// Where the payment webhook is sent (`POST`) (checked at create time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The merchant whose key created it (its webhook is signed with that
    /// merchant's secrets); `None` for an anonymous create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Made with a merchant's test key: never sent to Bakong (see
    /// [`crate::lifecycle`]). Absent (false) in records stored before test mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

/// Whose rate limit and QR quota a request is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payer<'a> {
    /// An anonymous client, by its address key (an IP address, or an IPv6
    /// /64): the per-client bucket and quota, and, for a create or for a
    /// check that finds a QR of that `bakongid`, the per-`bakongid` bucket.
    Client(&'a str),
    /// A merchant, by id (a keyed request): its own bucket and quota only.
    Merchant(&'a str),
}

impl<'a> From<&'a str> for Payer<'a> {
    fn from(client: &'a str) -> Self {
        Payer::Client(client)
    }
}

impl<'a> From<&'a String> for Payer<'a> {
    fn from(client: &'a String) -> Self {
        Payer::Client(client)
    }
}

/// The state of one webhook delivery, as [`Store::delivery`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered already (by any instance): nothing to do.
    Done,
    /// This caller holds the lease until it expires; `attempts` made so far.
    Leased {
        /// Attempts made so far (by any instance), carried over restarts.
        attempts: u32,
    },
    /// Another instance holds the lease.
    Busy,
}

/// Rate limits and capacity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests per second one client (IP address or IPv6 /64) may make, on
    /// every endpoint; 0 turns the limit off.
    pub client_per_sec: u32,
    /// Requests a client may make at once before `client_per_sec` applies.
    pub client_burst: u32,
    /// Requests per second naming one `bakongid` (create and checks); 0 = off.
    pub account_per_sec: u32,
    /// Burst for `account_per_sec`.
    pub account_burst: u32,
    /// QRs one client may hold; its next create displaces its own oldest.
    pub quota_per_client: u32,
    /// Requests per second of one merchant (keyed requests); 0 = off.
    pub merchant_per_sec: u32,
    /// Burst for `merchant_per_sec`.
    pub merchant_burst: u32,
    /// QRs one merchant may hold; its next create displaces its own oldest.
    pub quota_per_merchant: u32,
    /// QRs the in-memory store holds in all (least recently used evicted).
    pub max_entries: u64,
    /// How long a QR is kept after it expires, in ms (a payment made at the last
    /// second can still be checked).
    pub grace_ms: u64,
}

impl Default for Limits {
    /// 50 requests/s per client (burst 200), 20/s per `bakongid` (burst 100),
    /// 500/s per merchant (burst 1 000), 1 000 QRs per client, 100 000 per merchant, 200 000 QRs in memory (about 1.7 KiB of memory each), 5 minutes of grace.
    fn default() -> Self {
        Limits {
            client_per_sec: 50,
            client_burst: 200,
            account_per_sec: 20,
            account_burst: 100,
            quota_per_client: 1_000,
            merchant_per_sec: 500,
            merchant_burst: 1_000,
            quota_per_merchant: 100_000,
            max_entries: 200_000,
            grace_ms: 5 * 60 * 1000,
        }
    }
}

/// A rate limit said no: wait this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Milliseconds until the next request may pass (at least 1).
    pub retry_after_ms: u64,
}

/// The result of [`Store::create`] and [`Store::create_keyed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// Stored: the `tran` was free and is now this QR's.
    Stored,
    /// The `tran` is taken (by another create, even of the same payload):
    /// nothing was stored; make another payload (the server moves tag 99's
    /// timestamp on by a millisecond) and try again.
    Collision,
    /// A rate limit refused the request; nothing was stored.
    Limited(Limited),
    /// The idempotency key was used before, with the same parameters: this
    /// is what that create made (nothing new was stored).
    Replayed {
        /// The first create's `tran`.
        tran: String,
        /// The first create's MD5.
        md5: String,
    },
    /// The idempotency key was used before, with other parameters: nothing
    /// was stored.
    KeyReused,
}

/// The store could not be reached or answered nonsense. `Display` carries no
/// detail for clients; [`StoreError::detail`] is for logs.
#[derive(Debug)]
pub struct StoreError(String);

impl StoreError {
    /// An error whose detail (for the log) is `detail`.
    #[must_use]
    pub fn new(detail: impl Into<String>) -> Self {
        StoreError(detail.into())
    }

    /// What went wrong, for the operator's log.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("store unavailable")
    }
}

impl std::error::Error for StoreError {}

/// The state of the server. Implementations: [`SqliteStore`], [`MemoryStore`],
/// [`RedisStore`].
pub trait Store: Send + Sync + 'static {
    /// [`Store::create_keyed`] without an idempotency key.
    fn create<'a>(
        &self,
        payer: impl Into<Payer<'a>> + Send,
        tran: &str,
        record: &Record,
        now_ms: u64,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send {
        self.create_keyed(payer, tran, record, now_ms, None)
    }

    /// Applies the limits of `payer` (for an anonymous one, also of
    /// `record.bakong_id`); then, in one
    /// atomic step (one Lua script with Redis): if `idem`'s key is known,
    /// answers [`Created::Replayed`] (same fingerprint) or
    /// [`Created::KeyReused`]; else if `tran` is taken, [`Created::Collision`];
    /// else stores `record` under `tran` until `record.expires_ms` plus the
    /// grace period, displacing the payer's oldest QR beyond its quota, and
    /// files `idem`'s key for [`crate::idempotency::TTL_MS`] (at most the
    /// payer's QR quota of keys per scope: the oldest goes, as its QR
    /// would). `now_ms` is the caller's clock (ms since the Unix epoch).
    fn create_keyed<'a>(
        &self,
        payer: impl Into<Payer<'a>> + Send,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Applies the limit of `payer`, then reads the QR stored under `tran`.
    /// The `account`'s (`bakongid`'s) bucket is charged only for an anonymous
    /// payer and only when the QR exists and belongs to `account`: a check
    /// that proves nothing costs the account nothing.
    fn fetch<'a>(
        &self,
        payer: impl Into<Payer<'a>> + Send,
        account: Option<&str>,
        tran: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<Result<Option<Record>, Limited>, StoreError>> + Send;

    /// How many keys the store holds (QRs; with Redis, every key of the database).
    fn size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Whether the store answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes the delivery lease of the webhook for `md5` for `lease_ms` as
    /// `owner` (one instance at a time), unless it was delivered already or
    /// another owner holds the lease. With Redis: `SET NX PX`.
    fn delivery(
        &self,
        md5: &str,
        owner: &str,
        lease_ms: u64,
    ) -> impl Future<Output = Result<Delivery, StoreError>> + Send;

    /// Records the outcome of an attempt by the lease holder: `done` (keep the
    /// mark `keep_ms`, release the lease) or `attempts` so far.
    fn delivery_update(
        &self,
        md5: &str,
        done: bool,
        attempts: u32,
        keep_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lists `tran` among the QRs whose webhook is owed until `until_ms` (ms
    /// since the Unix epoch), so that any instance, or a restarted one, keeps
    /// watching it.
    fn watch_add(
        &self,
        tran: &str,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes `tran` off that list (delivered, or given up).
    fn watch_remove(&self, tran: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `max` listed QRs still owed at `now_ms`, with their records
    /// (entries past their time are dropped).
    fn watch_list(
        &self,
        now_ms: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<(String, Record)>, StoreError>> + Send;

    /// Takes one token of the Bakong call budget `rate` (one bucket for every
    /// instance sharing the store) at `now_ms` if `floor` tokens remain after
    /// it: `Ok(())`, or `Err(ms)` until one would be ([`coord::take`]; with
    /// Redis `lua/budget.lua` on `khqr:budget`).
    fn budget_take(
        &self,
        rate: coord::Rate,
        floor: u32,
        now_ms: u64,
    ) -> impl Future<Output = Result<Result<(), u64>, StoreError>> + Send;

    /// Takes or renews the lease `key` for `owner` until `now_ms + ttl_ms`:
    /// whether `owner` holds it now. One holder at a time (with Redis `SET NX
    /// PX` on `khqr:l:{key}`, renewed by its holder).
    fn lease(
        &self,
        key: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The value every instance sees under `key`, unless none or expired.
    fn shared_get(
        &self,
        key: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Keeps `value` under `key` for `ttl_ms`, for every instance (with Redis
    /// `khqr:s:{key}`).
    fn shared_put(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The store the server runs with, chosen at start.
#[allow(clippy::large_enum_variant)] // one per process
pub enum AnyStore {
    /// [`MemoryStore`].
    Memory(MemoryStore),
    /// [`RedisStore`].
    Redis(RedisStore),
    /// [`SqliteStore`].
    Sqlite(SqliteStore),
}

impl AnyStore {
    /// `"memory"`, `"redis"` or `"sqlite"`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Memory(_) => "memory",
            AnyStore::Redis(_) => "redis",
            AnyStore::Sqlite(_) => "sqlite",
        }
    }
}

/// What a merchant's create files with its QR: its entry in the payment
/// record, its `khqr.created` event, and, when the QR has a `callback_url`,
/// the event's outbox row and the QR's place on the watched list.
#[derive(Clone, Debug)]
pub struct Filing {
    /// The QR's entry ([`crate::ledger::EntryLog::entry_put`]).
    pub entry: Entry,
    /// Until when the entry is kept, ms since the Unix epoch.
    pub entry_keep_ms: u64,
    /// Its `khqr.created` ([`crate::ledger::EventLog::event_put`]).
    pub event: Event,
    /// Until when the event is kept, ms since the Unix epoch.
    pub event_keep_ms: u64,
    /// Owed to a receiver until then ([`crate::ledger::EventLog::outbox_add`]).
    pub outbox_until_ms: Option<u64>,
    /// Watched for its payment until then ([`Store::watch_add`]).
    pub watch_until_ms: Option<u64>,
}

impl AnyStore {
    /// [`Store::create_keyed`], and once the QR is stored, `filing` with
    /// it. On SQLite all of it is one transaction (one commit: a keyed
    /// create costs one WAL sync, as an anonymous one); on the other stores
    /// the writes follow the create, the outbox row before the event (a
    /// crash in between leaves an owed id without its event, which delivery
    /// skips, never an event owed to nobody).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be reached or written.
    pub async fn create_filed(
        &self,
        payer: Payer<'_>,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
        filing: Option<&Filing>,
    ) -> Result<Created, StoreError> {
        let Some(f) = filing else {
            return self.create_keyed(payer, tran, record, now_ms, idem).await;
        };
        if let AnyStore::Sqlite(s) = self {
            let entry_json = sqlite::entry_json(&f.entry)?;
            let event_json = sqlite::event_json(&f.event)?;
            let (f, tran_owned) = (f.clone(), tran.to_owned());
            let then: sqlite::Then = Box::new(move |c| {
                if let Some(until) = f.watch_until_ms {
                    sqlite::watch_in(c, &tran_owned, until)?;
                }
                sqlite::put_entry_in(c, &f.entry, f.entry_keep_ms, &entry_json)?;
                if let Some(until) = f.outbox_until_ms {
                    sqlite::outbox_in(c, &f.event.id, until)?;
                }
                sqlite::put_event_in(c, &f.event, f.event_keep_ms, &event_json)?;
                Ok(())
            });
            return s
                .create_then(payer, tran, record, now_ms, idem, Some(then))
                .await;
        }
        let created = self.create_keyed(payer, tran, record, now_ms, idem).await?;
        if created == Created::Stored {
            if let Some(until) = f.watch_until_ms {
                self.watch_add(tran, until).await?;
            }
            EntryLog::entry_put(self, &f.entry, f.entry_keep_ms).await?;
            if let Some(until) = f.outbox_until_ms {
                EventLog::outbox_add(self, &f.event.id, until).await?;
            }
            EventLog::event_put(self, &f.event, f.event_keep_ms).await?;
        }
        Ok(created)
    }
}

/// Forwards each [`Store`] method to the backend in use.
macro_rules! forward {
    ($($name:ident $(<$lt:lifetime>)? ($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        impl Store for AnyStore {
            $(async fn $name $(<$lt>)? (&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                match self {
                    AnyStore::Memory(s) => s.$name($($arg),*).await,
                    AnyStore::Redis(s) => s.$name($($arg),*).await,
                    AnyStore::Sqlite(s) => s.$name($($arg),*).await,
                }
            })*
        }
    };
}

forward! {
    create_keyed<'a>(payer: impl Into<Payer<'a>> + Send, tran: &str, record: &Record, now_ms: u64, idem: Option<&Idempotency>) -> Created;
    fetch<'a>(payer: impl Into<Payer<'a>> + Send, account: Option<&str>, tran: &str, now_ms: u64) -> Result<Option<Record>, Limited>;
    size() -> u64;
    ping() -> ();
    delivery(md5: &str, owner: &str, lease_ms: u64) -> Delivery;
    delivery_update(md5: &str, done: bool, attempts: u32, keep_ms: u64) -> ();
    watch_add(tran: &str, until_ms: u64) -> ();
    watch_remove(tran: &str) -> ();
    watch_list(now_ms: u64, max: usize) -> Vec<(String, Record)>;
    budget_take(rate: coord::Rate, floor: u32, now_ms: u64) -> Result<(), u64>;
    lease(key: &str, owner: &str, ttl_ms: u64, now_ms: u64) -> bool;
    shared_get(key: &str, now_ms: u64) -> Option<String>;
    shared_put(key: &str, value: &str, ttl_ms: u64, now_ms: u64) -> ();
}

/// Every 10 s while `store` lives: forgets the payment record's entries and
/// events past their retention ([`crate::ledger`]), prunes the memory store's
/// idle rate-limit buckets, and the SQLite store's buckets and rows past their
/// time (Redis keys expire by themselves).
pub fn spawn_prune(store: std::sync::Weak<AnyStore>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            let Some(store) = store.upgrade() else { return };
            let now = crate::time::now_ms();
            if let Err(e) = crate::ledger::EntryLog::entry_prune(&*store, now).await {
                tracing::warn!(detail = e.detail(), "cannot prune the payment record");
            }
            if let Err(e) = crate::ledger::EventLog::event_prune(&*store, now).await {
                tracing::warn!(detail = e.detail(), "cannot prune the event log");
            }
            match &*store {
                AnyStore::Memory(m) => m.prune(),
                AnyStore::Sqlite(s) => {
                    if let Err(e) = s.prune(crate::time::now_ms()).await {
                        tracing::warn!(detail = e.detail(), "sqlite: cannot prune");
                    }
                }
                AnyStore::Redis(_) => {}
            }
        }
    });
}

/// Forwards each [`MerchantStore`] method to the backend in use.
macro_rules! forward_merchants {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        impl MerchantStore for AnyStore {
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

forward_merchants! {
    merchant_save(m: &Merchant, create: bool) -> Result<(), SaveConflict>;
    merchant_get(id: &str) -> Option<Arc<Merchant>>;
    merchant_by_key(hash: &str) -> Option<Arc<Merchant>>;
    merchant_list() -> Vec<Arc<Merchant>>;
    bakong_id_owner(bakong_id: &str) -> Option<String>;
}
