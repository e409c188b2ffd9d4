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

pub use crate::failure::{Extra, Failure};

/// An error answer of /v1: a [`Failure`] rendered as RFC 9457 problem details.
#[derive(Clone, Debug)]
pub struct Problem(pub Failure);

impl From<Failure> for Problem {
    fn from(failure: Failure) -> Self {
        Self(failure)
    }
}

impl std::ops::Deref for Problem {
    type Target = Failure;

    fn deref(&self) -> &Failure {
        &self.0
    }
}

/// The constructors of [`Failure`], for the handlers that answer in this shape.
impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self(Failure::new(status, code, title, detail))
    }

    pub fn with(self, name: &'static str, value: Extra) -> Self {
        Self(self.0.with(name, value))
    }

    pub fn invalid_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self(Failure::invalid_request(detail))
    }

    pub fn invalid_field(field: &str, why: impl std::fmt::Display) -> Self {
        Self(Failure::invalid_field(field, why))
    }

    pub fn unknown_field(detail: impl Into<Cow<'static, str>>) -> Self {
        Self(Failure::unknown_field(detail))
    }

    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        Self(Failure::unauthorized(detail))
    }

    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self(Failure::forbidden(detail))
    }

    pub fn not_found(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self(Failure::not_found(code, detail))
    }

    pub fn body_too_large(limit_bytes: usize) -> Self {
        Self(Failure::body_too_large(limit_bytes))
    }

    pub fn unavailable(detail: impl Into<Cow<'static, str>>) -> Self {
        Self(Failure::unavailable(detail))
    }

    pub fn internal() -> Self {
        Self(Failure::internal())
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
