//! The store conformance suite, run against the SQLite store.

use prepaid_store::Store;
use prepaid_store_sqlite::SqliteStore;
use prepaid_store_testkit::conformance::Backend;
use std::sync::Arc;

/// A store in its own temporary directory, removed when the case ends.
struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(self.dir.path()).expect("open the store"))
    }
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    async fn fresh(&self) -> Arc<dyn Store> {
        self.open()
    }

    async fn reopen(&self, store: Arc<dyn Store>) -> Arc<dyn Store> {
        drop(store);
        self.open()
    }
}

prepaid_store_testkit::conformance_tests!(async {
    Sqlite {
        dir: tempfile::tempdir().expect("a temporary directory"),
    }
});
