//! For tests that need a PostgreSQL database: a fresh schema per test, and one policy
//! for when there is no database.
//!
//! The database is the one at `$PREPAID_TEST_DATABASE_URL`, by default
//! [`TEST_DATABASE_URL_DEFAULT`]. When it cannot be reached, a test run with the
//! environment variable `CI` set fails at once (CI must test PostgreSQL); anywhere else
//! each test prints `PostgreSQL tests not run: <reason>` to stderr and returns, so that
//! a developer without PostgreSQL can still run the whole workspace's tests.
//!
//! ```text
//! let Some(schema) = prepaid_store_postgres::testing::fresh_schema().await else {
//!     return;
//! };
//! let store = PgStore::connect(schema.url(), PgConfig::default()).await?;
//! ```

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable that names the test database.
pub const TEST_DATABASE_URL_ENV: &str = "PREPAID_TEST_DATABASE_URL";
/// The test database when the variable is not set.
pub const TEST_DATABASE_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";
/// How long reaching the test database may take.
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// The schema's first `count` migration steps (all of them when `count` is larger), for
/// tests that start from a schema of an earlier version.
pub fn migrations(count: usize) -> &'static [&'static str] {
    &crate::MIGRATIONS[..count.min(crate::MIGRATIONS.len())]
}

/// A schema made for one test, dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct TestSchema {
    base_url: String,
    name: String,
    url: String,
}

impl TestSchema {
    /// The database URL with the schema as its search path: pass it to
    /// [`crate::PgStore::connect`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // On a thread of its own, since drop may run inside an async runtime, which
        // must not block on another one.
        let (base_url, name) = (self.base_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = connect(&base_url).await?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the test schema {}: {e}", self.name);
        }
    }
}

/// The test database's URL.
pub fn database_url() -> String {
    std::env::var(TEST_DATABASE_URL_ENV).unwrap_or_else(|_| TEST_DATABASE_URL_DEFAULT.to_owned())
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("{TEST_DATABASE_URL_ENV} is not a database URL: {e}"))?;
    config.connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    tokio::spawn(async move {
        // Ends when the client is dropped; an error then is of no interest.
        let _ = connection.await;
    });
    Ok(client)
}

/// Makes a new, empty schema in the test database, or applies the policy above when
/// the database cannot be reached (`None` means: skip this test).
///
/// # Panics
/// When the database cannot be reached and `CI` is set.
pub async fn fresh_schema() -> Option<TestSchema> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let base_url = database_url();
    let name = format!(
        "prepaid_test_{}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::new_v4().simple()
    );
    let made = async {
        let client = connect(&base_url).await?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .map_err(|e| format!("cannot create a schema in {base_url}: {e}"))
    }
    .await;
    match made {
        Ok(()) => {
            let separator = if base_url.contains('?') { '&' } else { '?' };
            let url = format!("{base_url}{separator}options=-csearch_path%3D{name}");
            Some(TestSchema {
                base_url,
                name,
                url,
            })
        }
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("PostgreSQL is required when CI is set: {reason}")
        }
        Err(reason) => {
            // Straight to the process's stderr, past the test harness's capture, so
            // that a skipped test says so even when it passes.
            let _ = writeln!(std::io::stderr(), "PostgreSQL tests not run: {reason}");
            None
        }
    }
}
