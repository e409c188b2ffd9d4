//! The storage seam of prepaid: the [`Store`] trait every backend implements, the
//! group-commit [`Engine`] that feeds it and the [`Clock`]. The conformance suite and
//! the model-based test every backend must pass are in `prepaid-store-testkit`, a
//! dev-dependency of the backends.
//!
//! The trait is deliberately narrow. All writes go through one method, [`Store::apply`],
//! which takes a batch of ledger requests and must apply them in one durable
//! transaction, loading each affected row, asking the ledger core's rules what to do and
//! writing the result back. Because the decision is taken inside the database
//! transaction on rows the transaction has locked (SQLite's single writer, or
//! PostgreSQL row locks), balance floors hold even when several processes share one
//! database.

pub mod auto_topup;
mod clock;
mod engine;
pub mod exec;
pub mod records;
pub mod sql;
pub mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Engine, EngineConfig, EngineError};
pub use records::{
    JOB_CLAIM_MAX, Job, JobQueue, RECORD_KEY_LEN_MAX, RECORD_KIND_LEN_MAX, RECORD_VALUE_BYTES_MAX,
    Record, RecordKey, RecordKind,
};

use async_trait::async_trait;
use prepaid_ledger::{
    ApiKey, ApiKeyName, Customer, CustomerId, Grant, Hold, HoldId, Metadata, Mutation, MutationId,
    NewApiKey, Outcome, Request, SettingKey, TenantId, Timestamp, Unit, Wallet, WalletId,
};

/// What caused a [`StoreError`], kept for the log; shared, so that one failure of a
/// batch can be answered to every request in it.
pub type ErrorSource = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An operating failure of a store: the database is unreachable, the disk is full, a
/// row is corrupt. Never a business outcome (those are [`prepaid_ledger::Refusal`]s).
/// It keeps the error it came from, if any, as its `source`.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or refused service; retrying later may work.
    #[error("store unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<ErrorSource>,
    },
    /// Anything else: a bug, corruption, a full disk.
    #[error("store failure: {message}")]
    Internal {
        message: String,
        #[source]
        source: Option<ErrorSource>,
    },
}

impl StoreError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// The same failure, caused by `source`.
    #[must_use]
    pub fn caused_by(self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        let source = Some(std::sync::Arc::new(source) as ErrorSource);
        match self {
            Self::Unavailable { message, .. } => Self::Unavailable { message, source },
            Self::Internal { message, .. } => Self::Internal { message, source },
        }
    }
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

/// The most metadata pairs one list may filter on: each is a test of every row the
/// list looks through, none backed by an index.
pub const METADATA_FILTERS_MAX: usize = 8;

/// Metadata pairs a listed row must all carry (see [`prepaid_ledger::Metadata`]): at
/// most [`METADATA_FILTERS_MAX`]. The default filters nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataFilter(Metadata);

impl MetadataFilter {
    /// The filter of `pairs`, or `None` when there are more than
    /// [`METADATA_FILTERS_MAX`].
    pub fn new(pairs: Metadata) -> Option<Self> {
        (pairs.len() <= METADATA_FILTERS_MAX).then_some(Self(pairs))
    }

    /// The pairs, ordered by key.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `metadata` carries every pair of the filter.
    pub fn matches(&self, metadata: &Metadata) -> bool {
        metadata.contains_all(&self.0)
    }
}

/// Which mutations to list, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutationQuery {
    pub wallet: Option<WalletId>,
    pub customer: Option<CustomerId>,
    /// Only mutations carrying all these metadata pairs.
    pub metadata: MetadataFilter,
    /// Only mutations recorded at or after this instant.
    pub recorded_from: Option<Timestamp>,
    /// Only mutations recorded before this instant.
    pub recorded_before: Option<Timestamp>,
    /// The cursor of the last mutation already seen.
    pub after: Option<i64>,
    /// At most [`PAGE_SIZE_MAX`].
    pub limit: usize,
}

