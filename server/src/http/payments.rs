//! `GET /khqr/merchant/payments` and `GET /khqr/merchant/payments.csv`: a
//! keyed merchant's QRs from the payment record ([`crate::ledger`]), as a
//! JSON page or as a streamed CSV file.
//!
//! Both take `from`, `to` (on the creation time; ISO 8601 UTC or ms since
//! the Unix epoch, `from` inclusive, `to` exclusive), `status` (`pending`,
//! `paid`, `expired` or `paid_late`) and `bakongid`; the JSON list also
//! takes `limit` (1 to 1000, default 100) and `after` (the previous page's
//! `next`). Each QR is one [`PaymentView`], the same for JSON and CSV.
//! Only the caller's own QRs are listed; anonymous callers get 401.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use super::auth;
use super::listing::{self, iso_utc, ListQuery, Page};
use crate::error::ApiError;
use crate::ledger::{Cursor, Entry, EntryFilter, EntryLog, QrStatus};
use crate::merchant::Caller;
use crate::params::Params;
use crate::state::AppState;
use crate::store::AnyStore;

/// Entries read from the store per step of a CSV export (and most rows
/// one body chunk holds): memory stays flat however long the file.
pub const EXPORT_PAGE: usize = 1_000;

/// One QR as the merchant lists show it (JSON object, CSV row; the CSV
/// header row is these field names in this order). Times are ISO 8601 UTC
/// with milliseconds; amounts are decimal text as stored (never a float);
/// the `paid…`, `hash` and `fromAccountId` fields are `null` (empty in CSV)
/// unless the QR was paid.
#[derive(Debug, Serialize)]
pub struct PaymentView<'a> {
    /// MD5 of the QR's payload (32 hex digits).
    pub md5: &'a str,
    /// The QR's short transaction id.
    pub tran: &'a str,
    /// The Bakong account paid.
    #[serde(rename = "bakongId")]
    pub bakong_id: &'a str,
    /// The `username` given at create.
    pub username: &'a str,
    /// The amount asked, as given at create.
    pub amount: &'a str,
    /// `USD` or `KHR`.
    pub currency: &'a str,
    /// `pending`, `paid`, `expired` or `paid_late`.
    pub status: &'static str,
    /// When it was created.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// When it expires (or expired).
    #[serde(rename = "expiresAt")]
    pub expires_at: String,
    /// When its status last changed.
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
    /// The amount paid, as Bakong reported it.
    #[serde(rename = "paidAmount")]
    pub paid_amount: Option<&'a str>,
    /// The currency paid.
    #[serde(rename = "paidCurrency")]
    pub paid_currency: Option<&'a str>,
    /// When Bakong acknowledged the payment (if it said).
    #[serde(rename = "paidAt")]
    pub paid_at: Option<String>,
    /// Bakong's transaction hash.
    pub hash: Option<&'a str>,
    /// The payer's Bakong account (if Bakong said).
    #[serde(rename = "fromAccountId")]
    pub from_account_id: Option<&'a str>,
    /// Made with a test key.
    pub test: bool,
}

impl<'a> PaymentView<'a> {
    /// The view of `e`.
    #[must_use]
    pub fn of(e: &'a Entry) -> Self {
        let paid = e.payment.as_ref().filter(|_| e.status.is_paid());
        PaymentView {
            md5: &e.md5,
            tran: &e.tran,
            bakong_id: &e.bakong_id,
            username: &e.username,
            amount: &e.amount,
            currency: &e.currency,
            status: e.status.as_str(),
            created_at: iso_utc(e.created_ms),
            expires_at: iso_utc(e.expires_ms),
            updated_at: iso_utc(e.updated_ms),
            paid_amount: paid.map(|p| p.amount.as_str()),
            paid_currency: paid.map(|p| p.currency.as_str()),
            paid_at: paid.and_then(|p| p.paid_at_ms).map(iso_utc),
            hash: paid.map(|p| p.hash.as_str()),
            from_account_id: paid.and_then(|p| p.from_account_id.as_deref()),
            test: e.test,
        }
    }
}

/// The filter of a list or export: `from`, `to` (read by `q`), `status`,
/// `bakongid`.
///
/// # Errors
/// 400 `invalid_parameter` for a `status` that is not one of the four, or
/// an empty `bakongid`.
fn filter(p: &Params, q: &ListQuery) -> Result<EntryFilter, ApiError> {
    let status = p
        .get("status")
        .map(|s| {
            s.parse::<QrStatus>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_parameter",
                    "status must be pending, paid, expired or paid_late",
                )
            })
        })
        .transpose()?;
    let bakong_id = match p.get("bakongid").map(str::trim) {
        Some("") => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "bakongid must not be empty",
            ))
        }
        b => b.map(str::to_owned),
    };
    Ok(EntryFilter {
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        status,
        bakong_id,
    })
}

fn cursor_of(e: &Entry) -> Cursor {
    Cursor::new(e.created_ms, &e.md5)
}

/// `GET /khqr/merchant/payments?from&to&status&bakongid&limit&after`: a
/// [`Page`] of [`PaymentView`]s, oldest first.
///
/// # Errors
/// 401 without a merchant's key; 400 `invalid_parameter` for a bad `from`,
/// `to`, `status`, `bakongid`, `limit` or `after`; 503 if the store cannot
/// be read.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let merchant = auth::merchant(&caller)?;
    let p = Params::parse(query.as_deref(), None, b"")?;
    listing::only(&p, &["from", "to", "status", "bakongid", "limit", "after"])?;
    let q = ListQuery::parse(&p)?;
    let filter = filter(&p, &q)?;
    let entries = state
        .store
        .entry_list(&merchant.id, &filter, q.after.as_ref(), q.limit)
        .await?;
    let page = Page::new(entries, q.limit, cursor_of);
    let views = Page {
        data: page.data.iter().map(PaymentView::of).collect(),
        next: page.next,
    };
    Ok(Json(views).into_response())
}

