//! Issue 18, "burn the operator's Bakong quota" and "every instance polls":
//! the attacks, replayed on 127.0.0.1 against a fake Bakong that counts its
//! calls by kind (and status calls by MD5). Every loop is bounded in count and
//! in time.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::{backends, client, get, make_store, open_limits, start_server, Backend, Redis};
use khqr_server::merchant::{run, MerchantCommand};
use khqr_server::store::AnyStore;
use khqr_server::{Config, ServeConfig};
use serde_json::Value;

/// What the fake Bakong saw.
#[derive(Default)]
struct Seen {
    /// `check_transaction_by_md5` calls.
    checks: AtomicUsize,
    /// `generate_deeplink_by_qr` calls.
    links: AtomicUsize,
    /// `check_transaction_by_md5` calls by MD5.
    by_md5: Mutex<HashMap<String, usize>>,
    /// How long each status answer takes, in ms.
    delay_ms: AtomicU64,
}

impl Seen {
    fn per_md5(&self) -> HashMap<String, usize> {
        self.by_md5.lock().unwrap().clone()
    }
}

async fn fake_status(State(seen): State<Arc<Seen>>, Json(body): Json<Value>) -> String {
    seen.checks.fetch_add(1, Ordering::SeqCst);
    let md5 = body["md5"].as_str().unwrap_or("").to_owned();
    *seen.by_md5.lock().unwrap().entry(md5).or_default() += 1;
    let delay = seen.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    r#"{"responseCode":1,"responseMessage":"Transaction could not be found. Please check and try again.","errorCode":1,"data":null}"#.into()
}

async fn fake_link(State(seen): State<Arc<Seen>>) -> &'static str {
    seen.links.fetch_add(1, Ordering::SeqCst);
    r#"{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":{"shortLink":"https://bakong.page.link/k3Xq"}}"#
}

/// A fake Bakong on 127.0.0.1 that answers every status with "not found"
/// (pending) and every deep link with a link, counting both.
async fn counting_bakong() -> (Arc<Seen>, String) {
    let seen = Arc::new(Seen::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let app = Router::new()
        .route("/v1/check_transaction_by_md5", post(fake_status))
        .route("/v1/generate_deeplink_by_qr", post(fake_link))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, format!("http://{addr}"))
}

/// The budget these tests set: 10 calls/s, burst 20 (the defaults).
const RATE: usize = 10;
const BURST: usize = 20;

/// A server config on the fake Bakong `base`: webhooks on (loopback callbacks
/// allowed), open rate limits, the call budget [`RATE`]/[`BURST`].
fn config(base: &str) -> Config {
    let mut c = Config::new("http://unset");
    c.bakong_base_url = base.into();
    c.token = Some(common::TOKEN.into());
    common::open_config_limits(&mut c);
    c.callback_allow_http = true;
    c.callback_allow_private = true;
    c.bakong_calls_per_sec = u32::try_from(RATE).unwrap();
    c.bakong_burst = u32::try_from(BURST).unwrap();
    c
}

/// The Bakong account of the merchant whose QRs owe webhooks.
const SHOP: &str = "shop@abaa";

/// Adds the merchant holding [`SHOP`] to `store`; returns its API key (only a
/// keyed create may ask for a webhook).
async fn shop_key(store: &AnyStore) -> String {
    let add = MerchantCommand::Add {
        id: "shop".into(),
        name: "Shop".into(),
        bakong_ids: vec![SHOP.into()],
    };
    let issued = run(store, &add, 1_000).await.unwrap();
    issued["key"].as_str().unwrap().to_owned()
}

/// A store of `backend` holding the shop merchant, and the shop's key.
async fn store_with_shop(backend: &Backend) -> (AnyStore, String) {
    let store = make_store(backend, open_limits()).await;
    let key = shop_key(&store).await;
    (store, key)
}

/// Creates a QR for `bakongid`; with `key`, as that merchant and owing a
/// webhook. Returns (tran, md5).
async fn create(
    c: &reqwest::Client,
    base: &str,
    bakongid: &str,
    key: Option<&str>,
) -> (String, String) {
    create_for(c, base, bakongid, key, "1.25").await
}

/// As [`create`], for `amount` (USD).
async fn create_for(
    c: &reqwest::Client,
    base: &str,
    bakongid: &str,
    key: Option<&str>,
    amount: &str,
) -> (String, String) {
    let mut q = vec![
        ("amount", amount),
        ("bakongid", bakongid),
        ("merchantname", "Shop"),
    ];
    let mut req = c.get(format!("{base}/khqr/create"));
    if let Some(key) = key {
        q.push(("callback_url", "http://127.0.0.1:9/hook"));
        req = req.bearer_auth(key);
    }
    let a = common::send(req.query(&q)).await;
    let v = a.json();
    assert_eq!(a.status, 200, "{v}");
    (
        v["tran"].as_str().unwrap().to_owned(),
        v["md5"].as_str().unwrap().to_owned(),
    )
}

