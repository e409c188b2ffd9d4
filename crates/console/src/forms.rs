//! Form posts: what every post of the console checks before its handler runs.
//!
//! - **Cross-site.** A post whose `Sec-Fetch-Site` is neither `same-origin` nor `none`,
//!   or whose `Origin` is not the origin the client addressed (see
//!   [`prepaid_edge::origin`]), is refused with 403 before the body is read.
//! - **CSRF.** Every form carries the session's token in the hidden field
//!   [`CSRF_FIELD`]; a post without it, or with another, is refused with 403.
//! - **Idempotency.** Every form that changes something carries a key made when the
//!   form was rendered ([`IDEMPOTENCY_FIELD`]); it goes to the engine with a
//!   fingerprint of the post's path and fields, so a form posted twice changes
//!   things once and a key reused for another post is refused.

use crate::ConsoleError;
use crate::session::Session;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, header};
use prepaid_edge::SharedState;
use prepaid_edge::failure::Failure;
use prepaid_edge::origin::Origin;
use prepaid_ledger::{Fingerprint, IdempotencyKey};
use serde_json::{Map, Value};

/// The hidden field of the session's CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The hidden field of a form's idempotency key.
pub const IDEMPOTENCY_FIELD: &str = "idempotency_key";
/// The longest form body read, in bytes.
pub const FORM_BYTES_MAX: usize = 16 * 1024;

/// A new idempotency key for a form being rendered.
pub fn new_idempotency_key() -> String {
    format!("console-{}", uuid::Uuid::new_v4().simple())
}

/// Refuses a post that a browser says came from another site, or whose `Origin` is
/// not this server's as the client addressed it.
pub fn check_same_origin(parts: &Parts) -> Result<(), ConsoleError> {
    let headers = &parts.headers;
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        if site != "same-origin" && site != "none" {
            return Err(ConsoleError::forbidden(
                "a form of another site may not post to the console",
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ours = Origin::of(&parts.uri, headers).base();
        if ours.is_empty() || origin.as_bytes() != ours.as_bytes() {
            return Err(ConsoleError::forbidden(
                "a form of another origin may not post to the console",
            ));
        }
    }
    Ok(())
}

/// The fields of a posted form, in order.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The value of field `name`, empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether a checkbox `name` with `value` was ticked.
    pub fn has(&self, name: &str, value: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v == value)
    }

    /// The post's fingerprint: its path and its fields but the CSRF token and the
    /// idempotency key.
    fn fingerprint(&self, path: &str) -> Fingerprint {
        let mut map = Map::new();
        for (k, v) in &self.0 {
            if k != CSRF_FIELD && k != IDEMPOTENCY_FIELD {
                let joined = match map.get(k) {
                    Some(Value::String(before)) => format!("{before}\n{v}"),
                    _ => v.clone(),
                };
                map.insert(k.clone(), Value::String(joined));
            }
        }
        prepaid_edge::body::fingerprint(&Method::POST, path, &Value::Object(map))
    }
}

/// Reads the form body of a request after its headers were checked.
async fn read_fields(req: Request, state: &SharedState) -> Result<Fields, ConsoleError> {
    let limit = FORM_BYTES_MAX.min(state.body_bytes_max);
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ConsoleError::Failure(Failure::body_too_large(limit)))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ConsoleError::invalid("form", "is not UTF-8 text"))?;
    let pairs = prepaid_edge::form::pairs(text)
        .map_err(|e| ConsoleError::invalid(e.name(), prepaid_edge::form::NOT_UTF8))?;
    Ok(Fields(pairs))
}

/// A form posted by a signed-in person, its CSRF token checked.
pub struct Posted {
    pub session: Session,
    pub fields: Fields,
    /// The form's idempotency key with the post's fingerprint, when it carried one.
    pub idempotency: Option<(IdempotencyKey, Fingerprint)>,
}

impl FromRequest<SharedState> for Posted {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        check_same_origin(&parts)?;
        let session = Session::from_request_parts(&mut parts, state).await?;
        let path = parts.uri.path().to_owned();
        let fields = read_fields(Request::from_parts(parts, body), state).await?;
        if !session.csrf_matches(fields.get(CSRF_FIELD)) {
            return Err(ConsoleError::forbidden(
                "the form's CSRF token is missing or not this session's; reload the page",
            ));
        }
        let idempotency = match fields.get(IDEMPOTENCY_FIELD) {
            "" => None,
            key => Some((
                IdempotencyKey::parse(key)
                    .map_err(|e| ConsoleError::invalid(IDEMPOTENCY_FIELD, e))?,
                fields.fingerprint(&path),
            )),
        };
        Ok(Self {
            session,
            fields,
            idempotency,
        })
    }
}

/// The sign-in form: posted without a session, so only its origin is checked.
pub struct SignInPost {
    pub fields: Fields,
    pub origin: Origin,
}

impl FromRequest<SharedState> for SignInPost {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        check_same_origin(&parts)?;
        let origin = Origin::of(&parts.uri, &parts.headers);
        let fields = read_fields(Request::from_parts(parts, body), state).await?;
        Ok(Self { fields, origin })
    }
}
