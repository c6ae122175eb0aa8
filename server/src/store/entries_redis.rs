//! [`EntryLog`] for [`RedisStore`]. Not built yet: every method answers a
//! [`super::StoreError`] (the trait's defaults).

use super::RedisStore;
use crate::ledger::EntryLog;

impl EntryLog for RedisStore {}
