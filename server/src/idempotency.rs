//! `Idempotency-Key` on create (issue 18 item 5, issue 19 item 6): the
//! header the usual payment APIs take, so that a caller who retries a create
//! (a timeout, a lost answer) gets the first answer again instead of a second
//! QR for the same order.
//!
//! * The key is 1 to [`MAX_KEY_CHARS`] visible ASCII characters (`!` to `~`);
//!   anything else, or the header twice, is refused (400
//!   `invalid_idempotency_key`).
//! * Keys belong to a caller ([`scope`]): a merchant's API key when the
//!   request carries one, else the client's address (its rate-limit key: an
//!   IPv4 address or an IPv6 /64). Two callers' equal keys never meet.
//! * The store keeps, for [`TTL_MS`] (24 h), the [`fingerprint`] of the first
//!   request's parameters with the `tran` and MD5 it created, in the same
//!   atomic step that stores the QR ([`crate::store::Store::create_keyed`]):
//!   concurrent requests with one key create one QR, and the others answer
//!   with it.
//! * The same key with the same parameters answers the first create's body
//!   (the same `tran`, MD5 and URLs); with other parameters, 409
//!   `idempotency_key_reused`.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// The header.
pub const HEADER: &str = "idempotency-key";

/// Longest key, in characters (= bytes: the key is ASCII).
pub const MAX_KEY_CHARS: usize = 255;

/// How long a key is kept, in ms (24 h).
pub const TTL_MS: u64 = 24 * 3600 * 1000;

/// Why an `Idempotency-Key` header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The header appears more than once.
    Repeated,
    /// Empty, longer than [`MAX_KEY_CHARS`], or a character outside `!`..=`~`.
    Malformed,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Repeated => f.write_str("Idempotency-Key is given more than once"),
            KeyError::Malformed => write!(
                f,
                "Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// The request's key, if it has one.
///
/// # Errors
/// [`KeyError`] for a repeated or malformed header.
pub fn key_of(headers: &HeaderMap) -> Result<Option<&str>, KeyError> {
    let mut all = headers.get_all(HEADER).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(KeyError::Repeated);
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_CHARS || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(KeyError::Malformed);
    }
    value.to_str().map(Some).map_err(|_| KeyError::Malformed)
}

/// Whose keys these are: `m:<merchant id>` for a request made with a
/// merchant's API key, else `c:<client>` (the client's rate-limit key).
///
/// This is the seam for merchant keys: pass the merchant the request's
/// `Authorization: Bearer` key belongs to, once it is known.
#[must_use]
pub fn scope(client: &str, merchant: Option<&str>) -> String {
    match merchant {
        Some(m) => format!("m:{m}"),
        None => format!("c:{client}"),
    }
}

/// The parameters' fingerprint: SHA-256, as 64 lowercase hex digits, of the
/// parameters in a fixed order as a JSON array (`null` for an absent one), so
/// that no two different lists share one text.
#[must_use]
pub fn fingerprint(params: &[Option<&str>]) -> String {
    let text = serde_json::to_string(params).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    hex
}

/// A create's idempotency: the key as the store files it (scope and key) and
/// the parameters' fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    /// The caller's scope, a newline, then the key (a newline cannot occur
    /// in either, so two pairs never make one text).
    pub key: String,
    /// [`fingerprint`] of the request's parameters.
    pub fingerprint: String,
}

impl Idempotency {
    /// For `key` in `scope`, with these parameters' fingerprint.
    #[must_use]
    pub fn new(scope: &str, key: &str, fingerprint: String) -> Self {
        Idempotency {
            key: format!("{scope}\n{key}"),
            fingerprint,
        }
    }

    /// The stored value: the fingerprint, the `tran` and the MD5, separated
    /// by spaces.
    #[must_use]
    pub fn value(&self, tran: &str, md5: &str) -> String {
        format!("{} {tran} {md5}", self.fingerprint)
    }
}

/// What a stored value says: (fingerprint, `tran`, MD5); `None` if it is not
/// one [`Idempotency::value`] wrote.
#[must_use]
pub fn read_value(value: &str) -> Option<(&str, &str, &str)> {
    let mut parts = value.splitn(3, ' ');
    let (fp, tran, md5) = (parts.next()?, parts.next()?, parts.next()?);
    (fp.len() == 64 && !tran.is_empty() && md5.len() == 32).then_some((fp, tran, md5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert_eq!(key_of(&headers(&[])), Ok(None));
        assert_eq!(key_of(&headers(&[b"order-1"])), Ok(Some("order-1")));
        let longest = "k".repeat(255);
        assert_eq!(
            key_of(&headers(&[longest.as_bytes()])),
            Ok(Some(longest.as_str()))
        );
        for bad in [
            &b""[..],
            "k".repeat(256).as_bytes(),
            b"a b",
            b"a\tb",
            b"caf\xc3\xa9",
        ] {
            assert_eq!(
                key_of(&headers(&[bad])),
                Err(KeyError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(key_of(&headers(&[b"a", b"a"])), Err(KeyError::Repeated));
    }

    #[test]
    fn fingerprints_tell_lists_apart() {
        let a = fingerprint(&[Some("1.25"), Some("x"), None]);
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(a, fingerprint(&[Some("1.25"), Some("x"), None]));
        assert_ne!(a, fingerprint(&[Some("1.25"), Some("x"), Some("")]));
        assert_ne!(a, fingerprint(&[Some("1.25x"), Some(""), None]));
        assert_ne!(
            fingerprint(&[Some("a\",\"b")]),
            fingerprint(&[Some("a"), Some("b")])
        );
        // SHA-256 of `[]`.
        assert_eq!(
            fingerprint(&[]),
            "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
        );
    }

    #[test]
    fn scopes_and_values() {
        assert_eq!(scope("10.0.0.1", None), "c:10.0.0.1");
        assert_eq!(scope("10.0.0.1", Some("shop")), "m:shop");
        let i = Idempotency::new("c:10.0.0.1", "k", "f".repeat(64));
        assert_eq!(i.key, "c:10.0.0.1\nk");
        let v = i.value("T0000001", &"a".repeat(32));
        assert_eq!(
            read_value(&v),
            Some((&*"f".repeat(64), "T0000001", &*"a".repeat(32)))
        );
        assert_eq!(read_value("short T1 md5"), None);
    }
}
