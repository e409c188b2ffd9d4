//! The list request of `GET /balance-mutations`: its parameters (`page`, `pageSize`,
//! `compact`, `query`), the FIQL schema its `query` is bound against, and the links
//! of its pages.
//!
//! # Query fields
//!
//! Every field of `BalanceMutationDto` can be queried by its path, with the operators
//! its type allows (text: all of `==`, `!=`, `=gt=`, `=ge=`, `=lt=`, `=le=`, `=sw=`,
//! `=in=`, `=out=`; numbers and dates: all but `=sw=`; UUIDs and `on.type`: `==`, `!=`,
//! `=in=`, `=out=`; every field also `==null` and `!=null`):
//!
//! | path | type | what |
//! |---|---|---|
//! | `amountOfMinutes` | integer | signed minutes |
//! | `modificationDate` | ISO 8601 date-time | when the mutation occurred |
//! | `on.type` | `INCIDENT`, `SIMPLE_CHANGE`, `CHANGE_ACTIVITY`, `EXTERNAL_SYSTEM` (or `EXTERNAL`, as the document's example spells it) | as shown |
//! | `on.reference` | text | null when the mutation has none |
//! | `on.referenceLink` | text | null when the mutation has none |
//! | `_links.for.href` | text | the customer's URL as shown |
//! | `_links.for.id` | UUID | the customer |
//! | `_links.self.href` | URL | the mutation |
//! | `id` | UUID | the mutation |
//!
//! An href names its resource by the UUID it ends in, so `==`, `!=`, `=in=` and `=out=`
//! on `_links.for.href` and `_links.self.href` compare the customers or mutations the
//! hrefs name, whatever host or path they were written with
//! (`_links.for.href==https://acme.topdesk.net/tas/api/branches/id/<uuid>` and
//! `_links.for.id==<uuid>` select the same mutations). `=sw=` and the orderings on
//! `_links.for.href` compare its text.

use super::errors::Error;
use super::types::{ResourceType, uuid_of_href};
use prepaid_query::{Expr, Field, FieldType, Filter, Op, Operand, Pred, Schema, Test, Value};
use prepaid_store::columns::mutation as col;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// The page size when `pageSize` is not given.
pub const PAGE_SIZE_DEFAULT: u64 = 100;
/// The largest `pageSize`, answered as `maxPageSize`.
pub const PAGE_SIZE_MAX: u64 = prepaid_store::PAGE_SIZE_MAX as u64;
/// The largest `page` (so that an offset can never overflow).
pub const PAGE_NUMBER_MAX: u64 = 1_000_000_000;
/// The most query parameters one list request may carry.
pub const PARAMS_MAX: usize = 16;

pub const FIELD_ID: &str = "id";
pub const FIELD_MINUTES: &str = "amountOfMinutes";
pub const FIELD_DATE: &str = "modificationDate";
pub const FIELD_TYPE: &str = "on.type";
pub const FIELD_REFERENCE: &str = "on.reference";
pub const FIELD_REFERENCE_LINK: &str = "on.referenceLink";
pub const FIELD_FOR_HREF: &str = "_links.for.href";
pub const FIELD_FOR_ID: &str = "_links.for.id";
pub const FIELD_SELF_HREF: &str = "_links.self.href";
/// How the document's example query (`on.type==EXTERNAL`) spells `EXTERNAL_SYSTEM`,
/// taken as that type.
pub const EXTERNAL_SHORT: &str = "EXTERNAL";

/// The schema of `query`.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::new(vec![
            Field::new(FIELD_ID, col::ID, FieldType::Uuid),
            Field::new(FIELD_MINUTES, col::AMOUNT, FieldType::Integer),
            Field::new(FIELD_DATE, col::OCCURRED_AT, FieldType::Timestamp),
            // Bound to the reference type and rewritten into tests of it (see
            // `types_as_reference_kinds`), since the type shown is derived from it.
            Field::new(
                FIELD_TYPE,
                col::REFERENCE_KIND,
                FieldType::Enum(
                    ResourceType::ALL
                        .iter()
                        .map(|t| t.as_str().to_owned())
                        // The document's own example query spells it `EXTERNAL`.
                        .chain([EXTERNAL_SHORT.to_owned()])
                        .collect(),
                ),
            ),
            Field::new(
                FIELD_REFERENCE,
                col::REFERENCE_TEXT_OR_NULL,
                FieldType::Text,
            ),
            Field::new(
                FIELD_REFERENCE_LINK,
                col::REFERENCE_LINK_OR_NULL,
                FieldType::Text,
            ),
            // The customer's link as shown: the href the client first gave in `for`, or
            // `urn:uuid:<id>` for a customer made without one (through the native API).
            Field::new(FIELD_FOR_HREF, col::CUSTOMER_LINK_OR_URN, FieldType::Text),
            // Bound as a UUID so that values are checked, then compared as the
            // customer id's text (see `customer_ids_as_text`).
            Field::new(FIELD_FOR_ID, col::CUSTOMER, FieldType::Uuid),
        ])
    })
}

