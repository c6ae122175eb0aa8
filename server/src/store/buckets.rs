//! Rate limits kept in this process: `governor` token buckets per client and
//! per Bakong account. The memory and SQLite stores use them (one machine, one
//! process answering); Redis keeps its buckets in Redis.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Limited, Limits};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn keyed(per_sec: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    (per_sec > 0).then(|| RateLimiter::keyed(Quota::per_second(nz(per_sec)).allow_burst(nz(burst))))
}

/// The token buckets of [`Limits::client_per_sec`] and
/// [`Limits::account_per_sec`] (none when a rate is 0).
pub(super) struct Buckets {
    clients: Option<DefaultKeyedRateLimiter<String>>,
    accounts: Option<DefaultKeyedRateLimiter<String>>,
    /// Made once: building a `quanta` clock probes the CPU and is slow.
    clock: DefaultClock,
}

impl Buckets {
    /// Full buckets for `limits`.
    pub(super) fn new(limits: &Limits) -> Self {
        Buckets {
            clients: keyed(limits.client_per_sec, limits.client_burst),
            accounts: keyed(limits.account_per_sec, limits.account_burst),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one token from `client`'s bucket and, if given, `account`'s;
    /// [`Limited`] (how long to wait, at least 1 ms) when one is empty.
    pub(super) fn admit(&self, client: &str, account: Option<&str>) -> Result<(), Limited> {
        let limited = |n: governor::NotUntil<_>| Limited {
            retry_after_ms: u64::try_from(n.wait_time_from(self.clock.now()).as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        };
        if let Some(l) = &self.clients {
            l.check_key(&client.to_owned()).map_err(limited)?;
        }
        if let (Some(l), Some(a)) = (&self.accounts, account) {
            l.check_key(&a.to_owned()).map_err(limited)?;
        }
        Ok(())
    }

    /// Forgets buckets that are full again.
    pub(super) fn prune(&self) {
        for l in [&self.clients, &self.accounts].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}
