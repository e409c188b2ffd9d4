//! TM Forum list parameters: `fields`, `offset`, `limit` and attribute filters, and the
//! `X-Total-Count` / `X-Result-Count` headers of a list answer.
//!
//! # Grammar of the query string
//!
//! ```text
//! query  = param , { "&" , param } ;
//! param  = "fields=" , path , { "," , path }
//!        | "offset=" , digits | "limit=" , digits
//!        | path , "=" , value ;                 (* an attribute filter *)
//! path   = name , { "." , name } ;              (* partyAccount.id, amount.units *)
//! ```
//!
//! - `fields` keeps only the named members (a dotted path keeps that part of an
//!   object); every other member is left out. An empty `fields=` names none and
//!   answers whole resources.
//! - `limit` is 1 to [`LIMIT_MAX`] (default [`LIMIT_DEFAULT`]); `offset` skips rows.
//! - A filter `path=value` keeps the resources whose member at `path` equals `value`:
//!   a number by its value (`amount.amount=3` matches `3.00`), anything else as text
//!   (`true`/`false`); a member that is an array
//!   matches when one of its elements does (`relatedParty.id=...`). `a=x,y` matches
//!   either value. Several filters must all match.
//! - At most [`FILTERS_MAX`] filters; each path at most [`PATH_LEN_MAX`] bytes.
//! - A name or value that is not UTF-8 once percent-decoded is refused (400
//!   `invalid_query`, naming the parameter), never read with U+FFFD in its place
//!   ([`prepaid_edge::form`]).

use super::errors::TmfError;
use super::json::{member_is, to_vec};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// The most resources one list answer holds.
pub const LIMIT_MAX: usize = 1000;
/// The page size when `limit` is absent.
pub const LIMIT_DEFAULT: usize = 100;
/// The most attribute filters one list takes.
pub const FILTERS_MAX: usize = 16;
/// The longest field path of `fields` or of a filter, in bytes.
pub const PATH_LEN_MAX: usize = 64;
/// The most resources a list with filters the store cannot run may look through;
/// past it the client is asked to narrow the list (by `partyAccount.id` or
/// `bucket.id`, which the store runs).
pub const SCAN_MAX: usize = 10_000;

/// A parsed list query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListParams {
    pub fields: Option<Vec<String>>,
    pub offset: u64,
    pub limit: usize,
    /// `(path, accepted values)`.
    pub filters: Vec<(String, Vec<String>)>,
}

fn is_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= PATH_LEN_MAX
        && p.split('.').all(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'@')
        })
}

impl ListParams {
    /// Reads the query string of `uri`.
    pub fn parse(uri: &Uri) -> Result<Self, TmfError> {
        // Strict: a name or value that is not UTF-8 is refused, not served as U+FFFD.
        let pairs = prepaid_edge::form::pairs(uri.query().unwrap_or("")).map_err(|e| {
            TmfError::query(format!("{}: {}", e.name(), prepaid_edge::form::NOT_UTF8))
        })?;
        let mut params = ListParams {
            limit: LIMIT_DEFAULT,
            ..ListParams::default()
        };
        let mut seen_offset = false;
        let mut seen_limit = false;
        for (name, value) in pairs {
            match name.as_str() {
                "fields" => {
                    let fields: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if let Some(bad) = fields.iter().find(|f| !is_path(f)) {
                        return Err(TmfError::query(format!("fields: {bad:?} is not a field")));
                    }
                    // An empty `fields=` selects nothing and asks for the whole resource.
                    if !fields.is_empty() {
                        params.fields.get_or_insert_with(Vec::new).extend(fields);
                    }
                }
                "offset" | "limit" => {
                    let seen = if name == "offset" {
                        &mut seen_offset
                    } else {
                        &mut seen_limit
                    };
                    if std::mem::replace(seen, true) {
                        return Err(TmfError::query(format!("{name} is given twice")));
                    }
                    let n: u64 = value.parse().map_err(|_| {
                        TmfError::query(format!("{name} must be a whole number, got {value:?}"))
                    })?;
                    if name == "offset" {
                        params.offset = n;
                    } else if (1..=LIMIT_MAX as u64).contains(&n) {
                        params.limit = n as usize;
                    } else {
                        return Err(TmfError::query(format!(
                            "limit must be from 1 to {LIMIT_MAX}, got {n}"
                        )));
                    }
                }
                path => {
                    if !is_path(path) {
                        return Err(TmfError::query(format!(
                            "{path:?} is not a field to filter by"
                        )));
                    }
                    if params.filters.len() == FILTERS_MAX {
                        return Err(TmfError::query(format!(
                            "at most {FILTERS_MAX} filters are allowed"
                        )));
                    }
                    let values = value.split(',').map(str::to_owned).collect();
                    params.filters.push((path.to_owned(), values));
                }
            }
        }
        Ok(params)
    }

