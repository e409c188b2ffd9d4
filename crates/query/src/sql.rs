//! Compiling a bound filter to a parameterised SQL condition for SQLite or PostgreSQL.
//!
//! Query values only ever travel as parameters; the SQL text holds nothing but the
//! column expressions the store gives for the filter's [`Column`]s, fixed keywords and
//! placeholders.
//!
//! The condition is true for exactly the rows [`Filter::matches`] accepts and false or
//! NULL for the others, so it can stand in a `WHERE` clause or be joined with `AND` (not
//! negated with `NOT` by the caller). To keep SQL's three-valued logic from showing,
//! negation is pushed down to the tests (De Morgan), and a negated test also accepts
//! NULL explicitly: `not name eq 'a'` becomes `(name IS NULL OR name <> ?1)`.
//!
//! Text semantics are the same on both backends and in memory: case-sensitive, by code
//! point.
//! - Starts-with and contains avoid `LIKE` (case-insensitive for ASCII on SQLite, and in
//!   need of escaping): SQLite uses `instr(col, ?) = 1` / `instr(col, ?) > 0`, PostgreSQL
//!   `starts_with(col, $n)` (PostgreSQL 11 and later) / `strpos(col, $n) > 0`.
//! - Ordering of text uses `COLLATE "C"` on PostgreSQL (byte order of UTF-8, as SQLite's
//!   default `BINARY` collation); text columns on SQLite must keep that default.
//! - Equality needs no collation: PostgreSQL's deterministic collations only call equal
//!   strings that are byte-wise equal.
//!
//! How each [`Value`] is bound is the caller's, per backend: [`Value::Timestamp`] and
//! [`Value::Uuid`] must be bound the way the column stores them (on SQLite, say, an
//! integer of microseconds and the hyphenated lower-case text), [`Value::Bool`] as the
//! column's boolean (0/1 on SQLite).

use std::fmt::Write as _;

use std::borrow::Cow;

use crate::filter::{Column, Filter, Pred, Test, Value};

/// An SQL parameter; the same type as the values of rows and queries.
pub type SqlValue = Value;

/// The SQL backend to write for, which chooses the placeholder style and a few
/// functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Placeholders `?1`, `?2`, …
    Sqlite,
    /// Placeholders `$1`, `$2`, …
    Postgres,
}

impl Dialect {
    /// The placeholder for the `index`-th parameter (1-based).
    pub fn placeholder(self, index: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{index}"),
            Dialect::Postgres => format!("${index}"),
        }
    }
}

/// An SQL condition and the parameters its placeholders number, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sql {
    pub text: String,
    /// `params[i]` is bound to the placeholder numbered `first_param + i`.
    pub params: Vec<SqlValue>,
}

/// A filter named a column the store does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no stored column is named {0}")]
pub struct UnknownColumn(pub Column);

impl Filter {
    /// The filter as an SQL condition whose placeholders are numbered from
    /// `first_param` on (so the caller can put its own parameters first); the next free
    /// number is `first_param + params.len()`. `columns` gives the SQL expression of
    /// each column the filter reads (a primary expression: a column, a function call,
    /// or something parenthesised); it is the store's, never a request's.
    ///
    /// # Panics
    /// If `first_param` is 0: placeholders are numbered from 1.
    pub fn to_sql_with(
        &self,
        dialect: Dialect,
        first_param: usize,
        columns: &dyn Fn(&Column) -> Option<Cow<'static, str>>,
    ) -> Result<Sql, UnknownColumn> {
        assert!(first_param >= 1, "SQL parameters are numbered from 1");
        let mut compiler = Compiler {
            dialect,
            first_param,
            columns,
            unknown: None,
            text: String::new(),
            params: Vec::new(),
        };
        compiler.filter(self, false);
        if let Some(column) = compiler.unknown {
            return Err(UnknownColumn(column));
        }
        Ok(Sql {
            text: compiler.text,
            params: compiler.params,
        })
    }

    /// [`Filter::to_sql_with`] for a schema whose column names are their SQL
    /// expressions (tests, tools).
    pub fn to_sql(&self, dialect: Dialect, first_param: usize) -> Sql {
        let verbatim = |c: &Column| Some(Cow::Owned(c.name().to_owned()));
        self.to_sql_with(dialect, first_param, &verbatim)
            .expect("every name is its own SQL")
    }
}

struct Compiler<'c> {
    dialect: Dialect,
    first_param: usize,
    columns: &'c dyn Fn(&Column) -> Option<Cow<'static, str>>,
    /// The first column the store did not know.
    unknown: Option<Column>,
    text: String,
    params: Vec<SqlValue>,
}

