//! Table-driven tests of the rules of money, through the public API of the core only.
//!
//! Each table row names the case it covers, so a failure points at the rule and the
//! edge that broke: status and validity window (`valid_from` inclusive, `valid_until`
//! exclusive), floors (zero, negative, unlimited), the balance bound, and the hold
//! life cycle.

#![allow(clippy::type_complexity)] // Table rows are plain tuples: the column comments name them.

mod common;

use common::{NOW, amount, hold, ts, wallet};
use prepaid_ledger::{
    AMOUNT_MAX, BALANCE_ABS_MAX, CommitPlan, Floor, HoldStatus, MutationKind, Posting, Refusal,
    Reserved, TransferPlan, Unit, Wallet, WalletExpiry, WalletStatus, add_to_balance, available,
    commit_hold, expire_wallet, place_hold, post, release_hold, transfer,
};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A wallet with a status and a validity window, for the rows about both.
fn windowed(status: WalletStatus, from: Option<i64>, until: Option<i64>) -> Wallet {
    let mut w = wallet("w", 100, 0, Floor::ZERO);
    w.status = status;
    w.valid_from = from.map(ts);
    w.valid_until = until.map(ts);
    w
}

#[test]
fn available_is_balance_less_held_less_floor() {
    let cases: &[(&str, i64, i64, Floor, Option<i64>)] = &[
        ("empty, floor zero", 0, 0, Floor::ZERO, Some(0)),
        ("held counts against it", 100, 30, Floor::ZERO, Some(70)),
        (
            "a negative floor adds headroom",
            100,
            30,
            Floor::Limit(-50),
            Some(120),
        ),
        (
            "negative after a correction",
            -10,
            0,
            Floor::ZERO,
            Some(-10),
        ),
        (
            "below a negative floor",
            -80,
            0,
            Floor::Limit(-50),
            Some(-30),
        ),
        (
            "unlimited has no available",
            100,
            30,
            Floor::Unlimited,
            None,
        ),
        (
            "largest balance, largest overdraft",
            BALANCE_ABS_MAX,
            0,
            Floor::Limit(-AMOUNT_MAX),
            Some(BALANCE_ABS_MAX + AMOUNT_MAX),
        ),
        (
            "lowest balance, largest held",
            -BALANCE_ABS_MAX,
            BALANCE_ABS_MAX,
            Floor::ZERO,
            Some(-2 * BALANCE_ABS_MAX),
        ),
    ];
    for &(name, balance, held, floor, want) in cases {
        assert_eq!(
            available(&wallet("w", balance, held, floor)),
            want,
            "{name}"
        );
    }
}

#[test]
fn add_to_balance_stops_at_the_bound_on_both_sides() {
    let cases: &[(&str, i64, i64, Result<i64, Refusal>)] = &[
        (
            "to the upper bound",
            BALANCE_ABS_MAX - 1,
            1,
            Ok(BALANCE_ABS_MAX),
        ),
        (
            "past the upper bound",
            BALANCE_ABS_MAX,
            1,
            Err(Refusal::BalanceOverflow),
        ),
        (
            "to the lower bound",
            -BALANCE_ABS_MAX + 1,
            -1,
            Ok(-BALANCE_ABS_MAX),
        ),
        (
            "past the lower bound",
            -BALANCE_ABS_MAX,
            -1,
            Err(Refusal::BalanceOverflow),
        ),
        ("past i64::MAX", i64::MAX, 1, Err(Refusal::BalanceOverflow)),
        ("past i64::MIN", i64::MIN, -1, Err(Refusal::BalanceOverflow)),
        (
            "i64::MIN itself",
            i64::MIN,
            0,
            Err(Refusal::BalanceOverflow),
        ),
        (
            "back inside the bound",
            BALANCE_ABS_MAX + 5,
            -5,
            Ok(BALANCE_ABS_MAX),
        ),
        ("zero delta", 42, 0, Ok(42)),
    ];
    for &(name, balance, delta, ref want) in cases {
        assert_eq!(&add_to_balance(balance, delta), want, "{name}");
    }
}

