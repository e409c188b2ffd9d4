//! A model-based test that every backend runs, like the conformance suite (behind the
//! `model` feature, which brings in `proptest`).
//!
//! Random sequences of client commands (wallets of two units, three kinds of floor and
//! with or without a ceiling,
//! top-ups, debits, adjustments, debit and credit holds with and without expiry,
//! commits, releases,
//! transfers, idempotent repeats, batches, customer-restricted callers, two tenants,
//! clock moves and sweeps) run through `Store::apply` on a fresh store, while a naive
//! model made of plain maps predicts every outcome. The model is written from the
//! documented rules and never calls the core's rule functions, so a mistake has to be
//! made twice, in two different ways, to go unnoticed.
//!
//! After every step each wallet's status, balance, held, incoming and available must
//! match the
//! model. At the end every hold, every wallet's history of non-zero mutations, the
//! store's own invariant check and the per-unit zero sums must match too.
//!
//! Where the rules leave the order of two refusals open (an id already taken by a
//! request that also breaks a rule, say), the model accepts either code; where they
//! leave a hold's final status open (a hold that expired by time on a wallet expiring
//! in the same sweep), it accepts either status. The state never depends on which.
//!
//! `PROPTEST_CASES` overrides the number of cases.
//!
//! A backend's test file calls [`crate::model_tests!`] with an async expression that
//! makes one [`Backend`] value (or, after `optional`, an `Option` of one), as for
//! [`crate::conformance_tests!`]; each random case and each fixed sequence runs on a
//! fresh store of its own.

use std::collections::{HashMap, HashSet};

use crate::conformance::Backend;
use prepaid_ledger::{
    AMOUNT_MAX, Amount, ApiKeyName, BALANCE_ABS_MAX, Command, CustomerId, Done, Fingerprint, Floor,
    HoldDirection, HoldId, HoldStatus, IdempotencyKey, MutationId, MutationKind, NewApiKey,
    NewWallet, Outcome, Reference, Request, Scopes, SystemAccount, TenantId, Timestamp, TransferId,
    Unit, Wallet, WalletId, WalletStatus, available,
};
use prepaid_store::{MutationQuery, PAGE_SIZE_MAX, Store};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use uuid::Uuid;

/// 2026-01-01T00:00:00Z: where every case's clock starts.
const T0: i64 = 1_767_225_600_000_000;
/// The clock moves in whole ticks, so validity windows and hold expiries are hit
/// exactly at their edges.
const TICK: i64 = 1_000_000;
const TENANTS: [&str; 2] = ["default", "acme"];
/// The last customer is never created.
const CUSTOMERS: [&str; 3] = ["alice", "bob", "nobody"];
const CUSTOMERS_CREATED: usize = 2;
/// Wallet ids `w0`.. per tenant; the same id in both tenants names two wallets.
const WALLETS: usize = 4;
const UNITS: [(&str, u8); 2] = [("EUR", 2), ("MIN", 0)];
const FLOORS: [Floor; 3] = [Floor::ZERO, Floor::Limit(-50), Floor::Unlimited];
/// Low enough that top-ups and transfers in reach it often.
const CEILINGS: [Option<i64>; 2] = [None, Some(300)];
const CASES_DEFAULT: u32 = 64;
const ACTIONS_MAX: usize = 40;
const BATCH_LEN_MAX: usize = 4;

// ---------------------------------------------------------------------------------
// What the generator makes.

#[derive(Clone, Copy, Debug)]
enum PostKind {
    TopUp,
    Debit,
    Adjustment,
}

/// An amount: a fixed one, or one at the edge of what the wallet has available now.
#[derive(Clone, Copy, Debug)]
enum Sum {
    Fixed(i64),
    /// The wallet's available amount (its balance when it has no floor) plus this.
    Available(i64),
}

#[derive(Clone, Copy, Debug)]
enum CommitAmount {
    /// No amount: all of the hold.
    All,
    /// The hold's own amount, stated.
    Exact,
    /// One more than the hold.
    OneOver,
    /// Any amount, often more than the hold, sometimes zero.
    Raw(i64),
}

/// A wallet slot: mostly one that exists in the model, sometimes any slot at all.
#[derive(Clone, Copy, Debug)]
struct Target {
    pick: usize,
    existing: bool,
}

/// A hold: mostly a pending one, sometimes any hold asked for so far.
#[derive(Clone, Copy, Debug)]
struct HoldPick {
    pick: usize,
    pending: bool,
    /// Asks for the hold in the other tenant, where it must not be found.
    foreign: bool,
}

#[derive(Clone, Debug)]
enum Op {
    CreateWallet {
        tenant: usize,
        wallet: usize,
        customer: usize,
        unit: usize,
        floor: usize,
        ceiling: usize,
        /// In ticks from now.
        valid_from: Option<i64>,
        /// In ticks after `valid_from` (or now).
        valid_for: Option<i64>,
    },
    SetStatus {
        tenant: usize,
        wallet: Target,
        suspend: bool,
    },
    Post {
        tenant: usize,
        wallet: Target,
        kind: PostKind,
        amount: Sum,
    },
    PlaceHold {
        tenant: usize,
        wallet: Target,
        amount: Sum,
        /// In ticks from now; zero places a hold that is already expired.
        expires_in: Option<i64>,
        /// A credit hold (room under the ceiling) instead of a debit hold.
        credit: bool,
    },
    Commit {
        hold: HoldPick,
        amount: CommitAmount,
    },
    Release {
        hold: HoldPick,
    },
    Transfer {
        tenant: usize,
        from: Target,
        to: Target,
        /// Whether `to` may be `from` itself; otherwise another wallet is taken when
        /// there is one.
        same: bool,
        amount: Sum,
    },
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    keyed: bool,
    /// A caller restricted to this customer.
    as_customer: Option<usize>,
}

#[derive(Clone, Copy, Debug)]
enum Again {
    /// The same request with the same key and fingerprint: a replay.
    Same,
    /// The same key with another fingerprint: a conflict.
    NewFingerprint,
    /// The same command without a key: its ids are taken.
    WithoutKey,
    /// The same key in the other tenant, with fresh ids: a new request there.
    OtherTenant,
}

#[derive(Clone, Debug)]
enum Action {
    /// One request, or several in one batch.
    Send(Vec<Step>),
    /// Sends again one of the requests sent before.
    Repeat { pick: usize, again: Again },
    /// Moves the clock, then maybe sweeps.
    Advance { ticks: i64, sweep: bool },
}

fn tenant() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(0usize), 1 => Just(1usize)]
}

fn positive() -> impl Strategy<Value = Sum> {
    prop_oneof![
        8 => (1..=100i64).prop_map(Sum::Fixed),
        1 => (101..=10_000i64).prop_map(Sum::Fixed),
        1 => Just(Sum::Fixed(AMOUNT_MAX)),
        4 => (-1..=1i64).prop_map(Sum::Available),
    ]
}

fn signed() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => (1..=100i64, any::<bool>()).prop_map(|(v, neg)| if neg { -v } else { v }),
        1 => Just(AMOUNT_MAX),
        1 => Just(-AMOUNT_MAX),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    (any::<usize>(), prop::bool::weighted(0.9))
        .prop_map(|(pick, existing)| Target { pick, existing })
}

fn hold_pick() -> impl Strategy<Value = HoldPick> {
    (
        any::<usize>(),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(pick, pending, foreign)| HoldPick {
            pick,
            pending,
            foreign,
        })
}

