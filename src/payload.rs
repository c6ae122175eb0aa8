//! Building a KHQR payload from a [`Request`].

use alloc::borrow::{Cow, ToOwned};
use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

use crate::amount::{Amount, Currency};
use crate::crc;
use crate::error::{Error, ErrorCode, Field};
use crate::fields::{fields_only, ADDITIONAL_DATA_FIELDS as ADDITIONAL_DATA, LANGUAGE_FIELDS};
use crate::hash::{Md5, TranId};
use crate::tag;
use crate::tlv::{ArrayWriter, TooLong};

/// The merchant account template and what goes in it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Account<'a> {
    /// An individual's account: Merchant Account Information tag 29.
    Individual {
        /// Account information, tag 29 sub-tag 01 (≤ 32 characters), optional.
        account_information: Option<Cow<'a, str>>,
        /// Acquiring bank, tag 29 sub-tag 02 (≤ 32 characters), optional.
        acquiring_bank: Option<Cow<'a, str>>,
    },
    /// A merchant's account: Merchant Account Information tag 30.
    Merchant {
        /// Merchant ID, tag 30 sub-tag 01 (1–32 characters), required.
        merchant_id: Cow<'a, str>,
        /// Acquiring bank, tag 30 sub-tag 02 (1–32 characters), required.
        acquiring_bank: Cow<'a, str>,
    },
}

/// When a dynamic KHQR expires (tag 99 sub-tag 01).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expiration {
    /// At this instant, in milliseconds since the Unix epoch (13 digits).
    AtMs(u64),
    /// This many milliseconds after the `now` given to [`Request::generate`].
    AfterMs(u64),
}

/// An amount as the caller gave it; read for the request's currency at
/// generation time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AmountInput<'a> {
    /// Decimal text, `^[0-9]+(\.[0-9]+)?$` (see [`Amount::parse`]).
    Text(Cow<'a, str>),
    /// Integer minor units: riel for KHR, cents for USD (see [`Amount::from_minor_units`]).
    MinorUnits(u64),
}

impl<'a> From<&'a str> for AmountInput<'a> {
    fn from(s: &'a str) -> Self {
        AmountInput::Text(Cow::Borrowed(s))
    }
}

impl From<String> for AmountInput<'_> {
    fn from(s: String) -> Self {
        AmountInput::Text(Cow::Owned(s))
    }
}

impl From<Amount> for AmountInput<'_> {
    fn from(a: Amount) -> Self {
        AmountInput::Text(Cow::Owned(a.as_str().to_owned()))
    }
}

/// The four values a merchant's KHQR (tag 30) needs, by name, for
/// [`Request::merchant`]. `S` is any text type (`&str`, `String`, `Cow<str>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MerchantInfo<S> {
    /// Bakong account ID, `name@bank`, ≤ 32 characters (tag 30 sub-tag 00).
    pub bakong_account_id: S,
    /// Merchant name, 1–25 characters (tag 59).
    pub merchant_name: S,
    /// Merchant ID, 1–32 characters (tag 30 sub-tag 01).
    pub merchant_id: S,
    /// Acquiring bank, 1–32 characters (tag 30 sub-tag 02).
    pub acquiring_bank: S,
}

/// Everything a KHQR can carry, with the official SDK's fields (`IndividualInfo`
/// / `MerchantInfo` and their `optional` object).
///
/// Build one with [`Request::individual`] or [`Request::merchant`] and the
/// setters, then call [`Request::generate`] with the current time. Nothing is
/// checked until then; `generate` returns the first error in the SDK's order.
/// A setter that does not apply to the request's kind (account information on
/// a merchant's request, say) is not dropped: `generate` refuses the request.
/// Optional text that is empty counts as absent, as in the SDK. Read a field
/// back with [`Request::text`].
///
/// All lengths are in UTF-16 code units, which for the text KHQR carries (Latin,
/// Khmer, Thai, CJK — all in the Basic Multilingual Plane) is the number of
/// characters. The limits are those of the field table ([`Field`]).
///
/// ```
/// use bakong_khqr::{Currency, Request};
///
/// let now_ms = 1_700_000_000_000;
/// let khqr = Request::individual("jonhsmith@nbcq", "Jonh Smith")
///     .merchant_city("Phnom Penh")
///     .currency(Currency::Usd)
///     .amount("1.5")
///     .expires_in_ms(60_000)
///     .generate(now_ms)?;
/// assert!(khqr.as_str().starts_with("000201010212"));
/// assert_eq!(khqr.md5().to_string().len(), 32);
/// # Ok::<(), bakong_khqr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Request<'a> {
    bakong_account_id: Cow<'a, str>,
    merchant_name: Cow<'a, str>,
    account: Account<'a>,
    currency: Currency,
    amount: Option<AmountInput<'a>>,
    expiration: Option<Expiration>,
    /// The optional text fields, each at its place in [`OPTIONAL_SLOTS`].
    optional: [Option<Cow<'a, str>>; OPTIONAL_SLOTS.len()],
    /// The first field set that does not apply to this request.
    misuse: Option<Field>,
}

/// Each member by its name; the optional text fields by their field's name,
/// only those set.
impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Request");
        d.field("bakong_account_id", &self.bakong_account_id)
            .field("merchant_name", &self.merchant_name)
            .field("account", &self.account)
            .field("currency", &self.currency)
            .field("amount", &self.amount)
            .field("expiration", &self.expiration);
        for (field, value) in OPTIONAL_SLOTS.iter().zip(&self.optional) {
            if let Some(v) = value {
                d.field(field.name(), v);
            }
        }
        d.field("misuse", &self.misuse).finish()
    }
}

/// Default merchant city, as the SDK.
pub const DEFAULT_CITY: &str = "Phnom Penh";
/// Default Merchant Category Code, as the SDK.
pub const DEFAULT_MCC: &str = "5999";

macro_rules! setters {
    ($( $name:ident => $field:ident; )*) => {
        $(
            #[doc = concat!("Sets the ", stringify!($name), " (see [`Field::", stringify!($field), "`]).")]
            #[must_use]
            pub fn $name(self, value: impl Into<Cow<'a, str>>) -> Self {
                self.set(Field::$field, value)
            }
        )*
    };
}

