//! Building a KHQR payload from a [`Request`].

use alloc::borrow::{Cow, ToOwned};
use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

use crate::amount::{decimal, Amount, Currency};
use crate::crc;
use crate::error::{Error, ErrorCode, Field};
use crate::hash::{Md5, TranId};
use crate::tag;
use crate::tlv::{utf16_len, TooLong, Writer};

/// The merchant account template and what goes in it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
pub enum Expiration {
    /// At this instant, in milliseconds since the Unix epoch (13 digits).
    AtMs(u64),
    /// This many milliseconds after the `now` given to [`Request::generate`].
    AfterMs(u64),
}

/// An amount as the caller gave it; read for the request's currency at
/// generation time.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Everything a KHQR can carry, with the official SDK's fields (`IndividualInfo`
/// / `MerchantInfo` and their `optional` object).
///
/// Build one with [`Request::individual`] or [`Request::merchant`] and the
/// setters, then call [`Request::generate`] with the current time. Nothing is
/// checked until then; `generate` returns the first error in the SDK's order.
/// Optional text that is empty counts as absent, as in the SDK.
///
/// All lengths are in UTF-16 code units, which for the text KHQR carries (Latin,
/// Khmer, Thai, CJK — all in the Basic Multilingual Plane) is the number of
/// characters.
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Bakong account ID, `name@bank`, ≤ 32 characters (tag 29/30 sub-tag 00).
    pub bakong_account_id: Cow<'a, str>,
    /// Merchant name, 1–25 characters (tag 59).
    pub merchant_name: Cow<'a, str>,
    /// Merchant city, ≤ 15 characters (tag 60); `Phnom Penh` when absent.
    pub merchant_city: Option<Cow<'a, str>>,
    /// Individual or merchant, with the template's other sub-fields.
    pub account: Account<'a>,
    /// Transaction currency (tag 53); KHR by default.
    pub currency: Currency,
    /// Transaction amount (tag 54). Absent or zero: a static KHQR (point of
    /// initiation 11), which the payer fills in; otherwise dynamic (12).
    pub amount: Option<AmountInput<'a>>,
    /// Expiration of a dynamic KHQR (tag 99 sub-tag 01); required for one,
    /// refused for a static one.
    pub expiration: Option<Expiration>,
    /// Bill number, ≤ 25 characters (tag 62 sub-tag 01).
    pub bill_number: Option<Cow<'a, str>>,
    /// Mobile number, ≤ 25 characters (tag 62 sub-tag 02).
    pub mobile_number: Option<Cow<'a, str>>,
    /// Store label, ≤ 25 characters (tag 62 sub-tag 03).
    pub store_label: Option<Cow<'a, str>>,
    /// Terminal label, ≤ 25 characters (tag 62 sub-tag 07).
    pub terminal_label: Option<Cow<'a, str>>,
    /// Purpose of transaction, ≤ 25 characters (tag 62 sub-tag 08).
    pub purpose_of_transaction: Option<Cow<'a, str>>,
    /// Language preference, ≤ 2 characters, e.g. `km` (tag 64 sub-tag 00);
    /// goes with `merchant_name_alternate_language`.
    pub language_preference: Option<Cow<'a, str>>,
    /// Merchant name in the alternate language, ≤ 25 characters (tag 64 sub-tag 01);
    /// goes with `language_preference`.
    pub merchant_name_alternate_language: Option<Cow<'a, str>>,
    /// Merchant city in the alternate language, ≤ 15 characters (tag 64 sub-tag 02).
    pub merchant_city_alternate_language: Option<Cow<'a, str>>,
    /// UnionPay merchant account, ≤ 99 characters, written raw as tag 15; KHR only.
    pub upi_merchant_account: Option<Cow<'a, str>>,
    /// Merchant Category Code, 4 digits (tag 52); `5999` when absent.
    pub merchant_category_code: Option<Cow<'a, str>>,
}

