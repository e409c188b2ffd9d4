//! TM Forum's error shape, `{code, reason, message, status, @type: "Error"}`, on both
//! mounts (Oracle's document gives the same `Error` schema for every 4xx and 5xx), and
//! the mapping of every ledger refusal to it.
//!
//! `code` is a stable machine-readable name (`insufficient_funds`, `bucket_not_found`),
//! `reason` a short title, `message` the detail, `status` the HTTP status as text.
//!
//! | status | codes |
//! |---|---|
//! | 400 | `invalid_request`, `unknown_field`, `invalid_amount`, `invalid_query` |
//! | 401 / 403 | `unauthorized` / `forbidden` |
//! | 404 | `not_found`, `bucket_not_found`, `party_account_not_found`, `topup_balance_not_found`, ... |
//! | 405 | `method_not_allowed` |
//! | 409 | `conflict`, `bucket_exists`, `idempotency_conflict`, `not_pending`, `hold_expired` |
//! | 413 / 415 | `body_too_large` / `unsupported_media_type` |
//! | 422 | `insufficient_funds`, `unit_mismatch`, `bucket_not_active`, `outside_validity`, `same_bucket`, `balance_overflow`, `ceiling_exceeded`, `commit_exceeds_reservation` |
//! | 500 / 503 | `internal` / `unavailable` |
//!
//! The TM Forum mount answers only the statuses the official file lists for an
//! operation: its 422s go out as 409 (or 400 for a request that could never succeed),
//! and a POST's 404, a 413 and a 415 as 400, each keeping its `code`
//! ([`crate::listed_status`]). The BRM mount answers as the table says.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prepaid_edge::failure::Failure;
use prepaid_ledger::Refusal;
use serde_json::json;
use std::borrow::Cow;

/// An error answer in TM Forum's shape.
#[derive(Clone, Debug)]
pub struct TmfError {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: Cow<'static, str>,
    pub message: Cow<'static, str>,
    /// Offer Bearer and Basic in `WWW-Authenticate` (on 401).
    pub challenge: bool,
}

impl TmfError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            reason: reason.into(),
            message: message.into(),
            challenge: false,
        }
    }

    /// A malformed body or a bad value; `message` names the field.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request",
            message,
        )
    }

    /// A bad value of one named field.
    pub fn field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::invalid(format!("{field}: {why}"))
    }

    /// A required field is missing.
    pub fn missing(field: &str) -> Self {
        Self::invalid(format!("{field}: is required"))
    }

    /// An amount that is not an exact decimal of the bucket's unit.
    pub fn amount(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_amount",
            "Invalid amount",
            format!("{field}: {why}"),
        )
    }

    /// A bad list parameter (`fields`, `offset`, `limit`, a filter).
    pub fn query(why: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "Invalid query parameter",
            why,
        )
    }

    pub fn not_found(code: &'static str, what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            code,
            "Not found",
            format!("no such {what}"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, "Conflict", message)
    }

    pub fn unprocessable(
        code: &'static str,
        reason: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, reason, message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "this resource does not support this method",
        )
    }

    /// A bug; the caller has logged the details, the client learns nothing of them.
    pub fn internal() -> Self {
        Failure::internal().into()
    }

    /// The body of the answer.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "status": self.status.as_u16().to_string(),
            "@type": "Error",
        })
    }
}

impl From<Failure> for TmfError {
    fn from(p: Failure) -> Self {
        Self {
            status: p.status,
            code: p.code,
            reason: Cow::Borrowed(p.title),
            message: p.detail,
            challenge: p.challenge,
        }
    }
}

impl IntoResponse for TmfError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=utf-8"),
        );
        if self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"prepaid\", Basic realm=\"prepaid\""),
            );
        }
        response
    }
}