impl<'a> Request<'a> {
    fn base(
        bakong_account_id: Cow<'a, str>,
        merchant_name: Cow<'a, str>,
        account: Account<'a>,
    ) -> Self {
        Request {
            bakong_account_id,
            merchant_name,
            account,
            currency: Currency::Khr,
            amount: None,
            expiration: None,
            optional: Default::default(),
            misuse: None,
        }
    }

    /// A request for an individual's KHQR (tag 29), like the SDK's `IndividualInfo`.
    #[must_use]
    pub fn individual(
        bakong_account_id: impl Into<Cow<'a, str>>,
        merchant_name: impl Into<Cow<'a, str>>,
    ) -> Self {
        Self::base(
            bakong_account_id.into(),
            merchant_name.into(),
            Account::Individual {
                account_information: None,
                acquiring_bank: None,
            },
        )
    }

    /// A request for a merchant's KHQR (tag 30), like the SDK's `MerchantInfo`.
    ///
    /// ```
    /// use bakong_khqr::{MerchantInfo, Request};
    /// let req = Request::merchant(MerchantInfo {
    ///     bakong_account_id: "coffee@abaa",
    ///     merchant_name: "Coffee",
    ///     merchant_id: "POS-001",
    ///     acquiring_bank: "ABA Bank",
    /// });
    /// let khqr = req.generate(1_700_000_000_000)?;
    /// assert!(khqr.as_str().contains("0107POS-001"));
    /// // Account information belongs to an individual's KHQR: refused, not dropped.
    /// let e = req.account_information("x").generate(1_700_000_000_000).unwrap_err();
    /// assert_eq!(e.code().number(), 60);
    /// # Ok::<(), bakong_khqr::Error>(())
    /// ```
    #[must_use]
    pub fn merchant<S: Into<Cow<'a, str>>>(info: MerchantInfo<S>) -> Self {
        Self::base(
            info.bakong_account_id.into(),
            info.merchant_name.into(),
            Account::Merchant {
                merchant_id: info.merchant_id.into(),
                acquiring_bank: info.acquiring_bank.into(),
            },
        )
    }

    /// Sets a text field by its [`Field`]: any text field of the request's kind
    /// (tags 15, 29/30 sub-tags, 52, 54 as decimal text, 59, 60, 62 and 64
    /// sub-tags). A field that does not apply — account information on a
    /// merchant's request, a merchant ID on an individual's, a field that is not
    /// text (currency, expiration) or not set by the caller (CRC, tag 00) — makes
    /// [`Request::generate`] refuse the request with
    /// [`ErrorCode::InvalidRequest`] (60) naming that field.
    #[must_use]
    pub fn set(mut self, field: Field, value: impl Into<Cow<'a, str>>) -> Self {
        let value = value.into();
        match (field, &mut self.account) {
            (Field::BakongAccountId, _) => self.bakong_account_id = value,
            (Field::MerchantName, _) => self.merchant_name = value,
            (Field::TransactionAmount, _) => self.amount = Some(AmountInput::Text(value)),
            (
                Field::AccountInformation,
                Account::Individual {
                    account_information,
                    ..
                },
            ) => {
                *account_information = Some(value);
            }
            (Field::AcquiringBank, Account::Individual { acquiring_bank, .. }) => {
                *acquiring_bank = Some(value);
            }
            (Field::AcquiringBank, Account::Merchant { acquiring_bank, .. }) => {
                *acquiring_bank = value;
            }
            (Field::MerchantId, Account::Merchant { merchant_id, .. }) => *merchant_id = value,
            _ => match self.optional_mut(field) {
                Some(slot) => *slot = Some(value),
                None => self.misuse = self.misuse.or(Some(field)),
            },
        }
        self
    }

    /// The optional text member of a field, for [`Request::set`].
    fn optional_mut(&mut self, field: Field) -> Option<&mut Option<Cow<'a, str>>> {
        self.optional.get_mut(optional_slot(field)?)
    }

    /// The text of a field as set (empty text included; defaults not applied),
    /// `None` when unset or not a text field of this request's kind.
    #[must_use]
    #[inline]
    pub fn text(&self, field: Field) -> Option<&str> {
        match (field, &self.account) {
            (Field::BakongAccountId, _) => Some(&self.bakong_account_id),
            (Field::MerchantName, _) => Some(&self.merchant_name),
            (Field::TransactionAmount, _) => match &self.amount {
                Some(AmountInput::Text(t)) => Some(t),
                _ => None,
            },
            (
                Field::AccountInformation,
                Account::Individual {
                    account_information,
                    ..
                },
            ) => Option::as_deref(account_information),
            (Field::AcquiringBank, Account::Individual { acquiring_bank, .. }) => {
                Option::as_deref(acquiring_bank)
            }
            (Field::AcquiringBank, Account::Merchant { acquiring_bank, .. }) => {
                Some(acquiring_bank)
            }
            (Field::MerchantId, Account::Merchant { merchant_id, .. }) => Some(merchant_id),
            (f, _) => Option::as_deref(self.optional.get(optional_slot(f)?)?),
        }
    }

    /// A text field's value when set and not empty (empty counts as absent, as in
    /// the SDK).
    #[inline]
    fn given(&self, field: Field) -> Option<&str> {
        self.text(field).filter(|s| !s.is_empty())
    }

    /// [`Request::given`] for the optional field at `slot` of [`OPTIONAL_SLOTS`].
    #[inline]
    fn given_at(&self, slot: usize) -> Option<&str> {
        self.optional
            .get(slot)?
            .as_deref()
            .filter(|s| !s.is_empty())
    }

    /// The merchant account template: individual or merchant, with its sub-fields.
    #[must_use]
    pub const fn account(&self) -> &Account<'a> {
        &self.account
    }

    /// The currency (KHR unless set).
    #[must_use]
    pub const fn currency_code(&self) -> Currency {
        self.currency
    }

    /// The amount as given, if any.
    #[must_use]
    pub const fn amount_input(&self) -> Option<&AmountInput<'a>> {
        self.amount.as_ref()
    }

    /// The expiration as given, if any.
    #[must_use]
    pub const fn expiration(&self) -> Option<Expiration> {
        self.expiration
    }

    setters! {
        merchant_city => MerchantCity;
        bill_number => BillNumber;
        mobile_number => MobileNumber;
        store_label => StoreLabel;
        terminal_label => TerminalLabel;
        purpose_of_transaction => PurposeOfTransaction;
        language_preference => LanguagePreference;
        merchant_name_alternate_language => MerchantNameAlternateLanguage;
        merchant_city_alternate_language => MerchantCityAlternateLanguage;
        upi_merchant_account => UnionPayMerchantAccount;
        merchant_category_code => MerchantCategoryCode;
        account_information => AccountInformation;
        acquiring_bank => AcquiringBank;
    }

    /// Sets the currency (tag 53).
    #[must_use]
    pub fn currency(mut self, currency: Currency) -> Self {
        self.currency = currency;
        self
    }

    /// Sets the amount: decimal text (`"1.5"`), a `String`, or an
    /// [`AmountInput::MinorUnits`].
    #[must_use]
    pub fn amount(mut self, amount: impl Into<AmountInput<'a>>) -> Self {
        self.amount = Some(amount.into());
        self
    }

    /// Sets the amount in minor units: riel for KHR, cents for USD.
    #[must_use]
    pub fn amount_minor_units(mut self, minor: u64) -> Self {
        self.amount = Some(AmountInput::MinorUnits(minor));
        self
    }

    /// Sets the expiration, or none.
    #[must_use]
    pub fn expiration_at(mut self, expiration: Option<Expiration>) -> Self {
        self.expiration = expiration;
        self
    }

    /// Sets the expiration instant, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn expires_at_ms(self, ms: u64) -> Self {
        self.expiration_at(Some(Expiration::AtMs(ms)))
    }

    /// Sets the expiration to `ms` milliseconds after the `now` of [`Request::generate`].
    #[must_use]
    pub fn expires_in_ms(self, ms: u64) -> Self {
        self.expiration_at(Some(Expiration::AfterMs(ms)))
    }

    /// Builds the KHQR string and its MD5. `now_ms` (milliseconds since the Unix
    /// epoch) becomes the creation timestamp of a dynamic KHQR; a static KHQR does
    /// not depend on it. The library never reads the clock.
    ///
    /// The output is byte for byte what the official SDK (`bakong-khqr` 1.0.20)
    /// generates for the same input wherever the SDK accepts it correctly.
    ///
    /// # Errors
    /// First, a setter that did not apply to the request (60, naming the field).
    /// Then the first failing check, in the SDK's order (khqr-notes §4; the list
    /// `check_in_sdk_order` in `src/payload.rs`), so the code matches the SDK's wherever
    /// the SDK reports one:
    ///
    /// | check | code |
    /// |---|---|
    /// | UnionPay account over 99 | 43 |
    /// | account ID empty / over 32 / without `@` | 1 / 6 / 3 |
    /// | merchant: ID empty / over 32; bank empty / over 32 | 30 / 32; 31 / 33 |
    /// | individual: account information over 32; bank over 32 | 35; 33 |
    /// | MCC over 4 characters / not digits | 18 / 51 |
    /// | UnionPay account with USD | 44 |
    /// | amount not decimal text, KHR fraction, USD over 2 decimals, over 13 characters | 4 |
    /// | merchant name empty / over 25 | 2 / 7 |
    /// | city over 15 | 21 |
    /// | bill, mobile, store, terminal, purpose over 25 | 10, 34, 11, 12, 42 |
    /// | language preference without name / name without preference / preference over 2 / name over 25 / city over 15 | 39 / 37 / 38 / 40 / 41 |
    /// | dynamic: no expiration / not 13 digits / before `now` | 45 / 49 / 50 |
    ///
    /// Then our own refusals (`check_in_our_order`), for input the SDK accepts but should
    /// not (so they never hide an error the SDK would report): an expiration on a
    /// static KHQR (55); an account ID that is not exactly one `@` with text on
    /// both sides and no whitespace (3); an MCC that is not exactly 4 digits (51);
    /// a blank merchant name (2), merchant ID (30) or acquiring bank (31), where
    /// blank means only white space or invisible format characters; a control
    /// character or a character outside the Basic Multilingual Plane in any text
    /// (53); a template over 99 characters (52). (Amounts are the exception: every
    /// amount refusal has code 4 at the amount's place in the order.)
    pub fn generate(&self, now_ms: u64) -> Result<Khqr, Error> {
        let mut payload = String::with_capacity(256);
        self.write(now_ms, &mut payload)?;
        let md5 = Md5::of(&payload);
        Ok(Khqr { payload, md5 })
    }

    /// Like [`Request::generate`], but appends the payload to `out` and returns
    /// nothing else: no heap allocation when `out` has room (about 300 bytes is
    /// enough for any KHQR; text fields in Khmer take 3 bytes a character). On
    /// error `out` is left as it was.
    ///
    /// # Errors
    /// As [`Request::generate`].
    pub fn write(&self, now_ms: u64, out: &mut String) -> Result<(), Error> {
        let plan = self.check(now_ms)?;
        let start = out.len();
        let r = self.emit(&plan, now_ms, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// Runs the rules: the SDK's, in its order, then ours; returns what `emit`
    /// needs.
    fn check(&self, now_ms: u64) -> Result<Plan<'_>, Error> {
        if let Some(field) = self.misuse {
            return Err(self.misuse_error(field));
        }
        let mut plan = Plan {
            now_ms,
            mcc: self
                .given(Field::MerchantCategoryCode)
                .unwrap_or(DEFAULT_MCC),
            city: self.given(Field::MerchantCity).unwrap_or(DEFAULT_CITY),
            amount: None,
            expiration_ms: None,
            account_id_shape: account_id_shape(&self.bakong_account_id),
        };
        check_in_sdk_order(self, &mut plan)?;
        check_in_our_order(self, &plan)?;
        Ok(plan)
    }

    fn misuse_error(&self, field: Field) -> Error {
        let why = match (field, &self.account) {
            (Field::AccountInformation, _) => {
                "does not apply to a merchant's KHQR (tag 30); it belongs to an individual's (tag 29)"
            }
            (Field::MerchantId, _) => {
                "does not apply to an individual's KHQR (tag 29); it belongs to a merchant's (tag 30)"
            }
            _ => "cannot be set as text on a request",
        };
        Error::reason(ErrorCode::InvalidRequest, field, why)
    }

    /// Writes the data objects in the SDK's order, then the CRC, into a buffer
    /// on the stack, and appends the result to `out`.
    ///
    /// First with lengths counted in bytes, which is right when every value is
    /// printable ASCII (nearly every KHQR): one scan of what was written shows
    /// it, and also settles the character rule (53). Otherwise it is written
    /// again with lengths in UTF-16 code units, after the character rule, into
    /// a buffer that holds the longest KHQR.
    fn emit(&self, plan: &Plan<'_>, now_ms: u64, out: &mut String) -> Result<(), Error> {
        let mut w = ArrayWriter::<USUAL_PAYLOAD_BYTES, false>::new();
        let written = self.emit_objects(plan, now_ms, &mut w).is_ok();
        if let Some(text) = w.as_str().filter(|t| written && printable_ascii(t)) {
            out.push_str(text);
        } else {
            // The character rule comes before a template's length (52).
            check_characters(self, plan)?;
            let mut w = ArrayWriter::<MAX_PAYLOAD_BYTES, true>::new();
            self.emit_objects(plan, now_ms, &mut w)
                .map_err(too_long_error)?;
            let Some(text) = w.as_str() else {
                // The checked limits keep every payload within the buffer.
                debug_assert!(false, "a KHQR over {MAX_PAYLOAD_BYTES} bytes");
                return Err(Error::too_long(
                    ErrorCode::TemplateTooLong,
                    Field::Payload,
                    MAX_PAYLOAD_BYTES + 1,
                    MAX_PAYLOAD_BYTES,
                ));
            };
            out.push_str(text);
        }
        Ok(())
    }

    /// The data objects, then the CRC.
    fn emit_objects<const N: usize, const UTF16: bool>(
        &self,
        plan: &Plan<'_>,
        now_ms: u64,
        w: &mut ArrayWriter<N, UTF16>,
    ) -> Result<(), TooLong> {
        // Tags 00 (payload format indicator) and 01 (point of initiation) as
        // one constant.
        w.put(if plan.amount.is_some() {
            &DYNAMIC_HEAD
        } else {
            &STATIC_HEAD
        });
        w.write_given(
            tag::UNIONPAY_MERCHANT_ACCOUNT,
            bytes(self.given(Field::UnionPayMerchantAccount)),
        )?;
        self.emit_account(w)?;
        w.write(tag::MERCHANT_CATEGORY_CODE, plan.mcc)?;
        w.write(tag::TRANSACTION_CURRENCY, self.currency.numeric_str())?;
        w.write_given(
            tag::TRANSACTION_AMOUNT,
            plan.amount.as_ref().map(Amount::as_bytes),
        )?;
        w.write(tag::COUNTRY_CODE, tag::value::COUNTRY_CODE)?;
        w.write(tag::MERCHANT_NAME, self.merchant_name.as_bytes())?;
        w.write(tag::MERCHANT_CITY, plan.city)?;
        self.emit_additional_data(w)?;
        self.emit_language(w)?;
        if let Some(exp) = plan.expiration_ms {
            emit_timestamps(w, now_ms, exp)?;
        }
        // The CRC (63) of everything before its own value, ID and length included.
        w.put(tag::value::CRC_HEAD.as_bytes());
        let crc = crc::checksum_hex(w.bytes());
        w.put(&crc);
        Ok(())
    }

    /// The merchant account template, 29 or 30.
    fn emit_account<const N: usize, const UTF16: bool>(
        &self,
        w: &mut ArrayWriter<N, UTF16>,
    ) -> Result<(), TooLong> {
        let (account_tag, second) = match &self.account {
            Account::Individual { .. } => (tag::INDIVIDUAL_ACCOUNT, Field::AccountInformation),
            Account::Merchant { .. } => (tag::MERCHANT_ACCOUNT, Field::MerchantId),
        };
        let t = w.open(account_tag);
        w.write(
            tag::sub::BAKONG_ACCOUNT_ID,
            self.bakong_account_id.as_bytes(),
        )?;
        w.write_given(tag::sub::ACCOUNT_INFORMATION, bytes(self.given(second)))?;
        w.write_given(
            tag::sub::ACQUIRING_BANK,
            bytes(self.given(Field::AcquiringBank)),
        )?;
        w.close(t)
    }

    /// The additional data template (62), when any of its fields is given.
    fn emit_additional_data<const N: usize, const UTF16: bool>(
        &self,
        w: &mut ArrayWriter<N, UTF16>,
    ) -> Result<(), TooLong> {
        let t = w.open(tag::ADDITIONAL_DATA);
        for (sub, slot) in ADDITIONAL_SLOTS {
            w.write_given(sub, bytes(self.given_at(slot)))?;
        }
        w.close_unless_empty(t)
    }

    /// The language template (64), when a name or city in it is given.
    fn emit_language<const N: usize, const UTF16: bool>(
        &self,
        w: &mut ArrayWriter<N, UTF16>,
    ) -> Result<(), TooLong> {
        let name_alt = self.given(Field::MerchantNameAlternateLanguage);
        let city_alt = self.given(Field::MerchantCityAlternateLanguage);
        if name_alt.is_none() && city_alt.is_none() {
            return Ok(());
        }
        // `check` let a name through only with its preference and vice versa.
        let pref = name_alt.and(self.given(Field::LanguagePreference));
        let t = w.open(tag::LANGUAGE_TEMPLATE);
        w.write_given(tag::sub::LANGUAGE_PREFERENCE, bytes(pref))?;
        w.write_given(tag::sub::NAME_ALTERNATE_LANGUAGE, bytes(pref.and(name_alt)))?;
        w.write_given(tag::sub::CITY_ALTERNATE_LANGUAGE, bytes(city_alt))?;
        w.close(t)
    }
}

