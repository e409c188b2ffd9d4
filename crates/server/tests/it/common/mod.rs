//! The harness of the black-box tests: it runs the `prepaid` binary on a temporary data
//! directory, talks to it over HTTP and checks the answers against `docs/native-api.md`.
//!
//! Every test starts its own server (port 0, its own data directory), so tests run in
//! parallel.
//!
//! The backend of [`Server::start`] is chosen for the whole suite by the environment
//! variable [`TEST_BACKEND_ENV`]: `sqlite` (the default) or `postgres`, which gives each
//! server a fresh schema in the test database of `prepaid_store_postgres::testing`
//! (and fails when that database cannot be reached). Tests that need PostgreSQL
//! whatever the suite's backend use [`Server::start_postgres`] and friends, which skip
//! with a `PostgreSQL tests not run` line when there is no database outside CI. A [`Server`] kills its process when dropped, so a failing test never leaves
//! a server behind; when the test is panicking, the tail of the server's log is printed
//! to help find the cause.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code, unused_imports)]

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

pub use prepaid_ledger::{AMOUNT_MAX, ID_LEN_MAX, IDEMPOTENCY_KEY_LEN_MAX, NAME_LEN_MAX};

/// The largest page a list returns (`?limit=` at most this).
pub const PAGE_LIMIT_MAX: usize = 1000;
/// The most items of one `POST /v1/batch`.
pub const BATCH_ITEMS_MAX: usize = 8000;
/// The largest request body, in bytes.
pub const BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// A guard against a list whose cursor never ends.
const LIST_PAGES_MAX: usize = 100_000;
/// How many lines of the server's log to print when a test fails.
const LOG_TAIL_LINES: usize = 60;

const LISTENING_PREFIX: &str = "prepaid listening on ";

/// The environment variable that chooses the backend of [`Server::start`].
pub const TEST_BACKEND_ENV: &str = "PREPAID_TEST_BACKEND";

pub use prepaid_store_postgres::testing::TestSchema;

/// Whether the suite runs on PostgreSQL (see [`TEST_BACKEND_ENV`]).
pub fn postgres_backend() -> bool {
    match std::env::var(TEST_BACKEND_ENV).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(std::env::VarError::NotPresent) => false,
        Ok(other) => panic!("{TEST_BACKEND_ENV} must be sqlite or postgres, not {other:?}"),
        Err(e) => panic!("{TEST_BACKEND_ENV}: {e}"),
    }
}

/// A fresh schema in the test database, or `None` (after the skip line) when there is
/// no database outside CI.
pub async fn fresh_schema() -> Option<Arc<TestSchema>> {
    prepaid_store_postgres::testing::fresh_schema()
        .await
        .map(Arc::new)
}

/// A random-enough secret for the operator's admin key, different for each server.
fn fresh_secret() -> String {
    format!("test-admin-{}", uuid::Uuid::new_v4().simple())
}

/// One `prepaid serve` process and its data directory, which outlives restarts.
pub struct Server {
    child: Option<Child>,
    base: String,
    data_dir: Arc<tempfile::TempDir>,
    log_dir: tempfile::TempDir,
    log_path: PathBuf,
    admin_secret: String,
    starts: AtomicU32,
    /// The PostgreSQL database the server runs on; `None` for SQLite in `data_dir`.
    database_url: Option<String>,
    /// Keeps the server's schema until the last server on it is gone.
    schema: Option<Arc<TestSchema>>,
    /// Environment variables the process gets besides the harness's own.
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts a server on a fresh, empty store of the suite's backend.
    pub async fn start() -> Server {
        Server::start_with_env(&[]).await
    }

    /// Starts a server on a fresh, empty store of the suite's backend, with these
    /// environment variables set (settings such as [`paypal_env`]).
    pub async fn start_with_env(env: &[(&str, String)]) -> Server {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        if !postgres_backend() {
            return Server::start_with(None, None, fresh_secret(), env).await;
        }
        let Some(schema) = fresh_schema().await else {
            panic!("{TEST_BACKEND_ENV}=postgres, but the test database cannot be reached");
        };
        Server::start_with(
            Some(schema.url().to_owned()),
            Some(schema),
            fresh_secret(),
            env,
        )
        .await
    }

    /// Starts a server on a fresh PostgreSQL schema whatever the suite's backend;
    /// `None` (after the skip line) when there is no database outside CI.
    pub async fn start_postgres() -> Option<Server> {
        let schema = fresh_schema().await?;
        Some(Server::start_on_schema(&schema, &fresh_secret()).await)
    }

    /// Starts a server on `schema` with this operator secret; several servers on one
    /// schema are several instances on one database.
    pub async fn start_on_schema(schema: &Arc<TestSchema>, admin_secret: &str) -> Server {
        Server::start_on_url(schema.url(), Some(schema.clone()), admin_secret).await
    }

