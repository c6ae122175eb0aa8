//! `khqr status`: was this KHQR (or this MD5) paid? Asks Bakong's Open API
//! through the library's `UreqTransport`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bakong_khqr::status::{
    check_khqr, check_md5, Api, CheckError, Clock, PollOutcome, PollStep, Poller, ResponseError,
    StatusChecker, SystemClock, Token, Transaction, TransactionStatus, TransportConfig, UreqError,
    UreqTransport, PRODUCTION_BASE_URL,
};
use bakong_khqr::{Decoded, Md5};
use clap::Args;
use serde_json::json;

use crate::{iso8601, Failure};

/// Exit statuses of `khqr status` beyond 0 (paid), 1 (invalid input) and 2 (usage).
pub const EXIT_NOT_PAID: u8 = 3;
/// Paid, but not the QR's amount or currency.
pub const EXIT_MISMATCH: u8 = 4;
/// Bakong reports the transaction failed.
pub const EXIT_FAILED: u8 = 5;
/// No usable answer: token refused, geo-block, rate limit, server or network error.
pub const EXIT_NO_ANSWER: u8 = 6;

// The field docs are clap's --help text, where backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Args)]
#[command(after_help = "\
The token is read from the file given with --token-file, else from the BAKONG_TOKEN \
environment variable; it is never taken from the command line.

Exit status:
  0  paid: the amount and currency are the QR's (for an MD5: paid)
  1  invalid input: not a KHQR nor an MD5, no token, a static QR
  2  usage error
  3  not paid: pending, or with --wait, expired unpaid
  4  paid, but not the QR's amount or currency: do not hand over the goods
  5  Bakong reports the transaction failed
  6  no usable answer: token refused (renew it), forbidden (geo-block),
     rate limited, Bakong server error, network error or timeout")]
pub struct StatusArgs {
    /// The KHQR string, or the 32-hex-digit MD5 of one (`-` reads stdin).
    payload: String,
    /// Bakong Open API base URL (the test server is https://sit-api-bakong.nbc.gov.kh).
    #[arg(long, default_value = PRODUCTION_BASE_URL)]
    base_url: String,
    /// A file holding the Bakong token (default: the BAKONG_TOKEN environment variable).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Poll until paid, or until the QR expires (tag 99), showing progress on stderr.
    #[arg(long)]
    wait: bool,
    /// With --wait: the pause between two checks (at least 1s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    interval: Duration,
    /// With --wait: how long to wait for an MD5 or a QR without an expiration.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    wait_for: Duration,
    /// Timeout of one HTTP exchange with Bakong.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    http_timeout: Duration,
}

impl StatusArgs {
    /// The payload argument as given (`-` for stdin).
    pub fn payload(&self) -> &str {
        &self.payload
    }
}

/// The outcome printed on stdout, and the exit status.
pub struct Done {
    pub json: serde_json::Value,
    pub exit: u8,
    /// A line for stderr (not-paid outcomes say why).
    pub message: Option<String>,
}

fn failure(message: String) -> Failure {
    Failure {
        json: json!({"error": {"message": message}}),
        message,
        exit: 1,
    }
}

fn read_token(file: Option<&Path>) -> Result<Token, Failure> {
    let (text, source) = match file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| {
                failure(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            })?,
            format!("the token file {}", path.display()),
        ),
        None => (
            std::env::var("BAKONG_TOKEN").map_err(|_| {
                failure("no Bakong token: set BAKONG_TOKEN or pass --token-file FILE".to_owned())
            })?,
            "BAKONG_TOKEN".to_owned(),
        ),
    };
    Token::new(text.trim()).map_err(|e| failure(format!("{source}: {e}")))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn ms_json(t: Option<u64>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| json!(iso8601(t)))
}

fn transaction_json(tx: &Transaction) -> serde_json::Value {
    json!({
        "hash": tx.hash,
        "amount": tx.amount,
        "currency": tx.currency,
        "from": tx.from_account_id,
        "to": tx.to_account_id,
        "description": tx.description,
        "created": ms_json(tx.created_ms),
        "acknowledged": ms_json(tx.acknowledged_ms),
    })
}

