//! Automatic top-ups (`/v1/wallets/{id}/auto-topup`): a rule is set, read and removed
//! within its bounds; debits racing a wallet below its threshold start exactly one
//! top-up per crossing, which the worker settles (on PostgreSQL with three instances
//! on one database, each running the worker); and a declined top-up is tried once,
//! then not again within the back-off. (That a top-up starts again once the back-off
//! has passed is the store's conformance case, which moves its clock by hand.)

use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const OPERATOR_SECRET: &str = "test-admin-auto-topup-01";
/// How long the worker may take to settle a top-up before the test gives up.
const SETTLE_WAIT_MS: u64 = 30_000;

async fn put_rule(api: &Api, wallet: &str, rule: &Value) -> Resp {
    api.json(
        Method::PUT,
        &format!("/v1/wallets/{wallet}/auto-topup"),
        rule,
    )
    .await
}

/// One server, or on PostgreSQL three instances on one schema.
async fn servers() -> Vec<Server> {
    if !postgres_backend() {
        return vec![Server::start().await];
    }
    let schema = fresh_schema().await.expect("PostgreSQL");
    let (a, b, c) = tokio::join!(
        Server::start_on_schema(&schema, OPERATOR_SECRET),
        Server::start_on_schema(&schema, OPERATOR_SECRET),
        Server::start_on_schema(&schema, OPERATOR_SECRET),
    );
    vec![a, b, c]
}

/// Sends `count` debits of `amount` at once, spread over `apis`; each must be taken.
async fn race_debits(apis: &[Api], wallet: &str, count: usize, amount: i64) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let api = apis[i % apis.len()].clone();
        let wallet = wallet.to_owned();
        tasks.spawn(async move { api.mutate(&wallet, "debit", amount).await });
    }
    while let Some(r) = tasks.join_next().await {
        let r = r.expect("a debit task");
        assert_eq!(r.status, 201, "{}", r.text);
    }
}

/// Waits until the wallet's rule has started `started` top-ups and none is in flight.
async fn settled(api: &Api, wallet: &str, started: u64) -> Value {
    let path = format!("/v1/wallets/{wallet}/auto-topup");
    for _ in 0..SETTLE_WAIT_MS / 50 {
        let rule = api.get(&path).await.ok(200);
        if rule["started"] == started && rule["in_flight"] == false {
            return rule;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{wallet}: no settled top-up number {started}: {}",
        api.get(&path).await.text
    );
}

fn auto_topups(mutations: &[Value]) -> Vec<i64> {
    mutations
        .iter()
        .filter(|m| m["reference"]["type"] == "auto_topup")
        .map(|m| int(m, "amount"))
        .collect()
}

/// A low-balance alert is set, read and removed within its bounds, by its wallet's
/// customer and nobody else's.
#[tokio::test]
async fn a_low_balance_alert_is_set_read_and_removed_within_its_bounds() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "alice-eur", 1000).await;
    api.funded_wallet("bob", "bob-eur", 1000).await;
    let path = "/v1/wallets/alice-eur/low-balance-alert";
    api.get(path)
        .await
        .problem(404, "low_balance_alert_not_found");
    let most: Vec<i64> = vec![0, 1, 2, 3, 4, 5, 6, 1_000_000_000_000_000];
    let set = api
        .json(Method::PUT, path, &json!({ "thresholds": most }))
        .await
        .ok(200);
    let highest_first = json!([1_000_000_000_000_000_i64, 6, 5, 4, 3, 2, 1, 0]);
    assert_eq!(
        set,
        json!({"wallet_id": "alice-eur", "thresholds": highest_first})
    );
    assert_eq!(api.get(path).await.ok(200), set);
    for bad in [
        json!({"thresholds": []}),
        json!({"thresholds": [0, 1, 2, 3, 4, 5, 6, 7, 8]}),
        json!({"thresholds": [-1]}),
        json!({"thresholds": [1_000_000_000_000_001_i64]}),
        json!({"thresholds": [5, 5]}),
    ] {
        let r = api.json(Method::PUT, path, &bad).await;
        let detail = str_of(r.problem(400, "invalid_request"), "detail");
        assert!(detail.starts_with("thresholds: "), "{bad}: {detail}");
    }
    api.json(Method::PUT, path, &json!({"thresholds": [1], "x": 1}))
        .await
        .problem(400, "unknown_field");
    assert_eq!(api.get(path).await.ok(200), set, "refusals changed nothing");
    // Another customer's key sees no such wallet.
    let (_, bob) = api
        .create_key("bob-key", &["read", "write"], Some("bob"))
        .await;
    bob.get(path).await.problem(404, "wallet_not_found");
    bob.json(Method::PUT, path, &json!({"thresholds": [1]}))
        .await
        .problem(404, "wallet_not_found");
    let r = api.send(Method::DELETE, path, &[], None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    api.get(path)
        .await
        .problem(404, "low_balance_alert_not_found");
    api.get("/v1/wallets/nope/low-balance-alert")
        .await
        .problem(404, "wallet_not_found");
}

