//! The HTTP dialects the server speaks. Each one is a `router()` over the shared
//! state: the native API under `/v1`, and later others beside it.

pub mod icrtouch;
pub mod native;
pub mod talkdesk;
pub mod tmf;
pub mod topdesk;
