//! The hosted checkout page (`GET /khqr/pay/{tran}`), its live status by
//! server-sent events (`GET /khqr/events/{tran}`) and its embedded assets
//! (`GET /khqr/assets/{name}`). The status comes from the payment watchers
//! (`watch.rs`); no viewer ever calls Bakong itself.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bakong_khqr::Md5;

use super::guard::Client;
use crate::error::ApiError;
use crate::local_limits::StreamRefused;
use crate::state::AppState;
use crate::store::{Record, Store};
use crate::time::now_ms;
use crate::upstream::budget::Priority;
pub use crate::watch::PageStatus;

/// The page's content security policy: nothing but this origin, no inline
/// script or style, no frames, no forms.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGE_JS: &str = include_str!("../../assets/checkout.js");
const PAGE_CSS: &str = include_str!("../../assets/checkout.css");
/// Kantumruy Pro (SIL OFL 1.1), the library's Khmer font, so Khmer names
/// render without any font installed on the viewer's device.
const KHMER_FONT: &[u8] = include_bytes!("../../../assets/fonts/KantumruyPro-Regular.ttf");

/// Escapes text for HTML element content and quoted attribute values.
#[must_use]
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The stored QR for `tran`, or the JSON 404 / 429 / 503.
async fn record_for(state: &AppState, client: &str, tran: &str) -> Result<Record, ApiError> {
    state
        .store
        .fetch(client, None, tran, now_ms())
        .await??
        .ok_or_else(|| ApiError::not_found("no KHQR created here with this id"))
}

fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02} UTC")
}

fn status_text(s: &PageStatus) -> (&'static str, String) {
    match s {
        PageStatus::Pending => ("pending", "Waiting for payment".into()),
        PageStatus::Paid {
            amount,
            currency,
            paid_at_ms,
            ..
        } => {
            let mut t = format!("Paid {} {}", escape_html(amount), escape_html(currency));
            if let Some(ms) = paid_at_ms {
                let _ = write!(t, " at {}", format_time(*ms));
            }
            ("paid", t)
        }
        PageStatus::Expired => ("expired", "Expired: this QR can no longer be paid".into()),
    }
}

/// The status the page shows now: the watcher's, or (when pending) Bakong's
/// through the status cache, coalesced with the watcher's own call, waiting at
/// most 1.5 s; expired past the QR's life.
async fn current_status(
    state: &Arc<AppState>,
    tran: &str,
    record: &Record,
    now: u64,
) -> PageStatus {
    let rx = state.watchers.subscribe(tran, record);
    let mut current = rx.borrow().clone();
    drop(rx);
    if current == PageStatus::Pending {
        if let Some(md5) = Md5::from_hex(&record.md5) {
            let asked = tokio::time::timeout(
                Duration::from_millis(1500),
                state
                    .upstream
                    .status_of(&md5, Some(record), Priority::Watch),
            )
            .await;
            if let Ok(Ok(s)) = asked {
                current = PageStatus::of(&s, record, now);
            }
        }
    }
    if current == PageStatus::Pending && now >= record.expires_ms {
        current = PageStatus::Expired;
    }
    current
}

/// The payee's name (Khmer if given), the amount and the currency of `payload`.
fn payee(payload: &str) -> (String, String, String) {
    let decoded = bakong_khqr::decode(payload).ok();
    let merchant = decoded
        .as_ref()
        .and_then(|d| {
            d.merchant_name_alternate_language()
                .or_else(|| d.merchant_name())
        })
        .unwrap_or("")
        .to_owned();
    let amount = decoded
        .as_ref()
        .and_then(bakong_khqr::Decoded::transaction_amount)
        .unwrap_or("")
        .to_owned();
    let currency = decoded
        .as_ref()
        .and_then(bakong_khqr::Decoded::currency)
        .map_or("", |c| c.alpha())
        .to_owned();
    (merchant, amount, currency)
}

