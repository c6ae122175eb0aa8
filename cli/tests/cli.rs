//! The `khqr` binary: outputs, exit codes, files.

mod common;

use common::{json_of, khqr, khqr_with};

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
    let o = khqr_with(
        &["create", "--kind", "merchant", "--request", "-"],
        &[],
        r#"{"bakongAccountID":"jonhsmith@nbcq","merchantName":"Jonh Smith","merchantCity":"Siem Reap","merchantID":"123456","acquiringBank":"Dev Bank"}"#,
    );
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
    assert_eq!(v["card"], stand.display().to_string());
    assert!(v.get("stand").is_none(), "one word: card");
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
    let o = khqr_with(
        &["verify", "-", "--now-ms", "1700000000000"],
        &[],
        &format!("{good}\n"),
    );
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
    // The library's error, as verify reports it.
    assert_eq!(
        json_of(&o)["error"],
        serde_json::json!({"code": 8, "name": "KHQR_INVALID",
            "message": "CRC (tag 63) is 856C but the payload's CRC-16/CCITT-FALSE is 856B",
            "sdkMessage": "KHQR provided is invalid"})
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "khqr: not a KHQR: CRC (tag 63) is 856C but the payload's CRC-16/CCITT-FALSE is 856B\n"
    );
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

#[test]
fn card_svg_flag_writes_the_print_card() {
    let dir = std::env::temp_dir().join(format!("khqr-cli-card-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("card.svg");
    let o = khqr(&[
        "create",
        "--bakong-id",
        "coffee@abaa",
        "--merchant-name",
        "ហាងកាហ្វេ Coffee",
        "--amount",
        "12.5",
        "--now-ms",
        "1700000000000",
        "--card-svg",
        svg.to_str().unwrap(),
        "--scale",
        "4",
        "--icon",
        "bakong",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json_of(&o);
    assert_eq!(v["card_svg"], svg.display().to_string());
    let options = bakong_khqr::render::CardOptions::default()
        .scale(4)
        .centre_icon(bakong_khqr::render::CentreIcon::BakongRed);
    let qr = v["qr"].as_str().unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(text, bakong_khqr::render::card_svg(qr, &options).unwrap());
    assert!(text.contains("viewBox=\"0 0 1200 1740\""));
    // `render` takes it as its only output; a payload a card cannot show is exit 1.
    let o = khqr(&["render", qr, "--card-svg", svg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(&svg).unwrap(),
        bakong_khqr::render::card_svg(qr, &bakong_khqr::render::CardOptions::default()).unwrap()
    );
    let bad = khqr(&["render", "nonsense", "--card-svg", svg.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn flags_and_keys_of_the_other_kind_are_refused_not_ignored() {
    let base = ["create", "--bakong-id", "a@b", "--merchant-name", "X"];
    let o = khqr(&[&base[..], &["--merchant-id", "M1"]].concat());
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["code"], 60);
    assert_eq!(v["error"]["name"], "INVALID_REQUEST");
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        "khqr: merchant ID (tag 30 sub-tag 01) does not apply to an individual's KHQR (tag 29); it belongs to a merchant's (tag 30)\n"
    );
    let merchant = [
        "--kind",
        "merchant",
        "--merchant-id",
        "M1",
        "--acquiring-bank",
        "Dev Bank",
    ];
    let o = khqr(&[&base[..], &merchant[..], &["--account-information", "012"]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["code"], 60);
    // The kind's own flags still apply.
    let o = khqr(&[&base[..], &merchant[..], &["--now-ms", "1700000000000"]].concat());
    assert!(o.status.success());
    let qr = json_of(&o)["qr"].as_str().unwrap().to_owned();
    let d = bakong_khqr::decode(&qr).unwrap();
    assert_eq!(d.merchant_id(), Some("M1"));
    assert_eq!(d.acquiring_bank(), Some("Dev Bank"));
    // The JSON request likewise.
    let o = khqr(&[
        "create",
        "--request",
        r#"{"bakongAccountID":"a@b","merchantName":"X","merchantID":"M1"}"#,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["code"], 60);
}

#[test]
fn a_json_number_amount_is_read_exactly() {
    let create = |amount: &str| {
        khqr(&[
            "create",
            "--request",
            &format!(
                r#"{{"bakongAccountID":"a@b","merchantName":"X","currency":"USD","amount":{amount},"expiresInMs":600000}}"#
            ),
            "--now-ms",
            "1700000000000",
        ])
    };
    let o = create("0.30000000000000001");
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["code"], 4);
    assert_eq!(
        v["error"]["message"],
        "transaction amount (tag 54) has more than 2 decimals; USD amounts are cents: \"0.30000000000000001\""
    );
    let o = create("1.50");
    assert!(o.status.success());
    let qr = json_of(&o)["qr"].as_str().unwrap().to_owned();
    assert_eq!(
        bakong_khqr::decode(&qr).unwrap().transaction_amount(),
        Some("1.50")
    );
}
