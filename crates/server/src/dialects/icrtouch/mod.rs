//! The ICRTouch TouchTopUp dialect: users, accounts, payments and wallets under
//! [`MOUNT`], with `/name/value` path parameters ([`params`]), JSON or XML ([`xml`]).
//!
//! How TouchTopUp maps onto prepaid:
//!
//! - A prepaid tenant is one TouchTopUp deployment. Its companies (`coid`) are records
//!   with a name, a `db` label and a currency with its scale (`GBP`/2); customers
//!   (`custid`) of a company are prepaid customers `<coid>.<custid>` whose main balance
//!   is the wallet of the same id in the company currency. Companies and customers are
//!   managed, and till sales recorded, through the native API (`/v1/icrtouch/...`,
//!   see `native::touchtopup`). The record layout is in [`model`].
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
//!   (`state.payments`, see [`payments`]) and keeps what it started as a record keyed by
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
//! Secret parameters in paths (`password`, `resetcode`, `linkkey`) are redacted before
//! the path reaches a log ([`params::redact_path`]).

pub mod accounts;
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

use crate::SharedState;
use crate::api::auth::{Read, Write};
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use ctx::Ctx;

/// TouchTopUp's base path.
pub const MOUNT: &str = "/index.php";

/// A handler over a [`Ctx`] of scope `$role`, answering in the request's format.
macro_rules! endpoint {
    ($name:ident, $role:ty, $f:path) => {
        async fn $name(State(state): State<SharedState>, ctx: Ctx<$role>) -> Response {
            let result = $f(&state, &ctx).await;
            ctx.reply(result)
        }
    };
}

endpoint!(auth_user, Read, users::auth_user);
endpoint!(company_details, Read, accounts::company_details);
endpoint!(customer_details, Read, accounts::customer_details);
endpoint!(customer_balance, Read, accounts::customer_balance);
endpoint!(payment_history, Read, accounts::payment_history);
endpoint!(transaction_history, Read, accounts::transaction_history);
endpoint!(transaction_detail, Read, accounts::transaction_detail);
endpoint!(make_payment, Write, checkout::make_payment);
endpoint!(record_payment, Write, checkout::record_payment);
endpoint!(validate_accountkey, Read, accounts::validate_accountkey);
endpoint!(user_create, Write, users::user_create);
endpoint!(user_details, Read, users::user_details);
endpoint!(user_change_password, Write, users::user_change_password);
endpoint!(user_forgot_password, Write, users::user_forgot_password);
endpoint!(
    user_check_email_exists,
    Read,
    users::user_check_email_exists
);
endpoint!(user_check_reset_code, Read, users::user_check_reset_code);
endpoint!(user_link_account, Write, users::user_link_account);
endpoint!(customer_wallets, Read, wallets::customer_wallets);
endpoint!(
    customer_wallet_details,
    Read,
    wallets::customer_wallet_details
);
endpoint!(wallet_list, Read, wallets::wallet_list);
endpoint!(wallet_create, Write, wallets::wallet_create);
endpoint!(wallet_update, Write, wallets::wallet_update);
endpoint!(
    wallet_customers_assigned,
    Read,
    wallets::wallet_customers_assigned
);
endpoint!(wallet_add_charge, Write, wallets::wallet_add_charge);
endpoint!(wallet_revoke_charge, Write, wallets::wallet_revoke_charge);
endpoint!(
    wallet_revoke_charge_from_all,
    Write,
    wallets::wallet_revoke_charge_from_all
);
endpoint!(wallet_add_customer, Write, wallets::wallet_add_customer);
endpoint!(
    wallet_remove_customer,
    Write,
    wallets::wallet_remove_customer
);

/// Every method of the document: its path and the HTTP methods it takes.
fn methods() -> Vec<(&'static str, MethodRouter<SharedState>)> {
    vec![
        ("/accounts/auth_user", get(auth_user).post(auth_user)),
        ("/accounts/company_details", get(company_details)),
        ("/accounts/customer_details", get(customer_details)),
        ("/accounts/customer_balance", get(customer_balance)),
        ("/accounts/payment_history", get(payment_history)),
        ("/accounts/transaction_history", get(transaction_history)),
        ("/accounts/transaction_detail", get(transaction_detail)),
        (
            "/accounts/make_payment",
            get(make_payment).post(make_payment),
        ),
        ("/accounts/record_payment", post(record_payment)),
        ("/accounts/validate_accountkey", get(validate_accountkey)),
        ("/users/user_create", post(user_create)),
        ("/users/user_details", get(user_details)),
        ("/users/user_change_password", post(user_change_password)),
        ("/users/user_forgot_password", get(user_forgot_password)),
        (
            "/users/user_check_email_exists",
            get(user_check_email_exists),
        ),
        ("/users/user_check_reset_code", get(user_check_reset_code)),
        ("/users/user_link_account", post(user_link_account)),
        ("/wallets/customer_wallets", get(customer_wallets)),
        (
            "/wallets/customer_wallet_details",
            get(customer_wallet_details),
        ),
        ("/wallets/wallet_list", get(wallet_list)),
        ("/wallets/wallet_create", post(wallet_create)),
        ("/wallets/wallet_update", post(wallet_update)),
        (
            "/wallets/wallet_customers_assigned",
            get(wallet_customers_assigned),
        ),
        ("/wallets/wallet_add_charge", post(wallet_add_charge)),
        ("/wallets/wallet_revoke_charge", post(wallet_revoke_charge)),
        (
            "/wallets/wallet_revoke_charge_from_all",
            post(wallet_revoke_charge_from_all),
        ),
        ("/wallets/wallet_add_customer", post(wallet_add_customer)),
        (
            "/wallets/wallet_remove_customer",
            post(wallet_remove_customer),
        ),
    ]
}

/// The routes of the dialect, to be nested at [`MOUNT`].
pub fn router() -> Router<SharedState> {
    let mut router = Router::new();
    for (path, method) in methods() {
        router = router
            .route(path, method.clone())
            .route(&format!("{path}/{{*params}}"), method);
    }
    router
        .fallback(ctx::unknown)
        .method_not_allowed_fallback(ctx::wrong_method)
}

#[cfg(test)]
mod tests {
    use super::*;

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
