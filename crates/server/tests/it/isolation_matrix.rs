//! The isolation matrix of the native API (`/v1`, the TouchTopUp management routes
//! included), TOPdesk, TMF654 (both mounts, `hub` included) and Talkdesk, generated
//! from their route tables (so a new route is covered without editing this test, or
//! the test says which path parameter or body it lacks).
//!
//! Tenant A has customers, wallets with money, a pending hold, mutations, a transfer,
//! TMF buckets, top-ups, adjustments, transfers, a reservation and a hub listener,
//! TOPdesk mutations, a Talkdesk `CREDIT` wallet and a TouchTopUp company. Every
//! (method, path) of every table is called with A's objects in its path parameters and
//! a realistic body naming them, with:
//!
//! - the admin key of another tenant B,
//! - a read-write key of A restricted to another customer of A (Bob),
//! - on write routes, a read-only key of A (403).
//!
//! No 2xx answer may show A's data (none of A's ids or names that the request did not
//! name itself; a read of one of A's objects by id may not succeed at all), and
//! afterwards A's data reads as before. The controls: every route answers 401 without
//! a key (so every row of the table is routed, with its method), and A's own admin and
//! read-only keys are answered 2xx on every read route with the same parameters (so the
//! refusals were the boundary's, not bad input's).

use crate::common;

use common::*;
use prepaid_dialect_talkdesk as talkdesk;
use prepaid_dialect_tmf as tmf;
use prepaid_dialect_topdesk as topdesk;
use prepaid_edge::auth::Scope;
use prepaid_edge::routes::Route;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const TMF: &str = "/tmf-api/prepayBalanceManagement/v4";
const BRM: &str = "/brm/prepayBalanceManagement/v4";

const ALICE: &str = "victim-alice";
const BOB: &str = "victim-bob";
const ALICE_EUR: &str = "victim-alice-eur";
const ALICE_SAVE: &str = "victim-alice-save";
const ALICE_CREDIT: &str = "victim-alice-credit";
const ALICE_BUCKET: &str = "victim-alice-bucket";
const ALICE_BUCKET_2: &str = "victim-alice-bucket-2";
const BOB_EUR: &str = "victim-bob-eur";
const DESK_CUSTOMER: &str = "0b7d6f9e-2c41-4d1a-9a55-5e1f3c0d7a11";
const DESK_MUTATION: &str = "3f2a9c44-8e1b-4f0c-b6d2-71a5e9c0b123";
const READER_NAME: &str = "victim-reader";
const CALLBACK: &str = "http://127.0.0.1:9/victim-listener";

const BOBS_KEY: &str = "Bob's key";

/// Reads by id of objects that belong to the tenant, not to one of its customers: a
/// key restricted to a customer may read them.
const TENANT_WIDE: &[(&str, &str)] = &[("native", "/icrtouch/companies/{coid}")];

/// A dialect's mount and route table.
struct Dialect {
    name: &'static str,
    mount: &'static str,
    routes: Vec<Route>,
}

fn dialects() -> Vec<Dialect> {
    vec![
        Dialect {
            name: "native",
            mount: "/v1",
            routes: prepaid_server::v1_route_table(),
        },
        Dialect {
            name: "topdesk",
            mount: topdesk::MOUNT,
            routes: topdesk::route_table(),
        },
        Dialect {
            name: "tmf",
            mount: TMF,
            routes: tmf::route_table(),
        },
        Dialect {
            name: "tmf",
            mount: BRM,
            routes: tmf::route_table(),
        },
        Dialect {
            name: "talkdesk",
            mount: talkdesk::MOUNT,
            routes: talkdesk::route_table(),
        },
    ]
}

fn is_read(route: &Route) -> bool {
    matches!(route.method, "get" | "head")
}

/// A's objects: what fills path parameters, and what must not show to the others.
struct Victim {
    /// Path parameter values by (dialect, route path).
    params: BTreeMap<(&'static str, &'static str), String>,
    /// A's ids and names that only A's keys may see, each with whether it is Bob's
    /// (which Bob's own key may see).
    secrets: Vec<(String, bool)>,
    hold: String,
    listener: String,
    /// A's webhook endpoint and a delivery of its log.
    endpoint: String,
    delivery: String,
}