fn paid(tx: &Transaction, md5: &Md5) -> Done {
    Done {
        json: json!({"status": "paid", "md5": md5.to_string(), "transaction": transaction_json(tx)}),
        exit: 0,
        message: None,
    }
}

fn mismatch(tx: &Transaction, md5: &Md5, payload: Option<&str>) -> Done {
    let want = payload
        .and_then(|p| Decoded::parse(p).ok())
        .map(|d| {
            format!(
                "{} {}",
                d.transaction_amount().unwrap_or("any amount"),
                d.currency().map_or("?", bakong_khqr::Currency::alpha)
            )
        })
        .unwrap_or_default();
    Done {
        json: json!({"status": "amount_mismatch", "md5": md5.to_string(), "transaction": transaction_json(tx)}),
        exit: EXIT_MISMATCH,
        message: Some(format!(
            "paid {} {} but the QR asks for {want}: do not hand over the goods",
            tx.amount, tx.currency
        )),
    }
}

fn not_paid(status: &str, md5: &Md5, exit: u8, message: &str) -> Done {
    Done {
        json: json!({"status": status, "md5": md5.to_string()}),
        exit,
        message: Some(message.to_owned()),
    }
}

fn from_status(status: &TransactionStatus, md5: &Md5, payload: Option<&str>) -> Done {
    match status {
        TransactionStatus::Paid(tx) => paid(tx, md5),
        TransactionStatus::AmountMismatch(tx) => mismatch(tx, md5, payload),
        TransactionStatus::Pending => not_paid("pending", md5, EXIT_NOT_PAID, "not paid yet"),
        TransactionStatus::Failed => not_paid(
            "failed",
            md5,
            EXIT_FAILED,
            "Bakong reports the transaction failed",
        ),
        TransactionStatus::StaticQrUnsupported => not_paid(
            "static_qr_unsupported",
            md5,
            1,
            "a static KHQR (no amount) cannot be checked by its MD5",
        ),
        _ => not_paid(
            "unknown",
            md5,
            EXIT_NO_ANSWER,
            "an outcome this khqr does not know",
        ),
    }
}

fn check_failure(e: &CheckError<UreqError>) -> Failure {
    let (kind, exit) = match e {
        CheckError::Request(_) | CheckError::Khqr(_) => ("request", 1),
        CheckError::Transport(_) => ("transport", EXIT_NO_ANSWER),
        CheckError::Response(r) => (
            match r {
                ResponseError::Unauthorized { .. } => "unauthorized",
                ResponseError::Forbidden => "forbidden",
                ResponseError::RateLimited { .. } => "rate_limited",
                ResponseError::ServerError { .. } => "server_error",
                _ => "bad_answer",
            },
            EXIT_NO_ANSWER,
        ),
    };
    let message = e.to_string();
    Failure {
        json: json!({"error": {"kind": kind, "message": message}}),
        message,
        exit: 1,
    }
    .with_exit(exit)
}

/// One line of progress on stderr, rewritten in place.
struct Progress {
    tty: bool,
    shown: bool,
}

impl Progress {
    fn show(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        let clear = if self.tty { "\x1b[K" } else { "" };
        let _ = write!(err, "\r{line}{clear}");
        let _ = err.flush();
        self.shown = true;
    }

    fn end(&mut self) {
        if self.shown {
            let _ = writeln!(std::io::stderr().lock());
            self.shown = false;
        }
    }
}

fn left(ms: u64) -> String {
    humantime::format_duration(Duration::from_secs(ms.div_ceil(1000))).to_string()
}

