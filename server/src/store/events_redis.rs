//! [`EventLog`] for [`RedisStore`]. Keys, under the prefix `khqr:`:
//!
//! * `khqr:ev:{id}`: the event, a hash (`e` the [`Event`] as JSON, `d` its
//!   delivery state, `a` its attempt count), expiring at its keep time;
//!   filed once ([`EVENT_PUT_LUA`], atomic: `EXISTS` then `HSET`, as `SET NX`);
//! * `khqr:evm:{merchant}`: the merchant's events, a sorted set of members
//!   `<created_ms, 20 digits>:<id>` all at score 0, so that `ZRANGEBYLEX`
//!   walks them by `(created_ms, id)`: a page starts just past its cursor,
//!   with neither repeats nor gaps however many events share one ms;
//!   `khqr:evm:{merchant}:{type}` the same for one type (a list filtered by
//!   `type` walks only those);
//! * `khqr:evk`: `<merchant>\n<type>\n<member>` by keep time, for
//!   [`EventLog::event_prune`] to take expired events off their merchant's
//!   index;
//! * `khqr:eva:{id}`: the event's attempts (JSON), a list of at most
//!   [`super::events_sqlite::MAX_ATTEMPTS`] (the first half and the latest),
//!   expiring with the event;
//! * `khqr:evo`: the outbox, ids by owed-until time (ms).

use redis::aio::ConnectionManager;

use super::redis::{redis_error, PREFIX};
use super::{RedisStore, StoreError};
use crate::ledger::{Attempt, Cursor, DeliveryState, Event, EventFilter, EventLog};

/// File an event once, with its indexes (see the file).
const EVENT_PUT_LUA: &str = include_str!("lua/event_put.lua");
/// Log an attempt, bounded (see the file).
const EVENT_ATTEMPT_LUA: &str = include_str!("lua/event_attempt.lua");
/// Set a kept event's delivery state (see the file).
const EVENT_DELIVERY_LUA: &str = include_str!("lua/event_delivery.lua");

/// Events read per round trip while a list is filled.
const BATCH: usize = 200;

fn event_key(id: &str) -> String {
    format!("{PREFIX}ev:{id}")
}

fn index_key(merchant: &str) -> String {
    format!("{PREFIX}evm:{merchant}")
}

fn kind_index_key(merchant: &str, kind: &str) -> String {
    format!("{PREFIX}evm:{merchant}:{kind}")
}

fn keep_key() -> String {
    format!("{PREFIX}evk")
}

fn attempts_key(id: &str) -> String {
    format!("{PREFIX}eva:{id}")
}

fn outbox_key() -> String {
    format!("{PREFIX}evo")
}

/// The index member of `(ms, id)`: sorts as `(ms, id)` does.
fn member(ms: u64, id: &str) -> String {
    format!("{ms:020}:{id}")
}

fn state_text(state: DeliveryState) -> String {
    serde_json::to_string(&state)
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

fn json_error(e: &serde_json::Error) -> StoreError {
    StoreError::new(format!("redis: an event is not valid JSON: {e}"))
}

/// The event of `HMGET e d a`, if kept.
fn parse(fields: &[Option<String>]) -> Result<Option<Event>, StoreError> {
    let [Some(json), Some(d), Some(a)] = fields else {
        return Ok(None);
    };
    let mut e: Event = serde_json::from_str(json).map_err(|e| json_error(&e))?;
    e.delivery = serde_json::from_str(&format!("\"{d}\"")).map_err(|e| json_error(&e))?;
    e.attempts = a.parse().unwrap_or(0);
    Ok(Some(e))
}

/// The events `ids` (in order; `None` for one no longer kept).
async fn load(
    conn: &mut ConnectionManager,
    ids: &[String],
) -> Result<Vec<Option<Event>>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HMGET")
            .arg(event_key(id))
            .arg("e")
            .arg("d")
            .arg("a");
    }
    let rows: Vec<Vec<Option<String>>> =
        pipe.query_async(conn).await.map_err(|e| redis_error(&e))?;
    rows.iter().map(|r| parse(r)).collect()
}

/// The lower `ZRANGEBYLEX` bound of a list: just past `after`, or at
/// `from_ms`, whichever is later.
fn lower_bound(filter: &EventFilter, after: Option<&Cursor>) -> String {
    let from = filter.from_ms.map(|f| format!("{f:020}:"));
    let past = after.map(|c| member(c.ms, &c.id));
    match (from, past) {
        (Some(f), Some(p)) if f > p => format!("[{f}"),
        (_, Some(p)) => format!("({p}"),
        (Some(f), None) => format!("[{f}"),
        (None, None) => "-".to_owned(),
    }
}

impl EventLog for RedisStore {
    async fn event_put(&self, event: &Event, keep_until_ms: u64) -> Result<bool, StoreError> {
        let json = serde_json::to_string(event).map_err(|e| json_error(&e))?;
        let m = member(event.created_ms, &event.id);
        let filed: i64 = redis::Script::new(EVENT_PUT_LUA)
            .key(event_key(&event.id))
            .key(index_key(&event.merchant))
            .key(kind_index_key(&event.merchant, event.kind.as_str()))
            .key(keep_key())
            .arg(json)
            .arg(state_text(event.delivery))
            .arg(event.attempts)
            .arg(keep_until_ms.max(1))
            .arg(&m)
            .arg(format!("{}\n{}\n{m}", event.merchant, event.kind))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(filed == 1)
    }

