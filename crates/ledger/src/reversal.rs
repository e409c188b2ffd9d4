//! Reversals: the opposite of an earlier mutation, posted once.
//!
//! A debit's reversal (of a debit, a hold's commit or a downward adjustment) gives each
//! grant back exactly what the debit drew from it, so the credit returns with its own
//! expiry, priority and category; what the debit took beyond its grants (into debt)
//! comes back as a credit of its own (the store repays the wallet's debt with it, and
//! the rest becomes a grant whose id is the reversal's). A credit's reversal (of a top-up or an upward
//! adjustment) takes back what the credit's grant still has free (neither spent nor
//! reserved by a hold); when that is less than the credit, it is refused with what
//! could be taken back, unless the caller allows the balance to go negative, and then
//! the rest comes out of the balance as debt.
//!
//! A reversal has one id, derived from its original's ([`reversal_id`]), so that the
//! store's unique mutation id makes it happen once.

use crate::{
    Draw, Grant, Mutation, MutationId, MutationKind, Refusal, Wallet, add_to_balance, available,
};

/// The id of the reversal of `original`: derived, so that a second reversal of one
/// mutation is the first one again. The bytes of the original are mixed with a fixed
/// key and marked as a version 8 (custom) UUID, which no server-made id is.
pub fn reversal_id(original: MutationId) -> MutationId {
    const KEY: [u8; 16] = *b"prepaid-reversal";
    let mut bytes = *original.0.as_bytes();
    for (b, k) in bytes.iter_mut().zip(KEY) {
        *b ^= k;
    }
    MutationId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// What reversing a mutation does to its wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReversalPlan {
    /// Signed: what the wallet gains (its original's counter-account loses the same).
    pub amount: i64,
    pub balance_after: i64,
    /// What each grant gives (positive) or gets back (negative).
    pub drawn: Vec<Draw>,
}

