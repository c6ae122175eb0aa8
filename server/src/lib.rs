//! `khqr-server`: a reference server for the hosted KHQR service's five
//! endpoints, built on `bakong-khqr`.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /khqr/create?amount&bakongid&merchantname[&username][&currency]` | `{status, message, qr, qr_stand, md5, tran}`; `qr`/`qr_stand` are URLs on this server |
//! | `GET /khqr/qr/{tran}` | the QR as PNG |
//! | `GET /khqr/qr/stand/{tran}` | the KHQR stand card as PNG |
//! | `GET\|POST /khqr/check/{tran_id}` (also `/check/{tran_id}`, as the hosted docs' example) | the payment status, `bakongid` in the query or the body |
//! | `GET\|POST /check_by_md5` | the same by `md5` and `bakongid` |
//!
//! Created QRs are kept in memory, keyed by `tran` (the 8-character id derived
//! from the MD5). Statuses come from Bakong's Open API through
//! [`UreqChecker`], a [`bakong_khqr::status::AsyncStatusChecker`] over `ureq`
//! with rustls (no system TLS library). Bad input is answered with HTTP 400 and
//! `{"status":false,"message","errorCode","error"}` using the library's error
//! codes; upstream failures with 502/503/429 and
//! `{"responseCode":1,"responseMessage","errorCode","error","data":null}`.

// Handlers return `Result<_, Response>` so that an early error is already the
// answer; the size of `Response` does not matter on that path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bakong_khqr::render::{card_png, qr_png, CardOptions, QrOptions};
use bakong_khqr::status::{
    check_md5_async, seed_json, Api, AsyncStatusChecker, CheckError, HttpRequest, HttpResponse,
    Method, RequestError, ResponseError, RetryAfter, StatusChecker, Token,
};
use bakong_khqr::{Amount, Currency, ErrorCode, Md5, Request};
use serde::Serialize;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bakong Open API base URL (may carry a relay's path prefix).
    pub bakong_base_url: String,
    /// Bakong token; without one, status checks answer 503.
    pub token: Option<String>,
    /// This server's public base URL, used in `qr`/`qr_stand` (no trailing `/`).
    pub public_url: String,
    /// Lifetime of a created QR, in milliseconds (tag 99 expiration).
    pub qr_ttl_ms: u64,
    /// Most QRs kept in memory; older, long-expired ones are dropped first.
    pub max_entries: usize,
    /// Timeout of one call to Bakong, whole request.
    pub upstream_timeout: Duration,
}

impl Config {
    /// Defaults: production Bakong, no token, 10-minute QRs, 100 000 entries,
    /// 45 s upstream timeout (the official SDK's).
    #[must_use]
    pub fn new(public_url: impl Into<String>) -> Self {
        Config {
            bakong_base_url: bakong_khqr::status::PRODUCTION_BASE_URL.into(),
            token: None,
            public_url: public_url.into(),
            qr_ttl_ms: 10 * 60 * 1000,
            max_entries: 100_000,
            upstream_timeout: Duration::from_secs(45),
        }
    }
}

