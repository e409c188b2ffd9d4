//! The harness of the TMF hub and recurring top-up tests: servers in the test's
//! process over a clock the test moves (on the suite's backend, restartable on the
//! same data), an HTTP receiver for callbacks, and polling with a deadline.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use crate::common::{self, Api, Auth, TestSchema, postgres_backend};
use prepaid_ledger::{TenantId, Timestamp};
use prepaid_store::{Clock as _, ManualClock, Store, StoreError, SystemClock};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a test waits for something that should happen within a second.
pub const DEADLINE: Duration = Duration::from_secs(30);

// ---- an in-process server over a manual clock ----

pub struct Node {
    pub base: String,
    state: Option<prepaid_server::SharedState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// What a node's store lives in; kept for restarts and for a second instance.
pub struct Backing {
    pub dir: tempfile::TempDir,
    pub schema: Option<Arc<TestSchema>>,
    pub secret: String,
}

impl Backing {
    pub async fn new() -> Backing {
        let schema =
            if postgres_backend() {
                Some(common::fresh_schema().await.expect(
                    "PREPAID_TEST_BACKEND=postgres, but the test database cannot be reached",
                ))
            } else {
                None
            };
        Backing {
            dir: tempfile::tempdir().expect("data dir"),
            schema,
            secret: format!("test-admin-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// A fresh PostgreSQL schema whatever the suite's backend; `None` (after the skip
    /// line) when there is no database outside CI.
    pub async fn postgres() -> Option<Backing> {
        let schema = common::fresh_schema().await?;
        Some(Backing {
            dir: tempfile::tempdir().expect("data dir"),
            schema: Some(schema),
            secret: format!("test-admin-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    pub async fn store(&self) -> (Arc<dyn Store>, prepaid_store::EngineConfig) {
        match &self.schema {
            Some(schema) => (
                Arc::new(
                    prepaid_store_postgres::PgStore::connect(
                        schema.url(),
                        prepaid_store_postgres::PgConfig::default(),
                    )
                    .await
                    .expect("connect to the test schema"),
                ),
                prepaid_server::POSTGRES_ENGINE,
            ),
            None => (
                Arc::new(
                    prepaid_store_sqlite::SqliteStore::open(self.dir.path())
                        .expect("open the SQLite store"),
                ),
                prepaid_server::SQLITE_ENGINE,
            ),
        }
    }

    pub async fn start(&self, clock: Arc<dyn prepaid_store::Clock>) -> Node {
        let (store, engine) = self.store().await;
        Node::start(store, clock, self.dir.path(), &self.secret, engine).await
    }
}

impl Node {
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn prepaid_store::Clock>,
        dir: &Path,
        secret: &str,
        engine: prepaid_store::EngineConfig,
    ) -> Node {
        let config = prepaid_server::Config {
            listen: "127.0.0.1:0".parse().expect("listen address"),
            data_dir: dir.to_path_buf(),
            admin_key: Some(secret.to_owned()),
            ..prepaid_server::Config::default()
        };
        let server = prepaid_server::Server::bind_with(config, store, clock, engine)
            .await
            .expect("bind an in-process server");
        let base = format!("http://{}", server.local_addr());
        let state = server.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        Node {
            base,
            state: Some(state),
            stop: Some(stop),
            serving,
        }
    }

    pub fn state(&self) -> &prepaid_server::SharedState {
        self.state.as_ref().expect("a running node")
    }

    pub fn api(&self, secret: &str) -> Api {
        Api::new(&self.base, Auth::Bearer(secret.to_owned()))
    }

    /// Stops gracefully; the state is let go first, or the engine would never drain.
    pub async fn stop(mut self) {
        self.state = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.serving)
            .await
            .expect("the server task")
            .expect("the server stopped cleanly");
    }
}

pub fn operator() -> TenantId {
    TenantId::parse(prepaid_server::OPERATOR_TENANT).unwrap()
}

pub fn start_time() -> Timestamp {
    SystemClock.now()
}

// ---- a callback receiver ----

#[derive(Default)]
pub struct Received {
    /// Every POST, failed ones included: (path, body).
    pub attempts: Mutex<Vec<(String, Value)>>,
    /// The first this many POSTs are answered 500.
    pub fail_first: AtomicU32,
}

pub struct Receiver {
    pub url: String,
    pub got: Arc<Received>,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(fail_first: u32) -> Receiver {
        use axum::http::StatusCode;
        let got = Arc::new(Received::default());
        got.fail_first.store(fail_first, Ordering::SeqCst);
        let shared = got.clone();
        let app =
            axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let got = shared.clone();
                async move {
                    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut attempts = got.attempts.lock().unwrap();
                    attempts.push((uri.path().to_owned(), value));
                    let failing = got.fail_first.load(Ordering::SeqCst);
                    if attempts.len() as u32 <= failing {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::CREATED
                    }
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            got,
            _task: task,
        }
    }

    pub fn attempts(&self) -> Vec<(String, Value)> {
        self.got.attempts.lock().unwrap().clone()
    }

    /// The bodies received at `path`.
    pub fn at(&self, path: &str) -> Vec<Value> {
        self.attempts()
            .into_iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v)
            .collect()
    }
}

/// Polls `cond` until it holds or [`DEADLINE`] passes; `what` names it on failure.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < until,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`], moving `clock` by `step_micros` on every poll, so retries
/// waiting on a backoff become due.
pub async fn eventually_moving(
    clock: &ManualClock,
    step_micros: i64,
    what: &str,
    mut cond: impl FnMut() -> bool,
) {
    let until = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < until,
            "gave up waiting: {what}"
        );
        clock.advance_micros(step_micros);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- a store that counts its durable writes ----

/// Counts the calls that each write one transaction of their own: a batch of the
/// engine, and the record and job writes a dialect may make beside it. Every other
/// call passes through untouched.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    pub applies: AtomicU32,
    pub direct_writes: AtomicU32,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<CountingStore> {
        Arc::new(CountingStore {
            inner,
            applies: AtomicU32::new(0),
            direct_writes: AtomicU32::new(0),
        })
    }

    /// (batches applied, records and jobs written directly) so far.
    pub fn counts(&self) -> (u32, u32) {
        (
            self.applies.load(Ordering::SeqCst),
            self.direct_writes.load(Ordering::SeqCst),
        )
    }
}

#[async_trait::async_trait]
impl Store for CountingStore {
    async fn apply(
        &self,
        batch: Vec<prepaid_ledger::Request>,
        now: Timestamp,
    ) -> Result<Vec<prepaid_ledger::Outcome>, StoreError> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        self.inner.apply(batch, now).await
    }
    async fn bootstrap(
        &self,
        tenant: &TenantId,
        admin: prepaid_ledger::NewApiKey,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.bootstrap(tenant, admin, now).await
    }
    async fn sweep(&self, now: Timestamp) -> Result<prepaid_store::SweepReport, StoreError> {
        self.inner.sweep(now).await
    }
    async fn api_key_by_hash(
        &self,
        secret_sha256: [u8; 32],
    ) -> Result<Option<prepaid_ledger::ApiKey>, StoreError> {
        self.inner.api_key_by_hash(secret_sha256).await
    }
    async fn tenants(
        &self,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<prepaid_store::Page<prepaid_store::ListedTenant, TenantId>, StoreError> {
        self.inner.tenants(after, limit).await
    }
    async fn api_keys(
        &self,
        tenant: &TenantId,
        after: Option<&prepaid_ledger::ApiKeyName>,
        limit: usize,
    ) -> Result<prepaid_store::Page<prepaid_ledger::ApiKey, prepaid_ledger::ApiKeyName>, StoreError>
    {
        self.inner.api_keys(tenant, after, limit).await
    }
    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        name: &prepaid_ledger::ApiKeyName,
    ) -> Result<Option<prepaid_ledger::ApiKey>, StoreError> {
        self.direct_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.revoke_api_key(tenant, name).await
    }
    async fn customer(
        &self,
        tenant: &TenantId,
        id: &prepaid_ledger::CustomerId,
    ) -> Result<Option<prepaid_ledger::Customer>, StoreError> {
        self.inner.customer(tenant, id).await
    }
    async fn customers(
        &self,
        tenant: &TenantId,
        after: Option<&prepaid_ledger::CustomerId>,
        limit: usize,
    ) -> Result<prepaid_store::Page<prepaid_ledger::Customer, prepaid_ledger::CustomerId>, StoreError>
    {
        self.inner.customers(tenant, after, limit).await
    }
    async fn wallet(
        &self,
        tenant: &TenantId,
        id: &prepaid_ledger::WalletId,
    ) -> Result<Option<prepaid_ledger::Wallet>, StoreError> {
        self.inner.wallet(tenant, id).await
    }
    async fn wallets(
        &self,
        tenant: &TenantId,
        query: &prepaid_store::WalletQuery,
    ) -> Result<prepaid_store::Page<prepaid_ledger::Wallet, prepaid_ledger::WalletId>, StoreError>
    {
        self.inner.wallets(tenant, query).await
    }
    async fn mutation(
        &self,
        tenant: &TenantId,
        id: prepaid_ledger::MutationId,
    ) -> Result<Option<prepaid_ledger::Mutation>, StoreError> {
        self.inner.mutation(tenant, id).await
    }
    async fn mutations(
        &self,
        tenant: &TenantId,
        query: &prepaid_store::MutationQuery,
    ) -> Result<prepaid_store::Page<prepaid_ledger::Mutation, i64>, StoreError> {
        self.inner.mutations(tenant, query).await
    }
    async fn hold(
        &self,
        tenant: &TenantId,
        id: prepaid_ledger::HoldId,
    ) -> Result<Option<prepaid_ledger::Hold>, StoreError> {
        self.inner.hold(tenant, id).await
    }
    async fn wallet_holds(
        &self,
        tenant: &TenantId,
        wallet: &prepaid_ledger::WalletId,
        after: Option<prepaid_ledger::HoldId>,
        limit: usize,
    ) -> Result<prepaid_store::Page<prepaid_ledger::Hold, prepaid_ledger::HoldId>, StoreError> {
        self.inner.wallet_holds(tenant, wallet, after, limit).await
    }
    async fn grants(
        &self,
        tenant: &TenantId,
        wallet: &prepaid_ledger::WalletId,
        after: Option<prepaid_store::GrantCursor>,
        limit: usize,
    ) -> Result<
        prepaid_store::Page<prepaid_store::ListedGrant, prepaid_store::GrantCursor>,
        StoreError,
    > {
        self.inner.grants(tenant, wallet, after, limit).await
    }
    async fn search_mutations(
        &self,
        tenant: &TenantId,
        search: &prepaid_store::MutationSearch,
    ) -> Result<prepaid_store::Counted<prepaid_ledger::Mutation>, StoreError> {
        self.inner.search_mutations(tenant, search).await
    }
    async fn search_wallets(
        &self,
        tenant: &TenantId,
        search: &prepaid_store::WalletSearch,
    ) -> Result<prepaid_store::Counted<prepaid_ledger::Wallet>, StoreError> {
        self.inner.search_wallets(tenant, search).await
    }
    async fn setting(
        &self,
        tenant: &TenantId,
        key: &prepaid_ledger::SettingKey,
    ) -> Result<Option<String>, StoreError> {
        self.inner.setting(tenant, key).await
    }
    async fn record(
        &self,
        tenant: &TenantId,
        kind: prepaid_store::RecordKind,
        key: &prepaid_store::RecordKey,
    ) -> Result<Option<prepaid_store::Record>, StoreError> {
        self.inner.record(tenant, kind, key).await
    }
    async fn records(
        &self,
        tenant: &TenantId,
        kind: prepaid_store::RecordKind,
        after: Option<&prepaid_store::RecordKey>,
        limit: usize,
    ) -> Result<Vec<prepaid_store::Record>, StoreError> {
        self.inner.records(tenant, kind, after, limit).await
    }
    async fn put_record(
        &self,
        tenant: &TenantId,
        kind: prepaid_store::RecordKind,
        key: &prepaid_store::RecordKey,
        value: &str,
        expected_version: Option<i64>,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        self.direct_writes.fetch_add(1, Ordering::SeqCst);
        self.inner
            .put_record(tenant, kind, key, value, expected_version, now)
            .await
    }
    async fn delete_record(
        &self,
        tenant: &TenantId,
        kind: prepaid_store::RecordKind,
        key: &prepaid_store::RecordKey,
    ) -> Result<bool, StoreError> {
        self.direct_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_record(tenant, kind, key).await
    }
    async fn enqueue_job(
        &self,
        tenant: &TenantId,
        queue: prepaid_store::JobQueue,
        id: &prepaid_store::RecordKey,
        payload: &str,
        due_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.direct_writes.fetch_add(1, Ordering::SeqCst);
        self.inner
            .enqueue_job(tenant, queue, id, payload, due_at)
            .await
    }
    async fn claim_jobs(
        &self,
        queue: prepaid_store::JobQueue,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<prepaid_store::Job>, StoreError> {
        self.inner.claim_jobs(queue, now, lease_until, limit).await
    }
    async fn finish_job(
        &self,
        tenant: &TenantId,
        queue: prepaid_store::JobQueue,
        id: &prepaid_store::RecordKey,
    ) -> Result<(), StoreError> {
        self.inner.finish_job(tenant, queue, id).await
    }
    async fn defer_job(
        &self,
        tenant: &TenantId,
        queue: prepaid_store::JobQueue,
        id: &prepaid_store::RecordKey,
        due_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.defer_job(tenant, queue, id, due_at).await
    }
    async fn check_invariants(&self) -> Result<Vec<prepaid_store::Breach>, StoreError> {
        self.inner.check_invariants().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}
