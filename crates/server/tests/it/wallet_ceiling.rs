//! A wallet's ceiling over the native API: given at creation as `ceiling_minor`, shown
//! on every wallet, and a credit that would pass it is refused with the room left.

use crate::common;

use common::*;
use serde_json::json;

const BALANCE_ABS_MAX: i64 = 4_000_000_000_000_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn credits_stop_at_the_ceiling_and_change_nothing() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("alice").await;
    let w = api
        .post(
            "/v1/customers/alice/wallets",
            &json!({"id": "capped", "unit": "EUR", "ceiling_minor": 10_000}),
        )
        .await
        .ok(201);
    assert_eq!(w["ceiling_minor"], 10_000, "{w}");
    let free = api.funded_wallet("bob", "free", 50_000).await;
    assert!(free["ceiling_minor"].is_null(), "no ceiling: {free}");

    api.top_up("capped", 9_000).await;
    let r = api.mutate("capped", "top_up", 1_001).await;
    let p = r.problem(422, "ceiling_exceeded");
    assert_eq!(
        (p["room"].as_i64(), p["requested"].as_i64()),
        (Some(1_000), Some(1_001)),
        "{p}"
    );
    let p = api.mutate("capped", "adjustment", 1_001).await;
    p.problem(422, "ceiling_exceeded");
    let r = api
        .post(
            "/v1/transfers",
            &json!({"from_wallet_id": "free", "to_wallet_id": "capped", "amount": 1_001}),
        )
        .await;
    r.problem(422, "ceiling_exceeded");
    assert_eq!(api.balance("capped").await, 9_000);
    assert_eq!(api.balance("free").await, 50_000);
    assert_eq!(api.mutations("capped").await.len(), 1);

    // Up to the ceiling exactly, then debits make room again.
    let m = api.top_up("capped", 1_000).await;
    assert_eq!(m["balance_after"], 10_000);
    api.mutate("capped", "top_up", 1)
        .await
        .problem(422, "ceiling_exceeded");
    api.debit("capped", 500).await;
    api.post(
        "/v1/transfers",
        &json!({"from_wallet_id": "free", "to_wallet_id": "capped", "amount": 500}),
    )
    .await
    .ok(201);
    let w = api.wallet("capped").await;
    assert_eq!(
        (w["balance"].as_i64(), w["ceiling_minor"].as_i64()),
        (Some(10_000), Some(10_000))
    );
    let listed = api.list_all("/v1/customers/alice/wallets", 10).await;
    assert_eq!(listed[0]["ceiling_minor"], 10_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ceiling_is_zero_to_the_balance_bound() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("alice").await;
    let create = |id: &str, ceiling: serde_json::Value| json!({"id": id, "unit": "MIN", "ceiling_minor": ceiling});
    let path = "/v1/customers/alice/wallets";
    for (id, ceiling) in [("zero", 0), ("largest", BALANCE_ABS_MAX)] {
        let w = api.post(path, &create(id, json!(ceiling))).await.ok(201);
        assert_eq!(w["ceiling_minor"].as_i64(), Some(ceiling), "{w}");
    }
    api.mutate("zero", "top_up", 1)
        .await
        .problem(422, "ceiling_exceeded");
    for bad in [
        json!(-1),
        json!(BALANCE_ABS_MAX + 1),
        json!(1.5),
        json!("10"),
    ] {
        let r = api.post(path, &create("bad", bad.clone())).await;
        let p = r.problem(400, "invalid_request");
        assert!(
            p["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("ceiling_minor"),
            "{bad}: {p}"
        );
    }
    api.get("/v1/wallets/bad")
        .await
        .problem(404, "wallet_not_found");
}
