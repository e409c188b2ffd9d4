//! Table-driven tests of the wallet ceiling: the highest balance a credit may take a
//! wallet to. Top-ups, upward adjustments, incoming transfers and credit holds are held
//! to it, together with the room pending credit holds set aside; debits, downward
//! adjustments, debit holds and the settlement of any hold never are.

#![allow(clippy::type_complexity)] // Table rows are plain tuples: the column comments name them.

mod common;

use common::{NOW, amount, hold, ts, wallet};
use prepaid_ledger::{
    AMOUNT_MAX, BALANCE_ABS_MAX, Floor, HoldDirection, HoldStatus, MutationKind, NewWallet,
    Posting, Refusal, Reserved, TransferPlan, Wallet, WalletStatus, commit_hold, place_credit_hold,
    place_hold, post, release_hold, transfer,
};

fn capped(id: &str, balance: i64, ceiling: Option<i64>) -> Wallet {
    let mut w = wallet(id, balance, 0, Floor::ZERO);
    w.ceiling = ceiling;
    w
}

fn exceeded(room: i64, requested: i64) -> Refusal {
    Refusal::CeilingExceeded { room, requested }
}

fn posted(amount: i64, balance_after: i64) -> Result<Posting, Refusal> {
    Ok(Posting {
        amount,
        balance_after,
    })
}

#[test]
fn a_ceiling_is_zero_to_the_balance_bound() {
    // (ceiling, valid)
    let cases = [
        (0, true),
        (1, true),
        (BALANCE_ABS_MAX, true),
        (-1, false),
        (BALANCE_ABS_MAX + 1, false),
        (i64::MIN, false),
        (i64::MAX, false),
    ];
    for (ceiling, valid) in cases {
        assert_eq!(NewWallet::ceiling_is_valid(ceiling), valid, "{ceiling}");
    }
}

#[test]
fn credits_stop_at_the_ceiling() {
    use MutationKind::{Adjustment, Debit, TopUp};
    // (name, balance, ceiling, kind, amount, outcome)
    let cases: &[(
        &str,
        i64,
        Option<i64>,
        MutationKind,
        i64,
        Result<Posting, Refusal>,
    )] = &[
        ("no ceiling", 100, None, TopUp, 50, posted(50, 150)),
        (
            "top-up to exactly the ceiling",
            100,
            Some(150),
            TopUp,
            50,
            posted(50, 150),
        ),
        (
            "top-up one past the ceiling",
            100,
            Some(150),
            TopUp,
            51,
            Err(exceeded(50, 51)),
        ),
        (
            "top-up of a wallet at its ceiling",
            150,
            Some(150),
            TopUp,
            1,
            Err(exceeded(0, 1)),
        ),
        (
            "a zero ceiling takes no top-up",
            0,
            Some(0),
            TopUp,
            1,
            Err(exceeded(0, 1)),
        ),
        (
            "top-up from below zero",
            -30,
            Some(10),
            TopUp,
            41,
            Err(exceeded(40, 41)),
        ),
        (
            "the largest ceiling is the balance bound",
            BALANCE_ABS_MAX - AMOUNT_MAX,
            Some(BALANCE_ABS_MAX),
            TopUp,
            AMOUNT_MAX,
            posted(AMOUNT_MAX, BALANCE_ABS_MAX),
        ),
        (
            "past the largest ceiling",
            BALANCE_ABS_MAX,
            Some(BALANCE_ABS_MAX),
            TopUp,
            1,
            Err(exceeded(0, 1)),
        ),
        (
            "upward adjustment to the ceiling",
            100,
            Some(150),
            Adjustment,
            50,
            posted(50, 150),
        ),
        (
            "upward adjustment past the ceiling",
            100,
            Some(150),
            Adjustment,
            51,
            Err(exceeded(50, 51)),
        ),
        (
            "downward adjustment at the ceiling",
            150,
            Some(150),
            Adjustment,
            -51,
            posted(-51, 99),
        ),
        (
            "debit at the ceiling",
            150,
            Some(150),
            Debit,
            150,
            posted(-150, 0),
        ),
        // Only a wallet made before its ceiling was lowered could be above it; it may
        // still spend and be corrected downwards, and its room is negative.
        (
            "debit above the ceiling",
            200,
            Some(150),
            Debit,
            10,
            posted(-10, 190),
        ),
        (
            "downward adjustment above the ceiling",
            200,
            Some(150),
            Adjustment,
            -10,
            posted(-10, 190),
        ),
        (
            "top-up above the ceiling",
            200,
            Some(150),
            TopUp,
            1,
            Err(exceeded(-50, 1)),
        ),
    ];
    for &(name, balance, ceiling, kind, value, ref want) in cases {
        let w = capped("w", balance, ceiling);
        assert_eq!(&post(&w, kind, amount(value), ts(NOW), 0), want, "{name}");
    }
}