/// Where a list of grants stands: the last grant seen, by when it was made and its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GrantCursor {
    pub created_at: Timestamp,
    pub id: MutationId,
}

/// A grant as its wallet's list shows it: with the metadata of the credit that made it,
/// which the store reads from that mutation (a grant's id is its mutation's) rather
/// than keeping a copy on every grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGrant {
    pub grant: Grant,
    pub metadata: Metadata,
}

/// A tenant as the operator's list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTenant {
    pub id: TenantId,
    pub name: String,
    /// Whether it is the operator's tenant (the one bootstrap made).
    pub operator: bool,
    pub created_at: Timestamp,
}

/// Which wallets to list, ordered by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalletQuery {
    pub customer: Option<CustomerId>,
    /// Only wallets carrying all these metadata pairs.
    pub metadata: MetadataFilter,
    pub after: Option<WalletId>,
    /// At most [`PAGE_SIZE_MAX`].
    pub limit: usize,
}

/// Which way a search runs: mutations by their list cursor (commit order), wallets by
/// `(created_at, id)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Ascending,
    Descending,
}

/// A page of a search with the number of all the rows it matched, for dialects that
/// page by number (`page`/`pageSize`, `offset`/`limit`) and report totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted<T> {
    pub items: Vec<T>,
    /// How many rows match, on every page.
    pub total: u64,
}

/// Which mutations to find, in which order, and which page of them.
///
/// Mutations are only ever appended in commit order, so that paging `Ascending` by
/// offset never misses or repeats one while others are recorded. (The PostgreSQL store
/// keeps this but for a short window around concurrent commits; see its crate
/// documentation.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutationSearch {
    pub customer: Option<CustomerId>,
    pub wallet: Option<WalletId>,
    /// Bound against a `prepaid_query::Schema` whose columns are
    /// [`columns::mutation`]'s.
    pub filter: Option<prepaid_query::Filter>,
    pub order: Order,
    /// What `order` orders by.
    pub sort: MutationSort,
    /// The rows to skip.
    pub offset: u64,
    /// At most [`PAGE_SIZE_MAX`] (a larger limit is taken as it); 0 asks only for the
    /// total.
    pub limit: usize,
}

/// What a mutation search orders by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MutationSort {
    /// Commit order: the only order in which paging never misses a mutation recorded
    /// meanwhile.
    #[default]
    Recorded,
    /// When each happened in the client's world (`occurred_at`), ties in commit order:
    /// for "the latest" of something, never for paging.
    Occurred,
}

/// Which wallets to find, in which order, and which page of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalletSearch {
    pub customer: Option<CustomerId>,
    /// Bound against a schema whose columns are [`columns::wallet`]'s.
    pub filter: Option<prepaid_query::Filter>,
    pub order: Order,
    pub offset: u64,
    /// As [`MutationSearch::limit`].
    pub limit: usize,
}

/// The stored fields a dialect's query schema may bind its fields to, typed as
/// [`prepaid_query::Column`]s; the store renders each one to SQL for its backend
/// ([`columns::sql`]), so a dialect never writes SQL. Times are microseconds since the
/// Unix epoch (bind `prepaid_query::Value::Timestamp`), ids of mutations UUIDs
/// (`Value::Uuid`), other ids text.
pub mod columns {
    use prepaid_query::{Column, Dialect};

    /// Fields of mutations.
    pub mod mutation {
        use prepaid_query::Column;

