//! The TMF654 hub: listener registration (`POST /hub`, `DELETE /hub/{id}`) and the
//! delivery of events from the durable outbox, with retries, backoff, the attempt limit
//! and query filters.
//!
//! The servers run in the test's process over a manual clock, so that backoff waits
//! pass at once when the test moves the clock; the callbacks are a small HTTP receiver
//! in the test. Every wait polls until its condition holds or a generous deadline
//! passes.

use crate::common;
use crate::tmf_support;

use common::{Api, Auth};
use prepaid_dialect_tmf::{MOUNT_BRM, MOUNT_TMF, hub};
use prepaid_store::{ManualClock, SystemClock};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tmf_support::{Backing, Receiver, eventually, eventually_moving, operator, start_time};

/// How long a test watches for something that must not happen: several worker rounds.
const QUIET: Duration = Duration::from_millis(8 * hub::HUB_INTERVAL_MS);
/// A clock step past any backoff.
const BACKOFF_STEP: i64 = (hub::BACKOFF_MS_MAX as i64) * 1000;

async fn register(api: &Api, mount: &str, callback: &str, query: Option<&str>) -> Value {
    let mut body = json!({"callback": callback});
    if let Some(q) = query {
        body["query"] = json!(q);
    }
    let r = api.post(&format!("{mount}/hub"), &body).await;
    let location = r.header("location").map(str::to_owned);
    let v = r.ok(201);
    let id = v["id"].as_str().expect("id").to_owned();
    // Absolute, like every other href the server writes.
    let want = api.url(&format!("{mount}/hub/{id}"));
    assert_eq!(
        location.as_deref(),
        Some(want.as_str().trim_end_matches('/')),
        "Location of {v}"
    );
    v
}

/// Asserts TMF's `Error` shape with this status.
#[track_caller]
fn tmf_error(r: &common::Resp, status: u16) {
    assert_eq!(
        r.status, status,
        "expected {status}: {} {}",
        r.status, r.text
    );
    let v = &r.json;
    for member in ["code", "reason", "message"] {
        assert!(v[member].is_string(), "{member} in {v}");
    }
    assert_eq!(v["status"], json!(status.to_string()), "{v}");
    assert_eq!(v["@type"], "Error", "{v}");
}

