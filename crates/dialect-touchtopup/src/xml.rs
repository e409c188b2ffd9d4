//! The one value every TouchTopUp answer is built as ([`Node`]), and its two renderings:
//! JSON (through serde) and XML in the format of CodeIgniter's REST server:
//!
//! ```text
//! <?xml version="1.0" encoding="utf-8"?>
//! <xml><status>1</status><balance><BALANCE>610</BALANCE>...</balance></xml>
//! ```
//!
//! The mapping, for every answer alike:
//! - the answer (always an object) is the `<xml>` root element;
//! - an object member is an element named by its key, with every character other than
//!   `A-Z a-z 0-9 _ -` removed; a key that is all digits (`"1"` in `companies`), and an
//!   array element, is named by the singular of its parent (`<companies><company>`,
//!   `<payments><payment>`, `<transactions><transaction>`) as CodeIgniter's REST
//!   library names it, or `<item>` when the parent has no singular
//!   (`<customers_charged><item>`); a key left empty or starting with a digit or `-`
//!   becomes `<item>`;
//! - a number or string is the element's text, escaped (`& < > " '`); an empty string
//!   or empty array or object is an empty element (`<msg></msg>`).
//!
//! Members keep the order in which the answer was built, in JSON and in XML alike.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::borrow::Cow;

/// An answer value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Int(i64),
    Str(String),
    List(Vec<Node>),
    Map(Vec<(Cow<'static, str>, Node)>),
}

impl Node {
    /// An empty object.
    pub fn map() -> Self {
        Node::Map(Vec::new())
    }

    /// This object with one more member (a no-op on anything but an object).
    #[must_use]
    pub fn with(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Node>) -> Self {
        if let Node::Map(entries) = &mut self {
            entries.push((key.into(), value.into()));
        }
        self
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<i64> for Node {
    fn from(v: i64) -> Self {
        Node::Int(v)
    }
}
impl From<u32> for Node {
    fn from(v: u32) -> Self {
        Node::Int(i64::from(v))
    }
}
impl From<String> for Node {
    fn from(v: String) -> Self {
        Node::Str(v)
    }
}
impl From<&str> for Node {
    fn from(v: &str) -> Self {
        Node::Str(v.to_owned())
    }
}
impl From<Vec<Node>> for Node {
    fn from(v: Vec<Node>) -> Self {
        Node::List(v)
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Int(v) => s.serialize_i64(*v),
            Node::Str(v) => s.serialize_str(v),
            Node::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

/// The XML declaration every XML answer starts with.
pub const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// The singular of an element name, by the English rules of CodeIgniter's inflector
/// that the dialect's names need; `None` when the name is no plural.
fn singular(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let cut = |n: usize, add: &str| Some(format!("{}{add}", &name[..name.len() - n]));
    if lower.ends_with("ies") && name.len() > 3 {
        cut(3, "y")
    } else if ["sses", "shes", "ches", "xes"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        cut(2, "")
    } else if lower.ends_with('s') && !lower.ends_with("ss") && name.len() > 1 {
        cut(1, "")
    } else {
        None
    }
}

/// The element name of an entry of `parent` that has no name of its own (an array
/// element, a numeric key): the singular of the parent, or `item`.
fn entry_tag(parent: &str) -> Cow<'static, str> {
    singular(parent).map_or(Cow::Borrowed("item"), Cow::Owned)
}

/// The element name of an object key of `parent` (see the module documentation).
fn tag<'a>(key: &'a str, parent: &str) -> Cow<'a, str> {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
        return entry_tag(parent);
    }
    let clean = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let name: Cow<'_, str> = if key.bytes().all(clean) {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(
            key.chars()
                .filter(|c| c.is_ascii() && clean(*c as u8))
                .collect(),
        )
    };
    match name.as_bytes().first() {
        None => Cow::Borrowed("item"),
        Some(b) if b.is_ascii_digit() || *b == b'-' => Cow::Borrowed("item"),
        Some(_) => name,
    }
}

/// Appends `text` escaped for XML content; characters XML 1.0 cannot carry are dropped.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

