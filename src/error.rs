//! The crate's error type: the official SDK's numbered error codes, plus a few
//! of our own for what the SDK wrongly accepts, each with a message that names
//! the field, where it sits in the payload, and the limit.

use alloc::string::String;
use core::fmt;

pub(crate) use crate::fields::Field;
use crate::tlv::TlvError;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $num:literal, $name:literal, $sdk:literal; )*) => {
        /// Why a request or a payload was refused: the official SDK's error codes
        /// 1–51 (same numbers, same constant names, `bakong-khqr` 1.0.20), and codes
        /// from 52 up for refusals of our own (see the crate docs, "Where we depart
        /// from the official SDK").
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant = $num, )*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The number (the SDK's `errorCode`).
            #[must_use]
            pub const fn number(self) -> u16 {
                self as u16
            }

            /// The code for a number, if there is one.
            #[must_use]
            pub fn from_number(n: u16) -> Option<Self> {
                match n {
                    $( $num => Some(ErrorCode::$variant), )*
                    _ => None,
                }
            }

            /// The SDK's constant name, e.g. `"MERCHANT_NAME_LENGTH_INVALID"`.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )* }
            }

            /// The SDK's message for this code, word for word (typos included, for
            /// compatibility); for our own codes, a message in the same style.
            #[must_use]
            pub const fn sdk_message(self) -> &'static str {
                match self { $( ErrorCode::$variant => $sdk, )* }
            }
        }
    };
}

