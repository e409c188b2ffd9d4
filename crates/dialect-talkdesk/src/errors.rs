//! Talkdesk's error shape, `{code, message, description?, fields: [{name, description}]}`,
//! and the codes this dialect answers with.
//!
//! Talkdesk's codes are strings of digits. Ours are seven digits: the HTTP status, then
//! a three-digit serial within it, so a client can group them by their first three
//! digits:
//!
//! | code | status | when |
//! |---|---|---|
//! | `4000001` | 400 | `filter` does not parse or names an unknown field (the position is in `description`) |
//! | `4000002` | 400 | a bad query parameter: `page`, `per_page`, `account_id`, one given twice, a query string too long or malformed |
//! | `4010001` | 401 | no bearer token, a token that is not a bearer token, or an unknown one |
//! | `4030001` | 403 | the token lacks the `account-wallets:read` scope |
//! | `4040001` | 404 | no such wallet in the caller's account (or not a credit wallet) |
//! | `4040002` | 404 | no such resource under `/account` |
//! | `4050001` | 405 | a method other than `GET` |
//! | `5000001` | 500 | a bug; details are logged, never sent |
//! | `5030001` | 503 | the store cannot be reached, or the server is shutting down |
//!
//! `fields` is always present (empty when no parameter is to blame), as the document
//! requires. This dialect only reads, so no ledger refusal ever reaches it: its errors
//! come from parsing the request, from authentication and from the store.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prepaid_edge::failure::Failure;
use serde::Serialize;
use std::borrow::Cow;

/// The scope a Talkdesk client's token must carry, as Talkdesk names it.
pub const SCOPE: &str = "account-wallets:read";

pub const CODE_INVALID_FILTER: &str = "4000001";
pub const CODE_INVALID_PARAMETER: &str = "4000002";
pub const CODE_UNAUTHORIZED: &str = "4010001";
pub const CODE_FORBIDDEN: &str = "4030001";
pub const CODE_WALLET_NOT_FOUND: &str = "4040001";
pub const CODE_NOT_FOUND: &str = "4040002";
pub const CODE_METHOD_NOT_ALLOWED: &str = "4050001";
pub const CODE_INTERNAL: &str = "5000001";
pub const CODE_UNAVAILABLE: &str = "5030001";

/// One parameter to blame for an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub name: Cow<'static, str>,
    pub description: String,
}

/// What a bearer challenge says on a 401 or 403 (RFC 6750, section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// No credentials came: the challenge names no error.
    Missing,
    /// Credentials came but are not a known bearer token.
    InvalidToken,
    /// The token is known but lacks [`SCOPE`].
    InsufficientScope,
}

/// An error answer in Talkdesk's shape.
#[derive(Clone, Debug, Serialize)]
pub struct TalkdeskError {
    #[serde(skip)]
    pub status: StatusCode,
    #[serde(skip)]
    pub challenge: Option<Challenge>,
    pub code: &'static str,
    pub message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub fields: Vec<FieldError>,
}

impl TalkdeskError {
    pub fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            challenge: None,
            code,
            message,
            description: None,
            fields: Vec::new(),
        }
    }

    #[must_use]
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    #[must_use]
    pub fn field(mut self, name: impl Into<Cow<'static, str>>, why: impl Into<String>) -> Self {
        self.fields.push(FieldError {
            name: name.into(),
            description: why.into(),
        });
        self
    }

    /// A `filter` that does not parse or bind; `description` says where and why.
    pub fn invalid_filter(description: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            CODE_INVALID_FILTER,
            "Invalid filter",
        )
        .describe(description.clone())
        .field("filter", description)
    }

    /// A bad value of the query parameter `name`.
    pub fn invalid_parameter(name: &'static str, why: impl Into<String>) -> Self {
        let why = why.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            CODE_INVALID_PARAMETER,
            "Invalid query parameter",
        )
        .describe(format!("{name}: {why}"))
        .field(name, why)
    }

    /// A list asked with a key of the whole tenant that does not name the account.
    pub fn account_required() -> Self {
        Self::invalid_parameter(
            "account_id",
            "is required with a key that is not restricted to one account",
        )
    }

    /// A query string that cannot be read at all; no single parameter is to blame.
    pub fn invalid_query(why: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            CODE_INVALID_PARAMETER,
            "Invalid query parameter",
        )
        .describe(why)
    }

    pub fn unauthorized(challenge: Challenge, why: impl Into<String>) -> Self {
        let mut e =
            Self::new(StatusCode::UNAUTHORIZED, CODE_UNAUTHORIZED, "Unauthorized").describe(why);
        e.challenge = Some(challenge);
        e
    }

    pub fn forbidden() -> Self {
        let mut e =
            Self::new(StatusCode::FORBIDDEN, CODE_FORBIDDEN, "Forbidden").describe(format!(
                "the token lacks the {SCOPE} scope (a key with the read, write or admin scope)"
            ));
        e.challenge = Some(Challenge::InsufficientScope);
        e
    }

    pub fn wallet_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            CODE_WALLET_NOT_FOUND,
            "Wallet not found",
        )
        .describe("no such wallet in this account")
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, CODE_NOT_FOUND, "Not found").describe("no such resource")
    }

    pub fn method_not_allowed(method: &axum::http::Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            CODE_METHOD_NOT_ALLOWED,
            "Method not allowed",
        )
        .describe(format!("{method} is not allowed on this resource"))
    }

    /// A bug; the caller has logged what happened.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            CODE_INTERNAL,
            "Internal error",
        )
        .describe("an internal error occurred; it has been logged")
    }

    /// A failure of the shared layer (authentication, the store),
    /// in this shape. The problem's detail was written for clients (internals go to the
    /// log only), so it may travel on as the description.
    pub fn from_failure(p: &Failure) -> Self {
        let detail = p.detail.to_string();
        match p.status {
            StatusCode::UNAUTHORIZED => Self::unauthorized(Challenge::InvalidToken, detail),
            StatusCode::FORBIDDEN => Self::forbidden(),
            StatusCode::SERVICE_UNAVAILABLE => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                CODE_UNAVAILABLE,
                "Service unavailable",
            )
            .describe(detail),
            StatusCode::NOT_FOUND => Self::not_found(),
            _ => Self::internal(),
        }
    }
}

