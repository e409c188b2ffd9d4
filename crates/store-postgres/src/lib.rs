//! The PostgreSQL store of prepaid: one database (or one schema of it) shared by any
//! number of prepaid instances.
//!
//! # Connections
//!
//! A bounded pool ([`PgConfig::pool_size_max`]) of plain TCP connections (no TLS:
//! reach the database over a trusted network or a local proxy). Every connection sets
//! a statement timeout, so that no call waits on a lock for ever. A failure to reach
//! the database (a broken connection, a pool that waited too long, a server shutting
//! down) is [`StoreError::Unavailable`]; broken connections are dropped when they go
//! back to the pool, and new ones are made on demand, so the store recovers by itself
//! once the database is back.
//!
//! The URL may carry `options=-csearch_path%3D<schema>` to keep prepaid's tables in a
//! schema of their own, which must exist.
//!
//! # Schema
//!
//! The schema is embedded (`migrations/*.sql`) and brought up to date by
//! [`PgStore::connect`] under a session advisory lock, so that instances starting
//! together migrate once; `prepaid_schema_migrations` records the versions applied, and
//! a schema newer than the build is refused.
//!
//! # Applying a batch
//!
//! [`Store::apply`] runs the whole batch in one transaction (`READ COMMITTED`). The
//! decisions are the shared executor's ([`prepaid_store::exec`]): it runs on the rows
//! loaded so far and names the rows it is missing; the store loads them with set-based
//! queries (locking wallets and holds) and runs it again, then writes all changes with
//! one statement per kind of row and commits. See `snapshot.rs` and `write.rs` for the
//! queries and their order.
//!
//! Statements that need not wait for each other's answers go out together (pipelined
//! on the connection): `BEGIN` with the first round of loads, the rows of a batch in a
//! few stages, and `COMMIT` with the system accounts and mutations. A batch of debits
//! takes three round trips.
//!
//! No row is written by every batch of a tenant, so that batches of one tenant commit
//! side by side rather than one after another: a system account is spread over
//! [`ACCOUNT_SLOTS_MAX`] rows whose sum is its balance, and a batch adds its delta to
//! one slot picked at random (two concurrent batches meet on one about once in
//! [`ACCOUNT_SLOTS_MAX`], and the second waits for the first to commit); mutations
//! take their list cursors from one sequence (see "List order" below).
//!
//! Correctness between batches (of this instance, whose engine may run several at
//! once, or of other instances) comes from the database: a wallet or hold is changed
//! only by the transaction holding its row lock, which it took before reading it; ids,
//! idempotency keys, customers and wallets are primary or unique keys; system accounts
//! are changed by adding deltas, under a check that bounds each slot to
//! [`SLOT_BALANCE_ABS_MAX`], its share of the balance bound, so that their sum cannot
//! pass the bound whatever batches race. When a batch loses a race (a deadlock, a
//! serialization failure, a key taken meanwhile, a slot pushed past its bound
//! meanwhile) it is rolled back and run again from the start, at most
//! [`PgConfig::apply_retries_max`] times: a racing idempotency key becomes a replay,
//! never a second record.
//!
//! A system account balance (the sum of its slots) is read without a lock, so a batch
//! may refuse a request as `BalanceOverflow` on a balance a concurrent batch has just
//! moved away from the bound; the bound itself is never passed. The executor needs the
//! balance although the store only adds deltas: the ledger refuses a request that would
//! take an account past the bound, and a read is what tells it. A batch whose slot has
//! no room for its delta spreads it over the other slots, which only happens near the
//! bound.
//!
//! A request whose rows do not decode is answered `Refused(Refusal::Internal)` alone.
//! If writing a batch fails for a reason that is neither a race nor the database being
//! unavailable (a bug, corrupt data), the batch runs again in one transaction with a
//! savepoint around each request, and a request that fails again is answered
//! `Refused(Refusal::Internal)`. An `Err` from `apply` means that nothing of the batch
//! was committed (short of a failure inside `COMMIT` itself).
//!
//! # The sweep
//!
//! [`Store::sweep`] takes due holds and wallets with `FOR NO KEY UPDATE SKIP LOCKED`,
//! so that instances sweeping at once share the work instead of queueing, and runs the
//! shared executor's sweep on them.
//!
//! # Searches and settings
//!
//! [`Store::search_mutations`] and [`Store::search_wallets`] compile their filter to a
//! condition with bound parameters, count every match, then read one page by offset
//! (see `search.rs`); mutations list by their cursor (see below). A setting a batch
//! found absent is inserted, so that two instances creating it at once break the
//! primary key and the loser runs again and updates it.
//!
//! # List order
//!
//! A mutation's list cursor (`seq`) is the next value of the sequence `mutations_seq`
//! (one for every tenant, without a cache), taken as the mutation is inserted: in the
//! last statement of its batch, sent together with `COMMIT`. A tenant's cursors
//! increase, with gaps, and a batch's mutations take them in the batch's order.
//!
//! A sequence is not transactional, so cursors follow the order in which batches took
//! them, not the order in which they committed, and the two differ in a short window:
//! a batch A that took its cursors, then batch B that took higher ones and committed
//! first. From B's commit until A's, a list shows B's mutations without A's lower ones,
//! and a reader paging by cursor (`after`) who reads B's in that window has moved past
//! A's when they appear; paging by offset shifts by the rows A adds. The window is the
//! rest of A's insert and A's commit (its WAL flush), with no round trip to the client
//! in it: ordinarily about a millisecond, longer when the database is slow to flush, or
//! when A's insert waits for another batch inserting the same mutation id. Outside that
//! window, and for any reader once every batch that took a cursor has ended, lists are in
//! commit order. A wallet's own mutations are always in commit order: every batch that
//! makes one holds the wallet's row lock from before it takes cursors until it commits,
//! so it takes them only after the batch before it committed.

