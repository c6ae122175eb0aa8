//! What instances share to spend Bakong calls together: the call budget's
//! token bucket ([`take`], the arithmetic both backends follow), leases (one
//! poller per QR, one deep-link request per QR) and small shared values (a
//! QR's deep link, a payment one instance saw); see the [`super::Store`]
//! methods `budget_take`, `lease`, `shared_get`, `shared_put`.
//!
//! The bucket is kept in integer milli-tokens, so that the Rust arithmetic
//! (the memory store) and `lua/budget.lua` (Redis) agree to the token; both
//! use the caller's clock (ms since the Unix epoch).

/// A token bucket's rate: `per_sec` tokens a second, at most `burst` saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per second (at least 1 is used).
    pub per_sec: u32,
    /// Most tokens held at once (at least 1 is used).
    pub burst: u32,
}

impl Rate {
    fn per_sec(self) -> u64 {
        u64::from(self.per_sec.max(1))
    }

    fn cap_milli(self) -> u64 {
        u64::from(self.burst.max(1)) * 1000
    }

    /// How long an untouched bucket takes to fill, in ms (+1).
    fn full_ms(self) -> u64 {
        self.cap_milli() / self.per_sec() + 1
    }
}

/// A bucket's state: milli-tokens held, and when it was last refilled (ms
/// since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Thousandths of a token.
    pub milli: u64,
    /// Last refill, ms since the Unix epoch.
    pub at_ms: u64,
}

/// Takes one token from `bucket` (`None`: a new, full bucket) at `now_ms` if
/// at least `floor` tokens remain after it, else takes nothing. Returns the
/// new state and `Ok(())`, or `Err(ms)` until the token would be there. A
/// clock behind the bucket's (another instance's) refills nothing. `floor`
/// is capped at `burst - 1`, so that every caller can eventually pass.
pub fn take(
    bucket: Option<Bucket>,
    rate: Rate,
    floor: u32,
    now_ms: u64,
) -> (Bucket, Result<(), u64>) {
    let cap = rate.cap_milli();
    let floor = u64::from(floor.min(rate.burst.max(1) - 1));
    let need = (floor + 1) * 1000;
    let mut b = bucket.unwrap_or(Bucket {
        milli: cap,
        at_ms: now_ms,
    });
    if now_ms > b.at_ms {
        let dt = (now_ms - b.at_ms).min(rate.full_ms());
        b.milli = cap.min(b.milli.saturating_add(dt * rate.per_sec()));
        b.at_ms = now_ms;
    }
    if b.milli >= need {
        b.milli -= 1000;
        (b, Ok(()))
    } else {
        let wait = (need - b.milli).div_ceil(rate.per_sec());
        (b, Err(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_sec: 10,
        burst: 20,
    };

    #[test]
    fn a_new_bucket_is_full_and_empties_by_ones() {
        let mut b = None;
        for i in 0..20 {
            let (next, out) = take(b, RATE, 0, 1_000);
            assert_eq!(out, Ok(()), "token {i}");
            assert_eq!(next.milli, (19 - i) * 1000);
            b = Some(next);
        }
        // Empty: one token every 100 ms.
        assert_eq!(take(b, RATE, 0, 1_000).1, Err(100));
        assert_eq!(take(b, RATE, 0, 1_040).1, Err(60));
        let (next, out) = take(b, RATE, 0, 1_100);
        assert_eq!((next.milli, out), (0, Ok(())));
    }

    #[test]
    fn a_floor_keeps_tokens_for_others() {
        let mut b = None;
        let mut taken = 0;
        for _ in 0..30 {
            let (next, out) = take(b, RATE, 5, 0);
            b = Some(next);
            taken += usize::from(out.is_ok());
        }
        assert_eq!(taken, 15, "the floor keeps 5 of 20");
        assert_eq!(b.unwrap().milli, 5_000);
        // 5 left for floor 0; floor 5 waits for a sixth (100 ms).
        assert_eq!(take(b, RATE, 5, 0).1, Err(100));
        assert_eq!(take(b, RATE, 0, 0).1, Ok(()));
    }

    #[test]
    fn refills_to_the_burst_and_ignores_a_clock_behind() {
        let (b, _) = take(None, RATE, 0, 10_000);
        let (b, _) = take(Some(b), RATE, 0, 10_000);
        assert_eq!(b.milli, 18_000);
        // An hour later: full (20), minus the one taken.
        let (later, _) = take(Some(b), RATE, 0, 3_610_000);
        assert_eq!(later.milli, 19_000);
        // Another instance's clock 5 s behind: no refill, no time travel.
        let (behind, out) = take(Some(b), RATE, 0, 5_000);
        assert_eq!((behind.milli, behind.at_ms, out), (17_000, 10_000, Ok(())));
    }

    #[test]
    fn a_floor_at_or_over_the_burst_still_passes_eventually() {
        let tiny = Rate {
            per_sec: 1,
            burst: 1,
        };
        assert_eq!(take(None, tiny, 7, 0).1, Ok(()));
        let (b, _) = take(None, RATE, 50, 0);
        assert_eq!(b.milli, 19_000, "floor capped at 19");
    }
}
