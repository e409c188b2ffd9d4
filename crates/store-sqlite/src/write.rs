//! The write path: applying a batch of requests, bootstrap and the sweep, all on the
//! single writer connection and inside `BEGIN IMMEDIATE` transactions.
//!
//! Within a batch, wallet rows and system-account balances are kept in memory once
//! touched and written back once, just before `COMMIT`; every other row (mutations,
//! holds, idempotency keys, new entities) is written as the request goes. Each request
//! loads what it needs, asks the ledger core's rule functions what to do, and writes
//! nothing until every rule has agreed, so a refused request leaves no trace.

use crate::error::{Fail, Step};
use crate::rows::{self, load_api_key, load_customer, load_hold, load_mutation, load_wallet};
use prepaid_ledger::{
    Amount, ApiKey, Command, Customer, CustomerId, Done, Fingerprint, Hold, HoldId, HoldStatus,
    IdempotencyKey, Mutation, MutationId, MutationKind, NewApiKey, NewWallet, Outcome, Reference,
    Refusal, Request, SystemAccount, TenantId, Timestamp, Transfer, TransferId, Unit, Wallet,
    WalletId, WalletStatus, add_to_balance, commit_hold, expire_wallet, place_hold, post,
    release_hold, transfer,
};
use prepaid_store::{SWEEP_BATCH_MAX, StoreError, SweepReport};
use rusqlite::{Connection, params};
use std::collections::HashMap;
use uuid::Uuid;

/// Makes sure no transaction is left open on the connection (after a panic in an
/// earlier call, say) before starting a new one.
fn begin_immediate(conn: &Connection) -> Result<(), Fail> {
    if !conn.is_autocommit() {
        tracing::warn!("rolling back a transaction left open on the writer connection");
        conn.execute_batch("ROLLBACK")?;
    }
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    Ok(())
}

fn commit(conn: &Connection) -> Result<(), Fail> {
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

/// Rolls back whatever is open; a failure to do so is only logged, since the error
/// that led here is the one worth reporting.
fn rollback(conn: &Connection) {
    if conn.is_autocommit() {
        return;
    }
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::error!(error = %e, "rollback failed");
    }
}

/// Applies `batch` in one transaction; see the crate documentation for what happens
/// when a request meets an unexpected failure.
pub(crate) fn apply(
    writer: &mut Writer,
    batch: &[Request],
    now: Timestamp,
) -> Result<Vec<Outcome>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let Writer { conn, cache } = writer;
    let conn = &*conn;
    begin_immediate(conn).map_err(Fail::into_store_error)?;
    let mut failure = None;
    let mut outcomes = Vec::with_capacity(batch.len());
    match cache.revalidate(conn) {
        Err(e) => failure = Some((None, e)),
        Ok(()) => {
            let mut work = Batch::new(conn, now, cache);
            for (index, request) in batch.iter().enumerate() {
                match work.run(request) {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(e) => {
                        failure = Some((Some(index), e));
                        break;
                    }
                }
            }
            if failure.is_none()
                && let Err(e) = work.flush()
            {
                failure = Some((None, e));
            }
        }
    }
    let Some((index, e)) = failure else {
        if let Err(e) = commit(conn) {
            rollback(conn);
            cache.clear();
            tracing::error!(error = %e, batch_size = batch.len(), "commit failed");
            return Err(e.into_store_error());
        }
        return Ok(outcomes);
    };
    rollback(conn);
    cache.clear();
    if e.is_database_wide() {
        tracing::error!(error = %e, batch_size = batch.len(), "batch failed");
        return Err(e.into_store_error());
    }
    tracing::warn!(
        error = %e,
        request = ?index,
        batch_size = batch.len(),
        "a request failed; applying the batch again one request at a time"
    );
    apply_isolated(conn, batch, now)
}

/// Applies `batch` with every request inside its own savepoint, flushed before the
/// next one starts, so that a request that fails is rolled back alone and answered
/// [`Refusal::Internal`]. A database-wide failure still fails the whole call, with
/// nothing committed. Uses a fresh cache per request and keeps none.
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
        let mut work = Batch::new(conn, now, &mut cache);
        let result = work.run(request).and_then(|o| work.flush().map(|()| o));
        match result {
            Ok(outcome) => {
                conn.execute_batch("RELEASE request")
                    .map_err(|e| fail(e.into()))?;
                outcomes.push(outcome);
            }
            Err(e) if e.is_database_wide() => return Err(fail(e)),
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
        insert_tenant(conn, tenant, tenant.as_str(), true, now)?;
        if !insert_api_key(conn, tenant, admin, now)? {
            return Err(Fail::corrupt("admin key exists in an empty store"));
        }
        Ok(true)
    })();
    match result {
        Ok(true) => commit(conn).inspect_err(|_| rollback(conn)).map(|()| true),
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
pub(crate) fn sweep(writer: &mut Writer, now: Timestamp) -> Result<SweepReport, Fail> {
    let Writer { conn, cache } = writer;
    let conn = &*conn;
    begin_immediate(conn)?;
    let result = cache.revalidate(conn).and_then(|()| {
        let mut work = Batch::new(conn, now, cache);
        work.sweep()
            .and_then(|report| work.flush().map(|()| report))
    });
    let result = result.and_then(|report| commit(conn).map(|()| report));
    if result.is_err() {
        rollback(conn);
        cache.clear();
    }
    result
}

/// A wallet row as the writer sees it, with what must be written back.
struct CachedWallet {
    wallet: Wallet,
    /// Listed in [`WalletRows::touched`] of the current transaction.
    touched: bool,
    /// `balance` or `held` changed.
    amounts_dirty: bool,
    status_dirty: bool,
}

#[derive(Clone, Copy)]
struct CachedAccount {
    balance: i64,
    /// Listed in [`AccountRows::touched`] of the current transaction.
    touched: bool,
    dirty: bool,
}

#[derive(Default)]
struct WalletRows {
    rows: HashMap<TenantId, HashMap<WalletId, CachedWallet>>,
    /// The rows the current transaction touched, so that writing them back costs no
    /// walk over the whole cache.
    touched: Vec<(TenantId, WalletId)>,
}

#[derive(Default)]
struct AccountRows {
    rows: HashMap<TenantId, HashMap<Unit, [Option<CachedAccount>; 4]>>,
    touched: Vec<(TenantId, Unit, SystemAccount)>,
}

fn account_index(account: SystemAccount) -> usize {
    match account {
        SystemAccount::World => 0,
        SystemAccount::Revenue => 1,
        SystemAccount::Adjustment => 2,
        SystemAccount::Expiry => 3,
    }
}

/// The wallet, from the cache or else the database.
fn cached_wallet<'a>(
    conn: &Connection,
    wallets: &'a mut WalletRows,
    tenant: &TenantId,
    id: &WalletId,
) -> Result<Option<&'a mut CachedWallet>, Fail> {
    if !wallets.rows.contains_key(tenant) {
        wallets.rows.insert(tenant.clone(), HashMap::new());
    }
    let Some(per_tenant) = wallets.rows.get_mut(tenant) else {
        return Ok(None);
    };
    if !per_tenant.contains_key(id) {
        let Some(wallet) = load_wallet(conn, tenant, id)? else {
            return Ok(None);
        };
        per_tenant.insert(
            id.clone(),
            CachedWallet {
                wallet,
                touched: false,
                amounts_dirty: false,
                status_dirty: false,
            },
        );
    }
    let Some(c) = per_tenant.get_mut(id) else {
        return Ok(None);
    };
    if !c.touched {
        c.touched = true;
        wallets.touched.push((tenant.clone(), id.clone()));
    }
    Ok(Some(c))
}

