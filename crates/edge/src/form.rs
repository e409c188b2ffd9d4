//! Strict decoding of `application/x-www-form-urlencoded` text: query strings and form
//! bodies.
//!
//! `serde_urlencoded` (and axum's `Query` and `Form` over it) replaces bytes that are
//! not UTF-8 once percent-decoded by U+FFFD, so `filter=name eq '%FF'` would reach a
//! handler as a different filter than the client sent. [`pairs`] decodes the same way
//! (`&` between pairs, the first `=` between name and value, `+` for a space, `%XX` for
//! a byte, a `%` not followed by two hex digits kept as it is) but refuses a name or a
//! value that is not UTF-8, naming it, for each dialect to answer in its own 400 shape.

use std::borrow::Cow;

/// Why form-encoded text was refused.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The value of the named parameter (or, when the name itself is not UTF-8, the
    /// name, shown with U+FFFD) is not UTF-8 once percent-decoded.
    #[error("{0} is not UTF-8 text once percent-decoded")]
    NotUtf8(String),
}

/// Why a parameter is refused, after its name (`filter: is not UTF-8 ...`).
pub const NOT_UTF8: &str = "is not UTF-8 text once percent-decoded";

impl FormError {
    /// The parameter at fault.
    pub fn name(&self) -> &str {
        match self {
            FormError::NotUtf8(name) => name,
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The bytes `raw` stands for: `+` is a space, `%XX` a byte.
fn decode(raw: &str) -> Cow<'_, [u8]> {
    if !raw.contains(['+', '%']) {
        return Cow::Borrowed(raw.as_bytes());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = bytes
                    .get(i + 1)
                    .and_then(|&h| hex_digit(h))
                    .zip(bytes.get(i + 2).and_then(|&l| hex_digit(l)));
                if let Some((high, low)) = pair {
                    out.push(high << 4 | low);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn text(raw: &str) -> Result<String, String> {
    match decode(raw) {
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| String::from_utf8_lossy(b).into_owned()),
        Cow::Owned(b) => {
            String::from_utf8(b).map_err(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }
    }
}

/// The decoded name/value pairs of `input`, in order; empty pairs (`a=1&&b=2`) are
/// skipped, a pair without `=` has an empty value.
pub fn pairs(input: &str) -> Result<Vec<(String, String)>, FormError> {
    let mut out = Vec::new();
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = text(name).map_err(FormError::NotUtf8)?;
        let value = text(value).map_err(|_| FormError::NotUtf8(name.clone()))?;
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn decodes_as_serde_urlencoded_does_for_utf8() {
        for input in [
            "",
            "a=1&b=2",
            "filter=name+eq+%27caf%C3%A9%27&page=2",
            "a=%zz&b=%4&c=100%",
            "a&&b=&=c",
            "q=%E2%82%AC+%2B+%26",
        ] {
            let ours = pairs(input).unwrap();
            let theirs: Vec<(String, String)> = serde_urlencoded::from_str(input).unwrap();
            assert_eq!(ours, theirs, "{input:?}");
        }
        assert_eq!(pairs("x=caf%C3%A9").unwrap(), owned(&[("x", "café")]));
    }

    #[test]
    fn refuses_what_is_not_utf8_naming_it() {
        assert_eq!(
            pairs("page=1&filter=name+eq+%27%FF%27"),
            Err(FormError::NotUtf8("filter".into()))
        );
        assert_eq!(pairs("a=%C3"), Err(FormError::NotUtf8("a".into())));
        assert_eq!(pairs("%FFx=1"), Err(FormError::NotUtf8("\u{FFFD}x".into())));
        assert_eq!(pairs("a=%ED%A0%80").unwrap_err().name(), "a");
    }
}
