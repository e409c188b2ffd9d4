//! The conformance cases of records and jobs.

use super::{Env, OPERATOR, SECOND, tid};
use prepaid_ledger::{JobQueue, RecordKey, RecordKind, Timestamp};
use prepaid_store::records::{
    JOB_CLAIM_MAX, Job, RECORD_KEY_LEN_MAX, RECORD_KIND_LEN_MAX, RECORD_VALUE_BYTES_MAX, Record,
};
use prepaid_store::{PAGE_SIZE_MAX, Store};

fn store(env: &Env) -> &dyn Store {
    env.store()
}

/// A key the case names; every one it names is valid.
fn key(text: &str) -> RecordKey {
    RecordKey::parse(text).expect("a valid record key")
}

async fn put(
    env: &Env,
    tenant: &str,
    kind: &'static str,
    id: &str,
    value: &str,
    expected: Option<i64>,
) -> Option<i64> {
    store(env)
        .put_record(
            &tid(tenant),
            RecordKind::new(kind),
            &key(id),
            value,
            expected,
            env.now,
        )
        .await
        .expect("put_record")
}

async fn get(env: &Env, tenant: &str, kind: &'static str, id: &str) -> Option<Record> {
    store(env)
        .record(&tid(tenant), RecordKind::new(kind), &key(id))
        .await
        .expect("record")
}

async fn list(
    env: &Env,
    tenant: &str,
    kind: &'static str,
    after: Option<&str>,
    limit: usize,
) -> Vec<String> {
    store(env)
        .records(
            &tid(tenant),
            RecordKind::new(kind),
            after.map(key).as_ref(),
            limit,
        )
        .await
        .expect("records")
        .into_iter()
        .map(|r| r.key.into_string())
        .collect()
}

async fn enqueue(
    env: &Env,
    tenant: &str,
    queue: &'static str,
    id: &str,
    due_at: Timestamp,
) -> bool {
    store(env)
        .enqueue_job(
            &tid(tenant),
            JobQueue::new(queue),
            &key(id),
            &format!("payload {id}"),
            due_at,
        )
        .await
        .expect("enqueue_job")
}

async fn claim(env: &Env, queue: &'static str, lease_secs: i64, limit: usize) -> Vec<Job> {
    store(env)
        .claim_jobs(
            JobQueue::new(queue),
            env.now,
            env.now.plus_micros(lease_secs * SECOND),
            limit,
        )
        .await
        .expect("claim_jobs")
}

fn ids(jobs: &[Job]) -> Vec<(&str, &str)> {
    jobs.iter()
        .map(|j| (j.tenant.as_str(), j.id.as_str()))
        .collect()
}

/// `put_record` inserts only when absent and replaces only the version it is given;
/// a failed condition changes nothing; every replacement adds one to the version.
pub async fn records_compare_and_set(env: &mut Env) {
    env.operator().await;
    let t = OPERATOR;
    assert_eq!(get(env, t, "users", "ann").await, None);
    assert_eq!(put(env, t, "users", "ann", "v1", None).await, Some(1));
    let created = env.now;
    assert_eq!(
        put(env, t, "users", "ann", "again", None).await,
        None,
        "insert-if-absent finds it present"
    );
    env.advance_secs(5);
    assert_eq!(put(env, t, "users", "ann", "v2", Some(1)).await, Some(2));
    assert_eq!(
        put(env, t, "users", "ann", "stale", Some(1)).await,
        None,
        "an old version does not match"
    );
    assert_eq!(put(env, t, "users", "ann", "ahead", Some(3)).await, None);
    assert_eq!(put(env, t, "users", "bob", "absent", Some(1)).await, None);
    assert_eq!(
        put(env, t, "users", "ann", "max", Some(i64::MAX)).await,
        None
    );
    assert_eq!(get(env, t, "users", "bob").await, None);
    env.advance_secs(5);
    assert_eq!(put(env, t, "users", "ann", "v3", Some(2)).await, Some(3));
    assert_eq!(
        get(env, t, "users", "ann").await,
        Some(Record {
            kind: RecordKind::new("users"),
            key: key("ann"),
            value: "v3".to_owned(),
            version: 3,
            created_at: created,
            updated_at: env.now,
        })
    );
    // The same key of another kind is another record.
    assert_eq!(get(env, t, "groups", "ann").await, None);
    assert_eq!(put(env, t, "groups", "ann", "g", None).await, Some(1));
    assert_eq!(
        get(env, t, "users", "ann").await.map(|r| r.version),
        Some(3)
    );
    // Empty values are values.
    assert_eq!(put(env, t, "groups", "ann", "", Some(1)).await, Some(2));
    assert_eq!(
        get(env, t, "groups", "ann").await.map(|r| r.value),
        Some(String::new())
    );
}

