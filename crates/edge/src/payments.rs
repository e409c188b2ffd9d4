//! Charging a customer's saved payment method, which automatic top-ups funded by
//! payment do: the provider takes an exact amount from a method the customer saved
//! with it (its reference), once per idempotency key, and answers whether it took it.
//!
//! [`TestSavedMethods`], the default, takes no money: it charges every method except
//! one whose reference begins with `decline`, which it declines, so that tests and a
//! trial server can show both outcomes.

use async_trait::async_trait;
use prepaid_ledger::{Amount, CustomerId, TenantId};

/// What a charge came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Charge {
    /// The money was taken; the provider's id of the charge.
    Charged { transaction: String },
    /// The provider refused it for good (no funds, a method withdrawn).
    Declined { reason: String },
}

/// An operating failure: the charge may or may not have happened, and asking again
/// with the same idempotency key finds out.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChargeError {
    #[error("the payment provider cannot be reached: {0}")]
    Unavailable(String),
}

/// A payment provider that charges saved methods.
#[async_trait]
pub trait SavedMethodPayments: Send + Sync {
    /// Takes `amount` (minor units of the wallet's currency) from `customer`'s saved
    /// method `method_ref`. Repeat-safe: a second call with `idempotency_key` answers
    /// what the first did and takes nothing more.
    async fn charge_saved_method(
        &self,
        tenant: &TenantId,
        customer: &CustomerId,
        method_ref: &str,
        amount: Amount,
        idempotency_key: &str,
    ) -> Result<Charge, ChargeError>;
}

/// The built-in provider that takes no money (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct TestSavedMethods;

/// The prefix of the method references [`TestSavedMethods`] declines.
pub const DECLINED_METHOD_PREFIX: &str = "decline";

#[async_trait]
impl SavedMethodPayments for TestSavedMethods {
    async fn charge_saved_method(
        &self,
        _tenant: &TenantId,
        _customer: &CustomerId,
        method_ref: &str,
        _amount: Amount,
        idempotency_key: &str,
    ) -> Result<Charge, ChargeError> {
        if method_ref.starts_with(DECLINED_METHOD_PREFIX) {
            return Ok(Charge::Declined {
                reason: "the test provider declines this method".to_owned(),
            });
        }
        Ok(Charge::Charged {
            transaction: format!("test:{idempotency_key}"),
        })
    }
}
