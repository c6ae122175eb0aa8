//! Transaction Currency (tag 53) and Transaction Amount (tag 54).
//!
//! Money is never a float here: an amount is read from decimal text or from
//! integer minor units, and kept as the exact text that goes on the wire.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use crate::error::{Error, ErrorCode, Field};

/// The two currencies KHQR carries, by their ISO 4217 numeric codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Currency {
    /// Cambodian riel, `116`; amounts are whole riel. The SDK's default.
    #[default]
    Khr,
    /// US dollar, `840`; amounts have at most two decimals (cents).
    Usd,
}

impl Currency {
    /// The ISO 4217 numeric code: 116 or 840.
    #[must_use]
    pub const fn numeric(self) -> u16 {
        match self {
            Currency::Khr => 116,
            Currency::Usd => 840,
        }
    }

    /// The numeric code as the three characters of tag 53: `"116"` or `"840"`.
    #[must_use]
    pub const fn numeric_str(self) -> &'static str {
        match self {
            Currency::Khr => "116",
            Currency::Usd => "840",
        }
    }

    /// The ISO 4217 letters: `"KHR"` or `"USD"`.
    #[must_use]
    pub const fn alpha(self) -> &'static str {
        match self {
            Currency::Khr => "KHR",
            Currency::Usd => "USD",
        }
    }

    /// Digits after the decimal point in this currency's amounts: 0 for KHR, 2 for USD.
    #[must_use]
    pub const fn decimals(self) -> u32 {
        match self {
            Currency::Khr => 0,
            Currency::Usd => 2,
        }
    }

    /// Reads `"116"`, `"840"`, `"KHR"` or `"USD"` (letters in either case).
    ///
    /// # Errors
    /// * [`ErrorCode::TransactionCurrencyLengthInvalid`] (19) for text over 3
    ///   characters (`"0116"`, `"116.5"`), as the SDK.
    /// * [`ErrorCode::UnsupportedCurrency`] (28) for any other code (`"764"`).
    ///
    /// ```
    /// use bakong_khqr::Currency;
    /// assert_eq!(Currency::parse("840").unwrap(), Currency::Usd);
    /// assert_eq!(Currency::parse("khr").unwrap(), Currency::Khr);
    /// assert_eq!(Currency::parse("764").unwrap_err().code().number(), 28);
    /// ```
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.chars().count() > 3 {
            return Err(Error::reason_with(
                ErrorCode::TransactionCurrencyLengthInvalid,
                Field::TransactionCurrency,
                "must be the 3-digit code 116 or 840",
                s,
            ));
        }
        match Currency::from_numeric_text(s) {
            Some(c) => Ok(c),
            None if s.eq_ignore_ascii_case("KHR") => Ok(Currency::Khr),
            None if s.eq_ignore_ascii_case("USD") => Ok(Currency::Usd),
            None => Err(Error::reason_with(
                ErrorCode::UnsupportedCurrency,
                Field::TransactionCurrency,
                "must be 116 (KHR) or 840 (USD)",
                s,
            )),
        }
    }

    /// The currency for the text of tag 53, `"116"` or `"840"` exactly.
    #[must_use]
    pub fn from_numeric_text(s: &str) -> Option<Self> {
        match s {
            "116" => Some(Currency::Khr),
            "840" => Some(Currency::Usd),
            _ => None,
        }
    }

    /// Reads the value of tag 53 as `verify` and the card read it.
    ///
    /// # Errors
    /// [`ErrorCode::TransactionCurrencyLengthInvalid`] (19) when over 3
    /// characters (the field table's limit), then
    /// [`ErrorCode::UnsupportedCurrency`] (28) for anything but `116` and `840`
    /// (the SDK's rules, in its order).
    #[inline]
    pub(crate) fn of_tag_value(s: &str) -> Result<Self, Error> {
        Self::from_numeric_text(s).ok_or_else(|| tag_value_error(s))
    }

    /// The currency for a numeric code, if KHQR supports it.
    #[must_use]
    pub const fn from_numeric(n: u16) -> Option<Self> {
        match n {
            116 => Some(Currency::Khr),
            840 => Some(Currency::Usd),
            _ => None,
        }
    }
}

impl FromStr for Currency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Currency::parse(s)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.alpha())
    }
}

/// The longest amount text the official SDK writes: 13 characters.
pub const MAX_AMOUNT_LEN: usize = 13;

