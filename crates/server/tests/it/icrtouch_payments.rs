//! The payment providers of the TouchTopUp dialect from the outside: the PayPal
//! provider against a local stand-in of PayPal's REST API (OAuth2 client credentials
//! and Orders v2, answering as PayPal documents), and the built-in test provider over a
//! real store, across a restart.

use crate::common;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use common::*;
use prepaid_dialect_touchtopup::checkout::{PAYMENT_HOLD_SECS, PAYMENT_RECORD_MARGIN_SECS};
use prepaid_dialect_touchtopup::payments::paypal::PayPal;
use prepaid_dialect_touchtopup::payments::{
    Finished, PaymentError, PaymentProvider, PaymentProviderConfig, StartPayment,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const CLIENT_ID: &str = "AYSq3RDGsmBLJE-otTkBtM-jBRd1TCQwFf9RGfwddNXWz0uFU9ztymylOhRS";
const CLIENT_SECRET: &str = "EGnHDxD_qRPdaLdZz8iCr8N7_MzF-YHPTkjs6NKYQvQSBngp4PTTVWkPZRbL";
/// The operator's secret of the in-process instances.
const ADMIN_SECRET: &str = "test-admin-payments-0123456789";

// ---- a stand-in of PayPal's REST API ----

/// An order as the stand-in keeps it.
#[derive(Clone)]
struct Order {
    id: String,
    reference_id: Option<String>,
    currency: String,
    value: String,
    /// Whether the buyer approved it on PayPal's pages.
    approved: bool,
    capture_id: Option<String>,
}

impl Order {
    fn status(&self) -> &'static str {
        match (self.capture_id.is_some(), self.approved) {
            (true, _) => "COMPLETED",
            (false, true) => "APPROVED",
            (false, false) => "CREATED",
        }
    }

    /// The order as `GET /v2/checkout/orders/{id}` and the capture answer show it.
    fn json(&self) -> Value {
        let mut unit = json!({
            "reference_id": self.reference_id.clone().unwrap_or_else(|| "default".into()),
            "amount": {"currency_code": self.currency, "value": self.value},
        });
        if let Some(capture) = &self.capture_id {
            unit["payments"] = json!({"captures": [{
                "id": capture,
                "status": "COMPLETED",
                "amount": {"currency_code": self.currency, "value": self.value},
                "final_capture": true,
                "seller_protection": {"status": "ELIGIBLE"},
            }]});
        }
        json!({
            "id": self.id,
            "intent": "CAPTURE",
            "status": self.status(),
            "purchase_units": [unit],
            "links": [{"href": format!("https://api-m.sandbox.paypal.com/v2/checkout/orders/{}",
                self.id), "rel": "self", "method": "GET"}],
        })
    }
}

#[derive(Default)]
struct PayPalState {
    tokens: Mutex<HashSet<String>>,
    orders: Mutex<HashMap<String, Order>>,
    /// Capture answers by `PayPal-Request-Id`, replayed for a repeat (PayPal's
    /// idempotency).
    replies: Mutex<HashMap<String, Value>>,
    /// When set, every API call (not the token endpoint) answers this status.
    fail_with: Mutex<Option<u16>>,
    /// When set, captures are declined with this issue and take nothing.
    decline_with: Mutex<Option<String>>,
    /// When set, a capture takes the money and then never answers (the caller's
    /// process dies waiting, say).
    stall_after_capture: std::sync::atomic::AtomicBool,
    next_id: AtomicUsize,
    token_calls: AtomicUsize,
    create_calls: AtomicUsize,
    capture_calls: AtomicUsize,
    get_calls: AtomicUsize,
}

impl PayPalState {
    fn id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        // PayPal's ids are 17 uppercase letters and digits.
        format!("{prefix}{n:0>width$}", width = 17 - prefix.len())
    }
}

type Shared = Arc<PayPalState>;

fn paypal_error(status: StatusCode, name: &str, issue: Option<&str>) -> Response {
    let mut body = json!({"name": name, "message": "stand-in", "debug_id": "f0e1d2c3b4a59"});
    if let Some(issue) = issue {
        body["details"] = json!([{"issue": issue, "description": "stand-in"}]);
    }
    (status, Json(body)).into_response()
}

/// The refusal of an API call with a bad bearer token or a forced failure, if any.
fn refuse(state: &PayPalState, headers: &HeaderMap) -> Option<Response> {
    if let Some(status) = *state.fail_with.lock().unwrap() {
        let status = StatusCode::from_u16(status).unwrap();
        return Some(paypal_error(status, "INTERNAL_SERVER_ERROR", None));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !state.tokens.lock().unwrap().contains(token) {
        return Some(paypal_error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_FAILURE",
            None,
        ));
    }
    None
}

