//! `GET /khqr/create?amount&bakongid&merchantname[&username][&currency][&success_url][&callback_url]`:
//! makes a dynamic KHQR, stores it, and answers
//! `{status, message, qr, qr_stand, checkout, md5, tran}`.
//!
//! With a merchant's key: only for that merchant's `bakongid`s (403
//! `bakongid_not_allowed`), `callback_url` allowed, charged to the
//! merchant's bucket. Anonymous: no `callback_url` (400 `callback_needs_key`),
//! and not for a `bakongid` a merchant holds (403 `bakongid_claimed`).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use bakong_khqr::{Amount, Currency, ErrorCode, Request as KhqrRequest};
use serde::Serialize;

use super::checkout::success_url_allowed;
use super::guard::Client;
use crate::error::{json_response, ApiError};
use crate::idempotency::{self, Idempotency};
use crate::ledger::{Entry, QrStatus};
use crate::merchant::{Caller, MerchantStore};
use crate::params::{check_display_text, Params};
use crate::state::AppState;
use crate::store::{Created, Filing, Payer, Record};
use crate::time::now_ms;
use crate::webhook::target::check_url;

#[derive(Serialize)]
struct CreatedBody<'a> {
    status: bool,
    message: &'a str,
    qr: String,
    qr_stand: String,
    checkout: String,
    md5: String,
    tran: &'a str,
}

/// Most characters in `username`.
const MAX_USERNAME_CHARS: usize = 64;

/// The checked `currency` and `amount` (text) of a create.
fn amount(p: &Params) -> Result<(Currency, String), ApiError> {
    let currency = match p.get("currency") {
        None => Currency::Usd,
        Some(c) => Currency::parse(c)?,
    };
    let text = p.get("amount").unwrap_or("").trim();
    if text.is_empty() {
        return Err(ApiError::Code(
            ErrorCode::TransactionAmountInvalid,
            "amount is required",
        ));
    }
    if Amount::parse(text, currency)?.is_zero() {
        return Err(ApiError::Code(
            ErrorCode::TransactionAmountInvalid,
            "amount must be greater than zero (a static KHQR cannot be checked)",
        ));
    }
    Ok((currency, text.to_owned()))
}

/// The checked `username` (`unknown_user` when none is given).
fn username(p: &Params) -> Result<String, ApiError> {
    for name in ["merchantname", "username"] {
        check_display_text(name, p.get(name).unwrap_or(""))?;
    }
    match p.get("username").map(str::trim) {
        None | Some("") => Ok("unknown_user".into()),
        Some(u) if u.chars().count() > MAX_USERNAME_CHARS => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("username is longer than {MAX_USERNAME_CHARS} characters"),
        )),
        Some(u) => Ok(u.to_owned()),
    }
}

/// The checked `success_url` and `callback_url` (only with a merchant's key).
fn urls(
    state: &AppState,
    p: &Params,
    caller: &Caller,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let config = &state.config;
    let success_url = match p.get("success_url").map(str::trim) {
        None | Some("") => None,
        Some(u) if success_url_allowed(u, &config.success_url_allow) => Some(u.to_owned()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_success_url",
                "success_url is not on this server's allow-list",
            ))
        }
    };
    let callback_url = match p.get("callback_url").map(str::trim) {
        None | Some("") => None,
        Some(_) if caller.merchant().is_none() => {
            return Err(ApiError::bad_request(
                "callback_needs_key",
                "callback_url needs a merchant's API key (Authorization: Bearer); anonymous creates get no webhooks",
            ))
        }
        Some(u) => {
            let url = check_url(u, state.webhooks.targets()).map_err(|e| {
                ApiError::bad_request("invalid_callback_url", format!("callback_url {e}"))
            })?;
            Some(url.to_string())
        }
    };
    Ok((success_url, callback_url))
}

/// Most payloads tried for one create whose `tran`s are taken, each a
/// millisecond later in tag 99 (the k-th of k identical creates in one
/// millisecond needs k; a try is one store call).
const CREATE_TRIES: u64 = 64;

/// The request's `Idempotency-Key`, filed under the caller's scope with the
/// fingerprint of the checked parameters (in a fixed order).
fn idempotency(
    headers: &HeaderMap,
    client: &str,
    caller: &Caller,
    fields: &[Option<&str>],
) -> Result<Option<Idempotency>, ApiError> {
    let key = idempotency::key_of(headers)
        .map_err(|e| ApiError::bad_request("invalid_idempotency_key", e.to_string()))?;
    // A merchant's keys are the merchant's, whichever address it calls from.
    let merchant = caller.merchant().map(|m| m.id.as_str());
    let scope = idempotency::scope(client, merchant);
    Ok(key.map(|k| Idempotency::new(&scope, k, idempotency::fingerprint(fields))))
}

