//! The ICRTouch TouchTopUp dialect: users, accounts, payments and wallets under
//! [`MOUNT`], with `/name/value` path parameters ([`params`]), JSON or XML ([`xml`]).
//!
//! How TouchTopUp maps onto prepaid:
//!
//! - A prepaid tenant is one TouchTopUp deployment. Its companies (`coid`) are records
//!   with a name, a `db` label and a currency with its scale (`GBP`/2); customers
//!   (`custid`) of a company are prepaid customers `<coid>.<custid>` whose main balance
//!   is the wallet of the same id in the company currency. Companies and customers are
//!   managed, and till sales recorded, through administration routes in the native
//!   API's shape (`/v1/icrtouch/...`, see [`admin`]). The record layout is in [`model`].
//! - The API key travels in `X-API-KEY` and is a prepaid API key of the tenant. A key
//!   is tenant-wide (a portal serving every company) unless a `icrtouch.key` record
//!   limits it to one company; naming another company is then status 0 with HTTP 403.
//!   Customer-restricted keys are refused. GET routes need the read scope, POST routes
//!   (and `user_forgot_password`, which writes) the write scope.
//! - Transactions are the mutations of a main wallet, numbered per tenant (`HEADERID`)
//!   on first sight; a till sale's items are kept in a record keyed by its debit.
//!   Payments are its top-ups, with `PAYMENTSOURCE` and `TRANSACTIONID` in the credit's
//!   reference ([`model::payment_reference`]).
//! - `make_payment` starts a payment with the configured provider
//!   ([`DialectState::payments`], see [`payments`]) and keeps what it started as a record keyed by
//!   the provider's token; `record_payment` finishes it and credits the customer with
//!   the idempotency key `icrtouch-payment:<token>`, so a token credits exactly once
//!   and a repeat answers the same `payment_id`.
//! - A company wallet is a record; each assigned customer has a ledger wallet
//!   `<coid>.<custid>.w<wallet>` with no floor, so that charges (debits) take its
//!   balance below zero by what is owed. An event wallet without overpay has the ledger
//!   ceiling 0: the core refuses a payment beyond the charges. Revoking a charge is a
//!   compensating credit, never a deletion.
//! - Every answer has `status` 1 or 0 and, on 0, a `msg` saying what is wrong
//!   ([`errors`]); a refused request changes nothing.
//!
//! Methods are routed as `/<controller>/<method>` and `/<controller>/<method>/<pairs>`;
//! an unknown method is status 0 with HTTP 404, a wrong HTTP method HTTP 405.
//! Secret parameters in paths (every name of [`params::SECRETS`]: passwords, reset
//! codes, link keys, payment tokens) are redacted before the path reaches a log
//! ([`params::redact_path`]).

pub mod accounts;
pub mod admin;
pub mod checkout;
pub mod ctx;
pub mod errors;
pub mod model;
pub mod params;
pub mod payments;
pub mod secrets;
pub mod types;
pub mod users;
pub mod wallets;
pub mod xml;

/// What the TouchTopUp dialect keeps beside the shared state: its payment provider and
/// the failed-login throttle of this instance. Made at assembly and handed to
/// [`router`] and [`checkout::run`]; the shared state knows nothing of it.
pub struct DialectState {
    /// The payment provider `make_payment` and `record_payment` use.
    pub payments: std::sync::Arc<dyn payments::PaymentProvider>,
    /// Failed logins, reset codes and link-key checks of this instance.
    pub login_throttle: secrets::LoginThrottle,
}

impl DialectState {
    /// The dialect's state with the configured payment provider, whose test provider
    /// keeps its payments as records of the operator tenant.
    pub fn new(
        provider: &payments::PaymentProviderConfig,
        store: std::sync::Arc<dyn prepaid_store::Store>,
        clock: std::sync::Arc<dyn prepaid_store::Clock>,
        operator: prepaid_ledger::TenantId,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            payments: payments::build(provider, store, clock, operator)?,
            login_throttle: secrets::LoginThrottle::default(),
        })
    }
}

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::MethodRouter;
use ctx::Ctx;
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Read, Write};
use std::sync::Arc;

/// What TouchTopUp's handlers run over: the shared state and the dialect's own.
#[derive(Clone)]
pub struct HandlerState {
    pub app: SharedState,
    pub own: Arc<DialectState>,
}

impl FromRef<HandlerState> for SharedState {
    fn from_ref(state: &HandlerState) -> Self {
        state.app.clone()
    }
}

/// TouchTopUp's base path.
pub const MOUNT: &str = "/index.php";

/// Builds `methods()`, the methods of the document, from one table: each row is a
/// path, the function answering it, the scope its key needs and the HTTP methods it
/// takes. A row becomes a handler over a [`Ctx`] of that scope that answers in the
/// request's format.
macro_rules! methods {
    ($($path:literal => $f:path, $role:ty, $($verb:ident)+;)+) => {
        /// Every method of the document: its path and the HTTP methods it takes.
        fn methods() -> Vec<(&'static str, MethodRouter<HandlerState>)> {
            vec![$(($path, {
                async fn handle(State(state): State<SharedState>, ctx: Ctx<$role>) -> Response {
                    let result = $f(&state, &ctx).await;
                    ctx.reply(result)
                }
                MethodRouter::new()$(.$verb(handle))+
            })),+]
        }

        /// Every method of the dialect as the router serves it, for tests that walk
        /// them all (a new row is covered without editing them).
        pub fn route_table() -> Vec<Route> {
            vec![$(Route {
                path: $path,
                scope: <$role as prepaid_edge::auth::Role>::SCOPE.as_str(),
                verbs: &[$(stringify!($verb)),+],
            }),+]
        }
    };
}