#[test]
fn post_checks_status_and_the_validity_window() {
    use WalletStatus::{Active, Expired, Suspended};
    let not_active = |status| Err(Refusal::WalletNotActive { status });
    let outside = Err(Refusal::OutsideValidity);
    // (name, status, valid_from, valid_until, now, top-up/debit outcome)
    let cases: &[(
        &str,
        WalletStatus,
        Option<i64>,
        Option<i64>,
        i64,
        Result<(), Refusal>,
    )] = &[
        ("active, no window", Active, None, None, NOW, Ok(())),
        (
            "suspended",
            Suspended,
            None,
            None,
            NOW,
            not_active(Suspended),
        ),
        ("expired", Expired, None, None, NOW, not_active(Expired)),
        (
            "one before valid_from",
            Active,
            Some(NOW + 1),
            None,
            NOW,
            outside.clone(),
        ),
        (
            "at valid_from (inclusive)",
            Active,
            Some(NOW),
            None,
            NOW,
            Ok(()),
        ),
        (
            "one before valid_until",
            Active,
            None,
            Some(NOW + 1),
            NOW,
            Ok(()),
        ),
        (
            "at valid_until (exclusive)",
            Active,
            None,
            Some(NOW),
            NOW,
            outside.clone(),
        ),
        (
            "after valid_until",
            Active,
            None,
            Some(NOW - 1),
            NOW,
            outside.clone(),
        ),
        (
            "inside both ends",
            Active,
            Some(NOW),
            Some(NOW + 1),
            NOW,
            Ok(()),
        ),
        (
            "empty window",
            Active,
            Some(NOW),
            Some(NOW),
            NOW,
            outside.clone(),
        ),
        (
            "status is checked before the window",
            Suspended,
            Some(NOW + 1),
            None,
            NOW,
            not_active(Suspended),
        ),
    ];
    for (name, status, from, until, now, want) in cases {
        let w = windowed(*status, *from, *until);
        let now = ts(*now);
        let top_up = post(&w, MutationKind::TopUp, amount(5), now, 0);
        assert_eq!(top_up.map(|_| ()), *want, "top-up, {name}");
        let debit = post(&w, MutationKind::Debit, amount(5), now, 0);
        assert_eq!(debit.map(|_| ()), *want, "debit, {name}");
        // An adjustment is an operator's correction: status and window do not matter.
        assert_eq!(
            post(&w, MutationKind::Adjustment, amount(-5), now, 0),
            Ok(Posting {
                amount: -5,
                balance_after: 95
            }),
            "adjustment, {name}"
        );
    }
}

