//! Answers from Bakong's Open API, read into typed outcomes.
//!
//! Every Open API answer is an envelope
//! `{"responseCode": 0|1, "responseMessage": "…", "errorCode": null|n, "data": …}`
//! sent with HTTP 200; a proxy, gateway or geo-block in front of it may answer
//! 401, 403 (often an HTML page), 429 or 5xx instead, and those bodies are never
//! read as JSON.

use core::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::status::Token;
use crate::{Amount, Currency};

/// One HTTP answer, as received: status code, headers, body bytes.
///
/// Plain data with public fields (not `#[non_exhaustive]`): these three are all
/// an HTTP/1.1 answer has for the parsers, and a transport may build one with a
/// struct literal. From an `http::Response<Vec<u8>>`: `HttpResponse::from`
/// (feature `http`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code, e.g. 200.
    pub status: u16,
    /// Header names and values as received (names in any case).
    pub headers: Vec<(String, String)>,
    /// The body bytes (JSON from the API itself; anything from a proxy).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// An answer with no headers.
    #[must_use]
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// The same answer with one more header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of a header, by case-insensitive name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A transaction Bakong found: the payment of a KHQR.
///
/// Money is kept as text: [`amount`](Transaction::amount) is the decimal text of
/// the JSON number Bakong sent (`1.5`, `100`; `1.0E7` as `10000000`), never
/// parsed through a float; [`minor_units`](Transaction::minor_units) converts
/// it exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transaction {
    /// The transaction hash (64 hex digits).
    pub hash: String,
    /// The payer's Bakong account ID (`fromAccountId`).
    pub from_account_id: Option<String>,
    /// The payee's Bakong account ID (`toAccountId`).
    pub to_account_id: Option<String>,
    /// ISO 4217 letters as Bakong sent them, e.g. `"USD"`.
    pub currency: String,
    /// The amount's decimal text, e.g. `"1.5"`: digits, optionally `.` and digits.
    /// A JSON number's exact value without redundant zeros (`1.50` → `"1.5"`,
    /// `1.0E7` → `"10000000"`); a JSON string as sent (`"1.50"`).
    pub amount: String,
    /// The payer's note, if any.
    pub description: Option<String>,
    /// When the transaction was created, in ms since the Unix epoch (`createdDateMs`).
    pub created_ms: Option<u64>,
    /// When it was acknowledged, in ms since the Unix epoch (`acknowledgedDateMs`).
    pub acknowledged_ms: Option<u64>,
    /// The paying bank's reference (`externalRef`), if sent.
    pub external_ref: Option<String>,
    /// The instruction reference (`instructionRef`), if sent.
    pub instruction_ref: Option<String>,
}

impl Transaction {
    /// The currency, if it is one KHQR carries (`USD`, `KHR`, `840`, `116`).
    #[must_use]
    pub fn currency(&self) -> Option<Currency> {
        Currency::parse(&self.currency).ok()
    }

    /// The amount in minor units of its currency (cents for USD, riel for KHR),
    /// exactly: `None` for an unknown currency, more decimals than the currency
    /// has (other than trailing zeros: `1.500` USD is 150), or overflow.
    #[must_use]
    pub fn minor_units(&self) -> Option<u64> {
        minor_units(&self.amount, self.currency()?)
    }

    /// Whether this payment settles the KHQR `payload`: same currency (tag 53)
    /// and, for a QR with an amount (tag 54), exactly that amount in minor units.
    /// A static QR (no amount) accepts any amount in its currency. `false` when
    /// the payload does not decode. Bakong finds the transaction by the QR's MD5;
    /// this is the caller's second look before handing over the goods.
    ///
    /// ```
    /// # use bakong_khqr::status::{parse_transaction, HttpResponse, TransactionStatus};
    /// let qr = "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh9934001317000000000000113170000006000063044947";
    /// let body = br#"{"responseCode":0,"responseMessage":"Success","errorCode":null,"data":{"hash":"h","currency":"USD","amount":1.5}}"#;
    /// let TransactionStatus::Paid(tx) = parse_transaction(&HttpResponse::new(200, body.to_vec()))? else { panic!() };
    /// assert!(tx.pays(qr));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn pays(&self, payload: &str) -> bool {
        let Ok(decoded) = crate::Decoded::parse(payload) else {
            return false;
        };
        let Some(currency) = decoded.currency() else {
            return false;
        };
        if self.currency() != Some(currency) {
            return false;
        }
        match decoded.transaction_amount() {
            None => true,
            Some(text) => {
                minor_units(text, currency).is_some_and(|want| self.minor_units() == Some(want))
            }
        }
    }
}

/// Converts decimal text to minor units of `currency`, exactly (see
/// [`Transaction::minor_units`]).
pub(crate) fn minor_units(text: &str, currency: Currency) -> Option<u64> {
    crate::Amount::read_minor_units(text, currency).ok()
}