/// Records of one kind list by key (in byte order), after a key, at most a limit.
pub async fn records_list_in_key_order(env: &mut Env) {
    env.operator().await;
    let t = OPERATOR;
    for key in ["b", "a", "é", "Z", "a b", "c"] {
        assert_eq!(put(env, t, "k", key, key, None).await, Some(1));
    }
    put(env, t, "other", "0", "", None).await;
    assert_eq!(
        list(env, t, "k", None, 10).await,
        ["Z", "a", "a b", "b", "c", "é"]
    );
    assert_eq!(list(env, t, "k", None, 2).await, ["Z", "a"]);
    assert_eq!(list(env, t, "k", Some("a"), 2).await, ["a b", "b"]);
    assert_eq!(list(env, t, "k", Some("b"), 10).await, ["c", "é"]);
    assert_eq!(list(env, t, "k", Some("bb"), 10).await, ["c", "é"]);
    assert_eq!(list(env, t, "k", Some("é"), 10).await, Vec::<String>::new());
    assert_eq!(list(env, t, "k", None, 0).await, Vec::<String>::new());
    assert_eq!(list(env, t, "none", None, 10).await, Vec::<String>::new());
    assert_eq!(list(env, t, "other", None, 10).await, ["0"]);
    let full = store(env)
        .records(&tid(t), RecordKind::new("k"), Some(&key("Z")), 1)
        .await
        .expect("records");
    assert_eq!(full.len(), 1);
    assert_eq!((full[0].key.as_str(), full[0].value.as_str()), ("a", "a"));
}

/// A list returns at most [`PAGE_SIZE_MAX`] records, however large the limit.
pub async fn records_list_at_the_page_limit(env: &mut Env) {
    env.operator().await;
    let t = OPERATOR;
    let keys: Vec<String> = (0..=PAGE_SIZE_MAX).map(|i| format!("r{i:05}")).collect();
    for key in &keys {
        assert_eq!(put(env, t, "many", key, "", None).await, Some(1));
    }
    let first = list(env, t, "many", None, PAGE_SIZE_MAX).await;
    assert_eq!(first, keys[..PAGE_SIZE_MAX]);
    let rest = list(
        env,
        t,
        "many",
        first.last().map(String::as_str),
        PAGE_SIZE_MAX,
    )
    .await;
    assert_eq!(rest, keys[PAGE_SIZE_MAX..]);
    assert_eq!(
        list(env, t, "many", None, PAGE_SIZE_MAX + 1).await.len(),
        PAGE_SIZE_MAX
    );
}

/// Deleting says whether the record was there; a deleted key may be inserted anew.
pub async fn records_delete(env: &mut Env) {
    env.operator().await;
    let t = OPERATOR;
    let tenant = tid(t);
    put(env, t, "k", "a", "1", None).await;
    put(env, t, "k", "b", "1", None).await;
    assert!(
        store(env)
            .delete_record(&tenant, RecordKind::new("k"), &key("a"))
            .await
            .expect("delete")
    );
    assert!(
        !store(env)
            .delete_record(&tenant, RecordKind::new("k"), &key("a"))
            .await
            .expect("delete")
    );
    assert!(
        !store(env)
            .delete_record(&tenant, RecordKind::new("x"), &key("b"))
            .await
            .expect("delete")
    );
    assert_eq!(get(env, t, "k", "a").await, None);
    assert_eq!(list(env, t, "k", None, 10).await, ["b"]);
    assert_eq!(put(env, t, "k", "a", "2", Some(1)).await, None);
    assert_eq!(put(env, t, "k", "a", "2", None).await, Some(1));
}