#[test]
fn status_and_window_come_before_the_ceiling() {
    let mut w = capped("w", 150, Some(150));
    w.status = WalletStatus::Suspended;
    assert_eq!(
        post(&w, MutationKind::TopUp, amount(1), ts(NOW), 0),
        Err(Refusal::WalletNotActive {
            status: WalletStatus::Suspended
        })
    );
    // Corrections apply in any status, but not past the ceiling.
    assert_eq!(
        post(&w, MutationKind::Adjustment, amount(1), ts(NOW), 0),
        Err(exceeded(0, 1))
    );
}

#[test]
fn transfers_stop_at_the_receivers_ceiling() {
    let plan = |from_after, to_after| {
        Ok(TransferPlan {
            from_after,
            to_after,
        })
    };
    // (name, from, to, amount, outcome)
    let cases: Vec<(&str, Wallet, Wallet, i64, Result<TransferPlan, Refusal>)> = vec![
        (
            "to exactly the ceiling",
            capped("a", 100, None),
            capped("b", 20, Some(50)),
            30,
            plan(70, 50),
        ),
        (
            "one past the ceiling",
            capped("a", 100, None),
            capped("b", 20, Some(50)),
            31,
            Err(exceeded(30, 31)),
        ),
        (
            "the sender's ceiling does not matter",
            capped("a", 100, Some(0)),
            capped("b", 0, None),
            100,
            plan(0, 100),
        ),
        (
            "funds are checked first",
            capped("a", 10, None),
            capped("b", 50, Some(50)),
            11,
            Err(Refusal::InsufficientFunds {
                available: 10,
                requested: 11,
            }),
        ),
    ];
    for (name, from, to, value, want) in cases {
        assert_eq!(
            transfer(&from, &to, amount(value), ts(NOW), 0),
            want,
            "{name}"
        );
    }
}

#[test]
fn holds_ignore_the_ceiling() {
    let mut w = capped("w", 150, Some(150));
    assert_eq!(place_hold(&w, amount(100), ts(NOW), 0), Ok(100));
    w.held = 100;
    let h = hold(&w, 100);
    assert_eq!(release_hold(&w, &h).map(|r| r.held), Ok(0));
    let plan = commit_hold(&w, &h, Some(amount(40)), ts(NOW)).expect("commit");
    assert_eq!((plan.posting.balance_after, plan.reserved.held), (110, 0));
}

/// A capped wallet with `incoming` set aside by one pending credit hold of that size,
/// and the hold.
fn with_credit_hold(balance: i64, ceiling: i64, incoming: i64) -> (Wallet, prepaid_ledger::Hold) {
    let mut w = capped("w", balance, Some(ceiling));
    w.incoming = incoming;
    let mut h = hold(&w, incoming);
    h.direction = HoldDirection::Credit;
    (w, h)
}

#[test]
fn a_credit_hold_sets_aside_room_under_the_ceiling() {
    // (name, balance, ceiling, incoming already set aside, amount, outcome: new incoming)
    let cases: &[(&str, i64, i64, i64, i64, Result<i64, Refusal>)] = &[
        ("fits exactly", -1000, 0, 0, 1000, Ok(1000)),
        ("fits beside another", -1000, 0, 400, 600, Ok(1000)),
        (
            "the second of two that both fit alone",
            -1000,
            0,
            1000,
            1000,
            Err(exceeded(0, 1000)),
        ),
        ("one over", -1000, 0, 400, 601, Err(exceeded(600, 601))),
        ("at the ceiling", 50, 50, 0, 1, Err(exceeded(0, 1))),
        // Above its ceiling (a lowered ceiling, a correction): no room, never less.
        ("above the ceiling", 80, 50, 0, 1, Err(exceeded(-30, 1))),
    ];
    for &(name, balance, ceiling, incoming, value, ref want) in cases {
        let mut w = capped("w", balance, Some(ceiling));
        w.incoming = incoming;
        assert_eq!(
            &place_credit_hold(&w, amount(value), ts(NOW)),
            want,
            "{name}"
        );
    }
    // Without a ceiling there is always room; the bound still applies to `incoming`.
    let mut w = capped("w", 10, None);
    assert_eq!(
        place_credit_hold(&w, amount(AMOUNT_MAX), ts(NOW)),
        Ok(AMOUNT_MAX)
    );
    w.incoming = BALANCE_ABS_MAX;
    assert_eq!(
        place_credit_hold(&w, amount(1), ts(NOW)),
        Err(Refusal::BalanceOverflow)
    );
}

