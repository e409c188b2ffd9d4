//! TouchTopUp's error shape, `{"status":0,"msg":"..."}` (with `"auth":"false"` from
//! `auth_user`), its HTTP statuses, and the mapping of every ledger refusal to it.
//!
//! | HTTP | when |
//! |---|---|
//! | 400 | a missing, malformed or out-of-range parameter; a body that does not parse |
//! | 401 | no `X-API-KEY`; a user login that fails |
//! | 403 | an unknown API key; a key without the scope; a company key naming another company |
//! | 404 | an unknown company, customer, user, wallet, charge, transaction or token; no data |
//! | 405 | a method the document does not give for the route |
//! | 409 | a conflict: an email already registered, a wallet refusing a payment or charge |
//! | 429 | too many failed logins for a user; `Retry-After` says for how long |
//! | 500 | a bug (logged, never described) |
//! | 502 | the payment provider failed or answered unexpectedly |
//! | 503 | the store cannot be reached, or the server is shutting down |
//!
//! A refused request changes nothing.

use super::xml::Node;
use axum::http::StatusCode;
use prepaid_edge::failure::Failure;
use prepaid_ledger::Refusal;
use prepaid_store::{EngineError, StoreError};
use std::borrow::Cow;

/// The message of an answer that has no data, as the document words it.
pub const NO_DATA: &str = "No Data Available for the parameters you supplied";

/// A TouchTopUp error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fail {
    pub http: StatusCode,
    pub msg: Cow<'static, str>,
    /// Whether the answer carries `"auth":"false"` (a failed `auth_user`).
    pub auth_false: bool,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl Fail {
    pub fn new(http: StatusCode, msg: impl Into<Cow<'static, str>>) -> Self {
        Self {
            http,
            msg: msg.into(),
            auth_false: false,
            retry_after: None,
        }
    }
    pub fn bad(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    pub fn not_found(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, msg)
    }
    pub fn no_data() -> Self {
        Self::not_found(NO_DATA)
    }
    pub fn forbidden(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, msg)
    }
    pub fn conflict(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, msg)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error; it has been logged",
        )
    }
    pub fn unavailable(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, msg)
    }

    /// This failure as the answer of a failed login (`"auth":"false"`).
    #[must_use]
    pub fn with_auth_false(mut self) -> Self {
        self.auth_false = true;
        self
    }

    /// The answer body.
    pub fn body(&self) -> Node {
        let node = Node::map().with("status", 0i64);
        let node = if self.auth_false {
            node.with("auth", "false")
        } else {
            node
        };
        node.with("msg", self.msg.to_string())
    }
}

/// A failure of the shared layers (auth, body limits) keeps its status and detail.
impl From<Failure> for Fail {
    fn from(p: Failure) -> Self {
        Fail::new(p.status, p.detail)
    }
}

/// A store failure; the details go to the log.
pub fn store_fail(err: &StoreError, context: &str) -> Fail {
    match err {
        StoreError::Unavailable { message: msg, .. } => {
            tracing::warn!(error = %msg, context, "store unavailable");
            Fail::unavailable("The service is unavailable; try again later")
        }
        other => {
            tracing::error!(error = %other, context, "store failure");
            Fail::internal()
        }
    }
}

/// An engine failure; the details go to the log.
pub fn engine_fail(err: &EngineError, context: &str) -> Fail {
    match err {
        EngineError::Store(e) => store_fail(e, context),
        EngineError::Stopped => Fail::unavailable("The service is shutting down; try again later"),
        other => {
            tracing::error!(error = %other, context, "engine failure");
            Fail::internal()
        }
    }
}

