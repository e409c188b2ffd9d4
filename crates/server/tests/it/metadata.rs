//! Metadata over the native API: the client's labels on wallets, mutations (single,
//! batched, transfers), holds and grants, read back everywhere, lists filtered with
//! `?metadata[<key>]=<value>`, and what is refused, in the house problem shape.

use crate::common;

use common::{Server, str_of};
use serde_json::{Value, json};

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| str_of(i, "id").to_owned()).collect()
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().expect("items").clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_is_returned_everywhere_and_filters_lists() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("c1").await;
    api.create_customer("c2").await;
    let w1 = api
        .post(
            "/v1/customers/c1/wallets",
            &json!({"id": "w1", "unit": "EUR", "metadata": {"team": "a", "region": "eu"}}),
        )
        .await
        .ok(201);
    assert_eq!(w1["metadata"], json!({"region": "eu", "team": "a"}));
    api.post(
        "/v1/customers/c1/wallets",
        &json!({"id": "w2", "unit": "EUR", "metadata": {"team": "b"}}),
    )
    .await
    .ok(201);
    api.post(
        "/v1/customers/c2/wallets",
        &json!({"id": "w3", "unit": "EUR", "metadata": {"team": "a"}}),
    )
    .await
    .ok(201);
    let plain = api.create_wallet("c2", "w4", "EUR", 2).await;
    assert_eq!(plain["metadata"], json!({}), "{plain}");
    assert_eq!(api.wallet("w1").await["metadata"]["team"], "a");

    let top_up = api
        .post(
            "/v1/wallets/w1/mutations",
            &json!({"kind": "top_up", "amount": 1000,
                    "metadata": {"order": "A-17", "channel": "web"}}),
        )
        .await
        .ok(201);
    assert_eq!(
        top_up["metadata"],
        json!({"channel": "web", "order": "A-17"})
    );
    let other = api
        .post(
            "/v1/wallets/w1/mutations",
            &json!({"kind": "top_up", "amount": 10, "metadata": {"order": "A-18"}}),
        )
        .await
        .ok(201);
    let batch = api
        .post(
            "/v1/batch",
            &json!({"mutations": [
                {"wallet_id": "w1", "kind": "debit", "amount": 30, "metadata": {"order": "A-17"}},
                {"wallet_id": "w1", "kind": "debit", "amount": 1}
            ]}),
        )
        .await
        .ok(200);
    let debit = batch["results"][0]["mutation"].clone();
    assert_eq!(debit["metadata"], json!({"order": "A-17"}), "{batch}");
    assert_eq!(batch["results"][1]["mutation"]["metadata"], json!({}));
    let transfer = api
        .post(
            "/v1/transfers",
            &json!({"from_wallet_id": "w1", "to_wallet_id": "w2", "amount": 5,
                    "metadata": {"order": "T-1"}}),
        )
        .await
        .ok(201);
    assert_eq!(transfer["debit"]["metadata"], json!({"order": "T-1"}));
    assert_eq!(transfer["credit"]["metadata"], json!({"order": "T-1"}));
    let hold = api
        .post(
            "/v1/wallets/w1/holds",
            &json!({"amount": 20, "metadata": {"order": "H-1"}}),
        )
        .await
        .ok(201);
    assert_eq!(hold["metadata"], json!({"order": "H-1"}));
    let hold_id = str_of(&hold, "id");
    let read = api.get(&format!("/v1/holds/{hold_id}")).await.ok(200);
    assert_eq!(read["metadata"], json!({"order": "H-1"}));
    let settled = api
        .post(&format!("/v1/holds/{hold_id}/commit"), &json!({}))
        .await
        .ok(200);
    assert_eq!(settled["mutation"]["metadata"], json!({"order": "H-1"}));
    let read = api
        .get(&format!("/v1/mutations/{}", str_of(&top_up, "id")))
        .await
        .ok(200);
    assert_eq!(read["metadata"], top_up["metadata"]);

    // A grant shows the labels of the credit that made it.
    let grants = api.list_all("/v1/wallets/w1/grants", 10).await;
    let of = |id: &str| {
        grants
            .iter()
            .find(|g| str_of(g, "id") == id)
            .map(|g| g["metadata"].clone())
    };
    assert_eq!(of(str_of(&top_up, "id")), Some(top_up["metadata"].clone()));
    assert_eq!(of(str_of(&other, "id")), Some(json!({"order": "A-18"})));
    let grants = api.list_all("/v1/wallets/w2/grants", 10).await;
    assert_eq!(grants[0]["metadata"], json!({"order": "T-1"}));

    // Filtered lists, across pages too.
    let page = api
        .get("/v1/wallets/w1/mutations?metadata[order]=A-17")
        .await
        .ok(200);
    assert_eq!(ids(&items(&page)), ids(&[top_up.clone(), debit.clone()]));
    let paged = api
        .list_all("/v1/wallets/w1/mutations?metadata%5Border%5D=A-17", 1)
        .await;
    assert_eq!(ids(&paged), ids(&[top_up.clone(), debit.clone()]));
    let page = api
        .get("/v1/wallets/w1/mutations?metadata[order]=A-17&metadata[channel]=web")
        .await
        .ok(200);
    assert_eq!(ids(&items(&page)), ids(std::slice::from_ref(&top_up)));
    let page = api
        .get("/v1/wallets/w1/mutations?metadata[order]=H-1")
        .await
        .ok(200);
    assert_eq!(ids(&items(&page)), ids(&[settled["mutation"].clone()]));
    let page = api
        .get("/v1/wallets/w1/mutations?metadata[order]=nope")
        .await
        .ok(200);
    assert!(items(&page).is_empty(), "{page}");

    let page = api.get("/v1/wallets?metadata[team]=a").await.ok(200);
    assert_eq!(ids(&items(&page)), ["w1", "w3"]);
    let page = api
        .get("/v1/wallets?metadata[team]=a&customer_id=c2")
        .await
        .ok(200);
    assert_eq!(ids(&items(&page)), ["w3"]);
    let page = api
        .get("/v1/customers/c1/wallets?metadata[team]=b")
        .await
        .ok(200);
    assert_eq!(ids(&items(&page)), ["w2"]);
    let page = api
        .get("/v1/customers/c1/wallets?metadata[team]=a&metadata[region]=us")
        .await
        .ok(200);
    assert!(items(&page).is_empty(), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_metadata_is_refused_naming_the_field() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("c1").await;
    api.create_wallet("c1", "w1", "EUR", 2).await;
    let post = |metadata: Value| {
        let api = api.clone();
        async move {
            api.post(
                "/v1/wallets/w1/mutations",
                &json!({"kind": "top_up", "amount": 1, "metadata": metadata}),
            )
            .await
        }
    };
    let detail = |r: &common::Resp| str_of(r.problem(400, "invalid_request"), "detail").to_owned();

    // At the limits, accepted.
    let pairs: serde_json::Map<String, Value> = (0..32)
        .map(|i| (format!("{i:0>40}"), json!("v".repeat(500))))
        .collect();
    post(Value::Object(pairs.clone())).await.ok(201);
    // One past each, refused.
    let mut more = pairs;
    more.insert("x".to_owned(), json!("v"));
    let r = post(Value::Object(more)).await;
    assert!(
        detail(&r).starts_with("metadata: at most 32 pairs"),
        "{}",
        r.text
    );
    let r = post(json!({"k".repeat(41): "v"})).await;
    assert!(
        detail(&r).starts_with("metadata: a key must be"),
        "{}",
        r.text
    );
    let r = post(json!({"order": "v".repeat(501)})).await;
    assert!(
        detail(&r).starts_with("metadata.order: must be at most 500 bytes"),
        "{}",
        r.text
    );
    let r = post(json!({"order": "a\nb"})).await;
    assert!(detail(&r).starts_with("metadata.order:"), "{}", r.text);
    let r = post(json!({"a[b]": "v"})).await;
    assert!(
        detail(&r).starts_with("metadata: a key must be"),
        "{}",
        r.text
    );
    let r = post(json!({"order": 17})).await;
    assert!(detail(&r).starts_with("metadata.order:"), "{}", r.text);
    let r = post(json!(["order"])).await;
    assert!(detail(&r).starts_with("metadata:"), "{}", r.text);

    // Batch items, transfers, holds and wallets name their field the same way.
    let r = api
        .post(
            "/v1/batch",
            &json!({"mutations": [{"wallet_id": "w1", "kind": "top_up", "amount": 1,
                                   "metadata": {"order": "a\u{1}"}}]}),
        )
        .await
        .ok(200);
    let p = &r["results"][0]["error"];
    assert_eq!(p["code"], "invalid_request", "{r}");
    assert!(
        str_of(p, "detail").starts_with("mutations[0].metadata.order:"),
        "{r}"
    );
    let r = api
        .post(
            "/v1/wallets/w1/holds",
            &json!({"amount": 1, "metadata": {"": "v"}}),
        )
        .await;
    assert!(detail(&r).starts_with("metadata:"), "{}", r.text);
    let r = api
        .post(
            "/v1/customers/c1/wallets",
            &json!({"unit": "EUR", "metadata": {"k": "v".repeat(501)}}),
        )
        .await;
    assert!(detail(&r).starts_with("metadata.k:"), "{}", r.text);

    // Filters: at most 8, valid keys and values, each key once, UTF-8.
    let eight: String = (0..8).map(|i| format!("&metadata[k{i}]=v")).collect();
    api.get(&format!("/v1/wallets/w1/mutations?limit=5{eight}"))
        .await
        .ok(200);
    let r = api
        .get(&format!(
            "/v1/wallets/w1/mutations?limit=5{eight}&metadata[k8]=v"
        ))
        .await;
    assert!(detail(&r).starts_with("metadata: at most 8"), "{}", r.text);
    let r = api.get("/v1/wallets?metadata[a%3Db]=1").await;
    assert!(
        detail(&r).starts_with("metadata: a key must be"),
        "{}",
        r.text
    );
    let r = api.get("/v1/wallets?metadata[k]=1&metadata[k]=2").await;
    assert!(detail(&r).starts_with("metadata[k]:"), "{}", r.text);
    let r = api
        .get(&format!(
            "/v1/customers/c1/wallets?metadata[k]={}",
            "v".repeat(501)
        ))
        .await;
    assert!(
        detail(&r).starts_with("metadata[k]: must be at most"),
        "{}",
        r.text
    );
    let r = api.get("/v1/wallets/w1/mutations?metadata[k]=%FF").await;
    assert!(detail(&r).starts_with("metadata[k]:"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_shows_metadata() {
    let server = Server::start().await;
    let doc = server.anonymous().get("/v1/openapi.json").await.ok(200);
    let schemas = &doc["components"]["schemas"];
    for shape in [
        "MutationOut",
        "WalletOut",
        "HoldOut",
        "GrantOut",
        "PostMutationIn",
    ] {
        assert!(
            schemas[shape]["properties"]["metadata"].is_object(),
            "{shape} has no metadata: {}",
            schemas[shape]
        );
    }
    assert_eq!(
        schemas["Metadata"]["maxProperties"], 32,
        "{}",
        schemas["Metadata"]
    );
    let params = doc["paths"]["/v1/wallets/{id}/mutations"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "metadata" && p["style"] == "deepObject"),
        "{params:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wallets_metadata_is_patched_with_its_status_in_one_unit() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("c1").await;
    api.post(
        "/v1/customers/c1/wallets",
        &json!({"id": "w1", "unit": "EUR", "metadata": {"team": "a", "region": "eu"}}),
    )
    .await
    .ok(201);

    // A merge patch: a value sets a key, null removes it, the others stay.
    let w = api
        .patch(
            "/v1/wallets/w1",
            &json!({"metadata": {"team": "b", "region": null, "cost": "42"}}),
        )
        .await
        .ok(200);
    assert_eq!(w["metadata"], json!({"cost": "42", "team": "b"}));
    assert_eq!(w["status"], "active");
    let w = api
        .patch(
            "/v1/wallets/w1",
            &json!({"status": "suspended", "metadata": {"cost": null}}),
        )
        .await
        .ok(200);
    assert_eq!(w["status"], "suspended");
    assert_eq!(w["metadata"], json!({"team": "b"}));
    assert_eq!(api.wallet("w1").await["metadata"], json!({"team": "b"}));
    let listed = api.get("/v1/wallets?metadata[team]=b").await.ok(200);
    assert_eq!(ids(&items(&listed)), ["w1"]);

    // Past the bound, refused as a whole: the status stays as it was too.
    let pairs: serde_json::Map<String, Value> =
        (0..32).map(|i| (format!("k{i}"), json!("v"))).collect();
    let r = api
        .patch(
            "/v1/wallets/w1",
            &json!({"status": "active", "metadata": Value::Object(pairs)}),
        )
        .await;
    let problem = r.problem(422, "metadata_exceeded");
    assert_eq!(problem["pairs_max"], 32, "{}", r.text);
    let w = api.wallet("w1").await;
    assert_eq!(w["status"], "suspended");
    assert_eq!(w["metadata"], json!({"team": "b"}));

    // An empty patch, or a bad key, is refused naming the field.
    api.patch("/v1/wallets/w1", &json!({}))
        .await
        .problem(400, "invalid_request");
    let r = api
        .patch("/v1/wallets/w1", &json!({"metadata": {"a b": null}}))
        .await;
    assert!(
        str_of(r.problem(400, "invalid_request"), "detail").starts_with("metadata: a key"),
        "{}",
        r.text
    );
}