#[test]
fn a_credit_hold_needs_a_wallet_that_takes_top_ups() {
    let mut w = capped("w", -100, Some(0));
    w.status = WalletStatus::Suspended;
    assert_eq!(
        place_credit_hold(&w, amount(10), ts(NOW)),
        Err(Refusal::WalletNotActive {
            status: WalletStatus::Suspended
        })
    );
    let mut w = capped("w", -100, Some(0));
    w.valid_until = Some(ts(NOW));
    assert_eq!(
        place_credit_hold(&w, amount(10), ts(NOW)),
        Err(Refusal::OutsideValidity)
    );
}

#[test]
fn every_credit_fits_beside_the_room_credit_holds_set_aside() {
    // Owes 10.00 (charges are debits without a floor), of which a pending payment of
    // 6.00 has set aside its room.
    let mut w = capped("w", -1000, Some(0));
    w.floor = Floor::Unlimited;
    w.incoming = 600;
    let other = capped("o", 1000, None);
    assert_eq!(
        post(&w, MutationKind::TopUp, amount(401), ts(NOW), 0),
        Err(exceeded(400, 401))
    );
    assert_eq!(
        post(&w, MutationKind::TopUp, amount(400), ts(NOW), 0),
        posted(400, -600)
    );
    assert_eq!(
        post(&w, MutationKind::Adjustment, amount(401), ts(NOW), 0),
        Err(exceeded(400, 401))
    );
    assert_eq!(
        transfer(&other, &w, amount(401), ts(NOW), 0),
        Err(exceeded(400, 401))
    );
    // Debits and debit holds never need room.
    assert!(post(&w, MutationKind::Debit, amount(5), ts(NOW), 0).is_ok());
    assert_eq!(
        place_hold(&capped("u", 100, Some(0)), amount(5), ts(NOW), 0),
        Ok(5)
    );
}

#[test]
fn committing_a_credit_hold_credits_and_frees_its_room() {
    let (w, h) = with_credit_hold(-1000, 0, 1000);
    let plan = commit_hold(&w, &h, None, ts(NOW)).expect("commit");
    assert_eq!(plan.kind, MutationKind::TopUp);
    assert_eq!(plan.committed, 1000);
    assert_eq!(plan.posting, posted(1000, 0).unwrap());
    assert_eq!(
        plan.reserved,
        Reserved {
            held: 0,
            incoming: 0
        }
    );
    // Less than was set aside: the rest of the room is free again.
    let plan = commit_hold(&w, &h, Some(amount(250)), ts(NOW)).expect("commit part");
    assert_eq!(plan.posting, posted(250, -750).unwrap());
    assert_eq!(plan.reserved.incoming, 0);
    assert_eq!(
        commit_hold(&w, &h, Some(amount(1001)), ts(NOW)),
        Err(Refusal::CommitExceedsHold {
            held: 1000,
            requested: 1001
        })
    );
}

#[test]
fn a_credit_hold_commits_on_any_wallet_status_and_leaves_debit_holds_alone() {
    // The payer's money was taken: a wallet suspended meanwhile is credited all the
    // same, and the ceiling is not asked again (the room was set aside).
    let (mut w, h) = with_credit_hold(-1000, 0, 1000);
    w.status = WalletStatus::Suspended;
    w.held = 70;
    let plan = commit_hold(&w, &h, None, ts(NOW)).expect("commit");
    assert_eq!(
        plan.reserved,
        Reserved {
            held: 70,
            incoming: 0
        }
    );
    // A debit hold on the same wallet frees `held` and leaves `incoming`.
    let mut debit = hold(&w, 70);
    debit.direction = HoldDirection::Debit;
    w.incoming = 1000;
    assert_eq!(
        release_hold(&w, &debit),
        Ok(Reserved {
            held: 0,
            incoming: 1000
        })
    );
}

#[test]
fn releasing_a_credit_hold_frees_its_room() {
    let (w, h) = with_credit_hold(-1000, 0, 1000);
    assert_eq!(
        release_hold(&w, &h),
        Ok(Reserved {
            held: 0,
            incoming: 0
        })
    );
    let mut released = h.clone();
    released.status = HoldStatus::Released;
    assert_eq!(
        release_hold(&w, &released),
        Err(Refusal::HoldNotPending {
            status: HoldStatus::Released
        })
    );
    let mut expired = h;
    expired.expires_at = Some(ts(NOW));
    assert_eq!(
        commit_hold(&w, &expired, None, ts(NOW)),
        Err(Refusal::HoldExpired)
    );
}

#[test]
fn the_refusal_has_a_stable_code() {
    assert_eq!(exceeded(0, 1).code(), "ceiling_exceeded");
}
