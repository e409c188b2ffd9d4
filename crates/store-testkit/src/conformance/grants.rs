//! The conformance cases of grants: credits spent in the ledger's order, recorded on
//! each debit, expired once, reserved by holds.

use super::{Env, as_hold, as_mutation, eur, tid, wid};
use prepaid_ledger::{
    Command, Draw, Floor, Grant, GrantCategory, GrantTerms, HoldStatus, LIVE_GRANTS_MAX, Mutation,
    MutationKind, Priority, Refusal, Timestamp,
};
use prepaid_store::{GrantCursor, SweepReport};

const DAY_SECS: i64 = 86_400;

fn days_from(now: Timestamp, days: i64) -> Timestamp {
    now.plus_micros(days * DAY_SECS * 1_000_000)
}

/// A credit of `value` to `wallet` with `terms`.
async fn credit(env: &Env, wallet: &str, value: i64, terms: GrantTerms) -> Mutation {
    let Command::Post {
        id,
        wallet,
        kind,
        amount,
        reference,
        occurred_at,
        ..
    } = env.post(wallet, MutationKind::TopUp, value)
    else {
        unreachable!("post makes a Command::Post");
    };
    let command = Command::Post {
        id,
        wallet,
        kind,
        amount,
        reference,
        occurred_at,
        terms,
        metadata: prepaid_ledger::Metadata::default(),
    };
    as_mutation(env.done("t1", command).await)
}

fn draws(pairs: &[(&Mutation, i64)]) -> Vec<Draw> {
    pairs
        .iter()
        .map(|(m, amount)| Draw {
            grant: m.id,
            amount: *amount,
        })
        .collect()
}

/// Every grant of the wallet, oldest first, following the cursors.
async fn all_grants(env: &Env, wallet: &str) -> Vec<Grant> {
    let mut after: Option<GrantCursor> = None;
    let mut all = Vec::new();
    loop {
        let page = env
            .store()
            .grants(&tid("t1"), &wid(wallet), after, 2)
            .await
            .expect("grants");
        all.extend(page.items.into_iter().map(|g| g.grant));
        match page.next {
            Some(next) => after = Some(next),
            None => return all,
        }
    }
}

async fn start(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    env.wallet("t1", "c1", "w1").await;
}

/// A paid grant of 100 for a year, a granted 20 for a week and an allowance of 5 at
/// priority 0: a debit of 30 draws 5, 20, 5 in that order and says so.
pub async fn grants_are_drawn_in_order(env: &mut Env) {
    start(env).await;
    let now = env.now;
    let paid = credit(
        env,
        "w1",
        100,
        GrantTerms {
            expires_at: Some(days_from(now, 365)),
            ..GrantTerms::default()
        },
    )
    .await;
    let promo = credit(
        env,
        "w1",
        20,
        GrantTerms {
            expires_at: Some(days_from(now, 7)),
            category: GrantCategory::Granted,
            ..GrantTerms::default()
        },
    )
    .await;
    let allowance = credit(
        env,
        "w1",
        5,
        GrantTerms {
            priority: Priority::new(0).expect("priority"),
            ..GrantTerms::default()
        },
    )
    .await;
    assert!(paid.drawn.is_empty(), "a credit draws nothing");
    env.advance_secs(1);
    let debit = as_mutation(
        env.done("t1", env.post("w1", MutationKind::Debit, 30))
            .await,
    );
    assert_eq!(
        debit.drawn,
        draws(&[(&allowance, 5), (&promo, 20), (&paid, 5)])
    );
    assert_eq!(debit.balance_after, 95);
    // The mutation reads back with what it drew.
    let stored = env
        .store()
        .mutation(&tid("t1"), debit.id)
        .await
        .expect("mutation")
        .expect("stored");
    assert_eq!(stored.drawn, debit.drawn);
    let grants = all_grants(env, "w1").await;
    let left: Vec<(_, i64, i64)> = grants
        .iter()
        .map(|g| (g.id, g.amount, g.remaining))
        .collect();
    assert_eq!(
        left,
        [(paid.id, 100, 95), (promo.id, 20, 0), (allowance.id, 5, 0)],
        "spent grants are listed too, oldest first"
    );
    assert_eq!(grants[1].terms.category, GrantCategory::Granted);
    assert_eq!(grants[1].terms.expires_at, Some(days_from(now, 7)));
}

