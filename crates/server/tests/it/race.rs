//! Concurrent debits against one wallet: the floor holds under contention. A wallet
//! that can afford exactly N debits accepts exactly N of many more sent at once.

use crate::common;

use common::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const BALANCE: i64 = 1_000;
const DEBIT: i64 = 10;
const AFFORDABLE: usize = (BALANCE / DEBIT) as usize;
const REQUESTS: usize = 200;
const CLIENTS: usize = 64;

#[derive(Default)]
struct Tally {
    accepted: Vec<serde_json::Value>,
    refused: usize,
    other: Vec<String>,
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_the_affordable_debits_succeed() {
    let server = Server::start().await;
    let admin = server.admin();
    admin.funded_wallet("alice", "w", BALANCE).await;

    let remaining = Arc::new(AtomicUsize::new(REQUESTS));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        // Each client has its own connection pool, as separate processes would.
        let api = admin.with_bearer(server.admin_secret());
        let remaining = remaining.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let r = api.mutate("w", "debit", DEBIT).await;
                match r.status {
                    201 => tally.accepted.push(r.ok(201)),
                    422 => {
                        let p = r.problem(422, "insufficient_funds");
                        assert_eq!(p["requested"], DEBIT);
                        let available = p["available"].as_i64().expect("available");
                        assert!(
                            (0..DEBIT).contains(&available),
                            "refused while {available} was available"
                        );
                        tally.refused += 1;
                    }
                    _ => tally.other.push(format!("{} {}", r.status, r.text)),
                }
            }
            tally
        }));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut other = Vec::new();
    for t in tasks {
        let t = t.await.expect("client task");
        accepted.extend(t.accepted);
        refused += t.refused;
        other.extend(t.other);
    }

    assert!(other.is_empty(), "unexpected answers: {other:?}");
    assert_eq!(accepted.len(), AFFORDABLE, "accepted debits");
    assert_eq!(refused, REQUESTS - AFFORDABLE, "refused debits");

    // Every accepted debit saw its own balance: the balances after are 990, 980, ... 0.
    let afters: BTreeSet<i64> = accepted.iter().map(|m| int(m, "balance_after")).collect();
    let expected: BTreeSet<i64> = (0..AFFORDABLE as i64).map(|i| i * DEBIT).collect();
    assert_eq!(afters, expected, "each debit must see the previous one");

    let w = admin.wallet("w").await;
    assert_eq!(int(&w, "balance"), 0);
    assert_eq!(int(&w, "available"), 0);
    let muts = assert_balance_is_sum(&admin, "w").await;
    assert_eq!(muts.len(), AFFORDABLE + 1);
    for m in &muts {
        assert!(int(m, "balance_after") >= 0, "balance went negative: {m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_holds_and_debits_never_pass_the_floor() {
    let server = Server::start().await;
    let admin = server.admin();
    admin.funded_wallet("alice", "w", BALANCE).await;

    // Half the clients place holds, half debit; each unit of 10 can go to only one.
    let remaining = Arc::new(AtomicUsize::new(REQUESTS));
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let api = admin.with_bearer(server.admin_secret());
        let remaining = remaining.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            let mut unexpected = Vec::new();
            while remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let r = if client % 2 == 0 {
                    api.post("/v1/wallets/w/holds", &serde_json::json!({"amount": DEBIT}))
                        .await
                } else {
                    api.mutate("w", "debit", DEBIT).await
                };
                match r.status {
                    201 => ok += 1,
                    422 => {
                        r.problem(422, "insufficient_funds");
                    }
                    _ => unexpected.push(format!("{} {}", r.status, r.text)),
                }
            }
            (ok, unexpected)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (n, unexpected) = t.await.expect("client task");
        assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
        ok += n;
    }
    assert_eq!(ok, AFFORDABLE, "holds plus debits accepted");
    let w = admin.wallet("w").await;
    assert_eq!(int(&w, "available"), 0);
    assert_eq!(int(&w, "balance") - int(&w, "held"), 0);
    assert_balance_is_sum(&admin, "w").await;
}
