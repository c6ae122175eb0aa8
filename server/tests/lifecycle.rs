//! Issue 19, items 3, 4 and 7: a merchant QR's life after create (paid,
//! expired, paid late), the reconciliation job, and test mode. Every case
//! runs on memory, SQLite and Redis (a real `redis-server` on loopback) with
//! the fake Bakong on loopback; every wait is bounded in count and time.

#![allow(clippy::missing_panics_doc)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::now_ms;
use common::{
    client, config_for, fake_bakong, make_store, open_limits, start_app, Backend, Fake, Redis,
    Server, TempDir,
};
use khqr_server::ledger::{Entry, EntryLog, Event, EventFilter, EventKind, EventLog, QrStatus};
use khqr_server::merchant::{key_hash, Merchant, MerchantStore, WebhookSecret};
use khqr_server::store::AnyStore;
use khqr_server::{App, Config, ServeConfig};
use serde_json::Value;

/// The live key of the merchant `shop` (holding `shop@abaa`).
const KEY: &str = "khqr_sk_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// The test key of `shop`.
const TEST_KEY: &str = "khqr_sk_7e57000000000000000000000000000000000000000000000000000000000001";
/// The live key of the merchant `other` (holding `other@abaa`).
const OTHER_KEY: &str = "khqr_sk_0000000000000000000000000000000000000000000000000000000000000b0b";
/// The test key of `other`.
const OTHER_TEST_KEY: &str =
    "khqr_sk_7e570000000000000000000000000000000000000000000000000000000000b0";

fn merchant(id: &str, bakong_id: &str, key: &str, test_key: &str) -> Merchant {
    Merchant {
        id: id.into(),
        name: id.into(),
        bakong_ids: vec![bakong_id.into()],
        key_hashes: vec![key_hash(key)],
        test_key_hashes: vec![key_hash(test_key)],
        secrets: vec![WebhookSecret {
            value: format!("whsec_{id}-0123456789abcdef"),
            until_ms: None,
        }],
        disabled: false,
        created_ms: 0,
    }
}

/// The store of `backend` with the merchants `shop` and `other`.
async fn store_for(backend: &Backend) -> AnyStore {
    let store = make_store(backend, open_limits()).await;
    for m in [
        merchant("shop", "shop@abaa", KEY, TEST_KEY),
        merchant("other", "other@abaa", OTHER_KEY, OTHER_TEST_KEY),
    ] {
        store.merchant_save(&m, false).await.unwrap().unwrap();
    }
    store
}

/// A config on `fake`: QRs live 1 s, kept 1 s more, reconciled every second.
fn short_config(fake: &Fake) -> Config {
    let mut config = config_for(fake);
    config.qr_ttl_secs = 1;
    config.grace_secs = 1;
    config.reconcile_every_secs = 1;
    config.pending_cache_ms = 50;
    config.poll_interval_ms = 100;
    config
}

async fn instance(backend: &Backend, config: Config) -> (Server, Arc<App>) {
    start_app(config, ServeConfig::default(), store_for(backend).await).await
}

/// A create for `bakongid` keyed with `key`: (HTTP status, body).
async fn create_with(base: &str, key: &str, bakongid: &str) -> (u16, Value) {
    let a = common::send(
        client(None)
            .get(format!(
                "{base}/khqr/create?amount=1.25&bakongid={bakongid}&merchantname=Shop"
            ))
            .bearer_auth(key),
    )
    .await;
    let v = a.json();
    (a.status, v)
}

/// A create for `shop` keyed with `key`: (tran, md5).
async fn create(base: &str, key: &str) -> (String, String) {
    let (status, v) = create_with(base, key, "shop@abaa").await;
    assert_eq!(status, 200, "{v}");
    (
        v["tran"].as_str().unwrap().to_owned(),
        v["md5"].as_str().unwrap().to_owned(),
    )
}

/// `merchant`'s events of `kind`, oldest first.
async fn events_of(store: &AnyStore, merchant: &str, kind: EventKind) -> Vec<Event> {
    let filter = EventFilter {
        kind: Some(kind),
        ..EventFilter::default()
    };
    store
        .event_list(merchant, &filter, None, 1_000)
        .await
        .unwrap()
}