    async fn event_get(&self, merchant: &str, id: &str) -> Result<Option<Event>, StoreError> {
        let found = load(&mut self.conn(), &[id.to_owned()]).await?;
        Ok(found.into_iter().flatten().find(|e| e.merchant == merchant))
    }

    async fn event_list(
        &self,
        merchant: &str,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let mut conn = self.conn();
        let index = filter.kind.map_or_else(
            || index_key(merchant),
            |k| kind_index_key(merchant, k.as_str()),
        );
        let upper = filter.to_ms.map_or("+".to_owned(), |t| format!("({t:020}"));
        let mut lower = lower_bound(filter, after);
        let mut out = Vec::new();
        while out.len() < limit {
            let members: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(&index)
                .arg(&lower)
                .arg(&upper)
                .arg("LIMIT")
                .arg(0)
                .arg(BATCH)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
            let Some(last) = members.last() else { break };
            lower = format!("({last}");
            let ids: Vec<String> = members
                .iter()
                .map(|m| m.split_once(':').map_or("", |x| x.1).to_owned())
                .collect();
            for (m, found) in members.iter().zip(load(&mut conn, &ids).await?) {
                match found {
                    Some(e) if e.merchant == merchant => {
                        if filter.admits(&e) && out.len() < limit {
                            out.push(e);
                        }
                    }
                    _ => {
                        // Expired: its index member goes too.
                        let _: Result<(), _> = redis::cmd("ZREM")
                            .arg(&index)
                            .arg(m)
                            .query_async(&mut conn)
                            .await;
                    }
                }
            }
            if members.len() < BATCH {
                break;
            }
        }
        Ok(out)
    }

    async fn event_delivery(
        &self,
        id: &str,
        state: DeliveryState,
        attempts: u32,
    ) -> Result<(), StoreError> {
        redis::Script::new(EVENT_DELIVERY_LUA)
            .key(event_key(id))
            .arg(state_text(state))
            .arg(attempts)
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map(drop)
            .map_err(|e| redis_error(&e))
    }

    async fn attempt_add(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let json = serde_json::to_string(attempt).map_err(|e| json_error(&e))?;
        redis::Script::new(EVENT_ATTEMPT_LUA)
            .key(event_key(&attempt.event_id))
            .key(attempts_key(&attempt.event_id))
            .arg(json)
            .arg(super::events_sqlite::MAX_ATTEMPTS)
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map(drop)
            .map_err(|e| redis_error(&e))
    }

    async fn attempt_list(&self, id: &str, limit: usize) -> Result<Vec<Attempt>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let list: Vec<String> = redis::cmd("LRANGE")
            .arg(attempts_key(id))
            .arg(0)
            .arg(limit.saturating_sub(1).min(isize::MAX as usize))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| redis_error(&e))?;
        list.iter()
            .map(|j| serde_json::from_str(j).map_err(|e| json_error(&e)))
            .collect()
    }

    async fn outbox_add(&self, id: &str, until_ms: u64) -> Result<(), StoreError> {
        redis::cmd("ZADD")
            .arg(outbox_key())
            .arg(until_ms)
            .arg(id)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn outbox_remove(&self, id: &str) -> Result<(), StoreError> {
        redis::cmd("ZREM")
            .arg(outbox_key())
            .arg(id)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| redis_error(&e))
    }

    async fn outbox_list(&self, now_ms: u64, max: usize) -> Result<Vec<Event>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let (ids,): (Vec<String>,) = redis::pipe()
            .cmd("ZREMRANGEBYSCORE")
            .arg(outbox_key())
            .arg("-inf")
            .arg(now_ms)
            .ignore()
            .cmd("ZRANGE")
            .arg(outbox_key())
            .arg(0)
            .arg(max.saturating_sub(1).min(isize::MAX as usize))
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        // An id whose event is not there (yet: its emitter lists it first)
        // is skipped, and dropped at its time.
        Ok(load(&mut conn, &ids).await?.into_iter().flatten().collect())
    }

    async fn event_prune(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let mut pruned = 0u64;
        // At most 100 000 per call; the next call (10 s on) goes on.
        for _ in 0..100 {
            let old: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(keep_key())
                .arg("-inf")
                .arg(now_ms)
                .arg("LIMIT")
                .arg(0)
                .arg(1_000)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
            if old.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            for k in &old {
                let mut parts = k.splitn(3, '\n');
                let (merchant, kind, m) = (
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or(""),
                );
                let id = m.split_once(':').map_or("", |x| x.1);
                pipe.cmd("ZREM").arg(index_key(merchant)).arg(m).ignore();
                pipe.cmd("ZREM")
                    .arg(kind_index_key(merchant, kind))
                    .arg(m)
                    .ignore();
                pipe.cmd("DEL")
                    .arg(event_key(id))
                    .arg(attempts_key(id))
                    .ignore();
                pipe.cmd("ZREM").arg(outbox_key()).arg(id).ignore();
                pipe.cmd("ZREM").arg(keep_key()).arg(k).ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
            pruned += old.len() as u64;
        }
        Ok(pruned)
    }
}
