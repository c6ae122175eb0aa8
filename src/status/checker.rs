//! The caller's transport, and the drivers that use it.

use core::fmt;
use core::future::Future;

use crate::status::{
    parse_transaction, Api, HttpRequest, HttpResponse, RequestError, ResponseError, RetryAfter,
    Transaction, TransactionStatus,
};
use crate::{Decoded, Error, Md5};

/// Your blocking HTTP transport: send one [`HttpRequest`] and return the
/// [`HttpResponse`] whatever its status (a 401 or 503 is a response, not an
/// error), or your own error when no response came (DNS, TLS, timeout).
///
/// ```
/// use bakong_khqr::status::{HttpRequest, HttpResponse, StatusChecker};
///
/// /// Answers every request with "not paid yet" (a test double).
/// struct NeverPaid;
///
/// impl StatusChecker for NeverPaid {
///     type Error = std::convert::Infallible;
///     fn send(&self, _request: HttpRequest) -> Result<HttpResponse, Self::Error> {
///         Ok(HttpResponse::new(200, br#"{"responseCode":1,"responseMessage":"Transaction could not be found.","errorCode":1,"data":null}"#.to_vec()))
///     }
/// }
/// ```
pub trait StatusChecker {
    /// Why no response came (your client's error type).
    type Error;

    /// Sends `request` and returns the answer.
    ///
    /// # Errors
    /// Your transport's error when no HTTP response was received.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, Self::Error>;
}

/// Your asynchronous HTTP transport: as [`StatusChecker`], returning a future.
/// The future must be `Send` so that drivers run on multi-threaded executors
/// (a server's request handlers).
pub trait AsyncStatusChecker {
    /// Why no response came (your client's error type).
    type Error;

    /// Sends `request`; the future resolves to the answer.
    fn send(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, Self::Error>> + Send;
}

/// Why a status check gave no status: the request, your transport, or the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckError<E> {
    /// The request could not be built (e.g. no token).
    Request(RequestError),
    /// The payload given to [`check_khqr`] or [`Poller::for_khqr`] is not a KHQR
    /// (or has no expiration to poll until: code 45).
    Khqr(Error),
    /// Your transport returned an error.
    Transport(E),
    /// The answer was not a status (see [`ResponseError`]).
    Response(ResponseError),
}

impl<E: fmt::Display> fmt::Display for CheckError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Request(e) => write!(f, "cannot build the request: {e}"),
            CheckError::Khqr(e) => write!(f, "not a KHQR to check: {e}"),
            CheckError::Transport(e) => write!(f, "transport failed: {e}"),
            CheckError::Response(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for CheckError<E> {}

/// Asks Bakong whether the KHQR with this MD5 was paid: builds
/// `check_transaction_by_md5`, sends it with `checker`, reads the answer.
///
/// # Errors
/// [`CheckError::Request`] without a token; [`CheckError::Transport`] from your
/// transport; [`CheckError::Response`] for any [`ResponseError`] (an expired
/// token is [`ResponseError::Unauthorized`]).
pub fn check_md5<C: StatusChecker + ?Sized>(
    checker: &C,
    api: &Api,
    md5: &Md5,
) -> Result<TransactionStatus, CheckError<C::Error>> {
    let request = api
        .check_transaction_by_md5(md5)
        .map_err(CheckError::Request)?;
    let response = checker.send(request).map_err(CheckError::Transport)?;
    parse_transaction(&response).map_err(CheckError::Response)
}

/// "Was this KHQR paid?" in one call: [`check_md5`] for the MD5 of `payload`
/// (the KHQR string exactly as generated), then a payment whose amount or
/// currency is not the QR's ([`Transaction::pays`]) is reported as
/// [`TransactionStatus::AmountMismatch`], never as `Paid`.
///
/// With the `ureq` feature, [`UreqTransport`](crate::status::UreqTransport) is a
/// ready `checker`:
///
/// ```no_run
/// # #[cfg(feature = "ureq")] {
/// use bakong_khqr::status::{check_khqr, Api, Token, TransactionStatus, UreqTransport, PRODUCTION_BASE_URL};
/// # let payload = "00020101021229180014jonhsmith@nbcq52045999530384054041.505802KH5910Jonh Smith6010Phnom Penh9934001317000000000000113170000006000063044947";
/// let api = Api::new(PRODUCTION_BASE_URL)?.with_token(Token::new(std::env::var("BAKONG_TOKEN")?)?);
/// if let TransactionStatus::Paid(tx) = check_khqr(&UreqTransport::new(), &api, payload)? {
///     println!("paid {} {} (hash {})", tx.amount, tx.currency, tx.hash);
/// }
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`CheckError::Khqr`] before anything is sent when `payload` does not decode
/// as a KHQR ([`crate::decode`]: a stray newline, an MD5 given by mistake);
/// otherwise as [`check_md5`].
pub fn check_khqr<C: StatusChecker + ?Sized>(
    checker: &C,
    api: &Api,
    payload: &str,
) -> Result<TransactionStatus, CheckError<C::Error>> {
    crate::decode(payload).map_err(CheckError::Khqr)?;
    check_md5(checker, api, &Md5::of(payload)).map(|status| against_qr(status, payload))
}

