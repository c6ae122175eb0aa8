//! Reading a JWT's expiry without verifying it (RFC 7519 §4.1.4, RFC 7515 §7.1).

use core::fmt;

/// Why a token's expiry could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three `.`-separated segments (header, payload, signature).
    NotAJwt,
    /// The payload segment is not base64url (RFC 4648 §5).
    Base64,
    /// The decoded payload is not a JSON object.
    Json,
    /// The payload has no `exp`, or it is not a whole number of seconds ≥ 0.
    NoExpiry,
    /// `exp` in milliseconds does not fit in a `u64`.
    Overflow,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JwtError::NotAJwt => "token is not a JWT (three dot-separated segments)",
            JwtError::Base64 => "JWT payload is not base64url",
            JwtError::Json => "JWT payload is not a JSON object",
            JwtError::NoExpiry => "JWT has no whole-second exp claim",
            JwtError::Overflow => "JWT exp is too large",
        })
    }
}

impl std::error::Error for JwtError {}

/// The expiry of a JWT — its `exp` claim (seconds since the Unix epoch) in
/// **milliseconds** since the Unix epoch — read from the payload segment
/// **without checking the signature**: use it only to decide when to renew.
///
/// Base64url with or without `=` padding is accepted.
///
/// # Errors
/// [`JwtError::NotAJwt`] unless there are exactly three segments;
/// [`JwtError::Base64`] for a bad payload segment; [`JwtError::Json`] if it does
/// not decode to a JSON object; [`JwtError::NoExpiry`] without a whole,
/// non-negative `exp`; [`JwtError::Overflow`] past `u64::MAX` ms.
///
/// ```
/// use bakong_khqr::status::jwt_expiration_ms;
/// // Payload {"exp":1700000000}
/// let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln";
/// assert_eq!(jwt_expiration_ms(jwt), Ok(1_700_000_000_000));
/// ```
pub fn jwt_expiration_ms(token: &str) -> Result<u64, JwtError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotAJwt);
    };
    let bytes = base64url_decode(payload)?;
    // A map, not a derived struct: serde would also accept a JSON array.
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Json)?;
    let exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_u64)
        .ok_or(JwtError::NoExpiry)?;
    exp.checked_mul(1000).ok_or(JwtError::Overflow)
}

/// Decodes base64url (`A–Z a–z 0–9 - _`, RFC 4648 §5), `=` padding optional,
/// with the `base64` crate. Non-canonical trailing bits are refused.
fn base64url_decode(s: &str) -> Result<Vec<u8>, JwtError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| JwtError::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn jwt(payload: &str) -> String {
        format!("eyJhbGciOiJIUzI1NiJ9.{}.sig", encode(payload.as_bytes()))
    }

    #[test]
    fn decoder_round_trips_every_length() {
        let data: Vec<u8> = (0..=255).collect();
        for len in 0..40 {
            assert_eq!(
                base64url_decode(&encode(&data[..len])).unwrap(),
                &data[..len]
            );
        }
        assert_eq!(base64url_decode("_-8").unwrap(), [0xff, 0xef]);
        assert_eq!(base64url_decode("QQ==").unwrap(), b"A");
        assert_eq!(base64url_decode("QUJD+"), Err(JwtError::Base64));
        assert_eq!(base64url_decode("QUJDR"), Err(JwtError::Base64));
        // Padded input, and the RFC 4648 test vectors.
        assert_eq!(base64url_decode("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(base64url_decode("Zm9vYmE").unwrap(), b"fooba");
        assert_eq!(base64url_decode("Zm9vYmFy").unwrap(), b"foobar");
    }

    #[test]
    fn expiry() {
        assert_eq!(
            jwt_expiration_ms(&jwt(r#"{"sub":"x","exp":1767225600}"#)),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            jwt_expiration_ms(&jwt(r#"{"sub":"x"}"#)),
            Err(JwtError::NoExpiry)
        );
        assert_eq!(
            jwt_expiration_ms(&jwt(r#"{"exp":"soon"}"#)),
            Err(JwtError::NoExpiry)
        );
        assert_eq!(
            jwt_expiration_ms(&jwt(r#"{"exp":-1}"#)),
            Err(JwtError::NoExpiry)
        );
        assert_eq!(
            jwt_expiration_ms(&jwt(r#"{"exp":1.5}"#)),
            Err(JwtError::NoExpiry)
        );
        assert_eq!(jwt_expiration_ms(&jwt("[1]")), Err(JwtError::Json));
        assert_eq!(
            jwt_expiration_ms(&jwt(r#"{"exp":18446744073709551615}"#)),
            Err(JwtError::Overflow)
        );
        assert_eq!(jwt_expiration_ms("a.b"), Err(JwtError::NotAJwt));
        assert_eq!(jwt_expiration_ms("a.b.c.d"), Err(JwtError::NotAJwt));
        assert_eq!(jwt_expiration_ms("a.!!.c"), Err(JwtError::Base64));
        assert_eq!(jwt_expiration_ms(""), Err(JwtError::NotAJwt));
    }

    #[test]
    fn token_renewal_window() {
        let t = crate::status::Token::new(jwt(r#"{"exp":1000}"#)).unwrap();
        assert_eq!(t.expires_at_ms(), Ok(1_000_000));
        assert_eq!(t.needs_renewal(900_000, 50_000), Ok(false));
        assert_eq!(t.needs_renewal(950_000, 50_000), Ok(true));
        assert_eq!(t.needs_renewal(2_000_000, 0), Ok(true));
    }
}