error_codes! {
    /// 1: the Bakong account ID is missing or empty.
    BakongAccountIdRequired = 1, "BAKONG_ACCOUNT_ID_REQUIRED", "Bakong Account ID cannot be null or empty";
    /// 2: the merchant name is missing, empty or blank.
    MerchantNameRequired = 2, "MERCHANT_NAME_REQUIRED", "Merchant name cannot be null or empty";
    /// 3: the Bakong account ID is not `name@bank`.
    BakongAccountIdInvalid = 3, "BAKONG_ACCOUNT_ID_INVALID", "Bakong Account ID is invalid";
    /// 4: the transaction amount is not a valid amount for its currency.
    TransactionAmountInvalid = 4, "TRANSACTION_AMOUNT_INVALID", "Amount is invalid";
    /// 5: no merchant account information (tag 29 or 30) could be read.
    MerchantTypeRequired = 5, "MERCHANT_TYPE_REQUIRED", "Merchant type cannot be null or empty";
    /// 6: the Bakong account ID is over 32 characters.
    BakongAccountIdLengthInvalid = 6, "BAKONG_ACCOUNT_ID_LENGTH_INVALID", "Bakong Account ID Length is Invalid";
    /// 7: the merchant name is over 25 characters.
    MerchantNameLengthInvalid = 7, "MERCHANT_NAME_LENGTH_INVALID", "Merchant Name Length is invalid";
    /// 8: the string is not a KHQR (CRC missing or wrong, too short).
    KhqrInvalid = 8, "KHQR_INVALID", "KHQR provided is invalid";
    /// 9: the transaction currency (tag 53) is missing.
    CurrencyTypeRequired = 9, "CURRENCY_TYPE_REQUIRED", "Currency type cannot be null or empty";
    /// 10: the bill number is over 25 characters, or empty in a payload.
    BillNumberLengthInvalid = 10, "BILL_NUMBER_LENGTH_INVALID", "Bill Name Length is invalid";
    /// 11: the store label is over 25 characters, or empty in a payload.
    StoreLabelLengthInvalid = 11, "STORE_LABEL_LENGTH_INVALID", "Store Label Length is invalid";
    /// 12: the terminal label is over 25 characters, or empty in a payload.
    TerminalLabelLengthInvalid = 12, "TERMINAL_LABEL_LENGTH_INVALID", "Terminal Label Length is invalid";
    /// 13: the Open API could not be reached (network helpers only).
    ConnectionTimeout = 13, "CONNECTION_TIMEOUT", "Cannot reach Bakong Open API service. Please check internet connection";
    /// 14: deep-link source info is incomplete.
    InvalidDeepLinkSourceInfo = 14, "INVALID_DEEP_LINK_SOURCE_INFO", "Source Info for Deep Link is invalid";
    /// 15: internal server error (never produced by the SDK).
    InternalServer = 15, "INTERNAL_SREVER", "Internal server error";
    /// 16: the payload format indicator is over 2 characters.
    PayloadFormatIndicatorLengthInvalid = 16, "PAYLOAD_FORMAT_INDICATOR_LENGTH_INVALID", "Payload Format indicator Length is invalid";
    /// 17: the point of initiation method is over 2 characters.
    PointInitiationLengthInvalid = 17, "POINT_INITIATION_LENGTH_INVALID", "Point of initiation Length is invalid";
    /// 18: the merchant category code is over 4 characters.
    MerchantCodeLengthInvalid = 18, "MERCHANT_CODE_LENGTH_INVALID", "Merchant code Length is invalid";
    /// 19: the transaction currency is over 3 characters.
    TransactionCurrencyLengthInvalid = 19, "TRANSACTION_CURRENCY_LENGTH_INVALID", "Transaction currency Length is invalid";
    /// 20: the country code is over 3 characters or empty.
    CountryCodeLengthInvalid = 20, "COUNTRY_CODE_LENGTH_INVALID", "Country code Length is invalid";
    /// 21: the merchant city is over 15 characters.
    MerchantCityLengthInvalid = 21, "MERCHANT_CITY_LENGTH_INVALID", "Merchant city Length is invalid";
    /// 22: the CRC value is over 4 characters.
    CrcLengthInvalid = 22, "CRC_LENGTH_INVALID", "CRC Length is invalid";
    /// 23: the payload format indicator (tag 00) is missing.
    PayloadFormatIndicatorTagRequired = 23, "PAYLOAD_FORMAT_INDICATOR_TAG_REQUIRED", "Payload format indicator tag required";
    /// 24: the CRC (tag 63) is missing.
    CrcTagRequired = 24, "CRC_TAG_REQUIRED", "CRC tag required";
    /// 25: the merchant category code (tag 52) is missing.
    MerchantCategoryTagRequired = 25, "MERCHANT_CATEGORY_TAG_REQUIRED", "Merchant category tag required";
    /// 26: the country code (tag 58) is missing.
    CountryCodeTagRequired = 26, "COUNTRY_CODE_TAG_REQUIRED", "Country Code cannot be null or empty";
    /// 27: the merchant city (tag 60) is missing.
    MerchantCityTagRequired = 27, "MERCHANT_CITY_TAG_REQUIRED", "Merchant City cannot be null or empty";
    /// 28: the currency is neither KHR (116) nor USD (840).
    UnsupportedCurrency = 28, "UNSUPPORTED_CURRENCY", "Unsupported currency";
    /// 29: a deep-link URL is not valid.
    InvalidDeepLinkUrl = 29, "INVALID_DEEP_LINK_URL", "Deep Link URL is not valid";
    /// 30: a merchant KHQR has no merchant ID.
    MerchantIdRequired = 30, "MERCHANT_ID_REQUIRED", "Merchant ID cannot be null or empty";
    /// 31: a merchant KHQR has no acquiring bank, or a payload has an empty one.
    AcquiringBankRequired = 31, "ACQUIRING_BANK_REQUIRED", "Acquiring Bank cannot be null or empty";
    /// 32: the merchant ID is over 32 characters.
    MerchantIdLengthInvalid = 32, "MERCHANT_ID_LENGTH_INVALID", "Merchant ID Length is invalid";
    /// 33: the acquiring bank is over 32 characters.
    AcquiringBankLengthInvalid = 33, "ACQUIRING_BANK_LENGTH_INVALID", "Acquiring Bank Length is invalid";
    /// 34: the mobile number is over 25 characters, or empty in a payload.
    MobileNumberLengthInvalid = 34, "MOBILE_NUMBER_LENGTH_INVALID", "Mobile Number Length is invalid";
    /// 35: the account information is over 32 characters.
    AccountInformationLengthInvalid = 35, "ACCOUNT_INFORMATION_LENGTH_INVALID", "Account Information Length is invalid";
    /// 36: tags are not in order (never produced by the SDK, nor by us).
    TagNotInOrder = 36, "TAG_NOT_IN_ORDER", "Tag is not in order";
    /// 37: a merchant name in the alternate language was given without a language preference.
    LanguagePreferenceRequired = 37, "LANGUAGE_PREFERENCE_REQUIRED", "Language Preference cannot be null or empty";
    /// 38: the language preference is over 2 characters (or, in a payload, missing beside a name).
    LanguagePreferenceLengthInvalid = 38, "LANGUAGE_PREFERENCE_LENGTH_INVALID", "Language Preference Length is invalid";
    /// 39: a language preference was given without a merchant name in that language.
    MerchantNameAlternateLanguageRequired = 39, "MERCHANT_NAME_ALTERNATE_LANGUAGE_REQUIRED", "Merchant Name Alternate Language cannot be null or empty";
    /// 40: the merchant name in the alternate language is over 25 characters.
    MerchantNameAlternateLanguageLengthInvalid = 40, "MERCHANT_NAME_ALTERNATE_LANGUAGE_LENGTH_INVALID", "Merchant Name Alternate Language Length is invalid";
    /// 41: the merchant city in the alternate language is over 15 characters.
    MerchantCityAlternateLanguageLengthInvalid = 41, "MERCHANT_CITY_ALTERNATE_LANGUAGE_LENGTH_INVALID", "Merchant City Alternate Language Length is invalid";
    /// 42: the purpose of transaction is over 25 characters, or empty in a payload.
    PurposeOfTransactionLengthInvalid = 42, "PURPOSE_OF_TRANSACTION_LENGTH_INVALID", "Purpose of Transaction Length is invalid";
    /// 43: the UnionPay merchant account is over 99 characters.
    UpiAccountInformationLengthInvalid = 43, "UPI_ACCOUNT_INFORMATION_LENGTH_INVALID", "Upi Account Information Length is invalid";
    /// 44: a UnionPay merchant account was given with USD.
    UpiAccountInformationInvalidCurrency = 44, "UPI_ACCOUNT_INFORMATION_INVALID_CURRENCY", "Upi Account Information Length does not accept USD";
    /// 45: a dynamic KHQR has no expiration timestamp.
    ExpirationTimestampRequired = 45, "EXPIRATION_TIMESTAMP_REQUIRED", "Expiration timestamp is required for dynamic KHQR";
    /// 46: a KHQR's expiration timestamp is before `now`.
    KhqrExpired = 46, "KHQR_EXPIRED", "This dynamic KHQR has expired";
    /// 47: a dynamic KHQR (point of initiation 12) has no amount.
    InvalidDynamicKhqr = 47, "INVALID_DYNAMIC_KHQR", "This dynamic KHQR has invalid field transaction amount";
    /// 48: the point of initiation method is neither 11 nor 12.
    PointOfInitiationMethodInvalid = 48, "POINT_OF_INITIATION_METHOD_INVALID", "Point of Initiation Method is invalid";
    /// 49: the expiration timestamp is not 13 digits of milliseconds.
    ExpirationTimestampLengthInvalid = 49, "EXPIRATION_TIMESTAMP_LENGTH_INVALID", "Expiration timestamp length is invalid";
    /// 50: the expiration timestamp is before the creation timestamp (or `now`).
    ExpirationTimestampInThePast = 50, "EXPIRATION_TIMESTAMP_IN_THE_PAST", "Expiration timestamp is in the past";
    /// 51: the merchant category code is not 4 digits.
    InvalidMerchantCategoryCode = 51, "INVALID_MERCHANT_CATEGORY_CODE", "Invalid merchant category code";
    /// 52 (ours): a template is over 99 characters, so its length needs three digits
    /// (the SDK writes them; no reader accepts the result).
    TemplateTooLong = 52, "TEMPLATE_TOO_LONG", "Template is longer than 99 characters";
    /// 53 (ours): text with a control character or a character outside the Basic
    /// Multilingual Plane (readers disagree on its length).
    InvalidCharacter = 53, "INVALID_CHARACTER", "Text contains a character that is not allowed";
    /// 54 (ours): the string is not well-formed EMV TLV (bad length digits, a
    /// length past the end, a broken template).
    MalformedTlv = 54, "MALFORMED_TLV", "KHQR is not well-formed TLV";
    /// 55 (ours): an expiration timestamp was given for a static KHQR (the SDK
    /// drops it silently).
    ExpirationOnStaticKhqr = 55, "EXPIRATION_ON_STATIC_KHQR", "Expiration timestamp given for a static KHQR";
    /// 56 (ours): the payload format indicator (tag 00) is not `01`.
    PayloadFormatIndicatorInvalid = 56, "PAYLOAD_FORMAT_INDICATOR_INVALID", "Payload format indicator is invalid";
    /// 57 (ours): the country code (tag 58) is not `KH`.
    CountryCodeInvalid = 57, "COUNTRY_CODE_INVALID", "Country code is invalid";
    /// 58 (ours): a top-level tag appears twice.
    DuplicateTag = 58, "DUPLICATE_TAG", "Tag appears more than once";
    /// 59 (ours): both an individual (29) and a merchant (30) account template.
    MerchantTypeConflict = 59, "MERCHANT_TYPE_CONFLICT", "Both individual and merchant account information";
    /// 60 (ours): a request value has the wrong type (e.g. a JSON object where
    /// text belongs, a fractional or negative timestamp).
    InvalidRequest = 60, "INVALID_REQUEST", "Request is invalid";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location().is_empty() {
            f.write_str(self.name())
        } else {
            write!(f, "{} ({})", self.name(), self.location())
        }
    }
}

