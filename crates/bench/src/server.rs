//! Starting a fresh prepaid server for the run, and stopping it afterwards.

use anyhow::{Context, anyhow, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the server may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The line prefix the server prints once it accepts connections.
const LISTENING_PREFIX: &str = "prepaid listening on http://";

/// The last bytes of the server log shown when it fails.
const LOG_TAIL_LEN_MAX: usize = 4000;

/// A running server in its own temporary data directory. Dropping it kills the server.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub admin_secret: String,
    log_path: PathBuf,
}

impl Server {
    /// Starts `binary serve` on a free port of 127.0.0.1 with SQLite data in `data_dir`,
    /// or on the PostgreSQL database at `database_url` when one is given (`data_dir`
    /// then only names the server's log file).
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let admin_secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let log_path = data_dir.with_extension("log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(url) = database_url {
            command.arg("--database-url").arg(url);
        }
        let mut child = command
            .env("PREPAID_ADMIN_KEY", &admin_secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(STARTUP_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.trim().strip_prefix(LISTENING_PREFIX) {
                    return Ok::<_, std::io::Error>(Some(rest.trim_end_matches('/').to_owned()));
                }
            }
            Ok(None)
        })
        .await;
        let addr = match found {
            Ok(Ok(Some(addr))) => addr,
            Ok(Ok(None)) => bail!(
                "the server exited before listening:\n{}",
                log_tail(&log_path)
            ),
            Ok(Err(e)) => bail!("reading the server's stdout: {e}"),
            Err(_) => bail!(
                "the server did not print {LISTENING_PREFIX:?} within {STARTUP_TIMEOUT:?}:\n{}",
                log_tail(&log_path)
            ),
        };
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("bad listening address {addr:?}"))?;
        if !addr.ip().is_loopback() {
            bail!("the server listens on {addr}, not on the loopback interface");
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            addr,
            admin_secret,
            log_path,
        })
    }

    /// Fails with the server log when the server has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the server exited ({status}):\n{}",
                log_tail(&self.log_path)
            );
        }
        Ok(())
    }

    /// The process id, to account its CPU use.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server (this process started it, and only it is signalled).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let mut start = log.len().saturating_sub(LOG_TAIL_LEN_MAX);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    log[start..].to_owned()
}
