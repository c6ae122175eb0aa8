//! Verifying a KHQR string: is it a payload a bank app will accept, and if not, why.

use alloc::borrow::ToOwned;

use crate::amount::{decimal_parts, fraction_fits, fraction_refusal, Currency, MAX_AMOUNT_LEN};
use crate::crc;
use crate::decode::{parse_ms, parse_ms13, subs_below, Decoded, Entry, Observer, Stop};
use crate::error::{Detail, Error, ErrorCode, Field};
use crate::fields::{Place, ADDITIONAL_DATA_FIELDS as ADDITIONAL_DATA};
use crate::payload::{
    check_account_id, check_chars_reading, check_mcc, check_not_blank, printable_ascii,
    EXPIRATION_SHAPE,
};
use crate::tag::{self, value};
use crate::tlv::DataObject;

/// Options for [`verify_with`]. `Default` is the strict rule set of [`verify`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Accept a dynamic KHQR (point of initiation `12`, or an amount) that has no
    /// expiration timestamp, instead of refusing it with code 45. Many bank apps
    /// still print such QRs (ACLEDA's "QR Pay Me", for one); the current KHQR rule
    /// and the SDK require the timestamp. Waives exactly that rule: an expiration
    /// that *is* present is still checked.
    pub allow_missing_expiration: bool,
}

impl VerifyOptions {
    /// The strict rules (same as `Default`).
    #[must_use]
    pub const fn new() -> Self {
        VerifyOptions {
            allow_missing_expiration: false,
        }
    }

    /// Sets [`VerifyOptions::allow_missing_expiration`].
    #[must_use]
    pub const fn allow_missing_expiration(mut self, allow: bool) -> Self {
        self.allow_missing_expiration = allow;
        self
    }
}

/// Verifies `payload` at time `now_ms` (milliseconds since the Unix epoch) with
/// the strict rules, returning the decoded payload when it is valid.
///
/// Equivalent to [`verify_with`] with [`VerifyOptions::default()`].
///
/// ```
/// let s = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
/// let now_ms = 1_700_000_000_000;
/// let d = bakong_khqr::verify(s, now_ms)?;
/// assert_eq!(d.merchant_name(), Some("Jonh Smith"));
///
/// let bad = s.replace("856B", "0000");
/// let e = bakong_khqr::verify(&bad, now_ms).unwrap_err();
/// assert_eq!(e.code().number(), 8);
/// assert_eq!(e.to_string(), "CRC (tag 63) is 0000 but the payload's CRC-16/CCITT-FALSE is 856B");
/// # Ok::<(), bakong_khqr::Error>(())
/// ```
///
/// # Errors
/// See [`verify_with`].
pub fn verify(payload: &str, now_ms: u64) -> Result<Decoded<'_>, Error> {
    verify_with(payload, now_ms, &VerifyOptions::default())
}

/// A set of tags or sub-tags (0–99), a bit each.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct IdSet([u64; 2]);

impl IdSet {
    /// Adds `id`; whether it was there already.
    #[inline]
    fn insert(&mut self, id: u8) -> bool {
        let (word, bit) = (usize::from(id >> 6) & 1, 1u64 << (id & 63));
        let there = self.0[word] & bit != 0;
        self.0[word] |= bit;
        there
    }

    fn contains(self, id: u8) -> bool {
        self.0[usize::from(id >> 6) & 1] & (1u64 << (id & 63)) != 0
    }
}

