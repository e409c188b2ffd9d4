//! The `prepaid` binary: `prepaid serve` runs the HTTP server.
//!
//! Logs go to stderr; stdout carries only what a supervisor or a test reads: the line
//! `prepaid listening on http://<addr>` once the socket is bound, then (on the very
//! first start without `PREPAID_ADMIN_KEY`) the generated operator key.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use prepaid_dialect_touchtopup::payments::PAYPAL_BASE_URL_DEFAULT;
use prepaid_server::conn::{
    CONNECTIONS_DEFAULT, HEADER_READ_TIMEOUT_MS, HTTP_CONNECTIONS_MAX, HTTP_TIMEOUT_MS_MAX,
    KEEP_ALIVE_TIMEOUT_MS, Limits,
};
use prepaid_server::{ADMIN_KEY_FILE, Config, PaymentProviderConfig, Server};
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing_subscriber::EnvFilter;

// A request allocates and frees many small buffers on every thread; mimalloc's
// thread-local free lists cost less than the system allocator's arenas there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Said under every `--help`: flags are visible in the process list.
const SECRETS_HELP: &str = "Secrets (the admin key, a database URL with a password, the PayPal \
client secret) given as flags are visible to every local user in the process list: give \
them in environment variables (PREPAID_ADMIN_KEY, ...) or in files (--admin-key-file, \
PREPAID_ADMIN_KEY_FILE, ...) instead.";

#[derive(Parser)]
#[command(
    name = "prepaid",
    version,
    about = "Prepaid balances and wallets over HTTP",
    after_help = SECRETS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the HTTP server.
    #[command(after_help = SECRETS_HELP)]
    Serve(Box<ServeArgs>),
    /// Prints the OpenAPI document of `/v1` (what `/v1/openapi.json` serves).
    Openapi,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum PaymentProviderName {
    /// The built-in test provider: every payment succeeds, no money moves.
    Test,
    /// PayPal's REST API (Orders v2).
    Paypal,
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
    /// As a flag it is visible in the process list: prefer the environment variable
    /// or --database-url-file when it holds a password.
    #[arg(long, env = "PREPAID_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// A file holding the PostgreSQL URL (instead of --database-url).
    #[arg(
        long,
        env = "PREPAID_DATABASE_URL_FILE",
        conflicts_with = "database_url"
    )]
    database_url_file: Option<PathBuf>,
    /// The operator's admin key secret; generated at first start when unset. As a flag
    /// it is visible in the process list: prefer the environment variable or
    /// --admin-key-file.
    #[arg(long, env = "PREPAID_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// A file holding the operator's admin key secret (instead of --admin-key).
    #[arg(long, env = "PREPAID_ADMIN_KEY_FILE", conflicts_with = "admin_key")]
    admin_key_file: Option<PathBuf>,
    /// Who takes the money of TouchTopUp payments; `test` is for development only.
    #[arg(
        long,
        env = "PREPAID_PAYMENT_PROVIDER",
        value_enum,
        default_value = "test"
    )]
    payment_provider: PaymentProviderName,
    /// The PayPal REST API base URL (the live one is `https://api-m.paypal.com`).
    #[arg(long, env = "PREPAID_PAYPAL_BASE_URL", default_value = PAYPAL_BASE_URL_DEFAULT)]
    paypal_base_url: String,
    /// The client id of the PayPal REST app (with --payment-provider paypal).
    #[arg(long, env = "PREPAID_PAYPAL_CLIENT_ID", hide_env_values = true)]
    paypal_client_id: Option<String>,
    /// The client secret of the PayPal REST app (with --payment-provider paypal). As a
    /// flag it is visible in the process list: prefer the environment variable or
    /// --paypal-client-secret-file.
    #[arg(long, env = "PREPAID_PAYPAL_CLIENT_SECRET", hide_env_values = true)]
    paypal_client_secret: Option<String>,
    /// A file holding the PayPal client secret (instead of --paypal-client-secret).
    #[arg(
        long,
        env = "PREPAID_PAYPAL_CLIENT_SECRET_FILE",
        conflicts_with = "paypal_client_secret"
    )]
    paypal_client_secret_file: Option<PathBuf>,
    /// How long a client may take to send a request head, in milliseconds; a connection
    /// that has not sent one by then is closed.
    #[arg(long, env = "PREPAID_HEADER_READ_TIMEOUT_MS", default_value_t = HEADER_READ_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=HTTP_TIMEOUT_MS_MAX))]
    header_read_timeout_ms: u64,
    /// How long an idle keep-alive connection stays open after its last answer, in
    /// milliseconds.
    #[arg(long, env = "PREPAID_KEEP_ALIVE_TIMEOUT_MS", default_value_t = KEEP_ALIVE_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=HTTP_TIMEOUT_MS_MAX))]
    keep_alive_timeout_ms: u64,
    /// The most connections served at once; one more is closed unanswered. The open
    /// file limit (`ulimit -n`) must allow as many.
    #[arg(long, env = "PREPAID_MAX_CONNECTIONS", default_value_t = CONNECTIONS_DEFAULT as u64,
          value_parser = clap::value_parser!(u64).range(1..=HTTP_CONNECTIONS_MAX as u64))]
    max_connections: u64,
    /// Let webhook endpoints name loopback, private, link-local, unspecified and
    /// multicast addresses (refused by default, so tenants cannot reach the operator's
    /// internal network).
    #[arg(long, env = "PREPAID_WEBHOOK_ALLOW_PRIVATE_TARGETS")]
    webhook_allow_private_targets: bool,
    /// The longest wait between two attempts of a webhook delivery, in milliseconds,
    /// shortening the retry schedule (for tests and staging).
    #[arg(long, env = "PREPAID_WEBHOOK_RETRY_DELAY_MS_MAX",
          value_parser = clap::value_parser!(u64).range(1..=HTTP_TIMEOUT_MS_MAX))]
    webhook_retry_delay_ms_max: Option<u64>,
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