/// The wallet if it exists and the caller may see it.
fn visible_wallet<'a>(
    conn: &Connection,
    wallets: &'a mut WalletRows,
    tenant: &TenantId,
    id: &WalletId,
    customer_only: Option<&CustomerId>,
) -> Result<&'a mut CachedWallet, Step> {
    match cached_wallet(conn, wallets, tenant, id)? {
        Some(c) if customer_only.is_none_or(|only| *only == c.wallet.customer) => Ok(c),
        _ => Err(Refusal::WalletNotFound.into()),
    }
}

/// A system account's running balance, from the cache or else the database (zero when
/// it was never used).
fn cached_account<'a>(
    conn: &Connection,
    accounts: &'a mut AccountRows,
    tenant: &TenantId,
    unit: &Unit,
    account: SystemAccount,
) -> Result<&'a mut CachedAccount, Fail> {
    if !accounts.rows.contains_key(tenant) {
        accounts.rows.insert(tenant.clone(), HashMap::new());
    }
    let Some(per_tenant) = accounts.rows.get_mut(tenant) else {
        return Err(Fail::corrupt("account cache lost a tenant"));
    };
    if !per_tenant.contains_key(unit) {
        per_tenant.insert(unit.clone(), [None; 4]);
    }
    let Some(slots) = per_tenant.get_mut(unit) else {
        return Err(Fail::corrupt("account cache lost a unit"));
    };
    let slot = &mut slots[account_index(account)];
    if slot.is_none() {
        let balance: Option<i64> = conn
            .prepare_cached(
                "SELECT balance FROM system_accounts \
                 WHERE tenant = ?1 AND unit_code = ?2 AND unit_scale = ?3 AND kind = ?4",
            )?
            .query_row(
                params![tenant.as_str(), unit.code(), unit.scale(), account.as_str()],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        *slot = Some(CachedAccount {
            balance: balance.unwrap_or(0),
            touched: false,
            dirty: false,
        });
    }
    let Some(cached) = slot.as_mut() else {
        return Err(Fail::corrupt("account cache lost an account"));
    };
    if !cached.touched {
        cached.touched = true;
        accounts
            .touched
            .push((tenant.clone(), unit.clone(), account));
    }
    Ok(cached)
}

/// The most wallet rows the writer keeps in memory between batches; past it the cache
/// starts over.
pub(crate) const WALLET_CACHE_MAX: usize = 16_384;

/// Rows the writer keeps in memory, as committed (or as the current transaction left
/// them, until it ends).
///
/// Kept between batches while no other connection writes to the database, which
/// `PRAGMA data_version` tells at the start of each transaction; dropped whenever a
/// transaction does not commit.
#[derive(Default)]
pub(crate) struct Cache {
    /// The connection's `data_version` when the cache was last known good.
    data_version: Option<i64>,
    /// Tenants known to exist, with whether each is the operator tenant.
    tenants: HashMap<TenantId, bool>,
    wallets: WalletRows,
    accounts: AccountRows,
}

impl Cache {
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Called inside a write transaction: drops everything when another connection
    /// committed since the cache was last known good, or when it grew too large.
    fn revalidate(&mut self, conn: &Connection) -> Result<(), Fail> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        let wallets: usize = self.wallets.rows.values().map(HashMap::len).sum();
        if self.data_version != Some(version) || wallets > WALLET_CACHE_MAX {
            self.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }
}

/// The writer connection and what it keeps in memory.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) cache: Cache,
}

/// The work of one transaction.
struct Batch<'c> {
    conn: &'c Connection,
    now: Timestamp,
    cache: &'c mut Cache,
}

/// What an idempotency key recorded.
struct StoredResult {
    fingerprint: [u8; 32],
    kind: String,
    id: String,
    id2: Option<String>,
    /// A wallet answer's status, balance and held as first given.
    wallet: Option<(String, i64, i64)>,
}

impl<'c> Batch<'c> {
    fn new(conn: &'c Connection, now: Timestamp, cache: &'c mut Cache) -> Self {
        Self { conn, now, cache }
    }

