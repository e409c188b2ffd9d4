//! A wallet as it stood at an instant, replayed from its history.
//!
//! Every change of a wallet is a mutation, every credit a grant, every reservation a
//! hold that keeps what it reserved: so the balance, what was held and what each grant
//! had left at any instant follow from those alone. Every mutation counts from the
//! instant the ledger recorded it, the sweep's expiries included (a grant's remainder is
//! in the balance until the sweep takes it, although nothing spends it after its
//! expiry), so the replay answers exactly what a reader of the wallet was told then. A
//! hold counts as held from its placing until it was settled; a grant is live at an
//! instant when it had something left and its expiry had not come.

use crate::{Grant, Hold, HoldDirection, Mutation, Timestamp};
use std::collections::HashMap;

/// The most mutations one replay reads; a wallet with a longer history is refused an
/// answer as of a time rather than answered slowly.
pub const AS_OF_MUTATIONS_MAX: usize = 100_000;

/// A wallet at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsOf {
    pub balance: i64,
    /// What pending debit holds set aside.
    pub held: i64,
    /// The grants live then (something left, not expired), with what each had left and
    /// what holds reserved of it then, in the spend order.
    pub grants: Vec<Grant>,
}

/// Replays a wallet's history up to `at`: `mutations` are all of the wallet's (any
/// order), `grants` all of its grants as they are now (their terms do not change),
/// `holds` all of its holds.
pub fn as_of(mutations: &[Mutation], grants: &[Grant], holds: &[Hold], at: Timestamp) -> AsOf {
    let mut balance: i64 = 0;
    let mut drawn: HashMap<_, i64> = HashMap::new();
    for m in mutations.iter().filter(|m| m.recorded_at <= at) {
        balance = balance.saturating_add(m.amount);
        for d in &m.drawn {
            *drawn.entry(d.grant).or_default() += d.amount;
        }
    }
    let pending: Vec<&Hold> = holds
        .iter()
        .filter(|h| {
            h.direction == HoldDirection::Debit
                && h.created_at <= at
                && h.settled_at.is_none_or(|s| s > at)
        })
        .collect();
    let held = pending.iter().map(|h| h.amount).sum();
    let mut reserved: HashMap<_, i64> = HashMap::new();
    for h in &pending {
        for r in &h.reserved {
            *reserved.entry(r.grant).or_default() += r.amount;
        }
    }
    let mut live: Vec<Grant> = grants
        .iter()
        .filter(|g| g.created_at <= at && !g.is_expired(at))
        .filter_map(|g| {
            let remaining = g.amount - drawn.get(&g.id).copied().unwrap_or(0);
            (remaining > 0).then(|| Grant {
                remaining,
                held: reserved.get(&g.id).copied().unwrap_or(0),
                ..g.clone()
            })
        })
        .collect();
    live.sort_by(crate::spend_order);
    AsOf {
        balance,
        held,
        grants: live,
    }
}
