//! Three prepaid instances on one PostgreSQL database: clients spread over them race
//! debits, holds (placed on one instance, settled on another) and transfers on a few
//! hot wallets. Afterwards every balance is the sum of its mutations, no floor was
//! crossed, the ledger balances (every unit sums to zero), and a final drain accepts
//! exactly the debits the balances allow.

use crate::common;

use common::*;
use prepaid_store::Store as _;
use prepaid_store_postgres::{PgConfig, PgStore};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

const INSTANCES: usize = 3;
const WALLETS: usize = 4;
/// What each wallet is funded with, in minor units.
const FUNDING: i64 = 2_000;
/// Every amount is this much (holds twice), so that a drained wallet ends at zero.
const STEP: i64 = 10;
const CLIENTS: usize = 24;
/// Operations of each client in the mixed phase.
const OPS_PER_CLIENT: usize = 30;
/// Debits beyond the affordable ones that the drain sends to each wallet.
const DRAIN_EXTRA: usize = 20;
const OPERATOR_SECRET: &str = "test-admin-multi-instance-01";

fn wallet_id(i: usize) -> String {
    format!("hot-{i}")
}

/// What one client saw in the mixed phase.
#[derive(Default)]
struct Tally {
    debits: usize,
    holds_committed: usize,
    holds_released: usize,
    transfers: usize,
    refused: usize,
    unexpected: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.debits += other.debits;
        self.holds_committed += other.holds_committed;
        self.holds_released += other.holds_released;
        self.transfers += other.transfers;
        self.refused += other.refused;
        self.unexpected.extend(other.unexpected);
    }

    /// Counts a refusal for want of funds; anything else is unexpected.
    fn refusal(&mut self, r: &Resp) {
        if r.status == 422 && r.json["code"] == "insufficient_funds" {
            r.problem(422, "insufficient_funds");
            self.refused += 1;
        } else {
            self.unexpected.push(format!(
                "{} {} -> {} {}",
                r.method, r.path, r.status, r.text
            ));
        }
    }
}