    /// Writes every changed wallet row and system account back.
    fn flush(&mut self) -> Result<(), Fail> {
        let conn = self.conn;
        let wallets = &mut self.cache.wallets;
        for (tenant, id) in wallets.touched.drain(..) {
            let Some(c) = wallets.rows.get_mut(&tenant).and_then(|t| t.get_mut(&id)) else {
                return Err(Fail::corrupt("a touched wallet left the cache"));
            };
            if c.amounts_dirty {
                conn.prepare_cached(
                    "UPDATE wallets SET balance = ?3, held = ?4 WHERE tenant = ?1 AND id = ?2",
                )?
                .execute(params![
                    tenant.as_str(),
                    id.as_str(),
                    c.wallet.balance,
                    c.wallet.held
                ])?;
            }
            if c.status_dirty {
                conn.prepare_cached(
                    "UPDATE wallets SET status = ?3 WHERE tenant = ?1 AND id = ?2",
                )?
                .execute(params![
                    tenant.as_str(),
                    id.as_str(),
                    c.wallet.status.as_str()
                ])?;
            }
            c.touched = false;
            c.amounts_dirty = false;
            c.status_dirty = false;
        }
        let accounts = &mut self.cache.accounts;
        for (tenant, unit, account) in accounts.touched.drain(..) {
            let Some(c) = accounts
                .rows
                .get_mut(&tenant)
                .and_then(|t| t.get_mut(&unit))
                .and_then(|slots| slots[account_index(account)].as_mut())
            else {
                return Err(Fail::corrupt("a touched system account left the cache"));
            };
            if c.dirty {
                conn.prepare_cached(
                    "INSERT INTO system_accounts (tenant, unit_code, unit_scale, kind, balance) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (tenant, unit_code, unit_scale, kind) \
                     DO UPDATE SET balance = excluded.balance",
                )?
                .execute(params![
                    tenant.as_str(),
                    unit.code(),
                    unit.scale(),
                    account.as_str(),
                    c.balance
                ])?;
            }
            c.touched = false;
            c.dirty = false;
        }
        Ok(())
    }

    /// Whether the tenant exists, and if so whether it is the operator tenant.
    fn tenant(&mut self, tenant: &TenantId) -> Result<Option<bool>, Fail> {
        if let Some(&operator) = self.cache.tenants.get(tenant) {
            return Ok(Some(operator));
        }
        let operator: Option<bool> = self
            .conn
            .prepare_cached("SELECT operator FROM tenants WHERE id = ?1")?
            .query_row([tenant.as_str()], |r| r.get::<_, i64>(0))
            .map(|v| Some(v == 1))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        if let Some(operator) = operator {
            self.cache.tenants.insert(tenant.clone(), operator);
        }
        Ok(operator)
    }

    /// One request: its outcome, or a failure that aborts the batch.
    fn run(&mut self, request: &Request) -> Result<Outcome, Fail> {
        if self.tenant(&request.tenant)?.is_none() {
            return Ok(Outcome::Refused(Refusal::TenantNotFound));
        }
        if let Some((key, fingerprint)) = &request.idempotency
            && let Some(stored) = self.stored_result(&request.tenant, key)?
        {
            if stored.fingerprint != fingerprint.0 {
                return Ok(Outcome::Refused(Refusal::IdempotencyConflict));
            }
            let done = self.reload(&request.tenant, &stored)?;
            // A key of another customer of the tenant must not reveal what it did.
            if !visible(&done, request.customer_only.as_ref()) {
                return Ok(Outcome::Refused(Refusal::IdempotencyConflict));
            }
            return Ok(Outcome::Done {
                done,
                replayed: true,
            });
        }
        if request.customer_only.is_some() && !request.command.allowed_for_customer_key() {
            return Ok(Outcome::Refused(Refusal::Forbidden));
        }
        let done = match self.execute(request) {
            Ok(done) => done,
            Err(Step::Refused(refusal)) => return Ok(Outcome::Refused(refusal)),
            Err(Step::Failed(fail)) => return Err(fail),
        };
        if let Some((key, fingerprint)) = &request.idempotency {
            self.record_result(&request.tenant, key, fingerprint, &done)?;
        }
        Ok(Outcome::Done {
            done,
            replayed: false,
        })
    }

    fn execute(&mut self, request: &Request) -> Result<Done, Step> {
        let tenant = &request.tenant;
        let only = request.customer_only.as_ref();
        match &request.command {
            Command::CreateTenant {
                tenant: new,
                name,
                admin_key,
            } => self.create_tenant(tenant, new, name, admin_key),
            Command::CreateApiKey { key } => {
                if let Some(customer) = &key.customer
                    && load_customer(self.conn, tenant, customer)?.is_none()
                {
                    return Err(Refusal::CustomerNotFound.into());
                }
                if !insert_api_key(self.conn, tenant, key, self.now)? {
                    return Err(Refusal::ApiKeyExists.into());
                }
                Ok(Done::ApiKey(api_key(tenant, key, self.now)))
            }
            Command::CreateCustomer { id, name } => {
                if only.is_some_and(|only| only != id) {
                    return Err(Refusal::Forbidden.into());
                }
                let customer = Customer {
                    tenant: tenant.clone(),
                    id: id.clone(),
                    name: name.clone(),
                    created_at: self.now,
                };
                if !insert_customer(self.conn, &customer)? {
                    return Err(Refusal::CustomerExists.into());
                }
                Ok(Done::Customer(customer))
            }
            Command::CreateWallet { wallet } => self.create_wallet(tenant, only, wallet),
            Command::SetWalletStatus { wallet, status } => {
                let c = visible_wallet(self.conn, &mut self.cache.wallets, tenant, wallet, only)?;
                if c.wallet.status != *status {
                    c.wallet.status = *status;
                    c.status_dirty = true;
                }
                Ok(Done::Wallet(c.wallet.clone()))
            }
            Command::Post {
                id,
                wallet,
                kind,
                amount,
                reference,
                occurred_at,
            } => self
                .post(
                    tenant,
                    only,
                    *id,
                    wallet,
                    *kind,
                    *amount,
                    reference,
                    *occurred_at,
                )
                .map(Done::Mutation),
            Command::Transfer {
                id,
                debit_id,
                credit_id,
                from,
                to,
                amount,
                reference,
                occurred_at,
            } => self.transfer(
                tenant,
                only,
                TransferIds {
                    transfer: *id,
                    debit: *debit_id,
                    credit: *credit_id,
                },
                from,
                to,
                *amount,
                reference,
                *occurred_at,
            ),
            Command::PlaceHold {
                id,
                wallet,
                amount,
                reference,
                expires_at,
            } => {
                if amount.get() <= 0 {
                    return Err(caller_bug(tenant, "a hold of a non-positive amount"));
                }
                let now = self.now;
                let c = visible_wallet(self.conn, &mut self.cache.wallets, tenant, wallet, only)?;
                let held = place_hold(&c.wallet, *amount, now)?;
                let hold = Hold {
                    tenant: tenant.clone(),
                    id: *id,
                    wallet: c.wallet.id.clone(),
                    customer: c.wallet.customer.clone(),
                    amount: amount.get(),
                    committed_amount: None,
                    status: HoldStatus::Pending,
                    reference: reference.clone(),
                    expires_at: *expires_at,
                    created_at: now,
                    settled_at: None,
                };
                if !insert_hold(self.conn, &hold)? {
                    return Err(Refusal::HoldExists.into());
                }
                c.wallet.held = held;
                c.amounts_dirty = true;
                Ok(Done::Hold {
                    hold,
                    mutation: None,
                })
            }
            Command::CommitHold {
                hold,
                amount,
                mutation_id,
            } => self.settle_hold(tenant, only, *hold, Settle::Commit(*amount), *mutation_id),
            Command::ReleaseHold { hold, mutation_id } => {
                self.settle_hold(tenant, only, *hold, Settle::Release, *mutation_id)
            }
        }
    }