/// Why `s` is not a currency of tag 53 (see [`Currency::of_tag_value`]).
#[cold]
fn tag_value_error(s: &str) -> Error {
    Field::TransactionCurrency
        .check_length(s)
        .err()
        .unwrap_or_else(|| {
            Error::reason_with(
                ErrorCode::UnsupportedCurrency,
                Field::TransactionCurrency,
                "must be 116 (KHR) or 840 (USD)",
                s,
            )
        })
}

/// A transaction amount, held as the exact text of tag 54 (ASCII, ≤ 13 characters).
///
/// Written as the official SDK writes it: KHR as whole riel (`"100"`), USD
/// without decimals when given without a decimal point (`"1"`) and with exactly
/// two when given with one (`"1.5"` → `"1.50"`). Leading zeros go where the
/// SDK drops them (KHR `"007"` → `"7"`, USD `"00.10"` → `"0.10"`) and stay where
/// it keeps them (USD `"007"` → `"007"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount {
    buf: [u8; MAX_AMOUNT_LEN],
    len: u8,
    minor: u64,
    currency: Currency,
}

fn amount_error(why: &'static str, s: &str) -> Error {
    Error::reason_with(
        ErrorCode::TransactionAmountInvalid,
        Field::TransactionAmount,
        why,
        s,
    )
}

impl Amount {
    /// Reads decimal text (`^[0-9]+(\.[0-9]+)?$`) as an amount in `currency`.
    ///
    /// Zero (`"0"`, `"0.00"`) is a valid amount; a request with a zero amount
    /// makes a static KHQR, as the SDK.
    ///
    /// # Errors
    /// [`ErrorCode::TransactionAmountInvalid`] (4) when the text is not plain
    /// decimal digits (a sign, exponent, space, comma, `Infinity`), when a KHR
    /// amount has a non-zero fraction (`"1.5"`: riel are whole), when a USD amount
    /// has more than 2 decimals (`"1.005"`: never rounded), or when the written
    /// amount is over 13 characters (`"10000000000000"`, `"12345678901.99"`).
    ///
    /// ```
    /// use bakong_khqr::{Amount, Currency};
    /// assert_eq!(Amount::parse("1.5", Currency::Usd).unwrap().as_str(), "1.50");
    /// assert_eq!(Amount::parse("1", Currency::Usd).unwrap().as_str(), "1");
    /// assert_eq!(Amount::parse("100.0", Currency::Khr).unwrap().as_str(), "100");
    /// assert_eq!(Amount::parse("1.5", Currency::Khr).unwrap_err().code().number(), 4);
    /// assert_eq!(Amount::parse("1e3", Currency::Usd).unwrap_err().code().number(), 4);
    /// ```
    pub fn parse(s: &str, currency: Currency) -> Result<Self, Error> {
        let (int, frac) = decimal_parts(s).ok_or_else(|| {
            amount_error("must be plain decimal digits with an optional fraction", s)
        })?;
        let zeros = int.bytes().take_while(|&b| b == b'0').count();
        // At least one digit stays ("000" is "0").
        let int = int
            .get(zeros.min(int.len().saturating_sub(1))..)
            .unwrap_or(int);
        // The SDK writes a USD amount without a decimal point as given, leading
        // zeros included; everything else from the number's value.
        let head = match (currency, frac) {
            (Currency::Usd, None) => s,
            _ => int,
        };
        let over = || amount_error("is over 13 characters when written", s);
        if head.len() > MAX_AMOUNT_LEN {
            return Err(over());
        }
        // USD with a decimal point: exactly two decimals, padded ("1.5" → "1.50").
        let cents = match (currency, frac) {
            (Currency::Khr, Some(f)) if f.bytes().any(|b| b != b'0') => {
                return Err(amount_error(fraction_refusal(currency), s));
            }
            (Currency::Khr, _) | (Currency::Usd, None) => None,
            (Currency::Usd, Some(f)) => match *f.as_bytes() {
                [d] => Some([d, b'0']),
                [d, e] => Some([d, e]),
                _ => return Err(amount_error(fraction_refusal(currency), s)),
            },
        };
        let mut buf = [0u8; MAX_AMOUNT_LEN];
        let mut len = head.len();
        buf[..len].copy_from_slice(head.as_bytes());
        // ≤ 13 digits: fits a u64 with room for ×100.
        let whole = int.bytes().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        let mut minor = match currency {
            Currency::Khr => whole,
            Currency::Usd => whole * 100,
        };
        if let Some([d, e]) = cents {
            let Some(tail) = buf.get_mut(len..len + 3) else {
                return Err(over());
            };
            tail.copy_from_slice(&[b'.', d, e]);
            len += 3;
            minor += u64::from(d - b'0') * 10 + u64::from(e - b'0');
        }
        Ok(Amount {
            buf,
            len: len as u8,
            minor,
            currency,
        })
    }

