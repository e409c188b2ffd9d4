//! A wallet's low-balance alert: `PUT`, `GET` and `DELETE
//! /v1/wallets/{id}/low-balance-alert`. The thresholds are parsed into the ledger's
//! [`LowBalanceAlert`] (which bounds them) and set by one command. Each time the
//! wallet's available amount falls past one of them, a tenant with webhooks gets a
//! `wallet.low_balance` event.

use crate::{Answer, ok, path_id, submit_records, visible_wallet, wallet_record};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use prepaid_edge::PathSegment;
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Caller, Read, Write};
use prepaid_edge::body::JsonBody;
use prepaid_edge::problem::Problem;
use prepaid_ledger::{Command, LowBalanceAlert, TenantId, WalletId};
use prepaid_store::webhooks::{LOW_BALANCE_KIND, decode_alert};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A wallet's low-balance thresholds.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LowBalanceAlertIn {
    /// Minor units, 1 to 8 distinct amounts from 0: a `wallet.low_balance` event is
    /// sent each time the wallet's available amount falls from above one to at or
    /// below it.
    #[schema(min_items = 1, max_items = 8)]
    pub thresholds: Vec<i64>,
}

/// A wallet's low-balance alert.
#[derive(Serialize, ToSchema)]
pub struct LowBalanceAlertOut {
    pub wallet_id: String,
    /// Highest first.
    pub thresholds: Vec<i64>,
}

/// What the log calls it.
const WHAT: &str = "a low-balance alert";

fn no_alert() -> Problem {
    Problem::not_found(
        "low_balance_alert_not_found",
        "the wallet has no low-balance alert",
    )
}

#[utoipa::path(put, path = "/v1/wallets/{id}/low-balance-alert", tag = "wallets",
    params(("id" = String, Path, description = "The wallet id")),
    request_body = LowBalanceAlertIn,
    responses((status = 200, body = LowBalanceAlertOut), (status = "4XX", body = crate::types::ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Sets the wallet's low-balance thresholds, replacing any it had. A wallet already
/// below a threshold is told only after it rose above it and fell again.
pub(crate) async fn put_alert(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<LowBalanceAlertIn>,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let alert = LowBalanceAlert::new(body.value.thresholds)
        .map_err(|e| Problem::invalid_field("thresholds", e))?;
    let out = LowBalanceAlertOut {
        wallet_id: wallet.to_string(),
        thresholds: alert.thresholds().to_vec(),
    };
    let command = Command::SetLowBalanceAlert {
        wallet,
        alert: Some(alert),
    };
    submit_records(&state, &caller, body.idempotency, command, WHAT).await?;
    Ok(ok(&out))
}

#[utoipa::path(get, path = "/v1/wallets/{id}/low-balance-alert", tag = "wallets",
    params(("id" = String, Path, description = "The wallet id")),
    responses((status = 200, body = LowBalanceAlertOut), (status = "4XX", body = crate::types::ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// The wallet's low-balance thresholds.
pub(crate) async fn get_alert(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    visible_wallet(&state, &caller, &wallet).await?;
    let out = current(&state, &caller.tenant, &wallet)
        .await?
        .ok_or_else(no_alert)?;
    Ok(ok(&out))
}

#[utoipa::path(delete, path = "/v1/wallets/{id}/low-balance-alert", tag = "wallets",
    params(("id" = String, Path, description = "The wallet id")),
    responses((status = 204), (status = "4XX", body = crate::types::ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Removes the wallet's low-balance alert.
pub(crate) async fn delete_alert(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let command = Command::SetLowBalanceAlert {
        wallet,
        alert: None,
    };
    submit_records(&state, &caller, None, command, WHAT).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn current(
    state: &SharedState,
    tenant: &TenantId,
    wallet: &WalletId,
) -> Result<Option<LowBalanceAlertOut>, Problem> {
    let alert = wallet_record(state, tenant, wallet, LOW_BALANCE_KIND, WHAT, decode_alert).await?;
    Ok(alert.map(|alert| LowBalanceAlertOut {
        wallet_id: wallet.to_string(),
        thresholds: alert.thresholds().to_vec(),
    }))
}
