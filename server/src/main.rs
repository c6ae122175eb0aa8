//! `khqr-server`: run the reference server.
//!
//! Every setting is a flag or an environment variable (the flag wins):
//!
//! | flag | variable | default |
//! |---|---|---|
//! | `--listen ADDR` | `KHQR_LISTEN` | `127.0.0.1:8080` |
//! | `--public-url URL` | `KHQR_PUBLIC_URL` | `http://<listen address>` |
//! | `--bakong-url URL` | `BAKONG_API_URL` | `https://api-bakong.nbc.gov.kh` |
//! | `--token JWT` | `BAKONG_TOKEN` | none: status checks answer 503 |
//! | `--qr-ttl-secs N` | `KHQR_QR_TTL_SECS` | `600` |

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use bakong_khqr::status::Token;
use khqr_server::{router, Config};

const USAGE: &str = "usage: khqr-server [--listen ADDR] [--public-url URL] [--bakong-url URL] [--token JWT] [--qr-ttl-secs N]
environment: KHQR_LISTEN, KHQR_PUBLIC_URL, BAKONG_API_URL, BAKONG_TOKEN, KHQR_QR_TTL_SECS";

struct Args {
    listen: String,
    public_url: Option<String>,
    bakong_url: Option<String>,
    token: Option<String>,
    ttl_secs: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut a = Args {
        listen: env("KHQR_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into()),
        public_url: env("KHQR_PUBLIC_URL"),
        bakong_url: env("BAKONG_API_URL"),
        token: env("BAKONG_TOKEN"),
        ttl_secs: env("KHQR_QR_TTL_SECS"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => a.listen = value,
            "--public-url" => a.public_url = Some(value),
            "--bakong-url" => a.bakong_url = Some(value),
            "--token" => a.token = Some(value),
            "--qr-ttl-secs" => a.ttl_secs = Some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("khqr-server: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut config = Config::new(
        args.public_url
            .unwrap_or_else(|| format!("http://{}", args.listen)),
    );
    if let Some(u) = args.bakong_url {
        config.bakong_base_url = u;
    }
    config.token = args.token;
    if let Some(t) = args.ttl_secs {
        match t.parse::<u64>() {
            Ok(s) if s > 0 => config.qr_ttl_ms = s.saturating_mul(1000),
            _ => {
                eprintln!("khqr-server: --qr-ttl-secs must be a positive number of seconds");
                return ExitCode::from(2);
            }
        }
    }
    match &config.token {
        None => eprintln!("khqr-server: no BAKONG_TOKEN: status checks will answer 503"),
        Some(t) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            if let Some(exp) = Token::new(t.trim())
                .ok()
                .and_then(|t| t.expires_at_ms().ok())
            {
                if exp <= now {
                    eprintln!("khqr-server: warning: the Bakong token expired; renew it");
                } else {
                    eprintln!(
                        "khqr-server: Bakong token valid for {} more days",
                        (exp - now) / 86_400_000
                    );
                }
            }
        }
    }
    let app = match router(&config) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("khqr-server: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("khqr-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        eprintln!(
            "khqr-server: listening on http://{} (Bakong API {})",
            listener.local_addr()?,
            config.bakong_base_url
        );
        axum::serve(listener, app).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("khqr-server: {e}");
            ExitCode::FAILURE
        }
    }
}