impl From<Failure> for TalkdeskError {
    fn from(p: Failure) -> Self {
        Self::from_failure(&p)
    }
}

impl Challenge {
    fn header(self) -> String {
        let realm = "Bearer realm=\"prepaid\"";
        match self {
            Challenge::Missing => format!("{realm}, scope=\"{SCOPE}\""),
            Challenge::InvalidToken => format!("{realm}, error=\"invalid_token\""),
            Challenge::InsufficientScope => {
                format!("{realm}, error=\"insufficient_scope\", scope=\"{SCOPE}\"")
            }
        }
    }
}

impl IntoResponse for TalkdeskError {
    fn into_response(self) -> Response {
        // Every member is a string or a list of strings: serialising cannot fail.
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(challenge) = self.challenge
            && let Ok(value) = HeaderValue::from_str(&challenge.header())
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_shape_is_talkdesks() {
        let e = TalkdeskError::invalid_parameter("per_page", "must be an integer from 1 to 100");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"code": "4000002", "message": "Invalid query parameter",
                "description": "per_page: must be an integer from 1 to 100",
                "fields": [{"name": "per_page", "description": "must be an integer from 1 to 100"}]})
        );
        // `description` is optional; `fields` is always there.
        let bare = TalkdeskError::new(StatusCode::BAD_REQUEST, CODE_INVALID_PARAMETER, "x");
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            json!({"code": "4000002", "message": "x", "fields": []})
        );
    }

    #[test]
    fn codes_start_with_their_status() {
        let cases = [
            TalkdeskError::invalid_filter("x".into()),
            TalkdeskError::invalid_parameter("page", "x"),
            TalkdeskError::invalid_query("x"),
            TalkdeskError::unauthorized(Challenge::Missing, "x"),
            TalkdeskError::forbidden(),
            TalkdeskError::wallet_not_found(),
            TalkdeskError::not_found(),
            TalkdeskError::method_not_allowed(&axum::http::Method::POST),
            TalkdeskError::internal(),
            TalkdeskError::from_failure(&Failure::internal()),
            TalkdeskError::from_failure(&Failure::unavailable("down")),
        ];
        for e in cases {
            assert_eq!(e.code.len(), 7, "{e:?}");
            assert!(e.code.starts_with(e.status.as_str()), "{e:?}");
        }
    }

    #[test]
    fn shared_problems_keep_their_status() {
        let e = TalkdeskError::from(Failure::unauthorized("unknown credentials"));
        assert_eq!((e.status.as_u16(), e.code), (401, CODE_UNAUTHORIZED));
        assert_eq!(e.description.as_deref(), Some("unknown credentials"));
        let e = TalkdeskError::from(Failure::internal());
        assert_eq!((e.status.as_u16(), e.code), (500, CODE_INTERNAL));
        let e = TalkdeskError::from(Failure::unavailable("the store cannot be reached"));
        assert_eq!((e.status.as_u16(), e.code), (503, CODE_UNAVAILABLE));
    }

    #[test]
    fn bearer_challenges_follow_rfc_6750() {
        let r = TalkdeskError::forbidden().into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"prepaid\", error=\"insufficient_scope\", scope=\"account-wallets:read\""
        );
        let r = TalkdeskError::unauthorized(Challenge::Missing, "no token").into_response();
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"prepaid\", scope=\"account-wallets:read\""
        );
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = TalkdeskError::wallet_not_found().into_response();
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