// ---- registration ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_are_registered_and_removed_on_both_mounts() {
    let backing = Backing::new().await;
    let node = backing.start(Arc::new(SystemClock)).await;
    let api = node.api(&backing.secret);
    for mount in [MOUNT_TMF, MOUNT_BRM] {
        let v = register(&api, mount, "http://127.0.0.1:9/listener", None).await;
        common::assert_members(&v, &["id", "callback"]);
        assert_eq!(v["callback"], "http://127.0.0.1:9/listener");
        let q = "eventType=TopupBalanceCreateEvent";
        let with_query = register(&api, mount, "https://example.com/x", Some(q)).await;
        common::assert_members(&with_query, &["id", "callback", "query"]);
        assert_eq!(with_query["query"], q);
        for v in [v, with_query] {
            let path = format!("{mount}/hub/{}", v["id"].as_str().unwrap());
            let r = api.send(Method::DELETE, &path, &[], None).await;
            assert_eq!(r.status, 204, "{}", r.text);
            assert!(r.text.is_empty());
            tmf_error(&api.send(Method::DELETE, &path, &[], None).await, 404);
        }
    }
    tmf_error(
        &api.send(Method::DELETE, &format!("{MOUNT_TMF}/hub/nope"), &[], None)
            .await,
        404,
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_are_refused_in_tmf_shape() {
    let backing = Backing::new().await;
    let node = backing.start(Arc::new(SystemClock)).await;
    let api = node.api(&backing.secret);
    let hub_path = format!("{MOUNT_TMF}/hub");
    tmf_error(&api.post(&hub_path, &json!({})).await, 400);
    tmf_error(&api.post(&hub_path, &json!({"callback": 5})).await, 400);
    tmf_error(
        &api.post(&hub_path, &json!({"callback": "no url"})).await,
        400,
    );
    tmf_error(
        &api.post(&hub_path, &json!({"callback": "ftp://example.com/x"}))
            .await,
        400,
    );
    for query in ["eventType=Nope", "colour=red", "eventType"] {
        let body = json!({"callback": "http://example.com/", "query": query});
        tmf_error(&api.post(&hub_path, &body).await, 400);
    }
    // The callback's length limit, at and past it.
    let base = "http://example.com/";
    let at = format!("{base}{}", "a".repeat(hub::CALLBACK_LEN_MAX - base.len()));
    register(&api, MOUNT_TMF, &at, None).await;
    tmf_error(
        &api.post(&hub_path, &json!({"callback": format!("{at}a")}))
            .await,
        400,
    );
    // Without credentials, with a read-only key, with a key of one customer.
    let anonymous = api.with_auth(Auth::None);
    tmf_error(
        &anonymous.post(&hub_path, &json!({"callback": base})).await,
        401,
    );
    let (_, reader) = api.create_key("reader", &["read"], None).await;
    tmf_error(
        &reader.post(&hub_path, &json!({"callback": base})).await,
        403,
    );
    api.create_customer("c1").await;
    let (_, one) = api.create_key("one", &["write"], Some("c1")).await;
    tmf_error(&one.post(&hub_path, &json!({"callback": base})).await, 403);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_are_per_tenant_and_bounded() {
    let backing = Backing::new().await;
    let node = backing.start(Arc::new(SystemClock)).await;
    let api = node.api(&backing.secret);
    let (_, other) = api.create_tenant("other").await;
    let mine = register(&api, MOUNT_TMF, "http://example.com/a", None).await;
    // Another tenant cannot see, so cannot remove, this listener.
    let path = format!("{MOUNT_TMF}/hub/{}", mine["id"].as_str().unwrap());
    tmf_error(&other.send(Method::DELETE, &path, &[], None).await, 404);
    // Up to the limit, then no more.
    for _ in 1..hub::SUBSCRIPTIONS_PER_TENANT_MAX {
        register(&api, MOUNT_TMF, "http://example.com/a", None).await;
    }
    let hub_path = format!("{MOUNT_TMF}/hub");
    let body = json!({"callback": "http://example.com/a"});
    tmf_error(&api.post(&hub_path, &body).await, 409);
    // The limit is the tenant's: the other tenant may still register.
    register(&other, MOUNT_TMF, "http://example.com/b", None).await;
    // A removal makes room again.
    let r = api.send(Method::DELETE, &path, &[], None).await;
    assert_eq!(r.status, 204);
    register(&api, MOUNT_TMF, "http://example.com/a", None).await;
    node.stop().await;
}

// ---- delivery ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_listeners_whose_query_selects_them() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    let receiver = Receiver::start(0).await;
    let url = &receiver.url;
    register(&api, MOUNT_TMF, &format!("{url}/all"), None).await;
    register(
        &api,
        MOUNT_BRM,
        &format!("{url}/created"),
        Some("eventType=TopupBalanceCreateEvent"),
    )
    .await;
    register(
        &api,
        MOUNT_TMF,
        &format!("{url}/two"),
        Some("eventType=TopupBalanceCreateEvent,ReserveBalanceFailureEvent"),
    )
    .await;
    register(
        &api,
        MOUNT_TMF,
        &format!("{url}/w1"),
        Some("eventType=TopupBalanceCreateEvent&event.topupBalance.bucket.id=w1"),
    )
    .await;
    let (_, other) = api.create_tenant("other").await;
    register(&other, MOUNT_TMF, &format!("{url}/other"), None).await;

    let tenant = operator();
    let state = node.state();
    let publish = |event_type: &'static str, resource: Value| {
        let state = state.clone();
        let tenant = tenant.clone();
        async move {
            hub::publish(&state, &tenant, event_type, resource)
                .await
                .expect("publish");
        }
    };
    publish(
        "TopupBalanceCreateEvent",
        json!({"id": "t1", "bucket": {"id": "w1"}}),
    )
    .await;
    publish(
        "TopupBalanceCreateEvent",
        json!({"id": "t2", "bucket": {"id": "w2"}}),
    )
    .await;
    publish("ReserveBalanceFailureEvent", json!({"id": "r1"})).await;
    publish("AdjustBalanceCancelEvent", json!({"id": "a1"})).await;

    eventually("every selected delivery", || {
        receiver.at("/all").len() == 4
            && receiver.at("/created").len() == 2
            && receiver.at("/two").len() == 3
            && receiver.at("/w1").len() == 1
    })
    .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        receiver.attempts().len(),
        4 + 2 + 3 + 1,
        "no other deliveries"
    );
    assert!(
        receiver.at("/other").is_empty(),
        "another tenant's listener heard"
    );

    // The envelope of the spec.
    let all = receiver.at("/all");
    let first = all
        .iter()
        .find(|e| e["event"]["topupBalance"]["id"] == "t1")
        .expect("the event of t1");
    common::assert_members(first, &["eventId", "eventTime", "eventType", "event"]);
    assert_eq!(first["eventType"], "TopupBalanceCreateEvent");
    assert_eq!(
        first["event"],
        json!({"topupBalance": {"id": "t1", "bucket": {"id": "w1"}}})
    );
    common::assert_time(first, "eventTime");
    let reserve = all
        .iter()
        .find(|e| e["eventType"] == "ReserveBalanceFailureEvent")
        .expect("the reserve event");
    assert_eq!(reserve["event"], json!({"reserveBalance": {"id": "r1"}}));
    let adjust = all
        .iter()
        .find(|e| e["eventType"] == "AdjustBalanceCancelEvent")
        .expect("the adjust event");
    assert_eq!(adjust["event"], json!({"adjustBalance": {"id": "a1"}}));
    // One event has one id for every listener that receives it.
    let w1 = &receiver.at("/w1")[0];
    assert_eq!(w1["eventId"], first["eventId"]);
    let mut ids: Vec<&str> = all.iter().map(|e| e["eventId"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "event ids are distinct");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_with_backoff() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    let receiver = Receiver::start(2).await;
    register(&api, MOUNT_TMF, &format!("{}/cb", receiver.url), None).await;
    hub::publish(
        node.state(),
        &operator(),
        "TopupBalanceCreateEvent",
        json!({"id": "t1"}),
    )
    .await
    .unwrap();

    eventually("the first attempt", || receiver.attempts().len() == 1).await;
    // The retry waits for its backoff: with the clock standing still, nothing comes.
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        receiver.attempts().len(),
        1,
        "a retry came before its backoff"
    );
    // Once the backoff has passed, the retry comes.
    clock.advance_micros(i64::try_from(hub::BACKOFF_BASE_MS).unwrap() * 1000);
    eventually("the second attempt", || receiver.attempts().len() == 2).await;
    eventually_moving(
        &clock,
        BACKOFF_STEP,
        "the third, successful attempt",
        || receiver.attempts().len() == 3,
    )
    .await;
    // Delivered: no more attempts however far the clock moves.
    for _ in 0..5 {
        clock.advance_micros(BACKOFF_STEP);
        tokio::time::sleep(QUIET / 4).await;
    }
    let attempts = receiver.attempts();
    assert_eq!(attempts.len(), 3, "deliveries after success: {attempts:?}");
    assert!(
        attempts.iter().all(|(_, e)| e == &attempts[0].1),
        "the same event every time"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_dropped_after_the_last_attempt() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    let receiver = Receiver::start(u32::MAX).await;
    register(&api, MOUNT_TMF, &format!("{}/cb", receiver.url), None).await;
    hub::publish(
        node.state(),
        &operator(),
        "TopupBalanceFailureEvent",
        json!({"id": "t1"}),
    )
    .await
    .unwrap();
    let max = hub::DELIVERY_ATTEMPTS_MAX as usize;
    eventually_moving(&clock, BACKOFF_STEP, "every attempt", || {
        receiver.attempts().len() >= max
    })
    .await;
    for _ in 0..5 {
        clock.advance_micros(BACKOFF_STEP);
        tokio::time::sleep(QUIET / 4).await;
    }
    assert_eq!(receiver.attempts().len(), max, "attempts past the limit");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_listener_receives_nothing_more() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    let receiver = Receiver::start(u32::MAX).await;
    let listener = register(&api, MOUNT_TMF, &format!("{}/cb", receiver.url), None).await;
    let state = node.state().clone();
    hub::publish(
        &state,
        &operator(),
        "TopupBalanceCreateEvent",
        json!({"id": "t1"}),
    )
    .await
    .unwrap();
    eventually("the first attempt", || receiver.attempts().len() == 1).await;
    let path = format!("{MOUNT_TMF}/hub/{}", listener["id"].as_str().unwrap());
    let r = api.send(Method::DELETE, &path, &[], None).await;
    assert_eq!(r.status, 204);
    // Neither the pending retry nor a new event reaches it.
    hub::publish(
        &state,
        &operator(),
        "TopupBalanceCreateEvent",
        json!({"id": "t2"}),
    )
    .await
    .unwrap();
    for _ in 0..5 {
        clock.advance_micros(BACKOFF_STEP);
        tokio::time::sleep(QUIET / 4).await;
    }
    assert_eq!(receiver.attempts().len(), 1, "deliveries after removal");
    drop(state);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_a_restart() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    let receiver = Receiver::start(1).await;
    register(&api, MOUNT_TMF, &format!("{}/cb", receiver.url), None).await;
    hub::publish(
        node.state(),
        &operator(),
        "TransferBalanceCreateEvent",
        json!({"id": "x1"}),
    )
    .await
    .unwrap();
    eventually("the first, failed attempt", || {
        receiver.attempts().len() == 1
    })
    .await;
    node.stop().await;
    let node = backing.start(clock.clone()).await;
    eventually_moving(&clock, BACKOFF_STEP, "the retry after the restart", || {
        receiver.attempts().len() == 2
    })
    .await;
    let attempts = receiver.attempts();
    assert_eq!(
        attempts[1].1["event"],
        json!({"transferBalance": {"id": "x1"}})
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_ups_through_the_tmf_mount_reach_the_listener() {
    let backing = Backing::new().await;
    let node = backing.start(Arc::new(SystemClock)).await;
    let api = node.api(&backing.secret);
    let receiver = Receiver::start(0).await;
    register(
        &api,
        MOUNT_BRM,
        &format!("{}/cb", receiver.url),
        Some("eventType=TopupBalanceCreateEvent,TopupBalanceFailureEvent"),
    )
    .await;
    api.create_customer("c1").await;
    api.create_wallet("c1", "w1", "EUR", 2).await;
    let path = format!("{MOUNT_TMF}/topupBalance");
    let body = json!({"bucket": {"id": "w1"}, "amount": {"amount": 12.34, "units": "EUR"}});
    let created = api.post(&path, &body).await.ok(201);
    eventually("the create event", || receiver.attempts().len() == 1).await;
    let event = receiver.attempts()[0].1.clone();
    assert_eq!(event["eventType"], "TopupBalanceCreateEvent", "{event}");
    let resource = &event["event"]["topupBalance"];
    assert_eq!(resource["id"], created["id"], "{event}");
    // The amount is an exact JSON number, as in answers.
    assert_eq!(resource["amount"]["amount"], json!(12.34), "{event}");

    // A refused top-up is announced as a failure.
    api.patch("/v1/wallets/w1", &json!({"status": "suspended"}))
        .await
        .ok(200);
    let r = api.post(&path, &body).await;
    assert!(r.status >= 400, "{} {}", r.status, r.text);
    eventually("the failure event", || receiver.attempts().len() == 2).await;
    let event = receiver.attempts()[1].1.clone();
    assert_eq!(event["eventType"], "TopupBalanceFailureEvent", "{event}");
    assert_eq!(
        event["event"]["topupBalance"]["status"], "failed",
        "{event}"
    );
    node.stop().await;
}