    /// [`Server::start_on_schema`] with these environment variables set.
    pub async fn start_on_schema_with_env(
        schema: &Arc<TestSchema>,
        admin_secret: &str,
        env: &[(&str, String)],
    ) -> Server {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        Server::start_with(
            Some(schema.url().to_owned()),
            Some(schema.clone()),
            admin_secret.to_owned(),
            env,
        )
        .await
    }

    /// Starts a server on the PostgreSQL database at `url` (a proxy, say), keeping
    /// `schema` alive while it runs.
    pub async fn start_on_url(
        url: &str,
        schema: Option<Arc<TestSchema>>,
        admin_secret: &str,
    ) -> Server {
        Server::start_with(
            Some(url.to_owned()),
            schema,
            admin_secret.to_owned(),
            Vec::new(),
        )
        .await
    }

    async fn start_with(
        database_url: Option<String>,
        schema: Option<Arc<TestSchema>>,
        admin_secret: String,
        env: Vec<(String, String)>,
    ) -> Server {
        let data_dir = Arc::new(tempfile::tempdir().expect("create data dir"));
        let log_dir = tempfile::tempdir().expect("create log dir");
        let mut server = Server {
            child: None,
            base: String::new(),
            data_dir,
            log_dir,
            log_path: PathBuf::new(),
            admin_secret,
            starts: AtomicU32::new(0),
            database_url,
            schema,
            env,
        };
        server.launch().await;
        server
    }

    /// The PostgreSQL URL the server runs on, `None` on SQLite.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    async fn launch(&mut self) {
        assert!(self.child.is_none(), "launch while a process runs");
        let n = self.starts.fetch_add(1, Ordering::SeqCst);
        let log_path = self.log_dir.path().join(format!("server-{n}.log"));
        let data_dir = self.data_dir.path().to_path_buf();
        let secret = self.admin_secret.clone();
        let log = log_path.clone();
        let database_url = self.database_url.clone();
        let env = self.env.clone();
        // Reading the announcement line blocks, so it runs off the async worker threads.
        let (child, line) = tokio::task::spawn_blocking(move || {
            spawn_server(&data_dir, database_url.as_deref(), &secret, &log, &env)
        })
        .await
        .expect("spawn task");
        self.log_path = log_path;
        self.child = Some(child);
        let Some(line) = line else {
            let tail = self.log_tail();
            panic!("prepaid exited without announcing its address; log:\n{tail}");
        };
        let url = line
            .strip_suffix('\n')
            .unwrap_or(&line)
            .strip_prefix(LISTENING_PREFIX)
            .unwrap_or_else(|| panic!("unexpected first stdout line {line:?}"));
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected listen address {url:?}"));
        let port: u16 = port
            .parse()
            .unwrap_or_else(|_| panic!("bad port in {line:?}"));
        assert_ne!(port, 0, "the server must announce the port it bound");
        self.base = url.to_owned();
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The process id of the running server (to read its `/proc` entries).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running server").id()
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The secret of the operator's admin key (`admin` of tenant `default`).
    pub fn admin_secret(&self) -> &str {
        &self.admin_secret
    }

    /// A client authenticated as the operator's admin (Bearer).
    pub fn admin(&self) -> Api {
        Api::new(&self.base, Auth::Bearer(self.admin_secret.clone()))
    }

    /// A client that sends no credentials.
    pub fn anonymous(&self) -> Api {
        Api::new(&self.base, Auth::None)
    }

    /// A client with the given credentials.
    pub fn client(&self, auth: Auth) -> Api {
        Api::new(&self.base, auth)
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL prepaid");
            child.wait().expect("wait for prepaid");
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns how it exited.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("terminate: no running process");
        let pid = child.id().to_string();
        tokio::task::spawn_blocking(move || {
            let sent = Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("run kill -TERM");
            assert!(sent.success(), "kill -TERM {pid} failed");
            child.wait().expect("wait for prepaid")
        })
        .await
        .expect("terminate task")
    }

    /// Stops the process gracefully (SIGTERM) and starts a new one on the same data
    /// directory with the same operator secret. Returns how the old process exited.
    pub async fn restart(&mut self) -> ExitStatus {
        let status = self.terminate().await;
        self.launch().await;
        status
    }

    /// Kills the process (SIGKILL, no chance to clean up) and starts a new one on the
    /// same data directory.
    pub async fn crash_and_restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// Starts a process again after [`Server::kill`] or [`Server::terminate`].
    pub async fn start_again(&mut self) {
        self.launch().await;
    }

