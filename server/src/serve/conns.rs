//! The open connections of each client group ([`ClientGroup`]: an IPv4
//! address or an IPv6 /64), oldest first, with the signal that closes each.
//!
//! * At its cap, a group's new connection closes that group's oldest one: a
//!   client can only displace its own connections.
//! * When the whole server is full, [`Conns::shed_largest`] closes the oldest
//!   connection of the group holding the most, so a few clients holding every
//!   slot (idle, slow or streaming) make room for a newcomer instead of
//!   leaving it in the kernel's backlog.
//!
//! Connections from trusted proxies are not booked here: they carry many
//! clients, whose own limits apply per request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::client_ip::ClientGroup;

#[derive(Default)]
struct Table {
    groups: HashMap<ClientGroup, VecDeque<(u64, Arc<Notify>)>>,
    next_id: u64,
}

/// The booked connections and the per-group cap (0 = no cap).
pub struct Conns {
    table: Mutex<Table>,
    per_group: usize,
}

/// One booked connection; dropping it (when the connection ends) unbooks it.
pub struct ConnSlot {
    conns: Arc<Conns>,
    group: ClientGroup,
    id: u64,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut t = self.conns.lock();
        if let Some(q) = t.groups.get_mut(&self.group) {
            q.retain(|(id, _)| *id != self.id);
            if q.is_empty() {
                t.groups.remove(&self.group);
            }
        }
    }
}