/// The test every list of this dialect carries: only mutations of a customer's
/// prepaid services wallet (whose id is the customer's and whose unit is minutes), not
/// of the other wallets a customer may have through the native API.
pub fn prepaid_services_only() -> Filter {
    Filter::And(vec![
        Filter::Test(Test {
            path: "prepaidServicesWallet".into(),
            column: col::IN_CUSTOMERS_OWN_WALLET,
            pred: Pred::Eq(Value::Bool(true)),
        }),
        Filter::Test(Test {
            path: "unit".into(),
            column: col::UNIT_CODE,
            pred: Pred::Eq(Value::Text(super::MINUTES_UNIT.into())),
        }),
    ])
}

/// Mutations that add minutes: top-ups, in TOPdesk's words.
pub fn top_ups() -> Filter {
    Filter::Test(Test {
        path: FIELD_MINUTES.into(),
        column: col::AMOUNT,
        pred: Pred::Gt(Value::Int(0)),
    })
}

/// Parses and binds a `query`; the error is the message of a 400, with the query
/// quoted and a caret under the spot at fault.
pub fn parse_filter(query: &str) -> Result<Filter, String> {
    let expr = prepaid_query::fiql::parse(query).map_err(|e| e.render(query))?;
    let expr = rewrite_hrefs(expr).map_err(|(offset, message)| render(query, offset, &message))?;
    let filter = schema().bind(&expr).map_err(|e| e.render(query))?;
    Ok(types_as_reference_kinds(customer_ids_as_text(filter)))
}

/// Turns tests of the type shown into tests of the reference type it is derived from
/// ([`ResourceType::of_reference_kind`]): a ticket type is itself, `EXTERNAL_SYSTEM` is
/// every reference type that is not a ticket type.
fn types_as_reference_kinds(filter: Filter) -> Filter {
    let tickets: Vec<Value> = ResourceType::ALL
        .iter()
        .filter(|t| **t != ResourceType::ExternalSystem)
        .map(|t| Value::Text(t.as_str().to_owned()))
        .collect();
    let is = |test: &Test, v: Value| -> Filter {
        let pred = if tickets.contains(&v) {
            Pred::Eq(v)
        } else {
            Pred::NotIn(tickets.clone())
        };
        Filter::Test(Test {
            pred,
            ..test.clone()
        })
    };
    match filter {
        Filter::And(c) => Filter::And(c.into_iter().map(types_as_reference_kinds).collect()),
        Filter::Or(c) => Filter::Or(c.into_iter().map(types_as_reference_kinds).collect()),
        Filter::Not(inner) => Filter::Not(Box::new(types_as_reference_kinds(*inner))),
        Filter::Test(test) if test.path == FIELD_TYPE => match test.pred.clone() {
            Pred::Eq(v) => is(&test, v),
            Pred::Ne(v) => Filter::Not(Box::new(is(&test, v))),
            Pred::In(vs) => Filter::Or(vs.into_iter().map(|v| is(&test, v)).collect()),
            Pred::NotIn(vs) => Filter::Not(Box::new(Filter::Or(
                vs.into_iter().map(|v| is(&test, v)).collect(),
            ))),
            // Every mutation has a type.
            Pred::IsNull => Filter::Or(Vec::new()),
            Pred::NotNull => Filter::And(Vec::new()),
            other => Filter::Test(Test {
                pred: other,
                ..test
            }),
        },
        other => other,
    }
}