    /// The last lines the server wrote to stderr.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[from..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- tail of the prepaid log ({}) ----\n{}\n---- end of log ----",
                self.log_path.display(),
                self.log_tail()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Spawns `prepaid serve` and reads its first stdout line (`None` when it exited first).
fn spawn_server(
    data_dir: &Path,
    database_url: Option<&str>,
    secret: &str,
    log_path: &Path,
    env: &[(String, String)],
) -> (Child, Option<String>) {
    let log = File::create(log_path).expect("create server log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_prepaid"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir);
    if let Some(url) = database_url {
        command.arg("--database-url").arg(url);
    }
    command
        .env("PREPAID_ADMIN_KEY", secret)
        // Only the argument above chooses the database, never the environment.
        .env_remove("PREPAID_DATABASE_URL")
        // Only the test chooses the payment provider.
        .env_remove("PREPAID_PAYMENT_PROVIDER")
        .env_remove("PREPAID_PAYPAL_BASE_URL")
        .env_remove("PREPAID_PAYPAL_CLIENT_ID")
        .env_remove("PREPAID_PAYPAL_CLIENT_SECRET")
        .envs(env.iter().map(|(k, v)| (k, v)));
    launch_process(command, log)
}

/// Starts `command` (a `prepaid serve`, or a shell that runs one) with its log in `log`,
/// and reads the line that announces its address; `None` when it exited first.
pub fn launch_process(mut command: Command, log: File) -> (Child, Option<String>) {
    let mut child = command
        // The log is a file: no colour codes in it.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn prepaid");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let n = reader.read_line(&mut line).expect("read prepaid stdout");
    if n == 0 {
        let _ = child.wait();
        return (child, None);
    }
    // Keep draining stdout so that the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    (child, Some(line))
}

/// The environment that points a server's PayPal payment provider at `base_url` (a
/// stand-in of PayPal's REST API) with the REST app credentials `client_id`/`client_secret`.
pub fn paypal_env(
    base_url: &str,
    client_id: &str,
    client_secret: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("PREPAID_PAYMENT_PROVIDER", "paypal".to_owned()),
        ("PREPAID_PAYPAL_BASE_URL", base_url.to_owned()),
        ("PREPAID_PAYPAL_CLIENT_ID", client_id.to_owned()),
        ("PREPAID_PAYPAL_CLIENT_SECRET", client_secret.to_owned()),
    ]
}

/// The credentials a client sends.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Bearer(String),
    Basic {
        name: String,
        secret: String,
    },
    /// The `Authorization` header verbatim.
    Raw(String),
}

impl Auth {
    /// The `Authorization` header this sends, if any.
    pub fn header_value(&self) -> Option<String> {
        use base64::Engine as _;
        match self {
            Auth::None => None,
            Auth::Bearer(secret) => Some(format!("Bearer {secret}")),
            Auth::Basic { name, secret } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{name}:{secret}"))
            )),
            Auth::Raw(value) => Some(value.clone()),
        }
    }

    pub fn basic(name: &str, secret: &str) -> Auth {
        Auth::Basic {
            name: name.to_owned(),
            secret: secret.to_owned(),
        }
    }
}

/// An HTTP client for one server with one set of credentials.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

/// An answer, read in full.
#[derive(Debug)]
pub struct Resp {
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body parsed as JSON, `Null` when it is not JSON.
    pub json: Value,
}

impl Api {
    pub fn new(base: &str, auth: Auth) -> Api {
        Api {
            http: reqwest::Client::builder()
                .build()
                .expect("build http client"),
            base: base.to_owned(),
            auth,
        }
    }

    /// The same server with other credentials (and its own connection pool).
    pub fn with_auth(&self, auth: Auth) -> Api {
        Api::new(&self.base, auth)
    }