fn create_wallet() -> impl Strategy<Value = Op> {
    (
        tenant(),
        0..WALLETS,
        prop_oneof![6 => 0..CUSTOMERS_CREATED, 1 => Just(CUSTOMERS_CREATED)],
        prop_oneof![3 => Just(0usize), 1 => Just(1usize)],
        0..FLOORS.len(),
        prop_oneof![3 => Just(0usize), 1 => Just(1usize)],
        prop::option::weighted(0.2, -1..=2i64),
        prop::option::weighted(0.5, 1..=6i64),
    )
        .prop_map(
            |(tenant, wallet, customer, unit, floor, ceiling, valid_from, valid_for)| {
                Op::CreateWallet {
                    tenant,
                    wallet,
                    customer,
                    unit,
                    floor,
                    ceiling,
                    valid_from,
                    valid_for,
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => create_wallet(),
        1 => (tenant(), target(), prop::bool::weighted(0.6))
            .prop_map(|(tenant, wallet, suspend)| Op::SetStatus { tenant, wallet, suspend }),
        6 => (
            tenant(),
            target(),
            prop_oneof![
                4 => Just(PostKind::TopUp),
                3 => Just(PostKind::Debit),
                1 => Just(PostKind::Adjustment),
            ],
            positive(),
            signed(),
        )
            .prop_map(|(tenant, wallet, kind, amount, adjustment)| Op::Post {
                tenant,
                wallet,
                kind,
                amount: if matches!(kind, PostKind::Adjustment) { Sum::Fixed(adjustment) } else { amount },
            }),
        4 => (tenant(), target(), positive(), prop::option::of(0..=4i64), prop::bool::weighted(0.3)).prop_map(
            |(tenant, wallet, amount, expires_in, credit)| Op::PlaceHold { tenant, wallet, amount, expires_in, credit }
        ),
        3 => (
            hold_pick(),
            prop_oneof![
                1 => Just(CommitAmount::All),
                1 => Just(CommitAmount::Exact),
                1 => Just(CommitAmount::OneOver),
                2 => (0..=120i64).prop_map(CommitAmount::Raw),
            ],
        )
            .prop_map(|(hold, amount)| Op::Commit { hold, amount }),
        2 => hold_pick().prop_map(|hold| Op::Release { hold }),
        4 => (tenant(), target(), target(), prop::bool::weighted(0.1), positive())
            .prop_map(|(tenant, from, to, same, amount)| Op::Transfer { tenant, from, to, same, amount }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        op(),
        prop::bool::weighted(0.4),
        prop::option::weighted(0.1, 0..CUSTOMERS.len()),
    )
        .prop_map(|(op, keyed, as_customer)| Step {
            op,
            keyed,
            as_customer,
        })
}

/// A few wallets to begin with, most of them topped up, so that most commands find
/// a wallet with something in it.
fn opening() -> impl Strategy<Value = Vec<Action>> {
    let plain = |op| Step {
        op,
        keyed: false,
        as_customer: None,
    };
    prop::collection::vec(
        (create_wallet(), prop::option::weighted(0.7, 50..=1_000i64)),
        2..=6,
    )
    .prop_map(move |wallets| {
        let mut actions = Vec::new();
        for (create, top_up) in wallets {
            let Op::CreateWallet { tenant, wallet, .. } = create else {
                unreachable!()
            };
            actions.push(Action::Send(vec![plain(create)]));
            if let Some(amount) = top_up {
                let wallet = Target {
                    pick: wallet,
                    existing: false,
                };
                let kind = PostKind::TopUp;
                let op = Op::Post {
                    tenant,
                    wallet,
                    kind,
                    amount: Sum::Fixed(amount),
                };
                actions.push(Action::Send(vec![plain(op)]));
            }
        }
        actions
    })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        12 => step().prop_map(|s| Action::Send(vec![s])),
        2 => prop::collection::vec(step(), 2..=BATCH_LEN_MAX).prop_map(Action::Send),
        3 => (
            any::<usize>(),
            prop_oneof![
                Just(Again::Same),
                Just(Again::NewFingerprint),
                Just(Again::WithoutKey),
                Just(Again::OtherTenant),
            ],
        )
            .prop_map(|(pick, again)| Action::Repeat { pick, again }),
        3 => (0..=3i64, prop::bool::weighted(0.7))
            .prop_map(|(ticks, sweep)| Action::Advance { ticks, sweep }),
    ]
}

// ---------------------------------------------------------------------------------
// Names of things.

fn tenant_id(t: usize) -> TenantId {
    TenantId::parse(TENANTS[t]).unwrap()
}
fn tenant_index(t: &TenantId) -> usize {
    TENANTS.iter().position(|n| *n == t.as_str()).unwrap()
}
fn customer_id(c: usize) -> CustomerId {
    CustomerId::parse(CUSTOMERS[c]).unwrap()
}
fn customer_index(c: &CustomerId) -> usize {
    CUSTOMERS.iter().position(|n| *n == c.as_str()).unwrap()
}
fn wallet_id(w: usize) -> WalletId {
    WalletId::parse(&format!("w{w}")).unwrap()
}
fn wallet_index(w: &WalletId) -> usize {
    w.as_str()[1..].parse().unwrap()
}
fn unit(u: usize) -> Unit {
    Unit::new(UNITS[u].0, UNITS[u].1).unwrap()
}
fn unit_index(u: &Unit) -> usize {
    UNITS
        .iter()
        .position(|&(c, s)| c == u.code() && s == u.scale())
        .unwrap()
}
fn ts(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

// ---------------------------------------------------------------------------------
// The model.

#[derive(Clone, Debug)]
struct MWallet {
    customer: usize,
    unit: usize,
    floor: Floor,
    ceiling: Option<i64>,
    valid_from: Option<i64>,
    valid_until: Option<i64>,
    status: WalletStatus,
    balance: i64,
    held: i64,
    /// The sum of pending credit holds.
    incoming: i64,
    /// Every non-zero change.
    log: Vec<Entry>,
}

/// What a mutation is tied to besides its wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Nothing,
    Hold(HoldId),
    /// The other wallet slot of a transfer.
    Wallet(usize),
}

/// One non-zero mutation as the model expects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    kind: MutationKind,
    amount: i64,
    balance_after: i64,
    recorded_at: i64,
    link: Link,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HoldState {
    Pending,
    Committed(i64),
    Released,
    Expired,
    /// Swept in the sweep that also expired its wallet: either is right.
    ReleasedOrExpired,
}

#[derive(Clone, Debug)]
struct MHold {
    tenant: usize,
    wallet: usize,
    credit: bool,
    amount: i64,
    expires_at: Option<i64>,
    state: HoldState,
    settled_at: Option<i64>,
}

/// The parts of a `Done` that the model predicts.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    Wallet {
        status: WalletStatus,
        balance: i64,
    },
    Mutation {
        kind: MutationKind,
        amount: i64,
        balance_after: i64,
    },
    Transfer {
        amount: i64,
        from_after: i64,
        to_after: i64,
    },
    Hold {
        status: HoldStatus,
        amount: i64,
        committed: Option<i64>,
    },
}

#[derive(Clone, Debug)]
enum Expect {
    Done(Shape),
    /// The first outcome of this idempotency key, replayed.
    Replay(Box<Outcome>),
    /// Refused with one of these codes.
    Refused(Vec<&'static str>),
}

fn refused(codes: &[&'static str]) -> Expect {
    Expect::Refused(codes.to_vec())
}

/// A refusal for a taken id, merged with whatever the rules say, in either order.
fn taken_or(id_code: &'static str, rule: Result<(), &'static str>) -> Expect {
    match rule {
        Ok(()) => refused(&[id_code]),
        Err(code) => refused(&[id_code, code]),
    }
}

fn fits(v: i128) -> bool {
    v.abs() <= i128::from(BALANCE_ABS_MAX)
}

/// The naive ledger: plain maps, plain arithmetic, the rules as the documents state
/// them.
#[derive(Debug, Default)]
struct Model {
    now: i64,
    wallets: HashMap<(usize, usize), MWallet>,
    holds: HashMap<HoldId, MHold>,
    mutation_ids: HashSet<MutationId>,
    keys: HashMap<(usize, String), (Fingerprint, Outcome)>,
    /// System account balances by (tenant, unit, account).
    system: HashMap<(usize, usize, SystemAccount), i64>,
}

impl Model {
    fn sees(viewer: Option<usize>, w: &MWallet) -> bool {
        viewer.is_none_or(|c| c == w.customer)
    }

    /// Whether a top-up, debit, hold or transfer may touch `w` now.
    fn usable(&self, w: &MWallet) -> Result<(), &'static str> {
        if w.status != WalletStatus::Active {
            return Err("wallet_not_active");
        }
        let started = w.valid_from.is_none_or(|t| t <= self.now);
        let ended = w.valid_until.is_some_and(|t| t <= self.now);
        if !started || ended {
            return Err("outside_validity");
        }
        Ok(())
    }

    /// A credit may not take a wallet above its ceiling, counting the credits its
    /// pending credit holds promise; a debit always may pass.
    fn below_ceiling(w: &MWallet, delta: i64) -> Result<(), &'static str> {
        let promised = i128::from(w.balance) + i128::from(w.incoming);
        match w.ceiling {
            Some(c) if delta > 0 && promised + i128::from(delta) > i128::from(c) => {
                Err("ceiling_exceeded")
            }
            _ => Ok(()),
        }
    }