/// Default merchant city, as the SDK.
pub const DEFAULT_CITY: &str = "Phnom Penh";
/// Default Merchant Category Code, as the SDK.
pub const DEFAULT_MCC: &str = "5999";

macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident; )*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: impl Into<Cow<'a, str>>) -> Self {
                self.$name = Some(value.into());
                self
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
            merchant_city: None,
            account,
            currency: Currency::Khr,
            amount: None,
            expiration: None,
            bill_number: None,
            mobile_number: None,
            store_label: None,
            terminal_label: None,
            purpose_of_transaction: None,
            language_preference: None,
            merchant_name_alternate_language: None,
            merchant_city_alternate_language: None,
            upi_merchant_account: None,
            merchant_category_code: None,
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
    #[must_use]
    pub fn merchant(
        bakong_account_id: impl Into<Cow<'a, str>>,
        merchant_name: impl Into<Cow<'a, str>>,
        merchant_id: impl Into<Cow<'a, str>>,
        acquiring_bank: impl Into<Cow<'a, str>>,
    ) -> Self {
        Self::base(
            bakong_account_id.into(),
            merchant_name.into(),
            Account::Merchant {
                merchant_id: merchant_id.into(),
                acquiring_bank: acquiring_bank.into(),
            },
        )
    }

    setters! {
        /// Sets the merchant city (tag 60).
        merchant_city;
        /// Sets the bill number (tag 62 sub-tag 01).
        bill_number;
        /// Sets the mobile number (tag 62 sub-tag 02).
        mobile_number;
        /// Sets the store label (tag 62 sub-tag 03).
        store_label;
        /// Sets the terminal label (tag 62 sub-tag 07).
        terminal_label;
        /// Sets the purpose of transaction (tag 62 sub-tag 08).
        purpose_of_transaction;
        /// Sets the language preference (tag 64 sub-tag 00).
        language_preference;
        /// Sets the merchant name in the alternate language (tag 64 sub-tag 01).
        merchant_name_alternate_language;
        /// Sets the merchant city in the alternate language (tag 64 sub-tag 02).
        merchant_city_alternate_language;
        /// Sets the UnionPay merchant account (tag 15).
        upi_merchant_account;
        /// Sets the Merchant Category Code (tag 52).
        merchant_category_code;
    }

    /// Sets the account information (tag 29 sub-tag 01); ignored for a merchant.
    #[must_use]
    pub fn account_information(mut self, value: impl Into<Cow<'a, str>>) -> Self {
        if let Account::Individual {
            account_information,
            ..
        } = &mut self.account
        {
            *account_information = Some(value.into());
        }
        self
    }

    /// Sets the acquiring bank (tag 29/30 sub-tag 02).
    #[must_use]
    pub fn acquiring_bank(mut self, value: impl Into<Cow<'a, str>>) -> Self {
        match &mut self.account {
            Account::Individual { acquiring_bank, .. } => *acquiring_bank = Some(value.into()),
            Account::Merchant { acquiring_bank, .. } => *acquiring_bank = value.into(),
        }
        self
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

    /// Sets the expiration instant, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn expires_at_ms(mut self, ms: u64) -> Self {
        self.expiration = Some(Expiration::AtMs(ms));
        self
    }

    /// Sets the expiration to `ms` milliseconds after the `now` of [`Request::generate`].
    #[must_use]
    pub fn expires_in_ms(mut self, ms: u64) -> Self {
        self.expiration = Some(Expiration::AfterMs(ms));
        self
    }

    /// Builds the KHQR string and its MD5. `now_ms` (milliseconds since the Unix
    /// epoch) becomes the creation timestamp of a dynamic KHQR; a static KHQR does
    /// not depend on it. The library never reads the clock.
    ///
    /// The output is byte for byte what the official SDK (`bakong-khqr` 1.0.20)
    /// generates for the same input wherever the SDK accepts it correctly.
    ///
    /// # Errors
    /// The first failing check, in the SDK's order (khqr-notes §4), so the code
    /// matches the SDK's wherever the SDK reports one:
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
    /// Then our own refusals, for input the SDK accepts but should not (so they
    /// never hide an error the SDK would report): an expiration on a static KHQR
    /// (55); an account ID that is not exactly one `@` with text on both sides and
    /// no whitespace (3); an MCC that is not exactly 4 digits (51); a blank
    /// merchant name (2), merchant ID (30) or acquiring bank (31), where blank
    /// means only white space or invisible format characters; a control
    /// character or a character outside the Basic
    /// Multilingual Plane in any text (53); a template over 99 characters (52).
    /// (Amounts are the exception: every amount refusal has code 4 at the amount's
    /// place in the order.)
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

    /// Validates in the SDK's order; returns what `emit` needs.
    fn check(&self, now_ms: u64) -> Result<Plan<'_>, Error> {
        let upi = non_empty(&self.upi_merchant_account);
        if let Some(u) = upi {
            Field::UnionPayMerchantAccount.check_length(u)?;
        }
        check_account_id_sdk(&self.bakong_account_id)?;
        match &self.account {
            Account::Merchant {
                merchant_id,
                acquiring_bank,
            } => {
                required(
                    merchant_id,
                    ErrorCode::MerchantIdRequired,
                    Field::MerchantId,
                )?;
                Field::MerchantId.check_length(merchant_id)?;
                required(
                    acquiring_bank,
                    ErrorCode::AcquiringBankRequired,
                    Field::AcquiringBank,
                )?;
                Field::AcquiringBank.check_length(acquiring_bank)?;
            }
            Account::Individual {
                account_information,
                acquiring_bank,
            } => {
                if let Some(a) = non_empty(account_information) {
                    Field::AccountInformation.check_length(a)?;
                }
                if let Some(b) = non_empty(acquiring_bank) {
                    Field::AcquiringBank.check_length(b)?;
                }
            }
        }
        let mcc = non_empty(&self.merchant_category_code).unwrap_or(DEFAULT_MCC);
        check_mcc_sdk(mcc)?;
        if upi.is_some() && self.currency == Currency::Usd {
            return Err(Error::reason(
                ErrorCode::UpiAccountInformationInvalidCurrency,
                Field::UnionPayMerchantAccount,
                "is only allowed with KHR",
            ));
        }
        let amount = match &self.amount {
            None => None,
            Some(AmountInput::Text(t)) if t.is_empty() => None,
            Some(AmountInput::Text(t)) => Some(Amount::parse(t, self.currency)?),
            Some(AmountInput::MinorUnits(m)) => Some(Amount::from_minor_units(*m, self.currency)?),
        }
        .filter(|a| !a.is_zero());
        check_name_sdk(
            &self.merchant_name,
            25,
            ErrorCode::MerchantNameRequired,
            ErrorCode::MerchantNameLengthInvalid,
            Field::MerchantName,
        )?;
        let city = non_empty(&self.merchant_city).unwrap_or(DEFAULT_CITY);
        Field::MerchantCity.check_length(city)?;
        for (v, field) in [
            (&self.bill_number, Field::BillNumber),
            (&self.mobile_number, Field::MobileNumber),
            (&self.store_label, Field::StoreLabel),
            (&self.terminal_label, Field::TerminalLabel),
            (&self.purpose_of_transaction, Field::PurposeOfTransaction),
        ] {
            if let Some(v) = non_empty(v) {
                field.check_length(v)?;
            }
        }
        let pref = non_empty(&self.language_preference);
        let name_alt = non_empty(&self.merchant_name_alternate_language);
        let city_alt = non_empty(&self.merchant_city_alternate_language);
        match (pref, name_alt) {
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
        if let Some(p) = pref {
            Field::LanguagePreference.check_length(p)?;
        }
        if let Some(n) = name_alt {
            Field::MerchantNameAlternateLanguage.check_length(n)?;
        }
        if let Some(c) = city_alt {
            Field::MerchantCityAlternateLanguage.check_length(c)?;
        }
        let expiration_ms =
            match (amount.is_some(), self.expiration) {
                (true, None) => {
                    return Err(Error::reason(
                        ErrorCode::ExpirationTimestampRequired,
                        Field::ExpirationTimestamp,
                        "is required for a dynamic KHQR (one with an amount)",
                    ))
                }
                (true, Some(e)) => {
                    let ms = match e {
                        Expiration::AtMs(ms) => ms,
                        Expiration::AfterMs(d) => now_ms.saturating_add(d),
                    };
                    if !(1_000_000_000_000..10_000_000_000_000).contains(&ms) {
                        return Err(Error::reason_with(
                            ErrorCode::ExpirationTimestampLengthInvalid,
                            Field::ExpirationTimestamp,
                            "must be 13 digits of milliseconds since the Unix epoch",
                            &ms.to_string(),
                        ));
                    }
                    if ms < now_ms {
                        return Err(Error::reason_with(
                            ErrorCode::ExpirationTimestampInThePast,
                            Field::ExpirationTimestamp,
                            "is before the creation time (now)",
                            &ms.to_string(),
                        ));
                    }
                    Some(ms)
                }
                (false, Some(_)) => return Err(Error::reason(
                    ErrorCode::ExpirationOnStaticKhqr,
                    Field::ExpirationTimestamp,
                    "was given for a static KHQR (no amount, or zero); a static KHQR never expires",
                )),
                (false, None) => None,
            };
        // Our own rules, after every check the SDK makes, so that the first
        // error has the SDK's code whenever the SDK reports one.
        check_account_id_strict(&self.bakong_account_id)?;
        check_mcc(mcc)?;
        check_not_blank(
            &self.merchant_name,
            ErrorCode::MerchantNameRequired,
            Field::MerchantName,
        )?;
        if let Account::Merchant {
            merchant_id,
            acquiring_bank,
        } = &self.account
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
        let mut texts: [(Option<&str>, Field); 15] = [
            (Some(&self.bakong_account_id), Field::BakongAccountId),
            (None, Field::AccountInformation),
            (None, Field::AcquiringBank),
            (Some(&self.merchant_name), Field::MerchantName),
            (Some(city), Field::MerchantCity),
            (non_empty(&self.bill_number), Field::BillNumber),
            (non_empty(&self.mobile_number), Field::MobileNumber),
            (non_empty(&self.store_label), Field::StoreLabel),
            (non_empty(&self.terminal_label), Field::TerminalLabel),
            (
                non_empty(&self.purpose_of_transaction),
                Field::PurposeOfTransaction,
            ),
            (pref, Field::LanguagePreference),
            (name_alt, Field::MerchantNameAlternateLanguage),
            (city_alt, Field::MerchantCityAlternateLanguage),
            (upi, Field::UnionPayMerchantAccount),
            (None, Field::MerchantId),
        ];
        match &self.account {
            Account::Individual {
                account_information,
                acquiring_bank,
            } => {
                texts[1].0 = non_empty(account_information);
                texts[2].0 = non_empty(acquiring_bank);
            }
            Account::Merchant {
                merchant_id,
                acquiring_bank,
            } => {
                texts[14].0 = Some(merchant_id);
                texts[2].0 = Some(acquiring_bank);
            }
        }
        for (text, field) in texts {
            if let Some(t) = text {
                check_chars(t, field)?;
            }
        }
        Ok(Plan {
            upi,
            mcc,
            amount,
            city,
            pref,
            name_alt,
            city_alt,
            expiration_ms,
        })
    }

    fn emit(&self, plan: &Plan<'_>, now_ms: u64, out: &mut String) -> Result<(), Error> {
        let start = out.len();
        let mut w = Writer::new(out);
        let r: Result<(), TooLong> = (|| {
            w.write(tag::PAYLOAD_FORMAT_INDICATOR, "01")?;
            w.write(
                tag::POINT_OF_INITIATION_METHOD,
                if plan.amount.is_some() { "12" } else { "11" },
            )?;
            if let Some(u) = plan.upi {
                w.write(tag::UNIONPAY_MERCHANT_ACCOUNT, u)?;
            }
            match &self.account {
                Account::Individual {
                    account_information,
                    acquiring_bank,
                } => w.write_template_parts(
                    tag::INDIVIDUAL_ACCOUNT,
                    &[
                        (tag::sub::BAKONG_ACCOUNT_ID, Some(&self.bakong_account_id)),
                        (
                            tag::sub::ACCOUNT_INFORMATION,
                            non_empty(account_information),
                        ),
                        (tag::sub::ACQUIRING_BANK, non_empty(acquiring_bank)),
                    ],
                )?,
                Account::Merchant {
                    merchant_id,
                    acquiring_bank,
                } => w.write_template_parts(
                    tag::MERCHANT_ACCOUNT,
                    &[
                        (tag::sub::BAKONG_ACCOUNT_ID, Some(&self.bakong_account_id)),
                        (tag::sub::MERCHANT_ID, Some(merchant_id)),
                        (tag::sub::ACQUIRING_BANK, Some(acquiring_bank)),
                    ],
                )?,
            }
            w.write(tag::MERCHANT_CATEGORY_CODE, plan.mcc)?;
            w.write(tag::TRANSACTION_CURRENCY, self.currency.numeric_str())?;
            if let Some(a) = &plan.amount {
                w.write(tag::TRANSACTION_AMOUNT, a.as_str())?;
            }
            w.write(tag::COUNTRY_CODE, "KH")?;
            w.write(tag::MERCHANT_NAME, &self.merchant_name)?;
            w.write(tag::MERCHANT_CITY, plan.city)?;
            let additional = [
                (tag::sub::BILL_NUMBER, non_empty(&self.bill_number)),
                (tag::sub::MOBILE_NUMBER, non_empty(&self.mobile_number)),
                (tag::sub::STORE_LABEL, non_empty(&self.store_label)),
                (tag::sub::TERMINAL_LABEL, non_empty(&self.terminal_label)),
                (
                    tag::sub::PURPOSE_OF_TRANSACTION,
                    non_empty(&self.purpose_of_transaction),
                ),
            ];
            if additional.iter().any(|(_, v)| v.is_some()) {
                w.write_template_parts(tag::ADDITIONAL_DATA, &additional)?;
            }
            if plan.name_alt.is_some() || plan.city_alt.is_some() {
                let (pref, name) = match (plan.pref, plan.name_alt) {
                    (Some(p), Some(n)) => (Some(p), Some(n)),
                    _ => (None, None),
                };
                w.write_template_parts(
                    tag::LANGUAGE_TEMPLATE,
                    &[
                        (tag::sub::LANGUAGE_PREFERENCE, pref),
                        (tag::sub::NAME_ALTERNATE_LANGUAGE, name),
                        (tag::sub::CITY_ALTERNATE_LANGUAGE, plan.city_alt),
                    ],
                )?;
            }
            if let Some(exp) = plan.expiration_ms {
                let (mut created_buf, mut exp_buf) = ([0u8; 20], [0u8; 20]);
                w.write_template_parts(
                    tag::TIMESTAMPS,
                    &[
                        (
                            tag::sub::CREATION_TIMESTAMP,
                            Some(decimal(now_ms, &mut created_buf)),
                        ),
                        (
                            tag::sub::EXPIRATION_TIMESTAMP,
                            Some(decimal(exp, &mut exp_buf)),
                        ),
                    ],
                )?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            out.truncate(start);
            return Err(too_long_error(e));
        }
        out.push_str("6304");
        let crc = crc::checksum_hex(&out.as_bytes()[start..]);
        out.push_str(core::str::from_utf8(&crc).unwrap_or("0000"));
        Ok(())
    }
}

struct Plan<'p> {
    upi: Option<&'p str>,
    mcc: &'p str,
    amount: Option<Amount>,
    city: &'p str,
    pref: Option<&'p str>,
    name_alt: Option<&'p str>,
    city_alt: Option<&'p str>,
    expiration_ms: Option<u64>,
}

