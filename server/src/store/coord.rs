//! What instances share to spend Bakong calls together: the call budget's
//! token bucket, leases (one poller per QR, one deep-link request per QR) and
//! small shared values (a QR's deep link, a payment one instance saw).
//!
//! The in-memory side is [`MemoryCoord`]; the Redis side is one Lua script per
//! operation (`lua/budget.lua`, `lua/lease.lua`) and plain `GET`/`SET PX`,
//! through the functions below, which [`super::RedisStore`] calls.
//!
//! The bucket is kept in integer milli-tokens, so that the Rust arithmetic
//! ([`take`]) and the Lua script agree to the token; both use the caller's
//! clock (ms since the Unix epoch).

use std::collections::HashMap;
use std::sync::Mutex;

use super::StoreError;

/// The budget script (see the file for its keys and arguments).
pub(crate) const BUDGET_LUA: &str = include_str!("lua/budget.lua");
/// The lease script (see the file for its keys and arguments).
pub(crate) const LEASE_LUA: &str = include_str!("lua/lease.lua");

/// Most leases or shared values the in-memory store keeps; past it, expired
/// ones are dropped, then new ones are refused (a lease) or not kept (a value).
const MAX_KEYS: usize = 200_000;

/// A token bucket's rate: `per_sec` tokens a second, at most `burst` saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per second (at least 1 is used).
    pub per_sec: u32,
    /// Most tokens held at once (at least 1 is used).
    pub burst: u32,
}

impl Rate {
    fn per_sec(self) -> u64 {
        u64::from(self.per_sec.max(1))
    }

    fn cap_milli(self) -> u64 {
        u64::from(self.burst.max(1)) * 1000
    }

    /// How long an untouched bucket takes to fill, in ms (+1).
    fn full_ms(self) -> u64 {
        self.cap_milli() / self.per_sec() + 1
    }
}

/// A bucket's state: milli-tokens held, and when it was last refilled (ms
/// since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Thousandths of a token.
    pub milli: u64,
    /// Last refill, ms since the Unix epoch.
    pub at_ms: u64,
}

/// Takes one token from `bucket` (`None`: a new, full bucket) at `now_ms` if
/// at least `floor` tokens remain after it, else takes nothing. Returns the
/// new state and `Ok(())`, or `Err(ms)` until the token would be there. A
/// clock behind the bucket's (another instance's) refills nothing. `floor`
/// is capped at `burst - 1`, so that every caller can eventually pass.
pub fn take(
    bucket: Option<Bucket>,
    rate: Rate,
    floor: u32,
    now_ms: u64,
) -> (Bucket, Result<(), u64>) {
    let cap = rate.cap_milli();
    let floor = u64::from(floor.min(rate.burst.max(1) - 1));
    let need = (floor + 1) * 1000;
    let mut b = bucket.unwrap_or(Bucket {
        milli: cap,
        at_ms: now_ms,
    });
    if now_ms > b.at_ms {
        let dt = (now_ms - b.at_ms).min(rate.full_ms());
        b.milli = cap.min(b.milli.saturating_add(dt * rate.per_sec()));
        b.at_ms = now_ms;
    }
    if b.milli >= need {
        b.milli -= 1000;
        (b, Ok(()))
    } else {
        let wait = (need - b.milli).div_ceil(rate.per_sec());
        (b, Err(wait))
    }
}

