//! The KHQR fields, in one table: where each sits (tag, sub-tag), its name, its
//! key in the official SDK's decode output and in its request JSON, its length
//! limit and the error codes of its rules.
//!
//! Everything else reads this table: [`Field`] and its [`Field::location`], the
//! SDK's 25 decode keys ([`crate::SdkFields::KEYS`]), the [`crate::Decoded`]
//! accessors, the JSON keys of [`crate::json`], and the per-field length rules of
//! both `generate` and `verify`. Rows are in the order of the SDK's decode output
//! (khqr-notes §7.2), then the templates and the two non-fields.
//!
//! Columns of a row:
//! * `@ tag T` a top-level data object; `@ tag T sub S` a sub-object of template
//!   T; `@ account S` sub-tag S of 29 or 30 (whichever the payload carries);
//!   `@ individual S` / `@ merchant S` the same, for one kind only;
//!   `@ accounts` the template 29/30 itself; `@ none` not in the payload;
//! * `sdk "key" as field => accessor`: the SDK's decode key, the [`SdkFields`]
//!   field and the generated [`Decoded`] accessor (absent: no accessor);
//! * `json "key"`: the key of the SDK's request object (`IndividualInfo`);
//! * `absent C`: verify's code when the data object is missing;
//! * `empty C`: the code when the value is empty (where it is not the length code);
//! * `max N => C`: the length limit in UTF-16 code units and its code.
//!
//! [`SdkFields`]: crate::SdkFields
//! [`Decoded`]: crate::Decoded

// The table writes tags and sub-tags with two digits, as they are on the wire
// (`sub 01`); they are decimal.
#![allow(clippy::zero_prefixed_literal)]

use crate::decode::{Decoded, MerchantType};
use crate::error::{Error, ErrorCode};
use crate::tlv::utf16_len;

/// Where a field sits in a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// A top-level data object.
    Top(u8),
    /// Sub-object `.1` of template `.0`.
    Sub(u8, u8),
    /// A sub-object of the merchant account template (29 or 30, whichever the
    /// payload carries last), for one kind only when given.
    Account(Option<MerchantType>, u8),
    /// The merchant account template itself (29 or 30).
    Accounts,
    /// Not a data object (the payload or the request as a whole).
    Nowhere,
}

macro_rules! place {
    (tag $t:literal) => {
        (Place::Top($t), concat!("tag ", stringify!($t)))
    };
    (tag $t:literal sub $s:literal) => {
        (
            Place::Sub($t, $s),
            concat!("tag ", stringify!($t), " sub-tag ", stringify!($s)),
        )
    };
    (account $s:literal) => {
        (
            Place::Account(None, $s),
            concat!("tag 29/30 sub-tag ", stringify!($s)),
        )
    };
    (individual $s:literal) => {
        (
            Place::Account(Some(MerchantType::Individual), $s),
            concat!("tag 29 sub-tag ", stringify!($s)),
        )
    };
    (merchant $s:literal) => {
        (
            Place::Account(Some(MerchantType::Merchant), $s),
            concat!("tag 30 sub-tag ", stringify!($s)),
        )
    };
    (accounts) => {
        (Place::Accounts, "tag 29/30")
    };
    (none) => {
        (Place::Nowhere, "")
    };
}

/// `Some(x)` for a column that is there, `None` for one that is not.
macro_rules! opt {
    () => {
        None
    };
    ($($e:tt)+) => {
        Some($($e)+)
    };
}

/// One generated [`Decoded`] accessor, for a row that names one.
macro_rules! accessor {
    ([$($doc:tt)*] $variant:ident) => {};
    ([$($doc:tt)*] $variant:ident $accessor:ident) => {
        impl<'a> Decoded<'a> {
            $($doc)*
            ///
            /// The raw value (of a repeated tag, the last, as the SDK reads it).
            #[must_use]
            pub fn $accessor(&self) -> Option<&'a str> {
                self.field(Field::$variant)
            }
        }
    };
}

/// The request JSON key of a field that has one, checked at compile time.
#[allow(unused_macros)]
macro_rules! json_key {
    ($field:expr) => {{
        const KEY: &str = match $field.json_key() {
            Some(k) => k,
            None => panic!("this field has no request key"),
        };
        KEY
    }};
}
#[allow(unused_imports)]
pub(crate) use json_key;

