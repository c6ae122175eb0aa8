//! Signed payment webhooks (feature `webhook`): sign an event body, and verify a
//! received one in one call.
//!
//! Bakong never pushes; a server that polls Bakong for its open QRs (such as
//! `khqr-server`) can tell a merchant's back end that a QR was paid by sending a
//! JSON event in a POST. The receiver must know the event came from that server and was not
//! replayed, so every delivery carries a [`SIGNATURE_HEADER`]:
//!
//! ```text
//! KHQR-Signature: t=1700000000000,v1=5d0c…(64 lowercase hex digits)
//! ```
//!
//! * `t` is the time of sending, in milliseconds since the Unix epoch (decimal);
//! * each `v1` is HMAC-SHA256 (RFC 2104, FIPS 180-4) keyed with a shared secret,
//!   over the bytes of `t`, one `.` (0x2E), then the body bytes exactly as sent;
//! * a header may carry several `v1` entries (a sender rotating its secret signs
//!   with the old and the new one); one that verifies is enough;
//! * unknown keys are ignored, so that later schemes can be added beside `v1`.
//!
//! The receiver compares in constant time and refuses a timestamp older than a
//! tolerance (default [`DEFAULT_TOLERANCE_MS`], five minutes) or further in the
//! future than that, which bounds replays. Deduplicate deliveries by the event's
//! MD5 (the idempotency key): a sender retries until it gets a 2xx, so one
//! payment may arrive more than once.
//!
//! Nothing here reads the clock: `now_ms` comes from the caller.
//!
//! ```
//! use bakong_khqr::webhook::{sign, verify_webhook_signature};
//!
//! let secret = b"whsec_test_secret";
//! let body = br#"{"type":"khqr.paid","md5":"f2bb7310df261ab64e13fc397b0b86f0"}"#;
//! let header = sign(secret, 1_700_000_000_000, body);
//! assert!(header.starts_with("t=1700000000000,v1="));
//!
//! // On the receiving side, one minute later:
//! let sent_at = verify_webhook_signature(secret, &header, body, 1_700_000_060_000)?;
//! assert_eq!(sent_at, 1_700_000_000_000);
//!
//! // A changed body, or another secret, fails.
//! assert!(verify_webhook_signature(secret, &header, b"{}", 1_700_000_060_000).is_err());
//! assert!(verify_webhook_signature(b"other", &header, body, 1_700_000_060_000).is_err());
//! # Ok::<(), bakong_khqr::webhook::WebhookError>(())
//! ```

use alloc::string::String;
use core::fmt;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Name of the HTTP header that carries the signature: `KHQR-Signature`.
pub const SIGNATURE_HEADER: &str = "KHQR-Signature";

/// Default largest difference between a signature's timestamp and `now_ms`,
/// either way: 300 000 milliseconds (five minutes).
pub const DEFAULT_TOLERANCE_MS: u64 = 5 * 60 * 1000;

/// Length of one `v1` signature in the header: 64 hex digits (32 bytes).
const SIGNATURE_HEX_LEN: usize = 64;