/// A `Paid` status whose payment does not settle `payload` becomes
/// `AmountMismatch`; any other status is unchanged.
fn against_qr(status: TransactionStatus, payload: &str) -> TransactionStatus {
    match status {
        TransactionStatus::Paid(tx) if !tx.pays(payload) => TransactionStatus::AmountMismatch(tx),
        other => other,
    }
}

/// [`check_md5`] over an [`AsyncStatusChecker`].
///
/// # Errors
/// As [`check_md5`].
pub async fn check_md5_async<C: AsyncStatusChecker + ?Sized>(
    checker: &C,
    api: &Api,
    md5: &Md5,
) -> Result<TransactionStatus, CheckError<C::Error>> {
    let request = api
        .check_transaction_by_md5(md5)
        .map_err(CheckError::Request)?;
    let response = checker.send(request).await.map_err(CheckError::Transport)?;
    parse_transaction(&response).map_err(CheckError::Response)
}

/// [`check_khqr`] over an [`AsyncStatusChecker`]: a payment whose amount or
/// currency is not the QR's is [`TransactionStatus::AmountMismatch`].
///
/// # Errors
/// As [`check_khqr`]: [`CheckError::Khqr`] for a payload that is not a KHQR,
/// otherwise as [`check_md5`].
pub async fn check_khqr_async<C: AsyncStatusChecker + ?Sized>(
    checker: &C,
    api: &Api,
    payload: &str,
) -> Result<TransactionStatus, CheckError<C::Error>> {
    crate::decode(payload).map_err(CheckError::Khqr)?;
    check_md5_async(checker, api, &Md5::of(payload))
        .await
        .map(|status| against_qr(status, payload))
}

/// The caller's clock for [`wait_for_payment`]: the library's sans-I/O core never
/// reads time. [`SystemClock`] is the real one; tests pass a fake that advances.
pub trait Clock {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&mut self) -> u64;
    /// Blocks for `ms` milliseconds (a fake clock just advances).
    fn sleep_ms(&mut self, ms: u64);
}

/// The system's clock: [`crate::now_ms`] for the time, [`std::thread::sleep`]
/// for the pauses. Pass it to [`wait_for_payment`].
///
/// ```
/// use bakong_khqr::status::{Clock, SystemClock};
/// let mut clock = SystemClock;
/// let before = clock.now_ms();
/// clock.sleep_ms(2);
/// assert!(clock.now_ms() >= before + 2);
/// assert!(before > 1_700_000_000_000); // after November 2023
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&mut self) -> u64 {
        crate::now_ms()
    }

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Default pause between two checks of the same QR: 3 000 ms.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 3_000;

