//! The TM Forum TMF654 v4 prepay balance management dialect, mounted twice over the same
//! data: as TM Forum's spec answers at [`MOUNT_TMF`], and as Oracle BRM's document shows
//! at [`MOUNT_BRM`].

pub mod amount;
pub mod errors;
pub mod hub;
mod jobs;
pub mod json;
pub mod list;
pub mod recurring;
pub mod resources;
pub mod types;
pub mod units;

use crate::SharedState;
use axum::routing::get;
use axum::{Extension, Router};
use resources as r;
use types::Flavour;

/// TM Forum's base path.
pub const MOUNT_TMF: &str = "/tmf-api/prepayBalanceManagement/v4";
/// Oracle BRM's base path.
pub const MOUNT_BRM: &str = "/brm/prepayBalanceManagement/v4";

/// The routes of the TM Forum flavour, to be nested at [`MOUNT_TMF`].
pub fn router_tmf() -> Router<SharedState> {
    Router::new()
        .merge(hub::routes())
        .merge(routes(Flavour::Tmf))
        .fallback(not_found)
}

/// The routes of the Oracle BRM flavour, to be nested at [`MOUNT_BRM`].
pub fn router_brm() -> Router<SharedState> {
    Router::new()
        .merge(hub::routes())
        .merge(routes(Flavour::Brm))
        .fallback(not_found)
}

/// Every resource but `hub`, answering as `flavour`.
fn routes(flavour: Flavour) -> Router<SharedState> {
    Router::new()
        .route("/bucket", get(r::list_buckets).post(r::create_bucket))
        .route("/bucket/{id}", get(r::get_bucket))
        .route("/topupBalance", get(r::list_topups).post(r::create_topup))
        .route(
            "/topupBalance/{id}",
            get(r::get_topup)
                .patch(r::patch_topup)
                .delete(r::delete_topup),
        )
        .route(
            "/adjustBalance",
            get(r::list_adjusts).post(r::create_adjust),
        )
        .route(
            "/adjustBalance/{id}",
            get(r::get_adjust)
                .patch(r::patch_adjust)
                .delete(r::delete_adjust),
        )
        .route(
            "/transferBalance",
            get(r::list_transfers).post(r::create_transfer),
        )
        .route(
            "/transferBalance/{id}",
            get(r::get_transfer)
                .patch(r::patch_transfer)
                .delete(r::delete_transfer),
        )
        .route(
            "/reserveBalance",
            get(r::list_reserves).post(r::create_reserve),
        )
        .route(
            "/reserveBalance/{id}",
            get(r::get_reserve)
                .patch(r::patch_reserve)
                .delete(r::delete_reserve),
        )
        .route("/accumulatedBalance", get(r::list_accumulated))
        .route("/accumulatedBalance/{id}", get(r::get_accumulated))
        .route("/balanceActionHistory", get(r::list_history))
        .route("/balanceActionHistory/{id}", get(r::get_history))
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
