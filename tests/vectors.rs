//! Golden vectors made by running the official SDK (`tests/data`, see
//! tests/README.md), run through the public API.
//!
//! `$KHQR_VECTORS` points the tests at another folder (freshly regenerated
//! vectors). A missing file fails the tests with its path: they are the
//! crate's reference.

mod common;

use bakong_khqr::json::{request_from_value, Kind};
use bakong_khqr::{crc, decode, verify, verify_with, Md5, VerifyOptions};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let rows: Vec<Value> = common::vector_lines(name);
    assert!(!rows.is_empty(), "{name} is empty");
    rows
}

fn now_of(row: &Value) -> u64 {
    row["now_ms"].as_u64().expect("now_ms")
}

#[test]
fn generate_vectors() {
    let rows = load("generate.jsonl");
    let mut checked = 0;
    for row in &rows {
        let id = row["id"].as_str().unwrap();
        let kind = Kind::parse(row["kind"].as_str().unwrap()).unwrap();
        let expect = &row["expect"];
        let result =
            request_from_value(kind, &row["request"]).and_then(|r| r.generate(now_of(row)));
        match (expect.get("qr"), expect.get("error")) {
            (Some(qr), _) => {
                let khqr = result.unwrap_or_else(|e| panic!("{id}: expected a QR, got {e:?}"));
                assert_eq!(khqr.as_str(), qr.as_str().unwrap(), "{id}: qr");
                assert_eq!(
                    khqr.md5().to_string(),
                    expect["md5"].as_str().unwrap(),
                    "{id}: md5"
                );
                // What we generate, we verify and decode back losslessly.
                let d = verify(khqr.as_str(), now_of(row))
                    .unwrap_or_else(|e| panic!("{id}: own output invalid: {e:?}"));
                assert_eq!(d.encode(), khqr.as_str(), "{id}: re-encode");
            }
            (None, Some(Value::Number(code))) => {
                let e = result
                    .err()
                    .unwrap_or_else(|| panic!("{id}: expected error {code}"));
                assert_eq!(
                    u64::from(e.code().number()),
                    code.as_u64().unwrap(),
                    "{id}: {e}"
                );
                if let Some(msg) = expect.get("sdk_message") {
                    assert_eq!(e.sdk_message(), msg.as_str().unwrap(), "{id}: SDK message");
                }
            }
            (None, Some(Value::String(any))) => {
                assert_eq!(any, "any");
                let e = result
                    .err()
                    .unwrap_or_else(|| panic!("{id}: must be refused ({})", expect["why"]));
                assert!(!e.to_string().is_empty());
            }
            _ => panic!("{id}: unknown expectation {expect}"),
        }
        checked += 1;
    }
    assert_eq!(checked, rows.len());
    assert!(checked >= 150, "only {checked} generate vectors");
}

#[test]
fn verify_vectors() {
    let rows = load("verify.jsonl");
    for row in &rows {
        let id = row["id"].as_str().unwrap();
        let qr = row["qr"].as_str().unwrap();
        let expect = &row["expect"];
        let got = verify(qr, now_of(row));
        match &expect["valid"] {
            Value::Bool(true) => {
                let d = got.unwrap_or_else(|e| panic!("{id}: expected valid, got {e:?}"));
                let want = expect["decode"].as_object().unwrap();
                let fields = d.sdk_fields();
                let pairs = fields.pairs();
                assert_eq!(pairs.len(), want.len(), "{id}: 25 keys");
                for (k, v) in pairs {
                    assert_eq!(want[k].as_str(), v, "{id}: decode {k}");
                }
                assert_eq!(d.encode(), qr, "{id}: re-encode");
            }
            Value::Bool(false) => {
                let e = got
                    .err()
                    .unwrap_or_else(|| panic!("{id}: expected invalid"));
                match &expect["error"] {
                    Value::Number(n) => {
                        assert_eq!(
                            u64::from(e.code().number()),
                            n.as_u64().unwrap(),
                            "{id}: {e}"
                        );
                    }
                    Value::String(s) => assert_eq!(s, "any"),
                    other => panic!("{id}: unknown error expectation {other}"),
                }
            }
            Value::String(s) => {
                assert_eq!(s, "either");
                // Either answer is allowed; it must still be an answer.
                let _ = got.map(|d| d.encode());
            }
            other => panic!("{id}: unknown valid expectation {other}"),
        }
        match expect.get("decode") {
            Some(Value::String(s)) if s == "error" => {
                assert!(decode(qr).is_err(), "{id}: decode must fail");
            }
            Some(Value::Object(want)) => {
                let d = decode(qr).unwrap_or_else(|e| panic!("{id}: decode {e:?}"));
                for (k, v) in d.sdk_fields().pairs() {
                    assert_eq!(want[k].as_str(), v, "{id}: decode {k}");
                }
            }
            _ => {}
        }
    }
}

#[test]
fn crc_md5_vectors() {
    let rows = load("crc_md5.jsonl");
    for row in &rows {
        let id = row["id"].as_str().unwrap();
        let input = row["input"].as_str().unwrap();
        let want = row["expect"].as_str().unwrap();
        match row["kind"].as_str().unwrap() {
            "crc16" => {
                let got = crc::checksum_hex(input.as_bytes());
                assert_eq!(std::str::from_utf8(&got).unwrap(), want, "{id}");
            }
            "md5" => assert_eq!(Md5::of(input).to_string(), want, "{id}"),
            k => panic!("{id}: unknown kind {k}"),
        }
    }
}

#[test]
fn real_samples() {
    let rows = load("real-samples.jsonl");
    for row in &rows {
        let id = row["id"].as_str().unwrap();
        let qr = row["qr"].as_str().unwrap();
        let expect = &row["expect"];
        let d = decode(qr).unwrap_or_else(|e| panic!("{id}: decode {e:?}"));
        assert_eq!(expect["decode"], "ok");
        assert_eq!(expect["reencode"], "identical");
        assert_eq!(d.encode(), qr, "{id}: re-encode");
        let fields = d.sdk_fields();
        let pairs = fields.pairs();
        for (k, v) in expect["fields"].as_object().unwrap() {
            let got = pairs.iter().find(|(name, _)| name == k).unwrap().1;
            assert_eq!(got, v.as_str(), "{id}: {k}");
        }
        // The CRC is right: verification fails, if at all, for another reason.
        assert_eq!(expect["crc_valid"], true);
        let n = qr.len();
        let stored = crc::parse_hex4(&qr[n - 4..]).unwrap();
        assert_eq!(crc::checksum(&qr.as_bytes()[..n - 4]), stored, "{id}: CRC");
        // Real bank QRs are valid, with dynamic QRs without tag 99 allowed on purpose.
        let lenient = VerifyOptions::new().allow_missing_expiration(true);
        verify_with(qr, 1_700_000_000_000, &lenient).unwrap_or_else(|e| panic!("{id}: {e:?}"));
    }
}