    /// What a pending hold sets aside on its wallet: `held` or `incoming`.
    fn reserved(&mut self, t: usize, h: &MHold) -> &mut i64 {
        let w = self.wallets.get_mut(&(t, h.wallet)).unwrap();
        if h.credit {
            &mut w.incoming
        } else {
            &mut w.held
        }
    }

    fn affords(w: &MWallet, amount: i64) -> Result<(), &'static str> {
        match w.floor {
            Floor::Limit(floor)
                if i128::from(w.balance) - i128::from(w.held) - i128::from(floor)
                    < i128::from(amount) =>
            {
                Err("insufficient_funds")
            }
            _ => Ok(()),
        }
    }

    fn system_balance(&self, t: usize, u: usize, a: SystemAccount) -> i64 {
        self.system.get(&(t, u, a)).copied().unwrap_or(0)
    }

    /// Whether the wallet may gain `delta` and its counter-account lose it.
    fn bounded(
        &self,
        t: usize,
        w: &MWallet,
        delta: i64,
        counter: SystemAccount,
    ) -> Result<(), &'static str> {
        let counter_after = i128::from(self.system_balance(t, w.unit, counter)) - i128::from(delta);
        if fits(i128::from(w.balance) + i128::from(delta)) && fits(counter_after) {
            Ok(())
        } else {
            Err("balance_overflow")
        }
    }

    fn book(
        &mut self,
        t: usize,
        wi: usize,
        kind: MutationKind,
        delta: i64,
        counter: Option<SystemAccount>,
        link: Link,
    ) -> i64 {
        let w = self.wallets.get_mut(&(t, wi)).unwrap();
        w.balance += delta;
        let after = w.balance;
        if delta != 0 {
            w.log.push(Entry {
                kind,
                amount: delta,
                balance_after: after,
                recorded_at: self.now,
                link,
            });
        }
        if let Some(account) = counter {
            *self.system.entry((t, w.unit, account)).or_default() -= delta;
        }
        after
    }

    /// Predicts one request and, when it is carried out, applies it to the model.
    fn handle(&mut self, req: &Request) -> Expect {
        let t = tenant_index(&req.tenant);
        if let Some((key, fp)) = &req.idempotency
            && let Some((first_fp, first)) = self.keys.get(&(t, key.as_str().to_owned()))
        {
            return if first_fp == fp {
                Expect::Replay(Box::new(first.clone()))
            } else {
                refused(&["idempotency_conflict"])
            };
        }
        let viewer = req.customer_only.as_ref().map(customer_index);
        match &req.command {
            Command::CreateWallet { wallet } => self.create_wallet(t, viewer, wallet),
            Command::SetWalletStatus { wallet, status } => {
                let key = (t, wallet_index(wallet));
                match self.wallets.get_mut(&key).filter(|w| Self::sees(viewer, w)) {
                    None => refused(&["wallet_not_found"]),
                    Some(w) => {
                        w.status = *status;
                        Expect::Done(Shape::Wallet {
                            status: w.status,
                            balance: w.balance,
                        })
                    }
                }
            }
            Command::Post {
                id,
                wallet,
                kind,
                amount,
                ..
            } => self.post(t, viewer, *id, wallet, *kind, amount.get()),
            Command::PlaceHold {
                id,
                wallet,
                amount,
                expires_at,
                ..
            }
            | Command::PlaceCreditHold {
                id,
                wallet,
                amount,
                expires_at,
                ..
            } => self.place_hold(
                t,
                viewer,
                (*id, matches!(req.command, Command::PlaceCreditHold { .. })),
                wallet,
                amount.get(),
                expires_at.map(Timestamp::as_micros),
            ),
            Command::CommitHold {
                hold,
                amount,
                mutation_id,
                ..
            } => self.commit(t, viewer, *hold, amount.map(Amount::get), *mutation_id),
            Command::ReleaseHold { hold, mutation_id } => {
                self.release(t, viewer, *hold, *mutation_id)
            }
            Command::Transfer {
                debit_id,
                credit_id,
                from,
                to,
                amount,
                ..
            } => self.transfer(t, viewer, [*debit_id, *credit_id], from, to, amount.get()),
            other => panic!("the model does not send {other:?}"),
        }
    }

    fn create_wallet(&mut self, t: usize, viewer: Option<usize>, new: &NewWallet) -> Expect {
        let c = customer_index(&new.customer);
        let customer_seen = c < CUSTOMERS_CREATED && viewer.is_none_or(|v| v == c);
        let key = (t, wallet_index(&new.id));
        let exists = self.wallets.contains_key(&key);
        match (customer_seen, exists) {
            (false, false) => return refused(&["customer_not_found"]),
            (false, true) => return refused(&["customer_not_found", "wallet_exists"]),
            (true, true) => return refused(&["wallet_exists"]),
            (true, false) => {}
        }
        self.wallets.insert(
            key,
            MWallet {
                customer: c,
                unit: unit_index(&new.unit),
                floor: new.floor,
                ceiling: new.ceiling,
                valid_from: new.valid_from.map(Timestamp::as_micros),
                valid_until: new.valid_until.map(Timestamp::as_micros),
                status: WalletStatus::Active,
                balance: 0,
                held: 0,
                incoming: 0,
                log: Vec::new(),
            },
        );
        Expect::Done(Shape::Wallet {
            status: WalletStatus::Active,
            balance: 0,
        })
    }

    fn post(
        &mut self,
        t: usize,
        viewer: Option<usize>,
        id: MutationId,
        wallet: &WalletId,
        kind: MutationKind,
        amount: i64,
    ) -> Expect {
        let wi = wallet_index(wallet);
        let Some(w) = self.wallets.get(&(t, wi)).filter(|w| Self::sees(viewer, w)) else {
            return refused(&["wallet_not_found"]);
        };
        let (delta, counter) = match kind {
            MutationKind::TopUp => (amount, SystemAccount::World),
            MutationKind::Debit => (-amount, SystemAccount::Revenue),
            MutationKind::Adjustment => (amount, SystemAccount::Adjustment),
            other => panic!("the model does not post {other:?}"),
        };
        let rule = match kind {
            MutationKind::TopUp => self.usable(w),
            MutationKind::Debit => self.usable(w).and_then(|()| Self::affords(w, amount)),
            _ => Ok(()),
        }
        .and_then(|()| Self::below_ceiling(w, delta))
        .and_then(|()| self.bounded(t, w, delta, counter));
        if self.mutation_ids.contains(&id) {
            return taken_or("mutation_exists", rule);
        }
        if let Err(code) = rule {
            return refused(&[code]);
        }
        self.mutation_ids.insert(id);
        let balance_after = self.book(t, wi, kind, delta, Some(counter), Link::Nothing);
        Expect::Done(Shape::Mutation {
            kind,
            amount: delta,
            balance_after,
        })
    }

    /// A debit hold must be affordable; a credit hold must fit under the ceiling.
    fn place_hold(
        &mut self,
        t: usize,
        viewer: Option<usize>,
        (id, credit): (HoldId, bool),
        wallet: &WalletId,
        amount: i64,
        expires_at: Option<i64>,
    ) -> Expect {
        let wi = wallet_index(wallet);
        let Some(w) = self.wallets.get(&(t, wi)).filter(|w| Self::sees(viewer, w)) else {
            return refused(&["wallet_not_found"]);
        };
        let reserved = if credit { w.incoming } else { w.held };
        let rule = self
            .usable(w)
            .and_then(|()| {
                if credit {
                    Self::below_ceiling(w, amount)
                } else {
                    Self::affords(w, amount)
                }
            })
            .and_then(|()| {
                if fits(i128::from(reserved) + i128::from(amount)) {
                    Ok(())
                } else {
                    Err("balance_overflow")
                }
            });
        if self.holds.contains_key(&id) {
            return taken_or("hold_exists", rule);
        }
        if let Err(code) = rule {
            return refused(&[code]);
        }
        let h = MHold {
            tenant: t,
            wallet: wi,
            credit,
            amount,
            expires_at,
            state: HoldState::Pending,
            settled_at: None,
        };
        *self.reserved(t, &h) += amount;
        self.holds.insert(id, h);
        Expect::Done(Shape::Hold {
            status: HoldStatus::Pending,
            amount,
            committed: None,
        })
    }

    /// The hold `id` as the caller may see it.
    fn visible_hold(&self, t: usize, viewer: Option<usize>, id: HoldId) -> Option<MHold> {
        let h = self.holds.get(&id).filter(|h| h.tenant == t)?;
        Self::sees(viewer, &self.wallets[&(t, h.wallet)]).then(|| h.clone())
    }

    fn commit(
        &mut self,
        t: usize,
        viewer: Option<usize>,
        id: HoldId,
        amount: Option<i64>,
        mutation_id: MutationId,
    ) -> Expect {
        let Some(h) = self.visible_hold(t, viewer, id) else {
            return refused(&["hold_not_found"]);
        };
        let w = &self.wallets[&(t, h.wallet)];
        let committed = amount.unwrap_or(h.amount);
        let rule = if h.state != HoldState::Pending {
            Err("hold_not_pending")
        } else if h.expires_at.is_some_and(|e| e <= self.now) {
            Err("hold_expired")
        } else if committed > h.amount || committed < 0 {
            Err("commit_exceeds_hold")
        } else if h.credit {
            self.bounded(t, w, committed, SystemAccount::World)
        } else {
            self.bounded(t, w, -committed, SystemAccount::Revenue)
        };
        if self.mutation_ids.contains(&mutation_id) {
            return taken_or("mutation_exists", rule);
        }
        if let Err(code) = rule {
            return refused(&[code]);
        }
        self.mutation_ids.insert(mutation_id);
        // A credit hold's commit is a top-up from the world.
        let (kind, delta, counter) = if h.credit {
            (MutationKind::TopUp, committed, SystemAccount::World)
        } else {
            (MutationKind::HoldCommit, -committed, SystemAccount::Revenue)
        };
        self.book(t, h.wallet, kind, delta, Some(counter), Link::Hold(id));
        *self.reserved(t, &h) -= h.amount;
        self.settle(id, HoldState::Committed(committed));
        Expect::Done(Shape::Hold {
            status: HoldStatus::Committed,
            amount: h.amount,
            committed: Some(committed),
        })
    }

    fn release(
        &mut self,
        t: usize,
        viewer: Option<usize>,
        id: HoldId,
        mutation_id: MutationId,
    ) -> Expect {
        let Some(h) = self.visible_hold(t, viewer, id) else {
            return refused(&["hold_not_found"]);
        };
        let rule = if h.state == HoldState::Pending {
            Ok(())
        } else {
            Err("hold_not_pending")
        };
        if self.mutation_ids.contains(&mutation_id) {
            return taken_or("mutation_exists", rule);
        }
        if let Err(code) = rule {
            return refused(&[code]);
        }
        self.mutation_ids.insert(mutation_id);
        *self.reserved(t, &h) -= h.amount;
        self.settle(id, HoldState::Released);
        Expect::Done(Shape::Hold {
            status: HoldStatus::Released,
            amount: h.amount,
            committed: None,
        })
    }

    fn transfer(
        &mut self,
        t: usize,
        viewer: Option<usize>,
        ids: [MutationId; 2],
        from: &WalletId,
        to: &WalletId,
        amount: i64,
    ) -> Expect {
        let (fi, ti) = (wallet_index(from), wallet_index(to));
        let find = |wi| self.wallets.get(&(t, wi)).filter(|w| Self::sees(viewer, w));
        let (Some(f), Some(r)) = (find(fi), find(ti)) else {
            return if fi == ti {
                refused(&["wallet_not_found", "same_wallet"])
            } else {
                refused(&["wallet_not_found"])
            };
        };
        let rule = if fi == ti {
            Err("same_wallet")
        } else if f.unit != r.unit {
            Err("unit_mismatch")
        } else {
            self.usable(f)
                .and_then(|()| self.usable(r))
                .and_then(|()| Self::affords(f, amount))
                .and_then(|()| Self::below_ceiling(r, amount))
                .and_then(|()| {
                    if fits(i128::from(f.balance) - i128::from(amount))
                        && fits(i128::from(r.balance) + i128::from(amount))
                    {
                        Ok(())
                    } else {
                        Err("balance_overflow")
                    }
                })
        };
        if ids.iter().any(|id| self.mutation_ids.contains(id)) {
            return taken_or("mutation_exists", rule);
        }
        if let Err(code) = rule {
            return refused(&[code]);
        }
        self.mutation_ids.extend(ids);
        let from_after = self.book(
            t,
            fi,
            MutationKind::TransferOut,
            -amount,
            None,
            Link::Wallet(ti),
        );
        let to_after = self.book(
            t,
            ti,
            MutationKind::TransferIn,
            amount,
            None,
            Link::Wallet(fi),
        );
        Expect::Done(Shape::Transfer {
            amount,
            from_after,
            to_after,
        })
    }

    fn settle(&mut self, id: HoldId, state: HoldState) {
        let h = self.holds.get_mut(&id).unwrap();
        h.state = state;
        h.settled_at = Some(self.now);
    }

    /// Expires what is due; returns (wallets expired, least and most holds expired).
    fn sweep(&mut self) -> (usize, usize, usize) {
        let now = self.now;
        let expiring: HashSet<(usize, usize)> = self
            .wallets
            .iter()
            .filter(|(_, w)| {
                w.status != WalletStatus::Expired && w.valid_until.is_some_and(|u| u <= now)
            })
            .map(|(k, _)| *k)
            .collect();
        let (mut holds_least, mut holds_most) = (0, 0);
        let mut freed = Vec::new();
        for h in self.holds.values_mut() {
            if h.state != HoldState::Pending {
                continue;
            }
            let by_time = h.expires_at.is_some_and(|e| e <= now);
            let by_wallet = expiring.contains(&(h.tenant, h.wallet));
            if !by_time && !by_wallet {
                continue;
            }
            if by_time && !by_wallet {
                holds_least += 1;
            }
            holds_most += 1;
            h.state = match (by_time, by_wallet) {
                (true, false) => HoldState::Expired,
                _ => HoldState::ReleasedOrExpired,
            };
            h.settled_at = Some(now);
            freed.push(h.clone());
        }
        for h in freed {
            *self.reserved(h.tenant, &h) -= h.amount;
        }
        for &(t, wi) in &expiring {
            let w = self.wallets.get_mut(&(t, wi)).unwrap();
            w.status = WalletStatus::Expired;
            if w.balance > 0 {
                let taken = w.balance;
                self.book(
                    t,
                    wi,
                    MutationKind::Expiry,
                    -taken,
                    Some(SystemAccount::Expiry),
                    Link::Nothing,
                );
            }
        }
        (expiring.len(), holds_least, holds_most)
    }
}