    /// The credentials this client sends (to rebuild it for a restarted server).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub fn with_bearer(&self, secret: &str) -> Api {
        self.with_auth(Auth::Bearer(secret.to_owned()))
    }

    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{}", self.base, path)).expect("valid url")
    }

    /// Sends any request; `Err` only when no answer came (connection refused or cut).
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, reqwest::Error> {
        let mut req = self.http.request(method.clone(), self.url(path));
        req = match &self.auth {
            Auth::None => req,
            Auth::Bearer(secret) => req.bearer_auth(secret),
            Auth::Basic { name, secret } => req.basic_auth(name, Some(secret)),
            Auth::Raw(value) => req.header("authorization", value),
        };
        for (name, value) in headers {
            req = req.header(*name, HeaderValue::from_str(value).expect("header value"));
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp {
            method,
            path: path.to_owned(),
            status,
            headers,
            text,
            json,
        })
    }

    /// Sends any request and insists on an answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let m = method.clone();
        match self.try_send(method, path, headers, body).await {
            Ok(r) => r,
            Err(e) => panic!("{m} {path}: no answer: {e:?}"),
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, &[], None).await
    }

    /// A JSON request with `content-type: application/json`.
    pub async fn json(&self, method: Method, path: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).expect("encode json");
        self.send(
            method,
            path,
            &[("content-type", "application/json")],
            Some(bytes),
        )
        .await
    }

    /// A POST sent by hand with `Expect: 100-continue`: the body goes out only when the
    /// server asks for it. A server that refuses a request on its headers alone (a body
    /// too large by its `Content-Length`) answers before reading anything, so its answer
    /// always arrives; an ordinary client racing to write a body the server will never
    /// read may instead see the connection cut.
    pub async fn post_expect_continue(&self, path: &str, content_type: &str, body: &[u8]) -> Resp {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let url = self.url(path);
        let host = format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port().expect("port")
        );
        let mut stream = tokio::net::TcpStream::connect(&host)
            .await
            .expect("connect");
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: {content_type}\r\n\
             content-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n",
            body.len()
        );
        if let Some(auth) = self.auth.header_value() {
            head.push_str(&format!("authorization: {auth}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write head");

        let mut buf = Vec::new();
        loop {
            let (status, headers, head_len) = loop {
                if let Some(parsed) = parse_head(&buf) {
                    break parsed;
                }
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await.expect("read answer");
                assert!(n > 0, "POST {path}: connection closed without an answer");
                buf.extend_from_slice(&chunk[..n]);
            };
            buf.drain(..head_len);
            if status == 100 {
                stream.write_all(body).await.expect("write body");
                continue;
            }
            let len: Option<usize> = headers
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            match len {
                Some(len) => {
                    while buf.len() < len {
                        let mut chunk = [0u8; 8192];
                        let n = stream.read(&mut chunk).await.expect("read body");
                        assert!(n > 0, "POST {path}: answer cut short");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    buf.truncate(len);
                }
                None => {
                    stream.read_to_end(&mut buf).await.expect("read body");
                }
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Resp {
                method: Method::POST,
                path: path.to_owned(),
                status,
                headers,
                text,
                json,
            };
        }
    }

    pub async fn try_post(&self, path: &str, body: &Value) -> Result<Resp, reqwest::Error> {
        let bytes = serde_json::to_vec(body).expect("encode json");
        self.try_send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(bytes),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.json(Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.json(Method::PATCH, path, body).await
    }

    /// A POST with an `Idempotency-Key`.
    pub async fn post_idem(&self, path: &str, key: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).expect("encode json");
        self.send(
            Method::POST,
            path,
            &[
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
            Some(bytes),
        )
        .await
    }

    // ---- fixtures: each asserts the documented success answer ----

    pub async fn create_customer(&self, id: &str) -> Value {
        self.post(
            "/v1/customers",
            &json!({"id": id, "name": format!("Customer {id}")}),
        )
        .await
        .ok(201)
    }

    /// A wallet with the default floor (zero).
    pub async fn create_wallet(&self, customer: &str, id: &str, unit: &str, scale: u8) -> Value {
        self.post(
            &format!("/v1/customers/{customer}/wallets"),
            &json!({"id": id, "unit": unit, "scale": scale}),
        )
        .await
        .ok(201)
    }

    /// A customer with one `EUR`/2 wallet holding `balance`.
    pub async fn funded_wallet(&self, customer: &str, wallet: &str, balance: i64) -> Value {
        self.create_customer(customer).await;
        self.create_wallet(customer, wallet, "EUR", 2).await;
        if balance > 0 {
            self.top_up(wallet, balance).await;
        }
        self.wallet(wallet).await
    }

    pub async fn mutate(&self, wallet: &str, kind: &str, amount: i64) -> Resp {
        self.post(
            &format!("/v1/wallets/{wallet}/mutations"),
            &json!({"kind": kind, "amount": amount}),
        )
        .await
    }

    pub async fn top_up(&self, wallet: &str, amount: i64) -> Value {
        self.mutate(wallet, "top_up", amount).await.ok(201)
    }

    pub async fn debit(&self, wallet: &str, amount: i64) -> Value {
        self.mutate(wallet, "debit", amount).await.ok(201)
    }

    pub async fn wallet(&self, id: &str) -> Value {
        self.get(&format!("/v1/wallets/{id}")).await.ok(200)
    }

    pub async fn balance(&self, wallet: &str) -> i64 {
        int(&self.wallet(wallet).await, "balance")
    }

    /// Every mutation of a wallet, oldest first, following the cursor.
    pub async fn mutations(&self, wallet: &str) -> Vec<Value> {
        self.list_all(&format!("/v1/wallets/{wallet}/mutations"), PAGE_LIMIT_MAX)
            .await
    }

    /// Follows `next` from the first page to the last, `limit` items a page; checks the
    /// page shape on the way.
    pub async fn list_all(&self, path: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..LIST_PAGES_MAX {
            let page = self.page(path, limit, after.as_deref()).await;
            let got = page["items"].as_array().expect("items array");
            assert!(
                got.len() <= limit,
                "GET {path}: page of {} items with limit={limit}",
                got.len()
            );
            items.extend(got.iter().cloned());
            match &page["next"] {
                Value::Null => return items,
                Value::String(next) => {
                    assert!(
                        !got.is_empty(),
                        "GET {path}: an empty page must be the last (next={next:?})"
                    );
                    after = Some(next.clone());
                }
                other => panic!("GET {path}: next must be a string or null, got {other}"),
            }
        }
        panic!("GET {path}: more than {LIST_PAGES_MAX} pages, the cursor does not end");
    }

    /// One page (`{"items", "next"}`) of a list.
    pub async fn page(&self, path: &str, limit: usize, after: Option<&str>) -> Value {
        let mut url = self.url(path);
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", after);
        }
        let path_and_query = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let page = self.get(&path_and_query).await.ok(200);
        assert!(
            page["items"].is_array(),
            "GET {path_and_query}: no items: {page}"
        );
        assert!(
            page.get("next").is_some(),
            "GET {path_and_query}: no next member: {page}"
        );
        page
    }

    /// Creates tenant `id` as the operator; returns the answer and a client holding
    /// the new tenant's admin key.
    pub async fn create_tenant(&self, id: &str) -> (Value, Api) {
        let body = self
            .post(
                "/v1/tenants",
                &json!({"id": id, "name": format!("Tenant {id}")}),
            )
            .await
            .ok(201);
        let secret = body["admin_key"]["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("tenant answer without admin_key.secret: {body}"));
        let admin = self.with_bearer(secret);
        (body, admin)
    }

    /// Creates an API key; returns the answer (with `secret`) and a client using it.
    pub async fn create_key(
        &self,
        name: &str,
        scopes: &[&str],
        customer: Option<&str>,
    ) -> (Value, Api) {
        let mut body = json!({"name": name, "scopes": scopes});
        if let Some(c) = customer {
            body["customer_id"] = json!(c);
        }
        let key = self.post("/v1/api-keys", &body).await.ok(201);
        let secret = key["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("api key answer without secret: {key}"));
        let api = self.with_bearer(secret);
        (key, api)
    }
}

impl Resp {
    fn describe(&self) -> String {
        let text: String = self.text.chars().take(2000).collect();
        format!("{} {} -> {} {}", self.method, self.path, self.status, text)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header, joined by `, `.
    pub fn header_all(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// Asserts a success answer with a JSON body and returns the body.
    #[track_caller]
    pub fn ok(self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected {status}: {}",
            self.describe()
        );
        assert!(
            self.content_type().starts_with("application/json"),
            "expected content-type application/json, got {:?}: {}",
            self.content_type(),
            self.describe()
        );
        assert!(
            !self.json.is_null(),
            "expected a JSON body: {}",
            self.describe()
        );
        self.json
    }

    /// Asserts an RFC 9457 problem answer with this status and code.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        self.problem_any(status, &[code])
    }

    /// Asserts a problem answer with this status and one of these codes.
    #[track_caller]
    pub fn problem_any(&self, status: u16, codes: &[&str]) -> &Value {
        if let Err(why) = self.check_problem(&[status], codes) {
            panic!("{why}");
        }
        &self.json
    }

    /// Asserts a problem answer with one of these statuses and one of these codes.
    #[track_caller]
    pub fn problem_in(&self, statuses: &[u16], codes: &[&str]) -> &Value {
        if let Err(why) = self.check_problem(statuses, codes) {
            panic!("{why}");
        }
        &self.json
    }

    /// Checks the problem shape: `application/problem+json`, `status` equal to the HTTP
    /// status, `code` among `codes` (any code when empty), `type` derived from `code`,
    /// a `title`.
    pub fn check_problem(&self, statuses: &[u16], codes: &[&str]) -> Result<(), String> {
        let d = self.describe();
        if !statuses.contains(&self.status) {
            return Err(format!("expected status in {statuses:?}: {d}"));
        }
        check_problem_body(&self.json, self.status, self.content_type(), codes)
            .map_err(|why| format!("{why}: {d}"))
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).expect("valid status")
    }
}

/// Parses an HTTP/1.1 answer head at the start of `buf`: status, headers and the head's
/// length, or `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Option<(u16, HeaderMap, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&buf[..end]).expect("ASCII head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').expect("header line");
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            HeaderValue::from_str(value.trim()).expect("header value"),
        );
    }
    Some((status, headers, end))
}

