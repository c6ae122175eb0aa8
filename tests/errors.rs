//! Exact error codes and messages: every message names the field, its tag and
//! the limit or rule.

use bakong_khqr::{verify, Currency, ErrorCode, Field, MerchantInfo, Request};

const NOW: u64 = 1_700_000_000_000;

#[track_caller]
fn gen_err(r: &Request<'_>) -> (u16, String) {
    let e = r.generate(NOW).expect_err("must be refused");
    (e.code().number(), e.to_string())
}

fn base() -> Request<'static> {
    Request::individual("jonhsmith@nbcq", "Jonh Smith")
}

#[test]
fn generation_messages() {
    let cases: Vec<(Request<'static>, u16, &str)> = vec![
        (Request::individual("", "x"), 1, "Bakong account ID (tag 29/30 sub-tag 00) is missing or empty"),
        (
            Request::individual("a".repeat(33), "x"),
            6,
            "Bakong account ID (tag 29/30 sub-tag 00) is 33 UTF-16 code units long; the limit is 32",
        ),
        (
            Request::individual("a@b@c", "x"),
            3,
            "Bakong account ID (tag 29/30 sub-tag 00) must be name@bank: exactly one '@' with text on both sides and no whitespace: \"a@b@c\"",
        ),
        (Request::individual("a@b", "   "), 2, "merchant name (tag 59) is blank"),
        (Request::individual("a@b", "\u{200B}"), 2, "merchant name (tag 59) is blank"),
        (Request::merchant(bakong_khqr::MerchantInfo { bakong_account_id: "a@b", merchant_name: "Shop", merchant_id: " ", acquiring_bank: "Bank" }), 30, "merchant ID (tag 30 sub-tag 01) is blank"),
        (
            base().merchant_city("C".repeat(16)),
            21,
            "merchant city (tag 60) is 16 UTF-16 code units long; the limit is 15",
        ),
        (
            base().merchant_category_code("123"),
            51,
            "merchant category code (tag 52) must be exactly 4 digits (ISO 18245): \"123\"",
        ),
        (
            base().currency(Currency::Usd).amount("1.005").expires_in_ms(1),
            4,
            "transaction amount (tag 54) has more than 2 decimals; USD amounts are cents: \"1.005\"",
        ),
        (
            base().amount("100"),
            45,
            "expiration timestamp (tag 99 sub-tag 01) is required for a dynamic KHQR (one with an amount)",
        ),
        (
            base().amount("100").expires_at_ms(1_700_000_060),
            49,
            "expiration timestamp (tag 99 sub-tag 01) must be 13 digits of milliseconds since the Unix epoch: \"1700000060\"",
        ),
        (
            base().amount("100").expires_at_ms(NOW - 1),
            50,
            "expiration timestamp (tag 99 sub-tag 01) is before the creation time (now): \"1699999999999\"",
        ),
        (
            base().expires_in_ms(60_000),
            55,
            "expiration timestamp (tag 99 sub-tag 01) was given for a static KHQR (no amount, or zero); a static KHQR never expires",
        ),
        (
            base().merchant_name_alternate_language("ចន"),
            37,
            "language preference (tag 64 sub-tag 00) is required with a merchant name in the alternate language",
        ),
        (
            base().language_preference("km"),
            39,
            "merchant name in the alternate language (tag 64 sub-tag 01) is required with a language preference",
        ),
        (
            Request::individual("jonhsmith@nbcq", "Shop 😀"),
            53,
            "merchant name (tag 59) contains a character outside the Basic Multilingual Plane (readers disagree on its length): \"😀\"",
        ),
        (
            Request::individual("jonhsmith@nbcq", "Shop\nA"),
            53,
            "merchant name (tag 59) contains a control character: \"U+000A\"",
        ),
        (
            base()
                .bill_number("b".repeat(25))
                .mobile_number("1".repeat(25))
                .store_label("s".repeat(25))
                .terminal_label("t".repeat(25)),
            52,
            "additional data field template (tag 62) is 116 UTF-16 code units long; the limit is 99",
        ),
        (
            base().upi_merchant_account("UPI").currency(Currency::Usd),
            44,
            "UnionPay merchant account (tag 15) is only allowed with KHR",
        ),
    ];
    for (req, code, msg) in cases {
        assert_eq!(gen_err(&req), (code, msg.to_owned()));
    }
}

