//! Events with stable ids, their log, deliveries and replays (issue 19,
//! item 3), on the memory, SQLite and Redis stores, with a webhook receiver
//! on 127.0.0.1. Every wait is bounded in count and time.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bakong_khqr::webhook::{verify_webhook_signature, WebhookError, SIGNATURE_HEADER};
use common::now_ms;
use common::{backends, client, config_for, fake_bakong, make_store, start_app, Answer, Backend};
use khqr_server::ledger::{event_id, Entry, Event, EventKind, EventLog, Payment, QrStatus};
use khqr_server::merchant::{run, MerchantCommand};
use khqr_server::{App, ServeConfig};
use serde_json::Value;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    idempotency_key: String,
    event_id: String,
    attempt: String,
    signature: String,
    body: Bytes,
}

/// The receiver: what it got; it answers 500 to the next `fail_next`
/// requests, holds requests (at most 5 s) while `hold` is set, 204 otherwise.
#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Got>>,
    fail_next: AtomicUsize,
    hold: AtomicBool,
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    r.got.lock().unwrap().push(Got {
        idempotency_key: h("idempotency-key"),
        event_id: h("khqr-event-id"),
        attempt: h("khqr-attempt"),
        signature: h(SIGNATURE_HEADER),
        body,
    });
    for _ in 0..50 {
        if !r.hold.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fail = r
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn receiver() -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, format!("http://{addr}/hook"))
}