/// The CSV header row: [`PaymentView`]'s field names, in order (a test
/// checks they agree).
pub const CSV_HEADER: [&str; 16] = [
    "md5",
    "tran",
    "bakongId",
    "username",
    "amount",
    "currency",
    "status",
    "createdAt",
    "expiresAt",
    "updatedAt",
    "paidAmount",
    "paidCurrency",
    "paidAt",
    "hash",
    "fromAccountId",
    "test",
];

/// `entries` as CSV rows (CRLF after each), after the header row if `header`.
fn csv_rows(entries: &[Entry], header: bool) -> Result<Bytes, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(256 * (entries.len() + 1)));
    if header {
        w.write_record(CSV_HEADER)?;
    }
    for e in entries {
        w.serialize(PaymentView::of(e))?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// Where a streamed export stands.
struct Export {
    store: Arc<AnyStore>,
    merchant: String,
    filter: EntryFilter,
    /// The page read before the answer started (its errors are a 503).
    first: Option<Vec<Entry>>,
    after: Option<Cursor>,
    header: bool,
    done: bool,
}

impl Export {
    /// The next chunk of the body: the next page's rows, `None` at the end,
    /// an error (which cuts the body short) if the store fails meanwhile.
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if self.done {
            return None;
        }
        let page = match self.first.take() {
            Some(p) => p,
            None => match self
                .store
                .entry_list(
                    &self.merchant,
                    &self.filter,
                    self.after.as_ref(),
                    EXPORT_PAGE,
                )
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(detail = e.detail(), "payments export cut short");
                    self.done = true;
                    return Some((Err(std::io::Error::other(e.detail().to_owned())), self));
                }
            },
        };
        self.done = page.len() < EXPORT_PAGE;
        self.after = page.last().map(cursor_of);
        if page.is_empty() && !self.header {
            return None;
        }
        let chunk = csv_rows(&page, self.header).map_err(std::io::Error::other);
        self.header = false;
        Some((chunk, self))
    }
}

/// `GET /khqr/merchant/payments.csv?from&to&status&bakongid`: every QR of
/// the filter as RFC 4180 CSV (a header row, CRLF line ends, fields quoted
/// when they hold `,`, `"`, CR or LF, quotes doubled), oldest first,
/// streamed [`EXPORT_PAGE`] rows at a time, as the attachment
/// `payments.csv`.
///
/// # Errors
/// 401 without a merchant's key; 400 `invalid_parameter` for a bad `from`,
/// `to`, `status` or `bakongid`, or a `limit` or `after` (the export has
/// no pages: it streams every row); 503 if the store cannot be read when the export
/// starts (a failure later cuts the body short: the file then lacks its
/// last line end).
pub async fn export(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let merchant = auth::merchant(&caller)?;
    let p = Params::parse(query.as_deref(), None, b"")?;
    if let Some(name) = ["limit", "after"].into_iter().find(|n| p.get(n).is_some()) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("{name} is not taken by the export: it streams every row"),
        ));
    }
    listing::only(&p, &["from", "to", "status", "bakongid"])?;
    let q = ListQuery::parse(&p)?;
    let filter = filter(&p, &q)?;
    let first = state
        .store
        .entry_list(&merchant.id, &filter, None, EXPORT_PAGE)
        .await?;
    let export = Export {
        store: state.store.clone(),
        merchant: merchant.id.clone(),
        filter,
        first: Some(first),
        after: None,
        header: true,
        done: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(export, Export::next));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"payments.csv\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Payment;

    fn entry(username: &str) -> Entry {
        Entry {
            md5: "0123456789abcdef0123456789abcdef".into(),
            tran: "T1".into(),
            merchant: "shop".into(),
            bakong_id: "shop@abaa".into(),
            username: username.into(),
            amount: "1.10".into(),
            currency: "USD".into(),
            created_ms: 1_796_544_000_250,
            expires_ms: 1_796_544_600_250,
            status: QrStatus::Paid,
            updated_ms: 1_796_544_001_000,
            payment: Some(Payment {
                amount: "1.1".into(),
                currency: "USD".into(),
                paid_at_ms: None,
                hash: "ab".into(),
                from_account_id: Some("payer@abaa".into()),
            }),
            test: false,
            callback_url: None,
        }
    }

    #[test]
    fn header_is_the_views_field_names() {
        let e = entry("x");
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        w.serialize(PaymentView::of(&e)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), CSV_HEADER.join(","));
    }

    #[test]
    fn rows_are_rfc_4180() {
        let e = entry("Sok, \"Dara\"\r\nសុខ");
        let out = csv_rows(std::slice::from_ref(&e), true).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            format!(
                "{}\r\n0123456789abcdef0123456789abcdef,T1,shop@abaa,\"Sok, \"\"Dara\"\"\r\nសុខ\",\
                 1.10,USD,paid,2026-12-06T08:00:00.250Z,2026-12-06T08:10:00.250Z,\
                 2026-12-06T08:00:01.000Z,1.1,USD,,ab,payer@abaa,false\r\n",
                CSV_HEADER.join(",")
            )
        );
        assert_eq!(
            csv_rows(&[], true).unwrap(),
            format!("{}\r\n", CSV_HEADER.join(","))
        );
        assert!(csv_rows(&[], false).unwrap().is_empty());
        // Unpaid: no payment fields even if one was kept.
        let mut e = e;
        e.status = QrStatus::Expired;
        let v = PaymentView::of(&e);
        assert_eq!(
            (v.paid_amount, v.hash, v.from_account_id),
            (None, None, None)
        );
    }
}