/// Checks a problem document (an HTTP answer's body or a batch item's `error`).
pub fn check_problem_body(
    body: &Value,
    status: u16,
    content_type: &str,
    codes: &[&str],
) -> Result<(), String> {
    if !content_type.starts_with("application/problem+json") {
        return Err(format!(
            "content-type must be application/problem+json, got {content_type:?}"
        ));
    }
    if body["status"].as_u64() != Some(u64::from(status)) {
        return Err(format!("problem status member must be {status}"));
    }
    let Some(code) = body["code"].as_str() else {
        return Err("problem without a string code".into());
    };
    if !codes.is_empty() && !codes.contains(&code) {
        return Err(format!("expected code in {codes:?}, got {code:?}"));
    }
    if body["type"].as_str() != Some(format!("urn:prepaid:problem:{code}").as_str()) {
        return Err(format!("type must be urn:prepaid:problem:{code}"));
    }
    if !body["title"].is_string() {
        return Err("problem without a title".into());
    }
    Ok(())
}

/// An integer member, or a panic that shows the document.
#[track_caller]
pub fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} must be an integer in {v}"))
}

/// A string member, or a panic that shows the document.
#[track_caller]
pub fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} must be a string in {v}"))
}

/// The ids of the items of a list.
pub fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|v| str_of(v, "id").to_owned()).collect()
}

