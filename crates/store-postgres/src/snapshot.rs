//! The rows a batch has loaded, and how they are loaded.
//!
//! The shared executor reads rows through [`Snapshot`], which answers from what the
//! transaction loaded so far and says [`Gap::Miss`] for anything else; the store then
//! calls [`Snapshot::load`] with every missing key of the run, which fetches them with
//! one set-based query per kind of row (those that do not depend on each other go out
//! together, pipelined on the connection), and runs the executor again.
//!
//! The queries look their rows up one key at a time: `unnest` of the keys, then a
//! `LATERAL` subquery on the key with `OFFSET 0`, which the planner cannot turn into a
//! join. A plain join is planned once per connection and kept; planned while a table
//! was empty or small (a new schema, the first batches), it reads the whole table and
//! hashes it, and keeps doing so for every batch as the table grows.
//!
//! Wallets and holds are loaded `FOR NO KEY UPDATE` (the row lock for changing columns
//! other than the key), each locked as it is looked up, in the order of the keys given,
//! which is sorted, holds first, so that two batches that need the same rows queue
//! rather than deadlock (a wallet's pending holds, which only the sweep asks for, are
//! found with a join and locked in the order of their ids); a batch that must lock more
//! rows in a later round can still meet a deadlock, which the database detects and the
//! store answers by running the batch again. A loaded wallet brings the balances of its
//! unit's system accounts, and a loaded hold brings its wallet, so that a batch of
//! debits or of hold commits needs one round of loads.
//!
//! System accounts are read without a lock: a batch adds its deltas to them at the end
//! (see [`crate::write`]), and the database's check on each slot's bound catches a race
//! past it. An account's balance is the sum of its slots; the snapshot keeps each
//! slot's balance too, so that the batch can choose slots with room for its delta.

use crate::error::Fail;
use crate::rows::{
    self, API_KEY_COLUMNS, CUSTOMER_COLUMNS, GRANT_COLUMNS, HOLD_COLUMNS, MUTATION_COLUMNS,
    RECORDED_COLUMNS, WALLET_COLUMNS, get,
};
use crate::write::{ACCOUNT_SLOTS_MAX, Slots};
use deadpool_postgres::GenericClient;
use prepaid_ledger::{
    ApiKey, ApiKeyName, Customer, CustomerId, Grant, Hold, HoldId, IdempotencyKey, Mutation,
    MutationId, RecordKey, RecordKind, SettingKey, SystemAccount, TenantId, Unit, Wallet, WalletId,
};
use prepaid_store::exec::{Gap, Lookup, Missing, RecordPlace, Recorded, Rows};
use std::collections::{BTreeSet, HashMap};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// A row as loaded: absent, present, or present but undecodable (with why).
type Found<T> = Result<Option<T>, String>;

/// Everything a batch's transaction has loaded.
#[derive(Default)]
pub(crate) struct Snapshot {
    tenants: HashMap<TenantId, Option<bool>>,
    customers: HashMap<(TenantId, CustomerId), Found<Customer>>,
    api_keys: HashMap<(TenantId, ApiKeyName), Found<ApiKey>>,
    secrets: HashMap<[u8; 32], bool>,
    wallets: HashMap<(TenantId, WalletId), Found<Wallet>>,
    holds: HashMap<HoldId, Found<Hold>>,
    mutations: HashMap<(TenantId, MutationId), Found<Mutation>>,
    idempotency: HashMap<(TenantId, IdempotencyKey), Found<Recorded>>,
    accounts: HashMap<(TenantId, Unit, SystemAccount), i64>,
    slots: HashMap<(TenantId, Unit, SystemAccount), Slots>,
    pending_holds: HashMap<(TenantId, WalletId), Vec<HoldId>>,
    grants: HashMap<(TenantId, WalletId), Result<Vec<Grant>, String>>,
    grant_ids: HashMap<(TenantId, WalletId, MutationId), Found<Grant>>,
    settings: HashMap<(TenantId, SettingKey), Option<String>>,
    records: HashMap<RecordPlace, Option<(i64, String)>>,
    webhooks: HashMap<TenantId, bool>,
}

