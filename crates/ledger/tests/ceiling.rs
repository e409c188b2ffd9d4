//! Table-driven tests of the wallet ceiling: the highest balance a credit may take a
//! wallet to. Top-ups, upward adjustments and incoming transfers are held to it;
//! debits, downward adjustments, holds and their settlement never are.

#![allow(clippy::type_complexity)] // Table rows are plain tuples: the column comments name them.

mod common;

use common::{NOW, amount, hold, ts, wallet};
use prepaid_ledger::{
    AMOUNT_MAX, BALANCE_ABS_MAX, Floor, MutationKind, NewWallet, Posting, Refusal, TransferPlan,
    Wallet, WalletStatus, commit_hold, place_hold, post, release_hold, transfer,
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
        assert_eq!(&post(&w, kind, amount(value), ts(NOW)), want, "{name}");
    }
}

#[test]
fn status_and_window_come_before_the_ceiling() {
    let mut w = capped("w", 150, Some(150));
    w.status = WalletStatus::Suspended;
    assert_eq!(
        post(&w, MutationKind::TopUp, amount(1), ts(NOW)),
        Err(Refusal::WalletNotActive {
            status: WalletStatus::Suspended
        })
    );
    // Corrections apply in any status, but not past the ceiling.
    assert_eq!(
        post(&w, MutationKind::Adjustment, amount(1), ts(NOW)),
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
        assert_eq!(transfer(&from, &to, amount(value), ts(NOW)), want, "{name}");
    }
}

#[test]
fn holds_ignore_the_ceiling() {
    let mut w = capped("w", 150, Some(150));
    assert_eq!(place_hold(&w, amount(100), ts(NOW)), Ok(100));
    w.held = 100;
    let h = hold(&w, 100);
    assert_eq!(release_hold(&w, &h), Ok(0));
    let plan = commit_hold(&w, &h, Some(amount(40)), ts(NOW)).expect("commit");
    assert_eq!((plan.posting.balance_after, plan.held_after), (110, 0));
}

#[test]
fn the_refusal_has_a_stable_code() {
    assert_eq!(exceeded(0, 1).code(), "ceiling_exceeded");
}
