//! The MD5 of a payload, and the short transaction id derived from it.
//!
//! Bakong's Open API finds a payment by the MD5 of the exact KHQR string that was
//! paid (`check_transaction_by_md5`): the lower-case hex MD5 of the string's UTF-8
//! bytes, CRC included — what the official SDK returns as `md5`.

use core::fmt;
use md5::{Digest, Md5 as Md5Hasher};

/// An MD5 digest of a KHQR string; `Display` writes 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Md5([u8; 16]);

impl Md5 {
    /// The MD5 of `payload`'s UTF-8 bytes.
    ///
    /// ```
    /// use bakong_khqr::Md5;
    /// assert_eq!(Md5::of("abc").to_string(), "900150983cd24fb0d6963f7d28e17f72");
    /// ```
    #[must_use]
    pub fn of(payload: &str) -> Self {
        Md5(Md5Hasher::digest(payload.as_bytes()).into())
    }

    /// The 16 digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The digest as 32 lower-case ASCII hex digits, without allocating.
    #[must_use]
    pub fn to_hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // 16 bytes always fill 32 hex digits exactly: the length check cannot fail.
        let filled = hex::encode_to_slice(self.0, &mut out);
        debug_assert!(filled.is_ok(), "16 bytes are 32 hex digits");
        out
    }

    /// Parses 32 hex digits (either case).
    ///
    /// # Errors
    /// `None` unless `s` is exactly 32 ASCII hex digits. [`str::parse`] does the
    /// same with an error ([`ParseIdError`]).
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 16];
        // `decode_to_slice` refuses any length other than 32 and any non-hex digit.
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Md5(out))
    }

    /// The short transaction id: 8 characters of base62 (`0-9A-Za-z`) derived
    /// from the digest, the `tran` of the hosted service this crate replaces.
    ///
    /// Rule: the first 8 digest bytes read as a big-endian `u64`, written as its
    /// 8 least significant base-62 digits, most significant first. Deterministic;
    /// 62⁸ ≈ 2.2 × 10¹⁴ values: among 1 000 QRs the chance that any two share an
    /// id is about 2 × 10⁻⁹. Keep the MD5 as the key Bakong knows.
    ///
    /// ```
    /// use bakong_khqr::Md5;
    /// let t = Md5::of("abc").tran_id();
    /// assert_eq!(t.len(), 8);
    /// assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
    /// ```
    #[must_use]
    pub fn tran_id(&self) -> TranId {
        const ALPHABET: &[u8; 62] =
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        let mut n = u64::from_be_bytes(first);
        let mut out = [0u8; 8];
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(n % 62) as usize];
            n /= 62;
        }
        TranId(out)
    }
}

impl fmt::Display for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        f.write_str(core::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

/// Parses 32 hex digits, either case; `Display` writes them back in lower case.
///
/// ```
/// use bakong_khqr::Md5;
/// let md5: Md5 = "900150983CD24FB0D6963F7D28E17F72".parse()?;
/// assert_eq!(md5, Md5::of("abc"));
/// assert!("900150983cd24fb0".parse::<Md5>().is_err());
/// # Ok::<(), bakong_khqr::ParseIdError>(())
/// ```
impl core::str::FromStr for Md5 {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        Md5::from_hex(s).ok_or(ParseIdError {
            expected: "an MD5: 32 hex digits",
        })
    }
}

impl fmt::Debug for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5({self})")
    }
}

/// An 8-character base62 transaction id; see [`Md5::tran_id`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TranId([u8; 8]);

impl TranId {
    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Always ASCII alphanumerics.
        let text = core::str::from_utf8(&self.0);
        debug_assert!(text.is_ok(), "a transaction id is base62 digits");
        text.unwrap_or_default()
    }
}

impl core::ops::Deref for TranId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for TranId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a transaction id: exactly 8 ASCII letters or digits (the base62
/// alphabet of [`Md5::tran_id`]). Any such text parses; whether it belongs to a
/// given MD5 is for [`Md5::tran_id`] to say.
///
/// ```
/// use bakong_khqr::{Md5, TranId};
/// let id: TranId = "kCjDdYtX".parse()?;
/// assert_eq!(id.to_string(), "kCjDdYtX");
/// assert!("kCjDdYt".parse::<TranId>().is_err());
/// assert!("kCjDdYt!".parse::<TranId>().is_err());
/// # Ok::<(), bakong_khqr::ParseIdError>(())
/// ```
impl core::str::FromStr for TranId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let bytes: [u8; 8] = s.as_bytes().try_into().map_err(|_| ParseIdError {
            expected: "a transaction id: 8 ASCII letters or digits",
        })?;
        if bytes.iter().all(u8::is_ascii_alphanumeric) {
            Ok(TranId(bytes))
        } else {
            Err(ParseIdError {
                expected: "a transaction id: 8 ASCII letters or digits",
            })
        }
    }
}

/// Text that is not an [`Md5`] (32 hex digits) or a [`TranId`] (8 ASCII
/// letters or digits); `Display` says which was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseIdError {
    expected: &'static str,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}", self.expected)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseIdError {}

impl fmt::Debug for TranId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TranId({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_tran() {
        let m = Md5::of("");
        assert_eq!(m.to_string(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(Md5::from_hex("D41D8CD98F00B204E9800998ECF8427E"), Some(m));
        assert_eq!(Md5::from_hex("d41d8cd98f00b204e9800998ecf8427"), None);
        assert_eq!(Md5::from_hex("g41d8cd98f00b204e9800998ecf8427e"), None);
        // d41d8cd98f00b204 = 15284527576400310788; its last 8 base-62 digits:
        let mut n: u64 = 0xd41d_8cd9_8f00_b204;
        let mut digits = Vec::new();
        for _ in 0..8 {
            digits.push(n % 62);
            n /= 62;
        }
        let alpha = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let want: String = digits
            .iter()
            .rev()
            .map(|&d| alpha[d as usize] as char)
            .collect();
        assert_eq!(m.tran_id().as_str(), want);
        assert_eq!(m.tran_id().as_str().parse::<TranId>(), Ok(m.tran_id()));
    }

    #[test]
    fn hex_edges() {
        let m = Md5::of("abc");
        assert_eq!(m.to_hex(), *b"900150983cd24fb0d6963f7d28e17f72");
        assert_eq!("900150983cd24fb0d6963f7d28e17f72".parse::<Md5>(), Ok(m));
        for bad in [
            "",
            "900150983cd24fb0d6963f7d28e17f7",
            "900150983cd24fb0d6963f7d28e17f722",
            " 900150983cd24fb0d6963f7d28e17f7",
            "900150983cd24fb0d6963f7d28e17f7\u{e9}",
        ] {
            assert_eq!(Md5::from_hex(bad), None, "{bad:?}");
            assert!(bad
                .parse::<Md5>()
                .unwrap_err()
                .to_string()
                .contains("32 hex digits"));
        }
    }
}