fn answer<T: Clone>(found: Option<&Found<T>>) -> Lookup<Option<T>> {
    match found {
        None => Err(Gap::Miss),
        Some(Ok(value)) => Ok(value.clone()),
        Some(Err(why)) => Err(Gap::Broken(why.clone())),
    }
}

impl Rows for Snapshot {
    fn tenant(&mut self, id: &TenantId) -> Lookup<Option<bool>> {
        self.tenants.get(id).copied().ok_or(Gap::Miss)
    }

    fn customer(&mut self, tenant: &TenantId, id: &CustomerId) -> Lookup<Option<Customer>> {
        answer(self.customers.get(&(tenant.clone(), id.clone())))
    }

    fn api_key(&mut self, tenant: &TenantId, name: &ApiKeyName) -> Lookup<Option<ApiKey>> {
        answer(self.api_keys.get(&(tenant.clone(), name.clone())))
    }

    fn secret_taken(&mut self, secret_sha256: &[u8; 32]) -> Lookup<bool> {
        self.secrets.get(secret_sha256).copied().ok_or(Gap::Miss)
    }

    fn wallet(&mut self, tenant: &TenantId, id: &WalletId) -> Lookup<Option<Wallet>> {
        answer(self.wallets.get(&(tenant.clone(), id.clone())))
    }

    fn hold(&mut self, id: HoldId) -> Lookup<Option<Hold>> {
        answer(self.holds.get(&id))
    }

    fn mutation(&mut self, tenant: &TenantId, id: MutationId) -> Lookup<Option<Mutation>> {
        answer(self.mutations.get(&(tenant.clone(), id)))
    }

    fn mutation_taken(&mut self, tenant: &TenantId, id: MutationId) -> Lookup<bool> {
        match self.mutations.get(&(tenant.clone(), id)) {
            None => Err(Gap::Miss),
            Some(Ok(found)) => Ok(found.is_some()),
            // A row that does not decode still takes its id.
            Some(Err(_)) => Ok(true),
        }
    }

    fn idempotency(&mut self, tenant: &TenantId, key: &IdempotencyKey) -> Lookup<Option<Recorded>> {
        answer(self.idempotency.get(&(tenant.clone(), key.clone())))
    }

    fn account(&mut self, tenant: &TenantId, unit: &Unit, account: SystemAccount) -> Lookup<i64> {
        self.accounts
            .get(&(tenant.clone(), unit.clone(), account))
            .copied()
            .ok_or(Gap::Miss)
    }

    fn grants(&mut self, tenant: &TenantId, wallet: &WalletId) -> Lookup<Vec<Grant>> {
        match self.grants.get(&(tenant.clone(), wallet.clone())) {
            None => Err(Gap::Miss),
            Some(Ok(grants)) => Ok(grants.clone()),
            Some(Err(why)) => Err(Gap::Broken(why.clone())),
        }
    }

    fn grant(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        id: MutationId,
    ) -> Lookup<Option<Grant>> {
        answer(self.grant_ids.get(&(tenant.clone(), wallet.clone(), id)))
    }

    fn pending_holds(&mut self, tenant: &TenantId, wallet: &WalletId) -> Lookup<Vec<HoldId>> {
        self.pending_holds
            .get(&(tenant.clone(), wallet.clone()))
            .cloned()
            .ok_or(Gap::Miss)
    }

    fn record(
        &mut self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Lookup<Option<(i64, String)>> {
        let id = (tenant.clone(), kind, key.clone());
        self.records.get(&id).cloned().ok_or(Gap::Miss)
    }

    fn webhooks(&mut self, tenant: &TenantId) -> Lookup<bool> {
        self.webhooks.get(tenant).copied().ok_or(Gap::Miss)
    }

    fn setting(&mut self, tenant: &TenantId, key: &SettingKey) -> Lookup<Option<String>> {
        self.settings
            .get(&(tenant.clone(), key.clone()))
            .cloned()
            .ok_or(Gap::Miss)
    }
}

/// Runs a statement prepared once per connection.
async fn query<C: GenericClient>(
    tx: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Fail> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.query(&statement, params).await?)
}

