//! Payment providers: who takes the customer's money before TouchTopUp credits a wallet.
//!
//! A payment runs in two steps. [`PaymentProvider::start`] asks the provider to prepare a
//! payment of an exact amount and returns its token (for PayPal, the id of an order the
//! customer approves on PayPal's pages); [`PaymentProvider::finish`] takes the money
//! and returns what was actually paid. `finish` is repeat-safe: a second call for the
//! same token returns the same [`Finished`] without taking the money twice, so a client
//! that lost an answer may simply ask again.
//!
//! The provider is chosen by configuration ([`PaymentProviderConfig`]): the built-in
//! [`test_provider::TestProvider`] for development (the default), or
//! [`paypal::PayPal`], which speaks PayPal's REST API (Orders v2).

pub mod paypal;
pub mod test_provider;

use prepaid_ledger::TenantId;
use prepaid_store::{Clock, Store};
use std::fmt;
use std::sync::Arc;

pub use prepaid_edge::payments::{
    Charged, Finished, PaymentError, PaymentProvider, StartPayment, Started,
};

/// The default PayPal REST API base URL: the sandbox, so that a misconfigured server
/// never takes real money.
pub const PAYPAL_BASE_URL_DEFAULT: &str = "https://api-m.sandbox.paypal.com";

/// Which payment provider the server uses.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum PaymentProviderConfig {
    /// The built-in test provider: every payment succeeds; for development only.
    #[default]
    Test,
    /// PayPal's REST API at `base_url` (see [`PAYPAL_BASE_URL_DEFAULT`]) with these
    /// REST app credentials.
    PayPal {
        base_url: String,
        client_id: String,
        client_secret: String,
    },
}

// By hand, so that the client secret never reaches a log.
impl fmt::Debug for PaymentProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Test => f.write_str("Test"),
            Self::PayPal {
                base_url,
                client_id,
                client_secret: _,
            } => f
                .debug_struct("PayPal")
                .field("base_url", base_url)
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
        }
    }
}

/// Builds the provider that `config` names. The test provider keeps its payments as
/// records of the `operator` tenant in `store`.
pub fn build(
    config: &PaymentProviderConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    operator: TenantId,
) -> anyhow::Result<Arc<dyn PaymentProvider>> {
    Ok(match config {
        PaymentProviderConfig::Test => {
            tracing::warn!(
                "using the built-in test payment provider: every payment succeeds without \
                 money; configure --payment-provider paypal in production"
            );
            Arc::new(test_provider::TestProvider::new(store, clock, operator))
        }
        PaymentProviderConfig::PayPal {
            base_url,
            client_id,
            client_secret,
        } => {
            tracing::info!(%base_url, "using the PayPal payment provider");
            Arc::new(paypal::PayPal::new(base_url, client_id, client_secret)?)
        }
    })
}

/// How many decimal places a currency's amounts have, as PayPal documents them:
/// 0 for the currencies PayPal takes without decimals, 2 for every other.
pub fn currency_exponent(currency: &str) -> u32 {
    // https://developer.paypal.com/reference/currency-codes/: HUF, JPY and TWD "do not
    // support decimals".
    const ZERO_DECIMAL: &[&str] = &["HUF", "JPY", "TWD"];
    if ZERO_DECIMAL.contains(&currency) {
        0
    } else {
        2
    }
}

/// Whether `currency` looks like an ISO 4217 code (three uppercase ASCII letters).
pub fn currency_is_valid(currency: &str) -> bool {
    currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_secret_never_reaches_a_log() {
        let config = PaymentProviderConfig::PayPal {
            base_url: PAYPAL_BASE_URL_DEFAULT.into(),
            client_id: "the-client-id".into(),
            client_secret: "the-client-secret".into(),
        };
        let shown = format!("{config:?}");
        assert!(shown.contains("the-client-id"), "{shown}");
        assert!(!shown.contains("the-client-secret"), "{shown}");
        assert_eq!(format!("{:?}", PaymentProviderConfig::default()), "Test");
    }

    #[test]
    fn currencies_have_paypal_s_exponents() {
        for (currency, exponent) in [
            ("EUR", 2),
            ("GBP", 2),
            ("USD", 2),
            ("JPY", 0),
            ("HUF", 0),
            ("TWD", 0),
        ] {
            assert_eq!(currency_exponent(currency), exponent, "{currency}");
        }
        assert!(currency_is_valid("EUR"));
        for bad in ["", "eur", "EU", "EURO", "E1R", "ÉUR"] {
            assert!(!currency_is_valid(bad), "{bad:?}");
        }
    }
}
