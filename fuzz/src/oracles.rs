//! The fuzz oracles: what must hold for any input.
//!
//! Shared, file for file, by the fuzz targets (`fuzz/fuzz_targets/*.rs`, through
//! `fuzz/src/lib.rs`) and by `tests/fuzz_regressions.rs`, which replays every
//! committed seed and regression input through these same functions on stable
//! Rust. Each function panics when the oracle is violated, and only then.
//!
//! This file depends on `bakong_khqr` and `std` only (not on `arbitrary` or
//! `libfuzzer-sys`), so the crate's own tests can include it with `#[path]`.

use std::borrow::Cow;

use bakong_khqr::{
    decode, verify, verify_with, Currency, Decoded, ErrorCode, Field, Md5, Request, VerifyOptions,
    DEFAULT_CITY, DEFAULT_MCC,
};

/// The clock of the `decode`, `verify` and `roundtrip` oracles:
/// 2023-11-14T22:13:20Z, the vectors' `now_ms`.
pub const NOW_MS: u64 = 1_700_000_000_000;

/// Decoding any string never panics, and what it decodes re-encodes exactly.
pub fn decode_oracle(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match decode(s) {
        Ok(d) => {
            let fields = d.sdk_fields();
            assert_eq!(fields.crc, d.crc());
            for entry in d.iter() {
                let _ = entry.children.map(<[_]>::len);
            }
            let _ = format!("{d:?}");
            assert_eq!(d.encode(), s, "decode lost bytes");
        }
        Err(e) => {
            assert!(ErrorCode::from_number(e.code().number()).is_some());
            assert!(!e.to_string().is_empty());
        }
    }
}

/// Verifying any string never panics; a payload it accepts decodes, re-encodes
/// exactly, has a correct CRC and is also accepted by the lenient rules.
///
/// Random bytes almost never carry a correct CRC, so the oracle also checks the
/// input with its CRC put right (the last `6304` and four hex digits replaced,
/// or appended): that takes the fuzzer past the CRC into the field rules.
pub fn verify_oracle(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    verify_one(s);
    verify_one(&with_crc(s));
}

/// `s` with a correct CRC data object at its end: a trailing `6304` and four
/// hex digits are replaced, anything else gets one appended.
#[must_use]
pub fn with_crc(s: &str) -> String {
    let b = s.as_bytes();
    let n = b.len();
    let body =
        if n >= 8 && &b[n - 8..n - 4] == b"6304" && b[n - 4..].iter().all(u8::is_ascii_hexdigit) {
            &s[..n - 4]
        } else {
            s
        };
    let mut t = String::with_capacity(body.len() + 8);
    t.push_str(body);
    if !t.ends_with("6304") || body.len() == s.len() {
        t.push_str("6304");
    }
    let crc = bakong_khqr::crc::checksum_hex(t.as_bytes());
    t.push_str(std::str::from_utf8(&crc).unwrap_or("0000"));
    t
}

fn verify_one(s: &str) {
    let lenient = VerifyOptions::new().allow_missing_expiration(true);
    for now in [NOW_MS, 0, u64::MAX] {
        match verify(s, now) {
            Ok(d) => {
                assert_eq!(
                    d.encode(),
                    s,
                    "verify accepted a payload that does not re-encode"
                );
                assert!(decode(s).is_ok(), "verify accepted what decode refuses");
                assert!(
                    verify_with(s, now, &lenient).is_ok(),
                    "strict verify accepted what lenient verify refuses"
                );
                let crc = d.crc().unwrap_or_default();
                let body = &s[..s.len() - 4];
                assert_eq!(
                    bakong_khqr::crc::parse_hex4(crc),
                    Some(bakong_khqr::crc::checksum(body.as_bytes()))
                );
            }
            Err(e) => {
                assert!(ErrorCode::from_number(e.code().number()).is_some());
                assert!(!e.to_string().is_empty());
                let _ = verify_with(s, now, &lenient);
            }
        }
    }
}

/// When decoding succeeds, encoding gives back the same string, and decoding
/// that again gives the same data objects.
pub fn roundtrip_oracle(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(d) = decode(s) else {
        return;
    };
    let encoded = d.encode();
    assert_eq!(encoded, s, "decode → encode changed the string");
    let mut appended = String::from("prefix");
    d.encode_into(&mut appended);
    assert_eq!(&appended[6..], s);
    let again = Decoded::parse(&encoded).expect("re-encoded payload must decode");
    assert_eq!(again, d);
}