/// The answer to a ledger refusal, with amounts in the unit's minor units.
pub fn refusal(r: &Refusal) -> Fail {
    match r {
        Refusal::InsufficientFunds {
            available,
            requested,
        } => Fail::conflict(format!(
            "Insufficient funds: {requested} requested, {available} available"
        )),
        Refusal::CeilingExceeded { room, requested } => Fail::conflict(format!(
            "The wallet does not accept more than its charges: {requested} paid, at most \
             {room} still owed"
        )),
        Refusal::BalanceOverflow => Fail::conflict("The amount would overflow the balance"),
        Refusal::TenantNotFound => Fail::forbidden("Invalid API Key"),
        Refusal::CustomerNotFound => Fail::no_data(),
        Refusal::WalletNotFound => Fail::no_data(),
        Refusal::WalletNotActive { status } => Fail::conflict(format!(
            "The wallet is {}; it takes no payments or charges",
            status.as_str()
        )),
        Refusal::OutsideValidity => Fail::conflict("The wallet is not valid at this time"),
        Refusal::UnitMismatch => Fail::conflict("The wallets count different currencies"),
        Refusal::IdempotencyConflict => {
            Fail::conflict("This payment was already recorded with other details")
        }
        Refusal::Forbidden => Fail::forbidden("This API key may not do this"),
        Refusal::DrawsExceeded { draws_max } => Fail::conflict(format!(
            "The charge would draw from more than {draws_max} top-ups; charge less at once"
        )),
        Refusal::GrantsExceeded { grants_max } => Fail::conflict(format!(
            "The wallet holds {grants_max} unspent top-ups, the most it may"
        )),
        // The dialect never places holds, transfers, keys or tenants, and chooses every
        // id it creates, so these are bugs: logged, answered 500.
        Refusal::HoldNotFound
        | Refusal::MutationNotFound
        | Refusal::NotReversible
        | Refusal::MetadataExceeded { .. }
        | Refusal::ReversalExceedsRemaining { .. }
        | Refusal::TenantExists
        | Refusal::ApiKeyExists
        | Refusal::CustomerExists
        | Refusal::WalletExists
        | Refusal::MutationExists
        | Refusal::HoldExists
        | Refusal::SameWallet
        | Refusal::HoldNotPending { .. }
        | Refusal::HoldExpired
        | Refusal::CommitExceedsHold { .. }
        | Refusal::Internal => {
            tracing::error!(refusal = r.code(), "an unexpected refusal in TouchTopUp");
            Fail::internal()
        }
        Refusal::RecordConflict => Fail::conflict("The data changed meanwhile; please try again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prepaid_ledger::WalletStatus;

    #[test]
    fn refusals_map_to_status_0_with_a_reason() {
        let cases = [
            (
                Refusal::InsufficientFunds {
                    available: 5,
                    requested: 10,
                },
                StatusCode::CONFLICT,
                "Insufficient funds",
            ),
            (
                Refusal::CeilingExceeded {
                    room: 2500,
                    requested: 3000,
                },
                StatusCode::CONFLICT,
                "more than its charges",
            ),
            (Refusal::CustomerNotFound, StatusCode::NOT_FOUND, NO_DATA),
            (
                Refusal::WalletNotActive {
                    status: WalletStatus::Suspended,
                },
                StatusCode::CONFLICT,
                "suspended",
            ),
            (
                Refusal::MutationExists,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
            ),
        ];
        for (r, status, needle) in cases {
            let f = refusal(&r);
            assert_eq!(f.http, status, "{r:?}");
            assert!(f.msg.contains(needle), "{r:?}: {}", f.msg);
        }
    }

    #[test]
    fn failures_render_as_the_document_shows() {
        let f = Fail::new(
            StatusCode::UNAUTHORIZED,
            "Could not login user with username fred using password supplied",
        )
        .with_auth_false();
        assert_eq!(
            serde_json::to_string(&f.body()).unwrap(),
            r#"{"status":0,"auth":"false","msg":"Could not login user with username fred using password supplied"}"#
        );
        assert_eq!(
            serde_json::to_string(&Fail::no_data().body()).unwrap(),
            r#"{"status":0,"msg":"No Data Available for the parameters you supplied"}"#
        );
    }
}
