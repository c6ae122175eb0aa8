//! [`EntryLog`] for [`SqliteStore`]. Not built yet: every method answers a
//! [`super::StoreError`] (the trait's defaults).

use super::SqliteStore;
use crate::ledger::EntryLog;

impl EntryLog for SqliteStore {}