/// What Bakong says about one transaction lookup.
///
/// New outcomes may be added (Bakong's other clients already see states such as
/// "scanned"): match with a `_` arm.
// `Paid` is larger than the rest; a status comes once per network call.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionStatus {
    /// Paid (`responseCode` 0), with the transaction. From
    /// [`check_khqr`](crate::status::check_khqr): paid *and* the amount and
    /// currency are the QR's ([`Transaction::pays`]).
    Paid(Transaction),
    /// Bakong reports a payment under this QR's MD5, but its amount or currency
    /// is not the QR's (tags 53 and 54, compared exactly in minor units by
    /// [`Transaction::pays`]): do not hand over the goods. Only the calls that
    /// know the QR give it ([`check_khqr`](crate::status::check_khqr),
    /// [`check_khqr_async`](crate::status::check_khqr_async)); the `parse_*`
    /// functions and [`check_md5`](crate::status::check_md5) cannot compare and
    /// report `Paid`.
    AmountMismatch(Transaction),
    /// Not found yet (`errorCode` 1): the normal state of a QR nobody has paid.
    Pending,
    /// A static KHQR (no amount) cannot be looked up by MD5 (`errorCode` 2).
    StaticQrUnsupported,
    /// The transaction failed (`errorCode` 3).
    Failed,
}

/// One item of a `check_transaction_by_md5_list` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListEntry {
    /// The MD5 the item is about, as Bakong echoed it.
    pub md5: String,
    /// Its status: `SUCCESS` with data → [`TransactionStatus::Paid`], `NOT_FOUND`
    /// → `Pending`, `FAILED` → `Failed`.
    pub status: TransactionStatus,
}

/// One item of a `check_transaction_by_hash_list` answer
/// ([`parse_transaction_hash_list`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HashListEntry {
    /// The transaction hash the item is about (64 hex digits), as Bakong echoed it.
    pub hash: String,
    /// Its status, read as in [`ListEntry::status`].
    pub status: TransactionStatus,
}

/// Whether a Bakong account exists ([`parse_account`]). May gain outcomes:
/// match with a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccountStatus {
    /// `responseCode` 0: the account exists.
    Exists,
    /// `errorCode` 11: no such account.
    NotFound,
    /// `errorCode` 12: the account ID is not valid.
    Invalid,
}

/// The Open API's error codes (`errorCode`), from its public document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiErrorCode {
    /// 1: transaction not found (for a status check: not paid yet).
    TransactionNotFound = 1,
    /// 2: static KHQR not supported (no amount, cannot be looked up).
    StaticQrNotSupported = 2,
    /// 3: transaction failed.
    TransactionFailed = 3,
    /// 4: error requesting a deep link from the provider.
    DeepLinkProviderError = 4,
    /// 5: required fields missing from the request.
    MissingRequiredFields = 5,
    /// 6: unauthorized: the token is missing, invalid or expired.
    Unauthorized = 6,
    /// 7: the email server is down (renew token).
    EmailServerDown = 7,
    /// 8: the email is already registered.
    EmailAlreadyRegistered = 8,
    /// 9: Bakong cannot connect to a server behind it.
    CannotConnect = 9,
    /// 10: the email is not registered yet (renew token).
    NotRegistered = 10,
    /// 11: account ID not found.
    AccountNotFound = 11,
    /// 12: account ID invalid.
    AccountInvalid = 12,
}

impl ApiErrorCode {
    /// The code for a number, if the document lists it.
    #[must_use]
    pub const fn from_number(n: i64) -> Option<Self> {
        Some(match n {
            1 => ApiErrorCode::TransactionNotFound,
            2 => ApiErrorCode::StaticQrNotSupported,
            3 => ApiErrorCode::TransactionFailed,
            4 => ApiErrorCode::DeepLinkProviderError,
            5 => ApiErrorCode::MissingRequiredFields,
            6 => ApiErrorCode::Unauthorized,
            7 => ApiErrorCode::EmailServerDown,
            8 => ApiErrorCode::EmailAlreadyRegistered,
            9 => ApiErrorCode::CannotConnect,
            10 => ApiErrorCode::NotRegistered,
            11 => ApiErrorCode::AccountNotFound,
            12 => ApiErrorCode::AccountInvalid,
            _ => return None,
        })
    }

    /// The number, 1–12.
    #[must_use]
    pub const fn number(self) -> u8 {
        self as u8
    }
}

/// An envelope with `responseCode` 1 whose `errorCode` is not an outcome of the
/// endpoint that was called.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiError {
    /// `errorCode` as sent (`None` for `null` or absent).
    pub error_code: Option<i64>,
    /// `responseMessage` as sent (empty if absent).
    pub message: String,
}

impl ApiError {
    /// The documented code, if it is one.
    #[must_use]
    pub fn code(&self) -> Option<ApiErrorCode> {
        self.error_code.and_then(ApiErrorCode::from_number)
    }
}

/// A `Retry-After` header value (RFC 9110 §10.2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfter {
    /// Wait this many seconds.
    Seconds(u64),
    /// Wait until this HTTP date (RFC 9110 §5.6.7, checked to be one; kept as
    /// the text received: the library reads no clock). A value that is neither
    /// seconds nor a date is read as no `Retry-After` at all.
    Date(String),
}

/// An answer that is not an outcome of the call: whose fault, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// HTTP 401, or `errorCode` 6: the token is missing, invalid or expired;
    /// renew it ([`crate::status::Api::renew_token`]). `status` is the HTTP status.
    Unauthorized {
        /// The HTTP status (401, or 200 with `errorCode` 6).
        status: u16,
    },
    /// HTTP 403: refused before the API — typically a geo-block's HTML page
    /// (Bakong's API answers only some countries' addresses). The body is not read.
    Forbidden,
    /// HTTP 429: too many requests; wait `retry_after` if given.
    RateLimited {
        /// The `Retry-After` header, if present and readable.
        retry_after: Option<RetryAfter>,
    },
    /// HTTP 5xx: the API or a gateway failed; retrying later may work.
    ServerError {
        /// The HTTP status, 500–599.
        status: u16,
    },
    /// Any other non-2xx status without a readable envelope.
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
    },
    /// The body is not the envelope this endpoint answers with: empty, not JSON,
    /// truncated, or missing a field. `reason` says what is wrong.
    Malformed {
        /// What is wrong, e.g. `"empty body"`.
        reason: String,
    },
    /// The API refused the call with another `errorCode` (see [`ApiErrorCode`]).
    Api(ApiError),
}

