//! The checkout page in a real browser: Debian's `chromium`, driven headless
//! over `WebDriver` (`chromedriver`, started on a free loopback port and killed
//! by PID on drop), against the server and the fake Bakong on 127.0.0.1.
//!
//! Screenshots are saved under `target/checkout-screenshots/` as artefacts
//! (with `KHQR_UPDATE_DOCS=1`, the 360×640 pending and paid ones are copied to
//! `docs/` for the README).
//! Every wait is bounded (the whole file takes about 15 s).
#![allow(clippy::missing_panics_doc)]

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, config_for, fake_bakong, get, start_server, Fake, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use khqr_server::store::{AnyStore, MemoryStore};
use khqr_server::ServeConfig;
use serde_json::{json, Value};

/// "Khmer coffee shop" in Khmer, as the merchant name.
const KHMER_NAME: &str = "ហាងកាហ្វេខ្មែរ";

fn find(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// `chromedriver` on a free loopback port; killed by PID on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> (Driver, PathBuf) {
    const HOW: &str = "install Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`, as .ci/run does), or set KHQR_CHROMIUM and KHQR_CHROMEDRIVER to their paths";
    let chromium = find("KHQR_CHROMIUM", &["chromium", "chromium-browser"])
        .unwrap_or_else(|| panic!("chromium not found: {HOW}"));
    let driver = find("KHQR_CHROMEDRIVER", &["chromedriver"])
        .unwrap_or_else(|| panic!("chromedriver not found: {HOW}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}; {HOW}", driver.display()));
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "chromedriver did not listen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (d, chromium)
}

/// A headless chromium session with a fresh profile: a phone (360×640 by
/// chromium's device emulation, since a headless window is at least 500 px
/// wide) or a 1280×800 desktop window.
async fn browser(driver: &Driver, chromium: &Path, profile: &Path, phone: bool) -> Client {
    let mut caps = serde_json::Map::new();
    let mut options = json!({
        "binary": chromium.to_str().unwrap(),
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars",
            format!("--user-data-dir={}", profile.display()),
            "--window-size=1280,800",
        ],
    });
    if phone {
        options["mobileEmulation"] = json!({"deviceMetrics": {"width": 360, "height": 640, "pixelRatio": 2.0, "touch": true}});
    }
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url),
    )
    .await
    .expect("chromium did not start within 20 s")
    .expect("WebDriver session")
}

fn artefact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("checkout-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = artefact_dir().join(name);
    std::fs::write(&path, png).unwrap();
    path
}