/// What exactly was wrong, for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    /// The field is absent or empty.
    Missing,
    /// The field is longer than `max` UTF-16 code units.
    TooLong { length: usize, max: usize },
    /// A free-form reason, completing "{field} …".
    Reason(&'static str),
    /// A reason with the offending value.
    ReasonWith(&'static str, String),
    /// The TLV structure is broken.
    Tlv(TlvError),
    /// The CRC does not match.
    CrcMismatch { stored: String, computed: u16 },
    /// The expiration has passed.
    Expired { expiration_ms: u64, now_ms: u64 },
    /// The same tag twice.
    Duplicate(u8),
    /// The same sub-tag twice in a template: (template, sub-tag).
    DuplicateSub(u8, u8),
}

/// A request or payload was refused.
///
/// [`code`](Error::code) is the SDK's error code (or one of ours above 51);
/// [`field`](Error::field) says which field; `Display` gives a lower-case message
/// naming the field, its tag and the limit, e.g.
/// `merchant name (tag 59) is 26 UTF-16 code units long; the limit is 25`.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    field: Field,
    detail: Detail,
}

impl Error {
    pub(crate) fn new(code: ErrorCode, field: Field, detail: Detail) -> Self {
        Error {
            code,
            field,
            detail,
        }
    }

    pub(crate) fn missing(code: ErrorCode, field: Field) -> Self {
        Self::new(code, field, Detail::Missing)
    }