#[test]
fn post_moves_the_balance_by_the_signed_amount() {
    let unlimited_low = -BALANCE_ABS_MAX + AMOUNT_MAX;
    let insufficient = |available, requested| {
        Err(Refusal::InsufficientFunds {
            available,
            requested,
        })
    };
    // (name, balance, held, floor, kind, amount, outcome)
    let cases: &[(
        &str,
        i64,
        i64,
        Floor,
        MutationKind,
        i64,
        Result<Posting, Refusal>,
    )] = &[
        (
            "top-up",
            100,
            0,
            Floor::ZERO,
            MutationKind::TopUp,
            5,
            Ok(Posting {
                amount: 5,
                balance_after: 105,
            }),
        ),
        (
            "top-up of the largest amount",
            0,
            0,
            Floor::ZERO,
            MutationKind::TopUp,
            AMOUNT_MAX,
            Ok(Posting {
                amount: AMOUNT_MAX,
                balance_after: AMOUNT_MAX,
            }),
        ),
        (
            "top-up to exactly the bound",
            BALANCE_ABS_MAX - AMOUNT_MAX,
            0,
            Floor::ZERO,
            MutationKind::TopUp,
            AMOUNT_MAX,
            Ok(Posting {
                amount: AMOUNT_MAX,
                balance_after: BALANCE_ABS_MAX,
            }),
        ),
        (
            "top-up one past the bound",
            BALANCE_ABS_MAX - AMOUNT_MAX + 1,
            0,
            Floor::ZERO,
            MutationKind::TopUp,
            AMOUNT_MAX,
            Err(Refusal::BalanceOverflow),
        ),
        (
            "top-up ignores held",
            0,
            50,
            Floor::ZERO,
            MutationKind::TopUp,
            1,
            Ok(Posting {
                amount: 1,
                balance_after: 1,
            }),
        ),
        (
            "debit of everything, floor zero",
            100,
            30,
            Floor::ZERO,
            MutationKind::Debit,
            70,
            Ok(Posting {
                amount: -70,
                balance_after: 30,
            }),
        ),
        (
            "debit one past available, floor zero",
            100,
            30,
            Floor::ZERO,
            MutationKind::Debit,
            71,
            insufficient(70, 71),
        ),
        (
            "debit into a negative floor",
            100,
            30,
            Floor::Limit(-50),
            MutationKind::Debit,
            120,
            Ok(Posting {
                amount: -120,
                balance_after: -20,
            }),
        ),
        (
            "debit one past a negative floor",
            100,
            30,
            Floor::Limit(-50),
            MutationKind::Debit,
            121,
            insufficient(120, 121),
        ),
        (
            "debit from an empty wallet",
            0,
            0,
            Floor::ZERO,
            MutationKind::Debit,
            1,
            insufficient(0, 1),
        ),
        (
            "debit when already below the floor",
            -10,
            0,
            Floor::ZERO,
            MutationKind::Debit,
            1,
            insufficient(-10, 1),
        ),
        (
            "debit with an unlimited floor",
            0,
            99,
            Floor::Unlimited,
            MutationKind::Debit,
            AMOUNT_MAX,
            Ok(Posting {
                amount: -AMOUNT_MAX,
                balance_after: -AMOUNT_MAX,
            }),
        ),
        (
            "unlimited debit to exactly the lower bound",
            unlimited_low,
            0,
            Floor::Unlimited,
            MutationKind::Debit,
            AMOUNT_MAX,
            Ok(Posting {
                amount: -AMOUNT_MAX,
                balance_after: -BALANCE_ABS_MAX,
            }),
        ),
        (
            "unlimited debit one past the lower bound",
            unlimited_low - 1,
            0,
            Floor::Unlimited,
            MutationKind::Debit,
            AMOUNT_MAX,
            Err(Refusal::BalanceOverflow),
        ),
        (
            "adjustment up",
            0,
            0,
            Floor::ZERO,
            MutationKind::Adjustment,
            7,
            Ok(Posting {
                amount: 7,
                balance_after: 7,
            }),
        ),
        (
            "adjustment below a zero floor",
            0,
            0,
            Floor::ZERO,
            MutationKind::Adjustment,
            -7,
            Ok(Posting {
                amount: -7,
                balance_after: -7,
            }),
        ),
        (
            "adjustment below a negative floor",
            0,
            40,
            Floor::Limit(-50),
            MutationKind::Adjustment,
            -AMOUNT_MAX,
            Ok(Posting {
                amount: -AMOUNT_MAX,
                balance_after: -AMOUNT_MAX,
            }),
        ),
        (
            "adjustment to exactly the lower bound",
            -BALANCE_ABS_MAX + 1,
            0,
            Floor::ZERO,
            MutationKind::Adjustment,
            -1,
            Ok(Posting {
                amount: -1,
                balance_after: -BALANCE_ABS_MAX,
            }),
        ),
        (
            "adjustment one past the lower bound",
            -BALANCE_ABS_MAX,
            0,
            Floor::ZERO,
            MutationKind::Adjustment,
            -1,
            Err(Refusal::BalanceOverflow),
        ),
        (
            "adjustment one past the upper bound",
            BALANCE_ABS_MAX,
            0,
            Floor::ZERO,
            MutationKind::Adjustment,
            1,
            Err(Refusal::BalanceOverflow),
        ),
    ];
    for &(name, balance, held, floor, kind, value, ref want) in cases {
        let w = wallet("w", balance, held, floor);
        assert_eq!(&post(&w, kind, amount(value), ts(NOW), 0), want, "{name}");
    }
}

