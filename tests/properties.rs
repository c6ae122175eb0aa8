//! Property tests: for arbitrary valid requests, the payload decodes to the same
//! fields, verifies, refuses any one-character change, and has only two-digit
//! lengths. Case counts are modest so `cargo test` stays fast in debug builds.

use bakong_khqr::tlv::{utf16_len, Reader};
use bakong_khqr::{decode, verify, Account, Currency, ErrorCode, Field, Request};
use proptest::prelude::*;

const NOW_MS: u64 = 1_700_000_000_000;

/// Printable text without control characters: ASCII, Khmer and a little Thai.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::char::range(' ', '~'),
            2 => prop::char::range('\u{1780}', '\u{17DD}'),
            1 => prop::char::range('\u{0E01}', '\u{0E3A}'),
        ],
        1..=max,
    )
    .prop_map(|v| v.into_iter().collect())
    .prop_filter("not blank", |s: &String| !s.trim().is_empty())
}

fn opt_text(max: usize) -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(0.4, text(max))
}

#[derive(Debug, Clone)]
struct Fields {
    merchant: bool,
    account_id: String,
    name: String,
    city: Option<String>,
    info_or_id: String,
    bank: String,
    usd: bool,
    amount_minor: Option<u64>,
    expires_in_ms: u64,
    additional: [Option<String>; 5],
    language: Option<(String, String)>,
    city_alt: Option<String>,
    mcc: Option<String>,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        (
            any::<bool>(),
            "[a-z0-9_.]{1,14}@[a-z]{1,8}",
            text(25),
            opt_text(15),
            text(32),
            text(32),
            any::<bool>(),
        ),
        (
            prop::option::of(1u64..100_000_000_000),
            1u64..10_000_000_000,
            [
                opt_text(25),
                opt_text(25),
                opt_text(25),
                opt_text(25),
                opt_text(25),
            ],
            prop::option::of(("[a-z]{2}", text(25))),
            opt_text(15),
            prop::option::of("[0-9]{4}"),
        ),
    )
        .prop_map(
            |(
                (merchant, account_id, name, city, info_or_id, bank, usd),
                (amount_minor, expires_in_ms, additional, language, city_alt, mcc),
            )| Fields {
                merchant,
                account_id,
                name,
                city,
                info_or_id,
                bank,
                usd,
                amount_minor,
                expires_in_ms,
                additional,
                language,
                city_alt,
                mcc,
            },
        )
}

fn request(f: &Fields) -> Request<'_> {
    let mut r = if f.merchant {
        Request::merchant(bakong_khqr::MerchantInfo {
            bakong_account_id: &*f.account_id,
            merchant_name: &*f.name,
            merchant_id: &*f.info_or_id,
            acquiring_bank: &*f.bank,
        })
    } else {
        Request::individual(&*f.account_id, &*f.name)
            .account_information(&*f.info_or_id)
            .acquiring_bank(&*f.bank)
    };
    r = r.currency(if f.usd { Currency::Usd } else { Currency::Khr });
    if let Some(m) = f.amount_minor {
        r = r.amount_minor_units(m).expires_in_ms(f.expires_in_ms);
    }
    let [bill, mobile, store, terminal, purpose] = &f.additional;
    for (field, value) in [
        (Field::MerchantCity, &f.city),
        (Field::BillNumber, bill),
        (Field::MobileNumber, mobile),
        (Field::StoreLabel, store),
        (Field::TerminalLabel, terminal),
        (Field::PurposeOfTransaction, purpose),
    ] {
        if let Some(v) = value {
            r = r.set(field, &**v);
        }
    }
    if let Some((pref, name)) = &f.language {
        r = r
            .language_preference(&**pref)
            .merchant_name_alternate_language(&**name);
    }
    for (field, value) in [
        (Field::MerchantCityAlternateLanguage, &f.city_alt),
        (Field::MerchantCategoryCode, &f.mcc),
    ] {
        if let Some(v) = value {
            r = r.set(field, &**v);
        }
    }
    r
}

