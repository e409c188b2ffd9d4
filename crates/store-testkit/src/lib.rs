//! What every store backend must pass, as a dev-dependency of the backends: the
//! conformance suite ([`conformance`], one test per case through
//! [`conformance_tests!`]) and the model-based test ([`model`], random operation
//! sequences against a naive model through [`model_tests!`]).
//!
//! It lives apart from `prepaid-store` so that the server and the store library never
//! build it: only the backends' tests do.

pub mod conformance;
pub mod model;
