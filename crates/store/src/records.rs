//! Records and jobs: what a dialect keeps beside the ledger.
//!
//! A [`Record`] is a dialect's own durable row (a user, a hub subscription, a recurring
//! schedule), opaque to the store: the dialect serialises its own type into `value`.
//! Records are keyed by tenant, kind and key, and replaced by compare-and-set on their
//! `version`, so two instances never overwrite each other's change unseen.
//!
//! A [`Job`] is a unit of background work (an event to deliver, a scheduled top-up to
//! run). Jobs are executed at least once: a claim leases them until a given time, and a
//! job whose worker dies becomes due again when its lease ends. Exactly-once effects
//! come from the ledger's idempotency keys, not from the queue.
//!
//! Kinds and queue names are short lowercase names (`[a-z0-9._-]`, at most
//! [`RECORD_KIND_LEN_MAX`] bytes); keys and job ids are any UTF-8 without control
//! characters up to [`RECORD_KEY_LEN_MAX`] bytes; values and payloads at most
//! [`RECORD_VALUE_BYTES_MAX`] bytes. Callers check these before calling the store
//! ([`kind_is_valid`], [`key_is_valid`], [`value_is_valid`]); a store asserts them
//! ([`assert_entry`]).

use prepaid_ledger::{TenantId, Timestamp};

/// Longest record kind / job queue name, bytes ([a-z0-9._-]).
pub const RECORD_KIND_LEN_MAX: usize = 32;
/// Longest record key / job id, bytes (any UTF-8 without control characters).
pub const RECORD_KEY_LEN_MAX: usize = 256;
/// Largest record value / job payload, bytes.
pub const RECORD_VALUE_BYTES_MAX: usize = 64 * 1024;
/// Most jobs one claim returns.
pub const JOB_CLAIM_MAX: usize = 100;

/// A dialect's own durable record (a user, a hub subscription, a recurring schedule),
/// opaque to the store: the dialect serialises its own type into `value` (e.g. JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: String,
    pub key: String,
    pub value: String,
    /// 1 when inserted, one more on every replacement.
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A unit of background work (an event to deliver, a scheduled top-up to run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub tenant: TenantId,
    pub queue: String,
    pub id: String,
    pub payload: String,
    /// When the job is next due; while it is claimed, the end of its lease.
    pub due_at: Timestamp,
    /// How many times it was claimed, this claim included.
    pub attempts: u32,
}

/// Whether `kind` is a valid record kind or job queue name: 1 to
/// [`RECORD_KIND_LEN_MAX`] bytes of `[a-z0-9._-]`.
pub fn kind_is_valid(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= RECORD_KIND_LEN_MAX
        && kind
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// Whether `key` is a valid record key or job id: 1 to [`RECORD_KEY_LEN_MAX`] bytes
/// without control characters.
pub fn key_is_valid(key: &str) -> bool {
    !key.is_empty() && key.len() <= RECORD_KEY_LEN_MAX && !key.chars().any(char::is_control)
}

/// Whether `value` fits a record value or job payload: at most
/// [`RECORD_VALUE_BYTES_MAX`] bytes.
pub fn value_is_valid(value: &str) -> bool {
    value.len() <= RECORD_VALUE_BYTES_MAX
}

/// Panics unless `kind` is a valid kind or queue name, `key` is within its length and
/// `value` fits. Both stores call it on every record write and job enqueue, since any of
/// these is a caller's bug: kinds and queues are the dialect's constants, keys and
/// values are checked with [`key_is_valid`] and [`value_is_valid`] at the edge.
pub fn assert_entry(kind: &str, key: &str, value: &str) {
    assert!(kind_is_valid(kind), "invalid record kind or queue {kind:?}");
    assert!(
        key.len() <= RECORD_KEY_LEN_MAX,
        "record key or job id of {} bytes is over {RECORD_KEY_LEN_MAX}",
        key.len()
    );
    assert!(
        value_is_valid(value),
        "record value or job payload of {} bytes is over {RECORD_VALUE_BYTES_MAX}",
        value.len()
    );
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
    }

    #[test]
    fn keys_are_any_text_without_control_characters() {
        assert!(key_is_valid("user:ÄÖ/42 x"));
        assert!(key_is_valid(&"k".repeat(RECORD_KEY_LEN_MAX)));
        assert!(!key_is_valid(&"k".repeat(RECORD_KEY_LEN_MAX + 1)));
        assert!(!key_is_valid(""));
        assert!(!key_is_valid("a\nb"));
        assert!(!key_is_valid("a\0b"));
    }

    #[test]
    fn values_are_bounded() {
        assert!(value_is_valid(""));
        assert!(value_is_valid(&"v".repeat(RECORD_VALUE_BYTES_MAX)));
        assert!(!value_is_valid(&"v".repeat(RECORD_VALUE_BYTES_MAX + 1)));
    }

    #[test]
    fn entries_at_the_limits_pass_the_assertion() {
        assert_entry(
            &"k".repeat(RECORD_KIND_LEN_MAX),
            &"k".repeat(RECORD_KEY_LEN_MAX),
            &"v".repeat(RECORD_VALUE_BYTES_MAX),
        );
    }

    #[test]
    #[should_panic(expected = "invalid record kind or queue")]
    fn an_invalid_kind_fails_the_assertion() {
        assert_entry("Users", "k", "");
    }

    #[test]
    #[should_panic(expected = "record key or job id of 257 bytes")]
    fn a_key_over_the_limit_fails_the_assertion() {
        assert_entry("users", &"k".repeat(RECORD_KEY_LEN_MAX + 1), "");
    }

    #[test]
    #[should_panic(expected = "record value or job payload")]
    fn a_value_over_the_limit_fails_the_assertion() {
        assert_entry("users", "k", &"v".repeat(RECORD_VALUE_BYTES_MAX + 1));
    }
}
