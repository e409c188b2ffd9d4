//! The batch executor: how a batch of requests and a sweep are carried out, written
//! once for every backend.
//!
//! The executor is pure and synchronous. It reads rows through the [`Rows`] trait,
//! asks the ledger core's rules what to do, and returns the outcomes together with the
//! [`Changes`] the backend must write (in the same transaction as the reads) for those
//! outcomes to hold. It never writes anything itself.
//!
//! # Misses
//!
//! A backend whose rows are far away (a database across the network) need not answer
//! each lookup as it comes: a lookup may answer [`Gap::Miss`], "not loaded yet". The
//! executor then goes on with the rest of the batch to collect every key it would need
//! and returns them as [`Run::Missing`] instead of outcomes; the backend loads them all
//! with a few set-based queries and runs the executor again, from scratch, on the
//! larger snapshot. Each run asks for rows that depend on rows of the run before (the
//! wallet of a hold, the system account of a wallet's unit, what an idempotency key
//! recorded), so a batch needs a handful of runs at most; a backend that answers every
//! lookup directly (SQLite) never sees a miss and runs once.
//!
//! Running again from scratch is cheap and safe because a run depends only on the
//! rows, the batch, the clock passed in and, for the sweep, the ids handed out by the
//! caller's generator.
//!
//! # Requests are atomic
//!
//! Every command looks up all it needs and asks every rule before it changes the
//! batch's state, so a refused request (or one whose rows cannot be used) leaves no
//! trace, and later requests see exactly what the earlier carried-out ones did.
//!
//! Choices the ledger core leaves to the store, made here for every backend:
//!
//! - An idempotency key is scoped to its tenant. A replay rebuilds the first answer
//!   from the entities it named; a wallet answer keeps the status, balance and held it
//!   first showed (its `incoming`, which no dialect shows, is read again), and a hold
//!   placement shows the hold pending. A key used by another
//!   customer than the caller's restricted one is an `IdempotencyConflict`, so that it
//!   reveals nothing.
//! - A request the edge never builds (posting a kind other than top-up, debit or
//!   adjustment; a top-up, debit, hold or transfer of a non-positive amount) is
//!   answered `Refused(Refusal::Internal)` and logged, where the core's rules would
//!   assert.
//! - A request whose rows cannot be used ([`Gap::Broken`]: a row that does not decode,
//!   a hold without its wallet) is answered `Refused(Refusal::Internal)` and logged;
//!   its batch-mates are carried out.
//! - A customer-restricted caller creating any customer but its own is `Forbidden`.
//! - Mutation ids are unique within their tenant (clients may choose them, and one
//!   tenant's choice must neither fail nor reveal another's); hold ids, which the
//!   server chooses, are unique across the store.
//! - A customer link longer than [`LINK_LEN_MAX`] or a setting value longer than
//!   [`SETTING_VALUE_LEN_MAX`] is a request the edge never builds.
//! - Putting a setting twice in one batch writes it once, with the last value; it
//!   counts as created when the tenant had no value before the batch.
//! - A committed or released hold's mutation carries the hold's reference.
//!
//! # The sweep
//!
//! [`sweep`] releases the due holds the backend found (status `expired`, a
//! `hold_release` mutation of 0) and expires the due wallets: their pending holds are
//! released (status `released`), a positive balance goes to the expiry account with an
//! `expiry` mutation, and the status becomes `expired`. Mutations the sweep makes take
//! their ids from the caller's generator and a reference of type `system`.

mod auto_topup;
mod changes;
mod events;
mod expiry;
mod grants;
mod linked;
mod lookups;
mod recorded;
mod requests;

pub use grants::GrantChange;
pub use linked::{NewJob, RecordChange, RecordPlace};
pub use recorded::{Recorded, RecordedColumns, RecordedResult};

