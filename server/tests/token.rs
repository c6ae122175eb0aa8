//! The Bakong token's lifecycle against a fake Bakong on loopback whose
//! `/v1/renew_token` counts its calls and issues unsigned JWTs (base64 of
//! JSON) with a later `exp`, and whose check endpoint answers 401 to an
//! expired or unknown token: a token 3 days from expiry is renewed once
//! across two instances on one Redis (and once on the memory store), checks
//! go on without a 401; a failing renewal raises every alert while checks go
//! on with the old token. Every loop here is bounded in count and time.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use common::{client, create, get, make_store, open_config_limits, start_server, Backend, Redis};
use khqr_server::{Config, ServeConfig};
use serde_json::Value;

const DAY_SECS: u64 = 86_400;
const EMAIL: &str = "ops@shop.example";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An unsigned JWT expiring at `exp` (seconds since the epoch); `n` makes it unique.
fn jwt(exp: u64, n: u64) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.sig{n}",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(serde_json::json!({"sub": "shop", "exp": exp}))
    )
}

/// The fake Bakong's state: the tokens it accepts (with their `exp`), what it
/// counted, and how it answers renewals.
#[derive(Default)]
struct Bakong {
    valid: Mutex<HashMap<String, u64>>,
    renewals: AtomicUsize,
    renew_fails: AtomicBool,
    renew_delay_ms: AtomicU64,
    /// Days the issued tokens last (0: 90).
    issue_days: AtomicU64,
    /// Retire every older token as soon as a renewal is asked for (before
    /// the new one is issued: the strictest Bakong).
    revoke_on_renew: AtomicBool,
    emails: Mutex<Vec<String>>,
    checks: AtomicUsize,
    unauthorized: AtomicUsize,
    /// Checks made with each token.
    used: Mutex<HashMap<String, usize>>,
}

async fn renew(State(b): State<Arc<Bakong>>, Json(body): Json<Value>) -> Response {
    let n = b.renewals.fetch_add(1, Ordering::SeqCst) as u64;
    b.emails
        .lock()
        .unwrap()
        .push(body["email"].as_str().unwrap_or("").to_owned());
    if b.revoke_on_renew.load(Ordering::SeqCst) && !b.renew_fails.load(Ordering::SeqCst) {
        b.valid.lock().unwrap().clear();
    }
    let delay = b.renew_delay_ms.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    if b.renew_fails.load(Ordering::SeqCst) {
        return (
            StatusCode::OK,
            r#"{"responseCode":1,"responseMessage":"Email server is down","errorCode":7,"data":null}"#,
        )
            .into_response();
    }
    let days = match b.issue_days.load(Ordering::SeqCst) {
        0 => 90,
        d => d,
    };
    let token = jwt(now_secs() + days * DAY_SECS, 1000 + n);
    b.valid
        .lock()
        .unwrap()
        .insert(token.clone(), now_secs() + days * DAY_SECS);
    (
        StatusCode::OK,
        format!(
            r#"{{"responseCode":0,"responseMessage":"Token has been issued","errorCode":null,"data":{{"token":"{token}"}}}}"#
        ),
    )
        .into_response()
}

async fn check(State(b): State<Arc<Bakong>>, headers: HeaderMap) -> Response {
    b.checks.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let exp = b.valid.lock().unwrap().get(&token).copied();
    if exp.is_none_or(|exp| exp <= now_secs()) {
        b.unauthorized.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, r#"{"error":"token expired"}"#).into_response();
    }
    *b.used.lock().unwrap().entry(token).or_default() += 1;
    (
        StatusCode::OK,
        r#"{"responseCode":1,"responseMessage":"Transaction could not be found. Please check and try again.","errorCode":1,"data":null}"#,
    )
        .into_response()
}

