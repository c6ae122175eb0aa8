//! `POST /khqr/merchant/test/pay/{tran}`: pays a test QR without Bakong.
//!
//! Only a merchant's **test** key reaches it ([`Caller::Test`]): anonymous
//! 401, a live key 403 `test_key_required`. The QR must be a test QR of the
//! key's merchant, still in the store (until its expiry plus the grace
//! period): otherwise 404, the same answer for another merchant's QR, a live
//! QR, or no QR, so the route tells nothing about QRs that are not the
//! caller's. The payment ([`lifecycle::test_payment`]: the QR's amount and
//! currency, hash `test_` and 64 hex digits, paid now) settles through
//! [`lifecycle::settle`] exactly as a payment Bakong reported: `khqr.paid`
//! before expiry, `khqr.paid_late` after, each event with `"test": true`.
//! Answers 200 with the entry as the record now holds it (`status`,
//! `payment`, …), or 409 `already_paid` if it was paid before.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;

use super::auth;
use super::guard::Client;
use crate::error::{json_response, ApiError};
use crate::ledger::EntryLog;
use crate::lifecycle;
use crate::merchant::Caller;
use crate::state::AppState;
use crate::store::Store;
use crate::time::now_ms;

fn no_test_qr() -> ApiError {
    ApiError::not_found("no test QR of this merchant with this id (or it is past its grace period)")
}

/// `POST /khqr/merchant/test/pay/{tran}` (see the module's docs).
///
/// # Errors
/// 401 anonymous, 403 a live key, 404 not this merchant's test QR, 409
/// already paid, 503 the store.
pub async fn pay(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Extension(caller): Extension<Caller>,
    Path(tran): Path<String>,
) -> Result<Response, ApiError> {
    let merchant = auth::merchant(&caller)?;
    if !caller.is_test() {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            "test_key_required",
            "test payments need one of the merchant's test keys (khqr-server merchant test-key); a live key never reaches this route",
        ));
    }
    let now = now_ms();
    let record = state
        .store
        .fetch(caller.payer(&client), None, &tran, now)
        .await??
        .filter(|r| r.test && r.merchant.as_deref() == Some(merchant.id.as_str()))
        .ok_or_else(no_test_qr)?;
    let entry = state
        .store
        .entry_get(&record.md5)
        .await?
        .filter(|e| e.test && e.merchant == merchant.id)
        .ok_or_else(no_test_qr)?;
    let payment = lifecycle::test_payment(&entry, now);
    match lifecycle::settle(&state.store, &state.events, &entry.md5, &payment, now).await? {
        Some(moved) => {
            let body = serde_json::to_string(&moved).unwrap_or_default();
            Ok(json_response(StatusCode::OK, body))
        }
        None => Err(ApiError::refused(
            StatusCode::CONFLICT,
            "already_paid",
            "this test QR is paid already",
        )),
    }
}