    /// An amount from integer minor units: riel for KHR, cents for USD.
    ///
    /// USD amounts in whole dollars are written without decimals (`100` cents →
    /// `"1"`), others with two (`150` → `"1.50"`).
    ///
    /// # Errors
    /// [`ErrorCode::TransactionAmountInvalid`] (4) if the written amount would be
    /// over 13 characters.
    ///
    /// ```
    /// use bakong_khqr::{Amount, Currency};
    /// assert_eq!(Amount::from_minor_units(150, Currency::Usd).unwrap().as_str(), "1.50");
    /// assert_eq!(Amount::from_minor_units(100, Currency::Usd).unwrap().as_str(), "1");
    /// assert_eq!(Amount::from_minor_units(50_000, Currency::Khr).unwrap().as_str(), "50000");
    /// ```
    pub fn from_minor_units(minor: u64, currency: Currency) -> Result<Self, Error> {
        let mut digits = itoa::Buffer::new();
        match currency {
            Currency::Khr => Amount::parse(digits.format(minor), currency),
            Currency::Usd if minor.is_multiple_of(100) => {
                Amount::parse(digits.format(minor / 100), currency)
            }
            Currency::Usd => {
                let whole = digits.format(minor / 100).as_bytes();
                let mut text = [0u8; 23];
                text[..whole.len()].copy_from_slice(whole);
                let cents = [
                    b'.',
                    b'0' + (minor % 100 / 10) as u8,
                    b'0' + (minor % 10) as u8,
                ];
                text[whole.len()..whole.len() + 3].copy_from_slice(&cents);
                Amount::parse(ascii(&text[..whole.len() + 3]), currency)
            }
        }
    }

    /// The text of tag 54, e.g. `"1.50"`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        ascii(self.as_bytes())
    }

    /// [`Amount::as_str`] as ASCII bytes (no UTF-8 check).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        debug_assert!(
            usize::from(self.len) <= MAX_AMOUNT_LEN,
            "parse checks the length"
        );
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The amount in minor units: riel for KHR, cents for USD.
    #[must_use]
    pub const fn minor_units(&self) -> u64 {
        self.minor
    }

    /// The currency the amount was read for.
    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is zero (a request with it makes a static KHQR).
    #[must_use]
    pub const fn is_zero(&self) -> bool {
        self.minor == 0
    }
}

/// The whole and fractional digits of decimal text, `^[0-9]+(\.[0-9]+)?$`
/// (no sign, exponent, space or separator): the one syntax of amount text.
pub(crate) fn decimal_parts(s: &str) -> Option<(&str, Option<&str>)> {
    // One pass: the integer digits end at the first other byte, which must be
    // a '.' followed by at least one digit and only digits.
    let b = s.as_bytes();
    let Some(dot) = b.iter().position(|c| !c.is_ascii_digit()) else {
        return (!b.is_empty()).then_some((s, None));
    };
    let (int, frac) = (s.get(..dot)?, s.get(dot + 1..)?);
    let ok = dot > 0
        && b.get(dot) == Some(&b'.')
        && !frac.is_empty()
        && frac.bytes().all(|c| c.is_ascii_digit());
    ok.then_some((int, Some(frac)))
}

/// The integer digits and fraction digits of amount text read leniently (the
/// rules of [`Amount::read_minor_units`] but the size).
fn read_parts(s: &str, currency: Currency) -> Result<(&str, &[u8]), Error> {
    let (int, frac) = decimal_parts(s)
        .ok_or_else(|| amount_error("must be plain decimal digits with an optional fraction", s))?;
    let frac = frac.unwrap_or("");
    if !fraction_fits(frac, currency) {
        return Err(amount_error(fraction_refusal(currency), s));
    }
    Ok((int, frac.as_bytes()))
}

/// Whether fraction digits read leniently fit `currency`: every digit past its
/// decimals is a zero (`"500"` and `"50"` fit USD, `"0"` fits KHR, `"1"` does not).
pub(crate) fn fraction_fits(frac: &str, currency: Currency) -> bool {
    frac.bytes()
        .skip(currency.decimals() as usize)
        .all(|b| b == b'0')
}

