//! The prepaid HTTP server: the native API, authentication, metrics and operations
//! endpoints over one durable ledger.
//!
//! [`Server::bind`] opens the store, bootstraps the operator tenant and binds the
//! listener (port 0 works: [`Server::local_addr`] tells the port); [`Server::serve`]
//! answers requests until the shutdown future completes, then finishes in-flight
//! requests and lets the engine drain before it returns. [`run`] does both.

pub mod conn;
mod ops;
mod sweeper;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use prepaid_dialect_native as native;
use prepaid_dialect_talkdesk as talkdesk;
use prepaid_dialect_tmf as tmf;
use prepaid_dialect_topdesk as topdesk;
use prepaid_dialect_touchtopup as touchtopup;
use prepaid_edge::auth::{AuthCache, generate_secret, secret_digest};
use prepaid_ledger::{ApiKeyName, NewApiKey, Scopes, TenantId};
use prepaid_store::{Clock, Engine, EngineConfig, Store, SystemClock};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use prepaid_dialect_touchtopup::payments::PaymentProviderConfig;
pub use prepaid_edge::{ADMIN_KEY_NAME, AppState, SharedState};

/// The operator's tenant, created at first start; only its admin key may create tenants.
pub const OPERATOR_TENANT: &str = "default";
/// The file in the data directory that receives a generated operator key.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// The largest request body, in bytes.
pub const BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// How long a request may take before it is answered 503.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// How long shutdown waits for open connections and the engine before giving up.
pub const SHUTDOWN_GRACE_MS: u64 = 30_000;
/// The longest admin key secret accepted from the environment, in bytes.
pub const ADMIN_KEY_LEN_MAX: usize = 255;
/// The shortest admin key secret accepted from the environment, in bytes.
pub const ADMIN_KEY_LEN_MIN: usize = 16;

/// How the server runs.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the embedded SQLite database and `admin.key` live.
    pub data_dir: PathBuf,
    /// A `postgres://` URL; `None` means SQLite in `data_dir` (see [`open_store`]).
    pub database_url: Option<String>,
    /// The operator's admin key secret; generated at first start when `None`.
    pub admin_key: Option<String>,
    pub body_bytes_max: usize,
    pub request_timeout_ms: u64,
    pub shutdown_grace_ms: u64,
    /// The header-read and keep-alive timeouts and the cap on open connections.
    pub connections: conn::Limits,
    /// Who takes the money of TouchTopUp payments (the built-in test provider by default).
    pub payment_provider: PaymentProviderConfig,
    /// Which webhook targets are allowed and how long retries may wait.
    pub webhooks: native::webhooks::WebhookConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./prepaid-data"),
            database_url: None,
            admin_key: None,
            body_bytes_max: BODY_BYTES_MAX,
            request_timeout_ms: REQUEST_TIMEOUT_MS,
            shutdown_grace_ms: SHUTDOWN_GRACE_MS,
            connections: conn::Limits::default(),
            payment_provider: PaymentProviderConfig::default(),
            webhooks: native::webhooks::WebhookConfig::default(),
        }
    }
}

// By hand, so that the admin secret never reaches a log.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("body_bytes_max", &self.body_bytes_max)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("shutdown_grace_ms", &self.shutdown_grace_ms)
            .field("connections", &self.connections)
            .field("payment_provider", &self.payment_provider)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

/// The engine settings for the embedded SQLite store: one writer, large group commits.
pub const SQLITE_ENGINE: EngineConfig = EngineConfig {
    batch_size_max: 8192,
    queue_depth_max: 16_384,
    writers: 1,
};

