//! `kill -9` of the server binary in the middle of a webhook delivery, then
//! a restart: on the SQLite store (same data directory) and on Redis (the
//! Redis server stays up). QRs created before the kill are still there, the
//! owed event is delivered, and a receiver that answered 2xx gets it exactly
//! once (counted per `Idempotency-Key`). Everything on 127.0.0.1; every wait
//! bounded.
//!
//! The owed event is filed as an instance files one (the event, then its
//! outbox row) by this process on the server's store, as if the instance
//! that emitted it died at once: the running server takes it up from the
//! outbox.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::now_ms;
use common::{client, fake_bakong, get, make_store, Backend, Redis, TempDir, TOKEN};
use khqr_server::ledger::{event_id, DeliveryState, Event, EventKind, EventLog};
use khqr_server::store::AnyStore;

/// What the webhook receiver saw: (`KHQR-Attempt`, `Idempotency-Key`, body),
/// and how many times it answered 2xx per `Idempotency-Key`.
#[derive(Default)]
struct Receiver {
    seen: Mutex<Vec<(String, String, String)>>,
    answered: Mutex<HashMap<String, usize>>,
    /// Hold the next request open without answering (once).
    hold_next: AtomicBool,
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let key = h("idempotency-key");
    r.seen
        .lock()
        .unwrap()
        .push((h("khqr-attempt"), key.clone(), body));
    if r.hold_next.swap(false, Ordering::SeqCst) {
        // Longer than the test: the server is killed meanwhile.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    *r.answered.lock().unwrap().entry(key).or_insert(0) += 1;
    StatusCode::OK
}

async fn receiver() -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, format!("http://{addr}/hook"))
}