        pub const ID: Column = Column::named("mutation.id");
        pub const AMOUNT: Column = Column::named("mutation.amount");
        pub const KIND: Column = Column::named("mutation.kind");
        pub const OCCURRED_AT: Column = Column::named("mutation.occurred_at");
        pub const RECORDED_AT: Column = Column::named("mutation.recorded_at");
        pub const REFERENCE_KIND: Column = Column::named("mutation.reference_kind");
        pub const REFERENCE_TEXT: Column = Column::named("mutation.reference_text");
        pub const REFERENCE_LINK: Column = Column::named("mutation.reference_link");
        /// The reference's text, null when it is empty.
        pub const REFERENCE_TEXT_OR_NULL: Column = Column::named("mutation.reference_text?");
        /// The reference's link, null when it is empty.
        pub const REFERENCE_LINK_OR_NULL: Column = Column::named("mutation.reference_link?");
        pub const CUSTOMER: Column = Column::named("mutation.customer");
        pub const WALLET: Column = Column::named("mutation.wallet");
        pub const BALANCE_AFTER: Column = Column::named("mutation.balance_after");
        pub const UNIT_CODE: Column = Column::named("mutation.unit_code");
        /// The link (URL) of the mutation's customer as the client gave it; empty when
        /// it gave none.
        pub const CUSTOMER_LINK: Column = Column::named("mutation.customer_link");
        /// The customer's link, or `urn:uuid:<customer id>` when it has none.
        pub const CUSTOMER_LINK_OR_URN: Column = Column::named("mutation.customer_link_or_urn");
        /// Whether the mutation's wallet has its customer's id (a customer's own wallet,
        /// as dialects that give each customer one wallet make it).
        pub const IN_CUSTOMERS_OWN_WALLET: Column =
            Column::named("mutation.in_customers_own_wallet");
    }

    /// Fields of wallets.
    pub mod wallet {
        use prepaid_query::Column;

        pub const ID: Column = Column::named("wallet.id");
        pub const NAME: Column = Column::named("wallet.name");
        pub const PRODUCT: Column = Column::named("wallet.product");
        /// `active`, `suspended` or `expired`.
        pub const STATUS: Column = Column::named("wallet.status");
        pub const CUSTOMER: Column = Column::named("wallet.customer");
        pub const UNIT_CODE: Column = Column::named("wallet.unit_code");
        /// The unit's scale, as an integer of the width integer parameters are bound as.
        pub const UNIT_SCALE: Column = Column::named("wallet.unit_scale");
        pub const BALANCE: Column = Column::named("wallet.balance");
        pub const CREATED_AT: Column = Column::named("wallet.created_at");
        /// When the balance, held or status last changed.
        pub const UPDATED_AT: Column = Column::named("wallet.updated_at");
    }

    /// `filter` as an SQL condition of a backend's search (see
    /// [`prepaid_query::Filter::to_sql_with`]), its columns rendered by [`sql`].
    pub fn to_sql(
        filter: &prepaid_query::Filter,
        dialect: Dialect,
        first_param: usize,
    ) -> Result<prepaid_query::Sql, prepaid_query::UnknownColumn> {
        let render = |c: &Column| sql(c, dialect).map(std::borrow::Cow::Borrowed);
        filter.to_sql_with(dialect, first_param, &render)
    }

