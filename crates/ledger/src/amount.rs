//! Amounts: signed integers of a wallet's smallest unit, with a named bound.

use std::fmt;

/// The largest magnitude of one mutation's amount, in the unit's smallest step.
///
/// 10^15 is ten trillion euros in cents, or a hundred billion currency units of credits
/// at x10000; far above any real prepaid purchase, and low enough that any sum of a
/// few thousand amounts can be checked without overflowing `i64`.
pub const AMOUNT_MAX: i64 = 1_000_000_000_000_000;

/// The largest magnitude any account balance may reach. A mutation that would take a
/// balance (a wallet's or a system account's) past it is refused, not wrapped.
pub const BALANCE_ABS_MAX: i64 = 4_000_000_000_000_000_000;

/// A signed amount with `|amount| <= AMOUNT_MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    #[error("amount exceeds the maximum magnitude of {AMOUNT_MAX}")]
    TooLarge,
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount must not be zero")]
    Zero,
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// Any amount within bounds, zero included.
    pub fn new(value: i64) -> Result<Self, AmountError> {
        if value.checked_abs().is_none_or(|v| v > AMOUNT_MAX) {
            return Err(AmountError::TooLarge);
        }
        Ok(Self(value))
    }
    /// A strictly positive amount (top-ups, debits, holds, transfers).
    pub fn positive(value: i64) -> Result<Self, AmountError> {
        let a = Self::new(value)?;
        if a.0 <= 0 {
            return Err(AmountError::NotPositive);
        }
        Ok(a)
    }
    /// A non-zero amount of either sign (adjustments).
    pub fn nonzero(value: i64) -> Result<Self, AmountError> {
        let a = Self::new(value)?;
        if a.0 == 0 {
            return Err(AmountError::Zero);
        }
        Ok(a)
    }
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        assert_eq!(Amount::new(AMOUNT_MAX).unwrap().get(), AMOUNT_MAX);
        assert_eq!(Amount::new(-AMOUNT_MAX).unwrap().get(), -AMOUNT_MAX);
        assert_eq!(Amount::new(AMOUNT_MAX + 1), Err(AmountError::TooLarge));
        assert_eq!(Amount::new(i64::MIN), Err(AmountError::TooLarge));
        assert_eq!(Amount::positive(0), Err(AmountError::NotPositive));
        assert_eq!(Amount::positive(-1), Err(AmountError::NotPositive));
        assert_eq!(Amount::nonzero(0), Err(AmountError::Zero));
        assert_eq!(Amount::nonzero(-5).unwrap().get(), -5);
    }
}
