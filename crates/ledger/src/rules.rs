//! The rules of money: pure functions from the current state and a request to either
//! the new state or a [`Refusal`]. Stores load the rows, call these, and write back
//! what they return, all inside one database transaction.

use crate::model::signed;
use crate::{
    Amount, BALANCE_ABS_MAX, Floor, Hold, HoldDirection, HoldStatus, MutationKind, Refusal,
    Timestamp, Wallet, WalletStatus,
};

/// What a wallet may still spend: `balance - held - floor`, or `None` when it has no
/// floor. May be negative after a correction.
pub fn available(w: &Wallet) -> Option<i64> {
    match w.floor {
        // Within bounds: |balance|, |held| <= BALANCE_ABS_MAX < i64::MAX / 2, floor >= -AMOUNT_MAX.
        // Saturating, so a hand-built `Floor::Limit` far outside `Floor::limit`'s range
        // cannot overflow; within bounds the result is exact.
        Floor::Limit(floor) => Some(w.balance.saturating_sub(w.held).saturating_sub(floor)),
        Floor::Unlimited => None,
    }
}

fn bounded(v: Option<i64>) -> Result<i64, Refusal> {
    match v {
        Some(v) if v.checked_abs().is_some_and(|a| a <= BALANCE_ABS_MAX) => Ok(v),
        _ => Err(Refusal::BalanceOverflow),
    }
}

/// Adds `delta` to an account balance (a wallet's or a system account's), refusing to
/// pass [`BALANCE_ABS_MAX`].
pub fn add_to_balance(balance: i64, delta: i64) -> Result<i64, Refusal> {
    bounded(balance.checked_add(delta))
}

fn active_and_valid(w: &Wallet, now: Timestamp) -> Result<(), Refusal> {
    if w.status != WalletStatus::Active {
        return Err(Refusal::WalletNotActive { status: w.status });
    }
    if w.valid_from.is_some_and(|t| now < t) || w.valid_until.is_some_and(|t| now >= t) {
        return Err(Refusal::OutsideValidity);
    }
    Ok(())
}

/// Refuses spending `amount` that the wallet cannot afford. `unspendable` is credit the
/// balance still counts that may not be spent: the remainder of grants whose expiry has
/// come and that have not left the wallet yet.
fn affordable(w: &Wallet, amount: i64, unspendable: i64) -> Result<(), Refusal> {
    match available(w).map(|a| a.saturating_sub(unspendable)) {
        Some(available) if available < amount => Err(Refusal::InsufficientFunds {
            available,
            requested: amount,
        }),
        _ => Ok(()),
    }
}

/// Refuses a credit of `delta` that would take `w` above its ceiling once its pending
/// credit holds are committed too: `balance + incoming + delta <= ceiling`, so room a
/// credit hold set aside is never given to another credit. Debits (`delta <= 0`)
/// always pass: a wallet above its ceiling may still spend.
fn within_ceiling(w: &Wallet, delta: i64) -> Result<(), Refusal> {
    // Saturating: a balance at the bound plus a large credit is refused here or by
    // the bound, never wrapped.
    let promised = w.balance.saturating_add(w.incoming);
    match w.ceiling {
        Some(ceiling) if delta > 0 && promised.saturating_add(delta) > ceiling => {
            Err(Refusal::CeilingExceeded {
                room: ceiling.saturating_sub(promised),
                requested: delta,
            })
        }
        _ => Ok(()),
    }
}

/// The change a posting makes to one wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting {
    /// Signed: what the wallet gains (its counter-account loses the same).
    pub amount: i64,
    pub balance_after: i64,
}

/// A top-up, debit or adjustment.
///
/// Top-ups and debits need an active wallet inside its validity window; a debit must be
/// affordable, not counting `unspendable`: credit the balance still counts whose
/// grants have expired (see `grants`). Adjustments are an operator's corrections: they apply in any status and
/// are not held to the floor, only to the balance bound. A top-up or upward adjustment
/// may not take the wallet above its ceiling.
///
/// # Panics
/// When `kind` is not one of the three kinds a client may post directly, or a top-up or
/// debit amount is not positive (the edge builds those with [`Amount::positive`]).
pub fn post(
    w: &Wallet,
    kind: MutationKind,
    amount: Amount,
    now: Timestamp,
    unspendable: i64,
) -> Result<Posting, Refusal> {
    if matches!(kind, MutationKind::TopUp | MutationKind::Debit) {
        assert_positive(amount);
    }
    let delta = match kind {
        MutationKind::TopUp => {
            active_and_valid(w, now)?;
            signed(kind, amount)
        }
        MutationKind::Debit => {
            active_and_valid(w, now)?;
            affordable(w, amount.get(), unspendable)?;
            signed(kind, amount)
        }
        MutationKind::Adjustment => amount.get(),
        other => panic!("post() called with {other:?}, which has its own rule"),
    };
    within_ceiling(w, delta)?;
    Ok(Posting {
        amount: delta,
        balance_after: add_to_balance(w.balance, delta)?,
    })
}

/// A negative amount would run a debit, hold or transfer backwards and skip the funds
/// check of the side that really pays, so it is a caller's bug, not an outcome.
fn assert_positive(amount: Amount) {
    assert!(amount.get() > 0, "amount {amount} must be positive here");
}

/// Places a debit hold: returns the wallet's new `held`. `unspendable` is as for
/// [`post`].
///
/// # Panics
/// When `amount` is not positive.
pub fn place_hold(
    w: &Wallet,
    amount: Amount,
    now: Timestamp,
    unspendable: i64,
) -> Result<i64, Refusal> {
    assert_positive(amount);
    active_and_valid(w, now)?;
    affordable(w, amount.get(), unspendable)?;
    add_to_balance(w.held, amount.get())
}