    /// The single value of the filter on `path`, if there is exactly one such filter
    /// with one value (for filters the store runs itself).
    pub fn only(&self, path: &str) -> Option<&str> {
        let mut found = self.filters.iter().filter(|(p, _)| p == path);
        match (found.next(), found.next()) {
            (Some((_, values)), None) if values.len() == 1 => Some(values[0].as_str()),
            _ => None,
        }
    }

    /// Whether `resource` passes every filter.
    pub fn matches(&self, resource: &Value) -> bool {
        self.filters.iter().all(|(path, values)| {
            let names: Vec<&str> = path.split('.').collect();
            values.iter().any(|want| member_is(resource, &names, want))
        })
    }

    /// Whether some filter is on a path other than `handled`.
    pub fn filters_beyond(&self, handled: &[&str]) -> bool {
        self.filters
            .iter()
            .any(|(p, values)| !handled.contains(&p.as_str()) || values.len() != 1)
    }

    /// `resource` with only the members `fields` names (all of them without `fields`).
    pub fn select(&self, resource: Value) -> Value {
        let Some(fields) = &self.fields else {
            return resource;
        };
        let mut out = Value::Object(Map::new());
        for field in fields {
            let names: Vec<&str> = field.split('.').collect();
            copy_path(&resource, &mut out, &names);
        }
        out
    }

    /// The list answer of every resource that matched, held in memory: the page that
    /// `offset` and `limit` ask for, each cut to `fields`, counted out of all of them.
    pub fn answer_page(&self, matched: Vec<Value>) -> Response {
        let total = matched.len() as u64;
        let items = matched
            .into_iter()
            .skip(usize::try_from(self.offset).unwrap_or(usize::MAX))
            .take(self.limit)
            .map(|v| self.select(v))
            .collect();
        answer(items, total)
    }
}

fn copy_path(from: &Value, to: &mut Value, names: &[&str]) {
    let Some((first, rest)) = names.split_first() else {
        return;
    };
    let (Some(src), Value::Object(dst)) = (from.get(*first), to) else {
        return;
    };
    if rest.is_empty() || !src.is_object() {
        dst.insert((*first).to_owned(), src.clone());
        return;
    }
    let slot = dst
        .entry((*first).to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    copy_path(src, slot, rest);
}

/// A list answer: the page, `X-Total-Count` (all matching) and `X-Result-Count` (this
/// page).
pub fn answer(items: Vec<Value>, total: u64) -> Response {
    let count = items.len();
    let body = to_vec(&Value::Array(items));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    headers.insert("x-total-count", HeaderValue::from(total));
    headers.insert("x-result-count", HeaderValue::from(count as u64));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(q: &str) -> Result<ListParams, TmfError> {
        ListParams::parse(&format!("/x?{q}").parse().unwrap())
    }

    #[test]
    fn parameters_parse_at_their_limits() {
        let l =
            p("fields=id,amount.units&offset=5&limit=1000&status=completed&partyAccount.id=a,b")
                .unwrap();
        assert_eq!(l.offset, 5);
        assert_eq!(l.limit, LIMIT_MAX);
        assert_eq!(
            l.fields,
            Some(vec!["id".to_owned(), "amount.units".to_owned()])
        );
        assert_eq!(l.filters.len(), 2);
        assert_eq!(p("").unwrap().limit, LIMIT_DEFAULT);
        assert!(p("limit=1001").is_err());
        assert!(p("limit=0").is_err());
        assert!(p("offset=-1").is_err());
        assert!(p("limit=1&limit=2").is_err());
        assert!(p("fields=a..b").is_err());
        let many: Vec<String> = (0..FILTERS_MAX).map(|i| format!("f{i}=x")).collect();
        assert!(p(&many.join("&")).is_ok());
        assert!(p(&format!("{}&g=1", many.join("&"))).is_err());
        let long = "a".repeat(PATH_LEN_MAX);
        assert!(p(&format!("{long}=1")).is_ok());
        assert!(p(&format!("{long}a=1")).is_err());
    }

    #[test]
    fn filters_and_fields_apply() {
        let r = json!({"id": "1", "status": "completed", "amount": {"amount": 2, "units": "USD"},
            "relatedParty": [{"id": "p1"}, {"id": "p2"}], "isAutoTopup": false});
        assert!(p("status=completed").unwrap().matches(&r));
        assert!(!p("status=created").unwrap().matches(&r));
        assert!(p("amount.units=USD&amount.amount=2").unwrap().matches(&r));
        assert!(p("relatedParty.id=p2").unwrap().matches(&r));
        assert!(p("status=created,completed").unwrap().matches(&r));
        assert!(p("isAutoTopup=false").unwrap().matches(&r));
        assert!(!p("nope=1").unwrap().matches(&r));
        let s = p("fields=id,amount.units").unwrap().select(r);
        assert_eq!(s, json!({"id": "1", "amount": {"units": "USD"}}));
    }
}
