//! The Bakong call budget: one rate of calls to Bakong for the whole service,
//! shared by every instance through the store, spent in order of priority.
//!
//! Every call to Bakong takes a token from one bucket
//! ([`crate::store::coord::take`], the store's [`Store::budget_take`]; with Redis one bucket for all instances) that
//! fills at `--bakong-calls-per-sec` up to `--bakong-burst` tokens. Who may take
//! one depends on what the call is for ([`Priority`]):
//!
//! | priority | may take a token while the bucket holds | when there is none |
//! |---|---|---|
//! | [`Priority::Check`] (a merchant's `check`) | ≥ 1 | waits, at most [`Budget::check_wait_ms`], then 503 |
//! | [`Priority::StrangerCheck`] (an anonymous `check`, once requests can carry a merchant's key) | ≥ 1 + burst/4 | waits, as a check |
//! | [`Priority::Watch`] (watchers, the page's first status) | ≥ 1 + burst/4 | skips its turn |
//! | [`Priority::DeepLink`] (the page's "Open in Bakong") | ≥ 1 + burst/2 | skips: no button this time |
//! | [`Priority::Reconcile`] (the reconciliation job's list calls, [`crate::recon`]) | ≥ 1 + 3·burst/4 | skips: the job's turn is over until its next cycle |
//!
//! So however many QRs are watched, a quarter of the burst stays for checks,
//! and watchers never spend the last tokens of deep links' half either way
//! round. The reconciliation job, lowest of all, runs only on a bucket at
//! least three quarters full: it checks up to 50 QRs per call, but when the
//! service is busy it waits for a quiet cycle rather than take anyone's
//! tokens. The watchers' own pace is [`poll_delay_ms`].

use std::time::Duration;

use crate::store::coord::Rate;
use crate::store::{Store, StoreError};

/// What a call to Bakong is for, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Priority {
    /// A merchant's status check, asked now. Until requests carry merchants'
    /// keys (issue 18, item 2), every check is one.
    Check,
    /// A stranger's (anonymous) status check: waits like a check, but leaves
    /// watchers' reserve to merchants' checks, so strangers checking their own
    /// QRs cannot spend the tokens merchants' checks need. The check handler
    /// picks it for an anonymous request once keys exist.
    StrangerCheck,
    /// A payment watcher's poll, or a checkout page's first look.
    Watch,
    /// A checkout page's deep link ("Open in Bakong").
    DeepLink,
    /// The reconciliation job's `check_transaction_by_md5_list` call (50 QRs
    /// at most): lowest, skips its turn when the bucket is short.
    Reconcile,
}

impl Priority {
    /// The metrics label: `check`, `stranger_check`, `watch`, `deeplink` or
    /// `reconcile`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Priority::Check => "check",
            Priority::StrangerCheck => "stranger_check",
            Priority::Watch => "watch",
            Priority::DeepLink => "deeplink",
            Priority::Reconcile => "reconcile",
        }
    }

    /// Whether a call of this priority waits (bounded) for a token: checks.
    #[must_use]
    pub fn waits(self) -> bool {
        matches!(self, Priority::Check | Priority::StrangerCheck)
    }

    /// Tokens that must remain in a bucket of `burst` after this priority
    /// takes one: 0 (check), `burst / 4` (stranger's check, watch), `burst / 2`
    /// (deep link), `3 * burst / 4` (reconciliation).
    #[must_use]
    pub fn floor(self, burst: u32) -> u32 {
        match self {
            Priority::Check => 0,
            Priority::StrangerCheck | Priority::Watch => burst / 4,
            Priority::DeepLink => burst / 2,
            // Three quarters, rounded down; never overflows (≤ burst).
            Priority::Reconcile => u32::try_from(u64::from(burst) * 3 / 4).unwrap_or(burst),
        }
    }
}

/// Why a call may not be made now.
#[derive(Debug)]
pub enum Refused {
    /// No token for this priority now: a watcher or deep link skips its turn.
    Skipped,
    /// A check waited [`Budget::check_wait_ms`] and got no token; retry after
    /// this many ms.
    Busy {
        /// The bucket's estimate of the wait, in ms (at least 1).
        retry_after_ms: u64,
    },
    /// The store holding the bucket failed.
    Store(StoreError),
}