    fn create_tenant(
        &mut self,
        operator: &TenantId,
        new: &TenantId,
        name: &str,
        admin_key: &NewApiKey,
    ) -> Result<Done, Step> {
        if self.tenant(operator)? != Some(true) {
            return Err(Refusal::Forbidden.into());
        }
        // A new tenant has no customers yet.
        if admin_key.customer.is_some() {
            return Err(Refusal::CustomerNotFound.into());
        }
        if secret_taken(self.conn, &admin_key.secret_sha256)? {
            return Err(Refusal::ApiKeyExists.into());
        }
        if !insert_tenant(self.conn, new, name, false, self.now)? {
            return Err(Refusal::TenantExists.into());
        }
        if !insert_api_key(self.conn, new, admin_key, self.now)? {
            return Err(Fail::corrupt("the admin key of a new tenant exists").into());
        }
        self.cache.tenants.insert(new.clone(), false);
        Ok(Done::Tenant {
            tenant: new.clone(),
            admin_key: api_key(new, admin_key, self.now),
        })
    }

    fn create_wallet(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        new: &NewWallet,
    ) -> Result<Done, Step> {
        if only.is_some_and(|only| *only != new.customer)
            || load_customer(self.conn, tenant, &new.customer)?.is_none()
        {
            return Err(Refusal::CustomerNotFound.into());
        }
        let wallet = Wallet::open(tenant.clone(), new.clone(), self.now);
        let floor = match wallet.floor {
            prepaid_ledger::Floor::Limit(v) => Some(v),
            prepaid_ledger::Floor::Unlimited => None,
        };
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO wallets (tenant, id, customer, unit_code, unit_scale, name, product, \
                 status, floor, valid_from, valid_until, balance, held, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
                 ON CONFLICT (tenant, id) DO NOTHING",
            )?
            .execute(params![
                tenant.as_str(),
                wallet.id.as_str(),
                wallet.customer.as_str(),
                wallet.unit.code(),
                wallet.unit.scale(),
                wallet.name,
                wallet.product,
                wallet.status.as_str(),
                floor,
                wallet.valid_from.map(Timestamp::as_micros),
                wallet.valid_until.map(Timestamp::as_micros),
                wallet.balance,
                wallet.held,
                wallet.created_at.as_micros(),
            ])?;
        if inserted == 0 {
            return Err(Refusal::WalletExists.into());
        }
        self.cache
            .wallets
            .rows
            .entry(tenant.clone())
            .or_default()
            .insert(
                wallet.id.clone(),
                CachedWallet {
                    wallet: wallet.clone(),
                    touched: false,
                    amounts_dirty: false,
                    status_dirty: false,
                },
            );
        Ok(Done::Wallet(wallet))
    }

