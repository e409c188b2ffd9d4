//! Recurring top-ups of the TMF dialect: every period after the first is posted exactly
//! once when the clock reaches it, across restarts, with several instances on one
//! PostgreSQL database, and a refused period is reported to the hub and skipped.
//!
//! The servers run in the test's process over a manual clock that the test moves a day
//! (or a month) at a time; each wait polls until its condition holds or a generous
//! deadline passes.

use crate::common;
use crate::tmf_support;

use common::{Api, int, str_of};
use prepaid_dialect_tmf::MOUNT_TMF;
use prepaid_dialect_tmf::recurring::{self, Period, Plan};
use prepaid_ledger::{Amount, Reference, Timestamp, WalletId};
use prepaid_store::{Clock as _, ManualClock};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tmf_support::{Backing, DEADLINE, Receiver, eventually, operator};

const DAY_MICROS: i64 = 86_400_000_000;
/// How long a test watches for something that must not happen: several worker rounds.
const QUIET: Duration = Duration::from_millis(8 * recurring::RECURRING_INTERVAL_MS);

fn at(s: &str) -> Timestamp {
    let dt = chrono::DateTime::parse_from_rfc3339(s).expect("an RFC 3339 time");
    Timestamp::from_micros(dt.timestamp_micros())
}

/// The wallet's top-ups, oldest first.
async fn top_ups(api: &Api, wallet: &str) -> Vec<Value> {
    api.mutations(wallet)
        .await
        .into_iter()
        .filter(|m| m["kind"] == "top_up")
        .collect()
}

