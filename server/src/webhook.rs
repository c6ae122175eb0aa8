//! Signed payment webhooks.
//!
//! When a QR created with a `callback_url` is paid, the server POSTs one JSON
//! event to it (see [`PaidEvent`]) with these headers:
//!
//! * `Content-Type: application/json`;
//! * `KHQR-Signature: t=<ms>,v1=<64 hex>`: HMAC-SHA256 under the operator's
//!   secret over the decimal timestamp, a `.`, and the raw body
//!   ([`bakong_khqr::webhook::sign`]); verify it with
//!   [`bakong_khqr::webhook::verify_webhook_signature`];
//! * `Idempotency-Key: <md5>`: the same on every attempt for one payment;
//! * `KHQR-Attempt: <n>`: 1 for the first attempt, counted across instances
//!   and restarts.
//!
//! Any 2xx answer is success. Anything else (or no answer within the upstream
//! timeout) is retried with exponential backoff and full jitter
//! ([`crate::Config::webhook_backoff_ms`] doubling, at most 60 s apart) until
//! [`crate::Config::webhook_retry_ms`] has passed since the payment was seen.
//! Delivery is at least once: a receiver must treat a repeated key as done.
//!
//! The delivery state (done, attempts) lives in the store; an instance
//! delivers only while it holds the store's lease for that MD5
//! ([`crate::store::Store::delivery`]), so with Redis and several instances
//! one instance delivers each event.

pub mod target;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bakong_khqr::status::{AsyncStatusChecker, HttpRequest, Method};
use serde::Serialize;

use crate::checkout::PageStatus;
use crate::store::{Delivery, Record, Store};
use crate::{now_ms, AppState};

/// The JSON body of a payment webhook.
#[derive(Debug, Serialize)]
pub struct PaidEvent<'a> {
    /// Always `"khqr.paid"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The QR's MD5: the idempotency key.
    pub md5: &'a str,
    /// The QR's `tran`.
    pub tran: &'a str,
    /// The Bakong account paid (`bakongid`).
    #[serde(rename = "bakongId")]
    pub bakong_id: &'a str,
    /// Amount paid, decimal text as Bakong reported it.
    pub amount: &'a str,
    /// Currency code.
    pub currency: &'a str,
    /// When Bakong acknowledged the payment, ms since the Unix epoch.
    #[serde(rename = "paidAtMs")]
    pub paid_at_ms: Option<u64>,
}

/// Per-instance delivery bookkeeping.
pub(crate) struct Webhooks {
    /// MD5s whose delivery task runs in this process.
    running: Mutex<HashSet<String>>,
    /// This instance's lease owner name.
    owner: String,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            running: Mutex::new(HashSet::new()),
            owner: format!("{:016x}", rand::random::<u64>()),
        }
    }
}

/// Why a `callback_url` was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct CallbackError(pub &'static str);

