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

/// The map of `entries`, each key valid and given once and each value passing
/// `check`; more than `max` entries are refused, counted to the end so the error says
/// how many were sent.
fn checked_map<V>(
    entries: impl Iterator<Item = (String, V)>,
    max: usize,
    check: impl Fn(&str, &V) -> Result<(), MetadataError>,
) -> Result<BTreeMap<String, V>, MetadataError> {
    let mut map = BTreeMap::new();
    let mut count = 0;
    for (key, value) in entries {
        count += 1;
        if count > max {
            continue;
        }
        if !metadata_key_is_valid(&key) {
            return Err(MetadataError::BadKey);
        }
        check(&key, &value)?;
        if map.contains_key(&key) {
            return Err(MetadataError::DuplicateKey { key });
        }
        map.insert(key, value);
    }
    if count > max {
        return Err(MetadataError::TooManyPairs { count, max });
    }
    Ok(map)
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
        let pairs = pairs.into_iter().map(|(k, v)| (k.into(), v.into()));
        checked_map(pairs, METADATA_PAIRS_MAX, |key, value: &String| {
            check_value(key, value)
        })
        .map(Self)
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

/// A change of an entity's metadata: keys to set to a value and keys to remove, each
/// valid, none named twice. Made only by [`MetadataPatch::new`]; applied by
/// [`Metadata::patched`], which is where the bound on pairs is checked, since only the
/// entity's metadata as it stands says how many pairs the result has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MetadataPatch(BTreeMap<String, Option<String>>);

/// The most keys one patch may name: every pair of a full entity removed and as many
/// set.
pub const METADATA_PATCH_KEYS_MAX: usize = 2 * METADATA_PAIRS_MAX;

impl MetadataPatch {
    /// The patch of `changes`: `Some(value)` sets a key, `None` removes it.
    pub fn new<K>(
        changes: impl IntoIterator<Item = (K, Option<String>)>,
    ) -> Result<Self, MetadataError>
    where
        K: Into<String>,
    {
        let changes = changes.into_iter().map(|(k, v)| (k.into(), v));
        checked_map(
            changes,
            METADATA_PATCH_KEYS_MAX,
            |key, value: &Option<String>| value.as_deref().map_or(Ok(()), |v| check_value(key, v)),
        )
        .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Metadata {
    /// These pairs with `patch` applied, or how many pairs that would make when it is
    /// more than [`METADATA_PAIRS_MAX`].
    pub fn patched(&self, patch: &MetadataPatch) -> Result<Metadata, usize> {
        let mut map = self.0.clone();
        for (key, value) in &patch.0 {
            match value {
                Some(value) => map.insert(key.clone(), value.clone()),
                None => map.remove(key),
            };
        }
        if map.len() > METADATA_PAIRS_MAX {
            return Err(map.len());
        }
        Ok(Metadata(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_sets_and_removes_keys_within_the_bound() {
        let m = Metadata::new(pairs(METADATA_PAIRS_MAX)).unwrap();
        let patch = MetadataPatch::new([("k0", None), ("new", Some("v".to_owned()))]).unwrap();
        let p = m.patched(&patch).unwrap();
        assert_eq!(p.len(), METADATA_PAIRS_MAX);
        assert_eq!(p.get("k0"), None);
        assert_eq!(p.get("new"), Some("v"));
        let grow = MetadataPatch::new([("another", Some("v".to_owned()))]).unwrap();
        assert_eq!(m.patched(&grow), Err(METADATA_PAIRS_MAX + 1));
        // Removing a key that is not there changes nothing.
        let absent = MetadataPatch::new([("absent", None::<String>)]).unwrap();
        assert_eq!(m.patched(&absent).unwrap(), m);
    }

    #[test]
    fn a_patch_is_checked_like_metadata() {
        let keys = |n: usize| (0..n).map(|i| (format!("k{i}"), None::<String>));
        assert!(MetadataPatch::new(keys(METADATA_PATCH_KEYS_MAX)).is_ok());
        assert_eq!(
            MetadataPatch::new(keys(METADATA_PATCH_KEYS_MAX + 1)),
            Err(MetadataError::TooManyPairs {
                count: METADATA_PATCH_KEYS_MAX + 1,
                max: METADATA_PATCH_KEYS_MAX
            })
        );
        assert_eq!(
            MetadataPatch::new([("a b", None::<String>)]),
            Err(MetadataError::BadKey)
        );
        assert_eq!(
            MetadataPatch::new([("k", None), ("k", Some("v".to_owned()))]),
            Err(MetadataError::DuplicateKey {
                key: "k".to_owned()
            })
        );
        assert!(matches!(
            MetadataPatch::new([("k", Some("x".repeat(METADATA_VALUE_LEN_MAX + 1)))]),
            Err(MetadataError::ValueTooLong { .. })
        ));
    }

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
