//! A refused request changes nothing: no balance moves, no mutation or hold is recorded,
//! and the problem says why in machine-readable members.

use crate::common;

use common::*;
use serde_json::json;

/// The wallet's balance, held amount and mutation count.
async fn snapshot(api: &Api, wallet: &str) -> (i64, i64, usize) {
    let w = api.wallet(wallet).await;
    let n = assert_balance_is_sum(api, wallet).await.len();
    (int(&w, "balance"), int(&w, "held"), n)
}

#[tokio::test(flavor = "multi_thread")]
async fn debit_beyond_available_is_refused_and_changes_nothing() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 300).await;
    let before = snapshot(&api, "w").await;
    assert_eq!(before, (300, 0, 1));

    let r = api.mutate("w", "debit", 500).await;
    let p = r.problem(422, "insufficient_funds");
    assert_eq!(p["available"], 300, "problem carries available: {p}");
    assert_eq!(p["requested"], 500, "problem carries requested: {p}");
    assert_eq!(snapshot(&api, "w").await, before);

    // One more than the balance is refused; exactly the balance is not.
    let p = api.mutate("w", "debit", 301).await;
    assert_eq!(p.problem(422, "insufficient_funds")["available"], 300);
    assert_eq!(snapshot(&api, "w").await, before);
    let d = api.debit("w", 300).await;
    assert_eq!(d["balance_after"], 0);
    let p = api.mutate("w", "debit", 1).await;
    let p = p.problem(422, "insufficient_funds");
    assert_eq!(
        (p["available"].as_i64(), p["requested"].as_i64()),
        (Some(0), Some(1))
    );
    assert_eq!(snapshot(&api, "w").await, (0, 0, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_beyond_available_is_refused_and_changes_nothing() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 1_000).await;

    api.post("/v1/wallets/w/holds", &json!({"amount": 600}))
        .await
        .ok(201);
    let before = snapshot(&api, "w").await;
    assert_eq!(before, (1_000, 600, 1));

    // The hold already set aside 600: only 400 is available.
    let r = api
        .post("/v1/wallets/w/holds", &json!({"amount": 401}))
        .await;
    let p = r.problem(422, "insufficient_funds");
    assert_eq!(
        (p["available"].as_i64(), p["requested"].as_i64()),
        (Some(400), Some(401))
    );
    assert_eq!(snapshot(&api, "w").await, before);
    assert_eq!(int(&api.wallet("w").await, "available"), 400);

    // Debits and transfers see the held amount too.
    let p = api.mutate("w", "debit", 401).await;
    assert_eq!(p.problem(422, "insufficient_funds")["available"], 400);
    api.funded_wallet("bob", "b", 0).await;
    let p = api
        .post(
            "/v1/transfers",
            &json!({"from_wallet_id": "w", "to_wallet_id": "b", "amount": 401}),
        )
        .await;
    assert_eq!(p.problem(422, "insufficient_funds")["requested"], 401);
    assert_eq!(snapshot(&api, "w").await, before);
    assert_eq!(snapshot(&api, "b").await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_of_every_kind_record_nothing() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 100).await;
    api.create_wallet("alice", "m", "MIN", 0).await;
    let before = snapshot(&api, "w").await;

    api.post(
        "/v1/transfers",
        &json!({"from_wallet_id": "w", "to_wallet_id": "m", "amount": 1}),
    )
    .await
    .problem(422, "unit_mismatch");
    api.post(
        "/v1/transfers",
        &json!({"from_wallet_id": "w", "to_wallet_id": "w", "amount": 1}),
    )
    .await
    .problem(422, "same_wallet");
    api.post("/v1/wallets/w/holds", &json!({"amount": 101}))
        .await
        .problem(422, "insufficient_funds");
    api.post(
        "/v1/customers/alice/wallets",
        &json!({"id": "w", "unit": "EUR"}),
    )
    .await
    .problem(409, "wallet_exists");

    assert_eq!(snapshot(&api, "w").await, before);
    assert_eq!(snapshot(&api, "m").await, (0, 0, 0));
    // The customer still has exactly its two wallets.
    let wallets = api.list_all("/v1/customers/alice/wallets", 100).await;
    assert_eq!(wallets.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_the_validity_window_is_refused() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("alice").await;
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let w = api
        .post(
            "/v1/customers/alice/wallets",
            &json!({"id": "later", "unit": "EUR", "valid_from": tomorrow}),
        )
        .await
        .ok(201);
    assert_time(&w, "valid_from");
    api.mutate("later", "top_up", 10)
        .await
        .problem(422, "outside_validity");
    api.post("/v1/wallets/later/holds", &json!({"amount": 1}))
        .await
        .problem(422, "outside_validity");
    assert_eq!(snapshot(&api, "later").await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_past_its_expiry_cannot_be_committed() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 1_000).await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let h = api
        .post(
            "/v1/wallets/w/holds",
            &json!({"amount": 400, "expires_at": soon}),
        )
        .await
        .ok(201);
    assert_time(&h, "expires_at");
    let id = str_of(&h, "id").to_owned();
    // Wait until the expiry time has certainly passed (the clock only moves forward);
    // nothing here depends on how fast the server answers.
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;

    // Either the commit sees the expiry itself, or the sweeper already expired it.
    let r = api
        .post(&format!("/v1/holds/{id}/commit"), &json!({}))
        .await;
    r.problem_any(409, &["hold_expired", "hold_not_pending"]);
    assert_eq!(
        api.balance("w").await,
        1_000,
        "an expired hold takes nothing"
    );
    // Releasing ignores the expiry; a swept hold is no longer pending.
    let rel = api
        .post(&format!("/v1/holds/{id}/release"), &json!({}))
        .await;
    if rel.status != 200 {
        rel.problem(409, "hold_not_pending");
    }
    let hold = api.get(&format!("/v1/holds/{id}")).await.ok(200);
    assert!(
        matches!(hold["status"].as_str(), Some("released" | "expired")),
        "{hold}"
    );
    let w = api.wallet("w").await;
    assert_eq!((int(&w, "balance"), int(&w, "held")), (1_000, 0));
    assert_balance_is_sum(&api, "w").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_negative_floor_allows_that_much_overdraft_and_no_more() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("alice").await;
    let w = api
        .post(
            "/v1/customers/alice/wallets",
            &json!({"id": "w", "unit": "EUR", "scale": 2, "floor": -500}),
        )
        .await
        .ok(201);
    assert_eq!(w["floor"], -500);
    assert_eq!(w["available"], 500, "available = balance - held - floor");

    api.post("/v1/wallets/w/holds", &json!({"amount": 100}))
        .await
        .ok(201);
    assert_eq!(int(&api.wallet("w").await, "available"), 400);
    let p = api.mutate("w", "debit", 401).await;
    let p = p.problem(422, "insufficient_funds");
    assert_eq!(
        (p["available"].as_i64(), p["requested"].as_i64()),
        (Some(400), Some(401))
    );
    let d = api.debit("w", 400).await;
    assert_eq!(d["balance_after"], -400);
    let w = api.wallet("w").await;
    assert_eq!(
        (int(&w, "balance"), int(&w, "held"), int(&w, "available")),
        (-400, 100, 0)
    );
    api.mutate("w", "debit", 1)
        .await
        .problem(422, "insufficient_funds");
    assert_eq!(snapshot(&api, "w").await, (-400, 100, 1));
}