/// The timestamps template (99): created `now_ms`, expires `exp_ms`.
fn emit_timestamps<const N: usize, const UTF16: bool>(
    w: &mut ArrayWriter<N, UTF16>,
    now_ms: u64,
    exp_ms: u64,
) -> Result<(), TooLong> {
    let mut digits = itoa::Buffer::new();
    let t = w.open(tag::TIMESTAMPS);
    w.write(tag::sub::CREATION_TIMESTAMP, digits.format(now_ms))?;
    w.write(tag::sub::EXPIRATION_TIMESTAMP, digits.format(exp_ms))?;
    w.close(t)
}

/// The first two data objects, 00 and 01, of a static and a dynamic KHQR.
const STATIC_HEAD: [u8; 12] = head_objects(tag::value::STATIC);
const DYNAMIC_HEAD: [u8; 12] = head_objects(tag::value::DYNAMIC);

/// Tags 00 and 01 with the point of initiation method `poi` (two digits).
const fn head_objects(poi: &str) -> [u8; 12] {
    let (pfi, poi) = (
        tag::value::PAYLOAD_FORMAT_INDICATOR.as_bytes(),
        poi.as_bytes(),
    );
    assert!(pfi.len() == 2 && poi.len() == 2);
    let t = (
        tag::PAYLOAD_FORMAT_INDICATOR,
        tag::POINT_OF_INITIATION_METHOD,
    );
    [
        b'0' + t.0 / 10,
        b'0' + t.0 % 10,
        b'0',
        b'2',
        pfi[0],
        pfi[1],
        b'0' + t.1 / 10,
        b'0' + t.1 % 10,
        b'0',
        b'2',
        poi[0],
        poi[1],
    ]
}