/// Asserts the output time format `2026-11-25T10:00:00.000000Z`.
#[track_caller]
pub fn assert_time(v: &Value, field: &str) {
    let s = str_of(v, field);
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    let ok = b.len() == 27
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26)
        && b[26] == b'Z';
    assert!(
        ok,
        "{field} must look like 2026-11-25T10:00:00.000000Z, got {s:?} in {v}"
    );
}

/// Asserts that a wallet's balance is the sum of its mutations and that every
/// `balance_after` is the running sum; returns the mutations.
pub async fn assert_balance_is_sum(api: &Api, wallet: &str) -> Vec<Value> {
    let w = api.wallet(wallet).await;
    let muts = api.mutations(wallet).await;
    let mut sum = 0i64;
    for m in &muts {
        assert_eq!(
            str_of(m, "wallet_id"),
            wallet,
            "foreign mutation in list: {m}"
        );
        sum += int(m, "amount");
        assert_eq!(
            int(m, "balance_after"),
            sum,
            "balance_after is not the running sum of amounts at {m}"
        );
    }
    assert_eq!(
        int(&w, "balance"),
        sum,
        "wallet {wallet} balance differs from the sum of its {} mutations",
        muts.len()
    );
    muts
}

// ---- the Talkdesk dialect (`/account/wallets`) ----

/// The members of a Talkdesk wallet list, exactly.
pub const TALKDESK_LIST_MEMBERS: &[&str] =
    &["total", "count", "page", "per_page", "_links", "_embedded"];
/// The members of a Talkdesk wallet, exactly.
pub const TALKDESK_WALLET_MEMBERS: &[&str] = &[
    "name",
    "product_name",
    "balance",
    "account_id",
    "created_at",
    "updated_at",
    "_links",
];

/// Asserts that the object `v` has exactly the members `names`.
#[track_caller]
pub fn assert_members(v: &Value, names: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("expected an object, got {v}"));
    let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut want = names.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "members of {v}");
}

/// Encodes every byte but ASCII letters, digits, `-`, `.` and `_` as `%XX`: a value
/// that may stand in a path segment or a query.
pub fn percent_encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (the path segments of hrefs).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ASCII escape");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

/// The wallet id at the end of a Talkdesk wallet's `_links.self.href`.
#[track_caller]
pub fn talkdesk_wallet_id(wallet: &Value) -> String {
    let href = wallet["_links"]["self"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("wallet without _links.self.href: {wallet}"));
    let (_, id) = href
        .rsplit_once("/account/wallets/")
        .unwrap_or_else(|| panic!("self href {href:?} is not under /account/wallets/"));
    percent_decode(id)
}

/// Checks the documented shape of one Talkdesk wallet.
#[track_caller]
pub fn check_talkdesk_wallet(w: &Value) {
    assert_members(w, TALKDESK_WALLET_MEMBERS);
    for field in ["name", "product_name", "account_id"] {
        let s = str_of(w, field);
        assert!(
            (1..=255).contains(&s.chars().count()),
            "{field} must be 1 to 255 characters in {w}"
        );
    }
    assert!(w["balance"].is_number(), "balance must be a number in {w}");
    assert_time(w, "created_at");
    assert_time(w, "updated_at");
    assert_members(&w["_links"], &["self"]);
    assert_members(&w["_links"]["self"], &["href"]);
    talkdesk_wallet_id(w);
}

