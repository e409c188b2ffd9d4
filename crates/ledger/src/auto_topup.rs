//! Automatic top-ups: a wallet's rule (when its available falls to or below a threshold,
//! top it up by a fixed amount or up to a target balance) and the rules of when one
//! starts ([`auto_topup_start`]) as pure functions of the rule, its state, the wallet and
//! the clock.
//!
//! At most one automatic top-up of a wallet is in flight at a time: the one that starts
//! marks the state (`in_flight`), and none starts again until it is settled (posted or
//! declined). A decline holds the next start off for the rule's back-off, and at most
//! `per_hour_max` start in any hour counted from the first of a window.

use crate::{AMOUNT_MAX, Amount, Timestamp, Wallet};

/// The most automatic top-ups a rule may allow in one hour.
pub const AUTO_TOPUP_PER_HOUR_MAX: u32 = 60;
/// The longest back-off after a decline, in milliseconds (7 days).
pub const AUTO_TOPUP_BACKOFF_MS_MAX: u64 = 7 * 24 * 3600 * 1000;
/// The longest reference of a saved payment method, in bytes.
pub const PAYMENT_METHOD_REF_LEN_MAX: usize = 128;
/// The window of the burst guard.
pub const AUTO_TOPUP_WINDOW_MS: i64 = 3600 * 1000;

/// How much an automatic top-up adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoTopUpMethod {
    /// This amount each time.
    Fixed(Amount),
    /// What brings the balance up to this (positive, above the threshold).
    Target(Amount),
}

/// Where the money of an automatic top-up comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoTopUpFunding {
    /// Charged to the customer's saved payment method (the provider's reference);
    /// credited as `paid`.
    Payment { method_ref: String },
    /// Given for free; credited as `granted`.
    Granted,
}

/// How an automatic top-up ended, as its settlement says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AutoTopUpOutcome {
    /// The wallet takes the amount as a grant of this category.
    Credited(crate::GrantCategory),
    /// The payment provider declined the charge.
    Declined,
    /// The wallet refused the credit (suspended, closed, over its ceiling).
    Refused,
}

impl AutoTopUpOutcome {
    /// Why a top-up failed, as events and logs name it; `None` for a credit.
    pub fn failure(&self) -> Option<&'static str> {
        match self {
            Self::Credited(_) => None,
            Self::Declined => Some("payment_declined"),
            Self::Refused => Some("wallet_refused"),
        }
    }
}

/// A wallet's automatic top-up rule, valid by construction ([`AutoTopUpRule::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoTopUpRule {
    threshold: i64,
    method: AutoTopUpMethod,
    funding: AutoTopUpFunding,
    decline_backoff_ms: u64,
    per_hour_max: u32,
    enabled: bool,
}

/// Why a rule is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AutoTopUpError {
    #[error("threshold must be from 0 to {AMOUNT_MAX}")]
    Threshold,
    #[error("amount must be from 1 to {AMOUNT_MAX}")]
    Amount,
    #[error("target_balance must be above the threshold")]
    Target,
    #[error("decline_backoff_ms must be at most {AUTO_TOPUP_BACKOFF_MS_MAX}")]
    Backoff,
    #[error("per_hour_max must be from 1 to {AUTO_TOPUP_PER_HOUR_MAX}")]
    PerHour,
    #[error("payment_method must be 1 to {PAYMENT_METHOD_REF_LEN_MAX} bytes of visible ASCII")]
    MethodRef,
}

impl AutoTopUpError {
    /// The field of the rule at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Threshold => "threshold",
            Self::Amount => "amount",
            Self::Target => "target_balance",
            Self::Backoff => "decline_backoff_ms",
            Self::PerHour => "per_hour_max",
            Self::MethodRef => "payment_method",
        }
    }
}

