//! The embedded store: one process, everything in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::buckets::Buckets;
use super::coord::{take, Bucket, Rate};
use super::{Created, Delivery, Limited, Limits, Payer, Record, Store, StoreError};
use crate::idempotency::{self, Idempotency};
use crate::merchant::{Merchant, MerchantStore, MerchantTable, SaveConflict};

/// The caches' hasher: `foldhash`, seeded at random per cache, several times
/// cheaper than the standard `SipHash` on these short keys (profiled on create).
type Hasher = foldhash::fast::RandomState;

struct Lifetime;

impl moka::Expiry<String, Arc<(Record, u64)>> for Lifetime {
    fn expire_after_create(
        &self,
        _: &String,
        value: &Arc<(Record, u64)>,
        _: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_millis(value.1))
    }
}

/// Most leases or shared values kept; past it, expired ones are dropped,
/// then a new lease is refused or a new value not kept.
const MAX_COORD_KEYS: usize = 200_000;

/// The call budget's bucket, leases and shared values of one process.
#[derive(Default)]
struct Coord {
    bucket: Mutex<Option<Bucket>>,
    /// key -> (owner, until ms).
    leases: Mutex<HashMap<String, (String, u64)>>,
    /// key -> (value, until ms).
    values: Mutex<HashMap<String, (String, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `map` has room for one more key (expired ones dropped when full).
fn room<V>(map: &mut HashMap<String, (V, u64)>, now_ms: u64) -> bool {
    if map.len() >= MAX_COORD_KEYS {
        map.retain(|_, (_, until)| *until > now_ms);
    }
    map.len() < MAX_COORD_KEYS
}

impl Coord {
    fn budget_take(&self, rate: Rate, floor: u32, now_ms: u64) -> Result<(), u64> {
        let mut b = lock(&self.bucket);
        let (next, out) = take(*b, rate, floor, now_ms);
        *b = Some(next);
        out
    }

    fn lease(&self, key: &str, owner: &str, ttl_ms: u64, now_ms: u64) -> bool {
        let mut map = lock(&self.leases);
        let until = now_ms.saturating_add(ttl_ms.max(1));
        if let Some((holder, end)) = map.get_mut(key) {
            if *end > now_ms && holder != owner {
                return false;
            }
            owner.clone_into(holder);
            *end = until;
            return true;
        }
        if !room(&mut map, now_ms) {
            return false;
        }
        map.insert(key.to_owned(), (owner.to_owned(), until));
        true
    }

    fn get(&self, key: &str, now_ms: u64) -> Option<String> {
        lock(&self.values)
            .get(key)
            .filter(|(_, until)| *until > now_ms)
            .map(|(v, _)| v.clone())
    }

    fn put(&self, key: &str, value: &str, ttl_ms: u64, now_ms: u64) {
        let mut map = lock(&self.values);
        if map.contains_key(key) || room(&mut map, now_ms) {
            let until = now_ms.saturating_add(ttl_ms.max(1));
            map.insert(key.to_owned(), (value.to_owned(), until));
        }
    }
}

/// The embedded store: QRs in a bounded `moka` cache (LRU beyond
/// [`Limits::max_entries`], each entry living until its QR expires plus the
/// grace period), rate limits in `governor` token buckets, per-client quotas as
/// bounded queues. Every operation is O(1). One process only: use
/// [`super::RedisStore`] to share state or keep it over a restart.
pub struct MemoryStore {
    limits: Limits,
    entries: Cache<String, Arc<(Record, u64)>, Hasher>,
    owners: Cache<String, Arc<Mutex<VecDeque<String>>>, Hasher>,
    /// Idempotency keys (scope and key) -> the stored value.
    keys: Cache<String, Arc<str>, Hasher>,
    /// Each scope's idempotency keys, oldest first.
    key_owners: Cache<String, Arc<Mutex<VecDeque<String>>>, Hasher>,
    /// The rate limits (per client, merchant and `bakongid`).
    buckets: Buckets,
    merchants: MerchantTable,
    /// Webhook deliveries: md5 -> (done, attempts, lease owner, lease end).
    deliveries: Mutex<HashMap<String, (bool, u32, String, Instant)>>,
    /// QRs whose webhook is owed: tran -> until (ms since the Unix epoch).
    watched: Mutex<HashMap<String, u64>>,
    /// The Bakong call budget's bucket, leases and shared values.
    coord: Coord,
    /// The payment record ([`crate::ledger::EntryLog`]).
    ledger_entries: super::entries_memory::EntryTable,
    /// The event log ([`crate::ledger::EventLog`]).
    ledger_events: super::events_memory::EventTable,
}

impl MemoryStore {
    /// An empty store with these limits.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        let entries = Cache::builder()
            .max_capacity(limits.max_entries.max(1))
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(Lifetime)
            .build_with_hasher(Hasher::default());
        let owners = Cache::builder()
            .max_capacity(1_000_000)
            .eviction_policy(EvictionPolicy::lru())
            .time_to_idle(Duration::from_secs(24 * 3600))
            .build_with_hasher(Hasher::default());
        let keys = Cache::builder()
            .max_capacity(limits.max_entries.max(1))
            .eviction_policy(EvictionPolicy::lru())
            .time_to_live(Duration::from_millis(idempotency::TTL_MS))
            .build_with_hasher(Hasher::default());
        let key_owners = Cache::builder()
            .max_capacity(1_000_000)
            .eviction_policy(EvictionPolicy::lru())
            .time_to_idle(Duration::from_millis(idempotency::TTL_MS))
            .build_with_hasher(Hasher::default());
        MemoryStore {
            keys,
            key_owners,
            buckets: Buckets::new(&limits),
            merchants: MerchantTable::default(),
            limits,
            entries,
            owners,
            deliveries: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashMap::new()),
            coord: Coord::default(),
            ledger_entries: super::entries_memory::EntryTable::default(),
            ledger_events: super::events_memory::EventTable::default(),
        }
    }

    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(super) fn ledger_entries(&self) -> &super::entries_memory::EntryTable {
        &self.ledger_entries
    }

