//! The `khqr` binary: outputs, exit codes, files; `khqr status` against a fake
//! Bakong on 127.0.0.1.

// The library's fake Bakong, shared with its transport tests.
#[path = "../../tests/common/fake_bakong.rs"]
mod fake_bakong;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use fake_bakong::{FakeBakong, Reply};
use serde_json::Value;

fn khqr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_khqr"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run khqr")
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

#[test]
fn create_with_flags_writes_json_and_png() {
    let dir = std::env::temp_dir().join(format!("khqr-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("qr.png");
    let o = khqr(&[
        "create",
        "--bakong-id",
        "merchant@abaa",
        "--merchant-name",
        "My Store",
        "--amount",
        "50",
        "--currency",
        "USD",
        "--expires-in",
        "10m",
        "--now-ms",
        "1700000000000",
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json_of(&o);
    let qr = v["qr"].as_str().unwrap();
    assert_eq!(
        qr,
        "00020101021229170013merchant@abaa5204599953038405402505802KH5908My Store\
         6010Phnom Penh993400131700000000000011317000006000006304E79A"
    );
    assert_eq!(v["md5"], bakong_khqr::Md5::of(qr).to_string());
    assert_eq!(v["tran"], bakong_khqr::Md5::of(qr).tran_id().as_str());
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["qr", "md5", "tran", "png"]);
    assert_eq!(v["png"], png.display().to_string());
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn create_from_sdk_json_and_stdin() {
    let req = r#"{"bakongAccountID":"jonhsmith@nbcq","merchantName":"Jonh Smith","merchantCity":"Phnom Penh","currency":840,"amount":"1.5","expirationTimestamp":1700000060000}"#;
    let o = khqr(&["create", "--request", req, "--now-ms", "1700000000000"]);
    assert!(o.status.success());
    assert_eq!(
        json_of(&o)["qr"],
        "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith\
         6010Phnom Penh9934001317000000000000113170000006000063044947"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_khqr"))
        .args(["create", "--kind", "merchant", "--request", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"bakongAccountID":"jonhsmith@nbcq","merchantName":"Jonh Smith","merchantCity":"Siem Reap","merchantID":"123456","acquiringBank":"Dev Bank"}"#)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        json_of(&o)["qr"],
        "00020101021130400014jonhsmith@nbcq01061234560208Dev Bank5204599953031165802KH5910Jonh Smith6009Siem Reap6304B97D"
    );
}

#[test]
fn invalid_input_exits_1_with_json_error_and_one_line_message() {
    let o = khqr(&[
        "create",
        "--bakong-id",
        "merchant@abaa",
        "--merchant-name",
        &"N".repeat(26),
        "--now-ms",
        "1700000000000",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["code"], 7);
    assert_eq!(v["error"]["sdkMessage"], "Merchant Name Length is invalid");
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert_eq!(
        stderr,
        "khqr: merchant name (tag 59) is 26 UTF-16 code units long; the limit is 25\n"
    );
}

#[test]
fn verify_and_decode() {
    let good = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
    let o = khqr(&["verify", good, "--now-ms", "1700000000000"]);
    assert!(o.status.success());
    assert_eq!(json_of(&o), serde_json::json!({"valid": true}));

    let expired = "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh9934001317000000000000113170000006000063044947";
    let o = khqr(&["verify", expired, "--now-ms", "1700000060001"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"]["code"], 46);

    let o = khqr(&["decode", good]);
    assert!(o.status.success());
    let v = json_of(&o);
    assert_eq!(v["bakongAccountID"], "jonhsmith@nbcq");
    assert_eq!(v["pointofInitiationMethod"], "11");
    let tags: Vec<_> = v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tags, ["00", "01", "29", "52", "53", "58", "59", "60", "63"]);
    assert_eq!(v["tags"][2]["sub"][0]["value"], "jonhsmith@nbcq");
    // 25 SDK keys, then the raw tags.
    assert_eq!(v.as_object().unwrap().len(), 26);

    for bad in ["", "6206XXABCD", "0002010102112918AB14"] {
        let o = khqr(&["decode", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad:?}");
        assert!(json_of(&o)["error"]["code"].is_u64());
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(khqr(&[]).status.code(), Some(2));
    assert_eq!(khqr(&["create"]).status.code(), Some(2));
    assert_eq!(
        khqr(&[
            "create",
            "--bakong-id",
            "a@b",
            "--merchant-name",
            "x",
            "--expires-in",
            "soon"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(khqr(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn render_writes_card_svg_and_png() {
    let dir = std::env::temp_dir().join(format!("khqr-cli-card-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (stand, svg, png) = (dir.join("card.png"), dir.join("qr.svg"), dir.join("qr.png"));
    let created = khqr(&[
        "create",
        "--bakong-id",
        "merchant@abaa",
        "--merchant-name",
        "ហាងកាហ្វេ",
        "--amount",
        "1250000",
        "--now-ms",
        "1700000000000",
        "--stand",
        stand.to_str().unwrap(),
        "--scale",
        "1",
    ]);
    assert_eq!(created.status.code(), Some(0));
    let qr = json_of(&created)["qr"].as_str().unwrap().to_owned();
    let card = std::fs::read(&stand).unwrap();
    assert_eq!(
        card,
        bakong_khqr::render::card_png(&qr, &bakong_khqr::render::CardOptions::default().scale(1))
            .unwrap()
    );
    let o = khqr(&[
        "render",
        &qr,
        "--stand",
        stand.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
        "--scale",
        "2",
        "--icon",
        "none",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["stand"], stand.display().to_string());
    assert_eq!(v["svg"], svg.display().to_string());
    let options = bakong_khqr::render::CardOptions::default()
        .centre_icon(bakong_khqr::render::CentreIcon::None);
    assert_eq!(
        std::fs::read(&stand).unwrap(),
        bakong_khqr::render::card_png(&qr, &options).unwrap()
    );
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(
        svg_text,
        bakong_khqr::render::qr_svg(&qr, &bakong_khqr::render::QrOptions::default()).unwrap()
    );
    // At least one output is required; a bad payload is exit 1.
    assert_eq!(khqr(&["render", &qr]).status.code(), Some(2));
    let bad = khqr(&["render", "nonsense", "--stand", stand.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn payloads_from_stdin_and_render_refuses_non_khqr() {
    let good = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
    let mut child = Command::new(env!("CARGO_BIN_EXE_khqr"))
        .args(["verify", "-", "--now-ms", "1700000000000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{good}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(json_of(&o), serde_json::json!({"valid": true}));

    let dir = std::env::temp_dir().join(format!("khqr-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("g.png");
    let o = khqr(&["render", "garbage", "--png", png.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let bad_crc = good.replace("856B", "856C");
    let o = khqr(&["render", &bad_crc, "--png", png.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["code"], 8);
    assert!(!png.exists(), "nothing is written for a non-KHQR");
    std::fs::remove_dir_all(&dir).ok();

    let o = khqr(&["create", "--request", "{\"bakongAccountID\":"]);
    assert_eq!(o.status.code(), Some(1));
    let msg = json_of(&o)["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with(
            "request is not valid JSON: \"EOF while parsing a value at line 1 column 19\""
        ),
        "{msg}"
    );
}

/// Runs khqr with `env` set (`BAKONG_TOKEN` removed unless given) and `stdin`.
fn khqr_with(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_khqr"));
    cmd.args(args)
        .env_remove("BAKONG_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run khqr");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

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

#[test]
fn create_refuses_zero_negative_and_mixed_request() {
    for amount in ["0", "0.00", "-5", "-0.01"] {
        let o = khqr(&[
            "create",
            "--bakong-id",
            "a@b",
            "--merchant-name",
            "X",
            "--amount",
            amount,
        ]);
        assert_eq!(o.status.code(), Some(1), "{amount}");
        assert_eq!(json_of(&o)["error"]["code"], 4, "{amount}");
    }
    let req = r#"{"bakongAccountID":"jonhsmith@nbcq","merchantName":"Jonh Smith"}"#;
    for flag in ["--amount", "--currency", "--expires-in", "--bill-number"] {
        let value = if flag == "--expires-in" { "5m" } else { "5" };
        let o = khqr(&["create", "--request", req, flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("cannot be used with"),
            "{flag}"
        );
    }
    // USD by default: 5 is five dollars.
    let o = khqr(&[
        "create",
        "--bakong-id",
        "a@b",
        "--merchant-name",
        "X",
        "--amount",
        "5",
    ]);
    assert!(o.status.success());
    let qr = json_of(&o)["qr"].as_str().unwrap().to_owned();
    let d = bakong_khqr::decode(&qr).unwrap();
    assert_eq!(d.currency(), Some(bakong_khqr::Currency::Usd));
    assert_eq!(d.transaction_amount(), Some("5"));
}

#[test]
fn ecc_any_case_and_times_in_iso_8601() {
    let dir = std::env::temp_dir().join(format!("khqr-ecc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
    let png = dir.join("q.png");
    for ecc in ["M", "h", "Q"] {
        let o = khqr(&["render", good, "--png", png.to_str().unwrap(), "--ecc", ecc]);
        assert!(
            o.status.success(),
            "{ecc}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).ok();

    let expired = "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh9934001317000000000000113170000006000063044947";
    let o = khqr(&["verify", expired, "--now-ms", "1700000060001"]);
    assert_eq!(
        json_of(&o)["error"]["message"],
        "KHQR expired at 2023-11-14T22:14:20.000Z; now is 2023-11-14T22:14:20.001Z"
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "khqr: invalid KHQR: KHQR expired at 2023-11-14T22:14:20.000Z; now is 2023-11-14T22:14:20.001Z\n"
    );
    let o = khqr(&[
        "create",
        "--bakong-id",
        "a@b",
        "--merchant-name",
        "X",
        "--amount",
        "5",
        "--expires-at-ms",
        "1600000000000",
        "--now-ms",
        "1700000000000",
    ]);
    assert_eq!(json_of(&o)["error"]["code"], 50);
    assert!(
        json_of(&o)["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("\"2020-09-13T12:26:40.000Z\""),
        "{}",
        json_of(&o)["error"]["message"]
    );

    // A payload on stdin with blank lines and spaces around it.
    let o = khqr_with(&["decode", "-"], &[], &format!("\n\n  {good} \r\n\n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
