//! Failures inside the store, and how they surface as [`StoreError`]s.

use deadpool_postgres::PoolError;
use prepaid_store::StoreError;
use std::fmt;
use tokio_postgres::error::SqlState;

/// Why [`crate::PgStore::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("schema migration {version} failed: {source}")]
    Migrate {
        version: usize,
        source: tokio_postgres::Error,
    },
    /// The schema was written by a newer build; this one must not touch it.
    #[error("the schema has version {found}, newer than the {known} this build knows")]
    SchemaTooNew { found: i64, known: usize },
}

/// The name of the check that bounds system account balances; a batch that breaks it
/// raced another batch past the bound and runs again.
pub(crate) const ACCOUNT_BOUND_CHECK: &str = "system_accounts_balance_bound";

/// An operating failure while serving a call.
#[derive(Debug)]
pub(crate) enum Fail {
    Db(tokio_postgres::Error),
    Pool(PoolError),
    /// A row that does not decode into a ledger value, or a broken promise of the
    /// database.
    Corrupt(String),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl From<PoolError> for Fail {
    fn from(e: PoolError) -> Self {
        Self::Pool(e)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Db(e) => match e.as_db_error() {
                Some(db) => write!(f, "postgres: {db}"),
                None => write!(f, "postgres: {e}"),
            },
            Self::Pool(e) => write!(f, "connection pool: {e}"),
            Self::Corrupt(what) => write!(f, "corrupt data: {what}"),
        }
    }
}

impl std::error::Error for Fail {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Db(e) => Some(e),
            Self::Pool(e) => Some(e),
            Self::Corrupt(_) => None,
        }
    }
}

impl Fail {
    pub(crate) fn corrupt(what: impl fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }

    fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Db(e) => e.code(),
            Self::Pool(PoolError::Backend(e)) => e.code(),
            _ => None,
        }
    }

    /// Whether the batch lost a race with another transaction (another batch of this
    /// or another instance) and should run again from the start: a deadlock, a
    /// serialization failure, a key taken meanwhile, or a system account pushed past
    /// its bound meanwhile.
    pub(crate) fn is_race(&self) -> bool {
        let Some(code) = self.code() else {
            return false;
        };
        if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::UNIQUE_VIOLATION
        {
            return true;
        }
        *code == SqlState::CHECK_VIOLATION && self.db_constraint() == Some(ACCOUNT_BOUND_CHECK)
    }

    fn db_constraint(&self) -> Option<&str> {
        match self {
            Self::Db(e) => e.as_db_error().and_then(|db| db.constraint()),
            _ => None,
        }
    }

    /// Whether the database cannot be reached or refuses service for now: the
    /// connection broke or could not be made, the server is shutting down or full, or
    /// a statement ran out of time (waiting on locks, say).
    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(PoolError::Backend(e)) | Self::Db(e) => match e.code() {
                Some(code) => {
                    let class = &code.code()[..2];
                    class == "08"
                        || class == "53"
                        || class == "57"
                        || *code == SqlState::LOCK_NOT_AVAILABLE
                }
                // No answer of the server: the connection is closed or broken.
                None => e.as_db_error().is_none(),
            },
            Self::Pool(_) => true,
            Self::Corrupt(_) => false,
        }
    }

    pub(crate) fn into_store_error(self) -> StoreError {
        if self.is_unavailable() {
            StoreError::unavailable(self.to_string()).caused_by(self)
        } else {
            StoreError::internal(self.to_string()).caused_by(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeouts_and_corruption_are_told_apart() {
        let timeout = Fail::Pool(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait));
        assert!(timeout.is_unavailable());
        assert!(!timeout.is_race());
        assert!(matches!(
            timeout.into_store_error(),
            StoreError::Unavailable { .. }
        ));
        let corrupt = Fail::corrupt("bad status");
        assert!(!corrupt.is_unavailable());
        assert!(!corrupt.is_race());
        assert!(matches!(
            corrupt.into_store_error(),
            StoreError::Internal { .. }
        ));
    }
}
