//! Wallets counted in credits. A wallet of unit `CREDIT` at a scale from 0 to
//! [`CREDIT_SCALE`] is shown by clients that count in x10000 credits (Talkdesk) as a
//! signed 64-bit integer: its balance times 10^(4 − scale). So that every such balance
//! is an integer Java and JavaScript clients can read as one, the wallet's ceiling is
//! at most the balance whose credits fit `i64` ([`credits_ceiling`]); a credit beyond
//! it is refused like any credit beyond a ceiling.

use crate::{BALANCE_ABS_MAX, Unit};

/// The unit code of wallets counted in credits.
pub const CREDIT_UNIT_CODE: &str = "CREDIT";
/// Credits are the currency value times 10^`CREDIT_SCALE`.
pub const CREDIT_SCALE: u8 = 4;

/// The highest balance a wallet of `unit` may reach so that its balance in credits
/// fits `i64`; `None` for a unit not counted in credits (another code, or a scale past
/// [`CREDIT_SCALE`], whose minor units are fractions of a credit) and where the
/// ledger's own bound on balances ([`BALANCE_ABS_MAX`]) is the tighter.
pub fn credits_ceiling(unit: &Unit) -> Option<i64> {
    if unit.code() != CREDIT_UNIT_CODE || unit.scale() > CREDIT_SCALE {
        return None;
    }
    let bound = i64::MAX / 10i64.pow(u32::from(CREDIT_SCALE - unit.scale()));
    (bound < BALANCE_ABS_MAX).then_some(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_wallets_are_bounded_so_their_credits_fit_i64() {
        let unit = |code, scale| Unit::new(code, scale).unwrap();
        // At scale 4 a credit is a minor unit: the ledger's bound is the tighter.
        assert_eq!(credits_ceiling(&unit("CREDIT", 4)), None);
        assert_eq!(credits_ceiling(&unit("CREDIT", 3)), Some(i64::MAX / 10));
        let at = credits_ceiling(&unit("CREDIT", 0)).unwrap();
        assert_eq!(at, 922_337_203_685_477);
        assert!(i128::from(at) * 10_000 <= i128::from(i64::MAX));
        assert!(i128::from(at + 1) * 10_000 > i128::from(i64::MAX));
        assert_eq!(credits_ceiling(&unit("CREDIT", 5)), None);
        assert_eq!(credits_ceiling(&unit("EUR", 2)), None);
    }
}
