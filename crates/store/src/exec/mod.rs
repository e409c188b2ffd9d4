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
//! - Mutation and hold ids are unique across the store, not just the tenant.
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

mod linked;

pub use linked::{NewJob, RecordChange, RecordKey};

use crate::{StoreError, SweepReport};
use prepaid_ledger::{
    Amount, ApiKey, ApiKeyName, Command, Customer, CustomerId, Done, Fingerprint, Hold,
    HoldDirection, HoldId, HoldStatus, IdempotencyKey, LINK_LEN_MAX, Mutation, MutationId,
    MutationKind, NewApiKey, NewWallet, Outcome, Reference, Refusal, Request, Reserved,
    SETTING_VALUE_LEN_MAX, SettingKey, Step, SystemAccount, TenantId, Timestamp, Transfer,
    TransferId, Unit, Wallet, WalletId, WalletStatus, add_to_balance, commit_hold, expire_wallet,
    place_credit_hold, place_hold, post, release_hold, transfer,
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
/// scoped as its arguments say; `hold`, `mutation` and `secret_taken` look across
/// tenants because those ids and secrets are unique across the store.
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
    /// The mutation with this id, of any tenant (asked to replay an answer).
    fn mutation(&mut self, id: MutationId) -> Lookup<Option<Mutation>>;
    /// Whether a mutation of any tenant has this id (asked before making one).
    ///
    /// A backend may answer `false` without looking, provided it then writes
    /// mutations so that a taken id is detected (a unique key) and runs the batch
    /// again knowing it is taken.
    fn mutation_taken(&mut self, id: MutationId) -> Lookup<bool>;
    /// What an idempotency key of the tenant recorded.
    fn idempotency(&mut self, tenant: &TenantId, key: &IdempotencyKey) -> Lookup<Option<Recorded>>;
    /// A system account's balance; zero when it was never used.
    fn account(&mut self, tenant: &TenantId, unit: &Unit, account: SystemAccount) -> Lookup<i64>;
    /// The ids of the wallet's pending holds (asked by the sweep only).
    fn pending_holds(&mut self, tenant: &TenantId, wallet: &WalletId) -> Lookup<Vec<HoldId>>;
    /// The value of a setting of the tenant.
    fn setting(&mut self, tenant: &TenantId, key: &SettingKey) -> Lookup<Option<String>>;
    /// The version of a record of the tenant, if there is one (asked by record steps
    /// of linked requests). A backend whose batches run concurrently holds the record
    /// locked until the batch ends.
    fn record_version(&mut self, tenant: &TenantId, kind: &str, key: &str) -> Lookup<Option<i64>>;

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
    pub mutations: BTreeSet<MutationId>,
    pub idempotency: BTreeSet<(TenantId, IdempotencyKey)>,
    pub accounts: BTreeSet<(TenantId, Unit, SystemAccount)>,
    pub pending_holds: BTreeSet<(TenantId, WalletId)>,
    pub settings: BTreeSet<(TenantId, SettingKey)>,
    pub records: BTreeSet<RecordKey>,
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
            + self.settings.len()
            + self.records.len()
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

/// Everything a batch or a sweep changes. A backend writes it in this order of
/// fields (so that every row exists before a row that refers to it), then commits.
/// Within each list the order is fixed: the order of the requests, or of the keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub tenants: Vec<NewTenant>,
    pub customers: Vec<Customer>,
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
    pub keys: Vec<KeyRecord>,
    /// Ordered by tenant, unit and account.
    pub accounts: Vec<AccountChange>,
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

/// What an idempotency key recorded: the fingerprint of the request, and which
/// entities its answer showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub fingerprint: Fingerprint,
    pub result: RecordedResult,
}

/// The entities a recorded answer showed. A wallet answer keeps the status, balance,
/// held and update time it first showed; everything else is read again on a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedResult {
    Tenant {
        tenant: TenantId,
        admin_key: ApiKeyName,
    },
    ApiKey(ApiKeyName),
    Customer(CustomerId),
    Wallet {
        id: WalletId,
        status: WalletStatus,
        balance: i64,
        held: i64,
        updated_at: Timestamp,
    },
    Mutation(MutationId),
    Transfer {
        debit: MutationId,
        credit: MutationId,
    },
    Hold {
        hold: HoldId,
        /// The commit or release mutation; `None` for a placement.
        mutation: Option<MutationId>,
    },
    /// A setting put; whether it was created (the value is read again, if ever).
    Setting {
        created: bool,
    },
    /// Records written and jobs queued, no ledger change.
    Records,
}

/// A [`RecordedResult`] as the columns of an idempotency record, the same in every
/// backend: a kind, one or two ids as text, and a wallet answer's status, balance,
/// held and update time (in microseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedColumns {
    pub kind: &'static str,
    pub id: String,
    pub id2: Option<String>,
    pub wallet: Option<(&'static str, i64, i64, i64)>,
}

impl RecordedResult {
    /// What the answer `done` showed.
    pub fn of(done: &Done) -> Self {
        match done {
            Done::Tenant { tenant, admin_key } => Self::Tenant {
                tenant: tenant.clone(),
                admin_key: admin_key.name.clone(),
            },
            Done::ApiKey(k) => Self::ApiKey(k.name.clone()),
            Done::Customer(c) => Self::Customer(c.id.clone()),
            Done::Wallet(w) => Self::Wallet {
                id: w.id.clone(),
                status: w.status,
                balance: w.balance,
                held: w.held,
                updated_at: w.updated_at,
            },
            Done::Mutation(m) => Self::Mutation(m.id),
            Done::Transfer(t) => Self::Transfer {
                debit: t.debit.id,
                credit: t.credit.id,
            },
            Done::Hold { hold, mutation } => Self::Hold {
                hold: hold.id,
                mutation: mutation.as_ref().map(|m| m.id),
            },
            Done::Setting { created } => Self::Setting { created: *created },
            Done::Records => Self::Records,
        }
    }