/// How polling ended. May gain outcomes: match with a `_` arm.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PollOutcome {
    /// Paid, with the transaction. For a [`Poller::for_khqr`], the amount and
    /// currency are the QR's ([`Transaction::pays`]).
    Paid(Transaction),
    /// Bakong reports a payment under the QR's MD5 whose amount or currency is
    /// not the QR's (only from a [`Poller::for_khqr`], which knows the QR): do
    /// not hand over the goods.
    AmountMismatch(Transaction),
    /// Bakong reports the transaction failed.
    Failed,
    /// A static KHQR cannot be checked.
    StaticQrUnsupported,
    /// The QR expired unpaid: `expired_at_ms` is its deadline (ms since the epoch).
    Expired {
        /// The deadline, in milliseconds since the Unix epoch.
        expired_at_ms: u64,
    },
}

/// What a [`Poller`] wants next. May gain steps: match with a `_` arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PollStep {
    /// Send this request now, then pass the answer to [`Poller::handle`].
    Send(HttpRequest),
    /// Nothing to do before `until_ms` (ms since the Unix epoch); call
    /// [`Poller::poll`] again then.
    Wait {
        /// When to poll again, in milliseconds since the Unix epoch.
        until_ms: u64,
    },
    /// Polling is over.
    Done(PollOutcome),
}

/// Polls one KHQR's status until it is paid, fails or expires — as a sans-I/O
/// state machine: it never sends, sleeps or reads the clock; drive it from any
/// loop (or use [`wait_for_payment`] / [`wait_for_payment_async`]).
///
/// Pending answers and transient failures (429, honouring `Retry-After` in
/// seconds; 5xx) schedule the next check `interval_ms` later; other
/// [`ResponseError`]s end polling with that error.
#[derive(Clone, Debug)]
pub struct Poller {
    md5: Md5,
    /// The QR itself when known ([`Poller::for_khqr`]), to compare a payment with.
    payload: Option<String>,
    deadline_ms: u64,
    interval_ms: u64,
    next_ms: u64,
    last_check_ms: Option<u64>,
    outcome: Option<PollOutcome>,
}

/// The shortest pause between two checks a [`Poller`] makes: 1 000 ms (a
/// smaller `interval_ms` is raised to it, so a mistake cannot flood Bakong).
pub const MIN_POLL_INTERVAL_MS: u64 = 1_000;

impl Poller {
    /// Polls the QR `payload` until its expiration (tag 99 sub-tag 01), checking
    /// every `interval_ms` milliseconds (use [`DEFAULT_POLL_INTERVAL_MS`]). A
    /// payment whose amount or currency is not the QR's ends polling with
    /// [`PollOutcome::AmountMismatch`].
    ///
    /// # Errors
    /// The payload's decode error; [`crate::ErrorCode::ExpirationTimestampRequired`]
    /// (45) if it has no expiration — a static QR, or a bank's dynamic QR without
    /// tag 99: use [`Poller::until`] with your own deadline.
    pub fn for_khqr(payload: &str, interval_ms: u64) -> Result<Self, Error> {
        let decoded = Decoded::parse(payload)?;
        let deadline = decoded.expiration_timestamp_ms().ok_or_else(|| {
            Error::missing(
                crate::ErrorCode::ExpirationTimestampRequired,
                crate::Field::ExpirationTimestamp,
            )
        })?;
        let mut poller = Self::until(Md5::of(payload), deadline, interval_ms);
        poller.payload = Some(payload.to_owned());
        Ok(poller)
    }

    /// Polls the QR `payload` until `deadline_ms` (ms since the Unix epoch),
    /// whatever its own expiration: for a QR without tag 99 (a bank's dynamic
    /// QR). As [`Poller::for_khqr`], a payment whose amount or currency is not
    /// the QR's ends polling with [`PollOutcome::AmountMismatch`].
    ///
    /// # Errors
    /// The payload's decode error (e.g. 8, empty).
    pub fn for_khqr_until(
        payload: &str,
        deadline_ms: u64,
        interval_ms: u64,
    ) -> Result<Self, Error> {
        Decoded::parse(payload)?;
        let mut poller = Self::until(Md5::of(payload), deadline_ms, interval_ms);
        poller.payload = Some(payload.to_owned());
        Ok(poller)
    }