/// A text value's UTF-8 bytes, for [`ArrayWriter::write_given`].
fn bytes(v: Option<&str>) -> Option<&[u8]> {
    v.map(str::as_bytes)
}

/// The largest KHQR `generate` can write, in bytes: every value within its
/// checked limit (a UTF-16 unit of BMP text is at most 3 UTF-8 bytes): tags 00,
/// 01, 52, 53, 54, 58 and the CRC take at most 58 bytes; 15, 29/30, 62 and 64
/// at most 4 + 297 each; 59 4 + 75, 60 4 + 45; 99 at most 52 (two timestamps of
/// up to 20 digits): 1,442 in all.
const MAX_PAYLOAD_BYTES: usize = 1536;
/// A buffer that holds most KHQRs (Latin text, or a few Khmer fields).
const USUAL_PAYLOAD_BYTES: usize = 384;

/// What the rules found that `emit` writes.
struct Plan<'p> {
    now_ms: u64,
    mcc: &'p str,
    city: &'p str,
    amount: Option<Amount>,
    expiration_ms: Option<u64>,
    /// Whether the Bakong account ID has our shape (read once for both rules).
    account_id_shape: bool,
}

/// The SDK's checks, in the SDK's order (khqr-notes §4), so that the first
/// error has the SDK's code.
fn check_in_sdk_order<'r>(r: &'r Request<'_>, p: &mut Plan<'r>) -> Result<(), Error> {
    if let Some(u) = r.given(Field::UnionPayMerchantAccount) {
        Field::UnionPayMerchantAccount.check_length(u)?;
    }
    check_account_id_sdk(&r.bakong_account_id, p.account_id_shape)?;
    check_account_template(r)?;
    check_mcc_sdk(p.mcc)?;
    check_upi_currency(r)?;
    check_amount(r, p)?;
    check_name_sdk(&r.merchant_name, Field::MerchantName)?;
    Field::MerchantCity.check_length(p.city)?;
    check_texts(r, &fields_only(ADDITIONAL_DATA))?;
    check_language(r)?;
    check_expiration(r, p)
}