/// Number of text fields a [`BuildInput`] carries, in this order: account ID,
/// merchant name, city, account information (individual) or merchant ID
/// (merchant), acquiring bank, amount, expiration instant (ms), bill number,
/// mobile number, store label, terminal label, purpose of transaction, language
/// preference, merchant name (alternate language), city (alternate language),
/// UnionPay account, Merchant Category Code.
pub const FIELDS: usize = 17;

/// Separates the text fields of a [`BuildInput`]: U+001F (unit separator).
pub const SEPARATOR: char = '\u{1f}';

/// A request as the `build` fuzz target receives it: 8 header bytes and the
/// text fields joined by [`SEPARATOR`].
///
/// Header: byte 0 bit 0 merchant (else individual), bit 1 USD (else KHR), bits
/// 2–3 the amount (0 none, 1 or 3 the amount field as text, 2 the amount field
/// as integer minor units), bits 4–5 the expiration (0 none, 1 the expiration
/// field as an instant in ms, 2 `expires_in_ms` of bytes 5–7 × 1000, 3 `now`
/// plus bytes 5–7 minus 2^23, in ms), bit 6 a clock far from today (bytes 1–4 ×
/// 10^6 ms) instead of [`NOW_MS`] + bytes 1–4 ms. A field that is not there
/// (the text has fewer separators) is absent; an empty field is `Some("")`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildInput<'a> {
    /// The 8 header bytes.
    pub header: [u8; 8],
    /// The text fields, joined by [`SEPARATOR`].
    pub text: &'a str,
}

impl<'a> BuildInput<'a> {
    /// Reads the layout from raw bytes the way `arbitrary` reads
    /// `(header: [u8; 8], text: &str)` with `arbitrary_take_rest`: missing header
    /// bytes are 0; `None` when the text is not UTF-8.
    #[must_use]
    pub fn from_bytes(data: &'a [u8]) -> Option<Self> {
        let mut header = [0u8; 8];
        let n = data.len().min(8);
        header[..n].copy_from_slice(&data[..n]);
        let text = std::str::from_utf8(&data[n..]).ok()?;
        Some(BuildInput { header, text })
    }

    /// The inverse of [`BuildInput::from_bytes`], for writing seeds.
    #[must_use]
    pub fn to_bytes(self) -> Vec<u8> {
        let mut v = self.header.to_vec();
        v.extend_from_slice(self.text.as_bytes());
        v
    }

    /// The clock the request is generated and verified at, in ms.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        let n = u64::from(u32::from_le_bytes([
            self.header[1],
            self.header[2],
            self.header[3],
            self.header[4],
        ]));
        if self.header[0] & 0x40 == 0 {
            NOW_MS + n
        } else {
            n * 1_000_000
        }
    }

    fn fields(&self) -> [Option<&'a str>; FIELDS] {
        let mut out = [None; FIELDS];
        for (slot, piece) in out.iter_mut().zip(self.text.split(SEPARATOR)) {
            *slot = Some(piece);
        }
        out
    }

    /// The request this input describes.
    #[must_use]
    pub fn request(&self) -> Request<'a> {
        let f = self.fields();
        let h = self.header;
        let mut req = if h[0] & 1 == 0 {
            let mut r = Request::individual(f[0].unwrap_or(""), f[1].unwrap_or(""));
            if let Some(a) = f[3] {
                r = r.account_information(a);
            }
            if let Some(b) = f[4] {
                r = r.acquiring_bank(b);
            }
            r
        } else {
            Request::merchant(bakong_khqr::MerchantInfo {
                bakong_account_id: f[0].unwrap_or(""),
                merchant_name: f[1].unwrap_or(""),
                merchant_id: f[3].unwrap_or(""),
                acquiring_bank: f[4].unwrap_or(""),
            })
        };
        req = req.currency(if h[0] & 2 == 0 {
            Currency::Khr
        } else {
            Currency::Usd
        });
        let amount = f[5].unwrap_or("");
        match (h[0] >> 2) & 3 {
            0 => {}
            2 => req = req.amount_minor_units(amount.parse().unwrap_or(u64::MAX)),
            _ => req = req.amount(amount),
        }
        let delta = u64::from(u32::from_le_bytes([h[5], h[6], h[7], 0]));
        match (h[0] >> 4) & 3 {
            0 => {}
            1 => req = req.expires_at_ms(f[6].unwrap_or("").parse().unwrap_or(0)),
            2 => req = req.expires_in_ms(delta * 1000),
            _ => req = req.expires_at_ms((self.now_ms() + delta).saturating_sub(1 << 23)),
        }
        for (i, field) in TEXT_SLOTS {
            if let Some(v) = f[i] {
                req = req.set(field, v);
            }
        }
        req
    }
}