/// The engine settings for PostgreSQL: batches as large as for SQLite, one in flight.
/// No row is shared by every batch of a tenant (system accounts are spread over slots,
/// list cursors come from a sequence), so batches of one tenant, of this instance or of
/// others, may commit side by side. More writers per instance still do not pay: each
/// transaction's cost is mostly fixed (round trips, PostgreSQL's CPU per statement, the
/// commit's WAL flush), and more writers split the waiting requests into smaller
/// batches that each pay it. Measured on 2 shared cores, 64 connections, single
/// mutations: 4 writers gave about 5% less than 1 on one instance and 20% less on
/// three. Instances on one database each add their writer.
pub const POSTGRES_ENGINE: EngineConfig = EngineConfig {
    batch_size_max: 8192,
    queue_depth_max: 16_384,
    writers: 1,
};

/// Whether `url` names a PostgreSQL database.
fn is_postgres_url(url: &str) -> bool {
    let scheme = url.split("://").next().unwrap_or_default();
    url.contains("://") && (scheme == "postgres" || scheme == "postgresql")
}

/// Opens the store that `config` names, with the engine settings that suit it:
/// PostgreSQL when `database_url` is a `postgres://` URL, the embedded SQLite store in
/// `data_dir` when it is `None`.
///
/// A PostgreSQL database that cannot be reached at start is an error (the process
/// exits non-zero and its supervisor restarts it); once started, the server rides
/// out outages by answering 503 until the database is back.
pub async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, EngineConfig)> {
    if let Some(url) = &config.database_url {
        if !is_postgres_url(url) {
            let scheme = url.split("://").next().unwrap_or_default();
            anyhow::bail!(
                "unsupported database URL scheme {scheme:?}: use postgres://..., or omit \
                 --database-url to use the embedded SQLite store in --data-dir"
            );
        }
        let store = prepaid_store_postgres::PgStore::connect(
            url,
            prepaid_store_postgres::PgConfig::default(),
        )
        .await
        .context("opening the PostgreSQL store given by --database-url")?;
        tracing::info!("using the PostgreSQL store");
        return Ok((Arc::new(store), POSTGRES_ENGINE));
    }
    create_private_dir(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let store = prepaid_store_sqlite::SqliteStore::open(&config.data_dir)
        .with_context(|| format!("opening the SQLite store in {}", config.data_dir.display()))?;
    tracing::info!(data_dir = %config.data_dir.display(), "using the embedded SQLite store");
    Ok((Arc::new(store), SQLITE_ENGINE))
}

/// The OpenAPI document of everything under `/v1`: the native API and the
/// administration routes TouchTopUp brings.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = native::openapi();
    doc.merge(touchtopup::admin::openapi());
    prepaid_edge::wire::declare_conventions(&mut doc);
    doc
}

/// Every (HTTP method, path) under `/v1` with the scope its key needs: the native
/// API's and TouchTopUp's administration routes.
pub fn v1_route_table() -> Vec<prepaid_edge::routes::Route> {
    let mut table = native::route_table();
    table.extend(touchtopup::admin::route_table());
    table
}

/// The dialects' own state, made at assembly: the shared state knows none of it.
#[derive(Clone)]
pub struct Dialects {
    pub touchtopup: Arc<touchtopup::DialectState>,
    pub webhooks: native::webhooks::WebhookConfig,
}

/// Builds the whole HTTP application over `state`: each dialect's router nested at
/// its mount point, the operations endpoints beside them, the edge layers around.
pub fn app(state: SharedState, dialects: &Dialects, request_timeout: Duration) -> Router {
    let body_bytes_max = state.body_bytes_max;
    let doc = openapi();
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(ops::docs_router(doc.clone()))
        .nest(
            "/v1",
            native::router(&doc, dialects.webhooks)
                .merge(touchtopup::admin::router())
                .method_not_allowed_fallback(ops::method_not_allowed),
        )
        .nest(prepaid_console::MOUNT, prepaid_console::router())
        .nest(talkdesk::MOUNT, talkdesk::router())
        .nest(topdesk::MOUNT, topdesk::router())
        .route(
            &format!("{}/", topdesk::MOUNT),
            axum::routing::any(topdesk::not_found),
        )
        .nest(tmf::MOUNT_TMF, tmf::router_tmf())
        .nest(tmf::MOUNT_BRM, tmf::router_brm())
        .nest(
            touchtopup::MOUNT,
            touchtopup::router(state.clone(), dialects.touchtopup.clone()),
        )
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .route_layer(axum::middleware::from_fn(ops::tag_route))
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            ops::panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(
            ops::Edge {
                limit: request_timeout,
                redact: touchtopup::params::redact_path,
            },
            ops::edge,
        ))
}

