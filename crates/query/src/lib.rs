//! The filter languages that prepaid's dialects accept, over one shared model.
//!
//! Two languages parse into the same syntax tree, [`Expr`]:
//! - [`fiql`]: FIQL as TOPdesk uses it (`amountOfMinutes=ge=600;on.type==EXTERNAL`);
//! - [`talkdesk`]: Talkdesk's wallet filter (`name eq 'x' and not contains(product_name, 'y')`).
//!
//! A tree is then *bound* against a caller-supplied [`Schema`] ([`Schema::bind`]), which
//! checks every field, operator and value and yields a typed [`Filter`]. A filter
//! compiles to parameterised SQL for SQLite or PostgreSQL ([`Filter::to_sql`]) and
//! evaluates in memory against any [`Row`] ([`Filter::matches`]) with the same meaning,
//! so one can be tested against the other.
//!
//! Every error, from the parser or the binder, is a [`QueryError`] that carries the byte
//! offset it points at; [`QueryError::render`] draws a caret under the query. An empty
//! query is an error too: a dialect that reads an absent or empty parameter as "no
//! filter" decides that before parsing.
//!
//! # Semantics
//! - Logic is two-valued. A comparison with a field whose value is null is false, for
//!   every operator (`!=` and `=out=` included) except the null tests `==null` and
//!   `!=null`; `not X` is true exactly when `X` is false, so `not name eq 'a'` also
//!   accepts rows whose name is null.
//! - Text compares by Unicode code point (byte order of UTF-8), case-sensitively and
//!   without normalisation; starts-with and contains are case-sensitive substring tests.
//! - Timestamps are ISO 8601 ([`iso8601`]), held as microseconds since the Unix epoch.
//!
//! # Limits
//! Every query is bounded before any work that grows with it: [`QUERY_LEN_MAX`],
//! [`DEPTH_MAX`], [`TERMS_MAX`], [`VALUE_LEN_MAX`], [`IN_LIST_LEN_MAX`] and
//! [`FIELD_LEN_MAX`]. Each bound is inclusive: a query exactly at it is accepted.

mod ast;
mod error;
mod filter;
pub mod fiql;
pub mod iso8601;
mod schema;
mod sql;
pub mod talkdesk;

pub use ast::{Expr, Op, Operand, Span, Spanned};
pub use error::{ErrorKind, QueryError};
pub use filter::{Column, Filter, Pred, Row, Test, Value};
pub use schema::{Field, FieldType, Schema};
pub use sql::{Dialect, Sql, SqlValue, UnknownColumn};

/// The longest query accepted, in bytes.
pub const QUERY_LEN_MAX: usize = 4096;
/// The deepest nesting accepted: parentheses, and in Talkdesk filters also `not`.
pub const DEPTH_MAX: usize = 16;
/// The most comparisons one query may hold.
pub const TERMS_MAX: usize = 64;
/// The longest value accepted, in bytes after unquoting and unescaping.
pub const VALUE_LEN_MAX: usize = 1024;
/// The most values in one `=in=(...)` or `=out=(...)` list.
pub const IN_LIST_LEN_MAX: usize = 64;
/// The longest field path accepted, in bytes.
pub const FIELD_LEN_MAX: usize = 64;

/// The language a query is written in, for callers that pick it at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Language {
    Fiql,
    Talkdesk,
}

impl Language {
    /// Parses `query` in this language.
    pub fn parse(self, query: &str) -> Result<Expr, QueryError> {
        match self {
            Language::Fiql => fiql::parse(query),
            Language::Talkdesk => talkdesk::parse(query),
        }
    }

    /// Writes `expr` in this language, or `None` if it uses a construct the language lacks.
    pub fn render(self, expr: &Expr) -> Option<String> {
        match self {
            Language::Fiql => fiql::render(expr),
            Language::Talkdesk => talkdesk::render(expr),
        }
    }
}

/// Whether `c` may start a segment of a field path.
fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Whether `c` may continue a segment of a field path.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `path` is a well-formed field path: names joined by dots.
pub fn is_field_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= FIELD_LEN_MAX
        && path.split('.').all(|segment| {
            let mut chars = segment.chars();
            chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
        })
}

/// Reads a field path starting at byte `start` of `src`; shared by both parsers.
///
/// Returns the end offset of the path, or the error to report.
fn scan_field_path(src: &str, start: usize) -> Result<usize, QueryError> {
    let bytes = src.as_bytes();
    let mut pos = start;
    loop {
        match src[pos..].chars().next() {
            Some(c) if is_name_start(c) => pos += 1,
            _ => {
                let expected = if pos == start {
                    "a field name"
                } else {
                    "a field name after `.`"
                };
                return Err(QueryError::expected(src, pos, expected));
            }
        }
        while pos < bytes.len() && is_name_char(char::from(bytes[pos])) {
            pos += 1;
        }
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
        } else {
            break;
        }
    }
    if pos - start > FIELD_LEN_MAX {
        return Err(QueryError::new(
            start,
            ErrorKind::FieldTooLong { max: FIELD_LEN_MAX },
        ));
    }
    Ok(pos)
}

/// Checks the query length shared by both parsers.
fn check_len(src: &str) -> Result<(), QueryError> {
    if src.len() > QUERY_LEN_MAX {
        return Err(QueryError::new(
            QUERY_LEN_MAX,
            ErrorKind::QueryTooLong { max: QUERY_LEN_MAX },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths() {
        assert!(is_field_path("on.type"));
        assert!(is_field_path("_links.for.href"));
        assert!(is_field_path(&"a".repeat(FIELD_LEN_MAX)));
        assert!(!is_field_path(&"a".repeat(FIELD_LEN_MAX + 1)));
        assert!(!is_field_path(""));
        assert!(!is_field_path("a..b"));
        assert!(!is_field_path("a."));
        assert!(!is_field_path("1a"));
        assert!(!is_field_path("ä"));
    }
}
