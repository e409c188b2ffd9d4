//! The write path: applying a batch, bootstrap and the sweep, all on the single writer
//! connection and inside `BEGIN IMMEDIATE` transactions.
//!
//! The decisions are the shared executor's ([`prepaid_store::exec`]): it reads rows
//! through [`SqliteRows`], which answers every lookup at once from the connection (or
//! from the writer's cache), and returns the outcomes and the changes, which this
//! module writes before `COMMIT`.

use crate::error::Fail;
use crate::rows::{self, load_api_key, load_customer, load_wallet};
use crate::view::View;
use prepaid_ledger::{
    ApiKey, ApiKeyName, Customer, CustomerId, Fingerprint, Grant, Hold, HoldId, IdempotencyKey,
    Mutation, MutationId, NewApiKey, Outcome, RecordKey, RecordKind, Refusal, Request, SettingKey,
    SystemAccount, TenantId, Timestamp, Unit, Wallet, WalletId,
};
use prepaid_store::exec::{
    self, Changes, Gap, KeyRecord, Lookup, NewTenant, RecordChange, Recorded, RecordedResult, Run,
};
use prepaid_store::{SWEEP_BATCH_MAX, StoreError, SweepReport, WriterPhases};
use rusqlite::{Connection, Statement, params};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Makes sure no transaction is left open on the connection (after a panic in an
/// earlier call, say) before starting a new one.
pub(crate) fn begin_immediate(conn: &Connection) -> Result<(), Fail> {
    if !conn.is_autocommit() {
        tracing::warn!("rolling back a transaction left open on the writer connection");
        conn.execute_batch("ROLLBACK")?;
    }
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    Ok(())
}

pub(crate) fn commit(conn: &Connection) -> Result<(), Fail> {
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

/// Rolls back whatever is open; a failure to do so is only logged, since the error
/// that led here is the one worth reporting.
pub(crate) fn rollback(conn: &Connection) {
    if conn.is_autocommit() {
        return;
    }
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::error!(error = %e, "rollback failed");
    }
}

/// Applies `batch` in one transaction; see the crate documentation for what happens
/// when a request meets an unexpected failure.
///
/// Mutation ids are taken to be free without a look (they are fresh UUIDs unless a
/// client sends a request again without its idempotency key); the insert of a taken
/// one changes nothing, which this notices, and the batch runs again knowing that id
/// is taken.
pub(crate) fn apply(
    writer: &mut Writer,
    batch: &[Request],
    now: Timestamp,
) -> Result<Written, StoreError> {
    let Writer { conn, cache } = writer;
    if batch.is_empty() {
        return Ok(Written {
            outcomes: Vec::new(),
            wallets: Vec::new(),
            epoch: cache.epoch,
        });
    }
    let conn = &*conn;
    let abort = |cache: &mut Cache, e: StoreError| {
        rollback(conn);
        cache.clear();
        tracing::error!(error = %e, batch_size = batch.len(), "batch failed");
        e
    };
    let mut taken = HashSet::new();
    loop {
        let started = Instant::now();
        begin_immediate(conn).map_err(Fail::into_store_error)?;
        if let Err(e) = cache.revalidate(conn) {
            return Err(abort(cache, e.into_store_error()));
        }
        let began = started.elapsed();
        let mut rows = SqliteRows {
            conn,
            cache,
            taken: Some(&taken),
            loading: Duration::ZERO,
        };
        let executing = Instant::now();
        let run = exec::apply(&mut rows, batch, now);
        let (executed, loading) = (executing.elapsed(), rows.loading);
        let applied = match run {
            Ok(Run::Done(applied)) => applied,
            Ok(Run::Missing(missing)) => {
                let e = StoreError::internal(format!("the executor missed rows: {missing:?}"));
                return Err(abort(cache, e));
            }
            Err(e) => return Err(abort(cache, e)),
        };
        let writing = Instant::now();
        let result = write(conn, &applied.changes, cache).and_then(|()| {
            let committing = Instant::now();
            commit(conn)?;
            Ok(committing)
        });
        match result {
            Ok(committing) => {
                let phases = Phases {
                    load: began + loading,
                    execute: executed.saturating_sub(loading),
                    write: committing.duration_since(writing),
                    commit: committing.elapsed(),
                };
                phases.record();
                let (outcomes, written) = applied.finish();
                let wallets = written
                    .wallets_new
                    .iter()
                    .chain(&written.wallets_changed)
                    .cloned()
                    .collect();
                cache.absorb(written);
                return Ok(Written {
                    outcomes,
                    wallets,
                    epoch: cache.epoch,
                });
            }
            Err(WriteFail::Taken(tenant, id)) if !taken.contains(&(tenant.clone(), id)) => {
                // Only rows of committed transactions are in the cache: it stays.
                rollback(conn);
                taken.insert((tenant, id));
            }
            Err(WriteFail::Taken(_, id)) => {
                let e = StoreError::internal(format!("mutation id {id} was taken twice"));
                return Err(abort(cache, e));
            }
            Err(WriteFail::Fail(e)) if e.is_database_wide() => {
                return Err(abort(cache, e.into_store_error()));
            }
            Err(WriteFail::Fail(e)) => {
                rollback(conn);
                cache.clear();
                tracing::warn!(
                    error = %e,
                    batch_size = batch.len(),
                    "writing a batch failed; applying it again one request at a time"
                );
                return Ok(Written {
                    outcomes: apply_isolated(conn, batch, now)?,
                    wallets: Vec::new(),
                    epoch: cache.epoch,
                });
            }
        }
    }
}

/// What a committed batch came to.
pub(crate) struct Written {
    pub(crate) outcomes: Vec<Outcome>,
    /// The wallets it made or changed, as it left them.
    pub(crate) wallets: Vec<Wallet>,
    /// The writer cache's epoch (see [`crate::view`]) when it committed.
    pub(crate) epoch: u64,
}

/// A SQLite transaction's phases (see [`WriterPhases`]): `load` holds `BEGIN`, checking
/// the cache and the rows read from the database; `commit` is `COMMIT`, which appends to
/// the log without waiting for the disk (the sync thread records `sync`).
type Phases = WriterPhases;

/// Applies `batch` with every request inside its own savepoint, written before the
/// next one starts, so that a request whose changes cannot be written is rolled back
/// alone and answered [`Refusal::Internal`]. A database-wide failure still fails the
/// whole call, with nothing committed. Keeps no cache.
fn apply_isolated(
    conn: &Connection,
    batch: &[Request],
    now: Timestamp,
) -> Result<Vec<Outcome>, StoreError> {
    let fail = |e: Fail| {
        rollback(conn);
        tracing::error!(error = %e, batch_size = batch.len(), "batch failed");
        e.into_store_error()
    };
    begin_immediate(conn).map_err(fail)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for (index, request) in batch.iter().enumerate() {
        conn.execute_batch("SAVEPOINT request")
            .map_err(|e| fail(e.into()))?;
        let mut cache = Cache::default();
        let mut rows = SqliteRows {
            conn,
            cache: &mut cache,
            taken: None,
            loading: Duration::ZERO,
        };
        let applied = match exec::apply(&mut rows, std::slice::from_ref(request), now) {
            Ok(Run::Done(applied)) => applied,
            Ok(Run::Missing(missing)) => {
                rollback(conn);
                return Err(StoreError::internal(format!(
                    "the executor missed rows: {missing:?}"
                )));
            }
            Err(e) => {
                rollback(conn);
                return Err(e);
            }
        };
        match write(conn, &applied.changes, &cache) {
            Ok(()) => {
                conn.execute_batch("RELEASE request")
                    .map_err(|e| fail(e.into()))?;
                outcomes.extend(applied.finish().0);
            }
            Err(WriteFail::Fail(e)) if e.is_database_wide() => return Err(fail(e)),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    request = index,
                    tenant = %request.tenant,
                    "request failed and was rolled back"
                );
                conn.execute_batch("ROLLBACK TO request; RELEASE request")
                    .map_err(|e| fail(e.into()))?;
                outcomes.push(Outcome::Refused(Refusal::Internal));
            }
        }
    }
    commit(conn).map_err(fail)?;
    Ok(outcomes)
}

