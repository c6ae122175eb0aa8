//! Test harness: a real `redis-server` on a free loopback port (stopped by PID
//! on drop), a fake Bakong Open API, and the server, all on 127.0.0.1. Every
//! wait here is bounded in count and time.
#![allow(dead_code, clippy::missing_panics_doc, clippy::items_after_statements)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use khqr_server::store::{AnyStore, Limits, MemoryStore, RedisStore, SqliteStore};
use khqr_server::{Config, ServeConfig};
use serde_json::Value;

pub const HASH: &str = "5f2a8c0e4b7d9136a1c3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b";
pub const TOKEN: &str = "good.token.sig";

/// A `redis-server` child process on a free loopback port, with its own
/// empty directory and no persistence; killed by PID on drop.
pub struct Redis {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    pub url: String,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Redis {
    /// Starts one. Fails, saying how to install it, if `redis-server` is missing.
    pub fn start() -> Redis {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "redis-server not found: install it (Debian/Ubuntu: `apt-get install -y redis-server`; \
             macOS: `brew install redis`) — .ci/run does this"
        );
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "khqr-redis-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let redis = Redis {
            child,
            dir,
            port,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        for _ in 0..100 {
            if redis.ping() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {port} did not answer PING within 5 s");
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh empty directory under the system's temporary directory, removed
/// on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "khqr-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Which store a test runs with. `Sqlite` names a data directory: every
/// store made on it opens the same `khqr.sqlite3` (as every store made on one
/// Redis URL shares its data).
#[derive(Clone, Debug)]
pub enum Backend {
    Memory,
    Redis(String),
    Sqlite(PathBuf),
}

pub async fn make_store(backend: &Backend, limits: Limits) -> AnyStore {
    match backend {
        Backend::Memory => AnyStore::Memory(MemoryStore::new(limits)),
        Backend::Redis(url) => AnyStore::Redis(RedisStore::connect(url, limits).await.unwrap()),
        Backend::Sqlite(dir) => AnyStore::Sqlite(
            SqliteStore::open(&dir.join(khqr_server::store::sqlite::FILE_NAME), limits).unwrap(),
        ),
    }
}

/// Limits high enough not to matter.
pub fn open_limits() -> Limits {
    Limits {
        client_per_sec: 0,
        account_per_sec: 0,
        quota_per_client: 1_000_000,
        ..Limits::default()
    }
}

/// The fake Bakong: paid MD5s, the token it accepts, what it saw, how long it
/// waits, and where it redirects (if anywhere).
#[derive(Default)]
pub struct FakeState {
    pub paid: Mutex<HashMap<String, (String, String)>>,
    pub valid_token: Mutex<String>,
    pub seen: Mutex<Vec<(String, String, usize)>>,
    pub calls: AtomicUsize,
    pub delay_ms: AtomicU64,
    pub redirect_to: Mutex<Option<String>>,
    pub answer: Mutex<Option<(u16, String)>>,
    /// `check_transaction_by_md5_list`: calls, and the MD5s each carried.
    pub list_calls: AtomicUsize,
    pub list_seen: Mutex<Vec<Vec<String>>>,
    /// Per paid MD5, when Bakong acknowledged it (ms); unset: 1700000001000.
    pub paid_at: Mutex<HashMap<String, u64>>,
}

/// The `data` of a paid transaction of `amount` `currency` acknowledged at `at` ms.
fn fake_transaction(amount: &str, currency: &str, at: u64) -> String {
    format!(
        r#"{{"hash":"{HASH}","fromAccountId":"payer@abaa","toAccountId":"merchant@abaa","currency":"{currency}","amount":{amount},"description":"","createdDateMs":{at},"acknowledgedDateMs":{at}}}"#
    )
}

/// `check_transaction_by_md5_list`: each MD5 of the array, `SUCCESS` with
/// its transaction if paid, else `NOT_FOUND`.
async fn fake_check_md5_list(
    State(fake): State<Arc<FakeState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    fake.list_calls.fetch_add(1, Ordering::SeqCst);
    let valid = fake.valid_token.lock().unwrap().clone();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {valid}") {
        return (StatusCode::UNAUTHORIZED, r#"{"error":"token expired"}"#).into_response();
    }
    let md5s: Vec<String> = body
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    fake.list_seen.lock().unwrap().push(md5s.clone());
    let paid = fake.paid.lock().unwrap().clone();
    let paid_at = fake.paid_at.lock().unwrap().clone();
    let items: Vec<String> = md5s
        .iter()
        .map(|m| match paid.get(m) {
            Some((amount, currency)) => {
                let at = paid_at.get(m).copied().unwrap_or(1_700_000_001_000);
                format!(
                    r#"{{"md5":"{m}","status":"SUCCESS","message":null,"data":{}}}"#,
                    fake_transaction(amount, currency, at)
                )
            }
            None => format!(
                r#"{{"md5":"{m}","status":"NOT_FOUND","message":"Transaction could not be found.","data":null}}"#
            ),
        })
        .collect();
    (
        StatusCode::OK,
        format!(
            r#"{{"responseCode":0,"responseMessage":"Getting transactions successfully.","errorCode":null,"data":[{}]}}"#,
            items.join(",")
        ),
    )
        .into_response()
}

pub struct Fake {
    pub state: Arc<FakeState>,
    pub base: String,
}

async fn fake_check_md5(
    State(fake): State<Arc<FakeState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let delay = fake.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let user_agents = headers.get_all("user-agent").iter().count();
    fake.seen
        .lock()
        .unwrap()
        .push((header("user-agent"), header("authorization"), user_agents));
    if let Some(to) = fake.redirect_to.lock().unwrap().clone() {
        return (StatusCode::FOUND, [("location", to)], "").into_response();
    }
    if let Some((status, body)) = fake.answer.lock().unwrap().clone() {
        return (StatusCode::from_u16(status).unwrap(), body).into_response();
    }
    let valid = fake.valid_token.lock().unwrap().clone();
    if header("authorization") != format!("Bearer {valid}") {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"token expired"}"#.to_owned(),
        )
            .into_response();
    }
    let md5 = body["md5"].as_str().unwrap_or("");
    let paid = fake.paid.lock().unwrap().get(md5).cloned();
    match paid {
        Some((amount, currency)) => (
            StatusCode::OK,
            format!(
                r#"{{"responseCode":0,"responseMessage":"Getting transaction successfully.","errorCode":null,"data":{{"hash":"{HASH}","fromAccountId":"payer@abaa","toAccountId":"merchant@abaa","currency":"{currency}","amount":{amount},"description":"","createdDateMs":1700000000000,"acknowledgedDateMs":1700000001000}}}}"#
            ),
        )
            .into_response(),
        None => (
            StatusCode::OK,
            r#"{"responseCode":1,"responseMessage":"Transaction could not be found. Please check and try again.","errorCode":1,"data":null}"#.to_owned(),
        )
            .into_response(),
    }
}

/// Starts a fake Bakong behind the path prefix `/relay` on 127.0.0.1.
pub async fn fake_bakong() -> Fake {
    let state = Arc::new(FakeState::default());
    *state.valid_token.lock().unwrap() = TOKEN.into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let app = Router::new()
        .route("/relay/v1/check_transaction_by_md5", post(fake_check_md5))
        .route(
            "/relay/v1/check_transaction_by_md5_list",
            post(fake_check_md5_list),
        )
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fake {
        state,
        base: format!("http://{addr}/relay"),
    }
}

/// A running server; stopped (drained) by [`Server::stop`] or on drop.
pub struct Server {
    pub base: String,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A config pointing at `fake`, with the test token, 10 s upstream timeout.
pub fn config_for(fake: &Fake) -> Config {
    let mut config = Config::new("http://unset");
    config.bakong_base_url.clone_from(&fake.base);
    config.token = Some(TOKEN.into());
    open_config_limits(&mut config);
    config
}

/// Sets `config`'s limits to [`open_limits`].
pub fn open_config_limits(config: &mut Config) {
    let open = open_limits();
    config.rate_per_client = open.client_per_sec;
    config.rate_per_account = open.account_per_sec;
    config.quota_per_client = open.quota_per_client;
}

/// Starts the server with `config` (its public URL is set to the bound
/// address) on `store`.
pub async fn start_server(mut config: Config, serve: ServeConfig, store: AnyStore) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    config.public_url = Some(format!("http://{addr}"));
    let app = khqr_server::app(&config, store).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        khqr_server::serve(listener, app.router(), serve, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        addr,
        stop: Some(tx),
        task: Some(task),
    }
}

/// An HTTP client with a 10 s timeout, optionally bound to a loopback source
/// address (127.0.0.x are distinct clients to the server).
pub fn client(from: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(ip) = from {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(ip.is_loopback());
        b = b.local_address(ip);
    }
    b.build().unwrap()
}

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        assert_eq!(
            self.content_type,
            "application/json",
            "status {} body {:?}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.bytes().await.unwrap().to_vec();
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

pub async fn get(c: &reqwest::Client, url: &str) -> Answer {
    send(c.get(url)).await
}

/// Creates a USD QR for `bakongid` and returns (tran, md5).
pub async fn create(c: &reqwest::Client, base: &str, bakongid: &str) -> (String, String) {
    let a = get(
        c,
        &format!(
            "{base}/khqr/create?amount=1.25&bakongid={bakongid}&merchantname=Shop&username=john"
        ),
    )
    .await;
    let v = a.json();
    assert_eq!(a.status, 200, "{v}");
    (
        v["tran"].as_str().unwrap().to_owned(),
        v["md5"].as_str().unwrap().to_owned(),
    )
}

/// What [`backends`] started: a `redis-server` and the SQLite store's
/// directory, both removed on drop.
pub struct Stores {
    pub redis: Redis,
    pub dir: TempDir,
}

/// The backends every attack test runs with: memory, SQLite (a fresh
/// temporary directory) and Redis (a fresh `redis-server`); the first element
/// keeps the last two alive.
pub fn backends() -> (Stores, Vec<Backend>) {
    let redis = Redis::start();
    let dir = TempDir::new("sqlite");
    let list = vec![
        Backend::Memory,
        Backend::Sqlite(dir.path.clone()),
        Backend::Redis(redis.url.clone()),
    ];
    (Stores { redis, dir }, list)
}

// ---- merchants (issue 18, item 2) ----

/// Starts the server as [`start_server`] does and hands back the
/// application too, whose store a test reaches (merchants in a memory store).
pub async fn start_app(
    mut config: Config,
    serve: ServeConfig,
    store: AnyStore,
) -> (Server, Arc<khqr_server::App>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    config.public_url = Some(format!("http://{addr}"));
    let app = Arc::new(khqr_server::app(&config, store).unwrap());
    let router = app.router();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        khqr_server::serve(listener, router, serve, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let server = Server {
        base: format!("http://{addr}"),
        addr,
        stop: Some(tx),
        task: Some(task),
    };
    (server, app)
}

/// The wall clock now, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
