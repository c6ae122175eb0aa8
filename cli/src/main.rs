//! `khqr`: create, decode, verify and draw Bakong KHQR payments from the command
//! line, and check whether one was paid.
//!
//! Output is one JSON object on stdout. Exit status: 0 on success; 1 for invalid
//! input or an invalid payload (a JSON error on stdout, a one-line message on
//! stderr); 2 for usage errors; `khqr status` adds 3–6 (see its `--help`).
//! `khqr payments export` writes CSV (to stdout, or to a file and then the
//! JSON `{"file","bytes"}`) and exits 6 when the server fails.

mod payments;
mod status;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use bakong_khqr::json::{request_from_json, Kind};
use bakong_khqr::render::{
    card_png, card_svg, qr_png, qr_svg, CardOptions, CentreIcon, Ecc, QrOptions,
};
use bakong_khqr::{
    now_ms as clock_ms, Amount, Currency, Decoded, Error, ErrorCode, Field, MerchantInfo, Request,
    SdkFields, VerifyOptions,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "khqr",
    version,
    about = "Create, decode, verify and draw Bakong KHQR payment codes, offline; check whether one was paid"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a KHQR: prints {"qr","md5","tran"}; --png, --card, --card-svg, --svg also write the QR, the card, the card for print, the QR SVG.
    Create(Box<CreateArgs>),
    /// Decode a KHQR string: the official SDK's 25 fields plus every raw tag.
    Decode {
        /// The KHQR string (`-` reads it from stdin).
        payload: String,
    },
    /// Verify a KHQR string: {"valid":true} or the reason it is invalid.
    Verify {
        /// The KHQR string (`-` reads it from stdin).
        payload: String,
        /// The time to check expiry against, in ms since the Unix epoch (default: now).
        #[arg(long)]
        now_ms: Option<u64>,
        /// Accept dynamic QRs without an expiration timestamp (many bank apps print them).
        #[arg(long)]
        allow_missing_expiration: bool,
    },
    /// Ask Bakong whether a KHQR (or an MD5) was paid: prints {"status",...}; --wait polls until paid or expired.
    Status(Box<status::StatusArgs>),
    /// A merchant's payments on a khqr-server: `payments export` fetches them as CSV.
    Payments {
        #[command(subcommand)]
        command: payments::PaymentsCommand,
    },
    /// Draw any KHQR string as a QR PNG, a KHQR card (PNG and/or SVG for print) and/or a QR SVG.
    #[command(group(clap::ArgGroup::new("out").args(["png", "card", "card_svg", "svg"]).required(true).multiple(true)))]
    Render {
        /// The KHQR string (`-` reads it from stdin).
        payload: String,
        /// Where to write the plain QR PNG.
        #[arg(long)]
        png: Option<PathBuf>,
        #[command(flatten)]
        image: ImageArgs,
        #[command(flatten)]
        card: CardArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Individual,
    Merchant,
}

#[derive(Clone, Copy, ValueEnum)]
enum EccArg {
    L,
    M,
    Q,
    H,
}

#[derive(Args)]
struct ImageArgs {
    /// Pixels per QR module.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    module_px: u32,
    /// Error-correction level of the QR symbol (any case).
    #[arg(long, value_enum, default_value = "m", ignore_case = true)]
    ecc: EccArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum IconArg {
    /// A dark badge with $ or ៛.
    Currency,
    /// A red badge with $ or ៛.
    Bakong,
    /// No centre icon.
    None,
}

#[derive(Args)]
struct CardArgs {
    /// Also write the branded KHQR card PNG to this file (`--stand` is an old
    /// name for it).
    #[arg(long, alias = "stand")]
    card: Option<PathBuf>,
    /// Also write the card as SVG for print shops to this file: the same card
    /// with text and marks as vector paths (no fonts needed), printed
    /// 101.6 x 147.32 mm (4 x 5.8 in) at any --scale; --scale and --icon apply.
    #[arg(long, value_name = "FILE")]
    card_svg: Option<PathBuf>,
    /// Also write the plain QR as SVG to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Card size: 1 is 300x435 pixels, 4 about A6 at 300 dpi.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10))]
    scale: u32,
    /// The icon in the middle of the card's QR.
    #[arg(long, value_enum, default_value = "currency")]
    icon: IconArg,
}

#[derive(Args)]
struct CreateArgs {
    /// Individual (tag 29) or merchant (tag 30) account.
    #[arg(long, value_enum, default_value = "individual")]
    kind: KindArg,
    /// The whole request as the official SDK's JSON (`-` reads stdin); the field flags cannot be combined with it.
    #[arg(long, conflicts_with_all = [
        "bakong_id", "merchant_name", "merchant_city", "merchant_id", "acquiring_bank",
        "account_information", "amount", "currency", "expires_in", "expires_at_ms",
        "bill_number", "mobile_number", "store_label", "terminal_label", "purpose",
        "language_preference", "merchant_name_alt", "merchant_city_alt",
        "upi_merchant_account", "mcc",
    ])]
    request: Option<String>,
    /// Bakong account ID, e.g. merchant@abaa.
    #[arg(long, alias = "bakongid", required_unless_present = "request")]
    bakong_id: Option<String>,
    /// Merchant name shown to the payer (≤ 25 characters).
    #[arg(long, alias = "merchantname", required_unless_present = "request")]
    merchant_name: Option<String>,
    /// Merchant city (≤ 15 characters; default Phnom Penh).
    #[arg(long)]
    merchant_city: Option<String>,
    /// Merchant ID (merchant kind).
    #[arg(long)]
    merchant_id: Option<String>,
    /// Acquiring bank (required for the merchant kind).
    #[arg(long)]
    acquiring_bank: Option<String>,
    /// Account information (individual kind).
    #[arg(long)]
    account_information: Option<String>,
    /// Amount as decimal text, more than zero (USD ≤ 2 decimals, KHR whole); omit for a static QR.
    #[arg(long, allow_hyphen_values = true)]
    amount: Option<String>,
    /// USD or KHR (or 840 / 116). USD by default, as in khqr-server's /khqr/create.
    #[arg(long, default_value = "USD")]
    currency: String,
    /// Expiry of a dynamic QR after now, e.g. 10m, 90s, 1h (default 10m when an amount is given).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "expires_at_ms")]
    expires_in: Option<std::time::Duration>,
    /// Expiry of a dynamic QR, in ms since the Unix epoch.
    #[arg(long)]
    expires_at_ms: Option<u64>,
    /// Bill number (tag 62.01).
    #[arg(long)]
    bill_number: Option<String>,
    /// Mobile number (tag 62.02).
    #[arg(long)]
    mobile_number: Option<String>,
    /// Store label (tag 62.03).
    #[arg(long)]
    store_label: Option<String>,
    /// Terminal label (tag 62.07).
    #[arg(long)]
    terminal_label: Option<String>,
    /// Purpose of transaction (tag 62.08).
    #[arg(long)]
    purpose: Option<String>,
    /// Language preference, e.g. km (tag 64.00).
    #[arg(long)]
    language_preference: Option<String>,
    /// Merchant name in the alternate language (tag 64.01).
    #[arg(long)]
    merchant_name_alt: Option<String>,
    /// Merchant city in the alternate language (tag 64.02).
    #[arg(long)]
    merchant_city_alt: Option<String>,
    /// UnionPay merchant account (tag 15; KHR only).
    #[arg(long)]
    upi_merchant_account: Option<String>,
    /// Merchant category code, 4 digits (default 5999).
    #[arg(long)]
    mcc: Option<String>,
    /// The creation time, in ms since the Unix epoch (default: now).
    #[arg(long)]
    now_ms: Option<u64>,
    /// Also write the QR as a PNG to this file.
    #[arg(long)]
    png: Option<PathBuf>,
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    card: CardArgs,
}

