//! Grants over the native API, as a client sees them: credits with terms, debits that
//! say what they drew, expiry that takes a remainder once (across instances and a
//! restart), reversals, and a wallet as of any instant against a replay of what the
//! client observed.
//!
//! The servers of the timed cases run in the test's process over a manual clock.

use crate::common;
use crate::tmf_support;

use common::{Api, Server, int, str_of};
use prepaid_ledger::Timestamp;
use prepaid_store::{Clock as _, ManualClock};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tmf_support::{Backing, DEADLINE};

const DAY_MICROS: i64 = 86_400_000_000;

fn at(s: &str) -> Timestamp {
    let dt = chrono::DateTime::parse_from_rfc3339(s).expect("an RFC 3339 time");
    Timestamp::from_micros(dt.timestamp_micros())
}

fn rfc3339(t: Timestamp) -> String {
    prepaid_edge::time::format(t)
}

async fn credit(api: &Api, wallet: &str, amount: i64, terms: Value) -> Value {
    let mut body = json!({"kind": "top_up", "amount": amount});
    for (k, v) in terms.as_object().expect("terms object") {
        body[k] = v.clone();
    }
    api.post(&format!("/v1/wallets/{wallet}/mutations"), &body)
        .await
        .ok(201)
}

fn drawn(m: &Value) -> Vec<(String, i64)> {
    m["drawn"]
        .as_array()
        .unwrap_or_else(|| panic!("no drawn in {m}"))
        .iter()
        .map(|d| (str_of(d, "grant_id").to_owned(), int(d, "amount")))
        .collect()
}

