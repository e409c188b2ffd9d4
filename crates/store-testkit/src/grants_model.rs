//! A model-based test of grants that every backend runs beside [`crate::model`].
//!
//! Random sequences of credits with random terms (expiry, priority, category), debits,
//! debit holds committed in part or released, reversals of earlier mutations (with and
//! without `allow_negative`), and clock moves followed by sweeps run through
//! `Store::apply` on a fresh store, on two wallets (one with a floor of zero, one with
//! none, so that debt is reached), while a naive model predicts every outcome. The
//! model keeps each grant's remainder and reservation in plain structs and spends one
//! unit at a time from the first grant of the documented order, without calling the
//! ledger's rules.
//!
//! After every step each wallet's balance and held, and every grant's remainder and
//! reservation, must match the model; at the end the store's own invariant check (every
//! balance the sum of its mutations, every unit summing to zero, grants accounting for
//! every balance) must find nothing.

use crate::conformance::Backend;
use crate::model::MakeBackend;
use prepaid_ledger::{
    Amount, ApiKeyName, Command, CustomerId, Done, Floor, GrantCategory, GrantTerms, HoldId,
    MutationId, MutationKind, NewApiKey, NewWallet, Outcome, Priority, Reference, Refusal, Request,
    Scopes, TenantId, Timestamp, Unit, WalletId, reversal_id,
};
use prepaid_store::{PAGE_SIZE_MAX, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

const T0: i64 = 1_767_225_600_000_000;
const TICK: i64 = 1_000_000;
const FLOORS: [Floor; 2] = [Floor::ZERO, Floor::Unlimited];
const CASES_DEFAULT: u32 = 48;
const STEPS_MAX: usize = 30;

#[derive(Clone, Debug)]
enum Op {
    Credit {
        wallet: usize,
        amount: i64,
        expires_in: Option<i64>,
        priority: u8,
        category: u8,
    },
    Debit {
        wallet: usize,
        amount: i64,
    },
    Hold {
        wallet: usize,
        amount: i64,
    },
    Commit {
        pick: usize,
        part: Option<i64>,
    },
    Release {
        pick: usize,
    },
    Reverse {
        pick: usize,
        allow_negative: bool,
    },
    Advance {
        ticks: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 1..40i64, prop::option::of(1..6i64), 0..3u8, 0..3u8).prop_map(
            |(wallet, amount, expires_in, priority, category)| Op::Credit {
                wallet,
                amount,
                expires_in,
                priority,
                category,
            }
        ),
        3 => (0..2usize, 1..50i64).prop_map(|(wallet, amount)| Op::Debit { wallet, amount }),
        2 => (0..2usize, 1..30i64).prop_map(|(wallet, amount)| Op::Hold { wallet, amount }),
        1 => (0..8usize, prop::option::of(1..30i64))
            .prop_map(|(pick, part)| Op::Commit { pick, part }),
        1 => (0..8usize).prop_map(|pick| Op::Release { pick }),
        2 => (0..16usize, any::<bool>())
            .prop_map(|(pick, allow_negative)| Op::Reverse { pick, allow_negative }),
        2 => (1..4i64).prop_map(|ticks| Op::Advance { ticks }),
    ]
}

// ---------------------------------------------------------------------------------
// The model.

#[derive(Clone, Debug)]
struct MGrant {
    id: MutationId,
    wallet: usize,
    expires_at: Option<i64>,
    priority: u8,
    category: u8,
    created_at: i64,
    remaining: i64,
    held: i64,
}

impl MGrant {
    fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
    fn drawable(&self, now: i64) -> i64 {
        if self.expired(now) {
            0
        } else {
            self.remaining - self.held
        }
    }
    /// Where it falls in the spend order: priority, expiry (never last), granted
    /// before named before paid, oldest, id.
    fn key(&self) -> (u8, bool, i64, u8, i64, MutationId) {
        let rank = match self.category {
            1 => 0,
            2 => 1,
            _ => 2,
        };
        (
            self.priority,
            self.expires_at.is_none(),
            self.expires_at.unwrap_or(0),
            rank,
            self.created_at,
            self.id,
        )
    }
}

#[derive(Clone, Debug)]
struct MHold {
    id: HoldId,
    wallet: usize,
    amount: i64,
    reserved: Vec<(MutationId, i64)>,
    pending: bool,
}