    pub fn to_columns(&self) -> RecordedColumns {
        let plain = |kind, id: String, id2: Option<String>| RecordedColumns {
            kind,
            id,
            id2,
            wallet: None,
        };
        match self {
            Self::Tenant { tenant, admin_key } => {
                plain("tenant", tenant.to_string(), Some(admin_key.to_string()))
            }
            Self::ApiKey(name) => plain("api_key", name.to_string(), None),
            Self::Customer(id) => plain("customer", id.to_string(), None),
            Self::Wallet {
                id,
                status,
                balance,
                held,
                updated_at,
            } => RecordedColumns {
                kind: "wallet",
                id: id.to_string(),
                id2: None,
                wallet: Some((status.as_str(), *balance, *held, updated_at.as_micros())),
            },
            Self::Mutation(id) => plain("mutation", id.to_string(), None),
            Self::Transfer { debit, credit } => {
                plain("transfer", debit.to_string(), Some(credit.to_string()))
            }
            Self::Hold { hold, mutation } => plain(
                "hold",
                hold.to_string(),
                mutation.as_ref().map(ToString::to_string),
            ),
            Self::Setting { created } => plain(
                "setting",
                if *created { "created" } else { "updated" }.to_owned(),
                None,
            ),
            Self::Records => plain("records", String::new(), None),
        }
    }

