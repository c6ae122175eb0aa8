//! [`EventLog`] for [`SqliteStore`]: three tables in the store's file.
//!
//! * `events`: one row per event (its id, merchant, `created_ms`, kind, keep
//!   time, delivery state, attempt count, and the [`Event`] as JSON), indexed
//!   by `(merchant, created_ms, id)` and `(merchant, kind, created_ms, id)`
//!   for the lists and by `keep_until` for pruning;
//! * `attempts`: one row per delivery attempt (event id, `n`, the
//!   [`Attempt`] as JSON), at most [`MAX_ATTEMPTS`] per event (the first half
//!   and the latest half are kept);
//! * `outbox`: the events still owed to a receiver (id, owed until ms).
//!
//! Every call is one savepoint in the store's batched transaction
//! ([`SqliteStore::run`]), so an event and its outbox row are on disk before
//! the call answers.

use rusqlite::{params, Connection, OptionalExtension};

use super::sqlite::{ms, sql_error};
use super::{SqliteStore, StoreError};
use crate::ledger::{Attempt, Cursor, DeliveryState, Event, EventFilter, EventKind, EventLog};

/// Most attempts kept per event: the first half and the latest half.
pub const MAX_ATTEMPTS: usize = 100;

/// This log's tables, created at open if missing (`CREATE … IF NOT EXISTS`).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    merchant TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    keep_until INTEGER NOT NULL,
    delivery TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    event TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_merchant ON events(merchant, created_ms, id);
CREATE INDEX IF NOT EXISTS events_kind ON events(merchant, kind, created_ms, id);
CREATE INDEX IF NOT EXISTS events_keep ON events(keep_until);
CREATE TABLE IF NOT EXISTS attempts (
    event_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    attempt TEXT NOT NULL,
    PRIMARY KEY (event_id, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_until ON outbox(until_ms);
";

fn json_error(e: &serde_json::Error) -> StoreError {
    StoreError::new(format!("sqlite: an event row is not valid JSON: {e}"))
}

/// `delivery` as stored (the JSON name without quotes).
fn state_text(state: DeliveryState) -> String {
    serde_json::to_string(&state)
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

/// An event from its row's JSON, delivery text and attempt count.
fn from_row(json: &str, delivery: &str, attempts: i64) -> Result<Event, StoreError> {
    let mut e: Event = serde_json::from_str(json).map_err(|e| json_error(&e))?;
    e.delivery = serde_json::from_str(&format!("\"{delivery}\"")).map_err(|e| json_error(&e))?;
    e.attempts = u32::try_from(attempts).unwrap_or(0);
    Ok(e)
}

const SELECT: &str = "SELECT event, delivery, attempts FROM events";

fn query_events(
    c: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Event>, StoreError> {
    let mut st = c.prepare_cached(sql).map_err(|e| sql_error(&e))?;
    let rows = st
        .query_map(args, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(|e| sql_error(&e))?;
    let mut out = Vec::new();
    for row in rows {
        let (json, delivery, attempts) = row.map_err(|e| sql_error(&e))?;
        out.push(from_row(&json, &delivery, attempts)?);
    }
    Ok(out)
}

/// An event's JSON as the table keeps it.
///
/// # Errors
/// [`StoreError`] if it cannot be written as JSON.
pub(super) fn event_json(event: &Event) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|e| json_error(&e))
}

/// Files `e` (its JSON `json`) unless its id is there: whether it was filed.
/// Also run inside a create's transaction ([`SqliteStore::create_then`]).
pub(super) fn put_in(
    c: &Connection,
    e: &Event,
    keep_until_ms: u64,
    json: &str,
) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "INSERT INTO events(id, merchant, created_ms, kind, keep_until, delivery, \
         attempts, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT(id) DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(params![
            e.id,
            e.merchant,
            ms(e.created_ms),
            e.kind.as_str(),
            ms(keep_until_ms),
            state_text(e.delivery),
            e.attempts,
            json
        ])
    })
    .map(|n| n == 1)
}

/// Lists event `id` as owed until `until_ms`.
pub(super) fn outbox_in(c: &Connection, id: &str, until_ms: u64) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT OR REPLACE INTO outbox(id, until_ms) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, ms(until_ms)]))
        .map(drop)
}

impl EventLog for SqliteStore {
    async fn event_put(&self, event: &Event, keep_until_ms: u64) -> Result<bool, StoreError> {
        let json = event_json(event)?;
        let e = event.clone();
        self.run(move |c| put_in(c, &e, keep_until_ms, &json).map_err(|e| sql_error(&e)))
            .await
    }

    async fn event_get(&self, merchant: &str, id: &str) -> Result<Option<Event>, StoreError> {
        let (merchant, id) = (merchant.to_owned(), id.to_owned());
        self.read(move |c| {
            let sql = format!("{SELECT} WHERE id = ?1 AND merchant = ?2");
            Ok(query_events(c, &sql, params![id, merchant])?.pop())
        })
        .await
    }