mod error;
mod read;
mod records;
mod rows;
mod search;
mod snapshot;
pub mod testing;
mod write;

pub use error::PgError;
pub use write::{ACCOUNT_SLOTS_MAX, SLOT_BALANCE_ABS_MAX};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use error::Fail;
use prepaid_ledger::{
    ApiKey, ApiKeyName, Customer, CustomerId, Hold, HoldId, JobQueue, Mutation, MutationId,
    NewApiKey, Outcome, RecordKey, RecordKind, Refusal, Request, SettingKey, TenantId, Timestamp,
    Wallet, WalletId,
};
use prepaid_store::exec::{self, Changes, NewTenant, Run};
use prepaid_store::{
    Breach, Counted, GrantCursor, ListedGrant, MutationQuery, MutationSearch, Page,
    SWEEP_BATCH_MAX, Store, StoreError, SweepReport, WalletQuery, WalletSearch, WriterPhases,
};
use rows::{HOLD_COLUMNS, WALLET_COLUMNS, get};
use snapshot::Snapshot;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The most connections [`PgConfig::pool_size_max`] may ask for.
pub const CONNECTIONS_MAX: usize = 1024;
/// The most runs of one batch [`PgConfig::apply_retries_max`] may ask for.
pub const APPLY_RETRIES_MAX: usize = 100;
/// The most rounds of loads one run of a batch may take before the store gives up
/// (a batch needs at most four: rows named by requests, then what they point at).
pub const LOAD_ROUNDS_MAX: usize = 16;
/// The longest timeout [`PgConfig`] accepts, in milliseconds (one hour).
pub const TIMEOUT_MS_MAX: u64 = 3_600_000;

/// The schema, one step per file, applied in order. Never edit a released step: add
/// a new one.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_links_and_settings.sql"),
    include_str!("../migrations/0003_wallet_updated_at.sql"),
    include_str!("../migrations/0004_records_jobs_ceiling.sql"),
    include_str!("../migrations/0005_credit_holds.sql"),
    include_str!("../migrations/0006_mutation_ids_per_tenant.sql"),
    include_str!("../migrations/0007_credit_wallet_ceilings.sql"),
    include_str!("../migrations/0008_account_slots_and_mutation_sequence.sql"),
    include_str!("../migrations/0009_grants.sql"),
    include_str!("../migrations/0010_metadata.sql"),
];