use crate::{StoreError, SweepReport};
use prepaid_ledger::{
    Amount, ApiKey, ApiKeyName, Command, Customer, CustomerId, Done, Draw, Fingerprint, Grant,
    GrantTerms, Hold, HoldDirection, HoldId, HoldStatus, IdempotencyKey, LINK_LEN_MAX,
    METADATA_PAIRS_MAX, Metadata, Mutation, MutationId, MutationKind, NewApiKey, NewWallet,
    Outcome, RecordKey, RecordKind, Reference, Refusal, Request, Reserved, SETTING_VALUE_LEN_MAX,
    SettingKey, Step, SystemAccount, TenantId, Timestamp, Transfer, TransferId, Unit, Wallet,
    WalletId, WalletStatus, add_to_balance, commit_hold, expire_wallet, place_credit_hold,
    place_hold, plan_reversal, post, release_hold, reversal_id, transfer,
};
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use uuid::Uuid;

/// Why a lookup gave no answer.
#[derive(Debug)]
pub enum Gap {
    /// The row is not loaded yet: the executor notes the key and runs on; the backend
    /// loads what was missing and runs the executor again.
    Miss,
    /// The row exists but cannot be used (it does not decode, say). The request that
    /// needs it is answered [`Refusal::Internal`] alone; the message is logged.
    Broken(String),
    /// The database failed: the whole batch fails with this error.
    Failed(StoreError),
}

/// The answer of a lookup.
pub type Lookup<T> = Result<T, Gap>;

/// The rows a batch reads, as the backend's transaction sees them. Every lookup is
/// scoped as its arguments say; `hold` and `secret_taken` look across tenants because
/// those ids and secrets are unique across the store (mutation ids are unique within
/// their tenant: a client may choose them).
///
/// The executor asks for each key at most once per run (and again only after a
/// [`Gap::Miss`] or [`Gap::Broken`]), and never mutates what it is given.
pub trait Rows {
    /// Whether the tenant exists, and if so whether it is the operator tenant.
    fn tenant(&mut self, id: &TenantId) -> Lookup<Option<bool>>;
    fn customer(&mut self, tenant: &TenantId, id: &CustomerId) -> Lookup<Option<Customer>>;
    fn api_key(&mut self, tenant: &TenantId, name: &ApiKeyName) -> Lookup<Option<ApiKey>>;
    /// Whether any key of any tenant has this secret.
    fn secret_taken(&mut self, secret_sha256: &[u8; 32]) -> Lookup<bool>;
    fn wallet(&mut self, tenant: &TenantId, id: &WalletId) -> Lookup<Option<Wallet>>;
    /// The hold with this id, of any tenant.
    fn hold(&mut self, id: HoldId) -> Lookup<Option<Hold>>;
    /// The tenant's mutation with this id (asked to replay an answer).
    fn mutation(&mut self, tenant: &TenantId, id: MutationId) -> Lookup<Option<Mutation>>;
    /// Whether a mutation of the tenant has this id (asked before making one).
    ///
    /// A backend may answer `false` without looking, provided it then writes
    /// mutations so that a taken id is detected (a unique key) and runs the batch
    /// again knowing it is taken.
    fn mutation_taken(&mut self, tenant: &TenantId, id: MutationId) -> Lookup<bool>;
    /// What an idempotency key of the tenant recorded.
    fn idempotency(&mut self, tenant: &TenantId, key: &IdempotencyKey) -> Lookup<Option<Recorded>>;
    /// A system account's balance; zero when it was never used.
    fn account(&mut self, tenant: &TenantId, unit: &Unit, account: SystemAccount) -> Lookup<i64>;
    /// The wallet's live grants: those with something remaining, in any order. A
    /// backend whose batches run concurrently loads them only once the wallet's row is
    /// locked (the executor asks for them after the wallet), since every change of a
    /// grant changes its wallet too.
    fn grants(&mut self, tenant: &TenantId, wallet: &WalletId) -> Lookup<Vec<Grant>>;
    /// The wallet's grant with this id, live or spent (asked to reverse a debit, after
    /// the wallet, as [`Rows::grants`] is).
    fn grant(
        &mut self,
        tenant: &TenantId,
        wallet: &WalletId,
        id: MutationId,
    ) -> Lookup<Option<Grant>>;
    /// The ids of the wallet's pending holds (asked by the sweep only).
    fn pending_holds(&mut self, tenant: &TenantId, wallet: &WalletId) -> Lookup<Vec<HoldId>>;
    /// The value of a setting of the tenant.
    fn setting(&mut self, tenant: &TenantId, key: &SettingKey) -> Lookup<Option<String>>;
    /// The version and value of a record of the tenant, if there is one (asked by
    /// record steps of linked requests, and for a wallet's automatic top-up). A backend
    /// whose batches run concurrently holds the record locked until the batch ends.
    fn record(
        &mut self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Lookup<Option<(i64, String)>>;

    /// Whether the tenant has an enabled webhook endpoint: a record of
    /// [`crate::webhooks::ENABLED_KIND`]. Read without a lock: an endpoint enabled while
    /// a batch runs may miss that batch's events.
    fn webhooks(&mut self, tenant: &TenantId) -> Lookup<bool>;

    /// Whether a lookup may answer [`Gap::Miss`]. When not, the executor skips the
    /// pass that looks up every row a request names before deciding it, which serves
    /// only to learn all misses of a run at once.
    fn may_miss(&self) -> bool {
        true
    }
}

/// The keys a run needed and the backend had not loaded. Sets are ordered, so that a
/// backend that locks what it loads locks in one fixed order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    pub tenants: BTreeSet<TenantId>,
    pub customers: BTreeSet<(TenantId, CustomerId)>,
    pub api_keys: BTreeSet<(TenantId, ApiKeyName)>,
    pub secrets: BTreeSet<[u8; 32]>,
    pub wallets: BTreeSet<(TenantId, WalletId)>,
    pub holds: BTreeSet<HoldId>,
    pub mutations: BTreeSet<(TenantId, MutationId)>,
    pub idempotency: BTreeSet<(TenantId, IdempotencyKey)>,
    pub accounts: BTreeSet<(TenantId, Unit, SystemAccount)>,
    pub pending_holds: BTreeSet<(TenantId, WalletId)>,
    pub grants: BTreeSet<(TenantId, WalletId)>,
    pub grant_ids: BTreeSet<(TenantId, WalletId, MutationId)>,
    pub settings: BTreeSet<(TenantId, SettingKey)>,
    pub records: BTreeSet<RecordPlace>,
    pub webhooks: BTreeSet<TenantId>,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of keys missing.
    pub fn len(&self) -> usize {
        self.tenants.len()
            + self.customers.len()
            + self.api_keys.len()
            + self.secrets.len()
            + self.wallets.len()
            + self.holds.len()
            + self.mutations.len()
            + self.idempotency.len()
            + self.accounts.len()
            + self.pending_holds.len()
            + self.grants.len()
            + self.grant_ids.len()
            + self.settings.len()
            + self.records.len()
            + self.webhooks.len()
    }
}

