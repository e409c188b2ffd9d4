//! The syntax tree both languages parse into, before any schema is known.
//!
//! Nodes keep the byte spans they came from so that binding can point its errors at the
//! query. Spans take no part in the tree's [`Display`](std::fmt::Display), which prints
//! a language-neutral s-expression: two trees print the same exactly when they have the
//! same shape, fields, operators and values.

use std::fmt;

/// A byte range `start..end` of the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }
}

/// A node together with the span of query text it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub const fn new(node: T, span: Span) -> Self {
        Self { node, span }
    }
}

/// A comparison operator, as written in either language.
///
/// FIQL's `==null` and `!=null` are [`Op::Eq`] and [`Op::Ne`] with [`Operand::Null`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// FIQL `==`, Talkdesk `eq`.
    Eq,
    /// FIQL `!=`.
    Ne,
    /// FIQL `=gt=`.
    Gt,
    /// FIQL `=ge=`.
    Ge,
    /// FIQL `=lt=`.
    Lt,
    /// FIQL `=le=`.
    Le,
    /// FIQL `=sw=`.
    StartsWith,
    /// Talkdesk `contains(field, 'v')`.
    Contains,
    /// FIQL `=in=(a,b)`.
    In,
    /// FIQL `=out=(a,b)`.
    Out,
}

impl Op {
    /// Every operator, in declaration order.
    pub const ALL: [Op; 10] = [
        Op::Eq,
        Op::Ne,
        Op::Gt,
        Op::Ge,
        Op::Lt,
        Op::Le,
        Op::StartsWith,
        Op::Contains,
        Op::In,
        Op::Out,
    ];

    /// A short language-neutral name: `eq`, `ne`, `gt`, `ge`, `lt`, `le`, `sw`,
    /// `contains`, `in`, `out`.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::StartsWith => "sw",
            Op::Contains => "contains",
            Op::In => "in",
            Op::Out => "out",
        }
    }

    /// What the operator tests, in words, for error messages.
    pub const fn describe(self) -> &'static str {
        match self {
            Op::Eq => "equals",
            Op::Ne => "not equals",
            Op::Gt => "greater than",
            Op::Ge => "greater than or equal",
            Op::Lt => "less than",
            Op::Le => "less than or equal",
            Op::StartsWith => "starts with",
            Op::Contains => "contains",
            Op::In => "in a list",
            Op::Out => "not in a list",
        }
    }

    pub(crate) const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The right-hand side of a comparison, as text not yet typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// FIQL's unquoted `null`.
    Null(Span),
    /// One value, unquoted and unescaped.
    One(Spanned<String>),
    /// The values of an `=in=`/`=out=` list (a bare value there is a list of one).
    List(Vec<Spanned<String>>),
}

/// A filter expression. `And` and `Or` produced by the parsers have at least two
/// children; a parenthesised group stays a nested node, so rendering keeps the shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: Spanned<String>,
        op: Spanned<Op>,
        value: Operand,
    },
}

impl Expr {
    /// The number of comparisons in the tree.
    pub fn terms(&self) -> usize {
        match self {
            Expr::And(children) | Expr::Or(children) => children.iter().map(Expr::terms).sum(),
            Expr::Not(inner) => inner.terms(),
            Expr::Cmp { .. } => 1,
        }
    }
}

/// Prints `(and (eq on.type "EXTERNAL") (in id ["a", "b"]))`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(children) | Expr::Or(children) => {
                f.write_str(if matches!(self, Expr::And(_)) {
                    "(and"
                } else {
                    "(or"
                })?;
                for child in children {
                    write!(f, " {child}")?;
                }
                f.write_str(")")
            }
            Expr::Not(inner) => write!(f, "(not {inner})"),
            Expr::Cmp { field, op, value } => {
                write!(f, "({} {} ", op.node, field.node)?;
                match value {
                    Operand::Null(_) => f.write_str("null")?,
                    Operand::One(v) => write!(f, "{:?}", v.node)?,
                    Operand::List(values) => {
                        f.write_str("[")?;
                        for (i, v) in values.iter().enumerate() {
                            if i > 0 {
                                f.write_str(", ")?;
                            }
                            write!(f, "{:?}", v.node)?;
                        }
                        f.write_str("]")?;
                    }
                }
                f.write_str(")")
            }
        }
    }
}
