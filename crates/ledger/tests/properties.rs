//! Properties of the rules over every wallet state within the bounds: no rule panics
//! or overflows, what a rule accepts keeps the wallet at or above its floor and every
//! balance within the bound, a transfer creates no money, and credits together with
//! the pending credit holds never pass a ceiling.

mod common;

use common::{hold, ts, wallet};
use prepaid_ledger::{
    AMOUNT_MAX, Amount, BALANCE_ABS_MAX, Floor, HoldDirection, ID_LEN_MAX, MutationKind, WalletId,
    available, commit_hold, place_credit_hold, place_hold, post, transfer,
};
use proptest::prelude::*;

fn floor() -> impl Strategy<Value = Floor> {
    prop_oneof![
        Just(Floor::ZERO),
        (-AMOUNT_MAX..=0).prop_map(Floor::Limit),
        Just(Floor::Limit(-AMOUNT_MAX)),
        Just(Floor::Unlimited),
    ]
}

/// A balance anywhere in the bound, often near an end of it or near zero.
fn balance() -> impl Strategy<Value = i64> {
    prop_oneof![
        -1_000i64..=1_000,
        -BALANCE_ABS_MAX..=BALANCE_ABS_MAX,
        (0..=AMOUNT_MAX).prop_map(|d| BALANCE_ABS_MAX - d),
        (0..=AMOUNT_MAX).prop_map(|d| -BALANCE_ABS_MAX + d),
    ]
}

fn held() -> impl Strategy<Value = i64> {
    prop_oneof![0i64..=1_000, 0..=BALANCE_ABS_MAX]
}

fn positive() -> impl Strategy<Value = i64> {
    prop_oneof![1i64..=1_000, 1..=AMOUNT_MAX, Just(AMOUNT_MAX)]
}

fn fits(v: i64) -> bool {
    (-BALANCE_ABS_MAX..=BALANCE_ABS_MAX).contains(&v)
}

/// Whether `balance - held` is at or above the floor.
fn above_floor(balance: i64, held: i64, floor: Floor) -> bool {
    match floor {
        Floor::Limit(f) => i128::from(balance) - i128::from(held) >= i128::from(f),
        Floor::Unlimited => true,
    }
}

