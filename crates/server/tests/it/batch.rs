//! `POST /v1/batch`: each item has its own outcome, a refused item changes nothing and
//! does not affect its batch-mates, items see the items before them, and item
//! idempotency keys replay.

use crate::common;

use common::*;
use prepaid_ledger::BALANCE_ABS_MAX;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const WALLETS: usize = 4;
const FUNDS: i64 = 100_000;

/// What one batch item should come out as.
enum Want {
    Created,
    Refused(u16, &'static str),
}

#[tokio::test(flavor = "multi_thread")]
async fn full_batch_with_refusals_in_the_middle() {
    let server = Server::start().await;
    let api = server.admin();
    for i in 0..WALLETS {
        api.funded_wallet(&format!("c{i}"), &format!("w{i}"), FUNDS)
            .await;
    }
    api.funded_wallet("cs", "ws", 10).await;
    api.patch("/v1/wallets/ws", &json!({"status": "suspended"}))
        .await
        .ok(200);

    let mid = BATCH_ITEMS_MAX / 2;
    let mut items = Vec::with_capacity(BATCH_ITEMS_MAX);
    let mut wants = Vec::with_capacity(BATCH_ITEMS_MAX);
    for i in 0..BATCH_ITEMS_MAX {
        let wallet = format!("w{}", i % WALLETS);
        let (item, want) = if i == mid {
            (
                json!({"wallet_id": "w0", "kind": "debit", "amount": 1_000_000_000_000i64}),
                Want::Refused(422, "insufficient_funds"),
            )
        } else if i == mid + 1 {
            (
                json!({"wallet_id": "ghost", "kind": "debit", "amount": 1}),
                Want::Refused(404, "wallet_not_found"),
            )
        } else if i == mid + 2 {
            (
                json!({"wallet_id": "ws", "kind": "top_up", "amount": 5}),
                Want::Refused(422, "wallet_not_active"),
            )
        } else if i == mid + 3 {
            (
                json!({"wallet_id": "w3", "kind": "adjustment", "amount": -7, "occurred_at": "2026-01-01T00:00:00Z"}),
                Want::Created,
            )
        } else if i % 100 == 99 {
            (
                json!({"wallet_id": wallet, "kind": "top_up", "amount": 50}),
                Want::Created,
            )
        } else {
            (
                json!({"wallet_id": wallet, "kind": "debit", "amount": 1}),
                Want::Created,
            )
        };
        items.push(item);
        wants.push(want);
    }

    let answer = api
        .post("/v1/batch", &json!({"mutations": items}))
        .await
        .ok(200);
    let results = answer["results"].as_array().expect("results array");
    assert_eq!(results.len(), BATCH_ITEMS_MAX, "one result per item");

    // Items apply in order: each success's balance_after is the running balance.
    let mut running: BTreeMap<String, i64> =
        (0..WALLETS).map(|i| (format!("w{i}"), FUNDS)).collect();
    let mut created_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, ((item, want), result)) in items.iter().zip(&wants).zip(results).enumerate() {
        match want {
            Want::Created => {
                assert_eq!(result["status"], 201, "item {i}: {result}");
                let m = &result["mutation"];
                let wallet = str_of(item, "wallet_id");
                assert_eq!(m["wallet_id"], wallet, "item {i}");
                assert_eq!(m["kind"], item["kind"], "item {i}");
                let amount = int(item, "amount");
                let signed = if item["kind"] == "debit" {
                    -amount
                } else {
                    amount
                };
                assert_eq!(int(m, "amount"), signed, "item {i}");
                let balance = running.get_mut(wallet).expect("known wallet");
                *balance += signed;
                assert_eq!(int(m, "balance_after"), *balance, "item {i}: {m}");
                created_ids
                    .entry(wallet.to_owned())
                    .or_default()
                    .insert(str_of(m, "id").to_owned());
            }
            Want::Refused(status, code) => {
                assert_eq!(result["status"], *status, "item {i}: {result}");
                assert!(result["mutation"].is_null(), "item {i}: {result}");
                if let Err(why) = check_problem_body(
                    &result["error"],
                    *status,
                    "application/problem+json",
                    &[code],
                ) {
                    panic!("item {i}: {why}: {result}");
                }
            }
        }
    }
    let p = &results[mid]["error"];
    assert_eq!(p["requested"], 1_000_000_000_000i64, "{p}");
    assert!(p["available"].is_i64(), "{p}");
    assert_eq!(results[mid + 2]["error"]["wallet_status"], "suspended");

