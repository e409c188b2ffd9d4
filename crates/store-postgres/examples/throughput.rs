//! A rough throughput check of `PgStore::apply`: batches of debits at several batch
//! sizes, one batch at a time or several at once (as the engine's writers run them),
//! on distinct wallets or on one hot wallet.
//!
//! `cargo run --release -p prepaid-store-postgres --example throughput`
//!
//! It works in a fresh schema of the test database (`$PREPAID_TEST_DATABASE_URL`, see
//! `prepaid_store_postgres::testing`), dropped at the end. Figures depend on the
//! database's commit time (its WAL fsync) and on other load of the machine.

use prepaid_ledger::{
    Amount, ApiKeyName, Command, CustomerId, Floor, MutationId, MutationKind, NewApiKey, NewWallet,
    Outcome, Reference, Request, Scopes, TenantId, Timestamp, Unit, WalletId,
};
use prepaid_store::Store;
use prepaid_store_postgres::{PgConfig, PgStore, testing};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const WALLETS: usize = 64;
const CONCURRENCY: [usize; 2] = [1, 4];
const BATCH_SIZES: [usize; 3] = [1, 64, 1024];

fn parse<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    r.expect("valid benchmark input")
}

fn request(command: Command) -> Request {
    Request {
        tenant: parse(TenantId::parse("bench")),
        customer_only: None,
        idempotency: None,
        command,
        before: Vec::new(),
        after: Vec::new(),
    }
}

fn wallet(i: usize) -> WalletId {
    parse(WalletId::parse(&format!("wallet-{i:04}")))
}

fn check_all_done(outcomes: &[Outcome]) {
    for o in outcomes {
        assert!(
            matches!(o, Outcome::Done { .. }),
            "unexpected outcome {o:?}"
        );
    }
}

/// Debits of 1 in batches of `batch_size` from `streams` tasks at once, each task on
/// its own share of the wallets (or all on wallet 0 when `hot`).
async fn run(store: Arc<PgStore>, batch_size: usize, streams: usize, hot: bool, total: usize) {
    let per_stream = total / streams;
    let tasks: Vec<_> = (0..streams)
        .map(|s| {
            let store = store.clone();
            tokio::spawn(async move {
                let share = WALLETS / streams;
                let mut done = 0;
                while done < per_stream {
                    let batch: Vec<Request> = (0..batch_size)
                        .map(|i| {
                            let w = if hot { 0 } else { s * share + i % share };
                            request(Command::Post {
                                id: MutationId(Uuid::now_v7()),
                                wallet: wallet(w),
                                kind: MutationKind::Debit,
                                amount: parse(Amount::positive(1)),
                                reference: Reference::default(),
                                occurred_at: None,
                                terms: prepaid_ledger::GrantTerms::default(),
                                metadata: prepaid_ledger::Metadata::default(),
                            })
                        })
                        .collect();
                    let now = Timestamp::from_secs(1_767_225_600);
                    check_all_done(&store.apply(batch, now).await.expect("apply"));
                    done += batch_size;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a stream");
    }
}

#[tokio::main]
async fn main() {
    let Some(schema) = testing::fresh_schema().await else {
        return;
    };
    let store = Arc::new(
        PgStore::connect(schema.url(), PgConfig::default())
            .await
            .expect("connect"),
    );
    let now = Timestamp::from_secs(1_767_225_600);
    let admin = |name: &str, n: u8| NewApiKey {
        name: parse(ApiKeyName::parse(name)),
        secret_sha256: [n; 32],
        scopes: Scopes::ALL,
        customer: None,
    };
    let operator = parse(TenantId::parse("default"));
    assert!(
        store
            .bootstrap(&operator, admin("root", 1), now)
            .await
            .expect("bootstrap")
    );
    let mut setup = vec![
        Request {
            tenant: operator,
            customer_only: None,
            idempotency: None,
            command: Command::CreateTenant {
                tenant: parse(TenantId::parse("bench")),
                name: "Bench".into(),
                admin_key: admin("admin", 2),
            },
            before: Vec::new(),
            after: Vec::new(),
        },
        request(Command::CreateCustomer {
            id: parse(CustomerId::parse("customer")),
            name: String::new(),
            link: String::new(),
        }),
    ];
    for i in 0..WALLETS {
        setup.push(request(Command::CreateWallet {
            wallet: NewWallet {
                id: wallet(i),
                customer: parse(CustomerId::parse("customer")),
                unit: parse(Unit::new("EUR", 2)),
                name: String::new(),
                product: String::new(),
                floor: Floor::Unlimited,
                ceiling: None,
                valid_from: None,
                valid_until: None,
                metadata: prepaid_ledger::Metadata::default(),
            },
        }));
    }
    check_all_done(&store.apply(setup, now).await.expect("setup"));

    println!("{:<48} {:>12} {:>12}", "run", "requests/s", "us/request");
    let only = std::env::var("THROUGHPUT_ONLY").ok();
    for batch_size in BATCH_SIZES {
        for streams in CONCURRENCY {
            for hot in [false, true] {
                let wallets = if hot {
                    "one wallet"
                } else {
                    "distinct wallets"
                };
                let name = format!("debits, {wallets}, batch {batch_size}, {streams} at once");
                if only
                    .as_ref()
                    .is_some_and(|only| !name.contains(only.as_str()))
                {
                    continue;
                }
                // Fewer single-request commits: each costs one commit's wait.
                let total = if batch_size == 1 { 2048 } else { 64 * 1024 };
                let started = Instant::now();
                run(store.clone(), batch_size, streams, hot, total).await;
                let elapsed = started.elapsed().as_secs_f64();
                println!(
                    "{name:<48} {:>12.0} {:>12.2}",
                    total as f64 / elapsed,
                    elapsed * 1e6 / total as f64
                );
            }
        }
    }
    let breaches = store.check_invariants().await.expect("check_invariants");
    assert!(breaches.is_empty(), "{breaches:?}");
}
