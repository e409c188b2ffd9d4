//! `Idempotency-Key`: a repeat of the same request replays the first answer and records
//! nothing new; the key with another request is a conflict; a refused request records
//! no key and may be retried.

use crate::common;

use common::*;
use serde_json::json;

fn replayed(r: &Resp) -> bool {
    r.header("idempotent-replayed") == Some("true")
}

#[tokio::test(flavor = "multi_thread")]
async fn repeat_with_same_key_and_body_replays_the_first_answer() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 1_000).await;
    let body = json!({"kind": "debit", "amount": 250});

    let first = api
        .post_idem("/v1/wallets/w/mutations", "order-1", &body)
        .await;
    assert!(
        !replayed(&first),
        "a first answer is not a replay: {:?}",
        first.headers
    );
    let first = first.ok(201);

    for _ in 0..3 {
        let again = api
            .post_idem("/v1/wallets/w/mutations", "order-1", &body)
            .await;
        assert!(
            replayed(&again),
            "a repeat must carry Idempotent-Replayed: true, headers {:?}",
            again.headers
        );
        assert_eq!(again.ok(201), first, "a replay answers the first body");
    }

    let muts = assert_balance_is_sum(&api, "w").await;
    assert_eq!(muts.len(), 2, "one top-up and one debit, not more");
    assert_eq!(api.balance("w").await, 750);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_key_with_another_request_is_a_conflict() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 1_000).await;
    api.funded_wallet("bob", "v", 1_000).await;

    api.post_idem(
        "/v1/wallets/w/mutations",
        "k",
        &json!({"kind": "debit", "amount": 10}),
    )
    .await
    .ok(201);
    // Another body.
    api.post_idem(
        "/v1/wallets/w/mutations",
        "k",
        &json!({"kind": "debit", "amount": 11}),
    )
    .await
    .problem(409, "idempotency_conflict");
    // Another path.
    api.post_idem(
        "/v1/wallets/v/mutations",
        "k",
        &json!({"kind": "debit", "amount": 10}),
    )
    .await
    .problem(409, "idempotency_conflict");
    // Another resource altogether.
    api.post_idem("/v1/customers", "k", &json!({"id": "carol"}))
        .await
        .problem(409, "idempotency_conflict");

    assert_eq!(api.balance("w").await, 990);
    assert_eq!(api.balance("v").await, 1_000);
    assert_eq!(assert_balance_is_sum(&api, "w").await.len(), 2);
    assert_eq!(assert_balance_is_sum(&api, "v").await.len(), 1);
    api.get("/v1/customers/carol")
        .await
        .problem_any(404, &["customer_not_found", "not_found"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_request_records_no_key_and_may_be_retried() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 100).await;
    let body = json!({"kind": "debit", "amount": 500});

    let refused = api
        .post_idem("/v1/wallets/w/mutations", "retry-me", &body)
        .await;
    refused.problem(422, "insufficient_funds");
    assert!(!replayed(&refused));
    // Refused again, not replayed: nothing was recorded under the key.
    let again = api
        .post_idem("/v1/wallets/w/mutations", "retry-me", &body)
        .await;
    again.problem(422, "insufficient_funds");
    assert!(!replayed(&again));

    api.top_up("w", 1_000).await;
    let ok = api
        .post_idem("/v1/wallets/w/mutations", "retry-me", &body)
        .await;
    assert!(!replayed(&ok), "the first success is not a replay");
    let ok = ok.ok(201);
    assert_eq!(ok["balance_after"], 600);
    let replay = api
        .post_idem("/v1/wallets/w/mutations", "retry-me", &body)
        .await;
    assert!(replayed(&replay));
    assert_eq!(replay.ok(201), ok);
    assert_eq!(assert_balance_is_sum(&api, "w").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_covers_creations_and_holds() {
    let server = Server::start().await;
    let api = server.admin();

    // A repeated creation replays the 201 rather than answering 409 *_exists.
    let c = api
        .post_idem("/v1/customers", "c-1", &json!({"id": "alice"}))
        .await
        .ok(201);
    let c2 = api
        .post_idem("/v1/customers", "c-1", &json!({"id": "alice"}))
        .await;
    assert!(replayed(&c2));
    assert_eq!(c2.ok(201), c);

    // Without an id the server generates one; a replay must not make a second customer.
    let g = api
        .post_idem("/v1/customers", "c-2", &json!({}))
        .await
        .ok(201);
    let g2 = api
        .post_idem("/v1/customers", "c-2", &json!({}))
        .await
        .ok(201);
    assert_eq!(g["id"], g2["id"], "a replay answers the first generated id");
    assert_eq!(api.list_all("/v1/customers", 100).await.len(), 2);

    api.create_wallet("alice", "w", "EUR", 2).await;
    api.top_up("w", 1_000).await;
    let h = api
        .post_idem("/v1/wallets/w/holds", "h-1", &json!({"amount": 400}))
        .await
        .ok(201);
    let h2 = api
        .post_idem("/v1/wallets/w/holds", "h-1", &json!({"amount": 400}))
        .await
        .ok(201);
    assert_eq!(h["id"], h2["id"]);
    assert_eq!(
        int(&api.wallet("w").await, "held"),
        400,
        "one hold, not two"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_length_limit() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 0).await;
    let body = json!({"kind": "top_up", "amount": 5});

    let at_limit = "k".repeat(IDEMPOTENCY_KEY_LEN_MAX);
    api.post_idem("/v1/wallets/w/mutations", &at_limit, &body)
        .await
        .ok(201);
    let over = "k".repeat(IDEMPOTENCY_KEY_LEN_MAX + 1);
    api.post_idem("/v1/wallets/w/mutations", &over, &body)
        .await
        .problem(400, "invalid_request");
    assert_eq!(api.balance("w").await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_and_commits_replay_instead_of_repeating() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "a", 1_000).await;
    api.funded_wallet("bob", "b", 0).await;

    let body = json!({"from_wallet_id": "a", "to_wallet_id": "b", "amount": 300});
    let t = api.post_idem("/v1/transfers", "t-1", &body).await.ok(201);
    let again = api.post_idem("/v1/transfers", "t-1", &body).await;
    assert!(replayed(&again));
    assert_eq!(again.ok(201), t);
    assert_eq!((api.balance("a").await, api.balance("b").await), (700, 300));

    let h = api
        .post("/v1/wallets/a/holds", &json!({"amount": 200}))
        .await
        .ok(201);
    let commit = format!("/v1/holds/{}/commit", str_of(&h, "id"));
    let first = api
        .post_idem(&commit, "c-1", &json!({"amount": 150}))
        .await
        .ok(200);
    // Without the key this would be 409 hold_not_pending; with it, the first answer.
    let again = api.post_idem(&commit, "c-1", &json!({"amount": 150})).await;
    assert!(replayed(&again));
    assert_eq!(again.ok(200), first);
    assert_eq!(api.balance("a").await, 550);
    assert_balance_is_sum(&api, "a").await;
    assert_balance_is_sum(&api, "b").await;
}