/// On an empty store, creates the operator tenant and its admin key.
pub(crate) fn bootstrap(
    writer: &mut Writer,
    tenant: &TenantId,
    admin: &NewApiKey,
    now: Timestamp,
) -> Result<bool, Fail> {
    let conn = &writer.conn;
    begin_immediate(conn)?;
    let result = (|| {
        let any: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM tenants)")?
            .query_row([], |r| r.get(0))?;
        if any {
            return Ok(false);
        }
        if admin.customer.is_some() {
            return Err(Fail::corrupt(
                "the operator's admin key cannot belong to a customer",
            ));
        }
        insert_tenant(
            conn,
            &NewTenant {
                id: tenant.clone(),
                name: tenant.to_string(),
                operator: true,
                created_at: now,
            },
        )?;
        insert_api_key(
            conn,
            &ApiKey {
                tenant: tenant.clone(),
                name: admin.name.clone(),
                secret_sha256: admin.secret_sha256,
                scopes: admin.scopes,
                customer: None,
                created_at: now,
            },
        )?;
        Ok(true)
    })();
    match result {
        Ok(true) => commit(conn).inspect_err(|_| rollback(conn)).map(|()| {
            writer.cache.tenants.insert(tenant.clone(), true);
            true
        }),
        Ok(false) => {
            rollback(conn);
            Ok(false)
        }
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

/// Releases expired holds and expires wallets past their validity.
pub(crate) fn sweep(
    writer: &mut Writer,
    now: Timestamp,
) -> Result<(SweepReport, Vec<Wallet>, u64), StoreError> {
    let Writer { conn, cache } = writer;
    let conn = &*conn;
    begin_immediate(conn).map_err(Fail::into_store_error)?;
    let result = (|| {
        cache.revalidate(conn).map_err(Fail::into_store_error)?;
        let due = due(conn, now).map_err(Fail::into_store_error)?;
        let mut rows = SqliteRows {
            conn,
            cache: &mut *cache,
            taken: None,
            loading: Duration::ZERO,
        };
        let mut new_id = || MutationId(Uuid::now_v7());
        let swept = match exec::sweep(&mut rows, &due, now, &mut new_id)? {
            Run::Done(swept) => swept,
            Run::Missing(missing) => {
                return Err(StoreError::internal(format!(
                    "the executor missed rows: {missing:?}"
                )));
            }
        };
        write(conn, &swept.changes, cache)
            .map_err(WriteFail::into_fail)
            .and_then(|()| commit(conn))
            .map_err(Fail::into_store_error)?;
        Ok(swept)
    })();
    match result {
        Ok(swept) => {
            let wallets = swept.changes.wallets_changed.clone();
            cache.absorb(swept.changes);
            Ok((swept.report, wallets, cache.epoch))
        }
        Err(e) => {
            rollback(conn);
            cache.clear();
            Err(e)
        }
    }
}

/// The pending holds, wallets and grants due to expire, at most [`SWEEP_BATCH_MAX`] of
/// each, the earliest first.
fn due(conn: &Connection, now: Timestamp) -> Result<exec::Due, Fail> {
    let limit = i64::try_from(SWEEP_BATCH_MAX).unwrap_or(i64::MAX);
    let holds = conn
        .prepare_cached(
            "SELECT id FROM holds \
             WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?1 \
             ORDER BY expires_at LIMIT ?2",
        )?
        .query_map(params![now.as_micros(), limit], |r| r.get::<_, [u8; 16]>(0))?
        .map(|id| Ok(HoldId(Uuid::from_bytes(id?))))
        .collect::<Result<_, Fail>>()?;
    let wallets: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT tenant, id FROM wallets \
             WHERE valid_until IS NOT NULL AND status <> 'expired' AND valid_until <= ?1 \
             ORDER BY valid_until LIMIT ?2",
        )?
        .query_map(params![now.as_micros(), limit], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let wallets = wallets
        .iter()
        .map(|(tenant, id)| Ok((rows::tenant_id(tenant)?, rows::wallet_id(id)?)))
        .collect::<Result<_, Fail>>()?;
    let grants: Vec<(String, String, [u8; 16])> = conn
        .prepare_cached(
            "SELECT tenant, wallet, id FROM grants \
             WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?1 \
             AND remaining > held ORDER BY expires_at LIMIT ?2",
        )?
        .query_map(params![now.as_micros(), limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let grants = grants
        .iter()
        .map(|(tenant, wallet, id)| {
            Ok((
                rows::tenant_id(tenant)?,
                rows::wallet_id(wallet)?,
                MutationId(Uuid::from_bytes(*id)),
            ))
        })
        .collect::<Result<_, Fail>>()?;
    Ok(exec::Due {
        holds,
        wallets,
        grants,
    })
}

/// The most wallet rows the writer keeps in memory between batches; past it the cache
/// starts over.
pub(crate) const WALLET_CACHE_MAX: usize = crate::view::WALLET_VIEW_MAX;

/// Rows the writer keeps in memory, as committed.
///
/// Kept between batches while no other connection writes to the database, which
/// `PRAGMA data_version` tells at the start of each transaction; dropped whenever a
/// transaction does not commit. Only committed changes enter it.
#[derive(Default)]
pub(crate) struct Cache {
    /// The connection's `data_version` when the cache was last known good.
    data_version: Option<i64>,
    /// Tenants known to exist, with whether each is the operator tenant.
    tenants: HashMap<TenantId, bool>,
    wallets: HashMap<TenantId, HashMap<WalletId, Wallet>>,
    /// System account balances, by tenant, unit and account.
    accounts: HashMap<TenantId, HashMap<Unit, [Option<i64>; 4]>>,
    /// The live grants of wallets, each list complete.
    grants: HashMap<(TenantId, WalletId), Vec<Grant>>,
    /// Counts the times the cache was dropped; see [`crate::view`].
    pub(crate) epoch: u64,
    /// The wallets readers see, emptied whenever the cache is dropped.
    pub(crate) view: Option<Arc<View>>,
}

fn account_index(account: SystemAccount) -> usize {
    match account {
        SystemAccount::World => 0,
        SystemAccount::Revenue => 1,
        SystemAccount::Adjustment => 2,
        SystemAccount::Expiry => 3,
    }
}

impl Cache {
    /// An empty cache that empties `view` whenever it is dropped.
    pub(crate) fn with_view(view: Arc<View>) -> Self {
        Self {
            view: Some(view),
            ..Self::default()
        }
    }

    /// Drops every row and enters a new epoch, emptying the readers' view too: what
    /// made the cache untrustworthy may have made the view so.
    pub(crate) fn clear(&mut self) {
        let epoch = self.epoch + 1;
        let view = self.view.take();
        *self = Self::default();
        if let Some(view) = &view {
            view.invalidate(epoch);
        }
        self.epoch = epoch;
        self.view = view;
    }

    /// Called inside a write transaction: drops everything when another connection
    /// committed since the cache was last known good, or when it grew too large.
    fn revalidate(&mut self, conn: &Connection) -> Result<(), Fail> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        let wallets: usize = self.wallets.values().map(HashMap::len).sum();
        if self.data_version != Some(version)
            || wallets > WALLET_CACHE_MAX
            || self.grants.len() > WALLET_CACHE_MAX
        {
            self.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// Takes in what a committed transaction wrote.
    fn absorb(&mut self, changes: Changes) {
        for tenant in changes.tenants {
            self.tenants.insert(tenant.id, tenant.operator);
        }
        for wallet in changes
            .wallets_new
            .into_iter()
            .chain(changes.wallets_changed)
        {
            let per_tenant = match self.wallets.get_mut(&wallet.tenant) {
                Some(per_tenant) => per_tenant,
                None => self.wallets.entry(wallet.tenant.clone()).or_default(),
            };
            per_tenant.insert(wallet.id.clone(), wallet);
        }
        for change in changes.grants {
            // A list not cached is read whole when next needed.
            let Some(live) = self.grants.get_mut(&(change.tenant, change.wallet)) else {
                continue;
            };
            let g = change.grant;
            match live.iter().position(|x| x.id == g.id) {
                Some(i) if g.remaining == 0 => {
                    live.swap_remove(i);
                }
                Some(i) => live[i] = g,
                None if g.remaining > 0 => live.push(g),
                None => {}
            }
        }
        for change in changes.accounts {
            let slots = self
                .accounts
                .entry(change.tenant)
                .or_default()
                .entry(change.unit)
                .or_insert([None; 4]);
            slots[account_index(change.account)] = Some(change.balance);
        }
    }
}

/// The writer connection and what it keeps in memory.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) cache: Cache,
}

/// The executor's view of the database: the writer's cache, else the connection.
struct SqliteRows<'a> {
    conn: &'a Connection,
    cache: &'a mut Cache,
    /// When set, mutation ids are free unless listed here (see [`apply`]); when not,
    /// each is looked up.
    taken: Option<&'a HashSet<(TenantId, MutationId)>>,
    /// Time spent reading rows from the database.
    loading: Duration,
}

impl SqliteRows<'_> {
    /// Runs a read on the connection, counting its time as loading.
    fn load<T>(&mut self, read: impl FnOnce(&Connection) -> T) -> T {
        let started = Instant::now();
        let result = read(self.conn);
        self.loading += started.elapsed();
        result
    }
}

/// Why writing a batch's changes failed.
#[derive(Debug)]
enum WriteFail {
    /// This mutation id was taken: the insert changed nothing.
    Taken(TenantId, MutationId),
    Fail(Fail),
}

impl<E: Into<Fail>> From<E> for WriteFail {
    fn from(e: E) -> Self {
        Self::Fail(e.into())
    }
}

impl WriteFail {
    fn into_fail(self) -> Fail {
        match self {
            Self::Taken(_, id) => Fail::corrupt(format_args!("mutation id {id} is taken")),
            Self::Fail(e) => e,
        }
    }
}

impl std::fmt::Display for WriteFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Taken(_, id) => write!(f, "mutation id {id} is taken"),
            Self::Fail(e) => e.fmt(f),
        }
    }
}

