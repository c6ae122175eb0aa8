//! [`EntryLog`] for [`RedisStore`]: the payment record under `khqr:pr:`.
//!
//! * `khqr:pr:e:{md5}`: the [`Entry`] as JSON, expiring at its keep time;
//! * lists, sorted sets whose scores are all 0 and whose members are
//!   `<ms as 20 digits>:<md5>`, so that their lexical order is `(ms, md5)`
//!   and a cursor is a member (`ZRANGEBYLEX`, no offsets): a merchant's
//!   entries by `created_ms` (`khqr:pr:m:{merchant}`), the same per status
//!   (`khqr:pr:s:{merchant}\n{status}`) and per `bakongid`
//!   (`khqr:pr:b:{merchant}\n{bakongid}`), and every merchant's entries of a
//!   status by `expires_ms` (`khqr:pr:d:{status}`, for
//!   [`EntryLog::entry_due`]);
//! * `khqr:pr:k`: every entry by keep time, whose member names its list
//!   members, so that [`EntryLog::entry_prune`] takes them out of the lists.
//!
//! Every write is one Lua script (`store/lua/entry_*.lua`), so the lists
//! never disagree with the entries. [`EntryLog::entry_settle`] is a
//! compare-and-set on the entry's whole JSON (the script replaces it only if
//! unchanged since read; read again and retried otherwise). A list step
//! reads at most [`SCAN_STEP`] members (more than a page only when both
//! `status` and `bakongid` are asked: then the account's list is read and
//! the status checked).

use std::sync::LazyLock;

use redis::AsyncCommands;

use super::redis::{redis_error, PREFIX};
use super::{RedisStore, StoreError};
use crate::ledger::{Cursor, Entry, EntryFilter, EntryLog, Payment, QrStatus};

static PUT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/entry_put.lua")));
static SETTLE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/entry_settle.lua")));
static LIST: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/entry_list.lua")));
static PRUNE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/entry_prune.lua")));

/// Most list members one script call reads (it blocks Redis meanwhile).
const SCAN_STEP: usize = 2_000;

/// Most entries one script call returns: a reply of at most about 150 KB
/// (parsing much larger replies raised the export's peak memory).
const REPLY_STEP: usize = 250;

/// Most entries one [`EntryLog::entry_prune`] call forgets.
const PRUNE_BATCH: usize = 5_000;

/// How often a settle is tried again when the entry changed under it.
const SETTLE_TRIES: usize = 8;

fn key(kind: &str, rest: &str) -> String {
    format!("{PREFIX}pr:{kind}:{rest}")
}

fn entry_key(md5: &str) -> String {
    key("e", md5)
}

fn merchant_key(merchant: &str) -> String {
    key("m", merchant)
}

fn status_key(merchant: &str, status: QrStatus) -> String {
    key("s", &format!("{merchant}\n{status}"))
}

fn account_key(merchant: &str, bakong_id: &str) -> String {
    key("b", &format!("{merchant}\n{bakong_id}"))
}

fn due_key(status: QrStatus) -> String {
    key("d", status.as_str())
}

fn keep_key() -> String {
    format!("{PREFIX}pr:k")
}

/// A list member: `(ms, md5)` in lexical order.
fn member(ms: u64, md5: &str) -> String {
    format!("{ms:020}:{md5}")
}

/// The lowest member of a list read: past the cursor, or at or after
/// `from_ms`, whichever is later.
fn lowest(from_ms: u64, after: Option<&Cursor>) -> String {
    match after {
        Some(c) if (c.ms, c.id.as_str()) >= (from_ms, "") => format!("({}", member(c.ms, &c.id)),
        _ => format!("[{from_ms:020}:"),
    }
}

/// The highest member of a list read: before `to_ms`.
fn highest(to_ms: Option<u64>) -> String {
    to_ms.map_or_else(|| "+".to_owned(), |t| format!("({t:020}:"))
}

fn parse(json: &str) -> Result<Entry, StoreError> {
    serde_json::from_str(json).map_err(|_| StoreError::new("redis: unreadable entry"))
}

fn to_json(entry: &Entry) -> Result<String, StoreError> {
    serde_json::to_string(entry).map_err(|e| StoreError::new(format!("redis: {e}")))
}

