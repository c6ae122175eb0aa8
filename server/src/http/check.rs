//! `GET|POST /khqr/check/{tran_id}` (also `/check/{tran_id}`) and
//! `GET|POST /check_by_md5`: the payment status, answered only for QRs this
//! service created, asked with the `bakongid` that created them (404
//! otherwise), unless [`crate::Config::open_relay`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use bakong_khqr::{ErrorCode, Md5};

use super::guard::Client;
use crate::error::{json_response, ApiError};
use crate::merchant::Caller;
use crate::params::Params;
use crate::seed::seed_json;
use crate::state::AppState;
use crate::store::{Record, Store};
use crate::time::now_ms;
use crate::upstream::budget::Priority;

/// The parameters of a status check and the `bakongid` every check requires.
fn check_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, String), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let p = Params::parse(query, ct, body)?;
    match p.get("bakongid").map(str::trim) {
        Some(id) if !id.is_empty() => {
            let id = id.to_owned();
            Ok((p, id))
        }
        _ => Err(ApiError::Code(
            ErrorCode::BakongAccountIdRequired,
            "bakongid is required (query or body)",
        )),
    }
}

fn not_found_check() -> ApiError {
    ApiError::not_found("no KHQR created here with this id for this Bakong account")
}

/// `GET|POST /khqr/check/{tran_id}`.
pub async fn by_tran(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Extension(caller): Extension<Caller>,
    Path(tran): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, id) = check_params(query.as_deref(), &headers, &body)?;
    let record = state
        .store
        .fetch(caller.payer(&client), Some(&id), &tran, now_ms())
        .await??
        .filter(|r| state.config.open_relay || r.bakong_id == id)
        .ok_or_else(not_found_check)?;
    let md5 = Md5::from_hex(&record.md5).ok_or_else(not_found_check)?;
    status(&state, &caller, &md5, Some(&record)).await
}

/// `GET|POST /check_by_md5`.
pub async fn by_md5(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (p, id) = check_params(query.as_deref(), &headers, &body)?;
    let md5 = p
        .get("md5")
        .and_then(|m| Md5::from_hex(m.trim()))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_parameter", "md5 is required: 32 hex digits")
        })?;
    let tran = md5.tran_id();
    let record = state
        .store
        .fetch(caller.payer(&client), Some(&id), tran.as_str(), now_ms())
        .await??
        .filter(|r| r.md5 == md5.to_string() && r.bakong_id == id);
    if record.is_none() && !state.config.open_relay {
        return Err(not_found_check());
    }
    status(&state, &caller, &md5, record.as_ref()).await
}

/// The seed-compatible status answer, or the upstream error. A merchant's
/// check (keyed) goes first in the Bakong call budget; an anonymous one leaves
/// the reserve that merchants' checks need ([`Priority::StrangerCheck`]).
async fn status(
    state: &AppState,
    caller: &Caller,
    md5: &Md5,
    record: Option<&Record>,
) -> Result<Response, ApiError> {
    let priority = if caller.merchant().is_some() {
        Priority::Check
    } else {
        Priority::StrangerCheck
    };
    let status = state.upstream.status_of(md5, record, priority).await?;
    if let Some(r) = record {
        crate::lifecycle::seen(&state.store, &state.events, r, &status, now_ms()).await;
    }
    let body = seed_json(&status, record.map(|r| r.username.as_str()));
    Ok(json_response(StatusCode::OK, body))
}
