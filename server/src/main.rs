//! `khqr-server`: run the server. `khqr-server --help` lists every option; each
//! is also an environment variable (the flag wins). The Bakong token is never a
//! flag: `BAKONG_TOKEN` in the environment or `--token-file`.
//!
//! `khqr-server [--store URL] merchant …` manages merchants in the store
//! instead of serving (see [`khqr_server::merchant::MerchantCommand`]).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use bakong_khqr::status::Token;
use clap::{CommandFactory, FromArgMatches, Subcommand};
use khqr_server::merchant::MerchantCommand;
use khqr_server::store::{AnyStore, MemoryStore, RedisStore};
use khqr_server::{app, serve, Config, LogFormat, Secret};

/// `mimalloc`: the create path allocates a few dozen small blocks per request,
/// and glibc's allocator took about a fifth of the server's time there (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal: draining");
}

/// The Bakong token, which never comes from argv: `BAKONG_TOKEN`. Webhook
/// secrets are per merchant now: a `KHQR_WEBHOOK_SECRET(_FILE)` left in the
/// environment is ignored, with a warning.
fn read_secrets(config: &mut Config) {
    config.token = std::env::var("BAKONG_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(Secret::from);
    for old in ["KHQR_WEBHOOK_SECRET", "KHQR_WEBHOOK_SECRET_FILE"] {
        if std::env::var_os(old).is_some() {
            tracing::warn!(
                variable = old,
                "ignored: webhooks are signed with each merchant's own secret (khqr-server merchant add)"
            );
        }
    }
}

/// What the binary does besides serving.
#[derive(Subcommand, Debug)]
enum Command {
    /// Manage merchants (API keys, bakongids, webhook secrets) in the store
    /// given by --store (Redis); prints JSON.
    #[command(subcommand)]
    Merchant(MerchantCommand),
}

/// Runs `khqr-server merchant …` on the store at `store`.
fn merchant_command(store: &str, cmd: &MerchantCommand) -> ExitCode {
    if store == "memory" {
        eprintln!(
            "khqr-server: merchant commands need the server's shared store: with --store memory the merchants live inside the running server process, which a command cannot reach (use --store redis://…; a durable embedded store comes with issue 19)"
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("khqr-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let store = RedisStore::connect(store, khqr_server::store::Limits::default())
            .await
            .map_err(|e| format!("cannot connect to the store: {}", e.detail()))?;
        khqr_server::merchant::run(&store, cmd, now_ms())
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("khqr-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs whether the Bakong token is there and when it expires.
fn log_token(config: &Config) {
    let token_text = config
        .token
        .as_ref()
        .map(|t| t.expose().to_owned())
        .or_else(|| {
            config
                .token_file
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
        });
    match token_text {
        None => tracing::warn!(
            "no Bakong token (BAKONG_TOKEN or --token-file): status checks will answer 503"
        ),
        Some(t) => match Token::new(t.trim())
            .ok()
            .and_then(|t| t.expires_at_ms().ok())
        {
            Some(exp) if exp <= now_ms() => tracing::warn!("the Bakong token expired; renew it"),
            Some(exp) => tracing::info!(days = (exp - now_ms()) / 86_400_000, "Bakong token valid"),
            None => tracing::info!("Bakong token set (no readable expiry)"),
        },
    }
}

/// Connects the store, builds the application and serves it until a signal.
async fn run(config: Config) -> Result<(), String> {
    let limits = config.limits();
    let store = if config.store == "memory" {
        AnyStore::Memory(MemoryStore::new(limits))
    } else if config.store.starts_with("redis://") || config.store.starts_with("redis+unix://") {
        match RedisStore::connect(&config.store, limits).await {
            Ok(s) => AnyStore::Redis(s),
            Err(e) => return Err(format!("cannot connect to the store: {}", e.detail())),
        }
    } else {
        return Err("--store must be `memory` or a redis:// URL".into());
    };
    let app = app(&config, store).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(
        listen = %config.listen,
        store = app.store_kind(),
        bakong = %config.bakong_base_url,
        open_relay = config.open_relay,
        "listening"
    );
    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let admin = match config.admin_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (--admin-listen): {e}"))?;
            tracing::info!(admin_listen = %addr, "admin routes (/healthz, /readyz, /metrics) here only");
            let (router, options) = (app.admin_router(), config.admin_serve());
            Some(tokio::spawn(serve(
                l,
                router,
                options,
                wait(stopped.clone()),
            )))
        }
        None => None,
    };
    let public = serve(listener, app.router(), config.serve(), wait(stopped)).await;
    if let Some(task) = admin {
        let _ = task.await;
    }
    public.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let matches = Command::augment_subcommands(Config::command()).get_matches();
    let mut config = Config::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if matches.subcommand().is_some() {
        let Command::Merchant(cmd) =
            Command::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        return merchant_command(&config.store, &cmd);
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    read_secrets(&mut config);
    log_token(&config);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = config.workers {
        rt.worker_threads(n);
    }
    let runtime = match rt.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("khqr-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("khqr-server: {e}");
            ExitCode::FAILURE
        }
    }
}
