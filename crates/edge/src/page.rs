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
use prepaid_ledger::Metadata;
use prepaid_store::{METADATA_FILTERS_MAX, MetadataFilter};
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
    /// `metadata[<key>]=<value>`, each pair of which a listed row must carry (the lists
    /// of mutations and wallets read it).
    pub metadata: MetadataFilter,
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

/// The metadata filter of a query's pairs: every `metadata[<key>]=<value>`, at most
/// [`METADATA_FILTERS_MAX`], each key once.
fn metadata_filter(pairs: &[(String, String)]) -> Result<MetadataFilter, Failure> {
    let filters = pairs.iter().filter_map(|(name, value)| {
        let key = name.strip_prefix("metadata[")?.strip_suffix(']')?;
        Some((key, value.as_str()))
    });
    let count = filters.clone().count();
    if count > METADATA_FILTERS_MAX {
        return Err(Failure::invalid_field(
            "metadata",
            format_args!("at most {METADATA_FILTERS_MAX} filters, got {count}"),
        ));
    }
    let metadata = Metadata::new(filters).map_err(|e| match e.key() {
        Some(key) => Failure::invalid_field(&format!("metadata[{key}]"), &e),
        None => Failure::invalid_field("metadata", &e),
    })?;
    Ok(MetadataFilter::new(metadata).expect("the filters were counted"))
}

/// Parses `limit`, `after`, `customer_id` and `metadata[<key>]` from the query string
/// of `uri`.
pub fn parse_query(uri: &Uri) -> Result<ListQuery, Failure> {
    // axum's `Query` would turn bytes that are not UTF-8 into U+FFFD.
    let pairs = crate::form::pairs(uri.query().unwrap_or_default())
        .map_err(|e| Failure::invalid_field(e.name(), crate::form::NOT_UTF8))?;
    let metadata = metadata_filter(&pairs)?;
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
        metadata,
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
    fn metadata_filters_are_pairs_of_valid_metadata() {
        let query = q("metadata[order]=A-17&metadata%5Bdesk%5D=caf%C3%A9&limit=5").unwrap();
        let pairs: Vec<_> = query.metadata.iter().collect();
        assert_eq!(pairs, [("desk", "café"), ("order", "A-17")]);
        assert!(q("").unwrap().metadata.is_empty());
        let at: String = (0..METADATA_FILTERS_MAX)
            .map(|i| format!("metadata[k{i}]=v&"))
            .collect();
        assert_eq!(q(&at).unwrap().metadata.iter().len(), METADATA_FILTERS_MAX);
        let p = q(&format!("{at}metadata[x]=y")).unwrap_err();
        assert!(p.detail.starts_with("metadata: at most"), "{}", p.detail);
        let p = q("metadata[a]=1&metadata[a]=2").unwrap_err();
        assert!(p.detail.starts_with("metadata[a]:"), "{}", p.detail);
        let p = q("metadata[a%3Db]=1").unwrap_err();
        assert!(
            p.detail.starts_with("metadata: a key must be"),
            "{}",
            p.detail
        );
        let p = q(&format!("metadata[k]={}", "v".repeat(501))).unwrap_err();
        assert!(
            p.detail.starts_with("metadata[k]: must be at most"),
            "{}",
            p.detail
        );
        let p = q("metadata[k]=%FF").unwrap_err();
        assert!(p.detail.starts_with("metadata[k]:"), "{}", p.detail);
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