/// A bound, bootstrapped server that has not started answering yet.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: SharedState,
    dialects: Dialects,
    engine_task: tokio::task::JoinHandle<()>,
    generated_admin_key: Option<String>,
    config: Config,
}

impl Server {
    /// Opens the store that `config` names and binds.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let (store, engine_config) = open_store(&config).await?;
        Self::bind_with(config, store, Arc::new(SystemClock), engine_config).await
    }

    /// Binds over a given store and clock (tests use a manual clock).
    pub async fn bind_with(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        engine_config: EngineConfig,
    ) -> anyhow::Result<Self> {
        ops::metrics_handle();
        let operator = TenantId::parse(OPERATOR_TENANT).expect("the operator tenant id is valid");
        let generated_admin_key =
            bootstrap(&config, store.as_ref(), clock.as_ref(), &operator).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        let touchtopup = touchtopup::DialectState::new(
            &config.payment_provider,
            store.clone(),
            clock.clone(),
            operator.clone(),
        )?;
        let (engine, engine_task) = Engine::start(store.clone(), clock.clone(), engine_config);
        let state = Arc::new(AppState {
            store,
            engine,
            clock,
            auth: AuthCache::default(),
            operator,
            body_bytes_max: config.body_bytes_max,
        });
        Ok(Self {
            listener,
            local_addr,
            state,
            dialects: Dialects {
                touchtopup: Arc::new(touchtopup),
                webhooks: config.webhooks,
            },
            engine_task,
            generated_admin_key,
            config,
        })
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The operator's admin key secret when this start generated it (first start
    /// without `PREPAID_ADMIN_KEY`); it is also in `<data-dir>/admin.key`.
    pub fn generated_admin_key(&self) -> Option<&str> {
        self.generated_admin_key.as_deref()
    }

    /// The shared state (for in-process tests).
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// The dialects' own state (for in-process tests).
    pub fn dialects(&self) -> &Dialects {
        &self.dialects
    }

    /// Answers requests until `shutdown` completes; then stops accepting, finishes
    /// in-flight requests, lets the engine drain and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            dialects,
            engine_task,
            config,
            ..
        } = self;
        let grace = Duration::from_millis(config.shutdown_grace_ms);
        let (stop_sweeper, sweeper_stopped) = tokio::sync::watch::channel(false);
        let sweeper = tokio::spawn(sweeper::run(
            state.store.clone(),
            state.clock.clone(),
            sweeper_stopped.clone(),
        ));
        let tmf_hub = tokio::spawn(tmf::hub::run(state.clone(), sweeper_stopped.clone()));
        let tmf_recurring =
            tokio::spawn(tmf::recurring::run(state.clone(), sweeper_stopped.clone()));
        let webhooks = tokio::spawn(native::webhooks::run(
            state.clone(),
            dialects.webhooks,
            sweeper_stopped.clone(),
        ));
        let payment_recovery = tokio::spawn(touchtopup::checkout::run(
            state.clone(),
            dialects.touchtopup.clone(),
            sweeper_stopped.clone(),
        ));
        let auto_topups = tokio::spawn(prepaid_edge::auto_topup::run(
            state.clone(),
            dialects.touchtopup.payments.clone(),
            sweeper_stopped,
        ));
        let app = app(
            state,
            &dialects,
            Duration::from_millis(config.request_timeout_ms),
        );
        let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
        let server = conn::serve(
            listener,
            app,
            config.connections,
            Some(touchtopup::ctx::request_line_too_long),
            async move {
                let _ = signal_rx.await;
            },
        );
        tokio::pin!(server);
        tokio::select! {
            () = &mut server => {}
            () = shutdown => {
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = signal_tx.send(());
                if tokio::time::timeout(grace, &mut server).await.is_err() {
                    tracing::warn!(grace_ms = config.shutdown_grace_ms,
                        "connections still open after the grace period; closing them");
                }
            }
        }
        let _ = stop_sweeper.send(true);
        let _ = sweeper.await;
        // They hold the engine; it drains only once they are gone.
        let _ = tmf_hub.await;
        let _ = tmf_recurring.await;
        let _ = webhooks.await;
        let _ = payment_recovery.await;
        let _ = auto_topups.await;
        // Every handle of the engine is gone with the router, so the writer drains its
        // queue and stops.
        match tokio::time::timeout(grace, engine_task).await {
            Ok(Ok(())) => tracing::info!("engine drained"),
            Ok(Err(e)) => tracing::error!(error = %e, "the engine task failed"),
            Err(_) => tracing::warn!("the engine did not drain within the grace period"),
        }
        Ok(())
    }
}