/// What the SDK's parser sees of the top level before it stops, collected
/// while [`Decoded::read_observed`] reads: the tags it saw (a bit per tag) and
/// the tag it stopped at for being the same as the one before; and, for this
/// crate's rules, the first tag and the first sub-tag read twice.
///
/// Each data object costs a bit and two tests; anything read twice goes to
/// [`TopLevel::again`] (rare).
struct TopLevel<'a> {
    /// The creation and expiration timestamps (sub-tags 00 and 01) of the
    /// last tag 99 read as data objects; `None` without one.
    timestamps: Option<[Option<&'a str>; 2]>,
    /// Tags read; once the SDK would have stopped (`repeat`), the tags it read.
    seen: IdSet,
    /// The ID of the last data object read; 100 (no ID) before the first.
    last: u8,
    /// The tag read twice in a row, where the SDK stops reading.
    repeat: Option<u8>,
    /// [`TopLevel::seen`] when the SDK stopped (`repeat`).
    seen_by_sdk: IdSet,
    /// The first tag read a second time (verify refuses it, code 58; the SDK
    /// reads on unless it is right after itself).
    duplicate: Option<u8>,
    /// The first sub-tag read twice inside a KHQR template (29, 30, 62, 64,
    /// 99): the template's tag and the sub-tag (verify refuses it, code 58).
    duplicate_sub: Option<(u8, u8)>,
}

impl TopLevel<'_> {
    const fn new() -> Self {
        TopLevel {
            timestamps: None,
            seen: IdSet([0; 2]),
            last: 100,
            repeat: None,
            seen_by_sdk: IdSet([0; 2]),
            duplicate: None,
            duplicate_sub: None,
        }
    }

    /// A tag read again: right after itself (the SDK stops there) or later.
    #[cold]
    fn again(&mut self, id: u8) {
        if id == self.last {
            if self.repeat.is_none() {
                self.repeat = Some(id);
                self.seen_by_sdk = self.seen;
            }
        } else if self.duplicate.is_none() {
            self.duplicate = Some(id);
        }
    }

    /// Completes the record when the reading is over: what the SDK saw, and
    /// the tag of a data object that could not be read, which counts as seen
    /// when its ID was read (the SDK counts it present) unless the SDK had
    /// stopped before it.
    fn finish(&mut self, stop: &Stop) {
        if self.repeat.is_some() {
            self.seen = self.seen_by_sdk;
        } else if let Some(id) = stop.top.and_then(|e| e.id) {
            self.seen.insert(id);
        }
    }

    fn has(&self, id: u8) -> bool {
        self.seen.contains(id)
    }

    /// The point of initiation method as the SDK reads it: the value of the
    /// first tag 01 before it stopped (`[0, 0]` when not two bytes).
    fn poi(&self, d: &Decoded<'_>) -> Option<[u8; 2]> {
        let elements = d.elements();
        // Where the SDK stopped: the second of the first two equal IDs in a row.
        let read = match self.repeat {
            None => elements.len(),
            Some(_) => elements
                .windows(2)
                .position(|w| w[0].object.id() == w[1].object.id())
                .map_or(elements.len(), |i| i + 1),
        };
        let e = elements
            .get(..read)?
            .iter()
            .find(|e| e.object.id() == tag::POINT_OF_INITIATION_METHOD)?;
        let v = e.object.value().as_bytes();
        Some(if v.len() == 2 { [v[0], v[1]] } else { [0, 0] })
    }
}

impl<'a> Observer<'a> for TopLevel<'a> {
    #[inline]
    fn object(&mut self, object: &DataObject<'a>) {
        let id = object.id();
        if id == self.last || self.seen.insert(id) {
            self.again(id);
        }
        self.last = id;
    }

    #[inline]
    fn children(&mut self, id: u8, children: &[DataObject<'a>]) {
        if id == tag::TIMESTAMPS {
            self.timestamps = Some(subs_below(children));
        }
        if self.repeat.is_some() || self.duplicate_sub.is_some() || !tag::is_khqr_template(id) {
            return;
        }
        // Sub-tags in increasing order (the usual) are all different.
        if children.windows(2).all(|w| w[0].id() < w[1].id()) {
            return;
        }
        let mut subs = IdSet::default();
        if let Some(o) = children.iter().find(|o| subs.insert(o.id())) {
            self.duplicate_sub = Some((id, o.id()));
        }
    }
}

/// The point of initiation method of a dynamic KHQR, as two bytes.
const DYNAMIC_POI: [u8; 2] = {
    let v = value::DYNAMIC.as_bytes();
    assert!(v.len() == 2, "a point of initiation method is two digits");
    [v[0], v[1]]
};