/// The first half of the advisory lock keys, so that prepaid's locks do not meet
/// another application's; the second half is the schema's hash.
const LOCK_CLASS: i32 = 0x7072_6570; // "prep"
const LOCK_MIGRATE: i32 = 1;
const LOCK_BOOTSTRAP: i32 = 2;

/// How [`PgStore`] uses the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgConfig {
    /// The most connections open at once (1 to [`CONNECTIONS_MAX`]).
    pub pool_size_max: usize,
    /// How long making a connection may take.
    pub connect_timeout_ms: u64,
    /// How long one statement may run, waiting on locks included.
    pub statement_timeout_ms: u64,
    /// How long a call waits for a free connection before it is `Unavailable`.
    pub pool_wait_timeout_ms: u64,
    /// How many times a batch (or sweep) that lost a race with another runs again
    /// (0 to [`APPLY_RETRIES_MAX`]).
    pub apply_retries_max: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            pool_size_max: 16,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            pool_wait_timeout_ms: 10_000,
            apply_retries_max: 8,
        }
    }
}

impl PgConfig {
    fn check(&self) -> Result<(), PgError> {
        let bad = |what: String| Err(PgError::Config(what));
        if !(1..=CONNECTIONS_MAX).contains(&self.pool_size_max) {
            return bad(format!(
                "pool_size_max must be 1 to {CONNECTIONS_MAX}, got {}",
                self.pool_size_max
            ));
        }
        if self.apply_retries_max > APPLY_RETRIES_MAX {
            return bad(format!(
                "apply_retries_max must be at most {APPLY_RETRIES_MAX}, got {}",
                self.apply_retries_max
            ));
        }
        for (name, ms) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("statement_timeout_ms", self.statement_timeout_ms),
            ("pool_wait_timeout_ms", self.pool_wait_timeout_ms),
        ] {
            if !(1..=TIMEOUT_MS_MAX).contains(&ms) {
                return bad(format!("{name} must be 1 to {TIMEOUT_MS_MAX}, got {ms}"));
            }
        }
        Ok(())
    }
}

/// The PostgreSQL store; cheap to clone and share.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: PgConfig,
    slots: Arc<SlotPicker>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL or a key=value string),
    /// and brings its schema up to date.
    pub async fn connect(url: &str, config: PgConfig) -> Result<PgStore, PgError> {
        config.check()?;
        let mut pg: tokio_postgres::Config =
            url.parse().map_err(|e| PgError::Url(format!("{e}")))?;
        pg.connect_timeout(Duration::from_millis(config.connect_timeout_ms));
        let options = format!(
            "{} -c statement_timeout={} -c idle_in_transaction_session_timeout={}",
            pg.get_options().unwrap_or_default(),
            config.statement_timeout_ms,
            config.statement_timeout_ms.saturating_mul(2),
        );
        pg.options(options.trim());
        if pg.get_application_name().is_none() {
            pg.application_name("prepaid");
        }
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let wait = Duration::from_millis(config.pool_wait_timeout_ms);
        let pool = Pool::builder(manager)
            .max_size(config.pool_size_max)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(wait))
            .create_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .recycle_timeout(Some(wait))
            .build()
            .map_err(|e| PgError::Config(e.to_string()))?;
        let client = pool
            .get()
            .await
            .map_err(|e| PgError::Connect(Fail::from(e).to_string()))?;
        migrate(client).await?;
        Ok(Self {
            pool,
            config,
            slots: Arc::default(),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| Fail::from(e).into_store_error())
    }

    /// Runs `attempt` until it does not lose a race, at most
    /// [`PgConfig::apply_retries_max`] more times.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, Fail>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Fail>>,
    {
        let mut retries = 0;
        loop {
            match attempt().await {
                Err(e) if e.is_race() && retries < self.config.apply_retries_max => {
                    retries += 1;
                    tracing::debug!(error = %e, retries, "{what} lost a race; running it again");
                }
                other => return other,
            }
        }
    }
}

