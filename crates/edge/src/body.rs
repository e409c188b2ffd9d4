//! The JSON body extractor of mutating routes, with the request's idempotency key.
//!
//! Serde's errors become problems that name the field (`mutations[3].amount: invalid
//! type...`): unknown fields are `unknown_field`, everything else `invalid_request`. A
//! body that is not `application/json` is 415, one over the size limit 413.
//!
//! When the request carries an `Idempotency-Key`, its [`Fingerprint`] is the SHA-256 of
//! the method, the path and the canonical form of the JSON body (object keys sorted, no
//! whitespace), so two requests that differ only in key order or spacing are the same
//! request.

use crate::SharedState;
use crate::failure::Failure;
use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use prepaid_ledger::{Fingerprint, IdempotencyKey};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The request header that makes a mutating call safe to repeat.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The answer header set on a replayed answer.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// A parsed JSON body and the request's idempotency key with its fingerprint.
///
/// With `EMPTY_OK`, an empty body (with or without a content type) reads as `{}`.
pub struct JsonBody<T, const EMPTY_OK: bool = false> {
    pub value: T,
    pub idempotency: Option<(IdempotencyKey, Fingerprint)>,
}

/// Parses the `Idempotency-Key` header, if any.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, Failure> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Failure::invalid_field("Idempotency-Key header", "must be visible ASCII"))?;
    IdempotencyKey::parse(value)
        .map(Some)
        .map_err(|e| Failure::invalid_field("Idempotency-Key header", e))
}

/// Whether the content type is JSON (`application/json` or `application/*+json`, any
/// parameters).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Reads the whole body, refusing more than `limit` bytes (the router's
/// `DefaultBodyLimit` is set to the same limit; checking the declared length first
/// answers without reading anything).
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, Failure> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Failure::body_too_large(limit));
    }
    Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Failure::body_too_large(limit)
        } else {
            Failure::invalid_request(format!("the request body could not be read: {e}"))
        }
    })
}

/// Maps a serde error with its path to a problem naming the field.
pub fn serde_problem(prefix: &str, err: serde_path_to_error::Error<serde_json::Error>) -> Failure {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let field = match (prefix.is_empty(), path.as_str()) {
        (true, ".") => String::from("body"),
        (true, _) => path,
        (false, ".") => prefix.to_owned(),
        (false, _) => format!("{prefix}.{path}"),
    };
    problem_for(&field, &inner)
}

fn problem_for(field: &str, err: &serde_json::Error) -> Failure {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            Failure::invalid_request(format!("the body is not valid JSON: {err}"))
        }
        Category::Data => {
            let msg = strip_position(err);
            if msg.starts_with("unknown field") {
                Failure::unknown_field(format!("{field}: {msg}"))
            } else {
                Failure::invalid_request(format!("{field}: {msg}"))
            }
        }
    }
}

/// serde_json's message without its " at line L column C" suffix (useless for data
/// errors, whose field is named instead).
fn strip_position(err: &serde_json::Error) -> String {
    let msg = err.to_string();
    match msg.rfind(" at line ") {
        Some(at) if err.line() > 0 => msg[..at].to_owned(),
        _ => msg,
    }
}

/// Deserialises `bytes` as `T`, naming the failing field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| serde_problem("", e))?;
    de.end().map_err(|e| problem_for("body", &e))?;
    Ok(value)
}

/// Deserialises an already parsed JSON value as `T`; errors name the field below
/// `prefix` (e.g. `mutations[3]`).
pub fn from_value<T: DeserializeOwned>(prefix: &str, value: &Value) -> Result<T, Failure> {
    serde_path_to_error::deserialize(value).map_err(|e| serde_problem(prefix, e))
}

/// The fingerprint of a request with this method, path and JSON body.
pub fn fingerprint(method: &Method, path: &str, body: &Value) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    let mut canonical = Vec::with_capacity(256);
    write_canonical(&mut canonical, body);
    hasher.update(&canonical);
    Fingerprint(hasher.finalize().into())
}

/// Writes `value` as JSON with object keys sorted and no whitespace, whatever order the
/// map type keeps its keys in.
pub fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Serialising a string or a scalar into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, key);
                out.push(b':');
                write_canonical(out, &map[key]);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// The original path of the request (before any nesting stripped a prefix).
fn original_path(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().path(), |u| u.0.path())
        .to_owned()
}

impl<T, const EMPTY_OK: bool> FromRequest<SharedState> for JsonBody<T, EMPTY_OK>
where
    T: DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let key = idempotency_key(req.headers()).map_err(Problem::from)?;
        let method = req.method().clone();
        let path = original_path(&req);
        let json_type = is_json(req.headers());
        let bytes = read_body(req, state.body_bytes_max)
            .await
            .map_err(Problem::from)?;
        let bytes = if EMPTY_OK && bytes.iter().all(u8::is_ascii_whitespace) {
            Bytes::from_static(b"{}")
        } else if !json_type {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "the body must be application/json",
            ));
        } else {
            bytes
        };
        let value: T = parse_json(&bytes).map_err(Problem::from)?;
        let idempotency = match key {
            None => None,
            Some(key) => {
                // The body parsed as T, so it is valid JSON.
                let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    Problem::invalid_request(format!("the body is not valid JSON: {e}"))
                })?;
                Some((key, fingerprint(&method, &path, &json)))
            }
        };
        Ok(Self { value, idempotency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        amount: i64,
        kind: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        items: Vec<Item>,
    }

    #[test]
    fn errors_name_the_field() {
        let p = parse_json::<Outer>(
            br#"{"items": [{"amount": 1, "kind": "x"}, {"amount": "2", "kind": "y"}]}"#,
        )
        .unwrap_err();
        assert_eq!(p.code, "invalid_request");
        assert!(
            p.detail.starts_with("items[1].amount: invalid type"),
            "{}",
            p.detail
        );

        let p = parse_json::<Outer>(br#"{"items": [], "extra": 1}"#).unwrap_err();
        assert_eq!(p.code, "unknown_field");
        assert!(p.detail.contains("extra"), "{}", p.detail);

        let p = parse_json::<Outer>(br#"{"items": [}"#).unwrap_err();
        assert_eq!(p.code, "invalid_request");

        let p = parse_json::<Outer>(br#"{"items": []} x"#).unwrap_err();
        assert_eq!(p.code, "invalid_request");
    }

    #[test]
    fn fingerprints_ignore_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "s"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":"s","b":[1,{"x":1,"y":3}]}"#).unwrap();
        let p = "/v1/wallets/w/mutations";
        assert_eq!(
            fingerprint(&Method::POST, p, &a),
            fingerprint(&Method::POST, p, &b)
        );
        assert_ne!(
            fingerprint(&Method::POST, p, &a),
            fingerprint(&Method::POST, p, &c)
        );
        assert_ne!(
            fingerprint(&Method::POST, p, &a),
            fingerprint(&Method::PATCH, p, &a)
        );
        assert_ne!(
            fingerprint(&Method::POST, p, &a),
            fingerprint(&Method::POST, "/v1/wallets/v/mutations", &a)
        );
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&h));
    }
}