/// The data objects a KHQR must have, in the order verify asks for them (the
/// SDK's); each one's tag and code come from the field table.
const REQUIRED: [Field; 8] = [
    Field::PayloadFormatIndicator,
    Field::MerchantAccountInformation,
    Field::MerchantCategoryCode,
    Field::TransactionCurrency,
    Field::CountryCode,
    Field::MerchantName,
    Field::MerchantCity,
    Field::Crc,
];

/// Verifies `payload` at time `now_ms` (milliseconds since the Unix epoch).
///
/// Applies the official SDK's `verify` rules (khqr-notes §6) in its order, so the
/// first error has the SDK's code (as its TypeScript port `ts-khqr` reports it),
/// plus the stricter rules of this crate (khqr-notes §14). Returns the decoded
/// payload when valid.
///
/// # Errors
/// The first failing check:
///
/// 1. form: the string must end with `6304` and four hex digits (either case) that
///    equal the CRC-16 of everything before them, and be at least 12 characters →
///    8 ([`ErrorCode::KhqrInvalid`]).
/// 2. the top level is read as the SDK reads it, stopping at the first data object
///    that is not well-formed or that repeats the one before. Over what was read:
///    point of initiation `12` without an amount → 47; a dynamic KHQR (`12` or an
///    amount) without tag 99 → 45 (unless
///    [`VerifyOptions::allow_missing_expiration`]).
/// 3. required tags, in this order: 00 → 23, 29 or 30 → 5, 52 → 25, 53 → 9,
///    58 → 26, 59 → 2, 60 → 27, 63 → 24 (a data object whose ID was read before the
///    reading stopped counts as present).
/// 4. if reading stopped early: malformed TLV → 54; the same tag twice in a row →
///    58. A merchant account template that is not data objects → 5; another
///    broken KHQR template (62, 64, 99) → 54.
/// 5. the final `6304` and CRC are not a data object of their own (they end the
///    value of another data object) → 8; a tag anywhere twice, or a sub-tag twice
///    in 29/30/62/64/99 → 58; both 29 and 30 → 59.
/// 6. each field's rules, in tag order: 00 over 2 → 16, not `01` → 56; 01 over 2 →
///    17, not `11`/`12` → 48; 29/30 without readable sub-tags → 5, account ID empty
///    → 1, over 32 → 6, not `name@bank` → 3, account information / merchant ID
///    empty or over 32 → 35 / 32, acquiring bank empty → 31, over 32 → 33, a
///    merchant's ID or acquiring bank that is blank (only white space and
///    invisible format characters) → 30 / 31 (ours, as `generate`); 52 over 4 → 18, not 4 digits → 51; 53 over 3 → 19, not 116/840 → 28; 54 over 13,
///    not decimal digits, a non-zero fraction in KHR or over 2 decimals in USD →
///    4, zero in a dynamic KHQR → 47; 58 empty or over 3 → 20, not `KH` → 57; 59 empty or
///    blank → 2, over 25 → 7; 60 empty → 27, over 15 → 21; 62 sub-tags 01, 02, 03,
///    07, 08 empty or over 25 → 10, 34, 11, 12, 42; 64: a name without a
///    preference → 38, a preference without a name → 39, preference over 2 → 38,
///    name over 25 → 40, city over 15 → 41; 15 over 99 → 43; a control character in
///    a text field → 53.
/// 7. tag 99, wherever it stands (the SDK skips it when it comes before tag 01):
///    a dynamic KHQR needs sub-tag 01 → 45 (unless allowed); an expiration that is
///    present must be 13 digits → 49, not before the creation timestamp → 50, and
///    not before `now_ms` → 46 (`now_ms` equal to the expiration is still valid).
///    A static KHQR with only a creation timestamp stays valid.
pub fn verify_with<'a>(
    payload: &'a str,
    now_ms: u64,
    options: &VerifyOptions,
) -> Result<Decoded<'a>, Error> {
    check_form(payload)?;
    // Read into the value returned. (It is still copied out once, a `memcpy`
    // of the ~1 KB `Decoded`: Rust does not build a returned local in place.)
    let mut out = Ok(Decoded::empty(payload));
    if let Ok(d) = &mut out {
        check_read(d, now_ms, *options)?;
    }
    out
}