/// What one run of the executor came to.
#[derive(Debug)]
pub enum Run<T> {
    /// The run had every row it needed.
    Done(T),
    /// Load these and run again.
    Missing(Box<Missing>),
}

/// The result of a batch: the changes to write, and then (by [`Applied::finish`]) one
/// outcome per request.
#[derive(Debug)]
pub struct Applied {
    answers: Vec<Answer>,
    pub changes: Changes,
}

impl Applied {
    /// The outcomes, one per request, in order, and what is left of the changes: the
    /// new mutations move out of [`Changes::mutations`] into the outcomes that show
    /// them (so that no mutation is copied), so call this once they are written.
    pub fn finish(self) -> (Vec<Outcome>, Changes) {
        let Self {
            answers,
            mut changes,
        } = self;
        let mut made: Vec<Option<Mutation>> = std::mem::take(&mut changes.mutations)
            .into_iter()
            .map(Some)
            .collect();
        let mut take = |ix: usize| {
            made.get_mut(ix)
                .and_then(Option::take)
                .expect("every new mutation is shown by one answer")
        };
        let outcomes = answers
            .into_iter()
            .map(|answer| {
                let done = match answer {
                    Answer::Outcome(outcome) => return outcome,
                    Answer::Made(Made::Done(done)) => done,
                    Answer::Made(Made::Mutation(ix)) => Done::Mutation(take(ix)),
                    Answer::Made(Made::Transfer { id, debit, credit }) => {
                        Done::Transfer(Transfer {
                            id,
                            debit: take(debit),
                            credit: take(credit),
                        })
                    }
                    Answer::Made(Made::Hold { hold, mutation }) => Done::Hold {
                        hold,
                        mutation: Some(take(mutation)),
                    },
                };
                Outcome::Done {
                    done,
                    replayed: false,
                }
            })
            .collect();
        changes.mutations = made.into_iter().flatten().collect();
        (outcomes, changes)
    }
}

