//! Grants: the credits a wallet holds, each with terms of its own, and the one order in
//! which they are spent.
//!
//! Every credit of a wallet (a top-up, an upward adjustment, an incoming transfer, a
//! committed credit hold) is a **grant**: an amount with an expiry (or none), a
//! priority and a category. A wallet's balance is the sum of what its grants have
//! remaining plus its **debt**, the part of the balance no grant covers, which is zero
//! or negative: a wallet that may go below zero (a floor under zero, or none) spends
//! into debt once its grants are drawn, and a later credit repays the debt before it
//! becomes a grant of its own.
//!
//! A debit (and a debit hold's commit, a downward adjustment, an outgoing transfer)
//! **draws** from the grants in the spend order ([`spend_order`]): lower priority
//! first, then the soonest expiry (a grant that never expires last), then `granted`
//! before tenant-named categories before `paid`, then the oldest. What it draws from
//! each is recorded on its mutation ([`Draw`]), so a reversal gives each grant back
//! exactly what was taken from it. A debit hold reserves the grants it would draw when
//! it is placed (their `held`), and its commit draws from those.
//!
//! A grant whose expiry has come is not drawn from. Its remainder, less what pending
//! holds reserve of it, leaves the wallet with an `expiry` mutation; what a hold
//! reserved stays for the hold, is drawn if the hold is committed, and expires in its
//! turn when the hold is released.
//!
//! A tenant may give its top-ups a **default validity** (the setting
//! [`DEFAULT_VALIDITY_SETTING`], a number of seconds): a top-up (or a committed credit
//! hold) whose terms name no expiry then expires that long after it is recorded. It
//! serves the dialects whose documents have no place for an expiry (TOPdesk,
//! TouchTopUp), and every other top-up that names none; adjustments, transfers and
//! reversals are corrections and moves of credit that exists, and never take it.

use crate::{MutationId, Refusal, Timestamp};
use std::cmp::Ordering;

/// The longest tenant-named grant category, in bytes.
pub const CATEGORY_LEN_MAX: usize = 40;
/// The highest grant priority; lower priorities are spent first.
pub const PRIORITY_MAX: u8 = 100;
/// The priority of a grant whose credit named none: the middle, so that a tenant can
/// put grants before and after it.
pub const PRIORITY_DEFAULT: u8 = 50;
/// The most live grants (with something remaining) one wallet may have; a credit that
/// would make one more is refused with [`Refusal::GrantsExceeded`].
pub const LIVE_GRANTS_MAX: usize = 10_000;
/// The tenant setting that holds the default validity of top-ups, in seconds.
pub const DEFAULT_VALIDITY_SETTING: &str = "credits.default-validity-seconds";
/// The longest default validity: 100 years of 365.25 days.
pub const DEFAULT_VALIDITY_SECONDS_MAX: i64 = 3_155_760_000;

/// The default validity a setting's value gives, in seconds: a whole number from 1 to
/// [`DEFAULT_VALIDITY_SECONDS_MAX`]; anything else (an empty value clears it) is none.
pub fn default_validity_seconds(setting: &str) -> Option<i64> {
    setting
        .parse::<i64>()
        .ok()
        .filter(|s| (1..=DEFAULT_VALIDITY_SECONDS_MAX).contains(s))
}

impl GrantTerms {
    /// These terms, or, when they name no expiry and the tenant has a default validity
    /// of `seconds`, these terms expiring that long after `now`.
    pub fn with_default_validity(&self, seconds: Option<i64>, now: Timestamp) -> GrantTerms {
        match (self.expires_at, seconds) {
            (None, Some(seconds)) => GrantTerms {
                expires_at: Some(now.plus_micros(seconds.saturating_mul(1_000_000))),
                ..self.clone()
            },
            _ => self.clone(),
        }
    }
}

/// The most grants one mutation or hold may draw from; a debit that would need more is
/// refused with [`Refusal::DrawsExceeded`] (the client may spend in smaller amounts).
pub const DRAWS_MAX: usize = 1_000;