/// Places a credit hold: sets aside `amount` of room under the wallet's ceiling for a
/// credit on its way in; returns the wallet's new `incoming`. Like a top-up, it needs
/// an active wallet inside its validity window, and it must fit under the ceiling
/// together with the balance and the other pending credit holds. A wallet without a
/// ceiling has room for any credit hold.
///
/// # Panics
/// When `amount` is not positive.
pub fn place_credit_hold(w: &Wallet, amount: Amount, now: Timestamp) -> Result<i64, Refusal> {
    assert_positive(amount);
    active_and_valid(w, now)?;
    within_ceiling(w, amount.get())?;
    add_to_balance(w.incoming, amount.get())
}

/// What a wallet sets aside: its `held` (pending debit holds) and its `incoming`
/// (pending credit holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub held: i64,
    pub incoming: i64,
}

/// The effect of committing a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitPlan {
    pub committed: i64,
    /// [`MutationKind::HoldCommit`] for a debit hold, [`MutationKind::TopUp`] for a
    /// credit hold (a credit from outside, like any top-up).
    pub kind: MutationKind,
    pub posting: Posting,
    pub reserved: Reserved,
}

/// The wallet's reservations once the pending hold `h` no longer counts.
fn without(w: &Wallet, h: &Hold) -> Reserved {
    let (reserved, name) = match h.direction {
        HoldDirection::Debit => (w.held, "held"),
        HoldDirection::Credit => (w.incoming, "incoming"),
    };
    let after = reserved - h.amount;
    assert!(
        after >= 0,
        "wallet {name} {reserved} is less than its hold {}",
        h.amount
    );
    match h.direction {
        HoldDirection::Debit => Reserved {
            held: after,
            incoming: w.incoming,
        },
        HoldDirection::Credit => Reserved {
            held: w.held,
            incoming: after,
        },
    }
}

fn pending(h: &Hold, now: Timestamp) -> Result<(), Refusal> {
    if h.status != HoldStatus::Pending {
        return Err(Refusal::HoldNotPending { status: h.status });
    }
    if h.expires_at.is_some_and(|t| now >= t) {
        return Err(Refusal::HoldExpired);
    }
    Ok(())
}

/// Commits `amount` of a pending hold (all of it when `None`) and releases the rest: a
/// debit hold debits it, a credit hold credits it. The wallet's status does not
/// matter, and a credit hold's commit is not held to the ceiling again: what was
/// reserved may always be settled.
pub fn commit_hold(
    w: &Wallet,
    h: &Hold,
    amount: Option<Amount>,
    now: Timestamp,
) -> Result<CommitPlan, Refusal> {
    assert_eq!(w.id, h.wallet, "hold loaded with the wrong wallet");
    pending(h, now)?;
    let committed = amount.map_or(h.amount, Amount::get);
    if committed > h.amount || committed < 0 {
        return Err(Refusal::CommitExceedsHold {
            held: h.amount,
            requested: committed,
        });
    }
    let reserved = without(w, h);
    let (kind, amount) = match h.direction {
        HoldDirection::Debit => (MutationKind::HoldCommit, -committed),
        HoldDirection::Credit => (MutationKind::TopUp, committed),
    };
    Ok(CommitPlan {
        committed,
        kind,
        posting: Posting {
            amount,
            balance_after: add_to_balance(w.balance, amount)?,
        },
        reserved,
    })
}

/// Releases a pending hold; returns what the wallet sets aside after. Releasing
/// ignores the hold's expiry time: an expired hold that the sweeper has not reached yet
/// is released all the same.
pub fn release_hold(w: &Wallet, h: &Hold) -> Result<Reserved, Refusal> {
    assert_eq!(w.id, h.wallet, "hold loaded with the wrong wallet");
    if h.status != HoldStatus::Pending {
        return Err(Refusal::HoldNotPending { status: h.status });
    }
    Ok(without(w, h))
}

/// The effect of a transfer on its two wallets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferPlan {
    pub from_after: i64,
    pub to_after: i64,
}

/// Moves `amount` from one wallet to another of the same unit, if the source can
/// afford it (less its `unspendable` credit, as for [`post`]) and it takes the target no higher than its ceiling.
///
/// # Panics
/// When `amount` is not positive.
pub fn transfer(
    from: &Wallet,
    to: &Wallet,
    amount: Amount,
    now: Timestamp,
    unspendable: i64,
) -> Result<TransferPlan, Refusal> {
    assert_positive(amount);
    if from.id == to.id {
        return Err(Refusal::SameWallet);
    }
    if from.unit != to.unit {
        return Err(Refusal::UnitMismatch);
    }
    active_and_valid(from, now)?;
    active_and_valid(to, now)?;
    affordable(from, amount.get(), unspendable)?;
    within_ceiling(to, amount.get())?;
    Ok(TransferPlan {
        from_after: add_to_balance(from.balance, -amount.get())?,
        to_after: add_to_balance(to.balance, amount.get())?,
    })
}

/// What expiring a wallet does: its status becomes `Expired`, its pending holds are
/// released (by the store) and a positive remaining balance goes to the expiry account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalletExpiry {
    /// The expiry posting, when there was a positive balance to take.
    pub posting: Option<Posting>,
}

/// Whether `w` is due to expire at `now`, and what that does.
pub fn expire_wallet(w: &Wallet, now: Timestamp) -> Option<WalletExpiry> {
    let due = w.status != WalletStatus::Expired && w.valid_until.is_some_and(|t| now >= t);
    due.then(|| WalletExpiry {
        posting: (w.balance > 0).then_some(Posting {
            amount: -w.balance,
            balance_after: 0,
        }),
    })
}