pub fn run(a: &StatusArgs, input: &str) -> Result<Done, Failure> {
    let input = input.trim();
    let (md5, payload) = if input.len() == 32 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
        (
            input.parse::<Md5>().map_err(|e| failure(e.to_string()))?,
            None,
        )
    } else {
        Decoded::parse(input)?;
        (Md5::of(input), Some(input))
    };
    let api = Api::new(&a.base_url)
        .map_err(|e| failure(format!("--base-url: {e}")))?
        .with_token(read_token(a.token_file.as_deref())?);
    let transport = UreqTransport::with_config(
        &TransportConfig::default().timeout_ms(ms(a.http_timeout).max(1)),
    );
    if !a.wait {
        let status = match payload {
            Some(p) => check_khqr(&transport, &api, p),
            None => check_md5(&transport, &api, &md5),
        }
        .map_err(|e| check_failure(&e))?;
        return Ok(from_status(&status, &md5, payload));
    }
    let mut clock = SystemClock;
    let interval = ms(a.interval);
    let deadline = clock.now_ms().saturating_add(ms(a.wait_for));
    let mut poller = match payload {
        // Until the QR's expiration (tag 99); a QR without one (a bank's
        // dynamic QR) waits --wait-for, still comparing a payment with the QR.
        Some(p) => Poller::for_khqr(p, interval)
            .or_else(|_| Poller::for_khqr_until(p, deadline, interval))?,
        None => Poller::until(md5, deadline, interval),
    };
    wait(&transport, &api, &mut poller, &mut clock, &md5, payload)
}

fn wait(
    transport: &UreqTransport,
    api: &Api,
    poller: &mut Poller,
    clock: &mut SystemClock,
    md5: &Md5,
    payload: Option<&str>,
) -> Result<Done, Failure> {
    let mut progress = Progress {
        tty: std::io::stderr().is_terminal(),
        shown: false,
    };
    let deadline = poller.deadline_ms();
    let mut checks = 0u32;
    let result = loop {
        let now = clock.now_ms();
        let step = match poller.poll(api, now) {
            Ok(step) => step,
            Err(e) => break Err(check_failure(&CheckError::Request(e))),
        };
        match step {
            PollStep::Send(request) => {
                checks += 1;
                let last = match transport.send(request) {
                    Ok(response) => match poller.handle(clock.now_ms(), &response) {
                        Ok(Some(outcome)) => break Ok(outcome),
                        // Pending, or a 429 / 5xx the poller retries.
                        Ok(None) => match bakong_khqr::status::parse_transaction(&response) {
                            Ok(_) => "pending".to_owned(),
                            Err(e) => e.to_string(),
                        },
                        Err(e) => break Err(check_failure(&CheckError::Response(e))),
                    },
                    // A network failure is retried at the next check until the deadline.
                    Err(e) => format!("network error: {e}"),
                };
                let now = clock.now_ms();
                progress.show(&format!(
                    "khqr: {last}; {checks} check{} so far, {} left (until {})",
                    if checks == 1 { "" } else { "s" },
                    left(deadline.saturating_sub(now)),
                    iso8601(deadline)
                ));
            }
            PollStep::Wait { until_ms } => clock.sleep_ms(until_ms.saturating_sub(now)),
            PollStep::Done(outcome) => break Ok(outcome),
            _ => break Err(failure("an unknown polling step".to_owned())),
        }
    };
    progress.end();
    Ok(match result? {
        PollOutcome::Paid(tx) => paid(&tx, md5),
        PollOutcome::AmountMismatch(tx) => mismatch(&tx, md5, payload),
        PollOutcome::Failed => from_status(&TransactionStatus::Failed, md5, payload),
        PollOutcome::StaticQrUnsupported => {
            from_status(&TransactionStatus::StaticQrUnsupported, md5, payload)
        }
        PollOutcome::Expired { expired_at_ms } => Done {
            json: json!({"status": "expired", "md5": md5.to_string(), "expired_at": iso8601(expired_at_ms)}),
            exit: EXIT_NOT_PAID,
            message: Some(format!(
                "not paid by {} ({checks} checks)",
                iso8601(expired_at_ms)
            )),
        },
        _ => not_paid(
            "unknown",
            md5,
            EXIT_NO_ANSWER,
            "an outcome this khqr does not know",
        ),
    })
}
