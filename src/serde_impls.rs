//! `serde` support (feature `serde`), with the official SDK's field names.
//!
//! * [`Request`] serialises to the SDK's `IndividualInfo`/`MerchantInfo` JSON
//!   shape (flat, `optional` keys at the top level, currency as the number 116 or
//!   840, amount as decimal text, `expirationTimestamp` in milliseconds) and
//!   deserialises from it — a JSON body written for the JS SDK works unchanged
//!   (see [`crate::json`] for the accepted value types). A request with
//!   `merchantID` is a merchant's (tag 30), otherwise an individual's (tag 29).
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
use crate::json::{request_from_value, Kind};
use crate::payload::{non_empty, Account, AmountInput, Expiration, Khqr, Request};

impl Serialize for Request<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(json_key!(Field::BakongAccountId), &*self.bakong_account_id)?;
        m.serialize_entry(json_key!(Field::MerchantName), &*self.merchant_name)?;
        match &self.account {
            Account::Individual {
                account_information,
                acquiring_bank,
            } => {
                if let Some(v) = non_empty(account_information) {
                    m.serialize_entry(json_key!(Field::AccountInformation), v)?;
                }
                if let Some(v) = non_empty(acquiring_bank) {
                    m.serialize_entry(json_key!(Field::AcquiringBank), v)?;
                }
            }
            Account::Merchant {
                merchant_id,
                acquiring_bank,
            } => {
                m.serialize_entry(json_key!(Field::MerchantId), &**merchant_id)?;
                m.serialize_entry(json_key!(Field::AcquiringBank), &**acquiring_bank)?;
            }
        }
        m.serialize_entry(
            json_key!(Field::TransactionCurrency),
            &self.currency.numeric(),
        )?;
        match &self.amount {
            None => {}
            Some(AmountInput::Text(t)) => {
                m.serialize_entry(json_key!(Field::TransactionAmount), &**t)?
            }
            Some(AmountInput::MinorUnits(n)) => {
                let a = Amount::from_minor_units(*n, self.currency).map_err(S::Error::custom)?;
                m.serialize_entry(json_key!(Field::TransactionAmount), a.as_str())?;
            }
        }
        match self.expiration {
            None => {}
            Some(Expiration::AtMs(ms)) => {
                m.serialize_entry(json_key!(Field::ExpirationTimestamp), &ms)?
            }
            Some(Expiration::AfterMs(ms)) => m.serialize_entry(crate::json::EXPIRES_IN_MS, &ms)?,
        }
        let optional = [
            (json_key!(Field::MerchantCity), &self.merchant_city),
            (json_key!(Field::BillNumber), &self.bill_number),
            (json_key!(Field::MobileNumber), &self.mobile_number),
            (json_key!(Field::StoreLabel), &self.store_label),
            (json_key!(Field::TerminalLabel), &self.terminal_label),
            (
                json_key!(Field::PurposeOfTransaction),
                &self.purpose_of_transaction,
            ),
            (
                json_key!(Field::LanguagePreference),
                &self.language_preference,
            ),
            (
                json_key!(Field::MerchantNameAlternateLanguage),
                &self.merchant_name_alternate_language,
            ),
            (
                json_key!(Field::MerchantCityAlternateLanguage),
                &self.merchant_city_alternate_language,
            ),
            (
                json_key!(Field::UnionPayMerchantAccount),
                &self.upi_merchant_account,
            ),
            (
                json_key!(Field::MerchantCategoryCode),
                &self.merchant_category_code,
            ),
        ];
        for (key, value) in optional {
            if let Some(v) = non_empty(value) {
                m.serialize_entry(key, v)?;
            }
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Request<'static> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let kind = if v
            .get(json_key!(Field::MerchantId))
            .is_some_and(|m| !m.is_null())
        {
            Kind::Merchant
        } else {
            Kind::Individual
        };
        request_from_value(kind, &v).map_err(D::Error::custom)
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