    // The store agrees with the answers, and the refused items changed nothing.
    for i in 0..WALLETS {
        let w = format!("w{i}");
        assert_eq!(api.balance(&w).await, running[&w], "{w}");
        let listed = assert_balance_is_sum(&api, &w).await;
        let listed_ids: BTreeSet<String> = ids(&listed).into_iter().skip(1).collect();
        assert_eq!(
            listed_ids, created_ids[&w],
            "{w}: the listed mutations are the batch's"
        );
    }
    assert_eq!(api.balance("ws").await, 10);
    assert_eq!(api.mutations("ws").await.len(), 1);
    api.get("/v1/wallets/ghost")
        .await
        .problem_any(404, &["wallet_not_found", "not_found"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn items_see_earlier_items_and_replay_by_key() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("c", "e", 0).await;
    let batch = json!({"mutations": [
        {"wallet_id": "e", "kind": "top_up", "amount": 100, "idempotency_key": "a"},
        {"wallet_id": "e", "kind": "debit", "amount": 100, "idempotency_key": "b"},
        {"wallet_id": "e", "kind": "debit", "amount": 1, "idempotency_key": "c"},
    ]});
    let first = api.post("/v1/batch", &batch).await.ok(200);
    let statuses: Vec<&Value> = (0..3).map(|i| &first["results"][i]["status"]).collect();
    assert_eq!(
        statuses,
        vec![&json!(201), &json!(201), &json!(422)],
        "{first}"
    );
    assert_eq!(first["results"][2]["error"]["code"], "insufficient_funds");

    let again = api.post("/v1/batch", &batch).await.ok(200);
    for i in 0..2 {
        assert_eq!(
            again["results"][i]["mutation"]["id"], first["results"][i]["mutation"]["id"],
            "item {i} replays its first answer: {again}"
        );
    }
    assert_eq!(again["results"][2]["status"], 422, "{again}");
    assert_eq!(
        assert_balance_is_sum(&api, "e").await.len(),
        2,
        "the replay recorded nothing"
    );

    // The refused item's key was not recorded: after a top-up it succeeds.
    api.top_up("e", 5).await;
    let third = api.post("/v1/batch", &batch).await.ok(200);
    assert_eq!(third["results"][2]["status"], 201, "{third}");
    assert_eq!(api.balance("e").await, 4);

    // A key reused with another item is a conflict for that item only.
    let conflict = api
        .post(
            "/v1/batch",
            &json!({"mutations": [
                {"wallet_id": "e", "kind": "top_up", "amount": 999, "idempotency_key": "a"},
                {"wallet_id": "e", "kind": "top_up", "amount": 1, "idempotency_key": "d"},
            ]}),
        )
        .await
        .ok(200);
    assert_eq!(conflict["results"][0]["status"], 409, "{conflict}");
    assert_eq!(
        conflict["results"][0]["error"]["code"],
        "idempotency_conflict"
    );
    assert_eq!(conflict["results"][1]["status"], 201, "{conflict}");
    assert_eq!(api.balance("e").await, 5);
    assert_balance_is_sum(&api, "e").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn balance_bound_is_refused_not_wrapped() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("c").await;
    // A unit of its own, so that its system accounts start at zero too.
    api.create_wallet("c", "big", "BIG", 0).await;
    let fits = usize::try_from(BALANCE_ABS_MAX / AMOUNT_MAX).expect("small");
    let items: Vec<Value> = (0..=fits)
        .map(|_| json!({"wallet_id": "big", "kind": "top_up", "amount": AMOUNT_MAX}))
        .collect();
    let answer = api
        .post("/v1/batch", &json!({"mutations": items}))
        .await
        .ok(200);
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), fits + 1);
    for (i, r) in results[..fits].iter().enumerate() {
        assert_eq!(r["status"], 201, "item {i}: {r}");
    }
    assert_eq!(results[fits]["status"], 422, "{}", results[fits]);
    assert_eq!(results[fits]["error"]["code"], "balance_overflow");
    assert_eq!(api.balance("big").await, BALANCE_ABS_MAX);
    api.mutate("big", "top_up", 1)
        .await
        .problem(422, "balance_overflow");
    assert_eq!(api.balance("big").await, BALANCE_ABS_MAX);
}
