//! Limits kept in this process (not in the store): the caps on open event
//! streams, and the rate buckets of the routes that never touch the store
//! (the page's static assets and unknown paths; the admin routes `/healthz`,
//! `/readyz`, `/metrics`). Those routes cost only this instance's CPU and
//! bandwidth, so a per-instance bucket is the right scope, and it costs no
//! store round trip. Every other route is limited by the store, in the same
//! call that reads or writes the QR.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::store::Limited;

/// Why an event stream was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamRefused {
    /// This client holds its maximum of open streams (answer 429).
    Client,
    /// The server holds its maximum of open streams (answer 503).
    Server,
}

#[derive(Default)]
struct Open {
    per_client: HashMap<String, usize>,
    total: usize,
}

/// Caps on open event streams: per client key and in all (0 = no cap).
pub struct StreamCaps {
    per_client: usize,
    total: usize,
    open: Mutex<Open>,
}

/// One open stream; dropping it (when the stream ends) frees its place.
pub struct StreamPermit {
    caps: Arc<StreamCaps>,
    client: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut o = self.caps.lock();
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                o.per_client.remove(&self.client);
            }
        }
        metrics::gauge!("khqr_event_streams_open").decrement(1.0);
    }
}

impl StreamCaps {
    /// At most `per_client` streams per client key and `total` in all (0 =
    /// no cap).
    #[must_use]
    pub fn new(per_client: usize, total: usize) -> Arc<Self> {
        Arc::new(StreamCaps {
            per_client,
            total,
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more stream of `client`.
    ///
    /// # Errors
    /// [`StreamRefused::Client`] when `client` holds its cap,
    /// [`StreamRefused::Server`] when the server does.
    pub fn try_open(self: &Arc<Self>, client: &str) -> Result<StreamPermit, StreamRefused> {
        let mut o = self.lock();
        let mine = o.per_client.get(client).copied().unwrap_or(0);
        if self.per_client > 0 && mine >= self.per_client {
            return Err(StreamRefused::Client);
        }
        if self.total > 0 && o.total >= self.total {
            return Err(StreamRefused::Server);
        }
        o.total += 1;
        *o.per_client.entry(client.to_owned()).or_insert(0) += 1;
        drop(o);
        metrics::gauge!("khqr_event_streams_open").increment(1.0);
        Ok(StreamPermit {
            caps: self.clone(),
            client: client.to_owned(),
        })
    }

    /// Streams open now: (of `client`, in all).
    #[must_use]
    pub fn open(&self, client: &str) -> (usize, usize) {
        let o = self.lock();
        (o.per_client.get(client).copied().unwrap_or(0), o.total)
    }
}

/// Which local bucket a request is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// The page's assets and paths that match no route.
    Static,
    /// `/healthz`, `/readyz`, `/metrics`.
    Admin,
    /// The merchant API (`/khqr/merchant/…`: lists, export, replays, test
    /// payments), apart from the admin routes so that it never starves a
    /// health probe.
    Merchant,
}

impl Bucket {
    /// The local bucket of a route (by its metrics label), if it has one:
    /// `assets` and `other` (no route) are [`Bucket::Static`]; `healthz`,
    /// `readyz` and `metrics` are [`Bucket::Admin`]; the merchant API
    /// (`merchant`) is [`Bucket::Merchant`]; every other route is limited by
    /// the store.
    #[must_use]
    pub fn for_route(route: &str) -> Option<Bucket> {
        match route {
            "assets" | "other" => Some(Bucket::Static),
            "healthz" | "readyz" | "metrics" => Some(Bucket::Admin),
            "merchant" => Some(Bucket::Merchant),
            _ => None,
        }
    }
}

/// Per-client token buckets for [`Bucket::Static`], [`Bucket::Admin`] and
/// [`Bucket::Merchant`] (requests per second, burst four seconds' worth; 0 =
/// no limit).
pub struct RouteBuckets {
    assets: Option<DefaultKeyedRateLimiter<String>>,
    admin: Option<DefaultKeyedRateLimiter<String>>,
    merchant: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

fn keyed(per_sec: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    let rate = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(per_sec.saturating_mul(4)).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl RouteBuckets {
    /// `assets_per_sec` for [`Bucket::Static`], `admin_per_sec` for
    /// [`Bucket::Admin`], `merchant_per_sec` for [`Bucket::Merchant`], per
    /// client key (0 = no limit).
    #[must_use]
    pub fn new(assets_per_sec: u32, admin_per_sec: u32, merchant_per_sec: u32) -> Self {
        RouteBuckets {
            assets: keyed(assets_per_sec),
            admin: keyed(admin_per_sec),
            merchant: keyed(merchant_per_sec),
            clock: DefaultClock::default(),
        }
    }

    /// Charges one request of `client` to `bucket`.
    ///
    /// # Errors
    /// [`Limited`] with the wait until the bucket has a token again.
    pub fn check(&self, bucket: Bucket, client: &str) -> Result<(), Limited> {
        let limiter = match bucket {
            Bucket::Static => &self.assets,
            Bucket::Admin => &self.admin,
            Bucket::Merchant => &self.merchant,
        };
        let Some(l) = limiter else { return Ok(()) };
        l.check_key(&client.to_owned()).map_err(|n| Limited {
            retry_after_ms: u64::try_from(n.wait_time_from(self.clock.now()).as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        })
    }

    /// Forgets buckets that are full again (the server calls it every 10 s).
    pub fn prune(&self) {
        for l in [&self.assets, &self.admin, &self.merchant]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Prunes `buckets` every 10 s while they live.
    pub fn spawn_prune(buckets: std::sync::Weak<RouteBuckets>) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                let Some(b) = buckets.upgrade() else { return };
                b.prune();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_caps_per_client_and_in_all() {
        let caps = StreamCaps::new(2, 3);
        let a1 = caps.try_open("a").unwrap();
        let _a2 = caps.try_open("a").unwrap();
        assert_eq!(caps.try_open("a").err(), Some(StreamRefused::Client));
        let _b1 = caps.try_open("b").unwrap();
        assert_eq!(caps.try_open("c").err(), Some(StreamRefused::Server));
        // A client at its own cap hears so even when the server is full.
        assert_eq!(caps.try_open("a").err(), Some(StreamRefused::Client));
        assert_eq!(caps.open("a"), (2, 3));
        drop(a1);
        assert_eq!(caps.open("a"), (1, 2));
        let _c1 = caps.try_open("c").unwrap();
        assert_eq!(caps.open("c"), (1, 3));
    }

    #[test]
    fn zero_means_no_stream_cap() {
        let caps = StreamCaps::new(0, 0);
        let permits: Vec<_> = (0..500).map(|_| caps.try_open("a").unwrap()).collect();
        assert_eq!(caps.open("a"), (500, 500));
        drop(permits);
        assert_eq!(caps.open("a"), (0, 0));
        assert!(caps.lock().per_client.is_empty());
    }

    #[test]
    fn route_buckets_are_per_client_and_per_bucket() {
        let b = RouteBuckets::new(5, 2, 3);
        // Burst: four seconds' worth.
        let passed = (0..100)
            .filter(|_| b.check(Bucket::Static, "a").is_ok())
            .count();
        assert!((20..=21).contains(&passed), "{passed}");
        let l = b.check(Bucket::Static, "a").unwrap_err();
        assert!((1..=200).contains(&l.retry_after_ms), "{l:?}");
        // Another client, and the admin bucket, are untouched.
        assert!(b.check(Bucket::Static, "b").is_ok());
        let admin = (0..100)
            .filter(|_| b.check(Bucket::Admin, "a").is_ok())
            .count();
        assert!((8..=9).contains(&admin), "{admin}");
        // The merchant API has its own: an emptied admin bucket leaves it be.
        let merchant = (0..100)
            .filter(|_| b.check(Bucket::Merchant, "a").is_ok())
            .count();
        assert!((12..=13).contains(&merchant), "{merchant}");
        assert_eq!(Bucket::for_route("merchant"), Some(Bucket::Merchant));
        assert_eq!(Bucket::for_route("healthz"), Some(Bucket::Admin));
        assert_eq!(Bucket::for_route("assets"), Some(Bucket::Static));
        assert_eq!(Bucket::for_route("other"), Some(Bucket::Static));
        assert_eq!(Bucket::for_route("metrics"), Some(Bucket::Admin));
        assert_eq!(Bucket::for_route("create"), None);
        let off = RouteBuckets::new(0, 0, 0);
        assert!((0..1000).all(|_| off.check(Bucket::Admin, "a").is_ok()));
        b.prune();
    }
}