/// Kinds, keys and values exactly at their limits are kept whole, in records and jobs.
pub async fn records_and_jobs_at_their_limits(env: &mut Env) {
    env.operator().await;
    let t = OPERATOR;
    const KIND: &str = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
    let kind = KIND.to_owned();
    assert_eq!(kind.len(), RECORD_KIND_LEN_MAX);
    // Multi-byte characters count in bytes: 128 of them make the longest key.
    let key = "ü".repeat(RECORD_KEY_LEN_MAX / 2);
    assert_eq!(key.len(), RECORD_KEY_LEN_MAX);
    let value = "v".repeat(RECORD_VALUE_BYTES_MAX);
    assert_eq!(put(env, t, KIND, &key, &value, None).await, Some(1));
    let record = get(env, t, KIND, &key).await.expect("the record");
    assert_eq!(
        (
            record.kind.as_str().to_owned(),
            record.key.into_string(),
            record.value
        ),
        (kind.clone(), key.clone(), value.clone())
    );
    assert_eq!(
        list(env, t, KIND, None, 1).await,
        std::slice::from_ref(&key)
    );

    let tenant = tid(t);
    let s = store(env);
    assert!(
        s.enqueue_job(
            &tenant,
            JobQueue::new(KIND),
            &self::key(&key),
            &value,
            env.now
        )
        .await
        .expect("enqueue")
    );
    let jobs = s
        .claim_jobs(
            JobQueue::new(KIND),
            env.now,
            env.now.plus_micros(SECOND),
            JOB_CLAIM_MAX,
        )
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (
            jobs[0].queue.as_str(),
            jobs[0].id.as_str(),
            &jobs[0].payload
        ),
        (kind.as_str(), key.as_str(), &value)
    );
}

/// One tenant never sees, changes or deletes another's records or jobs.
pub async fn records_and_jobs_tenant_isolation(env: &mut Env) {
    env.tenant("t1").await;
    env.tenant("t2").await;
    assert_eq!(put(env, "t1", "k", "a", "one", None).await, Some(1));
    assert_eq!(get(env, "t2", "k", "a").await, None);
    assert_eq!(list(env, "t2", "k", None, 10).await, Vec::<String>::new());
    assert_eq!(put(env, "t2", "k", "a", "two", Some(1)).await, None);
    assert_eq!(put(env, "t2", "k", "a", "two", None).await, Some(1));
    assert!(
        !store(env)
            .delete_record(&tid("t2"), RecordKind::new("k"), &key("b"))
            .await
            .expect("delete")
    );
    put(env, "t1", "k", "b", "one", None).await;
    assert!(
        store(env)
            .delete_record(&tid("t2"), RecordKind::new("k"), &key("a"))
            .await
            .expect("delete")
    );
    assert_eq!(
        get(env, "t1", "k", "a").await.map(|r| r.value),
        Some("one".to_owned())
    );
    assert_eq!(list(env, "t1", "k", None, 10).await, ["a", "b"]);

    // Jobs of one id in two tenants are two jobs; finishing or deferring one leaves
    // the other alone.
    assert!(enqueue(env, "t1", "q", "j", env.now).await);
    assert!(enqueue(env, "t2", "q", "j", env.now).await);
    let s = store(env);
    s.finish_job(&tid("t2"), JobQueue::new("q"), &key("j"))
        .await
        .expect("finish");
    s.defer_job(&tid("t2"), JobQueue::new("q"), &key("j2"), env.now)
        .await
        .expect("defer of nothing");
    s.finish_job(&tid("t2"), JobQueue::new("q"), &key("other"))
        .await
        .expect("finish of nothing");
    let jobs = claim(env, "q", 60, 10).await;
    assert_eq!(ids(&jobs), [("t1", "j")]);
    assert_eq!(jobs[0].payload, "payload j");
}

/// Enqueueing an existing job changes nothing and says so.
pub async fn jobs_enqueue_is_idempotent(env: &mut Env) {
    env.operator().await;
    let t = OPERATOR;
    assert!(enqueue(env, t, "q", "a", env.now).await);
    let later = env.now.plus_micros(60 * SECOND);
    assert!(
        !store(env)
            .enqueue_job(
                &tid(t),
                JobQueue::new("q"),
                &key("a"),
                "other payload",
                later
            )
            .await
            .expect("enqueue")
    );
    assert!(enqueue(env, t, "q2", "a", env.now).await, "another queue");
    let jobs = claim(env, "q", 60, 10).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].payload.as_str(), jobs[0].attempts),
        ("payload a", 1),
        "the first enqueue stands"
    );
    // Even while it is claimed.
    assert!(!enqueue(env, t, "q", "a", env.now).await);
    assert_eq!(claim(env, "q", 60, 10).await, Vec::<Job>::new());
}

