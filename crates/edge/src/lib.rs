//! The shared edge every dialect stands on: the state requests share, authentication,
//! the JSON and form bodies with idempotency, paging, times, route tables, the house
//! problem shape of `/v1` and its wire types, one way to submit an operation to the
//! engine, and the claiming loop of background workers.
//!
//! It knows no dialect: the server assembles the dialects over [`SharedState`], and a
//! dialect's own state (TouchTopUp's payment provider and throttle) lives with that
//! dialect.

pub mod auth;
pub mod auto_topup;
pub mod body;
pub mod failure;
pub mod form;
pub mod jobs;
pub mod origin;
pub mod page;
pub mod payments;
pub mod periodic;
pub mod problem;
pub mod refusals;
pub mod routes;
pub mod submit;
pub mod time;
pub mod wire;

use crate::auth::AuthCache;
use prepaid_ledger::TenantId;
use prepaid_store::{Clock, Engine, Store};
use std::sync::Arc;

/// The name of the admin key of a new tenant (and of the operator's first key).
pub const ADMIN_KEY_NAME: &str = "admin";

/// What every request handler shares.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub clock: Arc<dyn Clock>,
    pub auth: AuthCache,
    /// The operator's tenant, the only one whose admin key may create tenants.
    pub operator: TenantId,
    pub body_bytes_max: usize,
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;

use crate::failure::Failure;
use crate::problem::Problem;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prepaid_store::{EngineError, StoreError};
use serde::Serialize;

/// The problem for a store failure; `context` says what the server was doing, for the
/// log. Details never reach the client.
pub fn store_problem(err: &StoreError, context: &str) -> Failure {
    match err {
        StoreError::Unavailable { message: msg, .. } => {
            tracing::warn!(error = %msg, context, "store unavailable");
            Failure::unavailable("the store cannot be reached; try again later")
        }
        other => {
            tracing::error!(error = %other, context, "store failure");
            Failure::internal()
        }
    }
}

/// The problem for an engine failure.
pub fn engine_problem(err: &EngineError, context: &str) -> Failure {
    match err {
        EngineError::Store(e) => store_problem(e, context),
        EngineError::Stopped => {
            Failure::unavailable("the server is shutting down; try again later")
        }
        other => {
            tracing::error!(error = %other, context, "engine failure");
            Failure::internal()
        }
    }
}

/// A JSON answer with `status`, marked `Idempotent-Replayed: true` when it repeats an
/// earlier answer.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T, replayed: bool) -> Response {
    let body = match serde_json::to_vec(value) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "serialising an answer failed");
            return Problem::internal().into_response();
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        headers.insert(
            body::IDEMPOTENT_REPLAYED_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// A fresh server-chosen id: UUID v7, so ids sort by creation time.
pub fn new_uuid() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// The single `{id}` segment of a route's path, percent-decoded; a malformed one is
/// refused in the shape of `E`, the dialect's error type.
pub struct PathSegment<E = Problem>(pub String, std::marker::PhantomData<E>);

impl<S: Send + Sync, E> axum::extract::FromRequestParts<S> for PathSegment<E>
where
    E: From<Failure> + IntoResponse,
{
    type Rejection = E;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0, std::marker::PhantomData))
            .map_err(|e| Failure::invalid_request(format!("the path is malformed: {e}")).into())
    }
}