/// Our own rules, after every check the SDK makes.
///
/// The last of them, no control character and nothing outside the BMP in any
/// text (53, [`check_characters`]), runs as one scan of the written payload in
/// `Request::emit`, before a template's length is refused (52).
fn check_in_our_order(r: &Request<'_>, p: &Plan<'_>) -> Result<(), Error> {
    if !p.account_id_shape {
        return Err(account_id_invalid(&r.bakong_account_id));
    }
    check_mcc(p.mcc)?;
    check_blanks(r)
}

/// The sub-tags of [`ADDITIONAL_DATA`] and where a [`Request`] keeps each.
const ADDITIONAL_SLOTS: [(u8, usize); 5] = {
    let mut slots = [(0, 0); 5];
    let mut i = 0;
    while i < ADDITIONAL_DATA.len() {
        let (sub, field) = ADDITIONAL_DATA[i];
        let slot = SLOT_OF[field as usize];
        assert!(
            slot != u8::MAX,
            "every additional data field is optional text"
        );
        slots[i] = (sub, slot as usize);
        i += 1;
    }
    slots
};

/// Where each optional text field of a [`Request`] is kept: the merchant city,
/// then [`OPTIONAL_TEXT_FIELDS`].
const OPTIONAL_SLOTS: [Field; 11] = {
    let mut slots = [Field::MerchantCity; 11];
    let mut i = 0;
    while i < OPTIONAL_TEXT_FIELDS.len() {
        slots[i + 1] = OPTIONAL_TEXT_FIELDS[i];
        i += 1;
    }
    slots
};

/// The place of `field` in [`OPTIONAL_SLOTS`], if it is there.
#[inline]
const fn optional_slot(field: Field) -> Option<usize> {
    match SLOT_OF[field as usize] {
        u8::MAX => None,
        i => Some(i as usize),
    }
}

/// [`OPTIONAL_SLOTS`] inverted: for each field (by its place in the field
/// table), its slot, or `u8::MAX`.
const SLOT_OF: [u8; crate::fields::ALL.len()] = {
    let mut slot_of = [u8::MAX; crate::fields::ALL.len()];
    let mut i = 0;
    while i < OPTIONAL_SLOTS.len() {
        slot_of[OPTIONAL_SLOTS[i] as usize] = i as u8;
        i += 1;
    }
    slot_of
};

/// The optional text fields every request can carry, in the SDK's order of
/// its `optional` object (the account template's own sub-fields aside).
pub(crate) const OPTIONAL_TEXT_FIELDS: [Field; 10] = [
    Field::BillNumber,
    Field::MobileNumber,
    Field::StoreLabel,
    Field::TerminalLabel,
    Field::PurposeOfTransaction,
    Field::LanguagePreference,
    Field::MerchantNameAlternateLanguage,
    Field::MerchantCityAlternateLanguage,
    Field::UnionPayMerchantAccount,
    Field::MerchantCategoryCode,
];

/// Merchant: ID and bank required and within 32; individual: account
/// information and bank within 32 when given.
fn check_account_template(r: &Request<'_>) -> Result<(), Error> {
    if let Account::Merchant {
        merchant_id,
        acquiring_bank,
    } = &r.account
    {
        required(merchant_id, Field::MerchantId)?;
        Field::MerchantId.check_length(merchant_id)?;
        required(acquiring_bank, Field::AcquiringBank)?;
        Field::AcquiringBank.check_length(acquiring_bank)
    } else {
        check_texts(r, &[Field::AccountInformation, Field::AcquiringBank])
    }
}