/// What a request came to in a run.
#[derive(Debug)]
enum Answer {
    Outcome(Outcome),
    /// Carried out; its new mutations are still in [`Changes::mutations`].
    Made(Made),
}

/// What a carried-out command made, with its new mutations as indices into the run's
/// list of mutations.
// Like `Done`, which it mostly carries: made once, moved once; boxing would cost an
// allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Made {
    /// Made no mutation.
    Done(Done),
    Mutation(usize),
    Transfer {
        id: TransferId,
        debit: usize,
        credit: usize,
    },
    Hold {
        hold: Hold,
        mutation: usize,
    },
}

/// The result of a sweep.
#[derive(Debug)]
pub struct Swept {
    pub report: SweepReport,
    pub changes: Changes,
}

/// A tenant to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTenant {
    pub id: TenantId,
    pub name: String,
    /// Only the tenant made by bootstrap is the operator tenant.
    pub operator: bool,
    pub created_at: Timestamp,
}

/// A change of one system account's balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountChange {
    pub tenant: TenantId,
    pub unit: Unit,
    pub account: SystemAccount,
    /// What the batch added (never zero).
    pub delta: i64,
    /// The balance the batch computed: the one it read plus `delta`. A backend that
    /// locks the row (or is the only writer) may write it; one that does not adds
    /// `delta` instead.
    pub balance: i64,
}

/// An idempotency key to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub tenant: TenantId,
    pub key: IdempotencyKey,
    pub recorded: Recorded,
    pub created_at: Timestamp,
}

/// A setting a batch put: one per tenant and key, with the last value put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingChange {
    pub tenant: TenantId,
    pub key: SettingKey,
    pub value: String,
    /// The tenant had no value for the key before the batch: insert it (a backend
    /// whose batches run concurrently lets a racing insert fail the batch, which then
    /// runs again and finds the value); otherwise update it.
    pub created: bool,
    pub updated_at: Timestamp,
}

/// A customer's new link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerLink {
    pub tenant: TenantId,
    pub id: CustomerId,
    pub link: String,
}

/// Everything a batch or a sweep changes. A backend writes it in this order of
/// fields (so that every row exists before a row that refers to it), then commits.
/// Within each list the order is fixed: the order of the requests, or of the keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub tenants: Vec<NewTenant>,
    pub customers: Vec<Customer>,
    /// Links set on customers (new or not), in the order they were set; a backend
    /// writes them after the new customers, each over the last.
    pub customer_links: Vec<CustomerLink>,
    pub api_keys: Vec<ApiKey>,
    /// New wallets, as the batch left them.
    pub wallets_new: Vec<Wallet>,
    /// Existing wallets whose status, balance or held changed, as the batch left
    /// them; ordered by tenant and id.
    pub wallets_changed: Vec<Wallet>,
    /// New holds, as the batch left them.
    pub holds_new: Vec<Hold>,
    /// Existing holds that were settled, as the batch left them; ordered by id.
    pub holds_changed: Vec<Hold>,
    /// New mutations, in the order they were made (their list order).
    pub mutations: Vec<Mutation>,
    /// Grants made or changed, ordered by tenant, wallet and id.
    pub grants: Vec<GrantChange>,
    pub keys: Vec<KeyRecord>,
    /// Ordered by tenant, unit and account.
    pub accounts: Vec<AccountChange>,
    /// Existing wallets whose metadata changed, as the batch left them (with
    /// `wallets_changed`, which carries the rest of the row); ordered by tenant and id.
    pub wallets_relabelled: Vec<Wallet>,
    /// Ordered by tenant and key.
    pub settings: Vec<SettingChange>,
    /// Records written or deleted by linked steps, ordered by tenant, kind and key.
    pub records: Vec<RecordChange>,
    /// Jobs queued by linked steps, in order, each id once; a job whose id is queued
    /// already is left as it is.
    pub jobs: Vec<NewJob>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Runs `batch` against `rows`: one outcome per request plus the changes to write, or