/// Splits pairs into two arrays, as `unnest` takes them.
fn columns<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> (Vec<&'a str>, Vec<&'a str>) {
    pairs.unzip()
}

/// The rows of `table` whose `(tenant, <key>)` is one of `pairs`, as `select` lists
/// their columns. Each pair is its own index lookup: the lateral subquery (kept apart by
/// `OFFSET 0`) stops the planner from turning the lookups back into a join, whose plan,
/// cached while a table was small, would read the whole table on every batch.
async fn by_tenant_key<'a, C: GenericClient>(
    tx: &C,
    select: &str,
    table: &str,
    key: &str,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Row>, Fail> {
    let (tenants, keys) = columns(pairs);
    if tenants.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {select} FROM unnest($1::text[], $2::text[]) AS k (tenant, {key}) \
         JOIN LATERAL (SELECT * FROM {table} x \
         WHERE x.tenant = k.tenant AND x.{key} = k.{key} OFFSET 0) AS r USING (tenant, {key})"
    );
    query(tx, &sql, &[&tenants, &keys]).await
}

/// Decodes a row keyed by `key`: the key columns are read on their own, so that a row
/// whose other columns do not decode is still known (as broken) under its key.
fn keyed<K, T>(
    row: &Row,
    key: impl FnOnce(&Row) -> Result<K, Fail>,
    decode: impl FnOnce(&Row) -> Result<T, Fail>,
) -> Result<(K, Found<T>), Fail> {
    let key = key(row)?;
    Ok((key, decode(row).map(Some).map_err(|e| e.to_string())))
}

impl Snapshot {
    /// The balances of an account's slots as this batch read them; zeros for one it
    /// never read.
    pub(crate) fn slots(&self, tenant: &TenantId, unit: &Unit, account: SystemAccount) -> Slots {
        self.slots
            .get(&(tenant.clone(), unit.clone(), account))
            .copied()
            .unwrap_or_default()
    }

    /// Takes in a wallet the caller has already locked.
    pub(crate) fn put_wallet(&mut self, key: (TenantId, WalletId), wallet: Found<Wallet>) {
        self.wallets.insert(key, wallet);
    }

    /// Takes in a hold the caller has already locked.
    pub(crate) fn put_hold(&mut self, id: HoldId, hold: Found<Hold>) {
        self.holds.insert(id, hold);
    }

    /// Loads every missing key (and what the loaded rows bring along), so that none of
    /// them misses again. A key with no row is remembered as absent.
    pub(crate) async fn load<C: GenericClient>(
        &mut self,
        tx: &C,
        missing: &Missing,
    ) -> Result<(), Fail> {
        let (records, locked, plain) = tokio::join!(
            load_records(tx, missing),
            self.load_locked(tx, missing),
            Plain::load(tx, missing)
        );
        locked?;
        self.load_grant_ids(tx, missing).await?;
        plain?.into_snapshot(self, missing);
        self.records.extend(records?);
        for key in &missing.records {
            self.records.entry(key.clone()).or_insert(None);
        }
        Ok(())
    }