/// `GET /khqr/pay/{tran}`: the checkout page, rendered with the current
/// status (so it works without JavaScript: it refreshes itself every 5 s while
/// pending).
pub async fn page(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Path(tran): Path<String>,
) -> Result<Response, ApiError> {
    let record = record_for(&state, &client, &tran).await?;
    let now = now_ms();
    let current = current_status(&state, &tran, &record, now).await;
    let link = if current == PageStatus::Pending {
        state.upstream.deeplink(&record).await
    } else {
        None
    };
    let body = render_page(&tran, &record, &current, link.as_deref(), now);
    Ok(html_response(StatusCode::OK, body))
}

/// The page's HTML.
fn render_page(
    tran: &str,
    record: &Record,
    current: &PageStatus,
    link: Option<&str>,
    now: u64,
) -> String {
    let (merchant, amount, currency) = payee(&record.payload);
    let (class, text) = status_text(current);
    let e_tran = escape_html(tran);
    let e_merchant = escape_html(&merchant);
    let e_amount = escape_html(&amount);
    let e_currency = escape_html(&currency);
    let pending = *current == PageStatus::Pending;
    let refresh = if pending {
        "<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"
    } else {
        ""
    };
    let success = match current {
        PageStatus::Paid {
            success_url: Some(u),
            ..
        } => format!(
            "<p class=\"next\"><a href=\"{0}\">Continue</a></p><noscript><meta http-equiv=\"refresh\" content=\"3;url={0}\"></noscript>",
            escape_html(u)
        ),
        _ => String::new(),
    };
    let (link_href, link_hidden) = match link {
        Some(l) => (escape_html(l), ""),
        None => (String::new(), " hidden"),
    };
    let remaining_s = record.expires_ms.saturating_sub(now) / 1000;
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>Pay {e_merchant} {e_amount} {e_currency}</title>
<link rel="stylesheet" href="/khqr/assets/checkout.css">
{refresh}
<script src="/khqr/assets/checkout.js" defer></script>
</head>
<body data-tran="{e_tran}" data-expires="{expires}" data-status="{class}">
<main class="sheet" aria-labelledby="merchant">
<header>
<p class="to">Pay to</p>
<h1 id="merchant" lang="km">{e_merchant}</h1>
<p class="amount" aria-label="Amount"><span id="amount">{e_amount}</span> <span id="currency">{e_currency}</span></p>
</header>
<figure class="qr">
<img id="qr" src="/khqr/qr/stand/{e_tran}" width="420" height="630" alt="KHQR code to pay {e_merchant} {e_amount} {e_currency}: scan it with a Bakong or banking app">
</figure>
<p class="expiry"{expiry_hidden}>Expires in <time id="countdown" data-expires="{expires}">{mm:02}:{ss:02}</time></p>
<div id="status" class="status {class}" role="status" aria-live="polite" aria-atomic="true">{text}</div>
{success}
<p class="open"><a id="open-bakong" class="button" href="{link_href}"{link_hidden}>Open in Bakong</a></p>
</main>
</body>
</html>
"#,
        expires = record.expires_ms,
        expiry_hidden = if pending { "" } else { " hidden" },
        mm = remaining_s / 60,
        ss = remaining_s % 60,
    )
}