/// Checks a `callback_url` given at create time: `https` only (or `http` when
/// `allow_http`), no user info, and its host not a loopback, private,
/// link-local, unspecified, multicast or documentation address, nor
/// `localhost`, unless `allow_private`. Host names are checked again when
/// resolved, at delivery.
///
/// # Errors
/// [`CallbackError`] naming the rule broken.
pub fn check_callback_url(
    text: &str,
    allow_http: bool,
    allow_private: bool,
) -> Result<url::Url, CallbackError> {
    let url = url::Url::parse(text).map_err(|_| CallbackError("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(CallbackError("must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CallbackError("must not carry user info"));
    }
    let private = match url.host() {
        None => return Err(CallbackError("has no host")),
        Some(url::Host::Ipv4(v4)) => is_private(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => is_private(IpAddr::V6(v6)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    };
    if private && !allow_private {
        return Err(CallbackError(
            "points at a private, loopback or link-local address",
        ));
    }
    Ok(url)
}

/// Loopback, private (RFC 1918, ULA), link-local, CGNAT, unspecified,
/// multicast, broadcast or documentation addresses.
#[must_use]
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// The QR `record` is paid: starts its delivery in this process unless it
/// runs already, there is no callback, or the operator set no secret.
pub(crate) fn paid(state: &Arc<AppState>, tran: &str, record: &Record, status: &PageStatus) {
    let (Some(url), Some(_)) = (&record.callback_url, &state.webhook_secret) else {
        return;
    };
    let PageStatus::Paid {
        amount,
        currency,
        paid_at_ms,
        ..
    } = status
    else {
        return;
    };
    {
        let mut running = state
            .webhooks
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !running.insert(record.md5.clone()) {
            return;
        }
    }
    let body = serde_json::to_vec(&PaidEvent {
        kind: "khqr.paid",
        md5: &record.md5,
        tran,
        bakong_id: &record.bakong_id,
        amount,
        currency,
        paid_at_ms: *paid_at_ms,
    })
    .unwrap_or_default();
    let weak = Arc::downgrade(state);
    let md5 = record.md5.clone();
    let url = url.clone();
    let tran = tran.to_owned();
    tokio::spawn(async move {
        deliver(&weak, &md5, &url, &body).await;
        if let Some(st) = weak.upgrade() {
            if let Err(e) = st.store.watch_remove(&tran).await {
                tracing::warn!(detail = e.detail(), "webhook: cannot unlist the QR");
            }
        }
        if let Some(st) = weak.upgrade() {
            st.webhooks
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&md5);
        }
    });
}

/// Every 2 s, watches here the QRs listed in the store as owed a webhook
/// that no watcher or delivery of this process handles: after a restart, or a
/// QR created by another instance that stopped.
pub(crate) fn spawn_resume(state: std::sync::Weak<AppState>) {
    tokio::spawn(async move {
        loop {
            {
                let Some(st) = state.upgrade() else { return };
                match st.store.watch_list(now_ms(), 1_000).await {
                    Ok(list) => {
                        for (tran, record) in list {
                            let running = st
                                .webhooks
                                .running
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .contains(&record.md5);
                            if !running && !st.hub.watching(&tran) {
                                drop(crate::checkout::subscribe(&st, &tran, &record));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(detail = e.detail(), "webhook: cannot list owed webhooks");
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

/// The wait before attempt `n + 1` after `n` failures: `base * 2^(n-1)`, at
/// most 60 s, times a random factor in [0.5, 1) (jitter).
fn backoff_ms(base_ms: u64, failures: u32) -> u64 {
    let exp = base_ms
        .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
        .min(60_000);
    let half = exp / 2;
    half + rand::random_range(0..=half.max(1))
}

/// Whether `url`'s host resolves only to addresses the operator allows.
async fn resolves_allowed(url: &str, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default()) else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let found = tokio::net::lookup_host((host, port)).await;
    match found {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| !is_private(a.ip()))
        }
        Err(_) => false,
    }
}

async fn deliver(state: &std::sync::Weak<AppState>, md5: &str, url: &str, body: &[u8]) {
    let Some(st) = state.upgrade() else { return };
    let deadline = now_ms().saturating_add(st.webhook_retry_ms);
    let lease_ms = st.upstream_timeout_ms.saturating_add(2_000);
    let owner = st.webhooks.owner.clone();
    drop(st);
    loop {
        let Some(st) = state.upgrade() else { return };
        if now_ms() > deadline {
            tracing::warn!(md5, "webhook: giving up after the retry period");
            return;
        }
        let wait = match st.store.delivery(md5, &owner, lease_ms).await {
            Ok(Delivery::Done) => return,
            Ok(Delivery::Busy) => lease_ms / 2,
            Err(e) => {
                tracing::warn!(detail = e.detail(), "webhook: store unavailable");
                1_000
            }
            Ok(Delivery::Leased { attempts }) => {
                let n = attempts.saturating_add(1);
                let ok = attempt(&st, url, md5, body, n).await;
                metrics::counter!("khqr_webhook_attempts_total", "result" => if ok { "ok" } else { "failed" })
                    .increment(1);
                let keep = st.webhook_retry_ms.saturating_add(st.grace_ms);
                if let Err(e) = st.store.delivery_update(md5, ok, n, keep).await {
                    tracing::warn!(detail = e.detail(), "webhook: cannot record the attempt");
                }
                if ok {
                    tracing::info!(md5, attempts = n, "webhook delivered");
                    return;
                }
                backoff_ms(st.webhook_backoff_ms, n)
            }
        };
        drop(st);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// One POST; true on a 2xx answer.
async fn attempt(st: &AppState, url: &str, md5: &str, body: &[u8], n: u32) -> bool {
    let Some(secret) = &st.webhook_secret else {
        return false;
    };
    if !resolves_allowed(url, st.callback_allow_private).await {
        tracing::warn!(
            md5,
            "webhook: the callback host resolves to a refused address"
        );
        return false;
    }
    let signature = bakong_khqr::webhook::sign(secret, now_ms(), body);
    let req = HttpRequest {
        method: Method::Post,
        url: url.to_owned(),
        headers: vec![
            ("Content-Type", "application/json".to_owned()),
            (bakong_khqr::webhook::SIGNATURE_HEADER, signature),
            ("Idempotency-Key", md5.to_owned()),
            ("KHQR-Attempt", n.to_string()),
        ],
        body: body.to_vec(),
    };
    match st.transport.send(req).await {
        Ok(resp) => (200..300).contains(&resp.status),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_rules() {
        assert!(check_callback_url("https://shop.example/hook", false, false).is_ok());
        for bad in [
            "http://shop.example/hook",
            "https://127.0.0.1/hook",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://169.254.169.254/latest",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://localhost/",
            "https://user:pw@shop.example/",
            "ftp://shop.example/",
            "not a url",
        ] {
            assert!(check_callback_url(bad, false, false).is_err(), "{bad}");
        }
        assert!(check_callback_url("http://127.0.0.1:9/h", true, true).is_ok());
        assert!(check_callback_url("http://127.0.0.1:9/h", false, true).is_err());
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        for n in 1..8u32 {
            let full = (100u64 << (n - 1)).min(60_000);
            let d = backoff_ms(100, n);
            assert!(d >= full / 2 && d <= full, "{n}: {d}");
        }
        assert!(backoff_ms(1_000, 30) <= 60_000);
    }
}
