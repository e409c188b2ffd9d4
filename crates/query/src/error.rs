//! Positioned errors of parsing and binding, and their caret rendering.

use crate::ast::Op;

/// What went wrong with a query, and the byte offset it points at.
///
/// `Display` gives `"{kind} at {offset}"`; [`QueryError::render`] adds the query with a
/// caret under the offending spot, for messages shown to the person who wrote the query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at {offset}")]
#[non_exhaustive]
pub struct QueryError {
    /// Byte offset into the query (at most its length; [`ErrorKind::QueryTooLong`]
    /// points at the first byte past [`crate::QUERY_LEN_MAX`]).
    pub offset: usize,
    pub kind: ErrorKind,
}

/// The kinds of [`QueryError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("query is longer than {max} bytes")]
    QueryTooLong { max: usize },
    #[error("expected {expected}, found {found}")]
    Expected {
        expected: &'static str,
        /// What stands there instead: a quoted snippet or `end of input`.
        found: String,
    },
    #[error("control character U+{code:04X} is not allowed")]
    ControlChar { code: u32 },
    #[error("quoted value is not closed")]
    UnterminatedValue,
    #[error("unknown operator `{operator}`")]
    UnknownOperator { operator: String },
    #[error("a list of values is only allowed after =in= or =out=")]
    UnexpectedList,
    #[error("null can only follow == or !=")]
    UnexpectedNull,
    #[error("nesting is deeper than {max}")]
    TooDeep { max: usize },
    #[error("more than {max} comparisons")]
    TooManyTerms { max: usize },
    #[error("value is longer than {max} bytes")]
    ValueTooLong { max: usize },
    #[error("more than {max} values in a list")]
    ListTooLong { max: usize },
    #[error("field name is longer than {max} bytes")]
    FieldTooLong { max: usize },
    #[error("unknown field `{field}`")]
    UnknownField { field: String },
    #[error("`{field}` cannot be compared with \"{}\"", op.describe())]
    OpNotAllowed { field: String, op: Op },
    #[error("\"{}\" does not take this kind of value", op.describe())]
    OperandMismatch { op: Op },
    #[error("expected {expected} for `{field}`")]
    BadValue { field: String, expected: String },
}

/// How many characters of the query a rendering shows on each side of the caret.
const RENDER_CONTEXT_CHARS: usize = 32;
/// How many characters of the offending token an `Expected` error quotes.
const FOUND_CHARS_MAX: usize = 16;

impl QueryError {
    pub(crate) fn new(offset: usize, kind: ErrorKind) -> Self {
        Self { offset, kind }
    }

    /// An `Expected` error at `pos`, quoting what stands there in `src`.
    pub(crate) fn expected(src: &str, pos: usize, expected: &'static str) -> Self {
        Self::new(
            pos,
            ErrorKind::Expected {
                expected,
                found: found_at(src, pos),
            },
        )
    }

    /// The error with the query quoted and a caret under the offset, on two lines:
    ///
    /// ```text
    /// expected a comparison operator, found '=' at 15: amountOfMinutes=600
    ///                                                                 ^
    /// ```
    ///
    /// Long queries are cut to a window around the offset, marked with `…`; control
    /// characters show as spaces so the caret stays aligned (it counts characters, so
    /// double-width characters before it shift it).
    pub fn render(&self, query: &str) -> String {
        let at = floor_char_boundary(query, self.offset.min(query.len()));
        let before: Vec<char> = query[..at].chars().collect();
        let after: Vec<char> = query[at..].chars().collect();
        let mut shown = String::new();
        let mut caret_col = 0;
        if before.len() > RENDER_CONTEXT_CHARS {
            shown.push('…');
            caret_col += 1;
        }
        for &c in &before[before.len().saturating_sub(RENDER_CONTEXT_CHARS)..] {
            shown.push(printable(c));
            caret_col += 1;
        }
        for &c in after.iter().take(RENDER_CONTEXT_CHARS) {
            shown.push(printable(c));
        }
        if after.len() > RENDER_CONTEXT_CHARS {
            shown.push('…');
        }
        let head = format!("{self}: ");
        let pad = head.chars().count() + caret_col;
        format!("{head}{shown}\n{:pad$}^", "")
    }
}

fn printable(c: char) -> char {
    if c.is_control() { ' ' } else { c }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Describes what stands at `pos`: a run of word characters, or one character.
fn found_at(src: &str, pos: usize) -> String {
    let rest = &src[floor_char_boundary(src, pos.min(src.len()))..];
    let Some(first) = rest.chars().next() else {
        return "end of input".to_owned();
    };
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let snippet: String = if word(first) {
        rest.chars()
            .take_while(|&c| word(c))
            .take(FOUND_CHARS_MAX)
            .collect()
    } else {
        first.to_string()
    };
    format!("'{}'", snippet.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_at_offset() {
        let q = "amountOfMinutes=600";
        let err = QueryError::expected(q, 15, "a comparison operator");
        let text = err.render(q);
        let (line, caret) = text.split_once('\n').unwrap();
        assert_eq!(
            line,
            "expected a comparison operator, found '=' at 15: amountOfMinutes=600"
        );
        let col = caret.chars().count() - 1;
        assert_eq!(line.chars().nth(col), Some('='));
    }

    #[test]
    fn render_windows_long_queries_and_survives_odd_offsets() {
        let q = format!("{}x{}", "é".repeat(100), "b".repeat(100));
        let err = QueryError::new(200, ErrorKind::UnterminatedValue);
        let text = err.render(&q);
        let (line, caret) = text.split_once('\n').unwrap();
        assert!(line.contains('…'));
        assert_eq!(line.chars().nth(caret.chars().count() - 1), Some('x'));
        // An offset inside a character or past the end still renders.
        QueryError::new(1, ErrorKind::UnterminatedValue).render(&q);
        QueryError::new(10_000, ErrorKind::UnterminatedValue).render(&q);
    }

    #[test]
    fn found_describes_words_chars_and_end() {
        assert_eq!(found_at("a ne 'x'", 2), "'ne'");
        assert_eq!(found_at("a=", 1), "'='");
        assert_eq!(found_at("a", 1), "end of input");
        assert_eq!(found_at("'\n", 1), "'\\n'");
    }
}
