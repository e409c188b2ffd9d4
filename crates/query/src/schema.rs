//! The fields a dialect exposes to queries, and binding a parsed query against them.

use std::fmt;

use uuid::Uuid;

use crate::ast::{Expr, Op, Operand, Spanned};
use crate::error::{ErrorKind, QueryError};
use crate::filter::{Column, Filter, Pred, Test, Value};
use crate::{is_field_path, iso8601};

/// The type of a field, which decides how query values are read and compared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Any text; compared by code point, case-sensitively. Binds to [`Value::Text`].
    Text,
    /// A signed 64-bit integer in decimal (`-12`). Binds to [`Value::Int`].
    Integer,
    /// An ISO 8601 date or date-time (see [`iso8601`]). Binds to [`Value::Timestamp`].
    Timestamp,
    /// A UUID in any of its usual spellings. Binds to [`Value::Uuid`].
    Uuid,
    /// One of the listed texts, exactly. Binds to [`Value::Text`].
    Enum(Vec<String>),
    /// `true` or `false`. Binds to [`Value::Bool`].
    Bool,
}

impl FieldType {
    /// The operators that make sense for the type, and that a field of it allows
    /// unless [`Field::with_ops`] narrows them:
    /// - Text: all of them;
    /// - Integer, Timestamp: equality, ordering, `in`, `out`;
    /// - Uuid, Enum: equality, `in`, `out`;
    /// - Bool: equality.
    ///
    /// The null tests `==null`/`!=null` count as [`Op::Eq`]/[`Op::Ne`].
    pub fn ops_supported(&self) -> &'static [Op] {
        use Op::*;
        match self {
            FieldType::Text => &Op::ALL,
            FieldType::Integer | FieldType::Timestamp => &[Eq, Ne, Gt, Ge, Lt, Le, In, Out],
            FieldType::Uuid | FieldType::Enum(_) => &[Eq, Ne, In, Out],
            FieldType::Bool => &[Eq, Ne],
        }
    }

    /// Reads one query value as this type, or says what was expected.
    fn read(&self, text: &str) -> Result<Value, String> {
        match self {
            FieldType::Text => Ok(Value::Text(text.to_owned())),
            FieldType::Integer => text
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| "an integer".to_owned()),
            FieldType::Timestamp => iso8601::parse_micros(text)
                .map(Value::Timestamp)
                .ok_or_else(|| "an ISO 8601 date or date-time".to_owned()),
            FieldType::Uuid => Uuid::try_parse(text)
                .map(Value::Uuid)
                .map_err(|_| "a UUID".to_owned()),
            FieldType::Enum(allowed) => {
                if allowed.iter().any(|a| a == text) {
                    Ok(Value::Text(text.to_owned()))
                } else {
                    Err(format!("one of {}", allowed.join(", ")))
                }
            }
            FieldType::Bool => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err("true or false".to_owned()),
            },
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Text => f.write_str("text"),
            FieldType::Integer => f.write_str("integer"),
            FieldType::Timestamp => f.write_str("timestamp"),
            FieldType::Uuid => f.write_str("uuid"),
            FieldType::Enum(allowed) => write!(f, "enum({})", allowed.join("|")),
            FieldType::Bool => f.write_str("bool"),
        }
    }
}

/// One queryable field: the path queries name it by, the SQL expression that reads it,
/// its type and the operators it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    path: String,
    column: Column,
    ty: FieldType,
    ops: u16,
}

impl Field {
    /// A field allowing every operator its type supports.
    ///
    /// `column` names the stored field the tests of this field read; the store that
    /// runs the filter says what it is ([`Filter::to_sql_with`]).
    ///
    /// # Panics
    /// If `path` is not a field path (names of ASCII letters, digits and `_` joined by
    /// dots, at most [`FIELD_LEN_MAX`](crate::FIELD_LEN_MAX) bytes) or `column` is
    /// empty: both come from the program, not from a request.
    pub fn new(path: impl Into<String>, column: impl Into<Column>, ty: FieldType) -> Self {
        let path = path.into();
        let column = column.into();
        assert!(is_field_path(&path), "invalid field path {path:?}");
        assert!(
            !column.name().trim().is_empty(),
            "empty column for field {path:?}"
        );
        let ops = ty.ops_supported().iter().fold(0, |set, op| set | op.bit());
        Self {
            path,
            column,
            ty,
            ops,
        }
    }