    /// Decodes [`RecordedResult::to_columns`]; the error says what does not decode.
    pub fn from_columns(
        kind: &str,
        id: &str,
        id2: Option<&str>,
        wallet: Option<(&str, i64, i64, i64)>,
    ) -> Result<Self, String> {
        let uuid = |s: &str| Uuid::parse_str(s).map_err(|e| format!("recorded id {s:?}: {e}"));
        let second = || id2.ok_or_else(|| format!("recorded {kind} lacks its second id"));
        let text = |what: &str, e: &dyn std::fmt::Display| format!("recorded {what}: {e}");
        Ok(match kind {
            "tenant" => Self::Tenant {
                tenant: TenantId::parse(id).map_err(|e| text("tenant", &e))?,
                admin_key: ApiKeyName::parse(second()?).map_err(|e| text("key name", &e))?,
            },
            "api_key" => Self::ApiKey(ApiKeyName::parse(id).map_err(|e| text("key name", &e))?),
            "customer" => Self::Customer(CustomerId::parse(id).map_err(|e| text("customer", &e))?),
            "wallet" => {
                let (status, balance, held, updated_at) =
                    wallet.ok_or_else(|| "recorded wallet lacks its state".to_owned())?;
                Self::Wallet {
                    id: WalletId::parse(id).map_err(|e| text("wallet", &e))?,
                    status: WalletStatus::parse(status)
                        .ok_or_else(|| format!("recorded wallet status {status:?}"))?,
                    balance,
                    held,
                    updated_at: Timestamp::from_micros(updated_at),
                }
            }
            "mutation" => Self::Mutation(MutationId(uuid(id)?)),
            "transfer" => Self::Transfer {
                debit: MutationId(uuid(id)?),
                credit: MutationId(uuid(second()?)?),
            },
            "hold" => Self::Hold {
                hold: HoldId(uuid(id)?),
                mutation: id2.map(uuid).transpose()?.map(MutationId),
            },
            "setting" => Self::Setting {
                created: match id {
                    "created" => true,
                    "updated" => false,
                    other => return Err(format!("recorded setting outcome {other:?}")),
                },
            },
            "records" => Self::Records,
            other => return Err(format!("recorded result kind {other:?}")),
        })
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
    if !exec.missing.is_empty() {
        return Ok(Run::Missing(Box::new(exec.missing)));
    }
    for (index, tenant, why) in &exec.broken {
        tracing::error!(request = index, %tenant, "request failed and changed nothing: {why}");
    }
    let changes = exec.changes();
    Ok(Run::Done(Applied { answers, changes }))
}

/// Runs a sweep over the due holds and wallets the backend found (each list at most
/// [`crate::SWEEP_BATCH_MAX`] long, holds in order of expiry, wallets in order of
/// `valid_until`); `new_id` gives the ids of the mutations it makes. Holds no longer
/// pending and wallets no longer due are passed over. A row that cannot be used fails
/// the whole sweep with [`StoreError::Internal`].
pub fn sweep(
    rows: &mut dyn Rows,
    due_holds: &[HoldId],
    due_wallets: &[(TenantId, WalletId)],
    now: Timestamp,
    new_id: &mut dyn FnMut() -> MutationId,
) -> Result<Run<Swept>, StoreError> {
    let mut exec = Exec::new(rows, now, due_holds.len() + due_wallets.len());
    let mut report = SweepReport::default();
    let fail = |why: String| StoreError::Internal(format!("sweep: {why}"));
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
    if !exec.missing.is_empty() {
        return Ok(Run::Missing(Box::new(exec.missing)));
    }
    let changes = exec.changes();
    Ok(Run::Done(Swept { report, changes }))
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
    mutation_ids: HashMap<MutationId, MutationSlot>,
    idempotency: Nested<TenantId, IdempotencyKey, Option<Recorded>>,
    account_ix: Nested<TenantId, Unit, [Option<usize>; 4]>,
    accounts: Vec<AccountSlot>,
    settings: Nested<TenantId, SettingKey, Option<String>>,

    new_tenants: Vec<NewTenant>,
    new_customers: Vec<Customer>,
    new_api_keys: Vec<ApiKey>,
    mutations: Vec<Mutation>,
    keys: Vec<KeyRecord>,
    new_settings: Vec<SettingChange>,
    records: HashMap<RecordKey, linked::RecordSlot>,
    jobs: Vec<NewJob>,
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
            new_tenants: Vec::new(),
            new_customers: Vec::new(),
            new_api_keys: Vec::new(),
            mutations: Vec::with_capacity(requests),
            keys: Vec::new(),
            new_settings: Vec::new(),
            records: HashMap::new(),
            jobs: Vec::new(),
            journal: None,
        }
    }

    // -----------------------------------------------------------------------------
    // Memoized lookups, with the batch's own changes laid over the backend's rows.

    fn tenant(&mut self, id: &TenantId) -> Lookup<Option<bool>> {
        if let Some(&known) = self.tenants.get(id) {
            return Ok(known);
        }
        let found = noted(self.rows.tenant(id), &mut self.missing.tenants, || {
            id.clone()
        })?;
        self.tenants.insert(id.clone(), found);
        Ok(found)
    }

    fn customer(&mut self, tenant: &TenantId, id: &CustomerId) -> Lookup<Option<&Customer>> {
        let rows = &mut *self.rows;
        let result = nested(&mut self.customers, tenant, id, || {
            rows.customer(tenant, id)
        });
        noted(result, &mut self.missing.customers, || {
            (tenant.clone(), id.clone())
        })
        .map(|c| c.as_ref())
    }

    fn api_key(&mut self, tenant: &TenantId, name: &ApiKeyName) -> Lookup<Option<&ApiKey>> {
        let rows = &mut *self.rows;
        let result = nested(&mut self.api_keys, tenant, name, || {
            rows.api_key(tenant, name)
        });
        noted(result, &mut self.missing.api_keys, || {
            (tenant.clone(), name.clone())
        })
        .map(|k| k.as_ref())
    }

    fn secret_taken(&mut self, secret: &[u8; 32]) -> Lookup<bool> {
        if let Some(&taken) = self.secrets.get(secret) {
            return Ok(taken);
        }
        let taken = noted(
            self.rows.secret_taken(secret),
            &mut self.missing.secrets,
            || *secret,
        )?;
        self.secrets.insert(*secret, taken);
        Ok(taken)
    }

    /// The index of the wallet in [`Exec::wallets`], if it exists.
    fn wallet_ix(&mut self, tenant: &TenantId, id: &WalletId) -> Lookup<Option<usize>> {
        if let Some(&known) = self.wallet_ix.get(tenant).and_then(|m| m.get(id)) {
            return Ok(known);
        }
        let found = noted(
            self.rows.wallet(tenant, id),
            &mut self.missing.wallets,
            || (tenant.clone(), id.clone()),
        )?;
        let ix = found.map(|wallet| self.add_wallet(wallet, false));
        remember(&mut self.wallet_ix, tenant, id, ix);
        Ok(ix)
    }

    fn add_wallet(&mut self, wallet: Wallet, new: bool) -> usize {
        self.wallets.push(WalletSlot {
            wallet,
            new,
            dirty: new,
        });
        self.wallets.len() - 1
    }

    /// The index of the wallet if it exists and the caller may see it.
    fn visible_wallet(
        &mut self,
        tenant: &TenantId,
        id: &WalletId,
        only: Option<&CustomerId>,
    ) -> Result<usize, Stop> {
        match self.wallet_ix(tenant, id)? {
            Some(ix) if only.is_none_or(|only| *only == self.wallets[ix].wallet.customer) => Ok(ix),
            _ => Err(Refusal::WalletNotFound.into()),
        }
    }

    /// The index of the hold in [`Exec::holds`], if it exists.
    fn hold_ix(&mut self, id: HoldId) -> Lookup<Option<usize>> {
        if let Some(&known) = self.hold_ix.get(&id) {
            return Ok(known);
        }
        let found = noted(self.rows.hold(id), &mut self.missing.holds, || id)?;
        let ix = found.map(|hold| self.add_hold(hold, false));
        self.hold_ix.insert(id, ix);
        Ok(ix)
    }

    fn add_hold(&mut self, hold: Hold, new: bool) -> usize {
        self.holds.push(HoldSlot {
            hold,
            new,
            dirty: new,
        });
        self.holds.len() - 1
    }

    fn mutation_taken(&mut self, id: MutationId) -> Lookup<bool> {
        if let Some(slot) = self.mutation_ids.get(&id) {
            return Ok(!matches!(
                slot,
                MutationSlot::Absent | MutationSlot::Untaken
            ));
        }
        let taken = noted(
            self.rows.mutation_taken(id),
            &mut self.missing.mutations,
            || id,
        )?;
        let slot = if taken {
            MutationSlot::Taken
        } else {
            MutationSlot::Untaken
        };
        self.mutation_ids.insert(id, slot);
        Ok(taken)
    }

    /// The mutation with this id, stored or made by this batch.
    fn mutation(&mut self, id: MutationId) -> Lookup<Option<Mutation>> {
        match self.mutation_ids.get(&id) {
            Some(MutationSlot::Absent) => return Ok(None),
            Some(MutationSlot::Stored(m)) => return Ok(Some(Mutation::clone(m))),
            Some(&MutationSlot::New(ix)) => return Ok(self.mutations.get(ix).cloned()),
            Some(MutationSlot::Untaken | MutationSlot::Taken) | None => {}
        }
        let found = noted(self.rows.mutation(id), &mut self.missing.mutations, || id)?;
        let slot = match &found {
            Some(m) => MutationSlot::Stored(Box::new(m.clone())),
            None => MutationSlot::Absent,
        };
        self.mutation_ids.insert(id, slot);
        Ok(found)
    }

    /// An id from the caller's generator of fresh ids, taken as free without asking the
    /// rows (a generated id that was taken after all breaks the store's unique key).
    fn fresh_id(&mut self, new_id: &mut dyn FnMut() -> MutationId) -> MutationId {
        let id = new_id();
        self.mutation_ids.insert(id, MutationSlot::Untaken);
        id
    }

    /// Adds a new mutation; returns its index.
    fn add_mutation(&mut self, mutation: Mutation) -> usize {
        let ix = self.mutations.len();
        self.mutation_ids.insert(mutation.id, MutationSlot::New(ix));
        self.mutations.push(mutation);
        ix
    }

    fn recorded(&mut self, tenant: &TenantId, key: &IdempotencyKey) -> Lookup<Option<&Recorded>> {
        let rows = &mut *self.rows;
        let result = nested(&mut self.idempotency, tenant, key, || {
            rows.idempotency(tenant, key)
        });
        noted(result, &mut self.missing.idempotency, || {
            (tenant.clone(), key.clone())
        })
        .map(|r| r.as_ref())
    }

    fn setting(&mut self, tenant: &TenantId, key: &SettingKey) -> Lookup<Option<&String>> {
        let rows = &mut *self.rows;
        let result = nested(&mut self.settings, tenant, key, || {
            rows.setting(tenant, key)
        });
        noted(result, &mut self.missing.settings, || {
            (tenant.clone(), key.clone())
        })
        .map(|v| v.as_ref())
    }

    /// The index of the system account in [`Exec::accounts`].
    fn account_ix(
        &mut self,
        tenant: &TenantId,
        unit: &Unit,
        account: SystemAccount,
    ) -> Lookup<usize> {
        let k = account_index(account);
        if let Some(ix) = self
            .account_ix
            .get(tenant)
            .and_then(|m| m.get(unit))
            .and_then(|slots| slots[k])
        {
            return Ok(ix);
        }
        let read = noted(
            self.rows.account(tenant, unit, account),
            &mut self.missing.accounts,
            || (tenant.clone(), unit.clone(), account),
        )?;
        self.accounts.push(AccountSlot {
            tenant: tenant.clone(),
            unit: unit.clone(),
            account,
            read,
            balance: read,
        });
        let ix = self.accounts.len() - 1;
        match self
            .account_ix
            .get_mut(tenant)
            .and_then(|m| m.get_mut(unit))
        {
            Some(slots) => slots[k] = Some(ix),
            None => {
                let mut slots = [None; 4];
                slots[k] = Some(ix);
                remember(&mut self.account_ix, tenant, unit, slots);
            }
        }
        Ok(ix)
    }

    /// Looks up, for their misses only, the rows a request names directly, so that one
    /// run learns every such key of the batch rather than one per run.
    fn prefetch(&mut self, request: &Request) -> Result<(), Gap> {
        fn touch<T>(result: Lookup<T>) -> Result<(), Gap> {
            match result {
                Err(Gap::Failed(e)) => Err(Gap::Failed(e)),
                _ => Ok(()),
            }
        }
        let tenant = &request.tenant;
        touch(self.tenant(tenant))?;
        if let Some((key, _)) = &request.idempotency {
            touch(self.recorded(tenant, key))?;
        }
        self.prefetch_command(tenant, &request.command)?;
        for step in request.before.iter().chain(&request.after) {
            match step {
                Step::Command(command) => self.prefetch_command(tenant, command)?,
                Step::PutRecord { kind, key, .. } | Step::DeleteRecord { kind, key } => {
                    let id = (tenant.clone(), kind.clone(), key.clone());
                    if !self.records.contains_key(&id) {
                        match self.rows.record_version(tenant, kind, key) {
                            Err(Gap::Miss) => {
                                self.missing.records.insert(id);
                            }
                            Err(Gap::Failed(e)) => return Err(Gap::Failed(e)),
                            _ => {}
                        }
                    }
                }
                Step::EnqueueJob { .. } => {}
            }
        }
        Ok(())
    }

    /// [`Exec::prefetch`] for one command.
    fn prefetch_command(&mut self, tenant: &TenantId, command: &Command) -> Result<(), Gap> {
        fn touch<T>(result: Lookup<T>) -> Result<(), Gap> {
            match result {
                Err(Gap::Failed(e)) => Err(Gap::Failed(e)),
                _ => Ok(()),
            }
        }
        match command {
            Command::CreateTenant {
                tenant: new,
                admin_key,
                ..
            } => {
                touch(self.tenant(new))?;
                touch(self.secret_taken(&admin_key.secret_sha256))?;
            }
            Command::CreateApiKey { key } => {
                touch(self.api_key(tenant, &key.name))?;
                touch(self.secret_taken(&key.secret_sha256))?;
                if let Some(customer) = &key.customer {
                    touch(self.customer(tenant, customer))?;
                }
            }
            Command::CreateCustomer { id, .. } | Command::EnsureCustomer { id, .. } => {
                touch(self.customer(tenant, id))?
            }
            Command::PutSetting { key, .. } => touch(self.setting(tenant, key))?,
            Command::Records => {}
            Command::CreateWallet { wallet } | Command::EnsureWallet { wallet } => {
                touch(self.customer(tenant, &wallet.customer))?;
                touch(self.wallet_ix(tenant, &wallet.id))?;
            }
            Command::SetWalletStatus { wallet, .. } => touch(self.wallet_ix(tenant, wallet))?,
            Command::Post { id, wallet, .. } => {
                touch(self.wallet_ix(tenant, wallet))?;
                touch(self.mutation_taken(*id))?;
            }
            Command::Transfer {
                debit_id,
                credit_id,
                from,
                to,
                ..
            } => {
                touch(self.wallet_ix(tenant, from))?;
                touch(self.wallet_ix(tenant, to))?;
                touch(self.mutation_taken(*debit_id))?;
                touch(self.mutation_taken(*credit_id))?;
            }
            Command::PlaceHold { id, wallet, .. } | Command::PlaceCreditHold { id, wallet, .. } => {
                touch(self.wallet_ix(tenant, wallet))?;
                touch(self.hold_ix(*id))?;
            }
            Command::CommitHold {
                hold, mutation_id, ..
            }
            | Command::ReleaseHold { hold, mutation_id } => {
                touch(self.hold_ix(*hold))?;
                touch(self.mutation_taken(*mutation_id))?;
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------
    // Requests.

    /// One request: its answer, or why it has none in this run.
    fn request(&mut self, request: &Request) -> Result<Answer, Gap> {
        if self.rows.may_miss() {
            let missing_before = self.missing.len();
            self.prefetch(request)?;
            if self.missing.len() > missing_before {
                return Err(Gap::Miss);
            }
        }
        let refused = |refusal| Ok(Answer::Outcome(Outcome::Refused(refusal)));
        if self.tenant(&request.tenant)?.is_none() {
            return refused(Refusal::TenantNotFound);
        }
        if let Some((key, fingerprint)) = &request.idempotency
            && let Some(recorded) = self.recorded(&request.tenant, key)?
        {
            if recorded.fingerprint != *fingerprint {
                return refused(Refusal::IdempotencyConflict);
            }
            let result = recorded.result.clone();
            let done = self.replay(&request.tenant, &result)?;
            // A key of another customer of the tenant must not reveal what it did.
            if !visible(&done, request.customer_only.as_ref()) {
                return refused(Refusal::IdempotencyConflict);
            }
            return Ok(Answer::Outcome(Outcome::Done {
                done,
                replayed: true,
            }));
        }
        if request.customer_only.is_some() && !request.command.allowed_for_customer_key() {
            return refused(Refusal::Forbidden);
        }
        let made = if request.is_linked() {
            self.linked(request)
        } else {
            self.execute(
                &request.tenant,
                request.customer_only.as_ref(),
                &request.command,
            )
        };
        let made = match made {
            Ok(made) => made,
            Err(Stop::Refused(refusal)) => return refused(refusal),
            Err(Stop::Gap(gap)) => return Err(gap),
            Err(Stop::Bug(what)) => {
                return Err(Gap::Broken(format!("a malformed request: {what}")));
            }
        };
        if let Some((key, fingerprint)) = &request.idempotency {
            let recorded = Recorded {
                fingerprint: *fingerprint,
                result: self.recorded_result(&made),
            };
            self.keys.push(KeyRecord {
                tenant: request.tenant.clone(),
                key: key.clone(),
                recorded: recorded.clone(),
                created_at: self.now,
            });
            remember(&mut self.idempotency, &request.tenant, key, Some(recorded));
        }
        Ok(Answer::Made(made))
    }

    /// What an idempotency key records of what a command made.
    fn recorded_result(&self, made: &Made) -> RecordedResult {
        let id = |ix: usize| self.mutations[ix].id;
        match made {
            Made::Done(done) => RecordedResult::of(done),
            &Made::Mutation(ix) => RecordedResult::Mutation(id(ix)),
            &Made::Transfer { debit, credit, .. } => RecordedResult::Transfer {
                debit: id(debit),
                credit: id(credit),
            },
            Made::Hold { hold, mutation } => RecordedResult::Hold {
                hold: hold.id,
                mutation: Some(id(*mutation)),
            },
        }
    }

    fn execute(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        command: &Command,
    ) -> Result<Made, Stop> {
        match command {
            Command::CreateTenant {
                tenant: new,
                name,
                admin_key,
            } => self
                .create_tenant(tenant, new, name, admin_key)
                .map(Made::Done),
            Command::CreateApiKey { key } => self.create_api_key(tenant, key).map(Made::Done),
            Command::CreateCustomer { id, name, link } => self
                .create_customer(tenant, only, id, name, link, false)
                .map(Made::Done),
            Command::EnsureCustomer { id, name, link } => self
                .create_customer(tenant, only, id, name, link, true)
                .map(Made::Done),
            Command::CreateWallet { wallet } => self
                .create_wallet(tenant, only, wallet, false)
                .map(Made::Done),
            Command::EnsureWallet { wallet } => self
                .create_wallet(tenant, only, wallet, true)
                .map(Made::Done),
            Command::SetWalletStatus { wallet, status } => {
                let ix = self.visible_wallet(tenant, wallet, only)?;
                self.save_wallet(ix);
                let w = &mut self.wallets[ix];
                if w.wallet.status != *status {
                    w.wallet.status = *status;
                    w.touch(self.now);
                }
                Ok(Made::Done(Done::Wallet(w.wallet.clone())))
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
                .map(Made::Mutation),
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
                (from, to),
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
            }
            | Command::PlaceCreditHold {
                id,
                wallet,
                amount,
                reference,
                expires_at,
            } => {
                let direction = match command {
                    Command::PlaceCreditHold { .. } => HoldDirection::Credit,
                    _ => HoldDirection::Debit,
                };
                self.place_hold(
                    tenant,
                    only,
                    (*id, direction),
                    wallet,
                    *amount,
                    reference,
                    *expires_at,
                )
                .map(Made::Done)
            }
            Command::CommitHold {
                hold,
                amount,
                mutation_id,
                reference,
            } => self.settle_hold(
                tenant,
                only,
                *hold,
                Settle::Commit(*amount),
                *mutation_id,
                reference.as_ref(),
            ),
            Command::ReleaseHold { hold, mutation_id } => {
                self.settle_hold(tenant, only, *hold, Settle::Release, *mutation_id, None)
            }
            Command::PutSetting { key, value } => {
                self.put_setting(tenant, key, value).map(Made::Done)
            }
            Command::Records => Ok(Made::Done(Done::Records)),
        }
    }

    /// Creates a customer; one that exists is refused, or answered as it is when
    /// `existing_ok`.
    fn create_customer(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        id: &CustomerId,
        name: &str,
        link: &str,
        existing_ok: bool,
    ) -> Result<Done, Stop> {
        if only.is_some_and(|only| only != id) {
            return Err(Refusal::Forbidden.into());
        }
        if link.len() > LINK_LEN_MAX {
            return Err(Stop::Bug(format!(
                "a customer link of {} bytes, over {LINK_LEN_MAX}",
                link.len()
            )));
        }
        if let Some(existing) = self.customer(tenant, id)? {
            return match existing_ok {
                true => Ok(Done::Customer(existing.clone())),
                false => Err(Refusal::CustomerExists.into()),
            };
        }
        let customer = Customer {
            tenant: tenant.clone(),
            id: id.clone(),
            name: name.to_owned(),
            link: link.to_owned(),
            created_at: self.now,
        };
        self.new_customers.push(customer.clone());
        remember(&mut self.customers, tenant, id, Some(customer.clone()));
        self.journal(|_| linked::Undo::NewCustomer(tenant.clone(), id.clone()));
        Ok(Done::Customer(customer))
    }

    fn put_setting(
        &mut self,
        tenant: &TenantId,
        key: &SettingKey,
        value: &str,
    ) -> Result<Done, Stop> {
        if value.len() > SETTING_VALUE_LEN_MAX {
            return Err(Stop::Bug(format!(
                "a setting value of {} bytes, over {SETTING_VALUE_LEN_MAX}",
                value.len()
            )));
        }
        let created = self.setting(tenant, key)?.is_none();
        remember(&mut self.settings, tenant, key, Some(value.to_owned()));
        match self
            .new_settings
            .iter_mut()
            .find(|s| s.tenant == *tenant && s.key == *key)
        {
            // Put earlier in this batch: the batch writes the last value, and the
            // setting counts as created when it was before the batch.
            Some(earlier) => earlier.value = value.to_owned(),
            None => self.new_settings.push(SettingChange {
                tenant: tenant.clone(),
                key: key.clone(),
                value: value.to_owned(),
                created,
                updated_at: self.now,
            }),
        }
        Ok(Done::Setting { created })
    }

    fn create_tenant(
        &mut self,
        operator: &TenantId,
        new: &TenantId,
        name: &str,
        admin_key: &NewApiKey,
    ) -> Result<Done, Stop> {
        if self.tenant(operator)? != Some(true) {
            return Err(Refusal::Forbidden.into());
        }
        // A new tenant has no customers yet.
        if admin_key.customer.is_some() {
            return Err(Refusal::CustomerNotFound.into());
        }
        if self.secret_taken(&admin_key.secret_sha256)? {
            return Err(Refusal::ApiKeyExists.into());
        }
        if self.tenant(new)?.is_some() {
            return Err(Refusal::TenantExists.into());
        }
        self.new_tenants.push(NewTenant {
            id: new.clone(),
            name: name.to_owned(),
            operator: false,
            created_at: self.now,
        });
        self.tenants.insert(new.clone(), Some(false));
        let key = self.add_api_key(new, admin_key);
        Ok(Done::Tenant {
            tenant: new.clone(),
            admin_key: key,
        })
    }

    fn create_api_key(&mut self, tenant: &TenantId, key: &NewApiKey) -> Result<Done, Stop> {
        if let Some(customer) = &key.customer
            && self.customer(tenant, customer)?.is_none()
        {
            return Err(Refusal::CustomerNotFound.into());
        }
        if self.api_key(tenant, &key.name)?.is_some() || self.secret_taken(&key.secret_sha256)? {
            return Err(Refusal::ApiKeyExists.into());
        }
        Ok(Done::ApiKey(self.add_api_key(tenant, key)))
    }

    fn add_api_key(&mut self, tenant: &TenantId, key: &NewApiKey) -> ApiKey {
        let made = ApiKey {
            tenant: tenant.clone(),
            name: key.name.clone(),
            secret_sha256: key.secret_sha256,
            scopes: key.scopes,
            customer: key.customer.clone(),
            created_at: self.now,
        };
        self.new_api_keys.push(made.clone());
        self.secrets.insert(key.secret_sha256, true);
        self.api_keys
            .entry(tenant.clone())
            .or_default()
            .insert(key.name.clone(), Some(made.clone()));
        made
    }

    fn create_wallet(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        new: &NewWallet,
        existing_ok: bool,
    ) -> Result<Done, Stop> {
        if only.is_some_and(|only| *only != new.customer)
            || self.customer(tenant, &new.customer)?.is_none()
        {
            return Err(Refusal::CustomerNotFound.into());
        }
        if let Some(ix) = self.wallet_ix(tenant, &new.id)? {
            let existing = &self.wallets[ix].wallet;
            return match existing_ok && existing.customer == new.customer {
                true => Ok(Done::Wallet(existing.clone())),
                false => Err(Refusal::WalletExists.into()),
            };
        }
        // The edge checks the ceiling as it checks the floor.
        if new.ceiling.is_some_and(|c| !NewWallet::ceiling_is_valid(c)) {
            return Err(Stop::Bug(format!(
                "a wallet with the ceiling {:?}",
                new.ceiling
            )));
        }
        let wallet = Wallet::open(tenant.clone(), new.clone(), self.now);
        let ix = self.add_wallet(wallet.clone(), true);
        remember(&mut self.wallet_ix, tenant, &wallet.id, Some(ix));
        self.journal(|_| linked::Undo::NewWallet(tenant.clone(), wallet.id.clone(), ix));
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
    ) -> Result<usize, Stop> {
        // The other kinds have rules of their own, and top-ups and debits move a
        // positive amount; the edge never builds anything else, and the rules assert it.
        match kind {
            MutationKind::TopUp | MutationKind::Debit if amount.get() <= 0 => {
                return Err(Stop::Bug(
                    "a top-up or debit of a non-positive amount".to_owned(),
                ));
            }
            MutationKind::TopUp | MutationKind::Debit | MutationKind::Adjustment => {}
            _ => {
                return Err(Stop::Bug(
                    "a post of a kind with rules of its own".to_owned(),
                ));
            }
        }
        let counter = counter_account(kind)?;
        let now = self.now;
        let wi = self.visible_wallet(tenant, wallet, only)?;
        let w = &self.wallets[wi].wallet;
        let posting = post(w, kind, amount, now)?;
        let mutation = Mutation {
            tenant: tenant.clone(),
            id,
            wallet: w.id.clone(),
            customer: w.customer.clone(),
            unit: w.unit.clone(),
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
        let ai = self.account_ix(tenant, &mutation.unit, counter)?;
        let account_after = add_to_balance(self.accounts[ai].balance, -posting.amount)?;
        if self.mutation_taken(id)? {
            return Err(Refusal::MutationExists.into());
        }
        self.save_account(ai);
        self.save_wallet(wi);
        self.accounts[ai].balance = account_after;
        let w = &mut self.wallets[wi];
        w.wallet.balance = posting.balance_after;
        w.touch(now);
        Ok(self.add_mutation(mutation))
    }

    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        ids: TransferIds,
        (from, to): (&WalletId, &WalletId),
        amount: Amount,
        reference: &Reference,
        occurred_at: Option<Timestamp>,
    ) -> Result<Made, Stop> {
        if amount.get() <= 0 {
            return Err(Stop::Bug("a transfer of a non-positive amount".to_owned()));
        }
        let now = self.now;
        let si = self.visible_wallet(tenant, from, only)?;
        let ti = self.visible_wallet(tenant, to, only)?;
        let (source, target) = (&self.wallets[si].wallet, &self.wallets[ti].wallet);
        let plan = transfer(source, target, amount, now)?;
        if ids.debit == ids.credit
            || self.mutation_taken(ids.debit)?
            || self.mutation_taken(ids.credit)?
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
        let (source, target) = (&self.wallets[si].wallet, &self.wallets[ti].wallet);
        let debit = leg(
            source,
            ids.debit,
            MutationKind::TransferOut,
            -amount.get(),
            plan.from_after,
            target,
        );
        let credit = leg(
            target,
            ids.credit,
            MutationKind::TransferIn,
            amount.get(),
            plan.to_after,
            source,
        );
        for (ix, balance) in [(si, plan.from_after), (ti, plan.to_after)] {
            self.save_wallet(ix);
            let w = &mut self.wallets[ix];
            w.wallet.balance = balance;
            w.touch(now);
        }
        Ok(Made::Transfer {
            id: ids.transfer,
            debit: self.add_mutation(debit),
            credit: self.add_mutation(credit),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn place_hold(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        (id, direction): (HoldId, HoldDirection),
        wallet: &WalletId,
        amount: Amount,
        reference: &Reference,
        expires_at: Option<Timestamp>,
    ) -> Result<Done, Stop> {
        if amount.get() <= 0 {
            return Err(Stop::Bug("a hold of a non-positive amount".to_owned()));
        }
        let now = self.now;
        let wi = self.visible_wallet(tenant, wallet, only)?;
        let w = &self.wallets[wi].wallet;
        let reserved = match direction {
            HoldDirection::Debit => Reserved {
                held: place_hold(w, amount, now)?,
                incoming: w.incoming,
            },
            HoldDirection::Credit => Reserved {
                held: w.held,
                incoming: place_credit_hold(w, amount, now)?,
            },
        };
        let hold = Hold {
            tenant: tenant.clone(),
            id,
            wallet: w.id.clone(),
            customer: w.customer.clone(),
            direction,
            amount: amount.get(),
            committed_amount: None,
            status: HoldStatus::Pending,
            reference: reference.clone(),
            expires_at,
            created_at: now,
            settled_at: None,
        };
        if self.hold_ix(id)?.is_some() {
            return Err(Refusal::HoldExists.into());
        }
        self.save_wallet(wi);
        let w = &mut self.wallets[wi];
        w.wallet.held = reserved.held;
        w.wallet.incoming = reserved.incoming;
        w.touch(now);
        let ix = self.add_hold(hold.clone(), true);
        self.hold_ix.insert(id, Some(ix));
        self.journal(|_| linked::Undo::NewHold(id, ix));
        Ok(Done::Hold {
            hold,
            mutation: None,
        })
    }

    /// Commits or releases a pending hold on request.
    fn settle_hold(
        &mut self,
        tenant: &TenantId,
        only: Option<&CustomerId>,
        id: HoldId,
        settle: Settle,
        mutation_id: MutationId,
        reference: Option<&Reference>,
    ) -> Result<Made, Stop> {
        let hi = match self.hold_ix(id)? {
            Some(hi)
                if self.holds[hi].hold.tenant == *tenant
                    && only.is_none_or(|only| *only == self.holds[hi].hold.customer) =>
            {
                hi
            }
            _ => return Err(Refusal::HoldNotFound.into()),
        };
        // The settling mutation carries the hold's reference, so it reads as the
        // payment the hold was made for, unless the commit names its own.
        let reference = reference.unwrap_or(&self.holds[hi].hold.reference).clone();
        let (hold, mutation) = self.settle(hi, settle, mutation_id, reference)?;
        Ok(Made::Hold { hold, mutation })
    }

    /// Settles the hold at `hi` in [`Exec::holds`]: asks the rules, then posts the
    /// mutation and updates the hold, its wallet and the system account. Nothing
    /// changes when a rule refuses.
    fn settle(
        &mut self,
        hi: usize,
        settle: Settle,
        mutation_id: MutationId,
        reference: Reference,
    ) -> Result<(Hold, usize), Stop> {
        let now = self.now;
        let (tenant, wallet) = {
            let h = &self.holds[hi].hold;
            (h.tenant.clone(), h.wallet.clone())
        };
        let Some(wi) = self.wallet_ix(&tenant, &wallet)? else {
            let id = self.holds[hi].hold.id;
            return Err(Gap::Broken(format!("hold {id} has no wallet")).into());
        };
        let (w, hold) = (&self.wallets[wi].wallet, &self.holds[hi].hold);
        // The rules assert this; on corrupt data the store reports it instead.
        let reserved = match hold.direction {
            HoldDirection::Debit => w.held,
            HoldDirection::Credit => w.incoming,
        };
        if hold.status == HoldStatus::Pending && reserved < hold.amount {
            return Err(Gap::Broken(format!(
                "wallet {} sets aside {reserved} ({}) but its pending hold {} is {}",
                w.id,
                hold.direction.as_str(),
                hold.id,
                hold.amount
            ))
            .into());
        }
        let (kind, amount, balance_after, reserved_after, status, committed) = match settle {
            Settle::Commit(amount) => {
                let plan = commit_hold(w, hold, amount, now)?;
                (
                    plan.kind,
                    plan.posting.amount,
                    plan.posting.balance_after,
                    plan.reserved,
                    HoldStatus::Committed,
                    Some(plan.committed),
                )
            }
            Settle::Release | Settle::Expire => {
                let reserved_after = release_hold(w, hold)?;
                let status = match settle {
                    Settle::Expire => HoldStatus::Expired,
                    _ => HoldStatus::Released,
                };
                let kind = MutationKind::HoldRelease;
                (kind, 0, w.balance, reserved_after, status, None)
            }
        };
        let mutation = Mutation {
            tenant: tenant.clone(),
            id: mutation_id,
            wallet: w.id.clone(),
            customer: w.customer.clone(),
            unit: w.unit.clone(),
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
        let account = match amount {
            0 => None,
            _ => {
                let counter = counter_account(kind)?;
                let ai = self.account_ix(&tenant, &mutation.unit, counter)?;
                Some((ai, add_to_balance(self.accounts[ai].balance, -amount)?))
            }
        };
        if self.mutation_taken(mutation_id)? {
            return Err(Refusal::MutationExists.into());
        }
        if let Some((ai, after)) = account {
            self.save_account(ai);
            self.accounts[ai].balance = after;
        }
        self.save_wallet(wi);
        self.save_hold(hi);
        let w = &mut self.wallets[wi];
        w.wallet.balance = balance_after;
        w.wallet.held = reserved_after.held;
        w.wallet.incoming = reserved_after.incoming;
        w.touch(now);
        let slot = &mut self.holds[hi];
        slot.hold.status = status;
        slot.hold.committed_amount = committed;
        slot.hold.settled_at = Some(now);
        slot.dirty = true;
        let hold = slot.hold.clone();
        Ok((hold, self.add_mutation(mutation)))
    }

    /// Rebuilds the answer an idempotency key recorded, as it was first given.
    fn replay(&mut self, tenant: &TenantId, result: &RecordedResult) -> Lookup<Done> {
        let missing = |what: &dyn std::fmt::Display| {
            Gap::Broken(format!("an idempotency key points at a missing {what}"))
        };
        let mutation = |exec: &mut Self, id: MutationId| match exec.mutation(id)? {
            Some(m) if m.tenant == *tenant => Ok(m),
            _ => Err(missing(&format_args!("mutation {id}"))),
        };
        Ok(match result {
            RecordedResult::Tenant {
                tenant: new,
                admin_key,
            } => Done::Tenant {
                tenant: new.clone(),
                admin_key: self
                    .api_key(new, admin_key)?
                    .cloned()
                    .ok_or_else(|| missing(&format_args!("key {new}/{admin_key}")))?,
            },
            RecordedResult::ApiKey(name) => Done::ApiKey(
                self.api_key(tenant, name)?
                    .cloned()
                    .ok_or_else(|| missing(&format_args!("key {name}")))?,
            ),
            RecordedResult::Customer(id) => Done::Customer(
                self.customer(tenant, id)?
                    .cloned()
                    .ok_or_else(|| missing(&format_args!("customer {id}")))?,
            ),
            RecordedResult::Wallet {
                id,
                status,
                balance,
                held,
                updated_at,
            } => {
                let ix = self
                    .wallet_ix(tenant, id)?
                    .ok_or_else(|| missing(&format_args!("wallet {id}")))?;
                let w = &self.wallets[ix];
                Done::Wallet(Wallet {
                    status: *status,
                    balance: *balance,
                    held: *held,
                    updated_at: *updated_at,
                    ..w.wallet.clone()
                })
            }
            RecordedResult::Mutation(id) => Done::Mutation(mutation(self, *id)?),
            RecordedResult::Transfer { debit, credit } => {
                let debit = mutation(self, *debit)?;
                let credit = mutation(self, *credit)?;
                let id = debit
                    .transfer
                    .ok_or_else(|| missing(&format_args!("transfer of {}", debit.id)))?;
                Done::Transfer(Transfer { id, debit, credit })
            }
            RecordedResult::Hold {
                hold,
                mutation: settled,
            } => {
                let mut h = match self.hold_ix(*hold)?.map(|ix| &self.holds[ix].hold) {
                    Some(h) if h.tenant == *tenant => h.clone(),
                    _ => return Err(missing(&format_args!("hold {hold}"))),
                };
                let settled = settled.map(|id| mutation(self, id)).transpose()?;
                // A commit or release answer shows the hold as it stays; a placement
                // answer showed it pending, whatever became of it since.
                if settled.is_none() {
                    h.status = HoldStatus::Pending;
                    h.committed_amount = None;
                    h.settled_at = None;
                }
                Done::Hold {
                    hold: h,
                    mutation: settled,
                }
            }
            RecordedResult::Setting { created } => Done::Setting { created: *created },
            RecordedResult::Records => Done::Records,
        })
    }

    // -----------------------------------------------------------------------------
    // The sweep.

    /// Expires one due hold; `false` when it is no longer pending or not due.
    fn expire_hold(
        &mut self,
        id: HoldId,
        new_id: &mut dyn FnMut() -> MutationId,
    ) -> Result<bool, Stop> {
        let Some(hi) = self.hold_ix(id)? else {
            return Ok(false);
        };
        let hold = &self.holds[hi].hold;
        let due = hold.expires_at.is_some_and(|t| t <= self.now);
        if hold.status != HoldStatus::Pending || !due {
            return Ok(false);
        }
        let id = self.fresh_id(new_id);
        self.settle(hi, Settle::Expire, id, system_reference("hold expired"))?;
        Ok(true)
    }

    /// Expires one wallet: releases its pending holds, moves a positive balance to the
    /// expiry account and marks it expired. Returns whether it did.
    fn expire_wallet(
        &mut self,
        tenant: &TenantId,
        id: &WalletId,
        new_id: &mut dyn FnMut() -> MutationId,
    ) -> Result<bool, Stop> {
        let now = self.now;
        let pending = noted(
            self.rows.pending_holds(tenant, id),
            &mut self.missing.pending_holds,
            || (tenant.clone(), id.clone()),
        );
        let Some(wi) = self.wallet_ix(tenant, id)? else {
            return Ok(false);
        };
        let Some(expiry) = expire_wallet(&self.wallets[wi].wallet, now) else {
            return Ok(false);
        };
        let unit = self.wallets[wi].wallet.unit.clone();
        // Every hold first, so that a miss is found before anything changes.
        let mut holds = Vec::new();
        for hold_id in pending? {
            if let Some(hi) = self.hold_ix(hold_id)? {
                holds.push(hi);
            }
        }
        // Holds this run placed are pending too (a sweep places none, but the rule
        // is the rule).
        for (hi, slot) in self.holds.iter().enumerate() {
            if slot.new && slot.hold.tenant == *tenant && slot.hold.wallet == *id {
                holds.push(hi);
            }
        }
        holds.sort_unstable();
        holds.dedup();
        holds.retain(|&hi| self.holds[hi].hold.status == HoldStatus::Pending);
        // Check the expiry account first, so that a refusal leaves the wallet untouched.
        let account = match expiry.posting {
            Some(posting) => {
                let ai = self.account_ix(tenant, &unit, SystemAccount::Expiry)?;
                match add_to_balance(self.accounts[ai].balance, -posting.amount) {
                    Ok(after) => Some((posting, ai, after)),
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
        for hi in holds {
            let id = self.fresh_id(new_id);
            self.settle(hi, Settle::Release, id, system_reference("wallet expired"))?;
        }
        if let Some((posting, ai, account_after)) = account {
            let mutation_id = self.fresh_id(new_id);
            let w = &mut self.wallets[wi].wallet;
            let mutation = Mutation {
                tenant: tenant.clone(),
                id: mutation_id,
                wallet: id.clone(),
                customer: w.customer.clone(),
                unit,
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
            w.balance = posting.balance_after;
            self.add_mutation(mutation);
            self.accounts[ai].balance = account_after;
        }
        let w = &mut self.wallets[wi];
        w.wallet.status = WalletStatus::Expired;
        w.touch(now);
        Ok(true)
    }

    // -----------------------------------------------------------------------------
    // The result.

    fn changes(mut self) -> Changes {
        let (records, jobs) = self.take_records_and_jobs();
        let mut wallets_new = Vec::new();
        let mut wallets_changed = Vec::new();
        for slot in self.wallets {
            if slot.new {
                wallets_new.push(slot.wallet);
            } else if slot.dirty {
                wallets_changed.push(slot.wallet);
            }
        }
        let by_key = |a: &Wallet, b: &Wallet| (&a.tenant, &a.id).cmp(&(&b.tenant, &b.id));
        wallets_new.sort_by(by_key);
        wallets_changed.sort_by(by_key);
        let mut holds_new = Vec::new();
        let mut holds_changed = Vec::new();
        for slot in self.holds {
            if slot.new {
                holds_new.push(slot.hold);
            } else if slot.dirty {
                holds_changed.push(slot.hold);
            }
        }
        holds_new.sort_by_key(|h| h.id);
        holds_changed.sort_by_key(|h| h.id);
        let mut accounts: Vec<AccountChange> = self
            .accounts
            .into_iter()
            .filter(|slot| slot.balance != slot.read)
            .map(|slot| AccountChange {
                delta: slot.balance - slot.read,
                balance: slot.balance,
                tenant: slot.tenant,
                unit: slot.unit,
                account: slot.account,
            })
            .collect();
        accounts
            .sort_by(|a, b| (&a.tenant, &a.unit, a.account).cmp(&(&b.tenant, &b.unit, b.account)));
        let mut settings = self.new_settings;
        settings.sort_by(|a, b| (&a.tenant, &a.key).cmp(&(&b.tenant, &b.key)));
        Changes {
            tenants: self.new_tenants,
            customers: self.new_customers,
            api_keys: self.new_api_keys,
            wallets_new,
            wallets_changed,
            holds_new,
            holds_changed,
            mutations: self.mutations,
            keys: self.keys,
            accounts,
            settings,
            records,
            jobs,
        }
    }
}

fn counter_account(kind: MutationKind) -> Result<SystemAccount, Stop> {
    kind.counter_account()
        .ok_or_else(|| Stop::Bug(format!("{} has no system account", kind.as_str())))
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
        Done::Setting { .. } => false,
        // Nothing of another customer shows.
        Done::Records => true,
    }
}
