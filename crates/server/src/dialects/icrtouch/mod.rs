//! The ICRTouch TouchTopUp dialect: users, accounts, payments and wallets under
//! [`MOUNT`], with `/name/value` path parameters, JSON or XML.

use crate::SharedState;
use axum::Router;

/// TouchTopUp's base path.
pub const MOUNT: &str = "/index.php";

/// The routes of the dialect, to be nested at [`MOUNT`].
pub fn router() -> Router<SharedState> {
    Router::new()
}
