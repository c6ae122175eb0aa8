//! Every error answer: one [`ApiError`], turned into a response in one place,
//! and one JSON error body ([`error_json`]), also written for hyper's own
//! errors (see `serve.rs`) and the router's fallbacks.
//!
//! Bad input: `{"status":false,"message","errorCode","error"}`, where
//! `errorCode`/`error` are the library's code and name for KHQR validation
//! errors, and `errorCode` 60 (15 for a server fault) with a lowercase `error`
//! kind otherwise. Upstream failures:
//! `{"responseCode":1,"responseMessage","errorCode","error","data":null}`, plus
//! `bakongMessage` holding Bakong's own message when Bakong sent one.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bakong_khqr::status::{CheckError, ResponseError, RetryAfter};
use bakong_khqr::ErrorCode;
use serde::Serialize;

use crate::params::ParamError;
use crate::store::{Limited, StoreError};
use crate::upstream::{upstream_kind, UpstreamFail};

/// Why a request was not served.
#[derive(Debug)]
pub enum ApiError {
    /// A server-level refusal: `errorCode` 60 (15 for a 5xx) and a lowercase
    /// `kind`; with a `Retry-After` when `retry_after_ms` is set.
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The `error` field.
        kind: &'static str,
        /// The `message` field.
        message: String,
        /// `Retry-After`, in ms (rounded up to whole seconds).
        retry_after_ms: Option<u64>,
    },
    /// A KHQR validation error (400, the library's code and name).
    Khqr(bakong_khqr::Error),
    /// A library error code with our message (400).
    Code(ErrorCode, &'static str),
    /// A bad parameter (400).
    Param(ParamError),
    /// A rate limit said no (429 with `Retry-After`).
    Limited(Limited),
    /// The store failed (503, retry in 1 s).
    Store(StoreError),
    /// Bakong failed or was too busy (the upstream body).
    Upstream(Arc<UpstreamFail>),
}

