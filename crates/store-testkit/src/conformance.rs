//! The store conformance suite: every backend runs these same cases.
//!
//! A backend implements [`Backend`] (how to get a fresh store, and how to open the same
//! database again after a restart) and its test file calls
//! [`crate::conformance_tests!`] with an async expression that makes one backend value;
//! the macro expands to one `#[tokio::test]` per case, each with its own backend value
//! and so its own empty store. The calling crate must depend on `tokio`.
//!
//! ```text
//! struct Sqlite(tempfile::TempDir);
//!
//! #[async_trait::async_trait]
//! impl prepaid_store::conformance::Backend for Sqlite { /* fresh, reopen */ }
//!
//! prepaid_store::conformance_tests!(async { Sqlite(tempfile::tempdir().unwrap()) });
//! ```
//!
//! Every case ends by asking the store to check its own invariants, which must find
//! nothing. Cases panic on the first difference, naming what they expected.

use async_trait::async_trait;
use prepaid_ledger::{
    AMOUNT_MAX, Amount, ApiKey, ApiKeyName, BALANCE_ABS_MAX, Command, Customer, CustomerId, Done,
    Fingerprint, Floor, Hold, HoldDirection, HoldId, HoldStatus, IdempotencyKey, Mutation,
    MutationId, MutationKind, NewApiKey, NewWallet, Outcome, Reference, Refusal, Request, Scopes,
    Step, TenantId, Timestamp, Transfer, TransferId, Unit, Wallet, WalletId, WalletStatus,
};
use prepaid_store::{
    MutationQuery, PAGE_SIZE_MAX, Page, SWEEP_BATCH_MAX, Store, SweepReport, WalletQuery,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

mod auto_topup;
mod ceiling;
mod credit_holds;
mod grants;
mod ids;
mod linked;
mod metadata;
mod records;
mod webhooks;
pub use auto_topup::auto_topups_start_once_per_crossing;
pub use ceiling::wallet_ceiling_is_kept_and_enforced;
pub use credit_holds::credit_holds_set_aside_room_under_the_ceiling;
pub use grants::{
    credits_repay_debt_first, grants_are_drawn_in_order, grants_expire_once,
    holds_reserve_grants_through_their_expiry, live_grants_are_bounded_at_the_limit,
    reversals_of_spent_credits_need_allow_negative, reversals_restore_the_grants_drawn,
    top_ups_take_the_tenants_default_validity,
};
pub use ids::mutation_ids_are_per_tenant;
pub use linked::{linked_requests_are_all_or_nothing, linked_requests_refuse_management_commands};
pub use metadata::{
    metadata_is_kept_and_filters_lists, wallet_metadata_is_patched_within_its_bound,
};
pub use records::{
    jobs_claim_at_the_limit, jobs_claim_order_lease_and_limit, jobs_enqueue_is_idempotent,
    jobs_finish_and_defer, records_and_jobs_at_their_limits, records_and_jobs_tenant_isolation,
    records_compare_and_set, records_delete, records_list_at_the_page_limit,
    records_list_in_key_order,
};
pub use webhooks::{webhook_events_follow_their_changes, webhook_events_of_alerts_and_auto_topups};

/// How the suite gets stores of one backend. Each case makes its own backend value
/// and calls [`Backend::fresh`] on it once.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Opens a new, empty store.
    async fn fresh(&self) -> Arc<dyn Store>;
    /// Closes `store` (the suite holds no other handle to it) and opens the same
    /// database again, as a restart of the server would.
    async fn reopen(&self, store: Arc<dyn Store>) -> Arc<dyn Store>;
}

/// Expands to one `#[tokio::test]` per conformance case. Takes an async expression
/// that evaluates to a value implementing [`conformance::Backend`](crate::conformance::Backend),
/// or, after the word `optional`, to an `Option` of one: on `None` (a database that is
/// not there, say, which the expression has reported) the case ends at once.
#[macro_export]
macro_rules! conformance_tests {
    (optional $backend:expr) => {
        $crate::conformance_tests!(@cases ($backend) @list);
    };
    ($backend:expr) => {
        $crate::conformance_tests!(@cases (async { ::std::option::Option::Some($backend.await) }) @list);
    };
    (@cases ($backend:expr) @list) => {
        $crate::conformance_tests!(@cases ($backend)
            bootstrap_once_only
            tenants_and_api_keys
            api_keys_list_and_revoke
            tenants_list_in_id_order
            customers_and_wallets
            postings_report_balance_after
            insufficient_funds_changes_nothing
            floor_limit_and_unlimited
            status_and_validity
            holds_place_commit_release
            hold_expiry_via_sweep
            wallet_expiry_via_sweep
            sweep_takes_at_most_the_batch_max
            transfers
            idempotency_replay_and_conflict
            idempotency_replays_every_kind
            batch_refusals_leave_batch_mates_alone
            tenant_isolation
            customer_only_restriction
            paging_customers_at_limit
            paging_wallets_at_limit
            paging_mutations_at_limit
            amount_and_balance_bounds
            data_survives_reopen
            customer_links_are_kept
            customer_links_are_set_once_or_on_request
            mutation_search_by_occurrence
            settings_put_and_read
            search_mutations_filters_counts_and_pages
            search_mutations_at_the_page_limit
            search_wallets_filters_counts_and_pages
            wallet_updated_at_follows_changes
            records_compare_and_set
            records_list_in_key_order
            records_list_at_the_page_limit
            records_delete
            records_and_jobs_at_their_limits
            records_and_jobs_tenant_isolation
            jobs_enqueue_is_idempotent
            jobs_claim_order_lease_and_limit
            jobs_claim_at_the_limit
            jobs_finish_and_defer
            wallet_ceiling_is_kept_and_enforced
            credit_holds_set_aside_room_under_the_ceiling
            linked_requests_are_all_or_nothing
            mutation_ids_are_per_tenant
            linked_requests_refuse_management_commands
            grants_are_drawn_in_order
            grants_expire_once
            holds_reserve_grants_through_their_expiry
            credits_repay_debt_first
            live_grants_are_bounded_at_the_limit
            reversals_restore_the_grants_drawn
            reversals_of_spent_credits_need_allow_negative
            top_ups_take_the_tenants_default_validity
            metadata_is_kept_and_filters_lists
            wallet_metadata_is_patched_within_its_bound
            webhook_events_follow_their_changes
            webhook_events_of_alerts_and_auto_topups
            auto_topups_start_once_per_crossing
        );
    };
    (@cases ($backend:expr) $($case:ident)*) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let ::std::option::Option::Some(backend) = $backend.await else {
                    return;
                };
                let mut env = $crate::conformance::Env::new(::std::boxed::Box::new(backend)).await;
                $crate::conformance::$case(&mut env).await;
                env.finish().await;
            }
        )*
    };
}

/// 2026-01-01T00:00:00Z, where every case's clock starts.
pub const START: Timestamp = Timestamp::from_micros(1_767_225_600_000_000);
/// The operator tenant every case bootstraps.
pub const OPERATOR: &str = "default";
const SECOND: i64 = 1_000_000;

/// One case's world: the backend, its current store and a hand-moved clock.
pub struct Env {
    backend: Box<dyn Backend>,
    /// `None` only while being reopened.
    store: Option<Arc<dyn Store>>,
    pub now: Timestamp,
    next: AtomicU64,
    bootstrapped: bool,
}

pub fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("test tenant id")
}
pub fn cid(s: &str) -> CustomerId {
    CustomerId::parse(s).expect("test customer id")
}
pub fn wid(s: &str) -> WalletId {
    WalletId::parse(s).expect("test wallet id")
}
fn key_name(s: &str) -> ApiKeyName {
    ApiKeyName::parse(s).expect("test key name")
}
fn idem(s: &str) -> IdempotencyKey {
    IdempotencyKey::parse(s).expect("test idempotency key")
}
fn amount(v: i64) -> Amount {
    Amount::new(v).expect("test amount")
}
fn eur() -> Unit {
    Unit::new("EUR", 2).expect("unit")
}
fn minutes() -> Unit {
    Unit::new("MIN", 0).expect("unit")
}

/// A request of `tenant` with full rights and no idempotency key.
pub fn request(tenant: &str, command: Command) -> Request {
    Request {
        tenant: tid(tenant),
        customer_only: None,
        idempotency: None,
        command,
        before: Vec::new(),
        after: Vec::new(),
    }
}

/// The same request with an idempotency key and fingerprint.
pub fn keyed(mut request: Request, key: &str, fingerprint: u8) -> Request {
    request.idempotency = Some((idem(key), Fingerprint([fingerprint; 32])));
    request
}

/// The same request restricted to one customer.
pub fn restricted(mut request: Request, customer: &str) -> Request {
    request.customer_only = Some(cid(customer));
    request
}