/// The longest file of a secret read, in bytes: a secret is a line, not a document.
const SECRET_FILE_BYTES_MAX: u64 = 64 * 1024;

/// A secret given as `value` or in `file` (clap lets only one through): the file's text
/// without its line ending.
fn secret(
    value: Option<String>,
    file: Option<&Path>,
    flag: &str,
) -> anyhow::Result<Option<String>> {
    let Some(path) = file else {
        return Ok(value);
    };
    let what = || format!("reading --{flag}-file {}", path.display());
    let size = std::fs::metadata(path).with_context(what)?.len();
    anyhow::ensure!(
        size <= SECRET_FILE_BYTES_MAX,
        "--{flag}-file {} is larger than {SECRET_FILE_BYTES_MAX} bytes",
        path.display()
    );
    let text = std::fs::read_to_string(path).with_context(what)?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    anyhow::ensure!(
        !text.is_empty(),
        "--{flag}-file {} is empty",
        path.display()
    );
    Ok(Some(text.to_owned()))
}

/// The payment provider the arguments choose.
fn payment_provider(args: &ServeArgs) -> anyhow::Result<PaymentProviderConfig> {
    Ok(match args.payment_provider {
        PaymentProviderName::Test => PaymentProviderConfig::Test,
        PaymentProviderName::Paypal => {
            let client_secret = secret(
                args.paypal_client_secret.clone(),
                args.paypal_client_secret_file.as_deref(),
                "paypal-client-secret",
            )?;
            let (Some(client_id), Some(client_secret)) = (&args.paypal_client_id, client_secret)
            else {
                anyhow::bail!(
                    "--payment-provider paypal needs PREPAID_PAYPAL_CLIENT_ID and \
                     PREPAID_PAYPAL_CLIENT_SECRET"
                );
            };
            PaymentProviderConfig::PayPal {
                base_url: args.paypal_base_url.clone(),
                client_id: client_id.clone(),
                client_secret,
            }
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let payment_provider = payment_provider(&args)?;
    let config = Config {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: secret(
            args.database_url,
            args.database_url_file.as_deref(),
            "database-url",
        )?,
        admin_key: secret(args.admin_key, args.admin_key_file.as_deref(), "admin-key")?,
        payment_provider,
        webhooks: prepaid_dialect_native::webhooks::WebhookConfig {
            allow_private_targets: args.webhook_allow_private_targets,
            retry_delay_ms_max: args.webhook_retry_delay_ms_max,
        },
        connections: Limits {
            header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
            keep_alive_timeout: Duration::from_millis(args.keep_alive_timeout_ms),
            connections_max: usize::try_from(args.max_connections)
                .context("--max-connections is too large")?,
        },
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
            runtime.block_on(serve(*args))
        }
        Cmd::Openapi => {
            let doc = serde_json::to_string_pretty(&prepaid_server::openapi())
                .context("rendering the OpenAPI document")?;
            println!("{doc}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parses(args: &[&str]) -> bool {
        let mut all = vec!["prepaid", "serve"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).is_ok()
    }

    #[test]
    fn secrets_come_from_files_without_their_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        for (text, want) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret", "s3cret"),
        ] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(
                secret(None, Some(&path), "admin-key").unwrap().as_deref(),
                Some(want)
            );
        }
        std::fs::write(&path, "\n").unwrap();
        assert!(secret(None, Some(&path), "admin-key").is_err());
        std::fs::write(&path, "k".repeat(SECRET_FILE_BYTES_MAX as usize + 1)).unwrap();
        assert!(secret(None, Some(&path), "admin-key").is_err());
        assert!(secret(None, Some(&dir.path().join("missing")), "admin-key").is_err());
        assert_eq!(
            secret(Some("v".into()), None, "admin-key")
                .unwrap()
                .as_deref(),
            Some("v")
        );
        // A flag and its file together are refused.
        let path = path.to_str().unwrap();
        assert!(!parses(&["--admin-key", "x", "--admin-key-file", path]));
        assert!(parses(&["--admin-key-file", path]));
    }

    #[test]
    fn connection_limits_are_bounded() {
        let timeout_max = HTTP_TIMEOUT_MS_MAX.to_string();
        let timeout_over = (HTTP_TIMEOUT_MS_MAX + 1).to_string();
        for flag in ["--header-read-timeout-ms", "--keep-alive-timeout-ms"] {
            assert!(parses(&[flag, "1"]), "{flag}");
            assert!(parses(&[flag, &timeout_max]), "{flag}");
            assert!(!parses(&[flag, &timeout_over]), "{flag}");
            assert!(!parses(&[flag, "0"]), "{flag}");
        }
        let max = HTTP_CONNECTIONS_MAX.to_string();
        let over = (HTTP_CONNECTIONS_MAX + 1).to_string();
        assert!(parses(&["--max-connections", &max]));
        assert!(!parses(&["--max-connections", &over]));
        assert!(!parses(&["--max-connections", "0"]));
    }
}