    #[allow(clippy::too_many_arguments)]
    fn post(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        id: MutationId,
        wallet: &WalletId,
        kind: MutationKind,
        amount: Amount,
        reference: &Reference,
        occurred_at: Option<Timestamp>,
    ) -> Result<Mutation, Step> {
        // The other kinds have rules of their own, and top-ups and debits move a
        // positive amount; the edge never builds anything else, and the rules assert it.
        match kind {
            MutationKind::TopUp | MutationKind::Debit if amount.get() <= 0 => {
                return Err(caller_bug(
                    tenant,
                    "a top-up or debit of a non-positive amount",
                ));
            }
            MutationKind::TopUp | MutationKind::Debit | MutationKind::Adjustment => {}
            _ => return Err(caller_bug(tenant, "a post of a kind with rules of its own")),
        }
        let counter = counter_account(kind)?;
        let now = self.now;
        let c = visible_wallet(self.conn, &mut self.cache.wallets, tenant, wallet, only)?;
        let posting = post(&c.wallet, kind, amount, now)?;
        let account = cached_account(
            self.conn,
            &mut self.cache.accounts,
            tenant,
            &c.wallet.unit,
            counter,
        )?;
        let account_after = add_to_balance(account.balance, -posting.amount)?;
        let mutation = Mutation {
            tenant: tenant.clone(),
            id,
            wallet: c.wallet.id.clone(),
            customer: c.wallet.customer.clone(),
            unit: c.wallet.unit.clone(),
            kind,
            amount: posting.amount,
            balance_after: posting.balance_after,
            reference: reference.clone(),
            hold: None,
            transfer: None,
            counter_wallet: None,
            occurred_at: occurred_at.unwrap_or(now),
            recorded_at: now,
        };
        if !insert_mutation(self.conn, &mutation)? {
            return Err(Refusal::MutationExists.into());
        }
        account.balance = account_after;
        account.dirty = true;
        c.wallet.balance = posting.balance_after;
        c.amounts_dirty = true;
        Ok(mutation)
    }

    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        ids: TransferIds,
        from: &WalletId,
        to: &WalletId,
        amount: Amount,
        reference: &Reference,
        occurred_at: Option<Timestamp>,
    ) -> Result<Done, Step> {
        if amount.get() <= 0 {
            return Err(caller_bug(tenant, "a transfer of a non-positive amount"));
        }
        let now = self.now;
        let source = visible_wallet(self.conn, &mut self.cache.wallets, tenant, from, only)?
            .wallet
            .clone();
        let target = visible_wallet(self.conn, &mut self.cache.wallets, tenant, to, only)?
            .wallet
            .clone();
        let plan = transfer(&source, &target, amount, now)?;
        if ids.debit == ids.credit
            || mutation_taken(self.conn, ids.debit)?
            || mutation_taken(self.conn, ids.credit)?
        {
            return Err(Refusal::MutationExists.into());
        }
        let leg = |w: &Wallet, id, kind, amount, balance_after, other: &Wallet| Mutation {
            tenant: tenant.clone(),
            id,
            wallet: w.id.clone(),
            customer: w.customer.clone(),
            unit: w.unit.clone(),
            kind,
            amount,
            balance_after,
            reference: reference.clone(),
            hold: None,
            transfer: Some(ids.transfer),
            counter_wallet: Some(other.id.clone()),
            occurred_at: occurred_at.unwrap_or(now),
            recorded_at: now,
        };
        let debit = leg(
            &source,
            ids.debit,
            MutationKind::TransferOut,
            -amount.get(),
            plan.from_after,
            &target,
        );
        let credit = leg(
            &target,
            ids.credit,
            MutationKind::TransferIn,
            amount.get(),
            plan.to_after,
            &source,
        );
        if !insert_mutation(self.conn, &debit)? || !insert_mutation(self.conn, &credit)? {
            return Err(Fail::corrupt("a transfer leg's id was taken after the check").into());
        }
        for (id, balance) in [(from, plan.from_after), (to, plan.to_after)] {
            let c = cached_wallet(self.conn, &mut self.cache.wallets, tenant, id)?
                .ok_or_else(|| Fail::corrupt("a transfer wallet left the cache"))?;
            c.wallet.balance = balance;
            c.amounts_dirty = true;
        }
        Ok(Done::Transfer(Transfer {
            id: ids.transfer,
            debit,
            credit,
        }))
    }

    /// Commits or releases a pending hold, posting the `HoldCommit` or `HoldRelease`
    /// mutation.
    fn settle_hold(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        hold_id: HoldId,
        settle: Settle,
        mutation_id: MutationId,
    ) -> Result<Done, Step> {
        let hold = match load_hold(self.conn, tenant, hold_id)? {
            Some(h) if only.is_none_or(|only| *only == h.customer) => h,
            _ => return Err(Refusal::HoldNotFound.into()),
        };
        // The settling mutation carries the hold's reference, so it reads as the
        // payment the hold was made for.
        let reference = hold.reference.clone();
        let (hold, mutation) = settle_loaded(
            self.conn,
            &mut self.cache.wallets,
            &mut self.cache.accounts,
            hold,
            settle,
            mutation_id,
            self.now,
            reference,
        )?;
        Ok(Done::Hold {
            hold,
            mutation: Some(mutation),
        })
    }

    fn stored_result(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<StoredResult>, Fail> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT fingerprint, result_kind, result_id, result_id2, wallet_status, \
             wallet_balance, wallet_held FROM idempotency_keys WHERE tenant = ?1 AND key = ?2",
        )?;
        let mut rows = stmt.query(params![tenant.as_str(), key.as_str()])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        Ok(Some(StoredResult {
            fingerprint: row.get(0)?,
            kind: row.get(1)?,
            id: row.get(2)?,
            id2: row.get(3)?,
            wallet: match (row.get(4)?, row.get(5)?, row.get(6)?) {
                (Some(status), Some(balance), Some(held)) => Some((status, balance, held)),
                _ => None,
            },
        }))
    }

    fn record_result(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        done: &Done,
    ) -> Result<(), Fail> {
        let (kind, id, id2) = match done {
            Done::Tenant { tenant, admin_key } => (
                "tenant",
                tenant.to_string(),
                Some(admin_key.name.to_string()),
            ),
            Done::ApiKey(k) => ("api_key", k.name.to_string(), None),
            Done::Customer(c) => ("customer", c.id.to_string(), None),
            Done::Wallet(w) => ("wallet", w.id.to_string(), None),
            Done::Mutation(m) => ("mutation", m.id.to_string(), None),
            Done::Transfer(t) => (
                "transfer",
                t.debit.id.to_string(),
                Some(t.credit.id.to_string()),
            ),
            Done::Hold { hold, mutation } => (
                "hold",
                hold.id.to_string(),
                mutation.as_ref().map(|m| m.id.to_string()),
            ),
        };
        let wallet = match done {
            Done::Wallet(w) => Some((w.status.as_str(), w.balance, w.held)),
            _ => None,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO idempotency_keys (tenant, key, fingerprint, result_kind, result_id, \
                 result_id2, wallet_status, wallet_balance, wallet_held, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                tenant.as_str(),
                key.as_str(),
                fingerprint.0,
                kind,
                id,
                id2,
                wallet.map(|w| w.0),
                wallet.map(|w| w.1),
                wallet.map(|w| w.2),
                self.now.as_micros()
            ])?;
        Ok(())
    }

    /// Rebuilds the answer an idempotency key recorded, as it was first given.
    fn reload(&mut self, tenant: &TenantId, stored: &StoredResult) -> Result<Done, Fail> {
        let conn = self.conn;
        let missing = || {
            Fail::corrupt(format_args!(
                "idempotency key points at a missing {} {}",
                stored.kind, stored.id
            ))
        };
        let uuid = |s: &str| {
            Uuid::parse_str(s).map_err(|e| Fail::corrupt(format_args!("stored id {s:?}: {e}")))
        };
        let mutation =
            |id: &str| load_mutation(conn, tenant, MutationId(uuid(id)?))?.ok_or_else(missing);
        let second = || stored.id2.as_deref().ok_or_else(missing);
        Ok(match stored.kind.as_str() {
            "tenant" => {
                let new = rows::tenant_id(&stored.id)?;
                let name = rows::api_key_name(second()?)?;
                let admin_key = load_api_key(conn, &new, &name)?.ok_or_else(missing)?;
                Done::Tenant {
                    tenant: new,
                    admin_key,
                }
            }
            "api_key" => {
                let name = rows::api_key_name(&stored.id)?;
                Done::ApiKey(load_api_key(conn, tenant, &name)?.ok_or_else(missing)?)
            }
            "customer" => {
                let id = rows::customer_id(&stored.id)?;
                Done::Customer(load_customer(conn, tenant, &id)?.ok_or_else(missing)?)
            }
            "wallet" => {
                let id = rows::wallet_id(&stored.id)?;
                let c = cached_wallet(conn, &mut self.cache.wallets, tenant, &id)?
                    .ok_or_else(missing)?;
                let (status, balance, held) = stored.wallet.as_ref().ok_or_else(missing)?;
                let status = WalletStatus::parse(status).ok_or_else(|| {
                    Fail::corrupt(format_args!("stored wallet status {status:?}"))
                })?;
                Done::Wallet(Wallet {
                    status,
                    balance: *balance,
                    held: *held,
                    ..c.wallet.clone()
                })
            }
            "mutation" => Done::Mutation(mutation(&stored.id)?),
            "transfer" => {
                let debit = mutation(&stored.id)?;
                let credit = mutation(second()?)?;
                let id = debit.transfer.ok_or_else(missing)?;
                Done::Transfer(Transfer { id, debit, credit })
            }
            "hold" => {
                let mut hold =
                    load_hold(conn, tenant, HoldId(uuid(&stored.id)?))?.ok_or_else(missing)?;
                let mutation = stored.id2.as_deref().map(mutation).transpose()?;
                // A commit or release answer shows the hold as it stays; a placement
                // answer showed it pending, whatever became of it since.
                if mutation.is_none() {
                    hold.status = HoldStatus::Pending;
                    hold.committed_amount = None;
                    hold.settled_at = None;
                }
                Done::Hold { hold, mutation }
            }
            other => {
                return Err(Fail::corrupt(format_args!(
                    "idempotency result kind {other:?}"
                )));
            }
        })
    }

    /// Releases expired holds, then expires wallets past their validity.
    fn sweep(&mut self) -> Result<SweepReport, Fail> {
        let conn = self.conn;
        let now = self.now;
        let mut report = SweepReport::default();
        let limit = i64::try_from(SWEEP_BATCH_MAX).unwrap_or(i64::MAX);
        let due_holds: Vec<(String, [u8; 16])> = conn
            .prepare_cached(
                "SELECT tenant, id FROM holds \
                 WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?1 \
                 ORDER BY expires_at LIMIT ?2",
            )?
            .query_map(params![now.as_micros(), limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        for (tenant, id) in due_holds {
            let tenant = rows::tenant_id(&tenant)?;
            let hold = load_hold(conn, &tenant, HoldId(Uuid::from_bytes(id)))?
                .ok_or_else(|| Fail::corrupt("a due hold vanished"))?;
            let reference = system_reference("hold expired");
            match settle_loaded(
                conn,
                &mut self.cache.wallets,
                &mut self.cache.accounts,
                hold,
                Settle::Expire,
                MutationId(Uuid::now_v7()),
                now,
                reference,
            ) {
                Ok(_) => report.holds_expired += 1,
                Err(Step::Failed(fail)) => return Err(fail),
                Err(Step::Refused(refusal)) => {
                    return Err(Fail::corrupt(format_args!(
                        "expiring a due hold was refused: {}",
                        refusal.code()
                    )));
                }
            }
        }
        let due_wallets: Vec<(String, String)> = conn
            .prepare_cached(
                "SELECT tenant, id FROM wallets \
                 WHERE valid_until IS NOT NULL AND status <> 'expired' AND valid_until <= ?1 \
                 ORDER BY valid_until LIMIT ?2",
            )?
            .query_map(params![now.as_micros(), limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        for (tenant, id) in due_wallets {
            let tenant = rows::tenant_id(&tenant)?;
            let id = rows::wallet_id(&id)?;
            if self.expire_wallet(&tenant, &id)? {
                report.wallets_expired += 1;
            }
        }
        Ok(report)
    }

    /// Expires one wallet: releases its pending holds, moves a positive balance to the
    /// expiry account and marks it expired. Returns whether it did.
    fn expire_wallet(&mut self, tenant: &TenantId, id: &WalletId) -> Result<bool, Fail> {
        let conn = self.conn;
        let now = self.now;
        let c = cached_wallet(conn, &mut self.cache.wallets, tenant, id)?
            .ok_or_else(|| Fail::corrupt("a due wallet vanished"))?;
        let Some(expiry) = expire_wallet(&c.wallet, now) else {
            return Ok(false);
        };
        let unit = c.wallet.unit.clone();
        // Check the expiry account first, so that a refusal leaves the wallet untouched.
        let account_after = match expiry.posting {
            Some(posting) => {
                let account = cached_account(
                    conn,
                    &mut self.cache.accounts,
                    tenant,
                    &unit,
                    SystemAccount::Expiry,
                )?;
                match add_to_balance(account.balance, -posting.amount) {
                    Ok(after) => Some(after),
                    Err(refusal) => {
                        tracing::error!(
                            %tenant,
                            wallet = %id,
                            refusal = refusal.code(),
                            "cannot expire the wallet: its expiry account is full"
                        );
                        return Ok(false);
                    }
                }
            }
            None => None,
        };
        let pending: Vec<[u8; 16]> = conn
            .prepare_cached(
                "SELECT id FROM holds WHERE tenant = ?1 AND wallet = ?2 AND status = 'pending'",
            )?
            .query_map(params![tenant.as_str(), id.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for hold_id in pending {
            let hold = load_hold(conn, tenant, HoldId(Uuid::from_bytes(hold_id)))?
                .ok_or_else(|| Fail::corrupt("a pending hold vanished"))?;
            let reference = system_reference("wallet expired");
            match settle_loaded(
                conn,
                &mut self.cache.wallets,
                &mut self.cache.accounts,
                hold,
                Settle::Release,
                MutationId(Uuid::now_v7()),
                now,
                reference,
            ) {
                Ok(_) => {}
                Err(Step::Failed(fail)) => return Err(fail),
                Err(Step::Refused(refusal)) => {
                    return Err(Fail::corrupt(format_args!(
                        "releasing a hold of an expiring wallet was refused: {}",
                        refusal.code()
                    )));
                }
            }
        }
        let c = cached_wallet(conn, &mut self.cache.wallets, tenant, id)?
            .ok_or_else(|| Fail::corrupt("an expiring wallet left the cache"))?;
        if let (Some(posting), Some(account_after)) = (expiry.posting, account_after) {
            let mutation = Mutation {
                tenant: tenant.clone(),
                id: MutationId(Uuid::now_v7()),
                wallet: id.clone(),
                customer: c.wallet.customer.clone(),
                unit: unit.clone(),
                kind: MutationKind::Expiry,
                amount: posting.amount,
                balance_after: posting.balance_after,
                reference: system_reference("wallet expired"),
                hold: None,
                transfer: None,
                counter_wallet: None,
                occurred_at: now,
                recorded_at: now,
            };
            if !insert_mutation(conn, &mutation)? {
                return Err(Fail::corrupt("a fresh expiry mutation id was taken"));
            }
            c.wallet.balance = posting.balance_after;
            c.amounts_dirty = true;
            let account = cached_account(
                conn,
                &mut self.cache.accounts,
                tenant,
                &unit,
                SystemAccount::Expiry,
            )?;
            account.balance = account_after;
            account.dirty = true;
        }
        c.wallet.status = WalletStatus::Expired;
        c.status_dirty = true;
        Ok(true)
    }
}

#[derive(Clone, Copy)]
struct TransferIds {
    transfer: TransferId,
    debit: MutationId,
    credit: MutationId,
}

/// How a pending hold ends.
#[derive(Clone, Copy)]
enum Settle {
    /// Commit this much (all of it when `None`), release the rest.
    Commit(Option<Amount>),
    /// Release it on request (or because its wallet expired).
    Release,
    /// Release it because its time ran out.
    Expire,
}

/// Settles a loaded hold: asks the rules, posts the mutation, updates the hold row and
/// the cached wallet and account. Nothing is written when a rule refuses.
#[allow(clippy::too_many_arguments)]
fn settle_loaded(
    conn: &Connection,
    wallets: &mut WalletRows,
    accounts: &mut AccountRows,
    mut hold: Hold,
    settle: Settle,
    mutation_id: MutationId,
    now: Timestamp,
    reference: Reference,
) -> Result<(Hold, Mutation), Step> {
    let tenant = hold.tenant.clone();
    let c = cached_wallet(conn, wallets, &tenant, &hold.wallet)?
        .ok_or_else(|| Fail::corrupt(format_args!("hold {} has no wallet", hold.id)))?;
    // The rules assert this; on corrupt data the store reports it instead.
    if hold.status == HoldStatus::Pending && c.wallet.held < hold.amount {
        return Err(Fail::corrupt(format_args!(
            "wallet {} holds {} but its pending hold {} is {}",
            c.wallet.id, c.wallet.held, hold.id, hold.amount
        ))
        .into());
    }
    let (kind, amount, balance_after, held_after, status, committed) = match settle {
        Settle::Commit(amount) => {
            let plan = commit_hold(&c.wallet, &hold, amount, now)?;
            (
                MutationKind::HoldCommit,
                plan.posting.amount,
                plan.posting.balance_after,
                plan.held_after,
                HoldStatus::Committed,
                Some(plan.committed),
            )
        }
        Settle::Release | Settle::Expire => {
            let held_after = release_hold(&c.wallet, &hold)?;
            let status = match settle {
                Settle::Expire => HoldStatus::Expired,
                _ => HoldStatus::Released,
            };
            let kind = MutationKind::HoldRelease;
            (kind, 0, c.wallet.balance, held_after, status, None)
        }
    };
    let account = match amount {
        0 => None,
        _ => {
            let account = cached_account(
                conn,
                accounts,
                &tenant,
                &c.wallet.unit,
                counter_account(kind)?,
            )?;
            let after = add_to_balance(account.balance, -amount)?;
            Some((account, after))
        }
    };
    let mutation = Mutation {
        tenant: tenant.clone(),
        id: mutation_id,
        wallet: c.wallet.id.clone(),
        customer: c.wallet.customer.clone(),
        unit: c.wallet.unit.clone(),
        kind,
        amount,
        balance_after,
        reference,
        hold: Some(hold.id),
        transfer: None,
        counter_wallet: None,
        occurred_at: now,
        recorded_at: now,
    };
    if !insert_mutation(conn, &mutation)? {
        return Err(Refusal::MutationExists.into());
    }
    hold.status = status;
    hold.committed_amount = committed;
    hold.settled_at = Some(now);
    conn.prepare_cached(
        "UPDATE holds SET status = ?3, committed_amount = ?4, settled_at = ?5 \
         WHERE id = ?2 AND tenant = ?1",
    )?
    .execute(params![
        tenant.as_str(),
        hold.id.0.as_bytes(),
        hold.status.as_str(),
        hold.committed_amount,
        now.as_micros()
    ])?;
    if let Some((account, after)) = account {
        account.balance = after;
        account.dirty = true;
    }
    c.wallet.balance = balance_after;
    c.wallet.held = held_after;
    c.amounts_dirty = true;
    Ok((hold, mutation))
}

/// A request the edge should never have built: answered [`Refusal::Internal`] (it is a
/// bug, not a business outcome) and logged, instead of tripping a rule's assertion.
fn caller_bug(tenant: &TenantId, what: &str) -> Step {
    tracing::error!(%tenant, "refusing a malformed request: {what}");
    Step::Refused(Refusal::Internal)
}

fn counter_account(kind: MutationKind) -> Result<SystemAccount, Fail> {
    kind.counter_account()
        .ok_or_else(|| Fail::corrupt(format_args!("{} has no system account", kind.as_str())))
}

fn system_reference(text: &str) -> Reference {
    Reference {
        kind: "system".to_owned(),
        text: text.to_owned(),
        link: String::new(),
    }
}

/// Whether a restricted caller may see what an idempotency key recorded.
fn visible(done: &Done, only: Option<&CustomerId>) -> bool {
    let Some(only) = only else {
        return true;
    };
    match done {
        Done::Tenant { .. } | Done::ApiKey(_) => false,
        Done::Customer(c) => c.id == *only,
        Done::Wallet(w) => w.customer == *only,
        Done::Mutation(m) => m.customer == *only,
        Done::Transfer(t) => t.debit.customer == *only && t.credit.customer == *only,
        Done::Hold { hold, .. } => hold.customer == *only,
    }
}

fn api_key(tenant: &TenantId, key: &NewApiKey, now: Timestamp) -> ApiKey {
    ApiKey {
        tenant: tenant.clone(),
        name: key.name.clone(),
        secret_sha256: key.secret_sha256,
        scopes: key.scopes,
        customer: key.customer.clone(),
        created_at: now,
    }
}

fn insert_tenant(
    conn: &Connection,
    id: &TenantId,
    name: &str,
    operator: bool,
    now: Timestamp,
) -> Result<bool, Fail> {
    let n = conn
        .prepare_cached(
            "INSERT INTO tenants (id, name, operator, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![id.as_str(), name, operator, now.as_micros()])?;
    Ok(n == 1)
}

fn secret_taken(conn: &Connection, secret_sha256: &[u8; 32]) -> Result<bool, Fail> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM api_keys WHERE secret_sha256 = ?1)")?
        .query_row([secret_sha256], |r| r.get(0))?)
}

/// Inserts a key; `false` when its name (in the tenant) or its secret (anywhere) is
/// taken.
fn insert_api_key(
    conn: &Connection,
    tenant: &TenantId,
    key: &NewApiKey,
    now: Timestamp,
) -> Result<bool, Fail> {
    let n = conn
        .prepare_cached(
            "INSERT INTO api_keys (tenant, name, secret_sha256, scope_read, scope_write, \
             scope_admin, customer, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            tenant.as_str(),
            key.name.as_str(),
            key.secret_sha256,
            key.scopes.read,
            key.scopes.write,
            key.scopes.admin,
            key.customer.as_ref().map(CustomerId::as_str),
            now.as_micros()
        ])?;
    Ok(n == 1)
}

fn insert_customer(conn: &Connection, c: &Customer) -> Result<bool, Fail> {
    let n = conn
        .prepare_cached(
            "INSERT INTO customers (tenant, id, name, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (tenant, id) DO NOTHING",
        )?
        .execute(params![
            c.tenant.as_str(),
            c.id.as_str(),
            c.name,
            c.created_at.as_micros()
        ])?;
    Ok(n == 1)
}

fn mutation_taken(conn: &Connection, id: MutationId) -> Result<bool, Fail> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM mutations WHERE id = ?1)")?
        .query_row([id.0.as_bytes()], |r| r.get(0))?)
}

