//! Fuzz oracles for the feature-gated parts: Bakong's status answers (feature
//! `status`) and the KHQR card (feature `render`).
//!
//! Shared by the fuzz targets `status_response` and `card` and by the crate's
//! `tests/fuzz_feature_regressions.rs`, which replays the committed seeds and
//! regressions on stable. Each function panics when the oracle is violated, and
//! only then. Depends on `bakong_khqr` and `std` only.

use bakong_khqr::render::{card_layout, card_png, CardOptions};
use bakong_khqr::status::{
    parse_account, parse_deeplink, parse_renew_token, parse_transaction, parse_transaction_list,
    HttpResponse, ResponseError, TransactionStatus,
};
use bakong_khqr::{Currency, Request};

/// The first two bytes choose the HTTP status (100–599) and a `Retry-After`
/// header; the rest is the body. Every parser must answer with a typed outcome
/// or error; a paid transaction's amount must be plain decimal text that
/// converts to minor units when its currency is KHR or USD; a 403 never reads
/// the body.
pub fn status_response_oracle(data: &[u8]) {
    let (head, body) = data.split_at(data.len().min(2));
    let status = 100 + u16::from(head.first().copied().unwrap_or(200)) * 2;
    let mut response = HttpResponse::new(status, body.to_vec());
    if head.get(1).is_some_and(|b| b % 3 == 0) {
        let value = String::from_utf8_lossy(&body[..body.len().min(12)]).into_owned();
        response = response.with_header("Retry-After", value);
    }
    match parse_transaction(&response) {
        Ok(TransactionStatus::Paid(tx)) => {
            assert!((200..300).contains(&status), "paid under HTTP {status}");
            let (int, frac) = tx.amount.split_once('.').unwrap_or((&tx.amount, ""));
            assert!(
                !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()),
                "amount {:?} is not decimal",
                tx.amount
            );
            assert!(frac.bytes().all(|b| b.is_ascii_digit()));
            if tx.currency() == Some(Currency::Khr) && frac.bytes().all(|b| b == b'0') {
                // Whole riel convert exactly unless they overflow u64.
                if int.len() < 19 {
                    assert!(tx.minor_units().is_some(), "{:?}", tx.amount);
                }
            }
        }
        Ok(_) => assert!(
            (200..300).contains(&status) || (400..500).contains(&status),
            "a status under HTTP {status}"
        ),
        Err(ResponseError::Forbidden) => assert_eq!(status, 403),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let _ = parse_transaction_list(&response);
    let _ = parse_account(&response);
    let _ = parse_deeplink(&response);
    let _ = parse_renew_token(&response);
}

/// Any merchant name and amount: the card lays out with every text box inside
/// the card, or fails with a typed error; when it lays out, the PNG renders.
pub fn card_oracle(data: &[u8]) {
    let (head, rest) = data.split_at(data.len().min(3));
    let Ok(name) = std::str::from_utf8(rest) else {
        return;
    };
    let currency = if head.first().is_some_and(|b| b & 1 == 1) {
        Currency::Usd
    } else {
        Currency::Khr
    };
    let amount = u64::from(head.get(1).copied().unwrap_or(0)) * 1_000_003
        + u64::from(head.get(2).copied().unwrap_or(0));
    let now = 1_700_000_000_000;
    let mut request = Request::individual("fuzz@test", name).currency(currency);
    if amount > 0 {
        request = request.amount_minor_units(amount).expires_in_ms(600_000);
    }
    let Ok(khqr) = request.generate(now) else {
        return;
    };
    let options = CardOptions::default().scale(1);
    match card_layout(khqr.as_str(), &options) {
        Ok(layout) => {
            let boxes = [Some(layout.name), layout.amount, layout.currency];
            for b in boxes.into_iter().flatten() {
                assert!(
                    b.right() <= layout.width && b.bottom() <= layout.height,
                    "text box {b:?} outside the {}×{} card",
                    layout.width,
                    layout.height
                );
            }
            let png = card_png(khqr.as_str(), &options).expect("a card that lays out renders");
            assert_eq!(&png[1..4], b"PNG");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