/// Turns comparisons of hrefs into comparisons of the UUIDs they end in (see the
/// module doc); the error is an offset into the query and a message.
fn rewrite_hrefs(expr: Expr) -> Result<Expr, (usize, String)> {
    let all = |children: Vec<Expr>| -> Result<Vec<Expr>, (usize, String)> {
        children.into_iter().map(rewrite_hrefs).collect()
    };
    Ok(match expr {
        Expr::And(children) => Expr::And(all(children)?),
        Expr::Or(children) => Expr::Or(all(children)?),
        Expr::Not(inner) => Expr::Not(Box::new(rewrite_hrefs(*inner)?)),
        Expr::Cmp {
            mut field,
            op,
            mut value,
        } => {
            let target = match field.node.as_str() {
                FIELD_SELF_HREF => FIELD_ID,
                FIELD_FOR_HREF => FIELD_FOR_ID,
                _ => return Ok(Expr::Cmp { field, op, value }),
            };
            let by_identity = matches!(op.node, Op::Eq | Op::Ne | Op::In | Op::Out);
            match &mut value {
                // The null tests of a self link ask about the id; those of a customer
                // link stay on its text (never null).
                Operand::Null(_) if target == FIELD_ID => field.node = target.to_owned(),
                Operand::One(_) | Operand::List(_) if !by_identity => {
                    if target == FIELD_ID {
                        return Err((
                            op.span.start,
                            format!(
                                "`{FIELD_SELF_HREF}` can only be compared with ==, !=, =in= \
                                 or =out="
                            ),
                        ));
                    }
                }
                Operand::Null(_) => {}
                Operand::One(v) => {
                    v.node = href_uuid(&field.node, v)?;
                    field.node = target.to_owned();
                }
                Operand::List(vs) => {
                    for v in vs.iter_mut() {
                        v.node = href_uuid(&field.node, v)?;
                    }
                    field.node = target.to_owned();
                }
            }
            Expr::Cmp { field, op, value }
        }
    })
}

fn href_uuid(field: &str, v: &prepaid_query::Spanned<String>) -> Result<String, (usize, String)> {
    uuid_of_href(&v.node).map(|u| u.to_string()).map_err(|_| {
        (
            v.span.start,
            format!("expected a URL that ends in a UUID for `{field}`"),
        )
    })
}

/// Customer ids are text (a UUID in lower-case hyphenated form for TOPdesk
/// customers), so the UUIDs a query compares them with become that text.
fn customer_ids_as_text(filter: Filter) -> Filter {
    let text = |v: Value| match v {
        Value::Uuid(u) => Value::Text(u.to_string()),
        other => other,
    };
    match filter {
        Filter::And(c) => Filter::And(c.into_iter().map(customer_ids_as_text).collect()),
        Filter::Or(c) => Filter::Or(c.into_iter().map(customer_ids_as_text).collect()),
        Filter::Not(inner) => Filter::Not(Box::new(customer_ids_as_text(*inner))),
        Filter::Test(mut test) if test.path == FIELD_FOR_ID => {
            test.pred = match test.pred {
                Pred::Eq(v) => Pred::Eq(text(v)),
                Pred::Ne(v) => Pred::Ne(text(v)),
                Pred::In(vs) => Pred::In(vs.into_iter().map(text).collect()),
                Pred::NotIn(vs) => Pred::NotIn(vs.into_iter().map(text).collect()),
                other => other,
            };
            Filter::Test(test)
        }
        other => other,
    }
}

/// How many characters of the query an error shows on each side of the caret.
const RENDER_CONTEXT_CHARS: usize = 32;

/// `message at offset: query` with a caret under the offset on the next line, in the
/// style of the query crate's own errors.
fn render(query: &str, offset: usize, message: &str) -> String {
    let mut at = offset.min(query.len());
    while !query.is_char_boundary(at) {
        at -= 1;
    }
    let before: Vec<char> = query[..at].chars().collect();
    let skip = before.len().saturating_sub(RENDER_CONTEXT_CHARS);
    let mut shown = String::new();
    if skip > 0 {
        shown.push('…');
    }
    shown.extend(&before[skip..]);
    let caret_col = shown.chars().count();
    let after: Vec<char> = query[at..].chars().collect();
    shown.extend(after.iter().take(RENDER_CONTEXT_CHARS));
    if after.len() > RENDER_CONTEXT_CHARS {
        shown.push('…');
    }
    let head = format!("{message} at {offset}: ");
    let pad = head.chars().count() + caret_col;
    format!("{head}{shown}\n{:pad$}^", "")
}

/// The parameters of a list request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListParams {
    /// From 1.
    pub page: u64,
    pub page_size: u64,
    pub compact: bool,
    /// The `query` as given; `None` when absent or empty.
    pub query: Option<String>,
}

impl ListParams {
    /// The rows before this page.
    pub fn offset(&self) -> u64 {
        (self.page - 1) * self.page_size
    }

