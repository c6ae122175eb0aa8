//! A merchant's events (`/khqr/merchant/events…`, merchant key needed):
//!
//! * `GET /khqr/merchant/events?type&from&to&limit&after`: a page of its
//!   events, oldest first ([`EventView`]; `type` one of `khqr.created`,
//!   `khqr.paid`, `khqr.expired`, `khqr.paid_late`; the rest as in
//!   [`ListQuery`]);
//! * `GET /khqr/merchant/events/{id}`: one event with its delivery attempts
//!   ([`EventDetail`]);
//! * `POST /khqr/merchant/events/{id}/replay`: sends it again now, same id
//!   and body (202 with the event; 404 if it is not this merchant's, 409 if
//!   its QR has no `callback_url`, 429 while the merchant has
//!   [`crate::webhook::MAX_REPLAYS`] replays running on this instance).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde::Serialize;
use serde_json::value::RawValue;

use super::auth;
use super::listing::{self, iso_utc, ListQuery, Page};
use crate::error::{json_response, ApiError};
use crate::events::ReplayError;
use crate::ledger::{Attempt, Cursor, DeliveryState, Event, EventFilter, EventKind, EventLog};
use crate::merchant::Caller;
use crate::params::Params;
use crate::state::AppState;
use crate::time::now_ms;

/// Attempts shown with one event (the store keeps at most 100).
const MAX_ATTEMPTS_SHOWN: usize = 100;

/// One event as the merchant API shows it.
#[derive(Debug, Serialize)]
pub struct EventView {
    /// The stable id (`evt_` and 24 hex digits).
    pub id: String,
    /// `khqr.created`, `khqr.paid`, `khqr.expired` or `khqr.paid_late`.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When it happened, ISO 8601 UTC with ms.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// A test event.
    pub test: bool,
    /// Its QR's MD5.
    pub md5: String,
    /// Its QR's `tran`.
    pub tran: String,
    /// `none` (no `callback_url`), `pending`, `delivered` or `failed`.
    pub delivery: DeliveryState,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The webhook body (the exact JSON sent), parsed.
    pub data: Box<RawValue>,
    /// When it happened, ms since the Unix epoch (the list's cursor).
    #[serde(skip)]
    pub created_ms: u64,
}

impl EventView {
    /// The view of `e`.
    #[must_use]
    pub fn of(e: Event) -> Self {
        let data = RawValue::from_string(e.body)
            .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).unwrap_or_default());
        EventView {
            created_at: iso_utc(e.created_ms),
            created_ms: e.created_ms,
            id: e.id,
            kind: e.kind,
            test: e.test,
            md5: e.md5,
            tran: e.tran,
            delivery: e.delivery,
            attempts: e.attempts,
            data,
        }
    }
}

/// One delivery attempt as shown.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub n: u32,
    /// When it was sent, ISO 8601 UTC with ms.
    pub at: String,
    /// Until the answer or the failure, in ms.
    #[serde(rename = "durationMs")]
    pub duration_ms: u64,
    /// The receiver's HTTP status, or `null` if it did not answer.
    pub status: Option<u16>,
    /// Why there was no answer, or `null`.
    pub error: Option<String>,
    /// Whether it delivered the event (a 2xx answer).
    pub ok: bool,
}

impl AttemptView {
    fn of(a: Attempt) -> Self {
        AttemptView {
            n: a.n,
            at: iso_utc(a.at_ms),
            duration_ms: a.duration_ms,
            status: a.status,
            error: a.error,
            ok: a.ok,
        }
    }
}

/// One event with its attempts, first first.
#[derive(Debug, Serialize)]
pub struct EventDetail {
    /// The event.
    #[serde(flatten)]
    pub event: EventView,
    /// Its delivery attempts (at most 100: the first 50 and the latest 50).
    #[serde(rename = "attemptLog")]
    pub attempt_log: Vec<AttemptView>,
}