/// A failure: the JSON printed on stdout, the line printed on stderr, and the
/// exit status (1 unless said otherwise).
struct Failure {
    json: serde_json::Value,
    message: String,
    exit: u8,
}

impl Failure {
    fn with_exit(mut self, exit: u8) -> Self {
        self.exit = exit;
        self
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            json: json!({"error": error_json(&e)}),
            message: error_message(&e),
            exit: 1,
        }
    }
}

fn io_failure(what: &str, e: &dyn std::fmt::Display) -> Failure {
    let message = format!("{what}: {e}");
    Failure {
        json: json!({"error": {"message": message}}),
        message,
        exit: 1,
    }
}

fn error_json(e: &Error) -> serde_json::Value {
    json!({
        "code": e.code().number(),
        "name": e.code().name(),
        "message": error_message(e),
        "sdkMessage": e.sdk_message(),
    })
}

/// `ms` (since the Unix epoch) as ISO 8601 in UTC with milliseconds, e.g.
/// `2023-11-14T22:13:20.000Z`; past the year 9999, the number of milliseconds.
fn iso8601(ms: u64) -> String {
    const YEAR_10000_MS: u64 = 253_402_300_800_000;
    if ms >= YEAR_10000_MS {
        return format!("{ms} ms since the Unix epoch");
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The library's message, with the times of the expiry errors (46, 50) in
/// ISO 8601 UTC instead of raw milliseconds.
fn error_message(e: &Error) -> String {
    let text = e.to_string();
    if !matches!(
        e.code(),
        ErrorCode::KhqrExpired | ErrorCode::ExpirationTimestampInThePast
    ) {
        return text;
    }
    let text = text.replace(" ms since the Unix epoch", "");
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text.as_str();
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let digits = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len() - start, |n| n);
        let number = &rest[start..start + digits];
        match number.parse::<u64>() {
            // Epoch milliseconds from 2001 to 2286 have 13 digits.
            Ok(ms) if digits == 13 => out.push_str(&iso8601(ms)),
            _ => out.push_str(number),
        }
        rest = &rest[start + digits..];
    }
    out.push_str(rest);
    out
}

