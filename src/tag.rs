//! Data-object IDs of a KHQR (EMV QRCPS-MPM section 4, and the KHQR profile).

/// Payload Format Indicator, always `01` (EMV 4.7.1.1).
pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0;
/// Point of Initiation Method: `11` static, `12` dynamic (EMV 4.7.1.2).
pub const POINT_OF_INITIATION_METHOD: u8 = 1;
/// UnionPay merchant account (EMV reserves 15 for UnionPay).
pub const UNIONPAY_MERCHANT_ACCOUNT: u8 = 15;
/// Merchant Account Information of an individual (KHQR).
pub const INDIVIDUAL_ACCOUNT: u8 = 29;
/// Merchant Account Information of a merchant (KHQR).
pub const MERCHANT_ACCOUNT: u8 = 30;
/// Merchant Category Code (ISO 18245).
pub const MERCHANT_CATEGORY_CODE: u8 = 52;
/// Transaction Currency (ISO 4217 numeric).
pub const TRANSACTION_CURRENCY: u8 = 53;
/// Transaction Amount.
pub const TRANSACTION_AMOUNT: u8 = 54;
/// Country Code (ISO 3166-1 alpha-2), `KH`.
pub const COUNTRY_CODE: u8 = 58;
/// Merchant Name.
pub const MERCHANT_NAME: u8 = 59;
/// Merchant City.
pub const MERCHANT_CITY: u8 = 60;
/// Additional Data Field Template.
pub const ADDITIONAL_DATA: u8 = 62;
/// CRC.
pub const CRC: u8 = 63;
/// Merchant Information — Language Template.
pub const LANGUAGE_TEMPLATE: u8 = 64;
/// KHQR timestamps (creation and expiration), in the unreserved template range.
pub const TIMESTAMPS: u8 = 99;

/// Sub-tag IDs inside the templates above.
pub mod sub {
    /// Bakong account ID, in 29/30.
    pub const BAKONG_ACCOUNT_ID: u8 = 0;
    /// Account information, in 29.
    pub const ACCOUNT_INFORMATION: u8 = 1;
    /// Merchant ID, in 30.
    pub const MERCHANT_ID: u8 = 1;
    /// Acquiring bank, in 29/30.
    pub const ACQUIRING_BANK: u8 = 2;
    /// Bill number, in 62.
    pub const BILL_NUMBER: u8 = 1;
    /// Mobile number, in 62.
    pub const MOBILE_NUMBER: u8 = 2;
    /// Store label, in 62.
    pub const STORE_LABEL: u8 = 3;
    /// Terminal label, in 62.
    pub const TERMINAL_LABEL: u8 = 7;
    /// Purpose of transaction, in 62.
    pub const PURPOSE_OF_TRANSACTION: u8 = 8;
    /// Language preference, in 64.
    pub const LANGUAGE_PREFERENCE: u8 = 0;
    /// Merchant name in the alternate language, in 64.
    pub const NAME_ALTERNATE_LANGUAGE: u8 = 1;
    /// Merchant city in the alternate language, in 64.
    pub const CITY_ALTERNATE_LANGUAGE: u8 = 2;
    /// Creation timestamp (ms), in 99.
    pub const CREATION_TIMESTAMP: u8 = 0;
    /// Expiration timestamp (ms), in 99.
    pub const EXPIRATION_TIMESTAMP: u8 = 1;
}

/// The fixed values of a KHQR's data objects (EMV QRCPS-MPM 4.7.1 and the KHQR
/// profile), each written once here: `generate` writes them, `verify` asks for
/// them.
pub mod value {
    /// Payload Format Indicator (tag 00): the only version, `01`.
    pub const PAYLOAD_FORMAT_INDICATOR: &str = "01";
    /// Point of Initiation Method (tag 01) of a static KHQR (no amount).
    pub const STATIC: &str = "11";
    /// Point of Initiation Method (tag 01) of a dynamic KHQR (an amount).
    pub const DYNAMIC: &str = "12";
    /// Country Code (tag 58): Cambodia.
    pub const COUNTRY_CODE: &str = "KH";
    /// The ID and length of the CRC (tag 63, four hex digits): the last data
    /// object, its value the CRC of everything before, these four included.
    pub const CRC_HEAD: &str = "6304";
}

/// Whether EMV defines `id` as a template whose value is itself data objects:
/// 26–51 (merchant account information), 62, 64 and 80–99.
#[must_use]
pub const fn is_template(id: u8) -> bool {
    TEMPLATES[id as usize]
}

/// `TEMPLATES[id]`: whether `id` is a template (a table lookup: cheaper than
/// four ranges on the decoder's hot path).
const TEMPLATES: [bool; 256] = {
    let mut table = [false; 256];
    let mut id = 0;
    while id < 256 {
        table[id] = matches!(id, 26..=51 | 62 | 64 | 80..=99);
        id += 1;
    }
    table
};

/// Templates whose content KHQR defines; a broken one makes the payload invalid.
/// Other templates that do not read as data objects are kept as opaque values.
#[must_use]
pub const fn is_khqr_template(id: u8) -> bool {
    matches!(id, 29 | 30 | 62 | 64 | 99)
}
