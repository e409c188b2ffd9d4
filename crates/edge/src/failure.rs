//! The dialect-neutral failure of the shared edge: what authentication, body reading,
//! paging and the store or engine refuse with. It says what went wrong (a status, a
//! stable `code`, a title, a detail, extra values) and nothing of how to show it; each
//! dialect renders it in its own error shape (`From<Failure>`), the native API and
//! the administration routes of /v1 as an RFC 9457 [`crate::problem::Problem`].

use axum::http::StatusCode;
use std::borrow::Cow;

/// A value of an extra member of a failure (`available`, `requested`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extra {
    Int(i64),
    Str(&'static str),
}

/// A failure, before a dialect renders it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: Cow<'static, str>,
    pub extras: Vec<(&'static str, Extra)>,
    /// Whether to offer Bearer and Basic in `WWW-Authenticate` (on 401).
    pub challenge: bool,
}

impl Failure {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            extras: Vec::new(),
            challenge: false,
        }
    }

    #[must_use]
    pub fn with(mut self, name: &'static str, value: Extra) -> Self {
        self.extras.push((name, value));
        self
    }

    /// Malformed JSON, a wrong type or a bad value; `detail` names the field.
    pub fn invalid_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request",
            detail,
        )
    }

    /// A bad value of one named field.
    pub fn invalid_field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::invalid_request(format!("{field}: {why}"))
    }

    pub fn unknown_field(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unknown_field",
            "Unknown field",
            detail,
        )
    }

    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        let mut p = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        );
        p.challenge = true;
        p
    }

    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// A 404 with one of the `*_not_found` codes.
    pub fn not_found(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, "Not found", detail)
    }

    pub fn body_too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "Body too large",
            format!("the request body exceeds {limit_bytes} bytes"),
        )
    }

    pub fn unavailable(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// A bug. The caller logs the details; the client learns nothing about them.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "an internal error occurred; it has been logged",
        )
    }
}
