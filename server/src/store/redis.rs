//! The shared store: Redis, one Lua script per request.

use std::sync::Arc;
use std::time::Duration;

use super::coord::Rate;
use super::{Created, Delivery, Limited, Limits, Payer, Record, Store, StoreError};
use crate::idempotency::{self, Idempotency};
use crate::merchant::{Merchant, MerchantStore, SaveConflict};

/// Token buckets, prepended to the create and fetch scripts (see the file).
const BUCKET_LUA: &str = include_str!("lua/bucket.lua");
/// Create under the limits (see the file for KEYS, ARGV and the answer).
const CREATE_LUA: &str = include_str!("lua/create.lua");
/// Fetch under the limits (see the file).
const FETCH_LUA: &str = include_str!("lua/fetch.lua");
/// Take a webhook delivery lease (see the file).
const DELIVERY_LUA: &str = include_str!("lua/delivery.lua");
/// Save a merchant and its indexes (see the file).
const MERCHANT_SAVE_LUA: &str = include_str!("lua/merchant_save.lua");
/// Find a key's merchant (see the file).
const MERCHANT_BY_KEY_LUA: &str = include_str!("lua/merchant_by_key.lua");
/// The Bakong call budget's bucket (the arithmetic of [`super::coord::take`]).
const BUDGET_LUA: &str = include_str!("lua/budget.lua");
/// A lease: `SET NX PX`, renewed by its holder.
const LEASE_LUA: &str = include_str!("lua/lease.lua");

/// The shared store: QRs and rate-limit buckets in Redis (standalone or behind
/// Sentinel; not Cluster, since one script touches several keys), through a
/// reconnecting multiplexed connection. Keys, all under the prefix `khqr:`:
/// `khqr:e:{tran}` (MD5 then the record as JSON; expires with the QR plus the
/// grace period), `khqr:q:{client}` and `khqr:qm:{merchant}` (a client's or a
/// merchant's QRs, newest first), `khqr:rc:{client}`, `khqr:rm:{merchant}` and
/// `khqr:ra:{bakongid}` (token buckets); `khqr:i:{scope}\n{key}` (an
/// `Idempotency-Key`'s fingerprint, `tran` and MD5, for 24 h) and
/// `khqr:iq:{scope}` (the scope's keys, newest first); merchants: `khqr:m:{id}` (JSON),
/// `khqr:ms` (the ids), `khqr:mk:{key hash}` and `khqr:mb:{bakongid}` (each the
/// id of the merchant holding it). Each request is one `EVALSHA` (a keyed
/// one, one more to find its key). Rate limits use the instances' clocks: keep them in sync
/// (NTP).
#[derive(Clone)]
pub struct RedisStore {
    limits: Limits,
    conn: redis::aio::ConnectionManager,
    create: Arc<redis::Script>,
    fetch: Arc<redis::Script>,
    merchant_save: Arc<redis::Script>,
    merchant_by_key: Arc<redis::Script>,
    budget: Arc<redis::Script>,
    lease: Arc<redis::Script>,
}

pub(super) const PREFIX: &str = "khqr:";

pub(super) fn redis_error(e: &redis::RedisError) -> StoreError {
    StoreError(format!("redis: {e}"))
}

impl RedisStore {
    /// A handle on the connection (cheap to clone), for the payment record's
    /// backends (`entries_redis.rs`, `events_redis.rs`).
    pub(super) fn conn(&self) -> redis::aio::ConnectionManager {
        self.conn.clone()
    }

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
            create: Arc::new(redis::Script::new(&format!("{BUCKET_LUA}\n{CREATE_LUA}"))),
            fetch: Arc::new(redis::Script::new(&format!("{BUCKET_LUA}\n{FETCH_LUA}"))),
            merchant_save: Arc::new(redis::Script::new(MERCHANT_SAVE_LUA)),
            merchant_by_key: Arc::new(redis::Script::new(MERCHANT_BY_KEY_LUA)),
            budget: Arc::new(redis::Script::new(BUDGET_LUA)),
            lease: Arc::new(redis::Script::new(LEASE_LUA)),
        })
    }

    fn account_key(account: Option<&str>) -> String {
        account.map_or_else(String::new, |a| format!("{PREFIX}ra:{a}"))
    }

    /// The payer's bucket key, rate and burst.
    fn payer_bucket(&self, payer: Payer<'_>) -> (String, u32, u32) {
        let l = &self.limits;
        match payer {
            Payer::Client(c) => (format!("{PREFIX}rc:{c}"), l.client_per_sec, l.client_burst),
            Payer::Merchant(m) => (
                format!("{PREFIX}rm:{m}"),
                l.merchant_per_sec,
                l.merchant_burst,
            ),
        }
    }
}

fn limited(ms: i64) -> Limited {
    Limited {
        retry_after_ms: u64::try_from(ms).unwrap_or(1).max(1),
    }
}