/// A claim takes due jobs of one queue, of every tenant, oldest due first, at most the
/// limit; it leases them and counts the attempt.
pub async fn jobs_claim_order_lease_and_limit(env: &mut Env) {
    env.tenant("t1").await;
    env.tenant("t2").await;
    let now = env.now;
    let at = |secs: i64| now.plus_micros(secs * SECOND);
    assert!(enqueue(env, "t1", "q", "late", at(30)).await);
    assert!(enqueue(env, "t2", "q", "early", at(-20)).await);
    assert!(enqueue(env, "t1", "q", "now", at(0)).await);
    assert!(enqueue(env, "t1", "q", "mid", at(-10)).await);
    assert!(enqueue(env, "t2", "q", "mid", at(-10)).await);
    assert!(enqueue(env, "t1", "other", "x", at(-100)).await);

    let first = claim(env, "q", 60, 2).await;
    assert_eq!(ids(&first), [("t2", "early"), ("t1", "mid")]);
    let lease = env.now.plus_micros(60 * SECOND);
    for job in &first {
        assert_eq!(
            (job.queue.as_str(), job.due_at, job.attempts),
            ("q", lease, 1)
        );
    }
    let second = claim(env, "q", 60, 10).await;
    assert_eq!(
        ids(&second),
        [("t2", "mid"), ("t1", "now")],
        "due jobs only, none of the first claim"
    );
    assert_eq!(claim(env, "q", 60, 10).await, Vec::<Job>::new());

    // The lease ends: the unfinished jobs are due again, with the job due meanwhile.
    env.advance_secs(60);
    let again = claim(env, "q", 60, JOB_CLAIM_MAX).await;
    assert_eq!(
        ids(&again),
        [
            ("t1", "late"),
            ("t1", "mid"),
            ("t1", "now"),
            ("t2", "early"),
            ("t2", "mid")
        ]
    );
    let attempts: Vec<u32> = again.iter().map(|j| j.attempts).collect();
    assert_eq!(attempts, [1, 2, 2, 2, 2]);
    assert_eq!(ids(&claim(env, "other", 60, 10).await), [("t1", "x")]);
}

/// At most [`JOB_CLAIM_MAX`] jobs per claim, however large the limit.
pub async fn jobs_claim_at_the_limit(env: &mut Env) {
    env.operator().await;
    let t = OPERATOR;
    for i in 0..=JOB_CLAIM_MAX {
        assert!(enqueue(env, t, "q", &format!("j{i:04}"), env.now).await);
    }
    let first = claim(env, "q", 60, JOB_CLAIM_MAX + 1).await;
    assert_eq!(first.len(), JOB_CLAIM_MAX);
    let rest = claim(env, "q", 60, JOB_CLAIM_MAX).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(claim(env, "q", 60, 0).await, Vec::<Job>::new());
}

/// A finished job is gone; a deferred one is due at its new time.
pub async fn jobs_finish_and_defer(env: &mut Env) {
    env.operator().await;
    let t = OPERATOR;
    let tenant = tid(t);
    assert!(enqueue(env, t, "q", "done", env.now).await);
    assert!(enqueue(env, t, "q", "retry", env.now).await);
    let jobs = claim(env, "q", 600, 10).await;
    assert_eq!(jobs.len(), 2);
    let s = store(env);
    s.finish_job(&tenant, JobQueue::new("q"), &key("done"))
        .await
        .expect("finish");
    s.finish_job(&tenant, JobQueue::new("q"), &key("done"))
        .await
        .expect("finish again");
    let retry_at = env.now.plus_micros(30 * SECOND);
    s.defer_job(&tenant, JobQueue::new("q"), &key("retry"), retry_at)
        .await
        .expect("defer");
    env.advance_secs(29);
    assert_eq!(claim(env, "q", 600, 10).await, Vec::<Job>::new());
    env.advance_secs(1);
    let jobs = claim(env, "q", 600, 10).await;
    assert_eq!(ids(&jobs), [(t, "retry")]);
    assert_eq!(jobs[0].attempts, 2);
    // A finished id may be enqueued again.
    assert!(enqueue(env, t, "q", "done", env.now).await);
    env.advance_secs(10_000);
    let jobs = claim(env, "q", 600, 10).await;
    assert_eq!(ids(&jobs), [(t, "done"), (t, "retry")]);
    assert_eq!(jobs.iter().map(|j| j.attempts).collect::<Vec<_>>(), [1, 3]);
}
