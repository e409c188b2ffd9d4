//! TM Forum list parameters: `fields`, `offset`, `limit` and attribute filters, and the
//! `X-Total-Count` / `X-Result-Count` headers of a list answer.
//!
//! # Grammar of the query string
//!
//! ```text
//! query  = param , { "&" , param } ;
//! param  = "fields=" , path , { "," , path }
//!        | "offset=" , digits | "limit=" , digits
//!        | path , [ "." , op ] , "=" , values ;  (* an attribute filter *)
//! values = value , { ( "," | ";" , path , [ "." , op ] , "=" ) , value } ;
//! path   = name , { "." , name } ;              (* partyAccount.id, amount.units *)
//! op     = "eq" | "ne" | "gt" | "gte" | "lt" | "lte" ;
//! ```
//!
//! - `fields` keeps only the named members (a dotted path keeps that part of an
//!   object); every other member is left out, except those TM Forum's file requires of
//!   the resource's type. An empty `fields=` names none and answers whole resources.
//! - `limit` is 1 to [`LIMIT_MAX`] (default [`LIMIT_DEFAULT`]); `offset` skips rows.
//! - A filter `path=value` keeps the resources whose member at `path` equals `value`:
//!   a number by its value (`amount.amount=3` matches `3.00`), anything else as text
//!   (`true`/`false`); a member that is an array
//!   matches when one of its elements does (`relatedParty.id=...`). `a=x,y` matches
//!   either value, and so do `a=x;a=y` and `a=x&a=y` (TMF630's alternatives); several
//!   filters on different paths must all match.
//! - TMF630's operators: `path.eq=v` is `path=v`; `path.ne=v` keeps resources whose
//!   member is none of the values; `.gt`, `.gte`, `.lt` and `.lte` compare numbers by
//!   value and date-times by instant, and take only a number or a date-time (anything
//!   else is 400). A member of another kind does not match an ordering. Anything the
//!   server does not support is a 400 `invalid_query`, never an empty list.
//! - At most [`FILTERS_MAX`] filters; each path at most [`PATH_LEN_MAX`] bytes.
//! - A name or value that is not UTF-8 once percent-decoded is refused (400
//!   `invalid_query`, naming the parameter), never read with U+FFFD in its place
//!   ([`prepaid_edge::form`]).

use super::errors::TmfError;
use super::json::{member_is, member_ordered, to_vec};
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

/// A TMF630 comparison of an attribute filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Op {
    fn named(name: &str) -> Option<Op> {
        Some(match name {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            _ => return None,
        })
    }

    fn orders(self) -> bool {
        matches!(self, Op::Gt | Op::Gte | Op::Lt | Op::Lte)
    }
}

/// One attribute filter: the member at `path` compared by `op` with any of `values`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub path: String,
    pub op: Op,
    pub values: Vec<String>,
}

/// A parsed list query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListParams {
    pub fields: Option<Vec<String>>,
    pub offset: u64,
    pub limit: usize,
    pub filters: Vec<Filter>,
}

/// A filter's path and operator from a parameter name (`amount.amount.gte`).
fn path_and_op(name: &str) -> Result<(&str, Op), TmfError> {
    let (path, op) = match name.rsplit_once('.') {
        Some((path, last)) => match Op::named(last) {
            Some(op) => (path, op),
            None => (name, Op::Eq),
        },
        None => (name, Op::Eq),
    };
    if !is_path(path) {
        return Err(TmfError::query(format!(
            "{name:?} is not a field to filter by"
        )));
    }
    Ok((path, op))
}

