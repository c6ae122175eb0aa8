//! [`EntryLog`] for [`SqliteStore`]. Not built yet: every method answers a
//! [`super::StoreError`] (the trait's defaults).

use super::SqliteStore;
use crate::ledger::EntryLog;

/// This log's tables, created at open if missing (`CREATE … IF NOT EXISTS`).
pub(super) const SCHEMA: &str = "";

impl EntryLog for SqliteStore {}
