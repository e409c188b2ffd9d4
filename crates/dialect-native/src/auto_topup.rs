//! A wallet's automatic top-up rule: `PUT`, `GET` and `DELETE
//! /v1/wallets/{id}/auto-topup`. The rule is parsed into the ledger's
//! [`AutoTopUpRule`] (which bounds it) and set by one command; the answer shows the
//! rule and where its top-ups stand, as the store keeps them.

use crate::{Answer, ok, path_id, submit_records, visible_wallet, wallet_record};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use prepaid_edge::PathSegment;
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Caller, Read, Write};
use prepaid_edge::body::JsonBody;
use prepaid_edge::problem::Problem;
use prepaid_edge::time::WireTime;
use prepaid_ledger::{
    Amount, AutoTopUpFunding, AutoTopUpMethod, AutoTopUpRule, AutoTopUpState, Command, TenantId,
    WalletId,
};
use prepaid_store::auto_topup::{AUTO_TOPUP_KIND, decode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The back-off after a decline when the rule does not say (1 hour).
pub const DECLINE_BACKOFF_MS_DEFAULT: u64 = 3_600_000;
/// The burst guard when the rule does not say.
pub const PER_HOUR_MAX_DEFAULT: u32 = 4;

#[derive(Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MethodIn {
    /// Add `amount` each time.
    Fixed,
    /// Add what brings the balance to `target_balance`.
    Target,
}

#[derive(Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FundingIn {
    /// Charge the customer's saved method `payment_method`; credited as `paid`.
    Payment,
    /// Free credit; credited as `granted`.
    Granted,
}

/// A wallet's automatic top-up rule.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoTopUpIn {
    /// Minor units: a top-up starts when the wallet's available falls to or below it.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub threshold: i64,
    pub method: MethodIn,
    /// With `fixed`: minor units added each time.
    pub amount: Option<i64>,
    /// With `target`: the balance to top up to (above the threshold).
    pub target_balance: Option<i64>,
    pub funding: FundingIn,
    /// With `payment`: the provider's reference of the customer's saved method.
    pub payment_method: Option<String>,
    /// No new top-up for this long after a decline (default 1 hour, at most 7 days).
    #[schema(minimum = 0, maximum = 604_800_000)]
    pub decline_backoff_ms: Option<u64>,
    /// At most this many top-ups an hour (1 to 60, default 4).
    #[schema(minimum = 1, maximum = 60)]
    pub per_hour_max: Option<u32>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A wallet's automatic top-up rule and where its top-ups stand.
#[derive(Serialize, ToSchema)]
pub struct AutoTopUpOut {
    pub wallet_id: String,
    pub threshold: i64,
    pub method: MethodIn,
    pub amount: Option<i64>,
    pub target_balance: Option<i64>,
    pub funding: FundingIn,
    pub payment_method: Option<String>,
    pub decline_backoff_ms: u64,
    pub per_hour_max: u32,
    pub enabled: bool,
    /// How many top-ups the rule started.
    pub started: u64,
    /// Whether one is started and not yet settled.
    pub in_flight: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_declined_at: Option<WireTime>,
}

impl AutoTopUpOut {
    fn new(wallet: &WalletId, rule: &AutoTopUpRule, state: &AutoTopUpState) -> Self {
        let (method, amount, target_balance) = match rule.method() {
            AutoTopUpMethod::Fixed(a) => (MethodIn::Fixed, Some(a.get()), None),
            AutoTopUpMethod::Target(t) => (MethodIn::Target, None, Some(t.get())),
        };
        let (funding, payment_method) = match rule.funding() {
            AutoTopUpFunding::Payment { method_ref } => {
                (FundingIn::Payment, Some(method_ref.clone()))
            }
            AutoTopUpFunding::Granted => (FundingIn::Granted, None),
        };
        Self {
            wallet_id: wallet.as_str().to_owned(),
            threshold: rule.threshold(),
            method,
            amount,
            target_balance,
            funding,
            payment_method,
            decline_backoff_ms: rule.decline_backoff_ms(),
            per_hour_max: rule.per_hour_max(),
            enabled: rule.enabled(),
            started: state.started,
            in_flight: state.in_flight.is_some(),
            last_declined_at: state.declined_at.map(WireTime),
        }
    }
}

