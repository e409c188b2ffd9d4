//! Tenants and keys: a tenant's data is invisible and untouchable for every other
//! tenant, scopes are enforced on every write, customer keys see only their customer,
//! and bad credentials are 401 with a challenge.

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// What tenant B owns, made by B's admin.
struct TenantB {
    admin: Api,
    admin_name: String,
    mutation_id: String,
    hold_id: String,
}

async fn tenant_b(operator: &Api) -> TenantB {
    let (created, admin) = operator.create_tenant("bee").await;
    assert_eq!(created["id"], "bee");
    assert_eq!(created["name"], "Tenant bee");
    let key = &created["admin_key"];
    assert!(
        key["secret"].is_string(),
        "the admin key comes with its secret: {created}"
    );
    let scopes: Vec<&str> = key["scopes"]
        .as_array()
        .expect("scopes array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        scopes.contains(&"admin"),
        "the first key of a tenant is an admin: {created}"
    );

    admin.create_customer("b-cust").await;
    admin.create_wallet("b-cust", "b-wallet", "EUR", 2).await;
    let m = admin.top_up("b-wallet", 1_000).await;
    let h = admin
        .post("/v1/wallets/b-wallet/holds", &json!({"amount": 100}))
        .await
        .ok(201);
    TenantB {
        admin_name: str_of(key, "name").to_owned(),
        admin,
        mutation_id: str_of(&m, "id").to_owned(),
        hold_id: str_of(&h, "id").to_owned(),
    }
}

