//! Where created QRs live, and the rate limits: the [`Store`] trait, an
//! embedded in-memory [`MemoryStore`] and a shared [`RedisStore`].
//!
//! Every request makes **one** call to the store, which both applies the rate
//! limits of the client (and of the Bakong account, when the request names one)
//! and reads or writes the QR. With Redis that call is one Lua script, one
//! round trip, so limits and QRs are shared by every instance.
//!
//! A full store never refuses everyone: each client (its IP address, or its
//! IPv6 /64) holds at most [`Limits::quota_per_client`] QRs; its next create
//! displaces its own oldest one (O(1)). The in-memory store additionally holds at
//! most [`Limits::max_entries`] QRs in total and evicts the least recently used
//! beyond that.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use crate::idempotency::{self, Idempotency};

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
    /// QRs the in-memory store holds in all (least recently used evicted).
    pub max_entries: u64,
    /// How long a QR is kept after it expires, in ms (a payment made at the last
    /// second can still be checked).
    pub grace_ms: u64,
}

impl Default for Limits {
    /// 50 requests/s per client (burst 200), 20/s per `bakongid` (burst 100),
    /// 1 000 QRs per client, 200 000 QRs in memory (about 1.7 KiB of memory each), 5 minutes of grace.
    fn default() -> Self {
        Limits {
            client_per_sec: 50,
            client_burst: 200,
            account_per_sec: 20,
            account_burst: 100,
            quota_per_client: 1_000,
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

/// The state of the server. Implementations: [`MemoryStore`], [`RedisStore`].
pub trait Store: Send + Sync + 'static {
    /// [`Store::create_keyed`] without an idempotency key.
    fn create(
        &self,
        client: &str,
        tran: &str,
        record: &Record,
        now_ms: u64,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send {
        self.create_keyed(client, tran, record, now_ms, None)
    }

    /// Applies the limits of `client` and of `record.bakong_id`; then, in one
    /// atomic step (one Lua script with Redis): if `idem`'s key is known,
    /// answers [`Created::Replayed`] (same fingerprint) or
    /// [`Created::KeyReused`]; else if `tran` is taken, [`Created::Collision`];
    /// else stores `record` under `tran` until `record.expires_ms` plus the
    /// grace period, displacing the client's oldest QR beyond its quota, and
    /// files `idem`'s key for [`crate::idempotency::TTL_MS`] (at most
    /// [`Limits::quota_per_client`] keys per scope: the oldest goes, as its
    /// QR would). `now_ms` is the caller's clock (ms since the Unix epoch).
    fn create_keyed(
        &self,
        client: &str,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Applies the limits of `client` (and of `account`, if given), then reads
    /// the QR stored under `tran`.
    fn fetch(
        &self,
        client: &str,
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
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn keyed(per_sec: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    (per_sec > 0).then(|| RateLimiter::keyed(Quota::per_second(nz(per_sec)).allow_burst(nz(burst))))
}

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

/// The embedded store: QRs in a bounded `moka` cache (LRU beyond
/// [`Limits::max_entries`], each entry living until its QR expires plus the
/// grace period), rate limits in `governor` token buckets, per-client quotas as
/// bounded queues. Every operation is O(1). One process only: use
/// [`RedisStore`] to share state or keep it over a restart.
pub struct MemoryStore {
    limits: Limits,
    entries: Cache<String, Arc<(Record, u64)>, Hasher>,
    owners: Cache<String, Arc<Mutex<VecDeque<String>>>, Hasher>,
    /// Idempotency keys (scope and key) -> the stored value.
    keys: Cache<String, Arc<str>, Hasher>,
    /// Each scope's idempotency keys, oldest first.
    key_owners: Cache<String, Arc<Mutex<VecDeque<String>>>, Hasher>,
    clients: Option<DefaultKeyedRateLimiter<String>>,
    accounts: Option<DefaultKeyedRateLimiter<String>>,
    /// Made once: building a `quanta` clock probes the CPU and is slow.
    clock: DefaultClock,
    /// Webhook deliveries: md5 -> (done, attempts, lease owner, lease end).
    deliveries: Mutex<std::collections::HashMap<String, (bool, u32, String, Instant)>>,
    /// QRs whose webhook is owed: tran -> until (ms since the Unix epoch).
    watched: Mutex<std::collections::HashMap<String, u64>>,
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
            clients: keyed(limits.client_per_sec, limits.client_burst),
            accounts: keyed(limits.account_per_sec, limits.account_burst),
            limits,
            entries,
            owners,
            clock: DefaultClock::default(),
            deliveries: Mutex::new(std::collections::HashMap::new()),
            watched: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Forgets rate-limit buckets that are full again (call now and then: the
    /// server does every 10 s).
    pub fn prune(&self) {
        for l in [&self.clients, &self.accounts].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
        self.entries.run_pending_tasks();
    }

    fn admit(&self, client: &str, account: Option<&str>) -> Result<(), Limited> {
        let limited = |n: governor::NotUntil<_>| Limited {
            retry_after_ms: u64::try_from(n.wait_time_from(self.clock.now()).as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        };
        if let Some(l) = &self.clients {
            l.check_key(&client.to_owned()).map_err(limited)?;
        }
        if let (Some(l), Some(a)) = (&self.accounts, account) {
            l.check_key(&a.to_owned()).map_err(limited)?;
        }
        Ok(())
    }

    fn create_now(
        &self,
        client: &str,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
    ) -> Created {
        if let Err(l) = self.admit(client, Some(&record.bakong_id)) {
            return Created::Limited(l);
        }
        let Some(idem) = idem else {
            return self.insert_new(client, tran, record, now_ms);
        };
        // Concurrent inits of one key are coalesced by the cache: one stores
        // the QR, the others see its value.
        let mut failed = None;
        let entry = self
            .keys
            .entry_by_ref(&idem.key)
            .or_optionally_insert_with(|| match self.insert_new(client, tran, record, now_ms) {
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
    /// oldest beyond the quota.
    fn file_key(&self, key: &str) {
        let scope = key.split('\n').next().unwrap_or_default();
        let queue = self
            .key_owners
            .get_with_by_ref(scope, || Arc::new(Mutex::new(VecDeque::new())));
        let displaced = {
            let mut q = queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.push_back(key.to_owned());
            if q.len() > self.limits.quota_per_client.max(1) as usize {
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
    fn insert_new(&self, client: &str, tran: &str, record: &Record, now_ms: u64) -> Created {
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
        let queue = self
            .owners
            .get_with(client.to_owned(), || Arc::new(Mutex::new(VecDeque::new())));
        let displaced = {
            let mut q = queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.push_back(tran.to_owned());
            if q.len() > self.limits.quota_per_client.max(1) as usize {
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
    async fn create_keyed(
        &self,
        client: &str,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        Ok(self.create_now(client, tran, record, now_ms, idem))
    }

    async fn fetch(
        &self,
        client: &str,
        account: Option<&str>,
        tran: &str,
        _now_ms: u64,
    ) -> Result<Result<Option<Record>, Limited>, StoreError> {
        if let Err(l) = self.admit(client, account) {
            return Ok(Err(l));
        }
        Ok(Ok(self.entries.get(tran).map(|e| e.0.clone())))
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
}

/// Token bucket in Lua: `take(key, rate_per_sec, burst, now_ms)` returns 0 and
/// takes a token, or the ms to wait. Buckets are hashes `{t, ts}` that expire
/// once full again.
const BUCKET_LUA: &str = r"
local function wait(key, rate, burst, now)
  if rate <= 0 or key == '' then return 0, nil end
  local v = redis.call('HMGET', key, 't', 'ts')
  local tokens = tonumber(v[1])
  local ts = tonumber(v[2])
  if tokens == nil or ts == nil then tokens = burst; ts = now end
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tokens + elapsed * rate / 1000)
  if tokens < 1 then return math.ceil((1 - tokens) * 1000 / rate), tokens end
  return 0, tokens
end
local function take(key, rate, burst, now, tokens)
  if rate <= 0 or key == '' then return end
  redis.call('HSET', key, 't', tostring(tokens - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
end
local function admit(k1, r1, b1, k2, r2, b2, now)
  local w1, t1 = wait(k1, r1, b1, now)
  if w1 > 0 then return w1 end
  local w2, t2 = wait(k2, r2, b2, now)
  if w2 > 0 then return w2 end
  take(k1, r1, b1, now, t1)
  take(k2, r2, b2, now, t2)
  return 0
end
";

/// KEYS: client bucket, account bucket, client queue, entry, idempotency
/// key ('' for none), the key's scope queue ('' for none).
/// ARGV: now, client rate, burst, account rate, burst, quota, md5, value,
/// expire-at ms, queue ttl ms, tran, entry key prefix, idempotency value,
/// its ttl ms.
/// Returns `{0, ''}` stored, `{1, ms}` limited, `{2, ''}` collision,
/// `{3, value}` replayed (the key's stored value), `{4, value}` key reused.
const CREATE_LUA: &str = r"
local now = tonumber(ARGV[1])
local w = admit(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), now)
if w > 0 then return {1, tostring(w)} end
if KEYS[5] ~= '' then
  local prior = redis.call('GET', KEYS[5])
  if prior then
    if string.sub(prior, 1, 64) == string.sub(ARGV[13], 1, 64) then return {3, prior} end
    return {4, prior}
  end
end
if redis.call('EXISTS', KEYS[4]) == 1 then return {2, ''} end
redis.call('SET', KEYS[4], ARGV[8], 'PXAT', ARGV[9])
if KEYS[5] ~= '' then
  redis.call('SET', KEYS[5], ARGV[13], 'PX', ARGV[14])
  redis.call('LPUSH', KEYS[6], KEYS[5])
  redis.call('PEXPIRE', KEYS[6], ARGV[14])
  if redis.call('LLEN', KEYS[6]) > tonumber(ARGV[6]) then
    local gone = redis.call('RPOP', KEYS[6])
    if gone and gone ~= KEYS[5] then redis.call('DEL', gone) end
  end
end
redis.call('LPUSH', KEYS[3], ARGV[11])
redis.call('PEXPIRE', KEYS[3], ARGV[10])
if redis.call('LLEN', KEYS[3]) > tonumber(ARGV[6]) then
  local gone = redis.call('RPOP', KEYS[3])
  if gone and gone ~= ARGV[11] then redis.call('DEL', ARGV[12] .. gone) end
end
return {0, ''}
";

/// KEYS: client bucket, account bucket ('' for none), entry.
/// ARGV: now, client rate, burst, account rate, burst.
/// Returns `{0, value|false}` or `{1, ms}`.
const FETCH_LUA: &str = r"
local w = admit(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[1]))
if w > 0 then return {1, w} end
return {0, redis.call('GET', KEYS[3])}
";

/// The shared store: QRs and rate-limit buckets in Redis (standalone or behind
/// Sentinel; not Cluster, since one script touches several keys), through a
/// reconnecting multiplexed connection. Keys, all under the prefix `khqr:`:
/// `khqr:e:{tran}` (MD5 then the record as JSON; expires with the QR plus the
/// grace period), `khqr:q:{client}` (the client's QRs, newest first),
/// `khqr:rc:{client}` and `khqr:ra:{bakongid}` (token buckets). Each request
/// is one `EVALSHA`. Rate limits use the instances' clocks: keep them in sync
/// (NTP).
#[derive(Clone)]
pub struct RedisStore {
    limits: Limits,
    conn: redis::aio::ConnectionManager,
    create: Arc<redis::Script>,
    fetch: Arc<redis::Script>,
}

const PREFIX: &str = "khqr:";

fn redis_error(e: &redis::RedisError) -> StoreError {
    StoreError(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` is not supported in this build), waiting at most 2 s for the
    /// connection and each answer.
    ///
    /// # Errors
    /// [`StoreError`] if the URL is invalid or the server does not answer.
    pub async fn connect(url: &str, limits: Limits) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| redis_error(&e))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(2);
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(RedisStore {
            limits,
            conn,
            create: Arc::new(redis::Script::new(&format!("{BUCKET_LUA}{CREATE_LUA}"))),
            fetch: Arc::new(redis::Script::new(&format!("{BUCKET_LUA}{FETCH_LUA}"))),
        })
    }

    fn account_key(account: Option<&str>) -> String {
        account.map_or_else(String::new, |a| format!("{PREFIX}ra:{a}"))
    }
}

fn limited(ms: i64) -> Limited {
    Limited {
        retry_after_ms: u64::try_from(ms).unwrap_or(1).max(1),
    }
}

impl Store for RedisStore {
    async fn create_keyed(
        &self,
        client: &str,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        let l = &self.limits;
        let json = serde_json::to_string(record).map_err(|e| StoreError(e.to_string()))?;
        let value = format!("{}{json}", record.md5);
        let expire_at = record.expires_ms.saturating_add(l.grace_ms).max(now_ms + 1);
        let queue_ttl = expire_at - now_ms;
        let (idem_key, idem_queue, idem_value) = match idem {
            None => (String::new(), String::new(), String::new()),
            Some(i) => {
                let scope = i.key.split('\n').next().unwrap_or_default();
                (
                    format!("{PREFIX}i:{}", i.key),
                    format!("{PREFIX}iq:{scope}"),
                    i.value(tran, &record.md5),
                )
            }
        };
        let (code, detail): (i64, String) = self
            .create
            .key(format!("{PREFIX}rc:{client}"))
            .key(Self::account_key(Some(&record.bakong_id)))
            .key(format!("{PREFIX}q:{client}"))
            .key(format!("{PREFIX}e:{tran}"))
            .key(idem_key)
            .key(idem_queue)
            .arg(now_ms)
            .arg(l.client_per_sec)
            .arg(l.client_burst)
            .arg(l.account_per_sec)
            .arg(l.account_burst)
            .arg(l.quota_per_client.max(1))
            .arg(&record.md5)
            .arg(value)
            .arg(expire_at)
            .arg(queue_ttl)
            .arg(tran)
            .arg(format!("{PREFIX}e:"))
            .arg(idem_value)
            .arg(idempotency::TTL_MS)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        let replayed = |value: &str| match (idem, idempotency::read_value(value)) {
            (Some(i), Some((fp, tran, md5))) if fp == i.fingerprint => Created::Replayed {
                tran: tran.to_owned(),
                md5: md5.to_owned(),
            },
            _ => Created::KeyReused,
        };
        match code {
            0 => Ok(Created::Stored),
            1 => Ok(Created::Limited(limited(detail.parse().unwrap_or(1000)))),
            2 => Ok(Created::Collision),
            3 | 4 => Ok(replayed(&detail)),
            _ => Err(StoreError("redis: unexpected script answer".into())),
        }
    }

    async fn fetch(
        &self,
        client: &str,
        account: Option<&str>,
        tran: &str,
        now_ms: u64,
    ) -> Result<Result<Option<Record>, Limited>, StoreError> {
        let l = &self.limits;
        let (code, value): (i64, Option<String>) = self
            .fetch
            .key(format!("{PREFIX}rc:{client}"))
            .key(Self::account_key(account))
            .key(format!("{PREFIX}e:{tran}"))
            .arg(now_ms)
            .arg(l.client_per_sec)
            .arg(l.client_burst)
            .arg(l.account_per_sec)
            .arg(l.account_burst)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        if code == 1 {
            let ms = value.and_then(|v| v.parse().ok()).unwrap_or(1000);
            return Ok(Err(limited(ms)));
        }
        let Some(v) = value else { return Ok(Ok(None)) };
        let record: Record = v
            .get(32..)
            .and_then(|json| serde_json::from_str(json).ok())
            .ok_or_else(|| StoreError(format!("redis: unreadable record for {tran}")))?;
        Ok(Ok(Some(record)))
    }

    async fn size(&self) -> Result<u64, StoreError> {
        redis::cmd("DBSIZE")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn.clone())
            .await
            .map(drop)
            .map_err(|e| redis_error(&e))
    }

    async fn delivery(
        &self,
        md5: &str,
        owner: &str,
        lease_ms: u64,
    ) -> Result<Delivery, StoreError> {
        let (code, attempts): (i64, i64) = redis::Script::new(DELIVERY_LUA)
            .key(format!("{PREFIX}w:{md5}"))
            .key(format!("{PREFIX}wl:{md5}"))
            .arg(owner)
            .arg(lease_ms.max(1))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(match code {
            0 => Delivery::Done,
            1 => Delivery::Leased {
                attempts: u32::try_from(attempts).unwrap_or(0),
            },
            _ => Delivery::Busy,
        })
    }

    async fn delivery_update(
        &self,
        md5: &str,
        done: bool,
        attempts: u32,
        keep_ms: u64,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(format!("{PREFIX}w:{md5}"))
            .arg("done")
            .arg(u8::from(done))
            .arg("attempts")
            .arg(attempts)
            .ignore()
            .cmd("PEXPIRE")
            .arg(format!("{PREFIX}w:{md5}"))
            .arg(keep_ms.max(1))
            .ignore();
        if done {
            pipe.cmd("DEL").arg(format!("{PREFIX}wl:{md5}")).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn watch_add(&self, tran: &str, until_ms: u64) -> Result<(), StoreError> {
        redis::cmd("ZADD")
            .arg(format!("{PREFIX}wq"))
            .arg(until_ms)
            .arg(tran)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn watch_remove(&self, tran: &str) -> Result<(), StoreError> {
        redis::cmd("ZREM")
            .arg(format!("{PREFIX}wq"))
            .arg(tran)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn watch_list(
        &self,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<(String, Record)>, StoreError> {
        self.watch_list_now(now_ms, max).await
    }
}

impl RedisStore {
    async fn watch_list_now(
        &self,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<(String, Record)>, StoreError> {
        let key = format!("{PREFIX}wq");
        let mut conn = self.conn.clone();
        let ((), trans): ((), Vec<String>) = redis::pipe()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now_ms)
            .cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(max.saturating_sub(1))
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        if trans.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = trans.iter().map(|t| format!("{PREFIX}e:{t}")).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(trans
            .into_iter()
            .zip(values)
            .filter_map(|(t, v)| {
                let r = serde_json::from_str(v?.get(32..)?).ok()?;
                Some((t, r))
            })
            .collect())
    }
}

/// KEYS: delivery hash, lease key. ARGV: owner, lease ms.
/// Returns `{0, n}` done, `{1, attempts}` leased to owner, `{2, 0}` busy.
const DELIVERY_LUA: &str = r"
local v = redis.call('HMGET', KEYS[1], 'done', 'attempts')
if v[1] == '1' then return {0, 0} end
local n = tonumber(v[2]) or 0
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {2, 0} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, n}
";

/// The store the server runs with, chosen at start.
#[allow(clippy::large_enum_variant)] // one per process
pub enum AnyStore {
    /// [`MemoryStore`].
    Memory(MemoryStore),
    /// [`RedisStore`].
    Redis(RedisStore),
}

impl AnyStore {
    /// `"memory"` or `"redis"`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Memory(_) => "memory",
            AnyStore::Redis(_) => "redis",
        }
    }
}

impl Store for AnyStore {
    async fn create_keyed(
        &self,
        client: &str,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        match self {
            AnyStore::Memory(s) => s.create_keyed(client, tran, record, now_ms, idem).await,
            AnyStore::Redis(s) => s.create_keyed(client, tran, record, now_ms, idem).await,
        }
    }

    async fn fetch(
        &self,
        client: &str,
        account: Option<&str>,
        tran: &str,
        now_ms: u64,
    ) -> Result<Result<Option<Record>, Limited>, StoreError> {
        match self {
            AnyStore::Memory(s) => s.fetch(client, account, tran, now_ms).await,
            AnyStore::Redis(s) => s.fetch(client, account, tran, now_ms).await,
        }
    }

    async fn size(&self) -> Result<u64, StoreError> {
        match self {
            AnyStore::Memory(s) => s.size().await,
            AnyStore::Redis(s) => s.size().await,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            AnyStore::Memory(s) => s.ping().await,
            AnyStore::Redis(s) => s.ping().await,
        }
    }

    async fn delivery(
        &self,
        md5: &str,
        owner: &str,
        lease_ms: u64,
    ) -> Result<Delivery, StoreError> {
        match self {
            AnyStore::Memory(s) => s.delivery(md5, owner, lease_ms).await,
            AnyStore::Redis(s) => s.delivery(md5, owner, lease_ms).await,
        }
    }

    async fn delivery_update(
        &self,
        md5: &str,
        done: bool,
        attempts: u32,
        keep_ms: u64,
    ) -> Result<(), StoreError> {
        match self {
            AnyStore::Memory(s) => s.delivery_update(md5, done, attempts, keep_ms).await,
            AnyStore::Redis(s) => s.delivery_update(md5, done, attempts, keep_ms).await,
        }
    }

    async fn watch_add(&self, tran: &str, until_ms: u64) -> Result<(), StoreError> {
        match self {
            AnyStore::Memory(s) => s.watch_add(tran, until_ms).await,
            AnyStore::Redis(s) => s.watch_add(tran, until_ms).await,
        }
    }

    async fn watch_remove(&self, tran: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::Memory(s) => s.watch_remove(tran).await,
            AnyStore::Redis(s) => s.watch_remove(tran).await,
        }
    }

    async fn watch_list(
        &self,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<(String, Record)>, StoreError> {
        match self {
            AnyStore::Memory(s) => s.watch_list(now_ms, max).await,
            AnyStore::Redis(s) => s.watch_list(now_ms, max).await,
        }
    }
}