/// The server binary, killed with SIGKILL on drop if still running.
struct Binary {
    child: Child,
    base: String,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    /// `kill -9`.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The `--store …` arguments of `backend`.
fn store_args(backend: &Backend) -> Vec<std::ffi::OsString> {
    match backend {
        Backend::Sqlite(dir) => vec![
            "--store".into(),
            "sqlite".into(),
            "--data-dir".into(),
            dir.into(),
        ],
        Backend::Redis(url) => vec!["--store".into(), url.into()],
        Backend::Memory => vec!["--store".into(), "memory".into()],
    }
}

/// Starts `khqr-server` on `backend`, against the fake Bakong at `bakong`,
/// and waits (at most 10 s) until it answers.
async fn start(backend: &Backend, bakong: &str) -> Binary {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_khqr-server"))
        .env_clear()
        .env("BAKONG_TOKEN", TOKEN)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(store_args(backend))
        .args(["--bakong-url", bakong])
        .args(["--callback-allow-private", "--callback-allow-http"])
        .args(["--poll-interval-ms", "100", "--upstream-timeout-ms", "1500"])
        .args(["--webhook-backoff-ms", "100"])
        .args(["--rate-per-client", "0", "--rate-per-account", "0"])
        .args(["--log", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let bin = Binary {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let c = client(None);
    for _ in 0..100 {
        if let Ok(r) = c.get(format!("{}/healthz", bin.base)).send().await {
            if r.status() == 200 {
                return bin;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("khqr-server did not answer within 10 s");
}

/// Waits up to `secs` for `f` to hold, polling every 100 ms.
async fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..secs * 10 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {secs} s: {what}");
}

/// `khqr-server --store … merchant add shop …`, run while the server runs:
/// the merchant's API key.
async fn add_merchant(backend: &Backend) -> String {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_khqr-server"))
        .env_clear()
        .args(store_args(backend))
        .args([
            "merchant",
            "add",
            "shop",
            "--name",
            "Shop",
            "--bakongid",
            "shop@abaa",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), cmd)
        .await
        .expect("the command ends within 20 s")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["key"].as_str().unwrap().to_owned()
}

/// Another process's view of the database (opened while the server runs).
fn db(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join("khqr.sqlite3")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn delivery_row(dir: &Path, key: &str) -> Option<(bool, u32)> {
    db(dir)
        .query_row(
            "SELECT done, attempts FROM deliveries WHERE md5 = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
}

fn outbox_row(dir: &Path, id: &str) -> bool {
    db(dir)
        .query_row("SELECT 1 FROM outbox WHERE id = ?1", [id], |_| Ok(()))
        .is_ok()
}

/// A `khqr.paid` event of merchant `shop` for the QR `md5`, owed to `hook`,
/// as an instance files it: the event, then its outbox row.
async fn file_owed_event(store: &AnyStore, md5: &str, hook: &str) -> Event {
    let id = event_id(EventKind::Paid, md5);
    let now = now_ms();
    let body = serde_json::json!({
        "id": id, "type": "khqr.paid", "createdMs": now, "test": false, "md5": md5,
        "tran": "TCRASH01", "bakongId": "shop@abaa", "amount": "1.25", "currency": "USD",
        "expiresMs": now + 600_000, "hash": common::HASH,
    })
    .to_string();
    let event = Event {
        id: id.clone(),
        kind: EventKind::Paid,
        merchant: "shop".into(),
        md5: md5.into(),
        tran: "TCRASH01".into(),
        created_ms: now,
        test: false,
        body,
        callback_url: Some(hook.into()),
        delivery: DeliveryState::Pending,
        attempts: 0,
    };
    assert!(store.event_put(&event, now + 86_400_000).await.unwrap());
    store.outbox_add(&id, now + 86_400_000).await.unwrap();
    event
}

/// The event as the server's store has it now.
async fn event_now(store: &AnyStore, id: &str) -> Event {
    store.event_get("shop", id).await.unwrap().unwrap()
}

/// Waits up to `secs` for the event `id` to be delivered after `attempts`.
async fn until_delivered(store: &AnyStore, id: &str, attempts: u32, secs: u64) {
    for _ in 0..secs * 10 {
        let e = event_now(store, id).await;
        if e.delivery == DeliveryState::Delivered && e.attempts == attempts {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} not delivered after {attempts} attempts within {secs} s");
}

/// Before the kill: one event owed (its first attempt held open by the
/// receiver), one plain QR. `kill -9`; restart: the QR is there, the event
/// is delivered (attempt 2, same id and body), and the receiver answered 2xx
/// for it once.
async fn kill9_mid_delivery(backend: &Backend) -> (Event, Arc<Receiver>, String) {
    let fake = fake_bakong().await;
    let (recv, hook_url) = receiver().await;
    recv.hold_next.store(true, Ordering::SeqCst);
    let c = client(None);
    let store = make_store(backend, common::open_limits()).await;

    let a = start(backend, &fake.base).await;
    let _key = add_merchant(backend).await;
    let (plain, _) = common::create(&c, &a.base, "free@abaa").await;
    let md5 = format!("{:032x}", now_ms());
    let event = file_owed_event(&store, &md5, &hook_url).await;

    // The server takes it up from the outbox; the receiver holds the first
    // attempt open: kill -9.
    until(10, "the first attempt", || {
        !recv.seen.lock().unwrap().is_empty()
    })
    .await;
    a.kill9();
    assert_eq!(recv.seen.lock().unwrap().len(), 1);
    let e = event_now(&store, &event.id).await;
    assert_eq!(
        (e.delivery, e.attempts),
        (DeliveryState::Pending, 1),
        "{backend:?}"
    );

    // Restart: the QR is there, the event is delivered.
    let b = start(backend, &fake.base).await;
    let png = get(&c, &format!("{}/khqr/qr/{plain}", b.base)).await;
    assert_eq!(png.status, 200, "{backend:?}: QR {plain} survived the kill");
    assert_eq!(png.content_type, "image/png");
    until(20, "the second attempt", || {
        recv.seen.lock().unwrap().len() >= 2
    })
    .await;
    until_delivered(&store, &event.id, 2, 10).await;
    {
        let seen = recv.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[0].0.as_str(), seen[1].0.as_str()), ("1", "2"));
        assert!(
            seen.iter().all(|s| s.1 == event.id),
            "keyed by the event id"
        );
        assert!(
            seen.iter().all(|s| s.2 == event.body),
            "the stored body both times"
        );
    }
    assert_eq!(
        recv.answered.lock().unwrap().get(&event.id).copied(),
        Some(1),
        "{backend:?}: answered 2xx once"
    );
    b.kill9();
    (event, recv, fake.base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_delivery_then_restart_delivers_once_sqlite() {
    let dir = TempDir::new("crash");
    let backend = Backend::Sqlite(dir.path.clone());
    let (event, recv, bakong) = kill9_mid_delivery(&backend).await;
    assert_eq!(delivery_row(&dir.path, &event.id), Some((true, 2)));
    assert!(
        !outbox_row(&dir.path, &event.id),
        "delivered: off the outbox"
    );

    // The event listed as owed once more (as if the crash fell between
    // recording the 2xx and unlisting it): the restarted server takes it
    // up, finds it delivered, unlists it, and sends nothing.
    db(&dir.path)
        .execute(
            "INSERT INTO outbox(id, until_ms) VALUES (?1, ?2)",
            rusqlite::params![event.id, i64::MAX],
        )
        .unwrap();
    let c3 = start(&backend, &bakong).await;
    until(15, "the owed event taken up again", || {
        !outbox_row(&dir.path, &event.id)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        recv.seen.lock().unwrap().len(),
        2,
        "a receiver that answered 2xx gets the event once"
    );
    c3.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_delivery_then_restart_delivers_once_redis() {
    let redis = Redis::start();
    let backend = Backend::Redis(redis.url.clone());
    let (event, recv, bakong) = kill9_mid_delivery(&backend).await;
    // Listed as owed again: taken up, found delivered, nothing sent.
    let store = make_store(&backend, common::open_limits()).await;
    store.outbox_add(&event.id, u64::MAX / 2).await.unwrap();
    let c3 = start(&backend, &bakong).await;
    for _ in 0..150 {
        if store.outbox_list(now_ms(), 10).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.outbox_list(now_ms(), 10).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recv.seen.lock().unwrap().len(), 2, "delivered once");
    c3.kill9();
}
