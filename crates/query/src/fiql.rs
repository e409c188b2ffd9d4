//! FIQL as TOPdesk uses it: `amountOfMinutes=ge=600;on.type==EXTERNAL`.
//!
//! # Grammar (EBNF)
//!
//! ```text
//! query      = or ;
//! or         = and , { "," , and } ;                      (* "," is OR *)
//! and        = primary , { ";" , primary } ;              (* ";" is AND, binds tighter *)
//! primary    = "(" , or , ")" | comparison ;
//! comparison = selector , operator , argument ;
//! selector   = name , { "." , name } ;
//! name       = ( letter | "_" ) , { letter | digit | "_" } ;   (* ASCII *)
//! operator   = "==" | "!=" | "=gt=" | "=ge=" | "=lt=" | "=le=" | "=sw=" | "=in=" | "=out=" ;
//! argument   = "(" , value , { "," , value } , ")"        (* only after =in= and =out= *)
//!            | value ;
//! value      = quoted | unquoted ;
//! quoted     = "'" , { ? any char but ' and \ ? | "\" , ? any char ? } , "'"
//!            | '"' , { ? any char but " and \ ? | "\" , ? any char ? } , '"' ;
//! unquoted   = unreserved , { unreserved } ;
//! unreserved = ? any char but the reserved " ' ( ) ; , = ! ~ < > and white space ? ;
//! ```
//!
//! - There is no white space between tokens: a space ends an unquoted value, and what
//!   follows must then be `;`, `,`, `)` or the end.
//! - The unquoted value `null` after `==` or `!=` is the null test (`on.type==null`);
//!   anywhere else it is an error. A quoted `'null'` is the text `null`.
//! - Inside quotes a backslash makes the next character literal (`'it\'s'`, `"a\\b"`).
//! - `=in=` and `=out=` also take a bare value, read as a list of one.
//! - Control characters are rejected anywhere; values are bounded by
//!   [`VALUE_LEN_MAX`], lists by
//!   [`IN_LIST_LEN_MAX`].
//! - Operators are lower-case; `=GT=` is an unknown operator.

use crate::ast::{Expr, Op, Operand, Span, Spanned};
use crate::error::{ErrorKind, QueryError};
use crate::{DEPTH_MAX, IN_LIST_LEN_MAX, TERMS_MAX, VALUE_LEN_MAX, check_len, scan_field_path};

/// Parses a FIQL query.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    check_len(query)?;
    if let Some((i, c)) = query.char_indices().find(|(_, c)| c.is_control()) {
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
    if parser.pos < query.len() {
        return Err(QueryError::expected(
            query,
            parser.pos,
            "`;`, `,` or end of input",
        ));
    }
    Ok(expr)
}