impl ResponseError {
    fn malformed(reason: impl fmt::Display) -> Self {
        ResponseError::Malformed {
            reason: reason.to_string(),
        }
    }

    /// Whether retrying the same request later may succeed (429 and 5xx).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ResponseError::RateLimited { .. } | ResponseError::ServerError { .. }
        )
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Unauthorized { status: 401 } => {
                f.write_str("Bakong token missing, invalid or expired (HTTP 401); renew it")
            }
            // Bakong's envelope said errorCode 6 under another HTTP status.
            ResponseError::Unauthorized { status } => write!(
                f,
                "Bakong token missing, invalid or expired (errorCode 6, HTTP {status}); renew it"
            ),
            ResponseError::Forbidden => f.write_str(
                "HTTP 403 forbidden before the API (often a geo-block: Bakong serves only some countries)",
            ),
            ResponseError::RateLimited { retry_after: None } => f.write_str("HTTP 429 rate limited"),
            ResponseError::RateLimited {
                retry_after: Some(RetryAfter::Seconds(s)),
            } => write!(f, "HTTP 429 rate limited; retry after {s} s"),
            ResponseError::RateLimited {
                retry_after: Some(RetryAfter::Date(d)),
            } => write!(f, "HTTP 429 rate limited; retry after {d}"),
            ResponseError::ServerError { status } => write!(f, "Bakong server error (HTTP {status})"),
            ResponseError::UnexpectedStatus { status } => write!(f, "unexpected HTTP status {status}"),
            ResponseError::Malformed { reason } => write!(f, "malformed answer: {reason}"),
            ResponseError::Api(e) => match e.error_code {
                Some(code) => write!(f, "Bakong error {code}: {}", e.message),
                None => write!(f, "Bakong error: {}", e.message),
            },
        }
    }
}

impl std::error::Error for ResponseError {}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "responseCode")]
    response_code: i64,
    #[serde(rename = "responseMessage", default)]
    response_message: Option<String>,
    #[serde(rename = "errorCode", default)]
    error_code: Option<i64>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

impl Envelope<'_> {
    fn api_error(&self) -> ResponseError {
        ResponseError::Api(ApiError {
            error_code: self.error_code,
            message: self.response_message.clone().unwrap_or_default(),
        })
    }

    /// `data` when it is present and not `null`.
    fn data(&self) -> Option<&RawValue> {
        self.data.filter(|d| d.get() != "null")
    }
}

/// The checks every parser shares: HTTP status, then the envelope, then
/// `errorCode` 6.
fn envelope(resp: &HttpResponse) -> Result<Envelope<'_>, ResponseError> {
    match resp.status {
        401 => return Err(ResponseError::Unauthorized { status: 401 }),
        403 => return Err(ResponseError::Forbidden),
        429 => {
            return Err(ResponseError::RateLimited {
                retry_after: resp.header("retry-after").and_then(retry_after),
            })
        }
        500..=599 => {
            return Err(ResponseError::ServerError {
                status: resp.status,
            })
        }
        // 1xx and 3xx are never final answers of the API.
        100..=199 | 300..=399 => {
            return Err(ResponseError::UnexpectedStatus {
                status: resp.status,
            })
        }
        _ => {}
    }
    let success = (200..300).contains(&resp.status);
    let parsed = if resp.body.iter().all(u8::is_ascii_whitespace) {
        Err(ResponseError::malformed("empty body"))
    } else if resp.body.trim_ascii_start().first() != Some(&b'{') {
        // serde would read a JSON array into the envelope struct field by field.
        Err(ResponseError::malformed(
            "not the API's JSON envelope: not a JSON object",
        ))
    } else {
        serde_json::from_slice::<Envelope<'_>>(&resp.body).map_err(|e| {
            if e.is_eof() {
                ResponseError::malformed(format_args!("truncated JSON: {e}"))
            } else {
                ResponseError::malformed(format_args!("not the API's JSON envelope: {e}"))
            }
        })
    };
    let env = match parsed {
        Ok(env) => env,
        Err(e) if success => return Err(e),
        Err(_) => {
            return Err(ResponseError::UnexpectedStatus {
                status: resp.status,
            })
        }
    };
    if env.error_code == Some(6) {
        return Err(ResponseError::Unauthorized {
            status: resp.status,
        });
    }
    if !success && env.response_code == 0 {
        // "Success" under an error status is not an answer to trust.
        return Err(ResponseError::UnexpectedStatus {
            status: resp.status,
        });
    }
    match env.response_code {
        0 | 1 => Ok(env),
        n => Err(ResponseError::malformed(format_args!(
            "responseCode is {n}, expected 0 or 1"
        ))),
    }
}

fn retry_after(value: &str) -> Option<RetryAfter> {
    let v = value.trim();
    if v.is_empty() {
        None
    } else if v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().ok().map(RetryAfter::Seconds)
    } else if httpdate::parse_http_date(v).is_ok() {
        // Any of RFC 9110's three date formats; kept as the text received.
        Some(RetryAfter::Date(v.into()))
    } else {
        None
    }
}