/// Applies the embedded migrations the schema lacks, under a session advisory lock.
async fn migrate(client: deadpool_postgres::Client) -> Result<(), PgError> {
    let connect = |e: tokio_postgres::Error| PgError::Connect(Fail::from(e).to_string());
    client
        .execute(
            "SELECT pg_advisory_lock($1, hashtext(COALESCE(current_schema(), '')))",
            &[&LOCK_CLASS.wrapping_add(LOCK_MIGRATE)],
        )
        .await
        .map_err(connect)?;
    let result = migrate_locked(&client).await;
    let unlocked = client
        .execute(
            "SELECT pg_advisory_unlock($1, hashtext(COALESCE(current_schema(), '')))",
            &[&LOCK_CLASS.wrapping_add(LOCK_MIGRATE)],
        )
        .await;
    if unlocked.is_err() {
        // The session lock must not outlive this call: close the connection instead
        // of handing it back to the pool.
        drop(deadpool_postgres::Object::take(client));
    }
    result
}

async fn migrate_locked(client: &deadpool_postgres::Client) -> Result<(), PgError> {
    let step0 = |source| PgError::Migrate { version: 0, source };
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS prepaid_schema_migrations (
                 version     INTEGER PRIMARY KEY,
                 applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(step0)?;
    let found: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::int8 FROM prepaid_schema_migrations",
            &[],
        )
        .await
        .map_err(step0)?
        .get(0);
    let steps = prepaid_store::sql::migrations_to_apply(MIGRATIONS, found).map_err(|e| {
        PgError::SchemaTooNew {
            found: e.found,
            known: e.known,
        }
    })?;
    for i in steps {
        let (version, sql) = (i + 1, MIGRATIONS[i]);
        let fail = |source| PgError::Migrate { version, source };
        let number = i32::try_from(version).unwrap_or(i32::MAX);
        client.batch_execute("BEGIN").await.map_err(fail)?;
        let step = async {
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO prepaid_schema_migrations (version) VALUES ($1)",
                    &[&number],
                )
                .await?;
            client.batch_execute("COMMIT").await
        };
        if let Err(e) = step.await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(fail(e));
        }
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}

/// Runs the executor on `batch`, loading what it misses into `snapshot`, until it has
/// every row.
async fn run_batch<C: GenericClient>(
    tx: &C,
    batch: &[Request],
    now: Timestamp,
    snapshot: &mut Snapshot,
    phases: &mut Phases,
) -> Result<exec::Applied, Fail> {
    for _ in 0..LOAD_ROUNDS_MAX {
        let started = Instant::now();
        let run = exec::apply(snapshot, batch, now);
        phases.execute += started.elapsed();
        match run.map_err(Fail::corrupt)? {
            Run::Done(applied) => return Ok(applied),
            Run::Missing(missing) => {
                let started = Instant::now();
                let loaded = snapshot.load(tx, &missing).await;
                phases.load += started.elapsed();
                loaded?;
            }
        }
    }
    Err(Fail::corrupt(format_args!(
        "a batch still missed rows after {LOAD_ROUNDS_MAX} rounds of loads"
    )))
}

/// A PostgreSQL transaction's phases (see [`WriterPhases`]): `load` holds the queries
/// that load missing rows with the `BEGIN` that goes out with the first, and `commit`
/// runs from the answer to the last write statement to `COMMIT`'s, its WAL flush
/// included.
type Phases = WriterPhases;

/// Picks the slot each attempt at a batch adds its system account deltas to first
/// (see `write.rs`): a keyed hash of a counter, so that picks are spread evenly, and
/// differ between instances and between the attempts of one batch.
#[derive(Debug, Default)]
struct SlotPicker {
    keys: RandomState,
    count: AtomicU64,
}