// ---------------------------------------------------------------------------------
// The run: builds requests, sends them to the store and to the model, compares.

struct Run {
    /// Keeps the backend's resources (a directory, a schema) for as long as the run.
    _backend: Box<dyn Backend>,
    store: Arc<dyn Store>,
    model: Model,
    /// Every request sent so far, as sent.
    history: Vec<Request>,
    /// Every hold id asked for so far, placed or not, with its tenant.
    hold_ids: Vec<(usize, HoldId)>,
    seq: u128,
    /// What happened so far, for the failure message.
    trail: Vec<String>,
}

impl Run {
    fn next(&mut self) -> Uuid {
        self.seq += 1;
        Uuid::from_u128(self.seq)
    }

    fn fingerprint(&mut self) -> Fingerprint {
        let n = self.next().as_u128().to_le_bytes();
        let mut fp = [0u8; 32];
        fp[..16].copy_from_slice(&n);
        Fingerprint(fp)
    }

    fn command(&mut self, op: &Op) -> Option<(usize, Command)> {
        let now = self.model.now;
        let reference = Reference::default();
        Some(match *op {
            Op::CreateWallet {
                tenant,
                wallet,
                customer,
                unit: u,
                floor,
                ceiling,
                valid_from,
                valid_for,
            } => {
                let from = valid_from.map(|d| now + d * TICK);
                let until = valid_for.map(|d| from.unwrap_or(now) + d * TICK);
                let wallet = NewWallet {
                    id: wallet_id(wallet),
                    customer: customer_id(customer),
                    unit: unit(u),
                    name: format!("wallet {wallet}"),
                    product: String::new(),
                    floor: FLOORS[floor],
                    ceiling: CEILINGS[ceiling],
                    valid_from: from.map(ts),
                    valid_until: until.map(ts),
                    metadata: prepaid_ledger::Metadata::default(),
                };
                (tenant, Command::CreateWallet { wallet })
            }
            Op::SetStatus {
                tenant,
                wallet,
                suspend,
            } => {
                let wallet = self.slot(tenant, wallet);
                // Whether an expired wallet may come back is not a documented rule.
                if self
                    .model
                    .wallets
                    .get(&(tenant, wallet))
                    .is_some_and(|w| w.status == WalletStatus::Expired)
                {
                    return None;
                }
                let status = if suspend {
                    WalletStatus::Suspended
                } else {
                    WalletStatus::Active
                };
                (
                    tenant,
                    Command::SetWalletStatus {
                        wallet: wallet_id(wallet),
                        status,
                    },
                )
            }
            Op::Post {
                tenant,
                wallet,
                kind,
                amount,
            } => {
                let wallet = self.slot(tenant, wallet);
                let amount = self.resolve(tenant, wallet, amount);
                let (kind, amount) = match kind {
                    PostKind::TopUp => (MutationKind::TopUp, Amount::positive(amount)),
                    PostKind::Debit => (MutationKind::Debit, Amount::positive(amount)),
                    PostKind::Adjustment => (MutationKind::Adjustment, Amount::nonzero(amount)),
                };
                let id = MutationId(self.next());
                let command = Command::Post {
                    id,
                    wallet: wallet_id(wallet),
                    kind,
                    amount: amount.unwrap(),
                    reference,
                    occurred_at: None,
                    terms: prepaid_ledger::GrantTerms::default(),
                    metadata: prepaid_ledger::Metadata::default(),
                };
                (tenant, command)
            }
            Op::PlaceHold {
                tenant,
                wallet,
                amount,
                expires_in,
                credit,
            } => {
                let wallet = self.slot(tenant, wallet);
                let amount = self.resolve(tenant, wallet, amount);
                let id = HoldId(self.next());
                self.hold_ids.push((tenant, id));
                let (wallet, amount) = (wallet_id(wallet), Amount::positive(amount).unwrap());
                let expires_at = expires_in.map(|d| ts(now + d * TICK));
                let command = if credit {
                    Command::PlaceCreditHold {
                        id,
                        wallet,
                        amount,
                        reference,
                        expires_at,
                        metadata: prepaid_ledger::Metadata::default(),
                    }
                } else {
                    Command::PlaceHold {
                        id,
                        wallet,
                        amount,
                        reference,
                        expires_at,
                        metadata: prepaid_ledger::Metadata::default(),
                    }
                };
                (tenant, command)
            }
            Op::Commit { hold, amount } => {
                let (tenant, id) = self.pick_hold(hold);
                let held = self.model.holds.get(&id).map_or(1, |h| h.amount);
                let amount = match amount {
                    CommitAmount::All => None,
                    CommitAmount::Exact => Some(Amount::new(held).unwrap()),
                    CommitAmount::OneOver => Some(Amount::new((held + 1).min(AMOUNT_MAX)).unwrap()),
                    CommitAmount::Raw(v) => Some(Amount::new(v).unwrap()),
                };
                let mutation_id = MutationId(self.next());
                (
                    tenant,
                    Command::CommitHold {
                        hold: id,
                        amount,
                        mutation_id,
                        reference: None,
                    },
                )
            }
            Op::Release { hold } => {
                let (tenant, id) = self.pick_hold(hold);
                let mutation_id = MutationId(self.next());
                (
                    tenant,
                    Command::ReleaseHold {
                        hold: id,
                        mutation_id,
                    },
                )
            }
            Op::Transfer {
                tenant,
                from,
                to,
                same,
                amount,
            } => {
                let from_slot = self.slot(tenant, from);
                let mut to_slot = self.slot(tenant, to);
                if !same && to_slot == from_slot {
                    to_slot = self.slot(
                        tenant,
                        Target {
                            pick: to.pick + 1,
                            ..to
                        },
                    );
                }
                let (from, to) = (from_slot, to_slot);
                let amount = self.resolve(tenant, from, amount);
                let command = Command::Transfer {
                    id: TransferId(self.next()),
                    debit_id: MutationId(self.next()),
                    credit_id: MutationId(self.next()),
                    from: wallet_id(from),
                    to: wallet_id(to),
                    amount: Amount::positive(amount).unwrap(),
                    reference,
                    occurred_at: None,
                    terms: prepaid_ledger::GrantTerms::default(),
                    metadata: prepaid_ledger::Metadata::default(),
                };
                (tenant, command)
            }
        })
    }