/// Every data object and template sub-object reads back, with two length
/// digits equal to the value's UTF-16 length.
fn assert_two_digit_lengths(s: &str) {
    for o in Reader::new(s) {
        let o = o.expect("well-formed TLV");
        assert_eq!(usize::from(o.length()), utf16_len(o.value()));
        assert_eq!(
            &s[o.offset() + 2..o.offset() + 4],
            format!("{:02}", o.length())
        );
        if matches!(o.id(), 29 | 30 | 62 | 64 | 99) {
            for c in o.children() {
                let c = c.expect("well-formed template");
                assert_eq!(usize::from(c.length()), utf16_len(c.value()));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn encode_then_decode_gives_the_fields(f in fields()) {
        let req = request(&f);
        let khqr = match req.generate(NOW_MS) {
            Ok(k) => k,
            // All three templates at full length can pass 99 characters.
            Err(e) => {
                prop_assert_eq!(e.code(), ErrorCode::TemplateTooLong);
                return Ok(());
            }
        };
        let s = khqr.as_str();
        let d = decode(s).expect("decodes");
        prop_assert_eq!(d.encode(), s);
        prop_assert_eq!(d.bakong_account_id(), Some(f.account_id.as_str()));
        prop_assert_eq!(d.merchant_name(), Some(f.name.as_str()));
        prop_assert_eq!(d.merchant_city(), Some(f.city.as_deref().unwrap_or("Phnom Penh")));
        prop_assert_eq!(d.acquiring_bank(), Some(f.bank.as_str()));
        if f.merchant {
            prop_assert_eq!(d.merchant_id(), Some(f.info_or_id.as_str()));
            let is_merchant = matches!(req.account(), Account::Merchant { .. });
            prop_assert!(is_merchant);
        } else {
            prop_assert_eq!(d.account_information(), Some(f.info_or_id.as_str()));
        }
        prop_assert_eq!(d.currency(), Some(if f.usd { Currency::Usd } else { Currency::Khr }));
        prop_assert_eq!(d.merchant_category_code(), Some(f.mcc.as_deref().unwrap_or("5999")));
        let [bill, mobile, store, terminal, purpose] = &f.additional;
        prop_assert_eq!(d.bill_number(), bill.as_deref());
        prop_assert_eq!(d.mobile_number(), mobile.as_deref());
        prop_assert_eq!(d.store_label(), store.as_deref());
        prop_assert_eq!(d.terminal_label(), terminal.as_deref());
        prop_assert_eq!(d.purpose_of_transaction(), purpose.as_deref());
        prop_assert_eq!(d.language_preference(), f.language.as_ref().map(|l| l.0.as_str()));
        prop_assert_eq!(
            d.merchant_name_alternate_language(),
            f.language.as_ref().map(|l| l.1.as_str())
        );
        prop_assert_eq!(d.merchant_city_alternate_language(), f.city_alt.as_deref());
        if let Some(m) = f.amount_minor {
            prop_assert!(d.is_dynamic());
            let amount = d.transaction_amount().expect("amount");
            let minor: u64 = match amount.split_once('.') {
                Some((i, c)) => i.parse::<u64>().unwrap() * 100 + c.parse::<u64>().unwrap(),
                None if f.usd => amount.parse::<u64>().unwrap() * 100,
                None => amount.parse().unwrap(),
            };
            prop_assert_eq!(minor, m);
            prop_assert_eq!(d.creation_timestamp_ms(), Some(NOW_MS));
            prop_assert_eq!(d.expiration_timestamp_ms(), Some(NOW_MS + f.expires_in_ms));
        } else {
            prop_assert_eq!(d.point_of_initiation_method(), Some("11"));
            prop_assert_eq!(d.transaction_amount(), None);
        }
    }

    #[test]
    fn encoded_payloads_verify_and_have_two_digit_lengths(f in fields()) {
        if let Ok(khqr) = request(&f).generate(NOW_MS) {
            let d = verify(khqr.as_str(), NOW_MS);
            prop_assert!(d.is_ok(), "{:?}: {}", d.err(), khqr.as_str());
            assert_two_digit_lengths(khqr.as_str());
        }
    }

    /// Replacing one character changes at most two adjacent bytes (ASCII for
    /// ASCII, a character of the same 3-byte UTF-8 block for Khmer or Thai): a
    /// burst of at most 16 bits, which CRC-16 always detects.
    #[test]
    fn any_one_character_change_is_refused(
        f in fields(),
        at in any::<prop::sample::Index>(),
        ascii in prop_oneof![prop::char::range(' ', '~'), Just('\n')],
        pick in any::<bool>(),
    ) {
        let Ok(khqr) = request(&f).generate(NOW_MS) else {
            return Ok(());
        };
        let s = khqr.as_str();
        let positions: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
        let i = positions[at.index(positions.len())];
        let old = s[i..].chars().next().unwrap();
        let by = match old {
            '\u{1780}'..='\u{17FF}' => if pick { '\u{1780}' } else { '\u{1781}' },
            '\u{0E00}'..='\u{0E7F}' => if pick { '\u{0E01}' } else { '\u{0E02}' },
            _ => ascii,
        };
        // The CRC's hex digits may change case and stay valid.
        prop_assume!(old != by && !(i + 4 >= s.len() && old.eq_ignore_ascii_case(&by)));
        let changed = format!("{}{by}{}", &s[..i], &s[i + old.len_utf8()..]);
        let r = verify(&changed, NOW_MS);
        prop_assert!(r.is_err(), "verify accepted {changed:?} (from {s:?})");
        prop_assert_eq!(r.unwrap_err().code(), ErrorCode::KhqrInvalid, "{:?}", changed);
    }
}
