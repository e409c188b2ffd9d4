//! Talkdesk's wallet filter: `name eq 'x' and not contains(product_name, 'y')`.
//!
//! # Grammar (EBNF)
//!
//! ```text
//! filter     = or ;
//! or         = and , { "or" , and } ;
//! and        = unary , { "and" , unary } ;
//! unary      = "not" , unary | primary ;          (* precedence: not > and > or *)
//! primary    = "(" , or , ")"
//!            | "contains" , "(" , field , "," , string , ")"
//!            | field , "eq" , string ;
//! field      = name , { "." , name } ;
//! name       = ( letter | "_" ) , { letter | digit | "_" } ;   (* ASCII *)
//! string     = "'" , { ? any char but ' ? | "''" } , "'" ;     (* '' is one quote *)
//! ```
//!
//! - Keywords (`and`, `or`, `not`, `eq`, `contains`) are lower-case and end at the
//!   first character that cannot continue a name. `and`, `or` and `not` cannot be field
//!   names; `contains` is the function only when a `(` follows it, and otherwise a field
//!   name like any other.
//! - Space, tab, carriage return and line feed may stand between any two tokens;
//!   other control characters are rejected, as is any control character in a value.
//! - Every `not` and every parenthesis counts towards [`DEPTH_MAX`].

use crate::ast::{Expr, Op, Operand, Span, Spanned};
use crate::error::{ErrorKind, QueryError};
use crate::{DEPTH_MAX, TERMS_MAX, VALUE_LEN_MAX, check_len, is_name_char, scan_field_path};

