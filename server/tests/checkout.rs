//! The checkout page without a browser (no-JavaScript fallback, escaping, CSP,
//! one watcher for many viewers) and the signed webhooks, against loopback
//! receivers. Every wait is bounded.
#![allow(clippy::missing_panics_doc)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bakong_khqr::webhook::{verify_webhook_signature, WebhookError, SIGNATURE_HEADER};
use common::now_ms;
use common::{client, config_for, fake_bakong, get, make_store, open_limits, start_server};
use common::{Backend, Fake, Redis, Server};
use khqr_server::ledger::{event_id, EventKind};
use khqr_server::merchant::{key_hash, Merchant, MerchantStore, WebhookSecret};
use khqr_server::store::{AnyStore, MemoryStore};
use khqr_server::{Config, ServeConfig};
use serde_json::Value;

const SECRET: &[u8] = b"whsec-test-0123456789abcdef";
/// The API key of the merchant `shop` (holding `shop@abaa`, signing with [`SECRET`]).
const KEY: &str = "khqr_sk_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The merchant whose keyed creates may carry a `callback_url`.
fn shop() -> Merchant {
    Merchant {
        id: "shop".into(),
        name: "Shop".into(),
        bakong_ids: vec!["shop@abaa".into()],
        key_hashes: vec![key_hash(KEY)],
        test_key_hashes: vec![],
        secrets: vec![WebhookSecret {
            value: String::from_utf8(SECRET.to_vec()).unwrap(),
            until_ms: None,
        }],
        disabled: false,
        created_ms: 0,
    }
}

/// `store` with the merchant [`shop`] in it.
async fn with_shop(store: AnyStore) -> AnyStore {
    store.merchant_save(&shop(), false).await.unwrap().unwrap();
    store
}

/// A webhook receiver on 127.0.0.1: records every delivery (headers, raw
/// body, the status it answered) and fails the first `fail_first` with 500.
#[derive(Default)]
struct Receiver {
    seen: Mutex<Vec<(HeaderMap, Bytes, u16)>>,
    fail_first: AtomicUsize,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    r.seen
        .lock()
        .unwrap()
        .push((headers, body, status.as_u16()));
    status
}

async fn receiver(fail_first: usize) -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    r.fail_first.store(fail_first, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, format!("http://{addr}/hook"))
}

fn webhook_config(fake: &Fake) -> Config {
    let mut config = config_for(fake);
    config.pending_cache_ms = 100;
    config.poll_interval_ms = 100;
    config.webhook_backoff_ms = 50;
    // Test-only: the receivers are plain http on loopback.
    config.callback_allow_private = true;
    config.callback_allow_http = true;
    config
}

async fn memory_server(config: Config) -> Server {
    start_server(
        config,
        ServeConfig::default(),
        AnyStore::Memory(MemoryStore::new(open_limits())),
    )
    .await
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A create keyed with the merchant [`shop`]'s key.
async fn create_keyed(base: &str, extra: &str) -> (u16, Value) {
    let a = common::send(
        client(None)
            .get(format!(
                "{base}/khqr/create?amount=2.50&bakongid=shop@abaa&merchantname=Shop{extra}"
            ))
            .bearer_auth(KEY),
    )
    .await;
    let v = a.json();
    (a.status, v)
}

async fn keyed_server(config: Config) -> Server {
    let store = with_shop(AnyStore::Memory(MemoryStore::new(open_limits()))).await;
    start_server(config, ServeConfig::default(), store).await
}

async fn create_with(base: &str, extra: &str) -> (u16, Value) {
    let a = get(
        &client(None),
        &format!("{base}/khqr/create?amount=2.50&bakongid=shop@abaa&merchantname=Shop{extra}"),
    )
    .await;
    let v = a.json();
    (a.status, v)
}

fn pay(fake: &Fake, md5: &str) {
    fake.state
        .paid
        .lock()
        .unwrap()
        .insert(md5.to_owned(), ("2.5".into(), "USD".into()));
}

/// Waits (bounded) until `f` holds.
async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn successes(r: &Receiver) -> Vec<(HeaderMap, Bytes)> {
    r.seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.2 < 300)
        .map(|s| (s.0.clone(), s.1.clone()))
        .collect()
}

