//! Several prepaid instances on one database: each its own `PgStore` (its own pool)
//! and its own engine with several writers, racing debits, holds, transfers and
//! idempotent top-ups on a few hot wallets. The database alone keeps them apart, so
//! afterwards the ledger must be sound and every unit of money accounted for.

use prepaid_ledger::{
    Amount, ApiKeyName, Command, CustomerId, Done, Fingerprint, Floor, HoldId, IdempotencyKey,
    MutationId, MutationKind, NewApiKey, NewWallet, Outcome, Reference, Refusal, Request, Scopes,
    TenantId, TransferId, Unit, WalletId,
};
use prepaid_store::{Engine, EngineConfig, Store, SystemClock};
use prepaid_store_postgres::testing::fresh_schema;
use prepaid_store_postgres::{PgConfig, PgStore};
use std::sync::Arc;
use uuid::Uuid;

const INSTANCES: usize = 3;
const WRITERS: usize = 4;
const TASKS_PER_INSTANCE: usize = 4;
const WALLETS: usize = 3;
const FUNDS_PER_WALLET: i64 = 200;
/// Steps per task in the racing phase: more debits than the funds allow.
const STEPS_PER_TASK: usize = 60;
const KEYED_ROUNDS: usize = 8;
const KEYED_TOP_UP: i64 = 5;

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn wallet(i: usize) -> WalletId {
    WalletId::parse(&format!("hot-{i}")).unwrap()
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

fn post(w: usize, kind: MutationKind, amount: i64) -> Request {
    request(Command::Post {
        id: MutationId(Uuid::now_v7()),
        wallet: wallet(w),
        kind,
        amount: Amount::positive(amount).unwrap(),
        reference: Reference::default(),
        occurred_at: None,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    })
}

fn done(outcome: Outcome) -> Done {
    match outcome {
        Outcome::Done { done, .. } => done,
        other => panic!("expected a carried-out request, got {other:?}"),
    }
}

/// What one task saw.
#[derive(Default)]
struct Tally {
    debits: i64,
    committed: i64,
}

/// Debits, holds (committed or released) and transfers on the hot wallets, in an
/// order that depends on `seed`; only `InsufficientFunds` may refuse them.
async fn race(engine: Engine, seed: usize) -> Tally {
    let mut tally = Tally::default();
    for step in 0..STEPS_PER_TASK {
        let w = (seed + step) % WALLETS;
        match (seed + step) % 4 {
            0 | 1 => match engine
                .submit(post(w, MutationKind::Debit, 1))
                .await
                .unwrap()
            {
                Outcome::Done { .. } => tally.debits += 1,
                Outcome::Refused(Refusal::InsufficientFunds { .. }) => {}
                other => panic!("debit: {other:?}"),
            },
            2 => {
                let id = HoldId(Uuid::now_v7());
                let place = request(Command::PlaceHold {
                    id,
                    wallet: wallet(w),
                    amount: Amount::positive(2).unwrap(),
                    reference: Reference::default(),
                    expires_at: None,
                    metadata: prepaid_ledger::Metadata::default(),
                });
                match engine.submit(place).await.unwrap() {
                    Outcome::Done { .. } => {}
                    Outcome::Refused(Refusal::InsufficientFunds { .. }) => continue,
                    other => panic!("hold: {other:?}"),
                }
                let settle = if step % 2 == 0 {
                    Command::CommitHold {
                        hold: id,
                        amount: Some(Amount::positive(1).unwrap()),
                        mutation_id: MutationId(Uuid::now_v7()),
                        reference: None,
                    }
                } else {
                    Command::ReleaseHold {
                        hold: id,
                        mutation_id: MutationId(Uuid::now_v7()),
                    }
                };
                let committing = matches!(settle, Command::CommitHold { .. });
                done(engine.submit(request(settle)).await.unwrap());
                if committing {
                    tally.committed += 1;
                }
            }
            _ => {
                let transfer = request(Command::Transfer {
                    id: TransferId(Uuid::now_v7()),
                    debit_id: MutationId(Uuid::now_v7()),
                    credit_id: MutationId(Uuid::now_v7()),
                    from: wallet(w),
                    to: wallet((w + 1) % WALLETS),
                    amount: Amount::positive(3).unwrap(),
                    reference: Reference::default(),
                    occurred_at: None,
                    terms: prepaid_ledger::GrantTerms::default(),
                    metadata: prepaid_ledger::Metadata::default(),
                });
                match engine.submit(transfer).await.unwrap() {
                    Outcome::Done { .. } | Outcome::Refused(Refusal::InsufficientFunds { .. }) => {}
                    other => panic!("transfer: {other:?}"),
                }
            }
        }
    }
    tally
}

/// Debits one unit at a time until the wallet refuses; returns how many it took.
async fn drain(engine: &Engine, w: usize) -> i64 {
    let mut taken = 0;
    loop {
        match engine
            .submit(post(w, MutationKind::Debit, 1))
            .await
            .unwrap()
        {
            Outcome::Done { .. } => taken += 1,
            Outcome::Refused(Refusal::InsufficientFunds { available: 0, .. }) => return taken,
            other => panic!("drain: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_racing_on_hot_wallets_keep_the_ledger_sound() {
    let Some(schema) = fresh_schema().await else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..INSTANCES {
        let config = PgConfig {
            pool_size_max: WRITERS + 2,
            ..PgConfig::default()
        };
        stores.push(Arc::new(
            PgStore::connect(schema.url(), config).await.unwrap(),
        ));
    }
    let now = prepaid_store::Clock::now(&SystemClock);
    let admin = |name: &str, n: u8| NewApiKey {
        name: ApiKeyName::parse(name).unwrap(),
        secret_sha256: [n; 32],
        scopes: Scopes::ALL,
        customer: None,
    };
    // Every instance bootstraps at once; exactly one makes the operator tenant.
    let operator = TenantId::parse("default").unwrap();
    let boots = futures_join(stores.iter().enumerate().map(|(i, s)| {
        let (s, operator) = (s.clone(), operator.clone());
        let key = admin("root", u8::try_from(i + 1).unwrap());
        async move { s.bootstrap(&operator, key, now).await.unwrap() }
    }))
    .await;
    assert_eq!(boots.iter().filter(|made| **made).count(), 1, "{boots:?}");

    let mut setup = vec![
        Request {
            tenant: operator,
            customer_only: None,
            idempotency: None,
            command: Command::CreateTenant {
                tenant: tenant(),
                name: "Acme".into(),
                admin_key: admin("admin", 100),
            },
            before: Vec::new(),
            after: Vec::new(),
        },
        request(Command::CreateCustomer {
            id: CustomerId::parse("c").unwrap(),
            name: String::new(),
            link: String::new(),
        }),
    ];
    for w in 0..WALLETS {
        setup.push(request(Command::CreateWallet {
            wallet: NewWallet {
                id: wallet(w),
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
        setup.push(post(w, MutationKind::TopUp, FUNDS_PER_WALLET));
    }
    for outcome in stores[0].apply(setup, now).await.unwrap() {
        done(outcome);
    }

    let engines: Vec<Engine> = stores
        .iter()
        .map(|s| {
            let config = EngineConfig {
                writers: WRITERS,
                ..EngineConfig::default()
            };
            Engine::start(s.clone() as Arc<dyn Store>, Arc::new(SystemClock), config).0
        })
        .collect();

    // The same idempotency key sent to every instance at once is carried out once;
    // the others replay it.
    let mut keyed_total = 0;
    for round in 0..KEYED_ROUNDS {
        let outcomes = futures_join(engines.iter().map(|engine| {
            let mut top_up = post(round % WALLETS, MutationKind::TopUp, KEYED_TOP_UP);
            top_up.idempotency = Some((
                IdempotencyKey::parse(&format!("top-up-{round}")).unwrap(),
                Fingerprint([u8::try_from(round).unwrap(); 32]),
            ));
            let engine = engine.clone();
            async move { engine.submit(top_up).await.unwrap() }
        }))
        .await;
        let fresh: Vec<&Done> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Done {
                    done,
                    replayed: false,
                } => Some(done),
                _ => None,
            })
            .collect();
        assert_eq!(fresh.len(), 1, "round {round}: {outcomes:?}");
        for outcome in &outcomes {
            match outcome {
                Outcome::Done { done, .. } => assert_eq!(done, fresh[0]),
                other => panic!("round {round}: {other:?}"),
            }
        }
        keyed_total += KEYED_TOP_UP;
    }

    let mut tasks = Vec::new();
    for (i, engine) in engines.iter().enumerate() {
        for t in 0..TASKS_PER_INSTANCE {
            tasks.push(tokio::spawn(race(
                engine.clone(),
                i * TASKS_PER_INSTANCE + t,
            )));
        }
    }
    let mut tally = Tally::default();
    for task in tasks {
        let t = task.await.unwrap();
        tally.debits += t.debits;
        tally.committed += t.committed;
    }
    // Whatever is left goes, through every instance at once.
    let drains = futures_join((0..WALLETS).map(|w| {
        let engine = engines[w % INSTANCES].clone();
        async move { drain(&engine, w).await }
    }))
    .await;
    tally.debits += drains.iter().sum::<i64>();

    let store = &stores[0];
    assert_eq!(store.check_invariants().await.unwrap(), []);
    for w in 0..WALLETS {
        let found = store.wallet(&tenant(), &wallet(w)).await.unwrap().unwrap();
        assert_eq!((found.balance, found.held), (0, 0), "{found:?}");
    }
    // Every unit put in was spent by exactly one accepted debit or commit.
    let funds = FUNDS_PER_WALLET * i64::try_from(WALLETS).unwrap() + keyed_total;
    assert_eq!(tally.debits + tally.committed, funds);
}

/// Runs the futures at once and returns their outputs in order.
async fn futures_join<F: Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}