fn element(out: &mut String, name: &str, value: &Node) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    content(out, name, value);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn content(out: &mut String, name: &str, value: &Node) {
    match value {
        Node::Int(v) => out.push_str(&v.to_string()),
        Node::Str(v) => escape_into(out, v),
        Node::List(items) => {
            let entry = entry_tag(name);
            for item in items {
                element(out, &entry, item);
            }
        }
        Node::Map(entries) => {
            for (k, v) in entries {
                element(out, &tag(k, name), v);
            }
        }
    }
}

/// The XML document of an answer.
pub fn to_xml(answer: &Node) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(XML_DECLARATION);
    out.push('\n');
    element(&mut out, "xml", answer);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml_body(answer: &Node) -> String {
        let xml = to_xml(answer);
        let body = xml
            .strip_prefix(XML_DECLARATION)
            .and_then(|r| r.strip_prefix('\n'))
            .and_then(|r| r.strip_suffix('\n'))
            .expect("declaration and final newline");
        body.to_owned()
    }

    #[test]
    fn answers_map_to_codeigniter_xml() {
        let cases: Vec<(Node, &str)> = vec![
            (
                Node::map().with("status", 1i64).with("msg", "Email Found"),
                "<xml><status>1</status><msg>Email Found</msg></xml>",
            ),
            (
                Node::map()
                    .with(
                        "balance",
                        Node::map()
                            .with("BALANCE", "610")
                            .with("LAST_UPDATE", "2014-05-06 12:44:19"),
                    )
                    .with("status", 1i64),
                "<xml><balance><BALANCE>610</BALANCE><LAST_UPDATE>2014-05-06 12:44:19\
                 </LAST_UPDATE></balance><status>1</status></xml>",
            ),
            (
                Node::map().with(
                    "companies",
                    Node::map().with(
                        "1",
                        Node::map()
                            .with("company_id", "1")
                            .with("customers", vec![Node::from("5"), Node::from("10")]),
                    ),
                ),
                "<xml><companies><company><company_id>1</company_id><customers><customer>5\
                 </customer><customer>10</customer></customers></company></companies></xml>",
            ),
            (
                Node::map().with("customers_charged", Vec::<Node>::new()),
                "<xml><customers_charged></customers_charged></xml>",
            ),
            (
                Node::map().with("TEXT", "Ringwood & burg <:P> \"q\" 'a'\u{1}"),
                "<xml><TEXT>Ringwood &amp; burg &lt;:P&gt; &quot;q&quot; &#39;a&#39;</TEXT></xml>",
            ),
            (
                Node::map()
                    .with("we ird$key", "v")
                    .with("", "e")
                    .with("-x", "m"),
                "<xml><weirdkey>v</weirdkey><item>e</item><item>m</item></xml>",
            ),
        ];
        for (answer, want) in cases {
            assert_eq!(xml_body(&answer), want);
        }
    }

    #[test]
    fn entries_are_named_by_the_singular_of_their_parent() {
        for (plural, one) in [
            ("payments", Some("payment")),
            ("transactions", Some("transaction")),
            ("wallets", Some("wallet")),
            ("customers", Some("customer")),
            ("charges", Some("charge")),
            ("companies", Some("company")),
            ("addresses", Some("address")),
            ("boxes", Some("box")),
            ("customers_charged", None),
            ("class", None),
            ("xml", None),
            ("s", None),
        ] {
            assert_eq!(singular(plural).as_deref(), one, "{plural}");
        }
        let list = Node::map().with(
            "transactions",
            vec![
                Node::map().with("HEADERID", "7"),
                Node::map().with("HEADERID", "8"),
            ],
        );
        assert_eq!(
            xml_body(&list),
            "<xml><transactions><transaction><HEADERID>7</HEADERID></transaction>\
             <transaction><HEADERID>8</HEADERID></transaction></transactions></xml>"
        );
    }

    #[test]
    fn json_keeps_member_order_and_types() {
        let answer = Node::map()
            .with("status", 1i64)
            .with("auth", "true")
            .with("userid", "1")
            .with("payment_id", 114i64);
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"status":1,"auth":"true","userid":"1","payment_id":114}"#
        );
    }
}