/// A configuration the server cannot start with.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The failure of one upstream call: no HTTP answer came.
#[derive(Debug)]
pub enum ClientError {
    /// `ureq` failed (DNS, connect, TLS, timeout, body over 1 MiB).
    Http(ureq::Error),
    /// The blocking task running the call panicked or was cancelled.
    Task(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Http(e) => write!(f, "{e}"),
            ClientError::Task(e) => write!(f, "request task failed: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A [`StatusChecker`] and [`AsyncStatusChecker`] over a `ureq` agent (rustls,
/// webpki roots). Non-2xx answers are returned as responses, bodies are capped
/// at 1 MiB; the async variant runs the call on tokio's blocking pool.
#[derive(Clone, Debug)]
pub struct UreqChecker {
    agent: ureq::Agent,
}

impl UreqChecker {
    /// An agent whose every call is limited to `timeout` in total.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        UreqChecker { agent }
    }
}

fn run(agent: &ureq::Agent, request: HttpRequest) -> Result<HttpResponse, ureq::Error> {
    let method = match request.method {
        Method::Get => ureq::http::Method::GET,
        Method::Post => ureq::http::Method::POST,
    };
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let req = builder.body(request.body).map_err(ureq::Error::from)?;
    let mut resp = agent.run(req)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp.body_mut().with_config().limit(1 << 20).read_to_vec()?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

impl StatusChecker for UreqChecker {
    type Error = ureq::Error;
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, ureq::Error> {
        run(&self.agent, request)
    }
}

impl AsyncStatusChecker for UreqChecker {
    type Error = ClientError;
    fn send(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, ClientError>> + Send {
        let agent = self.agent.clone();
        async move {
            tokio::task::spawn_blocking(move || run(&agent, request))
                .await
                .map_err(|e| ClientError::Task(e.to_string()))?
                .map_err(ClientError::Http)
        }
    }
}

struct Entry {
    payload: String,
    md5: Md5,
    bakong_id: String,
    expires_ms: u64,
}

struct AppState {
    api: Api,
    checker: UreqChecker,
    public_url: String,
    qr_ttl_ms: u64,
    max_entries: usize,
    store: Mutex<HashMap<String, Entry>>,
}

/// Entries are kept this long after their QR expires (a payment made at the
/// last second can still be checked), unless memory is short.
const KEEP_AFTER_EXPIRY_MS: u64 = 24 * 60 * 60 * 1000;

/// The server's routes.
///
/// # Errors
/// [`ConfigError`] for an unusable Bakong base URL or token.
pub fn router(config: &Config) -> Result<Router, ConfigError> {
    let mut api = Api::new(&config.bakong_base_url)
        .map_err(|e| ConfigError(format!("Bakong base URL: {e}")))?;
    if let Some(t) = &config.token {
        api.set_token(Token::new(t.trim()).map_err(|e| ConfigError(format!("Bakong token: {e}")))?);
    }
    let state = Arc::new(AppState {
        api,
        checker: UreqChecker::new(config.upstream_timeout),
        public_url: config.public_url.trim_end_matches('/').into(),
        qr_ttl_ms: config.qr_ttl_ms,
        max_entries: config.max_entries.max(1),
        store: Mutex::new(HashMap::new()),
    });
    Ok(Router::new()
        .route("/khqr/create", get(create))
        .route("/khqr/qr/{tran}", get(qr))
        .route("/khqr/qr/stand/{tran}", get(stand))
        .route("/khqr/check/{tran_id}", get(check_tran).post(check_tran))
        .route("/check/{tran_id}", get(check_tran).post(check_tran))
        .route("/check_by_md5", get(check_by_md5).post(check_by_md5))
        .fallback(|| async {
            bad(
                StatusCode::NOT_FOUND,
                ErrorCode::InvalidRequest,
                "no such endpoint",
            )
        })
        .with_state(state))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Serialize)]
struct BadInput<'a> {
    status: bool,
    message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: u16,
    error: &'static str,
}

fn json_response(status: StatusCode, body: String) -> Response {
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

/// 4xx with `{"status":false,"message","errorCode","error"}`.
fn bad(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = serde_json::to_string(&BadInput {
        status: false,
        message,
        error_code: code.number(),
        error: code.name(),
    })
    .unwrap_or_default();
    json_response(status, body)
}

fn khqr_error(e: &bakong_khqr::Error) -> Response {
    bad(StatusCode::BAD_REQUEST, e.code(), &e.to_string())
}

/// Query parameters, then body fields (JSON object or form) for those absent.
fn params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, Response> {
    let invalid = |what: &str| bad(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, what);
    let mut map: HashMap<String, String> = match query {
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| invalid("query string is not valid form encoding"))?,
        None => HashMap::new(),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(map);
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let fields: Vec<(String, String)> = if is_json {
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).map_err(|_| invalid("body is not a JSON object"))?;
        obj.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
            .collect()
    } else {
        serde_urlencoded::from_bytes(body)
            .map_err(|_| invalid("body is not JSON or form encoding"))?
    };
    for (k, v) in fields {
        map.entry(k).or_insert(v);
    }
    Ok(map)
}

#[derive(Serialize)]
struct Created<'a> {
    status: bool,
    message: &'a str,
    qr: String,
    qr_stand: String,
    md5: String,
    tran: &'a str,
}

async fn create(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let p = match params(query.as_deref(), &HeaderMap::new(), &[]) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let get = |k: &str| p.get(k).map_or("", String::as_str);
    let currency = match p.get("currency") {
        None => Currency::Usd,
        Some(c) => match Currency::parse(c) {
            Ok(c) => c,
            Err(e) => return khqr_error(&e),
        },
    };
    let amount_text = get("amount").trim();
    if amount_text.is_empty() {
        return bad(
            StatusCode::BAD_REQUEST,
            ErrorCode::TransactionAmountInvalid,
            "amount is required",
        );
    }
    match Amount::parse(amount_text, currency) {
        Err(e) => return khqr_error(&e),
        Ok(a) if a.is_zero() => {
            return bad(
                StatusCode::BAD_REQUEST,
                ErrorCode::TransactionAmountInvalid,
                "amount must be greater than zero (a static KHQR cannot be checked)",
            )
        }
        Ok(_) => {}
    }
    let now = now_ms();
    let khqr = match Request::individual(get("bakongid"), get("merchantname"))
        .currency(currency)
        .amount(amount_text)
        .expires_in_ms(state.qr_ttl_ms)
        .generate(now)
    {
        Ok(k) => k,
        Err(e) => return khqr_error(&e),
    };
    let tran = khqr.tran_id();
    {
        let Ok(mut store) = state.store.lock() else {
            return bad(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::InternalServer,
                "store unavailable",
            );
        };
        if store
            .get(tran.as_str())
            .is_some_and(|e| e.md5 != khqr.md5())
        {
            return bad(
                StatusCode::CONFLICT,
                ErrorCode::InternalServer,
                "transaction id collision; create again",
            );
        }
        if store.len() >= state.max_entries {
            store.retain(|_, e| e.expires_ms.saturating_add(KEEP_AFTER_EXPIRY_MS) > now);
        }
        if store.len() >= state.max_entries {
            store.retain(|_, e| e.expires_ms > now);
        }
        if store.len() >= state.max_entries {
            return bad(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::InternalServer,
                "too many open QRs; try later",
            );
        }
        store.insert(
            tran.as_str().into(),
            Entry {
                payload: khqr.as_str().into(),
                md5: khqr.md5(),
                bakong_id: get("bakongid").into(),
                expires_ms: now.saturating_add(state.qr_ttl_ms),
            },
        );
    }
    let body = Created {
        status: true,
        message: "success",
        qr: format!("{}/khqr/qr/{}", state.public_url, tran.as_str()),
        qr_stand: format!("{}/khqr/qr/stand/{}", state.public_url, tran.as_str()),
        md5: khqr.md5().to_string(),
        tran: tran.as_str(),
    };
    json_response(
        StatusCode::OK,
        serde_json::to_string(&body).unwrap_or_default(),
    )
}

fn lookup<T>(state: &AppState, tran: &str, f: impl FnOnce(&Entry) -> T) -> Result<T, Response> {
    let store = state.store.lock().map_err(|_| {
        bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalServer,
            "store unavailable",
        )
    })?;
    store.get(tran).map(f).ok_or_else(|| {
        bad(
            StatusCode::NOT_FOUND,
            ErrorCode::InvalidRequest,
            "no KHQR with this tran",
        )
    })
}