/// What a grant is: bought, given, or a kind the tenant names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum GrantCategory {
    /// Bought by the customer (the default).
    #[default]
    Paid,
    /// Given (a promotion, a free allowance); spent before `paid` at equal priority and
    /// expiry.
    Granted,
    /// A tenant's own name, spent after `granted` and before `paid`.
    Named(String),
}

/// Why a text is not a category.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CategoryError {
    #[error("a category must be 1 to {CATEGORY_LEN_MAX} characters of a-z, 0-9, '_', '-' or '.'")]
    Bad,
}

impl GrantCategory {
    /// `paid`, `granted` or a tenant's name of 1 to [`CATEGORY_LEN_MAX`] characters of
    /// `a-z`, `0-9`, `_`, `-` and `.`.
    pub fn parse(s: &str) -> Result<Self, CategoryError> {
        match s {
            "paid" => Ok(Self::Paid),
            "granted" => Ok(Self::Granted),
            _ if !s.is_empty()
                && s.len() <= CATEGORY_LEN_MAX
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
                }) =>
            {
                Ok(Self::Named(s.to_owned()))
            }
            _ => Err(CategoryError::Bad),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Paid => "paid",
            Self::Granted => "granted",
            Self::Named(name) => name,
        }
    }

    /// Where the category falls in the spend order, at equal priority and expiry.
    fn rank(&self) -> u8 {
        match self {
            Self::Granted => 0,
            Self::Named(_) => 1,
            Self::Paid => 2,
        }
    }
}

/// A priority from 0 to [`PRIORITY_MAX`]; lower is spent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Priority(u8);

impl Priority {
    pub const DEFAULT: Priority = Priority(PRIORITY_DEFAULT);

    pub fn new(value: u8) -> Option<Self> {
        (value <= PRIORITY_MAX).then_some(Self(value))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The terms a credit gives the grant it makes. The default is a `paid` grant of the
/// middle priority that never expires: what a credit that names no terms makes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct GrantTerms {
    pub expires_at: Option<Timestamp>,
    pub priority: Priority,
    pub category: GrantCategory,
}

/// Credits of one origin in one wallet. Its id is the id of the mutation that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub id: MutationId,
    pub terms: GrantTerms,
    /// What the credit granted.
    pub amount: i64,
    /// What is left to spend; 0 once spent or expired.
    pub remaining: i64,
    /// What pending debit holds reserve of `remaining`.
    pub held: i64,
    pub created_at: Timestamp,
}

impl Grant {
    /// A fresh grant of `amount` made by the mutation `id`.
    pub fn new(id: MutationId, terms: GrantTerms, amount: i64, now: Timestamp) -> Self {
        assert!(amount > 0, "a grant of {amount}");
        Self {
            id,
            terms,
            amount,
            remaining: amount,
            held: 0,
            created_at: now,
        }
    }

    /// Whether the grant's expiry has come.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.terms.expires_at.is_some_and(|t| now >= t)
    }

    /// What a debit or a new hold may draw from it now.
    pub fn drawable(&self, now: Timestamp) -> i64 {
        if self.is_expired(now) {
            0
        } else {
            self.remaining - self.held
        }
    }

    /// What leaves the wallet when the grant expires at `now`: its remainder less what
    /// pending holds reserve, when its expiry has come and that is positive.
    pub fn expiring(&self, now: Timestamp) -> Option<i64> {
        let free = self.remaining - self.held;
        (self.is_expired(now) && free > 0).then_some(free)
    }
}

/// The spend order: priority, then the soonest expiry (never last), then `granted`
/// before named categories before `paid`, then the oldest (ties of one instant by id,
/// which for server-made ids is their order of making).
pub fn spend_order(a: &Grant, b: &Grant) -> Ordering {
    let expiry = |g: &Grant| (g.terms.expires_at.is_none(), g.terms.expires_at);
    a.terms
        .priority
        .cmp(&b.terms.priority)
        .then_with(|| expiry(a).cmp(&expiry(b)))
        .then_with(|| a.terms.category.rank().cmp(&b.terms.category.rank()))
        .then_with(|| a.created_at.cmp(&b.created_at))
        .then_with(|| a.id.cmp(&b.id))
}

