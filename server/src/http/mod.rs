//! The HTTP side: [`router`] lists every route; one module per resource;
//! [`guard`] is the middleware in front of them all ([`auth`]: who sent a
//! request, by its API key).

pub mod admin;
pub mod auth;
pub mod check;
pub mod checkout;
pub mod create;
pub mod events;
pub mod guard;
pub mod image;
pub mod listing;
pub mod payments;
pub mod test_mode;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// The route table: every route, its method and handler, the fallbacks (JSON
/// 404 and 405), the body limit and the guard. The admin routes (`/healthz`,
/// `/readyz`, `/metrics`) are here unless [`crate::Config::admin_listen`] is
/// set; then they are only on [`admin_router`].
pub fn router(state: Arc<AppState>) -> Router {
    admin::install_metrics();
    let routes = Router::new()
        .route("/khqr/create", get(create::create))
        .route("/khqr/qr/{tran}", get(image::qr))
        .route("/khqr/qr/stand/{tran}", get(image::stand))
        .route(
            "/khqr/check/{tran_id}",
            get(check::by_tran).post(check::by_tran),
        )
        .route("/check/{tran_id}", get(check::by_tran).post(check::by_tran))
        .route("/check_by_md5", get(check::by_md5).post(check::by_md5))
        .route("/khqr/pay/{tran}", get(checkout::page))
        .route("/khqr/events/{tran}", get(checkout::events))
        .route("/khqr/assets/{name}", get(checkout::asset))
        .route("/khqr/merchant/payments", get(payments::list))
        .route("/khqr/merchant/payments.csv", get(payments::export))
        .route("/khqr/merchant/test/pay/{tran}", post(test_mode::pay))
        .route("/khqr/merchant/events", get(events::list))
        .route("/khqr/merchant/events/{id}", get(events::one))
        .route("/khqr/merchant/events/{id}/replay", post(events::replay));
    let routes = if state.config.admin_listen.is_some() {
        routes
    } else {
        routes.merge(admin_routes())
    };
    finish(routes, state)
}

/// The admin routes alone, for [`crate::Config::admin_listen`]: `/healthz`,
/// `/readyz`, `/metrics`, with the same fallbacks and guard.
pub fn admin_router(state: Arc<AppState>) -> Router {
    admin::install_metrics();
    finish(admin_routes(), state)
}

fn admin_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
}

/// `routes` with the fallbacks (JSON 404 and 405), the body limit and the guard.
fn finish(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    routes
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::refused(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take this method",
            )
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}
