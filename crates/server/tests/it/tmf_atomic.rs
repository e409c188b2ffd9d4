//! Every TMF operation is one unit: a refused `POST /bucket` leaves no bucket and no
//! idempotency key, a top-up costs one durable commit with its record and its event,
//! and a SIGKILL under load loses no acknowledged top-up's event and invents none.

use crate::common;
use crate::tmf_support;

use common::{Api, Auth, Server, str_of};
use prepaid_dialect_tmf::MOUNT_TMF;
use prepaid_store::ManualClock;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tmf_support::{Backing, CountingStore, Node, Receiver, eventually};

fn at(s: &str) -> prepaid_ledger::Timestamp {
    let t = chrono::DateTime::parse_from_rfc3339(s).expect("test time");
    prepaid_ledger::Timestamp::from_micros(t.timestamp_micros())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_bucket_leaves_nothing_and_its_key_works_once_it_can_succeed() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-03-01T00:00:00Z")));
    let node = backing.start(clock.clone()).await;
    let api = node.api(&backing.secret);
    let body = json!({
        "id": "later",
        "partyAccount": {"id": "party-1", "name": "Party"},
        "remainingValue": {"amount": 12.5, "units": "EUR"},
        "validFor": {"startDateTime": "2030-01-01T00:00:00Z"},
    });
    let path = format!("{MOUNT_TMF}/bucket");
    let refused = api.post_idem(&path, "bucket-key", &body).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.json["code"], "outside_validity", "{}", refused.text);
    // Nothing of it stays: no bucket, no party account, no record.
    assert_eq!(api.get(&format!("{path}/later")).await.status, 404);
    assert_eq!(api.get("/v1/customers/party-1").await.status, 404);
    assert_eq!(api.get("/v1/wallets/later").await.status, 404);
    // A plain repeat is refused the same way, not answered 409.
    let again = api.post_idem(&path, "bucket-key", &body).await;
    assert_eq!(again.status, 409, "{}", again.text);

    // Once the bucket is valid, the same request with the same key is carried out
    // whole, its money included.
    clock.set(at("2030-01-02T00:00:00Z"));
    let made = api.post_idem(&path, "bucket-key", &body).await;
    let v = made.ok(201);
    assert_eq!(v["remainingValue"]["amount"], json!(12.5), "{v}");
    assert_eq!(api.balance("later").await, 1250);
    // And it replays from then on.
    let replay = api.post_idem(&path, "bucket-key", &body).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(api.balance("later").await, 1250);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topup_costs_one_durable_commit() {
    let backing = Backing::new().await;
    let clock = Arc::new(ManualClock::new(at("2026-03-01T00:00:00Z")));
    let (inner, engine) = backing.store().await;
    let store = CountingStore::new(inner);
    let node = Node::start(
        store.clone(),
        clock.clone(),
        backing.dir.path(),
        &backing.secret,
        engine,
    )
    .await;
    let api = node.api(&backing.secret);
    api.create_customer("c1").await;
    api.create_wallet("c1", "w1", "EUR", 2).await;
    let topup = |n: u32| {
        json!({
            "bucket": {"id": "w1"},
            "amount": {"amount": n, "units": "EUR"},
            "description": format!("top-up {n}"),
            "channel": {"id": "shop"},
        })
    };
    let path = format!("{MOUNT_TMF}/topupBalance");
    let before = store.counts();
    let v = api.post(&path, &topup(1)).await.ok(201);
    assert_eq!(
        v["channel"]["id"], "shop",
        "the client's members are kept: {v}"
    );
    assert_eq!(
        store.counts(),
        (before.0 + 1, before.1),
        "one batch, and no record or job written beside it"
    );

    // With a listener, the event rides in the same commit.
    let receiver = Receiver::start(0).await;
    api.post(
        &format!("{MOUNT_TMF}/hub"),
        &json!({"callback": format!("{}/events", receiver.url)}),
    )
    .await
    .ok(201);
    let before = store.counts();
    let v = api.post(&path, &topup(2)).await.ok(201);
    assert_eq!(store.counts().0, before.0 + 1, "one batch with its event");
    let id = str_of(&v, "id").to_owned();
    eventually("the event of the top-up", || {
        receiver
            .at("/events")
            .iter()
            .any(|e| e["event"]["topupBalance"]["id"] == json!(id))
    })
    .await;
    node.stop().await;
}