/// Waits (at most `limit`, polling every 50 ms) until `shop` has `n` events
/// of `kind`; how long it took.
async fn until_events(store: &AnyStore, kind: EventKind, n: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = events_of(store, "shop", kind).await.len();
        if got >= n {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{got} of {n} {kind} events within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pay_late(fake: &Fake, md5: &str, at_ms: u64) {
    fake.state
        .paid
        .lock()
        .unwrap()
        .insert(md5.to_owned(), ("1.25".into(), "USD".into()));
    fake.state
        .paid_at
        .lock()
        .unwrap()
        .insert(md5.to_owned(), at_ms);
}

// ---- a late payment, found by the reconciliation job ----

async fn late_payment_is_paid_late_within_one_cycle(backend: Backend) {
    let fake = fake_bakong().await;
    let (srv, app) = instance(&backend, short_config(&fake)).await;
    let (_, md5) = create(&srv.base, KEY).await;
    // Unpaid past expiry and grace: expired by the job (once).
    until_events(app.store(), EventKind::Expired, 1, Duration::from_secs(8)).await;
    let e = app.store().entry_get(&md5).await.unwrap().unwrap();
    assert_eq!(e.status, QrStatus::Expired);
    assert!(fake.state.list_calls.load(Ordering::SeqCst) >= 1);
    // Paid now, after expiry: the next cycle (every 1 s) finds it.
    let paid_at = now_ms();
    assert!(paid_at > e.expires_ms);
    pay_late(&fake, &md5, paid_at);
    let took = until_events(app.store(), EventKind::PaidLate, 1, Duration::from_secs(5)).await;
    eprintln!(
        "{}: khqr.paid_late {} ms after the payment",
        app.store_kind(),
        took.as_millis()
    );
    assert!(
        took < Duration::from_millis(2_500),
        "one cycle is 1 s: {took:?}"
    );
    let e = app.store().entry_get(&md5).await.unwrap().unwrap();
    assert_eq!(e.status, QrStatus::PaidLate);
    let p = e.payment.expect("the payment is kept");
    assert_eq!(
        (p.amount.as_str(), p.currency.as_str(), p.hash.as_str()),
        ("1.25", "USD", common::HASH)
    );
    assert_eq!(p.paid_at_ms, Some(paid_at));
    let late = events_of(app.store(), "shop", EventKind::PaidLate).await;
    assert_eq!(late.len(), 1);
    let body: Value = serde_json::from_str(&late[0].body).unwrap();
    assert_eq!(body["type"], "khqr.paid_late");
    assert_eq!(body["md5"], md5.as_str());
    assert_eq!(body["amount"], "1.25");
    assert_eq!(body["hash"], common::HASH);
    assert_eq!(body["test"], false);
    // Nothing more: still one of each after two more cycles.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(
        events_of(app.store(), "shop", EventKind::Expired)
            .await
            .len(),
        1
    );
    assert_eq!(
        events_of(app.store(), "shop", EventKind::PaidLate)
            .await
            .len(),
        1
    );
    assert!(events_of(app.store(), "shop", EventKind::Paid)
        .await
        .is_empty());
    let metrics = common::get(&client(None), &format!("{}/metrics", srv.base)).await;
    let text = metrics.text();
    assert!(
        text.contains("khqr_reconcile_late_payments_total"),
        "{text}"
    );
    assert!(text.contains("khqr_reconcile_checked_total"), "{text}");
    srv.stop().await;
}

#[tokio::test]
async fn late_payment_is_paid_late_within_one_cycle_memory() {
    late_payment_is_paid_late_within_one_cycle(Backend::Memory).await;
}

#[tokio::test]
async fn late_payment_is_paid_late_within_one_cycle_sqlite() {
    let dir = TempDir::new("life");
    late_payment_is_paid_late_within_one_cycle(Backend::Sqlite(dir.path.clone())).await;
}

#[tokio::test]
async fn late_payment_is_paid_late_within_one_cycle_redis() {
    let redis = Redis::start();
    late_payment_is_paid_late_within_one_cycle(Backend::Redis(redis.url.clone())).await;
}

// ---- unpaid: khqr.expired, once, however many instances ----

/// `instances` servers on `backend` (one store shared: SQLite's file or
/// Redis), 4 unpaid QRs created on the first: 4 `khqr.expired`, and still 4
/// after three more cycles of every instance.
async fn unpaid_expires_once(backend: Backend, instances: usize) {
    let fake = fake_bakong().await;
    let mut servers = Vec::new();
    for _ in 0..instances {
        servers.push(instance(&backend, short_config(&fake)).await);
    }
    let base = servers[0].0.base.clone();
    let mut md5s = Vec::new();
    for _ in 0..4 {
        md5s.push(create(&base, KEY).await.1);
    }
    let store = servers[0].1.store();
    until_events(store, EventKind::Expired, 4, Duration::from_secs(8)).await;
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    for (_, app) in &servers {
        let expired = events_of(app.store(), "shop", EventKind::Expired).await;
        assert_eq!(expired.len(), 4, "{}", app.store_kind());
        let mut seen: Vec<&str> = expired.iter().map(|e| e.md5.as_str()).collect();
        seen.sort_unstable();
        let mut want: Vec<&str> = md5s.iter().map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(seen, want);
    }
    for md5 in &md5s {
        let e = store.entry_get(md5).await.unwrap().unwrap();
        assert_eq!(e.status, QrStatus::Expired);
        assert!(e.payment.is_none());
    }
    for (srv, _) in servers {
        srv.stop().await;
    }
}

#[tokio::test]
async fn unpaid_expires_once_memory() {
    unpaid_expires_once(Backend::Memory, 1).await;
}

#[tokio::test]
async fn unpaid_expires_once_two_instances_sqlite() {
    let dir = TempDir::new("life");
    unpaid_expires_once(Backend::Sqlite(dir.path.clone()), 2).await;
}

#[tokio::test]
async fn unpaid_expires_once_two_instances_redis() {
    let redis = Redis::start();
    unpaid_expires_once(Backend::Redis(redis.url.clone()), 2).await;
}

/// `instances` servers on `backend` (one store shared) and 24 test payments
/// of one test QR at once, spread over them: one pays it (200), the others
/// find it paid (409); one `khqr.paid`. The record's compare-and-set, across
/// instances.
async fn racing_payments_settle_once(backend: Backend, instances: usize) {
    let fake = fake_bakong().await;
    let mut config = short_config(&fake);
    config.qr_ttl_secs = 600;
    // The merchant routes' per-client bucket (10/s, burst 40) is not what
    // this test is about.
    config.rate_admin_per_client = 0;
    let mut servers = Vec::new();
    for _ in 0..instances {
        servers.push(instance(&backend, config.clone()).await);
    }
    for round in 0..3 {
        let (tran, md5) = create(&servers[0].0.base, TEST_KEY).await;
        let mut tasks = Vec::new();
        for i in 0..24 {
            let base = servers[i % instances].0.base.clone();
            let tran = tran.clone();
            tasks.push(tokio::spawn(async move {
                test_pay(&base, &tran, Some(TEST_KEY)).await.status
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        statuses.sort_unstable();
        let mut want = vec![200];
        want.extend([409; 23]);
        assert_eq!(statuses, want, "round {round}");
        let store = servers[0].1.store();
        let paid = events_of(store, "shop", EventKind::Paid).await;
        assert_eq!(paid.len(), round + 1);
        assert_eq!(paid.iter().filter(|e| e.md5 == md5).count(), 1);
        let e = store.entry_get(&md5).await.unwrap().unwrap();
        assert_eq!(e.status, QrStatus::Paid);
    }
    for (srv, _) in servers {
        srv.stop().await;
    }
}

#[tokio::test]
async fn racing_payments_settle_once_memory() {
    racing_payments_settle_once(Backend::Memory, 1).await;
}

#[tokio::test]
async fn racing_payments_settle_once_two_instances_sqlite() {
    let dir = TempDir::new("life");
    racing_payments_settle_once(Backend::Sqlite(dir.path.clone()), 2).await;
}

#[tokio::test]
async fn racing_payments_settle_once_two_instances_redis() {
    let redis = Redis::start();
    racing_payments_settle_once(Backend::Redis(redis.url.clone()), 2).await;
}

// ---- the job's calls: lists of 50, inside the budget ----

/// The QR number `i` of `shop`, expiring at `expires_ms`.
fn entry(i: u32, expires_ms: u64, test: bool) -> Entry {
    Entry {
        md5: format!("{:032x}", 0xabc0_0000_u64 + u64::from(i)),
        tran: format!("t{i}"),
        merchant: "shop".into(),
        bakong_id: "shop@abaa".into(),
        username: "john".into(),
        amount: "1.25".into(),
        currency: "USD".into(),
        created_ms: expires_ms.saturating_sub(600_000),
        expires_ms,
        status: QrStatus::Pending,
        updated_ms: expires_ms.saturating_sub(600_000),
        payment: None,
        test,
        callback_url: None,
    }
}

/// A server on `backend` with `config` (its own job idle: every hour), its
/// store holding `live` pending QRs and `tests` test QRs of `shop`, all
/// expired ten minutes ago (past the default grace of five). Cycles are run
/// with [`App::reconcile`] at the test's clock.
async fn job(backend: &Backend, mut config: Config, live: u32, tests: u32) -> (Server, Arc<App>) {
    config.reconcile_every_secs = 3_600;
    let (srv, app) = instance(backend, config).await;
    let now = now_ms();
    for i in 0..live + tests {
        let e = entry(i, now - 600_000, i >= live);
        assert!(app.store().entry_put(&e, now + 86_400_000).await.unwrap());
    }
    (srv, app)
}

async fn lists_of_fifty(backend: Backend) {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.bakong_calls_per_sec = 1_000;
    config.bakong_burst = 1_000;
    let (srv, app) = job(&backend, config, 120, 3).await;
    let store = app.store();
    // Two of them were paid, one before expiry, one after.
    let now = now_ms();
    let paid = entry(7, 0, false).md5;
    let late = entry(99, 0, false).md5;
    pay_late(&fake, &paid, now - 700_000);
    pay_late(&fake, &late, now - 30_000);
    let c = app.reconcile(now).await.unwrap();
    assert!(c.leader && !c.stopped, "{c:?}");
    assert_eq!(fake.state.list_calls.load(Ordering::SeqCst), 3);
    let sizes: Vec<usize> = fake
        .state
        .list_seen
        .lock()
        .unwrap()
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(
        fake.state.calls.load(Ordering::SeqCst),
        0,
        "no single checks"
    );
    // Test QRs never reach Bakong; they expire unpaid all the same.
    let asked: Vec<String> = fake.state.list_seen.lock().unwrap().concat();
    for i in 120..123 {
        assert!(!asked.contains(&entry(i, 0, true).md5));
    }
    assert_eq!((c.calls, c.checked), (3, 120));
    assert_eq!((c.expired, c.paid, c.paid_late), (121, 1, 1));
    assert_eq!(
        events_of(store, "shop", EventKind::Expired).await.len(),
        121
    );
    assert_eq!(events_of(store, "shop", EventKind::Paid).await.len(), 1);
    assert_eq!(events_of(store, "shop", EventKind::PaidLate).await.len(), 1);
    assert_eq!(
        store.entry_get(&late).await.unwrap().unwrap().status,
        QrStatus::PaidLate
    );
    // The next cycle: nothing pending; the 118 live expired ones are asked
    // again (3 lists), none paid.
    let c = app.reconcile(now + 1_000).await.unwrap();
    assert_eq!((c.calls, c.checked, c.expired, c.paid_late), (3, 118, 0, 0));
    let sizes: Vec<usize> = fake.state.list_seen.lock().unwrap()[3..]
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, [50, 50, 18]);
    srv.stop().await;
}

#[tokio::test]
async fn lists_of_fifty_memory() {
    lists_of_fifty(Backend::Memory).await;
}

#[tokio::test]
async fn lists_of_fifty_sqlite() {
    let dir = TempDir::new("life");
    lists_of_fifty(Backend::Sqlite(dir.path.clone())).await;
}

#[tokio::test]
async fn lists_of_fifty_redis() {
    let redis = Redis::start();
    lists_of_fifty(Backend::Redis(redis.url.clone())).await;
}

/// A budget of 1 call a second, burst 4: the job (floor 3) makes one call
/// and stops; right after, it makes none (three tokens are left for checks,
/// watchers and deep links).
async fn inside_the_budget(backend: Backend) {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.bakong_calls_per_sec = 1;
    config.bakong_burst = 4;
    config.reconcile_batches = 20;
    let (srv, app) = job(&backend, config, 120, 0).await;
    let store = app.store();
    let now = now_ms();
    let c = app.reconcile(now).await.unwrap();
    assert!(c.stopped, "{c:?}");
    assert_eq!((c.calls, c.checked, c.expired), (1, 50, 50));
    assert_eq!(fake.state.list_calls.load(Ordering::SeqCst), 1);
    // Right away: the bucket is below the job's floor; nothing is asked.
    let c = app.reconcile(now + 1).await.unwrap();
    assert_eq!((c.calls, c.stopped), (0, true));
    assert_eq!(fake.state.list_calls.load(Ordering::SeqCst), 1);
    let pending = store
        .entry_due(QrStatus::Pending, 0, now, None, 1_000)
        .await
        .unwrap();
    assert_eq!(pending.len(), 70);
    srv.stop().await;
}

#[tokio::test]
async fn inside_the_budget_memory() {
    inside_the_budget(Backend::Memory).await;
}

#[tokio::test]
async fn inside_the_budget_sqlite() {
    let dir = TempDir::new("life");
    inside_the_budget(Backend::Sqlite(dir.path.clone())).await;
}

#[tokio::test]
async fn inside_the_budget_redis() {
    let redis = Redis::start();
    inside_the_budget(Backend::Redis(redis.url.clone())).await;
}

// ---- test mode ----

/// `POST /khqr/merchant/test/pay/{tran}` keyed with `key` (if any).
async fn test_pay(base: &str, tran: &str, key: Option<&str>) -> common::Answer {
    let req = client(None).post(format!("{base}/khqr/merchant/test/pay/{tran}"));
    common::send(match key {
        Some(k) => req.bearer_auth(k),
        None => req,
    })
    .await
}

async fn check(base: &str, tran: &str, key: Option<&str>) -> Value {
    let req = client(None).get(format!("{base}/khqr/check/{tran}?bakongid=shop@abaa"));
    let a = common::send(match key {
        Some(k) => req.bearer_auth(k),
        None => req,
    })
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    a.json()
}

/// Who reaches the test route for `tran` (a test QR of `shop`): its
/// merchant's test key only; every other caller learns nothing.
async fn only_the_test_key_pays(base: &str, tran: &str) {
    let (live_tran, _) = create(base, KEY).await;
    let (status, v) = create_with(base, OTHER_TEST_KEY, "other@abaa").await;
    assert_eq!(status, 200, "{v}");
    let other_tran = v["tran"].as_str().unwrap().to_owned();
    let a = test_pay(base, tran, None).await;
    assert_eq!(a.status, 401, "{}", a.text());
    let a = test_pay(base, tran, Some(KEY)).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert_eq!(a.json()["error"], "test_key_required");
    let a = test_pay(base, tran, Some(OTHER_KEY)).await;
    assert_eq!(a.status, 403, "{}", a.text());
    let a = test_pay(base, tran, Some(OTHER_TEST_KEY)).await;
    assert_eq!(a.status, 404, "another merchant's test key: {}", a.text());
    let a = test_pay(base, &live_tran, Some(TEST_KEY)).await;
    assert_eq!(a.status, 404, "a live QR: {}", a.text());
    let a = test_pay(base, &other_tran, Some(TEST_KEY)).await;
    assert_eq!(a.status, 404, "another merchant's test QR: {}", a.text());
    let a = test_pay(base, "0000000000000000", Some(TEST_KEY)).await;
    assert_eq!(a.status, 404, "no QR: {}", a.text());
    let bad = "khqr_sk_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    assert_eq!(test_pay(base, tran, Some(bad)).await.status, 401);
}

async fn test_mode(backend: Backend) {
    let fake = fake_bakong().await;
    let mut config = short_config(&fake);
    config.qr_ttl_secs = 600;
    let (srv, app) = instance(&backend, config).await;
    let base = srv.base.clone();
    let (tran, md5) = create(&base, TEST_KEY).await;
    let e = app.store().entry_get(&md5).await.unwrap().unwrap();
    assert!(e.test);
    // Its checks never call Bakong, keyed or not: pending.
    for key in [Some(TEST_KEY), Some(KEY), None] {
        let v = check(&base, &tran, key).await;
        assert_eq!(v["responseCode"], 1, "{v}");
    }
    assert_eq!(fake.state.calls.load(Ordering::SeqCst), 0);
    // Who may pay it: its merchant's test key only.
    only_the_test_key_pays(&base, &tran).await;
    assert!(events_of(app.store(), "shop", EventKind::Paid)
        .await
        .is_empty());
    // The checkout page watches it (never asking Bakong either).
    let mut stream = client(None)
        .get(format!("{base}/khqr/events/{tran}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // Paid with the test key.
    let a = test_pay(&base, &tran, Some(TEST_KEY)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["status"], "paid");
    assert_eq!(v["test"], true);
    assert_eq!(v["payment"]["amount"], "1.25");
    assert_eq!(v["payment"]["currency"], "USD");
    let hash = v["payment"]["hash"].as_str().unwrap().to_owned();
    assert!(hash.starts_with("test_") && hash.len() == 69, "{hash}");
    // The page shows paid.
    let mut text = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the page's stream ends once paid: {text}");
    assert!(
        text.contains(r#""status":"paid","amount":"1.25","currency":"USD""#),
        "{text}"
    );
    // Checks say paid, with the test payment's hash.
    let v = check(&base, &tran, None).await;
    assert_eq!(v["responseCode"], 0, "{v}");
    assert_eq!(v["data"]["hash"], hash.as_str(), "{v}");
    assert_eq!(fake.state.calls.load(Ordering::SeqCst), 0);
    assert_eq!(fake.state.list_calls.load(Ordering::SeqCst), 0);
    // One event, a test one.
    let paid = events_of(app.store(), "shop", EventKind::Paid).await;
    assert_eq!(paid.len(), 1);
    assert!(paid[0].test);
    let body: Value = serde_json::from_str(&paid[0].body).unwrap();
    assert_eq!(body["test"], true);
    assert_eq!(body["hash"], hash.as_str());
    assert_eq!(body["tran"], tran.as_str());
    // Paid once.
    let a = test_pay(&base, &tran, Some(TEST_KEY)).await;
    assert_eq!(a.status, 409, "{}", a.text());
    assert_eq!(
        events_of(app.store(), "shop", EventKind::Paid).await.len(),
        1
    );
    srv.stop().await;
}

#[tokio::test]
async fn test_mode_memory() {
    test_mode(Backend::Memory).await;
}

#[tokio::test]
async fn test_mode_sqlite() {
    let dir = TempDir::new("life");
    test_mode(Backend::Sqlite(dir.path.clone())).await;
}

#[tokio::test]
async fn test_mode_redis() {
    let redis = Redis::start();
    test_mode(Backend::Redis(redis.url.clone())).await;
}

/// A test QR paid after it expired (within grace): `khqr.paid_late`, a test
/// event; an unpaid one expires (after grace) without a call to Bakong.
async fn test_mode_late_and_expired(backend: Backend) {
    let fake = fake_bakong().await;
    let mut config = short_config(&fake);
    config.grace_secs = 2;
    let (srv, app) = instance(&backend, config).await;
    let (tran, md5) = create(&srv.base, TEST_KEY).await;
    let (_, unpaid) = create(&srv.base, TEST_KEY).await;
    let deadline = app
        .store()
        .entry_get(&md5)
        .await
        .unwrap()
        .unwrap()
        .expires_ms;
    for _ in 0..40 {
        if now_ms() > deadline + 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = test_pay(&srv.base, &tran, Some(TEST_KEY)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["status"], "paid_late");
    let late = events_of(app.store(), "shop", EventKind::PaidLate).await;
    assert_eq!(late.len(), 1);
    assert!(late[0].test);
    assert_eq!(late[0].md5, md5);
    // The other, unpaid past grace: expired by the job, never asked of Bakong.
    until_events(app.store(), EventKind::Expired, 1, Duration::from_secs(8)).await;
    let expired = events_of(app.store(), "shop", EventKind::Expired).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].md5, unpaid);
    assert!(expired[0].test);
    assert_eq!(fake.state.list_calls.load(Ordering::SeqCst), 0);
    assert_eq!(fake.state.calls.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn test_mode_late_and_expired_memory() {
    test_mode_late_and_expired(Backend::Memory).await;
}

#[tokio::test]
async fn test_mode_late_and_expired_sqlite() {
    let dir = TempDir::new("life");
    test_mode_late_and_expired(Backend::Sqlite(dir.path.clone())).await;
}

#[tokio::test]
async fn test_mode_late_and_expired_redis() {
    let redis = Redis::start();
    test_mode_late_and_expired(Backend::Redis(redis.url.clone())).await;
}

/// What a webhook receiver on 127.0.0.1 got: each delivery's headers and body.
type Deliveries = Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>;

/// A receiver on 127.0.0.1 answering 204 to every delivery; its URL.
async fn receiver() -> (Deliveries, String) {
    let seen: Deliveries = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Deliveries>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    s.lock().unwrap().push((headers, body));
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, format!("http://{addr}/hook"))
}

/// A test QR with a `callback_url`, paid through the test route: the
/// receiver gets `khqr.paid` saying `"test": true`, signed with the
/// merchant's secret.
async fn test_event_is_delivered_signed(backend: Backend) {
    use bakong_khqr::webhook::{verify_webhook_signature, SIGNATURE_HEADER};
    let fake = fake_bakong().await;
    let mut config = short_config(&fake);
    config.qr_ttl_secs = 600;
    config.callback_allow_private = true;
    config.callback_allow_http = true;
    config.webhook_backoff_ms = 50;
    let (srv, _app) = instance(&backend, config).await;
    let (seen, hook) = receiver().await;
    let a = common::send(
        client(None)
            .get(format!("{}/khqr/create", srv.base))
            .query(&[
                ("amount", "1.25"),
                ("bakongid", "shop@abaa"),
                ("merchantname", "Shop"),
                ("callback_url", hook.as_str()),
            ])
            .bearer_auth(TEST_KEY),
    )
    .await;
    let v = a.json();
    assert_eq!(a.status, 200, "{v}");
    let tran = v["tran"].as_str().unwrap().to_owned();
    let a = test_pay(&srv.base, &tran, Some(TEST_KEY)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let paid = |s: &Deliveries| {
        s.lock().unwrap().iter().find_map(|(h, b)| {
            let v: Value = serde_json::from_slice(b).ok()?;
            (v["type"] == "khqr.paid").then(|| (h.clone(), b.clone(), v))
        })
    };
    let started = Instant::now();
    let (headers, body, event) = loop {
        if let Some(d) = paid(&seen) {
            break d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no khqr.paid within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event["test"], true);
    assert_eq!(event["tran"], tran.as_str());
    assert!(event["hash"].as_str().unwrap().starts_with("test_"));
    let sig = headers[SIGNATURE_HEADER].to_str().unwrap();
    let secret = merchant("shop", "shop@abaa", KEY, TEST_KEY).secrets[0]
        .value
        .clone();
    verify_webhook_signature(secret.as_bytes(), sig, &body, now_ms()).expect("signed");
    assert_eq!(fake.state.calls.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn test_event_is_delivered_signed_memory() {
    test_event_is_delivered_signed(Backend::Memory).await;
}

#[tokio::test]
async fn test_event_is_delivered_signed_sqlite() {
    let dir = TempDir::new("life");
    test_event_is_delivered_signed(Backend::Sqlite(dir.path.clone())).await;
}

#[tokio::test]
async fn test_event_is_delivered_signed_redis() {
    let redis = Redis::start();
    test_event_is_delivered_signed(Backend::Redis(redis.url.clone())).await;
}