/// Whether `id` has an event id's shape (`evt_` and 24 lowercase hex
/// digits): anything else is 404 before the store is asked.
fn is_event_id(id: &str) -> bool {
    id.strip_prefix("evt_").is_some_and(|h| {
        h.len() == 24
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    json_response(status, serde_json::to_string(v).unwrap_or_default())
}

/// `GET /khqr/merchant/events` (see the module's docs).
///
/// # Errors
/// 401 without a merchant key, 400 `invalid_parameter` for a bad `type`,
/// `from`, `to`, `limit` or `after`, 503 if the store fails.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let merchant = auth::merchant(&caller)?;
    let p = Params::parse(query.as_deref(), None, b"")?;
    listing::only(&p, &["type", "from", "to", "limit", "after"])?;
    let q = ListQuery::parse(&p)?;
    let kind = p
        .get("type")
        .map(|t| {
            t.parse::<EventKind>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_parameter",
                    "type must be khqr.created, khqr.paid, khqr.expired or khqr.paid_late",
                )
            })
        })
        .transpose()?;
    let filter = EventFilter {
        kind,
        from_ms: q.from_ms,
        to_ms: q.to_ms,
    };
    let events = state
        .store
        .event_list(&merchant.id, &filter, q.after.as_ref(), q.limit)
        .await?;
    let views: Vec<EventView> = events.into_iter().map(EventView::of).collect();
    let page = Page::new(views, q.limit, |v| Cursor::new(v.created_ms, &v.id));
    Ok(json(StatusCode::OK, &page))
}

/// `GET /khqr/merchant/events/{id}` (see the module's docs).
///
/// # Errors
/// 401 without a merchant key, 404 if the merchant has no such event, 503
/// if the store fails.
pub async fn one(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let merchant = auth::merchant(&caller)?;
    if !is_event_id(&id) {
        return Err(ApiError::not_found("no such event"));
    }
    let event = state
        .store
        .event_get(&merchant.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such event"))?;
    let attempts = state.store.attempt_list(&id, MAX_ATTEMPTS_SHOWN).await?;
    let detail = EventDetail {
        event: EventView::of(event),
        attempt_log: attempts.into_iter().map(AttemptView::of).collect(),
    };
    Ok(json(StatusCode::OK, &detail))
}

/// `POST /khqr/merchant/events/{id}/replay` (see the module's docs).
///
/// # Errors
/// 401 without a merchant key, 404 if the merchant has no such event, 409
/// `no_callback` if its QR has no `callback_url`, 429 `too_many_replays`
/// (retry in 1 s), 503 if the store fails.
pub async fn replay(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let merchant = auth::merchant(&caller)?;
    if !is_event_id(&id) {
        return Err(ApiError::not_found("no such event"));
    }
    match state.events.replay(&merchant.id, &id, now_ms()).await {
        Ok(event) => Ok(json(StatusCode::ACCEPTED, &EventView::of(event))),
        Err(ReplayError::NotFound) => Err(ApiError::not_found("no such event")),
        Err(ReplayError::NoCallback) => Err(ApiError::refused(
            StatusCode::CONFLICT,
            "no_callback",
            "this event's QR has no callback_url: there is nowhere to send it",
        )),
        Err(ReplayError::TooMany) => Err(ApiError::refused(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_replays",
            "this merchant has 4 replays running; retry when one ends",
        )
        .retry_after(1_000)),
        Err(ReplayError::Running) => Err(ApiError::refused(
            StatusCode::CONFLICT,
            "delivery_running",
            "this event is being delivered (or replayed) now; replay it once that ends",
        )),
        Err(ReplayError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event_id;

    #[test]
    fn only_event_ids_are_looked_up() {
        let id = event_id(EventKind::Paid, "0123456789abcdef0123456789abcdef");
        assert!(is_event_id(&id));
        for bad in [
            "",
            "evt_",
            "evt_0123",
            "evt_0123456789ABCDEF01234567",
            "x:ev:1",
            "evt_0123456789abcdef0123456g",
        ] {
            assert!(!is_event_id(bad), "{bad}");
        }
    }
}