/// A grant whose expiry has come is not spent; the sweep takes its remainder once,
/// with an expiry mutation that occurred when it expired.
pub async fn grants_expire_once(env: &mut Env) {
    start(env).await;
    let now = env.now;
    let week = days_from(now, 7);
    credit(env, "w1", 100, GrantTerms::default()).await;
    let promo = credit(
        env,
        "w1",
        20,
        GrantTerms {
            expires_at: Some(week),
            category: GrantCategory::Granted,
            ..GrantTerms::default()
        },
    )
    .await;
    env.done("t1", env.post("w1", MutationKind::Debit, 8)).await;
    env.advance_secs(8 * DAY_SECS);
    // Before the sweep comes, the expired 12 still count in the balance but cannot be
    // spent.
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 112);
    assert_eq!(
        env.refused("t1", env.post("w1", MutationKind::Debit, 101))
            .await,
        Refusal::InsufficientFunds {
            available: 100,
            requested: 101
        }
    );
    let report = env.store().sweep(env.now).await.expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            holds_expired: 0,
            wallets_expired: 0,
            grants_expired: 1,
        }
    );
    assert_eq!(
        env.store().sweep(env.now).await.expect("sweep"),
        SweepReport::default(),
        "a grant expires once"
    );
    env.reopen().await;
    assert_eq!(
        env.store().sweep(env.now).await.expect("sweep"),
        SweepReport::default(),
        "a grant expires once, across a restart"
    );
    let mutations = env.all_mutations("t1", Some("w1"), None).await;
    let expiry = mutations.last().expect("the expiry");
    assert_eq!(
        (expiry.kind, expiry.amount, expiry.balance_after),
        (MutationKind::Expiry, -12, 100)
    );
    assert_eq!(expiry.drawn, draws(&[(&promo, 12)]));
    assert_eq!(
        expiry.occurred_at, week,
        "it occurred when the grant expired"
    );
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 100);
    env.done("t1", env.post("w1", MutationKind::Debit, 100))
        .await;
}

/// A debit hold reserves the grants it would draw; an expiry leaves what it reserved
/// to the hold, which draws it when committed, and expires it when released.
pub async fn holds_reserve_grants_through_their_expiry(env: &mut Env) {
    start(env).await;
    let now = env.now;
    let week = days_from(now, 7);
    let paid = credit(env, "w1", 50, GrantTerms::default()).await;
    let promo = credit(
        env,
        "w1",
        20,
        GrantTerms {
            expires_at: Some(week),
            ..GrantTerms::default()
        },
    )
    .await;
    let (first, place) = env.place_hold("w1", 15, None);
    let (first_hold, _) = as_hold(env.done("t1", place).await);
    assert_eq!(first_hold.reserved, draws(&[(&promo, 15)]));
    let (second, place) = env.place_hold("w1", 10, None);
    let (second_hold, _) = as_hold(env.done("t1", place).await);
    assert_eq!(
        second_hold.reserved,
        draws(&[(&promo, 5), (&paid, 5)]),
        "a hold reserves what other holds have not"
    );
    env.advance_secs(8 * DAY_SECS);
    // Nothing of the promotion is free: all 20 are reserved.
    assert_eq!(
        env.store()
            .sweep(env.now)
            .await
            .expect("sweep")
            .grants_expired,
        0
    );
    let (committed, m) = as_hold(env.done("t1", env.commit(first, Some(12))).await);
    assert_eq!(committed.status, HoldStatus::Committed);
    let m = m.expect("the commit's mutation");
    assert_eq!(
        m.drawn,
        draws(&[(&promo, 12)]),
        "a commit draws what its hold reserved, expired or not"
    );
    // The 3 the commit gave back are free now, and expired.
    assert_eq!(
        env.store()
            .sweep(env.now)
            .await
            .expect("sweep")
            .grants_expired,
        1
    );
    env.done("t1", env.release(second)).await;
    assert_eq!(
        env.store()
            .sweep(env.now)
            .await
            .expect("sweep")
            .grants_expired,
        1,
        "what a released hold reserved of an expired grant expires"
    );
    let grants = all_grants(env, "w1").await;
    let promo_left = grants.iter().find(|g| g.id == promo.id).expect("promo");
    assert_eq!((promo_left.remaining, promo_left.held), (0, 0));
    let paid_left = grants.iter().find(|g| g.id == paid.id).expect("paid");
    assert_eq!((paid_left.remaining, paid_left.held), (50, 0));
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 50);
}