/// `GET /khqr/create` (see the module's docs). Two creates never share a
/// `tran`: the store takes a `tran` only if it is free, and a taken one makes
/// the next try a millisecond later in tag 99 (so another payload, MD5 and
/// `tran`), unless both carry one `Idempotency-Key` (see [`idempotency`]).
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = Params::parse(query.as_deref(), None, b"")?;
    let (currency, amount_text) = amount(&p)?;
    let username = username(&p)?;
    let (success_url, callback_url) = urls(&state, &p, &caller)?;
    let bakong_id = p.get("bakongid").unwrap_or("");
    let merchant_name = p.get("merchantname").unwrap_or("");
    let mut fields = vec![
        Some(amount_text.as_str()),
        Some(currency.alpha()),
        Some(bakong_id.trim()),
        Some(merchant_name),
        Some(username.as_str()),
        success_url.as_deref(),
        callback_url.as_deref(),
    ];
    if caller.is_test() {
        // A test key's create is not a live key's, even under the same key.
        fields.push(Some("test"));
    }
    let idem = idempotency(&headers, &client, &caller, &fields)?;
    let now = now_ms();
    let ttl_ms = state.config.qr_ttl_ms();
    let generate = |at: u64| {
        KhqrRequest::individual(bakong_id, merchant_name)
            .currency(currency)
            .amount(amount_text.as_str())
            .expires_in_ms(ttl_ms)
            .generate(at)
    };
    let mut khqr = generate(now)?;
    may_create_for(&state, &caller, bakong_id.trim()).await?;
    let payer = caller.payer(&client);
    for attempt in 0..CREATE_TRIES {
        let at = now.saturating_add(attempt);
        if attempt > 0 {
            khqr = generate(at)?;
        }
        let tran = khqr.tran_id();
        let record = Record {
            md5: khqr.md5().to_string(),
            bakong_id: bakong_id.trim().to_owned(),
            username: username.clone(),
            payload: khqr.as_str().to_owned(),
            expires_ms: at.saturating_add(ttl_ms),
            success_url: success_url.clone(),
            callback_url: callback_url.clone(),
            merchant: caller.merchant().map(|m| m.id.clone()),
            test: caller.is_test(),
        };
        let filing = caller.merchant().map(|m| {
            let entry = Entry {
                md5: record.md5.clone(),
                tran: tran.to_string(),
                merchant: m.id.clone(),
                bakong_id: record.bakong_id.clone(),
                username: record.username.clone(),
                amount: amount_text.clone(),
                currency: currency.alpha().to_owned(),
                created_ms: at,
                expires_ms: record.expires_ms,
                status: QrStatus::Pending,
                updated_ms: at,
                payment: None,
                test: record.test,
                callback_url: record.callback_url.clone(),
            };
            let watch_until = record
                .expires_ms
                .saturating_add(state.config.grace_ms())
                .saturating_add(state.config.webhook_retry_ms());
            state.events.filing(entry, Some(watch_until))
        });
        let stored = store(
            &state,
            payer,
            tran.as_str(),
            &record,
            now,
            idem.as_ref(),
            filing.as_ref(),
        );
        if let Some((tran, md5)) = stored.await? {
            return Ok(created_body(&state, &tran, md5));
        }
        metrics::counter!("khqr_create_retries_total").increment(1);
    }
    Err(ApiError::refused(
        StatusCode::CONFLICT,
        "tran_collision",
        "transaction id collision; create again",
    ))
}

/// The answer to a create of `tran`.
fn created_body(state: &AppState, tran: &str, md5: String) -> Response {
    let base = &state.public_url;
    let body = CreatedBody {
        status: true,
        message: "success",
        qr: format!("{base}/khqr/qr/{tran}"),
        qr_stand: format!("{base}/khqr/qr/stand/{tran}"),
        checkout: format!("{base}/khqr/pay/{tran}"),
        md5,
        tran,
    };
    let json = serde_json::to_string(&body).unwrap_or_default();
    json_response(StatusCode::OK, json)
}

/// A merchant's key creates only for its own `bakongid`s; an anonymous
/// create only for a `bakongid` no merchant holds (403 otherwise).
async fn may_create_for(
    state: &AppState,
    caller: &Caller,
    bakong_id: &str,
) -> Result<(), ApiError> {
    let refused = match caller.merchant() {
        Some(m) if m.may_use(bakong_id) => return Ok(()),
        Some(_) => (
            "bakongid_not_allowed",
            "this API key's merchant may not create QRs for this bakongid",
        ),
        None => {
            let lower = bakong_id.to_ascii_lowercase();
            if state.store.bakong_id_owner(&lower).await?.is_none() {
                return Ok(());
            }
            (
                "bakongid_claimed",
                "this bakongid belongs to a merchant of this server: create with its API key",
            )
        }
    };
    Err(ApiError::refused(
        StatusCode::FORBIDDEN,
        refused.0,
        refused.1,
    ))
}

/// Stores `record` under `tran` if the `tran` is free and `idem`'s key is
/// new, with a merchant's `filing` (its entry, `khqr.created`, and for a QR
/// owed webhooks its outbox and watch rows: [`crate::store::AnyStore::create_filed`],
/// one transaction on SQLite); returns the `tran` and MD5 to answer with
/// (this one, or the first create's for a repeated key), or `None` if the
/// `tran` is taken. A QR owed webhooks is then watched here even if nobody
/// opens its page, and its `khqr.created` goes out.
async fn store(
    state: &Arc<AppState>,
    payer: Payer<'_>,
    tran: &str,
    record: &Record,
    now: u64,
    idem: Option<&Idempotency>,
    filing: Option<&Filing>,
) -> Result<Option<(String, String)>, ApiError> {
    match state
        .store
        .create_filed(payer, tran, record, now, idem, filing)
        .await?
    {
        Created::Stored => {}
        Created::Collision => return Ok(None),
        Created::Replayed { tran, md5 } => {
            metrics::counter!("khqr_idempotent_replays_total").increment(1);
            return Ok(Some((tran, md5)));
        }
        Created::KeyReused => {
            return Err(ApiError::refused(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was used with other parameters",
            ))
        }
        Created::Limited(l) => return Err(l.into()),
    }
    if let Some(f) = filing {
        state.events.filed(&f.event);
        if record.callback_url.is_some() {
            drop(state.watchers.subscribe(tran, record));
        }
    }
    Ok(Some((tran.to_owned(), record.md5.clone())))
}
