//! The store conformance suite, run against the PostgreSQL store, each case in a fresh
//! schema of the test database (see `prepaid_store_postgres::testing`).

use prepaid_store::Store;
use prepaid_store_postgres::testing::{TestSchema, fresh_schema};
use prepaid_store_postgres::{PgConfig, PgStore};
use prepaid_store_testkit::conformance::Backend;
use std::sync::Arc;

struct Postgres {
    schema: TestSchema,
}

impl Postgres {
    async fn open(&self) -> Arc<dyn Store> {
        let store = PgStore::connect(self.schema.url(), PgConfig::default())
            .await
            .expect("connect to the test schema");
        Arc::new(store)
    }
}

#[async_trait::async_trait]
impl Backend for Postgres {
    async fn fresh(&self) -> Arc<dyn Store> {
        self.open().await
    }

    async fn reopen(&self, store: Arc<dyn Store>) -> Arc<dyn Store> {
        drop(store);
        self.open().await
    }
}

prepaid_store_testkit::conformance_tests!(optional async {
    fresh_schema().await.map(|schema| Postgres { schema })
});