/// The budget's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Calls a second and burst, for the whole service.
    pub rate: Rate,
    /// Longest a check waits for a token, in ms.
    pub check_wait_ms: u64,
}

/// Longest a check waits for a token, in ms: 3 s, then 503 with `Retry-After`.
pub const CHECK_WAIT_MS: u64 = 3_000;

/// Most rounds a waiting check makes (each sleeps at least 1 ms, and all of
/// them at most [`Budget::check_wait_ms`]).
const MAX_ROUNDS: u32 = 1_000;

impl Budget {
    /// Takes a token for a call of priority `p` from `store`, with `clock`
    /// giving ms since the Unix epoch. A check waits (bounded by
    /// [`Budget::check_wait_ms`], [`Priority::waits`]); the others take a
    /// token now or skip.
    /// Counts refusals as `khqr_budget_refused_total{kind}` and checks that had
    /// to wait as `khqr_budget_deferred_total`.
    ///
    /// # Errors
    /// [`Refused::Skipped`] (watch, deep link: no token now),
    /// [`Refused::Busy`] (check: none within the wait), [`Refused::Store`].
    pub async fn take<S: Store>(
        &self,
        store: &S,
        p: Priority,
        clock: fn() -> u64,
    ) -> Result<(), Refused> {
        let floor = p.floor(self.rate.burst);
        // The wait is bounded by the time slept, whatever the clock does.
        let mut slept = 0u64;
        for _ in 0..MAX_ROUNDS {
            let now = clock();
            let wait = match store.budget_take(self.rate, floor, now).await {
                Ok(Ok(())) => {
                    if slept > 0 {
                        metrics::counter!("khqr_budget_deferred_total", "kind" => p.label())
                            .increment(1);
                    }
                    return Ok(());
                }
                Ok(Err(wait)) => wait.max(1),
                Err(e) => {
                    metrics::counter!("khqr_budget_refused_total", "kind" => p.label(), "why" => "store")
                        .increment(1);
                    return Err(Refused::Store(e));
                }
            };
            if !p.waits() {
                metrics::counter!("khqr_budget_refused_total", "kind" => p.label(), "why" => "skipped")
                    .increment(1);
                return Err(Refused::Skipped);
            }
            if slept.saturating_add(wait) > self.check_wait_ms {
                metrics::counter!("khqr_budget_refused_total", "kind" => p.label(), "why" => "busy")
                    .increment(1);
                return Err(Refused::Busy {
                    retry_after_ms: wait,
                });
            }
            slept = slept.saturating_add(wait);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        Err(Refused::Busy { retry_after_ms: 1 })
    }
}

/// How long a watcher waits before its next poll of a QR `age_ms` old: an
/// eighth of its age, at least `base_ms` (`--poll-interval-ms`) and at most
/// `cap_ms` (`--poll-max-interval-ms`; a cap under the base is the base). With
/// the defaults (2 s, 15 s): every 2 s for the first 16 s, 7.5 s at one
/// minute, 15 s from two minutes on.
#[must_use]
pub fn poll_delay_ms(age_ms: u64, base_ms: u64, cap_ms: u64) -> u64 {
    (age_ms / 8).clamp(base_ms, cap_ms.max(base_ms))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::store::{Limits, MemoryStore};

    fn budget(per_sec: u32, burst: u32, check_wait_ms: u64) -> Budget {
        Budget {
            rate: Rate { per_sec, burst },
            check_wait_ms,
        }
    }

    static FROZEN: AtomicU64 = AtomicU64::new(1_000_000);

    fn frozen() -> u64 {
        FROZEN.load(Ordering::SeqCst)
    }

    fn wall() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
    }

    #[test]
    fn floors_by_priority() {
        assert_eq!(
            [
                Priority::Check,
                Priority::StrangerCheck,
                Priority::Watch,
                Priority::DeepLink,
                Priority::Reconcile
            ]
            .map(|p| p.floor(20)),
            [0, 5, 5, 10, 15]
        );
        assert_eq!(Priority::Reconcile.floor(7), 5);
        assert_eq!(Priority::Reconcile.floor(u32::MAX), u32::MAX / 4 * 3 + 2);
        assert_eq!(Priority::Watch.floor(2), 0);
    }

