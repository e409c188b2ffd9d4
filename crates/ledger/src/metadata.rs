//! Metadata: the client's own labels on a mutation, hold or wallet (an order number, a
//! cost centre), kept as they were given and never read by a rule of money.
//!
//! A key is 1 to [`METADATA_KEY_LEN_MAX`] bytes of visible ASCII other than `[`, `]`,
//! `=`, `&`, `"` and `\`: the first four would make a list's filter
//! (`?metadata[order]=A-17`) ambiguous, and the last two cannot stand in a quoted label
//! of SQLite's JSON path, by which a store looks a key up. A value is at most
//! [`METADATA_VALUE_LEN_MAX`] bytes of text without control characters; it may be
//! empty.

use std::collections::BTreeMap;

/// The most pairs one entity may carry.
pub const METADATA_PAIRS_MAX: usize = 32;
/// The longest metadata key, in bytes.
pub const METADATA_KEY_LEN_MAX: usize = 40;
/// The longest metadata value, in bytes.
pub const METADATA_VALUE_LEN_MAX: usize = 500;

/// Why pairs are not metadata. A value's error names its key, which is valid by then;
/// a key's error does not repeat the key, which may be anything a client sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    #[error("at most {max} pairs, got {count}")]
    TooManyPairs { count: usize, max: usize },
    #[error(
        "a key must be 1 to {METADATA_KEY_LEN_MAX} bytes of visible ASCII other than \
         '[', ']', '=', '&', '\"' and '\\'"
    )]
    BadKey,
    #[error("the key {key:?} is given twice")]
    DuplicateKey { key: String },
    #[error("must be at most {max} bytes long, got {len}")]
    ValueTooLong { key: String, len: usize, max: usize },
    #[error("must not contain control characters")]
    ValueControl { key: String },
}

impl MetadataError {
    /// The key whose value is wrong, or that is given twice; `None` when the pairs as a
    /// whole or a key itself are wrong.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::DuplicateKey { key }
            | Self::ValueTooLong { key, .. }
            | Self::ValueControl { key } => Some(key),
            Self::TooManyPairs { .. } | Self::BadKey => None,
        }
    }
}

/// Whether `key` may be a metadata key (see the module documentation).
pub fn metadata_key_is_valid(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= METADATA_KEY_LEN_MAX
        && key
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'[' | b']' | b'=' | b'&' | b'"' | b'\\'))
}

/// Checks a metadata value: bounded length, no control characters.
fn check_value(key: &str, value: &str) -> Result<(), MetadataError> {
    if value.len() > METADATA_VALUE_LEN_MAX {
        return Err(MetadataError::ValueTooLong {
            key: key.to_owned(),
            len: value.len(),
            max: METADATA_VALUE_LEN_MAX,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(MetadataError::ValueControl {
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// Up to [`METADATA_PAIRS_MAX`] pairs of text, ordered by key. Made only by
/// [`Metadata::new`], so every key and value is valid; the default has no pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// The metadata of `pairs`; a key given twice is refused rather than one of its
    /// values dropped.
    pub fn new<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, MetadataError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut map = BTreeMap::new();
        let mut count = 0;
        for (key, value) in pairs {
            count += 1;
            if count > METADATA_PAIRS_MAX {
                // Counted to the end, so the error says how many were sent.
                continue;
            }
            let (key, value) = (key.into(), value.into());
            if !metadata_key_is_valid(&key) {
                return Err(MetadataError::BadKey);
            }
            check_value(&key, &value)?;
            if map.contains_key(&key) {
                return Err(MetadataError::DuplicateKey { key });
            }
            map.insert(key, value);
        }
        if count > METADATA_PAIRS_MAX {
            return Err(MetadataError::TooManyPairs {
                count,
                max: METADATA_PAIRS_MAX,
            });
        }
        Ok(Self(map))
    }

    /// The value of `key`, if there is one.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The pairs, ordered by key.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every pair of `filter` is one of these.
    pub fn contains_all(&self, filter: &Metadata) -> bool {
        filter.iter().all(|(k, v)| self.get(k) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), "v".to_owned())).collect()
    }

    #[test]
    fn pairs_are_bounded_at_the_limit() {
        assert_eq!(Metadata::new(pairs(METADATA_PAIRS_MAX)).unwrap().len(), 32);
        assert_eq!(
            Metadata::new(pairs(METADATA_PAIRS_MAX + 1)),
            Err(MetadataError::TooManyPairs {
                count: METADATA_PAIRS_MAX + 1,
                max: METADATA_PAIRS_MAX
            })
        );
    }

    #[test]
    fn keys_are_bounded_at_the_limit() {
        let at = "k".repeat(METADATA_KEY_LEN_MAX);
        assert!(Metadata::new([(at.clone(), "v")]).is_ok());
        let over = format!("{at}k");
        assert_eq!(Metadata::new([(over, "v")]), Err(MetadataError::BadKey));
        assert_eq!(Metadata::new([("", "v")]), Err(MetadataError::BadKey));
    }

    #[test]
    fn keys_are_visible_ascii_without_the_filter_and_path_characters() {
        assert!(Metadata::new([("order.id-2_x:y/z~!", "v")]).is_ok());
        for bad in [
            "a b", "a[b", "a]b", "a=b", "a&b", "a\"b", "a\\b", "é", "a\tb", "a\u{7f}",
        ] {
            assert_eq!(
                Metadata::new([(bad, "v")]),
                Err(MetadataError::BadKey),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn values_are_bounded_at_the_limit() {
        let at = "é".repeat(METADATA_VALUE_LEN_MAX / 2);
        assert_eq!(at.len(), METADATA_VALUE_LEN_MAX);
        let m = Metadata::new([("order", at.clone())]).unwrap();
        assert_eq!(m.get("order"), Some(at.as_str()));
        let e = Metadata::new([("order", format!("{at}x"))]).unwrap_err();
        assert_eq!(
            e,
            MetadataError::ValueTooLong {
                key: "order".to_owned(),
                len: METADATA_VALUE_LEN_MAX + 1,
                max: METADATA_VALUE_LEN_MAX
            }
        );
        assert_eq!(e.key(), Some("order"));
        assert!(Metadata::new([("order", "")]).is_ok());
    }

    #[test]
    fn values_have_no_control_characters() {
        let e = Metadata::new([("note", "a\nb")]).unwrap_err();
        assert_eq!(
            e,
            MetadataError::ValueControl {
                key: "note".to_owned()
            }
        );
        assert_eq!(e.to_string(), "must not contain control characters");
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        assert_eq!(
            Metadata::new([("a", "1"), ("a", "2")]),
            Err(MetadataError::DuplicateKey {
                key: "a".to_owned()
            })
        );
    }

    #[test]
    fn pairs_are_ordered_by_key_and_matched_as_a_whole() {
        let m = Metadata::new([("b", "2"), ("a", "1")]).unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
        assert!(m.contains_all(&Metadata::new([("b", "2")]).unwrap()));
        assert!(m.contains_all(&Metadata::default()));
        assert!(!m.contains_all(&Metadata::new([("b", "2"), ("c", "3")]).unwrap()));
        assert!(!m.contains_all(&Metadata::new([("a", "2")]).unwrap()));
    }
}
