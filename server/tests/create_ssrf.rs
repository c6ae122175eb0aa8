//! Issue 18, items 5 and 7, as an outsider replays them on 127.0.0.1 only:
//! "two orders, one QR" (two identical creates in the same millisecond shared
//! one `tran`), `Idempotency-Key`, and "webhook SSRF" (special-purpose
//! addresses, odd ports, DNS rebinding). Every loop is bounded in count and
//! time; no traffic leaves loopback.

mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{backends, client, config_for, fake_bakong, get, make_store, send, start_server};
use khqr_server::ServeConfig;
use serde_json::Value;

const SECRET: &[u8] = b"whsec-test-0123456789abcdef";
/// The API key of the merchant `shop` (holding `shop@abaa`, signing with [`SECRET`]).
const KEY: &str = "khqr_sk_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A memory store holding the merchant `shop`, whose keyed creates may carry
/// a `callback_url` (anonymous ones may not).
async fn store_with_shop(config: &khqr_server::Config) -> khqr_server::store::AnyStore {
    use khqr_server::merchant::{key_hash, Merchant, MerchantStore, WebhookSecret};
    let store = make_store(&common::Backend::Memory, config.limits()).await;
    let shop = Merchant {
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
    };
    store.merchant_save(&shop, false).await.unwrap().unwrap();
    store
}

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

/// `khqr_create_retries_total` in a Prometheus page (0 if absent).
fn retries(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("khqr_create_retries_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
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
        let mut config = config_for(&fake);
        // Each round checks both QRs (400 status checks): not the budget's test.
        config.bakong_calls_per_sec = 100_000;
        let store = make_store(&backend, config.limits()).await;
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
        // The clash did happen, and was resolved by another payload.
        let retries = retries(&get(&alice, &format!("{b}/metrics")).await.text());
        eprintln!("{backend:?}: {retries} creates retried a millisecond later (process total)");
        assert!(
            retries > 0,
            "{backend:?}: no two creates met in one millisecond"
        );
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
        let store = make_store(&backend, config.limits()).await;
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
        let store = make_store(&backend, config.limits()).await;
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

/// Twenty identical creates at once, without a key: twenty QRs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_creates_without_a_key_make_as_many_qrs() {
    const N: usize = 20;
    let (_redis, backends) = backends();
    for backend in backends {
        let fake = fake_bakong().await;
        let config = config_for(&fake);
        let store = make_store(&backend, config.limits()).await;
        let server = start_server(config, ServeConfig::default(), store).await;
        let url = create_url(&server.base, "3.50", "erin");
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let (c, url) = (client(Some(&format!("127.0.1.{}", i + 1))), url.clone());
                tokio::spawn(async move { send(c.get(url)).await })
            })
            .collect();
        let mut trans = Vec::new();
        for t in tasks {
            let a = tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("bounded")
                .unwrap();
            assert_eq!(a.status, 200, "{backend:?}: {}", a.text());
            trans.push(a.json()["tran"].as_str().unwrap().to_owned());
        }
        trans.sort();
        trans.dedup();
        assert_eq!(trans.len(), N, "{backend:?}");
        server.stop().await;
    }
}

/// Every `callback_url` form of issue 18's SSRF row, and the IPv4
/// spellings that the URL parser turns into special-purpose addresses, is
/// refused with 400 at create; public targets on 443 are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_purpose_callback_targets_are_refused_at_create() {
    let fake = fake_bakong().await;
    let config = config_for(&fake);
    let store = store_with_shop(&config).await;
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
        let a = send(
            c.get(create_url_with_callback(&server.base, url))
                .bearer_auth(KEY),
        )
        .await;
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
        let a = send(
            c.get(create_url_with_callback(&server.base, url))
                .bearer_auth(KEY),
        )
        .await;
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

/// A DNS server on 127.0.0.1 (UDP) that rebinds: for any name, the first A
/// query gets `first`, every later one `then`; other queries get no record.
struct RebindingDns {
    addr: std::net::SocketAddr,
    a_queries: Arc<AtomicUsize>,
}

async fn rebinding_dns(first: Ipv4Addr, then: Ipv4Addr) -> RebindingDns {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let a_queries = Arc::new(AtomicUsize::new(0));
    let count = a_queries.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        // Bounded: a test makes a handful of queries.
        for _ in 0..200 {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let answer = dns_answer(&buf[..n], |qtype| {
                (qtype == 1).then(|| {
                    if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        first
                    } else {
                        then
                    }
                })
            });
            if let Some(answer) = answer {
                let _ = socket.send_to(&answer, peer).await;
            }
        }
    });
    RebindingDns { addr, a_queries }
}