fn png_response(bytes: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=600"),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// Draws the stored QR `tran` with `draw` as a PNG answer (404 if unknown).
fn image(
    state: &AppState,
    tran: &str,
    draw: impl FnOnce(&str) -> Result<Vec<u8>, bakong_khqr::render::RenderError>,
) -> Response {
    let payload = match lookup(state, tran, |e| e.payload.clone()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match draw(&payload) {
        Ok(png) => png_response(png),
        Err(e) => bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalServer,
            &e.to_string(),
        ),
    }
}

async fn qr(State(state): State<Arc<AppState>>, Path(tran): Path<String>) -> Response {
    image(&state, &tran, |p| qr_png(p, &QrOptions::default()))
}

async fn stand(State(state): State<Arc<AppState>>, Path(tran): Path<String>) -> Response {
    image(&state, &tran, |p| card_png(p, &CardOptions::default()))
}

fn require_bakong_id(p: &HashMap<String, String>) -> Result<&str, Response> {
    match p.get("bakongid").map(|s| s.trim()) {
        Some(id) if !id.is_empty() => Ok(id),
        _ => Err(bad(
            StatusCode::BAD_REQUEST,
            ErrorCode::BakongAccountIdRequired,
            "bakongid is required (query or body)",
        )),
    }
}

/// The parameters of a status check (query, JSON body or form) and the
/// `bakongid` every check requires.
fn check_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(HashMap<String, String>, String), Response> {
    let p = params(query, headers, body)?;
    let id = require_bakong_id(&p)?.to_owned();
    Ok((p, id))
}

async fn check_tran(
    State(state): State<Arc<AppState>>,
    Path(tran): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, id) = match check_params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let md5 = match lookup(&state, &tran, |e| (e.md5, e.bakong_id == id)) {
        Ok((md5, true)) => md5,
        Ok((_, false)) => {
            return bad(
                StatusCode::NOT_FOUND,
                ErrorCode::InvalidRequest,
                "no KHQR with this tran for this Bakong account",
            )
        }
        Err(r) => return r,
    };
    status_response(&state, &md5).await
}