    fn resolve(&self, tenant: usize, slot: usize, sum: Sum) -> i64 {
        match sum {
            Sum::Fixed(v) => v,
            Sum::Available(d) => {
                let base = self
                    .model
                    .wallets
                    .get(&(tenant, slot))
                    .map_or(0, |w| match w.floor {
                        Floor::Limit(f) => w.balance - w.held - f,
                        Floor::Unlimited => w.balance,
                    });
                (base + d).clamp(1, AMOUNT_MAX)
            }
        }
    }

    fn slot(&self, tenant: usize, target: Target) -> usize {
        let mut existing: Vec<usize> = self
            .model
            .wallets
            .keys()
            .filter(|k| k.0 == tenant)
            .map(|k| k.1)
            .collect();
        existing.sort_unstable();
        if target.existing && !existing.is_empty() {
            existing[target.pick % existing.len()]
        } else {
            target.pick % WALLETS
        }
    }

    fn pick_hold(&mut self, pick: HoldPick) -> (usize, HoldId) {
        let mut pending: Vec<(usize, HoldId)> = self
            .model
            .holds
            .iter()
            .filter(|(_, h)| h.state == HoldState::Pending)
            .map(|(id, h)| (h.tenant, *id))
            .collect();
        pending.sort_unstable();
        let mut placed: Vec<(usize, HoldId)> = self
            .model
            .holds
            .iter()
            .map(|(id, h)| (h.tenant, *id))
            .collect();
        placed.sort_unstable();
        let (t, id) = if pick.pending && !pending.is_empty() {
            pending[pick.pick % pending.len()]
        } else if !placed.is_empty() && !pick.pick.is_multiple_of(4) {
            placed[pick.pick % placed.len()]
        } else if !self.hold_ids.is_empty() {
            self.hold_ids[pick.pick % self.hold_ids.len()]
        } else {
            (0, HoldId(self.next()))
        };
        (if pick.foreign { 1 - t } else { t }, id)
    }

    fn request(&mut self, step: &Step) -> Option<Request> {
        let (tenant, command) = self.command(&step.op)?;
        let idempotency = step.keyed.then(|| {
            let key = IdempotencyKey::parse(&format!("key-{}", self.next().as_u128())).unwrap();
            (key, self.fingerprint())
        });
        Some(Request {
            tenant: tenant_id(tenant),
            customer_only: step.as_customer.map(customer_id),
            idempotency,
            command,
            before: Vec::new(),
            after: Vec::new(),
        })
    }

    /// The same command with fresh ids, for sending it anew elsewhere.
    fn refresh_ids(&mut self, command: &Command) -> Command {
        let mut c = command.clone();
        match &mut c {
            Command::Post { id, .. } => *id = MutationId(self.next()),
            Command::PlaceHold { id, .. } | Command::PlaceCreditHold { id, .. } => {
                *id = HoldId(self.next());
            }
            Command::CommitHold { mutation_id, .. } | Command::ReleaseHold { mutation_id, .. } => {
                *mutation_id = MutationId(self.next());
            }
            Command::Transfer {
                id,
                debit_id,
                credit_id,
                ..
            } => {
                *id = TransferId(self.next());
                *debit_id = MutationId(self.next());
                *credit_id = MutationId(self.next());
            }
            _ => {}
        }
        c
    }

