//! Requests to Bakong's Open API, built as plain data.

use core::fmt;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{Error, ErrorCode, Field};
use crate::{Amount, Md5};

/// Production base URL of Bakong's Open API (National Bank of Cambodia).
pub const PRODUCTION_BASE_URL: &str = "https://api-bakong.nbc.gov.kh";

/// Test ("SIT") base URL of Bakong's Open API: same endpoints, test accounts.
pub const TEST_BASE_URL: &str = "https://sit-api-bakong.nbc.gov.kh";

/// The `User-Agent` every request carries: this crate's name and version.
pub const USER_AGENT: &str = concat!(
    "bakong-khqr-rust/",
    env!("CARGO_PKG_VERSION"),
    " (+https://crates.io/crates/bakong-khqr)"
);

/// The most MD5s one `check_transaction_by_md5_list` request carries (Bakong's
/// documented limit); [`Api::check_transaction_by_md5_list`] splits longer lists.
pub const MAX_MD5_LIST_LEN: usize = 50;

/// The most hashes one `check_transaction_by_hash_list` request carries. Bakong
/// documents the same limit as for the MD5 list (50);
/// [`Api::check_transaction_by_hash_list`] splits longer lists.
pub const MAX_HASH_LIST_LEN: usize = 50;

/// HTTP method of a request. Every Open API endpoint is a `POST`; `Get` is here
/// for relays and for the hosted service's own endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

impl Method {
    /// The method's name, `"GET"` or `"POST"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One HTTP request to send, as plain data: hand it to any HTTP client.
///
/// `Debug` writes the `Authorization` header as `Bearer <redacted>`; the token is
/// only in [`headers`](HttpRequest::headers).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method (always [`Method::Post`] for the Open API).
    pub method: Method,
    /// The absolute URL: the base URL given to [`Api::new`], its path prefix
    /// included, then the endpoint path, e.g. `.../v1/check_transaction_by_md5`.
    pub url: String,
    /// Header names and values, in the order to send them: `Content-Type`,
    /// `Accept`, `User-Agent` and, where a token is set, `Authorization`.
    pub headers: Vec<(&'static str, String)>,
    /// The body: UTF-8 JSON bytes.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The value of a header, by case-insensitive name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Headers<'a>(&'a [(&'static str, String)]);
        impl fmt::Debug for Headers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut list = f.debug_list();
                for (name, value) in self.0 {
                    if name.eq_ignore_ascii_case("authorization") {
                        list.entry(&(name, "Bearer <redacted>"));
                    } else {
                        list.entry(&(name, value));
                    }
                }
                list.finish()
            }
        }
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &Headers(&self.headers))
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// A Bakong Open API token (a JWT issued by Bakong, valid about 90 days).
///
/// `Debug` never shows it; [`expose`](Token::expose) does.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    ///
    /// # Errors
    /// [`RequestError::InvalidToken`] if `token` is empty or has a character
    /// outside visible ASCII (`!`–`~`): it goes into an HTTP header, where a
    /// space, newline or non-ASCII byte would break or inject headers.
    pub fn new(token: impl Into<String>) -> Result<Self, RequestError> {
        let token = token.into();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(RequestError::InvalidToken);
        }
        Ok(Token(token))
    }

    /// The token text, for your own storage.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token's expiry (its JWT `exp`), in milliseconds since the Unix epoch,
    /// read **without verifying the signature** — for deciding when to renew only.
    ///
    /// # Errors
    /// As [`jwt_expiration_ms`](crate::status::jwt_expiration_ms): not a JWT, bad
    /// base64url, payload not JSON, or no integer `exp`.
    pub fn expires_at_ms(&self) -> Result<u64, crate::status::JwtError> {
        crate::status::jwt_expiration_ms(&self.0)
    }

    /// Whether the token expires within `margin_ms` milliseconds of `now_ms`
    /// (or already has): time to call [`Api::renew_token`].
    ///
    /// # Errors
    /// As [`expires_at_ms`](Token::expires_at_ms).
    pub fn needs_renewal(
        &self,
        now_ms: u64,
        margin_ms: u64,
    ) -> Result<bool, crate::status::JwtError> {
        Ok(self.expires_at_ms()? <= now_ms.saturating_add(margin_ms))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<redacted, {} bytes>)", self.0.len())
    }
}

