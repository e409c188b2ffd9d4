//! The embedded SQLite store of prepaid: one file, `<data dir>/prepaid.sqlite3`.
//!
//! # Durability
//!
//! The database runs in WAL mode. The writer's `COMMIT` (`synchronous=NORMAL`) appends
//! to the log without waiting for the disk, and a sync thread (`sync.rs`) then calls
//! `fdatasync` on the log: a batch's answers go out only once a sync that began after
//! its commit has returned, so an acknowledged batch survives a crash or a power loss.
//! Meanwhile the writer already runs the next batch ([`Store::stage`]). A read through
//! a read connection may see a batch a moment before it is durable (a power loss in
//! that moment loses it, but it was never acknowledged); a wallet read from memory
//! (below) never does. Checkpoints run on their own connection and thread.
//! Foreign keys are enforced. The schema is embedded in the binary (`migrations/*.sql`)
//! and brought up to date at [`SqliteStore::open`]; `PRAGMA user_version` counts the
//! migrations applied, and a database newer than the binary is refused.
//!
//! # Connections
//!
//! One writer connection, behind a mutex, carries every change; SQLite allows one
//! writer at a time anyway, and the group-commit engine feeds it whole batches. A small
//! pool of [`READERS_MAX`] read connections serves the read methods; in WAL mode they
//! read the last committed state without waiting for the writer. All database work runs
//! on tokio's blocking pool, never on the async workers.
//!
//! # Tenants
//!
//! Every table is keyed by tenant and every query names the tenant, so one tenant's
//! rows never reach another. Only the tenant made by [`Store::bootstrap`] (the
//! operator tenant) may create tenants. A request restricted to one customer
//! (`customer_only`) finds no other customer's wallets, holds or customers: they are
//! "not found".
//!
//! # Applying a batch
//!
//! [`Store::apply`] runs the whole batch in one `BEGIN IMMEDIATE` transaction, so the
//! batch costs one fsync. The decisions are the shared executor's
//! ([`prepaid_store::exec`], where the choices the ledger core leaves to a store are
//! listed): it reads rows through the writer, which answers every lookup at once, and
//! returns the outcomes and the changes, which are written before `COMMIT`. A refused
//! request writes nothing and records no idempotency key.
//!
//! The writer keeps wallet rows, system account balances and tenants in memory between
//! batches (at most `WALLET_CACHE_MAX` wallets), so a busy wallet is read from disk
//! once, not once per batch. The wallets it wrote are also published, once durable, to
//! a view that [`Store::wallet`] answers from without a read connection (`view.rs`). At the start of each transaction `PRAGMA data_version`
//! tells whether another connection (another process on the same file) committed
//! since; if so, or if a transaction did not commit, the rows are read again.
//!
//! Mutation ids are taken to be free without a look: they are fresh UUIDs unless a
//! client repeats a request without its idempotency key. The insert of a taken id
//! changes nothing, which the writer notices; it then rolls back and runs the batch
//! again knowing that id is taken, so the request that reused it is refused
//! (`MutationExists`) and its batch-mates are carried out.
//!
//! A request whose rows do not decode is answered `Refused(Refusal::Internal)` alone
//! by the executor; a database-wide failure of a lookup fails the batch as below.
//!
//! When writing a batch meets an unexpected failure, the batch is rolled back, and
//! then:
//!
//! - if the failure concerns the database as a whole (busy, I/O error, disk full,
//!   corruption detected by SQLite), the call returns `Err` with nothing committed:
//!   [`StoreError::Unavailable`] when the database is busy or locked,
//!   [`StoreError::Internal`] otherwise;
//! - otherwise (a broken constraint: a bug or corrupt data touching one request) the
//!   batch runs again, in one transaction with a savepoint around each request. A request that fails again is rolled back to its
//!   savepoint, logged, and answered `Refused(Refusal::Internal)`; its batch-mates are
//!   carried out and the call returns `Ok`. A database-wide failure during that second
//!   run still returns `Err` with nothing committed.
//!
//! So an `Err` from `apply` always means that nothing of the batch was committed (short
//! of a failure inside `COMMIT` itself, which no database can rule out).
//!
//! # The sweep
//!
//! [`Store::sweep`] finds the pending holds whose `expires_at` has come and the wallets
//! whose `valid_until` has come (at most [`prepaid_store::SWEEP_BATCH_MAX`] of each)
//! and runs the shared executor's sweep on them in one transaction.
//!
//! # The audit
//!
//! [`Store::check_invariants`] reads one snapshot. A wallet below its floor is a breach
//! unless a downward adjustment explains it (corrections are not held to the floor);
//! a debit or outgoing transfer that ever left a wallet below its floor is a breach
//! regardless.
//!
//! # Searches
//!
//! [`Store::search_mutations`] and [`Store::search_wallets`] compile their filter to a
//! condition with bound parameters, count every match, then read one page by offset
//! (see `search.rs`). Mutations list by their `seq`, which grows in commit order.