impl SlotPicker {
    fn pick(&self) -> usize {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        let slots = u64::try_from(ACCOUNT_SLOTS_MAX).unwrap_or(1);
        usize::try_from(self.keys.hash_one(n) % slots).unwrap_or(0)
    }
}

/// One attempt at a batch: load, decide, write, commit.
///
/// The transaction is begun and ended by hand, so that `BEGIN` goes out with the
/// first loads and `COMMIT` with the last writes (see `write.rs`): a batch of debits
/// takes three round trips, and the mutations take their list cursors in the last
/// statement before the commit.
async fn apply_once(
    store: &PgStore,
    batch: &[Request],
    now: Timestamp,
) -> Result<Vec<Outcome>, Fail> {
    let mut open = HandTransaction {
        client: Some(store.pool.get().await?),
    };
    let Some(client) = open.client.as_ref() else {
        return Err(Fail::corrupt("a connection went missing"));
    };
    let mut phases = Phases::default();
    let result = async {
        let mut snapshot = Snapshot::default();
        let (begun, applied) = tokio::join!(
            biased;
            client.batch_execute("BEGIN"),
            run_batch(client, batch, now, &mut snapshot, &mut phases)
        );
        let open = |e: Fail| (e, write::Ended::No);
        begun.map_err(|e| open(e.into()))?;
        let applied = applied.map_err(open)?;
        let accounts = write::slot_deltas(&applied.changes, &snapshot, store.slots.pick());
        let started = Instant::now();
        write::write_rows(client, &applied.changes)
            .await
            .map_err(open)?;
        let written = write::write_last_and_commit(client, &applied.changes, &accounts).await;
        let written = written.inspect_err(|_| phases.write += started.elapsed())?;
        phases.write += written.saturating_duration_since(started);
        phases.commit += written.elapsed();
        Ok(applied)
    }
    .await;
    phases.record();
    match result {
        Ok(applied) => {
            open.release();
            Ok(applied.finish().0)
        }
        Err((e, write::Ended::Yes)) => {
            open.release();
            Err(e)
        }
        Err((e, write::Ended::No)) => {
            open.rollback().await;
            Err(e)
        }
    }
}

/// A pooled connection in a transaction begun by hand. Dropped while the transaction
/// may still be open (the call was cancelled), it takes the connection out of the
/// pool, and closing the connection rolls the transaction back.
struct HandTransaction {
    client: Option<deadpool_postgres::Client>,
}

impl HandTransaction {
    /// The transaction is over: the connection goes back to the pool.
    fn release(&mut self) {
        self.client.take();
    }

    /// Rolls the transaction back; the connection goes back to the pool only if that
    /// worked.
    async fn rollback(&mut self) {
        if let Some(client) = &self.client
            && client.batch_execute("ROLLBACK").await.is_ok()
        {
            self.release();
        }
    }
}

impl Drop for HandTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Applies `batch` with a savepoint around each request (see the crate
/// documentation).
async fn apply_isolated(
    store: &PgStore,
    batch: &[Request],
    now: Timestamp,
) -> Result<Vec<Outcome>, Fail> {
    let mut client = store.pool.get().await?;
    let mut tx = client.transaction().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut phases = Phases::default();
    for (index, request) in batch.iter().enumerate() {
        let savepoint = tx.savepoint("request").await?;
        let result = async {
            let request = std::slice::from_ref(request);
            let mut snapshot = Snapshot::default();
            let applied = run_batch(&savepoint, request, now, &mut snapshot, &mut phases).await?;
            let accounts = write::slot_deltas(&applied.changes, &snapshot, store.slots.pick());
            let started = Instant::now();
            let written = write::write(&savepoint, &applied.changes, &accounts).await;
            phases.write += started.elapsed();
            written?;
            Ok::<_, Fail>(applied)
        }
        .await;
        match result {
            Ok(applied) => {
                savepoint.commit().await?;
                outcomes.extend(applied.finish().0);
            }
            Err(e) if e.is_race() || e.is_unavailable() => return Err(e),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    request = index,
                    tenant = %request.tenant,
                    "request failed and was rolled back"
                );
                savepoint.rollback().await?;
                outcomes.push(Outcome::Refused(Refusal::Internal));
            }
        }
    }
    let started = Instant::now();
    let committed = tx.commit().await;
    phases.commit += started.elapsed();
    phases.record();
    committed?;
    Ok(outcomes)
}

