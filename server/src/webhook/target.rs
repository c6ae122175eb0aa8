//! Which `callback_url`s a create may give (checked at create time; the
//! resolved addresses are checked again at delivery, see `resolves_allowed`).

use std::net::IpAddr;

/// Why a `callback_url` was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct CallbackError(pub &'static str);

/// Checks a `callback_url` given at create time: `https` only (or `http` when
/// `allow_http`), no user info, and its host not a loopback, private,
/// link-local, unspecified, multicast or documentation address, nor
/// `localhost`, unless `allow_private`. Host names are checked again when
/// resolved, at delivery.
///
/// # Errors
/// [`CallbackError`] naming the rule broken.
pub fn check_callback_url(
    text: &str,
    allow_http: bool,
    allow_private: bool,
) -> Result<url::Url, CallbackError> {
    let url = url::Url::parse(text).map_err(|_| CallbackError("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(CallbackError("must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CallbackError("must not carry user info"));
    }
    let private = match url.host() {
        None => return Err(CallbackError("has no host")),
        Some(url::Host::Ipv4(v4)) => is_private(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => is_private(IpAddr::V6(v6)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    };
    if private && !allow_private {
        return Err(CallbackError(
            "points at a private, loopback or link-local address",
        ));
    }
    Ok(url)
}

/// Loopback, private (RFC 1918, ULA), link-local, CGNAT, unspecified,
/// multicast, broadcast or documentation addresses.
#[must_use]
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_rules() {
        assert!(check_callback_url("https://shop.example/hook", false, false).is_ok());
        for bad in [
            "http://shop.example/hook",
            "https://127.0.0.1/hook",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://169.254.169.254/latest",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://localhost/",
            "https://user:pw@shop.example/",
            "ftp://shop.example/",
            "not a url",
        ] {
            assert!(check_callback_url(bad, false, false).is_err(), "{bad}");
        }
        assert!(check_callback_url("http://127.0.0.1:9/h", true, true).is_ok());
        assert!(check_callback_url("http://127.0.0.1:9/h", false, true).is_err());
    }
}
