//! The model-based test (`prepaid_store_testkit::model`), run against the SQLite store: random
//! sequences of commands checked against a naive model of the rules, and the fixed
//! sequences the random runs once pointed at.

use prepaid_store::Store;
use prepaid_store_sqlite::SqliteStore;
use prepaid_store_testkit::conformance::Backend;
use std::sync::Arc;

/// A store in its own temporary directory, removed when the run ends.
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

prepaid_store_testkit::model_tests!(async {
    Sqlite {
        dir: tempfile::tempdir().expect("a temporary directory"),
    }
});