/// Reads `d` (empty) and applies every rule after the form's (steps 2–7 of
/// [`verify_with`]).
fn check_read(d: &mut Decoded<'_>, now_ms: u64, options: VerifyOptions) -> Result<(), Error> {
    // The character rule, folded into one scan of the whole payload: when it
    // is all printable ASCII, no field can break it (and the reader need not
    // look for other characters).
    let printable = printable_ascii(d.payload());
    let mut top = TopLevel::new();
    let stop = d.read_observed(&mut top, printable);
    top.finish(&stop);
    let d: &Decoded<'_> = d;
    let dynamic = top.poi(d) == Some(DYNAMIC_POI);
    let has_amount = top.has(tag::TRANSACTION_AMOUNT);
    if dynamic && !has_amount {
        return Err(Error::reason(
            ErrorCode::InvalidDynamicKhqr,
            Field::TransactionAmount,
            "is required when the point of initiation method is 12 (dynamic)",
        ));
    }
    if (dynamic || has_amount) && !top.has(tag::TIMESTAMPS) && !options.allow_missing_expiration {
        return Err(Error::reason(
            ErrorCode::ExpirationTimestampRequired,
            Field::ExpirationTimestamp,
            "is required for a dynamic KHQR (one with an amount); tag 99 is missing",
        ));
    }
    for field in REQUIRED {
        let present = match field.place() {
            Place::Top(id) => top.has(id),
            // Tag 29 or 30.
            _ => top.has(tag::INDIVIDUAL_ACCOUNT) || top.has(tag::MERCHANT_ACCOUNT),
        };
        if let (false, Some(code)) = (present, field.absent_code()) {
            return Err(Error::missing(code, field));
        }
    }
    if let Some(e) = stop.top {
        return Err(crate::decode::malformed(Field::Payload, e));
    }
    if let Some(id) = top.repeat {
        return Err(Error::new(
            ErrorCode::DuplicateTag,
            Field::Payload,
            Detail::Duplicate(id),
        ));
    }
    // No top-level error: an error left is in a template.
    if let Some(e) = stop.first_error() {
        return Err(e);
    }
    // The final `6304` and CRC must be a data object of their own, not the end
    // of a longer value (`6312…6304ABCD` reads as one tag 63 of 12 characters).
    let crc_object_last = d
        .last_object()
        .is_some_and(|o| o.id() == tag::CRC && o.offset() + 8 == d.payload().len());
    if !crc_object_last {
        return Err(Error::reason(
            ErrorCode::KhqrInvalid,
            Field::Crc,
            "is not a data object of its own at the end: the final 6304 and four hex digits are inside another value",
        ));
    }
    check_repeats(&top)?;
    check_fields(d, dynamic, printable)?;
    check_timestamps(top.timestamps, dynamic || has_amount, now_ms, options)
}

/// A tag anywhere twice, a sub-tag twice in a KHQR template (readers disagree
/// on which one counts, the SDK takes the last, so a payee or an expiry could be
/// hidden), or both account templates.
fn check_repeats(top: &TopLevel) -> Result<(), Error> {
    if let Some(id) = top.duplicate {
        return Err(Error::new(
            ErrorCode::DuplicateTag,
            Field::Payload,
            Detail::Duplicate(id),
        ));
    }
    if let Some((id, sub)) = top.duplicate_sub {
        return Err(Error::new(
            ErrorCode::DuplicateTag,
            crate::decode::template_field(id),
            Detail::DuplicateSub(id, sub),
        ));
    }
    if top.has(tag::INDIVIDUAL_ACCOUNT) && top.has(tag::MERCHANT_ACCOUNT) {
        return Err(Error::reason(
            ErrorCode::MerchantTypeConflict,
            Field::MerchantAccountInformation,
            "has both tag 29 (individual) and tag 30 (merchant)",
        ));
    }
    Ok(())
}

