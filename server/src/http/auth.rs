//! Who sent a request: the guard files a [`crate::merchant::Caller`] in every request's
//! extensions (anonymous, or the merchant whose `Authorization: Bearer` key
//! it carries) and refuses a bad key with 401 on every route. Under
//! [`crate::Config::require_key`], anonymous API calls (create, checks) get
//! 401 too; what payers open without a key (QR images, the checkout page,
//! its events and assets) and the admin routes stay open.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use crate::error::{refusal, ApiError};
use crate::merchant::{authenticate, AuthError, Caller, Merchant};
use crate::state::AppState;

/// Routes that need a key under `--require-key` (the guard's route labels).
const API_ROUTES: [&str; 3] = ["create", "check", "check_by_md5"];

/// Finds who sent `req` and files the [`crate::merchant::Caller`] in its extensions.
///
/// # Errors
/// The answer instead of the request: 401 (`WWW-Authenticate: Bearer`) for a
/// malformed, unknown or disabled key, or an anonymous API call under
/// `--require-key`; 503 if the store cannot be asked.
pub async fn authorize(state: &AppState, req: &mut Request, route: &str) -> Result<(), Response> {
    let values = req
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes);
    let caller = match authenticate(&*state.store, values).await {
        Ok(c) => c,
        Err(AuthError::BadKey) => {
            return Err(unauthorized(
                "Bearer error=\"invalid_token\"",
                "the API key is malformed, unknown or disabled",
            ))
        }
        Err(AuthError::Store(e)) => {
            return Err(axum::response::IntoResponse::into_response(
                crate::error::ApiError::from(e),
            ))
        }
    };
    if state.config.require_key && API_ROUTES.contains(&route) && caller.merchant().is_none() {
        return Err(unauthorized(
            "Bearer",
            "this server requires an API key (Authorization: Bearer <key>)",
        ));
    }
    req.extensions_mut().insert(caller);
    Ok(())
}

/// The merchant of a keyed request, for the merchant API
/// (`/khqr/merchant/…`): its lists, export, replays and test payments.
///
/// # Errors
/// 401 `unauthorized` for an anonymous request.
pub fn merchant(caller: &Caller) -> Result<&Merchant, ApiError> {
    caller.merchant().ok_or_else(|| {
        ApiError::refused(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs a merchant's API key (Authorization: Bearer <key>)",
        )
    })
}

/// 401 with `WWW-Authenticate: <challenge>` and the JSON error body.
fn unauthorized(challenge: &'static str, message: &str) -> Response {
    let mut r = refusal(StatusCode::UNAUTHORIZED, "unauthorized", message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}
