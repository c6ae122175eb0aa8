//! Decode and verify answer at once on malformed input: never a panic, never a
//! hang. Every truncation and many single-character corruptions of every vector
//! payload are tried; verify must refuse each, decode must either refuse it or
//! give back the exact string.

mod common;

use bakong_khqr::{decode, verify, ErrorCode};
use serde_json::Value;

const NOW: u64 = 1_700_000_000_000;

fn vector_payloads() -> Vec<String> {
    let mut out = Vec::new();
    for name in ["verify.jsonl", "real-samples.jsonl", "generate.jsonl"] {
        let text = common::read_vectors(name);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(q) = v["qr"].as_str().or(v["expect"]["qr"].as_str()) {
                out.push(q.to_owned());
            }
        }
    }
    assert!(out.len() > 150, "{} payloads", out.len());
    out
}

fn char_boundaries(s: &str) -> impl Iterator<Item = usize> + '_ {
    s.char_indices().map(|(i, _)| i).chain([s.len()])
}

#[test]
fn every_truncation_is_refused_or_decoded_exactly() {
    let payloads = vector_payloads();
    for p in &payloads {
        for end in char_boundaries(p).filter(|&e| e < p.len()) {
            let t = &p[..end];
            // (A vector with a trailing newline truncates to a valid payload.)
            if !payloads.iter().any(|q| q == t) {
                assert!(verify(t, NOW).is_err(), "verify accepted truncation {t:?}");
            }
            if let Ok(d) = decode(t) {
                assert_eq!(d.encode(), t);
            }
        }
    }
}

#[test]
fn single_character_corruptions_are_refused() {
    let replacements = ['0', '9', 'A', 'z', ' ', '-', '+', '\n', '.', 'ក', '😀'];
    let mut tried = 0u32;
    for p in vector_payloads() {
        if verify(&p, NOW).is_err() {
            continue;
        }
        let positions: Vec<usize> = p.char_indices().map(|(i, _)| i).collect();
        for &i in &positions {
            let old = p[i..].chars().next().unwrap();
            for &r in &replacements {
                if r == old || (old.is_ascii_hexdigit() && r.eq_ignore_ascii_case(&old)) {
                    continue;
                }
                let mut s = String::with_capacity(p.len() + 4);
                s.push_str(&p[..i]);
                s.push(r);
                s.push_str(&p[i + old.len_utf8()..]);
                tried += 1;
                // A single changed character always breaks the CRC-16 (a burst
                // of at most 32 bits within the checked bytes, or the CRC itself).
                let e = verify(&s, NOW).expect_err(&s);
                if i + old.len_utf8() <= p.len() - 4 && r.is_ascii() && old.is_ascii() {
                    assert_eq!(e.code(), ErrorCode::KhqrInvalid, "{s:?}: {e}");
                }
                if let Ok(d) = decode(&s) {
                    assert_eq!(d.encode(), s);
                }
            }
        }
    }
    assert!(tried > 10_000, "{tried}");
}

#[test]
fn inputs_the_official_sdk_loops_forever_on() {
    // khqr-notes §7.1: non-advancing sub-TLVs, tag 30 with a non-numeric length,
    // the SDK's own three-digit template lengths.
    for s in [
        "6206XXABCD",
        "30XX",
        "0002013XX0",
        "00020101021130XX0014jonhsmith@nbcq6304ABCD",
        "0002010102112918AB14jonhsmith@nbcq",
        "000201010211291080032aaaaaaaaaaaaaaaaaaaaaaaaaaa@nbcq0132111111111111111111111111111111110232BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB5204599953031165802KH5910Jonh Smith6010Phnom Penh6304DF50",
        "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6206XXABCD63046240",
        "",
        "0",
        "00",
        "000",
        "99",
        "9999",
    ] {
        assert!(decode(s).is_err(), "decode accepted {s:?}");
        assert!(verify(s, NOW).is_err(), "verify accepted {s:?}");
    }
    // Well-formed TLV, but no KHQR.
    for s in ["0000", "63041234", "00020163046007"] {
        assert_eq!(decode(s).unwrap().encode(), s);
        assert!(verify(s, NOW).is_err(), "verify accepted {s:?}");
    }
}

#[test]
fn arbitrary_bytes_as_text_never_panic() {
    // A deterministic spray of short strings over a TLV-ish alphabet.
    let alphabet: Vec<char> = "0123456789AB @.-ក😀".chars().collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 40) as usize;
        let mut s = String::new();
        let mut y = x;
        for _ in 0..len {
            y = y.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            s.push(alphabet[(y >> 33) as usize % alphabet.len()]);
        }
        if let Ok(d) = decode(&s) {
            assert_eq!(d.encode(), s);
        }
        let _ = verify(&s, NOW);
    }
}
