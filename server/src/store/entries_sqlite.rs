//! [`EntryLog`] for [`SqliteStore`]: the payment record in the table
//! `entries` (one row per QR, keyed by MD5: the columns lists and the
//! reconciliation job select on, and the [`Entry`] as JSON).
//!
//! Every list is one indexed range scan in `(…, ms, md5)` order, so a page
//! reads the rows it returns (plus, with both `status` and `bakongid`, the
//! account's rows of other statuses in the range), never the whole table:
//!
//! * `entries_merchant (merchant, created_ms, md5)`: a merchant's list;
//! * `entries_status (merchant, status, created_ms, md5)`: with `status`;
//! * `entries_account (merchant, bakong_id, created_ms, md5)`: with `bakongid`;
//! * `entries_due (status, expires_ms, md5)`: [`EntryLog::entry_due`];
//! * `entries_keep (keep_until)`: [`EntryLog::entry_prune`].

use rusqlite::{params_from_iter, Connection, OptionalExtension};

use super::sqlite::{ms, sql_error};
use super::{SqliteStore, StoreError};
use crate::ledger::{Cursor, Entry, EntryFilter, EntryLog, Payment, QrStatus};

/// This log's tables, created at open if missing (`CREATE … IF NOT EXISTS`).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    md5 TEXT PRIMARY KEY,
    merchant TEXT NOT NULL,
    bakong_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    keep_until INTEGER NOT NULL,
    entry TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_merchant ON entries(merchant, created_ms, md5);
CREATE INDEX IF NOT EXISTS entries_status ON entries(merchant, status, created_ms, md5);
CREATE INDEX IF NOT EXISTS entries_account ON entries(merchant, bakong_id, created_ms, md5);
CREATE INDEX IF NOT EXISTS entries_due ON entries(status, expires_ms, md5);
CREATE INDEX IF NOT EXISTS entries_keep ON entries(keep_until);
";

/// Most rows one [`EntryLog::entry_prune`] call deletes (one transaction of
/// the store's thread; the rest go at the next call, 10 s later).
const PRUNE_BATCH: i64 = 20_000;

fn read_entry(json: &str) -> Result<Entry, StoreError> {
    serde_json::from_str(json).map_err(|_| StoreError::new("sqlite: unreadable entry"))
}

fn to_json(entry: &Entry) -> Result<String, StoreError> {
    serde_json::to_string(entry).map_err(|e| StoreError::new(format!("sqlite: {e}")))
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The lower bound of a scan on `(time, md5)`: past the cursor, or at or
/// after `from` (whichever is later), as SQL on the columns named and its
/// two arguments.
fn lower_bound(
    time: &str,
    from_ms: u64,
    after: Option<&Cursor>,
) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    match after {
        Some(c) if (c.ms, c.id.as_str()) >= (from_ms, "") => (
            format!("({time}, md5) > (?, ?)"),
            vec![Value::Integer(ms(c.ms)), Value::Text(c.id.clone())],
        ),
        _ => (format!("{time} >= ?"), vec![Value::Integer(ms(from_ms))]),
    }
}

/// The rows of `sql` (one column: the entry's JSON).
fn entries_of(
    c: &Connection,
    sql: &str,
    args: Vec<rusqlite::types::Value>,
) -> Result<Vec<Entry>, StoreError> {
    let rows = c
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(args), |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| sql_error(&e))?;
    rows.iter().map(|j| read_entry(j)).collect()
}