/// One client of the mixed phase: `client` picks its wallets; `apis` are the instances,
/// used in turn, so that a hold is placed on one and settled on the next.
async fn mixed_client(client: usize, apis: Vec<Api>) -> Tally {
    let mut tally = Tally::default();
    let mut turn = client;
    let mut next_api = || {
        turn += 1;
        apis[turn % apis.len()].clone()
    };
    for op in 0..OPS_PER_CLIENT {
        let wallet = wallet_id((client + op) % WALLETS);
        match (client + op) % 3 {
            0 => {
                let r = next_api().mutate(&wallet, "debit", STEP).await;
                match r.status {
                    201 => tally.debits += 1,
                    _ => tally.refusal(&r),
                }
            }
            1 => {
                let placed = next_api()
                    .post(
                        &format!("/v1/wallets/{wallet}/holds"),
                        &json!({"amount": 2 * STEP}),
                    )
                    .await;
                if placed.status != 201 {
                    tally.refusal(&placed);
                    continue;
                }
                let hold = str_of(&placed.json, "id").to_owned();
                let commit = op % 2 == 0;
                let (path, body) = if commit {
                    (format!("/v1/holds/{hold}/commit"), json!({"amount": STEP}))
                } else {
                    (format!("/v1/holds/{hold}/release"), json!({}))
                };
                let settled = next_api().post(&path, &body).await;
                if settled.status != 200 {
                    tally.unexpected.push(format!(
                        "POST {path} -> {} {}",
                        settled.status, settled.text
                    ));
                } else if commit {
                    tally.holds_committed += 1;
                } else {
                    tally.holds_released += 1;
                }
            }
            _ => {
                let to = wallet_id((client + op + 1) % WALLETS);
                let r = next_api()
                    .post(
                        "/v1/transfers",
                        &json!({"from_wallet_id": wallet, "to_wallet_id": to, "amount": STEP}),
                    )
                    .await;
                match r.status {
                    201 => tally.transfers += 1,
                    _ => tally.refusal(&r),
                }
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_one_ledger() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    // All three start at once: migrations and the operator's bootstrap happen once.
    let (a, b, c) = tokio::join!(
        Server::start_on_schema(&schema, OPERATOR_SECRET),
        Server::start_on_schema(&schema, OPERATOR_SECRET),
        Server::start_on_schema(&schema, OPERATOR_SECRET),
    );
    let servers = [a, b, c];
    let apis: Vec<Api> = servers.iter().map(Server::admin).collect();
    for (i, api) in apis.iter().enumerate() {
        api.create_customer(&format!("customer-{i}")).await;
    }
    for w in 0..WALLETS {
        let api = &apis[w % INSTANCES];
        api.create_wallet(
            &format!("customer-{}", w % INSTANCES),
            &wallet_id(w),
            "EUR",
            2,
        )
        .await;
        api.top_up(&wallet_id(w), FUNDING).await;
    }
    // What one instance wrote, the others read.
    for api in &apis {
        for w in 0..WALLETS {
            assert_eq!(api.balance(&wallet_id(w)).await, FUNDING);
        }
    }

    // The mixed phase.
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let apis: Vec<Api> = servers.iter().map(Server::admin).collect();
            tokio::spawn(mixed_client(client, apis))
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.add(t.await.expect("client task"));
    }
    assert!(
        tally.unexpected.is_empty(),
        "unexpected answers: {:?}",
        tally.unexpected
    );
    assert!(tally.debits > 0 && tally.transfers > 0, "the load did work");
    assert!(tally.holds_committed > 0 && tally.holds_released > 0);

    let mut balances = BTreeMap::new();
    for w in 0..WALLETS {
        let id = wallet_id(w);
        let wallet = apis[w % INSTANCES].wallet(&id).await;
        assert_eq!(int(&wallet, "held"), 0, "every hold was settled: {wallet}");
        assert_eq!(int(&wallet, "balance") % STEP, 0, "{wallet}");
        balances.insert(id, int(&wallet, "balance"));
    }
    let spent = (tally.debits + tally.holds_committed) as i64 * STEP;
    assert_eq!(
        balances.values().sum::<i64>(),
        WALLETS as i64 * FUNDING - spent,
        "money was spent only by accepted debits and committed holds"
    );

    // The drain: racing debits on every wallet, through every instance, accept
    // exactly what each balance allows.
    let drained: Vec<_> = balances
        .iter()
        .flat_map(|(id, balance)| {
            let affordable = (balance / STEP) as usize;
            (0..affordable + DRAIN_EXTRA).map(move |n| (id.clone(), n))
        })
        .collect();
    let work = Arc::new(std::sync::Mutex::new(drained));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let api = servers[client % INSTANCES].admin();
            let work = work.clone();
            tokio::spawn(async move {
                let mut accepted = BTreeMap::<String, usize>::new();
                let mut tally = Tally::default();
                loop {
                    let next = work.lock().expect("work list").pop();
                    let Some((wallet, _)) = next else { break };
                    let r = api.mutate(&wallet, "debit", STEP).await;
                    if r.status == 201 {
                        *accepted.entry(wallet).or_default() += 1;
                    } else {
                        tally.refusal(&r);
                    }
                }
                (accepted, tally)
            })
        })
        .collect();
    let mut drain_accepted = BTreeMap::<String, usize>::new();
    let mut drain_tally = Tally::default();
    for t in tasks {
        let (accepted, tally) = t.await.expect("drain task");
        for (wallet, n) in accepted {
            *drain_accepted.entry(wallet).or_default() += n;
        }
        drain_tally.add(tally);
    }
    assert!(
        drain_tally.unexpected.is_empty(),
        "unexpected answers: {:?}",
        drain_tally.unexpected
    );
    for (id, balance) in &balances {
        let affordable = (balance / STEP) as usize;
        assert_eq!(
            drain_accepted.get(id).copied().unwrap_or(0),
            affordable,
            "accepted debits on {id} with {balance} left"
        );
    }
    assert_eq!(drain_tally.refused, WALLETS * DRAIN_EXTRA);

    // Every wallet, read through every instance: empty, the sum of its mutations, never
    // below its floor, and with exactly the debits that were answered 201.
    let accepted_debits = tally.debits + drain_accepted.values().sum::<usize>();
    let mut listed_debits = 0;
    for w in 0..WALLETS {
        let id = wallet_id(w);
        for api in &apis {
            assert_eq!(api.balance(&id).await, 0, "{id} is drained");
        }
        let muts = assert_balance_is_sum(&apis[w % INSTANCES], &id).await;
        for m in &muts {
            assert!(int(m, "balance_after") >= 0, "the floor was crossed: {m}");
        }
        listed_debits += muts.iter().filter(|m| m["kind"] == "debit").count();
    }
    assert_eq!(
        listed_debits, accepted_debits,
        "debits recorded vs answered 201"
    );

    // The database's own view: double entry holds, every unit sums to zero.
    let store = PgStore::connect(schema.url(), PgConfig::default())
        .await
        .expect("open the store");
    let breaches = store.check_invariants().await.expect("check invariants");
    assert!(breaches.is_empty(), "invariants broken: {breaches:?}");
}