macro_rules! fields {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $name:literal @ [$($at:tt)+] {
            $(sdk $sdk:literal as $sdk_field:ident $(=> $accessor:ident)?;)?
            $(json $json:literal;)?
            $(absent $absent:ident;)?
            $(empty $empty:ident;)?
            $(max $max:literal => $too_long:ident;)?
        }
    )*) => {
        /// A field of a KHQR: an EMV data object, or a sub-field of a template
        /// (the rows of the field table, `src/fields.rs`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Field {
            $( $(#[$doc])* $variant, )*
        }

        impl Field {
            /// A lower-case name, e.g. `"merchant name"`.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self { $( Field::$variant => $name, )* }
            }

            /// Where the field sits, e.g. `"tag 62 sub-tag 01"`; empty for
            /// [`Field::Payload`] and [`Field::Request`].
            #[must_use]
            pub const fn location(self) -> &'static str {
                match self { $( Field::$variant => place!($($at)+).1, )* }
            }

            pub(crate) const fn place(self) -> Place {
                match self { $( Field::$variant => place!($($at)+).0, )* }
            }

            /// The key of the SDK's request object (`IndividualInfo` /
            /// `MerchantInfo`) for this field, if it has one.
            #[must_use]
            pub const fn json_key(self) -> Option<&'static str> {
                match self { $( Field::$variant => opt!($($json)?), )* }
            }

            /// Verify's code for a payload without this data object.
            pub(crate) const fn absent_code(self) -> Option<ErrorCode> {
                match self { $( Field::$variant => opt!($(ErrorCode::$absent)?), )* }
            }

            /// The code for an empty value, where it is not the length code.
            pub(crate) const fn empty_code(self) -> Option<ErrorCode> {
                match self { $( Field::$variant => opt!($(ErrorCode::$empty)?), )* }
            }

            /// The length limit in UTF-16 code units and the code for going over it.
            pub(crate) const fn limit(self) -> Option<(usize, ErrorCode)> {
                match self {
                    $( Field::$variant => opt!($(($max, ErrorCode::$too_long))?), )*
                }
            }
        }

        /// The SDK's decode keys with their fields, in the SDK's order.
        const SDK_KEYS: &[(&str, Field)] = &[ $( $( ($sdk, Field::$variant), )? )* ];

        /// The official SDK's decode output: 25 fields, all raw text or absent.
        ///
        /// Field names follow the SDK's JSON keys (see [`SdkFields::pairs`]),
        /// including its spelling `pointofInitiationMethod`. With the `serde`
        /// feature it serialises to exactly the SDK's JSON object (absent fields as
        /// `null`).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct SdkFields<'a> {
            $( $(
                #[doc = concat!("`", $sdk, "`: the ", $name, " (see [`Field`]).")]
                #[cfg_attr(feature = "serde", serde(rename = $sdk))]
                pub $sdk_field: Option<&'a str>,
            )? )*
        }

        impl<'a> SdkFields<'a> {
            /// `(SDK key, value)` for all 25 fields, in the SDK's order.
            #[must_use]
            pub fn pairs(&self) -> [(&'static str, Option<&'a str>); 25] {
                let v = [ $( $( self.$sdk_field, )? )* ];
                core::array::from_fn(|i| (Self::KEYS[i], v[i]))
            }
        }

        impl<'a> Decoded<'a> {
            /// The 25 fields of the official SDK's `BakongKHQR.decode`, same names
            /// and order.
            #[must_use]
            pub fn sdk_fields(&self) -> SdkFields<'a> {
                SdkFields { $( $( $sdk_field: self.field(Field::$variant), )? )* }
            }

        }

        $( accessor!([$(#[$doc])*] $variant $( $($accessor)? )?); )*

        /// Every field, in the table's order.
        pub(crate) const ALL: &[Field] = &[ $( Field::$variant, )* ];
    };
}

fields! {
    /// Merchant Account Information template, tag 29 (individual) or 30 (merchant).
    MerchantAccountInformation = "merchant account information" @ [accounts] {
        sdk "merchantType" as merchant_type;
        absent MerchantTypeRequired;
    }
    /// Bakong account ID, tag 29/30 sub-tag 00.
    BakongAccountId = "Bakong account ID" @ [account 00] {
        sdk "bakongAccountID" as bakong_account_id => bakong_account_id;
        json "bakongAccountID";
        empty BakongAccountIdRequired;
        max 32 => BakongAccountIdLengthInvalid;
    }
    /// Account information, tag 29 sub-tag 01 (individuals only).
    AccountInformation = "account information" @ [individual 01] {
        sdk "accountInformation" as account_information => account_information;
        json "accountInformation";
        max 32 => AccountInformationLengthInvalid;
    }
    /// Merchant ID, tag 30 sub-tag 01 (merchants only).
    MerchantId = "merchant ID" @ [merchant 01] {
        sdk "merchantID" as merchant_id => merchant_id;
        json "merchantID";
        empty MerchantIdRequired;
        max 32 => MerchantIdLengthInvalid;
    }
    /// Acquiring bank, tag 29/30 sub-tag 02.
    AcquiringBank = "acquiring bank" @ [account 02] {
        sdk "acquiringBank" as acquiring_bank => acquiring_bank;
        json "acquiringBank";
        empty AcquiringBankRequired;
        max 32 => AcquiringBankLengthInvalid;
    }
    /// Bill number, tag 62 sub-tag 01.
    BillNumber = "bill number" @ [tag 62 sub 01] {
        sdk "billNumber" as bill_number => bill_number;
        json "billNumber";
        max 25 => BillNumberLengthInvalid;
    }
    /// Mobile number, tag 62 sub-tag 02.
    MobileNumber = "mobile number" @ [tag 62 sub 02] {
        sdk "mobileNumber" as mobile_number => mobile_number;
        json "mobileNumber";
        max 25 => MobileNumberLengthInvalid;
    }
    /// Store label, tag 62 sub-tag 03.
    StoreLabel = "store label" @ [tag 62 sub 03] {
        sdk "storeLabel" as store_label => store_label;
        json "storeLabel";
        max 25 => StoreLabelLengthInvalid;
    }
    /// Terminal label, tag 62 sub-tag 07.
    TerminalLabel = "terminal label" @ [tag 62 sub 07] {
        sdk "terminalLabel" as terminal_label => terminal_label;
        json "terminalLabel";
        max 25 => TerminalLabelLengthInvalid;
    }
    /// Purpose of transaction, tag 62 sub-tag 08.
    PurposeOfTransaction = "purpose of transaction" @ [tag 62 sub 08] {
        sdk "purposeOfTransaction" as purpose_of_transaction => purpose_of_transaction;
        json "purposeOfTransaction";
        max 25 => PurposeOfTransactionLengthInvalid;
    }
    /// Language preference, tag 64 sub-tag 00, e.g. `km`.
    LanguagePreference = "language preference" @ [tag 64 sub 00] {
        sdk "languagePreference" as language_preference => language_preference;
        json "languagePreference";
        max 2 => LanguagePreferenceLengthInvalid;
    }
    /// Merchant name in the alternate language, tag 64 sub-tag 01.
    MerchantNameAlternateLanguage = "merchant name in the alternate language" @ [tag 64 sub 01] {
        sdk "merchantNameAlternateLanguage" as merchant_name_alternate_language
            => merchant_name_alternate_language;
        json "merchantNameAlternateLanguage";
        max 25 => MerchantNameAlternateLanguageLengthInvalid;
    }
    /// Merchant city in the alternate language, tag 64 sub-tag 02.
    MerchantCityAlternateLanguage = "merchant city in the alternate language" @ [tag 64 sub 02] {
        sdk "merchantCityAlternateLanguage" as merchant_city_alternate_language
            => merchant_city_alternate_language;
        json "merchantCityAlternateLanguage";
        max 15 => MerchantCityAlternateLanguageLengthInvalid;
    }
    /// Creation timestamp, tag 99 sub-tag 00 (milliseconds since the Unix epoch, as text).
    CreationTimestamp = "creation timestamp" @ [tag 99 sub 00] {
        sdk "creationTimestamp" as creation_timestamp => creation_timestamp;
    }
    /// Expiration timestamp, tag 99 sub-tag 01 (milliseconds since the Unix epoch, as text).
    ExpirationTimestamp = "expiration timestamp" @ [tag 99 sub 01] {
        sdk "expirationTimestamp" as expiration_timestamp => expiration_timestamp;
        json "expirationTimestamp";
    }
    /// Payload Format Indicator, tag 00 (`01`).
    PayloadFormatIndicator = "payload format indicator" @ [tag 00] {
        sdk "payloadFormatIndicator" as payload_format_indicator => payload_format_indicator;
        absent PayloadFormatIndicatorTagRequired;
        max 2 => PayloadFormatIndicatorLengthInvalid;
    }
    /// Point of Initiation Method, tag 01: `11` static, `12` dynamic.
    PointOfInitiationMethod = "point of initiation method" @ [tag 01] {
        sdk "pointofInitiationMethod" as point_of_initiation_method => point_of_initiation_method;
        max 2 => PointInitiationLengthInvalid;
    }
    /// UnionPay merchant account, tag 15.
    UnionPayMerchantAccount = "UnionPay merchant account" @ [tag 15] {
        sdk "unionPayMerchant" as union_pay_merchant => union_pay_merchant_account;
        json "upiMerchantAccount";
        max 99 => UpiAccountInformationLengthInvalid;
    }
    /// Merchant Category Code, tag 52 (ISO 18245, 4 digits).
    MerchantCategoryCode = "merchant category code" @ [tag 52] {
        sdk "merchantCategoryCode" as merchant_category_code => merchant_category_code;
        json "merchantCategoryCode";
        absent MerchantCategoryTagRequired;
        max 4 => MerchantCodeLengthInvalid;
    }
    /// Transaction Currency, tag 53 (ISO 4217 numeric: `116`, `840`).
    TransactionCurrency = "transaction currency" @ [tag 53] {
        sdk "transactionCurrency" as transaction_currency => transaction_currency;
        json "currency";
        absent CurrencyTypeRequired;
        max 3 => TransactionCurrencyLengthInvalid;
    }
    /// Transaction Amount, tag 54 (decimal text, e.g. `1.50`).
    TransactionAmount = "transaction amount" @ [tag 54] {
        sdk "transactionAmount" as transaction_amount => transaction_amount;
        json "amount";
        max 13 => TransactionAmountInvalid;
    }
    /// Country Code, tag 58 (`KH`).
    CountryCode = "country code" @ [tag 58] {
        sdk "countryCode" as country_code => country_code;
        absent CountryCodeTagRequired;
        max 3 => CountryCodeLengthInvalid;
    }
    /// Merchant Name, tag 59.
    MerchantName = "merchant name" @ [tag 59] {
        sdk "merchantName" as merchant_name => merchant_name;
        json "merchantName";
        absent MerchantNameRequired;
        empty MerchantNameRequired;
        max 25 => MerchantNameLengthInvalid;
    }
    /// Merchant City, tag 60.
    MerchantCity = "merchant city" @ [tag 60] {
        sdk "merchantCity" as merchant_city => merchant_city;
        json "merchantCity";
        absent MerchantCityTagRequired;
        empty MerchantCityTagRequired;
        max 15 => MerchantCityLengthInvalid;
    }
    /// CRC, tag 63 (four hex digits).
    Crc = "CRC" @ [tag 63] {
        sdk "crc" as crc => crc;
        absent CrcTagRequired;
    }
    /// Additional Data Field Template, tag 62.
    AdditionalDataFieldTemplate = "additional data field template" @ [tag 62] {
    }
    /// Merchant Information — Language Template, tag 64.
    MerchantInformationLanguageTemplate = "merchant information language template" @ [tag 64] {
    }
    /// KHQR timestamp template, tag 99.
    Timestamps = "timestamp template" @ [tag 99] {
    }
    /// The payload as a whole.
    Payload = "payload" @ [none] {
    }
    /// A request as a whole (its JSON shape).
    Request = "request" @ [none] {
    }
}

impl SdkFields<'_> {
    /// The SDK's JSON key names, in its order.
    pub const KEYS: [&'static str; 25] = {
        let mut keys = [""; 25];
        let mut i = 0;
        while i < SDK_KEYS.len() {
            keys[i] = SDK_KEYS[i].0;
            i += 1;
        }
        keys
    };
}

impl Field {
    /// The field whose request JSON key is `key`.
    #[cfg(feature = "serde")]
    pub(crate) fn from_json_key(key: &str) -> Option<Field> {
        ALL.iter().copied().find(|f| f.json_key() == Some(key))
    }

    /// The field a top-level data object or template is, by its tag;
    /// [`Field::Payload`] for a tag the table does not name.
    pub(crate) fn of_tag(id: u8) -> Field {
        match id {
            29 | 30 => Field::MerchantAccountInformation,
            _ => ALL
                .iter()
                .copied()
                .find(|f| f.place() == Place::Top(id))
                .unwrap_or(Field::Payload),
        }
    }

    /// The sub-fields of template `template` in the table, as `(sub-tag, field)`
    /// in sub-tag order; `N` must be their number (checked at compile time).
    pub(crate) const fn subs_of<const N: usize>(template: u8) -> [(u8, Field); N] {
        let mut out = [(0, Field::Payload); N];
        let (mut i, mut n) = (0, 0);
        while i < ALL.len() {
            if let Place::Sub(t, s) = ALL[i].place() {
                if t == template {
                    assert!(n < N, "more sub-fields than N");
                    out[n] = (s, ALL[i]);
                    n += 1;
                }
            }
            i += 1;
        }
        assert!(n == N, "fewer sub-fields than N");
        out
    }

    /// Refuses `v` if it is over the field's length limit (UTF-16 code units).
    #[inline]
    pub(crate) fn check_length(self, v: &str) -> Result<(), Error> {
        if let Some((max, code)) = self.limit() {
            // UTF-16 never needs more units than UTF-8 needs bytes: a value
            // within the limit in bytes is within it in characters.
            if v.len() <= max {
                return Ok(());
            }
            let n = utf16_len(v);
            if n > max {
                return Err(Error::too_long(code, self, n, max));
            }
        }
        Ok(())
    }

    /// Refuses `v` if it is empty (with the field's empty code, else its length
    /// code) or over the length limit.
    #[inline]
    pub(crate) fn check_present(self, v: &str) -> Result<(), Error> {
        if v.is_empty() {
            if let Some(code) = self.empty_code().or(self.limit().map(|l| l.1)) {
                return Err(Error::missing(code, self));
            }
        }
        self.check_length(v)
    }
}

/// The sub-fields of the additional data template (62), `(sub-tag, field)` in
/// sub-tag order, from the table.
pub(crate) const ADDITIONAL_DATA_FIELDS: [(u8, Field); 5] =
    Field::subs_of(crate::tag::ADDITIONAL_DATA);
/// The fields of `subs` (`(sub-tag, field)` pairs), without their sub-tags.
pub(crate) const fn fields_only<const N: usize>(subs: [(u8, Field); N]) -> [Field; N] {
    let mut out = [Field::Payload; N];
    let mut i = 0;
    while i < N {
        out[i] = subs[i].1;
        i += 1;
    }
    out
}

/// The sub-fields of the language template (64), from the table.
pub(crate) const LANGUAGE_FIELDS: [(u8, Field); 3] = Field::subs_of(crate::tag::LANGUAGE_TEMPLATE);

impl<'a> Decoded<'a> {
    /// The raw value of `field` in this payload: a data object's value, a
    /// template sub-object's value, or for [`Field::MerchantAccountInformation`]
    /// the merchant type as the SDK reports it (`"29"` or `"30"`). Of a repeated
    /// tag or sub-tag, the last (as the official SDK reads it; [`crate::verify`]
    /// refuses repeats). `None` when absent, and for a field that is not a data
    /// object ([`Field::Payload`]).
    ///
    /// ```
    /// use bakong_khqr::{Decoded, Field};
    /// let d = Decoded::parse("00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B")?;
    /// assert_eq!(d.field(Field::MerchantCity), Some("Phnom Penh"));
    /// assert_eq!(d.field(Field::BakongAccountId), Some("jonhsmith@nbcq"));
    /// assert_eq!(d.field(Field::MerchantAccountInformation), Some("29"));
    /// # Ok::<(), bakong_khqr::Error>(())
    /// ```
    #[must_use]
    pub fn field(&self, field: Field) -> Option<&'a str> {
        match field.place() {
            Place::Top(id) => self.value(id),
            Place::Sub(id, sub) => self.sub_value(id, sub),
            Place::Account(kind, sub) => {
                let t = self.merchant_type()?;
                if kind.is_some_and(|k| k != t) {
                    return None;
                }
                self.sub_value(t.tag(), sub)
            }
            Place::Accounts => self.merchant_type().map(MerchantType::as_str),
            Place::Nowhere => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag;

    #[test]
    fn table_agrees_with_the_tag_constants() {
        let tops = [
            (Field::PayloadFormatIndicator, tag::PAYLOAD_FORMAT_INDICATOR),
            (
                Field::PointOfInitiationMethod,
                tag::POINT_OF_INITIATION_METHOD,
            ),
            (
                Field::UnionPayMerchantAccount,
                tag::UNIONPAY_MERCHANT_ACCOUNT,
            ),
            (Field::MerchantCategoryCode, tag::MERCHANT_CATEGORY_CODE),
            (Field::TransactionCurrency, tag::TRANSACTION_CURRENCY),
            (Field::TransactionAmount, tag::TRANSACTION_AMOUNT),
            (Field::CountryCode, tag::COUNTRY_CODE),
            (Field::MerchantName, tag::MERCHANT_NAME),
            (Field::MerchantCity, tag::MERCHANT_CITY),
            (Field::AdditionalDataFieldTemplate, tag::ADDITIONAL_DATA),
            (Field::Crc, tag::CRC),
            (
                Field::MerchantInformationLanguageTemplate,
                tag::LANGUAGE_TEMPLATE,
            ),
            (Field::Timestamps, tag::TIMESTAMPS),
        ];
        for (f, id) in tops {
            assert_eq!(f.place(), Place::Top(id), "{f:?}");
            assert_eq!(Field::of_tag(id), f);
        }
        assert_eq!(
            Field::of_tag(tag::INDIVIDUAL_ACCOUNT),
            Field::MerchantAccountInformation
        );
        assert_eq!(
            Field::of_tag(tag::MERCHANT_ACCOUNT),
            Field::MerchantAccountInformation
        );
        let subs = [
            (
                Field::BillNumber,
                tag::ADDITIONAL_DATA,
                tag::sub::BILL_NUMBER,
            ),
            (
                Field::MobileNumber,
                tag::ADDITIONAL_DATA,
                tag::sub::MOBILE_NUMBER,
            ),
            (
                Field::StoreLabel,
                tag::ADDITIONAL_DATA,
                tag::sub::STORE_LABEL,
            ),
            (
                Field::TerminalLabel,
                tag::ADDITIONAL_DATA,
                tag::sub::TERMINAL_LABEL,
            ),
            (
                Field::PurposeOfTransaction,
                tag::ADDITIONAL_DATA,
                tag::sub::PURPOSE_OF_TRANSACTION,
            ),
            (
                Field::LanguagePreference,
                tag::LANGUAGE_TEMPLATE,
                tag::sub::LANGUAGE_PREFERENCE,
            ),
            (
                Field::MerchantNameAlternateLanguage,
                tag::LANGUAGE_TEMPLATE,
                tag::sub::NAME_ALTERNATE_LANGUAGE,
            ),
            (
                Field::MerchantCityAlternateLanguage,
                tag::LANGUAGE_TEMPLATE,
                tag::sub::CITY_ALTERNATE_LANGUAGE,
            ),
            (
                Field::CreationTimestamp,
                tag::TIMESTAMPS,
                tag::sub::CREATION_TIMESTAMP,
            ),
            (
                Field::ExpirationTimestamp,
                tag::TIMESTAMPS,
                tag::sub::EXPIRATION_TIMESTAMP,
            ),
            (
                Field::BakongAccountId,
                tag::INDIVIDUAL_ACCOUNT,
                tag::sub::BAKONG_ACCOUNT_ID,
            ),
            (
                Field::AccountInformation,
                tag::INDIVIDUAL_ACCOUNT,
                tag::sub::ACCOUNT_INFORMATION,
            ),
            (
                Field::MerchantId,
                tag::MERCHANT_ACCOUNT,
                tag::sub::MERCHANT_ID,
            ),
            (
                Field::AcquiringBank,
                tag::MERCHANT_ACCOUNT,
                tag::sub::ACQUIRING_BANK,
            ),
        ];
        for (f, t, s) in subs {
            let at = f.place();
            let ok = at == Place::Sub(t, s)
                || matches!(at, Place::Account(k, sub) if sub == s
                    && k.is_none_or(|k| k.tag() == t));
            assert!(ok, "{f:?}");
        }
        assert_eq!(ALL.len(), 30);
        assert_eq!(SDK_KEYS.len(), 25);
        for (i, f) in ALL.iter().enumerate() {
            assert_eq!(ALL.iter().position(|g| g == f), Some(i));
        }
    }

    #[test]
    fn locations_come_from_the_places() {
        assert_eq!(
            Field::MerchantCityAlternateLanguage.location(),
            "tag 64 sub-tag 02"
        );
        assert_eq!(Field::AccountInformation.location(), "tag 29 sub-tag 01");
        assert_eq!(Field::BakongAccountId.location(), "tag 29/30 sub-tag 00");
        assert_eq!(Field::PayloadFormatIndicator.location(), "tag 00");
        assert_eq!(Field::Payload.location(), "");
        assert_eq!(SdkFields::KEYS[16], "pointofInitiationMethod");
    }
}