fn check_form(payload: &str) -> Result<(), Error> {
    let b = payload.as_bytes();
    let n = b.len();
    // The last four bytes must be hex digits (a cut inside a character, which
    // `get` refuses, is not one either); they are checked and read at once.
    let stored = (n >= 12 && &b[n - 8..n - 4] == value::CRC_HEAD.as_bytes())
        .then(|| payload.get(n - 4..))
        .flatten()
        .and_then(|s| crc::parse_hex4(s).map(|v| (s, v)));
    let Some((stored, value)) = stored else {
        return Err(Error::reason(
            ErrorCode::KhqrInvalid,
            Field::Payload,
            "does not end with a CRC data object (6304 and four hex digits)",
        ));
    };
    let computed = crc::checksum(&b[..n - 4]);
    if value != computed {
        return Err(Error::new(
            ErrorCode::KhqrInvalid,
            Field::Crc,
            Detail::CrcMismatch {
                stored: stored.to_owned(),
                computed,
            },
        ));
    }
    Ok(())
}

/// Refuses `v` unless it is one of `allowed`.
fn expect(
    v: &str,
    allowed: &[&str],
    code: ErrorCode,
    field: Field,
    why: &'static str,
) -> Result<(), Error> {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(Error::reason_with(code, field, why, v))
    }
}

/// Each field's rules, in the order the payload carries the fields (the SDK's
/// order). Lengths and their codes come from the field table. `ascii`: the
/// payload is all printable ASCII (the character rule holds for every field).
fn check_fields(d: &Decoded<'_>, dynamic: bool, ascii: bool) -> Result<(), Error> {
    let text = |field: Field, v: &str| {
        if ascii {
            check_length_only(field, v)
        } else {
            check_text(field, v)
        }
    };
    // The currency once tag 53 is read (repeated tags were refused before).
    let mut currency = None;
    for e in d.elements() {
        let v = e.object.value();
        match e.object.id() {
            tag::PAYLOAD_FORMAT_INDICATOR => {
                let f = Field::PayloadFormatIndicator;
                f.check_present(v)?;
                expect(
                    v,
                    &[value::PAYLOAD_FORMAT_INDICATOR],
                    ErrorCode::PayloadFormatIndicatorInvalid,
                    f,
                    "must be 01",
                )?;
            }
            tag::POINT_OF_INITIATION_METHOD => {
                let f = Field::PointOfInitiationMethod;
                f.check_length(v)?;
                let why = "must be 11 (static) or 12 (dynamic)";
                expect(
                    v,
                    &[value::STATIC, value::DYNAMIC],
                    ErrorCode::PointOfInitiationMethodInvalid,
                    f,
                    why,
                )?;
            }
            tag::UNIONPAY_MERCHANT_ACCOUNT => Field::UnionPayMerchantAccount.check_length(v)?,
            tag::INDIVIDUAL_ACCOUNT | tag::MERCHANT_ACCOUNT => check_account(&d.entry(e))?,
            tag::MERCHANT_CATEGORY_CODE => check_mcc(v)?,
            tag::TRANSACTION_CURRENCY => {
                currency = Some(Currency::of_tag_value(v)?);
            }
            tag::TRANSACTION_AMOUNT => {
                // Tag 53 normally comes first; read it off the payload if not.
                check_amount(currency.or_else(|| d.currency()), dynamic, v)?;
            }
            tag::COUNTRY_CODE => {
                Field::CountryCode.check_present(v)?;
                expect(
                    v,
                    &[value::COUNTRY_CODE],
                    ErrorCode::CountryCodeInvalid,
                    Field::CountryCode,
                    "must be KH",
                )?;
            }
            tag::MERCHANT_NAME => text(Field::MerchantName, v)?,
            tag::MERCHANT_CITY => text(Field::MerchantCity, v)?,
            tag::ADDITIONAL_DATA => {
                // Sub-tags 01–08, each at its ID.
                let values = d.entry(e).subs_below::<9>();
                for (sub, field) in ADDITIONAL_DATA {
                    if let Some(Some(x)) = values.get(usize::from(sub)) {
                        text(field, x)?;
                    }
                }
            }
            tag::LANGUAGE_TEMPLATE => check_language(&d.entry(e), text)?,
            _ => {}
        }
    }
    Ok(())
}

