//! The names of records and jobs: what a dialect keeps beside the ledger, in the same
//! unit as the money it describes (see [`crate::Step`]).
//!
//! A [`RecordKind`] or a [`JobQueue`] is a dialect's constant, a short lowercase name
//! (`[a-z0-9._-]`, 1 to [`RECORD_KIND_LEN_MAX`] bytes) checked when the constant is
//! made, so an invalid one fails the build. A [`RecordKey`] (also a job's id) comes
//! from data, often a client's, and is parsed once at the edge: 1 to
//! [`RECORD_KEY_LEN_MAX`] bytes of UTF-8 without control characters. Values and
//! payloads are the dialect's own serialisation, at most [`RECORD_VALUE_BYTES_MAX`]
//! bytes ([`value_is_valid`]).

use std::fmt;

/// Longest record kind / job queue name, bytes (`[a-z0-9._-]`).
pub const RECORD_KIND_LEN_MAX: usize = 32;
/// Longest record key / job id, bytes (any UTF-8 without control characters).
pub const RECORD_KEY_LEN_MAX: usize = 256;
/// Largest record value / job payload, bytes.
pub const RECORD_VALUE_BYTES_MAX: usize = 64 * 1024;

/// Whether `name` is a valid record kind or job queue name: 1 to
/// [`RECORD_KIND_LEN_MAX`] bytes of `[a-z0-9._-]`.
pub const fn kind_is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > RECORD_KIND_LEN_MAX {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if !matches!(bytes[i], b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-') {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `value` fits a record value or job payload: at most
/// [`RECORD_VALUE_BYTES_MAX`] bytes.
pub fn value_is_valid(value: &str) -> bool {
    value.len() <= RECORD_VALUE_BYTES_MAX
}

macro_rules! static_name {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(&'static str);

        impl $name {
            /// The name `name`; panics (at compile time, for a constant) unless it is 1 to
            #[doc = concat!("[`RECORD_KIND_LEN_MAX`] bytes of `[a-z0-9._-]`: a ", $what, " is a dialect's constant.")]
            pub const fn new(name: &'static str) -> Self {
                assert!(kind_is_valid(name), concat!("an invalid ", $what));
                Self(name)
            }

            pub const fn as_str(self) -> &'static str {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

static_name!(
    /// The kind of a record (`icrtouch.user`, `tmf.hub`): which dialect's type its value
    /// holds.
    RecordKind,
    "record kind"
);
static_name!(
    /// A queue of background jobs (`tmf.event`, `icrtouch.payment`).
    JobQueue,
    "job queue"
);

/// Why text is not a record key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordKeyError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {RECORD_KEY_LEN_MAX} bytes long, got {0}")]
    TooLong(usize),
    #[error("must not contain control characters")]
    Control,
}

/// The key of a record within its kind, or the id of a job within its queue: 1 to
/// [`RECORD_KEY_LEN_MAX`] bytes of UTF-8 without control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey(String);

impl RecordKey {
    pub fn parse(text: impl Into<String>) -> Result<Self, RecordKeyError> {
        let text = text.into();
        if text.is_empty() {
            return Err(RecordKeyError::Empty);
        }
        if text.len() > RECORD_KEY_LEN_MAX {
            return Err(RecordKeyError::TooLong(text.len()));
        }
        if text.chars().any(char::is_control) {
            return Err(RecordKeyError::Control);
        }
        Ok(Self(text))
    }

    /// A key made of a number, which is always valid.
    pub fn number(n: u64) -> Self {
        Self(n.to_string())
    }

    /// A key made of a UUID (hyphenated), which is always valid.
    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordKey({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_short_lowercase_names() {
        assert!(kind_is_valid("hub.subscription_v1-x"));
        assert!(kind_is_valid(&"k".repeat(RECORD_KIND_LEN_MAX)));
        assert!(!kind_is_valid(&"k".repeat(RECORD_KIND_LEN_MAX + 1)));
        assert!(!kind_is_valid(""));
        assert!(!kind_is_valid("Users"));
        assert!(!kind_is_valid("a b"));
        const KIND: RecordKind = RecordKind::new("icrtouch.user");
        assert_eq!(KIND.as_str(), "icrtouch.user");
    }

    #[test]
    #[should_panic(expected = "an invalid job queue")]
    fn an_invalid_name_is_a_programmer_error() {
        let _ = JobQueue::new(std::hint::black_box("Not A Queue"));
    }

    #[test]
    fn keys_are_any_text_without_control_characters() {
        assert!(RecordKey::parse("user:ÄÖ/42 x").is_ok());
        assert!(RecordKey::parse("k".repeat(RECORD_KEY_LEN_MAX)).is_ok());
        assert_eq!(
            RecordKey::parse("k".repeat(RECORD_KEY_LEN_MAX + 1)),
            Err(RecordKeyError::TooLong(RECORD_KEY_LEN_MAX + 1))
        );
        assert_eq!(RecordKey::parse(""), Err(RecordKeyError::Empty));
        assert_eq!(RecordKey::parse("a\nb"), Err(RecordKeyError::Control));
        assert_eq!(RecordKey::parse("a\0b"), Err(RecordKeyError::Control));
        assert_eq!(RecordKey::number(42).as_str(), "42");
    }

    #[test]
    fn values_are_bounded() {
        assert!(value_is_valid(""));
        assert!(value_is_valid(&"v".repeat(RECORD_VALUE_BYTES_MAX)));
        assert!(!value_is_valid(&"v".repeat(RECORD_VALUE_BYTES_MAX + 1)));
    }
}