/// Asserts 404 (or 403) for a request that touches another tenant's or customer's data.
#[track_caller]
fn hidden(r: &Resp) {
    if let Err(why) = r.check_problem(&[404, 403], &[]) {
        panic!("must be hidden (404/403): {why}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_cannot_see_or_touch_each_other() {
    let server = Server::start().await;
    let a = server.admin();
    let b = tenant_b(&a).await;
    a.funded_wallet("a-cust", "a-wallet", 500).await;
    let b_wallet_before = b.admin.wallet("b-wallet").await;
    let b_muts_before = b.admin.mutations("b-wallet").await;
    let b_hold_before = b
        .admin
        .get(&format!("/v1/holds/{}", b.hold_id))
        .await
        .ok(200);

    let (m, h) = (&b.mutation_id, &b.hold_id);
    // Reads.
    for path in [
        "/v1/customers/b-cust".to_owned(),
        "/v1/customers/b-cust/wallets".to_owned(),
        "/v1/wallets/b-wallet".to_owned(),
        "/v1/wallets/b-wallet/mutations".to_owned(),
        format!("/v1/mutations/{m}"),
        format!("/v1/holds/{h}"),
    ] {
        hidden(&a.get(&path).await);
    }
    // Lists never include B's data.
    let customers = ids(&a.list_all("/v1/customers", 100).await);
    assert_eq!(customers, vec!["a-cust"], "A lists only its customers");
    let wallets = ids(&a.list_all("/v1/wallets", 100).await);
    assert_eq!(wallets, vec!["a-wallet"], "A lists only its wallets");
    let filtered = a.get("/v1/wallets?customer_id=b-cust").await;
    if filtered.status == 200 {
        assert_eq!(filtered.json["items"], json!([]), "{}", filtered.text);
    } else {
        hidden(&filtered);
    }

    // Writes.
    hidden(
        &a.post("/v1/customers/b-cust/wallets", &json!({"unit": "EUR"}))
            .await,
    );
    hidden(
        &a.patch("/v1/wallets/b-wallet", &json!({"status": "suspended"}))
            .await,
    );
    for kind in ["top_up", "debit", "adjustment"] {
        hidden(&a.mutate("b-wallet", kind, 10).await);
    }
    hidden(
        &a.post("/v1/wallets/b-wallet/holds", &json!({"amount": 10}))
            .await,
    );
    hidden(&a.post(&format!("/v1/holds/{h}/commit"), &json!({})).await);
    hidden(&a.post(&format!("/v1/holds/{h}/release"), &json!({})).await);
    for (from, to) in [("a-wallet", "b-wallet"), ("b-wallet", "a-wallet")] {
        let t = json!({"from_wallet_id": from, "to_wallet_id": to, "amount": 10});
        hidden(&a.post("/v1/transfers", &t).await);
    }
    let batch = a
        .post(
            "/v1/batch",
            &json!({"mutations": [{"wallet_id": "b-wallet", "kind": "debit", "amount": 10}]}),
        )
        .await
        .ok(200);
    let item = &batch["results"][0];
    assert!(
        matches!(item["status"].as_u64(), Some(403 | 404)),
        "a batch item on another tenant's wallet is hidden: {batch}"
    );

    // Ids are per tenant: A may use B's customer and wallet ids for its own.
    a.create_customer("b-cust").await;
    a.create_wallet("b-cust", "b-wallet", "MIN", 0).await;
    assert_eq!(a.balance("b-wallet").await, 0);

    // Nothing of B changed.
    assert_eq!(b.admin.wallet("b-wallet").await, b_wallet_before);
    assert_eq!(b.admin.mutations("b-wallet").await, b_muts_before);
    assert_eq!(
        b.admin
            .get(&format!("/v1/holds/{}", b.hold_id))
            .await
            .ok(200),
        b_hold_before
    );
    assert_eq!(
        b.admin.get("/v1/customers/b-cust").await.ok(200)["name"],
        "Customer b-cust"
    );
    assert_eq!(a.balance("a-wallet").await, 500);
    // And B does not see A.
    hidden(&b.admin.get("/v1/wallets/a-wallet").await);
    assert_eq!(
        ids(&b.admin.list_all("/v1/customers", 100).await),
        vec!["b-cust"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_operator_creates_tenants() {
    let server = Server::start().await;
    let operator = server.admin();
    let b = tenant_b(&operator).await;

    b.admin
        .post("/v1/tenants", &json!({"id": "sneaky"}))
        .await
        .problem(403, "forbidden");
    operator
        .post("/v1/tenants", &json!({"id": "bee"}))
        .await
        .problem(409, "tenant_exists");
    let (_, op_reader) = operator.create_key("op-reader", &["read"], None).await;
    op_reader
        .post("/v1/tenants", &json!({"id": "sneaky"}))
        .await
        .problem(403, "forbidden");
    let (_, op_writer) = operator
        .create_key("op-writer", &["read", "write"], None)
        .await;
    op_writer
        .post("/v1/tenants", &json!({"id": "sneaky"}))
        .await
        .problem(403, "forbidden");
    // The refused creation made nothing: the id is still free.
    operator.create_tenant("sneaky").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_admin_creates_keys_and_read_only_keys_cannot_write() {
    let server = Server::start().await;
    let b = tenant_b(&server.admin()).await;
    let admin = &b.admin;
    admin.create_customer("c2").await;
    admin.create_wallet("c2", "w2", "EUR", 2).await;

    let (key, reader) = admin.create_key("reader", &["read"], None).await;
    assert_eq!(key["name"], "reader");
    assert_eq!(key["scopes"], json!(["read"]));
    assert!(key["customer_id"].is_null());
    assert_time(&key, "created_at");
    admin
        .post(
            "/v1/api-keys",
            &json!({"name": "reader", "scopes": ["read"]}),
        )
        .await
        .problem(409, "api_key_exists");

    // Reads work.
    reader.get("/v1/customers/b-cust").await.ok(200);
    reader.get("/v1/customers").await.ok(200);
    reader.get("/v1/wallets/b-wallet").await.ok(200);
    reader.get("/v1/wallets/b-wallet/mutations").await.ok(200);
    reader
        .get(&format!("/v1/mutations/{}", b.mutation_id))
        .await
        .ok(200);
    reader
        .get(&format!("/v1/holds/{}", b.hold_id))
        .await
        .ok(200);

    // Every write is 403, and changes nothing.
    let before = admin.wallet("b-wallet").await;
    let h = &b.hold_id;
    let writes: Vec<(Method, String, Value)> = vec![
        (Method::POST, "/v1/customers".into(), json!({"id": "new"})),
        (
            Method::POST,
            "/v1/customers/b-cust/wallets".into(),
            json!({"unit": "EUR"}),
        ),
        (
            Method::PATCH,
            "/v1/wallets/b-wallet".into(),
            json!({"status": "suspended"}),
        ),
        (
            Method::POST,
            "/v1/wallets/b-wallet/mutations".into(),
            json!({"kind": "top_up", "amount": 1}),
        ),
        (
            Method::POST,
            "/v1/wallets/b-wallet/mutations".into(),
            json!({"kind": "debit", "amount": 1}),
        ),
        (
            Method::POST,
            "/v1/wallets/b-wallet/mutations".into(),
            json!({"kind": "adjustment", "amount": 1}),
        ),
        (
            Method::POST,
            "/v1/wallets/b-wallet/holds".into(),
            json!({"amount": 1}),
        ),
        (Method::POST, format!("/v1/holds/{h}/commit"), json!({})),
        (Method::POST, format!("/v1/holds/{h}/release"), json!({})),
        (
            Method::POST,
            "/v1/transfers".into(),
            json!({"from_wallet_id": "b-wallet", "to_wallet_id": "w2", "amount": 1}),
        ),
        (
            Method::POST,
            "/v1/batch".into(),
            json!({"mutations": [{"wallet_id": "b-wallet", "kind": "top_up", "amount": 1}]}),
        ),
        (
            Method::POST,
            "/v1/api-keys".into(),
            json!({"name": "mine", "scopes": ["read"]}),
        ),
        (Method::POST, "/v1/tenants".into(), json!({"id": "t"})),
    ];
    for (method, path, body) in &writes {
        reader
            .json(method.clone(), path, body)
            .await
            .problem(403, "forbidden");
    }
    assert_eq!(admin.wallet("b-wallet").await, before);
    assert_eq!(
        admin.get(&format!("/v1/holds/{h}")).await.ok(200)["status"],
        "pending"
    );
    admin
        .get("/v1/customers/new")
        .await
        .problem_any(404, &["customer_not_found", "not_found"]);

    // A write key without admin may not create keys.
    let (_, writer) = admin.create_key("writer", &["read", "write"], None).await;
    writer.top_up("b-wallet", 1).await;
    writer
        .post("/v1/api-keys", &json!({"name": "mine", "scopes": ["read"]}))
        .await
        .problem(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_key_sees_only_its_customer() {
    let server = Server::start().await;
    let admin = server.admin();
    admin.funded_wallet("alice", "a-w", 1_000).await;
    admin.funded_wallet("bob", "b-w", 1_000).await;
    let bob_mut = admin.mutations("b-w").await[0]["id"].clone();
    let bob_hold = admin
        .post("/v1/wallets/b-w/holds", &json!({"amount": 10}))
        .await
        .ok(201);
    let bob_hold = str_of(&bob_hold, "id").to_owned();

    let (key, alice) = admin
        .create_key("alice-app", &["read", "write"], Some("alice"))
        .await;
    assert_eq!(key["customer_id"], "alice");

    // Its own customer: visible and changeable.
    alice.get("/v1/customers/alice").await.ok(200);
    assert_eq!(
        ids(&alice.list_all("/v1/customers", 100).await),
        vec!["alice"]
    );
    assert_eq!(ids(&alice.list_all("/v1/wallets", 100).await), vec!["a-w"]);
    assert_eq!(
        ids(&alice.list_all("/v1/customers/alice/wallets", 100).await),
        vec!["a-w"]
    );
    alice.top_up("a-w", 5).await;
    let h = alice
        .post("/v1/wallets/a-w/holds", &json!({"amount": 5}))
        .await
        .ok(201);
    alice
        .post(
            &format!("/v1/holds/{}/release", str_of(&h, "id")),
            &json!({}),
        )
        .await
        .ok(200);

    // Anything of bob: 404.
    let bob_before = admin.wallet("b-w").await;
    for path in [
        "/v1/customers/bob".to_owned(),
        "/v1/customers/bob/wallets".to_owned(),
        "/v1/wallets/b-w".to_owned(),
        "/v1/wallets/b-w/mutations".to_owned(),
        format!("/v1/mutations/{}", bob_mut.as_str().expect("id")),
        format!("/v1/holds/{bob_hold}"),
    ] {
        alice
            .get(&path)
            .await
            .check_problem(&[404], &[])
            .unwrap_or_else(|why| panic!("{why}"));
    }
    let filtered = alice.get("/v1/wallets?customer_id=bob").await;
    if filtered.status == 200 {
        assert_eq!(filtered.json["items"], json!([]), "{}", filtered.text);
    } else {
        filtered
            .check_problem(&[404], &[])
            .unwrap_or_else(|why| panic!("{why}"));
    }
    let writes: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/v1/customers/bob/wallets".into(),
            json!({"unit": "EUR"}),
        ),
        (
            Method::PATCH,
            "/v1/wallets/b-w".into(),
            json!({"status": "suspended"}),
        ),
        (
            Method::POST,
            "/v1/wallets/b-w/mutations".into(),
            json!({"kind": "debit", "amount": 1}),
        ),
        (
            Method::POST,
            "/v1/wallets/b-w/holds".into(),
            json!({"amount": 1}),
        ),
        (
            Method::POST,
            format!("/v1/holds/{bob_hold}/commit"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/v1/holds/{bob_hold}/release"),
            json!({}),
        ),
        (
            Method::POST,
            "/v1/transfers".into(),
            json!({"from_wallet_id": "a-w", "to_wallet_id": "b-w", "amount": 1}),
        ),
        (
            Method::POST,
            "/v1/transfers".into(),
            json!({"from_wallet_id": "b-w", "to_wallet_id": "a-w", "amount": 1}),
        ),
    ];
    for (method, path, body) in &writes {
        alice
            .json(method.clone(), path, body)
            .await
            .check_problem(&[404], &[])
            .unwrap_or_else(|why| panic!("{why}"));
    }
    let batch = alice
        .post(
            "/v1/batch",
            &json!({"mutations": [
                {"wallet_id": "a-w", "kind": "top_up", "amount": 1},
                {"wallet_id": "b-w", "kind": "debit", "amount": 1}
            ]}),
        )
        .await
        .ok(200);
    assert_eq!(batch["results"][0]["status"], 201, "{batch}");
    assert_eq!(batch["results"][1]["status"], 404, "{batch}");
    // A customer key creates no keys (it has no admin scope either way).
    alice
        .post("/v1/api-keys", &json!({"name": "x", "scopes": ["read"]}))
        .await
        .problem_in(&[403, 404], &[]);

    assert_eq!(admin.wallet("b-w").await, bob_before);
    assert_eq!(
        admin.get(&format!("/v1/holds/{bob_hold}")).await.ok(200)["status"],
        "pending"
    );
    assert_eq!(admin.balance("a-w").await, 1_006);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_are_401_with_a_challenge() {
    let server = Server::start().await;
    let secret = server.admin_secret().to_owned();
    let b = tenant_b(&server.admin()).await;
    let b_secret = match b.admin.auth() {
        Auth::Bearer(s) => s.clone(),
        other => panic!("tenant admin client uses {other:?}"),
    };

    server
        .admin()
        .create_key("op-reader", &["read"], None)
        .await;

    // Basic with the key's name works like Bearer.
    server
        .client(Auth::basic("admin", &secret))
        .get("/v1/customers")
        .await
        .ok(200);
    server
        .client(Auth::basic(&b.admin_name, &b_secret))
        .get("/v1/customers/b-cust")
        .await
        .ok(200);

    let bad = [
        ("no credentials", Auth::None),
        ("unknown bearer", Auth::Bearer("not-a-secret".into())),
        ("empty bearer", Auth::Raw("Bearer ".into())),
        ("basic with a bad secret", Auth::basic("admin", "wrong")),
        ("basic with a bad name", Auth::basic("nobody", &secret)),
        (
            "basic with the name of another key",
            Auth::basic("op-reader", &secret),
        ),
        (
            "basic with an unknown name",
            Auth::basic("admin-of-nobody", &b_secret),
        ),
        ("basic that is not base64", Auth::Raw("Basic !!!".into())),
        ("basic without a colon", Auth::Raw("Basic YWRtaW4=".into())),
        ("unknown scheme", Auth::Raw(format!("Token {secret}"))),
    ];
    for (what, auth) in bad {
        for (method, path, body) in [
            (Method::GET, "/v1/customers", None),
            (Method::GET, "/v1/wallets/anything", None),
            (Method::POST, "/v1/customers", Some(json!({"id": "x"}))),
        ] {
            let api = server.client(auth.clone());
            let r = match body {
                Some(b) => api.json(method, path, &b).await,
                None => api.send(method, path, &[], None).await,
            };
            if let Err(why) = r.check_problem(&[401], &["unauthorized"]) {
                panic!("{what}: {why}");
            }
            let challenge = r.header_all("www-authenticate");
            assert!(
                challenge.contains("Bearer") && challenge.contains("Basic"),
                "{what}: WWW-Authenticate must offer Bearer and Basic, got {challenge:?}"
            );
        }
    }
    server
        .admin()
        .get("/v1/customers/x")
        .await
        .problem_any(404, &["customer_not_found", "not_found"]);
}

#[tokio::test]
async fn a_tenant_without_an_id_gets_one() {
    let server = Server::start().await;
    let api = server.admin();
    let v = api
        .post("/v1/tenants", &json!({"name": "Nameless"}))
        .await
        .ok(201);
    let id = v["id"].as_str().unwrap();
    assert!(uuid::Uuid::try_parse(id).is_ok(), "{v}");
    assert_eq!(v["name"], "Nameless");
    // Its admin key works on it.
    let key = v["admin_key"]["secret"].as_str().unwrap();
    let tenant = api.with_bearer(key);
    tenant.create_customer("c1").await;
}