proptest! {
    #[test]
    fn credit_holds_and_credits_never_promise_more_than_the_ceiling(
        b in balance(), incoming in held(), c in 0..=BALANCE_ABS_MAX, a in positive(),
        top_up in positive(),
    ) {
        let mut w = wallet("w", b, 0, Floor::Unlimited);
        w.ceiling = Some(c);
        w.incoming = incoming;
        let promised = |w: &prepaid_ledger::Wallet| i128::from(w.balance) + i128::from(w.incoming);
        if let Ok(incoming_after) = place_credit_hold(&w, Amount::positive(a).unwrap(), ts(0)) {
            prop_assert_eq!(incoming_after, incoming + a);
            w.incoming = incoming_after;
            prop_assert!(promised(&w) <= i128::from(c), "{:?} promises more than its ceiling", w);
            // Committing any part of it keeps the promise.
            let mut h = hold(&w, a);
            h.direction = HoldDirection::Credit;
            let plan = commit_hold(&w, &h, None, ts(0)).expect("a placed credit hold commits");
            prop_assert!(i128::from(plan.posting.balance_after) + i128::from(plan.reserved.incoming) <= i128::from(c));
        }
        if let Ok(p) = post(&w, MutationKind::TopUp, Amount::positive(top_up).unwrap(), ts(0), 0) {
            prop_assert!(i128::from(p.balance_after) + i128::from(w.incoming) <= i128::from(c));
        }
    }

    #[test]
    fn available_never_overflows(b in balance(), h in held(), f in floor()) {
        let got = available(&wallet("w", b, h, f));
        let want = match f {
            Floor::Limit(f) => Some(i128::from(b) - i128::from(h) - i128::from(f)),
            Floor::Unlimited => None,
        };
        prop_assert_eq!(got.map(i128::from), want);
    }

    #[test]
    fn a_debit_keeps_the_floor_and_the_bound(
        b in balance(), h in held(), f in floor(), a in positive(),
    ) {
        let w = wallet("w", b, h, f);
        if let Ok(p) = post(&w, MutationKind::Debit, Amount::positive(a).unwrap(), ts(0), 0) {
            prop_assert_eq!(p.amount, -a);
            prop_assert_eq!(p.balance_after, b - a);
            prop_assert!(fits(p.balance_after));
            prop_assert!(above_floor(p.balance_after, h, f), "debit of {} took {:?} below its floor", a, w);
        }
    }

    #[test]
    fn a_top_up_or_adjustment_moves_by_its_amount_within_the_bound(
        b in balance(), h in held(), f in floor(), a in positive(), down in any::<bool>(),
    ) {
        let w = wallet("w", b, h, f);
        let (kind, delta) = if down { (MutationKind::Adjustment, -a) } else { (MutationKind::TopUp, a) };
        let got = post(&w, kind, Amount::nonzero(delta).unwrap(), ts(0), 0);
        let sum = i128::from(b) + i128::from(delta);
        match got {
            Ok(p) => {
                prop_assert_eq!(i128::from(p.balance_after), sum);
                prop_assert_eq!(p.amount, delta);
            }
            // The only refusal of an active wallet with no window is the bound.
            Err(r) => prop_assert!(sum.abs() > i128::from(BALANCE_ABS_MAX), "{:?} refused: {:?}", kind, r),
        }
    }

    #[test]
    fn a_hold_keeps_the_floor_and_the_bound(
        b in balance(), h in held(), f in floor(), a in positive(),
    ) {
        let w = wallet("w", b, h, f);
        if let Ok(held_after) = place_hold(&w, Amount::positive(a).unwrap(), ts(0), 0) {
            prop_assert_eq!(held_after, h + a);
            prop_assert!(fits(held_after));
            prop_assert!(above_floor(b, held_after, f), "hold of {} took {:?} below its floor", a, w);
        }
    }

    #[test]
    fn a_commit_never_lowers_what_is_available(
        b in balance(), extra in held(), f in floor(), a in positive(), part in any::<Option<u64>>(),
    ) {
        let extra = extra.min(BALANCE_ABS_MAX - a);
        let w = wallet("w", b, extra + a, f);
        let h = hold(&w, a);
        let amount = part.map(|p| Amount::new(i64::try_from(p % (u64::try_from(a).unwrap() + 1)).unwrap()).unwrap());
        if let Ok(plan) = commit_hold(&w, &h, amount, ts(0)) {
            prop_assert!((0..=a).contains(&plan.committed));
            prop_assert_eq!(plan.reserved.held, extra);
            prop_assert_eq!(plan.posting.balance_after, b - plan.committed);
            prop_assert!(fits(plan.posting.balance_after));
            let before = i128::from(b) - i128::from(extra + a);
            let after = i128::from(plan.posting.balance_after) - i128::from(plan.reserved.held);
            prop_assert!(after >= before, "commit lowered available from {} to {}", before, after);
        }
    }

    #[test]
    fn a_transfer_creates_no_money(
        (fb, fh, ff) in (balance(), held(), floor()),
        (tb, th, tf) in (balance(), held(), floor()),
        a in positive(),
    ) {
        let from = wallet("a", fb, fh, ff);
        let to = wallet("b", tb, th, tf);
        if let Ok(plan) = transfer(&from, &to, Amount::positive(a).unwrap(), ts(0), 0) {
            prop_assert_eq!(
                i128::from(plan.from_after) + i128::from(plan.to_after),
                i128::from(fb) + i128::from(tb)
            );
            prop_assert_eq!(plan.from_after, fb - a);
            prop_assert!(fits(plan.from_after) && fits(plan.to_after));
            prop_assert!(above_floor(plan.from_after, fh, ff), "transfer of {} took {:?} below its floor", a, from);
        }
    }

    #[test]
    fn amounts_parse_exactly_within_the_bound(v in any::<i64>()) {
        let inside = v.checked_abs().is_some_and(|m| m <= AMOUNT_MAX);
        prop_assert_eq!(Amount::new(v).map(Amount::get).ok(), inside.then_some(v));
        prop_assert_eq!(Amount::positive(v).is_ok(), inside && v > 0);
        prop_assert_eq!(Amount::nonzero(v).is_ok(), inside && v != 0);
    }

    #[test]
    fn text_ids_parse_exactly_the_allowed_strings(s in "[ -~\\t\u{e9}]{0,70}") {
        let allowed = !s.is_empty()
            && s.len() <= ID_LEN_MAX
            && s.chars().all(|c| c.is_ascii_graphic() && !"/?#%\\".contains(c));
        let got = WalletId::parse(&s);
        prop_assert_eq!(got.is_ok(), allowed, "{:?}: {:?}", s, got);
        if let Ok(id) = got {
            prop_assert_eq!(id.as_str(), s.as_str());
        }
    }
}