impl ApiError {
    /// A server-level refusal (see [`ApiError::Refused`]).
    pub fn refused(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError::Refused {
            status,
            kind,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// 404 `not_found` with `message`.
    #[must_use]
    pub fn not_found(message: &'static str) -> Self {
        Self::refused(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400 `kind` with `message`.
    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> Self {
        Self::refused(StatusCode::BAD_REQUEST, kind, message)
    }

    /// The same refusal with a `Retry-After` of `ms`.
    #[must_use]
    pub fn retry_after(mut self, ms: u64) -> Self {
        if let ApiError::Refused { retry_after_ms, .. } = &mut self {
            *retry_after_ms = Some(ms);
        }
        self
    }
}

impl From<bakong_khqr::Error> for ApiError {
    fn from(e: bakong_khqr::Error) -> Self {
        ApiError::Khqr(e)
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::Param(e)
    }
}

impl From<Limited> for ApiError {
    fn from(l: Limited) -> Self {
        ApiError::Limited(l)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<Arc<UpstreamFail>> for ApiError {
    fn from(e: Arc<UpstreamFail>) -> Self {
        ApiError::Upstream(e)
    }
}

/// Marks a 429 of our own rate limits, for the guard's metrics.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitedMark;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Refused {
                status,
                kind,
                message,
                retry_after_ms,
            } => {
                let resp = refusal(status, kind, &message);
                match retry_after_ms {
                    Some(ms) => with_retry_after(resp, ms),
                    None => resp,
                }
            }
            ApiError::Khqr(e) => {
                let code = e.code();
                error_response(
                    StatusCode::BAD_REQUEST,
                    code.number(),
                    code.name(),
                    &e.to_string(),
                )
            }
            ApiError::Code(code, message) => {
                error_response(StatusCode::BAD_REQUEST, code.number(), code.name(), message)
            }
            ApiError::Param(e) => refusal(StatusCode::BAD_REQUEST, e.kind, &e.message),
            ApiError::Limited(l) => {
                let secs = l.retry_after_ms.div_ceil(1000).max(1);
                let message = format!("too many requests; retry in {secs} s");
                let mut resp = refusal(StatusCode::TOO_MANY_REQUESTS, "rate_limited", &message);
                resp.extensions_mut().insert(RateLimitedMark);
                with_retry_after(resp, l.retry_after_ms)
            }
            ApiError::Store(e) => {
                tracing::error!(detail = e.detail(), "store call failed");
                metrics::counter!("khqr_store_errors_total").increment(1);
                let message = "the store is unavailable; try again";
                let resp = refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    message,
                );
                with_retry_after(resp, 1000)
            }
            ApiError::Upstream(fail) => upstream_response(&fail),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: bool,
    message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: u16,
    error: &'a str,
}

/// The one JSON error body: `{"status":false,"message","errorCode","error"}`.
#[must_use]
pub fn error_json(error_code: u16, kind: &str, message: &str) -> String {
    serde_json::to_string(&ErrorBody {
        status: false,
        message,
        error_code,
        error: kind,
    })
    .unwrap_or_default()
}

/// `body` as `application/json` with `status`.
#[must_use]
pub fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn error_response(status: StatusCode, error_code: u16, kind: &str, message: &str) -> Response {
    json_response(status, error_json(error_code, kind, message))
}

/// The `errorCode` of a server-level refusal: 15 for a 5xx, else 60.
#[must_use]
pub fn refusal_code(status: StatusCode) -> u16 {
    if status.is_server_error() {
        ErrorCode::InternalServer.number()
    } else {
        ErrorCode::InvalidRequest.number()
    }
}

/// A server-level refusal's response (see [`ApiError::Refused`]).
#[must_use]
pub fn refusal(status: StatusCode, kind: &str, message: &str) -> Response {
    error_response(status, refusal_code(status), kind, message)
}

/// `resp` with `Retry-After: ceil(ms / 1000)` seconds (at least 1).
#[must_use]
pub fn with_retry_after(mut resp: Response, ms: u64) -> Response {
    let secs = ms.div_ceil(1000).max(1);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[derive(Serialize)]
struct UpstreamBody<'a> {
    #[serde(rename = "responseCode")]
    response_code: u8,
    #[serde(rename = "responseMessage")]
    response_message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: Option<i64>,
    error: &'static str,
    data: Option<()>,
    #[serde(rename = "bakongMessage", skip_serializing_if = "Option::is_none")]
    bakong_message: Option<&'a str>,
}

fn upstream_response(fail: &UpstreamFail) -> Response {
    let (status, kind, message, code, bakong_message, retry) = match fail {
        UpstreamFail::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_busy",
            "too many status checks in flight; retry".to_owned(),
            None,
            None,
            Some(1),
        ),
        UpstreamFail::Skipped | UpstreamFail::OverBudget(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_budget",
            "this server's budget of calls to Bakong is spent for now; retry".to_owned(),
            None,
            None,
            Some(match fail {
                UpstreamFail::OverBudget(ms) => ms.div_ceil(1000).max(1),
                _ => 1,
            }),
        ),
        UpstreamFail::Check(e) => {
            let (status, kind, message) = upstream_kind(e);
            let (code, bakong, retry) = match e {
                CheckError::Response(ResponseError::Unauthorized { .. }) => (Some(6), None, None),
                CheckError::Response(ResponseError::Api(api)) => {
                    (api.error_code, Some(api.message.as_str()), None)
                }
                CheckError::Response(ResponseError::RateLimited { retry_after }) => {
                    let secs = match retry_after {
                        Some(RetryAfter::Seconds(s)) => *s,
                        _ => 1,
                    };
                    (None, None, Some(secs))
                }
                _ => (None, None, None),
            };
            (status, kind, message, code, bakong, retry)
        }
    };
    let body = serde_json::to_string(&UpstreamBody {
        response_code: 1,
        response_message: &message,
        error_code: code,
        error: kind,
        data: None,
        bakong_message,
    })
    .unwrap_or_default();
    let resp = json_response(status, body);
    match retry {
        Some(s) => with_retry_after(resp, s.saturating_mul(1000)),
        None => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_body_shape() {
        assert_eq!(
            error_json(60, "not_found", "no \"such\" endpoint"),
            r#"{"status":false,"message":"no \"such\" endpoint","errorCode":60,"error":"not_found"}"#
        );
        assert_eq!(refusal_code(StatusCode::SERVICE_UNAVAILABLE), 15);
        assert_eq!(refusal_code(StatusCode::NOT_FOUND), 60);
    }
}