#[derive(Clone, Debug)]
struct MMutation {
    id: MutationId,
    wallet: usize,
    kind: MutationKind,
    amount: i64,
    drawn: Vec<(MutationId, i64)>,
}

#[derive(Default)]
struct Model {
    now: i64,
    balance: [i64; 2],
    held: [i64; 2],
    grants: Vec<MGrant>,
    holds: Vec<MHold>,
    mutations: Vec<MMutation>,
    reversed: HashMap<MutationId, MutationId>,
}

impl Model {
    fn unspendable(&self, w: usize) -> i64 {
        self.grants
            .iter()
            .filter(|g| g.wallet == w && g.expired(self.now))
            .map(|g| (g.remaining - g.held).max(0))
            .sum()
    }

    fn room(&self, w: usize) -> Option<i64> {
        match FLOORS[w] {
            Floor::Limit(floor) => {
                Some(self.balance[w] - self.held[w] - floor - self.unspendable(w))
            }
            Floor::Unlimited => None,
        }
    }

    /// Takes `amount` one unit at a time from the first drawable grant of `w` in the
    /// spend order, without changing anything; returns what each gives, in order.
    fn plan(&self, w: usize, amount: i64, grants: &[MGrant]) -> Vec<(MutationId, i64)> {
        let mut left: Vec<MGrant> = grants.iter().filter(|g| g.wallet == w).cloned().collect();
        let mut out: Vec<(MutationId, i64)> = Vec::new();
        for _ in 0..amount {
            let Some(best) = left
                .iter_mut()
                .filter(|g| g.drawable(self.now) > 0)
                .min_by_key(|g| g.key())
            else {
                break;
            };
            best.remaining -= 1;
            match out.last_mut() {
                Some((id, n)) if *id == best.id => *n += 1,
                _ => out.push((best.id, 1)),
            }
        }
        out
    }

    fn grant_mut(&mut self, id: MutationId) -> &mut MGrant {
        self.grants
            .iter_mut()
            .find(|g| g.id == id)
            .expect("a grant the model made")
    }

    fn debt(&self, w: usize) -> i64 {
        let remaining: i64 = self
            .grants
            .iter()
            .filter(|g| g.wallet == w)
            .map(|g| g.remaining)
            .sum();
        (self.balance[w] - remaining).min(0)
    }
}

// ---------------------------------------------------------------------------------
// Running a sequence.

fn tenant() -> TenantId {
    TenantId::parse("default").unwrap()
}

fn wallet_id(w: usize) -> WalletId {
    WalletId::parse(&format!("w{w}")).unwrap()
}

fn request(command: Command) -> Request {
    Request::new(tenant(), command)
}

struct Ids(u128);

impl Ids {
    fn next(&mut self) -> Uuid {
        self.0 += 1;
        // Version 7 layout, so that ids sort by their making as server ids do.
        Uuid::from_u128((0x0190_0000_0000_7000_8000_0000_0000_0000u128) | self.0)
    }
}

async fn setup(backend: &dyn Backend) -> Arc<dyn Store> {
    let store = backend.fresh().await;
    let now = Timestamp::from_micros(T0);
    let key = NewApiKey {
        name: ApiKeyName::parse("root").unwrap(),
        secret_sha256: [7; 32],
        scopes: Scopes::ALL,
        customer: None,
    };
    assert!(
        store
            .bootstrap(&tenant(), key, now)
            .await
            .expect("bootstrap")
    );
    let mut batch = vec![request(Command::CreateCustomer {
        id: CustomerId::parse("c").unwrap(),
        name: String::new(),
        link: String::new(),
    })];
    for (w, floor) in FLOORS.iter().enumerate() {
        batch.push(request(Command::CreateWallet {
            wallet: NewWallet {
                id: wallet_id(w),
                customer: CustomerId::parse("c").unwrap(),
                unit: Unit::new("EUR", 2).unwrap(),
                name: String::new(),
                product: String::new(),
                floor: *floor,
                ceiling: None,
                valid_from: None,
                valid_until: None,
                metadata: prepaid_ledger::Metadata::default(),
            },
        }));
    }
    for outcome in store.apply(batch, now).await.expect("setup") {
        assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    }
    store
}

async fn one(store: &Arc<dyn Store>, command: Command, now: i64) -> Outcome {
    let mut outcomes = store
        .apply(vec![request(command)], Timestamp::from_micros(now))
        .await
        .expect("apply");
    outcomes.pop().expect("one outcome")
}

