//! List pagination: `?limit=` and `?after=<cursor>`.
//!
//! Cursors are opaque to clients: URL-safe base64 of the store's cursor (an id or a
//! sequence number), so that they never need escaping in a query string.

use crate::failure::Failure;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::Uri;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// The page size when `limit` is not given.
pub const PAGE_SIZE_DEFAULT: usize = 100;
/// The largest `limit` a client may ask for.
pub const PAGE_SIZE_MAX: usize = prepaid_store::PAGE_SIZE_MAX;
/// The longest cursor accepted, in bytes (a 64-byte id encodes to 86).
pub const CURSOR_LEN_MAX: usize = 128;

/// The query of a list call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    /// The decoded cursor.
    pub after: Option<String>,
    /// `customer_id=` (only `GET /v1/wallets` reads it).
    pub customer_id: Option<String>,
}

#[derive(Deserialize)]
struct RawQuery {
    limit: Option<String>,
    after: Option<String>,
    customer_id: Option<String>,
}

/// Encodes a store cursor for a client.
pub fn encode_cursor(raw: &str) -> String {
    URL_SAFE_NO_PAD.encode(raw.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, Failure> {
    let bad = || Failure::invalid_field("after", "not a cursor that this list gave out");
    if cursor.len() > CURSOR_LEN_MAX {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// Parses `limit`, `after` and `customer_id` from the query string of `uri`.
pub fn parse_query(uri: &Uri) -> Result<ListQuery, Failure> {
    // axum's `Query` would turn bytes that are not UTF-8 into U+FFFD.
    crate::form::pairs(uri.query().unwrap_or_default())
        .map_err(|e| Failure::invalid_field(e.name(), crate::form::NOT_UTF8))?;
    let raw: RawQuery = axum::extract::Query::<RawQuery>::try_from_uri(uri)
        .map_err(|e| Failure::invalid_request(format!("the query string is malformed: {e}")))?
        .0;
    let limit = match raw.limit.as_deref() {
        None => PAGE_SIZE_DEFAULT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=PAGE_SIZE_MAX).contains(&n) => n,
            _ => {
                return Err(Failure::invalid_field(
                    "limit",
                    format!("must be an integer from 1 to {PAGE_SIZE_MAX}"),
                ));
            }
        },
    };
    let after = raw.after.as_deref().map(decode_cursor).transpose()?;
    Ok(ListQuery {
        limit,
        after,
        customer_id: raw.customer_id,
    })
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(&parts.uri).map_err(Problem::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(query: &str) -> Result<ListQuery, Failure> {
        parse_query(&format!("/v1/customers?{query}").parse().unwrap())
    }

    #[test]
    fn limits_at_and_over_the_bound() {
        assert_eq!(q("").unwrap().limit, PAGE_SIZE_DEFAULT);
        assert_eq!(
            q(&format!("limit={PAGE_SIZE_MAX}")).unwrap().limit,
            PAGE_SIZE_MAX
        );
        let p = q(&format!("limit={}", PAGE_SIZE_MAX + 1)).unwrap_err();
        assert!(p.detail.starts_with("limit:"), "{}", p.detail);
        assert!(q("limit=0").is_err());
        assert!(q("limit=x").is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let id = "0.0.0.1+-balance_group+6336883+840+0";
        let query = q(&format!("after={}", encode_cursor(id))).unwrap();
        assert_eq!(query.after.as_deref(), Some(id));
        assert!(q("after=***").is_err());
        assert!(q(&format!("after={}", "A".repeat(CURSOR_LEN_MAX + 1))).is_err());
    }
}