/// A failure of one lookup: database-wide failures fail the batch, any other fails
/// only the request that met it.
fn gap(f: Fail) -> Gap {
    if f.is_database_wide() {
        Gap::Failed(f.into_store_error())
    } else {
        Gap::Broken(f.to_string())
    }
}

fn gap_sql(e: rusqlite::Error) -> Gap {
    gap(Fail::Sql(e))
}

impl exec::Rows for SqliteRows<'_> {
    fn tenant(&mut self, id: &TenantId) -> Lookup<Option<bool>> {
        if let Some(&operator) = self.cache.tenants.get(id) {
            return Ok(Some(operator));
        }
        let operator: Option<bool> = self
            .load(|conn| {
                conn.prepare_cached("SELECT operator FROM tenants WHERE id = ?1")
                    .and_then(|mut s| {
                        s.query_row([id.as_str()], |r| r.get::<_, i64>(0))
                            .map(|v| Some(v == 1))
                            .or_else(|e| match e {
                                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                                e => Err(e),
                            })
                    })
            })
            .map_err(gap_sql)?;
        if let Some(operator) = operator {
            self.cache.tenants.insert(id.clone(), operator);
        }
        Ok(operator)
    }

    fn customer(&mut self, tenant: &TenantId, id: &CustomerId) -> Lookup<Option<Customer>> {
        self.load(|conn| load_customer(conn, tenant, id))
            .map_err(gap)
    }

    fn api_key(&mut self, tenant: &TenantId, name: &ApiKeyName) -> Lookup<Option<ApiKey>> {
        self.load(|conn| load_api_key(conn, tenant, name))
            .map_err(gap)
    }

    fn secret_taken(&mut self, secret_sha256: &[u8; 32]) -> Lookup<bool> {
        self.load(|conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM api_keys WHERE secret_sha256 = ?1)")
                .and_then(|mut s| s.query_row([secret_sha256], |r| r.get(0)))
        })
        .map_err(gap_sql)
    }

    fn wallet(&mut self, tenant: &TenantId, id: &WalletId) -> Lookup<Option<Wallet>> {
        if let Some(w) = self.cache.wallets.get(tenant).and_then(|t| t.get(id)) {
            return Ok(Some(w.clone()));
        }
        let Some(wallet) = self
            .load(|conn| load_wallet(conn, tenant, id))
            .map_err(gap)?
        else {
            return Ok(None);
        };
        let per_tenant = match self.cache.wallets.get_mut(tenant) {
            Some(per_tenant) => per_tenant,
            None => self.cache.wallets.entry(tenant.clone()).or_default(),
        };
        per_tenant.insert(id.clone(), wallet.clone());
        Ok(Some(wallet))
    }

    fn hold(&mut self, id: HoldId) -> Lookup<Option<Hold>> {
        self.load(|conn| rows::load_hold_any(conn, id)).map_err(gap)
    }

    fn mutation(&mut self, tenant: &TenantId, id: MutationId) -> Lookup<Option<Mutation>> {
        self.load(|conn| rows::load_mutation(conn, tenant, id))
            .map_err(gap)
    }

    fn mutation_taken(&mut self, tenant: &TenantId, id: MutationId) -> Lookup<bool> {
        match self.taken {
            Some(taken) => Ok(taken.contains(&(tenant.clone(), id))),
            None => self
                .load(|conn| {
                    conn.prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM mutations WHERE tenant = ?1 AND id = ?2)",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![tenant.as_str(), id.0.as_bytes()], |r| r.get(0))
                    })
                })
                .map_err(gap_sql),
        }
    }

    fn idempotency(&mut self, tenant: &TenantId, key: &IdempotencyKey) -> Lookup<Option<Recorded>> {
        self.load(|conn| idempotency_row(conn, tenant, key))
    }

    fn account(&mut self, tenant: &TenantId, unit: &Unit, account: SystemAccount) -> Lookup<i64> {
        if let Some(balance) = self
            .cache
            .accounts
            .get(tenant)
            .and_then(|t| t.get(unit))
            .and_then(|slots| slots[account_index(account)])
        {
            return Ok(balance);
        }
        let balance: i64 = self
            .load(|conn| {
                conn.prepare_cached(
                    "SELECT balance FROM system_accounts \
                     WHERE tenant = ?1 AND unit_code = ?2 AND unit_scale = ?3 AND kind = ?4",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![tenant.as_str(), unit.code(), unit.scale(), account.as_str()],
                        |r| r.get(0),
                    )
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(0),
                        e => Err(e),
                    })
                })
            })
            .map_err(gap_sql)?;
        let slots = self
            .cache
            .accounts
            .entry(tenant.clone())
            .or_default()
            .entry(unit.clone())
            .or_insert([None; 4]);
        slots[account_index(account)] = Some(balance);
        Ok(balance)
    }

    fn grants(&mut self, tenant: &TenantId, wallet: &WalletId) -> Lookup<Vec<Grant>> {
        let key = (tenant.clone(), wallet.clone());
        if let Some(live) = self.cache.grants.get(&key) {
            return Ok(live.clone());
        }
        let live = self
            .load(|conn| rows::load_grants(conn, tenant, wallet))
            .map_err(gap)?;
        self.cache.grants.insert(key, live.clone());
        Ok(live)
    }

    fn grant(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        id: MutationId,
    ) -> Lookup<Option<Grant>> {
        self.load(|conn| rows::load_grant(conn, tenant, wallet, id))
            .map_err(gap)
    }

    fn pending_holds(&mut self, tenant: &TenantId, wallet: &WalletId) -> Lookup<Vec<HoldId>> {
        self.conn
            .prepare_cached(
                "SELECT id FROM holds WHERE tenant = ?1 AND wallet = ?2 AND status = 'pending'",
            )
            .and_then(|mut s| {
                s.query_map(params![tenant.as_str(), wallet.as_str()], |r| {
                    r.get::<_, [u8; 16]>(0)
                })?
                .map(|id| id.map(|id| HoldId(Uuid::from_bytes(id))))
                .collect()
            })
            .map_err(gap_sql)
    }

    fn setting(&mut self, tenant: &TenantId, key: &SettingKey) -> Lookup<Option<String>> {
        self.load(|conn| crate::search::setting(conn, tenant, key))
            .map_err(gap)
    }

    fn record(
        &mut self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Lookup<Option<(i64, String)>> {
        self.conn
            .prepare_cached(
                "SELECT version, value FROM records WHERE tenant = ?1 AND kind = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant.as_str(), kind.as_str(), key.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
            })
            .map_err(gap_sql)
    }

    fn webhooks(&mut self, tenant: &TenantId) -> Lookup<bool> {
        self.conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM records WHERE tenant = ?1 AND kind = ?2)")
            .and_then(|mut s| {
                s.query_row(
                    params![
                        tenant.as_str(),
                        prepaid_store::webhooks::ENABLED_KIND.as_str()
                    ],
                    |r| r.get::<_, bool>(0),
                )
            })
            .map_err(gap_sql)
    }

    fn may_miss(&self) -> bool {
        false
    }
}