    /// Holds, then wallets together with the system accounts of their units: the
    /// wallets may come from the holds.
    async fn load_locked<C: GenericClient>(
        &mut self,
        tx: &C,
        missing: &Missing,
    ) -> Result<(), Fail> {
        let mut wallets: BTreeSet<(TenantId, WalletId)> = missing.wallets.clone();
        if !missing.holds.is_empty() {
            let ids: Vec<Uuid> = missing.holds.iter().map(|h| h.0).collect();
            let sql = format!(
                "SELECT {HOLD_COLUMNS} FROM unnest($1::uuid[]) AS k (id) \
                 JOIN LATERAL (SELECT * FROM holds x WHERE x.id = k.id OFFSET 0) AS h USING (id) \
                 FOR NO KEY UPDATE OF h"
            );
            for row in query(tx, &sql, &[&ids]).await? {
                let (id, hold) = keyed(&row, |r| Ok(HoldId(get(r, 1)?)), rows::hold)?;
                self.note_hold_wallet(&hold, &mut wallets);
                self.holds.insert(id, hold);
            }
            for id in &missing.holds {
                self.holds.entry(*id).or_insert(Ok(None));
            }
        }
        if !missing.pending_holds.is_empty() {
            let (tenants, ids) = columns(
                missing
                    .pending_holds
                    .iter()
                    .map(|(t, w)| (t.as_str(), w.as_str())),
            );
            let sql = format!(
                // Only the sweep asks for these, rarely: locked in the order of their ids,
                // as holds looked up by id are.
                "SELECT {HOLD_COLUMNS} FROM holds \
                 JOIN unnest($1::text[], $2::text[]) AS k (tenant, wallet) USING (tenant, wallet) \
                 WHERE status = 'pending' ORDER BY id FOR NO KEY UPDATE OF holds"
            );
            let mut pending: HashMap<(TenantId, WalletId), Vec<HoldId>> = HashMap::new();
            for row in query(tx, &sql, &[&tenants, &ids]).await? {
                let key = (
                    rows::tenant_id(get(&row, 0)?)?,
                    rows::wallet_id(get(&row, 2)?)?,
                );
                let (id, hold) = keyed(&row, |r| Ok(HoldId(get(r, 1)?)), rows::hold)?;
                pending.entry(key).or_default().push(id);
                self.holds.insert(id, hold);
            }
            for key in &missing.pending_holds {
                let ids = pending.remove(key).unwrap_or_default();
                self.pending_holds.insert(key.clone(), ids);
            }
        }
        let mut units: BTreeSet<(TenantId, Unit)> = missing
            .accounts
            .iter()
            .map(|(t, u, _)| (t.clone(), u.clone()))
            .collect();
        wallets.retain(|key| !self.wallets.contains_key(key));
        // A wallet locked now brings its live grants, which a debit of it needs next.
        let mut grant_keys: BTreeSet<(TenantId, WalletId)> = missing.grants.clone();
        grant_keys.extend(wallets.iter().cloned());
        grant_keys.retain(|key| !self.grants.contains_key(key));
        if wallets.is_empty() && units.is_empty() && grant_keys.is_empty() {
            return Ok(());
        }
        // The wallets and the system accounts of their units go out together: the
        // accounts are found through the wallets' units, which never change, so they
        // need not wait for the wallets to arrive. Sent second, the read of the accounts
        // sees them as of when the wallets were locked.
        let (wallet_tenants, wallet_ids) =
            columns(wallets.iter().map(|(t, w)| (t.as_str(), w.as_str())));
        let unit_tenants: Vec<&str> = units.iter().map(|(t, _)| t.as_str()).collect();
        let codes: Vec<&str> = units.iter().map(|(_, u)| u.code()).collect();
        let scales: Vec<i16> = units.iter().map(|(_, u)| i16::from(u.scale())).collect();
        // Each wallet and account is looked up by its key (`LATERAL ... OFFSET 0` keeps
        // the planner from joining instead, which on a small table means reading every
        // row for each batch), so wallets are locked one by one in the order of their
        // keys as given, which is sorted.
        let wallets_sql = format!(
            "SELECT {WALLET_COLUMNS} FROM unnest($1::text[], $2::text[]) AS k (tenant, id) \
             JOIN LATERAL (SELECT * FROM wallets x \
             WHERE x.tenant = k.tenant AND x.id = k.id OFFSET 0) AS w USING (tenant, id) \
             FOR NO KEY UPDATE OF w"
        );
        let locked = async {
            if wallets.is_empty() {
                return Ok(Vec::new());
            }
            query(tx, &wallets_sql, &[&wallet_tenants, &wallet_ids]).await
        };
        let params: [&(dyn ToSql + Sync); 5] =
            [&wallet_tenants, &wallet_ids, &unit_tenants, &codes, &scales];
        let accounts = query(
            tx,
            "SELECT k.tenant, k.unit_code, k.unit_scale, s.kind, s.slot, s.balance \
             FROM (SELECT w.tenant, w.unit_code, w.unit_scale \
             FROM unnest($1::text[], $2::text[]) AS k (tenant, id) \
             CROSS JOIN LATERAL (SELECT tenant, unit_code, unit_scale FROM wallets x \
             WHERE x.tenant = k.tenant AND x.id = k.id OFFSET 0) AS w \
             UNION SELECT * FROM unnest($3::text[], $4::text[], $5::int2[])) \
             AS k (tenant, unit_code, unit_scale) \
             CROSS JOIN LATERAL (SELECT kind, slot, balance FROM system_accounts s \
             WHERE s.tenant = k.tenant AND s.unit_code = k.unit_code \
             AND s.unit_scale = k.unit_scale OFFSET 0) AS s",
            &params,
        );
        // Sent after the wallets' locks, so that the grants are read once their wallets
        // are locked: every change of a grant changes its wallet too.
        let (grant_tenants, grant_wallets) =
            columns(grant_keys.iter().map(|(t, w)| (t.as_str(), w.as_str())));
        let grants_sql = format!(
            "SELECT k.tenant, k.wallet, {GRANT_COLUMNS} \
             FROM unnest($1::text[], $2::text[]) AS k (tenant, wallet) \
             CROSS JOIN LATERAL (SELECT * FROM grants x WHERE x.tenant = k.tenant \
             AND x.wallet = k.wallet AND x.remaining > 0 OFFSET 0) AS g"
        );
        let grants = async {
            if grant_keys.is_empty() {
                return Ok(Vec::new());
            }
            query(tx, &grants_sql, &[&grant_tenants, &grant_wallets]).await
        };
        let (locked, accounts, grants) = tokio::join!(biased; locked, accounts, grants);
        let (locked, accounts, grants) = (locked?, accounts?, grants?);
        let mut live: HashMap<(TenantId, WalletId), Result<Vec<Grant>, String>> = HashMap::new();
        for row in grants {
            let key = (
                rows::tenant_id(get(&row, 0)?)?,
                rows::wallet_id(get(&row, 1)?)?,
            );
            let entry = live.entry(key).or_insert_with(|| Ok(Vec::new()));
            match (rows::grant(&row, 2), entry.as_mut()) {
                (Ok(grant), Ok(list)) => list.push(grant),
                (Err(e), Ok(_)) => *entry = Err(e.to_string()),
                (_, Err(_)) => {}
            }
        }
        for key in grant_keys {
            let found = live.remove(&key).unwrap_or_else(|| Ok(Vec::new()));
            self.grants.insert(key, found);
        }
        for row in locked {
            let (key, wallet) = keyed(
                &row,
                |r| Ok((rows::tenant_id(get(r, 0)?)?, rows::wallet_id(get(r, 1)?)?)),
                rows::wallet,
            )?;
            if let Ok(Some(w)) = &wallet {
                units.insert((w.tenant.clone(), w.unit.clone()));
            }
            self.wallets.insert(key, wallet);
        }
        for key in wallets {
            self.wallets.entry(key).or_insert(Ok(None));
        }
        let mut balances: HashMap<(TenantId, Unit, SystemAccount), Slots> = HashMap::new();
        for row in accounts {
            let key = (
                rows::tenant_id(get(&row, 0)?)?,
                rows::unit(get(&row, 1)?, get(&row, 2)?)?,
                rows::system_account(get(&row, 3)?)?,
            );
            let slot: i16 = get(&row, 4)?;
            let slot = usize::try_from(slot)
                .ok()
                .filter(|s| *s < ACCOUNT_SLOTS_MAX)
                .ok_or_else(|| Fail::corrupt(format_args!("system account slot {slot}")))?;
            balances.entry(key).or_default()[slot] = get(&row, 5)?;
        }
        // An account never used has no row and a balance of zero, and so has a slot
        // never used. One read in an earlier round keeps that read, so that every run of
        // the executor on this batch sees the same balance.
        for (t, u) in units {
            for a in SystemAccount::ALL {
                let key = (t.clone(), u.clone(), a);
                if self.accounts.contains_key(&key) {
                    continue;
                }
                let slots = balances.get(&key).copied().unwrap_or_default();
                let sum: i128 = slots.iter().copied().map(i128::from).sum();
                let sum = i64::try_from(sum).map_err(|_| {
                    Fail::corrupt(format_args!("system account balance {sum} of {key:?}"))
                })?;
                self.accounts.insert(key.clone(), sum);
                self.slots.insert(key, slots);
            }
        }
        Ok(())
    }

