//! What the merchant lists share (`/khqr/merchant/payments`,
//! `/khqr/merchant/events`): the time range, the page size and the cursor
//! in the query, times as ISO 8601 UTC, and the page's JSON shape
//! (`{"data":[…],"next":"<cursor>"|null}`).

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::error::ApiError;
use crate::ledger::Cursor;
use crate::params::Params;

/// Items on a page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;

/// Most items on one page.
pub const MAX_LIMIT: usize = 1_000;

/// The range and page of a list request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// `from`: at or after, ms since the Unix epoch.
    pub from_ms: Option<u64>,
    /// `to`: before, ms since the Unix epoch.
    pub to_ms: Option<u64>,
    /// `limit`: 1 to [`MAX_LIMIT`] items ([`DEFAULT_LIMIT`] if absent).
    pub limit: usize,
    /// `after`: the previous page's `next`.
    pub after: Option<Cursor>,
}

impl ListQuery {
    /// Reads `from`, `to` (each ISO 8601 UTC such as
    /// `2026-12-06T08:00:00Z`, with optional fractional seconds, or ms since
    /// the Unix epoch), `limit` and `after` from `p`.
    ///
    /// # Errors
    /// 400 `invalid_parameter` naming the parameter that is not one of those
    /// forms, or a `limit` outside 1 to [`MAX_LIMIT`].
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let time = |name: &'static str| -> Result<Option<u64>, ApiError> {
            p.get(name).map(|t| time_ms(t).ok_or_else(|| invalid(name, "is not an ISO 8601 UTC time (2026-12-06T08:00:00Z) nor ms since the Unix epoch"))).transpose()
        };
        let limit = match p.get("limit") {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| invalid("limit", "must be 1 to 1000"))?,
        };
        let after = p
            .get("after")
            .map(|a| {
                a.parse::<Cursor>()
                    .map_err(|_| invalid("after", "is not a cursor this server gave"))
            })
            .transpose()?;
        Ok(ListQuery {
            from_ms: time("from")?,
            to_ms: time("to")?,
            limit,
            after,
        })
    }
}

/// Refuses a parameter the route does not know: a merchant who writes
/// `type=` on the payments list (or `status=` on the events list) would
/// otherwise get every row back, unfiltered, without a word.
///
/// # Errors
/// 400 `invalid_parameter` naming the first unknown parameter and the known ones.
pub fn only(p: &Params, known: &[&str]) -> Result<(), ApiError> {
    match p.names().find(|n| !known.contains(n)) {
        None => Ok(()),
        Some(n) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!(
                "unknown parameter {n:?}; this endpoint takes {}",
                known.join(", ")
            ),
        )),
    }
}

fn invalid(name: &str, why: &str) -> ApiError {
    ApiError::bad_request("invalid_parameter", format!("{name} {why}"))
}

/// `text` as ms since the Unix epoch: digits (ms), or an RFC 3339 time in
/// UTC (`Z`), e.g. `2026-12-06T08:00:00Z` or `2026-12-06T08:00:00.250Z`.
#[must_use]
pub fn time_ms(text: &str) -> Option<u64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if !text.ends_with('Z') {
        return None;
    }
    let t = humantime::parse_rfc3339(text).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_millis()).ok()
}

/// `ms` since the Unix epoch as ISO 8601 UTC with milliseconds:
/// `2026-12-06T08:00:00.250Z`.
#[must_use]
pub fn iso_utc(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// One page of a list: `{"data":[…],"next":"<cursor>"|null}`; `next` is
/// set when the page is full (there may be more after it).
#[derive(Debug, Serialize)]
pub struct Page<T: Serialize> {
    /// The items, oldest first.
    pub data: Vec<T>,
    /// The cursor for the next page (`after`), or `null` at the end.
    pub next: Option<String>,
}

impl<T: Serialize> Page<T> {
    /// The page of `data` for a request of `limit` items; `key` gives an
    /// item's cursor.
    pub fn new(data: Vec<T>, limit: usize, key: impl Fn(&T) -> Cursor) -> Self {
        let next = if data.len() >= limit {
            data.last().map(|last| key(last).to_string())
        } else {
            None
        };
        Page { data, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(time_ms("2026-12-06T08:00:00Z"), Some(1_796_544_000_000));
        assert_eq!(time_ms("2026-12-06T08:00:00.250Z"), Some(1_796_544_000_250));
        assert_eq!(time_ms("1796544000250"), Some(1_796_544_000_250));
        assert_eq!(iso_utc(1_796_544_000_250), "2026-12-06T08:00:00.250Z");
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        for bad in [
            "",
            "2026-12-06",
            "2026-12-06T08:00:00+07:00",
            "-5",
            "1e3",
            "2026-13-01T00:00:00Z",
        ] {
            assert_eq!(time_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn queries_parse() {
        let p = Params::parse(
            Some("from=2026-12-06T08:00:00Z&to=1796544000001&limit=2&after=5.abc"),
            None,
            b"",
        )
        .unwrap();
        let q = ListQuery::parse(&p).unwrap();
        assert_eq!(q.from_ms, Some(1_796_544_000_000));
        assert_eq!(q.to_ms, Some(1_796_544_000_001));
        assert_eq!(q.limit, 2);
        assert_eq!(q.after, Some(Cursor::new(5, "abc")));
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "from=yesterday",
            "after=zz",
        ] {
            let p = Params::parse(Some(bad), None, b"").unwrap();
            assert!(ListQuery::parse(&p).is_err(), "{bad}");
        }
        let p = Params::parse(None, None, b"").unwrap();
        assert_eq!(ListQuery::parse(&p).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn unknown_parameters_are_refused() {
        let known = ["from", "status"];
        let p = Params::parse(Some("from=1&status=paid"), None, b"").unwrap();
        assert!(only(&p, &known).is_ok());
        for bad in ["type=khqr.paid", "from=1&foo=bar", "Status=paid"] {
            let p = Params::parse(Some(bad), None, b"").unwrap();
            assert!(only(&p, &known).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_say_next_when_full() {
        let p = Page::new(vec![1u64, 2], 2, |n| Cursor::new(*n, "x"));
        assert_eq!(p.next.as_deref(), Some("2.x"));
        let p = Page::new(vec![1u64], 2, |n| Cursor::new(*n, "x"));
        assert_eq!(p.next, None);
    }
}
