//! Durability: what the server acknowledged survives a SIGKILL in the middle of load,
//! and everything survives a graceful restart.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const WALLETS: usize = 4;
const WORKERS: usize = 16;
/// The kill comes once this many mutations were acknowledged.
const ACKED_BEFORE_KILL: usize = 1_000;
/// How many times the load is cut by a SIGKILL.
const ROUNDS: usize = 2;

/// One acknowledged (201) mutation, as the server answered it.
#[derive(Clone, Debug)]
struct Acked {
    id: String,
    wallet: String,
    amount: i64,
}

/// Runs debits and top-ups from many clients against `wallets` until `kill_after`
/// mutations were acknowledged, then SIGKILLs the server while requests are in flight.
/// Returns every acknowledged mutation.
async fn load_until_killed(
    server: &mut Server,
    wallets: &[String],
    kill_after: usize,
) -> Vec<Acked> {
    let admin = server.admin();
    let acked = Arc::new(Mutex::new(Vec::<Acked>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(tokio::sync::Notify::new());
    let killed = Arc::new(AtomicBool::new(false));
    let early_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let api = admin.with_bearer(server.admin_secret());
        let wallet = wallets[worker % wallets.len()].clone();
        let (acked, count, reached) = (acked.clone(), count.clone(), reached.clone());
        let (killed, early_errors) = (killed.clone(), early_errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                n += 1;
                // Mostly debits, which the top-ups keep affordable most of the time.
                let (kind, amount) = if n.is_multiple_of(3) {
                    ("top_up", 90)
                } else {
                    ("debit", 30)
                };
                let body = json!({"kind": kind, "amount": amount});
                let r = match api
                    .try_post(&format!("/v1/wallets/{wallet}/mutations"), &body)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        // The process is gone: stop, as a client would. Before the kill,
                        // no request may go unanswered.
                        if !killed.load(Ordering::SeqCst) {
                            early_errors
                                .lock()
                                .expect("errors lock")
                                .push(format!("{e:?}"));
                            reached.notify_one();
                        }
                        return;
                    }
                };
                match r.status {
                    201 => {
                        let m = r.ok(201);
                        acked.lock().expect("acked lock").push(Acked {
                            id: str_of(&m, "id").to_owned(),
                            wallet: wallet.clone(),
                            amount: int(&m, "amount"),
                        });
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                            reached.notify_one();
                        }
                    }
                    422 => {
                        r.problem(422, "insufficient_funds");
                    }
                    s => panic!("unexpected answer {s}: {}", r.text),
                }
            }
        }));
    }

    reached.notified().await;
    killed.store(true, Ordering::SeqCst);
    let early = early_errors.lock().expect("errors lock").clone();
    assert!(
        early.is_empty(),
        "requests failed before the kill: {early:?}"
    );
    server.kill();
    for t in tasks {
        t.await.expect("load worker");
    }
    let acked = acked.lock().expect("acked lock").clone();
    assert!(acked.len() >= kill_after);
    acked
}