/// What an idempotency key of the tenant recorded, read from the database.
fn idempotency_row(
    conn: &Connection,
    tenant: &TenantId,
    key: &IdempotencyKey,
) -> Lookup<Option<Recorded>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT fingerprint, result_kind, result_id, result_id2, wallet_status, \
             wallet_balance, wallet_held, wallet_updated_at FROM idempotency_keys \
             WHERE tenant = ?1 AND key = ?2",
        )
        .map_err(gap_sql)?;
    let mut rows = stmt
        .query(params![tenant.as_str(), key.as_str()])
        .map_err(gap_sql)?;
    let Some(row) = rows.next().map_err(gap_sql)? else {
        return Ok(None);
    };
    let read = || -> Result<Recorded, Fail> {
        let fingerprint: [u8; 32] = row.get(0)?;
        let kind: String = row.get(1)?;
        let id: String = row.get(2)?;
        let id2: Option<String> = row.get(3)?;
        let status: Option<String> = row.get(4)?;
        let balance: Option<i64> = row.get(5)?;
        let held: Option<i64> = row.get(6)?;
        let updated_at: Option<i64> = row.get(7)?;
        let wallet = match (&status, balance, held, updated_at) {
            (Some(status), Some(balance), Some(held), Some(updated_at)) => {
                Some((status.as_str(), balance, held, updated_at))
            }
            _ => None,
        };
        let result = RecordedResult::from_columns(&kind, &id, id2.as_deref(), wallet)
            .map_err(Fail::corrupt)?;
        Ok(Recorded {
            fingerprint: Fingerprint(fingerprint),
            result,
        })
    };
    read().map(Some).map_err(gap)
}