#[test]
fn post_rejects_the_kinds_that_have_their_own_rule() {
    for kind in [
        MutationKind::TransferOut,
        MutationKind::TransferIn,
        MutationKind::HoldCommit,
        MutationKind::HoldRelease,
        MutationKind::Expiry,
    ] {
        let w = wallet("w", 100, 0, Floor::ZERO);
        let result = catch_unwind(AssertUnwindSafe(|| post(&w, kind, amount(1), ts(NOW), 0)));
        assert!(result.is_err(), "post() must not accept {kind:?}");
    }
}

#[test]
fn place_hold_checks_status_window_funds_and_bound() {
    // (name, wallet, amount, now, outcome: the new held)
    let active = |balance, held, floor| wallet("w", balance, held, floor);
    let cases: Vec<(&str, Wallet, i64, i64, Result<i64, Refusal>)> = vec![
        (
            "hold part of the balance",
            active(100, 0, Floor::ZERO),
            40,
            NOW,
            Ok(40),
        ),
        (
            "hold exactly what is available",
            active(100, 30, Floor::ZERO),
            70,
            NOW,
            Ok(100),
        ),
        (
            "hold one past available",
            active(100, 30, Floor::ZERO),
            71,
            NOW,
            Err(Refusal::InsufficientFunds {
                available: 70,
                requested: 71,
            }),
        ),
        (
            "hold into a negative floor",
            active(0, 0, Floor::Limit(-50)),
            50,
            NOW,
            Ok(50),
        ),
        (
            "hold past a negative floor",
            active(0, 0, Floor::Limit(-50)),
            51,
            NOW,
            Err(Refusal::InsufficientFunds {
                available: 50,
                requested: 51,
            }),
        ),
        (
            "hold on an unlimited wallet",
            active(0, 0, Floor::Unlimited),
            AMOUNT_MAX,
            NOW,
            Ok(AMOUNT_MAX),
        ),
        (
            "held up to exactly the bound",
            active(0, BALANCE_ABS_MAX - 5, Floor::Unlimited),
            5,
            NOW,
            Ok(BALANCE_ABS_MAX),
        ),
        (
            "held one past the bound",
            active(0, BALANCE_ABS_MAX - 5, Floor::Unlimited),
            6,
            NOW,
            Err(Refusal::BalanceOverflow),
        ),
        (
            "held past the bound on a full wallet with a floor",
            active(
                BALANCE_ABS_MAX,
                BALANCE_ABS_MAX - 1,
                Floor::Limit(-AMOUNT_MAX),
            ),
            2,
            NOW,
            Err(Refusal::BalanceOverflow),
        ),
        (
            "suspended",
            windowed(WalletStatus::Suspended, None, None),
            1,
            NOW,
            Err(Refusal::WalletNotActive {
                status: WalletStatus::Suspended,
            }),
        ),
        (
            "expired",
            windowed(WalletStatus::Expired, None, None),
            1,
            NOW,
            Err(Refusal::WalletNotActive {
                status: WalletStatus::Expired,
            }),
        ),
        (
            "before valid_from",
            windowed(WalletStatus::Active, Some(NOW + 1), None),
            1,
            NOW,
            Err(Refusal::OutsideValidity),
        ),
        (
            "at valid_from",
            windowed(WalletStatus::Active, Some(NOW), None),
            1,
            NOW,
            Ok(1),
        ),
        (
            "one before valid_until",
            windowed(WalletStatus::Active, None, Some(NOW + 1)),
            1,
            NOW,
            Ok(1),
        ),
        (
            "at valid_until",
            windowed(WalletStatus::Active, None, Some(NOW)),
            1,
            NOW,
            Err(Refusal::OutsideValidity),
        ),
        (
            "window is checked before funds",
            windowed(WalletStatus::Active, None, Some(NOW)),
            1_000,
            NOW,
            Err(Refusal::OutsideValidity),
        ),
    ];
    for (name, w, value, now, want) in cases {
        assert_eq!(place_hold(&w, amount(value), ts(now), 0), want, "{name}");
    }
}