// `check_fields` reads the sub-tags of 62 below 9, each at its ID.
const _: () = {
    let mut i = 0;
    while i < ADDITIONAL_DATA.len() {
        assert!(ADDITIONAL_DATA[i].0 < 9, "a sub-tag of 62 over 8");
        i += 1;
    }
};

/// A text field: present (not empty), within its limit, not blank where the table
/// says it is required, no control characters.
fn check_text(field: Field, v: &str) -> Result<(), Error> {
    check_length_only(field, v)?;
    check_chars_reading(v, field)
}

/// [`check_text`] without the character rule (for a payload already known to
/// be printable ASCII).
#[inline]
fn check_length_only(field: Field, v: &str) -> Result<(), Error> {
    field.check_present(v)?;
    if field == Field::MerchantName {
        check_not_blank(v, ErrorCode::MerchantNameRequired, field)?;
    }
    Ok(())
}

/// The merchant account template (29 or 30): known sub-tags, the account ID's
/// rules, the account information or merchant ID, the acquiring bank.
fn check_account(e: &Entry<'_, '_>) -> Result<(), Error> {
    let subs = e.subs_below::<3>();
    let [id, second, bank] = [
        subs[usize::from(tag::sub::BAKONG_ACCOUNT_ID)],
        subs[usize::from(tag::sub::ACCOUNT_INFORMATION)],
        subs[usize::from(tag::sub::ACQUIRING_BANK)],
    ];
    // None of the known sub-tags (or no sub-objects at all).
    if id.is_none() && second.is_none() && bank.is_none() {
        return Err(Error::reason(
            ErrorCode::MerchantTypeRequired,
            Field::MerchantAccountInformation,
            "has no Bakong account ID, account information or acquiring bank sub-tag",
        ));
    }
    // An absent account ID is refused as an empty one (1).
    check_account_id(id.unwrap_or_default())?;
    if e.id() == tag::INDIVIDUAL_ACCOUNT {
        if let Some(a) = second {
            Field::AccountInformation.check_present(a)?;
        }
    } else if let Some(m) = second {
        // Unlike generate (30), verify reports an empty merchant ID with the
        // length code, as the SDK's verify does.
        if m.is_empty() {
            return Err(Error::missing(
                ErrorCode::MerchantIdLengthInvalid,
                Field::MerchantId,
            ));
        }
        Field::MerchantId.check_length(m)?;
    }
    if let Some(b) = bank {
        Field::AcquiringBank.check_present(b)?;
    }
    if e.id() == tag::MERCHANT_ACCOUNT {
        check_merchant_blanks(second, bank)?;
    }
    Ok(())
}

/// Ours, as `generate`'s: a merchant's ID and acquiring bank are not blank.
#[inline(never)]
fn check_merchant_blanks(merchant_id: Option<&str>, bank: Option<&str>) -> Result<(), Error> {
    if let Some(m) = merchant_id {
        check_not_blank(m, ErrorCode::MerchantIdRequired, Field::MerchantId)?;
    }
    if let Some(b) = bank {
        check_not_blank(b, ErrorCode::AcquiringBankRequired, Field::AcquiringBank)?;
    }
    Ok(())
}

/// The language template (64): name and preference go together (a name without
/// a preference is 38, a preference without a name 39), then each sub-field's
/// own rules.
fn check_language(
    e: &Entry<'_, '_>,
    text: impl Fn(Field, &str) -> Result<(), Error>,
) -> Result<(), Error> {
    let subs = e.subs_below::<3>();
    let [pref, name, city] = [
        subs[usize::from(tag::sub::LANGUAGE_PREFERENCE)],
        subs[usize::from(tag::sub::NAME_ALTERNATE_LANGUAGE)],
        subs[usize::from(tag::sub::CITY_ALTERNATE_LANGUAGE)],
    ];
    match (pref, name) {
        (None, Some(_)) => {
            return Err(Error::reason(
                ErrorCode::LanguagePreferenceLengthInvalid,
                Field::LanguagePreference,
                "is missing beside a merchant name in the alternate language",
            ))
        }
        (Some(_), None) => {
            return Err(Error::reason(
                ErrorCode::MerchantNameAlternateLanguageRequired,
                Field::MerchantNameAlternateLanguage,
                "is missing beside a language preference",
            ))
        }
        _ => {}
    }
    if let Some(p) = pref {
        Field::LanguagePreference.check_present(p)?;
    }
    if let Some(n) = name {
        text(Field::MerchantNameAlternateLanguage, n)?;
    }
    if let Some(c) = city {
        text(Field::MerchantCityAlternateLanguage, c)?;
    }
    Ok(())
}