impl Compiler<'_> {
    fn param(&mut self, value: Value) {
        let index = self.first_param + self.params.len();
        self.params.push(value);
        self.text.push_str(&self.dialect.placeholder(index));
    }

    fn filter(&mut self, filter: &Filter, negated: bool) {
        match filter {
            Filter::And(children) => {
                self.group(children, negated, if negated { "OR" } else { "AND" })
            }
            Filter::Or(children) => {
                self.group(children, negated, if negated { "AND" } else { "OR" })
            }
            Filter::Not(inner) => self.filter(inner, !negated),
            Filter::Test(test) => self.test(test, negated),
        }
    }

    fn group(&mut self, children: &[Filter], negated: bool, joiner: &str) {
        if children.is_empty() {
            // An empty AND is true and an empty OR false; `joiner` already accounts for
            // negation, so it alone tells which of the two this is.
            self.text.push_str(if joiner == "AND" {
                "(1 = 1)"
            } else {
                "(1 = 0)"
            });
            return;
        }
        self.text.push('(');
        for (i, child) in children.iter().enumerate() {
            if i > 0 {
                let _ = write!(self.text, " {joiner} ");
            }
            self.filter(child, negated);
        }
        self.text.push(')');
    }

    fn test(&mut self, test: &Test, negated: bool) {
        let Some(column) = (self.columns)(&test.column) else {
            self.unknown.get_or_insert_with(|| test.column.clone());
            self.text.push_str("(1 = 0)");
            return;
        };
        let column = column.as_ref();
        match (&test.pred, negated) {
            (Pred::IsNull, false) | (Pred::NotNull, true) => {
                let _ = write!(self.text, "{column} IS NULL");
                return;
            }
            (Pred::IsNull, true) | (Pred::NotNull, false) => {
                let _ = write!(self.text, "{column} IS NOT NULL");
                return;
            }
            // Bound queries never hold empty lists, but `Filter` is open to callers and
            // `IN ()` is not valid PostgreSQL.
            (Pred::In(xs), _) if xs.is_empty() => {
                self.text
                    .push_str(if negated { "(1 = 1)" } else { "(1 = 0)" });
                return;
            }
            (Pred::NotIn(xs), _) if xs.is_empty() => {
                let not = if negated { "" } else { "NOT " };
                let _ = write!(self.text, "{column} IS {not}NULL");
                return;
            }
            _ => {}
        }
        if negated {
            let _ = write!(self.text, "({column} IS NULL OR ");
        }
        match &test.pred {
            Pred::IsNull | Pred::NotNull => unreachable!("null tests are written above"),
            Pred::Eq(x) => self.compare(column, if negated { "<>" } else { "=" }, x),
            Pred::Ne(x) => self.compare(column, if negated { "=" } else { "<>" }, x),
            Pred::Gt(x) => self.compare(column, if negated { "<=" } else { ">" }, x),
            Pred::Ge(x) => self.compare(column, if negated { "<" } else { ">=" }, x),
            Pred::Lt(x) => self.compare(column, if negated { ">=" } else { "<" }, x),
            Pred::Le(x) => self.compare(column, if negated { ">" } else { "<=" }, x),
            Pred::In(xs) => self.list(column, negated, xs),
            Pred::NotIn(xs) => self.list(column, !negated, xs),
            Pred::StartsWith(s) => {
                let (open, close) = match (self.dialect, negated) {
                    (Dialect::Sqlite, false) => ("instr(", ") = 1"),
                    (Dialect::Sqlite, true) => ("instr(", ") <> 1"),
                    (Dialect::Postgres, false) => ("starts_with(", ")"),
                    (Dialect::Postgres, true) => ("NOT starts_with(", ")"),
                };
                self.call(open, column, s, close);
            }
            Pred::Contains(s) => {
                let open = match self.dialect {
                    Dialect::Sqlite => "instr(",
                    Dialect::Postgres => "strpos(",
                };
                self.call(open, column, s, if negated { ") = 0" } else { ") > 0" });
            }
        }
        if negated {
            self.text.push(')');
        }
    }

    fn compare(&mut self, column: &str, op: &str, value: &Value) {
        self.text.push_str(column);
        let ordering = !matches!(op, "=" | "<>");
        if ordering && self.dialect == Dialect::Postgres && matches!(value, Value::Text(_)) {
            self.text.push_str(" COLLATE \"C\"");
        }
        let _ = write!(self.text, " {op} ");
        self.param(value.clone());
    }

    fn list(&mut self, column: &str, not_in: bool, values: &[Value]) {
        let _ = write!(
            self.text,
            "{column} {}IN (",
            if not_in { "NOT " } else { "" }
        );
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.param(value.clone());
        }
        self.text.push(')');
    }

    fn call(&mut self, open: &str, column: &str, needle: &str, close: &str) {
        let _ = write!(self.text, "{open}{column}, ");
        self.param(Value::Text(needle.to_owned()));
        self.text.push_str(close);
    }
}
