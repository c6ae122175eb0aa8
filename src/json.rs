//! Requests in the official SDK's JSON shape (feature `serde`).
//!
//! The JavaScript SDK takes `IndividualInfo` / `MerchantInfo` objects; written as
//! JSON they look like
//!
//! ```json
//! {"bakongAccountID": "jonhsmith@nbcq", "merchantName": "Jonh Smith",
//!  "merchantCity": "Phnom Penh", "currency": 840, "amount": "1.5",
//!  "expirationTimestamp": 1700000060000}
//! ```
//!
//! with the optional keys either at the top level or inside an `"optional"`
//! object, as in the SDK's constructor. [`request_from_json`] reads exactly that:
//!
//! * text fields: strings, or numbers (written as JSON wrote them, as the SDK
//!   stringifies them); `null` and `""` mean absent, as in the SDK;
//! * `currency`: `116`/`840` as number or string, or `"KHR"`/`"USD"`;
//! * `amount`: decimal text or a JSON number (read from its text, never through
//!   a float); `0` or absent makes a static KHQR;
//! * `expirationTimestamp`: whole milliseconds, as a number or a digit string;
//!   or our own `expiresInMs`, milliseconds after the `now` of generation.
//!
//! Unknown keys are refused (a misspelt `"ammount"` must not silently make a
//! static QR).
//!
//! ```
//! use bakong_khqr::json::{request_from_json, Kind};
//!
//! let req = request_from_json(Kind::Individual, r#"{"bakongAccountID":"jonhsmith@nbcq",
//!     "merchantName":"Jonh Smith","merchantCity":"Phnom Penh"}"#)?;
//! let khqr = req.generate(1_700_000_000_000)?;
//! assert_eq!(khqr.md5().to_string(), "cba0b1de19ac736653267fc127e08b92");
//! # Ok::<(), bakong_khqr::Error>(())
//! ```

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::amount::Currency;
use crate::error::{Error, ErrorCode, Field};
use crate::fields::json_key;
use crate::payload::{AmountInput, Expiration, MerchantInfo, Request, OPTIONAL_TEXT_FIELDS};

/// Which SDK class the JSON stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `IndividualInfo`: tag 29.
    Individual,
    /// `MerchantInfo`: tag 30.
    Merchant,
}

impl Kind {
    /// Reads `"individual"` or `"merchant"`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "individual" => Some(Kind::Individual),
            "merchant" => Some(Kind::Merchant),
            _ => None,
        }
    }
}

/// Our own key beside the SDK's: an expiration relative to `now`.
pub(crate) const EXPIRES_IN_MS: &str = "expiresInMs";

/// The field of a request key: the SDK's keys from the field table, and ours.
fn key_field(key: &str) -> Option<Field> {
    if key == EXPIRES_IN_MS {
        return Some(Field::ExpirationTimestamp);
    }
    Field::from_json_key(key)
}

fn invalid(field: Field, why: &'static str) -> Error {
    Error::reason(ErrorCode::InvalidRequest, field, why)
}

/// Reads a request from JSON text in the SDK's shape (see the module docs).
///
/// # Errors
/// [`ErrorCode::InvalidRequest`] (60) for text that is not a JSON object, an
/// unknown key, or a value of the wrong type (an object where text belongs; a
/// fractional, negative or non-numeric expiration); the currency's own errors
/// (19, 28). Everything else is checked by [`Request::generate`].
pub fn request_from_json(kind: Kind, json: &str) -> Result<Request<'static>, Error> {
    let v: Value = serde_json::from_str(json).map_err(|e| {
        Error::reason_with(
            ErrorCode::InvalidRequest,
            Field::Request,
            "is not valid JSON",
            &e.to_string(),
        )
    })?;
    request_from_value(kind, &v)
}