#[derive(Deserialize)]
struct TransactionWire<'a> {
    hash: String,
    #[serde(rename = "fromAccountId", default)]
    from_account_id: Option<String>,
    #[serde(rename = "toAccountId", default)]
    to_account_id: Option<String>,
    currency: String,
    #[serde(borrow)]
    amount: &'a RawValue,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "createdDateMs", default)]
    created_ms: Option<u64>,
    #[serde(rename = "acknowledgedDateMs", default)]
    acknowledged_ms: Option<u64>,
    #[serde(rename = "externalRef", default)]
    external_ref: Option<String>,
    #[serde(rename = "instructionRef", default)]
    instruction_ref: Option<String>,
}

/// The decimal text of a JSON amount: a string (`"1.50"`, kept as sent) or a
/// number token, whose exact value [`Amount::decimal_from_json_number`] writes
/// as plain decimal text (`1.5`; `1.0E7`, Java's form of large doubles, as
/// `10000000`); digits with an optional fraction, no sign.
fn amount_text(raw: &RawValue) -> Result<String, ResponseError> {
    let text = raw.get();
    let text = if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(ResponseError::malformed)?
    } else {
        Amount::decimal_from_json_number(text)
            .map_err(|e| ResponseError::malformed(format_args!("amount: {e}")))?
    };
    if crate::amount::decimal_parts(&text).is_some() {
        Ok(text)
    } else {
        Err(ResponseError::malformed(format_args!(
            "amount {text:?} is not plain decimal digits"
        )))
    }
}

fn transaction(raw: &RawValue) -> Result<Transaction, ResponseError> {
    let w: TransactionWire<'_> = serde_json::from_str(raw.get())
        .map_err(|e| ResponseError::malformed(format_args!("transaction data: {e}")))?;
    Ok(Transaction {
        amount: amount_text(w.amount)?,
        hash: w.hash,
        from_account_id: w.from_account_id,
        to_account_id: w.to_account_id,
        currency: w.currency,
        description: w.description,
        created_ms: w.created_ms,
        acknowledged_ms: w.acknowledged_ms,
        external_ref: w.external_ref,
        instruction_ref: w.instruction_ref,
    })
}

/// Reads the answer to any single-transaction check
/// (`check_transaction_by_md5`, `_by_hash`, `_by_short_hash`,
/// `_by_instruction_ref`, `_by_external_ref`).
///
/// `responseCode` 0 with a transaction in `data` → [`TransactionStatus::Paid`];
/// `errorCode` 1, 2, 3 → `Pending`, `StaticQrUnsupported`, `Failed`.
///
/// # Errors
/// * [`ResponseError::Unauthorized`]: HTTP 401 or `errorCode` 6.
/// * [`ResponseError::Forbidden`]: HTTP 403 (the body is not read).
/// * [`ResponseError::RateLimited`]: HTTP 429, with `Retry-After` if given.
/// * [`ResponseError::ServerError`]: HTTP 5xx.
/// * [`ResponseError::UnexpectedStatus`]: another non-2xx status without a
///   readable envelope.
/// * [`ResponseError::Malformed`]: an empty, non-JSON or truncated body,
///   `responseCode` other than 0/1, success without a transaction, or an amount
///   that is not plain decimal.
/// * [`ResponseError::Api`]: any other `errorCode` (e.g. 5, missing fields).
pub fn parse_transaction(resp: &HttpResponse) -> Result<TransactionStatus, ResponseError> {
    let env = envelope(resp)?;
    if env.response_code == 0 {
        let data = env
            .data()
            .ok_or_else(|| ResponseError::malformed("success without transaction data"))?;
        return transaction(data).map(TransactionStatus::Paid);
    }
    match env.error_code {
        Some(1) => Ok(TransactionStatus::Pending),
        Some(2) => Ok(TransactionStatus::StaticQrUnsupported),
        Some(3) => Ok(TransactionStatus::Failed),
        _ => Err(env.api_error()),
    }
}

#[derive(Deserialize)]
struct ListItemWire<'a> {
    #[serde(default)]
    md5: Option<String>,
    #[serde(default)]
    hash: Option<String>,
    status: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// Reads the answer to `check_transaction_by_md5_list`: `data` is an array of
/// `{"md5", "status", "message"?, "data"?}`, one per MD5 sent. `status`
/// `SUCCESS` (with a transaction in `data`) → paid, `NOT_FOUND` → pending,
/// `FAILED` → failed.
///
/// # Errors
/// As [`parse_transaction`]; also [`ResponseError::Malformed`] if `data` is not
/// such an array, an item has no `md5`, an item's status is none of the three,
/// or `SUCCESS` comes without a transaction.
pub fn parse_transaction_list(resp: &HttpResponse) -> Result<Vec<ListEntry>, ResponseError> {
    list_items(resp, "md5", |item| item.md5.take()).map(|items| {
        items
            .into_iter()
            .map(|(md5, status)| ListEntry { md5, status })
            .collect()
    })
}

/// Reads the answer to `check_transaction_by_hash_list`
/// ([`Api::check_transaction_by_hash_list`](crate::status::Api::check_transaction_by_hash_list)):
/// `data` is an array of `{"hash", "status", "message"?, "data"?}`, one per hash
/// sent, read as [`parse_transaction_list`] reads the MD5 list (Bakong documents
/// the two answers as the same shape, keyed by `hash` instead of `md5`).
///
/// # Errors
/// As [`parse_transaction_list`], with `hash` for `md5`.
pub fn parse_transaction_hash_list(
    resp: &HttpResponse,
) -> Result<Vec<HashListEntry>, ResponseError> {
    list_items(resp, "hash", |item| item.hash.take()).map(|items| {
        items
            .into_iter()
            .map(|(hash, status)| HashListEntry { hash, status })
            .collect()
    })
}