    #[tokio::test]
    async fn watchers_leave_a_reserve_that_checks_take() {
        let coord = MemoryStore::new(Limits::default());
        let b = budget(10, 20, 0);
        let mut watched = 0;
        for _ in 0..50 {
            watched += usize::from(b.take(&coord, Priority::Watch, frozen).await.is_ok());
        }
        assert_eq!(watched, 15, "watchers stop at the reserve of 5");
        assert!(matches!(
            b.take(&coord, Priority::DeepLink, frozen).await,
            Err(Refused::Skipped)
        ));
        for i in 0..5 {
            assert!(
                b.take(&coord, Priority::Check, frozen).await.is_ok(),
                "check {i}"
            );
        }
        match b.take(&coord, Priority::Check, frozen).await {
            Err(Refused::Busy { retry_after_ms }) => assert_eq!(retry_after_ms, 100),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn strangers_checks_leave_the_reserve_to_merchants() {
        let coord = MemoryStore::new(Limits::default());
        // 100 tokens a second; a check may wait 50 ms.
        let b = budget(100, 20, 50);
        let mut strangers = 0;
        for _ in 0..40 {
            strangers += usize::from(
                b.take(&coord, Priority::StrangerCheck, frozen)
                    .await
                    .is_ok(),
            );
        }
        assert_eq!(strangers, 15, "strangers stop at the reserve of 5");
        for i in 0..5 {
            assert!(
                b.take(&coord, Priority::Check, frozen).await.is_ok(),
                "merchant {i}"
            );
        }
    }

    #[tokio::test]
    async fn deep_links_wait_for_half_the_burst() {
        let coord = MemoryStore::new(Limits::default());
        let b = budget(10, 20, 0);
        let mut links = 0;
        for _ in 0..50 {
            links += usize::from(b.take(&coord, Priority::DeepLink, frozen).await.is_ok());
        }
        assert_eq!(links, 10);
        // Watchers still have tokens above their own reserve.
        assert!(b.take(&coord, Priority::Watch, frozen).await.is_ok());
    }

    #[tokio::test]
    async fn reconciliation_takes_only_the_top_quarter() {
        let coord = MemoryStore::new(Limits::default());
        let b = budget(10, 20, 0);
        let mut taken = 0;
        for _ in 0..50 {
            taken += usize::from(b.take(&coord, Priority::Reconcile, frozen).await.is_ok());
        }
        assert_eq!(taken, 5, "the job stops at three quarters of the burst");
        // Deep links still have theirs: 15 held, down to 10.
        for i in 0..5 {
            assert!(
                b.take(&coord, Priority::DeepLink, frozen).await.is_ok(),
                "{i}"
            );
        }
    }

    #[tokio::test]
    async fn a_check_waits_for_the_next_token_within_its_bound() {
        let coord = MemoryStore::new(Limits::default());
        // 50 tokens a second: one every 20 ms; a check may wait 1 s.
        let b = budget(50, 1, 1_000);
        assert!(b.take(&coord, Priority::Check, wall).await.is_ok());
        let started = std::time::Instant::now();
        for _ in 0..3 {
            assert!(b.take(&coord, Priority::Check, wall).await.is_ok());
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(40), "{took:?}");
        assert!(took < Duration::from_secs(1), "{took:?}");
        // A watcher does not wait.
        assert!(matches!(
            b.take(&coord, Priority::Watch, wall).await,
            Err(Refused::Skipped)
        ));
    }

    #[test]
    fn pacing_backs_off_with_age() {
        assert_eq!(poll_delay_ms(0, 2_000, 15_000), 2_000);
        assert_eq!(poll_delay_ms(16_000, 2_000, 15_000), 2_000);
        assert_eq!(poll_delay_ms(60_000, 2_000, 15_000), 7_500);
        assert_eq!(poll_delay_ms(120_000, 2_000, 15_000), 15_000);
        assert_eq!(poll_delay_ms(u64::MAX, 2_000, 15_000), 15_000);
        assert_eq!(poll_delay_ms(600_000, 2_000, 500), 2_000, "cap under base");
    }
}