/// `n` keyed creates owing webhooks, from 127.0.0.2, 10 at a time; at most 60 s.
async fn create_many(base: &str, key: &str, n: usize) -> Vec<(String, String)> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..10 {
        let base = base.to_owned();
        let key = key.to_owned();
        tasks.spawn(async move {
            let c = client(Some("127.0.0.2"));
            let mut out = Vec::new();
            // Each its own amount: identical payloads made faster than one a
            // millisecond would each need a millisecond of their own (tag 99).
            for i in (w..n).step_by(10) {
                let amount = format!("{}.{:02}", 1 + i / 100, i % 100);
                out.push(create_for(&c, &base, SHOP, Some(&key), &amount).await);
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(all.len(), n);
    all
}

/// Status calls the fake saw during `window`.
async fn status_calls_during(seen: &Seen, window: Duration) -> usize {
    let before = seen.checks.load(Ordering::SeqCst);
    tokio::time::sleep(window).await;
    seen.checks.load(Ordering::SeqCst) - before
}

/// The most calls the budget allows in `window`: rate × window + burst.
fn allowed(window: Duration) -> usize {
    RATE * usize::try_from(window.as_millis()).unwrap() / 1000 + BURST
}

/// 500 creates owing webhooks, then nobody watches: Bakong sees at most the
/// budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_burn_stays_under_the_budget_with_both_stores() {
    let (_redis, stores) = backends();
    for backend in stores {
        let (seen, base) = counting_bakong().await;
        let (store, key) = store_with_shop(&backend).await;
        let srv = start_server(config(&base), ServeConfig::default(), store).await;
        create_many(&srv.base, &key, 500).await;
        let window = Duration::from_secs(4);
        let n = status_calls_during(&seen, window).await;
        eprintln!("{backend:?}: {n} status calls in {window:?} after 500 creates");
        assert!(
            n <= allowed(window),
            "{backend:?}: {n} Bakong calls in {window:?}; the budget allows {}",
            allowed(window)
        );
        let metrics = get(&client(None), &format!("{}/metrics", srv.base))
            .await
            .text();
        for line in [
            r#"khqr_bakong_calls_total{kind="watch"}"#,
            r#"khqr_budget_refused_total{kind="watch",why="skipped"}"#,
        ] {
            assert!(metrics.contains(line), "{backend:?}: {line} in /metrics");
        }
        srv.stop().await;
    }
}

/// Many views of one QR's checkout page (on two instances with Redis) ask
/// Bakong for its deep link once, and the call is counted by kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_views_ask_one_deep_link_per_qr_with_both_stores() {
    let (_redis, stores) = backends();
    for backend in stores {
        let (seen, base) = counting_bakong().await;
        let a = start_server(
            config(&base),
            ServeConfig::default(),
            make_store(&backend, open_limits()).await,
        )
        .await;
        // With Redis or SQLite a second instance on the same store; in
        // memory, one.
        let b = match backend {
            Backend::Redis(_) | Backend::Sqlite(_) => Some(
                start_server(
                    config(&base),
                    ServeConfig::default(),
                    make_store(&backend, open_limits()).await,
                )
                .await,
            ),
            Backend::Memory => None,
        };
        let c = client(Some("127.0.0.3"));
        let (tran, _) = create(&c, &a.base, "merchant@abaa", None).await;
        let bases: Vec<String> = [Some(&a), b.as_ref()]
            .into_iter()
            .flatten()
            .map(|s| s.base.clone())
            .collect();
        let mut views = tokio::task::JoinSet::new();
        for i in 0..10 {
            let url = format!("{}/khqr/pay/{tran}", bases[i % bases.len()]);
            views.spawn(async move { get(&client(Some("127.0.0.4")), &url).await.status });
        }
        while let Some(s) = views.join_next().await {
            assert_eq!(s.unwrap(), 200);
        }
        for i in 0..10 {
            let page = get(&c, &format!("{}/khqr/pay/{tran}", bases[i % bases.len()])).await;
            assert_eq!(page.status, 200);
            assert!(
                page.text().contains("https://bakong.page.link/k3Xq"),
                "{backend:?}: view {i} shows the deep link"
            );
        }
        let links = seen.links.load(Ordering::SeqCst);
        eprintln!("{backend:?}: {links} deep-link calls for 20 views");
        assert_eq!(links, 1, "{backend:?}: deep-link calls for 20 views");
        let metrics = get(&c, &format!("{}/metrics", a.base)).await.text();
        assert!(
            metrics.contains(r#"khqr_bakong_calls_total{kind="deeplink"}"#),
            "{backend:?}: calls by kind in /metrics"
        );
        if let Some(b) = b {
            b.stop().await;
        }
        a.stop().await;
    }
}

/// With 500 QRs owing webhooks watched (the most watcher load there can be: a
/// stranger's QR owes none) and a slow Bakong (800 ms an answer), a
/// merchant's check is answered within 2 s and Bakong sees at most the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_goes_first_while_500_strangers_qrs_are_watched_with_both_stores() {
    let (_redis, stores) = backends();
    for backend in stores {
        let (seen, base) = counting_bakong().await;
        seen.delay_ms.store(800, Ordering::SeqCst);
        let (store, key) = store_with_shop(&backend).await;
        let srv = start_server(config(&base), ServeConfig::default(), store).await;
        let c = client(Some("127.0.0.3"));
        let (tran, _) = create(&c, &srv.base, SHOP, Some(&key)).await;
        create_many(&srv.base, &key, 500).await;
        let counting = tokio::spawn({
            let seen = seen.clone();
            async move { status_calls_during(&seen, Duration::from_secs(4)).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        // The merchant checks with its key: first in the budget.
        let check = common::send(
            c.get(format!("{}/khqr/check/{tran}?bakongid={SHOP}", srv.base))
                .bearer_auth(&key),
        )
        .await;
        let took = started.elapsed();
        eprintln!("{backend:?}: the merchant's check took {took:?}");
        assert_eq!(check.status, 200, "{backend:?}: {}", check.text());
        assert_eq!(check.json()["responseCode"], 1, "{backend:?}: pending");
        assert!(
            took < Duration::from_secs(2),
            "{backend:?}: the merchant's check took {took:?}"
        );
        let n = counting.await.unwrap();
        let window = Duration::from_secs(4);
        eprintln!("{backend:?}: {n} status calls in {window:?}");
        assert!(
            n <= allowed(window),
            "{backend:?}: {n} Bakong calls in {window:?}; the budget allows {}",
            allowed(window)
        );
        srv.stop().await;
    }
}

/// Two instances on one Redis, QRs owing webhooks: each QR is polled by one
/// instance at a time, so Bakong sees one instance's calls, not twice them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_poll_each_qr_once() {
    let redis = Redis::start();
    let backend = Backend::Redis(redis.url.clone());
    let (seen, base) = counting_bakong().await;
    let mut cfg = config(&base);
    // A fast, flat pace and a budget that does not bind, so that only the
    // instances' sharing decides the count.
    cfg.poll_interval_ms = 500;
    cfg.pending_cache_ms = 400;
    cfg.poll_max_interval_ms = 500;
    cfg.bakong_calls_per_sec = 10_000;
    cfg.bakong_burst = 10_000;
    let (store, key) = store_with_shop(&backend).await;
    let a = start_server(cfg.clone(), ServeConfig::default(), store).await;
    let b = start_server(
        cfg.clone(),
        ServeConfig::default(),
        make_store(&backend, open_limits()).await,
    )
    .await;
    let qrs = create_many(&a.base, &key, 50).await;
    // The second instance takes up listed QRs every 2 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = seen.per_md5();
    let window = Duration::from_secs(4);
    tokio::time::sleep(window).await;
    let after = seen.per_md5();
    let per_qr: Vec<usize> = qrs
        .iter()
        .map(|(_, md5)| {
            after.get(md5).copied().unwrap_or(0) - before.get(md5).copied().unwrap_or(0)
        })
        .collect();
    let total: usize = per_qr.iter().sum();
    let most = per_qr.iter().copied().max().unwrap_or(0);
    // One instance polls a QR at most every 500 ms: 8 calls in 4 s (+1 at
    // the edges of the window or a lease handover).
    let one = usize::try_from(window.as_millis() / 500).unwrap();
    eprintln!("two instances: {total} calls for 50 QRs in {window:?}, at most {most} for one");
    assert!(
        most <= one + 2,
        "one QR was polled {most} times in {window:?}"
    );
    assert!(
        total <= 50 * (one + 1),
        "{total} calls for 50 QRs in {window:?}; one instance makes at most {}",
        50 * one
    );
    assert!(total >= 50, "the QRs are still polled: {total}");
    b.stop().await;
    a.stop().await;
    drop(redis);
}

/// The store's budget bucket, leases and shared values: the Redis scripts
/// and the in-memory arithmetic give the same answers for the same calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_leases_and_shared_values_agree_in_both_stores() {
    use khqr_server::store::coord::Rate;
    use khqr_server::store::Store;
    let (_redis, stores) = backends();
    let rate = Rate {
        per_sec: 10,
        burst: 20,
    };
    let t0 = 1_700_000_000_000u64;
    // (floor, ms after t0): drain with floors 5 and 0, refill, a clock behind.
    let mut steps: Vec<(u32, u64)> = (0..18).map(|_| (5, 0)).collect();
    steps.extend((0..8).map(|_| (0, 0)));
    steps.extend([(0, 40), (0, 100), (5, 150), (5, 700), (5, 701), (0, 60_000)]);
    steps.extend((0..25).map(|_| (10, 60_000)));
    steps.extend([(0, 59_000), (19, 61_000), (40, 3_600_000)]);
    let mut answers = Vec::new();
    for backend in &stores {
        let store = make_store(backend, open_limits()).await;
        let mut got = Vec::new();
        for &(floor, at) in &steps {
            got.push(store.budget_take(rate, floor, t0 + at).await.unwrap());
        }
        let lease = [
            store.lease("pl:x", "a", 1_000, t0).await.unwrap(),
            store.lease("pl:x", "b", 1_000, t0).await.unwrap(),
            store.lease("pl:x", "a", 1_000, t0).await.unwrap(),
        ];
        assert_eq!(lease, [true, false, true], "{backend:?}");
        assert_eq!(store.shared_get("dl:x", t0).await.unwrap(), None);
        store
            .shared_put("dl:x", "https://l", 60_000, t0)
            .await
            .unwrap();
        assert_eq!(
            store.shared_get("dl:x", t0).await.unwrap().as_deref(),
            Some("https://l")
        );
        answers.push(got);
    }
    let first = &answers[0];
    assert_eq!(first.iter().filter(|a| a.is_ok()).count(), 34, "{first:?}");
    assert_eq!(first[18..26].iter().filter(|a| a.is_ok()).count(), 5);
    assert_eq!(first[26], Err(60), "{first:?}");
    for other in &answers[1..] {
        assert_eq!(other, first, "Redis and memory agree");
    }
}

/// Checks beyond the budget (1 call a second, burst 1) wait at most 3 s for a
/// token, then get a JSON 503 with `Retry-After`; Bakong sees no more than the
/// budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_beyond_the_budget_get_503_with_retry_after_with_both_stores() {
    let (_redis, stores) = backends();
    for backend in stores {
        let (seen, base) = counting_bakong().await;
        let mut cfg = config(&base);
        cfg.bakong_calls_per_sec = 1;
        cfg.bakong_burst = 1;
        let srv = start_server(
            cfg,
            ServeConfig::default(),
            make_store(&backend, open_limits()).await,
        )
        .await;
        let c = client(Some("127.0.0.3"));
        // Ten accounts, so that no two creates in one millisecond share a QR.
        let mut trans = Vec::new();
        for i in 0..10 {
            let id = format!("merchant{i}@abaa");
            trans.push((create(&c, &srv.base, &id, None).await.0, id));
        }
        let started = Instant::now();
        let mut checks = tokio::task::JoinSet::new();
        for (tran, id) in trans {
            let url = format!("{}/khqr/check/{tran}?bakongid={id}", srv.base);
            checks.spawn(async move { get(&client(Some("127.0.0.3")), &url).await });
        }
        let (mut ok, mut refused) = (0, 0);
        while let Some(a) = checks.join_next().await {
            let a = a.unwrap();
            match a.status {
                200 => ok += 1,
                503 => {
                    assert_eq!(a.json()["error"], "upstream_budget", "{backend:?}");
                    assert!(a.header("retry-after").is_some(), "{backend:?}");
                    refused += 1;
                }
                s => panic!("{backend:?}: {s} {}", a.text()),
            }
        }
        let took = started.elapsed();
        eprintln!("{backend:?}: {ok} answered, {refused} refused in {took:?}");
        assert!(took < Duration::from_secs(5), "{backend:?}: {took:?}");
        // 1 token at once, then 1 a second for at most 3 s (+1 for timing).
        assert!((1..=5).contains(&ok), "{backend:?}: {ok} answered");
        assert_eq!(ok + refused, 10);
        assert_eq!(seen.checks.load(Ordering::SeqCst), ok, "{backend:?}");
        srv.stop().await;
    }
}