/// A fake Bakong on 127.0.0.1 accepting `token`; its base URL.
async fn fake_bakong(token: &str, exp: u64) -> (Arc<Bakong>, String) {
    let b = Arc::new(Bakong::default());
    b.valid.lock().unwrap().insert(token.to_owned(), exp);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let app = Router::new()
        .route("/relay/v1/renew_token", post(renew))
        .route("/relay/v1/check_transaction_by_md5", post(check))
        .with_state(b.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (b, format!("http://{addr}/relay"))
}

fn config(base: &str, token: &str, email: Option<&str>) -> Config {
    let mut config = Config::new("http://unset");
    base.clone_into(&mut config.bakong_base_url);
    config.token = Some(token.into());
    config.bakong_email = email.map(str::to_owned);
    config.token_sync_ms = 100;
    config.token_retry_ms = 200;
    config.pending_cache_ms = 1;
    config.rate_admin_per_client = 0;
    open_config_limits(&mut config);
    config
}

async fn readyz(base: &str) -> Value {
    let a = get(&client(None), &format!("{base}/readyz")).await;
    a.json()
}

/// Checks `tran` through `base`: the answer's HTTP status.
async fn check_status(base: &str, tran: &str) -> u16 {
    get(
        &client(None),
        &format!("{base}/khqr/check/{tran}?bakongid=merchant@abaa"),
    )
    .await
    .status
}

/// Checks through every server in turn until each one's `/readyz` says it
/// uses a renewed token (at most 10 s): the statuses of the checks.
async fn checks_until_renewed(bases: &[&str], tran: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    let start = Instant::now();
    for _ in 0..500 {
        for base in bases {
            statuses.push(check_status(base, tran).await);
        }
        let mut renewed = true;
        for base in bases {
            renewed &= readyz(base).await["tokenLifecycle"]["source"] == "renewed";
        }
        if renewed || start.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And a few more, all on the new token.
    for base in bases {
        statuses.push(check_status(base, tran).await);
    }
    statuses
}

fn assert_renewed_ready(r: &Value) {
    assert_eq!(r["status"], true, "{r}");
    let life = &r["tokenLifecycle"];
    assert_eq!(life["source"], "renewed", "{r}");
    assert_eq!(life["renewal"], "waiting", "{r}");
    assert_eq!(life["failures"], 0, "{r}");
    assert_eq!(life["lastError"], Value::Null, "{r}");
    let left = life["secondsLeft"].as_i64().unwrap();
    assert!((89 * 86_400..=90 * 86_400).contains(&left), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_three_days_from_expiry_is_renewed_once_across_two_instances_on_redis() {
    let exp = now_secs() + 3 * DAY_SECS;
    let old = jwt(exp, 1);
    let (bakong, base) = fake_bakong(&old, exp).await;
    // The renewal takes 300 ms, so the second instance finds the lease taken.
    bakong.renew_delay_ms.store(300, Ordering::SeqCst);
    let redis = Redis::start();
    let backend = Backend::Redis(redis.url.clone());
    let cfg = config(&base, &old, Some(EMAIL));
    let limits = cfg.limits();
    let a = start_server(
        cfg.clone(),
        ServeConfig::default(),
        make_store(&backend, limits.clone()).await,
    )
    .await;
    let b = start_server(
        cfg,
        ServeConfig::default(),
        make_store(&backend, limits).await,
    )
    .await;
    let (tran, _) = create(&client(None), &a.base, "merchant@abaa").await;

    let statuses = checks_until_renewed(&[&a.base, &b.base], &tran).await;
    assert!(statuses.len() >= 4, "{statuses:?}");
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // Let both keepers look again a few times: still one renewal.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bakong.renewals.load(Ordering::SeqCst), 1);
    assert_eq!(*bakong.emails.lock().unwrap(), vec![EMAIL.to_owned()]);
    assert_eq!(bakong.unauthorized.load(Ordering::SeqCst), 0);
    for base in [&a.base, &b.base] {
        assert_renewed_ready(&readyz(base).await);
    }
    // The last checks went out with the new token, from both instances.
    let before = bakong.used.lock().unwrap().clone();
    assert_eq!(check_status(&a.base, &tran).await, 200);
    assert_eq!(check_status(&b.base, &tran).await, 200);
    let after = bakong.used.lock().unwrap().clone();
    let new_uses = |m: &HashMap<String, usize>| {
        m.iter()
            .filter(|(t, _)| **t != old)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    assert_eq!(new_uses(&after), new_uses(&before) + 2);
    assert_eq!(after.get(&old), before.get(&old));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_three_days_from_expiry_is_renewed_once_on_the_memory_store() {
    let exp = now_secs() + 3 * DAY_SECS;
    let old = jwt(exp, 2);
    let (bakong, base) = fake_bakong(&old, exp).await;
    let cfg = config(&base, &old, Some(EMAIL));
    let store = make_store(&Backend::Memory, cfg.limits()).await;
    let a = start_server(cfg, ServeConfig::default(), store).await;
    let (tran, _) = create(&client(None), &a.base, "merchant@abaa").await;
    let statuses = checks_until_renewed(&[&a.base], &tran).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bakong.renewals.load(Ordering::SeqCst), 1);
    assert_eq!(bakong.unauthorized.load(Ordering::SeqCst), 0);
    assert_renewed_ready(&readyz(&a.base).await);
    a.stop().await;
}

/// When Bakong retires the old token as soon as a renewal is asked for:
/// the renewing instance's checks in the meantime wait for the new token and
/// ask again; an instance that has not looked at the store yet gets one 401,
/// adopts the shared token and asks again. No client sees an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_refused_with_a_retired_token_are_asked_again_with_the_new_one() {
    let exp = now_secs() + 3 * DAY_SECS;
    let old = jwt(exp, 3);
    let (bakong, base) = fake_bakong(&old, exp).await;
    bakong.revoke_on_renew.store(true, Ordering::SeqCst);
    bakong.renew_delay_ms.store(500, Ordering::SeqCst);
    let redis = Redis::start();
    let backend = Backend::Redis(redis.url.clone());
    // B: no e-mail (never renews), looks at the store once a minute.
    let mut cfg_b = config(&base, &old, None);
    cfg_b.token_sync_ms = 60_000;
    let b = start_server(
        cfg_b.clone(),
        ServeConfig::default(),
        make_store(&backend, cfg_b.limits()).await,
    )
    .await;
    let (tran, _) = create(&client(None), &b.base, "merchant@abaa").await;
    assert_eq!(check_status(&b.base, &tran).await, 200);
    assert_eq!(readyz(&b.base).await["tokenLifecycle"]["source"], "env");
    // A renews at once; the old token is retired while the call takes 500 ms.
    let cfg_a = config(&base, &old, Some(EMAIL));
    let a = start_server(
        cfg_a.clone(),
        ServeConfig::default(),
        make_store(&backend, cfg_a.limits()).await,
    )
    .await;
    let statuses = checks_until_renewed(&[&a.base], &tran).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(bakong.renewals.load(Ordering::SeqCst), 1);
    // A's checks during the renewal met the retired token (and were asked again).
    let refused = bakong.unauthorized.load(Ordering::SeqCst);
    assert!(refused >= 1, "no check fell inside the renewal");
    // B still holds the old token; its next check meets one 401 upstream and
    // is answered from a second call with the shared token.
    assert_eq!(readyz(&b.base).await["tokenLifecycle"]["source"], "env");
    assert_eq!(check_status(&b.base, &tran).await, 200);
    assert_eq!(bakong.unauthorized.load(Ordering::SeqCst), refused + 1);
    assert_eq!(readyz(&b.base).await["tokenLifecycle"]["source"], "renewed");
    assert_eq!(check_status(&b.base, &tran).await, 200);
    assert_eq!(check_status(&a.base, &tran).await, 200);
    assert_eq!(bakong.unauthorized.load(Ordering::SeqCst), refused + 1);
    a.stop().await;
    b.stop().await;
}

/// The log lines (JSON, one per line) written by this test binary.
fn log_lines() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| {
        struct W;
        impl Write for W {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                log_lines().lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "khqr_server::operator=info",
            ))
            .json()
            .flatten_event(true)
            .with_writer(|| W)
            .try_init();
        Mutex::new(Vec::new())
    })
}

/// The operator events logged with `token` in their message's fields.
fn events(marker: &str) -> Vec<Value> {
    let text = String::from_utf8(log_lines().lock().unwrap().clone()).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "khqr_server::operator" && v.to_string().contains(marker))
        .collect()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_renewal_raises_the_alerts_and_checks_go_on_with_the_old_token() {
    let _ = log_lines();
    let exp = now_secs() + 3 * DAY_SECS - 60;
    let old = jwt(exp, 4);
    let (bakong, base) = fake_bakong(&old, exp).await;
    bakong.renew_fails.store(true, Ordering::SeqCst);
    let cfg = config(&base, &old, Some(EMAIL));
    let store = make_store(&Backend::Memory, cfg.limits()).await;
    let a = start_server(cfg, ServeConfig::default(), store).await;
    let (tran, _) = create(&client(None), &a.base, "merchant@abaa").await;

    // Checks go on (with the old token) while renewal fails and is retried
    // with backoff: 200 ms, 400 ms, 800 ms apart.
    let start = Instant::now();
    let mut statuses = Vec::new();
    while start.elapsed() < Duration::from_millis(1_700) && statuses.len() < 200 {
        statuses.push(check_status(&a.base, &tran).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        statuses.len() >= 5 && statuses.iter().all(|&s| s == 200),
        "{statuses:?}"
    );
    let tries = bakong.renewals.load(Ordering::SeqCst);
    assert!((3..=5).contains(&tries), "{tries} attempts in 1.7 s");
    assert_eq!(bakong.unauthorized.load(Ordering::SeqCst), 0);
    assert_eq!(
        bakong.used.lock().unwrap().keys().collect::<Vec<_>>(),
        vec![&old]
    );

    // /readyz: still ready (the token is valid), the renewal failing.
    let r = readyz(&a.base).await;
    assert_eq!(r["status"], true, "{r}");
    let life = &r["tokenLifecycle"];
    assert_eq!(life["source"], "env", "{r}");
    assert_eq!(life["renewal"], "failing", "{r}");
    assert!(life["failures"].as_u64().unwrap() >= 3, "{r}");
    let why = life["lastError"].as_str().unwrap();
    assert!(why.contains("Bakong refused the renewal"), "{why}");
    assert!(!why.contains(EMAIL) && !why.contains(&old), "{why}");
    let left = life["secondsLeft"].as_i64().unwrap();
    assert!((3 * 86_400 - 70..=3 * 86_400 - 60).contains(&left), "{r}");

    // The gauge and the event counters.
    let m = get(&client(None), &format!("{}/metrics", a.base))
        .await
        .text();
    let gauge = metric(&m, "khqr_bakong_token_seconds_left").unwrap();
    assert!((259_130.0..=259_140.0).contains(&gauge), "{gauge}");
    let failed = metric(
        &m,
        r#"khqr_operator_events_total{event="token.renewal_failed"}"#,
    );
    assert!(failed.unwrap() >= 3.0, "{m}");
    assert!(metric(&m, r#"khqr_operator_events_total{event="token.expiring"}"#).unwrap() >= 1.0);

    // The log: one warning for the 3-day threshold (not one for 14 days as
    // well), and one per failed attempt.
    // (Other tests here log theirs too: this token is the one 60 s short of 3 days.)
    let expiring: Vec<_> = events("token.expiring")
        .into_iter()
        .filter(|v| v["event"] == "token.expiring")
        .filter(|v| {
            v["seconds_left"]
                .as_i64()
                .is_some_and(|s| (left - 5..=left + 5).contains(&s))
        })
        .collect();
    assert_eq!(expiring.len(), 1, "{expiring:?}");
    assert_eq!(expiring[0]["level"], "WARN");
    assert_eq!(expiring[0]["threshold_secs"], 259_200);
    let failures: Vec<_> = events("Email server is down")
        .into_iter()
        .filter(|v| v["event"] == "token.renewal_failed")
        .collect();
    assert!(failures.len() >= 3, "{failures:?}");
    assert!(failures.iter().all(|v| v["level"] == "WARN"));

    // Bakong recovers: the next retry renews, the failure state clears.
    bakong.renew_fails.store(false, Ordering::SeqCst);
    let statuses = checks_until_renewed(&[&a.base], &tran).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_renewed_ready(&readyz(&a.base).await);
    assert_eq!(bakong.unauthorized.load(Ordering::SeqCst), 0);
    a.stop().await;
}

/// A Bakong (or relay) that issues tokens already inside the renewal lead
/// time cannot make the server renew in a loop: each such renewal counts as a
/// failure and the retries back off (200, 400, 800 ms here), while the newest
/// token is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_renewed_tokens_do_not_make_a_renewal_storm() {
    let exp = now_secs() + 3 * DAY_SECS;
    let old = jwt(exp, 5);
    let (bakong, base) = fake_bakong(&old, exp).await;
    bakong.issue_days.store(5, Ordering::SeqCst);
    let cfg = config(&base, &old, Some(EMAIL));
    let store = make_store(&Backend::Memory, cfg.limits()).await;
    let a = start_server(cfg, ServeConfig::default(), store).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let tries = bakong.renewals.load(Ordering::SeqCst);
    // Every 100 ms (the sync interval) would be 15.
    assert!((3..=5).contains(&tries), "{tries} renewals in 1.5 s");
    let r = readyz(&a.base).await;
    let life = &r["tokenLifecycle"];
    assert_eq!(life["source"], "renewed", "{r}");
    assert_eq!(life["renewal"], "failing", "{r}");
    let why = life["lastError"].as_str().unwrap();
    assert!(why.contains("within the renewal lead time"), "{why}");
    let left = life["secondsLeft"].as_i64().unwrap();
    assert!((5 * 86_400 - 10..=5 * 86_400).contains(&left), "{r}");
    a.stop().await;
}