    async fn event_list(
        &self,
        merchant: &str,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let merchant = merchant.to_owned();
        let (after_ms, after_id) = after.map_or((-1, String::new()), |c| (ms(c.ms), c.id.clone()));
        let from = filter.from_ms.map_or(0, ms);
        let to = filter.to_ms.map_or(i64::MAX, ms);
        let kind = filter.kind.map(EventKind::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            // Two statements, so that a `type` filter walks its own index
            // (the planner prefers `events_merchant` for the time range).
            let (index, kind_clause) = if kind.is_some() {
                ("events_kind", "kind = ?6")
            } else {
                ("events_merchant", "?6 IS NULL")
            };
            let sql = format!(
                "{SELECT} INDEXED BY {index} WHERE merchant = ?1 AND {kind_clause} \
                 AND (created_ms, id) > (?2, ?3) AND created_ms >= ?4 AND created_ms < ?5 \
                 ORDER BY created_ms, id LIMIT ?7"
            );
            query_events(
                c,
                &sql,
                params![merchant, after_ms, after_id, from, to, kind, limit],
            )
        })
        .await
    }

    async fn event_delivery(
        &self,
        id: &str,
        state: DeliveryState,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.prepare_cached("UPDATE events SET delivery = ?2, attempts = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, state_text(state), attempts]))
                .map(drop)
                .map_err(|e| sql_error(&e))
        })
        .await
    }

    async fn attempt_add(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let json = serde_json::to_string(attempt).map_err(|e| json_error(&e))?;
        let (id, n) = (attempt.event_id.clone(), attempt.n);
        self.run(move |c| add_attempt(c, &id, n, &json).map_err(|e| sql_error(&e)))
            .await
    }

    async fn attempt_list(&self, id: &str, limit: usize) -> Result<Vec<Attempt>, StoreError> {
        let id = id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT attempt FROM attempts WHERE event_id = ?1 ORDER BY n LIMIT ?2",
                )
                .map_err(|e| sql_error(&e))?;
            let rows = st
                .query_map(params![id, limit], |r| r.get::<_, String>(0))
                .map_err(|e| sql_error(&e))?;
            let mut out = Vec::new();
            for row in rows {
                let json = row.map_err(|e| sql_error(&e))?;
                out.push(serde_json::from_str(&json).map_err(|e| json_error(&e))?);
            }
            Ok(out)
        })
        .await
    }

    async fn outbox_add(&self, id: &str, until_ms: u64) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run(move |c| outbox_in(c, &id, until_ms).map_err(|e| sql_error(&e)))
            .await
    }

    async fn outbox_remove(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.prepare_cached("DELETE FROM outbox WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map(drop)
                .map_err(|e| sql_error(&e))
        })
        .await
    }

    async fn outbox_list(&self, now_ms: u64, max: usize) -> Result<Vec<Event>, StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.run(move |c| {
            c.execute("DELETE FROM outbox WHERE until_ms <= ?1", [ms(now_ms)])
                .map_err(|e| sql_error(&e))?;
            query_events(
                c,
                "SELECT e.event, e.delivery, e.attempts FROM outbox o JOIN events e ON e.id = o.id \
                 ORDER BY o.until_ms LIMIT ?1",
                [max],
            )
        })
        .await
    }

    async fn event_prune(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.run(move |c| {
            let now = ms(now_ms);
            let old = "SELECT id FROM events WHERE keep_until <= ?1";
            c.execute(
                &format!("DELETE FROM attempts WHERE event_id IN ({old})"),
                [now],
            )
            .and_then(|_| c.execute(&format!("DELETE FROM outbox WHERE id IN ({old})"), [now]))
            .and_then(|_| c.execute("DELETE FROM events WHERE keep_until <= ?1", [now]))
            .map(|n| n as u64)
            .map_err(|e| sql_error(&e))
        })
        .await
    }
}

/// Logs attempt `n` of event `id` (its JSON) if the event is kept, then,
/// past [`MAX_ATTEMPTS`],
/// forgets the oldest attempt after the first half.
fn add_attempt(c: &Connection, id: &str, n: u32, json: &str) -> rusqlite::Result<()> {
    let added = c
        .prepare_cached(
            "INSERT OR REPLACE INTO attempts(event_id, n, attempt) \
             SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM events WHERE id = ?1)",
        )?
        .execute(params![id, n, json])?;
    if added == 0 {
        return Ok(());
    }
    let count: i64 = c
        .prepare_cached("SELECT COUNT(*) FROM attempts WHERE event_id = ?1")?
        .query_row([id], |r| r.get(0))?;
    if usize::try_from(count).unwrap_or(0) > MAX_ATTEMPTS {
        let half = i64::try_from(MAX_ATTEMPTS / 2).unwrap_or(0);
        let drop_n: Option<i64> = c
            .prepare_cached(
                "SELECT n FROM attempts WHERE event_id = ?1 ORDER BY n LIMIT 1 OFFSET ?2",
            )?
            .query_row(params![id, half], |r| r.get(0))
            .optional()?;
        if let Some(drop_n) = drop_n {
            c.prepare_cached("DELETE FROM attempts WHERE event_id = ?1 AND n = ?2")?
                .execute(params![id, drop_n])?;
        }
    }
    Ok(())
}
