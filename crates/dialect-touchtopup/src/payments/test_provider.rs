//! The built-in test payment provider, for development and tests: every payment
//! succeeds and no money moves.
//!
//! `start` answers `TEST-<uuid>` and keeps the payment as a record (kind
//! [`TEST_PAYMENT_KIND`], key the token) of the operator tenant, so a payment started
//! before a restart, or on another instance over the same database, finishes all the
//! same. `finish` answers the kept amount with the transaction id `TESTTX-<uuid>` of
//! the same uuid, every time it is asked: repeat-safe by construction.

use super::{
    Charged, Finished, PaymentError, PaymentProvider, StartPayment, Started, currency_is_valid,
};
use async_trait::async_trait;
use prepaid_edge::payments::DECLINED_METHOD_PREFIX;
use prepaid_ledger::TenantId;
use prepaid_ledger::{Amount, CustomerId};
use prepaid_ledger::{RecordKey, RecordKind};
use prepaid_store::records::value_is_valid;
use prepaid_store::{Clock, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The record kind of a test payment.
pub const TEST_PAYMENT_KIND: RecordKind = RecordKind::new("icrtouch.testpay");
/// The prefix of a test payment's token.
pub const TEST_TOKEN_PREFIX: &str = "TEST-";
/// The prefix of a test payment's transaction id.
pub const TEST_TRANSACTION_PREFIX: &str = "TESTTX-";
/// The longest reference kept with a test payment, in bytes; the rest is cut off,
/// since the reference is informational only.
pub const TEST_REFERENCE_LEN_MAX: usize = 255;

/// A test payment as kept in its record.
#[derive(Serialize, Deserialize)]
struct Kept {
    amount_minor: i64,
    currency: String,
    reference: String,
}

/// The test provider (see the module documentation).
pub struct TestProvider {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tenant: TenantId,
}

impl TestProvider {
    /// A provider that keeps its payments as records of `tenant` in `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, tenant: TenantId) -> Self {
        Self {
            store,
            clock,
            tenant,
        }
    }
}

fn unavailable(e: StoreError) -> PaymentError {
    tracing::error!(error = %e, "the test payment provider cannot reach the store");
    PaymentError::Unavailable(e.to_string())
}

/// The uuid of a well-formed test token, `None` for anything else.
fn token_uuid(token: &str) -> Option<uuid::Uuid> {
    let rest = token.strip_prefix(TEST_TOKEN_PREFIX)?;
    let id = uuid::Uuid::try_parse(rest).ok()?;
    // Only the form this provider hands out, so that one payment has one token.
    (id.hyphenated().to_string() == rest).then_some(id)
}

/// `s` cut to at most `len_max` bytes at a character boundary.
fn truncated(s: &str, len_max: usize) -> &str {
    let mut end = s.len().min(len_max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[async_trait]
impl PaymentProvider for TestProvider {
    /// Charges every saved method without money, except one whose reference begins
    /// with [`DECLINED_METHOD_PREFIX`], which it declines.
    async fn charge_saved_method(
        &self,
        _tenant: &TenantId,
        _customer: &CustomerId,
        method_ref: &str,
        _amount: Amount,
        idempotency_key: &str,
    ) -> Result<Charged, PaymentError> {
        if method_ref.starts_with(DECLINED_METHOD_PREFIX) {
            return Err(PaymentError::Declined(
                "the test provider declines this method".into(),
            ));
        }
        Ok(Charged {
            transaction_id: format!("test-charge:{idempotency_key}"),
        })
    }

    async fn start(&self, payment: StartPayment) -> Result<Started, PaymentError> {
        if payment.amount_minor <= 0 {
            return Err(PaymentError::Declined("the amount must be positive".into()));
        }
        if !currency_is_valid(&payment.currency) {
            return Err(PaymentError::Declined("unknown currency".into()));
        }
        let token = format!("{TEST_TOKEN_PREFIX}{}", uuid::Uuid::new_v4().hyphenated());
        let kept = Kept {
            amount_minor: payment.amount_minor,
            currency: payment.currency,
            reference: truncated(&payment.reference, TEST_REFERENCE_LEN_MAX).to_owned(),
        };
        let value = serde_json::to_string(&kept)
            .map_err(|e| PaymentError::Unavailable(format!("encoding a test payment: {e}")))?;
        debug_assert!(value_is_valid(&value));
        let key = RecordKey::parse(token.as_str())
            .map_err(|e| PaymentError::Unavailable(format!("a test payment token: {e}")))?;
        let inserted = self
            .store
            .put_record(
                &self.tenant,
                TEST_PAYMENT_KIND,
                &key,
                &value,
                None,
                self.clock.now(),
            )
            .await
            .map_err(unavailable)?;
        match inserted {
            Some(_) => Ok(Started { token }),
            // A fresh v4 uuid that is taken means a broken random source.
            None => Err(PaymentError::Unavailable(
                "a new test payment token was taken".into(),
            )),
        }
    }

    async fn finish(&self, token: &str) -> Result<Finished, PaymentError> {
        let (Some(id), Ok(key)) = (token_uuid(token), RecordKey::parse(token)) else {
            return Err(PaymentError::UnknownToken);
        };
        let record = self
            .store
            .record(&self.tenant, TEST_PAYMENT_KIND, &key)
            .await
            .map_err(unavailable)?
            .ok_or(PaymentError::UnknownToken)?;
        let kept: Kept = serde_json::from_str(&record.value).map_err(|e| {
            tracing::error!(error = %e, token, "a test payment record cannot be read");
            PaymentError::Unavailable(format!("reading a test payment: {e}"))
        })?;
        Ok(Finished {
            transaction_id: format!("{TEST_TRANSACTION_PREFIX}{}", id.hyphenated()),
            amount_minor: kept.amount_minor,
            currency: kept.currency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tokens_it_hands_out_are_tokens() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(token_uuid(&format!("TEST-{}", id.hyphenated())), Some(id));
        for bad in [
            "",
            "TEST-",
            "test-0b6f1a52-5d0e-4c1e-9b8e-1f2a3b4c5d6e",
            "TEST-0B6F1A52-5D0E-4C1E-9B8E-1F2A3B4C5D6E",
            "TEST-0b6f1a525d0e4c1e9b8e1f2a3b4c5d6e",
            "TEST-0b6f1a52-5d0e-4c1e-9b8e-1f2a3b4c5d6e ",
            "EC-1Y43567715771310G",
        ] {
            assert_eq!(token_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn references_are_cut_at_character_boundaries() {
        assert_eq!(truncated("abc", 2), "ab");
        assert_eq!(truncated("é", 1), "");
        let long = "x".repeat(TEST_REFERENCE_LEN_MAX + 1);
        assert_eq!(
            truncated(&long, TEST_REFERENCE_LEN_MAX).len(),
            TEST_REFERENCE_LEN_MAX
        );
    }
}