fn done_mutation(outcome: &Outcome) -> &prepaid_ledger::Mutation {
    match outcome {
        Outcome::Done {
            done: Done::Mutation(m),
            ..
        } => m,
        Outcome::Done {
            done: Done::Hold {
                mutation: Some(m), ..
            },
            ..
        } => m,
        other => panic!("expected a mutation, got {other:?}"),
    }
}

/// Runs one step on the store and the model; panics where they differ.
async fn step(store: &Arc<dyn Store>, model: &mut Model, ids: &mut Ids, op: &Op) {
    let now = model.now;
    match *op {
        Op::Credit {
            wallet: w,
            amount,
            expires_in,
            priority,
            category,
        } => {
            let id = MutationId(ids.next());
            let terms = GrantTerms {
                expires_at: expires_in.map(|t| Timestamp::from_micros(now + t * TICK)),
                priority: Priority::new(priority * 10).unwrap(),
                category: match category {
                    0 => GrantCategory::Paid,
                    1 => GrantCategory::Granted,
                    _ => GrantCategory::Named("promo".into()),
                },
            };
            let command = Command::Post {
                id,
                wallet: wallet_id(w),
                kind: MutationKind::TopUp,
                amount: Amount::positive(amount).unwrap(),
                reference: Reference::default(),
                occurred_at: None,
                terms,
                metadata: prepaid_ledger::Metadata::default(),
            };
            let outcome = one(store, command, now).await;
            done_mutation(&outcome);
            // A credit repays the wallet's debt before it makes a grant.
            let granted = amount - (-model.debt(w)).min(amount);
            model.balance[w] += amount;
            if granted > 0 {
                model.grants.push(MGrant {
                    id,
                    wallet: w,
                    expires_at: expires_in.map(|t| now + t * TICK),
                    priority: priority * 10,
                    category,
                    created_at: now,
                    remaining: granted,
                    held: 0,
                });
            }
            model.mutations.push(MMutation {
                id,
                wallet: w,
                kind: MutationKind::TopUp,
                amount,
                drawn: Vec::new(),
            });
        }
        Op::Debit { wallet: w, amount } => {
            let id = MutationId(ids.next());
            let command = Command::Post {
                id,
                wallet: wallet_id(w),
                kind: MutationKind::Debit,
                amount: Amount::positive(amount).unwrap(),
                reference: Reference::default(),
                occurred_at: None,
                terms: GrantTerms::default(),
                metadata: prepaid_ledger::Metadata::default(),
            };
            let outcome = one(store, command, now).await;
            match model.room(w) {
                Some(room) if room < amount => {
                    assert_eq!(
                        outcome,
                        Outcome::Refused(Refusal::InsufficientFunds {
                            available: room,
                            requested: amount
                        })
                    );
                }
                _ => {
                    let drawn = model.plan(w, amount, &model.grants);
                    let m = done_mutation(&outcome);
                    let got: Vec<(MutationId, i64)> =
                        m.drawn.iter().map(|d| (d.grant, d.amount)).collect();
                    assert_eq!(got, drawn, "what the debit drew");
                    for &(g, n) in &drawn {
                        model.grant_mut(g).remaining -= n;
                    }
                    model.balance[w] -= amount;
                    model.mutations.push(MMutation {
                        id,
                        wallet: w,
                        kind: MutationKind::Debit,
                        amount: -amount,
                        drawn,
                    });
                }
            }
        }
        Op::Hold { wallet: w, amount } => {
            let id = HoldId(ids.next());
            let command = Command::PlaceHold {
                id,
                wallet: wallet_id(w),
                amount: Amount::positive(amount).unwrap(),
                reference: Reference::default(),
                expires_at: None,
                metadata: prepaid_ledger::Metadata::default(),
            };
            let outcome = one(store, command, now).await;
            match model.room(w) {
                Some(room) if room < amount => {
                    assert!(
                        matches!(outcome, Outcome::Refused(Refusal::InsufficientFunds { .. })),
                        "{outcome:?}"
                    );
                }
                _ => {
                    let reserved = model.plan(w, amount, &model.grants);
                    let Outcome::Done {
                        done: Done::Hold { hold, .. },
                        ..
                    } = &outcome
                    else {
                        panic!("expected a hold, got {outcome:?}");
                    };
                    let got: Vec<(MutationId, i64)> =
                        hold.reserved.iter().map(|d| (d.grant, d.amount)).collect();
                    assert_eq!(got, reserved, "what the hold reserved");
                    for &(g, n) in &reserved {
                        model.grant_mut(g).held += n;
                    }
                    model.held[w] += amount;
                    model.holds.push(MHold {
                        id,
                        wallet: w,
                        amount,
                        reserved,
                        pending: true,
                    });
                }
            }
        }
        Op::Commit { pick, part } => {
            let Some(h) = model.holds.get(pick % model.holds.len().max(1)).cloned() else {
                return;
            };
            let committed = part.map_or(h.amount, |p| p.min(h.amount));
            let id = MutationId(ids.next());
            let command = Command::CommitHold {
                hold: h.id,
                amount: Some(Amount::positive(committed).unwrap()),
                mutation_id: id,
                reference: None,
            };
            let outcome = one(store, command, now).await;
            if !h.pending {
                assert!(
                    matches!(outcome, Outcome::Refused(Refusal::HoldNotPending { .. })),
                    "{outcome:?}"
                );
                return;
            }
            // The reservation first, in its order, expired or not; then the rest as a
            // debit would draw it; then debt.
            let mut left = committed;
            let mut drawn: Vec<(MutationId, i64)> = Vec::new();
            for &(g, n) in &h.reserved {
                model.grant_mut(g).held -= n;
                let take = left.min(n);
                left -= take;
                if take > 0 {
                    model.grant_mut(g).remaining -= take;
                    drawn.push((g, take));
                }
            }
            for (g, n) in model.plan(h.wallet, left, &model.grants) {
                model.grant_mut(g).remaining -= n;
                match drawn.iter_mut().find(|(x, _)| *x == g) {
                    Some((_, m)) => *m += n,
                    None => drawn.push((g, n)),
                }
            }
            let m = done_mutation(&outcome);
            let got: Vec<(MutationId, i64)> = m.drawn.iter().map(|d| (d.grant, d.amount)).collect();
            assert_eq!(got, drawn, "what the commit drew");
            let slot = model.holds.iter_mut().find(|x| x.id == h.id).unwrap();
            slot.pending = false;
            model.held[h.wallet] -= h.amount;
            model.balance[h.wallet] -= committed;
            model.mutations.push(MMutation {
                id,
                wallet: h.wallet,
                kind: MutationKind::HoldCommit,
                amount: -committed,
                drawn,
            });
        }
        Op::Release { pick } => {
            let Some(h) = model.holds.get(pick % model.holds.len().max(1)).cloned() else {
                return;
            };
            let id = MutationId(ids.next());
            let outcome = one(
                store,
                Command::ReleaseHold {
                    hold: h.id,
                    mutation_id: id,
                },
                now,
            )
            .await;
            if !h.pending {
                assert!(
                    matches!(outcome, Outcome::Refused(Refusal::HoldNotPending { .. })),
                    "{outcome:?}"
                );
                return;
            }
            assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
            for &(g, n) in &h.reserved {
                model.grant_mut(g).held -= n;
            }
            model
                .holds
                .iter_mut()
                .find(|x| x.id == h.id)
                .unwrap()
                .pending = false;
            model.held[h.wallet] -= h.amount;
        }
        Op::Reverse {
            pick,
            allow_negative,
        } => {
            let Some(original) = model
                .mutations
                .get(pick % model.mutations.len().max(1))
                .cloned()
            else {
                return;
            };
            let id = reversal_id(original.id);
            let command = Command::Reverse {
                id,
                mutation: original.id,
                allow_negative,
                reference: Reference::default(),
            };
            let outcome = one(store, command, now).await;
            if let Some(&first) = model.reversed.get(&original.id) {
                assert_eq!(done_mutation(&outcome).id, first, "reversed once");
                return;
            }
            let w = original.wallet;
            let drawn: Vec<(MutationId, i64)> = match original.kind {
                MutationKind::Reversal | MutationKind::Expiry => {
                    assert_eq!(outcome, Outcome::Refused(Refusal::NotReversible));
                    return;
                }
                MutationKind::TopUp => {
                    let free = model
                        .grants
                        .iter()
                        .find(|g| g.id == original.id)
                        .map_or(0, |g| g.remaining - g.held);
                    let reversible = free.min(model.room(w).unwrap_or(i64::MAX)).max(0);
                    if original.amount > reversible && !allow_negative {
                        assert_eq!(
                            outcome,
                            Outcome::Refused(Refusal::ReversalExceedsRemaining { reversible })
                        );
                        return;
                    }
                    let take = original.amount.min(free).max(0);
                    if take > 0 {
                        model.grant_mut(original.id).remaining -= take;
                        vec![(original.id, take)]
                    } else {
                        Vec::new()
                    }
                }
                _ => {
                    // What the debit took beyond its grants comes back as a credit:
                    // it repays debt, and the rest is a grant of the reversal's own.
                    let undrawn =
                        -original.amount - original.drawn.iter().map(|&(_, n)| n).sum::<i64>();
                    let granted = undrawn - (-model.debt(w)).min(undrawn);
                    if granted > 0 {
                        model.grants.push(MGrant {
                            id,
                            wallet: w,
                            expires_at: None,
                            priority: 50,
                            category: 0,
                            created_at: now,
                            remaining: granted,
                            held: 0,
                        });
                    }
                    for &(g, n) in &original.drawn {
                        model.grant_mut(g).remaining += n;
                    }
                    original.drawn.iter().map(|&(g, n)| (g, -n)).collect()
                }
            };
            let m = done_mutation(&outcome);
            let got: Vec<(MutationId, i64)> = m.drawn.iter().map(|d| (d.grant, d.amount)).collect();
            assert_eq!(got, drawn, "what the reversal drew");
            model.balance[w] -= original.amount;
            model.reversed.insert(original.id, id);
            model.mutations.push(MMutation {
                id,
                wallet: w,
                kind: MutationKind::Reversal,
                amount: -original.amount,
                drawn,
            });
        }
        Op::Advance { ticks } => {
            model.now += ticks * TICK;
            let now = model.now;
            loop {
                let report = store
                    .sweep(Timestamp::from_micros(now))
                    .await
                    .expect("sweep");
                if report.grants_expired == 0 {
                    break;
                }
            }
            for g in model.grants.iter_mut() {
                if g.expired(now) && g.remaining > g.held {
                    let free = g.remaining - g.held;
                    g.remaining -= free;
                    model.balance[g.wallet] -= free;
                }
            }
        }
    }
}

