//! `UreqTransport` against a fake Bakong on 127.0.0.1: every answer the real
//! API (or a proxy in front of it) gives reaches the typed outcomes.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bakong_khqr::status::{
    check_khqr, check_md5, wait_for_payment, Api, CheckError, PollOutcome, Poller, ResponseError,
    RetryAfter, SystemClock, Token, TransactionStatus, TransportConfig, UreqError, UreqTransport,
};
use bakong_khqr::{now_ms, Currency, Request};
use common::fake_bakong::{FakeBakong, Reply};

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDB9.c2ln";

fn api(fake: &FakeBakong) -> Api {
    Api::new(&fake.base_url())
        .unwrap()
        .with_token(Token::new(TOKEN).unwrap())
}

/// A dynamic USD 1.50 QR that expires in 10 minutes.
fn qr() -> String {
    Request::individual("jonhsmith@nbcq", "Jonh Smith")
        .currency(Currency::Usd)
        .amount("1.50")
        .expires_in_ms(600_000)
        .generate(now_ms())
        .unwrap()
        .as_str()
        .to_owned()
}

/// One check of `qr()` against a fake that answers `reply`.
fn check_once(
    reply: Reply,
    config: &TransportConfig,
) -> Result<TransactionStatus, CheckError<UreqError>> {
    let fake = FakeBakong::start(vec![reply]);
    let result = check_khqr(&UreqTransport::with_config(config), &api(&fake), &qr());
    fake.finish();
    result
}

fn check(reply: Reply) -> Result<TransactionStatus, CheckError<UreqError>> {
    check_once(reply, &TransportConfig::default())
}

#[test]
fn paid_in_one_call_sends_the_md5_with_the_token() {
    let payload = qr();
    let fake = FakeBakong::start(vec![Reply::paid("1.5", "USD")]);
    let status = check_khqr(&UreqTransport::new(), &api(&fake), &payload).unwrap();
    let TransactionStatus::Paid(tx) = status else {
        panic!("{status:?}")
    };
    assert_eq!((tx.amount.as_str(), tx.minor_units()), ("1.5", Some(150)));
    assert_eq!(tx.from_account_id.as_deref(), Some("payer@abaa"));
    let seen = fake.finish();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/check_transaction_by_md5");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"md5": bakong_khqr::Md5::of(&payload).to_string()})
    );
}

#[test]
fn pending() {
    assert_eq!(check(Reply::pending()).unwrap(), TransactionStatus::Pending);
}

#[test]
fn wrong_amount_or_currency_is_not_paid() {
    for reply in [
        Reply::paid("1.49", "USD"),
        Reply::paid("1.51", "USD"),
        Reply::paid("6000", "KHR"),
    ] {
        let status = check(reply.clone()).unwrap();
        assert!(
            matches!(status, TransactionStatus::AmountMismatch(_)),
            "{reply:?}: {status:?}"
        );
    }
    // check_md5 cannot compare (it has no QR): the same answer is Paid there.
    let fake = FakeBakong::start(vec![Reply::paid("1.49", "USD")]);
    let status = check_md5(
        &UreqTransport::new(),
        &api(&fake),
        &bakong_khqr::Md5::of(&qr()),
    );
    fake.finish();
    assert!(
        matches!(status, Ok(TransactionStatus::Paid(_))),
        "{status:?}"
    );
}