fn qr_options(a: &ImageArgs) -> QrOptions {
    let ecc = match a.ecc {
        EccArg::L => Ecc::L,
        EccArg::M => Ecc::M,
        EccArg::Q => Ecc::Q,
        EccArg::H => Ecc::H,
    };
    QrOptions::default().module_px(a.module_px).ecc(ecc)
}

fn write_png(payload: &str, path: &PathBuf, image: &ImageArgs) -> Result<(), Failure> {
    let png =
        qr_png(payload, &qr_options(image)).map_err(|e| io_failure("cannot draw the QR", &e))?;
    write_file(path, png)
}

/// Writes `bytes` to `path`; a failure names the file.
fn write_file(path: &PathBuf, bytes: impl AsRef<[u8]>) -> Result<(), Failure> {
    std::fs::write(path, bytes)
        .map_err(|e| io_failure(&format!("cannot write {}", path.display()), &e))
}

/// Writes the card and the SVG that `card` asks for; returns the files written.
fn write_card_svg(
    payload: &str,
    card: &CardArgs,
    image: &ImageArgs,
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), Failure> {
    let icon = match card.icon {
        IconArg::Currency => CentreIcon::Currency,
        IconArg::Bakong => CentreIcon::BakongRed,
        IconArg::None => CentreIcon::None,
    };
    let options = CardOptions::default().scale(card.scale).centre_icon(icon);
    if let Some(path) = &card.card {
        let png =
            card_png(payload, &options).map_err(|e| io_failure("cannot draw the card", &e))?;
        write_file(path, png)?;
        out.insert("card".into(), json!(path.display().to_string()));
    }
    if let Some(path) = &card.card_svg {
        let svg =
            card_svg(payload, &options).map_err(|e| io_failure("cannot draw the card", &e))?;
        write_file(path, svg)?;
        out.insert("card_svg".into(), json!(path.display().to_string()));
    }
    if let Some(path) = &card.svg {
        let svg = qr_svg(payload, &qr_options(image))
            .map_err(|e| io_failure("cannot draw the QR", &e))?;
        write_file(path, svg)?;
        out.insert("svg".into(), json!(path.display().to_string()));
    }
    Ok(())
}

fn create(a: &CreateArgs) -> Result<serde_json::Value, Failure> {
    let now_ms = a.now_ms.unwrap_or_else(clock_ms);
    let kind = match a.kind {
        KindArg::Individual => Kind::Individual,
        KindArg::Merchant => Kind::Merchant,
    };
    let khqr = if let Some(req) = &a.request {
        request_from_json(kind, &request_arg(req)?)?.generate(now_ms)?
    } else {
        request_from_flags(a, kind)?.generate(now_ms)?
    };
    let mut out = serde_json::Map::new();
    out.insert("qr".into(), json!(khqr.as_str()));
    out.insert("md5".into(), json!(khqr.md5().to_string()));
    out.insert("tran".into(), json!(khqr.tran_id().as_str()));
    // The files written, by kind, after the QR's identity.
    if let Some(path) = &a.png {
        write_png(khqr.as_str(), path, &a.image)?;
        out.insert("png".into(), json!(path.display().to_string()));
    }
    write_card_svg(khqr.as_str(), &a.card, &a.image, &mut out)?;
    Ok(serde_json::Value::Object(out))
}

