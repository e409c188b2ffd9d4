//! RFC 9457 problem details: the one error shape of every JSON answer.
//!
//! A [`Problem`] carries a stable machine-readable `code`; its `type` is
//! `urn:prepaid:problem:<code>`. Extra members (`available`, `requested`,
//! `wallet_status`) are added only where the API document says so.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::borrow::Cow;

/// The media type of every error answer.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// A value of an extra member of a problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extra {
    Int(i64),
    Str(&'static str),
}

/// An error answer.
#[derive(Clone, Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: Cow<'static, str>,
    pub extras: Vec<(&'static str, Extra)>,
    /// Whether to offer Bearer and Basic in `WWW-Authenticate` (on 401).
    pub challenge: bool,
}

impl Problem {
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

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(5 + self.extras.len()))?;
        map.serialize_entry("type", &format_args!("urn:prepaid:problem:{}", self.code))?;
        map.serialize_entry("title", self.title)?;
        map.serialize_entry("status", &self.status.as_u16())?;
        map.serialize_entry("detail", &self.detail)?;
        map.serialize_entry("code", self.code)?;
        for (name, value) in &self.extras {
            match value {
                Extra::Int(v) => map.serialize_entry(name, v)?,
                Extra::Str(v) => map.serialize_entry(name, v)?,
            }
        }
        map.end()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        // Serialising a problem cannot fail: every member is a string or an integer.
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if self.challenge {
            let headers = response.headers_mut();
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"prepaid\""),
            );
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"prepaid\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// The answer to a path no route serves.
pub async fn not_found() -> Problem {
    Problem::not_found("not_found", "no such resource")
}

/// The answer to a method a route does not take.
pub async fn method_not_allowed(method: Method) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        format!("{method} is not allowed on this resource"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_has_type_code_and_extras() {
        let p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_funds",
            "Insufficient funds",
            "no",
        )
        .with("available", Extra::Int(300))
        .with("requested", Extra::Int(500));
        let v: serde_json::Value = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "urn:prepaid:problem:insufficient_funds",
                "title": "Insufficient funds", "status": 422, "detail": "no",
                "code": "insufficient_funds", "available": 300, "requested": 500})
        );
    }
}