/// A wallet that may go below zero spends into debt once its grants are drawn, and a
/// credit repays the debt before it becomes a grant.
pub async fn credits_repay_debt_first(env: &mut Env) {
    env.tenant("t1").await;
    env.customer("t1", "c1").await;
    let wallet = env.new_wallet("w1", "c1", eur(), Floor::Unlimited);
    env.done("t1", Command::CreateWallet { wallet }).await;
    let first = credit(env, "w1", 10, GrantTerms::default()).await;
    let debit = as_mutation(
        env.done("t1", env.post("w1", MutationKind::Debit, 25))
            .await,
    );
    assert_eq!(debit.drawn, draws(&[(&first, 10)]), "15 went into debt");
    assert_eq!(debit.balance_after, -15);
    let second = credit(env, "w1", 40, GrantTerms::default()).await;
    let grants = all_grants(env, "w1").await;
    let made = grants.iter().find(|g| g.id == second.id).expect("grant");
    assert_eq!(
        (made.amount, made.remaining),
        (25, 25),
        "15 of the 40 repaid the debt"
    );
}

/// A wallet holds at most [`LIVE_GRANTS_MAX`] live grants; spent ones do not count.
pub async fn live_grants_are_bounded_at_the_limit(env: &mut Env) {
    start(env).await;
    let mut batch = Vec::new();
    for _ in 0..LIVE_GRANTS_MAX {
        batch.push(super::request("t1", env.post("w1", MutationKind::TopUp, 1)));
    }
    for outcome in env.apply(batch).await {
        super::done(outcome);
    }
    assert_eq!(
        env.refused("t1", env.post("w1", MutationKind::TopUp, 1))
            .await,
        Refusal::GrantsExceeded {
            grants_max: LIVE_GRANTS_MAX
        }
    );
    // Spending one makes room for one.
    env.done("t1", env.post("w1", MutationKind::Debit, 1)).await;
    env.done("t1", env.post("w1", MutationKind::TopUp, 1)).await;
    let balance = i64::try_from(LIVE_GRANTS_MAX).expect("fits");
    assert_eq!(env.read_wallet("t1", "w1").await.balance, balance);
}

fn reverse(original: &Mutation, allow_negative: bool) -> Command {
    Command::Reverse {
        id: prepaid_ledger::reversal_id(original.id),
        mutation: original.id,
        allow_negative,
        reference: prepaid_ledger::Reference::known("reversal", "", ""),
    }
}

/// Reversing a debit gives each grant back exactly what it drew, with its own expiry;
/// reversing twice reverses once.
pub async fn reversals_restore_the_grants_drawn(env: &mut Env) {
    start(env).await;
    let now = env.now;
    let paid = credit(
        env,
        "w1",
        100,
        GrantTerms {
            expires_at: Some(days_from(now, 365)),
            ..GrantTerms::default()
        },
    )
    .await;
    let promo = credit(
        env,
        "w1",
        20,
        GrantTerms {
            expires_at: Some(days_from(now, 7)),
            category: GrantCategory::Granted,
            ..GrantTerms::default()
        },
    )
    .await;
    let debit = as_mutation(
        env.done("t1", env.post("w1", MutationKind::Debit, 30))
            .await,
    );
    env.advance_secs(1);
    let reversal = as_mutation(env.done("t1", reverse(&debit, false)).await);
    assert_eq!(
        (reversal.kind, reversal.amount, reversal.balance_after),
        (MutationKind::Reversal, 30, 120)
    );
    assert_eq!(reversal.reverses, Some(debit.id));
    assert_eq!(
        reversal.drawn,
        draws(&[(&promo, -20), (&paid, -10)]),
        "each grant gets back what the debit drew"
    );
    let again = as_mutation(env.done("t1", reverse(&debit, false)).await);
    assert_eq!(again, reversal, "a mutation is reversed once");
    let grants = all_grants(env, "w1").await;
    let left: Vec<(_, i64, Option<Timestamp>)> = grants
        .iter()
        .map(|g| (g.id, g.remaining, g.terms.expires_at))
        .collect();
    assert_eq!(
        left,
        [
            (paid.id, 100, Some(days_from(now, 365))),
            (promo.id, 20, Some(days_from(now, 7)))
        ]
    );
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 120);
    assert_eq!(
        env.refused("t1", reverse(&reversal, false)).await,
        Refusal::NotReversible
    );
}

