//! A query bound to a schema: typed tests on columns, evaluated in memory.
//!
//! [`Filter::matches`] is the reference meaning of a query; the SQL of
//! [`Filter::to_sql`](crate::Filter::to_sql) selects exactly the rows it accepts.

use std::cmp::Ordering;
use std::fmt;

use uuid::Uuid;

use crate::iso8601;

/// A typed value: of a field in a row, of a query, or of an SQL parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    Text(String),
    Uuid(Uuid),
}

impl Value {
    /// Orders two values of the same variant; values of different variants (or
    /// booleans and UUIDs, which have no order here) do not compare.
    fn order(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) | (Value::Timestamp(a), Value::Timestamp(b)) => {
                Some(a.cmp(b))
            }
            (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Prints `null`, `true`, `42`, `2024-06-01T12:30:00Z`, `"text"` or a hyphenated UUID.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Timestamp(micros) => f.write_str(&iso8601::format_micros(*micros)),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Uuid(u) => write!(f, "{u}"),
        }
    }
}

/// Access to the fields of one record, by the paths of the [`Schema`](crate::Schema).
pub trait Row {
    /// The value of the field at `path`, [`Value::Null`] when it has none. It must be
    /// of the variant the field's type binds to (see [`FieldType`](crate::FieldType)).
    fn get(&self, path: &str) -> Value;
}

/// What a [`Test`] checks of its field's value.
///
/// Every predicate but the null tests is false when the value is null.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pred {
    IsNull,
    NotNull,
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Ge(Value),
    Lt(Value),
    Le(Value),
    /// The text value starts with this text (case-sensitive).
    StartsWith(String),
    /// The text value contains this text (case-sensitive).
    Contains(String),
    /// Equals one of the values (never empty).
    In(Vec<Value>),
    /// Equals none of the values (never empty).
    NotIn(Vec<Value>),
}

/// The stored field a test reads: a name the storage layer gives meaning to (a
/// column or an expression of its own) when it compiles a filter to SQL
/// ([`Filter::to_sql_with`](crate::Filter::to_sql_with)). A dialect binds its fields to
/// the names its store offers and never writes SQL.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Column(std::borrow::Cow<'static, str>);

impl Column {
    /// The column of this name.
    pub const fn named(name: &'static str) -> Self {
        Self(std::borrow::Cow::Borrowed(name))
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for Column {
    fn from(name: &'static str) -> Self {
        Self::named(name)
    }
}

impl From<String> for Column {
    fn from(name: String) -> Self {
        Self(std::borrow::Cow::Owned(name))
    }
}

// Written as its name alone, so that bound filters print as they read.
impl std::fmt::Debug for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.name(), f)
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A test of one field: its path in the schema, the stored column it reads, the check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Test {
    pub path: String,
    pub column: Column,
    pub pred: Pred,
}

impl Test {
    fn matches(&self, value: &Value) -> bool {
        let pred = &self.pred;
        match (pred, value) {
            (Pred::IsNull, v) => *v == Value::Null,
            (Pred::NotNull, v) => *v != Value::Null,
            (_, Value::Null) => false,
            (Pred::Eq(x), v) => v == x,
            (Pred::Ne(x), v) => v != x,
            (Pred::Gt(x), v) => v.order(x) == Some(Ordering::Greater),
            (Pred::Ge(x), v) => v.order(x).is_some_and(Ordering::is_ge),
            (Pred::Lt(x), v) => v.order(x) == Some(Ordering::Less),
            (Pred::Le(x), v) => v.order(x).is_some_and(Ordering::is_le),
            (Pred::StartsWith(s), Value::Text(t)) => t.starts_with(s.as_str()),
            (Pred::Contains(s), Value::Text(t)) => t.contains(s.as_str()),
            (Pred::StartsWith(_) | Pred::Contains(_), _) => false,
            (Pred::In(xs), v) => xs.contains(v),
            (Pred::NotIn(xs), v) => !xs.contains(v),
        }
    }
}

/// A bound query. `And` and `Or` of no children are true and false respectively.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Test(Test),
}

impl Filter {
    /// Whether `row` passes the filter.
    pub fn matches<R: Row + ?Sized>(&self, row: &R) -> bool {
        match self {
            Filter::And(children) => children.iter().all(|c| c.matches(row)),
            Filter::Or(children) => children.iter().any(|c| c.matches(row)),
            Filter::Not(inner) => !inner.matches(row),
            Filter::Test(test) => test.matches(&row.get(&test.path)),
        }
    }

    /// The tests of the filter, depth first; a dialect may look for one it serves
    /// another way (an id lookup, say).
    pub fn tests(&self) -> Vec<&Test> {
        let mut out = Vec::new();
        self.collect_tests(&mut out);
        out
    }

    fn collect_tests<'a>(&'a self, out: &mut Vec<&'a Test>) {
        match self {
            Filter::And(children) | Filter::Or(children) => {
                for child in children {
                    child.collect_tests(out);
                }
            }
            Filter::Not(inner) => inner.collect_tests(out),
            Filter::Test(test) => out.push(test),
        }
    }
}

/// Prints `(and (eq on.type "EXTERNAL") (gt amountOfMinutes 600) (null endDate))`.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(children) | Filter::Or(children) => {
                f.write_str(if matches!(self, Filter::And(_)) {
                    "(and"
                } else {
                    "(or"
                })?;
                for child in children {
                    write!(f, " {child}")?;
                }
                f.write_str(")")
            }
            Filter::Not(inner) => write!(f, "(not {inner})"),
            Filter::Test(Test { path, pred, .. }) => {
                let list = |f: &mut fmt::Formatter<'_>, name: &str, xs: &[Value]| {
                    write!(f, "({name} {path} [")?;
                    for (i, x) in xs.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{x}")?;
                    }
                    f.write_str("])")
                };
                match pred {
                    Pred::IsNull => write!(f, "(null {path})"),
                    Pred::NotNull => write!(f, "(not-null {path})"),
                    Pred::Eq(x) => write!(f, "(eq {path} {x})"),
                    Pred::Ne(x) => write!(f, "(ne {path} {x})"),
                    Pred::Gt(x) => write!(f, "(gt {path} {x})"),
                    Pred::Ge(x) => write!(f, "(ge {path} {x})"),
                    Pred::Lt(x) => write!(f, "(lt {path} {x})"),
                    Pred::Le(x) => write!(f, "(le {path} {x})"),
                    Pred::StartsWith(s) => write!(f, "(sw {path} {s:?})"),
                    Pred::Contains(s) => write!(f, "(contains {path} {s:?})"),
                    Pred::In(xs) => list(f, "in", xs),
                    Pred::NotIn(xs) => list(f, "out", xs),
                }
            }
        }
    }
}