    pub(super) fn ledger_events(&self) -> &super::events_memory::EventTable {
        &self.ledger_events
    }

    /// Forgets rate-limit buckets that are full again (call now and then: the
    /// server does every 10 s).
    pub fn prune(&self) {
        self.buckets.prune();
        self.entries.run_pending_tasks();
    }

    /// Charges the payer's own bucket.
    fn admit(&self, payer: Payer<'_>) -> Result<(), Limited> {
        self.buckets.admit(payer)
    }

    fn create_now(
        &self,
        payer: Payer<'_>,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
    ) -> Created {
        // A taken tran costs no token: the caller tries the next millisecond.
        let known_key = idem.is_some_and(|i| self.keys.contains_key(&i.key));
        if !known_key && self.entries.contains_key(tran) {
            return Created::Collision;
        }
        let admitted = self.admit(payer).and_then(|()| match payer {
            Payer::Client(_) => self.buckets.account(&record.bakong_id),
            Payer::Merchant(_) => Ok(()),
        });
        if let Err(l) = admitted {
            return Created::Limited(l);
        }
        let Some(idem) = idem else {
            return self.insert_new(payer, tran, record, now_ms);
        };
        // Concurrent inits of one key are coalesced by the cache: one stores
        // the QR, the others see its value.
        let mut failed = None;
        let entry = self
            .keys
            .entry_by_ref(&idem.key)
            .or_optionally_insert_with(|| match self.insert_new(payer, tran, record, now_ms) {
                Created::Stored => Some(idem.value(tran, &record.md5).into()),
                other => {
                    failed = Some(other);
                    None
                }
            });
        let Some(entry) = entry else {
            return failed.unwrap_or(Created::Collision);
        };
        if entry.is_fresh() {
            self.file_key(&idem.key);
            return Created::Stored;
        }
        match idempotency::read_value(entry.value()) {
            Some((fp, tran, md5)) if fp == idem.fingerprint => Created::Replayed {
                tran: tran.to_owned(),
                md5: md5.to_owned(),
            },
            _ => Created::KeyReused,
        }
    }

