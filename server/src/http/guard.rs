//! The middleware every request passes: the client key (see
//! [`crate::client_ip`]), target and header size limits (414, 431), the local
//! rate buckets of the routes the store does not limit (assets, unknown
//! paths, admin routes; see [`crate::local_limits`]), the caller (its API
//! key, see [`super::auth`]), the request timeout
//! (408), any non-JSON error made the JSON error, `X-Content-Type-Options:
//! nosniff` on every answer, the access log and the request metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{refusal, ApiError, RateLimitedMark};
use crate::local_limits::Bucket;
use crate::serve::PeerAddr;
use crate::state::AppState;

/// The client's key for every per-client limit: its [`ClientGroup`] (IPv4
/// address, IPv6 /64) as text, found by `AppState::client_addr` (the TCP
/// peer, or the address a trusted proxy forwarded).
///
/// [`ClientGroup`]: crate::client_ip::ClientGroup
#[derive(Clone)]
pub struct Client(pub String);

fn client_key(state: &AppState, req: &Request) -> String {
    match req.extensions().get::<PeerAddr>() {
        Some(peer) => state
            .client_addr
            .group(peer.0.ip(), req.headers())
            .to_string(),
        None => "unknown".into(),
    }
}

/// A metrics label for the path (a fixed set, so the label cannot grow).
fn route_label(path: &str) -> &'static str {
    match path {
        "/khqr/create" => "create",
        "/check_by_md5" => "check_by_md5",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        p if p.starts_with("/khqr/merchant/") => "merchant",
        p if p.starts_with("/khqr/qr/stand/") => "stand",
        p if p.starts_with("/khqr/pay/") => "checkout",
        p if p.starts_with("/khqr/events/") => "events",
        p if p.starts_with("/khqr/assets/") => "assets",
        p if p.starts_with("/khqr/qr/") => "qr",
        p if p.starts_with("/khqr/check/") || p.starts_with("/check/") => "check",
        _ => "other",
    }
}

/// A metrics label for a status: the usual ones without an allocation.
fn status_label(status: u16) -> metrics::SharedString {
    let fixed = match status {
        200 => "200",
        304 => "304",
        400 => "400",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        414 => "414",
        429 => "429",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return other.to_string().into(),
    };
    fixed.into()
}

/// A metrics label for a method: the standard ones, else `other` (so the
/// label cannot grow).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The refusal for a request whose target or headers are too long, if it is one.
fn oversized(state: &AppState, req: &Request) -> Option<Response> {
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let header_len: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let (max_uri, max_headers) = (state.config.max_uri_bytes, state.config.max_header_bytes);
    if target_len > max_uri {
        let message = format!("the request target is longer than {max_uri} bytes");
        Some(refusal(StatusCode::URI_TOO_LONG, "uri_too_long", &message))
    } else if header_len > max_headers {
        let message = format!("the request headers are longer than {max_headers} bytes");
        Some(refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &message,
        ))
    } else {
        None
    }
}

/// The 429 of a route limited in this process ([`Bucket::for_route`]: the
/// assets, unknown paths, the admin routes) when `client`'s bucket is empty.
/// The other routes are limited by the store.
fn local_limit(state: &AppState, route: &str, client: &str) -> Option<Response> {
    let bucket = Bucket::for_route(route)?;
    let limited = state.buckets.check(bucket, client).err()?;
    Some(ApiError::from(limited).into_response())
}

/// Every request passes here (see the module's docs).
pub async fn guard(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_label(req.uri().path());
    let method = req.method().clone();
    let client = client_key(&state, &req);
    let resp = if let Some(refused) = oversized(&state, &req) {
        refused
    } else if let Some(limited) = local_limit(&state, route, &client) {
        limited
    } else if let Err(refused) = super::auth::authorize(&state, &mut req, route).await {
        refused
    } else {
        req.extensions_mut().insert(Client(client.clone()));
        let limit = std::time::Duration::from_millis(state.config.request_timeout_ms);
        if let Ok(r) = tokio::time::timeout(limit, next.run(req)).await {
            r
        } else {
            let mut r = refusal(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request took too long",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    };
    let mut resp = jsonify(resp);
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if resp.extensions().get::<RateLimitedMark>().is_some() {
        metrics::counter!("khqr_rate_limited_total", "route" => route).increment(1);
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let status_label = status_label(status);
    metrics::counter!("khqr_http_requests_total", "route" => route, "method" => method_label(&method), "status" => status_label.clone()).increment(1);
    metrics::histogram!("khqr_http_request_duration_seconds", "route" => route, "status" => status_label).record(elapsed.as_secs_f64());
    tracing::info!(
        target: "khqr_server::access",
        method = %method,
        route,
        status,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        client = %client,
        "request"
    );
    resp
}

/// The kind and message of the JSON error standing for a bare `status`.
fn bare_error(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => (
            "bad_request",
            "the request is malformed (path, query or body)",
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take this method",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request target is too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported content type")
        }
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "the request headers are too large")
        }
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "the request was refused"),
    }
}

/// Any error answer that is not JSON (axum's own 405, 413, 400 for a bad path)
/// becomes the JSON error for its status; headers such as `Allow` are kept.
fn jsonify(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (kind, message) = bare_error(status);
    let (mut parts, _) = resp.into_parts();
    let fresh = refusal(status, kind, message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (_, body) = fresh.into_parts();
    Response::from_parts(parts, body)
}