/// Creates the operator tenant and its admin key on an empty store. Returns the secret
/// when it was generated here (it is then also written to `<data-dir>/admin.key`).
async fn bootstrap(
    config: &Config,
    store: &dyn Store,
    clock: &dyn Clock,
    operator: &TenantId,
) -> anyhow::Result<Option<String>> {
    let (secret, generated) = match &config.admin_key {
        Some(secret) => {
            check_admin_key(secret)?;
            (secret.clone(), false)
        }
        None => (generate_secret(), true),
    };
    let admin = NewApiKey {
        name: ApiKeyName::parse(ADMIN_KEY_NAME).expect("the admin key name is valid"),
        secret_sha256: secret_digest(&secret),
        scopes: Scopes::ALL,
        customer: None,
    };
    let created = store
        .bootstrap(operator, admin, clock.now())
        .await
        .context("bootstrapping the operator tenant")?;
    if !created {
        if config.admin_key.is_some() {
            tracing::info!(
                "the store was bootstrapped before; PREPAID_ADMIN_KEY works only if it is \
                 the key given then"
            );
        }
        return Ok(None);
    }
    tracing::info!(tenant = OPERATOR_TENANT, "bootstrapped the operator tenant");
    if !generated {
        return Ok(None);
    }
    let path = config.data_dir.join(ADMIN_KEY_FILE);
    if let Err(e) = write_secret_file(&path, &secret) {
        // The key is still printed once; losing the file must not lose the key.
        tracing::error!(error = %e, path = %path.display(), "could not write the admin key file");
    }
    Ok(Some(secret))
}

fn check_admin_key(secret: &str) -> anyhow::Result<()> {
    let ok = (ADMIN_KEY_LEN_MIN..=ADMIN_KEY_LEN_MAX).contains(&secret.len())
        && secret.bytes().all(|b| b.is_ascii_graphic());
    anyhow::ensure!(
        ok,
        "PREPAID_ADMIN_KEY must be {ADMIN_KEY_LEN_MIN} to {ADMIN_KEY_LEN_MAX} visible ASCII \
         characters"
    );
    Ok(())
}

/// The mode of a data directory the server creates: its owner's alone, whatever the
/// umask, as it holds the database and the admin key.
pub const DATA_DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with [`DATA_DIR_MODE`]; a directory that is
/// already there keeps its mode (the operator chose it).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DATA_DIR_MODE)
        .create(dir)?;
    // The umask may have taken bits off the mode above, never added any; this sets
    // exactly the mode whatever it was.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DATA_DIR_MODE))
}

