//! How the house problem shape of `/v1` answers a ledger refusal: one arm per
//! [`Refusal`], with the status and code of `docs/native-api.md`.

use crate::problem::{Extra, Problem};
use axum::http::StatusCode;
use prepaid_ledger::{Done, Refusal};

fn p(status: StatusCode, code: &'static str, title: &'static str, detail: String) -> Problem {
    Problem::new(status, code, title, detail)
}

const CONFLICT: StatusCode = StatusCode::CONFLICT;
const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

/// The problem for a refusal.
pub fn refusal(r: &Refusal) -> Problem {
    match r {
        Refusal::InsufficientFunds {
            available,
            requested,
        } => p(
            UNPROCESSABLE,
            "insufficient_funds",
            "Insufficient funds",
            format!("{requested} exceeds the {available} available"),
        )
        .with("available", Extra::Int(*available))
        .with("requested", Extra::Int(*requested)),
        Refusal::BalanceOverflow => p(
            UNPROCESSABLE,
            "balance_overflow",
            "Balance overflow",
            format!(
                "the result would take a balance past {}",
                prepaid_ledger::BALANCE_ABS_MAX
            ),
        ),
        Refusal::CeilingExceeded { room, requested } => p(
            UNPROCESSABLE,
            "ceiling_exceeded",
            "Ceiling exceeded",
            format!("{requested} exceeds the {room} the wallet may still receive"),
        )
        .with("room", Extra::Int(*room))
        .with("requested", Extra::Int(*requested)),
        Refusal::TenantNotFound => Problem::not_found("tenant_not_found", "no such tenant"),
        Refusal::CustomerNotFound => Problem::not_found("customer_not_found", "no such customer"),
        Refusal::WalletNotFound => Problem::not_found("wallet_not_found", "no such wallet"),
        Refusal::HoldNotFound => Problem::not_found("hold_not_found", "no such hold"),
        Refusal::TenantExists => p(
            CONFLICT,
            "tenant_exists",
            "Tenant exists",
            "a tenant with this id exists".into(),
        ),
        Refusal::ApiKeyExists => p(
            CONFLICT,
            "api_key_exists",
            "API key exists",
            "an API key with this name exists".into(),
        ),
        Refusal::CustomerExists => p(
            CONFLICT,
            "customer_exists",
            "Customer exists",
            "a customer with this id exists".into(),
        ),
        Refusal::WalletExists => p(
            CONFLICT,
            "wallet_exists",
            "Wallet exists",
            "a wallet with this id exists".into(),
        ),
        // The server chooses mutation and hold ids (UUID v7), so a clash is a bug.
        Refusal::MutationExists | Refusal::HoldExists => {
            tracing::error!(refusal = r.code(), "a server-chosen id clashed");
            Problem::internal()
        }
        Refusal::WalletNotActive { status } => p(
            UNPROCESSABLE,
            "wallet_not_active",
            "Wallet not active",
            format!("the wallet is {}", status.as_str()),
        )
        .with("wallet_status", Extra::Str(status.as_str())),
        Refusal::OutsideValidity => p(
            UNPROCESSABLE,
            "outside_validity",
            "Outside validity",
            "the wallet is not valid at this time".into(),
        ),
        Refusal::UnitMismatch => p(
            UNPROCESSABLE,
            "unit_mismatch",
            "Unit mismatch",
            "the wallets count different units".into(),
        ),
        Refusal::SameWallet => p(
            UNPROCESSABLE,
            "same_wallet",
            "Same wallet",
            "a transfer needs two different wallets".into(),
        ),
        Refusal::HoldNotPending { status } => p(
            CONFLICT,
            "hold_not_pending",
            "Hold not pending",
            format!("the hold is {}", status.as_str()),
        ),
        Refusal::HoldExpired => p(
            CONFLICT,
            "hold_expired",
            "Hold expired",
            "the hold has expired".into(),
        ),
        Refusal::CommitExceedsHold { held, requested } => p(
            UNPROCESSABLE,
            "commit_exceeds_hold",
            "Commit exceeds hold",
            format!("committing {requested} exceeds the {held} held"),
        ),
        Refusal::MutationNotFound => Problem::not_found("mutation_not_found", "no such mutation"),
        Refusal::NotReversible => p(
            UNPROCESSABLE,
            "not_reversible",
            "Not reversible",
            "transfers, hold releases, expiries and reversals are not reversed".into(),
        ),
        Refusal::ReversalExceedsRemaining { reversible } => p(
            UNPROCESSABLE,
            "reversal_exceeds_remaining",
            "Credit already spent",
            format!(
                "only {reversible} of the credit is left to take back; an admin key may \
                 reverse it all with allow_negative"
            ),
        )
        .with("reversible", Extra::Int(*reversible)),
        Refusal::DrawsExceeded { draws_max } => p(
            UNPROCESSABLE,
            "draws_exceeded",
            "Too many grants",
            format!("the debit would draw from more than {draws_max} grants; spend less at once"),
        )
        .with(
            "draws_max",
            Extra::Int(i64::try_from(*draws_max).unwrap_or(i64::MAX)),
        ),
        Refusal::GrantsExceeded { grants_max } => p(
            UNPROCESSABLE,
            "grants_exceeded",
            "Too many grants",
            format!("the wallet has {grants_max} live grants, the most it may have"),
        )
        .with(
            "grants_max",
            Extra::Int(i64::try_from(*grants_max).unwrap_or(i64::MAX)),
        ),
        Refusal::MetadataExceeded { pairs, pairs_max } => p(
            UNPROCESSABLE,
            "metadata_exceeded",
            "Too many metadata pairs",
            format!("the change would leave {pairs} metadata pairs, more than {pairs_max}"),
        )
        .with(
            "pairs_max",
            Extra::Int(i64::try_from(*pairs_max).unwrap_or(i64::MAX)),
        ),
        Refusal::IdempotencyConflict => p(
            CONFLICT,
            "idempotency_conflict",
            "Idempotency conflict",
            "this Idempotency-Key was used with a different request".into(),
        ),
        Refusal::Forbidden => Problem::forbidden("this key may not do this"),
        // The store has logged what failed.
        Refusal::Internal => Problem::internal(),
        Refusal::RecordConflict => p(
            CONFLICT,
            "conflict",
            "Conflict",
            "the resource changed meanwhile; try again".into(),
        ),
    }
}