/// One method of the dialect: its path under [`MOUNT`], the scope its key needs
/// (`read` or `write`) and the HTTP methods it takes (`get`, `post`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub path: &'static str,
    pub scope: &'static str,
    pub verbs: &'static [&'static str],
}

methods! {
    "/accounts/auth_user" => users::auth_user, Read, get post;
    "/accounts/company_details" => accounts::company_details, Read, get;
    "/accounts/customer_details" => accounts::customer_details, Read, get;
    "/accounts/customer_balance" => accounts::customer_balance, Read, get;
    "/accounts/payment_history" => accounts::payment_history, Read, get;
    "/accounts/transaction_history" => accounts::transaction_history, Read, get;
    "/accounts/transaction_detail" => accounts::transaction_detail, Read, get;
    "/accounts/make_payment" => checkout::make_payment, Write, get post;
    "/accounts/record_payment" => checkout::record_payment, Write, post;
    "/accounts/validate_accountkey" => accounts::validate_accountkey, Read, get;
    "/users/user_create" => users::user_create, Write, post;
    "/users/user_details" => users::user_details, Read, get;
    "/users/user_change_password" => users::user_change_password, Write, post;
    "/users/user_forgot_password" => users::user_forgot_password, Write, get;
    "/users/user_check_email_exists" => users::user_check_email_exists, Read, get;
    "/users/user_check_reset_code" => users::user_check_reset_code, Read, get;
    "/users/user_link_account" => users::user_link_account, Write, post;
    "/wallets/customer_wallets" => wallets::customer_wallets, Read, get;
    "/wallets/customer_wallet_details" => wallets::customer_wallet_details, Read, get;
    "/wallets/wallet_list" => wallets::wallet_list, Read, get;
    "/wallets/wallet_create" => wallets::wallet_create, Write, post;
    "/wallets/wallet_update" => wallets::wallet_update, Write, post;
    "/wallets/wallet_customers_assigned" => wallets::wallet_customers_assigned, Read, get;
    "/wallets/wallet_add_charge" => wallets::wallet_add_charge, Write, post;
    "/wallets/wallet_revoke_charge" => wallets::wallet_revoke_charge, Write, post;
    "/wallets/wallet_revoke_charge_from_all" =>
        wallets::wallet_revoke_charge_from_all, Write, post;
    "/wallets/wallet_add_customer" => wallets::wallet_add_customer, Write, post;
    "/wallets/wallet_remove_customer" => wallets::wallet_remove_customer, Write, post;
}

/// The routes of the dialect over `app` and the dialect's own state, to be nested at
/// [`MOUNT`].
pub fn router<S>(app: SharedState, own: Arc<DialectState>) -> Router<S> {
    let mut router = Router::new();
    for (path, method) in methods() {
        router = router
            .route(path, method.clone())
            .route(&format!("{path}/{{*params}}"), method);
    }
    router
        .fallback(ctx::unknown)
        .method_not_allowed_fallback(ctx::wrong_method)
        .with_state(HandlerState { app, own })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_is_what_the_router_serves() {
        let routed: Vec<&str> = methods().iter().map(|(p, _)| *p).collect();
        let table: Vec<&str> = route_table().iter().map(|r| r.path).collect();
        assert_eq!(routed, table);
        assert!(route_table().iter().all(|r| !r.verbs.is_empty()));
    }

    #[test]
    fn every_method_of_the_document_is_routed() {
        let routed: Vec<&str> = methods().iter().map(|(p, _)| *p).collect();
        for name in [
            "accounts/auth_user",
            "accounts/company_details",
            "accounts/customer_details",
            "accounts/customer_balance",
            "accounts/payment_history",
            "accounts/transaction_history",
            "accounts/transaction_detail",
            "accounts/make_payment",
            "accounts/record_payment",
            "accounts/validate_accountkey",
            "users/user_create",
            "users/user_details",
            "users/user_change_password",
            "users/user_forgot_password",
            "users/user_check_email_exists",
            "users/user_check_reset_code",
            "users/user_link_account",
            "wallets/customer_wallets",
            "wallets/customer_wallet_details",
            "wallets/wallet_list",
            "wallets/wallet_create",
            "wallets/wallet_update",
            "wallets/wallet_customers_assigned",
            "wallets/wallet_add_charge",
            "wallets/wallet_revoke_charge",
            "wallets/wallet_revoke_charge_from_all",
            "wallets/wallet_add_customer",
            "wallets/wallet_remove_customer",
        ] {
            assert!(routed.contains(&format!("/{name}").as_str()), "{name}");
        }
    }
}