impl Store for RedisStore {
    async fn create_keyed<'a>(
        &self,
        payer: impl Into<Payer<'a>> + Send,
        tran: &str,
        record: &Record,
        now_ms: u64,
        idem: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        let l = &self.limits;
        let payer = payer.into();
        let json = serde_json::to_string(record).map_err(|e| StoreError(e.to_string()))?;
        let value = format!("{}{json}", record.md5);
        let expire_at = record.expires_ms.saturating_add(l.grace_ms).max(now_ms + 1);
        let queue_ttl = expire_at - now_ms;
        let (bucket, rate, burst) = self.payer_bucket(payer);
        let (account, queue, quota) = match payer {
            Payer::Client(c) => (
                Self::account_key(Some(&record.bakong_id)),
                format!("{PREFIX}q:{c}"),
                l.quota_per_client,
            ),
            Payer::Merchant(m) => (
                String::new(),
                format!("{PREFIX}qm:{m}"),
                l.quota_per_merchant,
            ),
        };
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
            .key(bucket)
            .key(account)
            .key(queue)
            .key(format!("{PREFIX}e:{tran}"))
            .key(idem_key)
            .key(idem_queue)
            .arg(now_ms)
            .arg(rate)
            .arg(burst)
            .arg(l.account_per_sec)
            .arg(l.account_burst)
            .arg(quota.max(1))
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

    async fn fetch<'a>(
        &self,
        payer: impl Into<Payer<'a>> + Send,
        account: Option<&str>,
        tran: &str,
        now_ms: u64,
    ) -> Result<Result<Option<Record>, Limited>, StoreError> {
        let l = &self.limits;
        let payer = payer.into();
        let (bucket, rate, burst) = self.payer_bucket(payer);
        let account = match payer {
            Payer::Client(_) => account,
            Payer::Merchant(_) => None,
        };
        let (code, value): (i64, Option<String>) = self
            .fetch
            .key(bucket)
            .key(Self::account_key(account))
            .key(format!("{PREFIX}e:{tran}"))
            .arg(now_ms)
            .arg(rate)
            .arg(burst)
            .arg(l.account_per_sec)
            .arg(l.account_burst)
            .arg(account.unwrap_or(""))
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

    async fn budget_take(
        &self,
        rate: Rate,
        floor: u32,
        now_ms: u64,
    ) -> Result<Result<(), u64>, StoreError> {
        let floor = floor.min(rate.burst.max(1) - 1);
        let wait: i64 = self
            .budget
            .key(format!("{PREFIX}budget"))
            .arg(rate.per_sec.max(1))
            .arg(rate.burst.max(1))
            .arg(floor)
            .arg(now_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(match u64::try_from(wait) {
            Ok(0) => Ok(()),
            Ok(ms) => Err(ms),
            Err(_) => Err(1),
        })
    }

    async fn lease(
        &self,
        key: &str,
        owner: &str,
        ttl_ms: u64,
        _now_ms: u64,
    ) -> Result<bool, StoreError> {
        let held: i64 = self
            .lease
            .key(format!("{PREFIX}l:{key}"))
            .arg(owner)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(held == 1)
    }

    async fn shared_get(&self, key: &str, _now_ms: u64) -> Result<Option<String>, StoreError> {
        redis::cmd("GET")
            .arg(format!("{PREFIX}s:{key}"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn shared_put(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
        _now_ms: u64,
    ) -> Result<(), StoreError> {
        redis::cmd("SET")
            .arg(format!("{PREFIX}s:{key}"))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
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

/// A merchant read back from its JSON.
fn parse_merchant(json: &str) -> Result<Arc<Merchant>, StoreError> {
    serde_json::from_str(json)
        .map(Arc::new)
        .map_err(|e| StoreError(format!("redis: unreadable merchant: {e}")))
}

/// Merchants in Redis: a save is one script (`lua/merchant_save.lua`), so
/// the indexes never disagree with the merchant; finding a key's merchant is
/// one script too (one round trip).
impl MerchantStore for RedisStore {
    async fn merchant_save(
        &self,
        m: &Merchant,
        create: bool,
    ) -> Result<Result<(), SaveConflict>, StoreError> {
        let json = serde_json::to_string(m).map_err(|e| StoreError(e.to_string()))?;
        let (code, detail): (i64, String) = self
            .merchant_save
            .key(format!("{PREFIX}m:{}", m.id))
            .key(format!("{PREFIX}ms"))
            .arg(json)
            .arg(if create { "1" } else { "0" })
            .arg(&m.id)
            .arg(PREFIX)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        match code {
            0 => Ok(Ok(())),
            1 => Ok(Err(SaveConflict::Exists)),
            2 => {
                let (b, owner) = detail.split_once(' ').unwrap_or((detail.as_str(), ""));
                Ok(Err(SaveConflict::Claimed(b.to_owned(), owner.to_owned())))
            }
            _ => Err(StoreError("redis: unexpected script answer".into())),
        }
    }

    async fn merchant_get(&self, id: &str) -> Result<Option<Arc<Merchant>>, StoreError> {
        let json: Option<String> = redis::cmd("GET")
            .arg(format!("{PREFIX}m:{id}"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        json.as_deref().map(parse_merchant).transpose()
    }

    async fn merchant_by_key(&self, hash: &str) -> Result<Option<Arc<Merchant>>, StoreError> {
        let json: Option<String> = self
            .merchant_by_key
            .key(format!("{PREFIX}mk:{hash}"))
            .arg(format!("{PREFIX}m:"))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        json.as_deref().map(parse_merchant).transpose()
    }

    async fn merchant_list(&self) -> Result<Vec<Arc<Merchant>>, StoreError> {
        let mut conn = self.conn.clone();
        let mut ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{PREFIX}ms"))
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        ids.sort();
        let keys: Vec<String> = ids.iter().map(|id| format!("{PREFIX}m:{id}")).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        values.iter().flatten().map(|v| parse_merchant(v)).collect()
    }

    async fn bakong_id_owner(&self, bakong_id: &str) -> Result<Option<String>, StoreError> {
        redis::cmd("GET")
            .arg(format!("{PREFIX}mb:{bakong_id}"))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))
    }
}