    /// The same field allowing only `ops`.
    ///
    /// # Panics
    /// If one of `ops` is not supported by the field's type.
    #[must_use]
    pub fn with_ops(mut self, ops: &[Op]) -> Self {
        let supported = self.ty.ops_supported();
        self.ops = 0;
        for &op in ops {
            assert!(
                supported.contains(&op),
                "operator {op} is not supported by {} field {:?}",
                self.ty,
                self.path
            );
            self.ops |= op.bit();
        }
        self
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn column(&self) -> &Column {
        &self.column
    }

    pub fn ty(&self) -> &FieldType {
        &self.ty
    }

    pub fn allows(&self, op: Op) -> bool {
        self.ops & op.bit() != 0
    }
}

/// The fields one dialect's queries may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    fields: Vec<Field>,
}

impl Schema {
    /// # Panics
    /// If two fields share a path.
    pub fn new(fields: Vec<Field>) -> Self {
        for (i, field) in fields.iter().enumerate() {
            assert!(
                fields[..i].iter().all(|f| f.path != field.path),
                "duplicate field path {:?}",
                field.path
            );
        }
        Self { fields }
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field(&self, path: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.path == path)
    }

    /// Checks `expr` against the schema and types its values.
    ///
    /// Errors point at the offending part of the query: an unknown field at the field,
    /// an operator the field does not allow at the operator, a value that does not read
    /// as the field's type at the value.
    pub fn bind(&self, expr: &Expr) -> Result<Filter, QueryError> {
        Ok(match expr {
            Expr::And(children) => Filter::And(self.bind_all(children)?),
            Expr::Or(children) => Filter::Or(self.bind_all(children)?),
            Expr::Not(inner) => Filter::Not(Box::new(self.bind(inner)?)),
            Expr::Cmp { field, op, value } => Filter::Test(self.bind_cmp(field, *op, value)?),
        })
    }

    fn bind_all(&self, children: &[Expr]) -> Result<Vec<Filter>, QueryError> {
        children.iter().map(|child| self.bind(child)).collect()
    }

    fn bind_cmp(
        &self,
        field: &Spanned<String>,
        op: Spanned<Op>,
        value: &Operand,
    ) -> Result<Test, QueryError> {
        let Some(def) = self.field(&field.node) else {
            return Err(QueryError::new(
                field.span.start,
                ErrorKind::UnknownField {
                    field: field.node.clone(),
                },
            ));
        };
        if !def.allows(op.node) {
            return Err(QueryError::new(
                op.span.start,
                ErrorKind::OpNotAllowed {
                    field: def.path.clone(),
                    op: op.node,
                },
            ));
        }
        let read = |v: &Spanned<String>| {
            def.ty.read(&v.node).map_err(|expected| {
                QueryError::new(
                    v.span.start,
                    ErrorKind::BadValue {
                        field: def.path.clone(),
                        expected,
                    },
                )
            })
        };
        let mismatch =
            || QueryError::new(op.span.start, ErrorKind::OperandMismatch { op: op.node });
        let pred = match (op.node, value) {
            (Op::Eq, Operand::Null(_)) => Pred::IsNull,
            (Op::Ne, Operand::Null(_)) => Pred::NotNull,
            (Op::Eq, Operand::One(v)) => Pred::Eq(read(v)?),
            (Op::Ne, Operand::One(v)) => Pred::Ne(read(v)?),
            (Op::Gt, Operand::One(v)) => Pred::Gt(read(v)?),
            (Op::Ge, Operand::One(v)) => Pred::Ge(read(v)?),
            (Op::Lt, Operand::One(v)) => Pred::Lt(read(v)?),
            (Op::Le, Operand::One(v)) => Pred::Le(read(v)?),
            (Op::StartsWith, Operand::One(v)) => Pred::StartsWith(v.node.clone()),
            (Op::Contains, Operand::One(v)) => Pred::Contains(v.node.clone()),
            (Op::In, Operand::List(vs)) if !vs.is_empty() => {
                Pred::In(vs.iter().map(read).collect::<Result<_, _>>()?)
            }
            (Op::Out, Operand::List(vs)) if !vs.is_empty() => {
                Pred::NotIn(vs.iter().map(read).collect::<Result<_, _>>()?)
            }
            _ => return Err(mismatch()),
        };
        Ok(Test {
            path: def.path.clone(),
            column: def.column.clone(),
            pred,
        })
    }
}
