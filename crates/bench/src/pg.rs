//! The PostgreSQL baseline: the same single-debit workload done the way a typical
//! PostgreSQL ledger does it.
//!
//! One statement per mutation in autocommit with `synchronous_commit = on`: a CTE
//! debits the account only if the balance covers it, and inserts the ledger row with a
//! unique idempotency key. One connection per client. Everything lives in a schema of
//! its own that is dropped afterwards.

use crate::load::{Pick, REQUEST_TIMEOUT, Window, WorkerStats};
use anyhow::{Context, bail};
use std::time::Instant;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls, Statement};

/// The balance each account starts with; far more than any run can debit.
pub const OPENING_BALANCE: i64 = 1_000_000_000_000;

/// The debit statement: a conditional balance update and the ledger insert, in one
/// statement, so one round trip and one commit per mutation.
const DEBIT_SQL: &str = "\
WITH debit AS (
    UPDATE accounts SET balance = balance - $1
    WHERE id = $2 AND balance >= $1
    RETURNING id, balance
)
INSERT INTO ledger (account_id, amount, balance_after, idempotency_key)
SELECT id, -$1::bigint, balance, $3 FROM debit
RETURNING id, balance_after";

const READ_SQL: &str = "SELECT balance FROM accounts WHERE id = $1";

/// Facts about the PostgreSQL server that matter for reading its figures.
#[derive(Clone, Debug)]
pub struct PgInfo {
    pub version: String,
    pub synchronous_commit: String,
    pub fsync: String,
    pub wal_sync_method: String,
    pub max_connections: usize,
}

/// The baseline's schema, ready for load.
pub struct Baseline {
    config: Config,
    admin: Client,
    schema: String,
    pub info: PgInfo,
    /// Account ids `1..=accounts` are spread over; `accounts + 1` is the hot account.
    accounts: i64,
}

/// One client connection with its prepared statements.
pub struct PgConn {
    client: Client,
    debit: Statement,
    read: Statement,
}

/// Parses the connection string and refuses anything but a loopback host, so the
/// benchmark never sends traffic off the machine.
pub fn parse_config(conn_str: &str) -> anyhow::Result<Config> {
    let config: Config = conn_str
        .parse()
        .context("parsing the PostgreSQL connection string")?;
    for host in config.get_hosts() {
        let local = match host {
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            Host::Unix(_) => true,
        };
        if !local {
            bail!("the PostgreSQL host must be local (127.0.0.1), not {host:?}");
        }
    }
    Ok(config)
}

async fn connect(config: &Config) -> anyhow::Result<Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away; queries then fail.
        let _ = connection.await;
    });
    Ok(client)
}

impl Baseline {
    /// Connects, reads the server settings, and creates a fresh schema with `accounts`
    /// spread accounts plus one hot account, all funded.
    pub async fn prepare(config: Config, accounts: usize) -> anyhow::Result<Self> {
        let admin = connect(&config).await?;
        let setting = |name: &'static str| {
            let admin = &admin;
            async move {
                let row = admin.query_one(&format!("SHOW {name}"), &[]).await?;
                Ok::<String, tokio_postgres::Error>(row.get(0))
            }
        };
        let info = PgInfo {
            version: setting("server_version").await?,
            synchronous_commit: setting("synchronous_commit").await?,
            fsync: setting("fsync").await?,
            wal_sync_method: setting("wal_sync_method").await?,
            max_connections: setting("max_connections").await?.parse().unwrap_or(0),
        };
        let schema = format!("prepaid_bench_{}", uuid::Uuid::new_v4().simple());
        let accounts = i64::try_from(accounts)?;
        let baseline = Self {
            config,
            admin,
            schema,
            info,
            accounts,
        };
        let ddl = format!(
            "CREATE SCHEMA {s};
             CREATE TABLE {s}.accounts (
                 id bigint PRIMARY KEY,
                 balance bigint NOT NULL CHECK (balance >= 0)
             );
             CREATE TABLE {s}.ledger (
                 id bigserial PRIMARY KEY,
                 account_id bigint NOT NULL REFERENCES {s}.accounts (id),
                 amount bigint NOT NULL,
                 balance_after bigint NOT NULL,
                 idempotency_key text NOT NULL UNIQUE,
                 created_at timestamptz NOT NULL DEFAULT now()
             );
             CREATE INDEX ON {s}.ledger (account_id, id);
             INSERT INTO {s}.accounts (id, balance)
                 SELECT g, {OPENING_BALANCE} FROM generate_series(1, {n}) AS g;",
            s = baseline.schema,
            n = accounts + 1,
        );
        if let Err(e) = baseline.admin.batch_execute(&ddl).await {
            baseline.drop_schema().await;
            return Err(e).context("creating the baseline schema");
        }
        Ok(baseline)
    }

    /// The account id a pick lands on: spread index `i` is account `i + 1`, and the
    /// hot account comes after them.
    fn account(&self, pick: Pick, connection: usize, seq: u64) -> i64 {
        match pick.index(connection, seq) {
            Some(i) => i64::try_from(i).unwrap_or(i64::MAX) + 1,
            None => self.accounts + 1,
        }
    }

    /// How many more client connections the server accepts right now.
    pub async fn connections_free(&self) -> anyhow::Result<usize> {
        let row = self
            .admin
            .query_one(
                "SELECT current_setting('max_connections')::int
                      - CASE WHEN current_setting('is_superuser') = 'on' THEN 0
                             ELSE current_setting('superuser_reserved_connections')::int END
                      - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int",
                &[],
            )
            .await?;
        Ok(usize::try_from(row.get::<_, i32>(0)).unwrap_or(0))
    }

    /// Opens `count` client connections, each with full durability and its own
    /// prepared statements.
    pub async fn open(&self, count: usize) -> anyhow::Result<Vec<PgConn>> {
        let mut config = self.config.clone();
        config.options(format!(
            "-c search_path={} -c synchronous_commit=on",
            self.schema
        ));
        config.application_name("prepaid-bench");
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..count {
            let config = config.clone();
            set.spawn(async move {
                let client = connect(&config).await?;
                let debit = client.prepare(DEBIT_SQL).await?;
                let read = client.prepare(READ_SQL).await?;
                Ok::<_, anyhow::Error>(PgConn {
                    client,
                    debit,
                    read,
                })
            });
        }
        let mut conns = Vec::with_capacity(count);
        while let Some(conn) = set.join_next().await {
            conns.push(conn??);
        }
        Ok(conns)
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(&self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        if let Err(e) = self.admin.batch_execute(&sql).await {
            eprintln!(
                "warning: could not drop PostgreSQL schema {}: {e}",
                self.schema
            );
        }
    }
}