fn rule(v: AutoTopUpIn) -> Result<AutoTopUpRule, Problem> {
    let positive = |field: &str, value: Option<i64>| {
        let value = value.ok_or_else(|| Problem::invalid_field(field, "is required"))?;
        Amount::positive(value).map_err(|e| Problem::invalid_field(field, e))
    };
    let method = match v.method {
        MethodIn::Fixed => AutoTopUpMethod::Fixed(positive("amount", v.amount)?),
        MethodIn::Target => AutoTopUpMethod::Target(positive("target_balance", v.target_balance)?),
    };
    let funding = match (v.funding, v.payment_method) {
        (FundingIn::Payment, Some(method_ref)) => AutoTopUpFunding::Payment { method_ref },
        (FundingIn::Payment, None) => {
            return Err(Problem::invalid_field(
                "payment_method",
                "is required with payment",
            ));
        }
        (FundingIn::Granted, None) => AutoTopUpFunding::Granted,
        (FundingIn::Granted, Some(_)) => {
            return Err(Problem::invalid_field(
                "payment_method",
                "is only for payment",
            ));
        }
    };
    AutoTopUpRule::new(
        v.threshold,
        method,
        funding,
        v.decline_backoff_ms.unwrap_or(DECLINE_BACKOFF_MS_DEFAULT),
        v.per_hour_max.unwrap_or(PER_HOUR_MAX_DEFAULT),
        v.enabled.unwrap_or(true),
    )
    .map_err(|e| Problem::invalid_field(e.field(), e))
}

async fn current(
    state: &SharedState,
    tenant: &TenantId,
    wallet: &WalletId,
) -> Result<Option<AutoTopUpOut>, Problem> {
    let found = wallet_record(state, tenant, wallet, AUTO_TOPUP_KIND, WHAT, decode).await?;
    Ok(found.map(|(rule, st)| AutoTopUpOut::new(wallet, &rule, &st)))
}

/// What the log calls it.
const WHAT: &str = "an automatic top-up";

fn no_rule() -> Problem {
    Problem::not_found("auto_topup_not_found", "the wallet has no automatic top-up")
}

#[utoipa::path(put, path = "/v1/wallets/{id}/auto-topup", tag = "wallets",
    params(("id" = String, Path, description = "The wallet id")),
    request_body = AutoTopUpIn,
    responses((status = 200, body = AutoTopUpOut), (status = "4XX", body = crate::types::ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Sets the wallet's automatic top-up rule (replacing one keeps where its top-ups
/// stand); a wallet already at or below the threshold starts one at once.
pub(crate) async fn put_auto_topup(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
    body: JsonBody<AutoTopUpIn>,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let rule = rule(body.value)?;
    let command = Command::SetAutoTopUp {
        wallet: wallet.clone(),
        rule: Some(rule),
    };
    submit_records(&state, &caller, body.idempotency, command, WHAT).await?;
    let out = current(&state, &caller.tenant, &wallet)
        .await?
        .ok_or_else(no_rule)?;
    Ok(ok(&out))
}

#[utoipa::path(get, path = "/v1/wallets/{id}/auto-topup", tag = "wallets",
    params(("id" = String, Path, description = "The wallet id")),
    responses((status = 200, body = AutoTopUpOut), (status = "4XX", body = crate::types::ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// The wallet's automatic top-up rule and where its top-ups stand.
pub(crate) async fn get_auto_topup(
    State(state): State<SharedState>,
    caller: Caller<Read>,
    seg: PathSegment,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    visible_wallet(&state, &caller, &wallet).await?;
    let out = current(&state, &caller.tenant, &wallet)
        .await?
        .ok_or_else(no_rule)?;
    Ok(ok(&out))
}

#[utoipa::path(delete, path = "/v1/wallets/{id}/auto-topup", tag = "wallets",
    params(("id" = String, Path, description = "The wallet id")),
    responses((status = 204), (status = "4XX", body = crate::types::ProblemOut,
        content_type = "application/problem+json")),
    security(("bearer" = []), ("basic" = [])))]
/// Removes the wallet's automatic top-up rule (one in flight still settles).
pub(crate) async fn delete_auto_topup(
    State(state): State<SharedState>,
    caller: Caller<Write>,
    seg: PathSegment,
) -> Answer {
    let wallet: WalletId = path_id(&seg, "wallet_not_found")?;
    let command = Command::SetAutoTopUp { wallet, rule: None };
    submit_records(&state, &caller, None, command, WHAT).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