/// The engine answered with the wrong kind of result: a bug.
pub fn unexpected(done: &Done, wanted: &str) -> Problem {
    let got = match done {
        Done::Tenant { .. } => "tenant",
        Done::ApiKey(_) => "api key",
        Done::Customer(_) => "customer",
        Done::Wallet(_) => "wallet",
        Done::Mutation(_) => "mutation",
        Done::Transfer(_) => "transfer",
        Done::Hold { .. } => "hold",
        Done::Setting { .. } => "setting",
        Done::Records => "records",
    };
    tracing::error!(
        got,
        wanted,
        "the engine answered with another kind of result"
    );
    Problem::internal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prepaid_ledger::{HoldStatus, WalletStatus};

    #[test]
    fn refusals_map_to_the_documented_status_and_code() {
        let cases = [
            (
                Refusal::InsufficientFunds {
                    available: 300,
                    requested: 500,
                },
                422,
                "insufficient_funds",
            ),
            (Refusal::BalanceOverflow, 422, "balance_overflow"),
            (
                Refusal::CeilingExceeded {
                    room: 20,
                    requested: 50,
                },
                422,
                "ceiling_exceeded",
            ),
            (Refusal::TenantNotFound, 404, "tenant_not_found"),
            (Refusal::CustomerNotFound, 404, "customer_not_found"),
            (Refusal::WalletNotFound, 404, "wallet_not_found"),
            (Refusal::HoldNotFound, 404, "hold_not_found"),
            (Refusal::TenantExists, 409, "tenant_exists"),
            (Refusal::ApiKeyExists, 409, "api_key_exists"),
            (Refusal::CustomerExists, 409, "customer_exists"),
            (Refusal::WalletExists, 409, "wallet_exists"),
            (Refusal::MutationExists, 500, "internal"),
            (Refusal::HoldExists, 500, "internal"),
            (
                Refusal::WalletNotActive {
                    status: WalletStatus::Suspended,
                },
                422,
                "wallet_not_active",
            ),
            (Refusal::OutsideValidity, 422, "outside_validity"),
            (Refusal::UnitMismatch, 422, "unit_mismatch"),
            (Refusal::SameWallet, 422, "same_wallet"),
            (
                Refusal::HoldNotPending {
                    status: HoldStatus::Committed,
                },
                409,
                "hold_not_pending",
            ),
            (Refusal::HoldExpired, 409, "hold_expired"),
            (
                Refusal::CommitExceedsHold {
                    held: 5,
                    requested: 6,
                },
                422,
                "commit_exceeds_hold",
            ),
            (Refusal::IdempotencyConflict, 409, "idempotency_conflict"),
            (Refusal::Forbidden, 403, "forbidden"),
        ];
        for (r, status, code) in cases {
            let problem = refusal(&r);
            assert_eq!(
                (problem.status.as_u16(), problem.code),
                (status, code),
                "{r:?}"
            );
        }
        let p = refusal(&Refusal::InsufficientFunds {
            available: 300,
            requested: 500,
        });
        assert_eq!(
            p.extras,
            vec![
                ("available", Extra::Int(300)),
                ("requested", Extra::Int(500))
            ]
        );
        let p = refusal(&Refusal::WalletNotActive {
            status: WalletStatus::Expired,
        });
        assert_eq!(p.extras, vec![("wallet_status", Extra::Str("expired"))]);
    }
}
