//! `kill -9` of the server binary on the SQLite store, then a restart on the
//! same data directory: QRs created before the kill are still there, a webhook
//! whose delivery was cut off is delivered, and a receiver that answered 2xx
//! never gets it twice. Everything on 127.0.0.1; every wait bounded.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::{client, fake_bakong, get, TempDir, TOKEN};

/// What the webhook receiver saw: (`KHQR-Attempt`, `Idempotency-Key`, body).
#[derive(Default)]
struct Receiver {
    seen: Mutex<Vec<(String, String, String)>>,
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
    r.seen
        .lock()
        .unwrap()
        .push((h("khqr-attempt"), h("idempotency-key"), body));
    if r.hold_next.swap(false, Ordering::SeqCst) {
        // Longer than the test: the server is killed meanwhile.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
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

/// Starts `khqr-server` on the SQLite store in `dir`, against the fake
/// Bakong at `bakong`, and waits (at most 10 s) until it answers.
async fn start(dir: &Path, bakong: &str) -> Binary {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_khqr-server"))
        .env_clear()
        .env("BAKONG_TOKEN", TOKEN)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--store", "sqlite", "--data-dir"])
        .arg(dir)
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

/// `khqr-server --store sqlite --data-dir <dir> merchant add shop …`, run
/// while the server has the file open: the merchant's API key.
async fn add_merchant(dir: &Path) -> String {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_khqr-server"))
        .env_clear()
        .args(["--store", "sqlite", "--data-dir"])
        .arg(dir)
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

fn delivery_row(dir: &Path, md5: &str) -> Option<(bool, u32)> {
    db(dir)
        .query_row(
            "SELECT done, attempts FROM deliveries WHERE md5 = ?1",
            [md5],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
}

fn watched(dir: &Path, tran: &str) -> bool {
    db(dir)
        .query_row("SELECT 1 FROM watched WHERE tran = ?1", [tran], |_| Ok(()))
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_delivery_then_restart_delivers_once() {
    let dir = TempDir::new("crash");
    let fake = fake_bakong().await;
    let (recv, hook_url) = receiver().await;
    recv.hold_next.store(true, Ordering::SeqCst);
    let c = client(None);

    // Before the crash: one QR owed a webhook, one plain QR.
    let a = start(&dir.path, &fake.base).await;
    let key = add_merchant(&dir.path).await;
    let created = common::send(
        c.get(format!(
            "{}/khqr/create?amount=1.25&bakongid=shop@abaa&merchantname=Shop&callback_url={hook_url}",
            a.base
        ))
        .bearer_auth(&key),
    )
    .await
    .json();
    let (tran, md5) = (
        created["tran"].as_str().unwrap().to_owned(),
        created["md5"].as_str().unwrap().to_owned(),
    );
    let plain = common::send(
        c.get(format!(
            "{}/khqr/create?amount=2&bakongid=shop@abaa&merchantname=Shop",
            a.base
        ))
        .bearer_auth(&key),
    )
    .await
    .json()["tran"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.state
        .paid
        .lock()
        .unwrap()
        .insert(md5.clone(), ("1.25".into(), "USD".into()));

    // The first attempt reaches the receiver, which holds it open: kill -9.
    until(10, "the first attempt", || {
        !recv.seen.lock().unwrap().is_empty()
    })
    .await;
    a.kill9();
    assert_eq!(recv.seen.lock().unwrap().len(), 1);
    assert_eq!(delivery_row(&dir.path, &md5).map(|r| r.0), Some(false));

    // Restart on the same directory: the QRs are there, the event is delivered.
    let b = start(&dir.path, &fake.base).await;
    for t in [&tran, &plain] {
        let png = get(&c, &format!("{}/khqr/qr/{t}", b.base)).await;
        assert_eq!(png.status, 200, "QR {t} survived the kill");
        assert_eq!(png.content_type, "image/png");
    }
    assert_eq!(
        get(&c, &format!("{}/khqr/qr/NOSUCHTRAN", b.base))
            .await
            .status,
        404
    );
    until(20, "the second attempt", || {
        recv.seen.lock().unwrap().len() >= 2
    })
    .await;
    until(10, "the delivery recorded done", || {
        delivery_row(&dir.path, &md5) == Some((true, 2))
    })
    .await;
    {
        let seen = recv.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[0].0.as_str(), seen[1].0.as_str()), ("1", "2"));
        assert!(seen.iter().all(|s| s.1 == md5));
        assert_eq!(seen[0].2, seen[1].2, "the same event both times");
        assert!(seen[1].2.contains(r#""type":"khqr.paid""#), "{}", seen[1].2);
        assert!(seen[1].2.contains(&tran));
    }
    until(10, "the QR unlisted", || !watched(&dir.path, &tran)).await;

    // kill -9 again, with the QR listed as owed once more (as if the crash
    // fell between recording the 2xx and unlisting it): the restarted server
    // takes it up, finds it delivered, and sends nothing.
    b.kill9();
    db(&dir.path)
        .execute(
            "INSERT INTO watched(tran, until_ms) VALUES (?1, ?2)",
            rusqlite::params![tran, i64::MAX],
        )
        .unwrap();
    let c3 = start(&dir.path, &fake.base).await;
    until(15, "the owed QR taken up again", || {
        !watched(&dir.path, &tran)
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
