//! The `prepaid` binary: `prepaid serve` runs the HTTP server.
//!
//! Logs go to stderr; stdout carries only what a supervisor or a test reads: the line
//! `prepaid listening on http://<addr>` once the socket is bound, then (on the very
//! first start without `PREPAID_ADMIN_KEY`) the generated operator key.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use prepaid_server::{ADMIN_KEY_FILE, Config, Server};
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "prepaid",
    version,
    about = "Prepaid balances and wallets over HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the HTTP server.
    Serve(ServeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, env = "PREPAID_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the embedded database and admin.key live (with --database-url, only admin.key).
    #[arg(long, env = "PREPAID_DATA_DIR", default_value = "./prepaid-data")]
    data_dir: PathBuf,
    /// A PostgreSQL URL (`postgres://user:password@host:5432/db`) instead of the
    /// embedded SQLite store; several instances may share one database. The database
    /// must be reachable at start, or the process exits non-zero.
    #[arg(long, env = "PREPAID_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The operator's admin key secret; generated at first start when unset.
    #[arg(long, env = "PREPAID_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Log format on stderr.
    #[arg(long, env = "PREPAID_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("PREPAID_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; use SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        admin_key: args.admin_key,
        ..Config::default()
    };
    tracing::info!(?config, "starting");
    let server = Server::bind(config.clone()).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "prepaid listening on http://{}", server.local_addr())
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    if let Some(secret) = server.generated_admin_key() {
        writeln!(
            out,
            "prepaid admin key (shown once, also in {}): {secret}",
            config.data_dir.join(ADMIN_KEY_FILE).display()
        )
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    }
    drop(out);
    tracing::info!(addr = %server.local_addr(), "listening");
    server.serve(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(args) => {
            init_logging(args.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(args))
        }
    }
}
