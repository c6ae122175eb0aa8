//! `serde` support (feature `serde`), with the official SDK's field names.
//!
//! * [`Request`] serialises to the SDK's `IndividualInfo`/`MerchantInfo` JSON
//!   shape (flat, `optional` keys at the top level, currency as the number 116 or
//!   840, amount as decimal text, `expirationTimestamp` in milliseconds) and
//!   deserialises from it — a JSON body written for the JS SDK works unchanged
//!   (see [`crate::json`] for the accepted value types). A request with
//!   `merchantID` (at the top level or in `optional`) is a merchant's (tag
//!   30), otherwise an individual's (tag 29). It is read as JSON text (a
//!   number amount from its digits, never through a float), so it needs
//!   `serde_json`'s deserializers: `from_str`, `from_slice`, `from_reader` and
//!   `from_value` (whose numbers `serde_json` already holds as floats).
//!   An expiration relative to `now` ([`Expiration::AfterMs`]) has no SDK
//!   equivalent and is written as our own key `expiresInMs`.
//! * [`Khqr`] serialises as the SDK's `data`: `{"qr": …, "md5": …}`; it
//!   deserialises from `{"qr": …}` (an `md5`, if present, must match).
//! * [`Decoded`] serialises as the SDK's 25 decode fields ([`SdkFields`]), which
//!   also deserialise (borrowing from the input).

use alloc::string::{String, ToString};

use serde::de::Error as _;
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::amount::Amount;
use crate::decode::Decoded;
use crate::fields::{json_key, Field};
use crate::hash::Md5;
use crate::payload::{Account, AmountInput, Expiration, Khqr, Request};

/// `[(request key, field)]` for fields that have a request key (checked at
/// compile time).
macro_rules! keyed {
    ($($f:ident),* $(,)?) => { [$((json_key!(Field::$f), Field::$f)),*] };
}

impl Serialize for Request<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let individual = matches!(self.account(), Account::Individual { .. });
        let head = keyed![
            BakongAccountId,
            MerchantName,
            AccountInformation,
            MerchantId,
            AcquiringBank
        ];
        for (key, f) in head {
            // An individual's account information and bank are optional, as
            // the SDK's `optional` keys; everything else here is always written.
            let optional =
                individual && matches!(f, Field::AccountInformation | Field::AcquiringBank);
            if let Some(v) = self.text(f).filter(|v| !optional || !v.is_empty()) {
                m.serialize_entry(key, v)?;
            }
        }
        let currency = self.currency_code();
        m.serialize_entry(json_key!(Field::TransactionCurrency), &currency.numeric())?;
        match self.amount_input() {
            None => {}
            Some(AmountInput::Text(t)) => {
                m.serialize_entry(json_key!(Field::TransactionAmount), &**t)?;
            }
            Some(AmountInput::MinorUnits(n)) => {
                let a = Amount::from_minor_units(*n, currency).map_err(S::Error::custom)?;
                m.serialize_entry(json_key!(Field::TransactionAmount), a.as_str())?;
            }
        }
        match self.expiration() {
            None => {}
            Some(Expiration::AtMs(ms)) => {
                m.serialize_entry(json_key!(Field::ExpirationTimestamp), &ms)?;
            }
            Some(Expiration::AfterMs(ms)) => m.serialize_entry(crate::json::EXPIRES_IN_MS, &ms)?,
        }
        let optional = keyed![
            MerchantCity,
            BillNumber,
            MobileNumber,
            StoreLabel,
            TerminalLabel,
            PurposeOfTransaction,
            LanguagePreference,
            MerchantNameAlternateLanguage,
            MerchantCityAlternateLanguage,
            UnionPayMerchantAccount,
            MerchantCategoryCode,
        ];
        for (key, f) in optional {
            if let Some(v) = self.text(f).filter(|v| !v.is_empty()) {
                m.serialize_entry(key, v)?;
            }
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Request<'static> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The whole object as JSON text: a number amount is then read from its
        // digits (`serde_json::from_str`), never through a float.
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        crate::json::read(None, raw.get()).map_err(D::Error::custom)
    }
}

impl Serialize for Khqr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("qr", self.as_str())?;
        m.serialize_entry("md5", &self.md5().to_string())?;
        m.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KhqrWire {
    qr: String,
    md5: Option<String>,
}

impl<'de> Deserialize<'de> for Khqr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = KhqrWire::deserialize(d)?;
        let md5 = Md5::of(&w.qr);
        if let Some(given) = w.md5 {
            if Md5::from_hex(&given) != Some(md5) {
                return Err(D::Error::custom("md5 does not match the qr string"));
            }
        }
        Ok(Khqr::from_parts(w.qr, md5))
    }
}

impl Serialize for Decoded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sdk_fields().serialize(s)
    }
}