/// The in-memory side: one process, so a lease is only ever contended by
/// the tasks of this process, and the bucket is a mutex away.
#[derive(Default)]
pub struct MemoryCoord {
    bucket: Mutex<Option<Bucket>>,
    /// key -> (owner, until ms).
    leases: Mutex<HashMap<String, (String, u64)>>,
    /// key -> (value, until ms).
    values: Mutex<HashMap<String, (String, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Makes room in `map` for one more key: drops expired entries when full.
/// Whether there is room now.
fn room<V>(map: &mut HashMap<String, (V, u64)>, now_ms: u64) -> bool {
    if map.len() >= MAX_KEYS {
        map.retain(|_, (_, until)| *until > now_ms);
    }
    map.len() < MAX_KEYS
}

impl MemoryCoord {
    /// [`take`] on this process's bucket.
    pub fn budget_take(&self, rate: Rate, floor: u32, now_ms: u64) -> Result<(), u64> {
        let mut b = lock(&self.bucket);
        let (next, out) = take(*b, rate, floor, now_ms);
        *b = Some(next);
        out
    }

    /// Takes or renews the lease `key` for `owner` until `now_ms + ttl_ms`;
    /// whether `owner` holds it.
    pub fn lease(&self, key: &str, owner: &str, ttl_ms: u64, now_ms: u64) -> bool {
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

    /// The value under `key`, unless it expired.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<String> {
        lock(&self.values)
            .get(key)
            .filter(|(_, until)| *until > now_ms)
            .map(|(v, _)| v.clone())
    }

    /// Keeps `value` under `key` until `now_ms + ttl_ms` (not kept when
    /// [`MAX_KEYS`] unexpired values are held).
    pub fn put(&self, key: &str, value: &str, ttl_ms: u64, now_ms: u64) {
        let mut map = lock(&self.values);
        if map.contains_key(key) || room(&mut map, now_ms) {
            map.insert(
                key.to_owned(),
                (value.to_owned(), now_ms.saturating_add(ttl_ms.max(1))),
            );
        }
    }
}

fn redis_error(e: &redis::RedisError) -> StoreError {
    StoreError(format!("redis: {e}"))
}

/// `budget.lua` on `key`: `Ok(())` when a token was taken, `Err(ms)` to wait.
pub(crate) async fn redis_budget_take(
    conn: &mut redis::aio::ConnectionManager,
    script: &redis::Script,
    key: &str,
    rate: Rate,
    floor: u32,
    now_ms: u64,
) -> Result<Result<(), u64>, StoreError> {
    let floor = floor.min(rate.burst.max(1) - 1);
    let wait: i64 = script
        .key(key)
        .arg(rate.per_sec.max(1))
        .arg(rate.burst.max(1))
        .arg(floor)
        .arg(now_ms)
        .invoke_async(conn)
        .await
        .map_err(|e| redis_error(&e))?;
    Ok(match u64::try_from(wait) {
        Ok(0) => Ok(()),
        Ok(ms) => Err(ms),
        Err(_) => Err(1),
    })
}

/// `lease.lua` on `key`: whether `owner` holds it for `ttl_ms` from now.
pub(crate) async fn redis_lease(
    conn: &mut redis::aio::ConnectionManager,
    script: &redis::Script,
    key: &str,
    owner: &str,
    ttl_ms: u64,
) -> Result<bool, StoreError> {
    let held: i64 = script
        .key(key)
        .arg(owner)
        .arg(ttl_ms.max(1))
        .invoke_async(conn)
        .await
        .map_err(|e| redis_error(&e))?;
    Ok(held == 1)
}

/// `GET key`.
pub(crate) async fn redis_get(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
) -> Result<Option<String>, StoreError> {
    redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| redis_error(&e))
}

/// `SET key value PX ttl_ms`.
pub(crate) async fn redis_put(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
    value: &str,
    ttl_ms: u64,
) -> Result<(), StoreError> {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(ttl_ms.max(1))
        .query_async(conn)
        .await
        .map_err(|e| redis_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_sec: 10,
        burst: 20,
    };

    #[test]
    fn a_new_bucket_is_full_and_empties_by_ones() {
        let mut b = None;
        for i in 0..20 {
            let (next, out) = take(b, RATE, 0, 1_000);
            assert_eq!(out, Ok(()), "token {i}");
            assert_eq!(next.milli, (19 - i) * 1000);
            b = Some(next);
        }
        // Empty: one token every 100 ms.
        assert_eq!(take(b, RATE, 0, 1_000).1, Err(100));
        assert_eq!(take(b, RATE, 0, 1_040).1, Err(60));
        let (next, out) = take(b, RATE, 0, 1_100);
        assert_eq!((next.milli, out), (0, Ok(())));
    }

    #[test]
    fn a_floor_keeps_tokens_for_others() {
        let mut b = None;
        let mut taken = 0;
        for _ in 0..30 {
            let (next, out) = take(b, RATE, 5, 0);
            b = Some(next);
            taken += usize::from(out.is_ok());
        }
        assert_eq!(taken, 15, "the floor keeps 5 of 20");
        assert_eq!(b.unwrap().milli, 5_000);
        // 5 left for floor 0; floor 5 waits for a sixth (100 ms).
        assert_eq!(take(b, RATE, 5, 0).1, Err(100));
        assert_eq!(take(b, RATE, 0, 0).1, Ok(()));
    }

    #[test]
    fn refills_to_the_burst_and_ignores_a_clock_behind() {
        let (b, _) = take(None, RATE, 0, 10_000);
        let (b, _) = take(Some(b), RATE, 0, 10_000);
        assert_eq!(b.milli, 18_000);
        // An hour later: full (20), minus the one taken.
        let (later, _) = take(Some(b), RATE, 0, 3_610_000);
        assert_eq!(later.milli, 19_000);
        // Another instance's clock 5 s behind: no refill, no time travel.
        let (behind, out) = take(Some(b), RATE, 0, 5_000);
        assert_eq!((behind.milli, behind.at_ms, out), (17_000, 10_000, Ok(())));
    }

    #[test]
    fn a_floor_at_or_over_the_burst_still_passes_eventually() {
        let tiny = Rate {
            per_sec: 1,
            burst: 1,
        };
        assert_eq!(take(None, tiny, 7, 0).1, Ok(()));
        let (b, _) = take(None, RATE, 50, 0);
        assert_eq!(b.milli, 19_000, "floor capped at 19");
    }

    #[test]
    fn memory_leases_have_one_holder_until_they_end() {
        let c = MemoryCoord::default();
        assert!(c.lease("pl:x", "a", 1_000, 0));
        assert!(!c.lease("pl:x", "b", 1_000, 500));
        assert!(c.lease("pl:x", "a", 1_000, 900), "renewed by its holder");
        assert!(!c.lease("pl:x", "b", 1_000, 1_800));
        assert!(c.lease("pl:x", "b", 1_000, 1_900), "free once ended");
        assert!(c.lease("pl:y", "a", 1_000, 1_900));
    }

    #[test]
    fn memory_values_expire() {
        let c = MemoryCoord::default();
        assert_eq!(c.get("dl:x", 0), None);
        c.put("dl:x", "https://l", 100, 0);
        assert_eq!(c.get("dl:x", 99).as_deref(), Some("https://l"));
        assert_eq!(c.get("dl:x", 100), None);
        assert_eq!(
            c.budget_take(RATE, 0, 0),
            Ok(()),
            "the memory bucket starts full"
        );
    }
}