    /// Grants asked for by id (to reverse a debit), live or spent: asked only once their
    /// wallet is locked, so read after the lock like the live grants.
    async fn load_grant_ids<C: GenericClient>(
        &mut self,
        tx: &C,
        missing: &Missing,
    ) -> Result<(), Fail> {
        if missing.grant_ids.is_empty() {
            return Ok(());
        }
        let tenants: Vec<&str> = missing
            .grant_ids
            .iter()
            .map(|(t, _, _)| t.as_str())
            .collect();
        let wallets: Vec<&str> = missing
            .grant_ids
            .iter()
            .map(|(_, w, _)| w.as_str())
            .collect();
        let ids: Vec<Uuid> = missing.grant_ids.iter().map(|(_, _, id)| id.0).collect();
        let sql = format!(
            "SELECT k.tenant, k.wallet, {GRANT_COLUMNS} \
             FROM unnest($1::text[], $2::text[], $3::uuid[]) AS k (tenant, wallet, gid) \
             CROSS JOIN LATERAL (SELECT * FROM grants x WHERE x.tenant = k.tenant \
             AND x.id = k.gid AND x.wallet = k.wallet OFFSET 0) AS g"
        );
        for row in query(tx, &sql, &[&tenants, &wallets, &ids]).await? {
            let key = (
                rows::tenant_id(get(&row, 0)?)?,
                rows::wallet_id(get(&row, 1)?)?,
                MutationId(get(&row, 2)?),
            );
            let grant = rows::grant(&row, 2).map(Some).map_err(|e| e.to_string());
            self.grant_ids.insert(key, grant);
        }
        for key in &missing.grant_ids {
            self.grant_ids.entry(key.clone()).or_insert(Ok(None));
        }
        Ok(())
    }

