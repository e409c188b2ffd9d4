//! Payment providers: who takes a customer's money before a wallet is credited. The
//! TouchTopUp dialect's payments and automatic top-ups funded by payment share them;
//! the providers themselves (a test provider and PayPal) are TouchTopUp's, chosen by
//! configuration and handed to both when the server assembles them.
//!
//! A payment a customer makes runs in two steps. [`PaymentProvider::start`] asks the
//! provider to prepare a payment of an exact amount and returns its token (for PayPal,
//! the id of an order the customer approves on PayPal's pages);
//! [`PaymentProvider::finish`] takes the money and returns what was actually paid.
//! `finish` is repeat-safe: a second call for the same token returns the same
//! [`Finished`] without taking the money twice. [`PaymentProvider::charge_saved_method`]
//! takes an exact amount from a method the customer saved with the provider, at once,
//! once per idempotency key.

use async_trait::async_trait;
use prepaid_ledger::{Amount, CustomerId, TenantId};

/// The prefix of the saved method references a test provider declines, so that tests
/// and a trial server can show a decline.
pub const DECLINED_METHOD_PREFIX: &str = "decline";

/// A saved method that was charged: the provider's id of the charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charged {
    pub transaction_id: String,
}

/// A payment to prepare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartPayment {
    /// The amount in the currency's minor unit (cents for EUR, yen for JPY); positive.
    pub amount_minor: i64,
    /// The ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// The caller's reference, shown to the provider (and in its reports).
    pub reference: String,
}

/// A prepared payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// The provider's token of the payment; [`PaymentProvider::finish`] takes it.
    pub token: String,
}

/// A payment whose money was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The provider's id of the money transfer (PayPal: the capture id).
    pub transaction_id: String,
    /// What was paid, in the currency's minor unit.
    pub amount_minor: i64,
    /// The ISO 4217 code of what was paid.
    pub currency: String,
}

/// Why a payment step failed.
///
/// Deliberately exhaustive, like the ledger's `Refusal`: each user (TouchTopUp's
/// payments, the automatic top-up worker) says how it answers every failure with a
/// `match` that has no catch-all arm.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The provider refused the payment (declined instrument, not approved by the
    /// customer, invalid amount); asking again will not help.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The customer has not approved the payment yet (or must act again at the
    /// provider); asking again once they have may work.
    #[error("payment not approved yet: {0}")]
    NotApproved(String),
    /// The provider does not know the token.
    #[error("unknown payment token")]
    UnknownToken,
    /// The provider cannot be reached or answered unexpectedly; asking again later may
    /// work. The text is for the log, not for the client.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

/// A payment provider (see the module documentation).
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Prepares a payment of exactly `payment.amount_minor`.
    async fn start(&self, payment: StartPayment) -> Result<Started, PaymentError>;
    /// Takes the money of a prepared payment; repeat-safe.
    async fn finish(&self, token: &str) -> Result<Finished, PaymentError>;
    /// Takes `amount` (minor units of the wallet's currency) from `customer`'s saved
    /// method `method_ref`, as automatic top-ups do. Repeat-safe: a second call with
    /// `idempotency_key` answers what the first did and takes nothing more. A refusal
    /// is `Declined`; `Unavailable` may or may not have charged, and asking again with
    /// the same key finds out.
    async fn charge_saved_method(
        &self,
        tenant: &TenantId,
        customer: &CustomerId,
        method_ref: &str,
        amount: Amount,
        idempotency_key: &str,
    ) -> Result<Charged, PaymentError>;
}