    /// Parses the query string of a list request. Unknown and repeated parameters are
    /// refused, so that a misspelt one (`pagesize`) never goes unnoticed.
    pub fn parse(raw: Option<&str>) -> Result<Self, Error> {
        let pairs = prepaid_edge::form::pairs(raw.unwrap_or_default())
            .map_err(|e| Error::field(e.name(), prepaid_edge::form::NOT_UTF8))?;
        if pairs.len() > PARAMS_MAX {
            return Err(Error::bad_request(format!(
                "the query string has more than {PARAMS_MAX} parameters"
            )));
        }
        let mut params = Self {
            page: 1,
            page_size: PAGE_SIZE_DEFAULT,
            compact: true,
            query: None,
        };
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &pairs {
            if seen.contains(&name.as_str()) {
                return Err(Error::field(name, "is given more than once"));
            }
            seen.push(name);
            match name.as_str() {
                "page" => params.page = number(name, value, PAGE_NUMBER_MAX)?,
                "pageSize" => params.page_size = number(name, value, PAGE_SIZE_MAX)?,
                "compact" => {
                    params.compact = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(Error::field(
                                name,
                                format!("must be true or false, got {value:?}"),
                            ));
                        }
                    }
                }
                "query" => params.query = (!value.is_empty()).then(|| value.clone()),
                // Clients add parameters of their own (a cache-buster `_=<time>`, say);
                // they ask nothing of this list and are ignored, as TOPdesk does.
                _ => {}
            }
        }
        Ok(params)
    }

    /// The absolute URL of page `page` of this list under `base` (the dialect's root),
    /// with this request's other parameters.
    pub fn href(&self, base: &str, page: u64) -> String {
        let mut href = format!(
            "{base}/balance-mutations?page={page}&pageSize={}",
            self.page_size
        );
        if !self.compact {
            href.push_str("&compact=false");
        }
        if let Some(q) = &self.query {
            href.push_str("&query=");
            percent_encode(q, &mut href);
        }
        href
    }
}

fn number(name: &str, value: &str, max: u64) -> Result<u64, Error> {
    match value.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Error::field(
            name,
            format!("must be an integer from 1 to {max}, got {value:?}"),
        )),
    }
}

