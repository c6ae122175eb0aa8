//! `khqr payments export`: a merchant's payments as CSV, fetched from a
//! `khqr-server` (`GET /khqr/merchant/payments.csv`) through `ureq`, the
//! blocking HTTP client `khqr status` already uses, and streamed to a file
//! or stdout as it arrives (memory stays flat however long the file).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::Failure;

/// Exit status when the server could not be reached or answered with an error.
pub const EXIT_SERVER: u8 = 6;

/// `khqr payments …`.
#[derive(Subcommand)]
pub enum PaymentsCommand {
    /// Fetch a merchant's payments from a khqr-server as CSV (RFC 4180), to a file (-o) or stdout.
    Export(ExportArgs),
}

// The field docs are clap's --help text, where backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Args)]
#[command(after_help = "\
The key is read from --key, else from the KHQR_API_KEY environment variable (prefer the \
variable: a command line is visible to other users of the machine).

Exit status:
  0  the whole export was written
  1  the output file cannot be written
  2  usage error
  6  the server cannot be reached, answered with an error (its message is shown), or the
     transfer broke off")]
pub struct ExportArgs {
    /// The server's base URL, e.g. https://pay.example.com
    #[arg(long)]
    server: String,
    /// The merchant's API key (khqr_sk_…).
    #[arg(long, env = "KHQR_API_KEY", hide_env_values = true)]
    key: String,
    /// Created at or after: ISO 8601 UTC (2026-12-06T08:00:00Z) or ms since the Unix epoch.
    #[arg(long)]
    from: Option<String>,
    /// Created before: ISO 8601 UTC or ms since the Unix epoch.
    #[arg(long)]
    to: Option<String>,
    /// Only this status: pending, paid, expired or paid_late.
    #[arg(long)]
    status: Option<String>,
    /// Only QRs for this Bakong account.
    #[arg(long)]
    bakongid: Option<String>,
    /// Write the CSV to this file (default: stdout).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Longest wait to connect and for the answer to start (the transfer itself has no limit).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    timeout: Duration,
}

/// Runs `khqr payments …`: `Some` JSON summary when the CSV went to a file,
/// `None` when it went to stdout.
pub fn run(cmd: &PaymentsCommand) -> Result<Option<serde_json::Value>, Failure> {
    match cmd {
        PaymentsCommand::Export(a) => export(a),
    }
}

fn server_failure(message: String, json: serde_json::Value) -> Failure {
    Failure {
        json,
        message,
        exit: EXIT_SERVER,
    }
}

/// The server's `message` from its JSON error body, else the start of the body.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

fn export(a: &ExportArgs) -> Result<Option<serde_json::Value>, Failure> {
    let url = format!(
        "{}/khqr/merchant/payments.csv",
        a.server.trim_end_matches('/')
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(a.timeout))
        .timeout_recv_response(Some(a.timeout))
        .build()
        .into();
    let filters = [
        ("from", &a.from),
        ("to", &a.to),
        ("status", &a.status),
        ("bakongid", &a.bakongid),
    ];
    let query = filters
        .iter()
        .filter_map(|(name, v)| v.as_deref().map(|v| (*name, v)));
    let mut resp = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {}", a.key.trim()))
        .query_pairs(query)
        .call()
        .map_err(|e| {
            server_failure(
                format!("cannot fetch {url}: {e}"),
                json!({"error": {"kind": "unreachable", "message": e.to_string()}}),
            )
        })?;
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let message = error_message(&body);
        return Err(server_failure(
            format!("the server answered {status}: {message}"),
            json!({"error": {"status": status, "message": message}}),
        ));
    }
    let mut reader = resp.body_mut().as_reader();
    if let Some(path) = &a.output {
        let bytes = copy_to_file(&mut reader, path, &url)?;
        return Ok(Some(
            json!({"file": path.display().to_string(), "bytes": bytes}),
        ));
    }
    copy(&mut reader, &mut std::io::stdout().lock(), &url)?;
    Ok(None)
}

/// Copies the body to `out`; a broken transfer is the server's failure, a
/// failed write the output's.
fn copy(body: &mut impl std::io::Read, out: &mut impl Write, url: &str) -> Result<u64, Failure> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(server_failure(
                    format!("the transfer from {url} broke off after {total} bytes: {e}"),
                    json!({"error": {"kind": "broken", "message": e.to_string(), "bytes": total}}),
                ))
            }
        };
        out.write_all(&buf[..n]).map_err(|e| write_failure(&e))?;
        total += n as u64;
    }
    out.flush().map_err(|e| write_failure(&e))?;
    Ok(total)
}

fn write_failure(e: &std::io::Error) -> Failure {
    Failure {
        json: json!({"error": {"kind": "write", "message": e.to_string()}}),
        message: format!("cannot write the export: {e}"),
        exit: 1,
    }
}

/// Copies the body into `path` through a temporary file beside it, renamed
/// into place only once the whole export arrived (a broken transfer leaves
/// no half file under the name asked for).
fn copy_to_file(body: &mut impl std::io::Read, path: &Path, url: &str) -> Result<u64, Failure> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial).map_err(|e| write_failure(&e))?;
    let mut out = std::io::BufWriter::new(file);
    let copied = copy(body, &mut out, url).and_then(|n| {
        out.into_inner()
            .map_err(|e| write_failure(e.error()))
            .and_then(|f| f.sync_all().map_err(|e| write_failure(&e)))
            .map(|()| n)
    });
    match copied {
        Ok(n) => {
            std::fs::rename(&partial, path).map_err(|e| write_failure(&e))?;
            Ok(n)
        }
        Err(f) => {
            let _ = std::fs::remove_file(&partial);
            Err(f)
        }
    }
}