    fn note_hold_wallet(&self, hold: &Found<Hold>, wallets: &mut BTreeSet<(TenantId, WalletId)>) {
        if let Ok(Some(h)) = hold {
            let key = (h.tenant.clone(), h.wallet.clone());
            if !self.wallets.contains_key(&key) {
                wallets.insert(key);
            }
        }
    }
}

/// The versions and values of the records a batch reads or writes, locked `FOR UPDATE`
/// in key order, so that they hold until the batch commits.
async fn load_records<C: GenericClient>(
    tx: &C,
    missing: &Missing,
) -> Result<Vec<(RecordPlace, Option<(i64, String)>)>, Fail> {
    if missing.records.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<&str> = missing.records.iter().map(|(t, _, _)| t.as_str()).collect();
    let kinds: Vec<&str> = missing.records.iter().map(|(_, k, _)| k.as_str()).collect();
    let keys: Vec<&str> = missing.records.iter().map(|(_, _, k)| k.as_str()).collect();
    let sql = "SELECT r.tenant, r.kind, r.key, r.version, r.value \
         FROM unnest($1::text[], $2::text[], $3::text[]) AS k (tenant, kind, key) \
         JOIN LATERAL (SELECT * FROM records x WHERE x.tenant = k.tenant AND x.kind = k.kind \
         AND x.key = k.key OFFSET 0) AS r ON true FOR UPDATE OF r";
    let mut found = HashMap::new();
    for r in query(tx, sql, &[&tenants, &kinds, &keys]).await? {
        let place: (String, String, String) = (get(&r, 0)?, get(&r, 1)?, get(&r, 2)?);
        found.insert(place, (get::<i64>(&r, 3)?, get::<String>(&r, 4)?));
    }
    // A kind is a constant of the code, not a value of the database, so the rows
    // found are matched to the places asked for rather than decoded.
    Ok(missing
        .records
        .iter()
        .filter_map(|place| {
            let (tenant, kind, key) = place;
            let text = (
                tenant.as_str().to_owned(),
                kind.as_str().to_owned(),
                key.as_str().to_owned(),
            );
            found.get(&text).map(|v| (place.clone(), Some(v.clone())))
        })
        .collect())
}