/// Sets the viewport (not the window) to `w`×`h` CSS pixels (desktop sessions).
async fn viewport(c: &Client, w: u32, h: u32) {
    c.set_window_size(w, h).await.unwrap();
    let got = c
        .execute(
            "return [innerWidth, innerHeight, outerWidth, outerHeight];",
            vec![],
        )
        .await
        .unwrap();
    let v: Vec<u32> = serde_json::from_value(got).unwrap();
    // Headless chromium may keep some chrome; grow the window by the difference.
    c.set_window_size(w + (v[2] - v[0]), h + (v[3] - v[1]))
        .await
        .unwrap();
    let got = c
        .execute("return [innerWidth, innerHeight];", vec![])
        .await
        .unwrap();
    assert_eq!(got, json!([w, h]), "viewport size");
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Runs `body` as an async function and returns its result.
async fn js_async(c: &Client, body: &str) -> Value {
    let script = format!(
        "const done = arguments[arguments.length - 1]; (async () => {{ {body} }})().then(done, e => done('error: ' + e));"
    );
    c.execute_async(&script, vec![]).await.unwrap()
}

async fn text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

/// Waits (at most `limit`) until `#status` contains `needle`; returns how long it took.
async fn wait_status(c: &Client, needle: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let t = text(c, "status").await;
        if t.contains(needle) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "status still {t:?} after {limit:?}, expected {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every resource the page loaded, and the page itself, came from `base`
/// (127.0.0.1); the CSP forbids any other origin.
async fn assert_only_loopback(c: &Client, base: &str) {
    let names = js(
        c,
        "return performance.getEntriesByType('resource').map(e => e.name)\
         .concat(performance.getEntriesByType('navigation').map(e => e.name));",
    )
    .await;
    let names: Vec<String> = serde_json::from_value(names).unwrap();
    assert!(names.len() >= 4, "page, css, js, image, font: {names:?}");
    for n in &names {
        assert!(n.starts_with(base), "a request left {base}: {n}");
    }
    assert!(base.starts_with("http://127.0.0.1:"));
}

async fn server(fake: &Fake, ttl_ms: u64) -> Server {
    let mut config = config_for(fake);
    config.qr_ttl_secs = ttl_ms / 1000;
    config.pending_cache_ms = 200;
    config.poll_interval_ms = 200;
    config.success_url_allow = vec!["http://127.0.0.1".into()];
    start_server(
        config,
        ServeConfig::default(),
        AnyStore::Memory(MemoryStore::new(common::open_limits())),
    )
    .await
}

async fn create_khmer(base: &str) -> (String, String, String) {
    let c = client(None);
    let name: String = percent_encode(KHMER_NAME);
    let a = get(
        &c,
        &format!(
            "{base}/khqr/create?amount=1.25&currency=USD&bakongid=shop@abaa&merchantname={name}"
        ),
    )
    .await;
    let v = a.json();
    assert_eq!(a.status, 200, "{v}");
    (
        v["tran"].as_str().unwrap().to_owned(),
        v["md5"].as_str().unwrap().to_owned(),
        v["checkout"].as_str().unwrap().to_owned(),
    )
}

fn percent_encode(s: &str) -> String {
    use std::fmt::Write as _;
    s.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "%{b:02X}");
        out
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_page_in_chromium() {
    let (driver, chromium) = start_driver();
    let profile = std::env::temp_dir().join(format!("khqr-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let fake = fake_bakong().await;
    let srv = server(&fake, 120_000).await;
    let (_tran, md5, url) = create_khmer(&srv.base).await;
    assert!(url.starts_with(&srv.base), "{url}");
    let c = browser(&driver, &chromium, &profile.join("phone"), true).await;
    let result = async {
        // Phone size: pending, Khmer name in the DOM and drawn with the embedded font.
        c.goto(&url).await.unwrap();
        assert_eq!(js(&c, "return [innerWidth, innerHeight];").await, json!([360, 640]));
        wait_status(&c, "Waiting for payment", Duration::from_secs(5)).await;
        assert_eq!(text(&c, "merchant").await, KHMER_NAME);
        assert_eq!(text(&c, "amount").await, "1.25");
        assert_eq!(text(&c, "currency").await, "USD");
        let font = js_async(
            &c,
            "await document.fonts.load('24px \"Kantumruy Pro\"', 'ក'); \
             return [document.fonts.check('24px \"Kantumruy Pro\"', document.getElementById('merchant').textContent), \
                     [...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)];",
        )
        .await;
        assert_eq!(font[0], json!(true), "the Khmer font is loaded: {font}");
        let img_ok = js_async(
            &c,
            "const i = document.getElementById('qr'); await i.decode(); \
             return [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width, \
                     document.documentElement.scrollWidth, innerWidth];",
        )
        .await;
        let v: Vec<f64> = serde_json::from_value(img_ok.clone()).unwrap();
        assert!(v[0] > 100.0 && v[1] > 100.0, "the card image loaded: {img_ok}");
        assert!(v[2] <= 360.0 && v[3] <= v[4], "no horizontal overflow at 360: {img_ok}");
        let countdown = text(&c, "countdown").await;
        assert!(countdown.starts_with("01:") || countdown.starts_with("02:"), "{countdown}");
        let live = js(&c, "const s = document.getElementById('status'); return [s.getAttribute('aria-live'), s.getAttribute('role')];").await;
        assert_eq!(live, json!(["polite", "status"]));
        let pending = screenshot(&c, "checkout-pending-360x640.png").await;
        // Paid by the fake: the page changes within 5 s without a reload.
        js(&c, "window.__sameDocument = 'yes'; return 1;").await;
        fake.state
            .paid
            .lock()
            .unwrap()
            .insert(md5.clone(), ("1.25".into(), "USD".into()));
        let took = wait_status(&c, "Paid 1.25 USD", Duration::from_secs(5)).await;
        eprintln!("checkout: pending -> paid shown after {took:?}");
        assert_eq!(js(&c, "return window.__sameDocument;").await, json!("yes"), "no reload");
        assert_eq!(
            js(&c, "return performance.getEntriesByType('navigation').length;").await,
            json!(1)
        );
        let paid = screenshot(&c, "checkout-paid-360x640.png").await;
        assert_only_loopback(&c, &srv.base).await;
        (pending, paid)
    }
    .await;
    // Expiry: a 4-second QR on its own server.
    let short = server(&fake, 4_000).await;
    let (_t, _m, short_url) = create_khmer(&short.base).await;
    c.goto(&short_url).await.unwrap();
    wait_status(&c, "Waiting for payment", Duration::from_secs(3)).await;
    let took = wait_status(&c, "Expired", Duration::from_secs(8)).await;
    eprintln!("checkout: pending -> expired shown after {took:?}");
    assert_eq!(
        js(&c, "return document.getElementById('open-bakong').hidden;").await,
        json!(true)
    );
    screenshot(&c, "checkout-expired-360x640.png").await;
    assert_only_loopback(&c, &short.base).await;
    c.close().await.unwrap();
    // Desktop size: the whole card fits, nothing overflows.
    let c = browser(&driver, &chromium, &profile.join("desktop"), false).await;
    {
        viewport(&c, 1280, 800).await;
        let (_t, _m, pending_url) = create_khmer(&srv.base).await;
        c.goto(&pending_url).await.unwrap();
        wait_status(&c, "Waiting for payment", Duration::from_secs(5)).await;
        screenshot(&c, "checkout-pending-1280x800.png").await;
        c.goto(&url).await.unwrap();
        wait_status(&c, "Paid 1.25 USD", Duration::from_secs(5)).await;
        let fit = js_async(
            &c,
            "await document.getElementById('qr').decode(); const r = document.getElementById('qr').getBoundingClientRect(); \
             const s = document.getElementById('status').getBoundingClientRect(); \
             return [document.documentElement.scrollWidth, innerWidth, r.width, r.bottom, s.bottom, innerHeight];",
        )
        .await;
        let f: Vec<f64> = serde_json::from_value(fit.clone()).unwrap();
        assert!(
            f[0] <= f[1] && f[2] > 100.0 && f[4] <= f[5],
            "fits at 1280x800: {fit}"
        );
        screenshot(&c, "checkout-paid-1280x800.png").await;
        assert_only_loopback(&c, &srv.base).await;
    }
    c.close().await.unwrap();
    // Copies for the README, when asked (KHQR_UPDATE_DOCS=1): a test run
    // leaves the work tree alone otherwise.
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    if std::env::var_os("KHQR_UPDATE_DOCS").is_some() && docs.is_dir() {
        let _ = std::fs::copy(&result.0, docs.join("checkout-pending.png"));
        let _ = std::fs::copy(&result.1, docs.join("checkout-paid.png"));
    }
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    srv.stop().await;
    short.stop().await;
}