/// The amount (54): decimal text of at most 13 characters, read as its currency
/// allows (whole riel for KHR, a zero fraction such as `5000.0` accepted as bank
/// apps print it; at most two decimals written for USD), and not zero in a
/// dynamic KHQR (47: there is nothing to pay).
fn check_amount(currency: Option<Currency>, dynamic: bool, v: &str) -> Result<(), Error> {
    // Decimal text is ASCII: its length in bytes is its length in characters.
    let Some((_, frac)) = decimal_parts(v).filter(|_| v.len() <= MAX_AMOUNT_LEN) else {
        return Err(Error::reason_with(
            ErrorCode::TransactionAmountInvalid,
            Field::TransactionAmount,
            "must be decimal digits with an optional fraction, at most 13 characters",
            v,
        ));
    };
    if let Some(c) = currency {
        let frac = frac.unwrap_or("");
        // Read as `Amount::read_minor_units` reads it, and at most two
        // decimals written for USD. At most 13 characters cannot overflow.
        if !fraction_fits(frac, c) || (c == Currency::Usd && frac.len() > 2) {
            return Err(Error::reason_with(
                ErrorCode::TransactionAmountInvalid,
                Field::TransactionAmount,
                fraction_refusal(c),
                v,
            ));
        }
    }
    let zero = v.bytes().all(|b| b == b'0' || b == b'.');
    if dynamic && zero {
        return Err(Error::reason_with(
            ErrorCode::InvalidDynamicKhqr,
            Field::TransactionAmount,
            "is zero in a dynamic KHQR",
            v,
        ));
    }
    Ok(())
}

/// Tag 99's rules, given its sub-tags 00 and 01 (`timestamps`; `None` without
/// tag 99).
fn check_timestamps(
    timestamps: Option<[Option<&str>; 2]>,
    dynamic: bool,
    now_ms: u64,
    options: VerifyOptions,
) -> Result<(), Error> {
    const _: () = assert!(tag::sub::CREATION_TIMESTAMP == 0 && tag::sub::EXPIRATION_TIMESTAMP == 1);
    let Some([created, exp]) = timestamps else {
        return Ok(());
    };
    let Some(exp) = exp else {
        if dynamic && !options.allow_missing_expiration {
            return Err(Error::reason(
                ErrorCode::ExpirationTimestampRequired,
                Field::ExpirationTimestamp,
                "is required for a dynamic KHQR; tag 99 has no sub-tag 01",
            ));
        }
        return Ok(());
    };
    let exp_ms = parse_ms13(exp).ok_or_else(|| {
        Error::reason_with(
            ErrorCode::ExpirationTimestampLengthInvalid,
            Field::ExpirationTimestamp,
            EXPIRATION_SHAPE,
            exp,
        )
    })?;
    if let Some(created) = created.and_then(|c| parse_ms13(c).or_else(|| parse_ms(c))) {
        if exp_ms < created {
            return Err(Error::reason_with(
                ErrorCode::ExpirationTimestampInThePast,
                Field::ExpirationTimestamp,
                "is before the creation timestamp",
                exp,
            ));
        }
    }
    if exp_ms < now_ms {
        return Err(Error::new(
            ErrorCode::KhqrExpired,
            Field::ExpirationTimestamp,
            Detail::Expired {
                expiration_ms: exp_ms,
                now_ms,
            },
        ));
    }
    Ok(())
}
