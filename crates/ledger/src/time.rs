//! Points in time, as microseconds since the Unix epoch (UTC).

/// A point in time in microseconds since 1970-01-01T00:00:00Z.
///
/// The core never reads a clock: callers pass `Timestamp`s in, which keeps every rule
/// deterministic and lets tests move time at will.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }
    /// The timestamp `micros` later, saturating at the end of time.
    #[must_use]
    pub const fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }
}