/// The `--request` argument: the JSON itself, or `-` to read it from stdin.
fn request_arg(arg: &str) -> Result<String, Failure> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| io_failure("cannot read the request from stdin", &e))?;
    Ok(s)
}

/// The request the field flags describe. Every text flag goes through
/// `Request::set`, so a flag of the other kind (`--merchant-id` for an
/// individual, `--account-information` for a merchant) makes `generate`
/// refuse the request (60) instead of being ignored.
fn request_from_flags(a: &CreateArgs, kind: Kind) -> Result<Request<'_>, Failure> {
    let id = a.bakong_id.as_deref().unwrap_or_default();
    let name = a.merchant_name.as_deref().unwrap_or_default();
    let mut r = match kind {
        Kind::Merchant => Request::merchant(MerchantInfo {
            bakong_account_id: id,
            merchant_name: name,
            merchant_id: "",
            acquiring_bank: "",
        }),
        _ => Request::individual(id, name),
    };
    let currency = Currency::parse(&a.currency)?;
    r = r.currency(currency);
    let amount = match &a.amount {
        Some(text) => Some(positive_amount(text, currency)?),
        None => None,
    };
    for (field, value) in [
        (Field::MerchantId, &a.merchant_id),
        (Field::AcquiringBank, &a.acquiring_bank),
        (Field::AccountInformation, &a.account_information),
        (Field::MerchantCity, &a.merchant_city),
        (Field::BillNumber, &a.bill_number),
        (Field::MobileNumber, &a.mobile_number),
        (Field::StoreLabel, &a.store_label),
        (Field::TerminalLabel, &a.terminal_label),
        (Field::PurposeOfTransaction, &a.purpose),
        (Field::LanguagePreference, &a.language_preference),
        (Field::MerchantNameAlternateLanguage, &a.merchant_name_alt),
        (Field::MerchantCityAlternateLanguage, &a.merchant_city_alt),
        (Field::UnionPayMerchantAccount, &a.upi_merchant_account),
        (Field::MerchantCategoryCode, &a.mcc),
    ] {
        if let Some(v) = value {
            r = r.set(field, v.as_str());
        }
    }
    if let Some(text) = &a.amount {
        r = r.amount(text.as_str());
    }
    // An amount (never zero here) makes a dynamic KHQR, which expires.
    Ok(match (a.expires_at_ms, a.expires_in) {
        (Some(at), _) => r.expires_at_ms(at),
        (None, Some(d)) => r.expires_in_ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        (None, None) if amount.is_some() => r.expires_in_ms(10 * 60 * 1000),
        (None, None) => r,
    })
}

/// `--amount` read for `currency`; zero is refused: the library reads it as no
/// amount (a static QR), and a typed amount must pay something.
fn positive_amount(text: &str, currency: Currency) -> Result<Amount, Failure> {
    let amount = Amount::parse(text, currency)?;
    if !amount.is_zero() {
        return Ok(amount);
    }
    let code = ErrorCode::TransactionAmountInvalid;
    let message = format!(
        "transaction amount (tag 54) must be more than zero: {text:?}; omit --amount for a static QR"
    );
    Err(Failure {
        json: json!({"error": {
            "code": code.number(),
            "name": code.name(),
            "message": message,
            "sdkMessage": code.sdk_message(),
        }}),
        message,
        exit: 1,
    })
}

#[derive(Serialize)]
struct SubOut<'a> {
    tag: String,
    length: u8,
    value: &'a str,
}

#[derive(Serialize)]
struct TagOut<'a> {
    tag: String,
    length: u8,
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<Vec<SubOut<'a>>>,
}

#[derive(Serialize)]
struct DecodeOut<'a> {
    #[serde(flatten)]
    fields: SdkFields<'a>,
    tags: Vec<TagOut<'a>>,
}