    fn repeat(&mut self, pick: usize, again: Again) -> Option<Request> {
        let keyed: Vec<&Request> = self
            .history
            .iter()
            .filter(|r| r.idempotency.is_some())
            .collect();
        let mut req = match again {
            Again::WithoutKey if !self.history.is_empty() => {
                self.history[pick % self.history.len()].clone()
            }
            Again::WithoutKey => return None,
            _ if keyed.is_empty() => return None,
            _ => keyed[pick % keyed.len()].clone(),
        };
        // Whether an expired wallet may come back is not a documented rule.
        if let Command::SetWalletStatus { wallet, .. } = &req.command {
            let t = tenant_index(&req.tenant);
            let other = if matches!(again, Again::OtherTenant) {
                1 - t
            } else {
                t
            };
            if self
                .model
                .wallets
                .get(&(other, wallet_index(wallet)))
                .is_some_and(|w| w.status == WalletStatus::Expired)
            {
                return None;
            }
        }
        match again {
            Again::Same => {}
            Again::NewFingerprint => {
                let fp = self.fingerprint();
                req.idempotency.as_mut().unwrap().1 = fp;
            }
            Again::WithoutKey => req.idempotency = None,
            Again::OtherTenant => {
                let t = tenant_index(&req.tenant);
                req.tenant = tenant_id(1 - t);
                req.command = self.refresh_ids(&req.command);
                if let Command::PlaceHold { id, .. } | Command::PlaceCreditHold { id, .. } =
                    &req.command
                {
                    self.hold_ids.push((1 - t, *id));
                }
            }
        }
        Some(req)
    }

    async fn send(&mut self, batch: Vec<Request>) {
        if batch.is_empty() {
            return;
        }
        let now = self.model.now;
        let outcomes = self
            .store
            .apply(batch.clone(), ts(now))
            .await
            .expect("apply");
        assert_eq!(outcomes.len(), batch.len(), "one outcome per request");
        for (req, got) in batch.iter().zip(outcomes) {
            let expect = self.model.handle(req);
            self.trail
                .push(format!("  {req:?}\n    -> {}", brief(&got)));
            self.check_outcome(req, &expect, &got);
            if let (Expect::Done(_), Some((key, fp))) = (&expect, &req.idempotency) {
                self.model.keys.insert(
                    (tenant_index(&req.tenant), key.as_str().to_owned()),
                    (*fp, got.clone()),
                );
            }
            self.history.push(req.clone());
        }
    }

    fn fail(&self, what: String) -> ! {
        const SHOWN_MAX: usize = 200;
        let shown = &self.trail[self.trail.len().saturating_sub(SHOWN_MAX)..];
        panic!(
            "{what}\nafter (the last {} lines):\n{}",
            shown.len(),
            shown.join("\n")
        );
    }

    fn check_outcome(&self, req: &Request, expect: &Expect, got: &Outcome) {
        match (expect, got) {
            (
                Expect::Done(shape),
                Outcome::Done {
                    done,
                    replayed: false,
                },
            ) => {
                let got_shape = shape_of(done);
                if got_shape.as_ref() != Some(shape) {
                    self.fail(format!("done as {got_shape:?}, the model says {shape:?}"));
                }
            }
            (
                Expect::Replay(first),
                Outcome::Done {
                    done,
                    replayed: true,
                },
            ) => {
                let Outcome::Done { done: first, .. } = &**first else {
                    unreachable!("only done outcomes are kept")
                };
                // A replayed wallet answer shows `incoming` as it is now (see the
                // executor's documentation); everything else as first answered.
                let first = &match (done, first) {
                    (Done::Wallet(now), Done::Wallet(first)) => Done::Wallet(Wallet {
                        incoming: now.incoming,
                        ..first.clone()
                    }),
                    _ => first.clone(),
                };
                if done != first {
                    self.fail(format!(
                        "a replay answered {done:?}, the first answer was {first:?}"
                    ));
                }
            }
            (Expect::Refused(codes), Outcome::Refused(r)) if codes.contains(&r.code()) => {}
            _ => self.fail(format!(
                "{req:?}\nthe store answered {}, the model expected {expect:?}",
                brief(got)
            )),
        }
    }

    /// Compares every wallet slot of both tenants with the model.
    async fn check_wallets(&self) {
        for (t, tenant) in TENANTS.iter().enumerate() {
            for wi in 0..WALLETS {
                let got = self
                    .store
                    .wallet(&tenant_id(t), &wallet_id(wi))
                    .await
                    .expect("wallet");
                let want = self.model.wallets.get(&(t, wi));
                match (got, want) {
                    (None, None) => {}
                    (Some(g), Some(m)) => {
                        let model_available = match m.floor {
                            Floor::Limit(f) => Some(m.balance - m.held - f),
                            Floor::Unlimited => None,
                        };
                        let got = (
                            g.status,
                            (g.balance, g.held, g.incoming),
                            available(&g),
                            g.floor,
                            g.ceiling,
                            unit_index(&g.unit),
                            customer_index(&g.customer),
                        );
                        let want = (
                            m.status,
                            (m.balance, m.held, m.incoming),
                            model_available,
                            m.floor,
                            m.ceiling,
                            m.unit,
                            m.customer,
                        );
                        if got != want {
                            self.fail(format!(
                                "{}/w{wi}: (status, (balance, held, incoming), available, floor, ceiling, unit, customer) is {got:?}, the model says {want:?}",
                                tenant
                            ));
                        }
                        let window = (
                            g.valid_from.map(Timestamp::as_micros),
                            g.valid_until.map(Timestamp::as_micros),
                        );
                        assert_eq!(
                            window,
                            (m.valid_from, m.valid_until),
                            "validity window of {}/w{wi}",
                            tenant
                        );
                    }
                    (g, m) => self.fail(format!(
                        "{}/w{wi}: the store has {g:?}, the model {m:?}",
                        tenant
                    )),
                }
            }
        }
    }