    /// The SQL expression of `column` for a backend's search, which aliases the
    /// mutations table `m` and the wallets table `w`; `None` for a name the store does
    /// not offer. Both backends have the same tables, so they share the expressions.
    pub fn sql(column: &Column, _dialect: Dialect) -> Option<&'static str> {
        Some(match column.name() {
            "mutation.id" => "m.id",
            "mutation.amount" => "m.amount",
            "mutation.kind" => "m.kind",
            "mutation.occurred_at" => "m.occurred_at",
            "mutation.recorded_at" => "m.recorded_at",
            "mutation.reference_kind" => "m.reference_kind",
            "mutation.reference_text" => "m.reference_text",
            "mutation.reference_link" => "m.reference_link",
            "mutation.reference_text?" => "NULLIF(m.reference_text, '')",
            "mutation.reference_link?" => "NULLIF(m.reference_link, '')",
            "mutation.customer" => "m.customer",
            "mutation.wallet" => "m.wallet",
            "mutation.balance_after" => "m.balance_after",
            "mutation.unit_code" => "m.unit_code",
            "mutation.customer_link" => {
                "(SELECT c.link FROM customers c WHERE c.tenant = m.tenant AND c.id = m.customer)"
            }
            "mutation.customer_link_or_urn" => {
                "COALESCE(NULLIF((SELECT c.link FROM customers c \
                 WHERE c.tenant = m.tenant AND c.id = m.customer), ''), 'urn:uuid:' || m.customer)"
            }
            "mutation.in_customers_own_wallet" => "(m.wallet = m.customer)",
            "wallet.id" => "w.id",
            "wallet.name" => "w.name",
            "wallet.product" => "w.product",
            "wallet.status" => "w.status",
            "wallet.customer" => "w.customer",
            "wallet.unit_code" => "w.unit_code",
            // An integer of another width on PostgreSQL; the cast gives it the type
            // integer parameters are bound as.
            "wallet.unit_scale" => "CAST(w.unit_scale AS BIGINT)",
            "wallet.balance" => "w.balance",
            "wallet.created_at" => "w.created_at",
            "wallet.updated_at" => "w.updated_at",
            _ => return None,
        })
    }
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub holds_expired: usize,
    pub wallets_expired: usize,
    pub grants_expired: usize,
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
    /// A wallet's `held` differs from the sum of its pending debit holds.
    HeldNotSum {
        tenant: TenantId,
        wallet: WalletId,
        held: i64,
        sum: i64,
    },
    /// A wallet's `incoming` differs from the sum of its pending credit holds.
    IncomingNotSum {
        tenant: TenantId,
        wallet: WalletId,
        incoming: i64,
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
    /// A wallet's grants do not account for it: what they have left (`remaining`)
    /// is less than its balance, what they reserve for holds (`reserved`) is more than
    /// its `held`, or one of them reserves more than it has left or has less than
    /// nothing (`worst`: the least of each grant's remainder less its reservation).
    GrantsBroken {
        tenant: TenantId,
        wallet: WalletId,
        balance: i64,
        remaining: i64,
        held: i64,
        reserved: i64,
        worst: i64,
    },
}

/// One wallet as an audit reads it: its cached columns beside the sums they must
/// equal. Written once here so that every backend checks the same invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletAudit {
    pub tenant: TenantId,
    pub wallet: WalletId,
    pub balance: i64,
    /// The sum of its mutations.
    pub mutations_sum: i64,
    pub held: i64,
    /// The sum of its pending debit holds.
    pub debit_holds_sum: i64,
    pub incoming: i64,
    /// The sum of its pending credit holds.
    pub credit_holds_sum: i64,
    /// `None` when it has no floor.
    pub floor: Option<i64>,
    /// Whether a downward adjustment was ever posted to it.
    pub corrected_down: bool,
}

impl WalletAudit {
    /// The breaches this wallet shows, in the order of [`Breach`]'s variants.
    pub fn breaches(self) -> Vec<Breach> {
        let Self {
            tenant,
            wallet,
            balance,
            mutations_sum,
            held,
            debit_holds_sum,
            incoming,
            credit_holds_sum,
            floor,
            corrected_down,
        } = self;
        let mut breaches = Vec::new();
        if balance != mutations_sum {
            breaches.push(Breach::BalanceNotSum {
                tenant: tenant.clone(),
                wallet: wallet.clone(),
                balance,
                sum: mutations_sum,
            });
        }
        if held != debit_holds_sum {
            breaches.push(Breach::HeldNotSum {
                tenant: tenant.clone(),
                wallet: wallet.clone(),
                held,
                sum: debit_holds_sum,
            });
        }
        if incoming != credit_holds_sum {
            breaches.push(Breach::IncomingNotSum {
                tenant: tenant.clone(),
                wallet: wallet.clone(),
                incoming,
                sum: credit_holds_sum,
            });
        }
        // Only a downward correction may take a wallet below its floor: debits, holds
        // and transfers never do, and commits, releases and expiry never lower what is
        // available.
        if let Some(floor) = floor
            && !corrected_down
        {
            let available = i128::from(balance) - i128::from(held) - i128::from(floor);
            if available < 0 {
                breaches.push(Breach::BelowFloor {
                    tenant,
                    wallet,
                    available: i64::try_from(available).unwrap_or(i64::MIN),
                });
            }
        }
        breaches
    }
}