/// The optional text fields of a [`BuildInput`], by slot.
const TEXT_SLOTS: [(usize, Field); 11] = [
    (2, Field::MerchantCity),
    (7, Field::BillNumber),
    (8, Field::MobileNumber),
    (9, Field::StoreLabel),
    (10, Field::TerminalLabel),
    (11, Field::PurposeOfTransaction),
    (12, Field::LanguagePreference),
    (13, Field::MerchantNameAlternateLanguage),
    (14, Field::MerchantCityAlternateLanguage),
    (15, Field::UnionPayMerchantAccount),
    (16, Field::MerchantCategoryCode),
];

fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

/// Building any request never panics: it gives either a payload that `verify`
/// accepts at the same `now` and that decodes to the request's fields, or a
/// typed error that leaves the caller's buffer as it was.
pub fn build_oracle(data: &[u8]) {
    if let Some(input) = BuildInput::from_bytes(data) {
        check_request(&input.request(), input.now_ms());
    }
}

/// The `build` oracle for one request at one clock.
pub fn check_request(req: &Request<'_>, now_ms: u64) {
    let mut out = String::from("kept");
    let generated = req.generate(now_ms);
    if let Err(e) = req.write(now_ms, &mut out) {
        assert_eq!(out, "kept", "a failed write changed the buffer");
        assert!(ErrorCode::from_number(e.code().number()).is_some());
        assert!(!e.to_string().is_empty());
        let g = generated.expect_err("write failed but generate succeeded");
        assert_eq!(g.code(), e.code());
        return;
    }
    let s = &out[4..];
    let khqr = generated.expect("write succeeded but generate failed");
    assert_eq!(khqr.as_str(), s);
    assert_eq!(khqr.md5(), Md5::of(s));
    let d = match verify(s, now_ms) {
        Ok(d) => d,
        Err(e) => panic!("generated payload fails verify ({e}): {s:?} from {req:?}"),
    };
    assert_eq!(d.encode(), s);
    check_fields(req, &d, now_ms);
}

fn check_fields(req: &Request<'_>, d: &Decoded<'_>, now_ms: u64) {
    use bakong_khqr::{Account, MerchantType};
    assert_eq!(d.bakong_account_id(), req.text(Field::BakongAccountId));
    assert_eq!(d.merchant_name(), req.text(Field::MerchantName));
    assert_eq!(
        d.merchant_city(),
        Some(present(req.text(Field::MerchantCity)).unwrap_or(DEFAULT_CITY))
    );
    assert_eq!(
        d.merchant_category_code(),
        Some(present(req.text(Field::MerchantCategoryCode)).unwrap_or(DEFAULT_MCC))
    );
    assert_eq!(d.currency(), Some(req.currency_code()));
    assert_eq!(d.country_code(), Some("KH"));
    match req.account() {
        Account::Individual {
            account_information,
            acquiring_bank,
        } => {
            assert_eq!(d.merchant_type(), Some(MerchantType::Individual));
            assert_eq!(
                d.account_information(),
                present(account_information.as_deref())
            );
            assert_eq!(d.acquiring_bank(), present(acquiring_bank.as_deref()));
        }
        Account::Merchant {
            merchant_id,
            acquiring_bank,
        } => {
            assert_eq!(d.merchant_type(), Some(MerchantType::Merchant));
            assert_eq!(d.merchant_id(), Some(merchant_id.as_ref()));
            assert_eq!(d.acquiring_bank(), Some(acquiring_bank.as_ref()));
        }
        other => panic!("no oracle for the account kind {other:?}"),
    }
    assert_eq!(d.bill_number(), present(req.text(Field::BillNumber)));
    assert_eq!(d.mobile_number(), present(req.text(Field::MobileNumber)));
    assert_eq!(d.store_label(), present(req.text(Field::StoreLabel)));
    assert_eq!(d.terminal_label(), present(req.text(Field::TerminalLabel)));
    assert_eq!(
        d.purpose_of_transaction(),
        present(req.text(Field::PurposeOfTransaction))
    );
    assert_eq!(
        d.language_preference(),
        present(req.text(Field::LanguagePreference))
    );
    assert_eq!(
        d.merchant_name_alternate_language(),
        present(req.text(Field::MerchantNameAlternateLanguage))
    );
    assert_eq!(
        d.merchant_city_alternate_language(),
        present(req.text(Field::MerchantCityAlternateLanguage))
    );
    assert_eq!(
        d.union_pay_merchant_account(),
        present(req.text(Field::UnionPayMerchantAccount))
    );
    if d.is_dynamic() {
        let amount = d.transaction_amount().expect("dynamic KHQR without amount");
        assert!(
            amount.bytes().any(|b| b != b'0' && b != b'.'),
            "zero amount {amount}"
        );
        assert_eq!(d.creation_timestamp_ms(), Some(now_ms));
        assert!(d.expiration_timestamp_ms().is_some_and(|e| e >= now_ms));
    } else {
        assert_eq!(d.point_of_initiation_method(), Some("11"));
        assert_eq!(d.transaction_amount(), None);
        assert_eq!(d.get(99).map(|e| e.id()), None);
    }
}