/// The error for a refusal of the ledger.
pub fn refusal(r: &Refusal) -> TmfError {
    use TmfError as E;
    match r {
        Refusal::InsufficientFunds {
            available,
            requested,
        } => E::unprocessable(
            "insufficient_funds",
            "Insufficient funds",
            format!("{requested} exceeds the {available} available (in the unit's smallest steps)"),
        ),
        Refusal::BalanceOverflow => E::unprocessable(
            "balance_overflow",
            "Balance overflow",
            "the balance would pass its largest magnitude",
        ),
        Refusal::CeilingExceeded { room, requested } => E::unprocessable(
            "ceiling_exceeded",
            "Ceiling exceeded",
            format!(
                "{requested} exceeds the {room} the bucket may still receive (in the unit's smallest steps)"
            ),
        ),
        Refusal::TenantNotFound => E::not_found("not_found", "tenant"),
        Refusal::CustomerNotFound => E::not_found("party_account_not_found", "party account"),
        Refusal::WalletNotFound => E::not_found("bucket_not_found", "bucket"),
        Refusal::HoldNotFound => E::not_found("reserve_balance_not_found", "reservation"),
        Refusal::TenantExists | Refusal::ApiKeyExists => {
            E::conflict("conflict", "it exists already")
        }
        Refusal::CustomerExists => E::conflict("party_account_exists", "the party account exists"),
        Refusal::WalletExists => E::conflict("bucket_exists", "a bucket with this id exists"),
        // The ids of new actions are fresh UUIDs: a collision is a bug.
        Refusal::MutationExists | Refusal::HoldExists => {
            tracing::error!(refusal = r.code(), "a fresh id was taken");
            E::internal()
        }
        Refusal::WalletNotActive { status } => E::unprocessable(
            "bucket_not_active",
            "Bucket not active",
            format!("the bucket is {}", status.as_str()),
        ),
        Refusal::OutsideValidity => E::unprocessable(
            "outside_validity",
            "Outside validity",
            "the bucket is outside its validity period",
        ),
        Refusal::UnitMismatch => E::unprocessable(
            "unit_mismatch",
            "Unit mismatch",
            "the buckets count different units",
        ),
        Refusal::SameWallet => E::unprocessable(
            "same_bucket",
            "Same bucket",
            "the receiver bucket is the bucket itself",
        ),
        Refusal::HoldNotPending { status } => E::conflict(
            "not_pending",
            format!("the reservation is {} already", status.as_str()),
        ),
        Refusal::HoldExpired => E::conflict("hold_expired", "the reservation has expired"),
        Refusal::CommitExceedsHold { held, requested } => E::unprocessable(
            "commit_exceeds_reservation",
            "Commit exceeds reservation",
            format!("{requested} exceeds the {held} reserved (in the unit's smallest steps)"),
        ),
        Refusal::MutationNotFound => E::not_found("not_found", "balance action"),
        Refusal::MetadataExceeded { pairs, pairs_max } => E::unprocessable(
            "metadata_exceeded",
            "Too many metadata pairs",
            format!("the change would leave {pairs} metadata pairs, more than {pairs_max}"),
        ),
        Refusal::NotReversible => E::unprocessable(
            "not_reversible",
            "Not reversible",
            "this balance action is not reversed",
        ),
        Refusal::ReversalExceedsRemaining { reversible } => E::unprocessable(
            "reversal_exceeds_remaining",
            "Credit already spent",
            format!(
                "only {reversible} of the credit is left to take back (in the unit's smallest steps)"
            ),
        ),
        Refusal::DrawsExceeded { draws_max } => E::unprocessable(
            "draws_exceeded",
            "Too many buckets",
            format!(
                "the amount would draw from more than {draws_max} credit grants; use smaller amounts"
            ),
        ),
        Refusal::GrantsExceeded { grants_max } => E::unprocessable(
            "grants_exceeded",
            "Too many grants",
            format!("the bucket holds {grants_max} live credit grants, the most it may"),
        ),
        Refusal::IdempotencyConflict => E::conflict(
            "idempotency_conflict",
            "this Idempotency-Key was used with a different request",
        ),
        Refusal::Forbidden => Failure::forbidden("this key may not do this").into(),
        Refusal::Internal => E::internal(),
        Refusal::RecordConflict => {
            E::conflict("conflict", "the resource changed meanwhile; try again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prepaid_ledger::{HoldStatus, WalletStatus};

    #[test]
    fn refusals_map_to_client_errors() {
        let cases: &[(Refusal, u16, &str)] = &[
            (
                Refusal::InsufficientFunds {
                    available: 1,
                    requested: 2,
                },
                422,
                "insufficient_funds",
            ),
            (Refusal::BalanceOverflow, 422, "balance_overflow"),
            (
                Refusal::CeilingExceeded {
                    room: 1,
                    requested: 2,
                },
                422,
                "ceiling_exceeded",
            ),
            (Refusal::WalletNotFound, 404, "bucket_not_found"),
            (Refusal::CustomerNotFound, 404, "party_account_not_found"),
            (Refusal::HoldNotFound, 404, "reserve_balance_not_found"),
            (Refusal::WalletExists, 409, "bucket_exists"),
            (
                Refusal::WalletNotActive {
                    status: WalletStatus::Suspended,
                },
                422,
                "bucket_not_active",
            ),
            (Refusal::UnitMismatch, 422, "unit_mismatch"),
            (Refusal::SameWallet, 422, "same_bucket"),
            (
                Refusal::HoldNotPending {
                    status: HoldStatus::Committed,
                },
                409,
                "not_pending",
            ),
            (Refusal::HoldExpired, 409, "hold_expired"),
            (
                Refusal::CommitExceedsHold {
                    held: 1,
                    requested: 2,
                },
                422,
                "commit_exceeds_reservation",
            ),
            (Refusal::IdempotencyConflict, 409, "idempotency_conflict"),
            (Refusal::Forbidden, 403, "forbidden"),
            (Refusal::Internal, 500, "internal"),
        ];
        for (r, status, code) in cases {
            let e = refusal(r);
            assert_eq!((e.status.as_u16(), e.code), (*status, *code), "{r:?}");
            let body = e.body();
            assert_eq!(body["status"], status.to_string());
            assert_eq!(body["@type"], "Error");
        }
    }
}
