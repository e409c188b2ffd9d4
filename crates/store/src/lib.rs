//! The storage seam of prepaid: the [`Store`] trait every backend implements, the
//! group-commit [`Engine`] that feeds it, the [`Clock`], and the conformance suite that
//! every backend must pass.
//!
//! The trait is deliberately narrow. All writes go through one method, [`Store::apply`],
//! which takes a batch of ledger requests and must apply them in one durable
//! transaction, loading each affected row, asking the ledger core's rules what to do and
//! writing the result back. Because the decision is taken inside the database
//! transaction on rows the transaction has locked (SQLite's single writer, or
//! PostgreSQL row locks), balance floors hold even when several processes share one
//! database.

mod clock;
pub mod conformance;
mod engine;
pub mod exec;
#[cfg(feature = "model")]
pub mod model;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Engine, EngineConfig, EngineError};

use async_trait::async_trait;
use prepaid_ledger::{
    ApiKey, Customer, CustomerId, Hold, HoldId, Mutation, MutationId, NewApiKey, Outcome, Request,
    TenantId, Timestamp, Unit, Wallet, WalletId,
};

/// An operating failure of a store: the database is unreachable, the disk is full, a
/// row is corrupt. Never a business outcome (those are [`prepaid_ledger::Refusal`]s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or refused service; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, corruption, a full disk.
    #[error("store failure: {0}")]
    Internal(String),
}

/// The most rows any list call returns.
pub const PAGE_SIZE_MAX: usize = 1000;

/// A page of a list ordered by a cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<C>,
}

/// Which mutations to list, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutationQuery {
    pub wallet: Option<WalletId>,
    pub customer: Option<CustomerId>,
    /// The cursor of the last mutation already seen.
    pub after: Option<i64>,
    /// At most [`PAGE_SIZE_MAX`].
    pub limit: usize,
}

/// Which wallets to list, ordered by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalletQuery {
    pub customer: Option<CustomerId>,
    pub after: Option<WalletId>,
    /// At most [`PAGE_SIZE_MAX`].
    pub limit: usize,
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub holds_expired: usize,
    pub wallets_expired: usize,
}

/// The sweep handles at most this many holds and wallets per call, so a backlog never
/// makes one transaction huge; the caller calls again while work remains.
pub const SWEEP_BATCH_MAX: usize = 1000;

/// A breach of a ledger invariant found by [`Store::check_invariants`]. An empty list
/// means the ledger is sound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Breach {
    /// A wallet's balance differs from the sum of its mutations.
    BalanceNotSum {
        tenant: TenantId,
        wallet: WalletId,
        balance: i64,
        sum: i64,
    },
    /// A wallet's `held` differs from the sum of its pending holds.
    HeldNotSum {
        tenant: TenantId,
        wallet: WalletId,
        held: i64,
        sum: i64,
    },
    /// The accounts of one unit do not sum to zero.
    UnitNotZero {
        tenant: TenantId,
        unit: Unit,
        sum: i64,
    },
    /// A wallet with a floor is below it.
    BelowFloor {
        tenant: TenantId,
        wallet: WalletId,
        available: i64,
    },
}

/// A storage backend. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies `batch` in one durable transaction and returns one outcome per request,
    /// in order. When this returns `Ok`, every `Done` outcome is durable. A refused
    /// request changes nothing and never affects its batch-mates. Requests see the
    /// effects of the requests before them in the batch.
    async fn apply(&self, batch: Vec<Request>, now: Timestamp) -> Result<Vec<Outcome>, StoreError>;

    /// On an empty store, creates `tenant` (the operator tenant) with `admin` as its
    /// admin key and returns `true`; otherwise changes nothing and returns `false`.
    async fn bootstrap(
        &self,
        tenant: &TenantId,
        admin: NewApiKey,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Releases expired holds and expires wallets past their validity, at most
    /// [`SWEEP_BATCH_MAX`] of each, in one durable transaction.
    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, StoreError>;

    /// The key whose secret hashes to `secret_sha256`, of any tenant.
    async fn api_key_by_hash(&self, secret_sha256: [u8; 32]) -> Result<Option<ApiKey>, StoreError>;

    async fn customer(
        &self,
        tenant: &TenantId,
        id: &CustomerId,
    ) -> Result<Option<Customer>, StoreError>;
    /// Customers ordered by id, after `after`.
    async fn customers(
        &self,
        tenant: &TenantId,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> Result<Page<Customer, CustomerId>, StoreError>;

    async fn wallet(&self, tenant: &TenantId, id: &WalletId) -> Result<Option<Wallet>, StoreError>;
    async fn wallets(
        &self,
        tenant: &TenantId,
        query: &WalletQuery,
    ) -> Result<Page<Wallet, WalletId>, StoreError>;

    async fn mutation(
        &self,
        tenant: &TenantId,
        id: MutationId,
    ) -> Result<Option<Mutation>, StoreError>;
    async fn mutations(
        &self,
        tenant: &TenantId,
        query: &MutationQuery,
    ) -> Result<Page<Mutation, i64>, StoreError>;

    async fn hold(&self, tenant: &TenantId, id: HoldId) -> Result<Option<Hold>, StoreError>;

    /// Checks every ledger invariant over the whole store (slow; for tests and audits).
    async fn check_invariants(&self) -> Result<Vec<Breach>, StoreError>;

    /// Cheap liveness probe of the database.
    async fn ping(&self) -> Result<(), StoreError>;
}