/// A wallet holding `held` in one pending hold of that size, and the hold.
fn with_hold(balance: i64, held: i64, floor: Floor) -> (Wallet, prepaid_ledger::Hold) {
    let w = wallet("w", balance, held, floor);
    let h = hold(&w, held);
    (w, h)
}

#[test]
fn commit_hold_settles_part_or_all_and_releases_the_rest() {
    let plan = |committed: i64, balance_after| {
        Ok(CommitPlan {
            committed,
            kind: MutationKind::HoldCommit,
            posting: Posting {
                amount: -committed,
                balance_after,
            },
            reserved: Reserved {
                held: 0,
                incoming: 0,
            },
        })
    };
    let exceeds = |requested| {
        Err(Refusal::CommitExceedsHold {
            held: 40,
            requested,
        })
    };
    // (name, amount to commit, outcome) on a wallet of 100 holding 40.
    let cases: &[(&str, Option<i64>, Result<CommitPlan, Refusal>)] = &[
        ("all by default", None, plan(40, 60)),
        ("all, stated", Some(40), plan(40, 60)),
        ("part", Some(25), plan(25, 75)),
        ("one", Some(1), plan(1, 99)),
        ("zero releases everything", Some(0), plan(0, 100)),
        ("one over the hold", Some(41), exceeds(41)),
        ("far over the hold", Some(AMOUNT_MAX), exceeds(AMOUNT_MAX)),
        ("negative", Some(-1), exceeds(-1)),
    ];
    for &(name, value, ref want) in cases {
        let (w, h) = with_hold(100, 40, Floor::ZERO);
        let got = commit_hold(&w, &h, value.map(amount), ts(NOW));
        assert_eq!(&got, want, "{name}");
    }
}

#[test]
fn commit_hold_releases_only_its_own_hold_from_held() {
    let w = wallet("w", 100, 70, Floor::ZERO);
    let h = hold(&w, 40);
    let got = commit_hold(&w, &h, Some(amount(10)), ts(NOW)).unwrap();
    assert_eq!(got.reserved.held, 30);
    assert_eq!(
        got.posting,
        Posting {
            amount: -10,
            balance_after: 90
        }
    );
}

#[test]
fn commit_hold_needs_a_pending_unexpired_hold() {
    use HoldStatus::{Committed, Expired, Pending, Released};
    let not_pending = |status| Some(Refusal::HoldNotPending { status });
    // (name, status, expires_at, now, amount to commit, refusal)
    let cases: &[(
        &str,
        HoldStatus,
        Option<i64>,
        i64,
        Option<i64>,
        Option<Refusal>,
    )] = &[
        ("pending, no expiry", Pending, None, NOW, None, None),
        (
            "one before expires_at",
            Pending,
            Some(NOW + 1),
            NOW,
            None,
            None,
        ),
        (
            "at expires_at",
            Pending,
            Some(NOW),
            NOW,
            None,
            Some(Refusal::HoldExpired),
        ),
        (
            "after expires_at",
            Pending,
            Some(NOW - 1),
            NOW,
            None,
            Some(Refusal::HoldExpired),
        ),
        (
            "committed",
            Committed,
            None,
            NOW,
            None,
            not_pending(Committed),
        ),
        ("released", Released, None, NOW, None, not_pending(Released)),
        ("expired", Expired, None, NOW, None, not_pending(Expired)),
        (
            "status before time",
            Released,
            Some(NOW),
            NOW,
            None,
            not_pending(Released),
        ),
        (
            "status before amount",
            Committed,
            None,
            NOW,
            Some(41),
            not_pending(Committed),
        ),
        (
            "time before amount",
            Pending,
            Some(NOW),
            NOW,
            Some(41),
            Some(Refusal::HoldExpired),
        ),
    ];
    for &(name, status, expires_at, now, requested, ref want) in cases {
        let (w, mut h) = with_hold(100, 40, Floor::ZERO);
        h.status = status;
        h.expires_at = expires_at.map(ts);
        let got = commit_hold(&w, &h, requested.map(amount), ts(now));
        assert_eq!(got.err(), *want, "{name}");
    }
}