impl Receiver {
    /// What it got for event `id`, waiting (at most 10 s) until there are `n`.
    async fn wait_for(&self, id: &str, n: usize) -> Vec<Got> {
        let started = Instant::now();
        loop {
            let got: Vec<Got> = self
                .got
                .lock()
                .unwrap()
                .iter()
                .filter(|g| g.event_id == id)
                .cloned()
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{id}: {} of {n} deliveries within 10 s",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn entry(merchant: &str, n: u32, callback: Option<&str>, at: u64) -> Entry {
    Entry {
        md5: format!("{n:032x}"),
        tran: format!("T{n:07}"),
        merchant: merchant.into(),
        bakong_id: "shop@abaa".into(),
        username: "john".into(),
        amount: "2.50".into(),
        currency: "USD".into(),
        created_ms: at,
        expires_ms: at + 600_000,
        status: QrStatus::Pending,
        updated_ms: at,
        payment: None,
        test: false,
        callback_url: callback.map(str::to_owned),
    }
}

fn paid(mut e: Entry) -> Entry {
    e.status = QrStatus::Paid;
    e.payment = Some(Payment {
        amount: "2.5".into(),
        currency: "USD".into(),
        paid_at_ms: Some(1_700_000_001_000),
        hash: common::HASH.into(),
        from_account_id: Some("payer@abaa".into()),
    });
    e
}

/// Emits `kind` of `e` at `at` as the lifecycle does: the filed event.
async fn emit(app: &App, kind: EventKind, e: &Entry, at: u64) -> Event {
    app.events()
        .emit(kind, e, at)
        .await
        .unwrap()
        .expect("filed once")
}

struct Setup {
    server: common::Server,
    app: Arc<App>,
    key: String,
    secret: String,
    other_key: String,
    other_secret: String,
    recv: Arc<Receiver>,
    hook: String,
}

async fn setup(backend: &Backend) -> Setup {
    setup_with(backend, 86_400).await
}

/// [`setup`] with webhooks given up after `retry_secs`.
async fn setup_with(backend: &Backend, retry_secs: u64) -> Setup {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.webhook_retry_secs = retry_secs;
    config.webhook_backoff_ms = 50;
    config.upstream_timeout_ms = 2_000;
    config.callback_allow_private = true;
    config.callback_allow_http = true;
    let store = make_store(backend, config.limits()).await;
    let (server, app) = start_app(config, ServeConfig::default(), store).await;
    let add = |id: &str, b: &str| MerchantCommand::Add {
        id: id.into(),
        name: format!("Shop {id}"),
        bakong_ids: vec![b.into()],
    };
    let shop = run(app.store(), &add("shop", "shop@abaa"), now_ms())
        .await
        .unwrap();
    let other = run(app.store(), &add("other", "other@abaa"), now_ms())
        .await
        .unwrap();
    let s = |v: &Value, f: &str| v[f].as_str().unwrap().to_owned();
    let (recv, hook) = receiver().await;
    Setup {
        server,
        key: s(&shop, "key"),
        secret: s(&shop, "secret"),
        other_key: s(&other, "key"),
        other_secret: s(&other, "secret"),
        app,
        recv,
        hook,
    }
}

async fn call(method: &str, url: &str, key: Option<&str>) -> Answer {
    let c = client(None);
    let req = if method == "POST" {
        c.post(url)
    } else {
        c.get(url)
    };
    common::send(match key {
        Some(k) => req.bearer_auth(k),
        None => req,
    })
    .await
}

/// Waits (at most 10 s) until event `id` shows `state` with `attempts`.
async fn until_state(s: &Setup, id: &str, state: &str, attempts: u64) -> Value {
    let started = Instant::now();
    loop {
        let a = call(
            "GET",
            &format!("{}/khqr/merchant/events/{id}", s.server.base),
            Some(&s.key),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text());
        let v = a.json();
        if v["delivery"] == state && v["attempts"] == attempts {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{id}: not {state} after {attempts} attempts within 10 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Delivery by event id, signed; failures retried and logged; one merchant's
/// events hidden from another; replays send the same id and body again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_delivered_logged_and_replayed_on_every_store() {
    let (_stores, list) = backends();
    for backend in list {
        let s = setup(&backend).await;
        let base = s.server.base.clone();
        let t0 = now_ms();

        // khqr.created with ans callback: delivered once, signed, keyed by id.
        let e1 = entry("shop", 1, Some(&s.hook), t0);
        let created = emit(&s.app, EventKind::Created, &e1, t0).await;
        assert_eq!(created.id, event_id(EventKind::Created, &e1.md5));
        assert!(s
            .app
            .events()
            .emit(EventKind::Created, &e1, t0)
            .await
            .unwrap()
            .is_none());
        let got = s.recv.wait_for(&created.id, 1).await;
        let first = &got[0];
        assert_eq!(first.idempotency_key, created.id, "{backend:?}");
        assert_eq!(first.attempt, "1");
        assert_eq!(
            &first.body[..],
            created.body.as_bytes(),
            "the stored body, byte for byte"
        );
        assert!(verify_webhook_signature(
            s.secret.as_bytes(),
            &first.signature,
            &first.body,
            now_ms()
        )
        .is_ok());
        assert_eq!(
            verify_webhook_signature(
                s.other_secret.as_bytes(),
                &first.signature,
                &first.body,
                now_ms()
            ),
            Err(WebhookError::Mismatch)
        );
        let body: Value = serde_json::from_slice(&first.body).unwrap();
        assert_eq!(body["id"], created.id.as_str());
        assert_eq!(body["type"], "khqr.created");
        assert_eq!(body["md5"], e1.md5.as_str());
        assert_eq!(body["amount"], "2.50");
        let v = until_state(&s, &created.id, "delivered", 1).await;
        assert_eq!(v["type"], "khqr.created");
        assert_eq!(v["md5"], e1.md5.as_str());
        assert_eq!(v["tran"], e1.tran.as_str());
        assert_eq!(v["test"], false);
        assert_eq!(v["data"], body, "data is the body, parsed");
        assert!(v["createdAt"].as_str().unwrap().ends_with('Z'));
        let log = v["attemptLog"].as_array().unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(
            (log[0]["n"].as_u64(), log[0]["status"].as_u64()),
            (Some(1), Some(204))
        );
        assert_eq!(log[0]["ok"], true);

        // khqr.paid to ans failing receiver: 500, 500, then 204; each logged.
        s.recv.fail_next.store(2, Ordering::SeqCst);
        let e2 = paid(entry("shop", 2, Some(&s.hook), t0));
        let paid_event = emit(&s.app, EventKind::Paid, &e2, t0 + 1).await;
        let got = s.recv.wait_for(&paid_event.id, 3).await;
        let attempts: Vec<&str> = got.iter().map(|first| first.attempt.as_str()).collect();
        assert_eq!(attempts, ["1", "2", "3"], "{backend:?}");
        assert!(got
            .iter()
            .all(|first| first.body == got[0].body && first.idempotency_key == paid_event.id));
        let body: Value = serde_json::from_slice(&got[0].body).unwrap();
        assert_eq!(
            (body["type"].as_str(), body["hash"].as_str()),
            (Some("khqr.paid"), Some(common::HASH))
        );
        let v = until_state(&s, &paid_event.id, "delivered", 3).await;
        let log = v["attemptLog"].as_array().unwrap();
        let statuses: Vec<u64> = log
            .iter()
            .map(|ans| ans["status"].as_u64().unwrap())
            .collect();
        assert_eq!(statuses, [500, 500, 204], "{backend:?}");
        let oks: Vec<bool> = log.iter().map(|ans| ans["ok"].as_bool().unwrap()).collect();
        assert_eq!(oks, [false, false, true]);
        assert!(log
            .iter()
            .all(|ans| ans["durationMs"].is_u64() && ans["error"].is_null()));

        // Another merchant sees none of it and cannot replay it; the
        // anonymous get 401.
        let other_list = call(
            "GET",
            &format!("{base}/khqr/merchant/events"),
            Some(&s.other_key),
        )
        .await;
        assert_eq!(other_list.status, 200);
        assert_eq!(
            other_list.json()["data"],
            serde_json::json!([]),
            "{backend:?}"
        );
        for (m, path) in [
            ("GET", format!("/khqr/merchant/events/{}", created.id)),
            (
                "POST",
                format!("/khqr/merchant/events/{}/replay", created.id),
            ),
        ] {
            let ans = call(m, &format!("{base}{path}"), Some(&s.other_key)).await;
            assert_eq!(ans.status, 404, "{backend:?} {m} {path}: {}", ans.text());
            let ans = call(m, &format!("{base}{path}"), None).await;
            assert_eq!(ans.status, 401, "{m} {path}");
        }
        let ans = call(
            "POST",
            &format!("{base}/khqr/merchant/events/evt_000000000000000000000000/replay"),
            Some(&s.key),
        )
        .await;
        assert_eq!(ans.status, 404);
        assert_eq!(
            s.recv.wait_for(&created.id, 1).await.len(),
            1,
            "not replayed by the refusals"
        );

        // Replay of ans delivered event: the same id and body again, attempt 2.
        let ans = call(
            "POST",
            &format!("{base}/khqr/merchant/events/{}/replay", created.id),
            Some(&s.key),
        )
        .await;
        assert_eq!(ans.status, 202, "{backend:?}: {}", ans.text());
        assert_eq!(ans.json()["id"], created.id.as_str());
        assert_eq!(ans.json()["delivery"], "pending");
        let got = s.recv.wait_for(&created.id, 2).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].body, got[0].body);
        assert_eq!(got[1].idempotency_key, created.id);
        assert_eq!(got[1].attempt, "2");
        assert!(verify_webhook_signature(
            s.secret.as_bytes(),
            &got[1].signature,
            &got[1].body,
            now_ms()
        )
        .is_ok());
        until_state(&s, &created.id, "delivered", 2).await;

        // No callback_url: nothing to replay (409), state `none`.
        let e3 = entry("shop", 3, None, t0);
        let quiet = emit(&s.app, EventKind::Created, &e3, t0 + 2).await;
        let ans = call(
            "POST",
            &format!("{base}/khqr/merchant/events/{}/replay", quiet.id),
            Some(&s.key),
        )
        .await;
        assert_eq!(ans.status, 409, "{}", ans.text());
        assert_eq!(ans.json()["error"], "no_callback");
        until_state(&s, &quiet.id, "none", 0).await;

        // Replays in flight are bounded per merchant: 4, then 429.
        let mut ids = Vec::new();
        for n in 10..15 {
            let e = entry("shop", n, Some(&s.hook), t0);
            let ev = emit(&s.app, EventKind::Created, &e, t0 + 3).await;
            ids.push(ev.id);
        }
        for id in &ids {
            until_state(&s, id, "delivered", 1).await;
        }
        s.recv.hold.store(true, Ordering::SeqCst);
        let mut codes = Vec::new();
        for id in &ids {
            let ans = call(
                "POST",
                &format!("{base}/khqr/merchant/events/{id}/replay"),
                Some(&s.key),
            )
            .await;
            codes.push(ans.status);
        }
        assert_eq!(codes, [202, 202, 202, 202, 429], "{backend:?}");
        // A second replay of an event whose replay is in flight would send it
        // twice under one attempt number: 409, and nothing more is sent.
        let again = call(
            "POST",
            &format!("{base}/khqr/merchant/events/{}/replay", ids[0]),
            Some(&s.key),
        )
        .await;
        assert_eq!(again.status, 409, "{}", again.text());
        assert_eq!(again.json()["error"], "delivery_running");
        s.recv.hold.store(false, Ordering::SeqCst);
        for id in &ids[..4] {
            s.recv.wait_for(id, 2).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            s.recv.wait_for(&ids[0], 2).await.len(),
            2,
            "{backend:?}: one delivery and one replay"
        );

        // A replay is one attempt: against a failing receiver it frees its
        // slot at once, so a merchant's replays never stay refused for the
        // retry period (a day by default).
        s.recv.fail_next.store(usize::MAX, Ordering::SeqCst);
        for round in 0..3 {
            for id in &ids[..4] {
                replay_when_idle(&s, &base, id, round).await;
            }
        }
        s.recv.fail_next.store(0, Ordering::SeqCst);
        s.server.stop().await;
    }
}

/// Replays event `id`, waiting (at most 5 s) while a run of it goes on
/// (409 `delivery_running`); any other answer than 202 fails the test (429
/// `too_many_replays` would mean replay slots stay taken).
async fn replay_when_idle(s: &Setup, base: &str, id: &str, round: u32) {
    for _ in 0..100 {
        let ans = call(
            "POST",
            &format!("{base}/khqr/merchant/events/{id}/replay"),
            Some(&s.key),
        )
        .await;
        if ans.status == 202 {
            return;
        }
        assert_eq!(ans.status, 409, "round {round}: {}", ans.text());
        assert_eq!(ans.json()["error"], "delivery_running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("round {round}: {id} could not be replayed within 5 s");
}

/// Pages walk every event once, in `(created_ms, id)` order, when many share
/// one millisecond; `type`, `from` and `to` filter; bad parameters are 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_lists_page_and_filter_on_every_store() {
    let (_stores, list) = backends();
    for backend in list {
        let s = setup(&backend).await;
        let base = s.server.base.clone();
        let t0 = now_ms() - 10_000;
        let mut want: Vec<(u64, String, &str)> = Vec::new();
        for n in 0..23u32 {
            let e = entry("shop", 100 + n, None, t0);
            let at = t0 + u64::from(n / 10); // 10, 10 and 3 share one ms
            let ev = emit(&s.app, EventKind::Created, &e, at).await;
            want.push((at, ev.id, "khqr.created"));
            if n % 4 == 0 {
                let ev = emit(&s.app, EventKind::Paid, &paid(e), at).await;
                want.push((at, ev.id, "khqr.paid"));
            }
        }
        // Another merchant's event, at the same times.
        emit(
            &s.app,
            EventKind::Created,
            &entry("other", 999, None, t0),
            t0,
        )
        .await;
        want.sort();

        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..20 {
            let url = match &after {
                Some(c) => format!("{base}/khqr/merchant/events?limit=7&after={c}"),
                None => format!("{base}/khqr/merchant/events?limit=7"),
            };
            let v = call("GET", &url, Some(&s.key)).await.json();
            for e in v["data"].as_array().unwrap() {
                seen.push(e["id"].as_str().unwrap().to_owned());
            }
            match v["next"].as_str() {
                Some(n) => after = Some(n.to_owned()),
                None => break,
            }
        }
        let ids: Vec<String> = want.iter().map(|w| w.1.clone()).collect();
        assert_eq!(seen, ids, "{backend:?}: every event once, in order");

        let v = call(
            "GET",
            &format!("{base}/khqr/merchant/events?type=khqr.paid&limit=1000"),
            Some(&s.key),
        )
        .await
        .json();
        let paid_ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        let want_paid: Vec<&str> = want
            .iter()
            .filter(|w| w.2 == "khqr.paid")
            .map(|w| w.1.as_str())
            .collect();
        assert_eq!(paid_ids, want_paid, "{backend:?}");
        assert_eq!(want_paid.len(), 6);
        assert!(v["next"].is_null());

        let (from, to) = (t0 + 1, t0 + 2);
        let v = call(
            "GET",
            &format!("{base}/khqr/merchant/events?from={from}&to={to}"),
            Some(&s.key),
        )
        .await
        .json();
        let got: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        let want_mid: Vec<&str> = want
            .iter()
            .filter(|w| w.0 == t0 + 1)
            .map(|w| w.1.as_str())
            .collect();
        assert_eq!(got, want_mid, "{backend:?}: from inclusive, to exclusive");
        assert_eq!(want_mid.len(), 12);

        for bad in ["type=khqr.nope", "limit=0", "after=zzz", "from=yesterday"] {
            let a = call(
                "GET",
                &format!("{base}/khqr/merchant/events?{bad}"),
                Some(&s.key),
            )
            .await;
            assert_eq!(a.status, 400, "{bad}: {}", a.text());
        }
        s.server.stop().await;
    }
}

/// A keyed create with a `callback_url` sends `khqr.created` through the
/// HTTP path, on every store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_create_sends_khqr_created_on_every_store() {
    let (_stores, list) = backends();
    for backend in list {
        let s = setup(&backend).await;
        let base = s.server.base.clone();
        let url = format!(
            "{base}/khqr/create?amount=1.25&bakongid=shop@abaa&merchantname=Shop&callback_url={}",
            s.hook
        );
        let a = common::send(client(None).get(url).bearer_auth(&s.key)).await;
        assert_eq!(a.status, 200, "{}", a.text());
        let md5 = a.json()["md5"].as_str().unwrap().to_owned();
        let id = event_id(EventKind::Created, &md5);
        let got = s.recv.wait_for(&id, 1).await;
        assert_eq!(got[0].idempotency_key, id);
        assert!(verify_webhook_signature(
            s.secret.as_bytes(),
            &got[0].signature,
            &got[0].body,
            now_ms()
        )
        .is_ok());
        let body: Value = serde_json::from_slice(&got[0].body).unwrap();
        assert_eq!(
            (body["type"].as_str(), body["md5"].as_str()),
            (Some("khqr.created"), Some(md5.as_str()))
        );
        assert_eq!(body["amount"], "1.25");
        until_state(&s, &id, "delivered", 1).await;
        s.server.stop().await;
    }
}

/// A receiver that keeps failing: the event is given up after the retry
/// period (`failed`, off the outbox, every attempt logged with its 500);
/// a replay then delivers it, its attempts numbered on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_up_events_are_failed_then_replayed_on_every_store() {
    let (_stores, list) = backends();
    for backend in list {
        let s = setup_with(&backend, 1).await;
        s.recv.fail_next.store(usize::MAX, Ordering::SeqCst);
        let t0 = now_ms();
        let e = entry("shop", 7, Some(&s.hook), t0);
        let ev = emit(&s.app, EventKind::Created, &e, t0).await;
        let started = Instant::now();
        let v = loop {
            let v = call(
                "GET",
                &format!("{}/khqr/merchant/events/{}", s.server.base, ev.id),
                Some(&s.key),
            )
            .await
            .json();
            if v["delivery"] == "failed" {
                break v;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{backend:?}: not given up within 10 s: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let n = v["attempts"].as_u64().unwrap();
        assert!(n >= 2, "{backend:?}: retried before giving up: {v}");
        let log = v["attemptLog"].as_array().unwrap();
        assert_eq!(log.len() as u64, n);
        assert!(log.iter().all(|a| a["status"] == 500 && a["ok"] == false));
        let owed = s.app.store().outbox_list(now_ms(), 100).await.unwrap();
        assert!(
            owed.iter().all(|o| o.id != ev.id),
            "{backend:?}: off the outbox"
        );
        let sent = s.recv.wait_for(&ev.id, 1).await.len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            s.recv.wait_for(&ev.id, 1).await.len(),
            sent,
            "no attempt after giving up"
        );

        s.recv.fail_next.store(0, Ordering::SeqCst);
        let ans = call(
            "POST",
            &format!("{}/khqr/merchant/events/{}/replay", s.server.base, ev.id),
            Some(&s.key),
        )
        .await;
        assert_eq!(ans.status, 202, "{backend:?}: {}", ans.text());
        let got = s.recv.wait_for(&ev.id, sent + 1).await;
        assert_eq!(got[sent].attempt, (n + 1).to_string(), "{backend:?}");
        assert_eq!(got[sent].body, got[0].body);
        until_state(&s, &ev.id, "delivered", n + 1).await;
        s.server.stop().await;
    }
}