async fn tmf_id(api: &Api, path: &str, body: Value) -> String {
    let v = api.post(&format!("{TMF}{path}"), &body).await.ok(201);
    v["id"].as_str().unwrap().to_owned()
}

fn usd(amount: &str) -> Value {
    json!({"amount": amount, "units": "USD"})
}

/// Makes tenant A's objects with A's admin key.
async fn victim(a: &Api) -> Victim {
    let mut secrets: Vec<(String, bool)> = Vec::new();
    let mut secret = |s: &str, bobs: bool| secrets.push((s.to_owned(), bobs));

    // Webhooks: an endpoint, which hears of everything below.
    let endpoint = a
        .post(
            "/v1/webhook-endpoints",
            &json!({"url": "https://victim-hooks.example/hook", "description": "Victim hooks"}),
        )
        .await
        .ok(201);
    let endpoint = str_of(&endpoint, "id").to_owned();
    secret(&endpoint, false);
    secret("victim-hooks.example", false);
    secret("Victim hooks", false);

    // Native: customers, wallets with money, a debit, a transfer and a pending hold.
    for (id, name) in [(ALICE, "Alice Secretname"), (BOB, "Bob Secretname")] {
        a.post("/v1/customers", &json!({"id": id, "name": name}))
            .await
            .ok(201);
        secret(id, id == BOB);
        secret(name, id == BOB);
    }
    for (customer, id, unit, scale, name) in [
        (ALICE, ALICE_EUR, "EUR", 2, "Alice Purse"),
        (ALICE, ALICE_SAVE, "EUR", 2, "Alice Savings"),
        (ALICE, ALICE_CREDIT, "CREDIT", 4, "Alice Credits"),
        (BOB, BOB_EUR, "EUR", 2, "Bob Purse"),
    ] {
        a.create_product_wallet(customer, id, unit, scale, name, "Secret Product")
            .await;
        a.top_up(id, 10_000).await;
        secret(id, customer == BOB);
        secret(name, customer == BOB);
    }
    secret("Secret Product", true);
    // An automatic top-up rule, so that its routes have something of A's to read.
    a.json(
        Method::PUT,
        &format!("/v1/wallets/{ALICE_EUR}/auto-topup"),
        &json!({"threshold": 0, "method": "fixed", "amount": 1, "funding": "payment",
            "payment_method": "pm-victim-secret-card"}),
    )
    .await
    .ok(200);
    secret("pm-victim-secret-card", false);
    a.json(
        Method::PUT,
        &format!("/v1/wallets/{ALICE_EUR}/low-balance-alert"),
        &json!({"thresholds": [987_654_321]}),
    )
    .await
    .ok(200);
    secret("987654321", false);
    let debit = a.debit(ALICE_EUR, 250).await;
    let mutation = str_of(&debit, "id").to_owned();
    secret(&mutation, false);
    let t = a
        .post(
            "/v1/transfers",
            &json!({"from_wallet_id": ALICE_EUR, "to_wallet_id": ALICE_SAVE, "amount": 300}),
        )
        .await
        .ok(201);
    secret(str_of(&t, "id"), false);
    let hold = a
        .post(
            &format!("/v1/wallets/{ALICE_EUR}/holds"),
            &json!({"amount": 400, "reference": {"type": "order", "text": "Alice order"}}),
        )
        .await
        .ok(201);
    let hold = str_of(&hold, "id").to_owned();
    secret(&hold, false);
    secret("Alice order", false);

    // TouchTopUp: company 1 with customer 5 (Alice's school account) and a sale.
    a.send(
        Method::PUT,
        "/v1/icrtouch/companies/1",
        &[("content-type", "application/json")],
        Some(br#"{"name": "Victim School", "currency": "GBP"}"#.to_vec()),
    )
    .await
    .ok(200);
    secret("Victim School", true);
    let c5 = a
        .send(
            Method::PUT,
            "/v1/icrtouch/companies/1/customers/5",
            &[("content-type", "application/json")],
            Some(br#"{"firstname": "Vicky", "lastname": "Secretsurname"}"#.to_vec()),
        )
        .await
        .ok(200);
    secret("Secretsurname", false);
    secret(str_of(&c5, "link_key"), false);
    a.top_up(str_of(&c5, "wallet_id"), 1000).await;
    let sale = a
        .post(
            "/v1/icrtouch/companies/1/customers/5/sales",
            &json!({"amount": 120, "sale_id": 77}),
        )
        .await
        .ok(201);
    secret(str_of(&sale, "id"), false);
    a.create_key(READER_NAME, &["read"], None).await;

    // TMF: two buckets of Alice, a top-up, an adjustment, a transfer, a pending
    // reservation and a listener.
    for id in [ALICE_BUCKET, ALICE_BUCKET_2] {
        a.post(
            &format!("{TMF}/bucket"),
            &json!({"id": id, "name": "Alice Bucket", "partyAccount": {"id": ALICE},
                "remainingValue": usd("50")}),
        )
        .await
        .ok(201);
        secret(id, false);
    }
    let bucket = json!({"id": ALICE_BUCKET});
    let topup = tmf_id(
        a,
        "/topupBalance",
        json!({"amount": usd("5"), "bucket": bucket}),
    )
    .await;
    let adjust = tmf_id(
        a,
        "/adjustBalance",
        json!({"amount": usd("-1"), "bucket": bucket, "adjustType": "oneTime"}),
    )
    .await;
    let transfer = tmf_id(
        a,
        "/transferBalance",
        json!({"amount": usd("2"), "bucket": bucket, "receiverBucket": {"id": ALICE_BUCKET_2}}),
    )
    .await;
    let reserve = tmf_id(
        a,
        "/reserveBalance",
        json!({"amount": usd("3"), "bucket": bucket, "partyAccount": {"id": ALICE}}),
    )
    .await;
    let listener = a
        .post(&format!("{TMF}/hub"), &json!({"callback": CALLBACK}))
        .await
        .ok(201);
    let listener = str_of(&listener, "id").to_owned();
    let sums = a.get(&format!("{TMF}/accumulatedBalance")).await.ok(200);
    let accumulated = sums
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|id| id.starts_with(ALICE))
        .unwrap_or_else(|| panic!("no sum of Alice's: {sums}"));
    let history = a.get(&format!("{TMF}/balanceActionHistory")).await.ok(200);
    let action = history[0]["id"].as_str().unwrap().to_owned();
    for id in [&topup, &adjust, &transfer, &reserve, &listener] {
        secret(id, false);
    }
    secret(CALLBACK, false);

    // TOPdesk: a customer of its own with a mutation whose id the client chose.
    let dto = topdesk_dto(
        DESK_CUSTOMER,
        Some(DESK_MUTATION),
        120,
        "2026-05-01T10:00:00Z",
        Some("victim ticket"),
    );
    topdesk_create(a, &dto).await;
    let r = a
        .send(
            Method::POST,
            &format!("{TOPDESK_ROOT}/service-user"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    secret(DESK_CUSTOMER, false);
    secret(DESK_MUTATION, false);
    secret("victim ticket", false);

    // Talkdesk: Alice's CREDIT wallet.
    let listed = a
        .talkdesk_list(&[("account_id", ALICE), ("per_page", "100")])
        .await;
    let wallets = check_talkdesk_list(&listed);
    assert_eq!(wallets.len(), 1, "{listed}");
    let desk_wallet = talkdesk_wallet_id(&wallets[0]);

    // The first delivery of the endpoint's log (the worker fans events out soon after
    // they commit).
    let mut delivery = None;
    for _ in 0..600 {
        let log = a
            .get(&format!("/v1/webhook-endpoints/{endpoint}/deliveries"))
            .await
            .ok(200);
        if let Some(first) = log["data"].get(0) {
            delivery = Some(str_of(first, "id").to_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let delivery = delivery.expect("a webhook delivery of A");

    let mut params = BTreeMap::new();
    let mut param = |dialect: &'static str, path: &'static str, value: &str| {
        params.insert((dialect, path), value.to_owned());
    };
    for path in ["/customers/{id}", "/customers/{id}/wallets"] {
        param("native", path, ALICE);
    }
    for path in [
        "/wallets/{id}",
        "/wallets/{id}/mutations",
        "/wallets/{id}/mutations.csv",
        "/wallets/{id}/holds",
        "/wallets/{id}/grants",
        "/wallets/{id}/auto-topup",
        "/wallets/{id}/low-balance-alert",
    ] {
        param("native", path, ALICE_EUR);
    }
    for path in ["/mutations/{id}", "/mutations/{id}/reverse"] {
        param("native", path, &mutation);
    }
    for path in ["/holds/{id}", "/holds/{id}/commit", "/holds/{id}/release"] {
        param("native", path, &hold);
    }
    param("native", "/icrtouch/keys/{name}", READER_NAME);
    for path in [
        "/webhook-endpoints/{id}",
        "/webhook-endpoints/{id}/rotate-secret",
        "/webhook-endpoints/{id}/deliveries",
        "/webhook-endpoints/{id}/replay",
    ] {
        param("native", path, &endpoint);
    }
    param("topdesk", "/balance-mutations/{id}", DESK_MUTATION);
    param("topdesk", "/prepaid-services-accounts/{id}", DESK_CUSTOMER);
    param("tmf", "/hub/{id}", &listener);
    param("tmf", "/bucket/{id}", ALICE_BUCKET);
    param("tmf", "/topupBalance/{id}", &topup);
    param("tmf", "/adjustBalance/{id}", &adjust);
    param("tmf", "/transferBalance/{id}", &transfer);
    param("tmf", "/reserveBalance/{id}", &reserve);
    param("tmf", "/accumulatedBalance/{id}", &accumulated);
    param("tmf", "/balanceActionHistory/{id}", &action);
    param("talkdesk", "/wallets/{id}", &desk_wallet);
    Victim {
        params,
        secrets,
        hold,
        listener,
        endpoint,
        delivery,
    }
}

impl Victim {
    /// The path of `route` under `mount` with A's objects in its parameters, and on
    /// reads the query a list needs to name A's customer.
    fn path(&self, dialect: &str, mount: &str, route: &Route) -> String {
        let mut path = route.path.to_owned();
        if path.contains("{delivery_id}") {
            path = path
                .replace("{id}", &percent_encode(&self.endpoint))
                .replace("{delivery_id}", &percent_encode(&self.delivery));
        } else if path.contains("{coid}") {
            // TouchTopUp's management routes: company 1, customer 5.
            path = path.replace("{coid}", "1").replace("{custid}", "5");
        } else if path.contains('{') {
            let value = self.params.get(&(dialect, route.path)).unwrap_or_else(|| {
                panic!(
                    "{dialect} {}: the matrix has no object of A for this path \
                         parameter; add one to `victim`",
                    route.path
                )
            });
            let start = path.find('{').unwrap();
            let end = path.find('}').unwrap();
            path.replace_range(start..=end, &percent_encode(value));
            assert!(
                !path.contains('{'),
                "{dialect} {}: two parameters",
                route.path
            );
        }
        let query = match (dialect, route.path, route.method) {
            ("native", "/wallets", "get") => format!("?customer_id={ALICE}"),
            ("talkdesk", "/wallets", "get") => format!("?account_id={ALICE}"),
            _ => String::new(),
        };
        format!("{mount}{path}{query}")
    }
}

/// A realistic body for a write route, naming A's objects; new objects get ids of
/// their own, so that a write another tenant may make for itself shows none of A's.
fn body(dialect: &str, route: &Route) -> Option<Value> {
    let tmf_posting = |amount: &str| json!({"amount": usd(amount), "bucket": {"id": ALICE_BUCKET}});
    let b = match (dialect, route.method, route.path) {
        ("native", "post", "/tenants") => json!({"id": "intruder-tenant"}),
        ("native", "post", "/api-keys") => {
            json!({"name": "intruder-key", "scopes": ["admin"], "customer_id": ALICE})
        }
        ("native", "post", "/customers") => json!({"id": "intruder-customer"}),
        ("native", "post", "/customers/{id}/wallets") => {
            json!({"id": "intruder-wallet", "unit": "EUR", "scale": 2})
        }
        ("native", "patch", "/settings") => json!({"default_validity_seconds": 60}),
        ("native", "patch", "/wallets/{id}") => json!({"status": "suspended"}),
        ("native", "patch", "/customers/{id}") => json!({"link": "https://intruder.example/c"}),
        ("native", "post", "/wallets/{id}/mutations") => json!({"kind": "debit", "amount": 1}),
        ("native", "post", "/wallets/{id}/holds") => json!({"amount": 1}),
        ("native", "post", "/batch") => json!({"mutations": [
            {"wallet_id": ALICE_EUR, "kind": "debit", "amount": 1},
            {"wallet_id": ALICE_SAVE, "kind": "adjustment", "amount": -1},
        ]}),
        ("native", "post", "/transfers") => {
            json!({"from_wallet_id": ALICE_EUR, "to_wallet_id": BOB_EUR, "amount": 100})
        }
        ("native", "post", "/holds/{id}/commit") => json!({"amount": 1}),
        ("native", "post", "/holds/{id}/release") => json!({}),
        ("native", "put", "/icrtouch/companies/{coid}") => {
            json!({"name": "Intruder School", "currency": "GBP"})
        }
        ("native", "put", "/icrtouch/companies/{coid}/customers/{custid}") => {
            json!({"firstname": "Eve", "lastname": "Intruder"})
        }
        ("native", "post", "/icrtouch/companies/{coid}/customers/{custid}/sales") => {
            json!({"amount": 1})
        }
        ("native", "put", "/icrtouch/keys/{name}") => json!({"coid": 1}),
        ("native", "post", "/mutations/{id}/reverse") => json!({}),
        ("native", "post", "/webhook-endpoints") => {
            json!({"url": "https://intruder.example/hook"})
        }
        ("native", "patch", "/webhook-endpoints/{id}") => json!({"description": "intruder"}),
        ("native", "delete", "/webhook-endpoints/{id}") => return None,
        ("native", "post", "/webhook-endpoints/{id}/rotate-secret") => json!({}),
        ("native", "post", "/webhook-endpoints/{id}/deliveries/{delivery_id}/retry") => {
            json!({})
        }
        ("native", "post", "/webhook-endpoints/{id}/replay") => {
            json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"})
        }
        ("native", "put", "/wallets/{id}/auto-topup") => {
            json!({"threshold": 100, "method": "fixed", "amount": 500, "funding": "granted"})
        }
        ("native", "delete", "/wallets/{id}/auto-topup") => return None,
        ("native", "put", "/wallets/{id}/low-balance-alert") => json!({"thresholds": [100]}),
        ("native", "delete", "/wallets/{id}/low-balance-alert") => return None,
        ("topdesk", "post", "/balance-mutations") => topdesk_dto(
            DESK_CUSTOMER,
            Some("9d1c0e55-7a3b-4c2d-8e6f-0a1b2c3d4e5f"),
            -60,
            "2026-05-02T10:00:00Z",
            None,
        ),
        ("topdesk", "post", "/service-user") => return None,
        ("tmf", "post", "/hub") => json!({"callback": "http://127.0.0.1:9/intruder"}),
        ("tmf", "delete", _) => return None,
        ("tmf", "post", "/bucket") => json!({"id": "intruder-bucket",
            "partyAccount": {"id": ALICE}, "remainingValue": usd("0")}),
        ("tmf", "post", "/topupBalance") => tmf_posting("1"),
        ("tmf", "post", "/adjustBalance") => tmf_posting("-1"),
        ("tmf", "post", "/transferBalance") => json!({"amount": usd("1"),
            "bucket": {"id": ALICE_BUCKET}, "receiverBucket": {"id": ALICE_BUCKET_2}}),
        ("tmf", "post", "/reserveBalance") => json!({"amount": usd("1"),
            "bucket": {"id": ALICE_BUCKET}, "partyAccount": {"id": ALICE}}),
        ("tmf", "patch", "/reserveBalance/{id}") => {
            json!({"status": "completed", "amount": usd("1")})
        }
        ("tmf", "patch", _) => json!({"status": "cancelled", "reason": "intruder"}),
        _ => panic!(
            "{dialect} {} {}: the matrix has no body for this write route; add one",
            route.method, route.path
        ),
    };
    Some(b)
}

async fn call(api: &Api, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    match body {
        Some(b) => api.json(method, path, b).await,
        None => api.send(method, path, &[], None).await,
    }
}

/// A's data as A's admin key reads it, without what others may add to A's tenant for
/// themselves (`intruder` objects).
async fn tenant_a(a: &Api, victim: &Victim) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    let keep = |items: Vec<Value>| -> Value {
        Value::Array(
            items
                .into_iter()
                .filter(|v| !v.to_string().contains("intruder"))
                .collect(),
        )
    };
    seen.push((
        "customers".into(),
        keep(a.list_all("/v1/customers", 100).await),
    ));
    let wallets = keep(a.list_all("/v1/wallets", 100).await);
    for w in wallets.as_array().unwrap() {
        let id = str_of(w, "id");
        let path = format!("/v1/wallets/{}/mutations", percent_encode(id));
        seen.push((path.clone(), Value::Array(a.list_all(&path, 100).await)));
    }
    seen.push(("wallets".into(), wallets));
    let mut paths = vec![
        format!("/v1/holds/{}", victim.hold),
        "/v1/icrtouch/companies/1".to_owned(),
        format!("/v1/wallets/{ALICE_EUR}/auto-topup"),
        format!("/v1/wallets/{ALICE_EUR}/low-balance-alert"),
        "/v1/icrtouch/companies/1/customers/5".to_owned(),
        format!("{TOPDESK_ROOT}/balance-mutations?compact=false"),
        format!("{TOPDESK_ROOT}/prepaid-services-accounts/{DESK_CUSTOMER}"),
        format!("/account/wallets?account_id={ALICE}"),
    ];
    for resource in [
        "bucket",
        "topupBalance",
        "adjustBalance",
        "transferBalance",
        "reserveBalance",
        "accumulatedBalance",
        "balanceActionHistory",
    ] {
        paths.push(format!("{TMF}/{resource}?limit=100"));
    }
    for path in paths {
        let r = a.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let v = match r.json {
            Value::Array(items) => keep(items),
            v => v,
        };
        seen.push((path, v));
    }
    let r = a
        .send(
            Method::HEAD,
            &format!("{TOPDESK_ROOT}/service-user"),
            &[],
            None,
        )
        .await;
    seen.push(("service-user".into(), json!(r.status)));
    seen
}

/// The first of `secrets` that `r`'s body shows although the request did not name it.
fn shown<'a>(r: &Resp, request: &str, secrets: &'a [&'a str]) -> Option<&'a str> {
    secrets
        .iter()
        .copied()
        .find(|s| r.text.contains(s) && !request.contains(s))
}

#[tokio::test]
async fn no_route_of_any_dialect_reaches_another_tenant_or_customer() {
    let server = Server::start().await;
    let operator = server.admin();
    let (_, a) = operator.create_tenant("victim-a").await;
    let (_, b) = operator.create_tenant("intruder-b").await;
    let victim = victim(&a).await;
    let (_, bob) = a.create_key("bob-key", &["read", "write"], Some(BOB)).await;
    let (_, reader) = a.create_key("a-reader", &["read"], None).await;
    let anonymous = a.with_auth(Auth::None);
    // B has data of its own, so its lists are not empty by accident.
    b.funded_wallet("intruder-own", "intruder-own-eur", 500)
        .await;
    let before = tenant_a(&a, &victim).await;

    let all: Vec<&str> = victim.secrets.iter().map(|(s, _)| s.as_str()).collect();
    let not_bobs: Vec<&str> = victim
        .secrets
        .iter()
        .filter(|(_, bobs)| !bobs)
        .map(|(s, _)| s.as_str())
        .collect();
    let outsiders = [
        ("tenant B's admin key", &b, &all[..]),
        (BOBS_KEY, &bob, &not_bobs[..]),
    ];

    let dialects = dialects();
    let mut calls = 0;
    // Reads first, so that nothing B writes for itself can answer them.
    for writes in [false, true] {
        for d in &dialects {
            for route in d.routes.iter().filter(|r| is_read(r) != writes) {
                let path = victim.path(d.name, d.mount, route);
                let body = if writes { body(d.name, route) } else { None };
                let request = format!("{path} {}", body.clone().unwrap_or_default());
                let what = format!("{} {path}", route.method);
                for (who, api, secrets) in outsiders {
                    let r = call(api, route.method, &path, body.as_ref()).await;
                    calls += 1;
                    if !(200..300).contains(&r.status) {
                        continue;
                    }
                    let by_id = route.path.contains('{') && route.scope.is_some();
                    let tenant_wide = TENANT_WIDE.contains(&(d.name, route.path));
                    assert!(
                        writes || !by_id || (tenant_wide && who == BOBS_KEY),
                        "{what} with {who} answered {}: {}",
                        r.status,
                        r.text
                    );
                    if let Some(s) = shown(&r, &request, secrets) {
                        panic!("{what} with {who} shows {s:?}: {} {}", r.status, r.text);
                    }
                }
                if writes {
                    let r = call(&reader, route.method, &path, body.as_ref()).await;
                    calls += 1;
                    assert_eq!(r.status, 403, "{what} with a read-only key: {}", r.text);
                }
            }
        }
    }
    assert_eq!(tenant_a(&a, &victim).await, before);

    // The controls.
    for d in &dialects {
        for route in &d.routes {
            let path = victim.path(d.name, d.mount, route);
            let what = format!("{} {path}", route.method);
            let r = call(&anonymous, route.method, &path, None).await;
            if route.scope.is_some() {
                assert_eq!(r.status, 401, "{what} without a key: {}", r.text);
            } else {
                assert_eq!(r.status, 200, "{what} without a key: {}", r.text);
            }
            if is_read(route) {
                for (who, api) in [("A's admin key", &a), ("A's read-only key", &reader)] {
                    let r = call(api, route.method, &path, None).await;
                    assert!(
                        (200..300).contains(&r.status),
                        "{what} with {who}: {} {}",
                        r.status,
                        r.text
                    );
                }
            } else {
                assert_ne!(route.scope, Some(Scope::Read), "{what} writes with read");
            }
        }
    }
    // A's listener is still there, and goes with A's key.
    let r = a
        .send(
            Method::DELETE,
            &format!("{TMF}/hub/{}", victim.listener),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let routes: usize = dialects.iter().map(|d| d.routes.len()).sum();
    assert!(routes >= 60, "the route tables lost routes: {routes}");
    assert!(calls > 2 * routes, "{calls} calls");
}

/// Every operation of the native OpenAPI document is a row of the `/v1` route table.
#[tokio::test]
async fn the_native_openapi_document_names_only_routes_of_the_table() {
    let server = Server::start().await;
    let doc = server.anonymous().get("/v1/openapi.json").await.ok(200);
    let table = prepaid_server::v1_route_table();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let relative = path.strip_prefix("/v1").unwrap_or(path);
        for method in item.as_object().unwrap().keys() {
            if !["get", "put", "post", "delete", "patch", "head"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            assert!(
                table
                    .iter()
                    .any(|r| r.path == relative && r.method == method),
                "{method} {path} is documented but not in the route table"
            );
        }
    }
    assert!(operations >= 10, "{operations}");
}