/// `Display` redacts too: a token interpolated into a log line or an error
/// message shows `<redacted token, N bytes>`, never its text. So `Display` is
/// deliberately *not* the inverse of [`FromStr`](core::str::FromStr); use
/// [`Token::expose`] where the text is really wanted (your own storage).
///
/// ```
/// use bakong_khqr::status::Token;
/// let token: Token = "eyJhbGciOiJIUzI1NiJ9.e30.c2ln".parse()?;
/// assert_eq!(token.to_string(), "<redacted token, 29 bytes>");
/// assert_eq!(token.expose(), "eyJhbGciOiJIUzI1NiJ9.e30.c2ln");
/// assert!("two words".parse::<Token>().is_err());
/// # Ok::<(), bakong_khqr::status::RequestError>(())
/// ```
impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted token, {} bytes>", self.0.len())
    }
}

/// As [`Token::new`].
impl core::str::FromStr for Token {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, RequestError> {
        Token::new(s)
    }
}

/// The calling app, sent with [`Api::generate_deeplink_by_qr`] so that Bakong's
/// short link returns the payer to it. All three fields must be non-empty (the
/// official SDK's rule, error 14).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    /// URL of the app's icon.
    #[serde(rename = "appIconUrl")]
    pub app_icon_url: String,
    /// The app's display name.
    #[serde(rename = "appName")]
    pub app_name: String,
    /// The deep link Bakong opens after payment.
    #[serde(rename = "appDeepLinkCallback")]
    pub app_deep_link_callback: String,
}