pub fn done(outcome: Outcome) -> Done {
    match outcome {
        Outcome::Done {
            done,
            replayed: false,
        } => done,
        other => panic!("expected a fresh Done, got {other:?}"),
    }
}
pub fn refusal(outcome: Outcome) -> Refusal {
    match outcome {
        Outcome::Refused(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
pub fn as_mutation(done: Done) -> Mutation {
    match done {
        Done::Mutation(m) => m,
        other => panic!("expected a mutation, got {other:?}"),
    }
}
pub fn as_wallet(done: Done) -> Wallet {
    match done {
        Done::Wallet(w) => w,
        other => panic!("expected a wallet, got {other:?}"),
    }
}
pub fn as_hold(done: Done) -> (Hold, Option<Mutation>) {
    match done {
        Done::Hold { hold, mutation } => (hold, mutation),
        other => panic!("expected a hold, got {other:?}"),
    }
}
pub fn as_transfer(done: Done) -> Transfer {
    match done {
        Done::Transfer(t) => t,
        other => panic!("expected a transfer, got {other:?}"),
    }
}

impl Env {
    pub async fn new(backend: Box<dyn Backend>) -> Self {
        let store = backend.fresh().await;
        Self {
            backend,
            store: Some(store),
            now: START,
            next: AtomicU64::new(1),
            bootstrapped: false,
        }
    }

    /// The store under test.
    pub fn store(&self) -> &dyn Store {
        self.store.as_deref().expect("the store is open")
    }

    /// Checks the store's invariants; the last step of every case.
    pub async fn finish(self) {
        let breaches = self
            .store()
            .check_invariants()
            .await
            .expect("check_invariants");
        assert!(breaches.is_empty(), "invariants broken: {breaches:#?}");
    }

    /// Closes the store and opens the same database again.
    pub async fn reopen(&mut self) {
        let store = self.store.take().expect("the store is open");
        self.store = Some(self.backend.reopen(store).await);
    }

    pub fn advance_secs(&mut self, secs: i64) {
        self.now = self.now.plus_micros(secs * SECOND);
    }

    /// A new UUID, distinct within the case.
    pub fn uuid(&self) -> Uuid {
        Uuid::from_u128(
            0x0190_0000_0000_7000_8000_0000_0000_0000
                | u128::from(self.next.fetch_add(1, Ordering::Relaxed)),
        )
    }
    pub fn mutation_id(&self) -> MutationId {
        MutationId(self.uuid())
    }
    pub fn hold_id(&self) -> HoldId {
        HoldId(self.uuid())
    }
    /// A key with a secret no other key of the case has.
    pub fn new_key(&self, name: &str, scopes: Scopes, customer: Option<&str>) -> NewApiKey {
        let mut secret_sha256 = [0u8; 32];
        secret_sha256[..16].copy_from_slice(self.uuid().as_bytes());
        NewApiKey {
            name: key_name(name),
            secret_sha256,
            scopes,
            customer: customer.map(cid),
        }
    }

    pub async fn apply(&self, batch: Vec<Request>) -> Vec<Outcome> {
        let n = batch.len();
        let outcomes = self.store().apply(batch, self.now).await.expect("apply");
        assert_eq!(outcomes.len(), n, "one outcome per request");
        outcomes
    }
    pub async fn one(&self, request: Request) -> Outcome {
        let mut outcomes = self.apply(vec![request]).await;
        outcomes.pop().expect("one outcome")
    }
    /// Runs `command` for `tenant`, which must be carried out.
    pub async fn done(&self, tenant: &str, command: Command) -> Done {
        done(self.one(request(tenant, command)).await)
    }
    /// Runs `command` for `tenant`, which must be refused.
    pub async fn refused(&self, tenant: &str, command: Command) -> Refusal {
        refusal(self.one(request(tenant, command)).await)
    }

    /// Runs a table of commands that must each be refused with `expected`, and checks
    /// that none of them changed the tenant's mutations; a row names what it tries.
    pub async fn refuses_each(&self, tenant: &str, rows: Vec<(&str, Command)>, expected: Refusal) {
        let before = self.all_mutations(tenant, None, None).await.len();
        for (what, command) in rows {
            assert_eq!(self.refused(tenant, command).await, expected, "{what}");
            assert_eq!(
                self.all_mutations(tenant, None, None).await.len(),
                before,
                "{what} was refused but recorded a mutation"
            );
        }
    }

    /// Bootstraps the operator tenant (once).
    pub async fn operator(&mut self) {
        if !self.bootstrapped {
            let key = self.new_key("root", Scopes::ALL, None);
            let made = self
                .store()
                .bootstrap(&tid(OPERATOR), key, self.now)
                .await
                .expect("bootstrap");
            assert!(made, "bootstrap of a fresh store");
            self.bootstrapped = true;
        }
    }
    /// Creates a tenant through the operator.
    pub async fn tenant(&mut self, name: &str) {
        self.operator().await;
        let admin_key = self.new_key("admin", Scopes::ALL, None);
        let command = Command::CreateTenant {
            tenant: tid(name),
            name: format!("Tenant {name}"),
            admin_key,
        };
        self.done(OPERATOR, command).await;
    }
    pub async fn customer(&self, tenant: &str, id: &str) -> Customer {
        let command = Command::CreateCustomer {
            id: cid(id),
            name: format!("Customer {id}"),
            link: String::new(),
        };
        match self.done(tenant, command).await {
            Done::Customer(c) => c,
            other => panic!("expected a customer, got {other:?}"),
        }
    }
    pub fn new_wallet(&self, id: &str, customer: &str, unit: Unit, floor: Floor) -> NewWallet {
        NewWallet {
            id: wid(id),
            customer: cid(customer),
            unit,
            name: format!("Wallet {id}"),
            product: "prepaid".to_owned(),
            floor,
            ceiling: None,
            valid_from: None,
            valid_until: None,
            metadata: prepaid_ledger::Metadata::default(),
        }
    }
    /// Creates a wallet in euros with a floor of zero.
    pub async fn wallet(&self, tenant: &str, customer: &str, id: &str) -> Wallet {
        let wallet = self.new_wallet(id, customer, eur(), Floor::ZERO);
        as_wallet(self.done(tenant, Command::CreateWallet { wallet }).await)
    }
    pub fn post(&self, wallet: &str, kind: MutationKind, value: i64) -> Command {
        Command::Post {
            id: self.mutation_id(),
            wallet: wid(wallet),
            kind,
            amount: amount(value),
            reference: Reference::default(),
            occurred_at: None,
            terms: prepaid_ledger::GrantTerms::default(),
            metadata: prepaid_ledger::Metadata::default(),
        }
    }
    pub async fn top_up(&self, tenant: &str, wallet: &str, value: i64) -> Mutation {
        as_mutation(
            self.done(tenant, self.post(wallet, MutationKind::TopUp, value))
                .await,
        )
    }
    pub fn place_hold(
        &self,
        wallet: &str,
        value: i64,
        expires_at: Option<Timestamp>,
    ) -> (HoldId, Command) {
        let id = self.hold_id();
        let command = Command::PlaceHold {
            id,
            wallet: wid(wallet),
            amount: amount(value),
            reference: Reference::default(),
            expires_at,
            metadata: prepaid_ledger::Metadata::default(),
        };
        (id, command)
    }
    pub fn commit(&self, hold: HoldId, value: Option<i64>) -> Command {
        Command::CommitHold {
            hold,
            amount: value.map(amount),
            mutation_id: self.mutation_id(),
            reference: None,
        }
    }
    pub fn release(&self, hold: HoldId) -> Command {
        Command::ReleaseHold {
            hold,
            mutation_id: self.mutation_id(),
        }
    }
    pub fn transfer(&self, from: &str, to: &str, value: i64) -> Command {
        Command::Transfer {
            id: TransferId(self.uuid()),
            debit_id: self.mutation_id(),
            credit_id: self.mutation_id(),
            from: wid(from),
            to: wid(to),
            amount: amount(value),
            reference: Reference::default(),
            occurred_at: None,
            terms: prepaid_ledger::GrantTerms::default(),
            metadata: prepaid_ledger::Metadata::default(),
        }
    }

    pub async fn read_wallet(&self, tenant: &str, id: &str) -> Wallet {
        self.store()
            .wallet(&tid(tenant), &wid(id))
            .await
            .expect("wallet")
            .unwrap_or_else(|| panic!("wallet {tenant}/{id} exists"))
    }
    pub async fn read_hold(&self, tenant: &str, id: HoldId) -> Hold {
        self.store()
            .hold(&tid(tenant), id)
            .await
            .expect("hold")
            .unwrap_or_else(|| panic!("hold {id} exists"))
    }
    /// Every mutation matching the filters, oldest first, following the cursors.
    pub async fn all_mutations(
        &self,
        tenant: &str,
        wallet: Option<&str>,
        customer: Option<&str>,
    ) -> Vec<Mutation> {
        let query = MutationQuery {
            wallet: wallet.map(wid),
            customer: customer.map(cid),
            after: None,
            limit: PAGE_SIZE_MAX,
            metadata: prepaid_store::MetadataFilter::default(),
            ..MutationQuery::default()
        };
        self.all_mutations_of(tenant, query).await
    }

    /// Every mutation `query` lists, following its cursor from `query.after` on, a
    /// page of `query.limit` at a time.
    pub async fn all_mutations_of(&self, tenant: &str, mut query: MutationQuery) -> Vec<Mutation> {
        let mut all = Vec::new();
        loop {
            let page = self
                .store()
                .mutations(&tid(tenant), &query)
                .await
                .expect("mutations");
            all.extend(page.items);
            match page.next {
                Some(next) => query.after = Some(next),
                None => return all,
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The cases.

/// Bootstrap makes the operator tenant on an empty store, and never again.
pub async fn bootstrap_once_only(env: &mut Env) {
    let root = env.new_key("root", Scopes::ALL, None);
    let store = env.store();
    assert!(
        store
            .bootstrap(&tid(OPERATOR), root.clone(), env.now)
            .await
            .expect("bootstrap")
    );
    let other = env.new_key("other", Scopes::ALL, None);
    assert!(
        !store
            .bootstrap(&tid(OPERATOR), other.clone(), env.now)
            .await
            .expect("bootstrap")
    );
    assert!(
        !store
            .bootstrap(&tid("second"), other.clone(), env.now)
            .await
            .expect("bootstrap")
    );
    let found = store
        .api_key_by_hash(root.secret_sha256)
        .await
        .expect("api_key_by_hash");
    assert_eq!(
        found,
        Some(ApiKey {
            tenant: tid(OPERATOR),
            name: root.name,
            secret_sha256: root.secret_sha256,
            scopes: Scopes::ALL,
            customer: None,
            created_at: env.now,
        })
    );
    assert_eq!(
        store
            .api_key_by_hash(other.secret_sha256)
            .await
            .expect("api_key_by_hash"),
        None
    );
    assert_eq!(
        env.refused(
            "second",
            Command::CreateCustomer {
                id: cid("c"),
                name: String::new(),
                link: String::new(),
            }
        )
        .await,
        Refusal::TenantNotFound
    );
    store.ping().await.expect("ping");
}

/// Tenants come only from the operator; keys are unique by name in a tenant and by
/// secret everywhere.
/// The operator's list of tenants: every tenant by id, a page at a time, the
/// operator's marked.
pub async fn tenants_list_in_id_order(env: &mut Env) {
    env.operator().await;
    for (id, name) in [("t2", "Two"), ("t1", "One")] {
        let admin_key = env.new_key("admin", Scopes::ALL, None);
        let command = Command::CreateTenant {
            tenant: tid(id),
            name: name.into(),
            admin_key,
        };
        env.done(OPERATOR, command).await;
    }
    let first = env.store().tenants(None, 2).await.expect("tenants");
    let shown =
        |page: &Page<prepaid_store::ListedTenant, TenantId>| -> Vec<(String, String, bool)> {
            page.items
                .iter()
                .map(|t| (t.id.to_string(), t.name.clone(), t.operator))
                .collect()
        };
    assert_eq!(
        shown(&first),
        [
            (OPERATOR.to_owned(), OPERATOR.to_owned(), true),
            ("t1".to_owned(), "One".to_owned(), false)
        ]
    );
    assert_eq!(first.items[1].created_at, env.now);
    let rest = env
        .store()
        .tenants(first.next.as_ref(), PAGE_SIZE_MAX)
        .await
        .expect("tenants");
    assert_eq!(shown(&rest), [("t2".to_owned(), "Two".to_owned(), false)]);
    assert_eq!(rest.next, None);
}

/// A tenant's keys list by name, a page at a time and never another tenant's; a
/// revoked key is gone (no secret finds it, its name may be used again) and revoking
/// it again finds nothing.
pub async fn api_keys_list_and_revoke(env: &mut Env) {
    env.operator().await;
    let op = tid(OPERATOR);
    for name in ["b-reports", "a-ops", "c-shop"] {
        let key = env.new_key(name, Scopes::ALL, None);
        env.done(OPERATOR, Command::CreateApiKey { key }).await;
    }
    let admin = env.new_key("admin", Scopes::ALL, None);
    env.done(
        OPERATOR,
        Command::CreateTenant {
            tenant: tid("t1"),
            name: "One".into(),
            admin_key: admin,
        },
    )
    .await;
    let names = |page: &Page<ApiKey, ApiKeyName>| -> Vec<String> {
        page.items.iter().map(|k| k.name.to_string()).collect()
    };
    let first = env.store().api_keys(&op, None, 2).await.expect("keys");
    assert_eq!(names(&first), ["a-ops", "b-reports"]);
    let rest = env
        .store()
        .api_keys(&op, first.next.as_ref(), PAGE_SIZE_MAX)
        .await
        .expect("keys");
    // The operator's bootstrap key is `root`.
    assert_eq!(names(&rest), ["c-shop", "root"]);
    assert_eq!(rest.next, None);
    let other = env
        .store()
        .api_keys(&tid("t1"), None, PAGE_SIZE_MAX)
        .await
        .expect("keys");
    assert_eq!(names(&other), ["admin"]);

    let shop = rest.items[0].clone();
    let revoked = env
        .store()
        .revoke_api_key(&op, &key_name("c-shop"))
        .await
        .expect("revoke");
    assert_eq!(revoked, Some(shop.clone()));
    assert_eq!(
        env.store()
            .api_key_by_hash(shop.secret_sha256)
            .await
            .expect("by hash"),
        None
    );
    assert_eq!(
        env.store()
            .revoke_api_key(&op, &key_name("c-shop"))
            .await
            .expect("revoke"),
        None
    );
    // A name revokes this tenant's key of that name, never another tenant's.
    assert_eq!(
        env.store()
            .revoke_api_key(&op, &key_name("admin"))
            .await
            .expect("revoke"),
        None
    );
    let left = env
        .store()
        .api_keys(&tid("t1"), None, PAGE_SIZE_MAX)
        .await
        .expect("keys");
    assert_eq!(names(&left), ["admin"]);
    let key = env.new_key("c-shop", Scopes::ALL, None);
    env.done("t1", Command::CreateApiKey { key }).await;
    let now = env
        .store()
        .api_keys(&op, None, PAGE_SIZE_MAX)
        .await
        .expect("keys");
    assert_eq!(names(&now), ["a-ops", "b-reports", "root"]);
    let reused = env
        .store()
        .api_keys(&tid("t1"), None, PAGE_SIZE_MAX)
        .await
        .expect("keys");
    assert_eq!(names(&reused), ["admin", "c-shop"]);
}

pub async fn tenants_and_api_keys(env: &mut Env) {
    env.operator().await;
    let admin = env.new_key("admin", Scopes::ALL, None);
    let created = env
        .done(
            OPERATOR,
            Command::CreateTenant {
                tenant: tid("t1"),
                name: "One".into(),
                admin_key: admin.clone(),
            },
        )
        .await;
    let expected_key = ApiKey {
        tenant: tid("t1"),
        name: admin.name.clone(),
        secret_sha256: admin.secret_sha256,
        scopes: Scopes::ALL,
        customer: None,
        created_at: env.now,
    };
    assert_eq!(
        created,
        Done::Tenant {
            tenant: tid("t1"),
            admin_key: expected_key.clone()
        }
    );
    assert_eq!(
        env.store()
            .api_key_by_hash(admin.secret_sha256)
            .await
            .expect("by hash"),
        Some(expected_key)
    );

    let again = env.new_key("admin", Scopes::ALL, None);
    assert_eq!(
        env.refused(
            OPERATOR,
            Command::CreateTenant {
                tenant: tid("t1"),
                name: "Again".into(),
                admin_key: again.clone()
            }
        )
        .await,
        Refusal::TenantExists
    );
    // A taken secret refuses the whole tenant.
    assert_eq!(
        env.refused(
            OPERATOR,
            Command::CreateTenant {
                tenant: tid("t2"),
                name: "Two".into(),
                admin_key: admin.clone()
            }
        )
        .await,
        Refusal::ApiKeyExists
    );
    assert_eq!(
        env.refused(
            "t2",
            Command::CreateCustomer {
                id: cid("c"),
                name: String::new(),
                link: String::new(),
            }
        )
        .await,
        Refusal::TenantNotFound
    );
    // Only the operator tenant creates tenants.
    assert_eq!(
        env.refused(
            "t1",
            Command::CreateTenant {
                tenant: tid("t3"),
                name: "Three".into(),
                admin_key: again
            }
        )
        .await,
        Refusal::Forbidden
    );
    assert_eq!(
        env.refused(
            "nowhere",
            Command::CreateCustomer {
                id: cid("c"),
                name: String::new(),
                link: String::new(),
            }
        )
        .await,
        Refusal::TenantNotFound
    );

    let reader = env.new_key(
        "reader",
        Scopes {
            read: true,
            write: false,
            admin: false,
        },
        None,
    );
    let made = env
        .done(
            "t1",
            Command::CreateApiKey {
                key: reader.clone(),
            },
        )
        .await;
    assert_eq!(
        made,
        Done::ApiKey(ApiKey {
            tenant: tid("t1"),
            name: reader.name.clone(),
            secret_sha256: reader.secret_sha256,
            scopes: reader.scopes,
            customer: None,
            created_at: env.now,
        })
    );
    let same_name = env.new_key("reader", Scopes::ALL, None);
    assert_eq!(
        env.refused(
            "t1",
            Command::CreateApiKey {
                key: same_name.clone()
            }
        )
        .await,
        Refusal::ApiKeyExists
    );
    let mut same_secret = env.new_key("other", Scopes::ALL, None);
    same_secret.secret_sha256 = reader.secret_sha256;
    assert_eq!(
        env.refused(
            "t1",
            Command::CreateApiKey {
                key: same_secret.clone()
            }
        )
        .await,
        Refusal::ApiKeyExists
    );
    assert_eq!(
        env.refused(OPERATOR, Command::CreateApiKey { key: same_secret })
            .await,
        Refusal::ApiKeyExists
    );
    // A name is unique only within its tenant.
    env.done(OPERATOR, Command::CreateApiKey { key: same_name })
        .await;

    let ghost_key = env.new_key("ghost", Scopes::ALL, Some("ghost"));
    assert_eq!(
        env.refused("t1", Command::CreateApiKey { key: ghost_key })
            .await,
        Refusal::CustomerNotFound
    );
    env.customer("t1", "c1").await;
    let bound = env.new_key("c1-key", Scopes::ALL, Some("c1"));
    env.done("t1", Command::CreateApiKey { key: bound.clone() })
        .await;
    let found = env
        .store()
        .api_key_by_hash(bound.secret_sha256)
        .await
        .expect("by hash")
        .expect("key");
    assert_eq!((found.tenant, found.customer), (tid("t1"), Some(cid("c1"))));
}

/// Customers and wallets: creation, reads, and refusals of taken ids.
pub async fn customers_and_wallets(env: &mut Env) {
    env.tenant("t1").await;
    let made = env
        .done(
            "t1",
            Command::CreateCustomer {
                id: cid("c1"),
                name: "Alice".into(),
                link: String::new(),
            },
        )
        .await;
    let alice = Customer {
        tenant: tid("t1"),
        id: cid("c1"),
        name: "Alice".into(),
        link: String::new(),
        created_at: env.now,
    };
    assert_eq!(made, Done::Customer(alice.clone()));
    assert_eq!(
        env.refused(
            "t1",
            Command::CreateCustomer {
                id: cid("c1"),
                name: "Again".into(),
                link: String::new(),
            }
        )
        .await,
        Refusal::CustomerExists
    );
    assert_eq!(
        env.store()
            .customer(&tid("t1"), &cid("c1"))
            .await
            .expect("customer"),
        Some(alice)
    );
    assert_eq!(
        env.store()
            .customer(&tid("t1"), &cid("ghost"))
            .await
            .expect("customer"),
        None
    );

    let ghost = env.new_wallet("w0", "ghost", eur(), Floor::ZERO);
    assert_eq!(
        env.refused("t1", Command::CreateWallet { wallet: ghost })
            .await,
        Refusal::CustomerNotFound
    );

    let mut new = env.new_wallet("w1", "c1", minutes(), Floor::Limit(-30));
    new.valid_from = Some(START);
    new.valid_until = Some(START.plus_micros(3600 * SECOND));
    let wallet = as_wallet(
        env.done(
            "t1",
            Command::CreateWallet {
                wallet: new.clone(),
            },
        )
        .await,
    );
    assert_eq!(wallet, Wallet::open(tid("t1"), new.clone(), env.now));
    assert_eq!(
        (wallet.balance, wallet.held, wallet.status),
        (0, 0, WalletStatus::Active)
    );
    assert_eq!(env.read_wallet("t1", "w1").await, wallet);
    let mut again = env.new_wallet("w1", "c1", eur(), Floor::ZERO);
    assert_eq!(
        env.refused(
            "t1",
            Command::CreateWallet {
                wallet: again.clone()
            }
        )
        .await,
        Refusal::WalletExists
    );
    again.id = wid("w2");
    assert_eq!(
        env.store()
            .wallet(&tid("t1"), &wid("w2"))
            .await
            .expect("wallet"),
        None
    );
    env.done("t1", Command::CreateWallet { wallet: again })
        .await;

    assert_eq!(
        env.refused(
            "t1",
            Command::SetWalletStatus {
                wallet: wid("ghost"),
                status: WalletStatus::Suspended
            }
        )
        .await,
        Refusal::WalletNotFound
    );
    let suspended = as_wallet(
        env.done(
            "t1",
            Command::SetWalletStatus {
                wallet: wid("w1"),
                status: WalletStatus::Suspended,
            },
        )
        .await,
    );
    assert_eq!(
        suspended,
        Wallet {
            status: WalletStatus::Suspended,
            ..wallet
        }
    );
    assert_eq!(env.read_wallet("t1", "w1").await, suspended);
}

/// Top-ups, debits and adjustments move the balance and report it.
pub async fn postings_report_balance_after(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    let reference = Reference::known("payment", "order 17", "https://shop.example/orders/17");
    let id = env.mutation_id();
    let top_up = Command::Post {
        id,
        wallet: wid("w1"),
        kind: MutationKind::TopUp,
        amount: amount(1000),
        reference: reference.clone(),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    };
    let m1 = as_mutation(env.done("t1", top_up).await);
    assert_eq!(
        m1,
        Mutation {
            tenant: tid("t1"),
            id,
            wallet: wid("w1"),
            customer: cid("c1"),
            unit: eur(),
            kind: MutationKind::TopUp,
            amount: 1000,
            balance_after: 1000,
            reference,
            hold: None,
            transfer: None,
            counter_wallet: None,
            occurred_at: env.now,
            recorded_at: env.now,
            drawn: Vec::new(),
            reverses: None,
            metadata: prepaid_ledger::Metadata::default(),
        }
    );
    let earlier = env.now;
    env.advance_secs(5);
    let debit = Command::Post {
        id: env.mutation_id(),
        wallet: wid("w1"),
        kind: MutationKind::Debit,
        amount: amount(300),
        reference: Reference::default(),
        occurred_at: Some(earlier),
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    };
    let m2 = as_mutation(env.done("t1", debit).await);
    assert_eq!(
        (m2.kind, m2.amount, m2.balance_after),
        (MutationKind::Debit, -300, 700)
    );
    assert_eq!((m2.occurred_at, m2.recorded_at), (earlier, env.now));
    let m3 = as_mutation(
        env.done("t1", env.post("w1", MutationKind::Adjustment, -200))
            .await,
    );
    assert_eq!(
        (m3.kind, m3.amount, m3.balance_after),
        (MutationKind::Adjustment, -200, 500)
    );
    let m4 = as_mutation(
        env.done("t1", env.post("w1", MutationKind::Adjustment, 50))
            .await,
    );
    assert_eq!((m4.amount, m4.balance_after), (50, 550));
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 550);
    assert_eq!(
        env.store()
            .mutation(&tid("t1"), m2.id)
            .await
            .expect("mutation"),
        Some(m2.clone())
    );

    let reused = Command::Post {
        id,
        wallet: wid("w1"),
        kind: MutationKind::TopUp,
        amount: amount(5),
        reference: Reference::default(),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    };
    assert_eq!(env.refused("t1", reused).await, Refusal::MutationExists);
    // Requests the edge never builds are refused as bugs, not carried out or panicked
    // on: kinds with rules of their own, and moves of non-positive amounts.
    for kind in [
        MutationKind::HoldCommit,
        MutationKind::TransferIn,
        MutationKind::Expiry,
    ] {
        assert_eq!(
            env.refused("t1", env.post("w1", kind, 5)).await,
            Refusal::Internal
        );
    }
    for value in [0, -5] {
        for kind in [MutationKind::TopUp, MutationKind::Debit] {
            assert_eq!(
                env.refused("t1", env.post("w1", kind, value)).await,
                Refusal::Internal
            );
        }
        assert_eq!(
            env.refused("t1", env.place_hold("w1", value, None).1).await,
            Refusal::Internal
        );
    }
    env.wallet("t1", "c1", "w2").await;
    assert_eq!(
        env.refused("t1", env.transfer("w1", "w2", -5)).await,
        Refusal::Internal
    );
    assert_eq!(env.read_wallet("t1", "w1").await.held, 0);
    assert_eq!(
        env.refused("t1", env.post("ghost", MutationKind::TopUp, 5))
            .await,
        Refusal::WalletNotFound
    );
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 550);
    assert_eq!(
        env.all_mutations("t1", Some("w1"), None).await,
        vec![m1, m2, m3, m4]
    );
}

/// A refused debit, hold or transfer changes nothing.
pub async fn insufficient_funds_changes_nothing(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    env.wallet("t1", "c1", "w2").await;
    env.top_up("t1", "w1", 100).await;
    let short = Refusal::InsufficientFunds {
        available: 100,
        requested: 101,
    };
    let rows = vec![
        ("a debit", env.post("w1", MutationKind::Debit, 101)),
        ("a hold", env.place_hold("w1", 101, None).1),
        ("a transfer", env.transfer("w1", "w2", 101)),
    ];
    env.refuses_each("t1", rows, short).await;
    let w1 = env.read_wallet("t1", "w1").await;
    assert_eq!((w1.balance, w1.held), (100, 0));
    assert_eq!(env.read_wallet("t1", "w2").await.balance, 0);
    assert_eq!(env.all_mutations("t1", None, None).await.len(), 1);
    let last = as_mutation(
        env.done("t1", env.post("w1", MutationKind::Debit, 100))
            .await,
    );
    assert_eq!(last.balance_after, 0);
}

/// A floor lets a wallet go that far below zero; an unlimited one has no bound.
/// Adjustments are not held to the floor.
pub async fn floor_limit_and_unlimited(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    let limited = env.new_wallet("limited", "c1", eur(), Floor::Limit(-500));
    env.done("t1", Command::CreateWallet { wallet: limited })
        .await;
    let m = as_mutation(
        env.done("t1", env.post("limited", MutationKind::Debit, 500))
            .await,
    );
    assert_eq!(m.balance_after, -500);
    let none_left = Refusal::InsufficientFunds {
        available: 0,
        requested: 1,
    };
    assert_eq!(
        env.refused("t1", env.post("limited", MutationKind::Debit, 1))
            .await,
        none_left
    );
    assert_eq!(
        env.refused("t1", env.place_hold("limited", 1, None).1)
            .await,
        none_left
    );
    assert_eq!(env.top_up("t1", "limited", 200).await.balance_after, -300);

    let unlimited = env.new_wallet("unlimited", "c1", eur(), Floor::Unlimited);
    env.done("t1", Command::CreateWallet { wallet: unlimited })
        .await;
    let m = as_mutation(
        env.done("t1", env.post("unlimited", MutationKind::Debit, AMOUNT_MAX))
            .await,
    );
    assert_eq!(m.balance_after, -AMOUNT_MAX);
    let m = as_mutation(
        env.done("t1", env.post("unlimited", MutationKind::Debit, 1))
            .await,
    );
    assert_eq!(m.balance_after, -AMOUNT_MAX - 1);
    env.done("t1", env.place_hold("unlimited", 5, None).1).await;
    assert_eq!(env.read_wallet("t1", "unlimited").await.held, 5);

    env.wallet("t1", "c1", "zero").await;
    env.top_up("t1", "zero", 100).await;
    let m = as_mutation(
        env.done("t1", env.post("zero", MutationKind::Adjustment, -150))
            .await,
    );
    assert_eq!(m.balance_after, -50);
    assert_eq!(
        env.refused("t1", env.post("zero", MutationKind::Debit, 1))
            .await,
        Refusal::InsufficientFunds {
            available: -50,
            requested: 1
        }
    );
    // A correction may leave a wallet below its floor: that is no breach.
    assert_eq!(
        env.store()
            .check_invariants()
            .await
            .expect("check_invariants"),
        []
    );
}

/// Suspended and expired wallets refuse top-ups, debits, holds and transfers, as do
/// wallets outside their validity window; adjustments and settling holds still work.
pub async fn status_and_validity(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    env.wallet("t1", "c1", "w2").await;
    env.top_up("t1", "w1", 1000).await;
    env.top_up("t1", "w2", 1000).await;
    let (hold, place) = env.place_hold("w1", 100, None);
    env.done("t1", place).await;

    env.done(
        "t1",
        Command::SetWalletStatus {
            wallet: wid("w1"),
            status: WalletStatus::Suspended,
        },
    )
    .await;
    let suspended = Refusal::WalletNotActive {
        status: WalletStatus::Suspended,
    };
    let rows = vec![
        ("a top-up", env.post("w1", MutationKind::TopUp, 1)),
        ("a debit", env.post("w1", MutationKind::Debit, 1)),
        ("a hold", env.place_hold("w1", 1, None).1),
        ("a transfer out", env.transfer("w1", "w2", 1)),
        ("a transfer in", env.transfer("w2", "w1", 1)),
    ];
    env.refuses_each("t1", rows, suspended).await;
    assert_eq!(
        as_mutation(
            env.done("t1", env.post("w1", MutationKind::Adjustment, 10))
                .await
        )
        .balance_after,
        1010
    );
    let (_, committed) = as_hold(env.done("t1", env.commit(hold, Some(40))).await);
    assert_eq!(committed.expect("commit mutation").balance_after, 970);

    env.done(
        "t1",
        Command::SetWalletStatus {
            wallet: wid("w1"),
            status: WalletStatus::Active,
        },
    )
    .await;
    assert_eq!(
        as_mutation(
            env.done("t1", env.post("w1", MutationKind::Debit, 10))
                .await
        )
        .balance_after,
        960
    );
    env.done(
        "t1",
        Command::SetWalletStatus {
            wallet: wid("w1"),
            status: WalletStatus::Expired,
        },
    )
    .await;
    assert_eq!(
        env.refused("t1", env.post("w1", MutationKind::TopUp, 1))
            .await,
        Refusal::WalletNotActive {
            status: WalletStatus::Expired
        }
    );

    let mut later = env.new_wallet("later", "c1", eur(), Floor::ZERO);
    later.valid_from = Some(env.now.plus_micros(60 * SECOND));
    env.done("t1", Command::CreateWallet { wallet: later })
        .await;
    let mut ending = env.new_wallet("ending", "c1", eur(), Floor::ZERO);
    ending.valid_until = Some(env.now.plus_micros(60 * SECOND));
    env.done("t1", Command::CreateWallet { wallet: ending })
        .await;
    assert_eq!(
        env.refused("t1", env.post("later", MutationKind::TopUp, 1))
            .await,
        Refusal::OutsideValidity
    );
    env.top_up("t1", "ending", 10).await;
    env.advance_secs(60);
    // The window includes `valid_from` and excludes `valid_until`.
    env.top_up("t1", "later", 10).await;
    let rows = vec![
        ("a top-up", env.post("ending", MutationKind::TopUp, 1)),
        ("a debit", env.post("ending", MutationKind::Debit, 1)),
        ("a hold", env.place_hold("ending", 1, None).1),
    ];
    env.refuses_each("t1", rows, Refusal::OutsideValidity).await;
}

/// Holds reserve funds; commits post part or all of them; releases give them back.
pub async fn holds_place_commit_release(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    let funded = env.top_up("t1", "w1", 1000).await;

    let reference = Reference::known("session", "call 9", "");
    let h1 = env.hold_id();
    let place = Command::PlaceHold {
        id: h1,
        wallet: wid("w1"),
        amount: amount(300),
        reference: reference.clone(),
        expires_at: None,
        metadata: prepaid_ledger::Metadata::default(),
    };
    let (hold, mutation) = as_hold(env.done("t1", place).await);
    assert_eq!(mutation, None);
    assert_eq!(
        hold,
        Hold {
            tenant: tid("t1"),
            id: h1,
            wallet: wid("w1"),
            customer: cid("c1"),
            direction: HoldDirection::Debit,
            amount: 300,
            committed_amount: None,
            status: HoldStatus::Pending,
            reference,
            expires_at: None,
            created_at: env.now,
            settled_at: None,
            // It reserves what it would draw: from the grant the top-up made.
            reserved: vec![prepaid_ledger::Draw {
                grant: funded.id,
                amount: 300,
            }],
            metadata: prepaid_ledger::Metadata::default(),
        }
    );
    assert_eq!(env.read_hold("t1", h1).await, hold);
    let w = env.read_wallet("t1", "w1").await;
    assert_eq!((w.balance, w.held), (1000, 300));
    assert_eq!(
        env.refused("t1", env.post("w1", MutationKind::Debit, 701))
            .await,
        Refusal::InsufficientFunds {
            available: 700,
            requested: 701
        }
    );

    env.advance_secs(1);
    let (committed, m) = as_hold(env.done("t1", env.commit(h1, Some(200))).await);
    assert_eq!(
        committed,
        Hold {
            committed_amount: Some(200),
            status: HoldStatus::Committed,
            settled_at: Some(env.now),
            ..hold
        }
    );
    let m = m.expect("commit mutation");
    assert_eq!(
        (m.kind, m.amount, m.balance_after, m.hold),
        (MutationKind::HoldCommit, -200, 800, Some(h1))
    );
    assert_eq!(
        env.store()
            .mutation(&tid("t1"), m.id)
            .await
            .expect("mutation"),
        Some(m)
    );
    assert_eq!(env.read_hold("t1", h1).await, committed);
    let w = env.read_wallet("t1", "w1").await;
    assert_eq!((w.balance, w.held), (800, 0));
    let not_pending = Refusal::HoldNotPending {
        status: HoldStatus::Committed,
    };
    assert_eq!(env.refused("t1", env.commit(h1, None)).await, not_pending);
    assert_eq!(env.refused("t1", env.release(h1)).await, not_pending);

    let (h2, place) = env.place_hold("w1", 100, None);
    env.done("t1", place).await;
    assert_eq!(
        env.refused("t1", env.commit(h2, Some(150))).await,
        Refusal::CommitExceedsHold {
            held: 100,
            requested: 150
        }
    );
    assert_eq!(env.read_wallet("t1", "w1").await.held, 100);
    let (released, m) = as_hold(env.done("t1", env.release(h2)).await);
    assert_eq!(
        (
            released.status,
            released.committed_amount,
            released.settled_at
        ),
        (HoldStatus::Released, None, Some(env.now))
    );
    let m = m.expect("release mutation");
    assert_eq!(
        (m.kind, m.amount, m.balance_after, m.hold),
        (MutationKind::HoldRelease, 0, 800, Some(h2))
    );
    assert_eq!(env.read_wallet("t1", "w1").await.held, 0);
    assert_eq!(
        env.refused("t1", env.release(h2)).await,
        Refusal::HoldNotPending {
            status: HoldStatus::Released
        }
    );

    let (h3, place) = env.place_hold("w1", 50, None);
    env.done("t1", place).await;
    let (all, m) = as_hold(env.done("t1", env.commit(h3, None)).await);
    assert_eq!(all.committed_amount, Some(50));
    assert_eq!(m.expect("commit mutation").balance_after, 750);
    let reuse = Command::PlaceHold {
        id: h3,
        wallet: wid("w1"),
        amount: amount(1),
        reference: Reference::default(),
        expires_at: None,
        metadata: prepaid_ledger::Metadata::default(),
    };
    assert_eq!(env.refused("t1", reuse).await, Refusal::HoldExists);
    assert_eq!(
        env.refused("t1", env.commit(env.hold_id(), None)).await,
        Refusal::HoldNotFound
    );
    assert_eq!(
        env.refused("t1", env.release(env.hold_id())).await,
        Refusal::HoldNotFound
    );

    let (h4, place) = env.place_hold("w1", 10, None);
    env.done("t1", place).await;
    let taken_id = env.all_mutations("t1", Some("w1"), None).await[0].id;
    let taken = Command::CommitHold {
        hold: h4,
        amount: None,
        mutation_id: taken_id,
        reference: None,
    };
    assert_eq!(env.refused("t1", taken).await, Refusal::MutationExists);
    assert_eq!(env.read_hold("t1", h4).await.status, HoldStatus::Pending);
    // Committing nothing releases the whole hold.
    let (zero, m) = as_hold(env.done("t1", env.commit(h4, Some(0))).await);
    assert_eq!(
        (zero.status, zero.committed_amount),
        (HoldStatus::Committed, Some(0))
    );
    assert_eq!(m.expect("commit mutation").amount, 0);
    let w = env.read_wallet("t1", "w1").await;
    assert_eq!((w.balance, w.held), (750, 0));
}

/// A hold past its `expires_at` cannot be committed, may still be released, and is
/// expired by the sweep.
pub async fn hold_expiry_via_sweep(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    env.top_up("t1", "w1", 1000).await;
    let expires_at = Some(env.now.plus_micros(10 * SECOND));
    let (h1, place) = env.place_hold("w1", 300, expires_at);
    env.done("t1", place).await;
    let (h2, place) = env.place_hold("w1", 100, expires_at);
    env.done("t1", place).await;
    let (h3, place) = env.place_hold("w1", 50, None);
    env.done("t1", place).await;
    assert_eq!(
        env.store().sweep(env.now).await.expect("sweep"),
        SweepReport::default()
    );

    env.advance_secs(10);
    assert_eq!(
        env.refused("t1", env.commit(h1, None)).await,
        Refusal::HoldExpired
    );
    let (released, _) = as_hold(env.done("t1", env.release(h2)).await);
    assert_eq!(released.status, HoldStatus::Released);
    assert_eq!(
        env.store().sweep(env.now).await.expect("sweep"),
        SweepReport {
            holds_expired: 1,
            wallets_expired: 0,
            grants_expired: 0,
        }
    );
    let expired = env.read_hold("t1", h1).await;
    assert_eq!(
        (expired.status, expired.settled_at, expired.committed_amount),
        (HoldStatus::Expired, Some(env.now), None)
    );
    assert_eq!(env.read_hold("t1", h3).await.status, HoldStatus::Pending);
    let w = env.read_wallet("t1", "w1").await;
    assert_eq!((w.balance, w.held), (1000, 50));
    let mutations = env.all_mutations("t1", Some("w1"), None).await;
    let release = mutations
        .iter()
        .find(|m| m.hold == Some(h1))
        .expect("a mutation for the expired hold");
    assert_eq!(
        (release.kind, release.amount, release.balance_after),
        (MutationKind::HoldRelease, 0, 1000)
    );
    assert_eq!(
        env.store().sweep(env.now).await.expect("sweep"),
        SweepReport::default()
    );
    assert_eq!(
        env.refused("t1", env.release(h1)).await,
        Refusal::HoldNotPending {
            status: HoldStatus::Expired
        }
    );
}

/// A wallet past its `valid_until` is expired by the sweep: holds released, balance
/// taken by the expiry account.
pub async fn wallet_expiry_via_sweep(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    let until = Some(env.now.plus_micros(100 * SECOND));
    for id in ["full", "empty"] {
        let mut new = env.new_wallet(id, "c1", eur(), Floor::ZERO);
        new.valid_until = until;
        env.done("t1", Command::CreateWallet { wallet: new }).await;
    }
    env.wallet("t1", "c1", "lasting").await;
    env.top_up("t1", "full", 500).await;
    env.top_up("t1", "lasting", 10).await;
    let (hold, place) = env.place_hold("full", 100, None);
    env.done("t1", place).await;
    env.advance_secs(99);
    assert_eq!(
        env.store().sweep(env.now).await.expect("sweep"),
        SweepReport::default()
    );

    env.advance_secs(1);
    assert_eq!(
        env.store().sweep(env.now).await.expect("sweep"),
        SweepReport {
            holds_expired: 0,
            wallets_expired: 2,
            grants_expired: 0,
        }
    );
    let full = env.read_wallet("t1", "full").await;
    assert_eq!(
        (full.status, full.balance, full.held),
        (WalletStatus::Expired, 0, 0)
    );
    let mutations = env.all_mutations("t1", Some("full"), None).await;
    let last = mutations.last().expect("mutations");
    assert_eq!(
        (last.kind, last.amount, last.balance_after),
        (MutationKind::Expiry, -500, 0)
    );
    assert!(
        mutations
            .iter()
            .any(|m| m.kind == MutationKind::HoldRelease && m.hold == Some(hold))
    );
    assert_eq!(env.read_hold("t1", hold).await.status, HoldStatus::Released);
    let empty = env.read_wallet("t1", "empty").await;
    assert_eq!((empty.status, empty.balance), (WalletStatus::Expired, 0));
    assert!(
        env.all_mutations("t1", Some("empty"), None)
            .await
            .is_empty()
    );
    let lasting = env.read_wallet("t1", "lasting").await;
    assert_eq!(
        (lasting.status, lasting.balance),
        (WalletStatus::Active, 10)
    );
    assert_eq!(
        env.store().sweep(env.now).await.expect("sweep"),
        SweepReport::default()
    );
    assert_eq!(
        env.refused("t1", env.post("full", MutationKind::TopUp, 1))
            .await,
        Refusal::WalletNotActive {
            status: WalletStatus::Expired
        }
    );
}

/// One sweep expires at most `SWEEP_BATCH_MAX` holds and as many wallets; the next
/// one takes the rest.
pub async fn sweep_takes_at_most_the_batch_max(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w").await;
    let count = SWEEP_BATCH_MAX + 1;
    env.top_up("t1", "w", i64::try_from(count).expect("fits"))
        .await;
    let until = Some(env.now.plus_micros(SECOND));
    let mut batch: Vec<Request> = (0..count)
        .map(|_| request("t1", env.place_hold("w", 1, until).1))
        .collect();
    for i in 0..count {
        let mut new = env.new_wallet(&format!("x{i:05}"), "c1", eur(), Floor::ZERO);
        new.valid_until = until;
        batch.push(request("t1", Command::CreateWallet { wallet: new }));
    }
    for outcome in env.apply(batch).await {
        done(outcome);
    }
    env.advance_secs(1);
    let store = env.store();
    let full = SweepReport {
        holds_expired: SWEEP_BATCH_MAX,
        wallets_expired: SWEEP_BATCH_MAX,
        grants_expired: 0,
    };
    assert_eq!(store.sweep(env.now).await.expect("sweep"), full);
    assert_eq!(
        store.sweep(env.now).await.expect("sweep"),
        SweepReport {
            holds_expired: 1,
            wallets_expired: 1,
            grants_expired: 0,
        }
    );
    assert_eq!(
        store.sweep(env.now).await.expect("sweep"),
        SweepReport::default()
    );
    let w = env.read_wallet("t1", "w").await;
    assert_eq!(
        (w.balance, w.held),
        (i64::try_from(count).expect("fits"), 0)
    );
}

/// Transfers move value between two wallets of one unit, as two linked legs.
pub async fn transfers(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.customer("t1", "c2").await;
    env.wallet("t1", "c1", "w1").await;
    env.wallet("t1", "c1", "w2").await;
    env.wallet("t1", "c2", "other").await;
    let minutes_wallet = env.new_wallet("min", "c1", minutes(), Floor::ZERO);
    env.done(
        "t1",
        Command::CreateWallet {
            wallet: minutes_wallet,
        },
    )
    .await;
    env.top_up("t1", "w1", 1000).await;

    let command = env.transfer("w1", "w2", 300);
    let Command::Transfer {
        id,
        debit_id,
        credit_id,
        ..
    } = command.clone()
    else {
        unreachable!("a transfer command")
    };
    let t = as_transfer(env.done("t1", command).await);
    assert_eq!(t.id, id);
    assert_eq!(
        (
            t.debit.id,
            t.debit.kind,
            t.debit.amount,
            t.debit.balance_after
        ),
        (debit_id, MutationKind::TransferOut, -300, 700)
    );
    assert_eq!(
        (
            t.credit.id,
            t.credit.kind,
            t.credit.amount,
            t.credit.balance_after
        ),
        (credit_id, MutationKind::TransferIn, 300, 300)
    );
    assert_eq!((t.debit.transfer, t.credit.transfer), (Some(id), Some(id)));
    assert_eq!(
        (t.debit.wallet.clone(), t.debit.counter_wallet.clone()),
        (wid("w1"), Some(wid("w2")))
    );
    assert_eq!(
        (t.credit.wallet.clone(), t.credit.counter_wallet.clone()),
        (wid("w2"), Some(wid("w1")))
    );
    assert_eq!(
        env.store()
            .mutation(&tid("t1"), debit_id)
            .await
            .expect("mutation"),
        Some(t.debit)
    );
    assert_eq!(
        env.store()
            .mutation(&tid("t1"), credit_id)
            .await
            .expect("mutation"),
        Some(t.credit)
    );
    // Between customers of one tenant, too.
    as_transfer(env.done("t1", env.transfer("w1", "other", 100)).await);

    assert_eq!(
        env.refused("t1", env.transfer("w1", "min", 1)).await,
        Refusal::UnitMismatch
    );
    assert_eq!(
        env.refused("t1", env.transfer("w1", "w1", 1)).await,
        Refusal::SameWallet
    );
    assert_eq!(
        env.refused("t1", env.transfer("w1", "ghost", 1)).await,
        Refusal::WalletNotFound
    );
    assert_eq!(
        env.refused("t1", env.transfer("ghost", "w1", 1)).await,
        Refusal::WalletNotFound
    );
    let mut same_ids = env.transfer("w1", "w2", 1);
    if let Command::Transfer {
        debit_id,
        credit_id,
        ..
    } = &mut same_ids
    {
        *credit_id = *debit_id;
    }
    assert_eq!(env.refused("t1", same_ids).await, Refusal::MutationExists);
    let mut taken = env.transfer("w1", "w2", 1);
    if let Command::Transfer { credit_id: c, .. } = &mut taken {
        *c = credit_id;
    }
    assert_eq!(env.refused("t1", taken).await, Refusal::MutationExists);
    let balances = [
        env.read_wallet("t1", "w1").await.balance,
        env.read_wallet("t1", "w2").await.balance,
        env.read_wallet("t1", "other").await.balance,
    ];
    assert_eq!(balances, [600, 300, 100]);
}

/// A repeated idempotency key replays the first outcome; another request under the
/// same key conflicts; a refused request records no key.
pub async fn idempotency_replay_and_conflict(env: &mut Env) {
    env.tenant("t1").await;
    env.tenant("t2").await;
    for t in ["t1", "t2"] {
        env.customer(t, "c1").await;
        env.wallet(t, "c1", "w1").await;
    }
    let first = keyed(
        request("t1", env.post("w1", MutationKind::TopUp, 100)),
        "k1",
        1,
    );
    let outcome = env.one(first).await;
    let original = done(outcome.clone());
    // A retry carries new ids (the server makes them per attempt), same key and body.
    let retry = keyed(
        request("t1", env.post("w1", MutationKind::TopUp, 100)),
        "k1",
        1,
    );
    assert_eq!(
        env.one(retry).await,
        Outcome::Done {
            done: original.clone(),
            replayed: true
        }
    );
    let other = keyed(
        request("t1", env.post("w1", MutationKind::TopUp, 100)),
        "k1",
        2,
    );
    assert_eq!(refusal(env.one(other).await), Refusal::IdempotencyConflict);
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 100);
    assert_eq!(env.all_mutations("t1", Some("w1"), None).await.len(), 1);

    // The same key in another tenant is another key.
    let elsewhere = keyed(
        request("t2", env.post("w1", MutationKind::TopUp, 100)),
        "k1",
        1,
    );
    done(env.one(elsewhere).await);

    // A refusal records nothing: the same request may succeed later.
    let debit = env.post("w1", MutationKind::Debit, 500);
    let attempt = keyed(request("t1", debit.clone()), "k2", 3);
    assert_eq!(
        refusal(env.one(attempt.clone()).await),
        Refusal::InsufficientFunds {
            available: 100,
            requested: 500
        }
    );
    env.top_up("t1", "w1", 1000).await;
    let carried = as_mutation(done(env.one(attempt.clone()).await));
    assert_eq!(carried.balance_after, 600);
    assert_eq!(
        env.one(attempt).await,
        Outcome::Done {
            done: Done::Mutation(carried),
            replayed: true
        }
    );

    // Within one batch, the second use of a key replays the first.
    let twice = keyed(
        request("t1", env.post("w1", MutationKind::Debit, 1)),
        "k3",
        4,
    );
    let outcomes = env.apply(vec![twice.clone(), twice]).await;
    let first = done(outcomes[0].clone());
    assert_eq!(
        outcomes[1],
        Outcome::Done {
            done: first,
            replayed: true
        }
    );
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 599);
}

/// Every kind of outcome replays as it was first answered, even after the entity it
/// shows has changed.
pub async fn idempotency_replays_every_kind(env: &mut Env) {
    env.tenant("t1").await;
    let mut n = 0u8;
    let mut check = async |env: &Env, tenant: &str, command: Command| -> (Request, Outcome) {
        n += 1;
        let request = keyed(request(tenant, command), &format!("key-{n}"), n);
        let first = done(env.one(request.clone()).await);
        let replay = Outcome::Done {
            done: first,
            replayed: true,
        };
        assert_eq!(env.one(request.clone()).await, replay);
        (request, replay)
    };
    let admin_key = env.new_key("admin", Scopes::ALL, None);
    check(
        env,
        OPERATOR,
        Command::CreateTenant {
            tenant: tid("t2"),
            name: "Two".into(),
            admin_key,
        },
    )
    .await;
    let key = env.new_key("reader", Scopes::ALL, None);
    check(env, "t1", Command::CreateApiKey { key }).await;
    check(
        env,
        "t1",
        Command::CreateCustomer {
            id: cid("c1"),
            name: "Alice".into(),
            link: String::new(),
        },
    )
    .await;
    let new = env.new_wallet("w1", "c1", eur(), Floor::ZERO);
    let created = check(env, "t1", Command::CreateWallet { wallet: new }).await;
    env.wallet("t1", "c1", "w2").await;
    let suspended = check(
        env,
        "t1",
        Command::SetWalletStatus {
            wallet: wid("w1"),
            status: WalletStatus::Suspended,
        },
    )
    .await;
    check(
        env,
        "t1",
        Command::SetWalletStatus {
            wallet: wid("w1"),
            status: WalletStatus::Active,
        },
    )
    .await;
    check(env, "t1", env.post("w1", MutationKind::TopUp, 1000)).await;
    check(env, "t1", env.transfer("w1", "w2", 100)).await;
    let (h1, place) = env.place_hold("w1", 100, None);
    let placed = check(env, "t1", place).await;
    check(env, "t1", env.commit(h1, Some(60))).await;
    let (h2, place) = env.place_hold("w1", 100, None);
    check(env, "t1", place).await;
    check(env, "t1", env.release(h2)).await;
    let w = env.read_wallet("t1", "w1").await;
    assert_eq!(
        (w.status, w.balance, w.held),
        (WalletStatus::Active, 840, 0)
    );
    for (request, first) in [created, suspended, placed] {
        assert_eq!(env.one(request).await, first);
    }
}

/// A refused request in the middle of a batch leaves its batch-mates alone, and each
/// request sees what the earlier ones did.
pub async fn batch_refusals_leave_batch_mates_alone(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    env.wallet("t1", "c1", "w2").await;
    let top_up = env.post("w1", MutationKind::TopUp, 100);
    let Command::Post { id: top_up_id, .. } = top_up.clone() else {
        unreachable!("a post")
    };
    let w3 = env.new_wallet("w3", "c1", eur(), Floor::ZERO);
    let batch = vec![
        request("t1", top_up),
        request("t1", env.post("w1", MutationKind::Debit, 500)),
        request("t1", env.post("w1", MutationKind::Debit, 60)),
        request("t1", Command::CreateWallet { wallet: w3 }),
        request("t1", env.post("w3", MutationKind::TopUp, 7)),
        request("t1", env.post("ghost", MutationKind::Debit, 1)),
        request("t1", env.transfer("w1", "w2", 40)),
        request(
            "t1",
            Command::Post {
                id: top_up_id,
                wallet: wid("w2"),
                kind: MutationKind::TopUp,
                amount: amount(1),
                reference: Reference::default(),
                occurred_at: None,
                terms: prepaid_ledger::GrantTerms::default(),
                metadata: prepaid_ledger::Metadata::default(),
            },
        ),
        request("nowhere", env.post("w1", MutationKind::TopUp, 1)),
        request("t1", env.post("w2", MutationKind::Debit, 41)),
    ];
    let mut outcomes = env.apply(batch).await.into_iter();
    let mut next = || outcomes.next().expect("an outcome");
    assert_eq!(as_mutation(done(next())).balance_after, 100);
    assert_eq!(
        refusal(next()),
        Refusal::InsufficientFunds {
            available: 100,
            requested: 500
        }
    );
    assert_eq!(as_mutation(done(next())).balance_after, 40);
    assert_eq!(as_wallet(done(next())).id, wid("w3"));
    assert_eq!(as_mutation(done(next())).balance_after, 7);
    assert_eq!(refusal(next()), Refusal::WalletNotFound);
    let t = as_transfer(done(next()));
    assert_eq!((t.debit.balance_after, t.credit.balance_after), (0, 40));
    assert_eq!(refusal(next()), Refusal::MutationExists);
    assert_eq!(refusal(next()), Refusal::TenantNotFound);
    assert_eq!(
        refusal(next()),
        Refusal::InsufficientFunds {
            available: 40,
            requested: 41
        }
    );
    let balances = [
        env.read_wallet("t1", "w1").await.balance,
        env.read_wallet("t1", "w2").await.balance,
        env.read_wallet("t1", "w3").await.balance,
    ];
    assert_eq!(balances, [0, 40, 7]);
}

/// Equal ids in two tenants name two independent things; nothing of one tenant is
/// found through another.
pub async fn tenant_isolation(env: &mut Env) {
    env.tenant("a").await;
    env.tenant("b").await;
    for t in ["a", "b"] {
        env.customer(t, "c").await;
        env.wallet(t, "c", "w").await;
    }
    env.top_up("a", "w", 100).await;
    env.top_up("b", "w", 5).await;
    assert_eq!(env.read_wallet("a", "w").await.balance, 100);
    assert_eq!(env.read_wallet("b", "w").await.balance, 5);

    env.customer("b", "only-b").await;
    env.wallet("b", "only-b", "wb").await;
    let mb = env.top_up("b", "wb", 50).await;
    let (hb, place) = env.place_hold("wb", 10, None);
    env.done("b", place).await;

    let store = env.store();
    assert_eq!(
        store.wallet(&tid("a"), &wid("wb")).await.expect("wallet"),
        None
    );
    assert_eq!(
        store
            .customer(&tid("a"), &cid("only-b"))
            .await
            .expect("customer"),
        None
    );
    assert_eq!(
        store.mutation(&tid("a"), mb.id).await.expect("mutation"),
        None
    );
    assert_eq!(store.hold(&tid("a"), hb).await.expect("hold"), None);
    let customers = store
        .customers(&tid("a"), None, PAGE_SIZE_MAX)
        .await
        .expect("customers");
    assert_eq!(
        customers
            .items
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["c"]
    );
    let wallets = store
        .wallets(
            &tid("a"),
            &WalletQuery {
                limit: PAGE_SIZE_MAX,
                ..WalletQuery::default()
            },
        )
        .await
        .expect("wallets");
    assert_eq!(
        wallets
            .items
            .iter()
            .map(|w| w.id.as_str())
            .collect::<Vec<_>>(),
        ["w"]
    );
    let mutations = env.all_mutations("a", None, None).await;
    assert_eq!(mutations.len(), 1);
    assert!(mutations.iter().all(|m| m.tenant == tid("a")));
    assert!(
        env.all_mutations("a", None, Some("only-b"))
            .await
            .is_empty()
    );

    assert_eq!(
        env.refused("a", env.post("wb", MutationKind::Debit, 1))
            .await,
        Refusal::WalletNotFound
    );
    assert_eq!(
        env.refused("a", env.commit(hb, None)).await,
        Refusal::HoldNotFound
    );
    assert_eq!(
        env.refused("a", env.release(hb)).await,
        Refusal::HoldNotFound
    );
    let stranger = env.new_wallet("x", "only-b", eur(), Floor::ZERO);
    assert_eq!(
        env.refused("a", Command::CreateWallet { wallet: stranger })
            .await,
        Refusal::CustomerNotFound
    );
    assert_eq!(env.read_wallet("b", "wb").await.held, 10);
}

/// A caller restricted to one customer finds nothing of any other customer.
pub async fn customer_only_restriction(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.customer("t1", "c2").await;
    env.wallet("t1", "c1", "w1").await;
    env.wallet("t1", "c2", "w2").await;
    env.top_up("t1", "w1", 100).await;
    env.top_up("t1", "w2", 100).await;
    let (h2, place) = env.place_hold("w2", 10, None);
    env.done("t1", place).await;

    let as_c1 = |command: Command| restricted(request("t1", command), "c1");
    let refused = async |request: Request| refusal(env.one(request).await);
    assert_eq!(
        refused(as_c1(env.post("w2", MutationKind::Debit, 1))).await,
        Refusal::WalletNotFound
    );
    assert_eq!(
        refused(as_c1(env.place_hold("w2", 1, None).1)).await,
        Refusal::WalletNotFound
    );
    assert_eq!(
        refused(as_c1(env.commit(h2, None))).await,
        Refusal::HoldNotFound
    );
    assert_eq!(refused(as_c1(env.release(h2))).await, Refusal::HoldNotFound);
    assert_eq!(
        refused(as_c1(Command::SetWalletStatus {
            wallet: wid("w2"),
            status: WalletStatus::Suspended
        }))
        .await,
        Refusal::WalletNotFound
    );
    assert_eq!(
        refused(as_c1(env.transfer("w1", "w2", 1))).await,
        Refusal::WalletNotFound
    );
    assert_eq!(
        refused(as_c1(env.transfer("w2", "w1", 1))).await,
        Refusal::WalletNotFound
    );
    let for_c2 = env.new_wallet("w3", "c2", eur(), Floor::ZERO);
    assert_eq!(
        refused(as_c1(Command::CreateWallet { wallet: for_c2 })).await,
        Refusal::CustomerNotFound
    );
    let key = env.new_key("mine", Scopes::ALL, Some("c1"));
    assert_eq!(
        refused(as_c1(Command::CreateApiKey { key })).await,
        Refusal::Forbidden
    );
    assert_eq!(
        refused(as_c1(Command::CreateCustomer {
            id: cid("c3"),
            name: String::new(),
            link: String::new(),
        }))
        .await,
        Refusal::Forbidden
    );
    let admin_key = env.new_key("admin", Scopes::ALL, None);
    let tenant = restricted(
        request(
            OPERATOR,
            Command::CreateTenant {
                tenant: tid("t9"),
                name: String::new(),
                admin_key,
            },
        ),
        "c1",
    );
    assert_eq!(refused(tenant).await, Refusal::Forbidden);

    // A key another customer used reveals nothing to this one.
    let theirs = keyed(
        request("t1", env.post("w2", MutationKind::Debit, 5)),
        "shared",
        7,
    );
    done(env.one(theirs.clone()).await);
    let mut mine = theirs;
    mine.customer_only = Some(cid("c1"));
    assert_eq!(refused(mine).await, Refusal::IdempotencyConflict);

    // Its own customer's things work as usual.
    assert_eq!(
        as_mutation(done(
            env.one(as_c1(env.post("w1", MutationKind::Debit, 30)))
                .await
        ))
        .balance_after,
        70
    );
    let mine = env.new_wallet("w4", "c1", eur(), Floor::ZERO);
    done(env.one(as_c1(Command::CreateWallet { wallet: mine })).await);
    done(env.one(as_c1(env.transfer("w1", "w4", 20))).await);
    let w2 = env.read_wallet("t1", "w2").await;
    assert_eq!((w2.balance, w2.held), (95, 10));
}

/// Customers page by id, at most `PAGE_SIZE_MAX` at a time.
pub async fn paging_customers_at_limit(env: &mut Env) {
    env.tenant("t1").await;
    let ids: Vec<String> = (0..=PAGE_SIZE_MAX).map(|i| format!("c{i:05}")).collect();
    let batch = ids
        .iter()
        .map(|id| {
            request(
                "t1",
                Command::CreateCustomer {
                    id: cid(id),
                    name: String::new(),
                    link: String::new(),
                },
            )
        })
        .collect();
    for outcome in env.apply(batch).await {
        done(outcome);
    }
    let store = env.store();
    let t1 = tid("t1");
    let first = store
        .customers(&t1, None, PAGE_SIZE_MAX)
        .await
        .expect("customers");
    assert_eq!(first.items.len(), PAGE_SIZE_MAX);
    assert!(
        first
            .items
            .iter()
            .map(|c| c.id.as_str())
            .eq(ids[..PAGE_SIZE_MAX].iter().map(String::as_str))
    );
    assert_eq!(first.next, Some(cid(&ids[PAGE_SIZE_MAX - 1])));
    let second = store
        .customers(&t1, first.next.as_ref(), PAGE_SIZE_MAX)
        .await
        .expect("customers");
    assert_eq!(
        second
            .items
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        [ids[PAGE_SIZE_MAX].as_str()]
    );
    assert_eq!(second.next, None);
    // Exactly a full page left: no next page.
    let rest = store
        .customers(&t1, Some(&cid(&ids[0])), PAGE_SIZE_MAX)
        .await
        .expect("customers");
    assert_eq!((rest.items.len(), rest.next), (PAGE_SIZE_MAX, None));
    // A larger limit is cut to the maximum.
    let capped = store
        .customers(&t1, None, PAGE_SIZE_MAX + 10)
        .await
        .expect("customers");
    assert_eq!(capped.items.len(), PAGE_SIZE_MAX);
    let small = store.customers(&t1, None, 2).await.expect("customers");
    assert_eq!(small.items.len(), 2);
    assert_eq!(small.next, Some(cid(&ids[1])));
}

/// Wallets page by id, for one customer or for the tenant.
pub async fn paging_wallets_at_limit(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.customer("t1", "c2").await;
    let mut batch: Vec<Request> = (0..=PAGE_SIZE_MAX)
        .map(|i| {
            request(
                "t1",
                Command::CreateWallet {
                    wallet: env.new_wallet(&format!("w{i:05}"), "c1", eur(), Floor::ZERO),
                },
            )
        })
        .collect();
    for id in ["x0", "x1"] {
        batch.push(request(
            "t1",
            Command::CreateWallet {
                wallet: env.new_wallet(id, "c2", eur(), Floor::ZERO),
            },
        ));
    }
    for outcome in env.apply(batch).await {
        done(outcome);
    }
    let store = env.store();
    let t1 = tid("t1");
    let mut query = WalletQuery {
        customer: Some(cid("c1")),
        after: None,
        limit: PAGE_SIZE_MAX,
        metadata: prepaid_store::MetadataFilter::default(),
    };
    let first = store.wallets(&t1, &query).await.expect("wallets");
    assert_eq!(first.items.len(), PAGE_SIZE_MAX);
    assert!(first.items.iter().all(|w| w.customer == cid("c1")));
    assert_eq!(first.next, Some(wid(&format!("w{:05}", PAGE_SIZE_MAX - 1))));
    query.after = first.next;
    let second = store.wallets(&t1, &query).await.expect("wallets");
    assert_eq!(
        second
            .items
            .iter()
            .map(|w| w.id.to_string())
            .collect::<Vec<_>>(),
        [format!("w{PAGE_SIZE_MAX:05}")]
    );
    assert_eq!(second.next, None);
    let c2 = store
        .wallets(
            &t1,
            &WalletQuery {
                customer: Some(cid("c2")),
                after: None,
                limit: PAGE_SIZE_MAX,
                metadata: prepaid_store::MetadataFilter::default(),
            },
        )
        .await
        .expect("wallets");
    assert_eq!(
        c2.items.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["x0", "x1"]
    );
    let tail = store
        .wallets(
            &t1,
            &WalletQuery {
                customer: None,
                after: Some(wid(&format!("w{PAGE_SIZE_MAX:05}"))),
                limit: 10,
                metadata: prepaid_store::MetadataFilter::default(),
            },
        )
        .await
        .expect("wallets");
    assert_eq!(
        tail.items.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["x0", "x1"]
    );
    assert_eq!(tail.next, None);
}

/// Mutations page oldest first by cursor, by wallet, by customer or for the tenant.
pub async fn paging_mutations_at_limit(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.customer("t1", "c2").await;
    env.wallet("t1", "c1", "w1").await;
    env.wallet("t1", "c1", "w2").await;
    env.wallet("t1", "c2", "w3").await;
    let mut batch: Vec<Request> = (0..=PAGE_SIZE_MAX)
        .map(|_| request("t1", env.post("w1", MutationKind::TopUp, 1)))
        .collect();
    batch.push(request("t1", env.post("w2", MutationKind::TopUp, 1)));
    batch.push(request("t1", env.post("w3", MutationKind::TopUp, 1)));
    for outcome in env.apply(batch).await {
        done(outcome);
    }
    let t1 = tid("t1");
    let mut query = MutationQuery {
        wallet: Some(wid("w1")),
        customer: None,
        after: None,
        limit: PAGE_SIZE_MAX,
        metadata: prepaid_store::MetadataFilter::default(),
        ..MutationQuery::default()
    };
    let first = env.store().mutations(&t1, &query).await.expect("mutations");
    assert_eq!(first.items.len(), PAGE_SIZE_MAX);
    assert!(
        first
            .items
            .iter()
            .map(|m| m.balance_after)
            .eq(1..=i64::try_from(PAGE_SIZE_MAX).expect("fits"))
    );
    assert!(first.next.is_some());
    query.after = first.next;
    let second = env.store().mutations(&t1, &query).await.expect("mutations");
    assert_eq!(
        second
            .items
            .iter()
            .map(|m| m.balance_after)
            .collect::<Vec<_>>(),
        [i64::try_from(PAGE_SIZE_MAX + 1).expect("fits")]
    );
    assert_eq!(second.next, None);

    assert_eq!(
        env.all_mutations("t1", None, Some("c1")).await.len(),
        PAGE_SIZE_MAX + 2
    );
    let c2 = env.all_mutations("t1", None, Some("c2")).await;
    assert_eq!(
        c2.iter().map(|m| m.wallet.as_str()).collect::<Vec<_>>(),
        ["w3"]
    );
    let all = env.all_mutations("t1", None, None).await;
    assert_eq!(all.len(), PAGE_SIZE_MAX + 3);
    // In the order they were applied.
    let tail: Vec<&str> = all[PAGE_SIZE_MAX - 1..]
        .iter()
        .map(|m| m.wallet.as_str())
        .collect();
    assert_eq!(tail, ["w1", "w1", "w2", "w3"]);
    assert!(
        env.all_mutations("t1", Some("w1"), Some("c2"))
            .await
            .is_empty()
    );
}

/// Amounts up to `AMOUNT_MAX` pass; no balance, a wallet's or a system account's, may
/// pass `BALANCE_ABS_MAX`, also within one batch.
pub async fn amount_and_balance_bounds(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    env.wallet("t1", "c1", "w2").await;
    let minutes_wallet = env.new_wallet("min", "c1", minutes(), Floor::ZERO);
    env.done(
        "t1",
        Command::CreateWallet {
            wallet: minutes_wallet,
        },
    )
    .await;
    let steps = usize::try_from(BALANCE_ABS_MAX / AMOUNT_MAX).expect("fits");
    assert_eq!(BALANCE_ABS_MAX % AMOUNT_MAX, 0);
    let mut batch: Vec<Request> = (0..steps)
        .map(|_| request("t1", env.post("w1", MutationKind::TopUp, AMOUNT_MAX)))
        .collect();
    // The world account of the unit is now at -BALANCE_ABS_MAX: another wallet's
    // top-up would pass it.
    batch.push(request("t1", env.post("w2", MutationKind::TopUp, 1)));
    let outcomes = env.apply(batch).await;
    let (last, done_ones) = outcomes.split_last().expect("outcomes");
    let after: Vec<i64> = done_ones
        .iter()
        .map(|o| as_mutation(done(o.clone())).balance_after)
        .collect();
    assert_eq!(after.first(), Some(&AMOUNT_MAX));
    assert_eq!(after.last(), Some(&BALANCE_ABS_MAX));
    assert_eq!(refusal(last.clone()), Refusal::BalanceOverflow);
    assert_eq!(
        env.refused("t1", env.post("w1", MutationKind::TopUp, 1))
            .await,
        Refusal::BalanceOverflow
    );
    assert_eq!(
        env.refused("t1", env.post("w1", MutationKind::Adjustment, 1))
            .await,
        Refusal::BalanceOverflow
    );
    assert_eq!(env.read_wallet("t1", "w2").await.balance, 0);
    // Other units have their own accounts.
    assert_eq!(
        env.top_up("t1", "min", AMOUNT_MAX).await.balance_after,
        AMOUNT_MAX
    );
    // Spending makes room in the wallet (not in the world account).
    as_mutation(
        env.done("t1", env.post("w1", MutationKind::Debit, AMOUNT_MAX))
            .await,
    );
    assert_eq!(
        env.refused("t1", env.post("w1", MutationKind::TopUp, 1))
            .await,
        Refusal::BalanceOverflow
    );
    let m = as_mutation(
        env.done("t1", env.post("w1", MutationKind::Adjustment, 1))
            .await,
    );
    assert_eq!(m.balance_after, BALANCE_ABS_MAX - AMOUNT_MAX + 1);
    assert!(Amount::new(AMOUNT_MAX + 1).is_err());
}

/// What was committed is there after closing and opening the store again.
pub async fn data_survives_reopen(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    let key = env.new_key("reader", Scopes::ALL, Some("c1"));
    env.done("t1", Command::CreateApiKey { key: key.clone() })
        .await;
    let keyed_top_up = keyed(
        request("t1", env.post("w1", MutationKind::TopUp, 100)),
        "k1",
        1,
    );
    let first = done(env.one(keyed_top_up.clone()).await);
    let (hold, place) = env.place_hold("w1", 30, None);
    env.done("t1", place).await;
    let wallet = env.read_wallet("t1", "w1").await;
    let held = env.read_hold("t1", hold).await;
    let mutations = env.all_mutations("t1", None, None).await;

    env.reopen().await;
    assert_eq!(env.read_wallet("t1", "w1").await, wallet);
    assert_eq!(env.read_hold("t1", hold).await, held);
    assert_eq!(env.all_mutations("t1", None, None).await, mutations);
    let found = env
        .store()
        .api_key_by_hash(key.secret_sha256)
        .await
        .expect("by hash")
        .expect("key");
    assert_eq!(found.customer, Some(cid("c1")));
    assert_eq!(
        env.one(keyed_top_up).await,
        Outcome::Done {
            done: first,
            replayed: true
        }
    );
    let m = as_mutation(
        env.done("t1", env.post("w1", MutationKind::Debit, 10))
            .await,
    );
    assert_eq!(m.balance_after, 90);
    // The operator is still the operator, and bootstrap stays done.
    env.tenant("t2").await;
    let root = env.new_key("root2", Scopes::ALL, None);
    assert!(
        !env.store()
            .bootstrap(&tid(OPERATOR), root, env.now)
            .await
            .expect("bootstrap")
    );
}

// ---------------------------------------------------------------------------------
// Customer links, settings and searches.

/// A customer keeps the link it was created with, across a restart.
pub async fn customer_links_are_kept(env: &mut Env) {
    env.tenant("t1").await;
    let link = format!(
        "https://acme.example/tas/api/branches/id/{}{}",
        "p".repeat(prepaid_ledger::LINK_LEN_MAX - 100),
        "/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    );
    assert!(link.len() <= prepaid_ledger::LINK_LEN_MAX);
    let made = env
        .done(
            "t1",
            Command::CreateCustomer {
                id: cid("linked"),
                name: String::new(),
                link: link.clone(),
            },
        )
        .await;
    let Done::Customer(made) = made else {
        panic!("expected a customer, got {made:?}");
    };
    assert_eq!(made.link, link);
    let plain = env.customer("t1", "plain").await;
    assert_eq!(plain.link, "");
    // A link over the bound is a request the edge never builds.
    let over = Command::CreateCustomer {
        id: cid("over"),
        name: String::new(),
        link: "l".repeat(prepaid_ledger::LINK_LEN_MAX + 1),
    };
    assert_eq!(env.refused("t1", over).await, Refusal::Internal);
    env.reopen().await;
    assert_eq!(read_customer(env, "t1", "linked").await, Some(made));
    assert_eq!(read_customer(env, "t1", "plain").await, Some(plain));
    assert_eq!(read_customer(env, "t1", "over").await, None);
}

/// A customer without a link takes the first one an `EnsureCustomer` names and keeps
/// it; `SetCustomerLink` replaces it; a refused unit leaves the link as it was; a
/// restricted key reaches only its own customer.
pub async fn customer_links_are_set_once_or_on_request(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c").await;
    let ensure = |link: &str| Command::EnsureCustomer {
        id: cid("c"),
        name: String::new(),
        link: link.to_owned(),
    };
    env.done("t1", ensure("")).await;
    assert_eq!(customer_link(env).await, "");
    let Done::Customer(c) = env.done("t1", ensure("https://a.example/1")).await else {
        panic!("expected a customer");
    };
    assert_eq!(c.link, "https://a.example/1");
    env.done("t1", ensure("https://b.example/2")).await;
    assert_eq!(customer_link(env).await, "https://a.example/1");
    let set = |l: &str| Command::SetCustomerLink {
        id: cid("c"),
        link: l.to_owned(),
    };
    env.done("t1", set("https://c.example/3")).await;
    assert_eq!(customer_link(env).await, "https://c.example/3");
    assert_eq!(
        env.refused(
            "t1",
            Command::SetCustomerLink {
                id: cid("nobody"),
                link: "x".into()
            }
        )
        .await,
        Refusal::CustomerNotFound
    );
    let other = restricted(request("t1", set("https://evil.example")), "other");
    assert_eq!(refusal(env.one(other).await), Refusal::CustomerNotFound);
    // A unit whose command is refused after its step set the link leaves it as it was.
    env.done("t1", set("")).await;
    env.wallet("t1", "c", "w").await;
    let mut unit = request("t1", env.post("w", MutationKind::Debit, 1));
    unit.before
        .push(Step::Command(ensure("https://d.example/4")));
    assert!(matches!(
        refusal(env.one(unit).await),
        Refusal::InsufficientFunds { .. }
    ));
    assert_eq!(customer_link(env).await, "");
    env.reopen().await;
    assert_eq!(customer_link(env).await, "");
}

/// A search in `MutationSort::Occurred` order takes `occurred_at` first and commit
/// order among equals: the latest by when it happened, not by when it was recorded.
pub async fn mutation_search_by_occurrence(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c").await;
    env.wallet("t1", "c", "w").await;
    let mut ids = Vec::new();
    for days in [3, 9, 1, 9] {
        let id = env.mutation_id();
        let command = Command::Post {
            id,
            wallet: wid("w"),
            kind: MutationKind::TopUp,
            amount: amount(1),
            reference: Reference::default(),
            occurred_at: Some(START.plus_micros(days * 86_400 * SECOND)),
            terms: prepaid_ledger::GrantTerms::default(),
            metadata: prepaid_ledger::Metadata::default(),
        };
        env.done("t1", command).await;
        ids.push(id);
    }
    let search = |order| prepaid_store::MutationSearch {
        wallet: Some(wid("w")),
        order,
        sort: prepaid_store::MutationSort::Occurred,
        limit: 10,
        ..Default::default()
    };
    for (order, want) in [
        (
            prepaid_store::Order::Descending,
            [ids[3], ids[1], ids[0], ids[2]],
        ),
        (
            prepaid_store::Order::Ascending,
            [ids[2], ids[0], ids[1], ids[3]],
        ),
    ] {
        let found = env
            .store()
            .search_mutations(&tid("t1"), &search(order))
            .await
            .expect("search");
        let got: Vec<MutationId> = found.items.iter().map(|m| m.id).collect();
        assert_eq!(got, want, "{order:?}");
    }
}

async fn customer_link(env: &Env) -> String {
    read_customer(env, "t1", "c")
        .await
        .expect("customer c")
        .link
}

async fn read_customer(env: &Env, tenant: &str, id: &str) -> Option<Customer> {
    env.store()
        .customer(&tid(tenant), &cid(id))
        .await
        .expect("customer")
}

async fn read_setting(env: &Env, tenant: &str, key: &str) -> Option<String> {
    let key = prepaid_ledger::SettingKey::parse(key).expect("setting key");
    env.store()
        .setting(&tid(tenant), &key)
        .await
        .expect("setting")
}

/// Settings are per tenant; a put says whether it created the setting; the last put
/// of a batch wins; customer keys may not put them.
pub async fn settings_put_and_read(env: &mut Env) {
    env.tenant("t1").await;
    env.tenant("t2").await;
    env.customer("t1", "c1").await;
    let key = prepaid_ledger::SettingKey::parse("topdesk.service-user").expect("key");
    let put = |value: &str| Command::PutSetting {
        key: key.clone(),
        value: value.to_owned(),
    };
    assert_eq!(read_setting(env, "t1", "topdesk.service-user").await, None);
    assert_eq!(
        env.done("t1", put("one")).await,
        Done::Setting { created: true }
    );
    assert_eq!(
        read_setting(env, "t1", "topdesk.service-user")
            .await
            .as_deref(),
        Some("one")
    );
    assert_eq!(
        read_setting(env, "t2", "topdesk.service-user").await,
        None,
        "settings are per tenant"
    );
    assert_eq!(
        env.done("t1", put("two")).await,
        Done::Setting { created: false }
    );
    assert_eq!(
        read_setting(env, "t1", "topdesk.service-user")
            .await
            .as_deref(),
        Some("two")
    );

    // Twice in one batch, in another tenant: created once, the last value stays.
    let outcomes = env
        .apply(vec![request("t2", put("a")), request("t2", put("b"))])
        .await;
    let outcomes: Vec<Done> = outcomes.into_iter().map(done).collect();
    assert_eq!(
        outcomes,
        [
            Done::Setting { created: true },
            Done::Setting { created: false }
        ]
    );
    assert_eq!(
        read_setting(env, "t2", "topdesk.service-user")
            .await
            .as_deref(),
        Some("b")
    );

    // At the bound, over it, and from a customer's key.
    let at = "v".repeat(prepaid_ledger::SETTING_VALUE_LEN_MAX);
    env.done("t1", put(&at)).await;
    assert_eq!(
        read_setting(env, "t1", "topdesk.service-user").await,
        Some(at.clone())
    );
    let over = "v".repeat(prepaid_ledger::SETTING_VALUE_LEN_MAX + 1);
    assert_eq!(env.refused("t1", put(&over)).await, Refusal::Internal);
    assert_eq!(
        refusal(env.one(restricted(request("t1", put("mine")), "c1")).await),
        Refusal::Forbidden
    );
    assert_eq!(
        read_setting(env, "t1", "topdesk.service-user").await,
        Some(at.clone())
    );

    // An idempotent put replays its first answer.
    let other = prepaid_ledger::SettingKey::parse("other").expect("key");
    let keyed_put = keyed(
        request(
            "t1",
            Command::PutSetting {
                key: other.clone(),
                value: "x".into(),
            },
        ),
        "put-1",
        7,
    );
    assert_eq!(
        done(env.one(keyed_put.clone()).await),
        Done::Setting { created: true }
    );
    assert_eq!(
        env.one(keyed_put).await,
        Outcome::Done {
            done: Done::Setting { created: true },
            replayed: true
        }
    );
    env.reopen().await;
    assert_eq!(
        read_setting(env, "t1", "topdesk.service-user").await,
        Some(at)
    );
    assert_eq!(
        read_setting(env, "t2", "topdesk.service-user")
            .await
            .as_deref(),
        Some("b")
    );
}

/// The fields of [`columns::mutation`](prepaid_store::columns::mutation) as a test schema,
/// the derived ones among them.
fn mutation_schema() -> prepaid_query::Schema {
    use prepaid_query::{Field, FieldType as T};
    use prepaid_store::columns::mutation as m;
    prepaid_query::Schema::new(vec![
        Field::new("id", m::ID, T::Uuid),
        Field::new("amount", m::AMOUNT, T::Integer),
        Field::new("kind", m::KIND, T::Text),
        Field::new("occurredAt", m::OCCURRED_AT, T::Timestamp),
        Field::new("recordedAt", m::RECORDED_AT, T::Timestamp),
        Field::new("reference.type", m::REFERENCE_KIND, T::Text),
        Field::new("reference.text", m::REFERENCE_TEXT_OR_NULL, T::Text),
        Field::new("reference.link", m::REFERENCE_LINK, T::Text),
        Field::new("customer", m::CUSTOMER, T::Text),
        Field::new("wallet", m::WALLET, T::Text),
        Field::new("balanceAfter", m::BALANCE_AFTER, T::Integer),
        Field::new("unit", m::UNIT_CODE, T::Text),
        Field::new("customerLink", m::CUSTOMER_LINK, T::Text),
        Field::new("own", m::IN_CUSTOMERS_OWN_WALLET, T::Bool),
    ])
}

/// A mutation as [`mutation_schema`] sees it, with its customer's link.
struct MutationRow<'a>(&'a Mutation, &'a str);

impl prepaid_query::Row for MutationRow<'_> {
    fn get(&self, path: &str) -> prepaid_query::Value {
        use prepaid_query::Value as V;
        let m = self.0;
        match path {
            "id" => V::Uuid(m.id.0),
            "amount" => V::Int(m.amount),
            "kind" => V::Text(m.kind.as_str().into()),
            "occurredAt" => V::Timestamp(m.occurred_at.as_micros()),
            "recordedAt" => V::Timestamp(m.recorded_at.as_micros()),
            "reference.type" => V::Text(m.reference.parts().0.into()),
            "reference.text" => m.reference.text().map_or(V::Null, |t| V::Text(t.into())),
            "reference.link" => V::Text(m.reference.parts().2.into()),
            "customer" => V::Text(m.customer.as_str().into()),
            "wallet" => V::Text(m.wallet.as_str().into()),
            "balanceAfter" => V::Int(m.balance_after),
            "unit" => V::Text(m.unit.code().into()),
            "customerLink" => V::Text(self.1.into()),
            "own" => V::Bool(m.wallet.as_str() == m.customer.as_str()),
            other => panic!("no field {other}"),
        }
    }
}

fn bind(schema: &prepaid_query::Schema, query: &str) -> prepaid_query::Filter {
    let expr = prepaid_query::fiql::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    schema
        .bind(&expr)
        .unwrap_or_else(|e| panic!("{query}: {}", e.render(query)))
}

/// A search with the filter finds exactly the mutations the filter accepts in memory,
/// in commit order (or its reverse), counts all of them, pages by offset, and never
/// shows another tenant's.
pub async fn search_mutations_filters_counts_and_pages(env: &mut Env) {
    use prepaid_store::{MutationSearch, Order};
    env.tenant("t1").await;
    env.tenant("t2").await;
    let link = "https://a.example/tas/api/branches/id/1";
    env.done(
        "t1",
        Command::CreateCustomer {
            id: cid("c1"),
            name: String::new(),
            link: link.into(),
        },
    )
    .await;
    env.customer("t1", "c2").await;
    let own = env.new_wallet("c1", "c1", minutes(), Floor::Unlimited);
    env.done("t1", Command::CreateWallet { wallet: own }).await;
    env.wallet("t1", "c1", "w1").await;
    env.wallet("t1", "c2", "w3").await;
    env.customer("t2", "c1").await;
    env.wallet("t2", "c1", "w1").await;
    env.top_up("t2", "w1", 999).await;

    let day = 86_400 * SECOND;
    let post = |wallet: &str, kind: MutationKind, value: i64, r: (&str, &str, &str), days: i64| {
        Command::Post {
            id: env.mutation_id(),
            wallet: wid(wallet),
            kind,
            amount: amount(value),
            reference: Reference::known(r.0, r.1, r.2),
            occurred_at: Some(START.plus_micros(days * day)),
            terms: prepaid_ledger::GrantTerms::default(),
            metadata: prepaid_ledger::Metadata::default(),
        }
    };
    use MutationKind::{Adjustment, Debit, TopUp};
    let commands = [
        post("c1", TopUp, 600, ("EXTERNAL_SYSTEM", "invoice 1", ""), 0),
        post(
            "c1",
            Debit,
            45,
            ("INCIDENT", "I 17", "https://a.example/incidents/17"),
            1,
        ),
        post("w1", TopUp, 10_000, ("payment", "", ""), 1),
        post("c1", Adjustment, -700, ("EXTERNAL_SYSTEM", "", ""), 2),
        post("w3", TopUp, 250, ("payment", "invoice 2", ""), 2),
        post("c1", Adjustment, 0, ("EXTERNAL_SYSTEM", "note", ""), 3),
        post(
            "w3",
            Debit,
            50,
            ("CHANGE_ACTIVITY", "CA 3", "https://a.example/ca/3"),
            4,
        ),
        post("c1", TopUp, 100, ("EXTERNAL_SYSTEM", "ünïcode", ""), 5),
    ];
    for command in commands {
        env.done("t1", command).await;
    }
    let all = env.all_mutations("t1", None, None).await;
    assert_eq!(all.len(), 8);
    let link_of = |m: &Mutation| {
        if m.customer.as_str() == "c1" {
            link
        } else {
            ""
        }
    };
    let schema = mutation_schema();
    let t1 = tid("t1");
    let id0 = all[0].id.0;
    let id6 = all[6].id.0;
    let queries = [
        "amount=gt=100".to_owned(),
        "amount=le=0,kind==adjustment".into(),
        "reference.type==INCIDENT;reference.link=sw=https://".into(),
        "reference.text==null".into(),
        "reference.text!=null;reference.text=sw=inv".into(),
        "reference.text=gt=m".into(),
        "occurredAt=ge=2026-01-02T00:00:00Z;occurredAt=lt=2026-01-04".into(),
        "customer==c1;own==true".into(),
        "own==false".into(),
        "customerLink=sw=https://a.example/".into(),
        "customerLink==''".into(),
        format!("id=in=({id0},{id6})"),
        format!("id!={id0};unit==MIN"),
        "unit==MIN;balanceAfter=lt=0".into(),
        "wallet=out=(w1,w3)".into(),
        "recordedAt=ge=2026-01-01".into(),
        "amount==-1".into(),
    ];
    for query in &queries {
        let filter = bind(&schema, query);
        let expected: Vec<&Mutation> = all
            .iter()
            .filter(|m| filter.matches(&MutationRow(m, link_of(m))))
            .collect();
        let search = MutationSearch {
            filter: Some(filter.clone()),
            limit: PAGE_SIZE_MAX,
            ..MutationSearch::default()
        };
        let found = env
            .store()
            .search_mutations(&t1, &search)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(
            found.items.iter().collect::<Vec<_>>(),
            expected,
            "query {query}"
        );
        assert_eq!(found.total, expected.len() as u64, "query {query}");
        let backwards = env
            .store()
            .search_mutations(
                &t1,
                &MutationSearch {
                    order: Order::Descending,
                    ..search.clone()
                },
            )
            .await
            .expect("search");
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(
            backwards.items.iter().collect::<Vec<_>>(),
            reversed,
            "{query}"
        );
        let page = env
            .store()
            .search_mutations(
                &t1,
                &MutationSearch {
                    offset: 1,
                    limit: 2,
                    ..search
                },
            )
            .await
            .expect("search");
        let window: Vec<&Mutation> = expected.iter().skip(1).take(2).copied().collect();
        assert_eq!(page.items.iter().collect::<Vec<_>>(), window, "{query}");
        assert_eq!(page.total, expected.len() as u64, "{query}");
    }

    // Customer and wallet narrow the search; no filter finds them all.
    let search = |customer: Option<&str>, wallet: Option<&str>| MutationSearch {
        customer: customer.map(cid),
        wallet: wallet.map(wid),
        limit: PAGE_SIZE_MAX,
        ..MutationSearch::default()
    };
    for (customer, wallet) in [
        (None, None),
        (Some("c1"), None),
        (None, Some("w3")),
        (Some("c1"), Some("c1")),
        (Some("c2"), Some("c1")),
    ] {
        let found = env
            .store()
            .search_mutations(&t1, &search(customer, wallet))
            .await
            .expect("search");
        let expected: Vec<&Mutation> = all
            .iter()
            .filter(|m| customer.is_none_or(|c| m.customer.as_str() == c))
            .filter(|m| wallet.is_none_or(|w| m.wallet.as_str() == w))
            .collect();
        assert_eq!(found.items.iter().collect::<Vec<_>>(), expected);
        assert_eq!(found.total, expected.len() as u64);
    }
    // Only the total; past the end; another tenant's.
    let only_total = env
        .store()
        .search_mutations(&t1, &MutationSearch::default())
        .await
        .expect("search");
    assert_eq!((only_total.items.len(), only_total.total), (0, 8));
    let past = env
        .store()
        .search_mutations(
            &t1,
            &MutationSearch {
                offset: 8,
                limit: 10,
                ..MutationSearch::default()
            },
        )
        .await
        .expect("search");
    assert_eq!((past.items.len(), past.total), (0, 8));
    let far = env
        .store()
        .search_mutations(
            &t1,
            &MutationSearch {
                offset: u64::MAX,
                limit: 10,
                ..MutationSearch::default()
            },
        )
        .await
        .expect("search");
    assert_eq!((far.items.len(), far.total), (0, 8));
    let t2 = env
        .store()
        .search_mutations(&tid("t2"), &search(None, None))
        .await
        .expect("search");
    assert_eq!(t2.total, 1);
    assert_eq!(t2.items[0].amount, 999);
}

/// A search returns at most [`PAGE_SIZE_MAX`] rows, however many it is asked for, and
/// offset pages cover everything once.
pub async fn search_mutations_at_the_page_limit(env: &mut Env) {
    use prepaid_store::MutationSearch;
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
    let batch: Vec<Request> = (0..=PAGE_SIZE_MAX)
        .map(|_| request("t1", env.post("w1", MutationKind::TopUp, 1)))
        .collect();
    for outcome in env.apply(batch).await {
        done(outcome);
    }
    let t1 = tid("t1");
    let first = env
        .store()
        .search_mutations(
            &t1,
            &MutationSearch {
                limit: PAGE_SIZE_MAX + 5,
                ..MutationSearch::default()
            },
        )
        .await
        .expect("search");
    assert_eq!(first.items.len(), PAGE_SIZE_MAX);
    assert_eq!(first.total, PAGE_SIZE_MAX as u64 + 1);
    let second = env
        .store()
        .search_mutations(
            &t1,
            &MutationSearch {
                offset: PAGE_SIZE_MAX as u64,
                limit: PAGE_SIZE_MAX,
                ..MutationSearch::default()
            },
        )
        .await
        .expect("search");
    let balances: Vec<i64> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|m| m.balance_after)
        .collect();
    assert!(balances.into_iter().eq(1..=PAGE_SIZE_MAX as i64 + 1));
}

/// The fields of [`columns::wallet`](prepaid_store::columns::wallet) as a test schema.
fn wallet_schema() -> prepaid_query::Schema {
    use prepaid_query::{Field, FieldType as T};
    use prepaid_store::columns::wallet as w;
    prepaid_query::Schema::new(vec![
        Field::new("id", w::ID, T::Text),
        Field::new("name", w::NAME, T::Text),
        Field::new("product", w::PRODUCT, T::Text),
        Field::new(
            "status",
            w::STATUS,
            T::Enum(vec!["active".into(), "suspended".into(), "expired".into()]),
        ),
        Field::new("customer", w::CUSTOMER, T::Text),
        Field::new("unit", w::UNIT_CODE, T::Text),
        Field::new("balance", w::BALANCE, T::Integer),
        Field::new("createdAt", w::CREATED_AT, T::Timestamp),
    ])
}

struct WalletRow<'a>(&'a Wallet);

impl prepaid_query::Row for WalletRow<'_> {
    fn get(&self, path: &str) -> prepaid_query::Value {
        use prepaid_query::Value as V;
        let w = self.0;
        match path {
            "id" => V::Text(w.id.as_str().into()),
            "name" => V::Text(w.name.clone()),
            "product" => V::Text(w.product.clone()),
            "status" => V::Text(w.status.as_str().into()),
            "customer" => V::Text(w.customer.as_str().into()),
            "unit" => V::Text(w.unit.code().into()),
            "balance" => V::Int(w.balance),
            "createdAt" => V::Timestamp(w.created_at.as_micros()),
            other => panic!("no field {other}"),
        }
    }
}