/// the keys that were missing. An `Err` is a database-wide failure from `rows`.
pub fn apply(
    rows: &mut dyn Rows,
    batch: &[Request],
    now: Timestamp,
) -> Result<Run<Applied>, StoreError> {
    let mut exec = Exec::new(rows, now, batch.len());
    let mut answers = Vec::with_capacity(batch.len());
    for (index, request) in batch.iter().enumerate() {
        let answer = match exec.request(request) {
            Ok(answer) => answer,
            Err(Gap::Failed(e)) => return Err(e),
            // A placeholder: the run is thrown away.
            Err(Gap::Miss) => Answer::Outcome(Outcome::Refused(Refusal::Internal)),
            Err(Gap::Broken(why)) => {
                exec.broken.push((index, request.tenant.clone(), why));
                Answer::Outcome(Outcome::Refused(Refusal::Internal))
            }
        };
        answers.push(answer);
    }
    exec.emit_events()?;
    if !exec.missing.is_empty() {
        return Ok(Run::Missing(Box::new(exec.missing)));
    }
    for (index, tenant, why) in &exec.broken {
        tracing::error!(request = index, %tenant, "request failed and changed nothing: {why}");
    }
    let changes = exec.changes();
    Ok(Run::Done(Applied { answers, changes }))
}

/// Runs a sweep over the due holds, wallets and grants the backend found; `new_id`
/// gives the ids of the mutations it makes. Holds no longer pending, and wallets and
/// grants no longer due, are passed over. A row that cannot be used fails
/// the whole sweep with [`StoreError::Internal`].
pub fn sweep(
    rows: &mut dyn Rows,
    due: &Due,
    now: Timestamp,
    new_id: &mut dyn FnMut() -> MutationId,
) -> Result<Run<Swept>, StoreError> {
    let Due {
        holds: due_holds,
        wallets: due_wallets,
        grants: due_grants,
    } = due;
    let mut exec = Exec::new(rows, now, due_holds.len() + due_wallets.len());
    let mut report = SweepReport::default();
    let fail = |why: String| StoreError::internal(format!("sweep: {why}"));
    for &id in due_holds {
        match exec.expire_hold(id, new_id) {
            Ok(true) => report.holds_expired += 1,
            Ok(false) | Err(Stop::Gap(Gap::Miss)) => {}
            Err(Stop::Gap(Gap::Failed(e))) => return Err(e),
            Err(Stop::Gap(Gap::Broken(why)) | Stop::Bug(why)) => return Err(fail(why)),
            Err(Stop::Refused(refusal)) => {
                return Err(fail(format!(
                    "expiring the due hold {id} was refused: {}",
                    refusal.code()
                )));
            }
        }
    }
    for (tenant, id) in due_wallets {
        match exec.expire_wallet(tenant, id, new_id) {
            Ok(true) => report.wallets_expired += 1,
            Ok(false) | Err(Stop::Gap(Gap::Miss)) => {}
            Err(Stop::Gap(Gap::Failed(e))) => return Err(e),
            Err(Stop::Gap(Gap::Broken(why)) | Stop::Bug(why)) => return Err(fail(why)),
            Err(Stop::Refused(refusal)) => {
                return Err(fail(format!(
                    "releasing a hold of the expiring wallet {tenant}/{id} was refused: {}",
                    refusal.code()
                )));
            }
        }
    }
    for (tenant, wallet, grant) in due_grants {
        match exec.expire_grant(tenant, wallet, *grant, new_id) {
            Ok(true) => report.grants_expired += 1,
            Ok(false) | Err(Stop::Gap(Gap::Miss)) => {}
            Err(Stop::Gap(Gap::Failed(e))) => return Err(e),
            Err(Stop::Gap(Gap::Broken(why)) | Stop::Bug(why)) => return Err(fail(why)),
            Err(Stop::Refused(refusal)) => {
                return Err(fail(format!(
                    "expiring the grant {grant} of {tenant}/{wallet} was refused: {}",
                    refusal.code()
                )));
            }
        }
    }
    exec.emit_events()?;
    if !exec.missing.is_empty() {
        return Ok(Run::Missing(Box::new(exec.missing)));
    }
    let changes = exec.changes();
    Ok(Run::Done(Swept { report, changes }))
}