/// Reads a request from a parsed JSON value in the SDK's shape.
///
/// # Errors
/// As [`request_from_json`].
pub fn request_from_value(kind: Kind, v: &Value) -> Result<Request<'static>, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(Field::Request, "must be a JSON object"))?;
    let mut flat = Map::new();
    for (k, val) in obj {
        if k == "optional" {
            match val {
                Value::Object(o) => {
                    for (k2, v2) in o {
                        flat.insert(k2.clone(), v2.clone());
                    }
                }
                Value::Null => {}
                _ => {
                    return Err(invalid(
                        Field::Request,
                        "has an \"optional\" that is not an object",
                    ))
                }
            }
        } else {
            flat.insert(k.clone(), val.clone());
        }
    }
    for k in flat.keys() {
        if key_field(k).is_none() {
            return Err(Error::reason_with(
                ErrorCode::InvalidRequest,
                Field::Request,
                "has an unknown key",
                k,
            ));
        }
    }
    let text = |field: Field| -> Result<Option<Cow<'static, str>>, Error> {
        match field.json_key().and_then(|k| flat.get(k)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(Cow::Owned(s.clone()))),
            Some(Value::Number(n)) => Ok(Some(Cow::Owned(number_text(n)))),
            Some(_) => Err(invalid(field, "must be text")),
        }
    };
    let id = text(Field::BakongAccountId)?.unwrap_or_default();
    let name = text(Field::MerchantName)?.unwrap_or_default();
    let mut req = match kind {
        Kind::Individual => {
            let mut r = Request::individual(id, name);
            for f in [Field::AccountInformation, Field::AcquiringBank] {
                if let Some(t) = text(f)? {
                    r = r.set(f, t);
                }
            }
            r
        }
        Kind::Merchant => Request::merchant(MerchantInfo {
            bakong_account_id: id,
            merchant_name: name,
            merchant_id: text(Field::MerchantId)?.unwrap_or_default(),
            acquiring_bank: text(Field::AcquiringBank)?.unwrap_or_default(),
        }),
    };
    if let Some(c) = text(Field::MerchantCity)? {
        req = req.merchant_city(c);
    }
    if let Some(c) = text(Field::TransactionCurrency)? {
        req = req.currency(Currency::parse(&c)?);
    }
    if let Some(a) = text(Field::TransactionAmount)? {
        req = req.amount(AmountInput::Text(a));
    }
    let mut expiration = match flat.get(json_key!(Field::ExpirationTimestamp)) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::Number(n)) => Some(Expiration::AtMs(n.as_u64().ok_or_else(|| {
            invalid(
                Field::ExpirationTimestamp,
                "must be a whole, non-negative number of milliseconds",
            )
        })?)),
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 19 => {
            Some(Expiration::AtMs(s.parse().map_err(|_| {
                invalid(Field::ExpirationTimestamp, "is too large")
            })?))
        }
        Some(_) => {
            return Err(invalid(
                Field::ExpirationTimestamp,
                "must be a whole, non-negative number of milliseconds",
            ))
        }
    };
    if let Some(v) = flat.get(EXPIRES_IN_MS).filter(|v| !v.is_null()) {
        if expiration.is_some() {
            return Err(invalid(
                Field::ExpirationTimestamp,
                "has both expirationTimestamp and expiresInMs",
            ));
        }
        let ms = v.as_u64().ok_or_else(|| {
            invalid(
                Field::ExpirationTimestamp,
                "expiresInMs must be a whole, non-negative number of milliseconds",
            )
        })?;
        expiration = Some(Expiration::AfterMs(ms));
    }
    req = req.expiration_at(expiration);
    for f in OPTIONAL_TEXT_FIELDS {
        if let Some(t) = text(f)? {
            req = req.set(f, t);
        }
    }
    Ok(req)
}

/// A JSON number's text as JavaScript's `String()` would write it for the values
/// that matter here: integers as digits, `100.0` as `100`. Read from the number's
/// own text; no float arithmetic.
fn number_text(n: &serde_json::Number) -> String {
    let s = n.to_string();
    match s.strip_suffix(".0") {
        Some(int) => int.to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let r = request_from_json(
            Kind::Individual,
            r#"{"bakongAccountID":"a@b","merchantName":1234,"optional":{"currency":"USD","amount":100.0,"expirationTimestamp":"1700000060000"}}"#,
        )
        .unwrap();
        assert_eq!(r.text(Field::MerchantName), Some("1234"));
        assert_eq!(r.currency_code(), Currency::Usd);
        assert_eq!(r.amount_input(), Some(&AmountInput::Text("100".into())));
        assert_eq!(r.expiration(), Some(Expiration::AtMs(1_700_000_060_000)));
        for bad in [
            r#"{"bakongAccountID":{}}"#,
            r#"{"ammount":"1"}"#,
            r#"{"expirationTimestamp":1.5}"#,
            r#"{"expirationTimestamp":-1}"#,
            r#"{"expirationTimestamp":"abc"}"#,
            r"[]",
            r"{",
        ] {
            let e = request_from_json(Kind::Individual, bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidRequest, "{bad}");
        }
        let e = request_from_json(Kind::Individual, r#"{"ammount":"1"}"#).unwrap_err();
        assert_eq!(e.to_string(), "request has an unknown key: \"ammount\"");
    }
}