impl Amount {
    /// Reads amount text as others write it (Bakong's API, bank apps, a
    /// payload's tag 54), leniently: plain decimal text (`^[0-9]+(\.[0-9]+)?$`,
    /// any length), where digits past the currency's decimals are allowed when
    /// they are zeros (`"1.500"` USD is 150 cents, `"5000.0"` KHR is 5000 riel).
    /// Returns the amount in minor units: riel for KHR, cents for USD. Never
    /// rounds.
    ///
    /// # Errors
    /// [`ErrorCode::TransactionAmountInvalid`] (4) for text that is not plain
    /// decimal, a non-zero digit past the currency's decimals, or an amount over
    /// `u64::MAX` minor units.
    ///
    /// ```
    /// use bakong_khqr::{Amount, Currency};
    /// assert_eq!(Amount::read_minor_units("1.500", Currency::Usd).unwrap(), 150);
    /// assert_eq!(Amount::read_minor_units("5000.0", Currency::Khr).unwrap(), 5000);
    /// assert!(Amount::read_minor_units("1.505", Currency::Usd).is_err());
    /// assert!(Amount::read_minor_units("1e3", Currency::Usd).is_err());
    /// ```
    pub fn read_minor_units(s: &str, currency: Currency) -> Result<u64, Error> {
        let (int, frac) = read_parts(s, currency)?;
        let decimals = currency.decimals() as usize;
        let too_large = || amount_error("is too large", s);
        let mut n = int.bytes().try_fold(0u64, |n, b| {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        });
        for i in 0..decimals {
            let digit = frac.get(i).map_or(0, |b| u64::from(b - b'0'));
            n = n.and_then(|n| n.checked_mul(10)?.checked_add(digit));
        }
        n.ok_or_else(too_large)
    }

    /// `minor` units written with every decimal of `currency`: two for USD
    /// (`1000` → `"10.00"`), none for KHR (`100` → `"100"`). Unlike
    /// [`Amount::from_minor_units`] (the SDK's tag 54, `"10"` for 1000 cents),
    /// this is how Bakong's API and receipts show an amount.
    ///
    /// ```
    /// use bakong_khqr::{Amount, Currency};
    /// assert_eq!(Amount::with_decimals(1000, Currency::Usd), "10.00");
    /// assert_eq!(Amount::with_decimals(5, Currency::Usd), "0.05");
    /// assert_eq!(Amount::with_decimals(100, Currency::Khr), "100");
    /// ```
    #[must_use]
    pub fn with_decimals(minor: u64, currency: Currency) -> String {
        let mut digits = itoa::Buffer::new();
        match currency {
            Currency::Khr => digits.format(minor).into(),
            Currency::Usd => {
                let mut out = String::from(digits.format(minor / 100));
                out.push('.');
                out.push(char::from(b'0' + (minor % 100 / 10) as u8));
                out.push(char::from(b'0' + (minor % 10) as u8));
                out
            }
        }
    }

    /// Amount text as a person reads it on the KHQR card: digits grouped in
    /// threes with commas, USD with two decimals (`"1234.5"` → `"1,234.50"`), KHR
    /// whole (`"1250000"` → `"1,250,000"`; a non-zero fraction is kept, trailing
    /// zeros dropped). `None` for zero (nothing to show). Lenient like
    /// [`Amount::read_minor_units`] about the fraction; never rounds.
    ///
    /// # Errors
    /// [`ErrorCode::TransactionAmountInvalid`] (4) for text that is not plain
    /// decimal or is over 13 characters ([`MAX_AMOUNT_LEN`]).
    ///
    /// ```
    /// use bakong_khqr::{Amount, Currency};
    /// assert_eq!(Amount::grouped("1234.5", Currency::Usd).unwrap().as_deref(), Some("1,234.50"));
    /// assert_eq!(Amount::grouped("1250000", Currency::Khr).unwrap().as_deref(), Some("1,250,000"));
    /// assert_eq!(Amount::grouped("0.00", Currency::Usd).unwrap(), None);
    /// ```
    pub fn grouped(s: &str, currency: Currency) -> Result<Option<String>, Error> {
        let (int, frac) = decimal_parts(s).ok_or_else(|| {
            amount_error("must be plain decimal digits with an optional fraction", s)
        })?;
        if s.len() > MAX_AMOUNT_LEN {
            return Err(amount_error("is over 13 characters", s));
        }
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let frac = frac.unwrap_or("").trim_end_matches('0');
        if int == "0" && frac.is_empty() {
            return Ok(None);
        }
        let mut out = String::with_capacity(int.len() + int.len() / 3 + frac.len() + 3);
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        let decimals = currency.decimals() as usize;
        if !frac.is_empty() || decimals > 0 {
            out.push('.');
            out.push_str(frac);
            out.extend(core::iter::repeat_n(
                '0',
                decimals.saturating_sub(frac.len()),
            ));
        }
        Ok(Some(out))
    }
}