/// Why a webhook signature was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// The header has no `t=` entry, or its value is not a decimal number of
    /// milliseconds.
    MissingTimestamp,
    /// The header has no well-formed `v1=` entry (64 hex digits).
    MissingSignature,
    /// No `v1` signature matches the body under this secret: the body was
    /// changed, or the secret is not the sender's.
    Mismatch,
    /// The timestamp is more than the tolerance before `now_ms` (a replay, or a
    /// delivery that waited too long); `age_ms` is how old it is.
    Expired {
        /// `now_ms` minus the timestamp, in milliseconds.
        age_ms: u64,
    },
    /// The timestamp is more than the tolerance after `now_ms` (a wrong clock
    /// on one side); `ahead_ms` is by how much.
    FromTheFuture {
        /// The timestamp minus `now_ms`, in milliseconds.
        ahead_ms: u64,
    },
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookError::MissingTimestamp => {
                f.write_str("webhook signature header has no t= timestamp in milliseconds")
            }
            WebhookError::MissingSignature => {
                f.write_str("webhook signature header has no v1= signature of 64 hex digits")
            }
            WebhookError::Mismatch => {
                f.write_str("webhook signature does not match the body under this secret")
            }
            WebhookError::Expired { age_ms } => {
                write!(
                    f,
                    "webhook signature is {age_ms} ms old, over the tolerance"
                )
            }
            WebhookError::FromTheFuture { ahead_ms } => write!(
                f,
                "webhook signature is {ahead_ms} ms ahead of now, over the tolerance"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WebhookError {}

fn mac(secret: &[u8], timestamp_ms: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (RFC 2104 §2), so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(itoa_u64(timestamp_ms).as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn itoa_u64(value: u64) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(20);
    // Writing to a String never fails.
    let _ = write!(s, "{value}");
    s
}

/// Signs `body` as sent at `timestamp_ms` (milliseconds since the Unix epoch)
/// and returns the value of the [`SIGNATURE_HEADER`]:
/// `t=<timestamp_ms>,v1=<64 lowercase hex digits>`.
///
/// `secret` is the shared secret, any length (32 random bytes or more is
/// advised). The signature covers the decimal `timestamp_ms`, a `.`, and `body`
/// byte for byte, so the receiver must verify the raw body before parsing it.
#[must_use]
pub fn sign(secret: &[u8], timestamp_ms: u64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp_ms, body).finalize().into_bytes();
    let mut header = itoa_u64(timestamp_ms);
    header.insert_str(0, "t=");
    header.push_str(",v1=");
    let mut digits = [0u8; SIGNATURE_HEX_LEN];
    // 32 bytes always fill exactly 64 hex digits, all ASCII.
    let encoded = hex::encode_to_slice(tag, &mut digits);
    debug_assert!(encoded.is_ok());
    header.extend(digits.iter().map(|&b| char::from(b)));
    header
}

/// Verifies a received webhook with the default tolerance
/// ([`DEFAULT_TOLERANCE_MS`]); returns the signature's timestamp (milliseconds
/// since the Unix epoch).
///
/// `header` is the [`SIGNATURE_HEADER`] value as received, `body` the raw body
/// bytes as received (before any JSON parsing), `now_ms` the receiver's clock.
///
/// # Errors
/// As [`verify_webhook_signature_with`].
pub fn verify_webhook_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_ms: u64,
) -> Result<u64, WebhookError> {
    verify_webhook_signature_with(secret, header, body, now_ms, DEFAULT_TOLERANCE_MS)
}