    /// Polls the QR with this MD5 until `deadline_ms` (ms since the Unix epoch),
    /// checking every `interval_ms` milliseconds (at least
    /// [`MIN_POLL_INTERVAL_MS`]).
    #[must_use]
    pub fn until(md5: Md5, deadline_ms: u64, interval_ms: u64) -> Self {
        Poller {
            md5,
            payload: None,
            deadline_ms,
            interval_ms: interval_ms.max(MIN_POLL_INTERVAL_MS),
            next_ms: 0,
            last_check_ms: None,
            outcome: None,
        }
    }

    /// The deadline, in milliseconds since the Unix epoch.
    #[must_use]
    pub const fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// The next step at `now_ms` (milliseconds since the Unix epoch).
    ///
    /// Checks come every interval, and one last check is always made at (or, if
    /// the caller was late, after) the deadline, so that a payment made in the
    /// last seconds is seen; only when that check too says "not paid" is the
    /// outcome [`PollOutcome::Expired`].
    ///
    /// # Errors
    /// [`RequestError`] if the request cannot be built (no token).
    pub fn poll(&mut self, api: &Api, now_ms: u64) -> Result<PollStep, RequestError> {
        if let Some(done) = &self.outcome {
            return Ok(PollStep::Done(done.clone()));
        }
        if now_ms >= self.deadline_ms {
            if self.last_check_ms.is_some_and(|t| t >= self.deadline_ms) {
                let done = PollOutcome::Expired {
                    expired_at_ms: self.deadline_ms,
                };
                self.outcome = Some(done.clone());
                return Ok(PollStep::Done(done));
            }
        } else if now_ms < self.next_ms {
            return Ok(PollStep::Wait {
                until_ms: self.next_ms.min(self.deadline_ms),
            });
        }
        let request = api.check_transaction_by_md5(&self.md5)?;
        // Until an answer comes, a repeated poll waits one interval.
        self.next_ms = now_ms.saturating_add(self.interval_ms);
        self.last_check_ms = Some(now_ms);
        Ok(PollStep::Send(request))
    }

    /// Takes the answer to the last [`PollStep::Send`], received at `now_ms`.
    /// Returns the outcome when polling is over.
    ///
    /// # Errors
    /// The [`ResponseError`] that ends polling: unauthorized, forbidden,
    /// malformed, unexpected status, or an API error.
    pub fn handle(
        &mut self,
        now_ms: u64,
        response: &HttpResponse,
    ) -> Result<Option<PollOutcome>, ResponseError> {
        let mut wait = self.interval_ms;
        let done = match parse_transaction(response) {
            Ok(TransactionStatus::Paid(tx)) => match &self.payload {
                Some(qr) if !tx.pays(qr) => Some(PollOutcome::AmountMismatch(tx)),
                _ => Some(PollOutcome::Paid(tx)),
            },
            Ok(TransactionStatus::AmountMismatch(tx)) => Some(PollOutcome::AmountMismatch(tx)),
            Ok(TransactionStatus::Failed) => Some(PollOutcome::Failed),
            Ok(TransactionStatus::StaticQrUnsupported) => Some(PollOutcome::StaticQrUnsupported),
            Ok(TransactionStatus::Pending) | Err(ResponseError::ServerError { .. }) => None,
            Err(ResponseError::RateLimited { retry_after }) => {
                if let Some(RetryAfter::Seconds(s)) = retry_after {
                    wait = wait.max(s.saturating_mul(1000));
                }
                None
            }
            Err(e) => return Err(e),
        };
        self.next_ms = now_ms.saturating_add(wait);
        self.outcome.clone_from(&done);
        Ok(done)
    }
}

