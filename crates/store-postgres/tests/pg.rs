//! What only the PostgreSQL store does: its schema versions, several instances
//! starting and sweeping at once, and riding out a database that goes away.

use prepaid_ledger::{
    Amount, ApiKeyName, Command, CustomerId, Done, Floor, HoldId, MutationId, MutationKind,
    NewApiKey, NewWallet, Outcome, Reference, Request, Scopes, TenantId, Timestamp, Unit, WalletId,
};
use prepaid_store::{Store, StoreError};
use prepaid_store_postgres::testing::{TestSchema, database_url, fresh_schema, migrations};
use prepaid_store_postgres::{PgConfig, PgError, PgStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
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

fn admin() -> NewApiKey {
    NewApiKey {
        name: ApiKeyName::parse("root").unwrap(),
        secret_sha256: [1; 32],
        scopes: Scopes::ALL,
        customer: None,
    }
}

async fn raw(schema: &TestSchema) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The first column of every row `sql` finds.
async fn column<T>(client: &tokio_postgres::Client, sql: &str) -> Vec<T>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let rows = client.query(sql, &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// The operator tenant, a customer and one wallet per id.
async fn populate(store: &PgStore, wallets: &[&str]) {
    assert!(store.bootstrap(&tenant(), admin(), NOW).await.unwrap());
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
}

#[tokio::test]
async fn instances_starting_at_once_migrate_once_and_record_the_version() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    let connects = (0..4).map(|_| {
        let url = schema.url().to_owned();
        tokio::spawn(async move { PgStore::connect(&url, PgConfig::default()).await })
    });
    for connect in connects.collect::<Vec<_>>() {
        connect.await.unwrap().unwrap();
    }
    let versions: Vec<i32> = column(
        &raw(&schema).await,
        "SELECT version FROM prepaid_schema_migrations",
    )
    .await;
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
}

/// A schema of the first version gains customer links (empty for the customers it
/// has) and settings.
#[tokio::test]
async fn a_schema_of_the_first_version_is_brought_up_to_date() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    let client = raw(&schema).await;
    client
        .batch_execute(include_str!("../migrations/0001_initial.sql"))
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE prepaid_schema_migrations (
                 version     INTEGER PRIMARY KEY,
                 applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
             );
             INSERT INTO prepaid_schema_migrations (version) VALUES (1);
             INSERT INTO tenants (id, name, operator, created_at) VALUES ('t', 't', true, 0);
             INSERT INTO customers (tenant, id, name, created_at) VALUES ('t', 'old', 'Old', 0);",
        )
        .await
        .unwrap();
    let store = PgStore::connect(schema.url(), PgConfig::default())
        .await
        .unwrap();
    let tenant = TenantId::parse("t").unwrap();
    let old = store
        .customer(&tenant, &CustomerId::parse("old").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((old.name.as_str(), old.link.as_str()), ("Old", ""));
    let key = prepaid_ledger::SettingKey::parse("k").unwrap();
    assert_eq!(store.setting(&tenant, &key).await.unwrap(), None);
}