/// What a mutation or hold took from (or, negative, gave back to) one grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Draw {
    pub grant: MutationId,
    pub amount: i64,
}

/// How an amount is taken from a wallet's grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawPlan {
    /// What each grant gives, in spend order; every amount positive.
    pub draws: Vec<Draw>,
    /// What no grant covers: it goes into (or, for a hold, is reserved against) debt.
    pub uncovered: i64,
}

/// Plans taking `amount` from `grants` at `now`, in the spend order, from what each may
/// give now. Refuses with [`Refusal::DrawsExceeded`] when more than [`DRAWS_MAX`]
/// grants would give.
///
/// # Panics
/// When `amount` is negative.
pub fn plan_draws<'g>(
    grants: impl IntoIterator<Item = &'g Grant>,
    amount: i64,
    now: Timestamp,
) -> Result<DrawPlan, Refusal> {
    assert!(amount >= 0, "drawing {amount}");
    let mut order: Vec<&Grant> = grants.into_iter().filter(|g| g.drawable(now) > 0).collect();
    order.sort_by(|a, b| spend_order(a, b));
    let mut draws = Vec::new();
    let mut left = amount;
    for g in order {
        if left == 0 {
            break;
        }
        if draws.len() == DRAWS_MAX {
            return Err(Refusal::DrawsExceeded {
                draws_max: DRAWS_MAX,
            });
        }
        let take = left.min(g.drawable(now));
        draws.push(Draw {
            grant: g.id,
            amount: take,
        });
        left -= take;
    }
    Ok(DrawPlan {
        draws,
        uncovered: left,
    })
}

/// How committing `committed` of a hold that reserved `reserved` divides: what is drawn
/// from each reserved grant (in the order reserved), and what each reserved grant gets
/// back as no longer held. What the reservation does not cover is `uncovered`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitDraws {
    pub drawn: Vec<Draw>,
    pub unreserved: Vec<Draw>,
    pub uncovered: i64,
}

/// Splits a hold's reservation for a commit of `committed` (0 for a release).
///
/// # Panics
/// When `committed` is negative.
pub fn commit_draws(reserved: &[Draw], committed: i64) -> CommitDraws {
    assert!(committed >= 0, "committing {committed}");
    let mut left = committed;
    let mut drawn = Vec::new();
    let mut unreserved = Vec::new();
    for r in reserved {
        let take = left.min(r.amount);
        left -= take;
        if take > 0 {
            drawn.push(Draw {
                grant: r.grant,
                amount: take,
            });
        }
        unreserved.push(*r);
    }
    CommitDraws {
        drawn,
        unreserved,
        uncovered: left,
    }
}

/// How a credit of `amount` divides between repaying the wallet's debt (`debt`, zero or
/// negative) and the new grant: `(repaid, granted)`.
///
/// # Panics
/// When `amount` is negative or `debt` positive.
pub fn split_credit(debt: i64, amount: i64) -> (i64, i64) {
    assert!(
        amount >= 0 && debt <= 0,
        "crediting {amount} against {debt}"
    );
    let repaid = amount.min(-debt);
    (repaid, amount - repaid)
}