/// The items of a list answer, each as (its key, its status); `key` names the
/// item member that echoes what was asked (`md5` or `hash`).
fn list_items(
    resp: &HttpResponse,
    key: &str,
    take_key: impl Fn(&mut ListItemWire<'_>) -> Option<String>,
) -> Result<Vec<(String, TransactionStatus)>, ResponseError> {
    let env = envelope(resp)?;
    if env.response_code != 0 {
        return Err(env.api_error());
    }
    let Some(data) = env.data() else {
        return Ok(Vec::new());
    };
    let items: Vec<ListItemWire<'_>> = serde_json::from_str(data.get())
        .map_err(|e| ResponseError::malformed(format_args!("{key} list data: {e}")))?;
    items
        .into_iter()
        .map(|mut item| {
            let echoed = take_key(&mut item).ok_or_else(|| {
                ResponseError::malformed(format_args!("{key} list item without {key}"))
            })?;
            let status = match item.status.as_str() {
                "SUCCESS" => {
                    let tx = item.data.filter(|d| d.get() != "null").ok_or_else(|| {
                        ResponseError::malformed("SUCCESS item without transaction data")
                    })?;
                    TransactionStatus::Paid(transaction(tx)?)
                }
                "NOT_FOUND" => TransactionStatus::Pending,
                "FAILED" => TransactionStatus::Failed,
                other => {
                    return Err(ResponseError::malformed(format_args!(
                        "{key} list item status {other:?}"
                    )))
                }
            };
            Ok((echoed, status))
        })
        .collect()
}

/// Reads the answer to `check_bakong_account`: `responseCode` 0 → exists,
/// `errorCode` 11 → not found, 12 → invalid.
///
/// # Errors
/// As [`parse_transaction`]'s HTTP and envelope errors; [`ResponseError::Api`]
/// for any other `errorCode`.
pub fn parse_account(resp: &HttpResponse) -> Result<AccountStatus, ResponseError> {
    let env = envelope(resp)?;
    match (env.response_code, env.error_code) {
        (0, _) => Ok(AccountStatus::Exists),
        (_, Some(11)) => Ok(AccountStatus::NotFound),
        (_, Some(12)) => Ok(AccountStatus::Invalid),
        _ => Err(env.api_error()),
    }
}

/// Reads the answer to `generate_deeplink_by_qr`: the `data.shortLink` URL.
///
/// # Errors
/// As [`parse_transaction`]'s HTTP and envelope errors; [`ResponseError::Api`]
/// for `errorCode` 4 (provider failed), 5 (missing fields) or any other;
/// [`ResponseError::Malformed`] if success comes without a `shortLink` string.
pub fn parse_deeplink(resp: &HttpResponse) -> Result<String, ResponseError> {
    #[derive(Deserialize)]
    struct Data {
        #[serde(rename = "shortLink")]
        short_link: String,
    }
    let env = envelope(resp)?;
    if env.response_code != 0 {
        return Err(env.api_error());
    }
    let data = env
        .data()
        .ok_or_else(|| ResponseError::malformed("success without data"))?;
    serde_json::from_str::<Data>(data.get())
        .map(|d| d.short_link)
        .map_err(|e| ResponseError::malformed(format_args!("deep link data: {e}")))
}

/// Reads the answer to `renew_token`: the new token in `data.token`.
///
/// # Errors
/// As [`parse_transaction`]'s HTTP and envelope errors; [`ResponseError::Api`]
/// for `errorCode` 7 (email server down), 8, 10 (not registered) or any other;
/// [`ResponseError::Malformed`] if success comes without a usable token.
pub fn parse_renew_token(resp: &HttpResponse) -> Result<Token, ResponseError> {
    #[derive(Deserialize)]
    struct Data {
        token: String,
    }
    let env = envelope(resp)?;
    if env.response_code != 0 {
        return Err(env.api_error());
    }
    let data = env
        .data()
        .ok_or_else(|| ResponseError::malformed("success without data"))?;
    let d: Data = serde_json::from_str(data.get())
        .map_err(|e| ResponseError::malformed(format_args!("token data: {e}")))?;
    Token::new(d.token)
        .map_err(|_| ResponseError::malformed("token has characters not allowed in a header"))
}

#[cfg(test)]
mod pays_tests {
    use super::*;

    fn tx(currency: &str, amount: &str) -> Transaction {
        let body = format!(
            r#"{{"responseCode":0,"responseMessage":"Success","errorCode":null,"data":{{"hash":"h","currency":"{currency}","amount":{amount}}}}}"#
        );
        match parse_transaction(&HttpResponse::new(200, body.into_bytes())) {
            Ok(TransactionStatus::Paid(t)) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_payment_must_match_the_qr_amount_and_currency() {
        let usd_150 = "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh9934001317000000000000113170000006000063044947";
        assert!(tx("USD", "1.5").pays(usd_150));
        assert!(tx("USD", "1.50").pays(usd_150));
        assert!(!tx("USD", "1.49").pays(usd_150));
        assert!(!tx("KHR", "25000").pays(usd_150));
        assert!(!tx("USD", "1.5").pays("not a khqr"));
        let static_khr = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
        assert!(tx("KHR", "25000").pays(static_khr));
        assert!(!tx("USD", "2").pays(static_khr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    fn ok(body: &str) -> HttpResponse {
        HttpResponse::new(200, body.as_bytes().to_vec())
    }

    fn paid_body(amount: &str, currency: &str) -> String {
        format!(
            r#"{{"responseCode":0,"responseMessage":"Getting transaction successfully.","errorCode":null,"data":{{"hash":"{HASH}","fromAccountId":"payer@abaa","toAccountId":"jonhsmith@nbcq","currency":"{currency}","amount":{amount},"description":"coffee","createdDateMs":1700000012345,"acknowledgedDateMs":1700000013000,"trackingStatus":null,"receiverBank":null,"externalRef":"100FT3456"}}}}"#
        )
    }

    fn failure(code: i64, message: &str) -> String {
        format!(
            r#"{{"responseCode":1,"responseMessage":"{message}","errorCode":{code},"data":null}}"#
        )
    }

    #[test]
    fn paid_keeps_amount_text_and_fields() {
        let status = parse_transaction(&ok(&paid_body("1.5", "USD"))).unwrap();
        let TransactionStatus::Paid(tx) = status else {
            panic!("{status:?}")
        };
        assert_eq!(tx.hash, HASH);
        assert_eq!(tx.amount, "1.5");
        assert_eq!(tx.minor_units(), Some(150));
        assert_eq!(tx.currency(), Some(Currency::Usd));
        assert_eq!(tx.from_account_id.as_deref(), Some("payer@abaa"));
        assert_eq!(tx.to_account_id.as_deref(), Some("jonhsmith@nbcq"));
        assert_eq!(tx.description.as_deref(), Some("coffee"));
        assert_eq!(tx.created_ms, Some(1_700_000_012_345));
        assert_eq!(tx.acknowledged_ms, Some(1_700_000_013_000));
        assert_eq!(tx.external_ref.as_deref(), Some("100FT3456"));
        assert_eq!(tx.instruction_ref, None);
    }

    #[test]
    fn amounts_are_exact() {
        // A value no f64 holds exactly, and a large riel amount.
        let TransactionStatus::Paid(tx) =
            parse_transaction(&ok(&paid_body("90071992547409.93", "USD"))).unwrap()
        else {
            panic!()
        };
        assert_eq!(tx.amount, "90071992547409.93");
        assert_eq!(tx.minor_units(), Some(9_007_199_254_740_993));
        let TransactionStatus::Paid(tx) =
            parse_transaction(&ok(&paid_body("\"25000\"", "KHR"))).unwrap()
        else {
            panic!()
        };
        assert_eq!(tx.minor_units(), Some(25_000));
        assert_eq!(minor_units("1.500", Currency::Usd), Some(150));
        assert_eq!(minor_units("1.505", Currency::Usd), None);
        assert_eq!(minor_units("10", Currency::Usd), Some(1000));
        assert_eq!(minor_units("10.0", Currency::Khr), Some(10));
        assert_eq!(minor_units("10.5", Currency::Khr), None);
        // Exponent form, as Java writes doubles ≥ 10⁷, is read exactly.
        let Ok(TransactionStatus::Paid(tx)) = parse_transaction(&ok(&paid_body("1.0E7", "KHR")))
        else {
            panic!()
        };
        assert_eq!(
            (tx.amount.as_str(), tx.minor_units()),
            ("10000000", Some(10_000_000))
        );
        // A number's value, through amount.rs: trailing zeros go, the exponent
        // moves the point, nothing is rounded.
        for (given, text, cents) in [
            ("1.50", "1.5", Some(150)),
            ("2.5E-1", "0.25", Some(25)),
            ("0.30000000000000001", "0.30000000000000001", None),
        ] {
            let Ok(TransactionStatus::Paid(tx)) = parse_transaction(&ok(&paid_body(given, "USD")))
            else {
                panic!("{given}")
            };
            assert_eq!((tx.amount.as_str(), tx.minor_units()), (text, cents));
        }
        assert_eq!(
            parse_transaction(&ok(&paid_body("1e99", "USD"))).unwrap_err(),
            ResponseError::Malformed {
                reason: "amount: transaction amount (tag 54) is over 40 characters when written as plain decimal text: \"1e99\"".into()
            }
        );
        for bad in ["-1.5", "-1e3", "\"abc\"", "1.", "null", "1e99"] {
            let err = parse_transaction(&ok(&paid_body(bad, "USD"))).unwrap_err();
            assert!(
                matches!(err, ResponseError::Malformed { .. }),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn error_codes_map_to_outcomes() {
        assert_eq!(
            parse_transaction(&ok(&failure(
                1,
                "Transaction could not be found. Please check and try again."
            ))),
            Ok(TransactionStatus::Pending)
        );
        assert_eq!(
            parse_transaction(&ok(&failure(2, "Static KHQR is not supported"))),
            Ok(TransactionStatus::StaticQrUnsupported)
        );
        assert_eq!(
            parse_transaction(&ok(&failure(3, "Transaction failed."))),
            Ok(TransactionStatus::Failed)
        );
        assert_eq!(
            parse_transaction(&ok(&failure(
                6,
                "Unauthorized, not yet requested for token or code invalid"
            ))),
            Err(ResponseError::Unauthorized { status: 200 })
        );
        assert_eq!(
            ResponseError::Unauthorized { status: 200 }.to_string(),
            "Bakong token missing, invalid or expired (errorCode 6, HTTP 200); renew it"
        );
        assert_eq!(
            ResponseError::Unauthorized { status: 401 }.to_string(),
            "Bakong token missing, invalid or expired (HTTP 401); renew it"
        );
        let err = parse_transaction(&ok(&failure(5, "Missing required fields"))).unwrap_err();
        assert_eq!(
            err,
            ResponseError::Api(ApiError {
                error_code: Some(5),
                message: "Missing required fields".into()
            })
        );
        let ResponseError::Api(api) = err else {
            panic!()
        };
        assert_eq!(api.code(), Some(ApiErrorCode::MissingRequiredFields));
    }

    #[test]
    fn http_failures() {
        assert_eq!(
            parse_transaction(&HttpResponse::new(
                401,
                b"{\"message\":\"jwt expired\"}".to_vec()
            )),
            Err(ResponseError::Unauthorized { status: 401 })
        );
        let html = b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body><h1>Access denied</h1><p>Your country is not allowed.</p></body></html>";
        assert_eq!(
            parse_transaction(
                &HttpResponse::new(403, html.to_vec()).with_header("Content-Type", "text/html")
            ),
            Err(ResponseError::Forbidden)
        );
        assert_eq!(
            parse_transaction(
                &HttpResponse::new(429, Vec::new()).with_header("retry-after", " 30 ")
            ),
            Err(ResponseError::RateLimited {
                retry_after: Some(RetryAfter::Seconds(30))
            })
        );
        assert_eq!(
            parse_transaction(
                &HttpResponse::new(429, Vec::new())
                    .with_header("Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT")
            ),
            Err(ResponseError::RateLimited {
                retry_after: Some(RetryAfter::Date("Wed, 21 Oct 2026 07:28:00 GMT".into()))
            })
        );
        assert_eq!(
            parse_transaction(&HttpResponse::new(429, Vec::new())),
            Err(ResponseError::RateLimited { retry_after: None })
        );
        // Neither seconds nor an HTTP date: no usable Retry-After.
        for unreadable in ["soon", "-1", "1.5", "Wed, 99 Oct 2026 07:28:00 GMT"] {
            assert_eq!(
                parse_transaction(
                    &HttpResponse::new(429, Vec::new()).with_header("Retry-After", unreadable)
                ),
                Err(ResponseError::RateLimited { retry_after: None }),
                "{unreadable:?}"
            );
        }
        for status in [500, 502, 503, 504] {
            let err = parse_transaction(&HttpResponse::new(
                status,
                b"<html>Bad gateway</html>".to_vec(),
            ))
            .unwrap_err();
            assert_eq!(err, ResponseError::ServerError { status });
            assert!(err.is_transient());
        }
        assert_eq!(
            parse_transaction(&HttpResponse::new(404, b"<html>not found</html>".to_vec())),
            Err(ResponseError::UnexpectedStatus { status: 404 })
        );
        // A 400 that carries the envelope is read as one.
        assert_eq!(
            parse_transaction(&HttpResponse::new(
                400,
                failure(1, "not found").into_bytes()
            )),
            Ok(TransactionStatus::Pending)
        );
    }

    #[test]
    fn malformed_bodies() {
        let reason = |body: &[u8]| match parse_transaction(&HttpResponse::new(200, body.to_vec())) {
            Err(ResponseError::Malformed { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(b""), "empty body");
        assert_eq!(reason(b"  \n"), "empty body");
        let full = paid_body("1.5", "USD");
        assert!(reason(&full.as_bytes()[..full.len() / 2]).starts_with("truncated JSON"));
        assert!(reason(b"<html>hello</html>").starts_with("not the API's JSON envelope"));
        assert!(reason(br#"{"responseMessage":"x"}"#).starts_with("not the API's JSON envelope"));
        assert_eq!(
            reason(br#"{"responseCode":2,"responseMessage":"x","errorCode":null,"data":null}"#),
            "responseCode is 2, expected 0 or 1"
        );
        assert_eq!(
            reason(br#"{"responseCode":0,"responseMessage":"x","errorCode":null,"data":null}"#),
            "success without transaction data"
        );
        assert!(
            reason(br#"{"responseCode":0,"data":{"hash":"x"}}"#).starts_with("transaction data")
        );
        assert!(reason(&[0xff, 0xfe, 0x00]).starts_with("not the API's JSON envelope"));
        assert_eq!(
            reason(br#"[1,"Transaction could not be found.",1,null]"#),
            "not the API's JSON envelope: not a JSON object"
        );
    }

    #[test]
    fn hash_list_items_by_hash() {
        let paid = format!(
            r#"{{"hash":"{HASH}","status":"SUCCESS","message":null,"data":{{"hash":"{HASH}","fromAccountId":"p@abaa","toAccountId":"m@abaa","currency":"USD","amount":1.5,"description":null,"createdDateMs":1,"acknowledgedDateMs":2}}}}"#
        );
        let pending = format!(
            r#"{{"hash":"{:064x}","status":"NOT_FOUND","message":"not found","data":null}}"#,
            7
        );
        let body = format!(
            r#"{{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":[{paid},{pending}]}}"#
        );
        let entries = parse_transaction_hash_list(&ok(&body)).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].hash, HASH);
        let TransactionStatus::Paid(tx) = &entries[0].status else {
            panic!("{:?}", entries[0])
        };
        assert_eq!(tx.amount, "1.5");
        assert_eq!(entries[1].hash, format!("{:064x}", 7));
        assert_eq!(entries[1].status, TransactionStatus::Pending);
        // An item keyed by md5 is not an answer to a hash list, and the reverse.
        let md5_item = r#"{"responseCode":0,"data":[{"md5":"00000000000000000000000000000000","status":"NOT_FOUND"}]}"#;
        let e = parse_transaction_hash_list(&ok(md5_item)).unwrap_err();
        assert!(e.to_string().contains("hash list item without hash"), "{e}");
        let e = parse_transaction_list(&ok(&body)).unwrap_err();
        assert!(e.to_string().contains("md5 list item without md5"), "{e}");
        // Bakong's error envelope comes through as for the MD5 list.
        let missing =
            r#"{"responseCode":1,"responseMessage":"Missing fields","errorCode":5,"data":null}"#;
        let Err(ResponseError::Api(e)) = parse_transaction_hash_list(&ok(missing)) else {
            panic!("errorCode 5 is an API error")
        };
        assert_eq!(
            (e.error_code, e.message.as_str()),
            (Some(5), "Missing fields")
        );
        let denied =
            r#"{"responseCode":1,"responseMessage":"Unauthorized","errorCode":6,"data":null}"#;
        assert!(matches!(
            parse_transaction_hash_list(&ok(denied)),
            Err(ResponseError::Unauthorized { status: 200 })
        ));
    }

    #[test]
    fn md5_list_of_more_than_fifty() {
        let mut items = Vec::new();
        for i in 0..57 {
            let md5 = format!("{i:032x}");
            items.push(match i % 3 {
                0 => format!(
                    r#"{{"md5":"{md5}","status":"SUCCESS","message":null,"data":{{"hash":"{HASH}","fromAccountId":"p@abaa","toAccountId":"m@abaa","currency":"KHR","amount":{},"description":null,"createdDateMs":1,"acknowledgedDateMs":2}}}}"#,
                    1000 + i
                ),
                1 => format!(r#"{{"md5":"{md5}","status":"NOT_FOUND","message":"Transaction could not be found","data":null}}"#),
                _ => format!(r#"{{"md5":"{md5}","status":"FAILED","message":"failed","data":null}}"#),
            });
        }
        let body = format!(
            r#"{{"responseCode":0,"responseMessage":"Getting transaction successfully.","errorCode":null,"data":[{}]}}"#,
            items.join(",")
        );
        let entries = parse_transaction_list(&ok(&body)).unwrap();
        assert_eq!(entries.len(), 57);
        assert_eq!(entries[56].md5, format!("{:032x}", 56));
        assert_eq!(entries[55].status, TransactionStatus::Pending);
        assert_eq!(entries[53].status, TransactionStatus::Failed);
        let TransactionStatus::Paid(tx) = &entries[54].status else {
            panic!("{:?}", entries[54])
        };
        assert_eq!(tx.amount, "1054");
        assert_eq!(tx.minor_units(), Some(1054));
        let paid = entries
            .iter()
            .filter(|e| matches!(e.status, TransactionStatus::Paid(_)))
            .count();
        assert_eq!(paid, 19);
        let bad = body.replace("FAILED", "WEIRD");
        assert!(matches!(
            parse_transaction_list(&ok(&bad)),
            Err(ResponseError::Malformed { .. })
        ));
        assert_eq!(
            parse_transaction_list(&HttpResponse::new(401, vec![])),
            Err(ResponseError::Unauthorized { status: 401 })
        );
    }

    #[test]
    fn account_deeplink_token() {
        assert_eq!(
            parse_account(&ok(
                r#"{"responseCode":0,"responseMessage":"Account ID exists","errorCode":null,"data":{"bakongAccountExists":true}}"#
            )),
            Ok(AccountStatus::Exists)
        );
        assert_eq!(
            parse_account(&ok(&failure(11, "Account ID not found"))),
            Ok(AccountStatus::NotFound)
        );
        assert_eq!(
            parse_account(&ok(&failure(12, "Account ID is invalid"))),
            Ok(AccountStatus::Invalid)
        );
        assert_eq!(
            parse_deeplink(&ok(
                r#"{"responseCode":0,"responseMessage":"Getting Deep Link successfully.","errorCode":null,"data":{"shortLink":"https://bakong.page.link/abc"}}"#
            )),
            Ok("https://bakong.page.link/abc".into())
        );
        let err = parse_deeplink(&ok(&failure(4, "Error requesting deep link"))).unwrap_err();
        let ResponseError::Api(api) = err else {
            panic!()
        };
        assert_eq!(api.code(), Some(ApiErrorCode::DeepLinkProviderError));
        let token = parse_renew_token(&ok(r#"{"responseCode":0,"responseMessage":"Token has been issued","errorCode":null,"data":{"token":"aaa.bbb.ccc"}}"#)).unwrap();
        assert_eq!(token.expose(), "aaa.bbb.ccc");
        let err = parse_renew_token(&ok(&failure(10, "Not registered yet"))).unwrap_err();
        let ResponseError::Api(api) = err else {
            panic!()
        };
        assert_eq!(api.code(), Some(ApiErrorCode::NotRegistered));
        assert_eq!(api.code().map(ApiErrorCode::number), Some(10));
        assert!(matches!(
            parse_renew_token(&ok(r#"{"responseCode":0,"data":{"token":"a b"}}"#)),
            Err(ResponseError::Malformed { .. })
        ));
    }
}