#[tokio::test]
async fn a_rule_is_set_read_and_removed_within_its_bounds() {
    let server = Server::start().await;
    let api = server.admin();
    api.funded_wallet("alice", "alice-eur", 1000).await;
    api.funded_wallet("bob", "bob-eur", 1000).await;
    let path = "/v1/wallets/alice-eur/auto-topup";
    api.get(path).await.problem(404, "auto_topup_not_found");

    let rule = json!({"threshold": 100, "method": "fixed", "amount": 250,
        "funding": "payment", "payment_method": "pm_card_1", "per_hour_max": 60,
        "decline_backoff_ms": 604_800_000});
    let set = put_rule(&api, "alice-eur", &rule).await.ok(200);
    assert_eq!(
        set,
        json!({"wallet_id": "alice-eur", "threshold": 100, "method": "fixed", "amount": 250,
            "target_balance": null, "funding": "payment", "payment_method": "pm_card_1",
            "decline_backoff_ms": 604_800_000, "per_hour_max": 60, "enabled": true,
            "started": 0, "in_flight": false, "last_declined_at": null})
    );
    assert_eq!(api.get(path).await.ok(200), set);

    // Each bound, just past it.
    let longest = "m".repeat(128);
    for (field, bad) in [
        ("threshold", json!({"threshold": -1})),
        ("threshold", json!({"threshold": 1_000_000_000_000_001_i64})),
        ("amount", json!({"amount": 0})),
        ("per_hour_max", json!({"per_hour_max": 61})),
        ("per_hour_max", json!({"per_hour_max": 0})),
        (
            "decline_backoff_ms",
            json!({"decline_backoff_ms": 604_800_001}),
        ),
        (
            "payment_method",
            json!({"payment_method": format!("{longest}m")}),
        ),
        ("payment_method", json!({"funding": "granted"})),
        (
            "target_balance",
            json!({"method": "target", "target_balance": 100}),
        ),
    ] {
        let mut body = rule.clone();
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = put_rule(&api, "alice-eur", &body).await;
        let detail = str_of(r.problem(400, "invalid_request"), "detail");
        assert!(
            detail.starts_with(&format!("{field}: ")),
            "{body}: {detail}"
        );
    }
    let mut at_limit = rule.clone();
    at_limit["payment_method"] = json!(longest);
    put_rule(&api, "alice-eur", &at_limit).await.ok(200);

    // Another customer's key, and another tenant, see no wallet.
    let (_, bob) = api
        .create_key("bob-key", &["read", "write"], Some("bob"))
        .await;
    let (_, other) = server.admin().create_tenant("other").await;
    for key in [&bob, &other] {
        key.get(path).await.problem(404, "wallet_not_found");
        put_rule(key, "alice-eur", &rule)
            .await
            .problem(404, "wallet_not_found");
    }
    put_rule(&bob, "bob-eur", &rule).await.ok(200);

    let r = api.send(Method::DELETE, path, &[], None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    api.get(path).await.problem(404, "auto_topup_not_found");
}

/// Threshold 100, target 500: sixty debits race the wallet from 1000 down to 100 (one
/// crossing, a top-up of 400), then sixty more of 7 take it to 80 (one crossing at 94,
/// where the second top-up's 406 is computed). The model's final balance is 486.
#[tokio::test(flavor = "multi_thread")]
async fn racing_debits_start_one_top_up_per_crossing() {
    let servers = servers().await;
    let apis: Vec<Api> = servers.iter().map(Server::admin).collect();
    let api = &apis[0];
    api.funded_wallet("alice", "alice-eur", 1000).await;
    put_rule(
        api,
        "alice-eur",
        &json!({"threshold": 100, "method": "target", "target_balance": 500,
            "funding": "granted", "per_hour_max": 10}),
    )
    .await
    .ok(200);

    race_debits(&apis, "alice-eur", 60, 15).await;
    settled(api, "alice-eur", 1).await;
    assert_eq!(api.balance("alice-eur").await, 500);
    race_debits(&apis, "alice-eur", 60, 7).await;
    let rule = settled(api, "alice-eur", 2).await;
    assert_eq!(rule["last_declined_at"], Value::Null);
    assert_eq!(api.balance("alice-eur").await, 486);
    let mutations = assert_balance_is_sum(api, "alice-eur").await;
    assert_eq!(auto_topups(&mutations), [400, 406]);
    // The top-ups are free credit.
    let grants = api.list_all("/v1/wallets/alice-eur/grants", 100).await;
    assert!(
        grants.iter().any(|g| g["category"] == "granted"),
        "{grants:?}"
    );
}

/// A payment the provider declines is tried once; the debits that follow within the
/// back-off start none.
#[tokio::test(flavor = "multi_thread")]
async fn a_declined_top_up_is_tried_once_within_the_back_off() {
    let servers = servers().await;
    let apis: Vec<Api> = servers.iter().map(Server::admin).collect();
    let api = &apis[0];
    api.funded_wallet("alice", "alice-eur", 1000).await;
    put_rule(
        api,
        "alice-eur",
        &json!({"threshold": 100, "method": "fixed", "amount": 500,
            "funding": "payment", "payment_method": "decline-card",
            "decline_backoff_ms": 3_600_000, "per_hour_max": 60}),
    )
    .await
    .ok(200);
    race_debits(&apis, "alice-eur", 60, 15).await;
    let rule = settled(api, "alice-eur", 1).await;
    assert_time(&rule, "last_declined_at");
    // A start is written in the unit of the debit that makes it, so once the debits
    // are answered, any top-up they started shows.
    race_debits(&apis, "alice-eur", 10, 1).await;
    let rule = api.get("/v1/wallets/alice-eur/auto-topup").await.ok(200);
    assert_eq!(
        (rule["started"].clone(), rule["in_flight"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(api.balance("alice-eur").await, 90);
    let mutations = assert_balance_is_sum(api, "alice-eur").await;
    assert!(auto_topups(&mutations).is_empty());
}