#[test]
fn commit_hold_ignores_the_wallet_status_and_window() {
    let cases: &[(&str, WalletStatus, Option<i64>, Option<i64>)] = &[
        ("suspended", WalletStatus::Suspended, None, None),
        ("expired", WalletStatus::Expired, None, None),
        (
            "before valid_from",
            WalletStatus::Active,
            Some(NOW + 1),
            None,
        ),
        ("at valid_until", WalletStatus::Active, None, Some(NOW)),
    ];
    for &(name, status, from, until) in cases {
        let mut w = windowed(status, from, until);
        w.held = 40;
        let h = hold(&w, 40);
        let got = commit_hold(&w, &h, None, ts(NOW));
        assert_eq!(got.map(|p| p.posting.balance_after), Ok(60), "{name}");
    }
}

#[test]
fn commit_hold_refuses_to_pass_the_balance_bound() {
    let low = -BALANCE_ABS_MAX + 10;
    let w = wallet("w", low, 40, Floor::Unlimited);
    let h = hold(&w, 40);
    assert_eq!(
        commit_hold(&w, &h, Some(amount(10)), ts(NOW)).map(|p| p.posting.balance_after),
        Ok(-BALANCE_ABS_MAX)
    );
    assert_eq!(
        commit_hold(&w, &h, Some(amount(11)), ts(NOW)),
        Err(Refusal::BalanceOverflow)
    );
}

#[test]
fn commit_and_release_assert_their_preconditions() {
    let w = wallet("w", 100, 40, Floor::ZERO);
    let other = wallet("other", 100, 40, Floor::ZERO);
    let foreign = hold(&other, 40);
    let too_big = hold(&w, 41);
    let calls: [(&str, Box<dyn Fn()>); 4] = [
        (
            "commit with the wrong wallet",
            Box::new(|| drop(commit_hold(&w, &foreign, None, ts(NOW)))),
        ),
        (
            "release with the wrong wallet",
            Box::new(|| drop(release_hold(&w, &foreign))),
        ),
        (
            "commit of a hold larger than held",
            Box::new(|| drop(commit_hold(&w, &too_big, None, ts(NOW)))),
        ),
        (
            "release of a hold larger than held",
            Box::new(|| drop(release_hold(&w, &too_big))),
        ),
    ];
    for (name, call) in calls {
        assert!(
            catch_unwind(AssertUnwindSafe(call)).is_err(),
            "{name} must panic"
        );
    }
}

#[test]
fn release_hold_needs_only_a_pending_hold() {
    use HoldStatus::{Committed, Expired, Pending, Released};
    // (name, wallet status, hold status, expires_at, outcome: the new held)
    let cases: &[(
        &str,
        WalletStatus,
        HoldStatus,
        Option<i64>,
        Result<i64, Refusal>,
    )] = &[
        ("pending", WalletStatus::Active, Pending, None, Ok(30)),
        (
            "past its expiry, not yet swept",
            WalletStatus::Active,
            Pending,
            Some(NOW - 1),
            Ok(30),
        ),
        (
            "on a suspended wallet",
            WalletStatus::Suspended,
            Pending,
            None,
            Ok(30),
        ),
        (
            "on an expired wallet",
            WalletStatus::Expired,
            Pending,
            None,
            Ok(30),
        ),
        (
            "committed",
            WalletStatus::Active,
            Committed,
            None,
            Err(Refusal::HoldNotPending { status: Committed }),
        ),
        (
            "released",
            WalletStatus::Active,
            Released,
            None,
            Err(Refusal::HoldNotPending { status: Released }),
        ),
        (
            "expired",
            WalletStatus::Active,
            Expired,
            None,
            Err(Refusal::HoldNotPending { status: Expired }),
        ),
    ];
    for &(name, wallet_status, status, expires_at, ref want) in cases {
        let mut w = wallet("w", 100, 70, Floor::ZERO);
        w.status = wallet_status;
        let mut h = hold(&w, 40);
        h.status = status;
        h.expires_at = expires_at.map(ts);
        let got = release_hold(&w, &h).map(|r| r.held);
        assert_eq!(&got, want, "{name}");
    }
}

