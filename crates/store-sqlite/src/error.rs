//! Failures inside the store, and how they surface as [`StoreError`]s.

use prepaid_store::StoreError;
use rusqlite::ErrorCode;
use std::fmt;
use std::path::PathBuf;

/// Why [`crate::SqliteStore::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The database file could not be made readable by the owner only.
    #[error("cannot restrict the permissions of {path} to its owner: {source}")]
    Permissions {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The file system cannot hold a write-ahead log (e.g. a network share).
    #[error("the database {path} cannot use write-ahead logging (journal mode is {mode})")]
    NoWal { path: PathBuf, mode: String },
    #[error("schema migration {version} failed: {source}")]
    Migrate {
        version: usize,
        source: rusqlite::Error,
    },
    /// The database was written by a newer build; this one must not touch it.
    #[error("the database has schema version {found}, newer than the {known} this build knows")]
    SchemaTooNew { found: i64, known: usize },
}

/// An operating failure while serving a call: an SQL error, or a row that does not
/// decode into a ledger value.
#[derive(Debug)]
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    Corrupt(String),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sql(e) => write!(f, "sqlite: {e}"),
            Self::Corrupt(what) => write!(f, "corrupt data: {what}"),
        }
    }
}

impl std::error::Error for Fail {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sql(e) => Some(e),
            Self::Corrupt(_) => None,
        }
    }
}

impl Fail {
    pub(crate) fn corrupt(what: impl fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }

    fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Sql(rusqlite::Error::SqliteFailure(e, _)) => Some(e.code),
            _ => None,
        }
    }

    /// Whether the failure concerns the database as a whole (the disk, the file, a
    /// lock held by another process) rather than the one request that met it. Such a
    /// failure would hit every request alike, so the batch fails as a whole.
    pub(crate) fn is_database_wide(&self) -> bool {
        matches!(
            self.code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::OutOfMemory
                    | ErrorCode::ReadOnly
                    | ErrorCode::OperationInterrupted
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::DatabaseCorrupt
                    | ErrorCode::DiskFull
                    | ErrorCode::CannotOpen
                    | ErrorCode::FileLockingProtocolFailed
                    | ErrorCode::NotADatabase
                    | ErrorCode::PermissionDenied
                    | ErrorCode::NoLargeFileSupport
            )
        )
    }

    pub(crate) fn into_store_error(self) -> StoreError {
        match self.code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::unavailable(self.to_string()).caused_by(self)
            }
            _ => StoreError::internal(self.to_string()).caused_by(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> Fail {
        Fail::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn busy_is_unavailable_and_database_wide() {
        let busy = sqlite(rusqlite::ffi::SQLITE_BUSY);
        assert!(busy.is_database_wide());
        assert!(matches!(
            busy.into_store_error(),
            StoreError::Unavailable { .. }
        ));
    }

    #[test]
    fn disk_errors_are_internal_and_database_wide() {
        for code in [rusqlite::ffi::SQLITE_IOERR, rusqlite::ffi::SQLITE_FULL] {
            let e = sqlite(code);
            assert!(e.is_database_wide());
            assert!(matches!(e.into_store_error(), StoreError::Internal { .. }));
        }
    }

    #[test]
    fn request_level_failures_are_not_database_wide() {
        assert!(!sqlite(rusqlite::ffi::SQLITE_CONSTRAINT).is_database_wide());
        assert!(!Fail::corrupt("bad status").is_database_wide());
        assert!(!Fail::Sql(rusqlite::Error::QueryReturnedNoRows).is_database_wide());
    }
}