    /// Lists a new idempotency key under its scope, forgetting the scope's
    /// oldest beyond its QR quota (a merchant's or a client's).
    fn file_key(&self, key: &str) {
        let scope = key.split('\n').next().unwrap_or_default();
        let quota = if scope.starts_with("m:") {
            self.limits.quota_per_merchant
        } else {
            self.limits.quota_per_client
        };
        let queue = self
            .key_owners
            .get_with_by_ref(scope, || Arc::new(Mutex::new(VecDeque::new())));
        let displaced = {
            let mut q = queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.push_back(key.to_owned());
            if q.len() > quota.max(1) as usize {
                q.pop_front()
            } else {
                None
            }
        };
        if let Some(old) = displaced {
            self.keys.invalidate(&old);
        }
    }

    /// Stores `record` under `tran` unless the `tran` is taken.
    fn insert_new(&self, payer: Payer<'_>, tran: &str, record: &Record, now_ms: u64) -> Created {
        let life = record
            .expires_ms
            .saturating_add(self.limits.grace_ms)
            .saturating_sub(now_ms)
            .max(1);
        // One lookup: insert unless present, then look at what was there.
        let entry = self
            .entries
            .entry_by_ref(tran)
            .or_insert_with(|| Arc::new((record.clone(), life)));
        if !entry.is_fresh() {
            return Created::Collision;
        }
        // A merchant's queue key cannot be a client's (an IP address or a /64).
        let (owner, quota) = match payer {
            Payer::Client(c) => (c.to_owned(), self.limits.quota_per_client),
            Payer::Merchant(m) => (format!("merchant:{m}"), self.limits.quota_per_merchant),
        };
        let queue = self
            .owners
            .get_with(owner, || Arc::new(Mutex::new(VecDeque::new())));
        let displaced = {
            let mut q = queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.push_back(tran.to_owned());
            if q.len() > quota.max(1) as usize {
                q.pop_front()
            } else {
                None
            }
        };
        if let Some(old) = displaced {
            self.entries.invalidate(&old);
        }
        Created::Stored
    }
}