/// Writes what a batch or sweep changed, in the order of [`Changes`]' fields.
/// `before` holds the wallets as the batch read them (every wallet it read went
/// through the cache), so that a status is written only when it changed: the status
/// decides whether a wallet is in the index of wallets due to expire.
fn write(conn: &Connection, changes: &Changes, before: &Cache) -> Result<(), WriteFail> {
    for tenant in &changes.tenants {
        insert_tenant(conn, tenant)?;
    }
    for customer in &changes.customers {
        insert_customer(conn, customer)?;
    }
    for link in &changes.customer_links {
        conn.prepare_cached("UPDATE customers SET link = ?3 WHERE tenant = ?1 AND id = ?2")?
            .execute(params![link.tenant.as_str(), link.id.as_str(), link.link])?;
    }
    for key in &changes.api_keys {
        insert_api_key(conn, key)?;
    }
    for wallet in &changes.wallets_new {
        insert_wallet(conn, wallet)?;
    }
    // Each statement is looked up in the cache once per batch, not once per row.
    let mut update_wallet = conn.prepare_cached(
        "UPDATE wallets SET balance = ?3, held = ?4, updated_at = ?5, incoming = ?6 \
         WHERE tenant = ?1 AND id = ?2",
    )?;
    for wallet in &changes.wallets_changed {
        update_wallet.execute(params![
            wallet.tenant.as_str(),
            wallet.id.as_str(),
            wallet.balance,
            wallet.held,
            wallet.updated_at.as_micros(),
            wallet.incoming
        ])?;
        let status_before = before
            .wallets
            .get(&wallet.tenant)
            .and_then(|t| t.get(&wallet.id))
            .map(|w| w.status);
        if status_before != Some(wallet.status) {
            conn.prepare_cached("UPDATE wallets SET status = ?3 WHERE tenant = ?1 AND id = ?2")?
                .execute(params![
                    wallet.tenant.as_str(),
                    wallet.id.as_str(),
                    wallet.status.as_str()
                ])?;
        }
    }
    for wallet in &changes.wallets_relabelled {
        conn.prepare_cached("UPDATE wallets SET metadata = ?3 WHERE tenant = ?1 AND id = ?2")?
            .execute(params![
                wallet.tenant.as_str(),
                wallet.id.as_str(),
                prepaid_store::sql::encode_metadata(&wallet.metadata)
            ])?;
    }
    for hold in &changes.holds_new {
        insert_hold(conn, hold)?;
    }
    for hold in &changes.holds_changed {
        conn.prepare_cached(
            "UPDATE holds SET status = ?3, committed_amount = ?4, settled_at = ?5 \
             WHERE id = ?2 AND tenant = ?1",
        )?
        .execute(params![
            hold.tenant.as_str(),
            hold.id.0.as_bytes(),
            hold.status.as_str(),
            hold.committed_amount,
            hold.settled_at.map(Timestamp::as_micros)
        ])?;
    }
    let mut statement = conn.prepare_cached(INSERT_MUTATION)?;
    for mutation in &changes.mutations {
        if !insert_mutation(&mut statement, mutation)? {
            return Err(WriteFail::Taken(mutation.tenant.clone(), mutation.id));
        }
    }
    for change in &changes.grants {
        write_grant(conn, change)?;
    }
    let mut statement = conn.prepare_cached(INSERT_KEY)?;
    for key in &changes.keys {
        insert_key(&mut statement, key)?;
    }
    for change in &changes.accounts {
        conn.prepare_cached(
            "INSERT INTO system_accounts (tenant, unit_code, unit_scale, kind, balance) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (tenant, unit_code, unit_scale, kind) \
             DO UPDATE SET balance = excluded.balance",
        )?
        .execute(params![
            change.tenant.as_str(),
            change.unit.code(),
            change.unit.scale(),
            change.account.as_str(),
            change.balance
        ])?;
    }
    // One writer: nobody can have put a setting since the batch read it, so an upsert
    // does for both new and changed ones.
    for setting in &changes.settings {
        conn.prepare_cached(
            "INSERT INTO settings (tenant, key, value, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (tenant, key) \
             DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )?
        .execute(params![
            setting.tenant.as_str(),
            setting.key.as_str(),
            setting.value,
            setting.updated_at.as_micros()
        ])?;
    }
    for change in &changes.records {
        write_record(conn, change)?;
    }
    for job in &changes.jobs {
        conn.prepare_cached(
            "INSERT INTO jobs (tenant, queue, id, payload, due_at, attempts) \
             VALUES (?1, ?2, ?3, ?4, ?5, 0) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            job.tenant.as_str(),
            job.queue.as_str(),
            job.id.as_str(),
            job.payload,
            job.due_at.as_micros()
        ])?;
    }
    Ok(())
}