/// Parses a Talkdesk filter.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    check_len(query)?;
    if let Some((i, c)) = query
        .char_indices()
        .find(|&(_, c)| c.is_control() && !is_space(c))
    {
        return Err(QueryError::new(
            i,
            ErrorKind::ControlChar { code: u32::from(c) },
        ));
    }
    let mut parser = Parser {
        src: query,
        pos: 0,
        depth: 0,
        terms: 0,
    };
    let expr = parser.or()?;
    parser.skip_space();
    if parser.pos < query.len() {
        return Err(QueryError::expected(
            query,
            parser.pos,
            "`and`, `or` or end of input",
        ));
    }
    Ok(expr)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    terms: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// Whether `word` stands at the current position as a whole word.
    fn at_keyword(&self, word: &str) -> bool {
        let rest = &self.src[self.pos..];
        rest.starts_with(word)
            && !rest[word.len()..]
                .chars()
                .next()
                .is_some_and(|c| is_name_char(c) || c == '.')
    }

    /// Skips space, then consumes `word` if it stands there as a whole word.
    fn eat_keyword(&mut self, word: &str) -> bool {
        self.skip_space();
        if self.at_keyword(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// Skips space, then consumes `c` or reports `expected`.
    fn expect(&mut self, c: char, expected: &'static str) -> Result<(), QueryError> {
        self.skip_space();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(QueryError::expected(self.src, self.pos, expected))
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(QueryError::new(at, ErrorKind::TooDeep { max: DEPTH_MAX }));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut children = vec![self.and()?];
        while self.eat_keyword("or") {
            children.push(self.and()?);
        }
        Ok(if children.len() == 1 {
            children.swap_remove(0)
        } else {
            Expr::Or(children)
        })
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut children = vec![self.unary()?];
        while self.eat_keyword("and") {
            children.push(self.unary()?);
        }
        Ok(if children.len() == 1 {
            children.swap_remove(0)
        } else {
            Expr::And(children)
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        self.skip_space();
        let start = self.pos;
        if !self.eat_keyword("not") {
            return self.primary();
        }
        self.enter(start)?;
        let inner = self.unary()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        self.skip_space();
        let start = self.pos;
        if self.peek() == Some('(') {
            self.pos += 1;
            self.enter(start)?;
            let inner = self.or()?;
            self.expect(')', "`and`, `or` or `)`")?;
            self.depth -= 1;
            return Ok(inner);
        }
        if self.at_keyword("contains") {
            let after = self.pos + "contains".len();
            let paren = after
                + self.src[after..]
                    .chars()
                    .take_while(|&c| is_space(c))
                    .count();
            if self.src[paren..].starts_with('(') {
                self.pos = paren + 1;
                let op = Spanned::new(Op::Contains, Span::new(start, after));
                self.skip_space();
                let field = self.field()?;
                self.expect(',', "`,`")?;
                let value = self.string()?;
                self.expect(')', "`)`")?;
                return Ok(Expr::Cmp {
                    field,
                    op,
                    value: Operand::One(value),
                });
            }
        }
        // `and` and `or` here are a missing comparison, never a field of that name.
        let keyword = self.at_keyword("and") || self.at_keyword("or");
        if keyword || !self.peek().is_some_and(crate::is_name_start) {
            return Err(QueryError::expected(
                self.src,
                self.pos,
                "a comparison, `not` or `(`",
            ));
        }
        let field = self.field()?;
        self.skip_space();
        let op_start = self.pos;
        if !self.eat_keyword("eq") {
            return Err(QueryError::expected(self.src, self.pos, "`eq`"));
        }
        let op = Spanned::new(Op::Eq, Span::new(op_start, self.pos));
        let value = self.string()?;
        Ok(Expr::Cmp {
            field,
            op,
            value: Operand::One(value),
        })
    }

    fn field(&mut self) -> Result<Spanned<String>, QueryError> {
        let start = self.pos;
        let end = scan_field_path(self.src, start)?;
        self.terms += 1;
        if self.terms > TERMS_MAX {
            return Err(QueryError::new(
                start,
                ErrorKind::TooManyTerms { max: TERMS_MAX },
            ));
        }
        self.pos = end;
        Ok(Spanned::new(
            self.src[start..end].to_owned(),
            Span::new(start, end),
        ))
    }

    fn string(&mut self) -> Result<Spanned<String>, QueryError> {
        self.skip_space();
        let start = self.pos;
        if self.peek() != Some('\'') {
            return Err(QueryError::expected(
                self.src,
                start,
                "a value in single quotes",
            ));
        }
        self.pos += 1;
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(QueryError::new(start, ErrorKind::UnterminatedValue));
            };
            if c.is_control() {
                return Err(QueryError::new(
                    self.pos,
                    ErrorKind::ControlChar { code: u32::from(c) },
                ));
            }
            self.pos += c.len_utf8();
            if c == '\'' {
                if self.peek() == Some('\'') {
                    self.pos += 1;
                } else {
                    break;
                }
            }
            text.push(c);
        }
        if text.len() > VALUE_LEN_MAX {
            return Err(QueryError::new(
                start,
                ErrorKind::ValueTooLong { max: VALUE_LEN_MAX },
            ));
        }
        Ok(Spanned::new(text, Span::new(start, self.pos)))
    }
}

/// Writes `expr` as a Talkdesk filter that [`parse`] reads back to the same tree.
///
/// Returns `None` if the tree uses what the language lacks: any operator but `eq` and
/// `contains`, or a null or list operand. Tokens are separated by single spaces, so the
/// text may exceed [`QUERY_LEN_MAX`](crate::QUERY_LEN_MAX) even when the parsed query
/// did not.
pub fn render(expr: &Expr) -> Option<String> {
    let mut out = String::new();
    write_expr(expr, &mut out)?;
    Some(out)
}

fn write_expr(expr: &Expr, out: &mut String) -> Option<()> {
    match expr {
        Expr::Or(children) => {
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    out.push_str(" or ");
                }
                write_child(child, matches!(child, Expr::Or(_)), out)?;
            }
        }
        Expr::And(children) => {
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    out.push_str(" and ");
                }
                write_child(child, matches!(child, Expr::Or(_) | Expr::And(_)), out)?;
            }
        }
        Expr::Not(inner) => {
            out.push_str("not ");
            write_child(inner, matches!(**inner, Expr::Or(_) | Expr::And(_)), out)?;
        }
        Expr::Cmp { field, op, value } => {
            let Operand::One(value) = value else {
                return None;
            };
            match op.node {
                Op::Eq => {
                    out.push_str(&field.node);
                    out.push_str(" eq ");
                    write_value(&value.node, out);
                }
                Op::Contains => {
                    out.push_str("contains(");
                    out.push_str(&field.node);
                    out.push_str(", ");
                    write_value(&value.node, out);
                    out.push(')');
                }
                _ => return None,
            }
        }
    }
    Some(())
}

fn write_child(child: &Expr, parenthesise: bool, out: &mut String) -> Option<()> {
    if parenthesise {
        out.push('(');
        write_expr(child, out)?;
        out.push(')');
        Some(())
    } else {
        write_expr(child, out)
    }
}

fn write_value(value: &str, out: &mut String) {
    out.push('\'');
    out.push_str(&value.replace('\'', "''"));
    out.push('\'');
}