/// Why a fraction is refused in `currency`.
pub(crate) const fn fraction_refusal(currency: Currency) -> &'static str {
    match currency {
        Currency::Khr => "has a fraction; KHR amounts are whole riel",
        Currency::Usd => "has more than 2 decimals; USD amounts are cents",
    }
}

/// Bytes this module wrote as ASCII digits and points, as text.
fn ascii(bytes: &[u8]) -> &str {
    let text = core::str::from_utf8(bytes);
    debug_assert!(text.is_ok(), "amount text is ASCII by construction");
    text.unwrap_or_default()
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({} {})", self.as_str(), self.currency.alpha())
    }
}

/// The longest plain decimal text [`Amount::decimal_from_json_number`] writes:
/// 40 characters. Every amount KHQR or Bakong's API carries is far shorter
/// (tag 54 holds 13 characters; `u64::MAX` cents are 21).
#[cfg(any(feature = "serde", feature = "status"))]
pub(crate) const MAX_JSON_NUMBER_TEXT: usize = 40;

#[cfg(any(feature = "serde", feature = "status"))]
impl Amount {
    /// The exact value of a JSON number, given as its text (RFC 8259 §6:
    /// digits, an optional fraction, an optional exponent), written as plain
    /// decimal text (`^[0-9]+(\.[0-9]+)?$`, the syntax of [`Amount::parse`]):
    /// the exponent applied by moving the decimal point in the text, leading
    /// zeros of the whole part and trailing zeros of the fraction dropped.
    ///
    /// Shapes: `1.5` → `1.5`; `1.50` → `1.5`; `100.0` → `100`; `1.0E7` →
    /// `10000000` (how Java's `Double.toString`, so Bakong's API, writes values
    /// ≥ 10⁷); `2.5e-1` → `0.25`; `0.0E0` → `0`;
    /// `0.30000000000000001` → `0.30000000000000001` (kept: a float would
    /// round it to `0.3`).
    ///
    /// The rule: a JSON number is a decimal value, and money is never a float
    /// (issue 12, "one money type"). For the numbers JavaScript's `String()`
    /// writes exactly (whatever a float holds without rounding, between 10⁻⁶
    /// and 10²¹) this is the text the official SDK reads from a JSON number
    /// amount; where a float would round, the exact digits are kept, so
    /// [`Amount::parse`] or [`Amount::read_minor_units`] refuse them rather than
    /// charge a rounded amount. No float arithmetic.
    ///
    /// # Errors
    /// [`ErrorCode::TransactionAmountInvalid`] (4) for a negative number
    /// (`-1`, `-0`), text that is not a JSON number (`1.`, `.5`, `1e`, `"1"`,
    /// `Infinity`), or a value whose plain text would be over
    /// [`MAX_JSON_NUMBER_TEXT`] (40) characters (`1e99`).
    pub(crate) fn decimal_from_json_number(text: &str) -> Result<String, Error> {
        if text.starts_with('-') {
            return Err(amount_error("is negative", text));
        }
        let not_number = || amount_error("is not a JSON number", text);
        let (mantissa, exp) = match text.find(['e', 'E']) {
            Some(i) => (text.get(..i).unwrap_or(""), text.get(i + 1..)),
            None => (text, None),
        };
        let (int, frac) = decimal_parts(mantissa).ok_or_else(not_number)?;
        let exp = match exp {
            None => 0,
            Some(e) => json_exponent(e, text)?,
        };
        let frac = frac.unwrap_or("");
        // The significant digits, and where the decimal point stands among them.
        let all = || int.bytes().chain(frac.bytes());
        let lead = all().take_while(|&b| b == b'0').count();
        let total = int.len() + frac.len();
        if lead == total {
            return Ok(String::from("0"));
        }
        let trail = all().rev().take_while(|&b| b == b'0').count();
        let digits: String = all()
            .skip(lead)
            .take(total - lead - trail)
            .map(char::from)
            .collect();
        let len = i64::try_from(digits.len()).map_err(|_| too_long_number(text))?;
        let whole = i64::try_from(int.len()).map_err(|_| too_long_number(text))?;
        let lead = i64::try_from(lead).map_err(|_| too_long_number(text))?;
        let point = whole - lead + exp;
        let written = if point <= 0 {
            2 - point + len
        } else if point >= len {
            point
        } else {
            len + 1
        };
        if usize::try_from(written).map_or(true, |w| w > MAX_JSON_NUMBER_TEXT) {
            return Err(too_long_number(text));
        }
        // In range now: 0 ≤ every count ≤ 40.
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        let mut out = String::with_capacity(count(written));
        if point <= 0 {
            out.push_str("0.");
            out.extend(core::iter::repeat_n('0', count(-point)));
            out.push_str(&digits);
        } else if point >= len {
            out.push_str(&digits);
            out.extend(core::iter::repeat_n('0', count(point - len)));
        } else {
            let (a, b) = digits.split_at(count(point));
            out.push_str(a);
            out.push('.');
            out.push_str(b);
        }
        Ok(out)
    }
}

