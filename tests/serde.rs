//! `serde` round trips with the official SDK's field names.

mod common;

use bakong_khqr::{Currency, Decoded, Khqr, Request, SdkFields};
use serde_json::{json, Value};

const NOW: u64 = 1_700_000_000_000;

fn vectors(name: &str) -> Vec<Value> {
    common::vector_lines(name)
}

#[test]
fn sdk_request_json_works_unchanged_and_round_trips() {
    let mut n = 0;
    for row in vectors("generate.jsonl") {
        let Some(qr) = row["expect"]["qr"].as_str() else {
            continue;
        };
        let id = row["id"].as_str().unwrap();
        let now = row["now_ms"].as_u64().unwrap();
        let req: Request<'static> =
            serde_json::from_value(row["request"].clone()).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(req.generate(now).unwrap().as_str(), qr, "{id}");
        let json = serde_json::to_value(&req).unwrap();
        let back: Request<'static> = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, req, "{id}: {json}");
        assert_eq!(back.generate(now).unwrap().as_str(), qr, "{id}");
        n += 1;
    }
    assert!(n > 60, "{n}");
}

#[test]
fn request_serialises_in_the_sdk_shape() {
    let req = Request::merchant("jonhsmith@nbcq", "Jonh Smith", "123456", "Dev Bank")
        .currency(Currency::Usd)
        .amount_minor_units(150)
        .expires_at_ms(NOW + 60_000)
        .bill_number("#1");
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        json!({"bakongAccountID": "jonhsmith@nbcq", "merchantName": "Jonh Smith", "merchantID": "123456",
               "acquiringBank": "Dev Bank", "currency": 840, "amount": "1.50",
               "expirationTimestamp": 1_700_000_060_000_u64, "billNumber": "#1"})
    );
    let relative = Request::individual("a@b", "x")
        .amount("1")
        .expires_in_ms(600_000);
    let v = serde_json::to_value(&relative).unwrap();
    assert_eq!(v["expiresInMs"], 600_000);
    let back: Request<'static> = serde_json::from_value(v).unwrap();
    assert_eq!(back, relative);
    let e = serde_json::from_value::<Request<'static>>(
        json!({"bakongAccountID": "a@b", "merchantName": "x", "amount": {}}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "transaction amount (tag 54) must be text");
}

#[test]
fn khqr_serialises_as_the_sdk_data_object() {
    let khqr = Request::individual("jonhsmith@nbcq", "Jonh Smith")
        .generate(NOW)
        .unwrap();
    let v = serde_json::to_value(&khqr).unwrap();
    assert_eq!(
        v,
        json!({"qr": "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B",
               "md5": "cba0b1de19ac736653267fc127e08b92"})
    );
    let back: Khqr = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(back, khqr);
    let mut wrong = v;
    wrong["md5"] = json!("00000000000000000000000000000000");
    assert!(serde_json::from_value::<Khqr>(wrong).is_err());
}

#[test]
fn decoded_serialises_as_the_sdk_decode_output() {
    for row in vectors("verify.jsonl") {
        let Some(want) = row["expect"]["decode"].as_object() else {
            continue;
        };
        let qr = row["qr"].as_str().unwrap();
        let d = Decoded::parse(qr).unwrap();
        let got = serde_json::to_value(&d).unwrap();
        assert_eq!(got, Value::Object(want.clone()), "{}", row["id"]);
        let text = serde_json::to_string(&d).unwrap();
        let keys: Vec<&str> = SdkFields::KEYS.to_vec();
        let mut last = 0;
        for k in keys {
            let at = text.find(&format!("\"{k}\"")).unwrap();
            assert!(at >= last, "{k} out of the SDK's order");
            last = at;
        }
        let fields: SdkFields<'_> = serde_json::from_str(&text).unwrap();
        assert_eq!(fields, d.sdk_fields());
    }
}
