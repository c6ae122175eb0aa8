//! Issue 18, items 5 and 7, as an outsider replays them on 127.0.0.1 only:
//! "two orders, one QR" (two identical creates in the same millisecond shared
//! one `tran`), `Idempotency-Key`, and "webhook SSRF" (special-purpose
//! addresses, odd ports, DNS rebinding). Every loop is bounded in count and
//! time; no traffic leaves loopback.

mod common;

use std::time::{Duration, Instant};

use common::{backends, client, config_for, fake_bakong, get, make_store, send, start_server};
use khqr_server::ServeConfig;
use serde_json::Value;

const SECRET: &[u8] = b"whsec-test-0123456789abcdef";

fn create_url(base: &str, amount: &str, user: &str) -> String {
    format!(
        "{base}/khqr/create?amount={amount}&bakongid=shop@abaa&merchantname=Shop&username={user}"
    )
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

/// The `username` the server answers a check of `tran` with.
async fn username_of(c: &reqwest::Client, base: &str, tran: &str) -> String {
    let a = get(c, &format!("{base}/khqr/check/{tran}?bakongid=shop@abaa")).await;
    let v = a.json();
    v["username"].as_str().unwrap_or("").to_owned()
}

/// Two callers (two addresses, two usernames) create the same QR at the same
/// moment, 200 times: each must get its own `tran`, and each `tran` must
/// answer with its own caller's username. Issue 18 saw 176 of 200 shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_identical_creates_never_share_a_tran() {
    const ROUNDS: usize = 200;
    let (_redis, backends) = backends();
    let mut seen = Vec::new();
    for backend in backends {
        let fake = fake_bakong().await;
        let config = config_for(&fake);
        let store = make_store(&backend, config.limits.clone()).await;
        let server = start_server(config, ServeConfig::default(), store).await;
        let b = &server.base;
        let (alice, bob) = (client(Some("127.0.0.2")), client(Some("127.0.0.3")));
        let started = Instant::now();
        let (mut shared, mut lost) = (0usize, 0usize);
        for _ in 0..ROUNDS {
            assert!(started.elapsed() < Duration::from_secs(40), "too slow");
            let (ua, ub) = (create_url(b, "1.25", "alice"), create_url(b, "1.25", "bob"));
            let (x, y) = tokio::join!(get(&alice, &ua), get(&bob, &ub));
            let (x, y) = (x.json(), y.json());
            let (tx, ty) = (x["tran"].as_str().unwrap(), y["tran"].as_str().unwrap());
            if tx == ty {
                shared += 1;
            }
            if username_of(&alice, b, tx).await != "alice"
                || username_of(&bob, b, ty).await != "bob"
            {
                lost += 1;
            }
        }
        eprintln!("{backend:?}: {shared} of {ROUNDS} rounds shared a tran, {lost} lost a username");
        seen.push((backend, shared, lost));
        server.stop().await;
    }
    for (backend, shared, lost) in seen {
        assert_eq!((shared, lost), (0, 0), "{backend:?}");
    }
}

/// The same key with the same parameters gives the same answer, byte for
/// byte; other parameters give 409; another caller's same key is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_repeats_the_answer_and_refuses_other_parameters() {
    let (_redis, backends) = backends();
    for backend in backends {
        let fake = fake_bakong().await;
        let config = config_for(&fake);
        let store = make_store(&backend, config.limits.clone()).await;
        let server = start_server(config, ServeConfig::default(), store).await;
        let b = &server.base;
        let c = client(Some("127.0.0.2"));
        let keyed = |url: String, key: &str| c.get(url).header("Idempotency-Key", key);
        let first = send(keyed(create_url(b, "1.25", "alice"), "order-1001")).await;
        assert_eq!(first.status, 200, "{}", first.text());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let again = send(keyed(create_url(b, "1.25", "alice"), "order-1001")).await;
        assert_eq!(again.status, 200, "{}", again.text());
        assert_eq!(
            again.text(),
            first.text(),
            "{backend:?}: a repeat is the same answer"
        );
        // Other parameters with the same key: refused.
        for (amount, user) in [("2.00", "alice"), ("1.25", "bob")] {
            let other = send(keyed(create_url(b, amount, user), "order-1001")).await;
            let v = other.json();
            assert_eq!(other.status, 409, "{backend:?} {amount} {user}: {v}");
            assert_eq!(v["status"], false);
            assert_eq!(v["error"], "idempotency_key_reused", "{v}");
        }
        // Another key, or no key: another QR.
        let fresh = send(keyed(create_url(b, "1.25", "alice"), "order-1002")).await;
        assert_ne!(fresh.json()["tran"], first.json()["tran"], "{backend:?}");
        let plain = get(&c, &create_url(b, "1.25", "alice")).await;
        assert_ne!(plain.json()["tran"], first.json()["tran"], "{backend:?}");
        // The same key from another caller is that caller's own key.
        let other_caller = client(Some("127.0.0.3"));
        let theirs = send(
            other_caller
                .get(create_url(b, "1.25", "alice"))
                .header("Idempotency-Key", "order-1001"),
        )
        .await;
        assert_eq!(theirs.status, 200, "{}", theirs.text());
        assert_ne!(theirs.json()["tran"], first.json()["tran"], "{backend:?}");
        // Keys: 1 to 255 printable ASCII characters.
        let longest = "k".repeat(255);
        let ok = send(keyed(create_url(b, "1.25", "alice"), &longest)).await;
        assert_eq!(ok.status, 200, "{backend:?}: 255 characters");
        for bad in [String::new(), "k".repeat(256), "a b\tc".to_owned()] {
            let a = send(keyed(create_url(b, "1.25", "alice"), &bad)).await;
            let v = a.json();
            assert_eq!(a.status, 400, "{backend:?} {bad:?}: {v}");
            assert_eq!(v["error"], "invalid_idempotency_key", "{v}");
        }
        let raw = reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        let a = send(
            c.get(create_url(b, "1.25", "alice"))
                .header("Idempotency-Key", raw),
        )
        .await;
        assert_eq!(a.status, 400, "{backend:?}: non-ASCII key");
        server.stop().await;
    }
}

