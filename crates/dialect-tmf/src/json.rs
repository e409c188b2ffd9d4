//! JSON numbers as text, in and out, without floating point.
//!
//! serde_json (as this workspace builds it) reads a number with a fraction into an
//! `f64`, which cannot hold most decimal amounts exactly. So:
//!
//! - [`number_texts`] walks the raw request body once and records the text of every
//!   number by its JSON pointer (`/amount/amount`), for the amount parser to read;
//! - answers are built as `serde_json::Value`s in which an exact decimal is a string
//!   marked by [`decimal`], and [`to_vec`] writes such a string as a bare JSON number.
//!
//! The walker expects a document serde_json has already accepted; on anything else it
//! stops and answers what it found so far (a missing text makes the amount parser
//! refuse the amount, never guess it). Its nesting is bounded by [`DEPTH_MAX`],
//! serde_json's own limit.

use super::amount;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

/// The deepest nesting walked (serde_json refuses deeper documents anyway).
pub const DEPTH_MAX: usize = 128;

/// The prefix that marks a string of an answer as an exact decimal to be written as a
/// JSON number. It starts with a NUL character, which no text of prepaid's own holds.
pub const DECIMAL_MARK: &str = "\u{0}decimal:";

/// A JSON number with exactly this decimal text (which must follow the grammar of
/// [`amount`]), for an answer written by [`to_vec`].
pub fn decimal(text: String) -> Value {
    Value::String(format!("{DECIMAL_MARK}{text}"))
}

/// The text a scalar member compares by in filters and hub queries: a string as it is
/// (an exact decimal of an answer by its decimal text), a number or boolean by its
/// JSON text; `None` for null, arrays and objects.
pub fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s.strip_prefix(DECIMAL_MARK).unwrap_or(s))),
        Value::Number(_) | Value::Bool(_) => Some(Cow::Owned(v.to_string())),
        _ => None,
    }
}

/// Whether the member of `v` at `path` is a scalar whose [`scalar_text`] is `want`. An
/// array on the way matches when any of its items does, so `relatedParty.id` looks in
/// every party.
pub fn member_is<S: AsRef<str>>(v: &Value, path: &[S], want: &str) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|item| member_is(item, path, want)),
        _ => match path.split_first() {
            None => scalar_is(v, want),
            Some((first, rest)) => v
                .get(first.as_ref())
                .is_some_and(|inner| member_is(inner, rest, want)),
        },
    }
}

/// Whether the scalar `v` is `want`: a number (a JSON number or an exact decimal of an
/// answer) equals any text of the same value (`3` is `3.00`), anything else compares
/// by its [`scalar_text`].
fn scalar_is(v: &Value, want: &str) -> bool {
    let Some(text) = scalar_text(v) else {
        return false;
    };
    let is_number = matches!(v, Value::Number(_))
        || matches!(v, Value::String(s) if s.starts_with(DECIMAL_MARK));
    if is_number && let (Some(a), Some(b)) = (amount::canonical(&text), amount::canonical(want)) {
        return a == b;
    }
    text == want
}

/// How the scalar member of `v` at `path` compares with `want`, for TMF630's
/// orderings: numbers (a JSON number or an exact decimal) by value, date-times by
/// instant; `None` when the member is absent or of another kind than `want`. An array
/// on the way gives the first item that compares.
pub fn member_ordered<S: AsRef<str>>(
    v: &Value,
    path: &[S],
    want: &str,
) -> Option<std::cmp::Ordering> {
    match v {
        Value::Array(items) => items
            .iter()
            .find_map(|item| member_ordered(item, path, want)),
        _ => match path.split_first() {
            Some((first, rest)) => member_ordered(v.get(first.as_ref())?, rest, want),
            None => {
                let text = scalar_text(v)?;
                let is_number = matches!(v, Value::Number(_))
                    || matches!(v, Value::String(s) if s.starts_with(DECIMAL_MARK));
                if is_number {
                    return amount::compare(&text, want);
                }
                let (a, b) = (
                    prepaid_edge::time::parse(&text).ok()?,
                    prepaid_edge::time::parse(want).ok()?,
                );
                Some(a.cmp(&b))
            }
        },
    }
}

/// Writes `value` as JSON; strings made by [`decimal`] become bare numbers. A marked
/// string whose text is not a decimal stays a string, so the output is always JSON.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write(&mut out, value);
    out
}

fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => match s.strip_prefix(DECIMAL_MARK) {
            Some(text) if amount::is_decimal(text) => out.extend_from_slice(text.as_bytes()),
            // Serialising a string into a Vec cannot fail.
            _ => {
                let _ = serde_json::to_writer(&mut *out, s);
            }
        },
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, key);
                out.push(b':');
                write(out, item);
            }
            out.push(b'}');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// The text of every number in the JSON document `bytes`, by JSON pointer (RFC 6901:
/// `/amount/amount`, `/items/0/value`).
pub fn number_texts(bytes: &[u8]) -> HashMap<String, String> {
    let mut walker = Walker {
        src: bytes,
        pos: 0,
        found: HashMap::new(),
    };
    let mut path = String::new();
    walker.value(&mut path, 0);
    walker.found
}

struct Walker<'a> {
    src: &'a [u8],
    pos: usize,
    found: HashMap<String, String>,
}

impl Walker<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.src.len()
            && matches!(self.src[self.pos], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// Walks one value; `false` when the document ends or breaks off.
    fn value(&mut self, path: &mut String, depth: usize) -> bool {
        if depth > DEPTH_MAX {
            return false;
        }
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.object(path, depth),
            Some(b'[') => self.array(path, depth),
            Some(b'"') => self.string().is_some(),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while self.pos < self.src.len()
                    && matches!(
                        self.src[self.pos],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.pos += 1;
                }
                if let Ok(text) = std::str::from_utf8(&self.src[start..self.pos]) {
                    self.found.insert(path.clone(), text.to_owned());
                }
                true
            }
            Some(b't' | b'f' | b'n') => {
                while self.pos < self.src.len() && self.src[self.pos].is_ascii_alphabetic() {
                    self.pos += 1;
                }
                true
            }
            _ => false,
        }
    }

    fn object(&mut self, path: &mut String, depth: usize) -> bool {
        self.pos += 1;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return true;
                }
                Some(b',') => {
                    self.pos += 1;
                }
                Some(b'"') => {
                    let Some(key) = self.string() else {
                        return false;
                    };
                    self.skip_ws();
                    if self.peek() != Some(b':') {
                        return false;
                    }
                    self.pos += 1;
                    let len = path.len();
                    path.push('/');
                    path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    let ok = self.value(path, depth + 1);
                    path.truncate(len);
                    if !ok {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }

    fn array(&mut self, path: &mut String, depth: usize) -> bool {
        self.pos += 1;
        let mut index = 0usize;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return true;
                }
                Some(b',') => {
                    self.pos += 1;
                }
                Some(_) => {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&index.to_string());
                    let ok = self.value(path, depth + 1);
                    path.truncate(len);
                    if !ok {
                        return false;
                    }
                    index += 1;
                }
                None => return false,
            }
        }
    }

    /// Reads a string at the cursor and returns it unescaped.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        while self.pos < self.src.len() {
            let b = self.src[self.pos];
            self.pos += 1;
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                // serde_json unescapes exactly as JSON says.
                return serde_json::from_slice(&self.src[start..self.pos]).ok();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_every_number_by_pointer() {
        let body = br#"{"amount": {"amount": 2.675, "units": "USD"},
            "list": [1, {"a/b": -0.1e-2}, "3"], "t": true, "n": null, "s": "x\"}{1"}"#;
        let found = number_texts(body);
        assert_eq!(
            found.get("/amount/amount").map(String::as_str),
            Some("2.675")
        );
        assert_eq!(found.get("/list/0").map(String::as_str), Some("1"));
        assert_eq!(
            found.get("/list/1/a~1b").map(String::as_str),
            Some("-0.1e-2")
        );
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn broken_documents_end_the_walk() {
        assert!(number_texts(b"").is_empty());
        assert!(number_texts(b"{\"a\": ").is_empty());
        let deep = "[".repeat(DEPTH_MAX + 10);
        assert!(number_texts(deep.as_bytes()).is_empty());
    }

    #[test]
    fn decimals_are_written_as_numbers() {
        let v = json!({"amount": decimal("2.50".into()), "name": "x", "n": 1,
            "fake": decimal("1}".into())});
        let text = String::from_utf8(to_vec(&v)).unwrap();
        assert_eq!(
            text,
            r#"{"amount":2.50,"fake":"\u0000decimal:1}","n":1,"name":"x"}"#
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert!(back["amount"].is_number());
    }
}
