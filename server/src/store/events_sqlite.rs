//! [`EventLog`] for [`SqliteStore`]. Not built yet: every method answers a
//! [`super::StoreError`] (the trait's defaults).

use super::SqliteStore;
use crate::ledger::EventLog;

impl EventLog for SqliteStore {}