/// Debits 1 per statement until the window closes.
pub async fn debit_worker(
    baseline: std::sync::Arc<Baseline>,
    conn: PgConn,
    index: usize,
    window: Window,
    cell: String,
    pick: Pick,
) -> WorkerStats {
    let mut stats = WorkerStats::new();
    let mut seq = 0u64;
    while window.is_open() {
        let account = baseline.account(pick, index, seq);
        let key = format!("{cell}-{index}-{seq}");
        seq += 1;
        let started = Instant::now();
        let result = tokio::time::timeout(
            REQUEST_TIMEOUT,
            conn.client.query(&conn.debit, &[&1i64, &account, &key]),
        )
        .await;
        match result {
            Ok(Ok(rows)) if rows.len() == 1 => stats.record(&window, started, 1, 0),
            Ok(Ok(_)) => {
                stats.record(&window, started, 0, 1);
                stats.note_error(format!(
                    "account {account}: debit refused (insufficient balance)"
                ));
            }
            Ok(Err(e)) => {
                stats.record(&window, started, 0, 1);
                stats.note_error(format!("account {account}: {e}"));
                if conn.client.is_closed() {
                    break;
                }
            }
            Err(_) => {
                stats.record(&window, started, 0, 1);
                stats.note_error("statement timed out");
                break;
            }
        }
    }
    stats
}

/// Reads one balance per statement until the window closes.
pub async fn read_worker(
    baseline: std::sync::Arc<Baseline>,
    conn: PgConn,
    index: usize,
    window: Window,
    pick: Pick,
) -> WorkerStats {
    let mut stats = WorkerStats::new();
    let mut seq = 0u64;
    while window.is_open() {
        let account = baseline.account(pick, index, seq);
        seq += 1;
        let started = Instant::now();
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            conn.client.query_one(&conn.read, &[&account]),
        )
        .await
        {
            Ok(Ok(_)) => stats.record(&window, started, 1, 0),
            Ok(Err(e)) => {
                stats.record(&window, started, 0, 1);
                stats.note_error(format!("account {account}: {e}"));
                if conn.client.is_closed() {
                    break;
                }
            }
            Err(_) => {
                stats.record(&window, started, 0, 1);
                stats.note_error("statement timed out");
                break;
            }
        }
    }
    stats
}

/// A fresh schema prepaid's own PostgreSQL store migrates into and runs on, dropped
/// after the run.
pub struct PrepaidSchema {
    admin: Client,
    pub name: String,
}

impl PrepaidSchema {
    /// Creates an empty schema with a random name.
    pub async fn create(config: &Config) -> anyhow::Result<Self> {
        let admin = connect(config).await?;
        let name = format!("prepaid_bench_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .context("creating prepaid's schema")?;
        Ok(Self { admin, name })
    }

    /// `base_url` with the schema as the connection's search path.
    pub fn url(&self, base_url: &str) -> String {
        let sep = if base_url.contains('?') { '&' } else { '?' };
        format!("{base_url}{sep}options=-csearch_path%3D{}", self.name)
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(e) = self.admin.batch_execute(&sql).await {
            eprintln!("warning: dropping schema {}: {e}", self.name);
        }
    }
}
