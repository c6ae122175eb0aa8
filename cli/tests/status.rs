//! `khqr status` against a fake Bakong on 127.0.0.1: outcomes, exit codes, the
//! token's sources, `--wait` and its progress line.

mod common;

// The library's fake Bakong, shared with its transport tests.
#[path = "../../tests/common/fake_bakong.rs"]
mod fake_bakong;

use std::process::Output;

use common::{json_of, khqr, khqr_with};
use fake_bakong::{FakeBakong, Reply};
use serde_json::Value;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDB9.c2ln";

/// A USD 1.50 QR created now, expiring in `expires_in`.
fn usd_qr(expires_in: &str) -> String {
    let o = khqr(&[
        "create",
        "--bakong-id",
        "jonhsmith@nbcq",
        "--merchant-name",
        "Jonh Smith",
        "--amount",
        "1.50",
        "--expires-in",
        expires_in,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    json_of(&o)["qr"].as_str().unwrap().to_owned()
}

/// `khqr status QR --base-url FAKE` with the token in `BAKONG_TOKEN`.
fn status(fake: &FakeBakong, payload: &str, extra: &[&str]) -> Output {
    let url = fake.base_url();
    let mut args = vec!["status", payload, "--base-url", &url];
    args.extend_from_slice(extra);
    khqr_with(&args, &[("BAKONG_TOKEN", TOKEN)], "")
}

#[test]
fn status_paid_pending_mismatch() {
    let qr = usd_qr("10m");
    let md5 = bakong_khqr::Md5::of(&qr).to_string();

    let fake = FakeBakong::start(vec![Reply::paid("1.5", "USD")]);
    let o = status(&fake, &qr, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["status"], "paid");
    assert_eq!(v["md5"], md5);
    assert_eq!(v["transaction"]["amount"], "1.5");
    assert_eq!(v["transaction"]["currency"], "USD");
    assert_eq!(v["transaction"]["created"], "2023-11-14T22:13:32.345Z");
    let seen = fake.finish();
    assert_eq!(seen[0].path, "/v1/check_transaction_by_md5");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["md5"], md5);

    let fake = FakeBakong::start(vec![Reply::pending()]);
    let o = status(&fake, &qr, &[]);
    fake.finish();
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(json_of(&o)["status"], "pending");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "khqr: not paid yet\n");

    let fake = FakeBakong::start(vec![Reply::paid("1.49", "USD")]);
    let o = status(&fake, &qr, &[]);
    fake.finish();
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(json_of(&o)["status"], "amount_mismatch");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("paid 1.49 USD but the QR asks for 1.50 USD")
    );

    // By MD5 (from stdin): nothing to compare with, so a payment is paid.
    let fake = FakeBakong::start(vec![Reply::paid("1.49", "USD")]);
    let url = fake.base_url();
    let o = khqr_with(
        &["status", "-", "--base-url", &url],
        &[("BAKONG_TOKEN", TOKEN)],
        &format!("\n  {md5}\n\n"),
    );
    fake.finish();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json_of(&o)["md5"], md5);
}

#[test]
fn status_errors_and_the_token() {
    let qr = usd_qr("10m");
    // No token anywhere: exit 1 before any request.
    let o = khqr_with(
        &["status", &qr, "--base-url", "http://127.0.0.1:9"],
        &[],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("set BAKONG_TOKEN or pass --token-file"));
    // There is no --token flag: a token on the command line is a usage error.
    let o = khqr_with(&["status", &qr, "--token", TOKEN], &[], "");
    assert_eq!(o.status.code(), Some(2));

    // An expired token: exit 6 with the typed message; from a token file.
    let dir = std::env::temp_dir().join(format!("khqr-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let fake = FakeBakong::start(vec![Reply::new(401, "{}")]);
    let url = fake.base_url();
    let o = khqr_with(
        &[
            "status",
            &qr,
            "--base-url",
            &url,
            "--token-file",
            file.to_str().unwrap(),
        ],
        &[],
        "",
    );
    let seen = fake.finish();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(json_of(&o)["error"]["kind"], "unauthorized");
    assert!(String::from_utf8_lossy(&o.stderr).contains("renew it"));

    let fake = FakeBakong::start(vec![Reply::new(429, "").header("Retry-After", "30")]);
    let o = status(&fake, &qr, &[]);
    fake.finish();
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(json_of(&o)["error"]["kind"], "rate_limited");

    // Not a KHQR nor an MD5.
    let o = khqr_with(&["status", "nonsense"], &[("BAKONG_TOKEN", TOKEN)], "");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn status_wait_polls_until_paid_with_progress() {
    let qr = usd_qr("10m");
    let fake = FakeBakong::start(vec![
        Reply::pending(),
        Reply::new(503, "down"),
        Reply::paid("1.50", "USD"),
    ]);
    let o = status(&fake, &qr, &["--wait", "--interval", "1s"]);
    assert_eq!(fake.finish().len(), 3);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json_of(&o)["status"], "paid");
    let err = String::from_utf8(o.stderr).unwrap();
    // One line, rewritten in place with \r, ended by one newline.
    assert_eq!(err.matches('\n').count(), 1, "{err:?}");
    assert!(
        err.starts_with("\rkhqr: pending; 1 check so far, "),
        "{err:?}"
    );
    assert!(
        err.contains("\rkhqr: Bakong server error (HTTP 503); 2 checks so far"),
        "{err:?}"
    );
}

#[test]
fn status_wait_stops_when_the_qr_expires() {
    let qr = usd_qr("2s");
    let fake = FakeBakong::start(vec![Reply::pending(); 6]);
    let started = std::time::Instant::now();
    let o = status(&fake, &qr, &["--wait", "--interval", "1s"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["status"], "expired");
    assert!(v["expired_at"].as_str().unwrap().ends_with('Z'));
    // The fake keeps its unused replies; its thread ends at its accept deadline.
}
