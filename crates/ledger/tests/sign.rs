//! The direction of money: a top-up, debit, hold or transfer moves value one way only.
//!
//! `Amount` admits negative values (adjustments need them), so the type alone does not
//! stop a caller from handing a negative amount to a rule whose kind fixes the sign.
//! The core's convention is that such a broken precondition is either refused or an
//! assertion; what it must never do is carry it out backwards, because a backwards
//! debit, hold or transfer skips the funds check of the wallet that actually pays.

mod common;

use common::{NOW, amount, ts, wallet};
use prepaid_ledger::{Floor, MutationKind, Refusal, place_hold, post, transfer};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// `Some(result)` when the rule returned, `None` when it panicked (an assertion).
fn run<T>(f: impl FnOnce() -> Result<T, Refusal>) -> Option<Result<T, Refusal>> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

#[test]
fn a_negative_top_up_or_debit_is_never_carried_out() {
    for (kind, sign) in [(MutationKind::TopUp, 1), (MutationKind::Debit, -1)] {
        // An empty wallet with a zero floor: a "top-up" of -5 would take it to -5
        // without any funds check.
        let w = wallet("w", 0, 0, Floor::ZERO);
        if let Some(Ok(p)) = run(|| post(&w, kind, amount(-5), ts(NOW), 0)) {
            assert!(
                p.amount.signum() == sign,
                "{kind:?} of -5 was carried out as a change of {} (balance {} -> {}, below a zero floor: {})",
                p.amount,
                w.balance,
                p.balance_after,
                p.balance_after < 0
            );
        }
    }
}

#[test]
fn a_negative_hold_is_never_placed() {
    let w = wallet("w", 100, 0, Floor::ZERO);
    if let Some(Ok(held_after)) = run(|| place_hold(&w, amount(-50), ts(NOW), 0)) {
        assert!(
            held_after >= w.held,
            "a hold of -50 lowered held from {} to {held_after}, raising available to {}",
            w.held,
            w.balance - held_after
        );
    }
}

#[test]
fn a_negative_transfer_never_pulls_from_the_receiver() {
    // The receiver has nothing and a zero floor; a transfer of -50 "to" it would take
    // 50 from it without checking its funds.
    let from = wallet("a", 100, 0, Floor::ZERO);
    let to = wallet("b", 0, 0, Floor::ZERO);
    if let Some(Ok(plan)) = run(|| transfer(&from, &to, amount(-50), ts(NOW), 0)) {
        assert!(
            plan.to_after >= to.balance,
            "a transfer of -50 took the receiver from {} to {}",
            to.balance,
            plan.to_after
        );
    }
}