    async fn check_end(&self) {
        for (id, m) in &self.model.holds {
            let Some(h) = self
                .store
                .hold(&tenant_id(m.tenant), *id)
                .await
                .expect("hold")
            else {
                self.fail(format!("hold {id} is missing"));
            };
            let status_ok = match m.state {
                HoldState::Pending => h.status == HoldStatus::Pending,
                HoldState::Committed(c) => {
                    h.status == HoldStatus::Committed && h.committed_amount == Some(c)
                }
                HoldState::Released => h.status == HoldStatus::Released,
                HoldState::Expired => h.status == HoldStatus::Expired,
                HoldState::ReleasedOrExpired => {
                    matches!(h.status, HoldStatus::Released | HoldStatus::Expired)
                }
            };
            let settled_at = h.settled_at.map(Timestamp::as_micros);
            let direction = if m.credit {
                HoldDirection::Credit
            } else {
                HoldDirection::Debit
            };
            if !status_ok
                || h.direction != direction
                || h.amount != m.amount
                || h.wallet != wallet_id(m.wallet)
                || h.expires_at.map(Timestamp::as_micros) != m.expires_at
                || settled_at != m.settled_at
            {
                self.fail(format!("hold {id} is {h:?}, the model says {m:?}"));
            }
            if !matches!(m.state, HoldState::Committed(_)) && h.committed_amount.is_some() {
                self.fail(format!(
                    "hold {id} was not committed but has a committed amount: {h:?}"
                ));
            }
        }
        for (&(t, wi), m) in &self.model.wallets {
            let mut items = Vec::new();
            let mut after = None;
            loop {
                let query = MutationQuery {
                    wallet: Some(wallet_id(wi)),
                    after,
                    limit: PAGE_SIZE_MAX,
                    ..MutationQuery::default()
                };
                let page = self
                    .store
                    .mutations(&tenant_id(t), &query)
                    .await
                    .expect("mutations");
                assert!(
                    page.items.len() <= PAGE_SIZE_MAX,
                    "a page of {} mutations",
                    page.items.len()
                );
                items.extend(page.items);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            for x in &items {
                let transfer_leg =
                    matches!(x.kind, MutationKind::TransferIn | MutationKind::TransferOut);
                let whose = (
                    &x.customer,
                    unit_index(&x.unit),
                    x.transfer.is_some(),
                    x.occurred_at,
                );
                if whose
                    != (
                        &customer_id(m.customer),
                        m.unit,
                        transfer_leg,
                        x.recorded_at,
                    )
                {
                    self.fail(format!(
                        "{}/w{wi}: mutation {x:?} does not fit its wallet",
                        TENANTS[t]
                    ));
                }
            }
            let got: Vec<Entry> = items
                .iter()
                .filter(|x| x.amount != 0)
                .map(|x| Entry {
                    kind: x.kind,
                    amount: x.amount,
                    balance_after: x.balance_after,
                    recorded_at: x.recorded_at.as_micros(),
                    link: match (x.hold, &x.counter_wallet) {
                        (None, None) => Link::Nothing,
                        (Some(h), None) => Link::Hold(h),
                        (None, Some(w)) => Link::Wallet(wallet_index(w)),
                        (Some(_), Some(_)) => self.fail(format!(
                            "mutation {x:?} has both a hold and a counter wallet"
                        )),
                    },
                })
                .collect();
            if got != m.log {
                self.fail(format!(
                    "{}/w{wi}: non-zero mutations are\n{got:?}\nthe model says\n{:?}",
                    TENANTS[t], m.log
                ));
            }
        }
        let breaches = self
            .store
            .check_invariants()
            .await
            .expect("check_invariants");
        if !breaches.is_empty() {
            self.fail(format!("the store finds breaches: {breaches:?}"));
        }
        // The double entry, with the model's own system accounts: per tenant and unit,
        // the store's wallets and the model's counter-accounts sum to zero.
        for (t, tenant) in TENANTS.iter().enumerate() {
            for (u, (code, _)) in UNITS.iter().enumerate() {
                let mut sum = 0i128;
                for wi in 0..WALLETS {
                    let w = self.store.wallet(&tenant_id(t), &wallet_id(wi)).await;
                    if let Some(w) = w.expect("wallet")
                        && unit_index(&w.unit) == u
                    {
                        sum += i128::from(w.balance);
                    }
                }
                for a in SystemAccount::ALL {
                    sum += i128::from(self.model.system_balance(t, u, a));
                }
                assert_eq!(
                    sum, 0,
                    "{} {}: wallets and system accounts do not sum to zero",
                    tenant, code
                );
            }
        }
    }
}

fn shape_of(done: &Done) -> Option<Shape> {
    Some(match done {
        Done::Wallet(w) => Shape::Wallet {
            status: w.status,
            balance: w.balance,
        },
        Done::Mutation(m) => Shape::Mutation {
            kind: m.kind,
            amount: m.amount,
            balance_after: m.balance_after,
        },
        Done::Transfer(x) => {
            if x.debit.amount != -x.credit.amount
                || x.debit.kind != MutationKind::TransferOut
                || x.credit.kind != MutationKind::TransferIn
            {
                return None;
            }
            Shape::Transfer {
                amount: x.credit.amount,
                from_after: x.debit.balance_after,
                to_after: x.credit.balance_after,
            }
        }
        Done::Hold { hold, .. } => Shape::Hold {
            status: hold.status,
            amount: hold.amount,
            committed: hold.committed_amount,
        },
        _ => return None,
    })
}

fn brief(o: &Outcome) -> String {
    match o {
        Outcome::Done { done, replayed } => format!(
            "done{} {:?}",
            if *replayed { " (replayed)" } else { "" },
            shape_of(done)
        ),
        Outcome::Refused(r) => format!("refused {r:?}"),
    }
}

fn admin_key(name: &str) -> NewApiKey {
    NewApiKey {
        name: ApiKeyName::parse(name).unwrap(),
        secret_sha256: [name.len() as u8; 32],
        scopes: Scopes::ALL,
        customer: None,
    }
}

/// A fresh store with two tenants and two customers in each.
async fn setup(backend: Box<dyn Backend>) -> Run {
    let store = backend.fresh().await;
    let now = ts(T0);
    assert!(
        store
            .bootstrap(&tenant_id(0), admin_key("root"), now)
            .await
            .expect("bootstrap")
    );
    let plain = |tenant: usize, command| Request {
        tenant: tenant_id(tenant),
        customer_only: None,
        idempotency: None,
        command,
        before: Vec::new(),
        after: Vec::new(),
    };
    let mut batch = vec![plain(
        0,
        Command::CreateTenant {
            tenant: tenant_id(1),
            name: "Acme".into(),
            admin_key: admin_key("admin"),
        },
    )];
    for t in 0..TENANTS.len() {
        for (c, name) in CUSTOMERS.iter().enumerate().take(CUSTOMERS_CREATED) {
            batch.push(plain(
                t,
                Command::CreateCustomer {
                    id: customer_id(c),
                    name: (*name).into(),
                    link: String::new(),
                },
            ));
        }
    }
    for (req, outcome) in batch
        .iter()
        .zip(store.apply(batch.clone(), now).await.expect("setup"))
    {
        assert!(
            matches!(
                outcome,
                Outcome::Done {
                    replayed: false,
                    ..
                }
            ),
            "{req:?}: {outcome:?}"
        );
    }
    Run {
        _backend: backend,
        store,
        model: Model {
            now: T0,
            ..Model::default()
        },
        history: Vec::new(),
        hold_ids: Vec::new(),
        seq: 0,
        trail: Vec::new(),
    }
}

async fn run(backend: Box<dyn Backend>, actions: Vec<Action>) {
    let mut run = setup(backend).await;
    for action in &actions {
        match action {
            Action::Send(steps) => {
                let batch: Vec<Request> = steps.iter().filter_map(|s| run.request(s)).collect();
                run.trail.push(format!(
                    "send {} at +{}:",
                    batch.len(),
                    (run.model.now - T0) / TICK
                ));
                run.send(batch).await;
            }
            Action::Repeat { pick, again } => {
                if let Some(req) = run.repeat(*pick, *again) {
                    run.trail.push(format!(
                        "repeat {again:?} at +{}:",
                        (run.model.now - T0) / TICK
                    ));
                    run.send(vec![req]).await;
                }
            }
            Action::Advance { ticks, sweep } => {
                run.model.now += ticks * TICK;
                run.trail
                    .push(format!("advance to +{}", (run.model.now - T0) / TICK));
                if *sweep {
                    let report = run.store.sweep(ts(run.model.now)).await.expect("sweep");
                    let (wallets, least, most) = run.model.sweep();
                    run.trail.push(format!("  sweep -> {report:?}"));
                    if report.wallets_expired != wallets
                        || !(least..=most).contains(&report.holds_expired)
                    {
                        run.fail(format!("sweep reported {report:?}, the model expects {wallets} wallets and {least}..={most} holds"));
                    }
                }
            }
        }
        run.check_wallets().await;
    }
    run.check_end().await;
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_DEFAULT);
    // Failures are kept as explicit regression tests below rather than in a file.
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Makes a fresh backend, or `None` when the backend is not there (a database that
/// cannot be reached, say, which the maker has reported).
pub type MakeBackend<'a> =
    &'a dyn Fn() -> Pin<Box<dyn Future<Output = Option<Box<dyn Backend>>> + Send>>;

/// Random sequences of actions, each on a fresh store, checked against the model;
/// panics with the smallest failing sequence found.
pub fn random_runs(make: MakeBackend<'_>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Asked once up front, so that a missing backend is reported once, not per case.
    if runtime.block_on(make()).is_none() {
        return;
    }
    let strategy = (
        opening(),
        prop::collection::vec(action(), 1..=ACTIONS_MAX - 12),
    );
    let mut runner = TestRunner::new(config());
    let result = runner.run(&strategy, |(opening, actions)| {
        let actions = opening.into_iter().chain(actions).collect();
        runtime.block_on(async {
            let backend = make().await.expect("the backend was there a moment ago");
            run(backend, actions).await;
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("the store disagrees with the model: {e}");
    }
}

// ---------------------------------------------------------------------------------
// Single sequences the random runs pointed at, kept as plain tests.

fn keyed(tenant: usize, key: &str, fp: u8, command: Command) -> Request {
    Request {
        tenant: tenant_id(tenant),
        customer_only: None,
        idempotency: Some((IdempotencyKey::parse(key).unwrap(), Fingerprint([fp; 32]))),
        command,
        before: Vec::new(),
        after: Vec::new(),
    }
}

fn new_wallet(w: usize, floor: Floor) -> NewWallet {
    NewWallet {
        id: wallet_id(w),
        customer: customer_id(0),
        unit: unit(0),
        name: String::new(),
        product: String::new(),
        floor,
        ceiling: None,
        valid_from: None,
        valid_until: None,
        metadata: prepaid_ledger::Metadata::default(),
    }
}

fn top_up(id: u128, w: usize, amount: i64) -> Command {
    Command::Post {
        id: MutationId(Uuid::from_u128(id)),
        wallet: wallet_id(w),
        kind: MutationKind::TopUp,
        amount: Amount::positive(amount).unwrap(),
        reference: Reference::default(),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    }
}

async fn one(run: &Run, request: Request) -> Outcome {
    let mut outcomes = run.store.apply(vec![request], ts(T0)).await.expect("apply");
    outcomes.pop().expect("one outcome")
}

/// The API promises that a repeat with the same key "returns the first answer": a
/// replayed wallet shows the wallet as the first request left it, not as it is now.
pub async fn a_replay_answers_what_the_first_request_did(backend: Box<dyn Backend>) {
    let run = setup(backend).await;
    let create = keyed(
        0,
        "create",
        1,
        Command::CreateWallet {
            wallet: new_wallet(0, Floor::ZERO),
        },
    );
    let suspend = keyed(
        0,
        "suspend",
        2,
        Command::SetWalletStatus {
            wallet: wallet_id(0),
            status: WalletStatus::Suspended,
        },
    );
    let first_create = one(&run, create.clone()).await;
    assert!(matches!(
        one(&run, plain_request(top_up(1, 0, 100))).await,
        Outcome::Done { .. }
    ));
    let first_suspend = one(&run, suspend.clone()).await;
    let activate = Command::SetWalletStatus {
        wallet: wallet_id(0),
        status: WalletStatus::Active,
    };
    assert!(matches!(
        one(&run, plain_request(activate)).await,
        Outcome::Done { .. }
    ));
    for (request, first) in [(create, first_create), (suspend, first_suspend)] {
        let Outcome::Done {
            done: first,
            replayed: false,
        } = first
        else {
            panic!("{first:?}")
        };
        match one(&run, request.clone()).await {
            Outcome::Done {
                done,
                replayed: true,
            } => {
                assert_eq!(done, first, "replay of {:?}", request.command);
            }
            other => panic!("replay of {:?}: {other:?}", request.command),
        }
    }
}

fn plain_request(command: Command) -> Request {
    Request {
        tenant: tenant_id(0),
        customer_only: None,
        idempotency: None,
        command,
        before: Vec::new(),
        after: Vec::new(),
    }
}

/// The core holds an adjustment only to the balance bound, not to the floor, so a
/// wallet taken below its floor by a correction is in a state the rules allow, and an
/// audit must not report it as a breach.
pub async fn an_adjustment_below_the_floor_is_no_breach(backend: Box<dyn Backend>) {
    let run = setup(backend).await;
    let adjust = Command::Post {
        id: MutationId(Uuid::from_u128(1)),
        wallet: wallet_id(0),
        kind: MutationKind::Adjustment,
        amount: Amount::nonzero(-1).unwrap(),
        reference: Reference::default(),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    };
    let create = Command::CreateWallet {
        wallet: new_wallet(0, Floor::ZERO),
    };
    for command in [create, adjust] {
        let outcome = one(&run, plain_request(command)).await;
        assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    }
    assert_eq!(
        run.store
            .check_invariants()
            .await
            .expect("check_invariants"),
        vec![]
    );
}

/// The balance bound, reached in big batches: on a wallet, on held, and on a system
/// account that refuses a top-up into a wallet far from the bound. The model predicts
/// every outcome, as in the random runs.
pub async fn the_balance_bound_holds_on_wallets_held_and_system_accounts(
    backend: Box<dyn Backend>,
) {
    let full = usize::try_from(BALANCE_ABS_MAX / AMOUNT_MAX).unwrap();
    let at = |slot| Target {
        pick: slot,
        existing: false,
    };
    let step = |op| Step {
        op,
        keyed: false,
        as_customer: None,
    };
    let post = |slot, kind, amount| {
        step(Op::Post {
            tenant: 0,
            wallet: at(slot),
            kind,
            amount: Sum::Fixed(amount),
        })
    };
    let create = |slot| {
        let op = Op::CreateWallet {
            tenant: 0,
            wallet: slot,
            customer: 0,
            unit: 0,
            floor: 2,
            ceiling: 0,
            valid_from: None,
            valid_for: None,
        };
        Action::Send(vec![step(op)])
    };
    let hold = |slot, amount| {
        step(Op::PlaceHold {
            tenant: 0,
            wallet: at(slot),
            amount: Sum::Fixed(amount),
            expires_in: None,
            credit: false,
        })
    };
    let transfer = |from, to, amount| {
        let op = Op::Transfer {
            tenant: 0,
            from: at(from),
            to: at(to),
            same: false,
            amount: Sum::Fixed(amount),
        };
        step(op)
    };
    let actions = vec![
        create(0),
        create(1),
        create(2),
        // w0 to exactly the bound; the world account of EUR to exactly minus the bound.
        Action::Send(
            (0..full)
                .map(|_| post(0, PostKind::TopUp, AMOUNT_MAX))
                .collect(),
        ),
        Action::Send(vec![
            // Past the bound on both sides.
            post(0, PostKind::TopUp, 1),
            // w1 is empty, but the world account is full.
            post(1, PostKind::TopUp, 1),
            // A full wallet cannot receive, even from a batch-mate.
            transfer(1, 0, 1),
            // The refusals changed nothing: w0 still spends from exactly the bound.
            post(0, PostKind::Debit, 1),
            transfer(1, 0, 1),
            transfer(1, 0, 1),
        ]),
        // w2 has no floor: held may grow to the bound and no further.
        Action::Send((0..full).map(|_| hold(2, AMOUNT_MAX)).collect()),
        Action::Send(vec![hold(2, 1), post(2, PostKind::Adjustment, -AMOUNT_MAX)]),
        // Debits of a wallet without a floor stop at minus the bound.
        Action::Send(
            (0..full)
                .map(|_| post(2, PostKind::Debit, AMOUNT_MAX))
                .collect(),
        ),
    ];
    run(backend, actions).await;
}

/// Expands to the model tests: the random runs (`#[test]`) and the fixed sequences
/// (`#[tokio::test]`), each on fresh stores of the backend. Takes an async expression
/// that evaluates to a value implementing [`Backend`], or, after the word `optional`,
/// to an `Option` of one (`None`: skip, the expression has said why). The calling
/// crate must depend on `tokio`.
#[macro_export]
macro_rules! model_tests {
    (optional $backend:expr) => {
        $crate::model_tests!(@tests (|| async {
            $backend.await.map(|backend| {
                ::std::boxed::Box::new(backend)
                    as ::std::boxed::Box<dyn $crate::conformance::Backend>
            })
        }));
    };
    ($backend:expr) => {
        $crate::model_tests!(optional async { ::std::option::Option::Some($backend.await) });
    };
    (@tests ($make:expr)) => {
        #[test]
        fn the_store_agrees_with_a_naive_model() {
            $crate::model::random_runs(&|| ::std::boxed::Box::pin(($make)()));
        }

        #[test]
        fn the_stores_grants_agree_with_a_naive_model() {
            $crate::grants_model::random_runs(&|| ::std::boxed::Box::pin(($make)()));
        }

        #[::tokio::test]
        async fn a_replay_answers_what_the_first_request_did() {
            if let ::std::option::Option::Some(backend) = ($make)().await {
                $crate::model::a_replay_answers_what_the_first_request_did(backend).await;
            }
        }

        #[::tokio::test]
        async fn an_adjustment_below_the_floor_is_no_breach() {
            if let ::std::option::Option::Some(backend) = ($make)().await {
                $crate::model::an_adjustment_below_the_floor_is_no_breach(backend).await;
            }
        }

        #[::tokio::test]
        async fn the_balance_bound_holds_on_wallets_held_and_system_accounts() {
            if let ::std::option::Option::Some(backend) = ($make)().await {
                $crate::model::the_balance_bound_holds_on_wallets_held_and_system_accounts(
                    backend,
                )
                .await;
            }
        }
    };
}