#[test]
fn expired_token_401_is_typed() {
    let reply = Reply::new(401, r#"{"message":"jwt expired"}"#);
    assert!(matches!(
        check(reply),
        Err(CheckError::Response(ResponseError::Unauthorized {
            status: 401
        }))
    ));
}

#[test]
fn geo_block_403_html_is_typed() {
    let reply = Reply::new(
        403,
        "<!DOCTYPE html><html><body><h1>403 Forbidden</h1>Not available in your country</body></html>",
    )
    .header("Content-Type", "text/html");
    assert!(matches!(
        check(reply),
        Err(CheckError::Response(ResponseError::Forbidden))
    ));
}

#[test]
fn rate_limit_429_keeps_retry_after() {
    let reply = Reply::new(429, "").header("Retry-After", "30");
    match check(reply) {
        Err(CheckError::Response(ResponseError::RateLimited {
            retry_after: Some(RetryAfter::Seconds(30)),
        })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_errors_are_typed() {
    for status in [500, 502, 503, 504] {
        match check(Reply::new(status, "<html>Bad gateway</html>")) {
            Err(CheckError::Response(ResponseError::ServerError { status: s })) => {
                assert_eq!(s, status);
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn redirects_are_not_followed() {
    let fake = FakeBakong::start(vec![
        Reply::new(302, "").header("Location", "/forged/paid"),
        Reply::paid("1.5", "USD"),
    ]);
    let result = check_khqr(&UreqTransport::new(), &api(&fake), &qr());
    assert!(
        matches!(
            result,
            Err(CheckError::Response(ResponseError::UnexpectedStatus {
                status: 302
            }))
        ),
        "{result:?}"
    );
    // Take the second reply ourselves: had the transport followed the
    // redirect, the fake would have seen /forged/paid instead.
    let mut s =
        std::net::TcpStream::connect(fake.base_url().trim_start_matches("http://")).unwrap();
    s.write_all(b"GET /done HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    let paths: Vec<String> = fake.finish().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/check_transaction_by_md5", "/done"]);
}

#[test]
fn a_slow_answer_times_out() {
    let config = TransportConfig::default().timeout_ms(300);
    let started = Instant::now();
    let result = check_once(Reply::pending().delay_ms(1_500), &config);
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(CheckError::Transport(UreqError::Timeout))),
        "{result:?}"
    );
    // The client gave up at its timeout; `finish` then waited for the fake.
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // A fast answer under the same timeout is fine.
    assert_eq!(
        check_once(Reply::pending(), &config).unwrap(),
        TransactionStatus::Pending
    );
}

#[test]
fn oversized_bodies_are_refused_at_the_cap() {
    let config = TransportConfig::default().max_body_bytes(4096);
    let pending = r#"{"responseCode":1,"responseMessage":"x","errorCode":1,"data":null}"#;
    // Exactly 4096 bytes: read.
    let at_cap = format!("{pending}{}", " ".repeat(4096 - pending.len()));
    assert_eq!(
        check_once(Reply::json(&at_cap), &config).unwrap(),
        TransactionStatus::Pending
    );
    // One byte more: refused.
    let over = format!("{at_cap} ");
    match check_once(Reply::json(&over), &config) {
        Err(CheckError::Transport(e @ UreqError::BodyTooLarge { limit_bytes: 4096 })) => {
            assert_eq!(e.to_string(), "answer body larger than 4096 bytes");
        }
        other => panic!("{other:?}"),
    }
    // The default cap is 1 MiB.
    let huge = format!("{pending}{}", " ".repeat(1 << 20));
    assert!(matches!(
        check(Reply::json(&huge)),
        Err(CheckError::Transport(UreqError::BodyTooLarge {
            limit_bytes: 1_048_576
        }))
    ));
}

#[test]
fn connection_refused_is_a_transport_error() {
    // Bind, learn the port, close: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = Api::new(&format!("http://127.0.0.1:{port}"))
        .unwrap()
        .with_token(Token::new(TOKEN).unwrap());
    let result = check_khqr(&UreqTransport::new(), &api, &qr());
    assert!(
        matches!(result, Err(CheckError::Transport(UreqError::Other(_)))),
        "{result:?}"
    );
}

#[test]
fn polls_on_the_system_clock_until_paid() {
    let payload = qr();
    let fake = FakeBakong::start(vec![
        Reply::pending(),
        Reply::new(503, "down"),
        Reply::paid("1.50", "USD"),
    ]);
    let mut poller = Poller::for_khqr(&payload, 1_000).unwrap();
    let started = Instant::now();
    let outcome = wait_for_payment(
        &UreqTransport::new(),
        &api(&fake),
        &mut poller,
        &mut SystemClock,
    )
    .unwrap();
    assert!(matches!(outcome, PollOutcome::Paid(ref tx) if tx.minor_units() == Some(150)));
    // Two pauses of the 1 000 ms interval, on the real clock.
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(fake.finish().len(), 3);
    // A wrong amount ends polling as a mismatch.
    let fake = FakeBakong::start(vec![Reply::paid("1", "USD")]);
    let mut poller = Poller::for_khqr(&payload, 1_000).unwrap();
    let outcome = wait_for_payment(
        &UreqTransport::new(),
        &api(&fake),
        &mut poller,
        &mut SystemClock,
    )
    .unwrap();
    fake.finish();
    assert!(
        matches!(outcome, PollOutcome::AmountMismatch(_)),
        "{outcome:?}"
    );
}