/// Writes `req` at `now_ms` in the [`BuildInput`] layout, for seeding the
/// `build_request` target; `None` when the layout cannot express it (a field
/// holding [`SEPARATOR`], a clock before [`NOW_MS`] not in whole 10^6 ms).
#[must_use]
pub fn build_seed(req: &Request<'_>, now_ms: u64) -> Option<Vec<u8>> {
    use bakong_khqr::{Account, AmountInput, Expiration};
    let mut header = [0u8; 8];
    let offset = match now_ms.checked_sub(NOW_MS).map(u32::try_from) {
        Some(Ok(off)) => off,
        _ if now_ms.is_multiple_of(1_000_000) => {
            header[0] |= 0x40;
            u32::try_from(now_ms / 1_000_000).ok()?
        }
        _ => return None,
    };
    header[1..5].copy_from_slice(&offset.to_le_bytes());
    let mut f: [Option<String>; FIELDS] = Default::default();
    let text = |v: &Option<Cow<'_, str>>| v.as_deref().map(str::to_owned);
    f[0] = req.text(Field::BakongAccountId).map(str::to_owned);
    f[1] = req.text(Field::MerchantName).map(str::to_owned);
    match req.account() {
        Account::Individual {
            account_information,
            acquiring_bank,
        } => {
            f[3] = text(account_information);
            f[4] = text(acquiring_bank);
        }
        Account::Merchant {
            merchant_id,
            acquiring_bank,
        } => {
            header[0] |= 1;
            f[3] = Some(merchant_id.as_ref().to_owned());
            f[4] = Some(acquiring_bank.as_ref().to_owned());
        }
        _ => return None,
    }
    if req.currency_code() == Currency::Usd {
        header[0] |= 2;
    }
    match req.amount_input() {
        None => {}
        Some(AmountInput::Text(t)) => {
            header[0] |= 1 << 2;
            f[5] = Some(t.as_ref().to_owned());
        }
        Some(AmountInput::MinorUnits(m)) => {
            header[0] |= 2 << 2;
            f[5] = Some(m.to_string());
        }
        Some(_) => return None,
    }
    match req.expiration() {
        None => {}
        Some(Expiration::AtMs(ms)) => {
            header[0] |= 1 << 4;
            f[6] = Some(ms.to_string());
        }
        Some(Expiration::AfterMs(ms)) => {
            let secs = u32::try_from(ms / 1000).ok().filter(|s| *s < 1 << 24)?;
            if ms % 1000 != 0 {
                return None;
            }
            header[0] |= 2 << 4;
            header[5..8].copy_from_slice(&secs.to_le_bytes()[..3]);
        }
        Some(_) => return None,
    }
    for (i, field) in TEXT_SLOTS {
        f[i] = req.text(field).map(str::to_owned);
    }
    let last = f.iter().rposition(Option::is_some).unwrap_or(0);
    let mut joined = String::new();
    for (i, v) in f.iter().take(last + 1).enumerate() {
        let v = v.as_deref().unwrap_or("");
        if v.contains(SEPARATOR) {
            return None;
        }
        if i > 0 {
            joined.push(SEPARATOR);
        }
        joined.push_str(v);
    }
    Some(
        BuildInput {
            header,
            text: &joined,
        }
        .to_bytes(),
    )
}