mod error;
mod read;
mod records;
mod rows;
mod search;
mod sync;
mod view;
mod write;

pub use error::SqliteError;

use async_trait::async_trait;
use error::Fail;
use prepaid_ledger::{
    ApiKey, ApiKeyName, Customer, CustomerId, Hold, HoldId, JobQueue, Mutation, MutationId,
    NewApiKey, Outcome, RecordKey, RecordKind, Request, SettingKey, TenantId, Timestamp, Wallet,
    WalletId,
};
use prepaid_store::{
    Breach, Counted, GrantCursor, Job, ListedGrant, MutationQuery, MutationSearch, Page, Record,
    Staged, Store, StoreError, SweepReport, WalletQuery, WalletSearch,
};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The database file's name inside the data directory.
pub const DATABASE_FILE_NAME: &str = "prepaid.sqlite3";
/// The mode of a data directory the store creates: its owner's alone.
pub const DATA_DIR_MODE: u32 = 0o700;
/// The mode of the database file and its `-wal` and `-shm` companions, whatever the
/// umask: they hold every balance and key digest, so only their owner may read them.
pub const DATABASE_FILE_MODE: u32 = 0o600;

/// Makes the database file at `path` [`DATABASE_FILE_MODE`] before SQLite opens it,
/// creating it empty if need be, and tightens companions left by an earlier run. SQLite
/// creates `-wal` and `-shm` with the mode of the database file, so they follow.
fn protect_files(path: &Path) -> Result<(), SqliteError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let fail = |path: &Path| {
        let path = path.to_owned();
        move |source| SqliteError::Permissions { path, source }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(DATABASE_FILE_MODE)
        .open(path)
        .map_err(fail(path))?;
    let private = std::fs::Permissions::from_mode(DATABASE_FILE_MODE);
    file.set_permissions(private.clone()).map_err(fail(path))?;
    for suffix in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        let companion = PathBuf::from(companion);
        match std::fs::set_permissions(&companion, private.clone()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other.map_err(fail(&companion))?,
        }
    }
    Ok(())
}

/// The number of read connections.
pub const READERS_MAX: usize = 4;

/// How long a connection waits for a lock held by another connection or process
/// before the call fails with [`StoreError::Unavailable`].
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Prepared statements kept per connection; above the number of distinct statements
/// the store uses, so none is ever prepared twice.
const STATEMENT_CACHE_MAX: usize = 64;

/// What the write-ahead log file is cut back to after a checkpoint.
const JOURNAL_SIZE_LIMIT_BYTES: i64 = sync::WAL_BYTES_MAX as i64;

/// The page cache of the writer and of each reader, in KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
const READER_CACHE_KIB: i64 = 16 * 1024;

/// The schema, one step per file, applied in order. `PRAGMA user_version` holds the
/// number applied. Never edit a released step: add a new one.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_links_and_settings.sql"),
    include_str!("../migrations/0003_wallet_updated_at.sql"),
    include_str!("../migrations/0004_records_jobs_ceiling.sql"),
    include_str!("../migrations/0005_credit_holds.sql"),
    include_str!("../migrations/0006_mutation_ids_per_tenant.sql"),
    include_str!("../migrations/0007_credit_wallet_ceilings.sql"),
    include_str!("../migrations/0008_grants.sql"),
    include_str!("../migrations/0009_metadata.sql"),
];