/// Whether `c` ends an unquoted value.
fn is_reserved(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '(' | ')' | ';' | ',' | '=' | '!' | '~' | '<' | '>'
    ) || c.is_whitespace()
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

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let first = self.and()?;
        if self.peek() != Some(',') {
            return Ok(first);
        }
        let mut children = vec![first];
        while self.eat(',') {
            children.push(self.and()?);
        }
        Ok(Expr::Or(children))
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let first = self.primary()?;
        if self.peek() != Some(';') {
            return Ok(first);
        }
        let mut children = vec![first];
        while self.eat(';') {
            children.push(self.primary()?);
        }
        Ok(Expr::And(children))
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let open = self.pos;
        if !self.eat('(') {
            return self.comparison();
        }
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(QueryError::new(open, ErrorKind::TooDeep { max: DEPTH_MAX }));
        }
        let inner = self.or()?;
        if !self.eat(')') {
            return Err(QueryError::expected(self.src, self.pos, "`;`, `,` or `)`"));
        }
        self.depth -= 1;
        Ok(inner)
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let start = self.pos;
        if !self.peek().is_some_and(crate::is_name_start) {
            return Err(QueryError::expected(self.src, start, "a field name or `(`"));
        }
        let end = scan_field_path(self.src, start)?;
        self.terms += 1;
        if self.terms > TERMS_MAX {
            return Err(QueryError::new(
                start,
                ErrorKind::TooManyTerms { max: TERMS_MAX },
            ));
        }
        let field = Spanned::new(self.src[start..end].to_owned(), Span::new(start, end));
        self.pos = end;
        let op = self.operator()?;
        let value = self.argument(op.node)?;
        Ok(Expr::Cmp { field, op, value })
    }

    fn operator(&mut self) -> Result<Spanned<Op>, QueryError> {
        let start = self.pos;
        let rest = &self.src[start..];
        let (op, len) = if rest.starts_with("==") {
            (Op::Eq, 2)
        } else if rest.starts_with("!=") {
            (Op::Ne, 2)
        } else if let Some(word) = rest.strip_prefix('=') {
            let word_len = word.bytes().take_while(u8::is_ascii_alphabetic).count();
            if word_len == 0 || word.as_bytes().get(word_len) != Some(&b'=') {
                return Err(QueryError::expected(
                    self.src,
                    start,
                    "a comparison operator",
                ));
            }
            let op = match &word[..word_len] {
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                "sw" => Op::StartsWith,
                "in" => Op::In,
                "out" => Op::Out,
                other => {
                    return Err(QueryError::new(
                        start,
                        ErrorKind::UnknownOperator {
                            operator: format!("={other}="),
                        },
                    ));
                }
            };
            (op, word_len + 2)
        } else {
            return Err(QueryError::expected(
                self.src,
                start,
                "a comparison operator",
            ));
        };
        self.pos += len;
        Ok(Spanned::new(op, Span::new(start, self.pos)))
    }

    fn argument(&mut self, op: Op) -> Result<Operand, QueryError> {
        let is_list_op = matches!(op, Op::In | Op::Out);
        if self.peek() == Some('(') {
            if !is_list_op {
                return Err(QueryError::new(self.pos, ErrorKind::UnexpectedList));
            }
            self.pos += 1;
            let mut values = Vec::new();
            loop {
                let value = self.value()?.text()?;
                if values.len() == IN_LIST_LEN_MAX {
                    return Err(QueryError::new(
                        value.span.start,
                        ErrorKind::ListTooLong {
                            max: IN_LIST_LEN_MAX,
                        },
                    ));
                }
                values.push(value);
                if self.eat(')') {
                    return Ok(Operand::List(values));
                }
                if !self.eat(',') {
                    return Err(QueryError::expected(self.src, self.pos, "`,` or `)`"));
                }
            }
        }
        match self.value()? {
            RawValue::Null(span) if matches!(op, Op::Eq | Op::Ne) => Ok(Operand::Null(span)),
            raw if is_list_op => Ok(Operand::List(vec![raw.text()?])),
            raw => Ok(Operand::One(raw.text()?)),
        }
    }

    fn value(&mut self) -> Result<RawValue, QueryError> {
        let start = self.pos;
        let text = match self.peek() {
            Some(quote @ ('\'' | '"')) => {
                self.pos += 1;
                let mut text = String::new();
                loop {
                    let Some(c) = self.peek() else {
                        return Err(QueryError::new(start, ErrorKind::UnterminatedValue));
                    };
                    self.pos += c.len_utf8();
                    if c == quote {
                        break;
                    }
                    if c == '\\' {
                        let Some(escaped) = self.peek() else {
                            return Err(QueryError::new(start, ErrorKind::UnterminatedValue));
                        };
                        self.pos += escaped.len_utf8();
                        text.push(escaped);
                    } else {
                        text.push(c);
                    }
                }
                text
            }
            _ => {
                let len: usize = self.src[start..]
                    .chars()
                    .take_while(|&c| !is_reserved(c))
                    .map(char::len_utf8)
                    .sum();
                if len == 0 {
                    return Err(QueryError::expected(self.src, start, "a value"));
                }
                self.pos += len;
                let text = &self.src[start..self.pos];
                if text == "null" {
                    return Ok(RawValue::Null(Span::new(start, self.pos)));
                }
                text.to_owned()
            }
        };
        if text.len() > VALUE_LEN_MAX {
            return Err(QueryError::new(
                start,
                ErrorKind::ValueTooLong { max: VALUE_LEN_MAX },
            ));
        }
        Ok(RawValue::Text(Spanned::new(
            text,
            Span::new(start, self.pos),
        )))
    }
}

/// A value as read, before the operator decides whether a bare `null` may stand there.
enum RawValue {
    Null(Span),
    Text(Spanned<String>),
}

impl RawValue {
    fn text(self) -> Result<Spanned<String>, QueryError> {
        match self {
            RawValue::Text(v) => Ok(v),
            RawValue::Null(span) => Err(QueryError::new(span.start, ErrorKind::UnexpectedNull)),
        }
    }
}

/// Writes `expr` as FIQL that [`parse`] reads back to the same tree.
///
/// Returns `None` if the tree uses what FIQL lacks: `not`, `contains`, or an operand
/// that does not fit its operator. Values are left unquoted where FIQL allows it, and
/// otherwise quoted with whichever quote needs fewer escapes. The text may exceed
/// [`QUERY_LEN_MAX`](crate::QUERY_LEN_MAX) even when the parsed query did not (a bare
/// `=in=` value gains parentheses, a value gains quotes).
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
                    out.push(',');
                }
                write_child(child, matches!(child, Expr::Or(_)), out)?;
            }
        }
        Expr::And(children) => {
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    out.push(';');
                }
                write_child(child, matches!(child, Expr::Or(_) | Expr::And(_)), out)?;
            }
        }
        Expr::Not(_) => return None,
        Expr::Cmp { field, op, value } => {
            out.push_str(&field.node);
            out.push_str(match op.node {
                Op::Eq => "==",
                Op::Ne => "!=",
                Op::Gt => "=gt=",
                Op::Ge => "=ge=",
                Op::Lt => "=lt=",
                Op::Le => "=le=",
                Op::StartsWith => "=sw=",
                Op::In => "=in=",
                Op::Out => "=out=",
                Op::Contains => return None,
            });
            match (op.node, value) {
                (Op::Eq | Op::Ne, Operand::Null(_)) => out.push_str("null"),
                (Op::In | Op::Out, Operand::List(values)) if !values.is_empty() => {
                    out.push('(');
                    for (i, v) in values.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        write_value(&v.node, out);
                    }
                    out.push(')');
                }
                (Op::In | Op::Out, _) | (_, Operand::Null(_) | Operand::List(_)) => return None,
                (_, Operand::One(v)) => write_value(&v.node, out),
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
    if !value.is_empty() && value != "null" && !value.chars().any(is_reserved) {
        out.push_str(value);
        return;
    }
    let quote = if value.contains('\'') && !value.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in value.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(quote);
}