impl AutoTopUpRule {
    pub fn new(
        threshold: i64,
        method: AutoTopUpMethod,
        funding: AutoTopUpFunding,
        decline_backoff_ms: u64,
        per_hour_max: u32,
        enabled: bool,
    ) -> Result<Self, AutoTopUpError> {
        if !(0..=AMOUNT_MAX).contains(&threshold) {
            return Err(AutoTopUpError::Threshold);
        }
        match &method {
            AutoTopUpMethod::Fixed(amount) if amount.get() <= 0 => {
                return Err(AutoTopUpError::Amount);
            }
            AutoTopUpMethod::Target(target) if target.get() <= threshold => {
                return Err(AutoTopUpError::Target);
            }
            _ => {}
        }
        if decline_backoff_ms > AUTO_TOPUP_BACKOFF_MS_MAX {
            return Err(AutoTopUpError::Backoff);
        }
        if !(1..=AUTO_TOPUP_PER_HOUR_MAX).contains(&per_hour_max) {
            return Err(AutoTopUpError::PerHour);
        }
        if let AutoTopUpFunding::Payment { method_ref } = &funding
            && (method_ref.is_empty()
                || method_ref.len() > PAYMENT_METHOD_REF_LEN_MAX
                || !method_ref.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(AutoTopUpError::MethodRef);
        }
        Ok(Self {
            threshold,
            method,
            funding,
            decline_backoff_ms,
            per_hour_max,
            enabled,
        })
    }

    pub fn threshold(&self) -> i64 {
        self.threshold
    }
    pub fn method(&self) -> &AutoTopUpMethod {
        &self.method
    }
    pub fn funding(&self) -> &AutoTopUpFunding {
        &self.funding
    }
    pub fn decline_backoff_ms(&self) -> u64 {
        self.decline_backoff_ms
    }
    pub fn per_hour_max(&self) -> u32 {
        self.per_hour_max
    }
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// Where a wallet's automatic top-ups stand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoTopUpState {
    /// How many have started; the one in flight, if any, is number `started`.
    pub started: u64,
    /// The number of the one in flight.
    pub in_flight: Option<u64>,
    /// When the last one was declined.
    pub declined_at: Option<Timestamp>,
    /// When the burst guard's window began, and how many started in it.
    pub window_start: Timestamp,
    pub window_count: u32,
}

impl Default for AutoTopUpState {
    fn default() -> Self {
        Self {
            started: 0,
            in_flight: None,
            declined_at: None,
            window_start: Timestamp::from_micros(0),
            window_count: 0,
        }
    }
}

/// An automatic top-up to start: its number, its amount, and the state to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoTopUpStart {
    pub n: u64,
    pub amount: Amount,
    pub state: AutoTopUpState,
}

/// The automatic top-up `wallet` (as a unit left it) needs now under `rule`, if any:
/// the rule is enabled, the wallet's available (its balance less what it holds, for a
/// wallet without a floor) is at or below the threshold, none is in flight, the
/// back-off after a decline has passed and the hour's allowance is not used up. A
/// target's amount is what brings the balance to the target, taken from the wallet as
/// it is in the same transaction, so that no race of debits makes two top-ups add up
/// past it.
pub fn auto_topup_start(
    rule: &AutoTopUpRule,
    state: &AutoTopUpState,
    wallet: &Wallet,
    now: Timestamp,
) -> Option<AutoTopUpStart> {
    let level = crate::alert_level(wallet);
    if !rule.enabled || level > rule.threshold || state.in_flight.is_some() {
        return None;
    }
    if let Some(declined) = state.declined_at {
        let backoff = i64::try_from(rule.decline_backoff_ms.saturating_mul(1000)).ok()?;
        if now.as_micros() < declined.as_micros().saturating_add(backoff) {
            return None;
        }
    }
    let window_over =
        now.as_micros() >= state.window_start.as_micros() + AUTO_TOPUP_WINDOW_MS * 1000;
    let (window_start, count) = if window_over {
        (now, 0)
    } else {
        (state.window_start, state.window_count)
    };
    if count >= rule.per_hour_max {
        return None;
    }
    let amount = match &rule.method {
        AutoTopUpMethod::Fixed(amount) => *amount,
        AutoTopUpMethod::Target(target) => {
            Amount::positive(target.get().saturating_sub(wallet.balance)).ok()?
        }
    };
    let n = state.started + 1;
    Some(AutoTopUpStart {
        n,
        amount,
        state: AutoTopUpState {
            started: n,
            in_flight: Some(n),
            declined_at: state.declined_at,
            window_start,
            window_count: count + 1,
        },
    })
}