/// One attempt at a sweep.
async fn sweep_once(store: &PgStore, now: Timestamp) -> Result<SweepReport, Fail> {
    let mut client = store.pool.get().await?;
    let tx = client.transaction().await?;
    let limit = i64::try_from(SWEEP_BATCH_MAX).unwrap_or(i64::MAX);
    let mut snapshot = Snapshot::default();
    let due_holds_sql = format!(
        "SELECT {HOLD_COLUMNS} FROM holds \
         WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= $1 \
         ORDER BY expires_at LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED"
    );
    let statement = tx.prepare_cached(&due_holds_sql).await?;
    let mut due_holds = Vec::new();
    for row in tx.query(&statement, &[&now.as_micros(), &limit]).await? {
        let id = HoldId(get(&row, 1)?);
        snapshot.put_hold(id, rows::hold(&row).map(Some).map_err(|e| e.to_string()));
        due_holds.push(id);
    }
    let due_wallets_sql = format!(
        "SELECT {WALLET_COLUMNS} FROM wallets \
         WHERE valid_until IS NOT NULL AND status <> 'expired' AND valid_until <= $1 \
         ORDER BY valid_until LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED"
    );
    let statement = tx.prepare_cached(&due_wallets_sql).await?;
    let mut due_wallets = Vec::new();
    for row in tx.query(&statement, &[&now.as_micros(), &limit]).await? {
        let key = (
            rows::tenant_id(get(&row, 0)?)?,
            rows::wallet_id(get(&row, 1)?)?,
        );
        snapshot.put_wallet(
            key.clone(),
            rows::wallet(&row).map(Some).map_err(|e| e.to_string()),
        );
        due_wallets.push(key);
    }
    // Due grants are found without a lock: the executor loads their wallets locked and
    // their grants after, and passes over one that another instance expired meanwhile.
    let statement = tx
        .prepare_cached(
            "SELECT tenant, wallet, id FROM grants \
             WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $1 \
             AND remaining > held ORDER BY expires_at LIMIT $2",
        )
        .await?;
    let mut due_grants = Vec::new();
    for row in tx.query(&statement, &[&now.as_micros(), &limit]).await? {
        due_grants.push((
            rows::tenant_id(get(&row, 0)?)?,
            rows::wallet_id(get(&row, 1)?)?,
            MutationId(get(&row, 2)?),
        ));
    }
    if due_holds.is_empty() && due_wallets.is_empty() && due_grants.is_empty() {
        tx.commit().await?;
        return Ok(SweepReport::default());
    }
    let due = exec::Due {
        holds: due_holds,
        wallets: due_wallets,
        grants: due_grants,
    };
    let mut new_id = || MutationId(Uuid::now_v7());
    for _ in 0..LOAD_ROUNDS_MAX {
        match exec::sweep(&mut snapshot, &due, now, &mut new_id).map_err(Fail::corrupt)? {
            Run::Done(swept) => {
                let accounts = write::slot_deltas(&swept.changes, &snapshot, store.slots.pick());
                write::write(&tx, &swept.changes, &accounts).await?;
                tx.commit().await?;
                return Ok(swept.report);
            }
            Run::Missing(missing) => snapshot.load(&tx, &missing).await?,
        }
    }
    Err(Fail::corrupt(format_args!(
        "a sweep still missed rows after {LOAD_ROUNDS_MAX} rounds of loads"
    )))
}