/// Inserts a new grant, or updates what a changed one has left and reserves.
fn write_grant(conn: &Connection, change: &exec::GrantChange) -> Result<(), Fail> {
    let g = &change.grant;
    if change.new {
        conn.prepare_cached(
            "INSERT INTO grants (tenant, id, wallet, amount, remaining, held, priority, \
             category, expires_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            change.tenant.as_str(),
            g.id.0.as_bytes(),
            change.wallet.as_str(),
            g.amount,
            g.remaining,
            g.held,
            g.terms.priority.get(),
            g.terms.category.as_str(),
            g.terms.expires_at.map(Timestamp::as_micros),
            g.created_at.as_micros()
        ])?;
    } else {
        conn.prepare_cached(
            "UPDATE grants SET remaining = ?3, held = ?4 WHERE tenant = ?1 AND id = ?2",
        )?
        .execute(params![
            change.tenant.as_str(),
            g.id.0.as_bytes(),
            g.remaining,
            g.held
        ])?;
    }
    Ok(())
}

/// Writes a record a linked step changed. The single writer read its version in this
/// transaction, so each statement touches exactly one row.
fn write_record(conn: &Connection, change: &RecordChange) -> Result<(), Fail> {
    let (tenant, kind, key) = (
        change.tenant.as_str(),
        change.kind.as_str(),
        change.key.as_str(),
    );
    let at = change.at.as_micros();
    let touched = match (change.read, &change.write) {
        (None, Some((version, value))) => conn
            .prepare_cached(
                "INSERT INTO records (tenant, kind, key, value, version, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?
            .execute(params![tenant, kind, key, value, version, at])?,
        (Some(read), Some((version, value))) => conn
            .prepare_cached(
                "UPDATE records SET value = ?4, version = ?5, updated_at = ?6 \
                 WHERE tenant = ?1 AND kind = ?2 AND key = ?3 AND version = ?7",
            )?
            .execute(params![tenant, kind, key, value, version, at, read])?,
        (Some(read), None) => conn
            .prepare_cached(
                "DELETE FROM records WHERE tenant = ?1 AND kind = ?2 AND key = ?3 AND version = ?4",
            )?
            .execute(params![tenant, kind, key, read])?,
        (None, None) => 1,
    };
    if touched != 1 {
        return Err(Fail::corrupt("a record changed under the single writer"));
    }
    Ok(())
}

fn insert_tenant(conn: &Connection, t: &NewTenant) -> Result<(), Fail> {
    conn.prepare_cached(
        "INSERT INTO tenants (id, name, operator, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        t.id.as_str(),
        t.name,
        t.operator,
        t.created_at.as_micros()
    ])?;
    Ok(())
}