/// Top-ups from many clients until `kill_after` were acknowledged, then SIGKILL.
async fn topups_until_killed(server: &mut Server, kill_after: usize) -> Vec<String> {
    const WORKERS: usize = 8;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let reached = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let api = Api::new(
            server.base(),
            Auth::Bearer(server.admin_secret().to_owned()),
        );
        let (acked, count, killed, reached) = (
            acked.clone(),
            count.clone(),
            killed.clone(),
            reached.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let body = json!({
                    "bucket": {"id": format!("w{}", worker % 2)},
                    "amount": {"amount": 1, "units": "EUR"},
                    "description": format!("worker {worker} top-up {n}"),
                });
                let Ok(r) = api
                    .try_post(&format!("{MOUNT_TMF}/topupBalance"), &body)
                    .await
                else {
                    assert!(
                        killed.load(Ordering::SeqCst),
                        "a request failed before the kill"
                    );
                    return;
                };
                if r.status == 201 {
                    acked.lock().unwrap().push(str_of(&r.json, "id").to_owned());
                    if count.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                        reached.notify_one();
                    }
                } else {
                    assert!(killed.load(Ordering::SeqCst), "{} {}", r.status, r.text);
                }
            }
        }));
    }
    reached.notified().await;
    killed.store(true, Ordering::SeqCst);
    server.kill();
    for task in tasks {
        task.await.expect("load task");
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_under_load_loses_no_acknowledged_event_and_invents_none() {
    let receiver = Receiver::start(0).await;
    let mut server = Server::start().await;
    let admin = server.admin();
    admin.create_customer("c1").await;
    admin.create_wallet("c1", "w0", "EUR", 2).await;
    admin.create_wallet("c1", "w1", "EUR", 2).await;
    admin
        .post(
            &format!("{MOUNT_TMF}/hub"),
            &json!({"callback": format!("{}/events", receiver.url)}),
        )
        .await
        .ok(201);
    let acked = topups_until_killed(&mut server, 300).await;
    server.start_again().await;
    let admin = server.admin();

    // Every top-up that committed gets its event after the restart: the acknowledged
    // ones, and those the kill cut off after their commit but before their answer (the
    // balance counts them all, a cent each).
    let acked: BTreeSet<String> = acked.into_iter().collect();
    let committed =
        usize::try_from((admin.balance("w0").await + admin.balance("w1").await) / 100).unwrap();
    assert!(committed >= acked.len());
    let event_of = |e: &Value| e["event"]["topupBalance"]["id"].as_str().map(str::to_owned);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen: BTreeSet<String> = receiver.at("/events").iter().filter_map(event_of).collect();
        if acked.is_subset(&seen) && seen.len() >= committed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} acknowledged top-ups have no event; {} events for {committed} top-ups",
            acked.difference(&seen).count(),
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No event names a top-up that does not exist, and repeats keep their event id.
    let mut ids_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in receiver.at("/events") {
        let topup = event_of(&e).expect("a top-up event");
        ids_of
            .entry(topup)
            .or_default()
            .insert(str_of(&e, "eventId").to_owned());
    }
    for (topup, event_ids) in &ids_of {
        assert_eq!(
            event_ids.len(),
            1,
            "top-up {topup} has events {event_ids:?}"
        );
        admin
            .get(&format!("{MOUNT_TMF}/topupBalance/{topup}"))
            .await
            .ok(200);
    }
    // The ledger agrees: the top-ups that exist are the ones with events.
    let balance = admin.balance("w0").await + admin.balance("w1").await;
    assert_eq!(balance, i64::try_from(ids_of.len()).unwrap() * 100);
}