#[test]
fn sdk_precedence_wins_over_our_extra_rules() {
    // The SDK reports 7 for a long name before 45 for a missing expiration.
    let r = Request::individual("jonhsmith@nbcq", "N".repeat(26)).amount("100");
    assert_eq!(gen_err(&r).0, 7);
    // A blank name that is also too long: the SDK's 7 first.
    let r = Request::individual("jonhsmith@nbcq", " ".repeat(26));
    assert_eq!(gen_err(&r).0, 7);
    // Our refusals (here a control character) come after every SDK check.
    let r = Request::individual("jonhsmith@nbcq", "A\u{7}").merchant_city("C".repeat(16));
    assert_eq!(gen_err(&r).0, 21);
}

#[test]
fn verify_messages() {
    let good = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
    assert!(verify(good, NOW).is_ok());
    let e = verify("00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856b", NOW);
    assert!(e.is_ok(), "lower-case CRC hex is accepted");
    let expired = "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh9934001317000000000000113170000006000063044947";
    let e = verify(expired, 1_700_000_060_001).unwrap_err();
    assert_eq!(e.code(), ErrorCode::KhqrExpired);
    assert_eq!(
        e.to_string(),
        "KHQR expired at 1700000060000 ms since the Unix epoch; now is 1700000060001"
    );
    let e = verify("000201591AJonh63040000", NOW).unwrap_err();
    assert_eq!(e.code(), ErrorCode::KhqrInvalid);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<bakong_khqr::Error>();
    check::<bakong_khqr::Request<'static>>();
    check::<bakong_khqr::Khqr>();
    check::<bakong_khqr::Decoded<'static>>();
    check::<bakong_khqr::Md5>();
    check::<bakong_khqr::Amount>();
}

/// Payloads with a correct CRC, built by hand.
fn with_crc(body: &str) -> String {
    let mut s = format!("{body}6304");
    let crc = bakong_khqr::crc::checksum_hex(s.as_bytes());
    s.push_str(std::str::from_utf8(&crc).unwrap());
    s
}

#[test]
fn verify_refuses_repeated_sub_tags_and_amounts_generate_refuses() {
    let head = "000201010212";
    let tail = "5802KH5910Jonh Smith6010Phnom Penh99340013170000000000001131700000060000";
    // A second Bakong account ID inside tag 29: the SDK would pay the last one.
    let two_payees = with_crc(&format!(
        "{head}29310014jonhsmith@nbcq0009evil@hack52045999530384054041.50{tail}"
    ));
    let e = verify(&two_payees, NOW).unwrap_err();
    assert_eq!(e.code(), ErrorCode::DuplicateTag);
    assert_eq!(e.to_string(), "tag 29 sub-tag 00 appears more than once");
    // Decode reads it as the SDK does: the last one.
    assert_eq!(
        bakong_khqr::decode(&two_payees)
            .unwrap()
            .bakong_account_id(),
        Some("evil@hack")
    );
    // Two expirations in tag 99.
    let two_expiries = with_crc(
        "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh\
         9951001317000000000000113199999999999901131600000000000",
    );
    assert_eq!(
        verify(&two_expiries, NOW).unwrap_err().code(),
        ErrorCode::DuplicateTag
    );

    let amount = |currency: &str, amount: &str| {
        with_crc(&format!(
            "{head}29180014jonhsmith@nbcq52045999530{}{currency}54{:02}{amount}{tail}",
            currency.len(),
            amount.len()
        ))
    };
    assert!(verify(&amount("840", "1.50"), NOW).is_ok());
    assert!(
        verify(&amount("116", "5000.0"), NOW).is_ok(),
        "a zero fraction in KHR is whole riel"
    );
    for (cur, amt, code) in [
        ("840", "1.005", 4),
        ("116", "0.5", 4),
        ("840", "0", 47),
        ("116", "0.00", 47),
    ] {
        let e = verify(&amount(cur, amt), NOW).unwrap_err();
        assert_eq!(e.code().number(), code, "{cur} {amt}: {e}");
    }
}