/// A request could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The base URL given to [`Api::new`] is unusable; the text says why.
    InvalidBaseUrl(&'static str),
    /// The endpoint needs `Authorization: Bearer …` and [`Api`] has no token.
    MissingToken,
    /// A token is empty or has characters not allowed in an HTTP header.
    InvalidToken,
    /// An argument is malformed: `what` names it, `why` says what was expected.
    InvalidArgument {
        /// The argument, e.g. `"hash"`.
        what: &'static str,
        /// What was expected, e.g. `"must be 64 hex digits"`.
        why: &'static str,
    },
    /// A KHQR rule refused the input, with the SDK's error code: the account ID
    /// of [`Api::check_bakong_account`] (1, 3, 6), the QR of
    /// [`Api::generate_deeplink_by_qr`] (any `verify` code), its source info (14).
    Khqr(Error),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::InvalidBaseUrl(why) => write!(f, "invalid base URL: {why}"),
            RequestError::MissingToken => {
                f.write_str("this endpoint needs a Bakong token and none is set")
            }
            RequestError::InvalidToken => {
                f.write_str("token is empty or has characters outside visible ASCII")
            }
            RequestError::InvalidArgument { what, why } => write!(f, "{what} {why}"),
            RequestError::Khqr(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<Error> for RequestError {
    fn from(e: Error) -> Self {
        RequestError::Khqr(e)
    }
}

/// Builds requests to Bakong's Open API: a base URL and, for the endpoints that
/// need one, a [`Token`].
///
/// Every builder returns a complete [`HttpRequest`] (`POST`, JSON body); none
/// sends anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    base_url: String,
    token: Option<Token>,
}

/// The endpoint paths, after the base URL.
mod path {
    pub const MD5: &str = "/v1/check_transaction_by_md5";
    pub const MD5_LIST: &str = "/v1/check_transaction_by_md5_list";
    pub const HASH: &str = "/v1/check_transaction_by_hash";
    pub const HASH_LIST: &str = "/v1/check_transaction_by_hash_list";
    pub const SHORT_HASH: &str = "/v1/check_transaction_by_short_hash";
    pub const INSTRUCTION_REF: &str = "/v1/check_transaction_by_instruction_ref";
    pub const EXTERNAL_REF: &str = "/v1/check_transaction_by_external_ref";
    pub const ACCOUNT: &str = "/v1/check_bakong_account";
    pub const DEEPLINK: &str = "/v1/generate_deeplink_by_qr";
    pub const RENEW_TOKEN: &str = "/v1/renew_token";
}

impl Api {
    /// An API client description for `base_url`: `http://` or `https://`, a host,
    /// and optionally a path prefix (a relay's, e.g. `https://relay.example/bakong`);
    /// a trailing `/` is dropped. Endpoint paths (`/v1/...`) are appended to it.
    ///
    /// # Errors
    /// [`RequestError::InvalidBaseUrl`] if the scheme is not `http`/`https`, the
    /// host is empty, or the URL has whitespace, control characters, a query
    /// (`?`) or a fragment (`#`).
    ///
    /// ```
    /// use bakong_khqr::status::{Api, PRODUCTION_BASE_URL};
    /// assert!(Api::new(PRODUCTION_BASE_URL).is_ok());
    /// assert!(Api::new("ftp://example.com").is_err());
    /// ```
    pub fn new(base_url: &str) -> Result<Self, RequestError> {
        let rest = base_url
            .strip_prefix("https://")
            .or_else(|| base_url.strip_prefix("http://"))
            .ok_or(RequestError::InvalidBaseUrl(
                "must start with https:// or http://",
            ))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(RequestError::InvalidBaseUrl("has no host"));
        }
        if base_url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(RequestError::InvalidBaseUrl(
                "has whitespace or control characters",
            ));
        }
        if base_url.contains(['?', '#']) {
            return Err(RequestError::InvalidBaseUrl(
                "has a query or fragment; give the base URL only",
            ));
        }
        Ok(Api {
            base_url: base_url.trim_end_matches('/').into(),
            token: None,
        })
    }

    /// The same, with a token for the endpoints that need `Authorization: Bearer`.
    #[must_use]
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Replaces the token (after [`renew_token`](Api::renew_token)).
    pub fn set_token(&mut self, token: Token) {
        self.token = Some(token);
    }

    /// The base URL, without a trailing `/`.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The token, if one is set.
    #[must_use]
    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    fn post(&self, path: &str, body: Vec<u8>, auth: bool) -> Result<HttpRequest, RequestError> {
        let mut headers: Vec<(&'static str, String)> = vec![
            ("Content-Type", "application/json".into()),
            ("Accept", "application/json".into()),
            ("User-Agent", USER_AGENT.into()),
        ];
        match &self.token {
            Some(t) => headers.push(("Authorization", format!("Bearer {}", t.0))),
            None if auth => return Err(RequestError::MissingToken),
            None => {}
        }
        Ok(HttpRequest {
            method: Method::Post,
            url: format!("{}{path}", self.base_url),
            headers,
            body,
        })
    }

    /// `POST /v1/check_transaction_by_md5` with `{"md5": "<32 hex>"}`: the payment
    /// of the KHQR whose MD5 this is ([`crate::Khqr::md5`]). Needs the token.
    /// Read the answer with [`parse_transaction`](crate::status::parse_transaction).
    ///
    /// # Errors
    /// [`RequestError::MissingToken`].
    pub fn check_transaction_by_md5(&self, md5: &Md5) -> Result<HttpRequest, RequestError> {
        #[derive(Serialize)]
        struct Body {
            md5: String,
        }
        self.post(
            path::MD5,
            to_json(&Body {
                md5: md5.to_string(),
            }),
            true,
        )
    }

    /// `POST /v1/check_transaction_by_md5_list` with a JSON array of MD5s, split
    /// into requests of at most [`MAX_MD5_LIST_LEN`] (50) MD5s each, in order; an
    /// empty list gives no request. Needs the token. Read each answer with
    /// [`parse_transaction_list`](crate::status::parse_transaction_list).
    ///
    /// # Errors
    /// [`RequestError::MissingToken`].
    pub fn check_transaction_by_md5_list(
        &self,
        md5s: &[Md5],
    ) -> Result<Vec<HttpRequest>, RequestError> {
        md5s.chunks(MAX_MD5_LIST_LEN)
            .map(|chunk| {
                let list: Vec<String> = chunk.iter().map(ToString::to_string).collect();
                self.post(path::MD5_LIST, to_json(&list), true)
            })
            .collect()
    }

    /// `POST /v1/check_transaction_by_hash` with `{"hash": "<64 hex>"}`: a
    /// transaction by its full hash. Needs the token.
    ///
    /// # Errors
    /// [`RequestError::InvalidArgument`] unless `hash` is 64 hex digits;
    /// [`RequestError::MissingToken`].
    pub fn check_transaction_by_hash(&self, hash: &str) -> Result<HttpRequest, RequestError> {
        #[derive(Serialize)]
        struct Body<'a> {
            hash: &'a str,
        }
        check_hex(hash, 64, "must be 64 hex digits")?;
        self.post(path::HASH, to_json(&Body { hash }), true)
    }

    /// `POST /v1/check_transaction_by_hash_list` with a JSON array of full
    /// transaction hashes (64 hex digits each, as [`Transaction::hash`] gives
    /// them), split into requests of at most [`MAX_HASH_LIST_LEN`] (50) hashes
    /// each, in order; an empty list gives no request. Needs the token. Read each
    /// answer with [`parse_transaction_hash_list`].
    ///
    /// Every hash is checked before any request is built, so a bad one in the
    /// 120th place does not leave two requests half sent.
    ///
    /// # Errors
    /// [`RequestError::InvalidArgument`] unless every hash is 64 hex digits;
    /// [`RequestError::MissingToken`].
    ///
    /// [`Transaction::hash`]: crate::status::Transaction::hash
    /// [`parse_transaction_hash_list`]: crate::status::parse_transaction_hash_list
    pub fn check_transaction_by_hash_list<S: AsRef<str>>(
        &self,
        hashes: &[S],
    ) -> Result<Vec<HttpRequest>, RequestError> {
        for hash in hashes {
            check_hex(hash.as_ref(), 64, "every hash must be 64 hex digits")?;
        }
        hashes
            .chunks(MAX_HASH_LIST_LEN)
            .map(|chunk| {
                let list: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
                self.post(path::HASH_LIST, to_json(&list), true)
            })
            .collect()
    }

    /// `POST /v1/check_transaction_by_short_hash` with
    /// `{"hash": "<8 hex>", "amount": <number>, "currency": "USD"|"KHR"}`; the
    /// amount is written as a JSON number from its decimal text (`1.50`), never
    /// through a float. Needs the token.
    ///
    /// # Errors
    /// [`RequestError::InvalidArgument`] unless `short_hash` is 8 hex digits;
    /// [`RequestError::MissingToken`].
    pub fn check_transaction_by_short_hash(
        &self,
        short_hash: &str,
        amount: &Amount,
    ) -> Result<HttpRequest, RequestError> {
        #[derive(Serialize)]
        struct Body<'a> {
            hash: &'a str,
            amount: &'a RawValue,
            currency: &'a str,
        }
        check_hex(short_hash, 8, "must be 8 hex digits")?;
        let raw = RawValue::from_string(amount.as_str().into()).map_err(|_| {
            RequestError::InvalidArgument {
                what: "amount",
                why: "is not a JSON number",
            }
        })?;
        let body = Body {
            hash: short_hash,
            amount: &raw,
            currency: amount.currency().alpha(),
        };
        self.post(path::SHORT_HASH, to_json(&body), true)
    }

    /// `POST /v1/check_transaction_by_instruction_ref` with `{"instructionRef"}`.
    /// Needs the token.
    ///
    /// # Errors
    /// [`RequestError::InvalidArgument`] if the reference is empty or has
    /// control characters; [`RequestError::MissingToken`].
    pub fn check_transaction_by_instruction_ref(
        &self,
        instruction_ref: &str,
    ) -> Result<HttpRequest, RequestError> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "instructionRef")]
            instruction_ref: &'a str,
        }
        check_text(instruction_ref, "instruction reference")?;
        self.post(
            path::INSTRUCTION_REF,
            to_json(&Body { instruction_ref }),
            true,
        )
    }

    /// `POST /v1/check_transaction_by_external_ref` with `{"externalRef"}`.
    /// Needs the token.
    ///
    /// # Errors
    /// [`RequestError::InvalidArgument`] if the reference is empty or has
    /// control characters; [`RequestError::MissingToken`].
    pub fn check_transaction_by_external_ref(
        &self,
        external_ref: &str,
    ) -> Result<HttpRequest, RequestError> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "externalRef")]
            external_ref: &'a str,
        }
        check_text(external_ref, "external reference")?;
        self.post(path::EXTERNAL_REF, to_json(&Body { external_ref }), true)
    }

    /// `POST /v1/check_bakong_account` with `{"accountId"}`: whether a Bakong
    /// account exists. Needs the token (per Bakong's document; the SDK sends none).
    /// Read the answer with [`parse_account`](crate::status::parse_account).
    ///
    /// # Errors
    /// The SDK's local checks first, as [`RequestError::Khqr`]: empty (1), over 32
    /// UTF-16 code units (6), not exactly one `@` (3); then
    /// [`RequestError::MissingToken`].
    pub fn check_bakong_account(&self, account_id: &str) -> Result<HttpRequest, RequestError> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "accountId")]
            account_id: &'a str,
        }
        if account_id.is_empty() {
            return Err(
                Error::missing(ErrorCode::BakongAccountIdRequired, Field::BakongAccountId).into(),
            );
        }
        let len = account_id.encode_utf16().count();
        if len > 32 {
            return Err(Error::too_long(
                ErrorCode::BakongAccountIdLengthInvalid,
                Field::BakongAccountId,
                len,
                32,
            )
            .into());
        }
        if account_id.matches('@').count() != 1 {
            return Err(Error::reason_with(
                ErrorCode::BakongAccountIdInvalid,
                Field::BakongAccountId,
                "must have exactly one '@'",
                account_id,
            )
            .into());
        }
        self.post(path::ACCOUNT, to_json(&Body { account_id }), true)
    }

    /// `POST /v1/generate_deeplink_by_qr` with `{"qr", "sourceInfo"}` (source info
    /// only when given — and, unlike the official SDK, actually sent). The token
    /// is sent when set; the endpoint does not require it. Read the answer with
    /// [`parse_deeplink`](crate::status::parse_deeplink).
    ///
    /// # Errors
    /// [`RequestError::Khqr`]: the QR fails [`crate::verify`] at `now_ms`
    /// (milliseconds since the Unix epoch; an expired QR is refused, code 46), or a
    /// source-info field is empty (14).
    pub fn generate_deeplink_by_qr(
        &self,
        qr: &str,
        source_info: Option<&SourceInfo>,
        now_ms: u64,
    ) -> Result<HttpRequest, RequestError> {
        #[derive(Serialize)]
        struct Body<'a> {
            qr: &'a str,
            #[serde(rename = "sourceInfo", skip_serializing_if = "Option::is_none")]
            source_info: Option<&'a SourceInfo>,
        }
        crate::verify(qr, now_ms)?;
        if let Some(s) = source_info {
            if [&s.app_icon_url, &s.app_name, &s.app_deep_link_callback]
                .iter()
                .any(|v| v.trim().is_empty())
            {
                return Err(Error::reason(
                    ErrorCode::InvalidDeepLinkSourceInfo,
                    Field::Request,
                    "needs appIconUrl, appName and appDeepLinkCallback, all non-empty",
                )
                .into());
            }
        }
        self.post(path::DEEPLINK, to_json(&Body { qr, source_info }), false)
    }

    /// `POST /v1/renew_token` with `{"email"}`: Bakong mails nothing back; the new
    /// token is in the answer (read it with
    /// [`parse_renew_token`](crate::status::parse_renew_token)). No token needed.
    ///
    /// # Errors
    /// [`RequestError::InvalidArgument`] unless `email` has exactly one `@` with
    /// text on both sides and no whitespace or control characters.
    pub fn renew_token(&self, email: &str) -> Result<HttpRequest, RequestError> {
        #[derive(Serialize)]
        struct Body<'a> {
            email: &'a str,
        }
        let ok = email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && !domain.is_empty() && !domain.contains('@')
        }) && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(RequestError::InvalidArgument {
                what: "email",
                why: "must be one address, name@domain",
            });
        }
        self.post(path::RENEW_TOKEN, to_json(&Body { email }), false)
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialising these plain structs of strings cannot fail; an empty body would
    // be refused by the API, never sent silently wrong.
    serde_json::to_vec(value).unwrap_or_default()
}