/// Polls `poller` over a blocking transport until it is done, sleeping with
/// `clock` between checks.
///
/// # Errors
/// [`CheckError::Request`] (no token), [`CheckError::Transport`] (your
/// transport), or [`CheckError::Response`] for an answer that ends polling.
///
/// ```
/// use bakong_khqr::status::*;
/// use bakong_khqr::{Currency, Request};
///
/// struct FakeClock(u64);
/// impl Clock for FakeClock {
///     fn now_ms(&mut self) -> u64 { self.0 }
///     fn sleep_ms(&mut self, ms: u64) { self.0 += ms }
/// }
/// struct NeverPaid;
/// impl StatusChecker for NeverPaid {
///     type Error = std::convert::Infallible;
///     fn send(&self, _: HttpRequest) -> Result<HttpResponse, Self::Error> {
///         Ok(HttpResponse::new(200, br#"{"responseCode":1,"responseMessage":"not found","errorCode":1,"data":null}"#.to_vec()))
///     }
/// }
///
/// let now = 1_700_000_000_000;
/// let khqr = Request::individual("jonhsmith@nbcq", "Jonh Smith")
///     .currency(Currency::Usd).amount("2").expires_in_ms(60_000).generate(now)?;
/// let api = Api::new(TEST_BASE_URL)?.with_token(Token::new("t.t.t")?);
/// let mut poller = Poller::for_khqr(khqr.as_str(), 5_000)?;
/// let outcome = wait_for_payment(&NeverPaid, &api, &mut poller, &mut FakeClock(now))?;
/// assert_eq!(outcome, PollOutcome::Expired { expired_at_ms: now + 60_000 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait_for_payment<C: StatusChecker + ?Sized, K: Clock + ?Sized>(
    checker: &C,
    api: &Api,
    poller: &mut Poller,
    clock: &mut K,
) -> Result<PollOutcome, CheckError<C::Error>> {
    loop {
        let now = clock.now_ms();
        match poller.poll(api, now).map_err(CheckError::Request)? {
            PollStep::Done(outcome) => return Ok(outcome),
            PollStep::Wait { until_ms } => clock.sleep_ms(until_ms.saturating_sub(now)),
            PollStep::Send(request) => {
                let response = checker.send(request).map_err(CheckError::Transport)?;
                let now = clock.now_ms();
                if let Some(done) = poller
                    .handle(now, &response)
                    .map_err(CheckError::Response)?
                {
                    return Ok(done);
                }
            }
        }
    }
}

