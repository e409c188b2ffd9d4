//! Two prepaid instances (two `PgStore`s, two pools) on one database claiming jobs of
//! one queue at once: no job is handed out twice in one lease, and every due job is
//! handed out. Records replaced by compare-and-set at once change once per version.

use prepaid_ledger::{ApiKeyName, NewApiKey, Scopes, TenantId, Timestamp};
use prepaid_store::{Job, JobQueue, RecordKey, RecordKind, Store};
use prepaid_store_postgres::testing::{TestSchema, fresh_schema};
use prepaid_store_postgres::{PgConfig, PgStore};
use std::collections::HashSet;
use std::sync::Arc;

const INSTANCES: usize = 2;
const CLAIMERS_PER_INSTANCE: usize = 4;
const JOBS: usize = 400;
const CLAIM_SIZE: usize = 7;
const QUEUE: JobQueue = JobQueue::new("deliveries");
const NOW: Timestamp = Timestamp::from_micros(1_767_225_600_000_000);
const HOUR: i64 = 3_600_000_000;

fn tenant() -> TenantId {
    TenantId::parse("default").unwrap()
}

/// The instances, and the schema they share (dropped with it).
async fn instances() -> Option<(TestSchema, Vec<Arc<PgStore>>)> {
    let schema = fresh_schema().await?;
    let mut stores = Vec::new();
    for _ in 0..INSTANCES {
        let config = PgConfig {
            pool_size_max: CLAIMERS_PER_INSTANCE + 1,
            ..PgConfig::default()
        };
        stores.push(Arc::new(
            PgStore::connect(schema.url(), config).await.unwrap(),
        ));
    }
    let root = NewApiKey {
        name: ApiKeyName::parse("root").unwrap(),
        secret_sha256: [1; 32],
        scopes: Scopes::ALL,
        customer: None,
    };
    assert!(stores[0].bootstrap(&tenant(), root, NOW).await.unwrap());
    Some((schema, stores))
}

/// Every claimer of every instance claims until nothing is due; returns all it got.
async fn claim_all(stores: &[Arc<PgStore>], now: Timestamp, lease_until: Timestamp) -> Vec<Job> {
    let mut tasks = Vec::new();
    for store in stores {
        for _ in 0..CLAIMERS_PER_INSTANCE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let jobs = store
                        .claim_jobs(QUEUE, now, lease_until, CLAIM_SIZE)
                        .await
                        .unwrap();
                    if jobs.is_empty() {
                        return got;
                    }
                    assert!(jobs.len() <= CLAIM_SIZE);
                    got.extend(jobs);
                }
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

fn assert_each_job_once(jobs: &[Job], attempts: u32) {
    let ids: HashSet<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        jobs.len(),
        "a job was claimed twice in one lease"
    );
    assert_eq!(ids.len(), JOBS, "every due job was claimed");
    assert!(jobs.iter().all(|j| j.attempts == attempts));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_claiming_at_once_never_share_a_job() {
    let Some((_schema, stores)) = instances().await else {
        return;
    };
    for i in 0..JOBS {
        let id = RecordKey::parse(format!("job-{i:04}")).unwrap();
        let due = NOW.plus_micros(-i64::try_from(i).unwrap());
        assert!(
            stores[i % INSTANCES]
                .enqueue_job(&tenant(), QUEUE, &id, "{}", due)
                .await
                .unwrap()
        );
    }
    let lease_until = NOW.plus_micros(HOUR);
    let first = claim_all(&stores, NOW, lease_until).await;
    assert_each_job_once(&first, 1);
    assert!(first.iter().all(|j| j.due_at == lease_until));

    // Within the lease nothing is due; when it ends, every job is due again once.
    assert!(
        stores[1]
            .claim_jobs(QUEUE, lease_until.plus_micros(-1), lease_until, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let second = claim_all(&stores, lease_until, lease_until.plus_micros(HOUR)).await;
    assert_each_job_once(&second, 2);
    assert!(stores[0].check_invariants().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_racing_on_one_record_change_it_once_per_version() {
    let Some((_schema, stores)) = instances().await else {
        return;
    };
    let contenders = INSTANCES * CLAIMERS_PER_INSTANCE;
    for expected in [None, Some(1), Some(2)] {
        let mut tasks = Vec::new();
        for n in 0..contenders {
            let store = stores[n % INSTANCES].clone();
            tasks.push(tokio::spawn(async move {
                let value = format!("writer {n}");
                store
                    .put_record(
                        &tenant(),
                        RecordKind::new("users"),
                        &RecordKey::parse("ann").unwrap(),
                        &value,
                        expected,
                        NOW,
                    )
                    .await
                    .unwrap()
                    .map(|version| (version, value))
            }));
        }
        let mut won = Vec::new();
        for task in tasks {
            won.extend(task.await.unwrap());
        }
        assert_eq!(won.len(), 1, "one writer wins each version: {won:?}");
        let (version, value) = &won[0];
        assert_eq!(*version, expected.map_or(1, |v| v + 1));
        let record = stores[0]
            .record(
                &tenant(),
                RecordKind::new("users"),
                &RecordKey::parse("ann").unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&record.version, &record.value), (version, value));
    }
}