/// Checks, on a restarted server, that every acknowledged mutation is there as it was
/// answered and that every wallet's balance is the sum of its mutations.
async fn assert_all_acknowledged_survive(
    admin: &Api,
    wallets: &[String],
    acked: &[Acked],
    kills: usize,
) {
    let mut listed: BTreeMap<String, Value> = BTreeMap::new();
    for w in wallets {
        for m in assert_balance_is_sum(admin, w).await {
            listed.insert(str_of(&m, "id").to_owned(), m);
        }
        let wallet = admin.wallet(w).await;
        assert!(
            int(&wallet, "balance") >= 0,
            "balance below the floor: {wallet}"
        );
        assert_eq!(int(&wallet, "held"), 0);
    }
    let mut missing = Vec::new();
    for a in acked {
        match listed.get(&a.id) {
            Some(m) => {
                assert_eq!(str_of(m, "wallet_id"), a.wallet, "{m}");
                assert_eq!(int(m, "amount"), a.amount, "{m}");
            }
            None => missing.push(a.id.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged mutations lost after SIGKILL: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    let unique: BTreeSet<&str> = acked.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(unique.len(), acked.len(), "mutation ids are unique");
    for a in acked.iter().step_by(97) {
        let m = admin.get(&format!("/v1/mutations/{}", a.id)).await.ok(200);
        assert_eq!(int(&m, "amount"), a.amount);
    }
    // Besides the acknowledged ones (and the initial top-ups), only requests in flight
    // at a kill may have landed: at most one per client and kill.
    let unacknowledged = listed.len() - wallets.len() - acked.len();
    assert!(
        unacknowledged <= WORKERS * kills,
        "{unacknowledged} mutations nobody was told about after {kills} kills"
    );
    eprintln!(
        "{} acknowledged mutations survived {kills} kills; {unacknowledged} in flight landed too",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_mutations_survive_sigkill_under_load() {
    let mut server = Server::start().await;
    let admin = server.admin();
    let wallets: Vec<String> = (0..WALLETS).map(|i| format!("w{i}")).collect();
    for (i, w) in wallets.iter().enumerate() {
        admin.funded_wallet(&format!("c{i}"), w, 500).await;
    }

    // Two rounds: the second crashes a server that itself recovered from a crash.
    let mut acked = Vec::new();
    for round in 1..=ROUNDS {
        acked.extend(load_until_killed(&mut server, &wallets, ACKED_BEFORE_KILL).await);
        server.start_again().await;
        let admin = server.admin();
        assert_all_acknowledged_survive(&admin, &wallets, &acked, round).await;
        assert!(acked.len() >= round * ACKED_BEFORE_KILL);
    }

    // The restarted server takes new work on the same wallets.
    let admin = server.admin();
    let before = admin.balance("w0").await;
    let m = admin.top_up("w0", 7).await;
    assert_eq!(int(&m, "balance_after"), before + 7);
    assert_balance_is_sum(&admin, "w0").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_survives_a_graceful_restart() {
    let mut server = Server::start().await;
    let admin = server.admin();

    let (_, acme) = admin.create_tenant("acme").await;
    let (_, reader) = acme.create_key("reader", &["read"], None).await;
    admin.funded_wallet("alice", "w", 1_000).await;
    admin.debit("w", 100).await;
    let body = json!({"kind": "debit", "amount": 5});
    let idem = admin
        .post_idem("/v1/wallets/w/mutations", "once", &body)
        .await
        .ok(201);
    let hold = admin
        .post("/v1/wallets/w/holds", &json!({"amount": 200}))
        .await
        .ok(201);
    acme.funded_wallet("bob", "bw", 42).await;

    let wallet_before = admin.wallet("w").await;
    let muts_before = admin.mutations("w").await;
    let customers_before = admin.list_all("/v1/customers", 100).await;
    let acme_wallet_before = acme.wallet("bw").await;

    let exit = server.restart().await;
    assert!(
        exit.success(),
        "SIGTERM must shut the server down cleanly, got {exit}"
    );

    // The port changed: clients are rebuilt with the same credentials.
    let admin = server.admin();
    let acme = server.client(acme.auth().clone());
    let reader = server.client(reader.auth().clone());

    assert_eq!(admin.wallet("w").await, wallet_before);
    assert_eq!(admin.mutations("w").await, muts_before);
    assert_eq!(admin.list_all("/v1/customers", 100).await, customers_before);
    let hold_id = str_of(&hold, "id");
    assert_eq!(
        admin.get(&format!("/v1/holds/{hold_id}")).await.ok(200),
        hold
    );
    // The hold is still pending and can be committed.
    admin
        .post(&format!("/v1/holds/{hold_id}/commit"), &json!({}))
        .await
        .ok(200);

    // Tenants and their keys survive, and so do idempotency keys.
    assert_eq!(acme.wallet("bw").await, acme_wallet_before);
    assert_eq!(reader.wallet("bw").await, acme_wallet_before);
    let again = admin
        .post_idem("/v1/wallets/w/mutations", "once", &body)
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.ok(201), idem);
    assert_balance_is_sum(&admin, "w").await;

    // A second restart after a SIGKILL at rest loses nothing either.
    let wallet_now = admin.wallet("w").await;
    server.crash_and_restart().await;
    assert_eq!(server.admin().wallet("w").await, wallet_now);
}