async fn oauth_token(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    state.token_calls.fetch_add(1, Ordering::SeqCst);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let authorised =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client",
                "error_description": "Client Authentication failed"})),
        )
            .into_response();
    }
    assert_eq!(body, "grant_type=client_credentials");
    let token = format!("A21AA{}", state.id("T"));
    state.tokens.lock().unwrap().insert(token.clone());
    Json(json!({
        "scope": "https://uri.paypal.com/services/payments/payment",
        "access_token": token,
        "token_type": "Bearer",
        "app_id": "APP-80W284485P519543T",
        "expires_in": 32400,
        "nonce": "2024-01-01T00:00:00Zstand-in",
    }))
    .into_response()
}

async fn create_order(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.create_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    assert_eq!(body["intent"], "CAPTURE", "{body}");
    let units = body["purchase_units"].as_array().expect("purchase_units");
    assert_eq!(units.len(), 1, "{body}");
    let amount = &units[0]["amount"];
    let currency = amount["currency_code"].as_str().expect("currency_code");
    let value = amount["value"].as_str().expect("amount value is a string");
    let order = Order {
        id: state.id("5O"),
        reference_id: units[0]["reference_id"].as_str().map(str::to_owned),
        currency: currency.to_owned(),
        value: value.to_owned(),
        approved: false,
        capture_id: None,
    };
    let answer = order.json();
    state.orders.lock().unwrap().insert(order.id.clone(), order);
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn capture_order(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.capture_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    let request_id = headers
        .get("paypal-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(reply) = request_id
        .as_ref()
        .and_then(|r| state.replies.lock().unwrap().get(r).cloned())
    {
        return (StatusCode::OK, Json(reply)).into_response();
    }
    let answer = {
        let mut orders = state.orders.lock().unwrap();
        let Some(order) = orders.get_mut(&id) else {
            return paypal_error(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
                Some("INVALID_RESOURCE_ID"),
            );
        };
        if order.capture_id.is_some() {
            return paypal_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                Some("ORDER_ALREADY_CAPTURED"),
            );
        }
        if !order.approved {
            return paypal_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                Some("ORDER_NOT_APPROVED"),
            );
        }
        if let Some(issue) = state.decline_with.lock().unwrap().clone() {
            return paypal_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                Some(&issue),
            );
        }
        order.capture_id = Some(state.id("3C"));
        let answer = order.json();
        if let Some(r) = request_id {
            state.replies.lock().unwrap().insert(r, answer.clone());
        }
        answer
    };
    if state.stall_after_capture.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn show_order(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.get_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    match state.orders.lock().unwrap().get(&id) {
        Some(order) => Json(order.json()).into_response(),
        None => paypal_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            Some("INVALID_RESOURCE_ID"),
        ),
    }
}

/// A running stand-in of PayPal's REST API.
struct StandIn {
    base: String,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    async fn start() -> StandIn {
        let state = Shared::default();
        let app = Router::new()
            .route("/v1/oauth2/token", post(oauth_token))
            .route("/v2/checkout/orders", post(create_order))
            .route("/v2/checkout/orders/{id}", get(show_order))
            .route("/v2/checkout/orders/{id}/capture", post(capture_order))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        StandIn { base, state, task }
    }

    fn provider(&self) -> PayPal {
        PayPal::new(&self.base, CLIENT_ID, CLIENT_SECRET).unwrap()
    }

    /// The buyer approves the order on PayPal's pages.
    fn approve(&self, id: &str) {
        self.state
            .orders
            .lock()
            .unwrap()
            .get_mut(id)
            .unwrap_or_else(|| panic!("no order {id}"))
            .approved = true;
    }

    fn order(&self, id: &str) -> Order {
        self.state.orders.lock().unwrap()[id].clone()
    }

    /// PayPal forgets its idempotency records (their retention is limited).
    fn forget_request_ids(&self) {
        self.state.replies.lock().unwrap().clear();
    }

    /// How many orders PayPal captured: the payers charged.
    fn captures(&self) -> usize {
        let orders = self.state.orders.lock().unwrap();
        orders.values().filter(|o| o.capture_id.is_some()).count()
    }