impl Store for MemoryStore {
    async fn create_keyed<'a>(
        &self,
        payer: impl Into<Payer<'a>> + Send,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        Ok(self.create_now(payer.into(), tran, record, now_ms, idem))
    }

    async fn fetch<'a>(
        &self,
        payer: impl Into<Payer<'a>> + Send,
        account: Option<&str>,
        tran: &str,
        _now_ms: u64,
    ) -> Result<Result<Option<Record>, Limited>, StoreError> {
        let payer = payer.into();
        if let Err(l) = self.admit(payer) {
            return Ok(Err(l));
        }
        let record = self.entries.get(tran).map(|e| e.0.clone());
        if let (Payer::Client(_), Some(a), Some(r)) = (payer, account, &record) {
            if r.bakong_id == a {
                if let Err(l) = self.buckets.account(a) {
                    return Ok(Err(l));
                }
            }
        }
        Ok(Ok(record))
    }

    async fn size(&self) -> Result<u64, StoreError> {
        self.entries.run_pending_tasks();
        Ok(self.entries.entry_count())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn delivery(
        &self,
        md5: &str,
        owner: &str,
        lease_ms: u64,
    ) -> Result<Delivery, StoreError> {
        let mut map = self
            .deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 100_000 {
            map.retain(|_, v| !v.0);
        }
        let now = Instant::now();
        let e = map
            .entry(md5.to_owned())
            .or_insert_with(|| (false, 0, String::new(), now));
        if e.0 {
            return Ok(Delivery::Done);
        }
        if !e.2.is_empty() && e.2 != owner && e.3 > now {
            return Ok(Delivery::Busy);
        }
        owner.clone_into(&mut e.2);
        e.3 = now + Duration::from_millis(lease_ms);
        Ok(Delivery::Leased { attempts: e.1 })
    }

    async fn delivery_update(
        &self,
        md5: &str,
        done: bool,
        attempts: u32,
        _keep_ms: u64,
    ) -> Result<(), StoreError> {
        let mut map = self
            .deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = map
            .entry(md5.to_owned())
            .or_insert_with(|| (false, 0, String::new(), Instant::now()));
        e.0 = done;
        e.1 = attempts;
        if done {
            e.2.clear();
        }
        Ok(())
    }

    async fn watch_add(&self, tran: &str, until_ms: u64) -> Result<(), StoreError> {
        let mut w = self
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.len() < 1_000_000 {
            w.insert(tran.to_owned(), until_ms);
        }
        Ok(())
    }

    async fn watch_remove(&self, tran: &str) -> Result<(), StoreError> {
        self.watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(tran);
        Ok(())
    }

    async fn watch_list(
        &self,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<(String, Record)>, StoreError> {
        let mut w = self
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.retain(|_, until| *until > now_ms);
        Ok(w.keys()
            .filter_map(|t| self.entries.get(t).map(|e| (t.clone(), e.0.clone())))
            .take(max)
            .collect())
    }

    async fn budget_take(
        &self,
        rate: Rate,
        floor: u32,
        now_ms: u64,
    ) -> Result<Result<(), u64>, StoreError> {
        Ok(self.coord.budget_take(rate, floor, now_ms))
    }

    async fn lease(
        &self,
        key: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.coord.lease(key, owner, ttl_ms, now_ms))
    }

    async fn shared_get(&self, key: &str, now_ms: u64) -> Result<Option<String>, StoreError> {
        Ok(self.coord.get(key, now_ms))
    }

    async fn shared_put(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.coord.put(key, value, ttl_ms, now_ms);
        Ok(())
    }
}

/// Merchants in memory: [`MerchantTable`].
impl MerchantStore for MemoryStore {
    async fn merchant_save(
        &self,
        m: &Merchant,
        create: bool,
    ) -> Result<Result<(), SaveConflict>, StoreError> {
        Ok(self.merchants.save(m, create))
    }

    async fn merchant_get(&self, id: &str) -> Result<Option<Arc<Merchant>>, StoreError> {
        Ok(self.merchants.get(id))
    }

    async fn merchant_by_key(&self, hash: &str) -> Result<Option<Arc<Merchant>>, StoreError> {
        Ok(self.merchants.by_key_hash(hash))
    }

    async fn merchant_list(&self) -> Result<Vec<Arc<Merchant>>, StoreError> {
        Ok(self.merchants.list())
    }

    async fn bakong_id_owner(&self, bakong_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.merchants.owner_of(bakong_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_have_one_holder_until_they_end() {
        let c = Coord::default();
        assert!(c.lease("pl:x", "a", 1_000, 0));
        assert!(!c.lease("pl:x", "b", 1_000, 500));
        assert!(c.lease("pl:x", "a", 1_000, 900), "renewed by its holder");
        assert!(!c.lease("pl:x", "b", 1_000, 1_800));
        assert!(c.lease("pl:x", "b", 1_000, 1_900), "free once ended");
        assert!(c.lease("pl:y", "a", 1_000, 1_900));
    }

    #[test]
    fn shared_values_expire() {
        let c = Coord::default();
        assert_eq!(c.get("dl:x", 0), None);
        c.put("dl:x", "https://l", 100, 0);
        assert_eq!(c.get("dl:x", 99).as_deref(), Some("https://l"));
        assert_eq!(c.get("dl:x", 100), None);
    }
}