/// Each given field of `fields` within its length limit.
// Inlined, the loop over a constant list unrolls and each field's member is
// read directly (measured: about 100 instructions fewer per generate).
#[allow(clippy::inline_always)]
#[inline(always)]
fn check_texts(r: &Request<'_>, fields: &[Field]) -> Result<(), Error> {
    for &f in fields {
        if let Some(v) = r.given(f) {
            f.check_length(v)?;
        }
    }
    Ok(())
}

fn check_upi_currency(r: &Request<'_>) -> Result<(), Error> {
    if r.given(Field::UnionPayMerchantAccount).is_some() && r.currency == Currency::Usd {
        return Err(Error::reason(
            ErrorCode::UpiAccountInformationInvalidCurrency,
            Field::UnionPayMerchantAccount,
            "is only allowed with KHR",
        ));
    }
    Ok(())
}

/// The amount, read strictly for the currency; zero makes a static KHQR.
fn check_amount<'r>(r: &'r Request<'_>, plan: &mut Plan<'r>) -> Result<(), Error> {
    plan.amount = match &r.amount {
        None => None,
        Some(AmountInput::Text(t)) if t.is_empty() => None,
        Some(AmountInput::Text(t)) => Some(Amount::parse(t, r.currency)?),
        Some(AmountInput::MinorUnits(m)) => Some(Amount::from_minor_units(*m, r.currency)?),
    }
    .filter(|a| !a.is_zero());
    Ok(())
}

/// Name and preference go together: 39 for a preference without a name, 37 for
/// a name without a preference; then each within its limit.
fn check_language(r: &Request<'_>) -> Result<(), Error> {
    let pref = r.given(Field::LanguagePreference);
    let name = r.given(Field::MerchantNameAlternateLanguage);
    match (pref, name) {
        (Some(_), None) => {
            return Err(Error::reason(
                ErrorCode::MerchantNameAlternateLanguageRequired,
                Field::MerchantNameAlternateLanguage,
                "is required with a language preference",
            ))
        }
        (None, Some(_)) => {
            return Err(Error::reason(
                ErrorCode::LanguagePreferenceRequired,
                Field::LanguagePreference,
                "is required with a merchant name in the alternate language",
            ))
        }
        _ => {}
    }
    check_texts(r, &fields_only(LANGUAGE_FIELDS))
}

/// The expirations the SDK accepts: 13 digits of milliseconds since the Unix
/// epoch (2001-09-09 to 2286-11-20), code 49 otherwise.
pub(crate) const EXPIRATION_MS: core::ops::Range<u64> = 1_000_000_000_000..10_000_000_000_000;
/// Why an expiration outside [`EXPIRATION_MS`] is refused (generate, verify).
pub(crate) const EXPIRATION_SHAPE: &str = "must be 13 digits of milliseconds since the Unix epoch";

/// A dynamic KHQR needs an expiration of 13 digits, not before `now`; a static
/// one takes none.
fn check_expiration<'r>(r: &'r Request<'_>, plan: &mut Plan<'r>) -> Result<(), Error> {
    let e = match (plan.amount.is_some(), r.expiration) {
        (true, Some(e)) => e,
        (true, None) => {
            return Err(Error::reason(
                ErrorCode::ExpirationTimestampRequired,
                Field::ExpirationTimestamp,
                "is required for a dynamic KHQR (one with an amount)",
            ))
        }
        // Ours, at the SDK's place for the expiration: refused, not dropped.
        (false, Some(_)) => {
            return Err(Error::reason(
                ErrorCode::ExpirationOnStaticKhqr,
                Field::ExpirationTimestamp,
                "was given for a static KHQR (no amount, or zero); a static KHQR never expires",
            ))
        }
        (false, None) => return Ok(()),
    };
    let ms = match e {
        Expiration::AtMs(ms) => ms,
        Expiration::AfterMs(d) => plan.now_ms.saturating_add(d),
    };
    if !EXPIRATION_MS.contains(&ms) {
        return Err(Error::reason_with(
            ErrorCode::ExpirationTimestampLengthInvalid,
            Field::ExpirationTimestamp,
            EXPIRATION_SHAPE,
            &ms.to_string(),
        ));
    }
    if ms < plan.now_ms {
        return Err(Error::reason_with(
            ErrorCode::ExpirationTimestampInThePast,
            Field::ExpirationTimestamp,
            "is before the creation time (now)",
            &ms.to_string(),
        ));
    }
    plan.expiration_ms = Some(ms);
    Ok(())
}

/// Ours: the merchant name, merchant ID and acquiring bank are not blank.
fn check_blanks(r: &Request<'_>) -> Result<(), Error> {
    check_not_blank(
        &r.merchant_name,
        ErrorCode::MerchantNameRequired,
        Field::MerchantName,
    )?;
    if let Account::Merchant {
        merchant_id,
        acquiring_bank,
    } = &r.account
    {
        check_not_blank(
            merchant_id,
            ErrorCode::MerchantIdRequired,
            Field::MerchantId,
        )?;
        check_not_blank(
            acquiring_bank,
            ErrorCode::AcquiringBankRequired,
            Field::AcquiringBank,
        )?;
    }
    Ok(())
}

/// Ours: no control character and nothing outside the BMP in any text (53).
fn check_characters(r: &Request<'_>, plan: &Plan<'_>) -> Result<(), Error> {
    // Every text field of the request, in the table's order, the merchant city
    // as written (the default when not given). The MCC and the amount are
    // digits, checked before.
    for &f in crate::fields::ALL {
        let v = match f {
            Field::MerchantCategoryCode | Field::TransactionAmount => None,
            Field::MerchantCity => Some(plan.city),
            _ => r.given(f),
        };
        if let Some(v) = v {
            check_chars(v, f)?;
        }
    }
    Ok(())
}

fn too_long_error(e: TooLong) -> Error {
    let field = crate::decode::template_field(e.id);
    Error::too_long(ErrorCode::TemplateTooLong, field, e.length, 99)
}

/// Refuses an empty required value with the field's code from the table.
fn required(v: &str, field: Field) -> Result<(), Error> {
    match field.empty_code() {
        Some(code) if v.is_empty() => Err(Error::missing(code, field)),
        _ => Ok(()),
    }
}