/// The SQLite store; cheap to clone and share.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<write::Writer>,
    syncer: sync::Syncer,
    /// Declared after the writer, so that it stops after the writer's connection closed
    /// (a checkpoint then has the whole log to itself).
    _checkpointer: sync::Checkpointer,
    /// The frames of the log the checkpointer has yet to copy; the writer waits on it.
    backlog: Arc<sync::Backlog>,
    view: Arc<view::View>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per idle reader, so a caller waits (asynchronously) for a free one.
    reader_permits: Arc<Semaphore>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn connect(path: &Path, cache_kib: i64) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // After a burst, give back what the write-ahead log grew beyond this.
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_MAX);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), SqliteError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| SqliteError::Migrate { version: 0, source })?;
    let steps = prepaid_store::sql::migrations_to_apply(MIGRATIONS, found).map_err(|e| {
        SqliteError::SchemaTooNew {
            found: e.found,
            known: e.known,
        }
    })?;
    for i in steps {
        let version = i + 1;
        let step = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(MIGRATIONS[i])?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        };
        step(conn).map_err(|source| SqliteError::Migrate { version, source })?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating when missing) the store in `data_dir`, and brings its schema up
    /// to date.
    pub fn open(data_dir: &Path) -> Result<Self, SqliteError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DATA_DIR_MODE)
            .create(data_dir)
            .map_err(|source| SqliteError::CreateDir {
                path: data_dir.to_owned(),
                source,
            })?;
        let path = data_dir.join(DATABASE_FILE_NAME);
        protect_files(&path)?;
        let open_error = |source| SqliteError::Open {
            path: path.clone(),
            source,
        };
        let mut writer = connect(&path, WRITER_CACHE_KIB).map_err(open_error)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SqliteError::NoWal { path, mode });
        }
        migrate(&mut writer)?;
        // Commits only append to the log; the syncer makes them durable, and the
        // checkpointer, not the writer, copies the log into the database.
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .and_then(|()| writer.pragma_update(None, "wal_autocheckpoint", 0))
            .map_err(open_error)?;
        let checkpointer = connect(&path, READER_CACHE_KIB).map_err(open_error)?;
        let mut readers = Vec::with_capacity(READERS_MAX);
        for _ in 0..READERS_MAX {
            let reader = connect(&path, READER_CACHE_KIB).map_err(open_error)?;
            reader
                .pragma_update(None, "query_only", true)
                .map_err(open_error)?;
            readers.push(reader);
        }
        let view = Arc::new(view::View::default());
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let backlog = Arc::new(sync::Backlog::new(PathBuf::from(&wal)));
        Ok(Self {
            inner: Arc::new(Inner {
                syncer: sync::Syncer::start(PathBuf::from(wal)),
                _checkpointer: sync::Checkpointer::start(checkpointer, backlog.clone()),
                backlog,
                path,
                writer: Mutex::new(write::Writer {
                    conn: writer,
                    cache: write::Cache::with_view(view.clone()),
                }),
                view,
                readers: Mutex::new(readers),
                reader_permits: Arc::new(Semaphore::new(READERS_MAX)),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the writer and returns once what it committed is durable.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut write::Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (value, generation) = self.write_unsynced(f).await?;
        self.inner.syncer.durable(generation).await?;
        Ok(value)
    }

    /// Runs `f` on the writer, on the blocking pool, and returns with the generation
    /// (see [`sync`]) to wait for before anything it committed may be reported.
    async fn write_unsynced<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut write::Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<(T, u64), StoreError> {
        if self.inner.syncer.failed() {
            return Err(sync::sync_failed());
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = inner.writer.lock().unwrap_or_else(|poisoned| {
                // A panic while writing leaves the connection usable (the next
                // transaction rolls back whatever was left open) but the cache in
                // an unknown state.
                let mut writer = poisoned.into_inner();
                writer.cache.clear();
                inner.writer.clear_poison();
                writer
            });
            // Before the transaction, not holding one: the checkpointer can only catch up
            // while no transaction adds frames.
            inner.backlog.wait_for_checkpoints();
            let value = f(&mut writer)?;
            // Taken with the writer held, so that generations follow commits.
            Ok((value, inner.syncer.committed()))
        })
        .await
        .map_err(|e| StoreError::internal(format!("write task failed: {e}")))?
    }

    /// Runs `f` on an idle read connection, on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self
            .inner
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::unavailable("the store is closed".to_owned()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let lease = Lease::take(&inner)?;
            let result = f(lease.conn()?);
            drop(lease);
            drop(permit);
            result.map_err(Fail::into_store_error)
        })
        .await
        .map_err(|e| StoreError::internal(format!("read task failed: {e}")))?
    }
}

/// A read connection taken from the pool; it goes back when dropped, even on a panic.
struct Lease<'a> {
    inner: &'a Inner,
    conn: Option<Connection>,
}

impl<'a> Lease<'a> {
    fn take(inner: &'a Inner) -> Result<Self, StoreError> {
        let conn = inner
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match conn {
            Some(conn) => Ok(Self {
                inner,
                conn: Some(conn),
            }),
            None => Err(StoreError::internal(
                "no idle read connection despite a permit".to_owned(),
            )),
        }
    }

    fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn
            .as_ref()
            .ok_or_else(|| StoreError::internal("read connection already returned".to_owned()))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Never hand out a connection stuck in an old snapshot.
            if !conn.is_autocommit()
                && let Err(e) = conn.execute_batch("ROLLBACK")
            {
                tracing::error!(error = %e, "dropping a read connection stuck in a transaction");
                return;
            }
            self.inner
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn apply(&self, batch: Vec<Request>, now: Timestamp) -> Result<Vec<Outcome>, StoreError> {
        let staged = self.stage(batch, now).await?;
        staged.durable.await?;
        Ok(staged.outcomes)
    }

    async fn stage(&self, batch: Vec<Request>, now: Timestamp) -> Result<Staged, StoreError> {
        if batch.is_empty() {
            return Ok(Staged {
                outcomes: Vec::new(),
                durable: Box::pin(std::future::ready(Ok(()))),
            });
        }
        let (written, generation) = self
            .write_unsynced(move |writer| write::apply(writer, &batch, now))
            .await?;
        let write::Written {
            outcomes,
            wallets,
            epoch,
        } = written;
        let synced = self.inner.syncer.durable(generation);
        let view = self.inner.view.clone();
        Ok(Staged {
            outcomes,
            durable: Box::pin(async move {
                synced.await?;
                // Before any answer goes out, so that its client reads what it was told.
                view.publish(epoch, generation, wallets);
                Ok(())
            }),
        })
    }

    async fn bootstrap(
        &self,
        tenant: &TenantId,
        admin: NewApiKey,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let tenant = tenant.clone();
        self.write(move |writer| {
            write::bootstrap(writer, &tenant, &admin, now).map_err(Fail::into_store_error)
        })
        .await
    }

    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, StoreError> {
        let ((report, wallets, epoch), generation) = self
            .write_unsynced(move |writer| write::sweep(writer, now))
            .await?;
        self.inner.syncer.durable(generation).await?;
        self.inner.view.publish(epoch, generation, wallets);
        Ok(report)
    }

    async fn api_key_by_hash(&self, secret_sha256: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.read(move |conn| rows::api_key_by_hash(conn, &secret_sha256))
            .await
    }