fn list_in(
    c: &Connection,
    merchant: String,
    filter: &EntryFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<Entry>, StoreError> {
    use rusqlite::types::Value;
    let (bound, bound_args) = lower_bound("created_ms", filter.from_ms.unwrap_or(0), after);
    let mut sql = format!("SELECT entry FROM entries WHERE merchant = ? AND {bound}");
    let mut args = vec![Value::Text(merchant)];
    args.extend(bound_args);
    if let Some(to) = filter.to_ms {
        sql.push_str(" AND created_ms < ?");
        args.push(Value::Integer(ms(to)));
    }
    if let Some(s) = filter.status {
        sql.push_str(" AND status = ?");
        args.push(Value::Text(s.as_str().into()));
    }
    if let Some(b) = &filter.bakong_id {
        sql.push_str(" AND bakong_id = ?");
        args.push(Value::Text(b.clone()));
    }
    sql.push_str(" ORDER BY created_ms, md5 LIMIT ?");
    args.push(Value::Integer(limit_of(limit)));
    entries_of(c, &sql, args)
}

fn settle_in(
    c: &Connection,
    md5: &str,
    from: &[QrStatus],
    to: QrStatus,
    payment: Option<&Payment>,
    now_ms: u64,
) -> Result<Option<Entry>, StoreError> {
    let json: Option<String> = c
        .prepare_cached("SELECT entry FROM entries WHERE md5 = ?1")
        .and_then(|mut s| s.query_row([md5], |r| r.get(0)).optional())
        .map_err(|e| sql_error(&e))?;
    let Some(mut entry) = json.as_deref().map(read_entry).transpose()? else {
        return Ok(None);
    };
    if !from.contains(&entry.status) {
        return Ok(None);
    }
    entry.status = to;
    entry.updated_ms = now_ms;
    if let Some(p) = payment {
        entry.payment = Some(p.clone());
    }
    let json = to_json(&entry)?;
    c.prepare_cached("UPDATE entries SET status = ?1, entry = ?2 WHERE md5 = ?3")
        .and_then(|mut s| s.execute((to.as_str(), json, md5)))
        .map_err(|e| sql_error(&e))?;
    Ok(Some(entry))
}

/// Files `e` (its JSON `json`) unless its MD5 is there: whether it was
/// filed. Also run inside a create's transaction ([`SqliteStore::create_then`]).
pub(super) fn put_in(
    c: &Connection,
    e: &Entry,
    keep_until_ms: u64,
    json: &str,
) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "INSERT INTO entries(md5, merchant, bakong_id, created_ms, expires_ms, status, \
         keep_until, entry) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT(md5) DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute((
            &e.md5,
            &e.merchant,
            &e.bakong_id,
            ms(e.created_ms),
            ms(e.expires_ms),
            e.status.as_str(),
            ms(keep_until_ms),
            json,
        ))
    })
    .map(|n| n == 1)
}

/// An entry's JSON as the table keeps it.
///
/// # Errors
/// [`StoreError`] if it cannot be written as JSON.
pub(super) fn entry_json(entry: &Entry) -> Result<String, StoreError> {
    to_json(entry)
}

impl EntryLog for SqliteStore {
    async fn entry_put(&self, entry: &Entry, keep_until_ms: u64) -> Result<bool, StoreError> {
        let json = to_json(entry)?;
        let e = entry.clone();
        self.run(move |c| put_in(c, &e, keep_until_ms, &json).map_err(|e| sql_error(&e)))
            .await
    }

    async fn entry_get(&self, md5: &str) -> Result<Option<Entry>, StoreError> {
        let md5 = md5.to_owned();
        self.read(move |c| {
            let json: Option<String> = c
                .prepare_cached("SELECT entry FROM entries WHERE md5 = ?1")
                .and_then(|mut s| s.query_row([md5], |r| r.get(0)).optional())
                .map_err(|e| sql_error(&e))?;
            json.as_deref().map(read_entry).transpose()
        })
        .await
    }

    async fn entry_settle(
        &self,
        md5: &str,
        from: &[QrStatus],
        to: QrStatus,
        payment: Option<&Payment>,
        now_ms: u64,
    ) -> Result<Option<Entry>, StoreError> {
        let (md5, from, payment) = (md5.to_owned(), from.to_vec(), payment.cloned());
        self.run(move |c| settle_in(c, &md5, &from, to, payment.as_ref(), now_ms))
            .await
    }

    async fn entry_list(
        &self,
        merchant: &str,
        filter: &EntryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let (merchant, filter, after) = (merchant.to_owned(), filter.clone(), after.cloned());
        self.read(move |c| list_in(c, merchant, &filter, after.as_ref(), limit))
            .await
    }

    async fn entry_due(
        &self,
        status: QrStatus,
        from_ms: u64,
        to_ms: u64,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        use rusqlite::types::Value;
        let after = after.cloned();
        self.read(move |c| {
            let (bound, bound_args) = lower_bound("expires_ms", from_ms, after.as_ref());
            let sql = format!(
                "SELECT entry FROM entries WHERE status = ? AND {bound} AND expires_ms < ? \
                 ORDER BY expires_ms, md5 LIMIT ?"
            );
            let mut args = vec![Value::Text(status.as_str().into())];
            args.extend(bound_args);
            args.push(Value::Integer(ms(to_ms)));
            args.push(Value::Integer(limit_of(limit)));
            entries_of(c, &sql, args)
        })
        .await
    }

    async fn entry_prune(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.run(move |c| {
            c.prepare_cached(
                "DELETE FROM entries WHERE md5 IN \
                 (SELECT md5 FROM entries WHERE keep_until <= ?1 LIMIT ?2)",
            )
            .and_then(|mut s| s.execute((ms(now_ms), PRUNE_BATCH)))
            .map(|n| n as u64)
            .map_err(|e| sql_error(&e))
        })
        .await
    }
}
