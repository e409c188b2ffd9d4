//! The TM Forum TMF654 v4 prepay balance management dialect, mounted twice over the same
//! data: as TM Forum's spec answers at [`MOUNT_TMF`], and as Oracle BRM's document shows
//! at [`MOUNT_BRM`].

pub mod amount;
pub mod errors;
pub mod hub;
pub mod json;
pub mod list;
pub mod recurring;
pub mod resources;
pub mod types;
pub mod units;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use prepaid_edge::SharedState;
use prepaid_edge::auth::{Read, Write};
use resources as r;
use types::Flavour;

/// TM Forum's base path.
pub const MOUNT_TMF: &str = "/tmf-api/prepayBalanceManagement/v4";
/// Oracle BRM's base path.
pub const MOUNT_BRM: &str = "/brm/prepayBalanceManagement/v4";

/// The routes of the TM Forum flavour, to be nested at [`MOUNT_TMF`]. Its answers keep
/// to the statuses the official file lists for each operation ([`listed_status`]).
pub fn router_tmf() -> Router<SharedState> {
    Router::new()
        .merge(hub::routes())
        .merge(routes(Flavour::Tmf))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(listed_statuses))
}

/// The status the official TMF654 file lists for an error answer of `status` and `code`
/// to a request of `method`, where the file lists none for it: a refusal of a
/// well-formed request (422) is a conflict with the state of the ledger (409), or a
/// bad request (400) when the request itself could never succeed; a POST naming a
/// resource that does not exist (404), a body too large (413) or of another media type
/// (415) is a bad request. The error keeps its `code`. Every other status stands.
pub fn listed_status(method: &Method, status: StatusCode, code: &str) -> StatusCode {
    match status.as_u16() {
        422 if matches!(
            code,
            "unit_mismatch" | "same_bucket" | "commit_exceeds_reservation"
        ) =>
        {
            StatusCode::BAD_REQUEST
        }
        422 => StatusCode::CONFLICT,
        404 if *method == Method::POST => StatusCode::BAD_REQUEST,
        413 | 415 => StatusCode::BAD_REQUEST,
        _ => status,
    }
}

/// Rewrites an error answer whose status the file does not list (see
/// [`listed_status`]), in its status line and in the `status` member of its body.
async fn listed_statuses(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status();
    if !matches!(status.as_u16(), 404 | 413 | 415 | 422) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ERROR_BYTES_MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut error) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let code = error["code"].as_str().unwrap_or_default();
    let listed = listed_status(&method, status, code);
    if listed == status {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    error["status"] = serde_json::Value::String(listed.as_u16().to_string());
    parts.status = listed;
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(error.to_string()))
}

/// The largest error answer [`listed_statuses`] reads back, in bytes (they are well
/// under 1 KiB).
const ERROR_BYTES_MAX: usize = 64 * 1024;

/// The routes of the Oracle BRM flavour, to be nested at [`MOUNT_BRM`].
pub fn router_brm() -> Router<SharedState> {
    Router::new()
        .merge(hub::routes())
        .merge(routes(Flavour::Brm))
        .fallback(not_found)
}

prepaid_edge::routes! {
    rows, resource_table;
    "/bucket" => get(r::list_buckets): Read, post(r::create_bucket): Write;
    "/bucket/{id}" => get(r::get_bucket): Read;
    "/topupBalance" => get(r::list_topups): Read, post(r::create_topup): Write;
    "/topupBalance/{id}" =>
        get(r::get_topup): Read, patch(r::patch_topup): Write, delete(r::delete_topup): Write;
    "/adjustBalance" => get(r::list_adjusts): Read, post(r::create_adjust): Write;
    "/adjustBalance/{id}" =>
        get(r::get_adjust): Read, patch(r::patch_adjust): Write, delete(r::delete_adjust): Write;
    "/transferBalance" => get(r::list_transfers): Read, post(r::create_transfer): Write;
    "/transferBalance/{id}" => get(r::get_transfer): Read,
        patch(r::patch_transfer): Write, delete(r::delete_transfer): Write;
    "/reserveBalance" => get(r::list_reserves): Read, post(r::create_reserve): Write;
    "/reserveBalance/{id}" => get(r::get_reserve): Read,
        patch(r::patch_reserve): Write, delete(r::delete_reserve): Write;
    "/accumulatedBalance" => get(r::list_accumulated): Read;
    "/accumulatedBalance/{id}" => get(r::get_accumulated): Read;
    "/balanceActionHistory" => get(r::list_history): Read;
    "/balanceActionHistory/{id}" => get(r::get_history): Read;
}

/// Every (HTTP method, path) of either mount, `hub` included, with the scope its key
/// needs: what [`router_tmf`] and [`router_brm`] serve.
pub fn route_table() -> Vec<prepaid_edge::routes::Route> {
    let mut table = hub::route_table();
    table.extend(resource_table());
    table
}

/// Every resource but `hub`, answering as `flavour`.
fn routes(flavour: Flavour) -> Router<SharedState> {
    prepaid_edge::routes::build(rows())
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(flavour))
}

/// Any path under a mount that names no resource: 404 in the TMF error shape, not the
/// server's.
async fn not_found() -> errors::TmfError {
    errors::TmfError::not_found("resource_not_found", "resource")
}

async fn method_not_allowed() -> errors::TmfError {
    errors::TmfError::method_not_allowed()
}