impl Conns {
    /// An empty table; `per_group` connections at most per group (0 = no cap).
    #[must_use]
    pub fn new(per_group: usize) -> Arc<Self> {
        Arc::new(Conns {
            table: Mutex::new(Table::default()),
            per_group,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Books a connection of `group` and returns its slot and the signal that
    /// will close it. At the group's cap, its oldest connection is signalled
    /// (and unbooked) first.
    pub fn admit(self: &Arc<Self>, group: ClientGroup) -> (ConnSlot, Arc<Notify>) {
        let close = Arc::new(Notify::new());
        let mut t = self.lock();
        t.next_id += 1;
        let id = t.next_id;
        let q = t.groups.entry(group).or_default();
        if self.per_group > 0 && q.len() >= self.per_group {
            if let Some((_, oldest)) = q.pop_front() {
                oldest.notify_one();
                metrics::counter!("khqr_connections_displaced_total", "why" => "client_cap")
                    .increment(1);
            }
        }
        q.push_back((id, close.clone()));
        drop(t);
        let slot = ConnSlot {
            conns: self.clone(),
            group,
            id,
        };
        (slot, close)
    }

    /// Closes (signals and unbooks) the oldest connection of the group holding
    /// the most connections, if that group holds at least `min`; returns
    /// whether one was closed.
    pub fn shed_largest(&self, min: usize) -> bool {
        let mut t = self.lock();
        let Some((&group, _)) = t
            .groups
            .iter()
            .filter(|(_, q)| q.len() >= min.max(1))
            .max_by_key(|(_, q)| q.len())
        else {
            return false;
        };
        let Some(q) = t.groups.get_mut(&group) else {
            return false;
        };
        let Some((_, oldest)) = q.pop_front() else {
            return false;
        };
        if q.is_empty() {
            t.groups.remove(&group);
        }
        drop(t);
        oldest.notify_one();
        metrics::counter!("khqr_connections_displaced_total", "why" => "server_full").increment(1);
        true
    }

    /// A connection slot from `slots` (the server-wide cap). When none is
    /// free, first sheds the largest holder's oldest connection (if a group
    /// holds two or more), then waits for a slot; `None` if `stop` resolves
    /// first.
    pub async fn take_slot(
        &self,
        slots: &Arc<Semaphore>,
        stop: std::pin::Pin<&mut (impl std::future::Future<Output = ()> + ?Sized)>,
    ) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = slots.clone().try_acquire_owned() {
            return Some(p);
        }
        self.shed_largest(2);
        tokio::select! {
            p = slots.clone().acquire_owned() => p.ok(),
            () = stop => None,
        }
    }

    /// How many connections `group` has booked.
    #[cfg(test)]
    #[must_use]
    pub fn open(&self, group: ClientGroup) -> usize {
        self.lock().groups.get(&group).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn g(ip: &str) -> ClientGroup {
        ClientGroup::of(ip.parse::<IpAddr>().unwrap())
    }

    /// Whether `n` was signalled (a permit is stored by `notify_one`).
    async fn signalled(n: &Notify) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(1), n.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_group_at_its_cap_displaces_its_own_oldest() {
        let conns = Conns::new(2);
        let (s1, c1) = conns.admit(g("2001:db8:1:1::1"));
        let (_s2, c2) = conns.admit(g("2001:db8:1:1::2"));
        // Another address of the same /64 is the same client.
        let (_s3, c3) = conns.admit(g("2001:db8:1:1:ffff::3"));
        assert!(signalled(&c1).await);
        assert!(!signalled(&c2).await && !signalled(&c3).await);
        assert_eq!(conns.open(g("2001:db8:1:1::9")), 2);
        // Another /64 and an IPv4 client are not touched.
        let (_s4, c4) = conns.admit(g("2001:db8:1:2::1"));
        let (_s5, c5) = conns.admit(g("192.0.2.1"));
        assert!(!signalled(&c4).await && !signalled(&c5).await);
        // The displaced slot's drop after its eviction changes nothing.
        drop(s1);
        assert_eq!(conns.open(g("2001:db8:1:1::9")), 2);
    }

    #[tokio::test]
    async fn slots_unbook_on_drop_and_zero_means_no_cap() {
        let conns = Conns::new(0);
        let slots: Vec<_> = (0..100).map(|_| conns.admit(g("192.0.2.7"))).collect();
        assert_eq!(conns.open(g("192.0.2.7")), 100);
        for (_, c) in &slots {
            assert!(!signalled(c).await);
        }
        drop(slots);
        assert_eq!(conns.open(g("192.0.2.7")), 0);
        assert!(conns.lock().groups.is_empty());
    }

    #[tokio::test]
    async fn a_full_server_sheds_the_largest_holder_first() {
        let conns = Conns::new(0);
        let (_a, a) = conns.admit(g("192.0.2.1"));
        let hog: Vec<_> = (0..5).map(|_| conns.admit(g("192.0.2.2"))).collect();
        let (_b1, b1) = conns.admit(g("192.0.2.3"));
        let (_b2, _) = conns.admit(g("192.0.2.3"));
        assert!(conns.shed_largest(2));
        assert!(signalled(&hog[0].1).await);
        assert!(!signalled(&a).await && !signalled(&b1).await);
        assert_eq!(conns.open(g("192.0.2.2")), 4);
        // Nobody holds two: nothing is shed.
        let single = Conns::new(0);
        let (_x, _) = single.admit(g("192.0.2.1"));
        let (_y, _) = single.admit(g("192.0.2.2"));
        assert!(!single.shed_largest(2));
        assert!(!Conns::new(0).shed_largest(2));
    }

    #[tokio::test]
    async fn a_slot_when_full_comes_from_the_largest_holder() {
        let conns = Conns::new(0);
        let slots = Arc::new(Semaphore::new(3));
        let mut held = Vec::new();
        for _ in 0..3 {
            let stop = std::future::pending::<()>();
            tokio::pin!(stop);
            let permit = conns.take_slot(&slots, stop.as_mut()).await.unwrap();
            let (slot, close) = conns.admit(g("192.0.2.2"));
            // What serve() does: the connection ends when signalled.
            held.push(tokio::spawn(async move {
                close.notified().await;
                drop((permit, slot));
            }));
        }
        let stop = std::future::pending::<()>();
        tokio::pin!(stop);
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            conns.take_slot(&slots, stop.as_mut()),
        )
        .await;
        assert!(matches!(got, Ok(Some(_))));
        assert_eq!(conns.open(g("192.0.2.2")), 2);
        // Full with nobody holding two: wait, until the stop.
        let single = Conns::new(0);
        let one = Arc::new(Semaphore::new(1));
        let never = std::future::pending::<()>();
        tokio::pin!(never);
        let _p = single.take_slot(&one, never.as_mut()).await.unwrap();
        let (_s, _) = single.admit(g("192.0.2.9"));
        let stop = tokio::time::sleep(std::time::Duration::from_millis(50));
        tokio::pin!(stop);
        assert!(single.take_slot(&one, stop.as_mut()).await.is_none());
    }
}