/// Inserts a mutation; `false` when its id is taken.
fn insert_mutation(conn: &Connection, m: &Mutation) -> Result<bool, Fail> {
    let n = conn
        .prepare_cached(
            "INSERT INTO mutations (id, tenant, wallet, customer, unit_code, unit_scale, kind, \
             amount, balance_after, reference_kind, reference_text, reference_link, hold, \
             transfer, counter_wallet, occurred_at, recorded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            m.id.0.as_bytes(),
            m.tenant.as_str(),
            m.wallet.as_str(),
            m.customer.as_str(),
            m.unit.code(),
            m.unit.scale(),
            m.kind.as_str(),
            m.amount,
            m.balance_after,
            m.reference.kind,
            m.reference.text,
            m.reference.link,
            m.hold.as_ref().map(|h| h.0.as_bytes()),
            m.transfer.as_ref().map(|t| t.0.as_bytes()),
            m.counter_wallet.as_ref().map(WalletId::as_str),
            m.occurred_at.as_micros(),
            m.recorded_at.as_micros()
        ])?;
    Ok(n == 1)
}

/// Inserts a hold; `false` when its id is taken.
fn insert_hold(conn: &Connection, h: &Hold) -> Result<bool, Fail> {
    let n = conn
        .prepare_cached(
            "INSERT INTO holds (tenant, id, wallet, customer, amount, committed_amount, status, \
             reference_kind, reference_text, reference_link, expires_at, created_at, settled_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            h.tenant.as_str(),
            h.id.0.as_bytes(),
            h.wallet.as_str(),
            h.customer.as_str(),
            h.amount,
            h.committed_amount,
            h.status.as_str(),
            h.reference.kind,
            h.reference.text,
            h.reference.link,
            h.expires_at.map(Timestamp::as_micros),
            h.created_at.as_micros(),
            h.settled_at.map(Timestamp::as_micros)
        ])?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prepaid_ledger::Floor;

    fn cache_with(wallets: usize) -> Cache {
        let tenant = TenantId::parse("t").unwrap();
        let mut cache = Cache::default();
        let rows = cache.wallets.rows.entry(tenant.clone()).or_default();
        for i in 0..wallets {
            let id = WalletId::parse(&format!("w{i}")).unwrap();
            let new = NewWallet {
                id: id.clone(),
                customer: CustomerId::parse("c").unwrap(),
                unit: Unit::new("EUR", 2).unwrap(),
                name: String::new(),
                product: String::new(),
                floor: Floor::ZERO,
                valid_from: None,
                valid_until: None,
            };
            let wallet = Wallet::open(tenant.clone(), new, Timestamp::from_micros(0));
            rows.insert(
                id,
                CachedWallet {
                    wallet,
                    touched: false,
                    amounts_dirty: false,
                    status_dirty: false,
                },
            );
        }
        cache
    }

    fn cached(cache: &Cache) -> usize {
        cache.wallets.rows.values().map(HashMap::len).sum()
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