/// The rows loaded without locks, fetched together.
#[derive(Default)]
struct Plain {
    tenants: Vec<(TenantId, bool)>,
    customers: Vec<((TenantId, CustomerId), Found<Customer>)>,
    api_keys: Vec<((TenantId, ApiKeyName), Found<ApiKey>)>,
    secrets: Vec<[u8; 32]>,
    mutations: Vec<((TenantId, MutationId), Found<Mutation>)>,
    idempotency: Vec<((TenantId, IdempotencyKey), Found<Recorded>)>,
    settings: Vec<((TenantId, SettingKey), String)>,
    /// The tenants of `missing.webhooks` that have an enabled webhook endpoint.
    webhooks: Vec<TenantId>,
}

impl Plain {
    async fn load<C: GenericClient>(tx: &C, missing: &Missing) -> Result<Self, Fail> {
        let tenants = async {
            if missing.tenants.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<&str> = missing.tenants.iter().map(TenantId::as_str).collect();
            let sql = "SELECT id, operator FROM unnest($1::text[]) AS k (id) JOIN LATERAL \
                 (SELECT * FROM tenants x WHERE x.id = k.id OFFSET 0) AS r USING (id)";
            query(tx, sql, &[&ids])
                .await?
                .iter()
                .map(|r| Ok((rows::tenant_id(get(r, 0)?)?, get(r, 1)?)))
                .collect::<Result<Vec<_>, Fail>>()
        };
        let customers = async {
            let pairs = missing
                .customers
                .iter()
                .map(|(t, c)| (t.as_str(), c.as_str()));
            by_tenant_key(tx, CUSTOMER_COLUMNS, "customers", "id", pairs)
                .await?
                .iter()
                .map(|r| {
                    keyed(
                        r,
                        |r| Ok((rows::tenant_id(get(r, 0)?)?, rows::customer_id(get(r, 1)?)?)),
                        rows::customer,
                    )
                })
                .collect::<Result<Vec<_>, Fail>>()
        };
        let api_keys = async {
            let pairs = missing
                .api_keys
                .iter()
                .map(|(t, n)| (t.as_str(), n.as_str()));
            by_tenant_key(tx, API_KEY_COLUMNS, "api_keys", "name", pairs)
                .await?
                .iter()
                .map(|r| {
                    keyed(
                        r,
                        |r| {
                            Ok((
                                rows::tenant_id(get(r, 0)?)?,
                                rows::api_key_name(get(r, 1)?)?,
                            ))
                        },
                        rows::api_key,
                    )
                })
                .collect::<Result<Vec<_>, Fail>>()
        };
        let secrets = async {
            if missing.secrets.is_empty() {
                return Ok(Vec::new());
            }
            let secrets: Vec<&[u8]> = missing.secrets.iter().map(<[u8; 32]>::as_slice).collect();
            let sql = "SELECT secret_sha256 FROM unnest($1::bytea[]) AS k (secret_sha256) \
                 JOIN LATERAL (SELECT secret_sha256 FROM api_keys x \
                 WHERE x.secret_sha256 = k.secret_sha256 OFFSET 0) AS r USING (secret_sha256)";
            query(tx, sql, &[&secrets])
                .await?
                .iter()
                .map(|r| {
                    let bytes: &[u8] = get(r, 0)?;
                    bytes
                        .try_into()
                        .map_err(|_| Fail::corrupt("a secret not of 32 bytes"))
                })
                .collect::<Result<Vec<[u8; 32]>, Fail>>()
        };
        let mutations = async {
            if missing.mutations.is_empty() {
                return Ok(Vec::new());
            }
            let tenants: Vec<&str> = missing.mutations.iter().map(|(t, _)| t.as_str()).collect();
            let ids: Vec<Uuid> = missing.mutations.iter().map(|(_, m)| m.0).collect();
            let sql = format!(
                "SELECT {MUTATION_COLUMNS} FROM unnest($1::text[], $2::uuid[]) AS k (tenant, id) \
                 JOIN LATERAL (SELECT * FROM mutations x \
                 WHERE x.tenant = k.tenant AND x.id = k.id OFFSET 0) AS r USING (tenant, id)"
            );
            query(tx, &sql, &[&tenants, &ids])
                .await?
                .iter()
                .map(|r| {
                    keyed(
                        r,
                        |r| Ok((rows::tenant_id(get(r, 2)?)?, MutationId(get(r, 1)?))),
                        |r| rows::mutation(r).map(|(_, m)| m),
                    )
                })
                .collect::<Result<Vec<_>, Fail>>()
        };
        let idempotency = async {
            let pairs = missing
                .idempotency
                .iter()
                .map(|(t, k)| (t.as_str(), k.as_str()));
            by_tenant_key(tx, RECORDED_COLUMNS, "idempotency_keys", "key", pairs)
                .await?
                .iter()
                .map(|r| {
                    keyed(
                        r,
                        |r| {
                            Ok((
                                rows::tenant_id(get(r, 0)?)?,
                                rows::idempotency_key(get(r, 1)?)?,
                            ))
                        },
                        rows::recorded,
                    )
                })
                .collect::<Result<Vec<_>, Fail>>()
        };
        let settings = async {
            let pairs = missing
                .settings
                .iter()
                .map(|(t, k)| (t.as_str(), k.as_str()));
            by_tenant_key(tx, "tenant, key, value", "settings", "key", pairs)
                .await?
                .iter()
                .map(|r| {
                    let key = (rows::tenant_id(get(r, 0)?)?, rows::setting_key(get(r, 1)?)?);
                    Ok((key, get(r, 2)?))
                })
                .collect::<Result<Vec<_>, Fail>>()
        };
        let webhooks = async {
            if missing.webhooks.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<&str> = missing.webhooks.iter().map(TenantId::as_str).collect();
            let kind = prepaid_store::webhooks::ENABLED_KIND.as_str();
            let sql = "SELECT k.tenant FROM unnest($1::text[]) AS k (tenant) WHERE EXISTS \
                       (SELECT 1 FROM records x WHERE x.tenant = k.tenant AND x.kind = $2)";
            query(tx, sql, &[&ids, &kind])
                .await?
                .iter()
                .map(|r| rows::tenant_id(get(r, 0)?))
                .collect::<Result<Vec<_>, Fail>>()
        };
        let (tenants, customers, api_keys, secrets, mutations, idempotency, settings, webhooks) = tokio::join!(
            tenants,
            customers,
            api_keys,
            secrets,
            mutations,
            idempotency,
            settings,
            webhooks
        );
        Ok(Self {
            tenants: tenants?,
            customers: customers?,
            api_keys: api_keys?,
            secrets: secrets?,
            mutations: mutations?,
            idempotency: idempotency?,
            settings: settings?,
            webhooks: webhooks?,
        })
    }

