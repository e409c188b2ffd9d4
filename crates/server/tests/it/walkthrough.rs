//! A walk through the native API as a client uses it: customers, wallets, mutations,
//! paging, holds, transfers and wallet status, checking every answer's shape and the
//! ledger's arithmetic on the way.

use crate::common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn customers_create_get_list_and_page() {
    let server = Server::start().await;
    let api = server.admin();

    let alice = api
        .post("/v1/customers", &json!({"id": "alice", "name": "Alice"}))
        .await
        .ok(201);
    assert_eq!(alice["id"], "alice");
    assert_eq!(alice["name"], "Alice");
    assert_time(&alice, "created_at");

    // An omitted id is generated (a UUID).
    let anon = api.post("/v1/customers", &json!({})).await.ok(201);
    let anon_id = str_of(&anon, "id").to_owned();
    assert!(
        uuid::Uuid::parse_str(&anon_id).is_ok(),
        "generated customer id must be a UUID, got {anon_id:?}"
    );

    api.post("/v1/customers", &json!({"id": "alice"}))
        .await
        .problem(409, "customer_exists");

    let got = api.get("/v1/customers/alice").await.ok(200);
    assert_eq!(got, alice, "GET must return what POST answered");
    api.get("/v1/customers/nobody")
        .await
        .problem_any(404, &["customer_not_found", "not_found"]);

    for i in 0..5 {
        api.create_customer(&format!("c{i}")).await;
    }
    // 7 customers in pages of 2: the cursor must visit each exactly once.
    let all = api.list_all("/v1/customers", 2).await;
    let mut got_ids = ids(&all);
    assert_eq!(got_ids.len(), 7, "customers listed: {got_ids:?}");
    got_ids.sort();
    got_ids.dedup();
    assert_eq!(got_ids.len(), 7, "a customer was listed twice");
    for id in ["alice", "c0", "c1", "c2", "c3", "c4", anon_id.as_str()] {
        assert!(
            got_ids.iter().any(|g| g == id),
            "{id} missing from the list"
        );
    }
    let first = api.page("/v1/customers", 2, None).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    assert!(
        first["next"].is_string(),
        "a first page of 7 by 2 has a next cursor"
    );
    let whole = api.page("/v1/customers", 1000, None).await;
    assert_eq!(whole["items"].as_array().map(Vec::len), Some(7));
    assert!(whole["next"].is_null(), "the last page has next = null");
}

