//! The attacks of issue 10, replayed on 127.0.0.1 only. Distinct loopback
//! source addresses (127.0.0.2, 127.0.0.3, …) are distinct clients to the
//! server. Every loop is bounded in count and in time.

#![allow(clippy::many_single_char_names)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{
    backends, client, config_for, create, fake_bakong, get, make_store, send, start_server,
    Backend, Redis,
};
use khqr_server::store::Limits;
use khqr_server::ServeConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// A JSON error: status, `status:false` or `responseCode:1`, a message, and no
/// internal detail.
fn assert_json_error(a: &common::Answer, status: u16, what: &str) -> Value {
    let v = a.json();
    assert_eq!(a.status, status, "{what}: {v}");
    let text = a.text().to_ascii_lowercase();
    for leak in [
        "os error", "io error", "serde", "panicked", "redis", "reqwest", "hyper",
    ] {
        assert!(!text.contains(leak), "{what}: leaks {leak:?}: {text}");
    }
    if v.get("status").is_some() {
        assert_eq!(v["status"], false, "{what}");
        assert!(v["errorCode"].is_u64(), "{what}: {v}");
        assert!(!v["message"].as_str().unwrap().is_empty(), "{what}");
        assert!(v["error"].is_string(), "{what}");
    } else {
        assert_eq!(v["responseCode"], 1, "{what}: {v}");
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_a_json_4xx_with_both_stores() {
    let (_redis, backends) = backends();
    for backend in backends {
        let fake = fake_bakong().await;
        let config = config_for(&fake);
        let store = make_store(&backend, config.limits()).await;
        let server = start_server(config, ServeConfig::default(), store).await;
        let c = client(None);
        let b = &server.base;
        let (tran, md5) = create(&c, b, "merchant@abaa").await;
        let big = "x".repeat(5000);
        let huge_header = "y".repeat(17 * 1024);
        let body_9k = format!(
            r#"{{"bakongid":"merchant@abaa","pad":"{}"}}"#,
            "z".repeat(9000)
        );
        let create_q = |q: &str| format!("{b}/khqr/create?{q}");
        // (request, status, expected errorCode or error kind)
        let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
            (c.get(create_q("bakongid=m@abaa&merchantname=S")), 400, "4"),
            (
                c.get(create_q("amount=1.234&bakongid=m@abaa&merchantname=S")),
                400,
                "4",
            ),
            (
                c.get(create_q("amount=0&bakongid=m@abaa&merchantname=S")),
                400,
                "4",
            ),
            (
                c.get(create_q("amount=1e3&bakongid=m@abaa&merchantname=S")),
                400,
                "4",
            ),
            (
                c.get(create_q("amount=-5&bakongid=m@abaa&merchantname=S")),
                400,
                "4",
            ),
            (
                c.get(create_q("amount=%zz&bakongid=m@abaa&merchantname=S")),
                400,
                "4",
            ),
            (c.get(create_q("amount=5&merchantname=S")), 400, "1"),
            (
                c.get(create_q("amount=5&bakongid=merchant&merchantname=S")),
                400,
                "3",
            ),
            (c.get(create_q("amount=5&bakongid=m@abaa")), 400, "2"),
            (
                c.get(create_q(
                    "amount=5&bakongid=m@abaa&merchantname=S&currency=EURO",
                )),
                400,
                "19",
            ),
            (
                c.get(create_q(
                    "amount=5&bakongid=m@abaa&merchantname=S&currency=764",
                )),
                400,
                "28",
            ),
            (
                c.get(create_q("amount=5&bakongid=m@abaa&merchantname=%FF")),
                400,
                "invalid_utf8",
            ),
            (
                c.get(create_q("amount=5&bakongid=m@abaa&merchantname=S%C3")),
                400,
                "invalid_utf8",
            ),
            (
                c.get(create_q(
                    "amount=5&bakongid=m@abaa&merchantname=%E2%80%AEevil",
                )),
                400,
                "forbidden_character",
            ),
            (
                c.get(create_q(
                    "amount=5&bakongid=m@abaa&merchantname=a%E2%81%A6b",
                )),
                400,
                "forbidden_character",
            ),
            (
                c.get(create_q("amount=5&bakongid=m@abaa&merchantname=a%00b")),
                400,
                "forbidden_character",
            ),
            (
                c.get(create_q("amount=5&bakongid=m@abaa&merchantname=a%0D%0Ab")),
                400,
                "forbidden_character",
            ),
            (
                c.get(create_q(
                    "amount=5&bakongid=m@abaa&merchantname=%3Cb%3Ex%3C/b%3E",
                )),
                400,
                "forbidden_character",
            ),
            (
                c.get(create_q(
                    "amount=5&bakongid=m@abaa&merchantname=S&username=%3Cscript%3E",
                )),
                400,
                "forbidden_character",
            ),
            (
                c.get(create_q(&format!(
                    "amount=5&bakongid=m@abaa&merchantname=S&username={}",
                    "u".repeat(65)
                ))),
                400,
                "invalid_parameter",
            ),
            (
                c.get(create_q("amount=5&amount=6&bakongid=m@abaa&merchantname=S")),
                400,
                "duplicate_parameter",
            ),
            (
                c.get(create_q(
                    "amount=5&bakongid=m@abaa&bakongid=x@abaa&merchantname=S",
                )),
                400,
                "duplicate_parameter",
            ),
            (
                c.get(format!(
                    "{b}/khqr/check/{tran}?bakongid=merchant@abaa&bakongid=merchant@abaa"
                )),
                400,
                "duplicate_parameter",
            ),
            (
                c.post(format!("{b}/khqr/check/{tran}?bakongid=merchant@abaa"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("bakongid=merchant%40abaa"),
                400,
                "duplicate_parameter",
            ),
            (
                c.post(format!("{b}/check_by_md5"))
                    .header("content-type", "application/json")
                    .body(format!(
                        r#"{{"md5":"{md5}","bakongid":"merchant@abaa","bakongid":"x@abaa"}}"#
                    )),
                400,
                "duplicate_parameter",
            ),
            (
                c.post(format!("{b}/check_by_md5"))
                    .header("content-type", "application/json")
                    .body("{"),
                400,
                "invalid_body",
            ),
            (
                c.post(format!("{b}/check_by_md5"))
                    .header("content-type", "application/json")
                    .body("[1,2]"),
                400,
                "invalid_body",
            ),
            (
                c.post(format!("{b}/check_by_md5"))
                    .header("content-type", "application/json")
                    .body(r#"{"md5":{"$ne":1},"bakongid":"merchant@abaa"}"#),
                400,
                "invalid_body",
            ),
            (
                c.post(format!("{b}/check_by_md5"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("md5=%FF&bakongid=merchant%40abaa"),
                400,
                "invalid_utf8",
            ),
            (
                c.get(format!("{b}/khqr/check/NOSUCH00?bakongid=merchant@abaa")),
                404,
                "not_found",
            ),
            (
                c.get(format!("{b}/khqr/check/{tran}?bakongid=other@abaa")),
                404,
                "not_found",
            ),
            (c.get(format!("{b}/khqr/check/NOSUCH00")), 400, "1"),
            (
                c.get(format!("{b}/check_by_md5?bakongid=merchant@abaa&md5=xyz")),
                400,
                "invalid_parameter",
            ),
            (c.get(format!("{b}/check_by_md5?md5={md5}")), 400, "1"),
            (
                c.get(format!(
                    "{b}/check_by_md5?md5=0123456789abcdef0123456789abcdef&bakongid=merchant@abaa"
                )),
                404,
                "not_found",
            ),
            (
                c.get(format!("{b}/check_by_md5?md5={md5}&bakongid=other@abaa")),
                404,
                "not_found",
            ),
            (c.get(format!("{b}/khqr/qr/NOSUCH00")), 404, "not_found"),
            (
                c.get(format!("{b}/khqr/qr/stand/NOSUCH00")),
                404,
                "not_found",
            ),
            (c.get(format!("{b}/khqr/qr/%FF%FE")), 400, "bad_request"),
            (c.get(format!("{b}/khqr/qr/stand/")), 404, "not_found"),
            (c.get(format!("{b}/nowhere")), 404, "not_found"),
            (c.get(format!("{b}/%FF")), 404, "not_found"),
            (
                c.post(format!("{b}/khqr/create")),
                405,
                "method_not_allowed",
            ),
            (
                c.delete(format!("{b}/check_by_md5")),
                405,
                "method_not_allowed",
            ),
            (
                c.put(format!("{b}/khqr/qr/{tran}")),
                405,
                "method_not_allowed",
            ),
            (
                c.post(format!("{b}/check_by_md5"))
                    .header("content-type", "application/json")
                    .body(body_9k),
                413,
                "payload_too_large",
            ),
            (
                c.get(create_q(&format!(
                    "amount=5&bakongid=m@abaa&merchantname={big}"
                ))),
                414,
                "uri_too_long",
            ),
            (
                c.get(format!("{b}/healthz")).header("x-pad", huge_header),
                431,
                "headers_too_large",
            ),
        ];
        let n = cases.len();
        for (i, (req, status, want)) in cases.into_iter().enumerate() {
            let a = send(req).await;
            let what = format!("{backend:?} case {i}");
            let v = assert_json_error(&a, status, &what);
            if want.bytes().all(|b| b.is_ascii_digit()) {
                assert_eq!(v["errorCode"].to_string(), want, "{what}: {v}");
            } else {
                assert_eq!(v["error"], want, "{what}: {v}");
            }
            if status == 405 {
                assert!(a.header("allow").is_some(), "{what}: 405 keeps Allow");
            }
        }
        assert!(n >= 45);
        // Nothing reached the fake Bakong.
        assert_eq!(fake.state.calls.load(Ordering::SeqCst), 0);
        server.stop().await;
    }
}

/// One client floods create; another keeps being served. Rate limit: the
/// defaults (50/s, burst 200 per client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_flood_does_not_lock_out_others_with_both_stores() {
    let (_redis, backends) = backends();
    for backend in backends {
        let fake = fake_bakong().await;
        let mut config = config_for(&fake);
        config.rate_per_client = Limits::default().client_per_sec;
        config.rate_per_account = 0;
        config.quota_per_client = Limits::default().quota_per_client;
        let store = make_store(&backend, config.limits()).await;
        let server = start_server(config, ServeConfig::default(), store).await;
        let base = server.base.clone();
        // The flood: 8 tasks from 127.0.0.2, 3 000 creates in all or 8 s.
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut flood = Vec::new();
        for t in 0..8 {
            let base = base.clone();
            flood.push(tokio::spawn(async move {
                let c = client(Some("127.0.0.2"));
                let (mut ok, mut limited) = (0u32, 0u32);
                for i in 0..375 {
                    if Instant::now() > deadline {
                        break;
                    }
                    let a = get(
                        &c,
                        &format!(
                            "{base}/khqr/create?amount=1&bakongid=f{t}x{i}@abaa&merchantname=F"
                        ),
                    )
                    .await;
                    match a.status {
                        200 => ok += 1,
                        429 => {
                            let v = a.json();
                            assert_eq!(v["error"], "rate_limited");
                            let secs: u64 = a.header("retry-after").unwrap().parse().unwrap();
                            assert!((1..=60).contains(&secs));
                            limited += 1;
                        }
                        s => panic!("flood got {s}"),
                    }
                }
                (ok, limited)
            }));
        }
        // Meanwhile the victim, from 127.0.0.3: 20 creates, each within 1 s.
        let c = client(Some("127.0.0.3"));
        let mut worst = Duration::ZERO;
        for i in 0..20 {
            let started = Instant::now();
            let a = get(
                &c,
                &format!("{base}/khqr/create?amount=2&bakongid=victim{i}@abaa&merchantname=V"),
            )
            .await;
            worst = worst.max(started.elapsed());
            assert_eq!(a.status, 200, "{backend:?}: victim refused: {}", a.text());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            worst < Duration::from_secs(1),
            "{backend:?}: victim's worst create took {worst:?}"
        );
        let (mut ok, mut limited) = (0, 0);
        for f in flood {
            let (o, l) = f.await.unwrap();
            ok += o;
            limited += l;
        }
        assert!(limited > 0, "{backend:?}: the flood was never limited");
        assert!(
            ok <= 200 + 50 * 10,
            "{backend:?}: {ok} creates passed the limit"
        );
        server.stop().await;
    }
}

/// Without rate limits, a client filling the store only displaces its own
/// QRs (quota 50 here); everyone else's stay and new creates still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_refuses_no_one_with_both_stores() {
    let (_redis, backends) = backends();
    for backend in backends {
        let fake = fake_bakong().await;
        let mut config = config_for(&fake);
        config.quota_per_client = 50;
        config.max_entries = 10_000;
        let store = make_store(&backend, config.limits()).await;
        let server = start_server(config, ServeConfig::default(), store).await;
        let victim = client(Some("127.0.0.3"));
        let (victim_tran, _) = create(&victim, &server.base, "victim@abaa").await;
        let attacker = client(Some("127.0.0.2"));
        let (first, _) = create(&attacker, &server.base, "a0@abaa").await;
        for i in 1..300 {
            create(&attacker, &server.base, &format!("a{i}@abaa")).await;
        }
        let a = get(&attacker, &format!("{}/khqr/qr/{first}", server.base)).await;
        assert_json_error(&a, 404, "the attacker's oldest QR is displaced");
        let a = get(&victim, &format!("{}/khqr/qr/{victim_tran}", server.base)).await;
        assert_eq!(a.status, 200, "{backend:?}: the victim's QR stays");
        create(&victim, &server.base, "victim@abaa").await;
        server.stop().await;
    }
}

async fn raw_conn(from: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// Whether the server closed `s` within `within` (EOF or reset).
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off_and_others_are_served() {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.request_timeout_ms = 1_500;
    let serve = ServeConfig {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 512,
        max_connections_per_ip: 64,
        drain_timeout: Duration::from_secs(5),
        ..ServeConfig::default()
    };
    let store = make_store(&Backend::Memory, config.limits()).await;
    let server = start_server(config, serve, store).await;
    // 150 connections from 127.0.0.2, each sending half a request head.
    let mut slow = Vec::new();
    for _ in 0..150 {
        let mut s = raw_conn("127.0.0.2", server.addr).await;
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        slow.push(s);
    }
    // A normal client from 127.0.0.3 is served during the attack.
    let c = client(Some("127.0.0.3"));
    let started = Instant::now();
    let a = get(&c, &format!("{}/healthz", server.base)).await;
    assert_eq!(a.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    // ... and so is a normal request from the attacker's own address: its new
    // connection displaces that address's oldest.
    let same = client(Some("127.0.0.2"));
    let a = get(&same, &format!("{}/healthz", server.base)).await;
    assert_eq!(a.status, 200);
    // Every slow connection is closed: beyond the per-address cap (64) the
    // oldest are displaced at once, the rest closed by the 1 s header timeout.
    let started = Instant::now();
    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(4)).await,
            "a slow head was kept open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    // An idle keep-alive connection is closed by the same timer.
    let mut idle = raw_conn("127.0.0.4", server.addr).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(4)).await);
    assert!(started.elapsed() >= Duration::from_millis(800));
    // A stalled body gets a JSON 408 after the 1.5 s request timeout, and the
    // connection is closed.
    let mut stalled = raw_conn("127.0.0.5", server.addr).await;
    stalled
        .write_all(b"POST /check_by_md5 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"md5\":")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("application/json") && answer.contains("\"request_timeout\""),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // Still serving.
    assert_eq!(
        get(&c, &format!("{}/healthz", server.base)).await.status,
        200
    );
    server.stop().await;
}

/// Requests hyper cannot parse at all (it answers them itself, before any
/// routing) still get the JSON error, over a raw connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_requests_get_json_errors_too() {
    let fake = fake_bakong().await;
    let config = config_for(&fake);
    let store = make_store(&Backend::Memory, config.limits()).await;
    let server = start_server(config, ServeConfig::default(), store).await;
    let mut many_headers = String::new();
    for i in 0..150 {
        many_headers.push_str("x-h");
        many_headers.push_str(&i.to_string());
        many_headers.push_str(": v\r\n");
    }
    let head_70k = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nx-pad: {}\r\n\r\n",
        "p".repeat(70 * 1024)
    );
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            b"\xff\xfe\x00garbage\r\n\r\n".to_vec(),
            "400",
            "bad_request",
        ),
        (
            b"GET /h\xffz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "400",
            "bad_request",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n".to_vec(),
            "400",
            "bad_request",
        ),
        (
            b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            "400",
            "bad_request",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            "431",
            "headers_too_large",
        ),
        (head_70k.into_bytes(), "431", "headers_too_large"),
    ];
    for (i, (bytes, status, kind)) in cases.into_iter().enumerate() {
        let mut s = raw_conn("127.0.0.6", server.addr).await;
        // The server may answer and close before reading everything sent.
        let _ = s.write_all(&bytes).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "case {i}: {answer}"
        );
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-type: application/json"),
            "case {i}: {head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "case {i}"
        );
        let v: Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(v["status"], false, "case {i}");
        assert_eq!(v["error"], kind, "case {i}: {v}");
        assert_eq!(v["errorCode"], 60, "case {i}");
    }
    // Still serving, and a normal request is untouched.
    let c = client(None);
    let a = get(&c, &format!("{}/healthz", server.base)).await;
    assert_eq!((a.status, a.json()["status"].as_bool()), (200, Some(true)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_bakong_is_not_followed() {
    // The forger says "paid" for anything; the fake Bakong redirects to it.
    let forger = fake_bakong().await;
    let fake = fake_bakong().await;
    let config = config_for(&fake);
    let store = make_store(&Backend::Memory, config.limits()).await;
    let server = start_server(config, ServeConfig::default(), store).await;
    let c = client(None);
    let (tran, md5) = create(&c, &server.base, "merchant@abaa").await;
    forger
        .state
        .paid
        .lock()
        .unwrap()
        .insert(md5.clone(), ("1.25".into(), "USD".into()));
    *fake.state.redirect_to.lock().unwrap() =
        Some(format!("{}/v1/check_transaction_by_md5", forger.base));
    let a = get(
        &c,
        &format!("{}/khqr/check/{tran}?bakongid=merchant@abaa", server.base),
    )
    .await;
    let v = assert_json_error(&a, 502, "redirect");
    assert_eq!(v["error"], "unexpected_status");
    assert!(v["responseMessage"].as_str().unwrap().contains("302"));
    assert_eq!(fake.state.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        forger.state.calls.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_open_relay_unless_asked_with_both_stores() {
    let (_redis, backends) = backends();
    for backend in backends {
        for open_relay in [false, true] {
            let fake = fake_bakong().await;
            let mut config = config_for(&fake);
            config.open_relay = open_relay;
            let store = make_store(&backend, config.limits()).await;
            let server = start_server(config, ServeConfig::default(), store).await;
            let c = client(None);
            let (tran, _) = create(&c, &server.base, "merchant@abaa").await;
            let foreign = "0123456789abcdef0123456789abcdef";
            let a = get(
                &c,
                &format!(
                    "{}/check_by_md5?md5={foreign}&bakongid=anyone@abaa",
                    server.base
                ),
            )
            .await;
            let b = get(
                &c,
                &format!("{}/khqr/check/{tran}?bakongid=anyone@abaa", server.base),
            )
            .await;
            if open_relay {
                assert_eq!((a.status, b.status), (200, 200), "{backend:?}");
                assert_eq!(fake.state.calls.load(Ordering::SeqCst), 2);
            } else {
                assert_json_error(&a, 404, "foreign md5");
                assert_json_error(&b, 404, "foreign bakongid");
                assert_eq!(fake.state.calls.load(Ordering::SeqCst), 0, "{backend:?}");
            }
            server.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_polls_make_one_upstream_call_with_both_stores() {
    let (_redis, backends) = backends();
    for backend in backends {
        let fake = fake_bakong().await;
        fake.state.delay_ms.store(400, Ordering::SeqCst);
        let config = config_for(&fake);
        let store = make_store(&backend, config.limits()).await;
        let server = start_server(config, ServeConfig::default(), store).await;
        let c = client(None);
        let (_, md5) = create(&c, &server.base, "merchant@abaa").await;
        let mut polls = Vec::new();
        for _ in 0..50 {
            let c = c.clone();
            let url = format!(
                "{}/check_by_md5?md5={md5}&bakongid=merchant@abaa",
                server.base
            );
            polls.push(tokio::spawn(async move { get(&c, &url).await }));
        }
        for p in polls {
            let a = p.await.unwrap();
            assert_eq!(a.status, 200);
            assert_eq!(
                a.text(),
                r#"{"responseCode":1,"responseMessage":"Transaction not found","data":null,"username":"john"}"#
            );
        }
        assert_eq!(fake.state.calls.load(Ordering::SeqCst), 1, "{backend:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_redis_and_a_restart_keeps_qrs() {
    let redis = Redis::start();
    let backend = Backend::Redis(redis.url.clone());
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.rate_per_client = 1;
    config.burst_per_client = 8;
    let a = start_server(
        config.clone(),
        ServeConfig::default(),
        make_store(&backend, config.limits()).await,
    )
    .await;
    let b = start_server(
        config.clone(),
        ServeConfig::default(),
        make_store(&backend, config.limits()).await,
    )
    .await;
    let c = client(Some("127.0.0.6"));
    let (tran, _) = create(&c, &a.base, "merchant@abaa").await; // 1 token
    let qr = get(&c, &format!("{}/khqr/qr/{tran}", b.base)).await; // 2
    assert_eq!((qr.status, qr.content_type.as_str()), (200, "image/png"));
    let check = get(
        &c,
        &format!("{}/khqr/check/{tran}?bakongid=merchant@abaa", b.base),
    )
    .await; // 3
    assert_eq!(check.status, 200, "{}", check.text());
    a.stop().await;
    let a2 = start_server(
        config.clone(),
        ServeConfig::default(),
        make_store(&backend, config.limits()).await,
    )
    .await;
    let qr2 = get(&c, &format!("{}/khqr/qr/{tran}", a2.base)).await; // 4
    assert_eq!(qr2.body, qr.body, "the restarted instance serves the QR");
    // The rate limit is shared too: 8 tokens in all across the instances.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 { &a2.base } else { &b.base };
        statuses.push(get(&c, &format!("{s}/healthz")).await.status);
        statuses.push(get(&c, &format!("{s}/khqr/qr/{tran}")).await.status);
    }
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(limited >= 2, "{statuses:?}");
    a2.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_timeout_health_readiness_metrics_and_drain() {
    let fake = fake_bakong().await;
    let mut config = config_for(&fake);
    config.upstream_timeout_ms = 300;
    let store = make_store(&Backend::Memory, config.limits()).await;
    let server = start_server(config.clone(), ServeConfig::default(), store).await;
    let c = client(None);
    let (tran, _) = create(&c, &server.base, "merchant@abaa").await;
    fake.state.delay_ms.store(2_000, Ordering::SeqCst);
    let started = Instant::now();
    let a = get(
        &c,
        &format!("{}/khqr/check/{tran}?bakongid=merchant@abaa", server.base),
    )
    .await;
    let v = assert_json_error(&a, 504, "slow Bakong");
    assert_eq!(v["error"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_millis(1_500));
    // Bakong's own message only in bakongMessage.
    fake.state.delay_ms.store(0, Ordering::SeqCst);
    *fake.state.answer.lock().unwrap() = Some((
        200,
        r#"{"responseCode":1,"responseMessage":"<b>internal</b> detail","errorCode":5,"data":null}"#.into(),
    ));
    let (tran2, _) = create(&c, &server.base, "merchant@abaa").await;
    let a = get(
        &c,
        &format!("{}/khqr/check/{tran2}?bakongid=merchant@abaa", server.base),
    )
    .await;
    let v = a.json();
    assert_eq!(a.status, 502);
    assert_eq!(v["error"], "api_error");
    assert_eq!(v["errorCode"], 5);
    assert_eq!(v["bakongMessage"], "<b>internal</b> detail");
    assert!(!v["responseMessage"].as_str().unwrap().contains("internal"));
    *fake.state.answer.lock().unwrap() = None;

    let h = get(&c, &format!("{}/healthz", server.base)).await;
    assert_eq!(
        (h.status, h.json()["status"].clone()),
        (200, Value::Bool(true))
    );
    let r = get(&c, &format!("{}/readyz", server.base)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["token"], "ok_unknown_expiry");
    let m = get(&c, &format!("{}/metrics", server.base)).await;
    let text = m.text();
    assert_eq!(m.status, 200);
    for name in [
        "khqr_http_requests_total{",
        "khqr_http_request_duration_seconds_bucket{",
        "khqr_store_keys{",
        "khqr_upstream_calls_total",
        "khqr_upstream_errors_total{",
        "khqr_status_cache_total{",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    assert!(text.contains(r#"route="create""#));

    // An expired token makes the server not ready.
    let mut expired = config.clone();
    expired.token = Some("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln".into());
    let s2 = start_server(
        expired,
        ServeConfig::default(),
        make_store(&Backend::Memory, config.limits()).await,
    )
    .await;
    let r = get(&c, &format!("{}/readyz", s2.base)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["token"], "expired");
    s2.stop().await;

    // Drain: a request in flight when shutdown starts still gets its answer.
    fake.state.delay_ms.store(200, Ordering::SeqCst);
    let mut slow_config = config;
    slow_config.upstream_timeout_ms = 5_000;
    let s3 = start_server(
        slow_config,
        ServeConfig::default(),
        make_store(&Backend::Memory, Limits::default()).await,
    )
    .await;
    let (tran3, _) = create(&c, &s3.base, "merchant@abaa").await;
    let url = format!("{}/khqr/check/{tran3}?bakongid=merchant@abaa", s3.base);
    let c2 = c.clone();
    let in_flight = tokio::spawn(async move { get(&c2, &url).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    s3.stop().await;
    assert_eq!(in_flight.await.unwrap().status, 200);
    server.stop().await;
}
