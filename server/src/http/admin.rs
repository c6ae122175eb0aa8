//! `GET /healthz` (liveness), `GET /readyz` (store reachable, token present
//! and unexpired; the token's lifecycle in detail) and `GET /metrics`
//! (Prometheus).

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

use crate::error::{json_response, ApiError};
use crate::state::AppState;
use crate::store::Store;
use crate::time::now_ms;
use crate::token::TokenStatus;

fn metrics_handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0,
                ])
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Installs the Prometheus recorder once per process (if no other is).
pub fn install_metrics() {
    let _ = metrics_handle();
}

/// `GET /healthz`: always `{"status":true,"message":"alive"}`.
pub async fn healthz() -> Response {
    json_response(
        StatusCode::OK,
        r#"{"status":true,"message":"alive"}"#.into(),
    )
}

#[derive(Serialize)]
struct Ready<'a> {
    status: bool,
    store: &'a str,
    token: &'a str,
    #[serde(rename = "tokenExpiresMs")]
    token_expires_ms: Option<u64>,
    #[serde(rename = "tokenLifecycle")]
    token_lifecycle: TokenStatus,
}

/// `GET /readyz`: 200 when the store answers and the token is present and
/// unexpired, else 503; the body says which, and `tokenLifecycle` gives the
/// token's seconds left, source, renewal state and last renewal error
/// ([`TokenStatus`]).
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let store_ok = state.store.ping().await.is_ok();
    let api = state.upstream.api();
    let expires = api.token().and_then(|t| t.expires_at_ms().ok());
    let token = match (api.token(), expires) {
        (None, _) => "missing",
        (Some(_), Some(exp)) if exp <= now_ms() => "expired",
        (Some(_), Some(_)) => "ok",
        (Some(_), None) => "ok_unknown_expiry",
    };
    let ok = store_ok && token.starts_with("ok");
    let body = serde_json::to_string(&Ready {
        status: ok,
        store: if store_ok { "ok" } else { "unreachable" },
        token,
        token_expires_ms: expires,
        token_lifecycle: state.token.status(now_ms()),
    })
    .unwrap_or_default();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body)
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let Some(handle) = metrics_handle() else {
        return Err(ApiError::refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "another metrics recorder is installed",
        ));
    };
    if let Ok(n) = state.store.size().await {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("khqr_store_keys", "store" => state.store.kind()).set(n as f64);
    }
    state.token.set_gauge(now_ms());
    #[allow(clippy::cast_precision_loss)]
    {
        metrics::gauge!("khqr_image_cache_bytes").set(state.images.weighted_size() as f64);
        metrics::gauge!("khqr_status_cache_entries").set(state.upstream.cached_statuses() as f64);
    }
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        Body::from(handle.render()),
    )
        .into_response())
}