/// Checks the documented shape of a Talkdesk wallet list; returns its wallets.
#[track_caller]
pub fn check_talkdesk_list(v: &Value) -> Vec<Value> {
    assert_members(v, TALKDESK_LIST_MEMBERS);
    let links = v["_links"]
        .as_object()
        .unwrap_or_else(|| panic!("_links must be an object in {v}"));
    for (rel, link) in links {
        assert!(
            ["self", "first", "prev", "next", "last"].contains(&rel.as_str()),
            "unexpected link {rel} in {v}"
        );
        assert_members(link, &["href"]);
        assert!(link["href"].is_string(), "{rel}.href must be a string");
    }
    for rel in ["self", "first", "last"] {
        assert!(links.contains_key(rel), "_links.{rel} is missing in {v}");
    }
    assert_members(&v["_embedded"], &["wallets"]);
    let wallets = v["_embedded"]["wallets"]
        .as_array()
        .unwrap_or_else(|| panic!("_embedded.wallets must be an array in {v}"))
        .clone();
    for w in &wallets {
        check_talkdesk_wallet(w);
    }
    assert_eq!(
        int(v, "count"),
        wallets.len() as i64,
        "count must be the wallets on the page"
    );
    assert!(int(v, "total") >= int(v, "count"));
    wallets
}

impl Resp {
    /// Asserts an error in Talkdesk's shape (`{code, message, description?, fields}`)
    /// with this status and code.
    #[track_caller]
    pub fn talkdesk_error(&self, status: u16, code: &str) -> &Value {
        let d = self.describe();
        assert_eq!(self.status, status, "expected {status}: {d}");
        assert!(
            self.content_type().starts_with("application/json"),
            "a Talkdesk error is application/json: {d}"
        );
        let obj = self
            .json
            .as_object()
            .unwrap_or_else(|| panic!("a Talkdesk error is an object: {d}"));
        for name in obj.keys() {
            assert!(
                ["code", "message", "description", "fields"].contains(&name.as_str()),
                "unexpected member {name}: {d}"
            );
        }
        assert_eq!(self.json["code"].as_str(), Some(code), "code: {d}");
        assert!(self.json["message"].is_string(), "message: {d}");
        if let Some(desc) = obj.get("description") {
            assert!(desc.is_string(), "description: {d}");
        }
        let fields = self.json["fields"]
            .as_array()
            .unwrap_or_else(|| panic!("fields must be an array: {d}"));
        for f in fields {
            assert_members(f, &["name", "description"]);
            assert!(f["name"].is_string() && f["description"].is_string(), "{d}");
        }
        &self.json
    }
}

impl Api {
    /// A wallet with a name and a product name (what the Talkdesk dialect serves when
    /// its unit is `CREDIT`).
    pub async fn create_product_wallet(
        &self,
        customer: &str,
        id: &str,
        unit: &str,
        scale: u8,
        name: &str,
        product: &str,
    ) -> Value {
        self.post(
            &format!("/v1/customers/{customer}/wallets"),
            &json!({"id": id, "unit": unit, "scale": scale, "name": name, "product": product}),
        )
        .await
        .ok(201)
    }

    /// `GET /account/wallets` with these query parameters, encoded as a form.
    pub async fn talkdesk_get(&self, params: &[(&str, &str)]) -> Resp {
        let mut url = self.url("/account/wallets");
        if !params.is_empty() {
            let mut q = url.query_pairs_mut();
            for (name, value) in params {
                q.append_pair(name, value);
            }
        }
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        self.get(&path).await
    }

    /// `GET /account/wallets`, asserting 200 and the documented shape.
    pub async fn talkdesk_list(&self, params: &[(&str, &str)]) -> Value {
        let v = self.talkdesk_get(params).await.ok(200);
        check_talkdesk_list(&v);
        v
    }

    /// GETs an absolute href that this server gave out.
    pub async fn get_href(&self, href: &str) -> Resp {
        let path = href
            .strip_prefix(&self.base)
            .unwrap_or_else(|| panic!("href {href:?} does not start with {}", self.base));
        self.get(path).await
    }
}

// ---- the TOPdesk Prepaid Services dialect ----

/// Where the TOPdesk dialect is mounted.
pub const TOPDESK_ROOT: &str = "/services/prepaid-services-backend";

/// The absolute URL of the TOPdesk dialect's root on `api`'s server, as its hrefs
/// show it.
pub fn topdesk_base(api: &Api) -> String {
    let url = api.url(TOPDESK_ROOT);
    url.as_str().trim_end_matches('/').to_owned()
}