/// Account ID, the SDK's rules: 1 if empty, 6 if over 32, 3 without an `@`.
/// `shape`: whether it has our shape ([`account_id_shape`]), which has one.
fn check_account_id_sdk(id: &str, shape: bool) -> Result<(), Error> {
    required(id, Field::BakongAccountId)?;
    Field::BakongAccountId.check_length(id)?;
    if shape || id.contains('@') {
        Ok(())
    } else {
        Err(account_id_invalid(id))
    }
}

fn account_id_invalid(id: &str) -> Error {
    Error::reason_with(
        ErrorCode::BakongAccountIdInvalid,
        Field::BakongAccountId,
        "must be name@bank: exactly one '@' with text on both sides and no whitespace",
        id,
    )
}

/// Whether `id` is exactly one `@` with text on both sides and no white space:
/// our rule on top of the SDK's (which accepts `@`, `a@`, `a@b@c`), code 3.
fn account_id_shape(id: &str) -> bool {
    // One pass over the bytes, eight at a time ('@' is ASCII and never part
    // of a multi-byte character): count the '@', flag a byte at or below
    // b' ' (ASCII white space is there; the exact test runs when one is) and
    // a byte over 0x7F.
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const LOW7: u64 = ONES * 0x7F;
    const TOPS: u64 = ONES * 0x80;
    let b = id.as_bytes();
    let (mut ats, mut flags, mut high) = (0, 0, 0);
    for x in words(b) {
        // Per byte, exact (no carry leaves a byte): top bit set unless zero.
        let not_zero = |y: u64| ((y & LOW7) + LOW7) | y;
        ats += (!not_zero(x ^ (ONES * u64::from(b'@'))) & TOPS).count_ones();
        // Top bit set for a byte at or below b' '.
        flags |= !(((x & LOW7) + ONES * 0x5F) | x) & TOPS;
        high |= x & TOPS;
    }
    let space = flags != 0 && b.iter().any(|&c| c.is_ascii_whitespace() || c == 0x0B);
    ats == 1
        && b.first() != Some(&b'@')
        && b.last() != Some(&b'@')
        && !space
        && (high == 0 || !id.chars().any(char::is_whitespace))
}

/// `b` as little-endian words of eight bytes, the last padded with `a`.
fn words(b: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let chunks = b.chunks_exact(8);
    let tail = chunks.remainder();
    let mut last = [b'a'; 8];
    last[..tail.len()].copy_from_slice(tail);
    chunks
        .map(|c| {
            let mut w = [0; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .chain((!tail.is_empty()).then_some(u64::from_le_bytes(last)))
}

/// Account ID: the SDK's rules, then ours.
pub(crate) fn check_account_id(id: &str) -> Result<(), Error> {
    let shape = account_id_shape(id);
    check_account_id_sdk(id, shape)?;
    if shape {
        Ok(())
    } else {
        Err(account_id_invalid(id))
    }
}

fn mcc_invalid(mcc: &str) -> Error {
    Error::reason_with(
        ErrorCode::InvalidMerchantCategoryCode,
        Field::MerchantCategoryCode,
        "must be exactly 4 digits (ISO 18245)",
        mcc,
    )
}

/// MCC, the SDK's rules: 18 if over 4 characters, 51 unless all ASCII digits.
pub(crate) fn check_mcc_sdk(mcc: &str) -> Result<(), Error> {
    Field::MerchantCategoryCode.check_length(mcc)?;
    if !mcc.is_empty() && mcc.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(mcc_invalid(mcc))
    }
}

/// MCC: the SDK's rules, then ours: exactly 4 digits (the SDK accepts `7`).
#[inline]
pub(crate) fn check_mcc(mcc: &str) -> Result<(), Error> {
    if mcc.len() == 4 && mcc.bytes().all(|b| b.is_ascii_digit()) {
        // Valid by both rule sets (the usual case, decided in one test).
        return Ok(());
    }
    check_mcc_sdk(mcc)?;
    if mcc.len() == 4 {
        Ok(())
    } else {
        Err(mcc_invalid(mcc))
    }
}

/// A required name, the SDK's rules: `required` code if empty, `length` code if
/// over `max`.
fn check_name_sdk(v: &str, field: Field) -> Result<(), Error> {
    required(v, field)?;
    field.check_length(v)
}

/// Our rule on top: the `required` code if the name is only whitespace.
pub(crate) fn check_not_blank(
    v: &str,
    required_code: ErrorCode,
    field: Field,
) -> Result<(), Error> {
    // Blank: nothing but white space and invisible format characters (zero-width
    // space, joiners, word joiner, byte-order mark). Any visible ASCII ends it.
    let invisible = |c: char| {
        c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
    };
    if !v.bytes().any(|b| b.is_ascii_graphic()) && v.chars().all(invisible) {
        return Err(Error::reason(required_code, field, "is blank"));
    }
    Ok(())
}

/// Whether `v` is all printable ASCII, 0x20 to 0x7E (then no text in it can
/// break the character rule). Eight bytes at a time: a byte below 0x20 makes
/// `x - 0x20` borrow into its top bit where its own top bit is clear; a byte
/// of 0x7F or more has its top bit set in `x | (x + 1)` (a carry out of an
/// 0xFF byte only reaches a byte after one already found).
pub(crate) fn printable_ascii(v: &str) -> bool {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const TOPS: u64 = ONES * 0x80;
    let chunks = v.as_bytes().chunks_exact(8);
    let tail = chunks.remainder();
    let mut bad = 0;
    for c in chunks {
        let mut word = [0; 8];
        word.copy_from_slice(c);
        let x = u64::from_le_bytes(word);
        bad |= (x.wrapping_sub(ONES * 0x20) & !x) | x | x.wrapping_add(ONES);
    }
    bad & TOPS == 0 && tail.iter().all(|c| (0x20..0x7F).contains(c))
}

/// 53 for a control character or a character outside the BMP.
pub(crate) fn check_chars(v: &str, field: Field) -> Result<(), Error> {
    // Fast path: printable ASCII has neither.
    if printable_ascii(v) {
        return Ok(());
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(Error::reason_with(
            ErrorCode::InvalidCharacter,
            field,
            "contains a control character",
            &format!("U+{:04X}", u32::from(c)),
        ));
    }
    if let Some(c) = v.chars().find(|c| u32::from(*c) > 0xFFFF) {
        return Err(Error::reason_with(
            ErrorCode::InvalidCharacter,
            field,
            "contains a character outside the Basic Multilingual Plane (readers disagree on its length)",
            &c.to_string(),
        ));
    }
    Ok(())
}

/// The character rule when reading a payload (`verify`, the card): control
/// characters are refused (53, as [`check_chars`]); text outside the BMP is
/// accepted (bank apps print emoji; the lengths were checked as written).
#[inline]
pub(crate) fn check_chars_reading(v: &str, field: Field) -> Result<(), Error> {
    if printable_ascii(v) || !v.chars().any(char::is_control) {
        return Ok(());
    }
    check_chars(v, field)
}

/// A generated KHQR: the payload string and its MD5.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Khqr {
    payload: String,
    md5: Md5,
}

impl Khqr {
    /// The payload, the text to put in the QR symbol.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.payload
    }

    /// The MD5 of the payload, for Bakong's `check_transaction_by_md5`.
    #[must_use]
    pub const fn md5(&self) -> Md5 {
        self.md5
    }

    /// The short transaction id derived from the MD5 (see [`Md5::tran_id`]).
    #[must_use]
    pub fn tran_id(&self) -> TranId {
        self.md5.tran_id()
    }

    /// The payload, by value.
    #[must_use]
    pub fn into_string(self) -> String {
        self.payload
    }
}

