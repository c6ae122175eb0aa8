//! [`EventLog`] for [`MemoryStore`]: the event log in this process's memory
//! (lost on restart), at most [`super::Limits::max_entries`] events (the
//! oldest goes first, with its attempts).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{MemoryStore, StoreError};
use crate::ledger::{Attempt, Cursor, DeliveryState, Event, EventFilter, EventLog};

/// Most attempts kept per event (the first ones and the latest).
const MAX_ATTEMPTS: usize = 100;

/// The events, their attempts and the outbox.
#[derive(Default)]
pub(super) struct EventTable {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// id -> (event, keep until ms, attempts).
    by_id: HashMap<String, (Event, u64, Vec<Attempt>)>,
    /// `(merchant, created_ms, id)`.
    by_merchant: BTreeSet<(String, u64, String)>,
    /// `(created_ms, id)`, for the cap.
    by_age: BTreeSet<(u64, String)>,
    /// id -> owed until ms.
    outbox: HashMap<String, u64>,
}

impl Inner {
    fn remove(&mut self, id: &str) {
        if let Some((e, _, _)) = self.by_id.remove(id) {
            self.by_merchant
                .remove(&(e.merchant, e.created_ms, e.id.clone()));
            self.by_age.remove(&(e.created_ms, e.id));
        }
        self.outbox.remove(id);
    }
}

impl EventTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EventLog for MemoryStore {
    async fn event_put(&self, event: &Event, keep_until_ms: u64) -> Result<bool, StoreError> {
        let mut t = self.ledger_events().lock();
        if t.by_id.contains_key(&event.id) {
            return Ok(false);
        }
        let cap = usize::try_from(self.limits().max_entries.max(1)).unwrap_or(usize::MAX);
        while t.by_id.len() >= cap {
            let Some((_, oldest)) = t.by_age.first().cloned() else {
                break;
            };
            t.remove(&oldest);
        }
        let id = event.id.clone();
        t.by_merchant
            .insert((event.merchant.clone(), event.created_ms, id.clone()));
        t.by_age.insert((event.created_ms, id.clone()));
        t.by_id
            .insert(id, (event.clone(), keep_until_ms, Vec::new()));
        Ok(true)
    }

    async fn event_get(&self, merchant: &str, id: &str) -> Result<Option<Event>, StoreError> {
        let t = self.ledger_events().lock();
        Ok(t.by_id
            .get(id)
            .map(|(e, _, _)| e)
            .filter(|e| e.merchant == merchant)
            .cloned())
    }

    async fn event_list(
        &self,
        merchant: &str,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let t = self.ledger_events().lock();
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
            .filter(|(_, created, id)| after.is_none_or(|c| c.before(*created, id)))
            .filter_map(|(_, _, id)| t.by_id.get(id).map(|(e, _, _)| e))
            .filter(|e| filter.admits(e))
            .take(limit)
            .cloned()
            .collect();
        Ok(out)
    }

    async fn event_delivery(
        &self,
        id: &str,
        state: DeliveryState,
        attempts: u32,
    ) -> Result<(), StoreError> {
        if let Some((e, _, _)) = self.ledger_events().lock().by_id.get_mut(id) {
            e.delivery = state;
            e.attempts = attempts;
        }
        Ok(())
    }

    async fn attempt_add(&self, attempt: &Attempt) -> Result<(), StoreError> {
        if let Some((_, _, list)) = self.ledger_events().lock().by_id.get_mut(&attempt.event_id) {
            if list.len() >= MAX_ATTEMPTS {
                list.remove(MAX_ATTEMPTS / 2);
            }
            list.push(attempt.clone());
        }
        Ok(())
    }

    async fn attempt_list(&self, id: &str, limit: usize) -> Result<Vec<Attempt>, StoreError> {
        let t = self.ledger_events().lock();
        Ok(t.by_id
            .get(id)
            .map(|(_, _, list)| list.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn outbox_add(&self, id: &str, until_ms: u64) -> Result<(), StoreError> {
        self.ledger_events()
            .lock()
            .outbox
            .insert(id.to_owned(), until_ms);
        Ok(())
    }

    async fn outbox_remove(&self, id: &str) -> Result<(), StoreError> {
        self.ledger_events().lock().outbox.remove(id);
        Ok(())
    }

    async fn outbox_list(&self, now_ms: u64, max: usize) -> Result<Vec<Event>, StoreError> {
        let mut t = self.ledger_events().lock();
        t.outbox.retain(|_, until| *until > now_ms);
        let ids: Vec<String> = t.outbox.keys().take(max).cloned().collect();
        Ok(ids
            .iter()
            .filter_map(|id| t.by_id.get(id).map(|(e, _, _)| e.clone()))
            .collect())
    }

    async fn event_prune(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut t = self.ledger_events().lock();
        let old: Vec<String> = t
            .by_id
            .iter()
            .filter(|(_, (_, keep, _))| *keep <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            t.remove(id);
        }
        Ok(old.len() as u64)
    }
}