/// A schema of the seventh version keeps its system account balances, spread over
/// the slots, and its mutations' list cursors, which new mutations follow.
#[tokio::test]
async fn a_schema_of_the_seventh_version_keeps_its_balances_and_cursors() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    let client = raw(&schema).await;
    for sql in migrations(7) {
        client.batch_execute(sql).await.unwrap();
    }
    // Balances that do not divide evenly, and one at the bound: the accounts balance the
    // wallet's 3,999,999,999,999,999,999, the sum of its three mutations.
    client
        .batch_execute(
            "CREATE TABLE prepaid_schema_migrations (
                 version     INTEGER PRIMARY KEY,
                 applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
             );
             INSERT INTO prepaid_schema_migrations (version)
                 SELECT generate_series(1, 7);
             INSERT INTO tenants (id, name, operator, created_at, next_seq)
                 VALUES ('default', 'default', true, 0, 4), ('other', 'other', false, 0, 1);
             INSERT INTO customers (tenant, id, name, created_at) VALUES ('default', 'c', '', 0);
             INSERT INTO wallets (tenant, id, customer, unit_code, unit_scale, name, product,
                 status, floor, balance, held, created_at, updated_at)
                 VALUES ('default', 'w', 'c', 'EUR', 2, '', '', 'active', 0,
                 3999999999999999999, 0, 0, 0);
             INSERT INTO system_accounts (tenant, unit_code, unit_scale, kind, balance) VALUES
                 ('default', 'EUR', 2, 'world', -4000000000000000000),
                 ('default', 'EUR', 2, 'revenue', 7),
                 ('default', 'EUR', 2, 'adjustment', -6);
             INSERT INTO mutations (tenant, seq, id, wallet, customer, unit_code, unit_scale,
                 kind, amount, balance_after, reference_kind, reference_text, reference_link,
                 occurred_at, recorded_at)
                 SELECT 'default', n, gen_random_uuid(), 'w', 'c', 'EUR', 2, 'adjustment',
                 1333333333333333333, n * 1333333333333333333, '', '', '', 0, 0
                 FROM generate_series(1, 3) AS n;",
        )
        .await
        .unwrap();
    let store = PgStore::connect(schema.url(), PgConfig::default())
        .await
        .unwrap();
    let slots: Vec<(String, i64, i64, i64)> = client
        .query(
            "SELECT kind, count(*), sum(balance)::int8, max(abs(balance)) \
             FROM system_accounts GROUP BY kind ORDER BY kind",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let slot = prepaid_store_postgres::SLOT_BALANCE_ABS_MAX;
    assert_eq!(
        slots,
        [
            ("adjustment".to_owned(), 16, -6, 1),
            ("revenue".to_owned(), 16, 7, 1),
            ("world".to_owned(), 16, -4_000_000_000_000_000_000, slot),
        ]
    );
    // The world account is at the bound: a top-up is refused, a debit goes through.
    let post = |kind, amount| {
        request(Command::Post {
            id: MutationId(Uuid::now_v7()),
            wallet: WalletId::parse("w").unwrap(),
            kind,
            amount: Amount::positive(amount).unwrap(),
            reference: Reference::default(),
            occurred_at: None,
            terms: prepaid_ledger::GrantTerms::default(),
            metadata: prepaid_ledger::Metadata::default(),
        })
    };
    let outcomes = store
        .apply(
            vec![post(MutationKind::TopUp, 1), post(MutationKind::Debit, 5)],
            NOW,
        )
        .await
        .unwrap();
    assert!(
        matches!(
            outcomes[0],
            Outcome::Refused(prepaid_ledger::Refusal::BalanceOverflow)
        ),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[1], Outcome::Done { .. }), "{outcomes:?}");
    let page = store
        .mutations(
            &tenant(),
            &prepaid_store::MutationQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 4);
    assert_eq!(page.items[3].kind, MutationKind::Debit);
    let seqs: Vec<i64> = column(&client, "SELECT seq FROM mutations ORDER BY seq").await;
    assert_eq!(seqs[..3], [1, 2, 3]);
    assert!(seqs[3] > 3, "{seqs:?}");
    assert_eq!(store.check_invariants().await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_schema_from_a_newer_build_is_refused() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    PgStore::connect(schema.url(), PgConfig::default())
        .await
        .unwrap();
    raw(&schema)
        .await
        .execute(
            "INSERT INTO prepaid_schema_migrations (version) VALUES (99)",
            &[],
        )
        .await
        .unwrap();
    match PgStore::connect(schema.url(), PgConfig::default()).await {
        Err(PgError::SchemaTooNew {
            found: 99,
            known: 10,
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn a_configuration_past_its_limits_is_refused() {
    for config in [
        PgConfig {
            pool_size_max: 0,
            ..PgConfig::default()
        },
        PgConfig {
            pool_size_max: prepaid_store_postgres::CONNECTIONS_MAX + 1,
            ..PgConfig::default()
        },
        PgConfig {
            apply_retries_max: prepaid_store_postgres::APPLY_RETRIES_MAX + 1,
            ..PgConfig::default()
        },
        PgConfig {
            statement_timeout_ms: 0,
            ..PgConfig::default()
        },
    ] {
        // Refused before any connection is tried.
        match PgStore::connect("postgres://nobody@127.0.0.1:1/none", config).await {
            Err(PgError::Config(_)) => {}
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
    let at_limits = PgConfig {
        pool_size_max: prepaid_store_postgres::CONNECTIONS_MAX,
        apply_retries_max: prepaid_store_postgres::APPLY_RETRIES_MAX,
        ..PgConfig::default()
    };
    // Valid, so the connection is tried (and fails: nothing listens on port 1).
    match PgStore::connect("postgres://nobody@127.0.0.1:1/none", at_limits).await {
        Err(PgError::Connect(_)) => {}
        other => panic!("expected a connection error, got {other:?}"),
    }
}

/// Two instances sweeping the same due holds at once expire each hold once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sweeping_at_once_share_the_work() {
    const HOLDS: usize = 60;
    let Some(schema) = fresh_schema().await else {
        return;
    };
    let a = PgStore::connect(schema.url(), PgConfig::default())
        .await
        .unwrap();
    let b = PgStore::connect(schema.url(), PgConfig::default())
        .await
        .unwrap();
    let wallets = ["w0", "w1", "w2"];
    populate(&a, &wallets).await;
    let mut batch = Vec::new();
    for w in wallets {
        batch.push(request(Command::Post {
            id: MutationId(Uuid::now_v7()),
            wallet: WalletId::parse(w).unwrap(),
            kind: MutationKind::TopUp,
            amount: Amount::positive(1000).unwrap(),
            reference: Reference::default(),
            occurred_at: None,
            terms: prepaid_ledger::GrantTerms::default(),
            metadata: prepaid_ledger::Metadata::default(),
        }));
    }
    for i in 0..HOLDS {
        batch.push(request(Command::PlaceHold {
            id: HoldId(Uuid::now_v7()),
            wallet: WalletId::parse(wallets[i % wallets.len()]).unwrap(),
            amount: Amount::positive(1).unwrap(),
            reference: Reference::default(),
            expires_at: Some(NOW.plus_micros(1)),
            metadata: prepaid_ledger::Metadata::default(),
        }));
    }
    for outcome in a.apply(batch, NOW).await.unwrap() {
        assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    }
    let later = NOW.plus_micros(1_000_000);
    let mut expired = 0;
    loop {
        let (x, y) = tokio::join!(a.sweep(later), b.sweep(later));
        let (x, y) = (x.unwrap(), y.unwrap());
        expired += x.holds_expired + y.holds_expired;
        if x.holds_expired + y.holds_expired == 0 {
            break;
        }
    }
    assert_eq!(expired, HOLDS);
    assert_eq!(a.check_invariants().await.unwrap(), []);
    for w in wallets {
        let found = a
            .wallet(&tenant(), &WalletId::parse(w).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.balance, found.held), (1000, 0));
    }
}

/// A TCP proxy to the test database that can be cut and mended, standing for a
/// database that goes away and comes back.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().unwrap().push(link.abort_handle());
            }
        });
        Self { port, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn mend(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_lost_database_is_unavailable_and_the_store_recovers_without_restart() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    let base: tokio_postgres::Config = database_url().parse().unwrap();
    let host = match base.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the test database must be reached over TCP, not {other:?}"),
    };
    let port = base.get_ports().first().copied().unwrap_or(5432);
    let proxy = Proxy::start((host, port)).await;
    let url = format!(
        "host=127.0.0.1 port={} user={} dbname={} options='-csearch_path={}'",
        proxy.port,
        base.get_user().unwrap_or("postgres"),
        base.get_dbname().unwrap_or("postgres"),
        schema.name()
    );
    let short = PgConfig {
        connect_timeout_ms: 1_000,
        pool_wait_timeout_ms: 1_000,
        statement_timeout_ms: 5_000,
        ..PgConfig::default()
    };
    let store = PgStore::connect(&url, short).await.unwrap();
    populate(&store, &["w"]).await;
    store.ping().await.unwrap();

    proxy.cut();
    // Every call fails as unavailable, never as an internal error.
    for _ in 0..3 {
        match store.ping().await {
            Err(StoreError::Unavailable { .. }) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    let top_up = request(Command::Post {
        id: MutationId(Uuid::now_v7()),
        wallet: WalletId::parse("w").unwrap(),
        kind: MutationKind::TopUp,
        amount: Amount::positive(5).unwrap(),
        reference: Reference::default(),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    });
    match store.apply(vec![top_up.clone()], NOW).await {
        Err(StoreError::Unavailable { .. }) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }

    proxy.mend();
    store.ping().await.unwrap();
    let outcomes = store.apply(vec![top_up], NOW).await.unwrap();
    assert!(matches!(outcomes[0], Outcome::Done { .. }), "{outcomes:?}");
    assert_eq!(store.check_invariants().await.unwrap(), []);
}

/// Instances creating one setting at once: one creates it, the others (whose insert
/// breaks the primary key, so that their batch runs again) replace its value.
#[tokio::test]
async fn instances_racing_to_create_a_setting_create_it_once() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    let first = PgStore::connect(schema.url(), PgConfig::default())
        .await
        .unwrap();
    populate(&first, &[]).await;
    let key = prepaid_ledger::SettingKey::parse("topdesk.service-user").unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let url = schema.url().to_owned();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let store = PgStore::connect(&url, PgConfig::default()).await.unwrap();
            let put = request(Command::PutSetting {
                key,
                value: format!("instance {i}"),
            });
            store.apply(vec![put], NOW).await.unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap().as_slice() {
            [
                Outcome::Done {
                    done: Done::Setting { created: c },
                    ..
                },
            ] => created += usize::from(*c),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1, "exactly one instance created the setting");
    let value = first.setting(&tenant(), &key).await.unwrap().unwrap();
    assert!(value.starts_with("instance "), "{value}");
}
