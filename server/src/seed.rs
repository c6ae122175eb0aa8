//! A status in the JSON of the hosted service this server reproduces (moved
//! here from the library: only the server speaks this shape).

use bakong_khqr::status::TransactionStatus;
use bakong_khqr::{Amount, Currency};
use serde::Serialize;
use serde_json::value::RawValue;

/// Writes `status` exactly as the hosted service answers `/khqr/check/:tran_id`
/// and `/check_by_md5`:
///
/// * paid: `{"responseCode":0,"responseMessage":"Success","data":{"status":"SUCCESS","amount":10.00,"currency":"USD","hash":"…"}}`
///   — the amount a JSON number written from its decimal text with the
///   currency's decimals ([`amount_with_currency_decimals`]), never a float;
/// * pending: `{"responseCode":1,"responseMessage":"Transaction not found","data":null}`;
/// * failed and static QR (not in the hosted service's documentation; same
///   shape, our messages): `"Transaction failed"`,
///   `"Static KHQR cannot be checked"`;
/// * `username`, when given (the one stored with the QR), is added last:
///   `{…,"data":null,"username":"john"}` (the hosted service documents the
///   parameter but not where it comes back).
///
/// ```
/// use bakong_khqr::status::TransactionStatus;
/// use khqr_server::seed_json;
/// assert_eq!(
///     seed_json(&TransactionStatus::Pending, None),
///     r#"{"responseCode":1,"responseMessage":"Transaction not found","data":null}"#
/// );
/// assert_eq!(
///     seed_json(&TransactionStatus::Pending, Some("john")),
///     r#"{"responseCode":1,"responseMessage":"Transaction not found","data":null,"username":"john"}"#
/// );
/// ```
#[must_use]
#[allow(clippy::match_wildcard_for_single_variants)] // the library's enum may grow
pub fn seed_json(status: &TransactionStatus, username: Option<&str>) -> String {
    #[derive(Serialize)]
    struct Envelope<'a> {
        #[serde(rename = "responseCode")]
        response_code: u8,
        #[serde(rename = "responseMessage")]
        response_message: &'a str,
        data: Option<Data<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Data<'a> {
        status: &'a str,
        amount: &'a RawValue,
        currency: &'a str,
        hash: &'a str,
    }
    let not_paid = |message| Envelope {
        response_code: 1,
        response_message: message,
        data: None,
        username,
    };
    let amount;
    let envelope = match status {
        TransactionStatus::Paid(tx) => {
            let text = amount_with_currency_decimals(&tx.amount, &tx.currency);
            // The parser only lets plain decimal text through; anything else is
            // written as a JSON string rather than as invalid JSON.
            amount = RawValue::from_string(text.clone())
                .or_else(|_| RawValue::from_string(serde_json::Value::from(text).to_string()));
            match &amount {
                Ok(raw) => Envelope {
                    response_code: 0,
                    response_message: "Success",
                    data: Some(Data {
                        status: "SUCCESS",
                        amount: raw,
                        currency: &tx.currency,
                        hash: &tx.hash,
                    }),
                    username,
                },
                Err(_) => not_paid("Amount unreadable"),
            }
        }
        TransactionStatus::Pending => not_paid("Transaction not found"),
        TransactionStatus::Failed => not_paid("Transaction failed"),
        TransactionStatus::AmountMismatch(_) => not_paid("Paid amount or currency is not the QR's"),
        // StaticQrUnsupported, and any status a later library version adds.
        _ => not_paid("Static KHQR cannot be checked"),
    };
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// Decimal text written with the decimals of `currency` (ISO 4217 letters or
/// numeric code): two for USD (`10` → `10.00`, `1.5` → `1.50`), none for KHR
/// (`100.0` → `100`), read and written by [`Amount`] (leading zeros dropped).
/// Text that would need rounding (`1.505` USD), an unknown currency, text that
/// is not plain decimal or over `u64::MAX` minor units is returned unchanged:
/// never rounded.
///
/// ```
/// use khqr_server::amount_with_currency_decimals;
/// assert_eq!(amount_with_currency_decimals("10", "USD"), "10.00");
/// assert_eq!(amount_with_currency_decimals("100.0", "KHR"), "100");
/// assert_eq!(amount_with_currency_decimals("1.505", "USD"), "1.505");
/// ```
#[must_use]
pub fn amount_with_currency_decimals(text: &str, currency: &str) -> String {
    let Ok(currency) = Currency::parse(currency) else {
        return text.into();
    };
    Amount::read_minor_units(text, currency).map_or_else(
        |_| text.into(),
        |minor| Amount::with_decimals(minor, currency),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bakong_khqr::status::{parse_transaction, HttpResponse};

    fn paid(amount: &str, currency: &str) -> TransactionStatus {
        let body = format!(
            r#"{{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":{{"hash":"83jhd7","currency":"{currency}","amount":{amount}}}}}"#
        );
        parse_transaction(&HttpResponse::new(200, body.into_bytes())).unwrap()
    }

    #[test]
    fn seed_shapes() {
        assert_eq!(
            seed_json(&paid("10", "USD"), None),
            r#"{"responseCode":0,"responseMessage":"Success","data":{"status":"SUCCESS","amount":10.00,"currency":"USD","hash":"83jhd7"}}"#
        );
        assert_eq!(
            seed_json(&paid("25000", "KHR"), None),
            r#"{"responseCode":0,"responseMessage":"Success","data":{"status":"SUCCESS","amount":25000,"currency":"KHR","hash":"83jhd7"}}"#
        );
        assert_eq!(
            seed_json(&paid("90071992547409.9", "USD"), Some("a\"b")),
            r#"{"responseCode":0,"responseMessage":"Success","data":{"status":"SUCCESS","amount":90071992547409.90,"currency":"USD","hash":"83jhd7"},"username":"a\"b"}"#
        );
        assert_eq!(
            seed_json(&TransactionStatus::Failed, None),
            r#"{"responseCode":1,"responseMessage":"Transaction failed","data":null}"#
        );
    }

    #[test]
    fn decimals() {
        assert_eq!(amount_with_currency_decimals("1.5", "840"), "1.50");
        assert_eq!(amount_with_currency_decimals("1.500", "USD"), "1.50");
        assert_eq!(amount_with_currency_decimals("7", "usd"), "7.00");
        assert_eq!(amount_with_currency_decimals("7.10", "KHR"), "7.10");
        assert_eq!(amount_with_currency_decimals("7", "EUR"), "7");
        assert_eq!(amount_with_currency_decimals("1.", "USD"), "1.");
        assert_eq!(amount_with_currency_decimals("abc", "USD"), "abc");
    }
}