/// The state once top-up `n` is settled: no longer in flight, and a decline's time kept
/// for the back-off. A settlement of another number (run twice) changes nothing.
pub fn auto_topup_settled(
    state: &AutoTopUpState,
    n: u64,
    declined: bool,
    now: Timestamp,
) -> AutoTopUpState {
    if state.in_flight != Some(n) {
        return state.clone();
    }
    AutoTopUpState {
        in_flight: None,
        declined_at: if declined {
            Some(now)
        } else {
            state.declined_at
        },
        ..state.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(amount: i64) -> AutoTopUpMethod {
        AutoTopUpMethod::Fixed(Amount::new(amount).unwrap())
    }

    fn rule(
        threshold: i64,
        method: AutoTopUpMethod,
        method_ref: Option<&str>,
        backoff: u64,
        per_hour: u32,
    ) -> Result<AutoTopUpRule, AutoTopUpError> {
        let funding = match method_ref {
            Some(r) => AutoTopUpFunding::Payment {
                method_ref: r.to_owned(),
            },
            None => AutoTopUpFunding::Granted,
        };
        AutoTopUpRule::new(threshold, method, funding, backoff, per_hour, true)
    }

    #[test]
    fn rules_are_bounded_at_their_limits() {
        let ok = |r: Result<AutoTopUpRule, AutoTopUpError>| assert!(r.is_ok(), "{r:?}");
        let err = |r: Result<AutoTopUpRule, AutoTopUpError>, field: &str| {
            assert_eq!(r.unwrap_err().field(), field);
        };
        ok(rule(0, fixed(1), None, 0, 1));
        ok(rule(AMOUNT_MAX, fixed(AMOUNT_MAX), None, 0, 1));
        err(rule(-1, fixed(1), None, 0, 1), "threshold");
        err(rule(AMOUNT_MAX + 1, fixed(1), None, 0, 1), "threshold");
        err(rule(0, fixed(0), None, 0, 1), "amount");
        let target = |t: i64| AutoTopUpMethod::Target(Amount::new(t).unwrap());
        ok(rule(100, target(101), None, 0, 1));
        err(rule(100, target(100), None, 0, 1), "target_balance");
        ok(rule(0, fixed(1), None, AUTO_TOPUP_BACKOFF_MS_MAX, 1));
        err(
            rule(0, fixed(1), None, AUTO_TOPUP_BACKOFF_MS_MAX + 1, 1),
            "decline_backoff_ms",
        );
        ok(rule(0, fixed(1), None, 0, AUTO_TOPUP_PER_HOUR_MAX));
        err(
            rule(0, fixed(1), None, 0, AUTO_TOPUP_PER_HOUR_MAX + 1),
            "per_hour_max",
        );
        err(rule(0, fixed(1), None, 0, 0), "per_hour_max");
        let longest = "m".repeat(PAYMENT_METHOD_REF_LEN_MAX);
        ok(rule(0, fixed(1), Some(&longest), 0, 1));
        err(
            rule(0, fixed(1), Some(&format!("{longest}m")), 0, 1),
            "payment_method",
        );
        err(rule(0, fixed(1), Some(""), 0, 1), "payment_method");
        err(rule(0, fixed(1), Some("a b"), 0, 1), "payment_method");
    }

    #[test]
    fn a_settlement_of_another_number_changes_nothing() {
        let state = AutoTopUpState {
            started: 2,
            in_flight: Some(2),
            ..AutoTopUpState::default()
        };
        let now = Timestamp::from_micros(9);
        assert_eq!(auto_topup_settled(&state, 1, true, now), state);
        let declined = auto_topup_settled(&state, 2, true, now);
        assert_eq!(
            (declined.in_flight, declined.declined_at),
            (None, Some(now))
        );
        let posted = auto_topup_settled(&state, 2, false, now);
        assert_eq!((posted.in_flight, posted.declined_at), (None, None));
    }
}