/// `GET /khqr/events/{tran}`: server-sent events named `status`, each a JSON
/// [`PageStatus`]; the current status first, then every change; the stream
/// ends after a final status (paid or expired). At most
/// [`crate::Config::max_events_per_client`] streams per client (then 429
/// `too_many_streams`) and [`crate::Config::max_events`] in all (then 503
/// `server_busy`), refused before the store is asked.
pub async fn events(
    State(state): State<Arc<AppState>>,
    Extension(Client(client)): Extension<Client>,
    Path(tran): Path<String>,
) -> Result<Response, ApiError> {
    let permit = match state.streams.try_open(&client) {
        Ok(p) => p,
        Err(why) => return Ok(stream_refused(why)),
    };
    let record = record_for(&state, &client, &tran).await?;
    let rx = state.watchers.subscribe(&tran, &record);
    let expires_ms = record.expires_ms;
    // State: the receiver, whether the first event went, whether we are done,
    // and the stream's place under the caps (freed when the stream is dropped).
    let stream = futures_util::stream::unfold(
        (rx, false, false, permit),
        move |(mut rx, started, done, permit)| async move {
            if done {
                return None;
            }
            if started {
                let left = expires_ms.saturating_sub(now_ms());
                let changed =
                    tokio::time::timeout(Duration::from_millis(left.max(1)), rx.changed()).await;
                // Expired while pending, or the watcher ended.
                if !matches!(changed, Ok(Ok(()))) {
                    {
                        let last = rx.borrow().clone();
                        let fin = if last.is_final() {
                            last
                        } else {
                            PageStatus::Expired
                        };
                        return Some((Ok::<_, Infallible>(event(&fin)), (rx, true, true, permit)));
                    }
                }
            }
            let mut now = rx.borrow_and_update().clone();
            if now == PageStatus::Pending && now_ms() >= expires_ms {
                now = PageStatus::Expired;
            }
            let fin = now.is_final();
            Some((Ok(event(&now)), (rx, true, fin, permit)))
        },
    );
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The refusal of an event stream over its caps (429 for the client's own
/// cap, 503 for the server's), with `Connection: close` so that the refused
/// connection gives its place back at once.
fn stream_refused(why: StreamRefused) -> Response {
    let (error, label) = match why {
        StreamRefused::Client => (
            ApiError::refused(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                "this client has too many event streams open; close one",
            )
            .retry_after(5_000),
            "client",
        ),
        StreamRefused::Server => (
            ApiError::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_busy",
                "too many event streams are open; retry later",
            )
            .retry_after(5_000),
            "server",
        ),
    };
    metrics::counter!("khqr_event_streams_refused_total", "cap" => label).increment(1);
    let mut r = error.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn event(s: &PageStatus) -> Event {
    Event::default()
        .event("status")
        .data(serde_json::to_string(s).unwrap_or_default())
}

/// `GET /khqr/assets/{name}`: the page's script, style sheet and Khmer font.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (ct, body): (&str, &'static [u8]) = match name.as_str() {
        "checkout.js" => ("text/javascript; charset=utf-8", PAGE_JS.as_bytes()),
        "checkout.css" => ("text/css; charset=utf-8", PAGE_CSS.as_bytes()),
        "khmer.ttf" => ("font/ttf", KHMER_FONT),
        _ => return Err(ApiError::not_found("no such asset")),
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}

/// Whether `url` may be a `success_url`: it starts with one of the operator's
/// allowed prefixes (compared after the scheme and host, so `https://shop.example`
/// does not allow `https://shop.example.evil`: a prefix must end in `/` or
/// the URL must continue with `/`, `?` or `#`).
#[must_use]
pub fn success_url_allowed(url: &str, allow: &[String]) -> bool {
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return false;
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return false;
    }
    allow.iter().filter(|p| !p.is_empty()).any(|p| {
        url.strip_prefix(p.as_str()).is_some_and(|rest| {
            p.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#'])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html(r#"<b>"A&B's"</b>"#),
            "&lt;b&gt;&quot;A&amp;B&#39;s&quot;&lt;/b&gt;"
        );
        assert_eq!(escape_html("ហាងកាហ្វេ"), "ហាងកាហ្វេ");
    }

    #[test]
    fn success_urls() {
        let allow = vec!["https://shop.example".to_owned()];
        assert!(success_url_allowed("https://shop.example/thanks", &allow));
        assert!(success_url_allowed("https://shop.example", &allow));
        assert!(!success_url_allowed("https://shop.example.evil/", &allow));
        assert!(!success_url_allowed("https://other.example/", &allow));
        assert!(!success_url_allowed("javascript:alert(1)", &allow));
        assert!(!success_url_allowed("https://shop.example/\nx", &allow));
        assert!(!success_url_allowed("https://shop.example/", &[]));
    }
}
