//! A rough throughput check of `SqliteStore::apply`: batches of debits on distinct
//! wallets or on one wallet, with and without idempotency keys, at several batch sizes.
//!
//! `cargo run --release -p prepaid-store-sqlite --example throughput [data dir]`
//!
//! Without a directory it uses a temporary one. Figures depend on the disk's fsync
//! time, which one commit per batch pays once, and on other load of the machine; the
//! CPU column (from `/proc/self/stat`, Linux only) is the process's CPU time per
//! request, which other load disturbs less.

use prepaid_ledger::{
    Amount, ApiKeyName, Command, CustomerId, Fingerprint, Floor, IdempotencyKey, MutationId,
    MutationKind, NewApiKey, NewWallet, Outcome, Reference, Request, Scopes, TenantId, Timestamp,
    Unit, WalletId,
};
use prepaid_store::Store;
use prepaid_store_sqlite::SqliteStore;
use std::time::Instant;
use uuid::Uuid;

const WALLETS: usize = 64;
const REQUESTS_PER_RUN: usize = 64 * 256;

fn parse<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    r.expect("valid benchmark input")
}

fn request(command: Command, key: Option<u64>) -> Request {
    Request {
        tenant: parse(TenantId::parse("bench")),
        customer_only: None,
        idempotency: key.map(|k| {
            let mut fp = [0u8; 32];
            fp[..8].copy_from_slice(&k.to_le_bytes());
            (
                parse(IdempotencyKey::parse(&format!("key-{k}"))),
                Fingerprint(fp),
            )
        }),
        command,
        before: Vec::new(),
        after: Vec::new(),
    }
}

fn wallet(i: usize) -> WalletId {
    parse(WalletId::parse(&format!("wallet-{i:04}")))
}

/// The process's CPU time (user and system) in microseconds, where Linux tells it.
fn cpu_micros() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Clock ticks are 1/100 s on every Linux configuration in use.
    Some(ticks * 10_000.0)
}

async fn check_all_done(outcomes: &[Outcome]) {
    for o in outcomes {
        assert!(
            matches!(o, Outcome::Done { .. }),
            "unexpected outcome {o:?}"
        );
    }
}

#[tokio::main]
async fn main() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temp.path().to_owned(), Into::into);
    let store = SqliteStore::open(&dir).expect("open the store");
    let now = Timestamp::from_secs(1_767_225_600);
    let admin = |name: &str, n: u8| NewApiKey {
        name: parse(ApiKeyName::parse(name)),
        secret_sha256: [n; 32],
        scopes: Scopes::ALL,
        customer: None,
    };
    assert!(
        store
            .bootstrap(&parse(TenantId::parse("default")), admin("root", 1), now)
            .await
            .expect("bootstrap")
    );
    let mut setup = vec![
        Request {
            tenant: parse(TenantId::parse("default")),
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
        request(
            Command::CreateCustomer {
                id: parse(CustomerId::parse("customer")),
                name: String::new(),
                link: String::new(),
            },
            None,
        ),
    ];
    for i in 0..WALLETS {
        setup.push(request(
            Command::CreateWallet {
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
            },
            None,
        ));
    }
    check_all_done(&store.apply(setup, now).await.expect("setup")).await;

    println!(
        "{:<52} {:>12} {:>12} {:>12}",
        "run", "requests/s", "us/request", "cpu us/req"
    );
    let only = std::env::var("THROUGHPUT_ONLY").ok();
    let mut key = 0u64;
    for batch_size in [1usize, 64, 1024] {
        for (label, distinct, keyed) in [
            ("debits, distinct wallets", true, false),
            ("debits, one wallet", false, false),
            ("debits, distinct wallets, idempotency keys", true, true),
        ] {
            let name = format!("{label}, batch {batch_size}");
            if only
                .as_ref()
                .is_some_and(|only| !name.contains(only.as_str()))
            {
                continue;
            }
            // Fewer single-request commits: each costs one fsync.
            let total = if batch_size == 1 {
                512
            } else {
                REQUESTS_PER_RUN
            };
            let cpu_started = cpu_micros();
            let started = Instant::now();
            let mut done = 0;
            while done < total {
                let batch: Vec<Request> = (0..batch_size)
                    .map(|i| {
                        key += 1;
                        let command = Command::Post {
                            id: MutationId(Uuid::now_v7()),
                            wallet: wallet(if distinct { i % WALLETS } else { 0 }),
                            kind: MutationKind::Debit,
                            amount: parse(Amount::positive(1)),
                            reference: Reference::default(),
                            occurred_at: None,
                            terms: prepaid_ledger::GrantTerms::default(),
                            metadata: prepaid_ledger::Metadata::default(),
                        };
                        request(command, keyed.then_some(key))
                    })
                    .collect();
                let outcomes = store.apply(batch, now).await.expect("apply");
                check_all_done(&outcomes).await;
                done += batch_size;
            }
            let elapsed = started.elapsed().as_secs_f64();
            let cpu = cpu_micros()
                .zip(cpu_started)
                .map_or(f64::NAN, |(end, start)| (end - start) / done as f64);
            println!(
                "{name:<52} {:>12.0} {:>12.2} {cpu:>12.2}",
                done as f64 / elapsed,
                elapsed * 1e6 / done as f64
            );
        }
    }
    let breaches = store.check_invariants().await.expect("check_invariants");
    assert!(breaches.is_empty(), "{breaches:?}");
}