fn too_long_error(e: TooLong) -> Error {
    let field = crate::decode::template_field(e.id);
    Error::too_long(ErrorCode::TemplateTooLong, field, e.length, 99)
}

#[allow(clippy::ref_option)] // called on the `Request` fields as they are
pub(crate) fn non_empty<'s>(v: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    v.as_ref()
        .map(AsRef::as_ref)
        .filter(|s: &&str| !s.is_empty())
}

pub(crate) fn required(v: &str, code: ErrorCode, field: Field) -> Result<(), Error> {
    if v.is_empty() {
        Err(Error::missing(code, field))
    } else {
        Ok(())
    }
}

pub(crate) fn max_len(v: &str, max: usize, code: ErrorCode, field: Field) -> Result<(), Error> {
    let n = utf16_len(v);
    if n > max {
        Err(Error::too_long(code, field, n, max))
    } else {
        Ok(())
    }
}

/// Account ID, the SDK's rules: 1 if empty, 6 if over 32, 3 without an `@`.
pub(crate) fn check_account_id_sdk(id: &str) -> Result<(), Error> {
    required(
        id,
        ErrorCode::BakongAccountIdRequired,
        Field::BakongAccountId,
    )?;
    Field::BakongAccountId.check_length(id)?;
    if id.contains('@') {
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

/// Account ID, our rule on top of the SDK's: 3 unless exactly one `@` with text
/// on both sides and no whitespace (the SDK accepts `@`, `a@`, `a@b@c`).
pub(crate) fn check_account_id_strict(id: &str) -> Result<(), Error> {
    // One pass over the bytes: '@' is ASCII and never part of a multi-byte
    // character.
    let b = id.as_bytes();
    let ok = b.iter().position(|&c| c == b'@') == b.iter().rposition(|&c| c == b'@')
        && b.contains(&b'@')
        && b.first() != Some(&b'@')
        && b.last() != Some(&b'@')
        && !has_whitespace(id);
    if ok {
        Ok(())
    } else {
        Err(account_id_invalid(id))
    }
}

/// Account ID: the SDK's rules, then ours.
pub(crate) fn check_account_id(id: &str) -> Result<(), Error> {
    check_account_id_sdk(id)?;
    check_account_id_strict(id)
}

fn has_whitespace(s: &str) -> bool {
    if s.is_ascii() {
        s.bytes().any(|b| b.is_ascii_whitespace() || b == 0x0B)
    } else {
        s.chars().any(char::is_whitespace)
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
pub(crate) fn check_mcc(mcc: &str) -> Result<(), Error> {
    check_mcc_sdk(mcc)?;
    if mcc.len() == 4 {
        Ok(())
    } else {
        Err(mcc_invalid(mcc))
    }
}

/// A required name, the SDK's rules: `required` code if empty, `length` code if
/// over `max`.
pub(crate) fn check_name_sdk(
    v: &str,
    max: usize,
    required_code: ErrorCode,
    length: ErrorCode,
    field: Field,
) -> Result<(), Error> {
    required(v, required_code, field)?;
    max_len(v, max, length, field)
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

/// 53 for a control character or a character outside the BMP.
pub(crate) fn check_chars(v: &str, field: Field) -> Result<(), Error> {
    let b = v.as_bytes();
    // Fast path: printable ASCII has neither (one branch-free pass).
    if b.iter().fold(true, |ok, &c| ok & (0x20..0x7F).contains(&c)) {
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