    async fn tenants(
        &self,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<Page<prepaid_store::ListedTenant, TenantId>, StoreError> {
        let after = after.cloned();
        self.read(move |conn| read::tenants(conn, after.as_ref(), limit))
            .await
    }

    async fn api_keys(
        &self,
        tenant: &TenantId,
        after: Option<&ApiKeyName>,
        limit: usize,
    ) -> Result<Page<ApiKey, ApiKeyName>, StoreError> {
        let (tenant, after) = (tenant.clone(), after.cloned());
        self.read(move |conn| read::api_keys(conn, &tenant, after.as_ref(), limit))
            .await
    }

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        name: &ApiKeyName,
    ) -> Result<Option<ApiKey>, StoreError> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.write(move |w| {
            read::revoke_api_key(&w.conn, &tenant, &name).map_err(Fail::into_store_error)
        })
        .await
    }

    async fn customer(
        &self,
        tenant: &TenantId,
        id: &CustomerId,
    ) -> Result<Option<Customer>, StoreError> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |conn| rows::load_customer(conn, &tenant, &id))
            .await
    }

    async fn customers(
        &self,
        tenant: &TenantId,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> Result<Page<Customer, CustomerId>, StoreError> {
        let (tenant, after) = (tenant.clone(), after.cloned());
        self.read(move |conn| read::customers(conn, &tenant, after.as_ref(), limit))
            .await
    }

    async fn wallet(&self, tenant: &TenantId, id: &WalletId) -> Result<Option<Wallet>, StoreError> {
        if let Some(wallet) = self.inner.view.wallet(tenant, id) {
            return Ok(Some(wallet));
        }
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |conn| rows::load_wallet(conn, &tenant, &id))
            .await
    }

    async fn wallets(
        &self,
        tenant: &TenantId,
        query: &WalletQuery,
    ) -> Result<Page<Wallet, WalletId>, StoreError> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.read(move |conn| read::wallets(conn, &tenant, &query))
            .await
    }

    async fn mutation(
        &self,
        tenant: &TenantId,
        id: MutationId,
    ) -> Result<Option<Mutation>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |conn| rows::load_mutation(conn, &tenant, id))
            .await
    }

    async fn mutations(
        &self,
        tenant: &TenantId,
        query: &MutationQuery,
    ) -> Result<Page<Mutation, i64>, StoreError> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.read(move |conn| read::mutations(conn, &tenant, &query))
            .await
    }

    async fn hold(&self, tenant: &TenantId, id: HoldId) -> Result<Option<Hold>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |conn| rows::load_hold(conn, &tenant, id))
            .await
    }

    async fn wallet_holds(
        &self,
        tenant: &TenantId,
        wallet: &WalletId,
        after: Option<HoldId>,
        limit: usize,
    ) -> Result<Page<Hold, HoldId>, StoreError> {
        let (tenant, wallet) = (tenant.clone(), wallet.clone());
        self.read(move |conn| read::wallet_holds(conn, &tenant, &wallet, after, limit))
            .await
    }

    async fn grants(
        &self,
        tenant: &TenantId,
        wallet: &WalletId,
        after: Option<GrantCursor>,
        limit: usize,
    ) -> Result<Page<ListedGrant, GrantCursor>, StoreError> {
        let (tenant, wallet) = (tenant.clone(), wallet.clone());
        self.read(move |conn| read::grants(conn, &tenant, &wallet, after, limit))
            .await
    }

    async fn search_mutations(
        &self,
        tenant: &TenantId,
        search: &MutationSearch,
    ) -> Result<Counted<Mutation>, StoreError> {
        let (tenant, search) = (tenant.clone(), search.clone());
        self.read(move |conn| search::search_mutations(conn, &tenant, &search))
            .await
    }

    async fn search_wallets(
        &self,
        tenant: &TenantId,
        search: &WalletSearch,
    ) -> Result<Counted<Wallet>, StoreError> {
        let (tenant, search) = (tenant.clone(), search.clone());
        self.read(move |conn| search::search_wallets(conn, &tenant, &search))
            .await
    }

    async fn setting(
        &self,
        tenant: &TenantId,
        key: &SettingKey,
    ) -> Result<Option<String>, StoreError> {
        let (tenant, key) = (tenant.clone(), key.clone());
        self.read(move |conn| search::setting(conn, &tenant, &key))
            .await
    }

    async fn record(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Result<Option<Record>, StoreError> {
        let (tenant, key) = (tenant.clone(), key.clone());
        self.read(move |conn| records::record(conn, &tenant, kind, &key))
            .await
    }

    async fn records(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let (tenant, after) = (tenant.clone(), after.cloned());
        self.read(move |conn| records::records(conn, &tenant, kind, after.as_ref(), limit))
            .await
    }

    async fn put_record(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
        value: &str,
        expected_version: Option<i64>,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        prepaid_store::records::assert_value(value);
        let (tenant, key, value) = (tenant.clone(), key.clone(), value.to_owned());
        self.write(move |w| {
            records::put_record(&w.conn, &tenant, kind, &key, &value, expected_version, now)
                .map_err(Fail::into_store_error)
        })
        .await
    }

    async fn delete_record(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Result<bool, StoreError> {
        let (tenant, key) = (tenant.clone(), key.clone());
        self.write(move |w| {
            records::delete_record(&w.conn, &tenant, kind, &key).map_err(Fail::into_store_error)
        })
        .await
    }

    async fn enqueue_job(
        &self,
        tenant: &TenantId,
        queue: JobQueue,
        id: &RecordKey,
        payload: &str,
        due_at: Timestamp,
    ) -> Result<bool, StoreError> {
        prepaid_store::records::assert_value(payload);
        let (tenant, id, payload) = (tenant.clone(), id.clone(), payload.to_owned());
        self.write(move |w| {
            records::enqueue_job(&w.conn, &tenant, queue, &id, &payload, due_at)
                .map_err(Fail::into_store_error)
        })
        .await
    }

    async fn claim_jobs(
        &self,
        queue: JobQueue,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.write(move |w| {
            records::claim_jobs(&w.conn, queue, now, lease_until, limit)
                .map_err(Fail::into_store_error)
        })
        .await
    }

    async fn finish_job(
        &self,
        tenant: &TenantId,
        queue: JobQueue,
        id: &RecordKey,
    ) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |w| {
            records::finish_job(&w.conn, &tenant, queue, &id).map_err(Fail::into_store_error)
        })
        .await
    }

    async fn defer_job(
        &self,
        tenant: &TenantId,
        queue: JobQueue,
        id: &RecordKey,
        due_at: Timestamp,
    ) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |w| {
            records::defer_job(&w.conn, &tenant, queue, &id, due_at).map_err(Fail::into_store_error)
        })
        .await
    }

    async fn check_invariants(&self) -> Result<Vec<Breach>, StoreError> {
        self.read(read::check_invariants).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.inner.syncer.failed() {
            return Err(sync::sync_failed());
        }
        self.read(|conn| {
            conn.prepare_cached("SELECT 1")?
                .query_row([], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }
}