/// One attempt at a bootstrap.
async fn bootstrap_once(
    store: &PgStore,
    tenant: &TenantId,
    admin: &NewApiKey,
    now: Timestamp,
) -> Result<bool, Fail> {
    let mut client = store.pool.get().await?;
    let tx = client.transaction().await?;
    // Instances bootstrapping at once take turns here; the second finds a tenant.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(COALESCE(current_schema(), '')))",
        &[&LOCK_CLASS.wrapping_add(LOCK_BOOTSTRAP)],
    )
    .await?;
    let any: bool = get(
        &tx.query_one("SELECT EXISTS (SELECT 1 FROM tenants)", &[])
            .await?,
        0,
    )?;
    if any {
        tx.rollback().await?;
        return Ok(false);
    }
    let changes = Changes {
        tenants: vec![NewTenant {
            id: tenant.clone(),
            name: tenant.to_string(),
            operator: true,
            created_at: now,
        }],
        api_keys: vec![ApiKey {
            tenant: tenant.clone(),
            name: admin.name.clone(),
            secret_sha256: admin.secret_sha256,
            scopes: admin.scopes,
            customer: None,
            created_at: now,
        }],
        ..Changes::default()
    };
    write::write(&tx, &changes, &[]).await?;
    tx.commit().await?;
    Ok(true)
}