/// Plans the reversal of `original`, a mutation of `w`. `grant` is the grant the
/// original made, when it is a credit and the grant has something left; `unspendable`
/// is the wallet's credit that may not be spent (see [`crate::post`]).
///
/// # Panics
/// When `original` is not a mutation of `w`, or `grant` is not the grant it made.
pub fn plan_reversal(
    original: &Mutation,
    w: &Wallet,
    grant: Option<&Grant>,
    allow_negative: bool,
    unspendable: i64,
) -> Result<ReversalPlan, Refusal> {
    assert_eq!(
        original.wallet, w.id,
        "a reversal planned on another wallet"
    );
    assert!(
        grant.is_none_or(|g| g.id == original.id),
        "a credit's reversal planned with another grant"
    );
    match original.kind {
        MutationKind::TopUp
        | MutationKind::Debit
        | MutationKind::Adjustment
        | MutationKind::HoldCommit => {}
        MutationKind::TransferOut
        | MutationKind::TransferIn
        | MutationKind::HoldRelease
        | MutationKind::Expiry
        | MutationKind::Reversal => return Err(Refusal::NotReversible),
    }
    let amount = -original.amount;
    let drawn = if original.amount <= 0 {
        // A debit: each grant gets back what it gave.
        original
            .drawn
            .iter()
            .map(|d| Draw {
                grant: d.grant,
                amount: -d.amount,
            })
            .collect()
    } else {
        let free = grant.map_or(0, |g| g.remaining - g.held);
        let affordable = available(w).map_or(i64::MAX, |a| a.saturating_sub(unspendable));
        let reversible = free.min(affordable).max(0);
        let take = original.amount.min(free).max(0);
        if original.amount > reversible && !allow_negative {
            return Err(Refusal::ReversalExceedsRemaining { reversible });
        }
        match take {
            0 => Vec::new(),
            _ => vec![Draw {
                grant: original.id,
                amount: take,
            }],
        }
    };
    Ok(ReversalPlan {
        amount,
        balance_after: add_to_balance(w.balance, amount)?,
        drawn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        CustomerId, Floor, GrantTerms, NewWallet, Reference, TenantId, Timestamp, Unit, WalletId,
    };
    use uuid::Uuid;

    fn wallet(balance: i64, floor: Floor) -> Wallet {
        let mut w = Wallet::open(
            TenantId::parse("t").unwrap(),
            NewWallet {
                id: WalletId::parse("w").unwrap(),
                customer: CustomerId::parse("c").unwrap(),
                unit: Unit::new("EUR", 2).unwrap(),
                name: String::new(),
                product: String::new(),
                floor,
                ceiling: None,
                valid_from: None,
                valid_until: None,
                metadata: crate::Metadata::default(),
            },
            Timestamp::from_micros(0),
        );
        w.balance = balance;
        w
    }

    fn mutation(kind: MutationKind, amount: i64, drawn: Vec<Draw>) -> Mutation {
        let w = wallet(0, Floor::ZERO);
        Mutation {
            tenant: w.tenant,
            id: MutationId(Uuid::from_u128(9)),
            wallet: w.id,
            customer: w.customer,
            unit: w.unit,
            kind,
            amount,
            balance_after: 0,
            reference: Reference::default(),
            hold: None,
            transfer: None,
            counter_wallet: None,
            occurred_at: Timestamp::from_micros(0),
            recorded_at: Timestamp::from_micros(0),
            drawn,
            reverses: None,
            metadata: crate::Metadata::default(),
        }
    }

    fn draw(n: u128, amount: i64) -> Draw {
        Draw {
            grant: MutationId(Uuid::from_u128(n)),
            amount,
        }
    }

    #[test]
    fn reversal_ids_are_derived_and_differ_from_the_original() {
        let a = MutationId(Uuid::now_v7());
        assert_eq!(reversal_id(a), reversal_id(a));
        assert_ne!(reversal_id(a), a);
        assert_ne!(reversal_id(a), reversal_id(MutationId(Uuid::now_v7())));
        assert_eq!(reversal_id(a).0.get_version_num(), 8);
    }

    #[test]
    fn a_debit_gives_each_grant_back_what_it_drew() {
        let debit = mutation(MutationKind::Debit, -30, vec![draw(1, 5), draw(2, 20)]);
        let plan = plan_reversal(&debit, &wallet(70, Floor::ZERO), None, false, 0).unwrap();
        assert_eq!(plan.amount, 30);
        assert_eq!(plan.balance_after, 100);
        assert_eq!(plan.drawn, [draw(1, -5), draw(2, -20)]);
    }

    #[test]
    fn a_credit_takes_back_only_what_its_grant_has_free_unless_allowed() {
        let top_up = mutation(MutationKind::TopUp, 100, Vec::new());
        let mut grant = Grant::new(
            top_up.id,
            GrantTerms::default(),
            100,
            Timestamp::from_micros(0),
        );
        grant.remaining = 60;
        grant.held = 10;
        let w = wallet(60, Floor::ZERO);
        assert_eq!(
            plan_reversal(&top_up, &w, Some(&grant), false, 0),
            Err(Refusal::ReversalExceedsRemaining { reversible: 50 })
        );
        let plan = plan_reversal(&top_up, &w, Some(&grant), true, 0).unwrap();
        assert_eq!((plan.amount, plan.balance_after), (-100, -40));
        assert_eq!(plan.drawn, [draw(9, 50)]);
        grant.remaining = 100;
        grant.held = 0;
        let plan =
            plan_reversal(&top_up, &wallet(100, Floor::ZERO), Some(&grant), false, 0).unwrap();
        assert_eq!(plan.drawn, [draw(9, 100)]);
        assert_eq!(plan.balance_after, 0);
    }

    #[test]
    fn transfers_releases_expiries_and_reversals_are_not_reversed() {
        for kind in [
            MutationKind::TransferOut,
            MutationKind::TransferIn,
            MutationKind::HoldRelease,
            MutationKind::Expiry,
            MutationKind::Reversal,
        ] {
            let m = mutation(kind, -1, Vec::new());
            assert_eq!(
                plan_reversal(&m, &wallet(10, Floor::ZERO), None, true, 0),
                Err(Refusal::NotReversible),
                "{kind:?}"
            );
        }
    }
}