/// A setter that does not apply to the request's kind is refused by generate
/// (code 60, naming the field), never dropped.
#[test]
fn setters_that_do_not_apply_are_refused() {
    let merchant = Request::merchant(bakong_khqr::MerchantInfo {
        bakong_account_id: "a@b",
        merchant_name: "Shop",
        merchant_id: "M1",
        acquiring_bank: "Bank",
    });
    assert!(merchant.generate(NOW).is_ok());
    let e = merchant
        .clone()
        .account_information("info")
        .generate(NOW)
        .unwrap_err();
    assert_eq!(e.code().number(), 60);
    assert_eq!(e.field(), bakong_khqr::Field::AccountInformation);
    assert_eq!(
        e.to_string(),
        "account information (tag 29 sub-tag 01) does not apply to a merchant's KHQR (tag 30); it belongs to an individual's (tag 29)"
    );
    let e = Request::individual("a@b", "Shop")
        .set(bakong_khqr::Field::MerchantId, "M1")
        .generate(NOW)
        .unwrap_err();
    assert_eq!(
        (e.code().number(), e.field()),
        (60, bakong_khqr::Field::MerchantId)
    );
    let e = Request::individual("a@b", "Shop")
        .set(bakong_khqr::Field::Crc, "ABCD")
        .generate(NOW)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "CRC (tag 63) cannot be set as text on a request"
    );
    // The generic setter and the named ones agree.
    assert_eq!(
        Request::individual("a@b", "Shop").set(bakong_khqr::Field::BillNumber, "1"),
        Request::individual("a@b", "Shop").bill_number("1")
    );
}

/// A merchant's ID or acquiring bank that is only white space: `generate`
/// refuses it (30, 31), and so does `verify` when it reads one.
#[test]
fn verify_refuses_what_generate_refuses_as_blank() {
    let tail = "52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh\
                99340013170000000000001131700000060000";
    let merchant = |id: &str, bank: &str| {
        let account = format!(
            "0014jonhsmith@nbcq01{:02}{id}02{:02}{bank}",
            id.encode_utf16().count(),
            bank.encode_utf16().count()
        );
        with_crc(&format!(
            "00020101021230{:02}{account}{tail}",
            account.encode_utf16().count()
        ))
    };
    assert!(verify(&merchant("MID-1", "Dev Bank"), NOW).is_ok());
    for (id, bank, code, field, message) in [
        (
            " ",
            "Dev Bank",
            30,
            Field::MerchantId,
            "merchant ID (tag 30 sub-tag 01) is blank",
        ),
        (
            "MID-1",
            "\u{200B} ",
            31,
            Field::AcquiringBank,
            "acquiring bank (tag 29/30 sub-tag 02) is blank",
        ),
    ] {
        let e = verify(&merchant(id, bank), NOW).unwrap_err();
        assert_eq!(
            (e.code().number(), e.field()),
            (code, field),
            "{id:?} {bank:?}"
        );
        assert_eq!(e.to_string(), message);
        let generated = Request::merchant(MerchantInfo {
            bakong_account_id: "jonhsmith@nbcq",
            merchant_name: "Jonh Smith",
            merchant_id: id,
            acquiring_bank: bank,
        })
        .generate(NOW)
        .unwrap_err();
        assert_eq!(
            (generated.code().number(), generated.field()),
            (code, field)
        );
    }
}
