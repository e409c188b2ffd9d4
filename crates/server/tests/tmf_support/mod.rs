//! The harness of the TMF hub and recurring top-up tests: servers in the test's
//! process over a clock the test moves (on the suite's backend, restartable on the
//! same data), an HTTP receiver for callbacks, and polling with a deadline.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use crate::common::{self, Api, Auth, TestSchema, postgres_backend};
use prepaid_ledger::{TenantId, Timestamp};
use prepaid_store::{Clock as _, ManualClock, Store, SystemClock};
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