/// The store's wallets and grants against the model's.
async fn compare(store: &Arc<dyn Store>, model: &Model, op: &Op) {
    for w in 0..2 {
        let wallet = store
            .wallet(&tenant(), &wallet_id(w))
            .await
            .expect("wallet")
            .expect("exists");
        assert_eq!(
            (wallet.balance, wallet.held),
            (model.balance[w], model.held[w]),
            "wallet w{w} after {op:?}"
        );
        let mut grants = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .grants(&tenant(), &wallet_id(w), after, PAGE_SIZE_MAX)
                .await
                .expect("grants");
            grants.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut got: Vec<(MutationId, i64, i64)> = grants
            .iter()
            .map(|g| (g.grant.id, g.grant.remaining, g.grant.held))
            .collect();
        let mut want: Vec<(MutationId, i64, i64)> = model
            .grants
            .iter()
            .filter(|g| g.wallet == w)
            .map(|g| (g.id, g.remaining, g.held))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "grants of w{w} after {op:?}");
    }
}

async fn run(backend: Box<dyn Backend>, ops: Vec<Op>) {
    // The backend owns the database (a PostgreSQL schema is dropped with it), so it
    // lives until the run ends.
    let store = setup(&*backend).await;
    let mut model = Model {
        now: T0,
        ..Model::default()
    };
    let mut ids = Ids(0);
    for op in &ops {
        step(&store, &mut model, &mut ids, op).await;
        compare(&store, &model, op).await;
    }
    let breaches = store.check_invariants().await.expect("audit");
    assert!(breaches.is_empty(), "{breaches:?} after {ops:?}");
}

/// Random sequences, each on a fresh store, checked against the model.
pub fn random_runs(make: MakeBackend<'_>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if runtime.block_on(make()).is_none() {
        return;
    }
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_DEFAULT);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = prop::collection::vec(op(), 1..=STEPS_MAX);
    let result = runner.run(&strategy, |ops| {
        runtime.block_on(async {
            let backend = make().await.expect("the backend was there a moment ago");
            run(backend, ops).await;
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("the store's grants disagree with the model: {e}");
    }
}