/// Wallets are found by filter and customer, ordered by creation time then id, either
/// way, counted and paged by offset.
pub async fn search_wallets_filters_counts_and_pages(env: &mut Env) {
    use prepaid_store::{Order, WalletSearch};
    env.tenant("t1").await;
    env.tenant("t2").await;
    env.customer("t1", "c1").await;
    env.customer("t1", "c2").await;
    env.customer("t2", "c1").await;
    env.wallet("t2", "c1", "a").await;
    let specs = [
        ("b", "c1", eur(), "Main", "voice", 0),
        ("a", "c1", minutes(), "Support", "desk", 0),
        ("d", "c2", eur(), "Meals", "school", 1),
        ("c", "c2", eur(), "Main", "voice", 0),
        ("e", "c1", eur(), "Ünïcode", "data", 2),
    ];
    for (id, customer, unit, name, product, secs) in specs {
        env.advance_secs(secs);
        let mut wallet = env.new_wallet(id, customer, unit, Floor::ZERO);
        wallet.name = name.into();
        wallet.product = product.into();
        env.done("t1", Command::CreateWallet { wallet }).await;
    }
    env.top_up("t1", "d", 500).await;
    env.top_up("t1", "a", 30).await;
    env.done(
        "t1",
        Command::SetWalletStatus {
            wallet: wid("c"),
            status: WalletStatus::Suspended,
        },
    )
    .await;
    let mut all = Vec::new();
    for id in ["a", "b", "c", "d", "e"] {
        all.push(env.read_wallet("t1", id).await);
    }
    // Creation time first, then id: b and a were made at once, as were d and c.
    all.sort_by(|x, y| (x.created_at, &x.id).cmp(&(y.created_at, &y.id)));
    assert_eq!(
        all.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c", "d", "e"]
    );
    let schema = wallet_schema();
    let t1 = tid("t1");
    for query in [
        "name==Main",
        "product=sw=vo,unit==MIN",
        "status==suspended",
        "status!=active",
        "balance=gt=0",
        "customer==c2;balance==0",
        "name=gt=Meals",
        "createdAt=gt=2026-01-01T00:00:00Z",
        "id=in=(a,e,zz)",
    ] {
        let filter = bind(&schema, query);
        let expected: Vec<&Wallet> = all
            .iter()
            .filter(|w| filter.matches(&WalletRow(w)))
            .collect();
        for (order, customer) in [
            (Order::Ascending, None),
            (Order::Descending, None),
            (Order::Ascending, Some("c1")),
        ] {
            let found = env
                .store()
                .search_wallets(
                    &t1,
                    &WalletSearch {
                        customer: customer.map(cid),
                        filter: Some(filter.clone()),
                        order,
                        offset: 0,
                        limit: PAGE_SIZE_MAX,
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            let mut want: Vec<&Wallet> = expected
                .iter()
                .filter(|w| customer.is_none_or(|c| w.customer.as_str() == c))
                .copied()
                .collect();
            if order == Order::Descending {
                want.reverse();
            }
            assert_eq!(
                found.items.iter().collect::<Vec<_>>(),
                want,
                "{query} {order:?}"
            );
            assert_eq!(found.total, want.len() as u64, "{query}");
        }
    }
    let page = env
        .store()
        .search_wallets(
            &t1,
            &WalletSearch {
                offset: 3,
                limit: 10,
                ..WalletSearch::default()
            },
        )
        .await
        .expect("search");
    assert_eq!(
        page.items.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["d", "e"]
    );
    assert_eq!(page.total, 5);
    let other = env
        .store()
        .search_wallets(
            &tid("t2"),
            &WalletSearch {
                limit: 10,
                ..WalletSearch::default()
            },
        )
        .await
        .expect("search");
    assert_eq!(other.total, 1);
}

/// A wallet's `updated_at` starts at its creation, moves to the time of the batch that
/// changes its balance, held or status, stays put when a request on it is refused, and
/// survives a restart.
pub async fn wallet_updated_at_follows_changes(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    let opened = env.wallet("t1", "c1", "w1").await;
    assert_eq!(opened.updated_at, opened.created_at);
    assert_eq!(env.read_wallet("t1", "w1").await.updated_at, env.now);
    env.advance_secs(10);
    let topped_at = env.now;
    env.top_up("t1", "w1", 100).await;
    let w1 = env.read_wallet("t1", "w1").await;
    assert_eq!(w1.updated_at, topped_at);
    assert_eq!(w1.created_at, opened.created_at);
    env.advance_secs(10);
    assert_eq!(
        env.refused("t1", env.post("w1", MutationKind::Debit, 101))
            .await,
        Refusal::InsufficientFunds {
            available: 100,
            requested: 101,
        }
    );
    let w1 = env.read_wallet("t1", "w1").await;
    assert_eq!((w1.balance, w1.updated_at), (100, topped_at));
    env.advance_secs(10);
    let suspended_at = env.now;
    let suspended = as_wallet(
        env.done(
            "t1",
            Command::SetWalletStatus {
                wallet: wid("w1"),
                status: WalletStatus::Suspended,
            },
        )
        .await,
    );
    assert_eq!(suspended.updated_at, suspended_at);
    env.reopen().await;
    assert_eq!(env.read_wallet("t1", "w1").await.updated_at, suspended_at);
}