    fn calls(&self) -> [usize; 4] {
        let s = &self.state;
        [
            s.token_calls.load(Ordering::SeqCst),
            s.create_calls.load(Ordering::SeqCst),
            s.capture_calls.load(Ordering::SeqCst),
            s.get_calls.load(Ordering::SeqCst),
        ]
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn eur(amount_minor: i64) -> StartPayment {
    StartPayment {
        amount_minor,
        currency: "EUR".into(),
        reference: "coid-1-custid-5".into(),
    }
}

// ---- the PayPal provider ----

#[tokio::test]
async fn a_paypal_payment_is_created_approved_and_captured() {
    let paypal = StandIn::start().await;
    let provider = paypal.provider();
    let started = provider.start(eur(1005)).await.unwrap();
    let order = paypal.order(&started.token);
    assert_eq!(
        order.value, "10.05",
        "the amount travels as an exact decimal"
    );
    assert_eq!(order.currency, "EUR");
    assert_eq!(order.reference_id.as_deref(), Some("coid-1-custid-5"));

    // Not approved by the buyer yet: PayPal refuses the capture.
    assert_eq!(
        provider.finish(&started.token).await,
        Err(PaymentError::NotApproved("ORDER_NOT_APPROVED".into()))
    );

    paypal.approve(&started.token);
    let finished = provider.finish(&started.token).await.unwrap();
    let capture = paypal.order(&started.token).capture_id.unwrap();
    assert_eq!(
        finished,
        Finished {
            transaction_id: capture,
            amount_minor: 1005,
            currency: "EUR".into()
        }
    );
    // One token served every call.
    assert_eq!(paypal.calls(), [1, 1, 2, 0]);
}

#[tokio::test]
async fn a_repeated_capture_returns_the_same_payment() {
    let paypal = StandIn::start().await;
    let provider = paypal.provider();
    let token = provider.start(eur(2500)).await.unwrap().token;
    paypal.approve(&token);
    let first = provider.finish(&token).await.unwrap();

    // Within PayPal's idempotency window the request id replays the answer.
    assert_eq!(provider.finish(&token).await.unwrap(), first);
    assert_eq!(paypal.calls(), [1, 1, 2, 0]);

    // After it, PayPal says ORDER_ALREADY_CAPTURED and the order is read back.
    paypal.forget_request_ids();
    assert_eq!(provider.finish(&token).await.unwrap(), first);
    assert_eq!(paypal.calls(), [1, 1, 3, 1]);
    assert_eq!(first.amount_minor, 2500);
}

#[tokio::test]
async fn zero_decimal_currencies_are_sent_without_decimals() {
    let paypal = StandIn::start().await;
    let provider = paypal.provider();
    let token = provider
        .start(StartPayment {
            amount_minor: 500,
            currency: "JPY".into(),
            reference: String::new(),
        })
        .await
        .unwrap()
        .token;
    let order = paypal.order(&token);
    assert_eq!(order.value, "500");
    assert_eq!(order.reference_id, None, "an empty reference is left out");
    paypal.approve(&token);
    let finished = provider.finish(&token).await.unwrap();
    assert_eq!(
        (finished.amount_minor, finished.currency.as_str()),
        (500, "JPY")
    );
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_unknown() {
    let paypal = StandIn::start().await;
    let provider = paypal.provider();
    assert_eq!(
        provider.finish("5O190127TN364715T").await,
        Err(PaymentError::UnknownToken)
    );
    assert_eq!(paypal.calls()[2], 1, "an unknown order id is asked about");
    for bad in [
        "",
        "../../v1/oauth2/token",
        "5O19 0127",
        "5O19%2F0127",
        "a/b",
    ] {
        assert_eq!(
            provider.finish(bad).await,
            Err(PaymentError::UnknownToken),
            "{bad:?}"
        );
    }
    assert_eq!(
        paypal.calls()[2],
        1,
        "a malformed token never reaches PayPal"
    );
}

#[tokio::test]
async fn wrong_credentials_make_paypal_unavailable() {
    let paypal = StandIn::start().await;
    let provider = PayPal::new(&paypal.base, CLIENT_ID, "not-the-secret").unwrap();
    assert!(matches!(
        provider.start(eur(100)).await,
        Err(PaymentError::Unavailable(_))
    ));
    assert!(matches!(
        provider.finish("5O190127TN364715T").await,
        Err(PaymentError::Unavailable(_))
    ));
    assert_eq!(
        paypal.calls(),
        [2, 0, 0, 0],
        "nothing is sent without a token"
    );
}

#[tokio::test]
async fn a_revoked_token_is_renewed_once() {
    let paypal = StandIn::start().await;
    let provider = paypal.provider();
    let token = provider.start(eur(100)).await.unwrap().token;
    paypal.approve(&token);
    paypal.state.tokens.lock().unwrap().clear();
    assert_eq!(provider.finish(&token).await.unwrap().amount_minor, 100);
    // The capture answered 401, a new token was fetched and the capture sent again.
    assert_eq!(paypal.calls(), [2, 1, 2, 0]);
}

#[tokio::test]
async fn server_errors_and_unreachable_paypal_are_unavailable() {
    let paypal = StandIn::start().await;
    let provider = paypal.provider();
    let token = provider.start(eur(100)).await.unwrap().token;
    paypal.approve(&token);
    for status in [500, 502, 503] {
        *paypal.state.fail_with.lock().unwrap() = Some(status);
        assert!(
            matches!(
                provider.start(eur(100)).await,
                Err(PaymentError::Unavailable(_))
            ),
            "{status}"
        );
        assert!(
            matches!(
                provider.finish(&token).await,
                Err(PaymentError::Unavailable(_))
            ),
            "{status}"
        );
    }
    // Once PayPal is back, the payment finishes; nothing was captured meanwhile.
    *paypal.state.fail_with.lock().unwrap() = None;
    assert_eq!(provider.finish(&token).await.unwrap().amount_minor, 100);

    // A port where nothing listens.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let nowhere = PayPal::new(&format!("http://{closed}"), CLIENT_ID, CLIENT_SECRET).unwrap();
    assert!(matches!(
        nowhere.start(eur(100)).await,
        Err(PaymentError::Unavailable(_))
    ));
}

#[tokio::test]
async fn bad_amounts_and_currencies_are_declined_before_paypal() {
    let paypal = StandIn::start().await;
    let provider = paypal.provider();
    for payment in [
        eur(0),
        eur(-5),
        StartPayment {
            currency: "eur".into(),
            ..eur(100)
        },
        StartPayment {
            currency: "EURO".into(),
            ..eur(100)
        },
    ] {
        assert!(
            matches!(
                provider.start(payment.clone()).await,
                Err(PaymentError::Declined(_))
            ),
            "{payment:?}"
        );
    }
    assert_eq!(paypal.calls(), [0, 0, 0, 0]);
}

#[test]
fn paypal_needs_a_url_and_credentials() {
    assert!(PayPal::new("not a url", CLIENT_ID, CLIENT_SECRET).is_err());
    assert!(PayPal::new("ftp://paypal.example", CLIENT_ID, CLIENT_SECRET).is_err());
    assert!(PayPal::new("https://api-m.paypal.com", "", CLIENT_SECRET).is_err());
    assert!(PayPal::new("https://api-m.paypal.com", CLIENT_ID, "").is_err());
}

// ---- the server with a payment provider ----

#[tokio::test]
async fn the_server_starts_with_paypal_configured() {
    let paypal = StandIn::start().await;
    let server = Server::start_with_env(&paypal_env(&paypal.base, CLIENT_ID, CLIENT_SECRET)).await;
    server.anonymous().get("/healthz").await.ok(200);
    assert!(
        server
            .log_tail()
            .contains("using the PayPal payment provider"),
        "the provider comes from the environment: {}",
        server.log_tail()
    );
    assert!(
        !server.log_tail().contains(CLIENT_SECRET),
        "the client secret must never reach the log"
    );
    // No payment was asked for, so PayPal was not called.
    assert_eq!(paypal.calls(), [0, 0, 0, 0]);
}

// ---- the test provider and the link key secret over a real store ----

/// One in-process instance over the suite's backend: the SQLite store in `dir`, or a
/// new connection to `schema`. Several instances over one store are several servers
/// (or one server before and after a restart).
async fn instance(dir: &std::path::Path, schema: Option<&TestSchema>) -> prepaid_server::Server {
    instance_with(
        dir,
        schema,
        Arc::new(prepaid_store::SystemClock),
        PaymentProviderConfig::Test,
    )
    .await
}

/// [`instance`] with its clock and payment provider.
async fn instance_with(
    dir: &std::path::Path,
    schema: Option<&TestSchema>,
    clock: Arc<dyn prepaid_store::Clock>,
    payment_provider: PaymentProviderConfig,
) -> prepaid_server::Server {
    let store: Arc<dyn prepaid_store::Store> = match schema {
        Some(schema) => Arc::new(
            prepaid_store_postgres::PgStore::connect(
                schema.url(),
                prepaid_store_postgres::PgConfig::default(),
            )
            .await
            .expect("connect to the test schema"),
        ),
        None => Arc::new(prepaid_store_sqlite::SqliteStore::open(dir).expect("open SQLite")),
    };
    let config = prepaid_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        admin_key: Some(ADMIN_SECRET.into()),
        payment_provider,
        // Idle client connections would hold a graceful shutdown this long.
        shutdown_grace_ms: 100,
        ..prepaid_server::Config::default()
    };
    prepaid_server::Server::bind_with(config, store, clock, prepaid_server::SQLITE_ENGINE)
        .await
        .expect("bind an instance")
}

/// The suite's backend: `Some(schema)` on PostgreSQL.
async fn backend() -> Option<Arc<TestSchema>> {
    if !postgres_backend() {
        return None;
    }
    let schema = fresh_schema().await;
    assert!(
        schema.is_some(),
        "{TEST_BACKEND_ENV}=postgres, but the test database cannot be reached"
    );
    schema
}

#[tokio::test]
async fn test_payments_finish_after_a_restart_and_on_another_instance() {
    let dir = tempfile::tempdir().unwrap();
    let schema = backend().await;
    let first = instance(dir.path(), schema.as_deref()).await;
    let started = first
        .dialects()
        .touchtopup
        .payments
        .start(eur(1234))
        .await
        .unwrap();
    assert!(started.token.starts_with("TEST-"), "{}", started.token);
    let finished = first
        .dialects()
        .touchtopup
        .payments
        .finish(&started.token)
        .await
        .unwrap();
    assert_eq!(finished.amount_minor, 1234);
    assert_eq!(finished.currency, "EUR");
    assert!(finished.transaction_id.starts_with("TESTTX-"));
    drop(first);

    let second = instance(dir.path(), schema.as_deref()).await;
    let payments = &second.dialects().touchtopup.payments;
    assert_eq!(payments.finish(&started.token).await.unwrap(), finished);
    assert_eq!(payments.finish(&started.token).await.unwrap(), finished);

    let other = payments.start(eur(1)).await.unwrap();
    assert_ne!(other.token, started.token);
    let unknown = format!("TEST-{}", uuid::Uuid::new_v4());
    for token in [
        unknown.as_str(),
        "",
        "TEST-",
        "EC-1Y43567715771310G",
        "TEST-\n",
        "TEST-\u{0}",
    ] {
        assert_eq!(
            payments.finish(token).await,
            Err(PaymentError::UnknownToken),
            "{token:?}"
        );
    }
    assert!(matches!(
        payments.start(eur(0)).await,
        Err(PaymentError::Declined(_))
    ));
}

#[tokio::test]
async fn instances_agree_on_a_tenant_s_link_key_secret() {
    use prepaid_dialect_touchtopup::secrets::LinkKeys;
    let dir = tempfile::tempdir().unwrap();
    let schema = backend().await;
    let a = instance(dir.path(), schema.as_deref()).await;
    let b = instance(dir.path(), schema.as_deref()).await;
    let tenant = a.state().operator.clone();
    // Both make the secret at once; one insert wins and the other reads it.
    let (ka, kb) = tokio::join!(
        LinkKeys::for_tenant(a.state(), &tenant),
        LinkKeys::for_tenant(b.state(), &tenant)
    );
    let (ka, kb) = (ka.unwrap(), kb.unwrap());
    let key = ka.issue(1, 5);
    assert_eq!(kb.issue(1, 5), key);
    assert_eq!(kb.check(&key), Some((1, 5)));
    // Later reads find the same secret.
    let again = LinkKeys::for_tenant(b.state(), &tenant).await.unwrap();
    assert_eq!(again.issue(1, 5), key);
}

// ---- TouchTopUp payments through the server, with PayPal at the stand-in ----

/// A server paying through the stand-in, with company 1 (`GBP`) and its customer 5,
/// and the secret of a tenant-wide read/write key for TouchTopUp's `X-API-KEY`.
async fn paying_server(paypal: &StandIn) -> (Server, String) {
    let server = Server::start_with_env(&paypal_env(&paypal.base, CLIENT_ID, CLIENT_SECRET)).await;
    let admin = server.admin();
    admin
        .json(
            reqwest::Method::PUT,
            "/v1/icrtouch/companies/1",
            &json!({"name": "ICRTouch Testing", "db": "10", "currency": "GBP"}),
        )
        .await
        .ok(200);
    admin
        .json(
            reqwest::Method::PUT,
            "/v1/icrtouch/companies/1/customers/5",
            &json!({"title": "Mr", "firstname": "John", "lastname": "Smith",
                    "account_number": "54321"}),
        )
        .await
        .ok(200);
    let (key, _) = admin.create_key("portal", &["read", "write"], None).await;
    let secret = key["secret"].as_str().expect("secret").to_owned();
    (server, secret)
}

/// `GET /index.php<path>` with the TouchTopUp key.
async fn ttu_get(server: &Server, key: &str, path: &str) -> Resp {
    server
        .anonymous()
        .send(
            reqwest::Method::GET,
            &format!("/index.php{path}"),
            &[("x-api-key", key)],
            None,
        )
        .await
}

/// Starts a PayPal payment of `amount` to customer 5 of company 1; returns its token.
async fn start_payment(server: &Server, key: &str, amount: &str) -> String {
    let path = format!("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/{amount}");
    let started = status_1(ttu_get(server, key, &path).await);
    started["response"].as_str().expect("the token").to_owned()
}

/// `POST /index.php/accounts/record_payment` of `token`, form-encoded, with the key.
async fn record_payment(server: &Server, key: &str, token: &str) -> Resp {
    let body = serde_urlencoded::to_string([("pmtType", "1"), ("token", token)]).unwrap();
    server
        .anonymous()
        .send(
            reqwest::Method::POST,
            "/index.php/accounts/record_payment",
            &[
                ("x-api-key", key),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            Some(body.into_bytes()),
        )
        .await
}

/// Asserts a TouchTopUp answer with `status` 0, HTTP `http` and a `msg` that contains
/// `needle`.
#[track_caller]
fn status_0(r: &Resp, http: u16, needle: &str) {
    assert_eq!(r.status, http, "{} -> {} {}", r.path, r.status, r.text);
    assert_eq!(r.json["status"], json!(0), "{}: {}", r.path, r.text);
    let msg = r.json["msg"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{}: {msg:?} lacks {needle:?}", r.path);
}

/// Asserts a TouchTopUp answer with `status` 1; returns it.
#[track_caller]
fn status_1(r: Resp) -> Value {
    assert_eq!(r.status, 200, "{} -> {} {}", r.path, r.status, r.text);
    assert_eq!(r.json["status"], json!(1), "{}: {}", r.path, r.text);
    r.json
}

#[tokio::test]
async fn a_paypal_payment_credits_the_customer_once() {
    let paypal = StandIn::start().await;
    let (server, key) = paying_server(&paypal).await;

    let token = start_payment(&server, &key, "10.05").await;
    let order = paypal.order(&token);
    assert_eq!(
        (order.value.as_str(), order.currency.as_str()),
        ("10.05", "GBP")
    );

    // The buyer has not approved yet: nothing is credited.
    let r = record_payment(&server, &key, &token).await;
    status_0(&r, 402, "ORDER_NOT_APPROVED");
    assert_eq!(server.admin().mutations("1.5").await.len(), 0);

    paypal.approve(&token);
    // Two at once (a client retrying while its first request runs): both reach PayPal,
    // which captures once, and the credit is applied once.
    let (a, b) = tokio::join!(
        record_payment(&server, &key, &token),
        record_payment(&server, &key, &token)
    );
    let first = status_1(a);
    let payment_id = first["payment_id"].clone();
    assert!(payment_id.is_i64(), "{first}");
    assert_eq!(status_1(b)["payment_id"], payment_id);

    // Later repeats answer the same payment.
    paypal.forget_request_ids();
    for _ in 0..2 {
        let again = status_1(record_payment(&server, &key, &token).await);
        assert_eq!(again["payment_id"], payment_id);
    }

    let wallet = server.admin().wallet("1.5").await;
    assert_eq!(wallet["balance"], json!(1005), "credited once: {wallet}");
    let mutations = assert_balance_is_sum(&server.admin(), "1.5").await;
    assert_eq!(mutations.len(), 1);

    // The payment history names PayPal's capture.
    let capture = paypal.order(&token).capture_id.expect("captured");
    let history =
        status_1(ttu_get(&server, &key, "/accounts/payment_history/coid/1/custid/5").await);
    let payments = history["payments"].as_array().expect("payments");
    assert_eq!(payments.len(), 1, "{history}");
    assert_eq!(payments[0]["TRANSACTIONID"], json!(capture));
    assert_eq!(payments[0]["ADJUSTMENT"], json!("1005"));
    // One capture at PayPal, however often the client asked.
    assert_eq!(paypal.state.orders.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unavailable_paypal_credits_nothing_until_it_is_back() {
    let paypal = StandIn::start().await;
    let (server, key) = paying_server(&paypal).await;
    let token = start_payment(&server, &key, "5.00").await;
    paypal.approve(&token);

    *paypal.state.fail_with.lock().unwrap() = Some(503);
    let r = record_payment(&server, &key, &token).await;
    status_0(&r, 502, "unavailable");
    assert!(
        !r.text.contains("503"),
        "outage details stay in the log: {}",
        r.text
    );
    assert_eq!(server.admin().wallet("1.5").await["balance"], json!(0));

    *paypal.state.fail_with.lock().unwrap() = None;
    status_1(record_payment(&server, &key, &token).await);
    assert_eq!(server.admin().wallet("1.5").await["balance"], json!(500));

    // A token PayPal never gave is unknown.
    let r = record_payment(&server, &key, "5O190127TN364715T").await;
    status_0(&r, 404, "Unknown payment token");
}

// ---- payments into an event wallet: captures and credits always agree ----

/// `POST /index.php<path>` of `fields`, form-encoded, with the key.
async fn ttu_post(server: &Server, key: &str, path: &str, fields: &[(&str, &str)]) -> Resp {
    let body = serde_urlencoded::to_string(fields).unwrap();
    server
        .anonymous()
        .send(
            reqwest::Method::POST,
            &format!("/index.php{path}"),
            &[
                ("x-api-key", key),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            Some(body.into_bytes()),
        )
        .await
}

/// Company 1's event wallet 1 (no overpay), with customer 5 assigned and charged
/// `owed`: it takes payments up to what is owed.
async fn event_wallet(server: &Server, key: &str, owed: &str) {
    let created = status_1(
        ttu_post(
            server,
            key,
            "/wallets/wallet_create",
            &[
                ("coid", "1"),
                ("name", "Trip to the museum"),
                ("type", "0"),
                ("paybydate", "2017-09-01"),
                ("purposedate", "2017-09-30"),
                ("allowoverpay", "0"),
            ],
        )
        .await,
    );
    assert_eq!(created["WALLETID"], json!("1"), "{created}");
    let assign = [("coid", "1"), ("wallet", "1"), ("custid", "5")];
    status_1(ttu_post(server, key, "/wallets/wallet_add_customer", &assign).await);
    let charge = [
        ("coid", "1"),
        ("wallet", "1"),
        ("charge", owed),
        ("duedate", "2017-07-31"),
    ];
    status_1(ttu_post(server, key, "/wallets/wallet_add_charge", &charge).await);
}

/// `make_payment` of `amount` into event wallet 1.
async fn start_event_payment(server: &Server, key: &str, amount: &str) -> Resp {
    let path = format!("/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/{amount}/wallet/1");
    ttu_get(server, key, &path).await
}

/// The credits the ledger made to event wallet 1: its payments.
async fn credits(server: &Server) -> usize {
    let mutations = server.admin().mutations("1.5.w1").await;
    mutations
        .iter()
        .filter(|m| m["kind"] == json!("top_up"))
        .count()
}

/// Asserts that every payer PayPal charged was credited once, and nobody else was.
async fn captures_are_credits(paypal: &StandIn, server: &Server) {
    assert_eq!(
        paypal.captures(),
        credits(server).await,
        "captures at PayPal and credits in the ledger"
    );
    assert_balance_is_sum(&server.admin(), "1.5.w1").await;
}

#[tokio::test]
async fn two_payments_for_the_same_room_cannot_both_start() {
    let paypal = StandIn::start().await;
    let (server, key) = paying_server(&paypal).await;
    event_wallet(&server, &key, "10.00").await;

    let (a, b) = tokio::join!(
        start_event_payment(&server, &key, "10.00"),
        start_event_payment(&server, &key, "10.00")
    );
    let (started, refused) = if a.status == 200 { (a, b) } else { (b, a) };
    let token = status_1(started)["response"].as_str().unwrap().to_owned();
    status_0(
        &refused,
        409,
        "A payment of 10.00 exceeds the 0.00 still owed",
    );
    // The refused payment's order is never captured: PayPal created at most two.
    assert!(paypal.state.orders.lock().unwrap().len() <= 2);

    // Part of the room is not enough either, until the payment ends.
    let r = start_event_payment(&server, &key, "0.01").await;
    status_0(&r, 409, "A payment of 0.01 exceeds the 0.00 still owed");

    paypal.approve(&token);
    // Three clients recording at once, then again one by one: one capture, one credit.
    let (x, y, z) = tokio::join!(
        record_payment(&server, &key, &token),
        record_payment(&server, &key, &token),
        record_payment(&server, &key, &token)
    );
    let id = status_1(x)["payment_id"].clone();
    assert_eq!(status_1(y)["payment_id"], id);
    assert_eq!(status_1(z)["payment_id"], id);
    for _ in 0..2 {
        assert_eq!(
            status_1(record_payment(&server, &key, &token).await)["payment_id"],
            id
        );
    }
    assert_eq!(server.admin().balance("1.5.w1").await, 0);
    assert_eq!(paypal.captures(), 1);
    captures_are_credits(&paypal, &server).await;
}

#[tokio::test]
async fn a_declined_capture_releases_the_room() {
    let paypal = StandIn::start().await;
    let (server, key) = paying_server(&paypal).await;
    event_wallet(&server, &key, "10.00").await;
    let first = status_1(start_event_payment(&server, &key, "10.00").await)["response"]
        .as_str()
        .unwrap()
        .to_owned();
    paypal.approve(&first);

    *paypal.state.decline_with.lock().unwrap() = Some("INSTRUMENT_DECLINED".into());
    status_0(
        &record_payment(&server, &key, &first).await,
        402,
        "INSTRUMENT_DECLINED",
    );
    *paypal.state.decline_with.lock().unwrap() = None;
    // The declined payment is over: asking again captures nothing.
    let captures_asked = paypal.calls()[2];
    status_0(&record_payment(&server, &key, &first).await, 409, "expired");
    assert_eq!(
        paypal.calls()[2],
        captures_asked,
        "PayPal is not asked again"
    );
    assert_eq!(paypal.captures(), 0);

    // Its room is free at once: a new payment of what is owed starts and credits.
    let second = status_1(start_event_payment(&server, &key, "10.00").await)["response"]
        .as_str()
        .unwrap()
        .to_owned();
    paypal.approve(&second);
    status_1(record_payment(&server, &key, &second).await);
    assert_eq!(server.admin().balance("1.5.w1").await, 0);
    captures_are_credits(&paypal, &server).await;
}

#[tokio::test]
async fn a_payment_captured_before_a_crash_is_credited_once() {
    let paypal = StandIn::start().await;
    let (mut server, key) = paying_server(&paypal).await;
    event_wallet(&server, &key, "10.00").await;
    let token = status_1(start_event_payment(&server, &key, "10.00").await)["response"]
        .as_str()
        .unwrap()
        .to_owned();
    paypal.approve(&token);

    // PayPal takes the money, and the server dies before it hears so.
    paypal
        .state
        .stall_after_capture
        .store(true, Ordering::SeqCst);
    let api = server.anonymous();
    let body = serde_urlencoded::to_string([("token", token.as_str())]).unwrap();
    let in_flight = tokio::spawn(async move {
        let _ = api
            .try_send(
                reqwest::Method::POST,
                "/index.php/accounts/record_payment",
                &[
                    ("x-api-key", key.as_str()),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                Some(body.into_bytes()),
            )
            .await;
    });
    while paypal.captures() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.crash_and_restart().await;
    in_flight.abort();
    paypal
        .state
        .stall_after_capture
        .store(false, Ordering::SeqCst);
    assert_eq!(credits(&server).await, 0, "captured, not yet credited");

    // The client asks again: PayPal answers the same capture, credited once.
    let key = server_key(&server).await;
    status_1(record_payment(&server, &key, &token).await);
    status_1(record_payment(&server, &key, &token).await);
    assert_eq!(paypal.captures(), 1);
    assert_eq!(server.admin().balance("1.5.w1").await, 0);
    captures_are_credits(&paypal, &server).await;
}

/// A new TouchTopUp key of the server (keys survive restarts; a new one keeps the
/// test independent of the first's secret).
async fn server_key(server: &Server) -> String {
    let (key, _) = server
        .admin()
        .create_key("portal-again", &["read", "write"], None)
        .await;
    key["secret"].as_str().expect("secret").to_owned()
}

#[tokio::test]
async fn a_payment_never_recorded_is_settled_by_its_recovery_job() {
    use prepaid_store::Clock as _;
    let paypal = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let schema = backend().await;
    let clock = Arc::new(prepaid_store::ManualClock::new(
        prepaid_store::SystemClock.now(),
    ));
    let provider = PaymentProviderConfig::PayPal {
        base_url: paypal.base.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
    };
    let server = instance_with(dir.path(), schema.as_deref(), clock.clone(), provider).await;
    let state = server.state().clone();
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let admin = Api::new(&base, Auth::Bearer(ADMIN_SECRET.into()));
    for (path, body) in [
        (
            "/v1/icrtouch/companies/1",
            json!({"name": "ICRTouch Testing", "db": "10", "currency": "GBP"}),
        ),
        (
            "/v1/icrtouch/companies/1/customers/5",
            json!({"title": "Mr", "firstname": "John", "lastname": "Smith",
                   "account_number": "54321"}),
        ),
    ] {
        admin.json(reqwest::Method::PUT, path, &body).await.ok(200);
    }
    let (key, _) = admin.create_key("portal", &["read", "write"], None).await;
    let key = key["secret"].as_str().expect("secret").to_owned();
    let ttu = Api::new(&base, Auth::None);
    let start = |amount: &'static str| {
        let ttu = ttu.clone();
        let key = key.clone();
        async move {
            let path =
                format!("/index.php/accounts/make_payment/coid/1/custid/5/pmtType/1/amt/{amount}");
            let r = ttu
                .send(reqwest::Method::GET, &path, &[("x-api-key", &key)], None)
                .await;
            status_1(r)["response"].as_str().unwrap().to_owned()
        }
    };
    // One payment approved but never recorded; one never approved.
    let approved = start("10.00").await;
    paypal.approve(&approved);
    let abandoned = start("5.00").await;

    // Clients may no longer record once the recovery is due; nothing is captured.
    clock.advance_micros((PAYMENT_HOLD_SECS - PAYMENT_RECORD_MARGIN_SECS) * 1_000_000 + 1);
    let body = serde_urlencoded::to_string([("token", approved.as_str())]).unwrap();
    let headers = [
        ("x-api-key", key.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let path = "/index.php/accounts/record_payment";
    let record = || {
        ttu.send(
            reqwest::Method::POST,
            path,
            &headers,
            Some(body.clone().into_bytes()),
        )
    };
    status_0(&record().await, 409, "expired");

    // The recovery job captures the approved one and credits it, and frees the room
    // of the abandoned one.
    let tenant = state.operator.clone();
    let wallet = prepaid_ledger::WalletId::parse("1.5").unwrap();
    loop {
        let w = state.store.wallet(&tenant, &wallet).await.unwrap().unwrap();
        if w.balance == 1000 && w.incoming == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(paypal.captures(), 1);
    assert!(paypal.order(&abandoned).capture_id.is_none());
    let mutations = admin.mutations("1.5").await;
    let credits = mutations
        .iter()
        .filter(|m| m["kind"] == json!("top_up"))
        .count();
    assert_eq!(credits, 1, "captures at PayPal and credits in the ledger");
    // The client that comes back is told the payment was credited.
    assert!(status_1(record().await)["payment_id"].is_i64());
    assert_eq!(paypal.captures(), 1);

    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