#[tokio::test(flavor = "multi_thread")]
async fn wallets_mutations_and_paging() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("alice").await;

    let w = api
        .post(
            "/v1/customers/alice/wallets",
            &json!({"id": "alice-eur", "unit": "EUR", "scale": 2, "name": "Main", "product": "prepaid"}),
        )
        .await
        .ok(201);
    assert_eq!(w["id"], "alice-eur");
    assert_eq!(w["customer_id"], "alice");
    assert_eq!(w["unit"], "EUR");
    assert_eq!(w["scale"], 2);
    assert_eq!(w["name"], "Main");
    assert_eq!(w["product"], "prepaid");
    assert_eq!(w["status"], "active");
    assert_eq!(w["floor"], 0, "the default floor is zero");
    assert_eq!(w["balance"], 0);
    assert_eq!(w["held"], 0);
    assert_eq!(w["available"], 0);
    assert!(w["valid_from"].is_null() && w["valid_until"].is_null());
    assert_time(&w, "created_at");

    api.post(
        "/v1/customers/alice/wallets",
        &json!({"id": "alice-eur", "unit": "EUR"}),
    )
    .await
    .problem(409, "wallet_exists");
    api.post("/v1/customers/nobody/wallets", &json!({"unit": "EUR"}))
        .await
        .problem_any(404, &["customer_not_found", "not_found"]);
    api.get("/v1/wallets/nowhere")
        .await
        .problem_any(404, &["wallet_not_found", "not_found"]);
    api.get("/v1/wallets/nowhere/mutations")
        .await
        .problem_any(404, &["wallet_not_found", "not_found"]);
    api.get("/v1/customers/nobody/wallets")
        .await
        .problem_any(404, &["customer_not_found", "not_found"]);
    api.mutate("nowhere", "top_up", 1)
        .await
        .problem_any(404, &["wallet_not_found", "not_found"]);

    // An unlimited wallet has no floor and no available amount.
    let post_paid = api
        .post(
            "/v1/customers/alice/wallets",
            &json!({"id": "alice-post", "unit": "EUR", "scale": 2, "unlimited_overdraft": true}),
        )
        .await
        .ok(201);
    assert!(
        post_paid["floor"].is_null(),
        "unlimited floor is null: {post_paid}"
    );
    assert!(
        post_paid["available"].is_null(),
        "unlimited available is null: {post_paid}"
    );
    let d = api.debit("alice-post", 700).await;
    assert_eq!(
        d["balance_after"], -700,
        "an unlimited wallet may go negative"
    );

    let top = api.top_up("alice-eur", 10_000).await;
    assert_eq!(top["kind"], "top_up");
    assert_eq!(top["amount"], 10_000);
    assert_eq!(top["balance_after"], 10_000);
    assert_eq!(top["wallet_id"], "alice-eur");
    assert_eq!(top["customer_id"], "alice");
    assert_eq!(top["unit"], "EUR");
    assert_eq!(top["scale"], 2);
    assert!(top["hold_id"].is_null() && top["transfer_id"].is_null());
    assert!(
        top["reference"].is_object(),
        "reference is an object: {top}"
    );
    assert_time(&top, "occurred_at");
    assert_time(&top, "recorded_at");
    assert_eq!(
        top["occurred_at"], top["recorded_at"],
        "occurred_at defaults to recorded_at"
    );

    // A reference travels as given.
    let reference =
        json!({"type": "payment", "text": "order 42", "link": "https://shop.example/orders/42"});
    let debit = api
        .post(
            "/v1/wallets/alice-eur/mutations",
            &json!({"kind": "debit", "amount": 2_500, "reference": reference}),
        )
        .await
        .ok(201);
    assert_eq!(debit["reference"], reference);
    assert_eq!(debit["kind"], "debit");
    assert_eq!(debit["amount"], -2_500, "a debit's amount is negative");
    assert_eq!(debit["balance_after"], 7_500);

    let adj_down = api.mutate("alice-eur", "adjustment", -500).await.ok(201);
    assert_eq!(adj_down["amount"], -500);
    assert_eq!(adj_down["balance_after"], 7_000);
    let adj_up = api.mutate("alice-eur", "adjustment", 200).await.ok(201);
    assert_eq!(adj_up["balance_after"], 7_200);

    let mut made = vec![top.clone(), debit.clone(), adj_down, adj_up];
    for i in 1..=21 {
        made.push(api.top_up("alice-eur", i).await);
    }
    let wallet = api.wallet("alice-eur").await;
    let expected_balance: i64 = made.iter().map(|m| int(m, "amount")).sum();
    assert_eq!(int(&wallet, "balance"), expected_balance);
    assert_eq!(int(&wallet, "available"), expected_balance);

    // 25 mutations in pages of 4: oldest first, each exactly once.
    let listed = api.list_all("/v1/wallets/alice-eur/mutations", 4).await;
    assert_eq!(
        ids(&listed),
        ids(&made),
        "mutations must be listed oldest first, each once"
    );
    assert_balance_is_sum(&api, "alice-eur").await;

    // GET of one mutation answers what the list and the POST answered.
    let one = api
        .get(&format!("/v1/mutations/{}", str_of(&debit, "id")))
        .await
        .ok(200);
    assert_eq!(one, debit);
    assert_eq!(&one, &listed[1]);
    api.get(&format!("/v1/mutations/{}", uuid::Uuid::now_v7()))
        .await
        .problem_any(404, &["mutation_not_found", "not_found"]);

    // Wallet lists: per customer, and all with a filter.
    api.create_customer("bob").await;
    api.create_wallet("bob", "bob-eur", "EUR", 2).await;
    let alices = api.list_all("/v1/customers/alice/wallets", 1).await;
    let mut alice_ids = ids(&alices);
    alice_ids.sort();
    assert_eq!(alice_ids, vec!["alice-eur", "alice-post"]);
    let filtered = api.list_all("/v1/wallets?customer_id=bob", 10).await;
    assert_eq!(ids(&filtered), vec!["bob-eur"]);
    let every = api.list_all("/v1/wallets", 1).await;
    let mut every_ids = ids(&every);
    every_ids.sort();
    assert_eq!(every_ids, vec!["alice-eur", "alice-post", "bob-eur"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn holds_place_commit_release() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 10_000).await;

    let hold = api
        .post("/v1/wallets/w/holds", &json!({"amount": 1_000}))
        .await
        .ok(201);
    let hold_id = str_of(&hold, "id").to_owned();
    assert_eq!(hold["wallet_id"], "w");
    assert_eq!(hold["customer_id"], "alice");
    assert_eq!(hold["amount"], 1_000);
    assert_eq!(hold["status"], "pending");
    assert!(hold["committed_amount"].is_null());
    assert!(hold["settled_at"].is_null());
    assert_time(&hold, "created_at");
    let w = api.wallet("w").await;
    assert_eq!(
        (int(&w, "balance"), int(&w, "held"), int(&w, "available")),
        (10_000, 1_000, 9_000)
    );
    assert_eq!(api.get(&format!("/v1/holds/{hold_id}")).await.ok(200), hold);

    // Committing part of it takes that part and releases the rest.
    let done = api
        .post(
            &format!("/v1/holds/{hold_id}/commit"),
            &json!({"amount": 600}),
        )
        .await
        .ok(200);
    assert_eq!(done["hold"]["id"], hold_id.as_str());
    assert_eq!(done["hold"]["status"], "committed");
    assert_eq!(done["hold"]["committed_amount"], 600);
    assert_time(&done["hold"], "settled_at");
    assert_eq!(done["mutation"]["kind"], "hold_commit");
    assert_eq!(done["mutation"]["amount"], -600);
    assert_eq!(done["mutation"]["balance_after"], 9_400);
    assert_eq!(done["mutation"]["hold_id"], hold_id.as_str());
    let w = api.wallet("w").await;
    assert_eq!(
        (int(&w, "balance"), int(&w, "held"), int(&w, "available")),
        (9_400, 0, 9_400)
    );

    // Committing it again: it is no longer pending.
    api.post(&format!("/v1/holds/{hold_id}/commit"), &json!({}))
        .await
        .problem(409, "hold_not_pending");

    // A commit over the hold is refused and changes nothing.
    let h2 = api
        .post("/v1/wallets/w/holds", &json!({"amount": 300}))
        .await
        .ok(201);
    let h2_id = str_of(&h2, "id").to_owned();
    let refused = api
        .post(
            &format!("/v1/holds/{h2_id}/commit"),
            &json!({"amount": 400}),
        )
        .await;
    refused.problem(422, "commit_exceeds_hold");
    let after = api.get(&format!("/v1/holds/{h2_id}")).await.ok(200);
    assert_eq!(after["status"], "pending");
    assert_eq!(int(&api.wallet("w").await, "held"), 300);

    // Committing without an amount takes all of it.
    let all = api
        .post(&format!("/v1/holds/{h2_id}/commit"), &json!({}))
        .await
        .ok(200);
    assert_eq!(all["hold"]["committed_amount"], 300);
    assert_eq!(all["mutation"]["amount"], -300);
    assert_eq!(api.balance("w").await, 9_100);

    // Release: with `{}` and with an empty body; the balance does not move.
    let h3 = api
        .post("/v1/wallets/w/holds", &json!({"amount": 500}))
        .await
        .ok(201);
    let h3_id = str_of(&h3, "id").to_owned();
    assert_eq!(int(&api.wallet("w").await, "available"), 8_600);
    let rel = api
        .post(&format!("/v1/holds/{h3_id}/release"), &json!({}))
        .await
        .ok(200);
    assert_eq!(rel["hold"]["status"], "released");
    assert!(
        rel.get("mutation").is_some(),
        "release answers {{hold, mutation}}: {rel}"
    );
    let w = api.wallet("w").await;
    assert_eq!(
        (int(&w, "balance"), int(&w, "held"), int(&w, "available")),
        (9_100, 0, 9_100)
    );

    let h4 = api
        .post("/v1/wallets/w/holds", &json!({"amount": 50}))
        .await
        .ok(201);
    let h4_id = str_of(&h4, "id").to_owned();
    let rel4 = api
        .send(
            reqwest::Method::POST,
            &format!("/v1/holds/{h4_id}/release"),
            &[],
            None,
        )
        .await
        .ok(200);
    assert_eq!(rel4["hold"]["status"], "released");

    // A released hold can be neither committed nor released again.
    api.post(&format!("/v1/holds/{h3_id}/commit"), &json!({}))
        .await
        .problem(409, "hold_not_pending");
    api.post(&format!("/v1/holds/{h3_id}/release"), &json!({}))
        .await
        .problem(409, "hold_not_pending");
    api.get(&format!("/v1/holds/{}", uuid::Uuid::now_v7()))
        .await
        .problem_any(404, &["hold_not_found", "not_found"]);
    api.post(
        &format!("/v1/holds/{}/commit", uuid::Uuid::now_v7()),
        &json!({}),
    )
    .await
    .problem_any(404, &["hold_not_found", "not_found"]);

    let w = api.wallet("w").await;
    assert_eq!((int(&w, "balance"), int(&w, "held")), (9_100, 0));
    assert_balance_is_sum(&api, "w").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_move_value_between_wallets_of_one_unit() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "a-eur", 5_000).await;
    api.funded_wallet("bob", "b-eur", 100).await;
    api.create_wallet("bob", "b-min", "MIN", 0).await;

    let t = api
        .post(
            "/v1/transfers",
            &json!({"from_wallet_id": "a-eur", "to_wallet_id": "b-eur", "amount": 1_200}),
        )
        .await
        .ok(201);
    assert_eq!(t["from_wallet_id"], "a-eur");
    assert_eq!(t["to_wallet_id"], "b-eur");
    assert_eq!(t["amount"], 1_200);
    let tid = str_of(&t, "id");
    let (debit, credit) = (&t["debit"], &t["credit"]);
    assert_eq!(debit["kind"], "transfer_out");
    assert_eq!(debit["amount"], -1_200);
    assert_eq!(debit["balance_after"], 3_800);
    assert_eq!(debit["wallet_id"], "a-eur");
    assert_eq!(debit["counter_wallet_id"], "b-eur");
    assert_eq!(debit["transfer_id"], tid);
    assert_eq!(credit["kind"], "transfer_in");
    assert_eq!(credit["amount"], 1_200);
    assert_eq!(credit["balance_after"], 1_300);
    assert_eq!(credit["wallet_id"], "b-eur");
    assert_eq!(credit["counter_wallet_id"], "a-eur");
    assert_eq!(credit["transfer_id"], tid);
    assert_eq!(
        api.get(&format!("/v1/mutations/{}", str_of(credit, "id")))
            .await
            .ok(200),
        *credit
    );
    assert_eq!(api.balance("a-eur").await, 3_800);
    assert_eq!(api.balance("b-eur").await, 1_300);

    let mismatch = api
        .post(
            "/v1/transfers",
            &json!({"from_wallet_id": "a-eur", "to_wallet_id": "b-min", "amount": 1}),
        )
        .await;
    mismatch.problem(422, "unit_mismatch");
    // One code at another scale is another unit.
    api.create_wallet("bob", "b-eur3", "EUR", 3).await;
    api.post(
        "/v1/transfers",
        &json!({"from_wallet_id": "a-eur", "to_wallet_id": "b-eur3", "amount": 1}),
    )
    .await
    .problem(422, "unit_mismatch");
    api.post(
        "/v1/transfers",
        &json!({"from_wallet_id": "a-eur", "to_wallet_id": "a-eur", "amount": 1}),
    )
    .await
    .problem(422, "same_wallet");
    api.post(
        "/v1/transfers",
        &json!({"from_wallet_id": "a-eur", "to_wallet_id": "ghost", "amount": 1}),
    )
    .await
    .problem_any(404, &["wallet_not_found", "not_found"]);

    // Refused transfers moved nothing.
    assert_eq!(api.balance("a-eur").await, 3_800);
    assert_eq!(api.balance("b-min").await, 0);
    assert_eq!(api.balance("b-eur3").await, 0);
    assert_eq!(api.mutations("b-min").await.len(), 0);
    assert_balance_is_sum(&api, "a-eur").await;
    assert_balance_is_sum(&api, "b-eur").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wallet_status_gates_mutations() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "w", 1_000).await;

    let s = api
        .patch("/v1/wallets/w", &json!({"status": "suspended"}))
        .await
        .ok(200);
    assert_eq!(s["status"], "suspended");
    assert_eq!(api.wallet("w").await["status"], "suspended");

    let refused = api.mutate("w", "debit", 10).await;
    let p = refused.problem(422, "wallet_not_active");
    assert_eq!(
        p["wallet_status"], "suspended",
        "problem names the status: {p}"
    );
    api.mutate("w", "top_up", 10)
        .await
        .problem(422, "wallet_not_active");
    api.post("/v1/wallets/w/holds", &json!({"amount": 10}))
        .await
        .problem(422, "wallet_not_active");
    // Adjustments are corrections and apply in any status.
    let adj = api.mutate("w", "adjustment", -10).await.ok(201);
    assert_eq!(adj["balance_after"], 990);

    let back = api
        .patch("/v1/wallets/w", &json!({"status": "active"}))
        .await
        .ok(200);
    assert_eq!(back["status"], "active");
    let d = api.debit("w", 90).await;
    assert_eq!(
        int(&d, "balance_after"),
        int(&api.wallet("w").await, "balance")
    );
    let muts = assert_balance_is_sum(&api, "w").await;
    let kinds: Vec<&str> = muts.iter().map(|m| str_of(m, "kind")).collect();
    assert_eq!(
        kinds,
        vec!["top_up", "adjustment", "debit"],
        "refusals record nothing"
    );

    // An expired wallet refuses debits too, and says so.
    api.funded_wallet("bob", "w2", 500).await;
    let expired = api
        .patch("/v1/wallets/w2", &json!({"status": "expired"}))
        .await
        .ok(200);
    assert_eq!(expired["status"], "expired");
    let p = api.mutate("w2", "debit", 10).await;
    assert_eq!(
        p.problem(422, "wallet_not_active")["wallet_status"],
        "expired"
    );
    assert_balance_is_sum(&api, "w2").await;
}
