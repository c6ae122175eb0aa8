//! `GET /khqr/qr/{tran}` (the QR) and `GET /khqr/qr/stand/{tran}` (the KHQR
//! stand card) as PNG: drawn on the render threads (never on the async
//! workers), once per QR, cached by bytes, with an `ETag` and a
//! `Cache-Control` that follows the QR's remaining life.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bakong_khqr::render::{card_png, qr_png, CardOptions, QrOptions};

use super::guard::Client;
use crate::error::ApiError;
use crate::merchant::Caller;
use crate::state::{AppState, ImageKind};
use crate::store::{Payer, Record, Store};
use crate::time::now_ms;

/// `GET /khqr/qr/{tran}`.
pub async fn qr(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Extension(caller): Extension<Caller>,
    Path(tran): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    image(
        &state,
        caller.payer(&client),
        &tran,
        &headers,
        ImageKind::Qr,
    )
    .await
}

/// `GET /khqr/qr/stand/{tran}`.
pub async fn stand(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Extension(caller): Extension<Caller>,
    Path(tran): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    image(
        &state,
        caller.payer(&client),
        &tran,
        &headers,
        ImageKind::Stand,
    )
    .await
}

fn png_response(bytes: Bytes) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
        bytes,
    )
        .into_response()
}

/// Whether `If-None-Match` names `etag` (or `*`).
fn fresh(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        })
}

async fn image(
    state: &AppState,
    payer: Payer<'_>,
    tran: &str,
    headers: &HeaderMap,
    kind: ImageKind,
) -> Result<Response, ApiError> {
    let record = state
        .store
        .fetch(payer, None, tran, now_ms())
        .await??
        .ok_or_else(|| ApiError::not_found("no KHQR with this tran"))?;
    let etag = format!(
        "\"{}-{}\"",
        record.md5,
        if kind == ImageKind::Qr { "q" } else { "s" }
    );
    let remaining_s = record.expires_ms.saturating_sub(now_ms()) / 1000;
    let cache_control = format!("public, max-age={remaining_s}");
    let meta = |mut r: Response| {
        if let (Ok(e), Ok(c)) = (
            HeaderValue::from_str(&etag),
            HeaderValue::from_str(&cache_control),
        ) {
            r.headers_mut().insert(header::ETAG, e);
            r.headers_mut().insert(header::CACHE_CONTROL, c);
        }
        r
    };
    if fresh(headers, &etag) {
        metrics::counter!("khqr_image_cache_total", "result" => "not_modified").increment(1);
        return Ok(meta(StatusCode::NOT_MODIFIED.into_response()));
    }
    Ok(meta(png_response(png(state, record, kind).await?)))
}

/// Why no image was drawn.
#[derive(Debug, PartialEq, Eq)]
enum RenderFail {
    Busy,
    Failed,
}

/// The PNG of `record`: cached, or drawn (one drawing per key at a time).
async fn png(state: &AppState, record: Record, kind: ImageKind) -> Result<Bytes, ApiError> {
    let key = (record.md5.clone(), kind);
    if let Some(png) = state.images.get(&key).await {
        metrics::counter!("khqr_image_cache_total", "result" => "hit").increment(1);
        return Ok(png);
    }
    metrics::counter!("khqr_image_cache_total", "result" => "miss").increment(1);
    let payload = record.payload;
    let drawn = state
        .images
        .try_get_with(key, async {
            let wait = Duration::from_secs(5);
            let Ok(Ok(permit)) = tokio::time::timeout(wait, state.renders.acquire()).await else {
                return Err(RenderFail::Busy);
            };
            let out = state
                .pool
                .run(move || match kind {
                    ImageKind::Qr => qr_png(&payload, &QrOptions::default()),
                    ImageKind::Stand => card_png(&payload, &CardOptions::default()),
                })
                .await;
            drop(permit);
            match out {
                Ok(Ok(png)) => Ok(Bytes::from(png)),
                _ => Err(RenderFail::Failed),
            }
        })
        .await;
    drawn.map_err(|e| {
        if *e == RenderFail::Busy {
            ApiError::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many images being drawn; retry",
            )
            .retry_after(1000)
        } else {
            ApiError::refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "render_failed",
                "the image could not be drawn",
            )
        }
    })
}