    pub(crate) fn too_long(code: ErrorCode, field: Field, length: usize, max: usize) -> Self {
        Self::new(code, field, Detail::TooLong { length, max })
    }

    pub(crate) fn reason(code: ErrorCode, field: Field, why: &'static str) -> Self {
        Self::new(code, field, Detail::Reason(why))
    }

    pub(crate) fn reason_with(
        code: ErrorCode,
        field: Field,
        why: &'static str,
        value: &str,
    ) -> Self {
        Self::new(code, field, Detail::ReasonWith(why, value.into()))
    }

    /// The error code (SDK numbering; ours above 51).
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        self.code
    }

    /// The field that was refused ([`Field::Payload`] for the whole string).
    #[must_use]
    pub const fn field(&self) -> Field {
        self.field
    }

    /// The official SDK's message for this code (see [`ErrorCode::sdk_message`]).
    #[must_use]
    pub const fn sdk_message(&self) -> &'static str {
        self.code.sdk_message()
    }

    /// The TLV error behind a [`ErrorCode::MalformedTlv`] (or a code 5 for a broken
    /// merchant account template), if that is what this is.
    #[must_use]
    pub fn tlv_error(&self) -> Option<&TlvError> {
        match &self.detail {
            Detail::Tlv(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field;
        match &self.detail {
            Detail::Missing if field == Field::Payload => f.write_str("payload is empty"),
            Detail::Missing => write!(f, "{field} is missing or empty"),
            Detail::TooLong { length, max } => write!(
                f,
                "{field} is {length} UTF-16 code units long; the limit is {max}"
            ),
            Detail::Reason(why) => write!(f, "{field} {why}"),
            Detail::ReasonWith(why, value) => write!(f, "{field} {why}: {value:?}"),
            Detail::Tlv(e) => write!(f, "{field} is not well-formed TLV: {e}"),
            Detail::CrcMismatch { stored, computed } => write!(
                f,
                "CRC (tag 63) is {stored} but the payload's CRC-16/CCITT-FALSE is {computed:04X}"
            ),
            Detail::Expired {
                expiration_ms,
                now_ms,
            } => write!(
                f,
                "KHQR expired at {expiration_ms} ms since the Unix epoch; now is {now_ms}"
            ),
            Detail::Duplicate(tag) => write!(f, "tag {tag:02} appears more than once"),
            Detail::DuplicateSub(tag, sub) => {
                write!(f, "tag {tag:02} sub-tag {sub:02} appears more than once")
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Error({} {}: {self})",
            self.code.number(),
            self.code.name()
        )
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_dense_and_round_trips() {
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(usize::from(c.number()), i + 1);
            assert_eq!(ErrorCode::from_number(c.number()), Some(*c));
        }
        assert_eq!(ErrorCode::from_number(0), None);
        assert_eq!(
            ErrorCode::MerchantNameLengthInvalid.name(),
            "MERCHANT_NAME_LENGTH_INVALID"
        );
    }

    #[test]
    fn messages() {
        let e = Error::too_long(
            ErrorCode::MerchantNameLengthInvalid,
            Field::MerchantName,
            26,
            25,
        );
        assert_eq!(
            e.to_string(),
            "merchant name (tag 59) is 26 UTF-16 code units long; the limit is 25"
        );
        assert_eq!(
            format!("{e:?}"),
            "Error(7 MERCHANT_NAME_LENGTH_INVALID: merchant name (tag 59) is 26 UTF-16 code units long; the limit is 25)"
        );
        let e = Error::missing(ErrorCode::MerchantCityTagRequired, Field::MerchantCity);
        assert_eq!(e.to_string(), "merchant city (tag 60) is missing or empty");
    }
}