/// A wallet's debt: the part of its balance that no grant covers, zero or negative.
/// `remaining` is the sum of its grants' remainders.
pub fn debt(balance: i64, remaining: i64) -> i64 {
    (balance - remaining).min(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn id(n: u128) -> MutationId {
        MutationId(Uuid::from_u128(n))
    }

    #[test]
    fn a_default_validity_is_bounded_and_applies_only_without_an_expiry() {
        assert_eq!(default_validity_seconds("86400"), Some(86_400));
        assert_eq!(
            default_validity_seconds(&DEFAULT_VALIDITY_SECONDS_MAX.to_string()),
            Some(DEFAULT_VALIDITY_SECONDS_MAX)
        );
        for none in ["", "0", "-1", "1.5", " 1", "3155760001"] {
            assert_eq!(default_validity_seconds(none), None, "{none:?}");
        }
        let now = Timestamp::from_secs(1_000);
        let open = GrantTerms::default();
        assert_eq!(
            open.with_default_validity(Some(60), now).expires_at,
            Some(Timestamp::from_secs(1_060))
        );
        assert_eq!(open.with_default_validity(None, now), open);
        let own = GrantTerms {
            expires_at: Some(Timestamp::from_secs(5)),
            ..GrantTerms::default()
        };
        assert_eq!(own.with_default_validity(Some(60), now), own);
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    fn grant(n: u128, amount: i64, terms: GrantTerms) -> Grant {
        Grant::new(id(n), terms, amount, at(n as i64))
    }

    #[test]
    fn the_issue_example_draws_allowance_then_promotion_then_paid() {
        let day = 86_400;
        let grants = [
            grant(
                1,
                100,
                GrantTerms {
                    expires_at: Some(at(365 * day)),
                    ..GrantTerms::default()
                },
            ),
            grant(
                2,
                20,
                GrantTerms {
                    expires_at: Some(at(7 * day)),
                    category: GrantCategory::Granted,
                    ..GrantTerms::default()
                },
            ),
            grant(
                3,
                5,
                GrantTerms {
                    priority: Priority::new(0).unwrap(),
                    ..GrantTerms::default()
                },
            ),
        ];
        let plan = plan_draws(&grants, 30, at(10)).unwrap();
        let drawn: Vec<_> = plan.draws.iter().map(|d| (d.grant, d.amount)).collect();
        assert_eq!(drawn, [(id(3), 5), (id(2), 20), (id(1), 5)]);
        assert_eq!(plan.uncovered, 0);
    }

    #[test]
    fn expired_and_held_credit_is_not_drawn() {
        let mut held = grant(1, 10, GrantTerms::default());
        held.held = 4;
        let expired = grant(
            2,
            10,
            GrantTerms {
                expires_at: Some(at(5)),
                priority: Priority::new(0).unwrap(),
                ..GrantTerms::default()
            },
        );
        let plan = plan_draws(&[held, expired], 8, at(5)).unwrap();
        assert_eq!(
            plan.draws,
            [Draw {
                grant: id(1),
                amount: 6
            }]
        );
        assert_eq!(plan.uncovered, 2);
    }

    #[test]
    fn draws_are_bounded_at_the_limit() {
        let grants: Vec<Grant> = (0..=DRAWS_MAX as u128)
            .map(|n| grant(n + 1, 1, GrantTerms::default()))
            .collect();
        let at_limit = plan_draws(&grants, DRAWS_MAX as i64, at(0)).unwrap();
        assert_eq!(at_limit.draws.len(), DRAWS_MAX);
        assert_eq!(
            plan_draws(&grants, DRAWS_MAX as i64 + 1, at(0)),
            Err(Refusal::DrawsExceeded {
                draws_max: DRAWS_MAX
            })
        );
    }

    #[test]
    fn categories_parse_and_bound_their_length() {
        assert_eq!(GrantCategory::parse("paid"), Ok(GrantCategory::Paid));
        assert_eq!(GrantCategory::parse("granted"), Ok(GrantCategory::Granted));
        let at_limit = "a".repeat(CATEGORY_LEN_MAX);
        assert_eq!(
            GrantCategory::parse(&at_limit),
            Ok(GrantCategory::Named(at_limit.clone()))
        );
        assert!(GrantCategory::parse(&format!("{at_limit}a")).is_err());
        assert!(GrantCategory::parse("").is_err());
        assert!(GrantCategory::parse("Promo").is_err());
        assert_eq!(Priority::new(PRIORITY_MAX).map(Priority::get), Some(100));
        assert_eq!(Priority::new(PRIORITY_MAX + 1), None);
    }

    #[test]
    fn a_commit_draws_in_the_order_reserved_and_unreserves_everything() {
        let reserved = [
            Draw {
                grant: id(1),
                amount: 3,
            },
            Draw {
                grant: id(2),
                amount: 4,
            },
        ];
        let c = commit_draws(&reserved, 5);
        assert_eq!(
            c.drawn,
            [
                Draw {
                    grant: id(1),
                    amount: 3
                },
                Draw {
                    grant: id(2),
                    amount: 2
                }
            ]
        );
        assert_eq!(c.unreserved, reserved);
        assert_eq!(c.uncovered, 0);
        assert_eq!(commit_draws(&reserved, 9).uncovered, 2);
        assert!(commit_draws(&reserved, 0).drawn.is_empty());
    }

    #[test]
    fn credits_repay_debt_first() {
        assert_eq!(split_credit(0, 10), (0, 10));
        assert_eq!(split_credit(-4, 10), (4, 6));
        assert_eq!(split_credit(-40, 10), (10, 0));
        assert_eq!(debt(10, 10), 0);
        assert_eq!(debt(-5, 0), -5);
        assert_eq!(debt(3, 8), -5);
    }

    /// A naive model of the spend order: repeatedly take the best grant by comparing
    /// each rule's key in turn, one unit at a time.
    fn naive_draws(grants: &[Grant], amount: i64, now: Timestamp) -> (Vec<(u128, i64)>, i64) {
        let mut left: Vec<(usize, i64)> = grants
            .iter()
            .enumerate()
            .map(|(i, g)| (i, g.drawable(now)))
            .collect();
        let mut taken: Vec<(u128, i64)> = Vec::new();
        let mut need = amount;
        while need > 0 {
            let best = left.iter().filter(|(_, l)| *l > 0).min_by_key(|(i, _)| {
                let g = &grants[*i];
                let rank = match g.terms.category {
                    GrantCategory::Granted => 0,
                    GrantCategory::Named(_) => 1,
                    GrantCategory::Paid => 2,
                };
                (
                    g.terms.priority.get(),
                    g.terms.expires_at.map_or(i64::MAX, Timestamp::as_micros),
                    rank,
                    g.created_at.as_micros(),
                    g.id,
                )
            });
            let Some(&(i, _)) = best else { break };
            let id = grants[i].id.0.as_u128();
            match taken.last_mut() {
                Some((last, n)) if *last == id => *n += 1,
                _ => taken.push((id, 1)),
            }
            left.iter_mut().find(|(j, _)| *j == i).unwrap().1 -= 1;
            need -= 1;
        }
        (taken, need)
    }

    fn arb_grant() -> impl Strategy<Value = Grant> {
        (
            1u128..1_000,
            1i64..20,
            0i64..20,
            prop::option::of(0i64..30),
            0u8..4,
            0u8..3,
            0i64..30,
        )
            .prop_map(|(n, amount, spent, expires, priority, category, created)| {
                let category = match category {
                    0 => GrantCategory::Paid,
                    1 => GrantCategory::Granted,
                    _ => GrantCategory::Named("promo".to_owned()),
                };
                let mut g = Grant::new(
                    id(n),
                    GrantTerms {
                        expires_at: expires.map(at),
                        priority: Priority::new(priority * 10).unwrap(),
                        category,
                    },
                    amount,
                    at(created),
                );
                g.remaining = amount - spent.min(amount);
                g.held = (spent / 3).min(g.remaining);
                g
            })
    }

    proptest! {
        #[test]
        fn draws_match_a_naive_model(
            grants in prop::collection::vec(arb_grant(), 0..12)
                .prop_map(|mut gs| { gs.sort_by_key(|g| g.id); gs.dedup_by_key(|g| g.id); gs }),
            amount in 0i64..150,
            now in 0i64..30,
        ) {
            let now = at(now);
            let plan = plan_draws(&grants, amount, now).unwrap();
            let (naive, uncovered) = naive_draws(&grants, amount, now);
            let drawn: Vec<(u128, i64)> =
                plan.draws.iter().map(|d| (d.grant.0.as_u128(), d.amount)).collect();
            prop_assert_eq!(drawn, naive);
            prop_assert_eq!(plan.uncovered, uncovered);
            let total: i64 = plan.draws.iter().map(|d| d.amount).sum();
            prop_assert_eq!(total + plan.uncovered, amount);
        }
    }
}