/// The exponent of the JSON number `text` (`e`, what follows its `e`: an
/// optional sign, digits). Errors as [`Amount::decimal_from_json_number`]; an
/// exponent of over 18 digits (18 fit an `i64`) never gives 40 characters or
/// fewer.
#[cfg(any(feature = "serde", feature = "status"))]
fn json_exponent(e: &str, text: &str) -> Result<i64, Error> {
    let (negative, digits) = match e.as_bytes().first() {
        Some(b'-' | b'+') => (e.starts_with('-'), e.get(1..).unwrap_or("")),
        _ => (false, e),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(amount_error("is not a JSON number", text));
    }
    let digits = digits.trim_start_matches('0');
    if digits.len() > 18 {
        return Err(too_long_number(text));
    }
    let n: i64 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| too_long_number(text))?
    };
    Ok(if negative { -n } else { n })
}

/// A JSON number whose plain decimal text is too long to be an amount.
#[cfg(any(feature = "serde", feature = "status"))]
fn too_long_number(text: &str) -> Error {
    amount_error(
        "is over 40 characters when written as plain decimal text",
        text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str, c: Currency) -> String {
        Amount::parse(s, c).unwrap().as_str().to_owned()
    }
    fn code(s: &str, c: Currency) -> u16 {
        Amount::parse(s, c).unwrap_err().code().number()
    }

    #[test]
    fn sdk_formatting() {
        use Currency::*;
        assert_eq!(ok("1", Usd), "1");
        assert_eq!(ok("1.5", Usd), "1.50");
        assert_eq!(ok("1.05", Usd), "1.05");
        assert_eq!(ok("0.1", Usd), "0.10");
        assert_eq!(ok("9999999999.99", Usd), "9999999999.99");
        assert_eq!(ok("1234567890123", Usd), "1234567890123");
        assert_eq!(ok("9999999999999", Khr), "9999999999999");
        assert_eq!(ok("100.00", Khr), "100");
        assert_eq!(ok("007", Khr), "7");
        assert_eq!(ok("007", Usd), "007");
        assert_eq!(ok("00.10", Usd), "0.10");
        assert_eq!(Amount::parse("007", Usd).unwrap().minor_units(), 700);
        assert_eq!(ok("0.00", Usd), "0.00");
        assert!(Amount::parse("0.00", Usd).unwrap().is_zero());
        assert_eq!(Amount::parse("12.34", Usd).unwrap().minor_units(), 1234);
        assert_eq!(Amount::parse("12.3", Usd).unwrap().minor_units(), 1230);
    }

    #[test]
    fn refusals() {
        use Currency::*;
        for s in [
            "", "-1", "+1", "1e3", "1e+21", " 5", "5 ", "1,000", "Infinity", "NaN", ".5", "5.",
            "1.2.3", "١٢",
        ] {
            assert_eq!(code(s, Usd), 4, "{s:?}");
            assert_eq!(code(s, Khr), 4, "{s:?}");
        }
        assert_eq!(code("1.5", Khr), 4);
        assert_eq!(code("1.0000000000000002", Khr), 4);
        assert_eq!(code("1.005", Usd), 4);
        assert_eq!(code("10000000000000", Khr), 4);
        assert_eq!(code("12345678901.99", Usd), 4);
        assert_eq!(
            Amount::parse("1.005", Usd).unwrap_err().to_string(),
            "transaction amount (tag 54) has more than 2 decimals; USD amounts are cents: \"1.005\""
        );
    }

    #[test]
    fn minor_units() {
        use Currency::*;
        assert_eq!(Amount::from_minor_units(0, Usd).unwrap().as_str(), "0");
        assert_eq!(Amount::from_minor_units(5, Usd).unwrap().as_str(), "0.05");
        assert_eq!(
            Amount::from_minor_units(999_999_999_999, Usd)
                .unwrap()
                .as_str(),
            "9999999999.99"
        );
        assert_eq!(code_minor(100_000_000_000_001, Usd), 4);
        assert_eq!(code_minor(u64::MAX, Khr), 4);
    }

    fn code_minor(n: u64, c: Currency) -> u16 {
        Amount::from_minor_units(n, c).unwrap_err().code().number()
    }
}

