//! What only the SQLite store does: its file, its schema version, its cache of rows
//! between batches, and how it meets rows changed behind its back.

use prepaid_ledger::{
    Amount, ApiKeyName, Command, CustomerId, Done, Floor, MutationId, MutationKind, NewApiKey,
    NewWallet, Outcome, Reference, Refusal, Request, Scopes, TenantId, Timestamp, Unit, WalletId,
};
use prepaid_store::{Breach, Store, StoreError};
use prepaid_store_sqlite::{DATABASE_FILE_NAME, SqliteError, SqliteStore};
use rusqlite::Connection;
use uuid::Uuid;

const NOW: Timestamp = Timestamp::from_micros(1_767_225_600_000_000);

fn tenant() -> TenantId {
    TenantId::parse("default").unwrap()
}

fn request(command: Command) -> Request {
    Request {
        tenant: tenant(),
        customer_only: None,
        idempotency: None,
        command,
        before: Vec::new(),
        after: Vec::new(),
    }
}

fn post(wallet: &str, kind: MutationKind, amount: i64) -> Request {
    request(Command::Post {
        id: MutationId(Uuid::now_v7()),
        wallet: WalletId::parse(wallet).unwrap(),
        kind,
        amount: Amount::new(amount).unwrap(),
        reference: Reference::default(),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    })
}

fn balance_after(outcome: &Outcome) -> i64 {
    match outcome {
        Outcome::Done {
            done: Done::Mutation(m),
            ..
        } => m.balance_after,
        other => panic!("expected a mutation, got {other:?}"),
    }
}

/// A store with the operator tenant, one customer and `wallets` wallets in euros with
/// a floor of zero.
async fn store_with(dir: &std::path::Path, wallets: &[&str]) -> SqliteStore {
    let store = SqliteStore::open(dir).unwrap();
    let admin = NewApiKey {
        name: ApiKeyName::parse("root").unwrap(),
        secret_sha256: [1; 32],
        scopes: Scopes::ALL,
        customer: None,
    };
    assert!(store.bootstrap(&tenant(), admin, NOW).await.unwrap());
    let mut setup = vec![request(Command::CreateCustomer {
        id: CustomerId::parse("c").unwrap(),
        name: String::new(),
        link: String::new(),
    })];
    for id in wallets {
        setup.push(request(Command::CreateWallet {
            wallet: NewWallet {
                id: WalletId::parse(id).unwrap(),
                customer: CustomerId::parse("c").unwrap(),
                unit: Unit::new("EUR", 2).unwrap(),
                name: String::new(),
                product: String::new(),
                floor: Floor::ZERO,
                ceiling: None,
                valid_from: None,
                valid_until: None,
                metadata: prepaid_ledger::Metadata::default(),
            },
        }));
    }
    for outcome in store.apply(setup, NOW).await.unwrap() {
        assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    }
    store
}

/// Another connection to the same file, as another process would have, that may
/// write rows the store's checks would refuse.
fn raw(store: &SqliteStore) -> Connection {
    let conn = Connection::open(store.path()).unwrap();
    conn.pragma_update(None, "ignore_check_constraints", true)
        .unwrap();
    conn
}

#[tokio::test]
async fn open_makes_the_directory_and_a_wal_database_at_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let store = SqliteStore::open(&data).unwrap();
    assert_eq!(store.path(), data.join(DATABASE_FILE_NAME));
    store.ping().await.unwrap();
    let conn = raw(&store);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 9);
    drop(store);
    // Opening again applies nothing and keeps the version.
    let again = SqliteStore::open(&data).unwrap();
    again.ping().await.unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 9);
}