/// Verifies a received webhook, allowing its timestamp to differ from `now_ms`
/// by at most `tolerance_ms` milliseconds either way; returns the timestamp.
///
/// The signature is checked first (in constant time, against every `v1`
/// entry), then the time, so a forged header never learns about the clock.
///
/// # Errors
/// * [`WebhookError::MissingTimestamp`]: no `t=` entry, or not a decimal `u64`;
/// * [`WebhookError::MissingSignature`]: no `v1=` entry of 64 hex digits;
/// * [`WebhookError::Mismatch`]: no `v1` entry matches `body` under `secret`;
/// * [`WebhookError::Expired`] / [`WebhookError::FromTheFuture`]: the signature
///   is valid but its timestamp is outside the tolerance.
pub fn verify_webhook_signature_with(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_ms: u64,
    tolerance_ms: u64,
) -> Result<u64, WebhookError> {
    let mut timestamp = None;
    let mut saw_signature = false;
    let mut matched = false;
    // The timestamp must be known before any signature can be checked.
    for part in header.split(',') {
        if let Some(t) = part.trim().strip_prefix("t=") {
            if timestamp.is_some() || t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(WebhookError::MissingTimestamp);
            }
            timestamp = Some(
                t.parse::<u64>()
                    .map_err(|_| WebhookError::MissingTimestamp)?,
            );
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MissingTimestamp)?;
    let expected = mac(secret, timestamp, body);
    for part in header.split(',') {
        let Some(hex_sig) = part.trim().strip_prefix("v1=") else {
            continue;
        };
        let mut sig = [0u8; SIGNATURE_HEX_LEN / 2];
        if hex_sig.len() != SIGNATURE_HEX_LEN || hex::decode_to_slice(hex_sig, &mut sig).is_err() {
            continue;
        }
        saw_signature = true;
        // `verify_slice` compares in constant time.
        if expected.clone().verify_slice(&sig).is_ok() {
            matched = true;
        }
    }
    if !saw_signature {
        return Err(WebhookError::MissingSignature);
    }
    if !matched {
        return Err(WebhookError::Mismatch);
    }
    if now_ms > timestamp && now_ms - timestamp > tolerance_ms {
        return Err(WebhookError::Expired {
            age_ms: now_ms - timestamp,
        });
    }
    if timestamp > now_ms && timestamp - now_ms > tolerance_ms {
        return Err(WebhookError::FromTheFuture {
            ahead_ms: timestamp - now_ms,
        });
    }
    Ok(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The primitive against RFC 4231 test case 2 (key "Jefe"); the header
    // format against the same primitive over "<t>.<body>".
    fn hex_of(bytes: &[u8]) -> alloc::string::String {
        let mut digits = alloc::vec![0u8; bytes.len() * 2];
        hex::encode_to_slice(bytes, &mut digits).unwrap();
        alloc::string::String::from_utf8(digits).unwrap()
    }

    #[test]
    fn primitive_matches_rfc_4231_case_2() {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex_of(&m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn header_signs_timestamp_dot_body() {
        let header = sign(b"key", 42, b"{}");
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"key").unwrap();
        m.update(b"42.{}");
        let want = alloc::format!("t=42,v1={}", hex_of(&m.finalize().into_bytes()));
        assert_eq!(header, want);
    }

    #[test]
    fn verifies_and_refuses() {
        let body = b"{\"md5\":\"00\"}";
        let header = sign(b"s", 1_000_000, body);
        assert_eq!(
            verify_webhook_signature(b"s", &header, body, 1_000_000),
            Ok(1_000_000)
        );
        assert_eq!(
            verify_webhook_signature(b"s", &header, b"{\"md5\":\"01\"}", 1_000_000),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify_webhook_signature(b"s", &header, body, 1_000_000 + DEFAULT_TOLERANCE_MS + 1),
            Err(WebhookError::Expired {
                age_ms: DEFAULT_TOLERANCE_MS + 1
            })
        );
        assert_eq!(
            verify_webhook_signature_with(b"s", &header, body, 0, 999_999),
            Err(WebhookError::FromTheFuture {
                ahead_ms: 1_000_000
            })
        );
        // A tampered timestamp invalidates the signature, not only the window.
        let shifted = header.replacen("t=1000000", "t=1000001", 1);
        assert_eq!(
            verify_webhook_signature(b"s", &shifted, body, 1_000_000),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn rotation_and_malformed_headers() {
        let body = b"x";
        let new = sign(b"new", 5, body);
        let old = sign(b"old", 5, body);
        let old_sig = old.split_once(",v1=").unwrap().1;
        let both = alloc::format!("{new},v1={old_sig},v2=whatever");
        assert_eq!(verify_webhook_signature(b"old", &both, body, 5), Ok(5));
        assert_eq!(verify_webhook_signature(b"new", &both, body, 5), Ok(5));
        assert_eq!(
            verify_webhook_signature(b"new", "v1=00", body, 5),
            Err(WebhookError::MissingTimestamp)
        );
        assert_eq!(
            verify_webhook_signature(b"new", "t=5", body, 5),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            verify_webhook_signature(b"new", "t=5,v1=zz", body, 5),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            verify_webhook_signature(b"new", "t=+5,v1=00", body, 5),
            Err(WebhookError::MissingTimestamp)
        );
        assert_eq!(
            verify_webhook_signature(b"new", "t=5,t=6,v1=00", body, 5),
            Err(WebhookError::MissingTimestamp)
        );
        assert_eq!(
            verify_webhook_signature(b"new", "t=99999999999999999999,v1=00", body, 5),
            Err(WebhookError::MissingTimestamp)
        );
    }
}