impl Khqr {
    #[cfg(feature = "serde")]
    pub(crate) fn from_parts(payload: String, md5: Md5) -> Self {
        Khqr { payload, md5 }
    }
}

impl AsRef<str> for Khqr {
    fn as_ref(&self) -> &str {
        &self.payload
    }
}

impl fmt::Display for Khqr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.payload)
    }
}

impl fmt::Debug for Khqr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Khqr")
            .field("payload", &self.payload)
            .field("md5", &self.md5)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{account_id_shape, printable_ascii, Field, Request, USUAL_PAYLOAD_BYTES};

    #[test]
    fn a_payload_over_the_small_buffer_is_written_whole() {
        let khmer = |n: usize| "ក".repeat(n);
        let (name, city, text) = (khmer(25), khmer(15), khmer(25));
        let now_ms = 1_700_000_000_000;
        let khqr = Request::individual("jonhsmith@nbcq", name.as_str())
            .merchant_city(city.as_str())
            .amount("1000")
            .expires_in_ms(60_000)
            .bill_number(text.as_str())
            .store_label(text.as_str())
            .terminal_label(text.as_str())
            .language_preference("km")
            .merchant_name_alternate_language(text.as_str())
            .merchant_city_alternate_language(city.as_str())
            .generate(now_ms)
            .unwrap();
        assert!(khqr.as_str().len() > USUAL_PAYLOAD_BYTES);
        let d = crate::verify(khqr.as_str(), now_ms).unwrap();
        assert_eq!(d.merchant_name(), Some(name.as_str()));
        assert_eq!(d.terminal_label(), Some(text.as_str()));
        assert_eq!(d.merchant_city_alternate_language(), Some(city.as_str()));
        assert_eq!(d.expiration_timestamp(), Some("1700000060000"));
    }

    #[test]
    fn an_ascii_payload_over_the_small_buffer_is_written_whole() {
        // Every value within its limit, all ASCII: the first writer runs out
        // of room mid-template (a head cut off at the buffer's end), and the
        // payload is written again whole.
        let now_ms = 1_700_000_000_000;
        let (id, name) = (format!("{}@b", "a".repeat(30)), "N".repeat(25));
        let (info, bank, city) = ("I".repeat(32), "B".repeat(23), "C".repeat(15));
        let (upi, bill, mobile) = ("U".repeat(99), "b".repeat(25), "m".repeat(25));
        for store in 18..=25 {
            let store = "s".repeat(store);
            let khqr = Request::individual(id.as_str(), name.as_str())
                .account_information(info.as_str())
                .acquiring_bank(bank.as_str())
                .merchant_city(city.as_str())
                .upi_merchant_account(upi.as_str())
                .bill_number(bill.as_str())
                .mobile_number(mobile.as_str())
                .store_label(store.as_str())
                .amount("1")
                .expires_in_ms(60_000)
                .generate(now_ms)
                .unwrap();
            let d = crate::verify(khqr.as_str(), now_ms).unwrap();
            assert_eq!(d.store_label(), Some(store.as_str()));
            assert_eq!(d.field(Field::UnionPayMerchantAccount), Some(upi.as_str()));
        }
    }

    #[test]
    fn account_id_rule_at_every_place() {
        // The rule byte by byte: exactly one '@', not first or last, no white space.
        let rule = |id: &str| {
            id.matches('@').count() == 1
                && !id.starts_with('@')
                && !id.ends_with('@')
                && !id.chars().any(char::is_whitespace)
        };
        let odd = [
            "@", " ", "\t", "\u{b}", "\u{a0}", "\u{3000}", "!", "\u{7f}", "ក", "😀", "\0",
        ];
        for len in 1..=20 {
            for at in 0..len {
                for c in odd {
                    let base: String = "ab@cdefghijklmnopqrstuv".chars().take(len).collect();
                    let mut s: String = base.chars().take(at).collect();
                    s.push_str(c);
                    s.extend(base.chars().skip(at + 1));
                    assert_eq!(account_id_shape(&s), rule(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn printable_ascii_agrees_with_the_byte_rule_at_every_place() {
        // Every ASCII byte and some UTF-8 text at each place of strings of
        // 1 to 20 bytes: the eight-byte words, their borrows and the tail.
        let odd = ["\u{7f}", "é", "ក", "\u{80}", "\u{ff}", "😀"];
        for len in 1..=20 {
            for at in 0..len {
                let text = (0u8..0x80).map(|b| char::from(b).to_string());
                for c in text.chain(odd.iter().map(|s| (*s).to_owned())) {
                    let s = format!(
                        "{}{c}{}",
                        "a~ ".repeat(7).get(..at).unwrap(),
                        "Z".repeat(len - at - 1)
                    );
                    let want = s.bytes().all(|b| (0x20..0x7F).contains(&b));
                    assert_eq!(printable_ascii(&s), want, "{s:?}");
                }
            }
        }
    }
}