/// What a sweep found due, each list at most [`crate::SWEEP_BATCH_MAX`] long: holds in
/// order of expiry, wallets in order of `valid_until`, grants in order of expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub holds: Vec<HoldId>,
    pub wallets: Vec<(TenantId, WalletId)>,
    /// Grants whose expiry has come with a free remainder: tenant, wallet and id.
    pub grants: Vec<(TenantId, WalletId, MutationId)>,
}

/// How a command ends short of being carried out.
#[derive(Debug)]
enum Stop {
    Refused(Refusal),
    Gap(Gap),
    /// A request the edge never builds: answered [`Refusal::Internal`] and logged.
    Bug(String),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

impl From<Gap> for Stop {
    fn from(g: Gap) -> Self {
        Self::Gap(g)
    }
}

/// A wallet as the batch sees it.
struct WalletSlot {
    wallet: Wallet,
    /// Created by this batch.
    new: bool,
    /// Status, balance or held changed.
    dirty: bool,
    /// Its metadata changed (written apart, since most changes of a wallet leave it).
    relabelled: bool,
    /// Its available amount as read (`None` for a new wallet or one without a
    /// floor), to tell when the batch depleted it.
    before: Option<i64>,
    /// Its [`prepaid_ledger::alert_level`] as read (`None` for a new wallet), to tell
    /// which low-balance thresholds the batch crossed.
    level_before: Option<i64>,
}

impl WalletSlot {
    /// Marks the wallet changed at `now`, so its `updated_at` says when.
    fn touch(&mut self, now: Timestamp) {
        self.wallet.updated_at = now;
        self.dirty = true;
    }
}

/// A hold as the batch sees it.
struct HoldSlot {
    hold: Hold,
    new: bool,
    dirty: bool,
}

/// A mutation id as the batch knows it.
enum MutationSlot {
    /// Read, and no mutation has this id.
    Absent,
    /// Said free by [`Rows::mutation_taken`], which may answer without looking.
    Untaken,
    /// Taken by a stored mutation not read yet.
    Taken,
    /// Read to replay an answer (rare, so boxed).
    Stored(Box<Mutation>),
    /// Made by this batch: its index in [`Exec::mutations`].
    New(usize),
}

/// A system account as the batch sees it.
struct AccountSlot {
    tenant: TenantId,
    unit: Unit,
    account: SystemAccount,
    read: i64,
    balance: i64,
}

type Nested<A, B, V> = HashMap<A, HashMap<B, V>>;

/// The memoized value of `(a, b)` in `map`, fetched on first use. Keys are cloned
/// only when first seen.
fn nested<'m, A, B, V>(
    map: &'m mut Nested<A, B, V>,
    a: &A,
    b: &B,
    fetch: impl FnOnce() -> Lookup<V>,
) -> Lookup<&'m mut V>
where
    A: Hash + Eq + Clone,
    B: Hash + Eq + Clone,
{
    if !map.contains_key(a) {
        map.insert(a.clone(), HashMap::new());
    }
    let inner = map.get_mut(a).expect("inserted above");
    if !inner.contains_key(b) {
        let value = fetch()?;
        inner.insert(b.clone(), value);
    }
    Ok(inner.get_mut(b).expect("inserted above"))
}

/// Sets `map[a][b]`, cloning `a` only when it is new.
fn remember<A, B, V>(map: &mut Nested<A, B, V>, a: &A, b: &B, value: V)
where
    A: Hash + Eq + Clone,
    B: Hash + Eq + Clone,
{
    match map.get_mut(a) {
        Some(inner) => {
            inner.insert(b.clone(), value);
        }
        None => {
            map.entry(a.clone()).or_default().insert(b.clone(), value);
        }
    }
}

fn account_index(account: SystemAccount) -> usize {
    match account {
        SystemAccount::World => 0,
        SystemAccount::Revenue => 1,
        SystemAccount::Adjustment => 2,
        SystemAccount::Expiry => 3,
    }
}

/// Notes a miss of `key` and passes every other answer on.
fn noted<T, K: Ord>(
    result: Lookup<T>,
    set: &mut BTreeSet<K>,
    key: impl FnOnce() -> K,
) -> Lookup<T> {
    if let Err(Gap::Miss) = result {
        set.insert(key());
    }
    result
}