impl RedisStore {
    /// Up to `limit` entries of the list `list` from `min` to `max`, in
    /// steps of at most [`SCAN_STEP`] members, those of `status` only if
    /// given.
    async fn read_list(
        &self,
        list: &str,
        mut min: String,
        max: &str,
        status: Option<QrStatus>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        let mut conn = self.conn();
        while out.len() < limit {
            let step: Vec<String> = LIST
                .key(list)
                .arg(&min)
                .arg(max)
                .arg((limit - out.len()).min(REPLY_STEP))
                .arg(status.map_or("", QrStatus::as_str))
                .arg(entry_key(""))
                .arg(SCAN_STEP)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
            let mut step = step.into_iter();
            let read_to = step.next().unwrap_or_default();
            for json in step {
                out.push(parse(&json)?);
            }
            if read_to.is_empty() {
                break;
            }
            min = format!("({read_to}");
        }
        Ok(out)
    }
}

impl EntryLog for RedisStore {
    async fn entry_put(&self, entry: &Entry, keep_until_ms: u64) -> Result<bool, StoreError> {
        let e = entry;
        let keep_member = format!(
            "{}\n{:020}\n{:020}\n{}\n{}",
            e.md5, e.created_ms, e.expires_ms, e.merchant, e.bakong_id
        );
        let filed: i64 = PUT
            .key(entry_key(&e.md5))
            .key(merchant_key(&e.merchant))
            .key(status_key(&e.merchant, e.status))
            .key(account_key(&e.merchant, &e.bakong_id))
            .key(due_key(e.status))
            .key(keep_key())
            .arg(to_json(e)?)
            .arg(keep_until_ms.max(1))
            .arg(member(e.created_ms, &e.md5))
            .arg(member(e.expires_ms, &e.md5))
            .arg(keep_member)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(filed == 1)
    }

    async fn entry_get(&self, md5: &str) -> Result<Option<Entry>, StoreError> {
        let json: Option<String> = self
            .conn()
            .get(entry_key(md5))
            .await
            .map_err(|e| redis_error(&e))?;
        json.as_deref().map(parse).transpose()
    }

    async fn entry_settle(
        &self,
        md5: &str,
        from: &[QrStatus],
        to: QrStatus,
        payment: Option<&Payment>,
        now_ms: u64,
    ) -> Result<Option<Entry>, StoreError> {
        let mut conn = self.conn();
        for _ in 0..SETTLE_TRIES {
            let read: Option<String> = conn
                .get(entry_key(md5))
                .await
                .map_err(|e| redis_error(&e))?;
            let Some(read) = read else { return Ok(None) };
            let mut e = parse(&read)?;
            if !from.contains(&e.status) {
                return Ok(None);
            }
            let old = e.status;
            e.status = to;
            e.updated_ms = now_ms;
            if let Some(p) = payment {
                e.payment = Some(p.clone());
            }
            let done: i64 = SETTLE
                .key(entry_key(md5))
                .key(status_key(&e.merchant, old))
                .key(status_key(&e.merchant, to))
                .key(due_key(old))
                .key(due_key(to))
                .arg(&read)
                .arg(to_json(&e)?)
                .arg(member(e.created_ms, md5))
                .arg(member(e.expires_ms, md5))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
            if done == 1 {
                return Ok(Some(e));
            }
        }
        Err(StoreError::new(
            "redis: the entry kept changing while it was settled",
        ))
    }

    async fn entry_list(
        &self,
        merchant: &str,
        filter: &EntryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let (list, status) = match (&filter.bakong_id, filter.status) {
            (Some(b), s) => (account_key(merchant, b), s),
            (None, Some(s)) => (status_key(merchant, s), None),
            (None, None) => (merchant_key(merchant), None),
        };
        let min = lowest(filter.from_ms.unwrap_or(0), after);
        self.read_list(&list, min, &highest(filter.to_ms), status, limit)
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
        let min = lowest(from_ms, after);
        self.read_list(&due_key(status), min, &highest(Some(to_ms)), None, limit)
            .await
    }

    async fn entry_prune(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut script = PRUNE.key(keep_key());
        script
            .arg(now_ms)
            .arg(PRUNE_BATCH)
            .arg(format!("{PREFIX}pr:"));
        for s in QrStatus::ALL {
            script.arg(s.as_str());
        }
        let n: u64 = script
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(n)
    }
}