/// Twenty concurrent creates with one key make one QR: every answer is the
/// same `tran` and the same body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_same_key_creates_make_one_qr() {
    const N: usize = 20;
    let (_redis, backends) = backends();
    let mut seen = Vec::new();
    for backend in backends {
        let fake = fake_bakong().await;
        let config = config_for(&fake);
        let store = make_store(&backend, config.limits.clone()).await;
        let server = start_server(config, ServeConfig::default(), store).await;
        let url = create_url(&server.base, "3.50", "carol");
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let (c, url) = (client(Some("127.0.0.4")), url.clone());
                tokio::spawn(
                    async move { send(c.get(url).header("Idempotency-Key", "cart-77")).await },
                )
            })
            .collect();
        let mut bodies = Vec::new();
        for t in tasks {
            let a = tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("bounded")
                .unwrap();
            assert_eq!(a.status, 200, "{backend:?}: {}", a.text());
            bodies.push(a.text());
        }
        let mut trans: Vec<String> = bodies
            .iter()
            .map(|b| {
                let v: Value = serde_json::from_str(b).unwrap();
                v["tran"].as_str().unwrap().to_owned()
            })
            .collect();
        trans.sort();
        trans.dedup();
        eprintln!(
            "{backend:?}: {N} concurrent same-key creates gave {} trans",
            trans.len()
        );
        let same = bodies.iter().all(|b| *b == bodies[0]);
        seen.push((backend, trans.len(), same));
        server.stop().await;
    }
    for (backend, trans, same) in seen {
        assert_eq!((trans, same), (1, true), "{backend:?}: trans, same bodies");
    }
}

/// Every `callback_url` form of issue 18's SSRF row, and the IPv4
/// spellings that the URL parser turns into special-purpose addresses, is
/// refused with 400 at create; public targets on 443 are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_purpose_callback_targets_are_refused_at_create() {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.webhook_secret = Some(SECRET.to_vec());
    let store = make_store(&common::Backend::Memory, config.limits.clone()).await;
    let server = start_server(config, ServeConfig::default(), store).await;
    let c = client(None);
    let refused = [
        "https://[::127.0.0.1]/hook",
        "https://[::ffff:169.254.169.254]/latest/meta-data",
        "https://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "https://[64:ff9b::169.254.169.254]/latest/meta-data",
        "https://[64:ff9b:1::a9fe:a9fe]/latest/meta-data",
        "https://[2002:a9fe:a9fe::]/latest/meta-data",
        "https://[2002:a9fe:a9fe:1::1]/latest/meta-data",
        "https://198.18.0.1/hook",
        "https://shop.example:22/hook",
        "https://shop.example:8443/hook",
        "https://2852039166/latest/meta-data",
        "https://0xA9FEA9FE/latest/meta-data",
        "https://0251.0376.0251.0376/latest/meta-data",
        "https://0xa9.0xfe.0xa9.0xfe/latest/meta-data",
        "https://169.16689662/latest/meta-data",
        "https://2130706433/hook",
        "https://0x7f.1/hook",
        "https://127.1/hook",
        "https://0/hook",
        "https://100.64.0.1/hook",
        "https://192.0.0.9/hook",
        "https://192.31.196.1/hook",
        "https://192.52.193.1/hook",
        "https://192.88.99.1/hook",
        "https://192.175.48.1/hook",
        "https://198.51.100.7/hook",
        "https://203.0.113.9/hook",
        "https://240.0.0.1/hook",
        "https://255.255.255.255/hook",
        "https://224.0.0.251/hook",
        "https://[::]/hook",
        "https://[100::1]/hook",
        "https://[2001::1]/hook",
        "https://[2001:2::1]/hook",
        "https://[2001:db8::1]/hook",
        "https://[3fff::1]/hook",
        "https://[5f00::1]/hook",
        "https://[fec0::1]/hook",
        "https://[ff02::1]/hook",
        "https://[fd00::1]/hook",
        "https://metadata/computeMetadata/v1/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://printer.local/hook",
        "https://LOCALHOST./hook",
    ];
    let mut accepted = Vec::new();
    for url in refused {
        let a = get(&c, &create_url_with_callback(&server.base, url)).await;
        let v = a.json();
        if a.status == 200 {
            accepted.push(url);
        } else {
            assert_eq!(a.status, 400, "{url}: {v}");
            assert_eq!(v["error"], "invalid_callback_url", "{url}: {v}");
        }
    }
    eprintln!(
        "{} of {} refused forms accepted: {accepted:?}",
        accepted.len(),
        refused.len()
    );
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
    for url in [
        "https://shop.example/hook",
        "https://shop.example:443/hook",
        "https://8.8.8.8/hook",
        "https://[2600::1]/hook",
        "https://[64:ff9b::808:808]/hook",
        "https://[2002:808:808::1]/hook",
    ] {
        let a = get(&c, &create_url_with_callback(&server.base, url)).await;
        assert_eq!(a.status, 200, "{url}: {}", a.text());
    }
    server.stop().await;
}

fn create_url_with_callback(base: &str, callback: &str) -> String {
    format!(
        "{}&callback_url={}",
        create_url(base, "1.25", "dave"),
        enc(callback)
    )
}