/// A batch written by [`Store::stage`], not yet known durable.
pub struct Staged {
    /// One per request, in order; released only once `durable` resolves `Ok`.
    pub outcomes: Vec<Outcome>,
    pub durable: Durable,
}

/// Resolves once a staged batch is durable.
pub type Durable =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("outcomes", &self.outcomes)
            .finish_non_exhaustive()
    }
}

/// Where one store transaction's time went, recorded into the histogram
/// `prepaid_writer_phase_seconds` by `phase`: `load` (reading the rows the executor
/// needs, with `BEGIN`), `execute` (the executor, less its reads), `write` (the write
/// statements) and `commit` (`COMMIT`). Each backend says what its phases hold; a store
/// that syncs apart from committing records a `sync` phase of its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriterPhases {
    pub load: std::time::Duration,
    pub execute: std::time::Duration,
    pub write: std::time::Duration,
    pub commit: std::time::Duration,
}

impl WriterPhases {
    pub fn record(&self) {
        for (phase, spent) in [
            ("load", self.load),
            ("execute", self.execute),
            ("write", self.write),
            ("commit", self.commit),
        ] {
            metrics::histogram!("prepaid_writer_phase_seconds", "phase" => phase)
                .record(spent.as_secs_f64());
        }
    }
}

/// A storage backend. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies `batch` in one durable transaction and returns one outcome per request,
    /// in order. When this returns `Ok`, every `Done` outcome is durable. A refused
    /// request changes nothing and never affects its batch-mates. Requests see the
    /// effects of the requests before them in the batch.
    async fn apply(&self, batch: Vec<Request>, now: Timestamp) -> Result<Vec<Outcome>, StoreError>;

    /// Applies `batch` like [`Store::apply`] but returns as soon as it is written, with
    /// a future that resolves once it is durable. A batch staged after this one sees
    /// its effects, and becoming durable implies this one is too. The outcomes must
    /// not reach anyone before [`Staged::durable`] resolves `Ok`; an `Err` there means
    /// the batch may be lost, as an `Err` from a failed `COMMIT` would.
    ///
    /// A store whose commit makes the batch durable at once (the default) resolves at
    /// once; one that makes batches durable apart from committing them (SQLite) lets
    /// the engine run the next batch while this one is synced.
    async fn stage(&self, batch: Vec<Request>, now: Timestamp) -> Result<Staged, StoreError> {
        let outcomes = self.apply(batch, now).await?;
        Ok(Staged {
            outcomes,
            durable: Box::pin(std::future::ready(Ok(()))),
        })
    }

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

    /// Every tenant of the store ordered by id, after `after`, at most `limit`
    /// (<= [`PAGE_SIZE_MAX`]): for the operator alone.
    async fn tenants(
        &self,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<Page<ListedTenant, TenantId>, StoreError>;

    /// The API keys of `tenant` ordered by name, after `after`, at most `limit`
    /// (<= [`PAGE_SIZE_MAX`]).
    async fn api_keys(
        &self,
        tenant: &TenantId,
        after: Option<&ApiKeyName>,
        limit: usize,
    ) -> Result<Page<ApiKey, ApiKeyName>, StoreError>;

    /// Deletes the API key `name` of `tenant` (revokes it) and returns it, or `None`
    /// when there is none. A key is state beside the ledger, moved by no command, so it
    /// goes in one statement of its own. Callers forget it in their key caches; other
    /// instances trust their cached copy until it is looked up again.
    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        name: &ApiKeyName,
    ) -> Result<Option<ApiKey>, StoreError>;

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

    /// The holds of a wallet, pending and settled, by id, after `after`, at most
    /// `limit` (<= [`PAGE_SIZE_MAX`]).
    async fn wallet_holds(
        &self,
        tenant: &TenantId,
        wallet: &WalletId,
        after: Option<HoldId>,
        limit: usize,
    ) -> Result<Page<Hold, HoldId>, StoreError>;

    /// The grants of a wallet, live and spent, oldest first (by when each was made,
    /// then id), after `after`, at most `limit` (<= [`PAGE_SIZE_MAX`]), each with the
    /// metadata of the credit that made it.
    async fn grants(
        &self,
        tenant: &TenantId,
        wallet: &WalletId,
        after: Option<GrantCursor>,
        limit: usize,
    ) -> Result<Page<ListedGrant, GrantCursor>, StoreError>;

    /// The page of mutations `search` asks for, and how many match in all.
    async fn search_mutations(
        &self,
        tenant: &TenantId,
        search: &MutationSearch,
    ) -> Result<Counted<Mutation>, StoreError>;

    /// The page of wallets `search` asks for, and how many match in all.
    async fn search_wallets(
        &self,
        tenant: &TenantId,
        search: &WalletSearch,
    ) -> Result<Counted<Wallet>, StoreError>;

    /// The value of a per-tenant setting (see [`prepaid_ledger::Command::PutSetting`]).
    async fn setting(
        &self,
        tenant: &TenantId,
        key: &SettingKey,
    ) -> Result<Option<String>, StoreError>;

    /// The record `key` of `kind`, if there is one.
    async fn record(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Result<Option<Record>, StoreError>;
    /// Records of one kind ordered by key, keys > `after`, at most `limit` (<= PAGE_SIZE_MAX).
    async fn records(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;
    /// Compare-and-set. `expected_version: None` inserts only if absent (version becomes 1);
    /// `Some(v)` replaces only if the current version is v (version becomes v+1). Returns
    /// `Some(new_version)`, or `None` when the condition failed (nothing changed).
    /// Panics (programmer error) on a value over its limit; callers check first.
    async fn put_record(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
        value: &str,
        expected_version: Option<i64>,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError>;
    /// Deletes; `true` if it existed.
    async fn delete_record(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
        key: &RecordKey,
    ) -> Result<bool, StoreError>;

    /// Inserts a job unless (tenant, queue, id) exists; `true` if inserted. Deterministic ids make
    /// enqueueing idempotent.
    async fn enqueue_job(
        &self,
        tenant: &TenantId,
        queue: JobQueue,
        id: &RecordKey,
        payload: &str,
        due_at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Atomically takes up to `limit` (<= JOB_CLAIM_MAX) jobs of `queue`, of any tenant, with
    /// due_at <= now, oldest due first; sets their due_at to `lease_until` and increments attempts,
    /// and returns them (attempts after the increment). A job whose worker dies becomes due again
    /// when its lease ends. On PostgreSQL two instances never claim the same job in one lease
    /// (FOR UPDATE SKIP LOCKED).
    async fn claim_jobs(
        &self,
        queue: JobQueue,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError>;
    /// Deletes a finished job.
    async fn finish_job(
        &self,
        tenant: &TenantId,
        queue: JobQueue,
        id: &RecordKey,
    ) -> Result<(), StoreError>;
    /// Sets a claimed job's next due time (retry with backoff).
    async fn defer_job(
        &self,
        tenant: &TenantId,
        queue: JobQueue,
        id: &RecordKey,
        due_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Checks every ledger invariant over the whole store (slow; for tests and audits).
    async fn check_invariants(&self) -> Result<Vec<Breach>, StoreError>;

    /// Cheap liveness probe of the database.
    async fn ping(&self) -> Result<(), StoreError>;
}