fn id(m: &Value) -> String {
    str_of(m, "id").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn debits_draw_in_order_and_reversals_give_it_back() {
    let server = Server::start().await;
    let api = server.admin();
    api.create_customer("c1").await;
    api.create_wallet("c1", "w1", "EUR", 2).await;
    let paid = credit(
        &api,
        "w1",
        100,
        json!({"expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    let promo = credit(
        &api,
        "w1",
        20,
        json!({"expires_at": "2098-01-01T00:00:00Z", "category": "granted"}),
    )
    .await;
    let allowance = credit(&api, "w1", 5, json!({"priority": 0})).await;
    let debit = api.debit("w1", 30).await;
    assert_eq!(
        drawn(&debit),
        [(id(&allowance), 5), (id(&promo), 20), (id(&paid), 5)],
        "{debit}"
    );

    let grants = api.list_all("/v1/wallets/w1/grants", 2).await;
    let shown: Vec<(String, i64, &str)> = grants
        .iter()
        .map(|g| (id(g), int(g, "remaining"), str_of(g, "status")))
        .collect();
    assert_eq!(
        shown,
        [
            (id(&paid), 95, "live"),
            (id(&promo), 0, "spent"),
            (id(&allowance), 0, "spent")
        ]
    );
    assert_eq!(grants[1]["category"], "granted");
    assert_eq!(grants[1]["expires_at"], "2098-01-01T00:00:00.000000Z");
    assert_eq!(grants[2]["priority"], 0);

    let path = format!("/v1/mutations/{}/reverse", id(&debit));
    let reversal = api.post(&path, &json!({})).await.ok(201);
    assert_eq!(
        (str_of(&reversal, "kind"), int(&reversal, "amount")),
        ("reversal", 30)
    );
    assert_eq!(reversal["reverses"], debit["id"], "{reversal}");
    assert_eq!(
        drawn(&reversal),
        [(id(&allowance), -5), (id(&promo), -20), (id(&paid), -5)]
    );
    // Again, with no body at all, as `curl -X POST` sends it.
    let again = api
        .send(reqwest::Method::POST, &path, &[], None)
        .await
        .ok(201);
    assert_eq!(id(&again), id(&reversal), "a debit is reversed once");
    assert_eq!(api.balance("w1").await, 125);

    // A credit whose grant was partly spent is reversed only with allow_negative, which
    // only an admin key may send.
    api.debit("w1", 110).await;
    let path = format!("/v1/mutations/{}/reverse", id(&paid));
    let r = api.post(&path, &json!({})).await;
    let p = r.problem(422, "reversal_exceeds_remaining");
    assert_eq!(p["reversible"], 15, "{p}");
    let (_, writer) = api.create_key("writer", &["read", "write"], None).await;
    writer
        .post(&path, &json!({"allow_negative": true}))
        .await
        .problem(403, "forbidden");
    let taken = api
        .post(&path, &json!({"allow_negative": true}))
        .await
        .ok(201);
    assert_eq!(int(&taken, "balance_after"), -85);
    common::assert_balance_is_sum(&api, "w1").await;

    // Terms are for credits, and bounded.
    for (body, field) in [
        (
            json!({"kind": "debit", "amount": 1, "priority": 1}),
            "expires_at",
        ),
        (
            json!({"kind": "top_up", "amount": 1, "priority": 101}),
            "priority",
        ),
        (
            json!({"kind": "top_up", "amount": 1, "category": "Promo"}),
            "category",
        ),
        (
            json!({"kind": "top_up", "amount": 1, "category": "x".repeat(41)}),
            "category",
        ),
    ] {
        let r = api.post("/v1/wallets/w1/mutations", &body).await;
        let p = r.problem(400, "invalid_request");
        assert!(str_of(p, "detail").contains(field), "{body}: {p}");
    }
    credit(
        &api,
        "w1",
        1,
        json!({"category": "x".repeat(40), "priority": 100}),
    )
    .await;
}

/// Polls until the wallet has `n` mutations of `kind` (failing on more).
async fn wait_for_kind(api: &Api, wallet: &str, kind: &str, n: usize) -> Vec<Value> {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got: Vec<Value> = api
            .mutations(wallet)
            .await
            .into_iter()
            .filter(|m| m["kind"] == kind)
            .collect();
        assert!(
            got.len() <= n,
            "{wallet}: {} {kind}, expected {n}",
            got.len()
        );
        if got.len() == n {
            return got;
        }
        assert!(tokio::time::Instant::now() < until, "no {kind} on {wallet}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_remainder_expires_once_across_instances_and_a_restart() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-06-01T08:00:00Z")));
    let a = backing.start(clock.clone()).await;
    // On PostgreSQL a second instance sweeps the same store at the same time.
    let b = match backing.schema {
        Some(_) => Some(backing.start(clock.clone()).await),
        None => None,
    };
    let api = a.api(&backing.secret);
    api.create_customer("c1").await;
    api.create_wallet("c1", "w1", "EUR", 2).await;
    let week = "2026-06-08T08:00:00.000000Z";
    credit(
        &api,
        "w1",
        100,
        json!({"expires_at": "2027-06-01T08:00:00Z"}),
    )
    .await;
    let promo = credit(
        &api,
        "w1",
        20,
        json!({"expires_at": week, "category": "granted"}),
    )
    .await;
    credit(&api, "w1", 5, json!({"priority": 0})).await;
    let debit = api.debit("w1", 10).await;
    assert_eq!(drawn(&debit)[1], (id(&promo), 5));

    clock.advance_micros(8 * DAY_MICROS);
    let expired = wait_for_kind(&api, "w1", "expiry", 1).await;
    assert_eq!(int(&expired[0], "amount"), -15);
    assert_eq!(str_of(&expired[0], "occurred_at"), week);
    assert_eq!(drawn(&expired[0]), [(id(&promo), 15)]);

    a.stop().await;
    if let Some(b) = b {
        b.stop().await;
    }
    clock.advance_micros(DAY_MICROS);
    let a = backing.start(clock.clone()).await;
    let api = a.api(&backing.secret);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    wait_for_kind(&api, "w1", "expiry", 1).await;
    assert_eq!(api.balance("w1").await, 100);
    let breaches = a.state().store.check_invariants().await.unwrap();
    assert!(breaches.is_empty(), "{breaches:?}");
    a.stop().await;
}

/// What the client saw of the wallet at one instant.
struct Seen {
    at: Timestamp,
    balance: i64,
    held: i64,
    grants: Vec<(String, i64)>,
}

async fn seen(api: &Api, at: Timestamp) -> Seen {
    let w = api.wallet("w1").await;
    let grants = api
        .list_all("/v1/wallets/w1/grants", 1000)
        .await
        .into_iter()
        .filter(|g| g["status"] == "live")
        .map(|g| (id(&g), int(&g, "remaining")))
        .collect();
    Seen {
        at,
        balance: int(&w, "balance"),
        held: int(&w, "held"),
        grants,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_matches_what_was_seen_at_every_instant() {
    let backing = Backing::new().await;
    let start = at("2026-03-01T00:00:00Z");
    let clock = Arc::new(ManualClock::new(start));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    api.create_customer("c1").await;
    api.create_wallet("c1", "w1", "EUR", 2).await;
    let hour = 3_600_000_000;
    let mut history = vec![seen(&api, start).await];
    clock.advance_micros(hour);
    let mut holds = Vec::new();
    let mut debits = Vec::new();
    // A fixed pseudo-random history: credits with and without expiry, debits, holds
    // placed, committed and released, reversals; one step per hour.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for step in 0..40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let now = clock.now();
        let balance = history.last().map_or(0, |s| s.balance - s.held);
        match x % 6 {
            0 | 1 => {
                let expires = now.plus_micros(((x >> 8) % 5 + 1) as i64 * hour);
                let terms = match x % 2 {
                    0 => json!({"expires_at": rfc3339(expires)}),
                    _ => json!({"priority": (x >> 16) % 3}),
                };
                credit(&api, "w1", 10 + (x >> 20) as i64 % 50, terms).await;
            }
            2 if balance > 5 => debits.push(api.debit("w1", 1 + (x >> 8) as i64 % 5).await),
            3 if balance > 5 => {
                let h = api
                    .post("/v1/wallets/w1/holds", &json!({"amount": 3}))
                    .await
                    .ok(201);
                holds.push(id(&h));
            }
            4 if !holds.is_empty() => {
                let h = holds.remove(0);
                let action = if step % 2 == 0 { "commit" } else { "release" };
                api.post(&format!("/v1/holds/{h}/{action}"), &json!({}))
                    .await
                    .ok(200);
            }
            5 if !debits.is_empty() => {
                let d = debits.remove(0);
                api.post(&format!("/v1/mutations/{}/reverse", id(&d)), &json!({}))
                    .await
                    .ok(201);
            }
            _ => {}
        }
        history.push(seen(&api, now).await);
        // An hour on; a grant that expired on the way is swept before the next look.
        clock.advance_micros(hour);
        let expired = api
            .list_all("/v1/wallets/w1/grants", 1000)
            .await
            .into_iter()
            .filter(|g| g["status"] == "expired" && int(g, "remaining") > int(g, "held"))
            .count();
        if expired > 0 {
            let until = tokio::time::Instant::now() + DEADLINE;
            while api
                .list_all("/v1/wallets/w1/grants", 1000)
                .await
                .iter()
                .any(|g| g["status"] == "expired" && int(g, "remaining") > int(g, "held"))
            {
                assert!(tokio::time::Instant::now() < until, "the sweep never came");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // Ten instants between the looks: each is what the last look before it saw (the
    // sweep ran at each hour, before the hour's step and look).
    let mut checked = 0;
    for (_, pair) in history.windows(2).enumerate().filter(|(i, _)| i % 4 == 0) {
        let (before, after) = (&pair[0], &pair[1]);
        let t = before
            .at
            .plus_micros((after.at.as_micros() - before.at.as_micros()) / 2);
        let v = api
            .get(&format!("/v1/wallets/w1?as_of={}", rfc3339(t)))
            .await
            .ok(200);
        let grants: Vec<(String, i64)> = v["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .map(|g| (id(g), int(g, "remaining")))
            .collect();
        let mut want = before.grants.clone();
        let mut got_sorted = grants.clone();
        got_sorted.sort();
        want.sort();
        assert_eq!(
            (int(&v, "balance"), int(&v, "held")),
            (before.balance, before.held),
            "as of {}: {v}",
            rfc3339(t)
        );
        assert_eq!(got_sorted, want, "grants as of {}", rfc3339(t));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} instants checked");
    node.stop().await;
}

/// The tenant's default validity, set through `/v1/settings`, gives TOPdesk top-ups
/// (whose document has no place for an expiry) an expiry that long after they are
/// recorded; native top-ups naming their own keep it; cleared, top-ups never expire.
#[tokio::test(flavor = "multi_thread")]
async fn top_ups_take_the_default_validity_in_every_dialect() {
    let server = Server::start().await;
    let api = server.admin();
    let settings = api.get("/v1/settings").await.ok(200);
    assert_eq!(settings, json!({"default_validity_seconds": null}));
    let set = api
        .patch("/v1/settings", &json!({"default_validity_seconds": 86_400}))
        .await
        .ok(200);
    assert_eq!(set, json!({"default_validity_seconds": 86_400}));
    // Absent: unchanged; out of bounds: refused naming the field.
    assert_eq!(api.patch("/v1/settings", &json!({})).await.ok(200), set);
    for bad in [json!(0), json!(3_155_760_001_i64), json!("1")] {
        let r = api
            .patch("/v1/settings", &json!({"default_validity_seconds": bad}))
            .await;
        let p = r.problem(400, "invalid_request");
        assert!(
            str_of(p, "detail").starts_with("default_validity_seconds"),
            "{}",
            r.text
        );
    }
    assert_eq!(api.get("/v1/settings").await.ok(200), set);

    let customer = uuid::Uuid::new_v4().to_string();
    let body = common::topdesk_dto(&customer, None, 600, "2026-11-25", None);
    let location = common::topdesk_create(&api, &body).await;
    let id = common::last_segment(&location).to_owned();
    let mutation = api.get(&format!("/v1/mutations/{id}")).await.ok(200);
    let recorded = at(str_of(&mutation, "recorded_at"));
    let grants = api
        .get(&format!("/v1/wallets/{customer}/grants"))
        .await
        .ok(200);
    let grant = &grants["items"][0];
    assert_eq!(str_of(grant, "id"), id);
    assert_eq!(
        str_of(grant, "expires_at"),
        rfc3339(recorded.plus_micros(DAY_MICROS))
    );

    api.create_customer("c1").await;
    api.create_wallet("c1", "w1", "EUR", 2).await;
    let own = credit(&api, "w1", 5, json!({"expires_at": "2030-01-01T00:00:00Z"})).await;
    let grants = api.get("/v1/wallets/w1/grants").await.ok(200);
    assert_eq!(str_of(&grants["items"][0], "id"), id_of(&own));
    assert_eq!(
        str_of(&grants["items"][0], "expires_at"),
        "2030-01-01T00:00:00.000000Z"
    );

    let cleared = api
        .patch("/v1/settings", &json!({"default_validity_seconds": null}))
        .await
        .ok(200);
    assert_eq!(cleared, json!({"default_validity_seconds": null}));
    let plain = api.top_up("w1", 1).await;
    let grants = api.get("/v1/wallets/w1/grants").await.ok(200);
    let last = grants["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|g| g["id"] == plain["id"])
        .expect("the top-up's grant")
        .clone();
    assert!(last["expires_at"].is_null(), "{last}");
}

fn id_of(m: &Value) -> &str {
    str_of(m, "id")
}