fn check_hex(s: &str, len: usize, why: &'static str) -> Result<(), RequestError> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(RequestError::InvalidArgument { what: "hash", why })
    }
}

fn check_text(s: &str, what: &'static str) -> Result<(), RequestError> {
    if s.trim().is_empty() || s.chars().any(char::is_control) {
        Err(RequestError::InvalidArgument {
            what,
            why: "must be non-empty text without control characters",
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn api() -> Api {
        Api::new("http://127.0.0.1:9/relay/")
            .unwrap()
            .with_token(Token::new("secret.jwt.token").unwrap())
    }

    fn body(r: &HttpRequest) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn base_url_keeps_prefix_and_drops_trailing_slash() {
        let r = api().check_transaction_by_md5(&Md5::of("x")).unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:9/relay/v1/check_transaction_by_md5"
        );
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.header("authorization"), Some("Bearer secret.jwt.token"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r
            .header("user-agent")
            .unwrap()
            .starts_with("bakong-khqr-rust/0."));
        assert_eq!(
            body(&r),
            serde_json::json!({"md5": Md5::of("x").to_string()})
        );
    }

    #[test]
    fn bad_base_urls() {
        for (url, why) in [
            (
                "api-bakong.nbc.gov.kh",
                "must start with https:// or http://",
            ),
            ("https://", "has no host"),
            ("https:///v1", "has no host"),
            ("https://a b", "has whitespace or control characters"),
            (
                "https://a/?x=1",
                "has a query or fragment; give the base URL only",
            ),
        ] {
            assert_eq!(
                Api::new(url),
                Err(RequestError::InvalidBaseUrl(why)),
                "{url}"
            );
        }
        assert_eq!(
            Api::new(PRODUCTION_BASE_URL).unwrap().base_url(),
            PRODUCTION_BASE_URL
        );
    }

    #[test]
    fn token_is_redacted_and_validated() {
        let t = Token::new("abc.def.ghi").unwrap();
        assert_eq!(format!("{t:?}"), "Token(<redacted, 11 bytes>)");
        assert_eq!(format!("{t}"), "<redacted token, 11 bytes>");
        assert_eq!("abc.def.ghi".parse::<Token>(), Ok(t.clone()));
        assert_eq!(
            format!("{:?}", api()),
            format!("{:?}", api()).replace("secret", "?")
        );
        let dbg = format!(
            "{:?}",
            api().check_transaction_by_md5(&Md5::of("x")).unwrap()
        );
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.contains("Bearer <redacted>"));
        assert_eq!(Token::new(""), Err(RequestError::InvalidToken));
        assert_eq!(
            Token::new("a\r\nX-Evil: 1"),
            Err(RequestError::InvalidToken)
        );
        assert_eq!(Token::new("a b"), Err(RequestError::InvalidToken));
    }

    #[test]
    fn token_required_where_documented() {
        let anon = Api::new(TEST_BASE_URL).unwrap();
        assert_eq!(
            anon.check_transaction_by_md5(&Md5::of("x")),
            Err(RequestError::MissingToken)
        );
        assert_eq!(
            anon.check_bakong_account("a@b"),
            Err(RequestError::MissingToken)
        );
        let r = anon.renew_token("me@example.com").unwrap();
        assert_eq!(r.url, "https://sit-api-bakong.nbc.gov.kh/v1/renew_token");
        assert_eq!(r.header("authorization"), None);
        assert_eq!(body(&r), serde_json::json!({"email": "me@example.com"}));
        assert!(anon.renew_token("no-at").is_err());
        assert!(anon.renew_token("a@b@c").is_err());
        assert!(anon.renew_token("a @b").is_err());
    }

    #[test]
    fn md5_list_is_chunked_by_50() {
        let md5s: Vec<Md5> = (0..121).map(|i| Md5::of(&i.to_string())).collect();
        let reqs = api().check_transaction_by_md5_list(&md5s).unwrap();
        assert_eq!(reqs.len(), 3);
        let lens: Vec<usize> = reqs
            .iter()
            .map(|r| body(r).as_array().unwrap().len())
            .collect();
        assert_eq!(lens, [50, 50, 21]);
        assert_eq!(body(&reqs[2])[20], md5s[120].to_string());
        assert_eq!(body(&reqs[1])[0], md5s[50].to_string());
        assert!(reqs[0].url.ends_with("/v1/check_transaction_by_md5_list"));
        assert!(api().check_transaction_by_md5_list(&[]).unwrap().is_empty());
    }

    #[test]
    fn hash_list_is_chunked_by_50_and_checked_first() {
        let hashes: Vec<String> = (0..121u32).map(|i| format!("{i:064x}")).collect();
        let reqs = api().check_transaction_by_hash_list(&hashes).unwrap();
        let lens: Vec<usize> = reqs
            .iter()
            .map(|r| body(r).as_array().unwrap().len())
            .collect();
        assert_eq!(lens, [50, 50, 21]);
        assert_eq!(body(&reqs[2])[20], hashes[120]);
        assert_eq!(body(&reqs[1])[0], hashes[50]);
        assert!(reqs[0].url.ends_with("/v1/check_transaction_by_hash_list"));
        assert_eq!(
            reqs[0].header("Authorization"),
            Some("Bearer secret.jwt.token")
        );
        let none: [&str; 0] = [];
        assert!(api()
            .check_transaction_by_hash_list(&none)
            .unwrap()
            .is_empty());
        // One bad hash, far down the list, refuses the whole call.
        let mut bad = hashes.clone();
        bad[120].push('0');
        assert!(matches!(
            api().check_transaction_by_hash_list(&bad),
            Err(RequestError::InvalidArgument { what: "hash", .. })
        ));
        bad[120] = "g".repeat(64);
        assert!(api().check_transaction_by_hash_list(&bad).is_err());
        let anonymous = Api::new("http://127.0.0.1:9/").unwrap();
        assert!(matches!(
            anonymous.check_transaction_by_hash_list(&hashes[..1]),
            Err(RequestError::MissingToken)
        ));
    }

    #[test]
    fn hash_endpoints() {
        let full = "a".repeat(64);
        let r = api().check_transaction_by_hash(&full).unwrap();
        assert_eq!(body(&r), serde_json::json!({ "hash": full }));
        assert!(api().check_transaction_by_hash("abc").is_err());
        let amount = Amount::parse("1.5", Currency::Usd).unwrap();
        let r = api()
            .check_transaction_by_short_hash("8a9b0c1d", &amount)
            .unwrap();
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            r#"{"hash":"8a9b0c1d","amount":1.50,"currency":"USD"}"#
        );
        let riel = Amount::parse("100", Currency::Khr).unwrap();
        let r = api()
            .check_transaction_by_short_hash("8a9b0c1d", &riel)
            .unwrap();
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            r#"{"hash":"8a9b0c1d","amount":100,"currency":"KHR"}"#
        );
        assert!(api()
            .check_transaction_by_short_hash("8a9b0c1g", &riel)
            .is_err());
        let r = api().check_transaction_by_instruction_ref("INS-1").unwrap();
        assert_eq!(body(&r), serde_json::json!({"instructionRef": "INS-1"}));
        let r = api().check_transaction_by_external_ref("EXT\"1").unwrap();
        assert_eq!(body(&r), serde_json::json!({"externalRef": "EXT\"1"}));
        assert!(api().check_transaction_by_external_ref(" ").is_err());
    }

    #[test]
    fn account_checks_use_sdk_codes() {
        let code = |id: &str| match api().check_bakong_account(id) {
            Err(RequestError::Khqr(e)) => e.code().number(),
            other => panic!("{other:?}"),
        };
        assert_eq!(code(""), 1);
        assert_eq!(code(&format!("{}@b", "a".repeat(31))), 6);
        assert_eq!(code("ab"), 3);
        assert_eq!(code("a@b@c"), 3);
        let r = api().check_bakong_account("jonhsmith@nbcq").unwrap();
        assert_eq!(body(&r), serde_json::json!({"accountId": "jonhsmith@nbcq"}));
    }

    #[test]
    fn deeplink_sends_source_info() {
        let now = 1_700_000_000_000;
        let qr = crate::Request::individual("jonhsmith@nbcq", "Jonh Smith")
            .currency(Currency::Usd)
            .amount("1")
            .expires_in_ms(60_000)
            .generate(now)
            .unwrap();
        let info = SourceInfo {
            app_icon_url: "https://shop.example/icon.png".into(),
            app_name: "Shop".into(),
            app_deep_link_callback: "shop://paid".into(),
        };
        let r = api()
            .generate_deeplink_by_qr(qr.as_str(), Some(&info), now)
            .unwrap();
        assert_eq!(
            body(&r),
            serde_json::json!({"qr": qr.as_str(), "sourceInfo": {
                "appIconUrl": "https://shop.example/icon.png",
                "appName": "Shop",
                "appDeepLinkCallback": "shop://paid"}})
        );
        let r = Api::new(TEST_BASE_URL)
            .unwrap()
            .generate_deeplink_by_qr(qr.as_str(), None, now)
            .unwrap();
        assert_eq!(body(&r), serde_json::json!({"qr": qr.as_str()}));
        let bad = SourceInfo {
            app_name: String::new(),
            ..info
        };
        match api().generate_deeplink_by_qr(qr.as_str(), Some(&bad), now) {
            Err(RequestError::Khqr(e)) => assert_eq!(e.code().number(), 14),
            other => panic!("{other:?}"),
        }
        match api().generate_deeplink_by_qr(qr.as_str(), None, now + 61_000) {
            Err(RequestError::Khqr(e)) => assert_eq!(e.code().number(), 46),
            other => panic!("{other:?}"),
        }
    }
}