/// A database of the first schema gains customer links (empty for the customers it
/// has), settings, and wallet update times (their creation times).
#[tokio::test]
async fn a_database_of_the_first_schema_is_brought_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE_FILE_NAME);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(include_str!("../migrations/0001_initial.sql"))
        .unwrap();
    conn.execute_batch(
        "INSERT INTO tenants (id, name, operator, created_at) VALUES ('t', 't', 1, 0); \
         INSERT INTO customers (tenant, id, name, created_at) VALUES ('t', 'old', 'Old', 0); \
         INSERT INTO wallets (tenant, id, customer, unit_code, unit_scale, name, product, \
         status, floor, valid_from, valid_until, balance, held, created_at) \
         VALUES ('t', 'w-old', 'old', 'EUR', 2, '', '', 'active', 0, NULL, NULL, 0, 0, 7); \
         INSERT INTO wallets (tenant, id, customer, unit_code, unit_scale, name, product, \
         status, floor, valid_from, valid_until, balance, held, created_at) \
         VALUES ('t', 'credits', 'old', 'CREDIT', 0, 'c', 'p', 'active', 0, NULL, NULL, 0, 0, 7); \
         INSERT INTO mutations (seq, id, tenant, wallet, customer, unit_code, unit_scale, \
         kind, amount, balance_after, reference_kind, reference_text, reference_link, \
         occurred_at, recorded_at) VALUES (41, X'0102030405060708090a0b0c0d0e0f10', 't', \
         'w-old', 'old', 'EUR', 2, 'adjustment', 0, 0, '', 'old', '', 7, 7); \
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path()).unwrap();
    let tenant = TenantId::parse("t").unwrap();
    let old = store
        .customer(&tenant, &CustomerId::parse("old").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((old.name.as_str(), old.link.as_str()), ("Old", ""));
    let key = prepaid_ledger::SettingKey::parse("k").unwrap();
    assert_eq!(store.setting(&tenant, &key).await.unwrap(), None);
    let wallet = store
        .wallet(&tenant, &WalletId::parse("w-old").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wallet.updated_at, wallet.created_at);
    assert_eq!(wallet.created_at, Timestamp::from_micros(7));
    assert_eq!(
        wallet.ceiling, None,
        "a wallet from before ceilings has none"
    );
    assert_eq!(wallet.incoming, 0, "nor any credit on its way in");
    // A wallet counted in credits gets the ceiling its credits fit.
    let credits = store
        .wallet(&tenant, &WalletId::parse("credits").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        credits.ceiling,
        prepaid_ledger::credits_ceiling(&prepaid_ledger::Unit::new("CREDIT", 0).unwrap())
    );
    // Its mutations are kept, with their list cursors, when mutation ids become each
    // tenant's own.
    let id = prepaid_ledger::MutationId(Uuid::from_u128(0x0102030405060708090a0b0c0d0e0f10));
    let old_mutation = store.mutation(&tenant, id).await.unwrap().unwrap();
    assert_eq!(old_mutation.reference.text(), Some("old"));
    let page = store
        .mutations(
            &tenant,
            &prepaid_store::MutationQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let cursor: i64 = raw(&store)
        .query_row("SELECT seq FROM mutations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cursor, 41);
    let version: i64 = raw(&store)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 9);
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    raw(&store).pragma_update(None, "user_version", 99).unwrap();
    drop(store);
    match SqliteStore::open(dir.path()) {
        Err(SqliteError::SchemaTooNew {
            found: 99,
            known: 9,
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

/// The writer keeps wallet rows between batches; a commit by another connection must
/// make it read them again.
#[tokio::test]
async fn a_write_by_another_connection_refreshes_the_cached_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &["w"]).await;
    let outcomes = store
        .apply(vec![post("w", MutationKind::TopUp, 100)], NOW)
        .await
        .unwrap();
    assert_eq!(balance_after(&outcomes[0]), 100);
    // Another process takes the balance to 150, by the book.
    raw(&store)
        .execute_batch(
            "BEGIN;
             INSERT INTO mutations (id, tenant, wallet, customer, unit_code, unit_scale, kind,
                 amount, balance_after, reference_kind, reference_text, reference_link,
                 occurred_at, recorded_at)
             VALUES (randomblob(16), 'default', 'w', 'c', 'EUR', 2, 'top_up', 50, 150, '', '',
                 '', 0, 0);
             UPDATE wallets SET balance = 150 WHERE tenant = 'default' AND id = 'w';
             UPDATE system_accounts SET balance = balance - 50
                 WHERE tenant = 'default' AND kind = 'world';
             COMMIT;",
        )
        .unwrap();
    let outcomes = store
        .apply(vec![post("w", MutationKind::Debit, 150)], NOW)
        .await
        .unwrap();
    assert_eq!(balance_after(&outcomes[0]), 0);
    // Wallets read from memory were dropped with the cache, and show the debit.
    let wallet = store
        .wallet(&tenant(), &WalletId::parse("w").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wallet.balance, 0);
    assert_eq!(store.check_invariants().await.unwrap(), []);
}

/// A row that does not decode fails only the requests that touch it; their
/// batch-mates are carried out, and reading the row is an internal error, not a panic.
#[tokio::test]
async fn a_corrupt_row_fails_only_its_own_requests() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &["good", "bad"]).await;
    raw(&store)
        .execute("UPDATE wallets SET status = 'bogus' WHERE id = 'bad'", [])
        .unwrap();
    let batch = vec![
        post("good", MutationKind::TopUp, 100),
        post("bad", MutationKind::TopUp, 5),
        post("good", MutationKind::Debit, 30),
    ];
    let outcomes = store.apply(batch, NOW).await.unwrap();
    assert_eq!(balance_after(&outcomes[0]), 100);
    assert_eq!(outcomes[1], Outcome::Refused(Refusal::Internal));
    assert_eq!(balance_after(&outcomes[2]), 70);
    let good = store
        .wallet(&tenant(), &WalletId::parse("good").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(good.balance, 70);
    match store
        .wallet(&tenant(), &WalletId::parse("bad").unwrap())
        .await
    {
        Err(StoreError::Internal { .. }) => {}
        other => panic!("expected an internal error, got {other:?}"),
    }
    // Later batches work as before.
    let outcomes = store
        .apply(vec![post("good", MutationKind::Debit, 70)], NOW)
        .await
        .unwrap();
    assert_eq!(balance_after(&outcomes[0]), 0);
}

#[tokio::test]
async fn the_audit_finds_rows_changed_behind_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &["a", "b", "c"]).await;
    let batch = vec![
        post("a", MutationKind::TopUp, 100),
        post("c", MutationKind::TopUp, 10),
        post("c", MutationKind::Debit, 10),
    ];
    store.apply(batch, NOW).await.unwrap();
    assert_eq!(store.check_invariants().await.unwrap(), []);
    raw(&store)
        .execute_batch(
            "UPDATE wallets SET balance = 101 WHERE id = 'a';
             UPDATE wallets SET held = 5, incoming = 3 WHERE id = 'b';
             UPDATE mutations SET balance_after = -1 WHERE wallet = 'c' AND kind = 'debit';
             UPDATE system_accounts SET balance = balance - 7 WHERE kind = 'revenue';",
        )
        .unwrap();
    let wallet = |id: &str| WalletId::parse(id).unwrap();
    assert_eq!(
        store.check_invariants().await.unwrap(),
        [
            Breach::BalanceNotSum {
                tenant: tenant(),
                wallet: wallet("a"),
                balance: 101,
                sum: 100
            },
            Breach::HeldNotSum {
                tenant: tenant(),
                wallet: wallet("b"),
                held: 5,
                sum: 0
            },
            Breach::IncomingNotSum {
                tenant: tenant(),
                wallet: wallet("b"),
                incoming: 3,
                sum: 0
            },
            Breach::BelowFloor {
                tenant: tenant(),
                wallet: wallet("b"),
                available: -5
            },
            Breach::BelowFloor {
                tenant: tenant(),
                wallet: wallet("c"),
                available: -1
            },
            // Its grants hold the 100 its mutations gave it, not 101.
            Breach::GrantsBroken {
                tenant: tenant(),
                wallet: wallet("a"),
                balance: 101,
                remaining: 100,
                held: 0,
                reserved: 0,
                worst: 100
            },
            Breach::UnitNotZero {
                tenant: tenant(),
                unit: Unit::new("EUR", 2).unwrap(),
                sum: -6
            },
        ]
    );
}

/// Mutation ids are taken to be free without a look; a batch that reuses a stored one
/// runs again knowing it is taken, and only that request is refused.
#[tokio::test]
async fn a_taken_mutation_id_refuses_only_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &["w"]).await;
    let first = post("w", MutationKind::TopUp, 100);
    let outcomes = store.apply(vec![first.clone()], NOW).await.unwrap();
    assert_eq!(balance_after(&outcomes[0]), 100);
    let Command::Post { id: taken, .. } = first.command else {
        unreachable!("a post")
    };
    let again = request(Command::Post {
        id: taken,
        wallet: WalletId::parse("w").unwrap(),
        kind: MutationKind::Debit,
        amount: Amount::new(10).unwrap(),
        reference: Reference::default(),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    });
    let batch = vec![
        post("w", MutationKind::Debit, 30),
        again,
        post("w", MutationKind::Debit, 20),
    ];
    let outcomes = store.apply(batch, NOW).await.unwrap();
    assert_eq!(balance_after(&outcomes[0]), 70);
    assert_eq!(outcomes[1], Outcome::Refused(Refusal::MutationExists));
    assert_eq!(balance_after(&outcomes[2]), 50);
    let w = store
        .wallet(&tenant(), &WalletId::parse("w").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.balance, 50);
    assert_eq!(store.check_invariants().await.unwrap(), []);
}