#[async_trait]
impl Store for PgStore {
    async fn apply(&self, batch: Vec<Request>, now: Timestamp) -> Result<Vec<Outcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let result = self
            .with_retries("a batch", || apply_once(self, &batch, now))
            .await;
        let e = match result {
            Ok(outcomes) => return Ok(outcomes),
            Err(e) => e,
        };
        if e.is_race() || e.is_unavailable() {
            tracing::error!(error = %e, batch_size = batch.len(), "batch failed");
            return Err(e.into_store_error());
        }
        tracing::warn!(
            error = %e,
            batch_size = batch.len(),
            "a batch failed; applying it again one request at a time"
        );
        self.with_retries("a batch", || apply_isolated(self, &batch, now))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, batch_size = batch.len(), "batch failed");
                e.into_store_error()
            })
    }

    async fn bootstrap(
        &self,
        tenant: &TenantId,
        admin: NewApiKey,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        if admin.customer.is_some() {
            return Err(StoreError::internal(
                "the operator's admin key cannot belong to a customer".to_owned(),
            ));
        }
        self.with_retries("bootstrap", || bootstrap_once(self, tenant, &admin, now))
            .await
            .map_err(Fail::into_store_error)
    }

    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, StoreError> {
        self.with_retries("a sweep", || sweep_once(self, now))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "sweep failed");
                e.into_store_error()
            })
    }

    async fn api_key_by_hash(&self, secret_sha256: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        let client = self.client().await?;
        read::api_key_by_hash(&client, &secret_sha256)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn tenants(
        &self,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<Page<prepaid_store::ListedTenant, TenantId>, StoreError> {
        let client = self.client().await?;
        read::tenants(&client, after, limit)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn api_keys(
        &self,
        tenant: &TenantId,
        after: Option<&ApiKeyName>,
        limit: usize,
    ) -> Result<Page<ApiKey, ApiKeyName>, StoreError> {
        let client = self.client().await?;
        read::api_keys(&client, tenant, after, limit)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        name: &ApiKeyName,
    ) -> Result<Option<ApiKey>, StoreError> {
        let client = self.client().await?;
        read::revoke_api_key(&client, tenant, name)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn customer(
        &self,
        tenant: &TenantId,
        id: &CustomerId,
    ) -> Result<Option<Customer>, StoreError> {
        let client = self.client().await?;
        read::customer(&client, tenant, id)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn customers(
        &self,
        tenant: &TenantId,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> Result<Page<Customer, CustomerId>, StoreError> {
        let client = self.client().await?;
        read::customers(&client, tenant, after, limit)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn wallet_holds(
        &self,
        tenant: &TenantId,
        wallet: &WalletId,
        after: Option<HoldId>,
        limit: usize,
    ) -> Result<Page<Hold, HoldId>, StoreError> {
        let client = self.client().await?;
        read::wallet_holds(&client, tenant, wallet, after, limit)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn grants(
        &self,
        tenant: &TenantId,
        wallet: &WalletId,
        after: Option<GrantCursor>,
        limit: usize,
    ) -> Result<Page<ListedGrant, GrantCursor>, StoreError> {
        let client = self.client().await?;
        read::grants(&client, tenant, wallet, after, limit)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn wallet(&self, tenant: &TenantId, id: &WalletId) -> Result<Option<Wallet>, StoreError> {
        let client = self.client().await?;
        read::wallet(&client, tenant, id)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn wallets(
        &self,
        tenant: &TenantId,
        query: &WalletQuery,
    ) -> Result<Page<Wallet, WalletId>, StoreError> {
        let client = self.client().await?;
        read::wallets(&client, tenant, query)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn mutation(
        &self,
        tenant: &TenantId,
        id: MutationId,
    ) -> Result<Option<Mutation>, StoreError> {
        let client = self.client().await?;
        read::mutation(&client, tenant, id)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn mutations(
        &self,
        tenant: &TenantId,
        query: &MutationQuery,
    ) -> Result<Page<Mutation, i64>, StoreError> {
        let client = self.client().await?;
        read::mutations(&client, tenant, query)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn hold(&self, tenant: &TenantId, id: HoldId) -> Result<Option<Hold>, StoreError> {
        let client = self.client().await?;
        read::hold(&client, tenant, id)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn search_mutations(
        &self,
        tenant: &TenantId,
        search: &MutationSearch,
    ) -> Result<Counted<Mutation>, StoreError> {
        let client = self.client().await?;
        search::search_mutations(&client, tenant, search)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn search_wallets(
        &self,
        tenant: &TenantId,
        search: &WalletSearch,
    ) -> Result<Counted<Wallet>, StoreError> {
        let client = self.client().await?;
        search::search_wallets(&client, tenant, search)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn setting(
        &self,
        tenant: &TenantId,
        key: &SettingKey,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        search::setting(&client, tenant, key)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn record(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Result<Option<prepaid_store::Record>, StoreError> {
        records::record(self, tenant, kind, key).await
    }

    async fn records(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<prepaid_store::Record>, StoreError> {
        records::records(self, tenant, kind, after, limit).await
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
        records::put_record(self, tenant, kind, key, value, expected_version, now).await
    }

    async fn delete_record(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Result<bool, StoreError> {
        records::delete_record(self, tenant, kind, key).await
    }

    async fn enqueue_job(
        &self,
        tenant: &TenantId,
        queue: JobQueue,
        id: &RecordKey,
        payload: &str,
        due_at: Timestamp,
    ) -> Result<bool, StoreError> {
        records::enqueue_job(self, tenant, queue, id, payload, due_at).await
    }

    async fn claim_jobs(
        &self,
        queue: JobQueue,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<prepaid_store::Job>, StoreError> {
        records::claim_jobs(self, queue, now, lease_until, limit).await
    }

    async fn finish_job(
        &self,
        tenant: &TenantId,
        queue: JobQueue,
        id: &RecordKey,
    ) -> Result<(), StoreError> {
        records::finish_job(self, tenant, queue, id).await
    }

    async fn defer_job(
        &self,
        tenant: &TenantId,
        queue: JobQueue,
        id: &RecordKey,
        due_at: Timestamp,
    ) -> Result<(), StoreError> {
        records::defer_job(self, tenant, queue, id, due_at).await
    }

    async fn check_invariants(&self) -> Result<Vec<Breach>, StoreError> {
        let mut client = self.client().await?;
        read::check_invariants(&mut client)
            .await
            .map_err(Fail::into_store_error)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| Fail::from(e).into_store_error())
    }
}