#[test]
fn transfer_checks_both_ends() {
    let min = Unit::new("MIN", 0).unwrap();
    let eur0 = Unit::new("EUR", 0).unwrap();
    let with = |id: &str, f: &dyn Fn(&mut Wallet)| {
        let mut w = wallet(id, 100, 0, Floor::ZERO);
        f(&mut w);
        w
    };
    let plain = |id: &str| with(id, &|_| {});
    let plan = |from_after, to_after| {
        Ok(TransferPlan {
            from_after,
            to_after,
        })
    };
    // (name, from, to, amount, outcome)
    let cases: Vec<(&str, Wallet, Wallet, i64, Result<TransferPlan, Refusal>)> = vec![
        ("plain", plain("a"), plain("b"), 30, plan(70, 130)),
        (
            "everything available",
            plain("a"),
            plain("b"),
            100,
            plan(0, 200),
        ),
        (
            "one past available",
            plain("a"),
            plain("b"),
            101,
            Err(Refusal::InsufficientFunds {
                available: 100,
                requested: 101,
            }),
        ),
        (
            "held counts against the sender",
            with("a", &|w| w.held = 60),
            plain("b"),
            41,
            Err(Refusal::InsufficientFunds {
                available: 40,
                requested: 41,
            }),
        ),
        (
            "into the sender's negative floor",
            with("a", &|w| w.floor = Floor::Limit(-20)),
            plain("b"),
            120,
            plan(-20, 220),
        ),
        (
            "from an unlimited wallet",
            with("a", &|w| w.floor = Floor::Unlimited),
            plain("b"),
            AMOUNT_MAX,
            plan(100 - AMOUNT_MAX, 100 + AMOUNT_MAX),
        ),
        (
            "the receiver's floor does not matter",
            plain("a"),
            with("b", &|w| w.balance = -500),
            30,
            plan(70, -470),
        ),
        (
            "same wallet",
            plain("a"),
            plain("a"),
            1,
            Err(Refusal::SameWallet),
        ),
        (
            "same wallet is checked first",
            with("a", &|w| w.status = WalletStatus::Suspended),
            with("a", &|w| w.unit = min.clone()),
            1_000,
            Err(Refusal::SameWallet),
        ),
        (
            "different unit code",
            plain("a"),
            with("b", &|w| w.unit = min.clone()),
            1,
            Err(Refusal::UnitMismatch),
        ),
        (
            "same code, different scale",
            plain("a"),
            with("b", &|w| w.unit = eur0.clone()),
            1,
            Err(Refusal::UnitMismatch),
        ),
        (
            "unit is checked before status",
            with("a", &|w| w.status = WalletStatus::Suspended),
            with("b", &|w| w.unit = min.clone()),
            1,
            Err(Refusal::UnitMismatch),
        ),
        (
            "suspended sender",
            with("a", &|w| w.status = WalletStatus::Suspended),
            plain("b"),
            1,
            Err(Refusal::WalletNotActive {
                status: WalletStatus::Suspended,
            }),
        ),
        (
            "expired receiver",
            plain("a"),
            with("b", &|w| w.status = WalletStatus::Expired),
            1,
            Err(Refusal::WalletNotActive {
                status: WalletStatus::Expired,
            }),
        ),
        (
            "sender before valid_from",
            with("a", &|w| w.valid_from = Some(ts(NOW + 1))),
            plain("b"),
            1,
            Err(Refusal::OutsideValidity),
        ),
        (
            "receiver at valid_until",
            plain("a"),
            with("b", &|w| w.valid_until = Some(ts(NOW))),
            1,
            Err(Refusal::OutsideValidity),
        ),
        (
            "receiver one before valid_until",
            plain("a"),
            with("b", &|w| w.valid_until = Some(ts(NOW + 1))),
            1,
            plan(99, 101),
        ),
        (
            "an inactive receiver is refused before the sender's funds",
            plain("a"),
            with("b", &|w| w.status = WalletStatus::Suspended),
            1_000,
            Err(Refusal::WalletNotActive {
                status: WalletStatus::Suspended,
            }),
        ),
        (
            "receiver to exactly the bound",
            plain("a"),
            with("b", &|w| w.balance = BALANCE_ABS_MAX - 100),
            100,
            plan(0, BALANCE_ABS_MAX),
        ),
        (
            "receiver past the bound",
            plain("a"),
            with("b", &|w| w.balance = BALANCE_ABS_MAX - 99),
            100,
            Err(Refusal::BalanceOverflow),
        ),
        (
            "unlimited sender past the lower bound",
            with("a", &|w| {
                w.floor = Floor::Unlimited;
                w.balance = -BALANCE_ABS_MAX;
            }),
            plain("b"),
            1,
            Err(Refusal::BalanceOverflow),
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
fn expire_wallet_is_due_at_valid_until() {
    let expiry = |balance: i64| {
        Some(WalletExpiry {
            posting: (balance > 0).then_some(Posting {
                amount: -balance,
                balance_after: 0,
            }),
        })
    };
    // (name, status, balance, valid_until, now, outcome)
    let cases: &[(
        &str,
        WalletStatus,
        i64,
        Option<i64>,
        i64,
        Option<WalletExpiry>,
    )] = &[
        ("no valid_until", WalletStatus::Active, 100, None, NOW, None),
        (
            "one before valid_until",
            WalletStatus::Active,
            100,
            Some(NOW + 1),
            NOW,
            None,
        ),
        (
            "at valid_until",
            WalletStatus::Active,
            100,
            Some(NOW),
            NOW,
            expiry(100),
        ),
        (
            "after valid_until",
            WalletStatus::Active,
            100,
            Some(NOW - 1),
            NOW,
            expiry(100),
        ),
        (
            "suspended wallets expire too",
            WalletStatus::Suspended,
            100,
            Some(NOW),
            NOW,
            expiry(100),
        ),
        (
            "already expired",
            WalletStatus::Expired,
            100,
            Some(NOW),
            NOW,
            None,
        ),
        (
            "nothing to take",
            WalletStatus::Active,
            0,
            Some(NOW),
            NOW,
            expiry(0),
        ),
        (
            "a debt is kept",
            WalletStatus::Active,
            -30,
            Some(NOW),
            NOW,
            expiry(-30),
        ),
        (
            "the largest balance",
            WalletStatus::Active,
            BALANCE_ABS_MAX,
            Some(NOW),
            NOW,
            expiry(BALANCE_ABS_MAX),
        ),
    ];
    for &(name, status, balance, until, now, want) in cases {
        let mut w = windowed(status, None, until);
        w.balance = balance;
        assert_eq!(expire_wallet(&w, ts(now)), want, "{name}");
    }
}

#[test]
fn expire_wallet_takes_the_balance_even_when_part_is_held() {
    let mut w = wallet("w", 100, 60, Floor::ZERO);
    w.valid_until = Some(ts(NOW));
    let got = expire_wallet(&w, ts(NOW)).unwrap();
    assert_eq!(
        got.posting,
        Some(Posting {
            amount: -100,
            balance_after: 0
        })
    );
}
