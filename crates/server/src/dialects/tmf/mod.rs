//! The TM Forum TMF654 v4 prepay balance management dialect, mounted twice over the same
//! data: as TM Forum's spec answers at [`MOUNT_TMF`], and as Oracle BRM's document shows
//! at [`MOUNT_BRM`].

use crate::SharedState;
use axum::Router;

/// TM Forum's base path.
pub const MOUNT_TMF: &str = "/tmf-api/prepayBalanceManagement/v4";
/// Oracle BRM's base path.
pub const MOUNT_BRM: &str = "/brm/prepayBalanceManagement/v4";

/// The routes of the TM Forum flavour, to be nested at [`MOUNT_TMF`].
pub fn router_tmf() -> Router<SharedState> {
    Router::new()
}

/// The routes of the Oracle BRM flavour, to be nested at [`MOUNT_BRM`].
pub fn router_brm() -> Router<SharedState> {
    Router::new()
}