/// Appends `s` to `out` with every byte but the unreserved ones of RFC 3986
/// percent-encoded, so that it stands as one query parameter value.
fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prepaid_query::Dialect;

    const C: &str = "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

    #[test]
    fn every_dto_field_binds() {
        for q in [
            "amountOfMinutes=ge=600;on.type==EXTERNAL_SYSTEM",
            "modificationDate=lt=2026-11-25T10:00:00Z,modificationDate==2026-11-25",
            "on.reference=sw='invoice 2026',on.reference==null",
            "on.referenceLink!=null;on.type=in=(INCIDENT,SIMPLE_CHANGE,CHANGE_ACTIVITY)",
            "_links.for.href=sw=https://acme.topdesk.net/",
            "id=out=(0b7c1d2e-3f40-4152-8637-48596a7b8c9d)",
            "_links.self.href==null",
        ] {
            parse_filter(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn hrefs_compare_by_the_uuid_they_end_in() {
        let by_href = parse_filter(&format!(
            "_links.for.href==https://a.topdesk.net/tas/api/branches/id/{C}"
        ))
        .unwrap();
        let by_id = parse_filter(&format!("_links.for.id=={}", C.to_uppercase())).unwrap();
        assert_eq!(by_href.to_string(), by_id.to_string());
        let sql = by_id.to_sql(Dialect::Sqlite, 1);
        assert_eq!(sql.text, format!("{} = ?1", col::CUSTOMER));
        assert_eq!(sql.params, vec![Value::Text(C.to_owned())]);

        let m = "0b7c1d2e-3f40-4152-8637-48596a7b8c9d";
        let by_self = parse_filter(&format!(
            "_links.self.href=in=(https://h/balance-mutations/{m})"
        ))
        .unwrap();
        assert_eq!(by_self.tests()[0].path, FIELD_ID);
        assert_eq!(
            by_self.tests()[0].pred,
            Pred::In(vec![Value::Uuid(m.parse().unwrap())])
        );
        // Starts-with compares the text of the customer's link.
        let sw = parse_filter("_links.for.href=sw=https://a.topdesk.net/").unwrap();
        assert_eq!(sw.tests()[0].path, FIELD_FOR_HREF);
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            ("amountOfMinutes=600", 15, "comparison operator"),
            ("colour==red", 0, "unknown field `colour`"),
            ("amountOfMinutes==sixty", 17, "integer"),
            ("modificationDate=gt=yesterday", 20, "ISO 8601"),
            ("on.type==EXTERN", 9, "one of"),
            ("on.type=sw=EXT", 7, "cannot be compared"),
            (
                "_links.for.href==https://x/branches/12",
                17,
                "ends in a UUID",
            ),
            ("id==1;_links.self.href=gt=x", 22, "can only be compared"),
            ("_links.self.href=gt=x", 16, "can only be compared"),
            ("(amountOfMinutes==1", 19, "`)`"),
        ];
        for (q, offset, text) in cases {
            let e = parse_filter(q).unwrap_err();
            assert!(e.contains(text), "{q}: {e}");
            assert!(e.contains(&format!(" at {offset}: ")), "{q}: {e}");
            let (line, caret) = e.split_once('\n').unwrap();
            let col = caret.chars().count() - 1;
            if let Some(c) = q[offset..].chars().next() {
                assert_eq!(
                    line.chars().nth(col),
                    Some(c),
                    "{q}: caret misplaced in\n{e}"
                );
            }
        }
    }

    #[test]
    fn own_errors_render_like_the_query_crate() {
        let q = "_links.self.href=gt=x";
        let e = render(q, 16, "oops");
        let (line, caret) = e.split_once('\n').unwrap();
        assert_eq!(line, format!("oops at 16: {q}"));
        assert_eq!(line.chars().nth(caret.chars().count() - 1), Some('='));
        let long = format!("{}==1", "a".repeat(100));
        let e = render(&long, 100, "x");
        assert!(e.contains('…'));
    }

    #[test]
    fn list_params_parse_and_refuse() {
        let p = ListParams::parse(None).unwrap();
        assert_eq!(
            (p.page, p.page_size, p.compact, p.query),
            (1, PAGE_SIZE_DEFAULT, true, None)
        );
        let p = ListParams::parse(Some(&format!(
            "page=3&pageSize={PAGE_SIZE_MAX}&compact=false&query=amountOfMinutes%3E%3D1"
        )))
        .unwrap();
        assert_eq!((p.page, p.page_size, p.compact), (3, PAGE_SIZE_MAX, false));
        assert_eq!(p.query.as_deref(), Some("amountOfMinutes>=1"));
        assert_eq!(p.offset(), 2 * PAGE_SIZE_MAX);
        assert_eq!(ListParams::parse(Some("query=")).unwrap().query, None);
        for (raw, named) in [
            ("page=0", "page"),
            ("page=-1", "page"),
            (&format!("page={}", PAGE_NUMBER_MAX + 1), "page"),
            ("pageSize=0", "pageSize"),
            (&format!("pageSize={}", PAGE_SIZE_MAX + 1), "pageSize"),
            ("compact=yes", "compact"),
            ("page=1&page=2", "page"),
        ] {
            let e = ListParams::parse(Some(raw)).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert!(e.message.contains(named), "{raw}: {}", e.message);
        }
        let many = vec!["compact=true"; PARAMS_MAX + 1].join("&");
        assert!(ListParams::parse(Some(&many)).is_err());
        // Parameters of the client's own (a cache-buster, a misspelling) are ignored.
        let p = ListParams::parse(Some("_=1732528800&pagesize=5&page=2")).unwrap();
        assert_eq!((p.page, p.page_size), (2, PAGE_SIZE_DEFAULT));
    }

    #[test]
    fn the_documents_external_spelling_is_external_system() {
        assert_eq!(
            parse_filter("amountOfMinutes==600;on.type==EXTERNAL").unwrap(),
            parse_filter("amountOfMinutes==600;on.type==EXTERNAL_SYSTEM").unwrap()
        );
    }

    #[test]
    fn page_links_keep_the_request() {
        let p = ListParams {
            page: 2,
            page_size: 10,
            compact: false,
            query: Some("on.reference=='a b;c'".into()),
        };
        let href = p.href("http://h/services/prepaid-services-backend", 3);
        assert_eq!(
            href,
            "http://h/services/prepaid-services-backend/balance-mutations?page=3&pageSize=10\
             &compact=false&query=on.reference%3D%3D%27a%20b%3Bc%27"
        );
        let back = ListParams::parse(href.split_once('?').map(|(_, q)| q)).unwrap();
        assert_eq!(back.query, p.query);
        assert_eq!((back.page, back.page_size, back.compact), (3, 10, false));
    }
}