fn insert_api_key(conn: &Connection, key: &ApiKey) -> Result<(), Fail> {
    conn.prepare_cached(
        "INSERT INTO api_keys (tenant, name, secret_sha256, scope_read, scope_write, \
         scope_admin, customer, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        key.tenant.as_str(),
        key.name.as_str(),
        key.secret_sha256,
        key.scopes.read,
        key.scopes.write,
        key.scopes.admin,
        key.customer.as_ref().map(CustomerId::as_str),
        key.created_at.as_micros()
    ])?;
    Ok(())
}

fn insert_customer(conn: &Connection, c: &Customer) -> Result<(), Fail> {
    conn.prepare_cached(
        "INSERT INTO customers (tenant, id, name, created_at, link) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        c.tenant.as_str(),
        c.id.as_str(),
        c.name,
        c.created_at.as_micros(),
        c.link
    ])?;
    Ok(())
}

fn insert_wallet(conn: &Connection, w: &Wallet) -> Result<(), Fail> {
    let floor = match w.floor {
        prepaid_ledger::Floor::Limit(v) => Some(v),
        prepaid_ledger::Floor::Unlimited => None,
    };
    conn.prepare_cached(
        "INSERT INTO wallets (tenant, id, customer, unit_code, unit_scale, name, product, \
         status, floor, valid_from, valid_until, balance, held, created_at, updated_at, \
         ceiling, incoming, metadata) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18)",
    )?
    .execute(params![
        w.tenant.as_str(),
        w.id.as_str(),
        w.customer.as_str(),
        w.unit.code(),
        w.unit.scale(),
        w.name,
        w.product,
        w.status.as_str(),
        floor,
        w.valid_from.map(Timestamp::as_micros),
        w.valid_until.map(Timestamp::as_micros),
        w.balance,
        w.held,
        w.created_at.as_micros(),
        w.updated_at.as_micros(),
        w.ceiling,
        w.incoming,
        prepaid_store::sql::encode_metadata(&w.metadata),
    ])?;
    Ok(())
}