/// Writes `secret` to `path`, readable by the owner only.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // The mode above applies only to a new file; an old one is tightened too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Binds and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Server::bind(config).await?.serve(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_keys_from_the_environment_are_checked() {
        assert!(check_admin_key(&"k".repeat(ADMIN_KEY_LEN_MIN)).is_ok());
        assert!(check_admin_key(&"k".repeat(ADMIN_KEY_LEN_MAX)).is_ok());
        assert!(check_admin_key(&"k".repeat(ADMIN_KEY_LEN_MIN - 1)).is_err());
        assert!(check_admin_key(&"k".repeat(ADMIN_KEY_LEN_MAX + 1)).is_err());
        assert!(check_admin_key("has a space in it!!").is_err());
    }

    #[test]
    fn config_debug_hides_the_admin_key() {
        let config = Config {
            admin_key: Some("pp_supersecret_value".into()),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("supersecret"));
    }

    #[test]
    fn secret_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_KEY_FILE);
        write_secret_file(&path, "pp_x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "pp_x\n");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_requests_are_answered_503() {
        use tower::ServiceExt as _;
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "late"
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                ops::Edge {
                    limit: Duration::from_millis(REQUEST_TIMEOUT_MS),
                    redact: |path| std::borrow::Cow::Borrowed(path),
                },
                ops::edge,
            ));
        let request = axum::http::Request::get("/slow")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "unavailable");
    }

    #[tokio::test]
    async fn panics_are_answered_500_without_internals() {
        use tower::ServiceExt as _;
        let app = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if std::hint::black_box(true) {
                        panic!("internal detail 42");
                    }
                    "unreachable"
                }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                ops::panic_response,
            ));
        let request = axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("\"code\":\"internal\""), "{text}");
        assert!(!text.contains("42"), "{text}");
    }

    #[test]
    fn the_v1_document_names_each_operation_and_schema_once() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "an operationId is used twice");
        assert!(n >= 25, "{n} operations");
        // The TouchTopUp administration's customer is its own schema, not the native one.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(
            schemas.contains_key("CustomerOut") && schemas.contains_key("TouchTopUpCustomerOut")
        );
    }

    #[test]
    fn the_v1_document_declares_what_the_server_enforces() {
        let doc = serde_json::to_value(openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("503"), "{method} {path}");
                if method == "get" {
                    continue;
                }
                let takes_key = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key"));
                assert!(
                    takes_key,
                    "{method} {path} does not declare Idempotency-Key"
                );
            }
        }
        let schemas = &doc["components"]["schemas"];
        let amount = &schemas["PlaceHoldIn"]["properties"]["amount"];
        assert_eq!(
            (&amount["minimum"], &amount["maximum"]),
            (
                &serde_json::json!(1),
                &serde_json::json!(prepaid_ledger::AMOUNT_MAX)
            )
        );
        assert_eq!(schemas["ReferenceInput"]["oneOf"][0]["type"], "string");
        let limit = &doc["paths"]["/v1/customers"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()["schema"];
        assert_eq!(
            (&limit["minimum"], &limit["maximum"]),
            (&serde_json::json!(1), &serde_json::json!(1000))
        );
    }

    #[test]
    fn postgres_urls_are_recognised() {
        assert!(is_postgres_url("postgres://u@127.0.0.1:5432/db"));
        assert!(is_postgres_url("postgresql://u@127.0.0.1/db?options=x"));
        assert!(!is_postgres_url("mysql://u@127.0.0.1/db"));
        assert!(!is_postgres_url("postgres"));
    }

    #[tokio::test]
    async fn other_database_urls_are_refused_clearly() {
        let config = Config {
            database_url: Some("mysql://localhost/prepaid".into()),
            ..Config::default()
        };
        let err = open_store(&config).await.err().unwrap().to_string();
        assert!(err.contains("unsupported database URL scheme"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_postgres_fails_the_start() {
        // Port 1 on loopback refuses connections at once.
        let config = Config {
            database_url: Some("postgres://prepaid@127.0.0.1:1/prepaid".into()),
            ..Config::default()
        };
        let err = format!("{:#}", open_store(&config).await.err().unwrap());
        assert!(err.contains("cannot connect to the database"), "{err}");
    }
}