/// [`wait_for_payment`] over an [`AsyncStatusChecker`]: `now_ms` gives the time
/// (ms since the Unix epoch) and `sleep_ms(ms)` returns a future that completes
/// after `ms` milliseconds (your runtime's timer).
///
/// # Errors
/// As [`wait_for_payment`].
pub async fn wait_for_payment_async<C, N, S, F>(
    checker: &C,
    api: &Api,
    poller: &mut Poller,
    mut now_ms: N,
    mut sleep_ms: S,
) -> Result<PollOutcome, CheckError<C::Error>>
where
    C: AsyncStatusChecker + ?Sized,
    N: FnMut() -> u64,
    S: FnMut(u64) -> F,
    F: Future<Output = ()>,
{
    loop {
        let now = now_ms();
        match poller.poll(api, now).map_err(CheckError::Request)? {
            PollStep::Done(outcome) => return Ok(outcome),
            PollStep::Wait { until_ms } => sleep_ms(until_ms.saturating_sub(now)).await,
            PollStep::Send(request) => {
                let response = checker.send(request).await.map_err(CheckError::Transport)?;
                if let Some(done) = poller
                    .handle(now_ms(), &response)
                    .map_err(CheckError::Response)?
                {
                    return Ok(done);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Token, TEST_BASE_URL};
    use crate::{Currency, Request};
    use std::cell::RefCell;
    use std::collections::VecDeque;

    const NOW: u64 = 1_700_000_000_000;

    /// Answers with canned responses in order, recording the requests.
    struct Script {
        answers: RefCell<VecDeque<Answer>>,
        seen: RefCell<Vec<HttpRequest>>,
    }

    impl Script {
        fn new(answers: Vec<Answer>) -> Self {
            Script {
                answers: RefCell::new(answers.into()),
                seen: RefCell::new(Vec::new()),
            }
        }
    }

    impl StatusChecker for Script {
        type Error = &'static str;
        fn send(&self, request: HttpRequest) -> Result<HttpResponse, &'static str> {
            self.seen.borrow_mut().push(request);
            self.answers
                .borrow_mut()
                .pop_front()
                .unwrap_or(Err("script exhausted"))
        }
    }

    struct FakeClock {
        now: u64,
        slept: Vec<u64>,
    }

    impl Clock for FakeClock {
        fn now_ms(&mut self) -> u64 {
            self.now
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.slept.push(ms);
            self.now += ms;
        }
    }

    type Answer = Result<HttpResponse, &'static str>;

    fn pending() -> HttpResponse {
        HttpResponse::new(
            200,
            br#"{"responseCode":1,"responseMessage":"Transaction could not be found.","errorCode":1,"data":null}"#.to_vec(),
        )
    }

    fn paid() -> HttpResponse {
        HttpResponse::new(
            200,
            br#"{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":{"hash":"abc","fromAccountId":"p@abaa","toAccountId":"jonhsmith@nbcq","currency":"USD","amount":2.5,"description":null,"createdDateMs":1,"acknowledgedDateMs":2}}"#.to_vec(),
        )
    }

    fn api() -> Api {
        Api::new(TEST_BASE_URL)
            .unwrap()
            .with_token(Token::new("a.b.c").unwrap())
    }

    fn khqr() -> crate::Khqr {
        Request::individual("jonhsmith@nbcq", "Jonh Smith")
            .currency(Currency::Usd)
            .amount("2.5")
            .expires_in_ms(20_000)
            .generate(NOW)
            .unwrap()
    }

    #[test]
    fn check_sends_the_payload_md5() {
        let k = khqr();
        let script = Script::new(vec![Ok(pending()), Err("connection refused")]);
        assert_eq!(
            check_khqr(&script, &api(), k.as_str()),
            Ok(TransactionStatus::Pending)
        );
        assert_eq!(
            check_khqr(&script, &api(), k.as_str()),
            Err(CheckError::Transport("connection refused"))
        );
        let body: serde_json::Value =
            serde_json::from_slice(&script.seen.borrow()[0].body).unwrap();
        assert_eq!(body["md5"], k.md5().to_string());
        let anon = Api::new(TEST_BASE_URL).unwrap();
        assert_eq!(
            check_md5(&script, &anon, &k.md5()),
            Err(CheckError::Request(RequestError::MissingToken))
        );
        assert_eq!(script.seen.borrow().len(), 2);
    }

    #[test]
    fn check_refuses_what_is_not_a_khqr_before_sending() {
        let k = khqr();
        let script = Script::new(vec![Ok(paid())]);
        for not_khqr in [
            "hello".to_owned(),
            k.md5().to_string(),
            format!("{}\n", k.as_str()),
        ] {
            assert!(
                matches!(
                    check_khqr(&script, &api(), &not_khqr),
                    Err(CheckError::Khqr(_))
                ),
                "{not_khqr:?}"
            );
        }
        assert!(script.seen.borrow().is_empty());
    }

    #[test]
    fn polls_until_paid_with_backoff() {
        let k = khqr();
        let rate_limited = Ok(HttpResponse::new(429, vec![]).with_header("Retry-After", "7"));
        let server_error = Ok(HttpResponse::new(503, b"<html>down</html>".to_vec()));
        let script = Script::new(vec![Ok(pending()), rate_limited, server_error, Ok(paid())]);
        let mut clock = FakeClock {
            now: NOW,
            slept: vec![],
        };
        let mut poller = Poller::for_khqr(k.as_str(), 3_000).unwrap();
        assert_eq!(poller.deadline_ms(), NOW + 20_000);
        let outcome = wait_for_payment(&script, &api(), &mut poller, &mut clock).unwrap();
        let PollOutcome::Paid(tx) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(tx.amount, "2.5");
        assert_eq!(tx.minor_units(), Some(250));
        assert_eq!(clock.slept, [3_000, 7_000, 3_000]);
        assert_eq!(script.seen.borrow().len(), 4);
        // Done stays done.
        assert!(matches!(
            poller.poll(&api(), clock.now),
            Ok(PollStep::Done(PollOutcome::Paid(_)))
        ));
    }

    #[test]
    fn polling_stops_at_expiration() {
        let k = khqr();
        let script = Script::new((0..20).map(|_| Ok(pending())).collect());
        let mut clock = FakeClock {
            now: NOW,
            slept: vec![],
        };
        let mut poller = Poller::for_khqr(k.as_str(), 6_000).unwrap();
        let outcome = wait_for_payment(&script, &api(), &mut poller, &mut clock).unwrap();
        assert_eq!(
            outcome,
            PollOutcome::Expired {
                expired_at_ms: NOW + 20_000
            }
        );
        // Checks at +0, +6 s, +12 s, +18 s, and a last one at the deadline.
        assert_eq!(script.seen.borrow().len(), 5);
        assert_eq!(clock.now, NOW + 20_000);
    }

    #[test]
    fn a_payment_in_the_last_seconds_is_seen() {
        // Interval 7 s, deadline +20 s, paid at +19 s: the checks at +0, +7,
        // +14 s say pending; the last check, at the deadline, sees the payment.
        let k = khqr();
        let paid = HttpResponse::new(
            200,
            br#"{"responseCode":0,"responseMessage":"Success","errorCode":null,"data":{"hash":"h","currency":"USD","amount":2.5}}"#.to_vec(),
        );
        let script = Script::new(vec![Ok(pending()), Ok(pending()), Ok(pending()), Ok(paid)]);
        let mut clock = FakeClock {
            now: NOW,
            slept: vec![],
        };
        let mut poller = Poller::for_khqr(k.as_str(), 7_000).unwrap();
        let outcome = wait_for_payment(&script, &api(), &mut poller, &mut clock).unwrap();
        assert!(
            matches!(outcome, PollOutcome::Paid(ref tx) if tx.amount == "2.5"),
            "{outcome:?}"
        );
        assert_eq!(clock.now, NOW + 20_000);
        assert_eq!(clock.slept, vec![7_000, 7_000, 6_000]);
    }

    #[test]
    fn the_interval_has_a_floor() {
        let k = khqr();
        let script = Script::new((0..100).map(|_| Ok(pending())).collect());
        let mut clock = FakeClock {
            now: NOW,
            slept: vec![],
        };
        let mut poller = Poller::for_khqr(k.as_str(), 0).unwrap();
        wait_for_payment(&script, &api(), &mut poller, &mut clock).unwrap();
        // 20 s at 1 s a check: +0 … +19 s, then the deadline.
        assert_eq!(script.seen.borrow().len(), 21);
    }

    #[test]
    fn polling_ends_on_unauthorized() {
        let k = khqr();
        let script = Script::new(vec![Ok(pending()), Ok(HttpResponse::new(401, vec![]))]);
        let mut clock = FakeClock {
            now: NOW,
            slept: vec![],
        };
        let mut poller = Poller::for_khqr(k.as_str(), 1_000).unwrap();
        assert_eq!(
            wait_for_payment(&script, &api(), &mut poller, &mut clock),
            Err(CheckError::Response(ResponseError::Unauthorized {
                status: 401
            }))
        );
    }

    #[test]
    fn poller_needs_an_expiration() {
        let static_qr = Request::individual("jonhsmith@nbcq", "Jonh Smith")
            .generate(NOW)
            .unwrap();
        assert_eq!(
            Poller::for_khqr(static_qr.as_str(), 1_000)
                .unwrap_err()
                .code()
                .number(),
            45
        );
        assert_eq!(Poller::for_khqr("", 1_000).unwrap_err().code().number(), 8);
        // A deadline of now: one check, then expired.
        let mut p = Poller::until(static_qr.md5(), NOW, 1_000);
        assert!(matches!(p.poll(&api(), NOW), Ok(PollStep::Send(_))));
        assert_eq!(
            p.poll(&api(), NOW),
            Ok(PollStep::Done(PollOutcome::Expired { expired_at_ms: NOW }))
        );
    }

    #[test]
    fn a_wrong_amount_is_not_paid() {
        let k = khqr(); // USD 2.50
        let wrong = |amount: &str, currency: &str| {
            Ok(HttpResponse::new(
                200,
                format!(r#"{{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":{{"hash":"h","currency":"{currency}","amount":{amount}}}}}"#).into_bytes(),
            ))
        };
        let script = Script::new(vec![
            wrong("2.49", "USD"),
            wrong("2.5", "KHR"),
            wrong("2.50", "USD"),
            wrong("2.49", "USD"),
        ]);
        for _ in 0..2 {
            let status = check_khqr(&script, &api(), k.as_str()).unwrap();
            assert!(
                matches!(status, TransactionStatus::AmountMismatch(_)),
                "{status:?}"
            );
        }
        assert!(matches!(
            check_khqr(&script, &api(), k.as_str()),
            Ok(TransactionStatus::Paid(_))
        ));
        // A poller that knows the QR ends on the mismatch; one that knows only
        // the MD5 cannot compare.
        let mut clock = FakeClock {
            now: NOW,
            slept: vec![],
        };
        let mut poller = Poller::for_khqr_until(k.as_str(), NOW + 5_000, 1_000).unwrap();
        let outcome = wait_for_payment(&script, &api(), &mut poller, &mut clock).unwrap();
        assert!(matches!(outcome, PollOutcome::AmountMismatch(ref tx) if tx.amount == "2.49"));
        assert_eq!(poller.deadline_ms(), NOW + 5_000);
        assert_eq!(
            Poller::for_khqr_until("", NOW, 1_000)
                .unwrap_err()
                .code()
                .number(),
            8
        );
    }

    struct Ready(HttpResponse);

    impl AsyncStatusChecker for Ready {
        type Error = ();
        fn send(&self, _: HttpRequest) -> impl Future<Output = Result<HttpResponse, ()>> + Send {
            core::future::ready(Ok(self.0.clone()))
        }
    }

    /// Runs a future that never waits on I/O (our test futures are all ready).
    fn block_on<F: Future>(f: F) -> F::Output {
        use core::task::{Context, Poll, Waker};
        let mut f = core::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1_000 {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
        panic!("future did not complete")
    }

    #[test]
    fn async_drivers() {
        let k = khqr();
        let checker = Ready(paid());
        let status = block_on(check_khqr_async(&checker, &api(), k.as_str())).unwrap();
        assert!(matches!(status, TransactionStatus::Paid(ref tx) if tx.currency == "USD"));
        let never = Ready(pending());
        let mut poller = Poller::for_khqr(k.as_str(), 10_000).unwrap();
        let now = core::cell::Cell::new(NOW);
        let outcome = block_on(wait_for_payment_async(
            &never,
            &api(),
            &mut poller,
            || now.get(),
            |ms| {
                now.set(now.get() + ms);
                core::future::ready(())
            },
        ));
        assert_eq!(
            outcome,
            Ok(PollOutcome::Expired {
                expired_at_ms: NOW + 20_000
            })
        );
    }
}