    fn into_snapshot(self, snapshot: &mut Snapshot, missing: &Missing) {
        for (id, operator) in self.tenants {
            snapshot.tenants.insert(id, Some(operator));
        }
        for id in &missing.tenants {
            snapshot.tenants.entry(id.clone()).or_insert(None);
        }
        snapshot.customers.extend(self.customers);
        for key in &missing.customers {
            snapshot.customers.entry(key.clone()).or_insert(Ok(None));
        }
        snapshot.api_keys.extend(self.api_keys);
        for key in &missing.api_keys {
            snapshot.api_keys.entry(key.clone()).or_insert(Ok(None));
        }
        for secret in self.secrets {
            snapshot.secrets.insert(secret, true);
        }
        for secret in &missing.secrets {
            snapshot.secrets.entry(*secret).or_insert(false);
        }
        snapshot.mutations.extend(self.mutations);
        for key in &missing.mutations {
            snapshot.mutations.entry(key.clone()).or_insert(Ok(None));
        }
        snapshot.idempotency.extend(self.idempotency);
        for key in &missing.idempotency {
            snapshot.idempotency.entry(key.clone()).or_insert(Ok(None));
        }
        for (key, value) in self.settings {
            snapshot.settings.insert(key, Some(value));
        }
        for key in &missing.settings {
            snapshot.settings.entry(key.clone()).or_insert(None);
        }
        for tenant in self.webhooks {
            snapshot.webhooks.insert(tenant, true);
        }
        for tenant in &missing.webhooks {
            snapshot.webhooks.entry(tenant.clone()).or_insert(false);
        }
    }
}