/// A credit is reversed from what its grant has left; more is refused with what could
/// be taken back, unless the balance may go negative.
pub async fn reversals_of_spent_credits_need_allow_negative(env: &mut Env) {
    start(env).await;
    let top_up = credit(env, "w1", 100, GrantTerms::default()).await;
    env.done("t1", env.post("w1", MutationKind::Debit, 70))
        .await;
    assert_eq!(
        env.refused("t1", reverse(&top_up, false)).await,
        Refusal::ReversalExceedsRemaining { reversible: 30 }
    );
    assert_eq!(env.read_wallet("t1", "w1").await.balance, 30);
    let reversal = as_mutation(env.done("t1", reverse(&top_up, true)).await);
    assert_eq!((reversal.amount, reversal.balance_after), (-100, -70));
    assert_eq!(reversal.drawn, draws(&[(&top_up, 30)]));
    let unknown = Mutation {
        id: prepaid_ledger::MutationId(uuid::Uuid::now_v7()),
        ..top_up
    };
    assert_eq!(
        env.refused("t1", reverse(&unknown, false)).await,
        Refusal::MutationNotFound
    );
}

/// With a default validity set, a top-up that names no expiry (and a committed credit
/// hold) expires that long after it is recorded; one that names its own keeps it, and
/// adjustments never take the default.
pub async fn top_ups_take_the_tenants_default_validity(env: &mut Env) {
    start(env).await;
    let before = env.top_up("t1", "w1", 10).await;
    env.done(
        "t1",
        Command::PutSetting {
            key: prepaid_ledger::SettingKey::parse(prepaid_ledger::DEFAULT_VALIDITY_SETTING)
                .expect("key"),
            value: (30 * DAY_SECS).to_string(),
        },
    )
    .await;
    let now = env.now;
    let plain = env.top_up("t1", "w1", 20).await;
    let own_expiry = days_from(now, 365);
    let own = credit(
        env,
        "w1",
        30,
        GrantTerms {
            expires_at: Some(own_expiry),
            ..GrantTerms::default()
        },
    )
    .await;
    let adjusted = as_mutation(
        env.done("t1", env.post("w1", MutationKind::Adjustment, 5))
            .await,
    );
    let hold = env.hold_id();
    env.done(
        "t1",
        Command::PlaceCreditHold {
            id: hold,
            wallet: wid("w1"),
            amount: prepaid_ledger::Amount::new(40).expect("amount"),
            reference: prepaid_ledger::Reference::default(),
            expires_at: None,
            metadata: prepaid_ledger::Metadata::default(),
        },
    )
    .await;
    env.advance_secs(60);
    let (_, paid) = as_hold(
        env.done(
            "t1",
            Command::CommitHold {
                hold,
                amount: None,
                mutation_id: env.mutation_id(),
                reference: None,
            },
        )
        .await,
    );
    let paid = paid.expect("a commit posts a mutation");

    let grants = all_grants(env, "w1").await;
    let expiry = |m: &Mutation| {
        grants
            .iter()
            .find(|g| g.id == m.id)
            .map(|g| g.terms.expires_at)
            .expect("a grant of the credit")
    };
    assert_eq!(
        expiry(&before),
        None,
        "set later, the default is not retroactive"
    );
    assert_eq!(expiry(&plain), Some(days_from(now, 30)));
    assert_eq!(expiry(&own), Some(own_expiry));
    assert_eq!(expiry(&adjusted), None);
    assert_eq!(
        expiry(&paid),
        Some(days_from(now, 30).plus_micros(60 * 1_000_000))
    );

    // Cleared (an empty value), top-ups never expire again.
    env.done(
        "t1",
        Command::PutSetting {
            key: prepaid_ledger::SettingKey::parse(prepaid_ledger::DEFAULT_VALIDITY_SETTING)
                .expect("key"),
            value: String::new(),
        },
    )
    .await;
    let after = env.top_up("t1", "w1", 1).await;
    let grants = all_grants(env, "w1").await;
    let last = grants.iter().find(|g| g.id == after.id).expect("grant");
    assert_eq!(last.terms.expires_at, None);
}