async fn check_by_md5(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (p, _) = match check_params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(md5) = p.get("md5").and_then(|m| Md5::from_hex(m.trim())) else {
        return bad(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "md5 is required: 32 hex digits",
        );
    };
    status_response(&state, &md5).await
}

#[derive(Serialize)]
struct Upstream<'a> {
    #[serde(rename = "responseCode")]
    response_code: u8,
    #[serde(rename = "responseMessage")]
    response_message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: Option<i64>,
    error: &'static str,
    data: Option<()>,
}

async fn status_response(state: &AppState, md5: &Md5) -> Response {
    let err = match check_md5_async(&state.checker, &state.api, md5).await {
        Ok(status) => return json_response(StatusCode::OK, seed_json(&status)),
        Err(e) => e,
    };
    let message = err.to_string();
    let mut retry = None;
    let (status, code, kind) = match &err {
        CheckError::Request(RequestError::MissingToken) => {
            (StatusCode::SERVICE_UNAVAILABLE, None, "no_token")
        }
        CheckError::Request(_) | CheckError::Khqr(_) => {
            (StatusCode::BAD_REQUEST, None, "bad_request")
        }
        CheckError::Transport(_) => (StatusCode::BAD_GATEWAY, None, "transport"),
        CheckError::Response(r) => match r {
            ResponseError::Unauthorized { .. } => {
                (StatusCode::BAD_GATEWAY, Some(6), "unauthorized")
            }
            ResponseError::Forbidden => (StatusCode::BAD_GATEWAY, None, "forbidden"),
            ResponseError::RateLimited { retry_after } => {
                if let Some(RetryAfter::Seconds(s)) = retry_after {
                    retry = Some(*s);
                }
                (StatusCode::TOO_MANY_REQUESTS, None, "rate_limited")
            }
            ResponseError::ServerError { .. } => (StatusCode::BAD_GATEWAY, None, "server_error"),
            ResponseError::Api(api) => (StatusCode::BAD_GATEWAY, api.error_code, "api_error"),
            _ => (StatusCode::BAD_GATEWAY, None, "malformed"),
        },
    };
    let body = serde_json::to_string(&Upstream {
        response_code: 1,
        response_message: &message,
        error_code: code,
        error: kind,
        data: None,
    })
    .unwrap_or_default();
    let mut resp = json_response(status, body);
    if let Some(s) = retry {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}
