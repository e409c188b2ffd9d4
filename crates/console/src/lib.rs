//! The web console under `/console`: pages for operators (customers, wallets, their
//! history, holds and grants, API keys, tenants) and for a customer's own key (its
//! wallets and their history alone).
//!
//! Pages are rendered on the server with `maud` and work without JavaScript: plain
//! links and forms. One small script of our own (`assets/console.js`) shows the times,
//! written in UTC in the HTML, in the browser's zone. Every asset is compiled into the
//! binary and served from `/console/assets/`, so a page loads nothing from elsewhere.
//!
//! A person signs in with an API key's name and secret; [`session`] keeps the session
//! in a signed cookie. What a page shows follows the key's scopes: a read key gets no
//! write forms (and its posts are refused), a key restricted to a customer gets that
//! customer's page and what hangs from it, and every other page is 404 to it.
//!
//! A form post is one change: [`forms`] checks the CSRF token, `Origin` and
//! `Sec-Fetch-Site`, and hands the handler the idempotency key the form was rendered
//! with, which goes to the engine with the command as one
//! [`prepaid_edge::submit::Operation`], exactly as the native API sends it. A form
//! posted twice (a double click, a reload) is answered from the first post.

mod actions;
mod chart;
mod csv;
pub mod forms;
mod pages;
pub mod session;
mod view;

use axum::Router;
use axum::extract::Extension;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Admin, Read, Write};
use prepaid_edge::failure::Failure;
use prepaid_edge::routes::Public;
use prepaid_store::StoreError;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Where the server nests [`router`].
pub const MOUNT: &str = "/console";
/// The rows of one page of a list (customers, wallets, mutations, holds, grants).
pub const CONSOLE_PAGE_SIZE: usize = 50;
/// The highest page number of a wallet's mutations that the console pages to.
pub const PAGE_NUMBER_MAX: u64 = 100_000;
/// The most customers one search of the customer list looks through (the store lists
/// customers by id; a search by name reads them page by page).
pub const CUSTOMER_SCAN_MAX: usize = 10_000;
/// The most mutations a wallet's chart shows: its newest ones (with the opening point
/// when the wallet has no more).
pub const CHART_POINTS_MAX: usize = 1000;
/// The most rows one CSV download holds.
pub const CSV_ROWS_MAX: usize = 100_000;

prepaid_edge::routes! {
    rows, pub route_table;
    "/" => get(pages::home): Read;
    "/sign-in" => get(pages::sign_in_form): Public, post(actions::sign_in): Public;
    "/sign-out" => post(actions::sign_out): Read;
    "/assets/console.css" => get(stylesheet): Public;
    "/assets/console.js" => get(script): Public;
    "/customers" => get(pages::customers): Read, post(actions::create_customer): Write;
    "/customers/{id}" => get(pages::customer): Read;
    "/customers/{id}/wallets" => post(actions::create_wallet): Write;
    "/wallets/{id}" => get(pages::wallet): Read;
    "/wallets/{id}/mutations" => post(actions::post_mutation): Write;
    "/wallets/{id}/mutations.csv" => get(csv::download): Read;
    "/wallets/{id}/holds" => post(actions::place_hold): Write;
    "/wallets/{id}/status" => post(actions::set_status): Write;
    "/holds/{id}/commit" => post(actions::commit_hold): Write;
    "/holds/{id}/release" => post(actions::release_hold): Write;
    "/api-keys" => get(pages::api_keys): Admin, post(actions::create_api_key): Admin;
    "/api-keys/{id}/revoke" => post(actions::revoke_api_key): Admin;
    "/tenants" => get(pages::tenants): Admin, post(actions::create_tenant): Admin;
}

/// The console's routes, to be nested at [`MOUNT`].
pub fn router() -> Router<SharedState> {
    prepaid_edge::routes::build(rows())
        .fallback(not_found)
        .layer(Extension(Arc::new(Keys::default())))
}

/// The console's server key, loaded once per process.
#[derive(Default)]
pub struct Keys {
    server: OnceCell<session::ServerKey>,
}

impl Keys {
    async fn server_key(&self, state: &SharedState) -> Result<&session::ServerKey, ConsoleError> {
        self.server
            .get_or_try_init(|| session::ServerKey::load(state))
            .await
    }
}

/// Why a console request is not answered with its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No valid session: the answer sends the browser to the sign-in page.
    SignIn,
    /// A page that does not exist, or that the session's key may not see.
    NotFound,
    /// A failure of the edge or a refusal, with its status and words.
    Failure(Failure),
}

impl ConsoleError {
    fn store(err: &StoreError, context: &str) -> Self {
        Self::Failure(prepaid_edge::store_problem(err, context))
    }

    fn internal() -> Self {
        Self::Failure(Failure::internal())
    }

    fn forbidden(detail: &'static str) -> Self {
        Self::Failure(Failure::forbidden(detail))
    }

    fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Self::Failure(Failure::invalid_field(field, why))
    }
}

impl From<Failure> for ConsoleError {
    fn from(f: Failure) -> Self {
        Self::Failure(f)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => {
                let mut response = StatusCode::SEE_OTHER.into_response();
                response.headers_mut().insert(
                    header::LOCATION,
                    HeaderValue::from_static("/console/sign-in"),
                );
                response
            }
            Self::NotFound => view::message_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page, or this key may not see it.",
            ),
            Self::Failure(f) => view::message_page(f.status, f.title, &f.detail),
        }
    }
}

async fn not_found() -> ConsoleError {
    ConsoleError::NotFound
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    )
}