#[cfg(all(test, any(feature = "serde", feature = "status")))]
mod json_number_tests {
    use super::*;

    fn plain(text: &str) -> String {
        Amount::decimal_from_json_number(text).unwrap()
    }

    fn refused(text: &str) -> String {
        let e = Amount::decimal_from_json_number(text).unwrap_err();
        assert_eq!(e.code(), ErrorCode::TransactionAmountInvalid, "{text}");
        e.to_string()
    }

    #[test]
    fn plain_numbers_keep_their_value_and_lose_redundant_zeros() {
        for (given, want) in [
            ("0", "0"),
            ("0.00", "0"),
            ("1", "1"),
            ("1.5", "1.5"),
            ("1.50", "1.5"),
            ("100.0", "100"),
            ("100", "100"),
            ("007", "7"),
            ("0.05", "0.05"),
            ("90071992547409.93", "90071992547409.93"),
            ("0.30000000000000001", "0.30000000000000001"),
            ("12345678901.999999999999", "12345678901.999999999999"),
        ] {
            assert_eq!(plain(given), want, "{given}");
        }
    }

    #[test]
    fn exponents_move_the_point_in_the_text() {
        for (given, want) in [
            ("1.0E7", "10000000"),
            ("1e2", "100"),
            ("1E+2", "100"),
            ("1.25E1", "12.5"),
            ("2.5e-1", "0.25"),
            ("1E-2", "0.01"),
            ("1.5E+3", "1500"),
            ("0.0E0", "0"),
            ("0e99", "0"),
            ("1e-7", "0.0000001"),
            ("1e21", "1000000000000000000000"),
            ("123.456e-2", "1.23456"),
            ("123.456e2", "12345.6"),
            ("0.00123e3", "1.23"),
            ("1e000000000000000000000002", "100"),
            ("9e39", "9000000000000000000000000000000000000000"),
        ] {
            assert_eq!(plain(given), want, "{given}");
        }
    }

    #[test]
    fn refusals_name_the_number() {
        assert_eq!(
            refused("-1"),
            "transaction amount (tag 54) is negative: \"-1\""
        );
        assert_eq!(
            refused("1e99"),
            "transaction amount (tag 54) is over 40 characters when written as plain decimal text: \"1e99\""
        );
        assert_eq!(
            refused("1.e2"),
            "transaction amount (tag 54) is not a JSON number: \"1.e2\""
        );
        for bad in [
            "-0",
            "-1e3",
            "",
            ".5",
            "1.",
            "1e",
            "1e+",
            "e2",
            "\"1\"",
            "Infinity",
            "NaN",
            "1 ",
            "0x10",
            "1e-39",
            "9e40",
            "1e9999999999999999999",
        ] {
            refused(bad);
        }
    }

    #[test]
    fn amounts_from_json_numbers_follow_the_text_rules() {
        let usd = |t: &str| Amount::parse(&plain(t), Currency::Usd);
        assert_eq!(usd("1.50").unwrap().as_str(), "1.50");
        assert_eq!(usd("100.0").unwrap().as_str(), "100");
        assert_eq!(usd("1.0E3").unwrap().minor_units(), 100_000);
        assert_eq!(usd("0.30000000000000001").unwrap_err().code().number(), 4);
        assert_eq!(
            usd("12345678901.999999999999").unwrap_err().code().number(),
            4
        );
    }
}
