//! Low-balance alerts: a wallet's thresholds, and when its available amount crosses one
//! downward ([`low_balance_crossings`]), as pure functions of the thresholds and the
//! amounts before and after a change.
//!
//! A crossing is judged on one unit's (or one batch's) net change: a threshold is
//! crossed when the amount was above it before and is at or below it after. An amount
//! that stays below makes no new crossing, so each fall past a threshold is told once,
//! and the next only after the amount rose above it again.

use crate::{AMOUNT_MAX, Wallet, available};

/// The most thresholds one wallet's alert has.
pub const LOW_BALANCE_THRESHOLDS_MAX: usize = 8;

/// A wallet's low-balance thresholds, valid by construction ([`LowBalanceAlert::new`]):
/// from 1 to [`LOW_BALANCE_THRESHOLDS_MAX`] distinct amounts from 0 to
/// [`AMOUNT_MAX`], highest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowBalanceAlert {
    thresholds: Vec<i64>,
}

/// Why thresholds are not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LowBalanceAlertError {
    #[error("thresholds must hold from 1 to {LOW_BALANCE_THRESHOLDS_MAX} amounts")]
    Count,
    #[error("each threshold must be from 0 to {AMOUNT_MAX}")]
    Range,
    #[error("thresholds must be distinct")]
    Repeated,
}

impl LowBalanceAlert {
    pub fn new(mut thresholds: Vec<i64>) -> Result<Self, LowBalanceAlertError> {
        if thresholds.is_empty() || thresholds.len() > LOW_BALANCE_THRESHOLDS_MAX {
            return Err(LowBalanceAlertError::Count);
        }
        if thresholds.iter().any(|t| !(0..=AMOUNT_MAX).contains(t)) {
            return Err(LowBalanceAlertError::Range);
        }
        thresholds.sort_unstable_by(|a, b| b.cmp(a));
        if thresholds.windows(2).any(|w| w[0] == w[1]) {
            return Err(LowBalanceAlertError::Repeated);
        }
        Ok(Self { thresholds })
    }

    /// The thresholds, highest first.
    pub fn thresholds(&self) -> &[i64] {
        &self.thresholds
    }
}

/// The amount alerts and automatic top-ups watch: what is available (balance − held −
/// floor), or balance − held for a wallet without a floor.
pub fn alert_level(wallet: &Wallet) -> i64 {
    available(wallet).unwrap_or(wallet.balance.saturating_sub(wallet.held))
}

/// The thresholds of `alert` that an amount going from `before` to `after` crossed
/// downward, highest first.
pub fn low_balance_crossings(alert: &LowBalanceAlert, before: i64, after: i64) -> Vec<i64> {
    alert
        .thresholds
        .iter()
        .copied()
        .filter(|&t| before > t && after <= t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_checked_at_their_limits() {
        let most: Vec<i64> = (0..LOW_BALANCE_THRESHOLDS_MAX as i64).collect();
        let alert = LowBalanceAlert::new(most.clone()).expect("at the limit");
        assert_eq!(alert.thresholds().first(), Some(&7));
        let mut over = most;
        over.push(100);
        assert_eq!(LowBalanceAlert::new(over), Err(LowBalanceAlertError::Count));
        assert_eq!(
            LowBalanceAlert::new(vec![]),
            Err(LowBalanceAlertError::Count)
        );
        assert!(LowBalanceAlert::new(vec![0, AMOUNT_MAX]).is_ok());
        assert_eq!(
            LowBalanceAlert::new(vec![AMOUNT_MAX + 1]),
            Err(LowBalanceAlertError::Range)
        );
        assert_eq!(
            LowBalanceAlert::new(vec![-1]),
            Err(LowBalanceAlertError::Range)
        );
        assert_eq!(
            LowBalanceAlert::new(vec![5, 5]),
            Err(LowBalanceAlertError::Repeated)
        );
    }

    #[test]
    fn a_crossing_is_a_fall_from_above_to_at_or_below() {
        let alert = LowBalanceAlert::new(vec![100, 500]).unwrap();
        assert_eq!(low_balance_crossings(&alert, 600, 500), vec![500]);
        assert_eq!(low_balance_crossings(&alert, 600, 100), vec![500, 100]);
        assert_eq!(low_balance_crossings(&alert, 501, 99), vec![500, 100]);
        // Staying below, or rising, crosses nothing.
        assert!(low_balance_crossings(&alert, 100, 50).is_empty());
        assert!(low_balance_crossings(&alert, 50, 600).is_empty());
        assert!(low_balance_crossings(&alert, 500, 500).is_empty());
    }
}