/// Polls until `wallet` has `n` top-ups (failing on more, or at the deadline).
async fn wait_for_top_ups(api: &Api, wallet: &str, n: usize) -> Vec<Value> {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got = top_ups(api, wallet).await;
        assert!(
            got.len() <= n,
            "{wallet}: {} top-ups, expected {n}: {got:?}",
            got.len()
        );
        if got.len() == n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{wallet}: gave up waiting for {n} top-ups, have {}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a recurring top-up through `POST /topupBalance` (period 1 now, the rest
/// scheduled); returns the plan's id.
async fn create_plan(api: &Api, wallet: &str, amount: &str, period: &str, periods: u32) -> String {
    let body = json!({
        "bucket": {"id": wallet},
        "amount": {"amount": serde_json::from_str::<Value>(amount).unwrap(), "units": "EUR"},
        "isAutoTopup": true,
        "recurringPeriod": period,
        "numberOfPeriods": periods,
    });
    let v = api
        .post(&format!("{MOUNT_TMF}/topupBalance"), &body)
        .await
        .ok(201);
    str_of(&v, "id").to_owned()
}

async fn funded(api: &Api, customer: &str, wallet: &str) {
    api.create_customer(customer).await;
    api.create_wallet(customer, wallet, "EUR", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_periods_run_once_each_across_restarts() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-03-10T09:00:00Z")));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    funded(&api, "c1", "w1").await;
    create_plan(&api, "w1", "5", "daily", 3).await;
    assert_eq!(top_ups(&api, "w1").await.len(), 1);

    // Nothing is due before the day is over.
    clock.advance_micros(DAY_MICROS - 1);
    tokio::time::sleep(QUIET).await;
    assert_eq!(top_ups(&api, "w1").await.len(), 1, "period 2 ran early");

    // A day later: period 2, once.
    clock.advance_micros(1);
    wait_for_top_ups(&api, "w1", 2).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(top_ups(&api, "w1").await.len(), 2);

    // Period 3 falls due while the server is down; the next start runs it.
    node.stop().await;
    clock.advance_micros(DAY_MICROS);
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    let done = wait_for_top_ups(&api, "w1", 3).await;
    assert_eq!(
        str_of(&done[1], "occurred_at"),
        "2026-03-11T09:00:00.000000Z"
    );
    assert_eq!(
        str_of(&done[2], "occurred_at"),
        "2026-03-12T09:00:00.000000Z"
    );

    // And no fourth, however far the clock moves, restarts included.
    node.stop().await;
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    clock.advance_micros(40 * DAY_MICROS);
    tokio::time::sleep(QUIET).await;
    assert_eq!(top_ups(&api, "w1").await.len(), 3);
    assert_eq!(api.balance("w1").await, 3 * 500);
    common::assert_balance_is_sum(&api, "w1").await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_periods_keep_the_day_of_the_month() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-01-31T12:00:00Z")));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    funded(&api, "c1", "w1").await;
    create_plan(&api, "w1", "1", "monthly", 3).await;
    clock.set(at("2026-02-28T12:00:00Z"));
    let done = wait_for_top_ups(&api, "w1", 2).await;
    assert_eq!(
        str_of(&done[1], "occurred_at"),
        "2026-02-28T12:00:00.000000Z"
    );
    clock.set(at("2026-03-30T12:00:00Z"));
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        top_ups(&api, "w1").await.len(),
        2,
        "period 3 ran before March 31"
    );
    clock.set(at("2026-03-31T12:00:00Z"));
    let done = wait_for_top_ups(&api, "w1", 3).await;
    assert_eq!(
        str_of(&done[2], "occurred_at"),
        "2026-03-31T12:00:00.000000Z"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_period_is_reported_and_the_plan_goes_on() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-05-01T00:00:00Z")));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    let receiver = Receiver::start(0).await;
    api.post(
        &format!("{MOUNT_TMF}/hub"),
        &json!({"callback": format!("{}/cb", receiver.url)}),
    )
    .await
    .ok(201);
    funded(&api, "c1", "w1").await;
    let plan = create_plan(&api, "w1", "2.50", "weekly", 3).await;
    let of_type = |t: &str| -> Vec<Value> {
        receiver
            .attempts()
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| e["eventType"] == t)
            .collect()
    };
    // Period 1, posted by the request itself.
    eventually("the event of period 1", || {
        of_type("TopupBalanceCreateEvent").len() == 1
    })
    .await;

    // Period 2 meets a suspended wallet: refused, reported, not retried.
    api.patch("/v1/wallets/w1", &json!({"status": "suspended"}))
        .await
        .ok(200);
    clock.advance_micros(7 * DAY_MICROS);
    eventually("the failure event", || {
        !of_type("TopupBalanceFailureEvent").is_empty()
    })
    .await;
    let failure = of_type("TopupBalanceFailureEvent")[0].clone();
    let resource = &failure["event"]["topupBalance"];
    assert_eq!(resource["id"], plan, "{failure}");
    assert_eq!(
        resource["amount"],
        json!({"amount": 2.5, "units": "EUR"}),
        "{failure}"
    );
    assert_eq!(resource["status"], "failed", "{failure}");
    assert_eq!(resource["reason"], "wallet_not_active", "{failure}");
    assert_eq!(resource["bucket"]["id"], "w1", "{failure}");
    assert_eq!(
        resource["requestedDate"], "2026-05-08T00:00:00.000000Z",
        "{failure}"
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(top_ups(&api, "w1").await.len(), 1);
    assert_eq!(receiver.attempts().len(), 2, "one failure event, no retry");

    // Period 3 finds the wallet active again.
    api.patch("/v1/wallets/w1", &json!({"status": "active"}))
        .await
        .ok(200);
    clock.advance_micros(7 * DAY_MICROS);
    wait_for_top_ups(&api, "w1", 2).await;
    eventually("the create event of period 3", || {
        of_type("TopupBalanceCreateEvent").len() == 2
    })
    .await;
    let created = of_type("TopupBalanceCreateEvent")[1].clone();
    assert_eq!(created["event"]["topupBalance"]["id"], plan, "{created}");
    assert_eq!(created["event"]["topupBalance"]["status"], "completed");
    assert_eq!(api.balance("w1").await, 2 * 250);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_run_each_period_once() {
    let Some(backing) = Backing::postgres().await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(at("2026-06-01T08:00:00Z")));
    let a = backing.start(clock.clone()).await;
    let b = backing.start(clock.clone()).await;
    let api_a = a.api(&backing.secret);
    let api_b = b.api(&backing.secret);
    const PLANS: usize = 12;
    for i in 0..PLANS {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let wallet = format!("w{i}");
        funded(api, &format!("c{i}"), &wallet).await;
        create_plan(api, &wallet, "1", "daily", 3).await;
    }
    for n in 2..=3 {
        clock.advance_micros(DAY_MICROS);
        for i in 0..PLANS {
            wait_for_top_ups(&api_a, &format!("w{i}"), n).await;
        }
    }
    clock.advance_micros(10 * DAY_MICROS);
    tokio::time::sleep(QUIET).await;
    for i in 0..PLANS {
        let wallet = format!("w{i}");
        assert_eq!(top_ups(&api_b, &wallet).await.len(), 3, "{wallet}");
        assert_eq!(
            int(&api_b.wallet(&wallet).await, "balance"),
            300,
            "{wallet}"
        );
    }
    let breaches = a.state().store.check_invariants().await.unwrap();
    assert!(breaches.is_empty(), "{breaches:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_schedules_nothing_new() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-02-01T00:00:00Z")));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    funded(&api, "c1", "w1").await;
    let body = json!({
        "bucket": {"id": "w1"},
        "amount": {"amount": 1, "units": "EUR"},
        "isAutoTopup": true,
        "recurringPeriod": "fortnightly",
        "numberOfPeriods": 2,
    });
    let path = format!("{MOUNT_TMF}/topupBalance");
    api.post_idem(&path, "k1", &body).await.ok(201);
    clock.advance_micros(14 * DAY_MICROS);
    wait_for_top_ups(&api, "w1", 2).await;
    // The same request again schedules its periods again, but they keep their
    // idempotency keys: nothing new is posted.
    api.post_idem(&path, "k1", &body).await.ok(201);
    clock.advance_micros(14 * DAY_MICROS);
    tokio::time::sleep(QUIET).await;
    assert_eq!(top_ups(&api, "w1").await.len(), 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_scheduled_directly_run_too() {
    // The interface the dialect uses, called as it would be.
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-02-01T00:00:00Z")));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    funded(&api, "c1", "w1").await;
    let state = node.state().clone();
    let plan = Plan {
        id: "direct".into(),
        wallet: WalletId::parse("w1").unwrap(),
        amount: Amount::positive(700).unwrap(),
        period: Period::Daily,
        periods_total: 2,
        first_at: clock.now(),
        reference: Reference::default(),
    };
    recurring::schedule(&state, &operator(), plan.clone())
        .await
        .unwrap();
    // Twice is once.
    recurring::schedule(&state, &operator(), plan)
        .await
        .unwrap();
    clock.advance_micros(DAY_MICROS);
    let done = wait_for_top_ups(&api, "w1", 1).await;
    assert_eq!(int(&done[0], "amount"), 700);
    tokio::time::sleep(QUIET).await;
    assert_eq!(top_ups(&api, "w1").await.len(), 1);
    drop(state);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_plan_posts_no_more_periods() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-04-01T00:00:00Z")));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    funded(&api, "c1", "w1").await;
    let plan = create_plan(&api, "w1", "3", "daily", 3).await;
    clock.advance_micros(DAY_MICROS);
    wait_for_top_ups(&api, "w1", 2).await;
    let state = node.state().clone();
    assert!(recurring::cancel(&state, &operator(), &plan).await.unwrap());
    assert!(!recurring::cancel(&state, &operator(), &plan).await.unwrap());
    clock.advance_micros(DAY_MICROS);
    tokio::time::sleep(QUIET).await;
    assert_eq!(top_ups(&api, "w1").await.len(), 2);
    drop(state);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_without_a_number_of_periods_recurs_until_cancelled() {
    use prepaid_dialect_tmf::MOUNT_BRM;
    use reqwest::Method;
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-03-10T09:00:00Z")));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    funded(&api, "c1", "w1").await;
    let body = json!({
        "bucket": {"id": "w1"},
        "amount": {"amount": 5, "units": "EUR"},
        "isAutoTopup": true,
        "recurringPeriod": "daily",
    });
    let v = api
        .post(&format!("{MOUNT_TMF}/topupBalance"), &body)
        .await
        .ok(201);
    let plan = str_of(&v, "id").to_owned();
    assert_eq!(v["status"], "completed");
    for n in 2..=3 {
        clock.advance_micros(DAY_MICROS);
        wait_for_top_ups(&api, "w1", n).await;
    }

    let cancel = json!({"status": "cancelled"});
    let r = api
        .json(
            Method::PATCH,
            &format!("{MOUNT_TMF}/topupBalance/{plan}"),
            &cancel,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "cancelled", "{}", r.text);
    let brm = api
        .get(&format!("{MOUNT_BRM}/topupBalance/{plan}"))
        .await
        .ok(200);
    assert_eq!(brm["status"], "CANCELLED");
    // The BRM word cancels too, and again is harmless.
    let r = api
        .json(
            Method::PATCH,
            &format!("{MOUNT_BRM}/topupBalance/{plan}"),
            &json!({"status": "CANCELLED"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Periods past the cancellation post nothing.
    clock.advance_micros(2 * DAY_MICROS);
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        top_ups(&api, "w1").await.len(),
        3,
        "a cancelled plan went on"
    );

    // A one-time top-up is completed and cannot be cancelled.
    let once = api
        .post(
            &format!("{MOUNT_TMF}/topupBalance"),
            &json!({"bucket": {"id": "w1"}, "amount": {"amount": 1, "units": "EUR"}}),
        )
        .await
        .ok(201);
    let r = api
        .json(
            Method::PATCH,
            &format!("{MOUNT_TMF}/topupBalance/{}", str_of(&once, "id")),
            &cancel,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    node.stop().await;
}