fn decode_json(d: &Decoded<'_>) -> serde_json::Value {
    let tags = d
        .iter()
        .map(|e| TagOut {
            tag: format!("{:02}", e.id()),
            length: e.object.length(),
            value: e.value(),
            sub: e.children.map(|c| {
                c.iter()
                    .map(|o| SubOut {
                        tag: format!("{:02}", o.id()),
                        length: o.length(),
                        value: o.value(),
                    })
                    .collect()
            }),
        })
        .collect();
    serde_json::to_value(DecodeOut {
        fields: d.sdk_fields(),
        tags,
    })
    .unwrap_or(serde_json::Value::Null)
}

/// The payload argument; `-` reads it from stdin, trimmed of surrounding
/// whitespace (the line endings `echo` and editors add; a KHQR never starts or
/// ends with a space: tag 00 comes first and the CRC last).
fn payload_arg(arg: &str) -> Result<String, Failure> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| io_failure("cannot read the payload from stdin", &e))?;
    Ok(s.trim().to_owned())
}

/// Refuses to draw text that is not a KHQR: it must decode and pass verify's
/// form check (it ends with `6304` and the CRC of what precedes it; else
/// [`ErrorCode::KhqrInvalid`], 8, the library's error as `verify` reports it).
/// Verify's other findings do not stop drawing: expired or otherwise imperfect
/// bank QRs may still be restyled.
fn check_drawable(payload: &str) -> Result<(), Failure> {
    bakong_khqr::decode(payload)?;
    let options = VerifyOptions::new().allow_missing_expiration(true);
    match bakong_khqr::verify_with(payload, 0, &options) {
        Err(e) if e.code() == ErrorCode::KhqrInvalid => Err(Failure {
            json: json!({"error": error_json(&e)}),
            message: format!("not a KHQR: {}", error_message(&e)),
            exit: 1,
        }),
        _ => Ok(()),
    }
}

fn run(cli: &Cli) -> Result<serde_json::Value, Failure> {
    match &cli.command {
        Command::Status(a) => {
            let input = payload_arg(a.payload())?;
            let done = status::run(a, &input)?;
            if done.exit == 0 {
                Ok(done.json)
            } else {
                Err(Failure {
                    message: done.message.unwrap_or_default(),
                    json: done.json,
                    exit: done.exit,
                })
            }
        }
        Command::Create(a) => create(a),
        Command::Payments { command } => Ok(payments::run(command)?.unwrap_or_default()),
        Command::Decode { payload } => {
            let payload = payload_arg(payload)?;
            Ok(decode_json(&bakong_khqr::decode(&payload)?))
        }
        Command::Verify {
            payload,
            now_ms,
            allow_missing_expiration,
        } => {
            let options = VerifyOptions::new().allow_missing_expiration(*allow_missing_expiration);
            let payload = payload_arg(payload)?;
            match bakong_khqr::verify_with(&payload, now_ms.unwrap_or_else(clock_ms), &options) {
                Ok(_) => Ok(json!({"valid": true})),
                Err(e) => Err(Failure {
                    json: json!({"valid": false, "error": error_json(&e)}),
                    message: format!("invalid KHQR: {}", error_message(&e)),
                    exit: 1,
                }),
            }
        }
        Command::Render {
            payload,
            png,
            image,
            card,
        } => {
            let payload = payload_arg(payload)?;
            check_drawable(&payload)?;
            let mut out = serde_json::Map::new();
            if let Some(png) = png {
                write_png(&payload, png, image)?;
                out.insert("png".into(), json!(png.display().to_string()));
            }
            write_card_svg(&payload, card, image, &mut out)?;
            Ok(serde_json::Value::Object(out))
        }
    }
}

/// Writes a line without panicking when the reader has gone (a closed pipe).
fn emit(mut out: impl Write, line: &dyn std::fmt::Display) {
    let _ = writeln!(out, "{line}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An export to stdout prints the CSV, not a JSON line after it.
    let done = match &cli.command {
        Command::Payments { command } => payments::run(command),
        _ => run(&cli).map(Some),
    };
    match done {
        Ok(v) => {
            if let Some(v) = v {
                emit(std::io::stdout().lock(), &v);
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            emit(std::io::stdout().lock(), &f.json);
            emit(
                std::io::stderr().lock(),
                &format_args!("khqr: {}", f.message),
            );
            ExitCode::from(f.exit)
        }
    }
}
