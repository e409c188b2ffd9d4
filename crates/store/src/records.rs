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
//! Kinds and queue names are [`RecordKind`] and [`JobQueue`] constants, keys and job
//! ids [`RecordKey`]s parsed at the edge (all from the ledger crate, since linked
//! requests carry them); values and payloads are at most [`RECORD_VALUE_BYTES_MAX`]
//! bytes, which callers check ([`value_is_valid`]) and a store asserts
//! ([`assert_value`]).

use prepaid_ledger::{TenantId, Timestamp};

pub use prepaid_ledger::{
    JobQueue, RECORD_KEY_LEN_MAX, RECORD_KIND_LEN_MAX, RECORD_VALUE_BYTES_MAX, RecordKey,
    RecordKind, value_is_valid,
};

/// Most jobs one claim returns.
pub const JOB_CLAIM_MAX: usize = 100;

/// A dialect's own durable record (a user, a hub subscription, a recurring schedule),
/// opaque to the store: the dialect serialises its own type into `value` (e.g. JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub key: RecordKey,
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
    pub queue: JobQueue,
    pub id: RecordKey,
    pub payload: String,
    /// When the job is next due; while it is claimed, the end of its lease.
    pub due_at: Timestamp,
    /// How many times it was claimed, this claim included.
    pub attempts: u32,
}

/// Panics unless `value` fits a record value or job payload. Both stores call it on
/// every record write and job enqueue, since a value that does not fit is a caller's
/// bug: values are checked with [`value_is_valid`] at the edge. Kinds, queues and keys
/// are valid by their types.
pub fn assert_value(value: &str) {
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
    fn values_at_the_limit_pass_the_assertion() {
        assert_value(&"v".repeat(RECORD_VALUE_BYTES_MAX));
    }

    #[test]
    #[should_panic(expected = "is over")]
    fn values_over_the_limit_fail_it() {
        assert_value(&"v".repeat(RECORD_VALUE_BYTES_MAX + 1));
    }
}