const INSERT_MUTATION: &str = "INSERT INTO mutations (id, tenant, wallet, customer, \
     unit_code, unit_scale, kind, amount, balance_after, reference_kind, reference_text, \
     reference_link, hold, transfer, counter_wallet, occurred_at, recorded_at, drawn, \
     reverses, metadata) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
     ?19, ?20) \
     ON CONFLICT (tenant, id) DO NOTHING";

const INSERT_KEY: &str = "INSERT INTO idempotency_keys (tenant, key, fingerprint, \
     result_kind, result_id, result_id2, wallet_status, wallet_balance, wallet_held, \
     wallet_updated_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// Inserts a mutation with [`INSERT_MUTATION`]; `false` when its id is taken.
fn insert_mutation(statement: &mut Statement<'_>, m: &Mutation) -> Result<bool, Fail> {
    let n = statement.execute(params![
        m.id.0.as_bytes(),
        m.tenant.as_str(),
        m.wallet.as_str(),
        m.customer.as_str(),
        m.unit.code(),
        m.unit.scale(),
        m.kind.as_str(),
        m.amount,
        m.balance_after,
        m.reference.parts().0,
        m.reference.parts().1,
        m.reference.parts().2,
        m.hold.as_ref().map(|h| h.0.as_bytes()),
        m.transfer.as_ref().map(|t| t.0.as_bytes()),
        m.counter_wallet.as_ref().map(WalletId::as_str),
        m.occurred_at.as_micros(),
        m.recorded_at.as_micros(),
        prepaid_store::sql::encode_draws(&m.drawn),
        m.reverses.as_ref().map(|r| r.0.as_bytes()),
        prepaid_store::sql::encode_metadata(&m.metadata)
    ])?;
    Ok(n == 1)
}

fn insert_hold(conn: &Connection, h: &Hold) -> Result<(), Fail> {
    conn.prepare_cached(
        "INSERT INTO holds (tenant, id, wallet, customer, amount, committed_amount, status, \
         reference_kind, reference_text, reference_link, expires_at, created_at, settled_at, \
         direction, reserved, metadata) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        h.tenant.as_str(),
        h.id.0.as_bytes(),
        h.wallet.as_str(),
        h.customer.as_str(),
        h.amount,
        h.committed_amount,
        h.status.as_str(),
        h.reference.parts().0,
        h.reference.parts().1,
        h.reference.parts().2,
        h.expires_at.map(Timestamp::as_micros),
        h.created_at.as_micros(),
        h.settled_at.map(Timestamp::as_micros),
        h.direction.as_str(),
        prepaid_store::sql::encode_draws(&h.reserved),
        prepaid_store::sql::encode_metadata(&h.metadata)
    ])?;
    Ok(())
}

fn insert_key(statement: &mut Statement<'_>, k: &KeyRecord) -> Result<(), Fail> {
    let columns = k.recorded.result.to_columns();
    statement.execute(params![
        k.tenant.as_str(),
        k.key.as_str(),
        k.recorded.fingerprint.0,
        columns.kind,
        columns.id,
        columns.id2,
        columns.wallet.map(|w| w.0),
        columns.wallet.map(|w| w.1),
        columns.wallet.map(|w| w.2),
        columns.wallet.map(|w| w.3),
        k.created_at.as_micros()
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(wallets: usize) -> Cache {
        let mut cache = Cache::default();
        let rows = cache
            .wallets
            .entry(TenantId::parse("t").unwrap())
            .or_default();
        for i in 0..wallets {
            let wallet = crate::view::test_wallet(&format!("w{i}"), 0);
            rows.insert(wallet.id.clone(), wallet);
        }
        cache
    }

    fn cached(cache: &Cache) -> usize {
        cache.wallets.values().map(HashMap::len).sum()
    }

    #[test]
    fn the_cache_is_kept_up_to_its_limit_and_dropped_past_it() {
        let conn = Connection::open_in_memory().unwrap();
        let version: i64 = conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap();

        let mut at_limit = cache_with(WALLET_CACHE_MAX);
        at_limit.data_version = Some(version);
        at_limit.revalidate(&conn).unwrap();
        assert_eq!(cached(&at_limit), WALLET_CACHE_MAX);

        let mut over = cache_with(WALLET_CACHE_MAX + 1);
        over.data_version = Some(version);
        over.revalidate(&conn).unwrap();
        assert_eq!(cached(&over), 0);
        assert_eq!(over.data_version, Some(version));

        // A cache never checked against this connection is not trusted.
        let mut unknown = cache_with(1);
        unknown.revalidate(&conn).unwrap();
        assert_eq!(cached(&unknown), 0);
    }
}
