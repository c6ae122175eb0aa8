//! [`EntryLog`] for [`MemoryStore`]: the payment record in this process's
//! memory (lost on restart), at most [`super::Limits::max_entries`] entries
//! (the oldest goes first).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{MemoryStore, StoreError};
use crate::ledger::{Cursor, Entry, EntryFilter, EntryLog, Payment, QrStatus};

/// The entries and their indexes.
#[derive(Default)]
pub(super) struct EntryTable {
    inner: Mutex<Inner>,
}

#[derive(Default)]
#[allow(clippy::struct_field_names)] // each is an index "by" its key
struct Inner {
    /// md5 -> (entry, keep until ms).
    by_md5: HashMap<String, (Entry, u64)>,
    /// `(merchant, created_ms, md5)`.
    by_merchant: BTreeSet<(String, u64, String)>,
    /// `(expires_ms, md5)`.
    by_expiry: BTreeSet<(u64, String)>,
    /// `(created_ms, md5)`, for the cap.
    by_age: BTreeSet<(u64, String)>,
}

impl Inner {
    fn remove(&mut self, md5: &str) {
        if let Some((e, _)) = self.by_md5.remove(md5) {
            self.by_merchant
                .remove(&(e.merchant, e.created_ms, e.md5.clone()));
            self.by_expiry.remove(&(e.expires_ms, e.md5.clone()));
            self.by_age.remove(&(e.created_ms, e.md5));
        }
    }
}

impl EntryTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EntryLog for MemoryStore {
    async fn entry_put(&self, entry: &Entry, keep_until_ms: u64) -> Result<bool, StoreError> {
        let mut t = self.ledger_entries().lock();
        if t.by_md5.contains_key(&entry.md5) {
            return Ok(false);
        }
        let cap = usize::try_from(self.limits().max_entries.max(1)).unwrap_or(usize::MAX);
        while t.by_md5.len() >= cap {
            let Some((_, oldest)) = t.by_age.first().cloned() else {
                break;
            };
            t.remove(&oldest);
        }
        let md5 = entry.md5.clone();
        t.by_merchant
            .insert((entry.merchant.clone(), entry.created_ms, md5.clone()));
        t.by_expiry.insert((entry.expires_ms, md5.clone()));
        t.by_age.insert((entry.created_ms, md5.clone()));
        t.by_md5.insert(md5, (entry.clone(), keep_until_ms));
        Ok(true)
    }

    async fn entry_get(&self, md5: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .ledger_entries()
            .lock()
            .by_md5
            .get(md5)
            .map(|(e, _)| e.clone()))
    }

    async fn entry_settle(
        &self,
        md5: &str,
        from: &[QrStatus],
        to: QrStatus,
        payment: Option<&Payment>,
        now_ms: u64,
    ) -> Result<Option<Entry>, StoreError> {
        let mut t = self.ledger_entries().lock();
        let Some((e, _)) = t.by_md5.get_mut(md5) else {
            return Ok(None);
        };
        if !from.contains(&e.status) {
            return Ok(None);
        }
        e.status = to;
        e.updated_ms = now_ms;
        if let Some(p) = payment {
            e.payment = Some(p.clone());
        }
        Ok(Some(e.clone()))
    }

    async fn entry_list(
        &self,
        merchant: &str,
        filter: &EntryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let t = self.ledger_entries().lock();
        let start = match after {
            Some(c) => (merchant.to_owned(), c.ms, c.id.clone()),
            None => (
                merchant.to_owned(),
                filter.from_ms.unwrap_or(0),
                String::new(),
            ),
        };
        let out = t
            .by_merchant
            .range(start..)
            .take_while(|(m, created, _)| {
                m == merchant && filter.to_ms.is_none_or(|to| *created < to)
            })
            .filter(|(_, created, md5)| after.is_none_or(|c| c.before(*created, md5)))
            .filter_map(|(_, _, md5)| t.by_md5.get(md5).map(|(e, _)| e))
            .filter(|e| filter.admits(e))
            .take(limit)
            .cloned()
            .collect();
        Ok(out)
    }

    async fn entry_due(
        &self,
        status: QrStatus,
        from_ms: u64,
        to_ms: u64,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let t = self.ledger_entries().lock();
        let start = match after {
            Some(c) => (c.ms.max(from_ms), c.id.clone()),
            None => (from_ms, String::new()),
        };
        let out = t
            .by_expiry
            .range(start..)
            .take_while(|(exp, _)| *exp < to_ms)
            .filter(|(exp, md5)| after.is_none_or(|c| c.before(*exp, md5)))
            .filter_map(|(_, md5)| t.by_md5.get(md5).map(|(e, _)| e))
            .filter(|e| e.status == status)
            .take(limit)
            .cloned()
            .collect();
        Ok(out)
    }

    async fn entry_prune(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut t = self.ledger_entries().lock();
        let old: Vec<String> = t
            .by_md5
            .iter()
            .filter(|(_, (_, keep))| *keep <= now_ms)
            .map(|(md5, _)| md5.clone())
            .collect();
        for md5 in &old {
            t.remove(md5);
        }
        Ok(old.len() as u64)
    }
}