/// The state of one run. Wallets, holds and system accounts live in vectors, found
/// through maps of indices, so that a command that looked a row up once reaches it
/// again by index.
struct Exec<'r> {
    rows: &'r mut dyn Rows,
    now: Timestamp,
    missing: Missing,
    /// Requests whose rows could not be used, logged once the run is final.
    broken: Vec<(usize, TenantId, String)>,

    tenants: HashMap<TenantId, Option<bool>>,
    customers: Nested<TenantId, CustomerId, Option<Customer>>,
    api_keys: Nested<TenantId, ApiKeyName, Option<ApiKey>>,
    secrets: HashMap<[u8; 32], bool>,
    wallet_ix: Nested<TenantId, WalletId, Option<usize>>,
    wallets: Vec<WalletSlot>,
    hold_ix: HashMap<HoldId, Option<usize>>,
    holds: Vec<HoldSlot>,
    /// Mutation ids are the tenant's own: two tenants may use one id.
    mutation_ids: HashMap<(TenantId, MutationId), MutationSlot>,
    idempotency: Nested<TenantId, IdempotencyKey, Option<Recorded>>,
    account_ix: Nested<TenantId, Unit, [Option<usize>; 4]>,
    accounts: Vec<AccountSlot>,
    settings: Nested<TenantId, SettingKey, Option<String>>,
    grants: Nested<TenantId, WalletId, Vec<grants::GrantSlot>>,

    new_tenants: Vec<NewTenant>,
    new_customers: Vec<Customer>,
    customer_links: Vec<CustomerLink>,
    new_api_keys: Vec<ApiKey>,
    mutations: Vec<Mutation>,
    keys: Vec<KeyRecord>,
    new_settings: Vec<SettingChange>,
    records: HashMap<RecordPlace, linked::RecordSlot>,
    jobs: Vec<NewJob>,
    /// Whether each tenant asked about has webhooks.
    webhooks: HashMap<TenantId, bool>,
    /// Holds placed, each with the number of mutations made before it (their place
    /// among the batch's events).
    hold_placed: Vec<(usize, usize)>,
    /// The mutations that expired a grant.
    grant_expiries: Vec<usize>,
    /// The automatic top-ups settled, in the order of the run.
    topups_settled: Vec<auto_topup::Settled>,
    /// What to undo if the linked request being carried out is refused.
    journal: Option<Vec<linked::Undo>>,
}

/// The ids a transfer takes.
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

impl<'r> Exec<'r> {
    /// A run sized for `requests` requests.
    fn new(rows: &'r mut dyn Rows, now: Timestamp, requests: usize) -> Self {
        Self {
            rows,
            now,
            missing: Missing::default(),
            broken: Vec::new(),
            tenants: HashMap::new(),
            customers: HashMap::new(),
            api_keys: HashMap::new(),
            secrets: HashMap::new(),
            wallet_ix: HashMap::new(),
            wallets: Vec::new(),
            hold_ix: HashMap::new(),
            holds: Vec::new(),
            mutation_ids: HashMap::with_capacity(requests),
            idempotency: HashMap::new(),
            account_ix: HashMap::new(),
            accounts: Vec::new(),
            settings: HashMap::new(),
            grants: HashMap::new(),
            new_tenants: Vec::new(),
            new_customers: Vec::new(),
            customer_links: Vec::new(),
            new_api_keys: Vec::new(),
            mutations: Vec::with_capacity(requests),
            keys: Vec::new(),
            new_settings: Vec::new(),
            records: HashMap::new(),
            jobs: Vec::new(),
            webhooks: HashMap::new(),
            hold_placed: Vec::new(),
            grant_expiries: Vec::new(),
            topups_settled: Vec::new(),
            journal: None,
        }
    }
}

fn counter_account(kind: MutationKind) -> Result<SystemAccount, Stop> {
    kind.counter_account()
        .ok_or_else(|| Stop::Bug(format!("{} has no system account", kind.as_str())))
}

fn system_reference(text: &str) -> Reference {
    Reference::known("system", text, "")
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
        Done::Setting { .. } => false,
        // Nothing of another customer shows.
        Done::Records => true,
    }
}