/// The answer to one query (RFC 1035 section 4.1): the question echoed and,
/// if `address(qtype)` gives one, an A record with TTL 0.
fn dns_answer(query: &[u8], address: impl FnOnce(u16) -> Option<Ipv4Addr>) -> Option<Vec<u8>> {
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    let question_end = at + 4;
    let question = query.get(12..question_end)?;
    let qtype = u16::from_be_bytes([query[at], query[at + 1]]);
    let ip = address(qtype);
    let mut out = Vec::with_capacity(question_end + 16);
    out.extend_from_slice(&query[..2]);
    out.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(ip.is_some()), 0, 0, 0, 0]);
    out.extend_from_slice(question);
    if let Some(ip) = ip {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

/// Counts the connections made to an address.
async fn trap(addr: std::net::SocketAddr) -> Option<Arc<AtomicUsize>> {
    let listener = tokio::net::TcpListener::bind(addr).await.ok()?;
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    tokio::spawn(async move {
        for _ in 0..1_000 {
            if listener.accept().await.is_err() {
                return;
            }
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    Some(hits)
}

/// A receiver on 127.0.0.2 (counting POSTs, answering 204) and a trap on
/// 127.0.0.1 on the same port.
async fn receiver_and_trap() -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    for _ in 0..20 {
        let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let Some(trapped) = trap(([127, 0, 0, 1], port).into()).await else {
            continue;
        };
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                count.fetch_add(1, Ordering::SeqCst);
                async { axum::http::StatusCode::NO_CONTENT }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        return (port, received, trapped);
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2 in 20 tries");
}

/// The webhook client resolves a name once per connection, checks every
/// address and connects only to those: when the DNS server rebinds the name
/// to a refused address, no connection reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_client_connects_only_to_checked_addresses() {
    use khqr_server::webhook::target::{webhook_client, TargetPolicy};
    let dns = rebinding_dns(Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::LOCALHOST).await;
    let (port, received, trapped) = receiver_and_trap().await;
    let policy = Arc::new(TargetPolicy {
        allow_http: true,
        allow_ports: vec![port],
        allow_nets: vec!["127.0.0.2/32".parse().unwrap()],
        ..TargetPolicy::default()
    });
    let url = format!("http://rebind.example:{port}/hook");
    let first = webhook_client(policy.clone(), Some(dns.addr), 5_000).unwrap();
    let status = first.post(&url).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 204);
    // New clients (no pooled connection) resolve again and get 127.0.0.1.
    for _ in 0..3 {
        let again = webhook_client(policy.clone(), Some(dns.addr), 5_000).unwrap();
        assert!(again.post(&url).send().await.is_err(), "refused address");
    }
    assert!(
        dns.a_queries.load(Ordering::SeqCst) >= 4,
        "each client asked"
    );
    assert_eq!(received.load(Ordering::SeqCst), 1);
    assert_eq!(
        trapped.load(Ordering::SeqCst),
        0,
        "no connection to 127.0.0.1"
    );
}

/// Through the server: a `callback_url` whose name a rebinding DNS server
/// answers first with an allowed address (127.0.0.2, allowed for the test)
/// and then with a refused one (127.0.0.1, where a trap counts connections).
/// The event (`khqr.created`, sent at create) reaches the checked address;
/// the trap sees no connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_cannot_send_a_webhook_to_a_refused_address() {
    let fake = fake_bakong().await;
    let dns = rebinding_dns(Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::LOCALHOST).await;
    let (port, received, trapped) = receiver_and_trap().await;
    let mut config = config_for(&fake);
    config.pending_cache_ms = 100;
    config.poll_interval_ms = 100;
    config.webhook_backoff_ms = 50;
    config.callback_allow_http = true;
    config.callback_allow_ports = vec![port];
    config.callback_allow_ips = vec!["127.0.0.2/32".parse().unwrap()];
    config.dns_server = Some(dns.addr);
    let store = store_with_shop(&config).await;
    let server = start_server(config, ServeConfig::default(), store).await;
    let hook = format!("http://rebind.example:{port}/hook");
    let url = create_url_with_callback(&server.base, &hook);
    let a = send(client(None).get(url).bearer_auth(KEY)).await;
    let v = a.json();
    assert_eq!(a.status, 200, "{v}");
    // The QR's khqr.created event is sent at once (nothing is paid).
    let started = Instant::now();
    while received.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no delivery in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Time for a wrong second connection to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received.load(Ordering::SeqCst), 1);
    assert_eq!(
        trapped.load(Ordering::SeqCst),
        0,
        "no connection to 127.0.0.1"
    );
    assert!(dns.a_queries.load(Ordering::SeqCst) >= 1);
    server.stop().await;
}

/// A merchant's `Idempotency-Key`s are the merchant's, whichever address it
/// calls from; an anonymous caller's equal key is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchants_keys_are_the_merchants_from_any_address() {
    let fake = fake_bakong().await;
    let config = config_for(&fake);
    let store = store_with_shop(&config).await;
    let server = start_server(config, ServeConfig::default(), store).await;
    let b = &server.base;
    let keyed = |from: &str| {
        client(Some(from))
            .get(create_url(b, "4.00", "frank"))
            .bearer_auth(KEY)
            .header("Idempotency-Key", "order-9")
    };
    let first = send(keyed("127.0.0.2")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let again = send(keyed("127.0.0.3")).await;
    assert_eq!(again.text(), first.text(), "another address, same merchant");
    let anonymous =
        format!("{b}/khqr/create?amount=4.00&bakongid=other@abaa&merchantname=Shop&username=frank");
    let theirs = send(
        client(Some("127.0.0.2"))
            .get(anonymous)
            .header("Idempotency-Key", "order-9"),
    )
    .await;
    assert_eq!(theirs.status, 200, "{}", theirs.text());
    assert_ne!(theirs.json()["tran"], first.json()["tran"]);
    server.stop().await;
}