/// A `BalanceMutationDto` for customer `customer` (a UUID), with `self` naming `id`
/// when given.
pub fn topdesk_dto(
    customer: &str,
    id: Option<&str>,
    minutes: i64,
    date: &str,
    reference: Option<&str>,
) -> Value {
    let mut links = json!({
        "for": {"href": format!("https://acme.topdesk.net/tas/api/branches/id/{customer}")}
    });
    if let Some(id) = id {
        links["self"] = json!({
            "href": format!("https://acme.topdesk.net{TOPDESK_ROOT}/balance-mutations/{id}")
        });
    }
    let mut on = json!({"type": "EXTERNAL_SYSTEM"});
    if let Some(r) = reference {
        on["reference"] = json!(r);
    }
    json!({"_links": links, "amountOfMinutes": minutes, "modificationDate": date, "on": on})
}

/// Posts a balance mutation as `application/hal+json`.
pub async fn topdesk_post(api: &Api, body: &Value) -> Resp {
    api.send(
        Method::POST,
        &format!("{TOPDESK_ROOT}/balance-mutations"),
        &[("content-type", "application/hal+json")],
        Some(serde_json::to_vec(body).expect("encode json")),
    )
    .await
}

/// Posts a balance mutation that must be created; returns its `Location`.
pub async fn topdesk_create(api: &Api, body: &Value) -> String {
    let r = topdesk_post(api, body).await;
    assert_eq!(r.status, 201, "expected 201: {} {}", r.status, r.text);
    assert!(r.text.is_empty(), "a 201 has no body: {:?}", r.text);
    r.header("location")
        .unwrap_or_else(|| panic!("201 without Location"))
        .to_owned()
}

/// The last path segment of an href.
pub fn last_segment(href: &str) -> &str {
    href.rsplit('/').next().unwrap_or_default()
}

/// Asserts a HAL+JSON answer with this status; returns its body.
#[track_caller]
pub fn hal_ok(r: Resp, status: u16) -> Value {
    assert_eq!(
        r.status, status,
        "expected {status}: {} {} -> {} {}",
        r.method, r.path, r.status, r.text
    );
    assert!(
        r.content_type().starts_with("application/hal+json"),
        "expected application/hal+json, got {:?}: {}",
        r.content_type(),
        r.text
    );
    r.json
}

/// Asserts a plain-text error with this status whose message contains `needle`.
#[track_caller]
pub fn text_error(r: &Resp, status: u16, needle: &str) {
    assert_eq!(
        r.status, status,
        "expected {status}: {} {} -> {} {}",
        r.method, r.path, r.status, r.text
    );
    assert!(
        r.content_type().starts_with("text/plain"),
        "errors are text/plain, got {:?}: {}",
        r.content_type(),
        r.text
    );
    assert!(
        r.text.contains(needle),
        "{} {} -> {}: {:?} does not mention {needle:?}",
        r.method,
        r.path,
        r.status,
        r.text
    );
}

/// `GET /balance-mutations` with these parameters (values are URL-encoded here).
pub async fn topdesk_list(api: &Api, params: &[(&str, &str)]) -> Resp {
    let mut url = api.url(&format!("{TOPDESK_ROOT}/balance-mutations"));
    for (k, v) in params {
        url.query_pairs_mut().append_pair(k, v);
    }
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    api.get(&path).await
}

/// Follows an absolute href of the TOPdesk dialect on `api`'s server.
pub async fn topdesk_follow(api: &Api, href: &str) -> Resp {
    let base = api.url("/");
    let path = href
        .strip_prefix(base.as_str().trim_end_matches('/'))
        .unwrap_or_else(|| panic!("{href} is not on this server ({base})"));
    api.get(path).await
}

/// A server running inside the test's process over a store the test made (one the
/// binary's flags cannot reach, or with rows put in directly).
pub struct InProcess {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Binds to a free port over `store`; the operator's admin secret is `admin_secret`
    /// when this bootstraps the store.
    pub async fn start(
        store: Arc<dyn prepaid_store::Store>,
        data_dir: &Path,
        admin_secret: &str,
    ) -> InProcess {
        let config = prepaid_server::Config {
            listen: "127.0.0.1:0".parse().expect("listen address"),
            data_dir: data_dir.to_path_buf(),
            admin_key: Some(admin_secret.to_owned()),
            ..prepaid_server::Config::default()
        };
        let server = prepaid_server::Server::bind_with(
            config,
            store,
            Arc::new(prepaid_store::SystemClock),
            prepaid_server::SQLITE_ENGINE,
        )
        .await
        .expect("bind an in-process server");
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        InProcess {
            base,
            stop: Some(stop),
            serving,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn client(&self, auth: Auth) -> Api {
        Api::new(&self.base, auth)
    }

    /// Shuts the server down gracefully and insists that it stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.serving)
            .await
            .expect("the server task")
            .expect("the server stopped cleanly");
    }
}