#[tokio::test]
async fn page_without_javascript_escapes_and_refreshes() {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.pending_cache_ms = 100;
    config.poll_interval_ms = 100;
    let srv = memory_server(config).await;
    let c = client(None);
    let name = enc(r#"Tom & Jerry's "Shop""#);
    let a = get(
        &c,
        &format!(
            "{}/khqr/create?amount=2.50&bakongid=shop@abaa&merchantname={name}",
            srv.base
        ),
    )
    .await;
    let v = a.json();
    assert_eq!(a.status, 200, "{v}");
    let url = v["checkout"].as_str().unwrap().to_owned();
    let md5 = v["md5"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!("{}/khqr/pay/{}", srv.base, v["tran"].as_str().unwrap())
    );
    let page = get(&c, &url).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'"),
        "{csp}"
    );
    let html = page.text();
    assert!(
        html.contains("Tom &amp; Jerry&#39;s &quot;Shop&quot;"),
        "escaped name"
    );
    assert!(!html.contains(r#"Jerry's "Shop""#), "no raw name");
    assert!(html.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#));
    assert!(html.contains(r#"aria-live="polite""#) && html.contains("Waiting for payment"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no absolute URL: every asset is ours"
    );
    // The deep link is hidden: the fake Bakong gives none.
    assert!(html.contains(r#"id="open-bakong" class="button" href="" hidden"#));
    pay(&fake, &md5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let html = get(&c, &url).await.text();
    assert!(
        html.contains("Paid 2.5 USD at "),
        "server-rendered paid status"
    );
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "no refresh once paid"
    );
    for asset in ["checkout.js", "checkout.css", "khmer.ttf"] {
        let a = get(&c, &format!("{}/khqr/assets/{asset}", srv.base)).await;
        assert_eq!(a.status, 200, "{asset}");
    }
    assert_eq!(
        get(&c, &format!("{}/khqr/assets/x.js", srv.base))
            .await
            .status,
        404
    );
    assert_eq!(
        get(&c, &format!("{}/khqr/pay/nope", srv.base)).await.status,
        404
    );
    srv.stop().await;
}

/// Ten viewers on the event stream share one watcher: Bakong sees at most one
/// call per pending-cache period, not one per viewer.
#[tokio::test]
async fn many_viewers_one_poller() {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.pending_cache_ms = 250;
    config.poll_interval_ms = 100;
    let srv = memory_server(config).await;
    let (status, v) = create_with(&srv.base, "").await;
    assert_eq!(status, 200);
    let tran = v["tran"].as_str().unwrap().to_owned();
    let md5 = v["md5"].as_str().unwrap().to_owned();
    let mut streams = Vec::new();
    for _ in 0..10 {
        let resp = client(None)
            .get(format!("{}/khqr/events/{tran}", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        streams.push(resp);
    }
    let before = fake.state.calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = fake.state.calls.load(Ordering::SeqCst) - before;
    eprintln!("10 viewers for 1.5 s: {calls} upstream calls");
    assert!(calls <= 8, "{calls} upstream calls for 10 viewers in 1.5 s");
    pay(&fake, &md5);
    // Every viewer gets "paid" and its stream ends.
    for mut s in streams {
        let mut text = String::new();
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(chunk)) = s.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        assert!(got.is_ok(), "the stream ends after paid: {text}");
        assert!(text.contains("event: status"), "{text}");
        assert!(text.contains(r#"data: {"status":"pending"}"#), "{text}");
        assert!(
            text.contains(r#""status":"paid","amount":"2.5","currency":"USD""#),
            "{text}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn success_url_is_checked_against_the_allow_list() {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.success_url_allow = vec!["https://shop.example/done".into()];
    let srv = memory_server(config).await;
    let (s, v) = create_with(
        &srv.base,
        &format!("&success_url={}", enc("https://evil.example/")),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_success_url")),
        "{v}"
    );
    let (s, v) = create_with(
        &srv.base,
        &format!("&success_url={}", enc("https://shop.example/done?order=7")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    srv.stop().await;
}

#[tokio::test]
async fn private_or_plain_callbacks_are_refused_by_default() {
    let fake = fake_bakong().await;
    let srv = keyed_server(config_for(&fake)).await;
    for bad in [
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://localhost/hook",
        "http://shop.example/hook",
    ] {
        let (s, v) = create_keyed(&srv.base, &format!("&callback_url={}", enc(bad))).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("invalid_callback_url")),
            "{bad}: {v}"
        );
    }
    let (s, v) = create_keyed(
        &srv.base,
        &format!("&callback_url={}", enc("https://shop.example/hook")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    srv.stop().await;
    // Without a merchant's key, no callback at all.
    let srv = memory_server(config_for(&fake)).await;
    let (s, v) = create_with(
        &srv.base,
        &format!("&callback_url={}", enc("https://shop.example/hook")),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("callback_needs_key")),
        "{v}"
    );
    srv.stop().await;
}

/// A receiver that fails twice then succeeds: `khqr.created` at once, in
/// three attempts, one success; then the payment's `khqr.paid`, once; each
/// event under its own id as the idempotency key, a valid signature on
/// each; a tampered body fails.
#[tokio::test]
async fn webhook_signed_retried_once_delivered() {
    let fake = fake_bakong().await;
    let srv = keyed_server(webhook_config(&fake)).await;
    let (r, hook) = receiver(2).await;
    let (s, v) = create_keyed(&srv.base, &format!("&callback_url={}", enc(&hook))).await;
    assert_eq!(s, 200, "{v}");
    let md5 = v["md5"].as_str().unwrap().to_owned();
    let tran = v["tran"].as_str().unwrap().to_owned();
    until(Duration::from_secs(10), "khqr.created delivered", || {
        !successes(&r).is_empty()
    })
    .await;
    pay(&fake, &md5);
    until(Duration::from_secs(10), "khqr.paid delivered", || {
        successes(&r).len() >= 2
    })
    .await;
    // Give a wrong second delivery time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = r.seen.lock().unwrap().clone();
    let statuses: Vec<u16> = seen.iter().map(|s| s.2).collect();
    assert_eq!(
        statuses,
        vec![500, 500, 204, 204],
        "two failures then one success, then the payment once"
    );
    let (created, paid) = (
        event_id(EventKind::Created, &md5),
        event_id(EventKind::Paid, &md5),
    );
    for (n, (headers, body, _)) in seen.iter().enumerate() {
        let id = if n < 3 { &created } else { &paid };
        assert_eq!(headers["idempotency-key"].to_str().unwrap(), id);
        assert_eq!(headers["khqr-event-id"].to_str().unwrap(), id);
        assert_eq!(
            headers["content-type"].to_str().unwrap(),
            "application/json"
        );
        let sig = headers[SIGNATURE_HEADER].to_str().unwrap();
        let t = verify_webhook_signature(SECRET, sig, body, now_ms()).expect("valid signature");
        assert!(t.abs_diff(now_ms()) < 60_000);
        let mut tampered = body.to_vec();
        let at = tampered.iter().position(|&b| b == b'5').unwrap();
        tampered[at] = b'9';
        assert_eq!(
            verify_webhook_signature(SECRET, sig, &tampered, now_ms()),
            Err(WebhookError::Mismatch)
        );
        assert!(verify_webhook_signature(b"another secret", sig, body, now_ms()).is_err());
    }
    let event: Value = serde_json::from_slice(&seen[3].1).unwrap();
    assert_eq!(event["type"], "khqr.paid");
    assert_eq!(event["id"], paid.as_str());
    assert_eq!(event["md5"], md5.as_str());
    assert_eq!(event["tran"], tran.as_str());
    assert_eq!(event["amount"], "2.5");
    assert_eq!(event["currency"], "USD");
    assert_eq!(event["bakongId"], "shop@abaa");
    assert_eq!(event["paidAtMs"], 1_700_000_001_000_u64);
    srv.stop().await;
}

/// Two instances on one Redis both see the payment; the lease lets exactly
/// one deliver.
#[tokio::test]
async fn two_instances_on_one_redis_deliver_once() {
    let redis = Redis::start();
    let fake = fake_bakong().await;
    let backend = Backend::Redis(redis.url.clone());
    let one = start_server(
        webhook_config(&fake),
        ServeConfig::default(),
        with_shop(make_store(&backend, open_limits()).await).await,
    )
    .await;
    let two = start_server(
        webhook_config(&fake),
        ServeConfig::default(),
        with_shop(make_store(&backend, open_limits()).await).await,
    )
    .await;
    let (r, hook) = receiver(0).await;
    let (s, v) = create_keyed(&one.base, &format!("&callback_url={}", enc(&hook))).await;
    assert_eq!(s, 200, "{v}");
    let md5 = v["md5"].as_str().unwrap().to_owned();
    let tran = v["tran"].as_str().unwrap().to_owned();
    // A viewer on B starts B's watcher too: both instances will see "paid".
    let page = get(&client(None), &format!("{}/khqr/pay/{tran}", two.base)).await;
    assert_eq!(page.status, 200);
    let mut viewer = client(None)
        .get(format!("{}/khqr/events/{tran}", two.base))
        .send()
        .await
        .unwrap();
    pay(&fake, &md5);
    let paid_seen = tokio::time::timeout(Duration::from_secs(5), async {
        let mut text = String::new();
        while let Ok(Some(c)) = viewer.chunk().await {
            text.push_str(&String::from_utf8_lossy(&c));
        }
        text
    })
    .await
    .expect("B's viewer sees paid");
    assert!(paid_seen.contains(r#""status":"paid""#), "{paid_seen}");
    until(Duration::from_secs(10), "two deliveries", || {
        successes(&r).len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let keys: Vec<String> = r
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.0["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            event_id(EventKind::Created, &md5),
            event_id(EventKind::Paid, &md5)
        ],
        "exactly one delivery of each event from two instances"
    );
    one.stop().await;
    two.stop().await;
    drop(redis);
}

/// A receiver that keeps failing while the instance delivering to it stops; a
/// new instance on the same Redis picks the webhook up from the store and
/// carries on counting attempts, then delivers once.
#[tokio::test]
async fn a_restart_carries_on_delivering() {
    let redis = Redis::start();
    let fake = fake_bakong().await;
    let backend = Backend::Redis(redis.url.clone());
    let mut config = webhook_config(&fake);
    config.upstream_timeout_ms = 1_000;
    let first = start_server(
        config.clone(),
        ServeConfig::default(),
        with_shop(make_store(&backend, open_limits()).await).await,
    )
    .await;
    let (r, hook) = receiver(usize::MAX).await;
    let (s, v) = create_keyed(&first.base, &format!("&callback_url={}", enc(&hook))).await;
    assert_eq!(s, 200, "{v}");
    let md5 = v["md5"].as_str().unwrap().to_owned();
    pay(&fake, &md5);
    let paid = event_id(EventKind::Paid, &md5);
    let paid_seen = |r: &Receiver| -> Vec<(String, u16)> {
        r.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.0["idempotency-key"] == paid.as_str())
            .map(|s| (s.0["khqr-attempt"].to_str().unwrap().to_owned(), s.2))
            .collect()
    };
    until(Duration::from_secs(10), "two failed attempts", || {
        paid_seen(&r).len() >= 2
    })
    .await;
    first.stop().await;
    let before = paid_seen(&r).len();
    r.fail_first.store(0, Ordering::SeqCst);
    let second = start_server(
        config,
        ServeConfig::default(),
        make_store(&backend, open_limits()).await,
    )
    .await;
    until(
        Duration::from_secs(15),
        "delivery after the restart",
        || paid_seen(&r).iter().any(|s| s.1 < 300),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = paid_seen(&r);
    let attempts: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    let expected: Vec<String> = (1..=seen.len()).map(|n| n.to_string()).collect();
    assert_eq!(attempts, expected, "attempts carry on across the restart");
    assert_eq!(
        seen.iter().filter(|s| s.1 < 300).count(),
        1,
        "delivered once"
    );
    assert!(seen.len() > before, "the new instance delivered");
    second.stop().await;
    drop(redis);
}

/// "Open in Bakong" carries the deep link when Bakong gives one.
#[tokio::test]
async fn deep_link_button_when_bakong_gives_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/v1/generate_deeplink_by_qr",
        post(|| async {
            r#"{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":{"shortLink":"https://bakong.page.link/k3Xq"}}"#
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.bakong_base_url = format!("http://{addr}");
    let srv = memory_server(config).await;
    let (s, v) = create_with(&srv.base, "").await;
    assert_eq!(s, 200, "{v}");
    let html = get(&client(None), v["checkout"].as_str().unwrap())
        .await
        .text();
    assert!(
        html.contains(r#"<a id="open-bakong" class="button" href="https://bakong.page.link/k3Xq">Open in Bakong</a>"#),
        "{html}"
    );
    srv.stop().await;
}
