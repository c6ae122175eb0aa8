//! Rate limits kept in this process for the memory and SQLite stores:
//! `governor` token buckets per client, per merchant and per Bakong account
//! (one machine, one process answering; a restart refills them, which is
//! harmless). Redis keeps its buckets in Redis (`lua/bucket.lua`).

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Limited, Limits, Payer};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn keyed(per_sec: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    (per_sec > 0).then(|| RateLimiter::keyed(Quota::per_second(nz(per_sec)).allow_burst(nz(burst))))
}

/// The token buckets of [`Limits::client_per_sec`],
/// [`Limits::merchant_per_sec`] and [`Limits::account_per_sec`] (none when a
/// rate is 0).
pub(super) struct Buckets {
    clients: Option<DefaultKeyedRateLimiter<String>>,
    merchants: Option<DefaultKeyedRateLimiter<String>>,
    accounts: Option<DefaultKeyedRateLimiter<String>>,
    /// Made once: building a `quanta` clock probes the CPU and is slow.
    clock: DefaultClock,
}

impl Buckets {
    /// Full buckets for `limits`.
    pub(super) fn new(limits: &Limits) -> Self {
        Buckets {
            clients: keyed(limits.client_per_sec, limits.client_burst),
            merchants: keyed(limits.merchant_per_sec, limits.merchant_burst),
            accounts: keyed(limits.account_per_sec, limits.account_burst),
            clock: DefaultClock::default(),
        }
    }

    fn take(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<String>>,
        key: &str,
    ) -> Result<(), Limited> {
        let Some(l) = limiter else { return Ok(()) };
        l.check_key(&key.to_owned()).map_err(|n| Limited {
            retry_after_ms: u64::try_from(n.wait_time_from(self.clock.now()).as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        })
    }

    /// Takes one token from the payer's own bucket (a client's or a
    /// merchant's); [`Limited`] (how long to wait, at least 1 ms) when empty.
    pub(super) fn admit(&self, payer: Payer<'_>) -> Result<(), Limited> {
        match payer {
            Payer::Client(c) => self.take(self.clients.as_ref(), c),
            Payer::Merchant(m) => self.take(self.merchants.as_ref(), m),
        }
    }

    /// Takes one token from the Bakong account's bucket.
    pub(super) fn account(&self, bakong_id: &str) -> Result<(), Limited> {
        self.take(self.accounts.as_ref(), bakong_id)
    }

    /// Forgets buckets that are full again.
    pub(super) fn prune(&self) {
        for l in [&self.clients, &self.merchants, &self.accounts]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}
