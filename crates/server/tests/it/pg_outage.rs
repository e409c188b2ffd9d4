//! PostgreSQL going away and coming back: while the database cannot be reached,
//! requests are answered 503 `unavailable` and `/readyz` fails; once it is back, the
//! same process serves again without a restart, and nothing was half applied.
//!
//! The server reaches the test database through a TCP relay on loopback that the test
//! can cut (every open connection closed, new ones closed at once) and restore, so that
//! the shared test database itself never stops.

use crate::common;

use common::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The most `/readyz` probes while waiting for the server to see the database again.
const READY_PROBES_MAX: usize = 600;
/// The pause between two probes, in milliseconds.
const READY_PROBE_PAUSE_MS: u64 = 50;

/// A TCP relay from a loopback port to the database that can be cut and restored.
struct Relay {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped on every cut; each relayed connection ends when it changes.
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let task = {
            let (up, cuts) = (up.clone(), cuts.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up.load(Ordering::SeqCst) {
                        // Closed at once: the database is "down".
                        drop(client);
                        continue;
                    }
                    let mut cut = cuts.subscribe();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&target).await else {
                            return;
                        };
                        let mut client = client;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Relay {
            addr,
            up,
            cuts,
            task,
        }
    }

    /// Closes every relayed connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// Splits `postgres://user@host:port/db?query` into the `host:port` it names and the
/// same URL pointed at `addr` instead.
fn redirect(url: &str, addr: std::net::SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let target = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    (target, format!("{scheme}://{userinfo}{addr}{tail}"))
}

async fn wait_until_ready(server: &Server) {
    let anonymous = server.anonymous();
    for _ in 0..READY_PROBES_MAX {
        if anonymous.get("/readyz").await.status == 200 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(READY_PROBE_PAUSE_MS)).await;
    }
    panic!("the server did not become ready again after {READY_PROBES_MAX} probes");
}

#[test]
fn urls_are_redirected_to_the_relay() {
    let addr: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
    assert_eq!(
        redirect("postgres://u:p@db.example:6543/test?options=x", addr),
        (
            "db.example:6543".to_owned(),
            "postgres://u:p@127.0.0.1:4000/test?options=x".to_owned()
        )
    );
    assert_eq!(
        redirect("postgresql://db/test", addr),
        (
            "db:5432".to_owned(),
            "postgresql://127.0.0.1:4000/test".to_owned()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_is_503_and_recovers_without_restart() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    let placeholder: std::net::SocketAddr = "127.0.0.1:1".parse().expect("address");
    let (target, _) = redirect(schema.url(), placeholder);
    let relay = Relay::start(target).await;
    let (_, url) = redirect(schema.url(), relay.addr);
    let server = Server::start_on_url(&url, Some(schema.clone()), "test-admin-outage-0001").await;
    let admin = server.admin();
    let anonymous = server.anonymous();
    admin.funded_wallet("alice", "w", 1_000).await;
    anonymous.get("/readyz").await.ok(200);

    relay.cut();
    let ready = anonymous.get("/readyz").await;
    ready.problem(503, "unavailable");
    let debit = admin
        .post_idem(
            "/v1/wallets/w/mutations",
            "outage-debit",
            &json!({"kind": "debit", "amount": 100}),
        )
        .await;
    let p = debit.problem(503, "unavailable");
    assert!(
        !p.to_string().contains("postgres"),
        "the problem must not show internals: {p}"
    );
    admin.get("/v1/wallets/w").await.problem(503, "unavailable");
    // The process itself is alive all along.
    anonymous.get("/healthz").await.ok(200);

    relay.restore();
    wait_until_ready(&server).await;
    // The debit answered 503 was not applied; the retry with its key applies it once.
    assert_eq!(admin.balance("w").await, 1_000);
    let retried = admin
        .post_idem(
            "/v1/wallets/w/mutations",
            "outage-debit",
            &json!({"kind": "debit", "amount": 100}),
        )
        .await
        .ok(201);
    assert_eq!(int(&retried, "balance_after"), 900);
    admin.debit("w", 50).await;
    assert_eq!(admin.balance("w").await, 850);
    let muts = assert_balance_is_sum(&admin, "w").await;
    assert_eq!(muts.len(), 3, "top-up, the retried debit and one more");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_fails_the_start() {
    // Refused at once on loopback, whatever the test database.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_prepaid"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tempfile::tempdir().expect("data dir").path())
        .args(["--database-url", "postgres://prepaid@127.0.0.1:1/prepaid"])
        .env("PREPAID_ADMIN_KEY", "test-admin-unreachable-01")
        .env("NO_COLOR", "1")
        .output()
        .expect("run prepaid");
    assert!(!output.status.success(), "prepaid must exit non-zero");
    assert!(output.stdout.is_empty(), "nothing announced on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot connect to the database"),
        "a clear error, got: {stderr}"
    );
}