/// Whether `value` is something an ordering compares: a number or a date-time.
fn is_ordered(value: &str) -> bool {
    super::amount::canonical(value).is_some() || prepaid_edge::time::parse(value).is_ok()
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
                name => {
                    let (path, op) = path_and_op(name)?;
                    // `a=x;a=y`: alternatives of one attribute, TMF630's OR.
                    let mut values = Vec::new();
                    let mut parts = value.split(';');
                    values.extend(
                        parts
                            .next()
                            .unwrap_or_default()
                            .split(',')
                            .map(str::to_owned),
                    );
                    for part in parts {
                        match part.split_once('=') {
                            Some((again, more)) if again == name => {
                                values.extend(more.split(',').map(str::to_owned));
                            }
                            _ => {
                                return Err(TmfError::query(format!(
                                    "{name}: `;` joins alternatives of the same attribute \
                                     (`{name}=a;{name}=b`), not {part:?}"
                                )));
                            }
                        }
                    }
                    if op.orders()
                        && let Some(bad) = values.iter().find(|v| !is_ordered(v))
                    {
                        return Err(TmfError::query(format!(
                            "{name}: {bad:?} is neither a number nor a date-time"
                        )));
                    }
                    // A repeated attribute is one more alternative.
                    if let Some(f) = params
                        .filters
                        .iter_mut()
                        .find(|f| f.path == path && f.op == op)
                    {
                        f.values.extend(values);
                        continue;
                    }
                    if params.filters.len() == FILTERS_MAX {
                        return Err(TmfError::query(format!(
                            "at most {FILTERS_MAX} filters are allowed"
                        )));
                    }
                    params.filters.push(Filter {
                        path: path.to_owned(),
                        op,
                        values,
                    });
                }
            }
        }
        Ok(params)
    }

    /// The single value of the filter on `path`, if there is exactly one such filter
    /// with one value (for filters the store runs itself).
    pub fn only(&self, path: &str) -> Option<&str> {
        let mut found = self.filters.iter().filter(|f| f.path == path);
        match (found.next(), found.next()) {
            (Some(f), None) if f.op == Op::Eq && f.values.len() == 1 => Some(f.values[0].as_str()),
            _ => None,
        }
    }

    /// Whether `resource` passes every filter.
    pub fn matches(&self, resource: &Value) -> bool {
        self.filters.iter().all(|f| {
            let names: Vec<&str> = f.path.split('.').collect();
            let is = |want: &String| member_is(resource, &names, want);
            let ordered = |want: &String, pass: fn(std::cmp::Ordering) -> bool| {
                member_ordered(resource, &names, want).is_some_and(pass)
            };
            match f.op {
                Op::Eq => f.values.iter().any(is),
                Op::Ne => !f.values.iter().any(is),
                Op::Gt => f.values.iter().any(|w| ordered(w, |o| o.is_gt())),
                Op::Gte => f.values.iter().any(|w| ordered(w, |o| o.is_ge())),
                Op::Lt => f.values.iter().any(|w| ordered(w, |o| o.is_lt())),
                Op::Lte => f.values.iter().any(|w| ordered(w, |o| o.is_le())),
            }
        })
    }

    /// Whether some filter is on a path other than `handled`, or is more than one
    /// value's equality.
    pub fn filters_beyond(&self, handled: &[&str]) -> bool {
        self.filters
            .iter()
            .any(|f| !handled.contains(&f.path.as_str()) || f.values.len() != 1 || f.op != Op::Eq)
    }

    /// `resource` with only the members `fields` names (all of them without `fields`),
    /// and always the members TM Forum's file requires of its `@type`, so that a
    /// selection still answers as the file's schema says.
    pub fn select(&self, resource: Value) -> Value {
        let Some(fields) = &self.fields else {
            return resource;
        };
        let required = required_members(resource["@type"].as_str().unwrap_or_default());
        let mut out = Value::Object(Map::new());
        for field in fields
            .iter()
            .map(String::as_str)
            .chain(required.iter().copied())
        {
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

/// The members TM Forum's TMF654 v4 file requires of a resource of `type_name`.
fn required_members(type_name: &str) -> &'static [&'static str] {
    match type_name {
        "AccumulatedBalance" => &["bucket", "name", "totalBalance"],
        "BalanceActionHistory" => &["status", "receiverLogicalResource"],
        "TransferBalance" => &[
            "href",
            "id",
            "reason",
            "receiverLogicalResource",
            "channel",
            "logicalResource",
            "status",
        ],
        "TopupBalance" | "AdjustBalance" | "ReserveBalance" => &["status"],
        _ => &[],
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
        // What the file requires of the type stays, whatever `fields` names.
        let acc = json!({"@type": "AccumulatedBalance", "id": "a", "name": "n",
            "bucket": [], "totalBalance": {"amount": 1}, "description": "d"});
        assert_eq!(
            p("fields=nothing").unwrap().select(acc),
            json!({"name": "n", "bucket": [], "totalBalance": {"amount": 1}})
        );
    }

    #[test]
    fn tmf630_operators_and_alternatives() {
        let r = json!({"status": "completed", "amount": {"amount": "\u{0}decimal:2.50"},
            "requestedDate": "2026-05-01T10:00:00Z"});
        for (q, want) in [
            ("amount.amount.gt=2", true),
            ("amount.amount.gt=2.5", false),
            ("amount.amount.gte=2.5", true),
            ("amount.amount.lt=3", true),
            ("amount.amount.lte=2.49", false),
            ("amount.amount.eq=2.50", true),
            ("amount.amount.ne=2.5", false),
            ("status.ne=created", true),
            ("status.ne=created,completed", false),
            ("status=created;status=completed", true),
            ("status=created&status=completed", true),
            ("status=created&status=cancelled", false),
            ("requestedDate.gte=2026-05-01T00:00:00Z", true),
            ("requestedDate.lt=2026-05-01T10:00:00Z", false),
            (
                "requestedDate.gt=2026-04-30T23:59:59.999Z&amount.amount.lt=10",
                true,
            ),
            ("status.gt=1", false),
        ] {
            assert_eq!(p(q).unwrap().matches(&r), want, "{q}");
        }
        for q in [
            "amount.amount.gt=abc",
            "status=created;amount=1",
            "status=created;oops",
            "amount..gt=1",
        ] {
            assert!(p(q).is_err(), "{q}");
        }
        let l = p("status=a&status=b;status=c").unwrap();
        assert_eq!(l.filters.len(), 1);
        assert_eq!(l.filters[0].values, ["a", "b", "c"]);
        assert_eq!(p("bucket.id=x").unwrap().only("bucket.id"), Some("x"));
        assert_eq!(p("bucket.id.ne=x").unwrap().only("bucket.id"), None);
        assert!(p("bucket.id.ne=x").unwrap().filters_beyond(&["bucket.id"]));
    }
}
