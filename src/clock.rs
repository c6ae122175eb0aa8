//! The system clock, for callers that have `std` (the core never reads time).

/// Now, in milliseconds since the Unix epoch, from [`std::time::SystemTime`]:
/// the `now_ms` that [`crate::Request::generate`], [`crate::verify`] and the
/// status pollers take. A clock set before 1970 gives 0; past the year
/// 584 million, `u64::MAX`.
///
/// ```
/// let khqr = bakong_khqr::Request::individual("jonhsmith@nbcq", "Jonh Smith")
///     .generate(bakong_khqr::now_ms())?;
/// assert!(bakong_khqr::now_ms() > 1_700_000_000_000); // after November 2023
/// # Ok::<(), bakong_khqr::Error>(())
/// ```
#[must_use]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
