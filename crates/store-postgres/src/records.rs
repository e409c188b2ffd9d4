//! Records and jobs (see [`prepaid_store::records`]): plain rows beside the ledger,
//! each call one statement in its own transaction.
//!
//! A record is replaced by compare-and-set on its version in the `WHERE` clause, so
//! of two instances replacing one version only the first changes it; two inserting at
//! once meet on the primary key (`ON CONFLICT DO NOTHING`), and the second is told the
//! condition failed. A claim locks the due jobs it takes `FOR UPDATE SKIP LOCKED` and
//! moves them past the lease in the same statement, so claims of several instances
//! share the jobs instead of queueing, and never take one job twice in one lease.

use crate::PgStore;
use crate::error::Fail;
use crate::rows::{self, get};
use prepaid_ledger::{JobQueue, RecordKey, RecordKind, TenantId, Timestamp};
use prepaid_store::records::assert_value;
use prepaid_store::{JOB_CLAIM_MAX, Job, PAGE_SIZE_MAX, Record, StoreError};
use tokio_postgres::Row;

const RECORD_COLUMNS: &str = "kind, key, value, version, created_at, updated_at";

/// A stored key, which was valid when written.
fn record_key(text: String) -> Result<RecordKey, Fail> {
    RecordKey::parse(text).map_err(|e| Fail::corrupt(format_args!("record key or job id: {e}")))
}

fn record_row(row: &Row, kind: RecordKind) -> Result<Record, Fail> {
    Ok(Record {
        kind,
        key: record_key(get(row, 1)?)?,
        value: get(row, 2)?,
        version: get(row, 3)?,
        created_at: Timestamp::from_micros(get(row, 4)?),
        updated_at: Timestamp::from_micros(get(row, 5)?),
    })
}

pub(crate) async fn record(
    store: &PgStore,
    tenant: &TenantId,
    kind: RecordKind,
    key: &RecordKey,
) -> Result<Option<Record>, StoreError> {
    let client = store.client().await?;
    async {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM records \
             WHERE tenant = $1 AND kind = $2 AND key = $3"
        );
        let statement = client.prepare_cached(&sql).await?;
        client
            .query_opt(
                &statement,
                &[&tenant.as_str(), &kind.as_str(), &key.as_str()],
            )
            .await?
            .map(|row| record_row(&row, kind))
            .transpose()
    }
    .await
    .map_err(Fail::into_store_error)
}

pub(crate) async fn records(
    store: &PgStore,
    tenant: &TenantId,
    kind: RecordKind,
    after: Option<&RecordKey>,
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    let limit = i64::try_from(limit.min(PAGE_SIZE_MAX)).unwrap_or(0);
    let client = store.client().await?;
    async {
        // Every key sorts after the empty string, which no valid key is.
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM records \
             WHERE tenant = $1 AND kind = $2 AND key > $3 ORDER BY key LIMIT $4"
        );
        let statement = client.prepare_cached(&sql).await?;
        client
            .query(
                &statement,
                &[
                    &tenant.as_str(),
                    &kind.as_str(),
                    &after.map_or("", RecordKey::as_str),
                    &limit,
                ],
            )
            .await?
            .iter()
            .map(|row| record_row(row, kind))
            .collect::<Result<Vec<_>, Fail>>()
    }
    .await
    .map_err(Fail::into_store_error)
}

pub(crate) async fn put_record(
    store: &PgStore,
    tenant: &TenantId,
    kind: RecordKind,
    key: &RecordKey,
    value: &str,
    expected_version: Option<i64>,
    now: Timestamp,
) -> Result<Option<i64>, StoreError> {
    assert_value(value);
    let client = store.client().await?;
    async {
        match expected_version {
            None => {
                let statement = client
                    .prepare_cached(
                        "INSERT INTO records \
                         (tenant, kind, key, value, version, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, 1, $5, $5) ON CONFLICT DO NOTHING",
                    )
                    .await?;
                let inserted = client
                    .execute(
                        &statement,
                        &[
                            &tenant.as_str(),
                            &kind.as_str(),
                            &key.as_str(),
                            &value,
                            &now.as_micros(),
                        ],
                    )
                    .await?;
                Ok((inserted == 1).then_some(1))
            }
            Some(expected) => {
                // No record reaches the largest version, so none matches it.
                let Some(next) = expected.checked_add(1) else {
                    return Ok(None);
                };
                let statement = client
                    .prepare_cached(
                        "UPDATE records SET value = $4, version = $6, updated_at = $5 \
                         WHERE tenant = $1 AND kind = $2 AND key = $3 AND version = $7",
                    )
                    .await?;
                let updated = client
                    .execute(
                        &statement,
                        &[
                            &tenant.as_str(),
                            &kind.as_str(),
                            &key.as_str(),
                            &value,
                            &now.as_micros(),
                            &next,
                            &expected,
                        ],
                    )
                    .await?;
                Ok((updated == 1).then_some(next))
            }
        }
    }
    .await
    .map_err(Fail::into_store_error)
}

pub(crate) async fn delete_record(
    store: &PgStore,
    tenant: &TenantId,
    kind: RecordKind,
    key: &RecordKey,
) -> Result<bool, StoreError> {
    execute(
        store,
        "DELETE FROM records WHERE tenant = $1 AND kind = $2 AND key = $3",
        &[&tenant.as_str(), &kind.as_str(), &key.as_str()],
    )
    .await
    .map(|deleted| deleted == 1)
}

pub(crate) async fn enqueue_job(
    store: &PgStore,
    tenant: &TenantId,
    queue: JobQueue,
    id: &RecordKey,
    payload: &str,
    due_at: Timestamp,
) -> Result<bool, StoreError> {
    assert_value(payload);
    execute(
        store,
        "INSERT INTO jobs (tenant, queue, id, payload, due_at, attempts) \
         VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT DO NOTHING",
        &[
            &tenant.as_str(),
            &queue.as_str(),
            &id.as_str(),
            &payload,
            &due_at.as_micros(),
        ],
    )
    .await
    .map(|inserted| inserted == 1)
}

pub(crate) async fn claim_jobs(
    store: &PgStore,
    queue: JobQueue,
    now: Timestamp,
    lease_until: Timestamp,
    limit: usize,
) -> Result<Vec<Job>, StoreError> {
    let limit = i64::try_from(limit.min(JOB_CLAIM_MAX)).unwrap_or(0);
    let client = store.client().await?;
    async {
        // The subquery locks the due jobs no other claim holds; the update moves
        // them past the lease before the locks go, so a claim that starts later
        // finds them not due. The old due time orders the answer.
        let statement = client
            .prepare_cached(
                "UPDATE jobs j SET due_at = $3, attempts = j.attempts + 1 \
                 FROM (SELECT tenant, queue, id, due_at FROM jobs \
                       WHERE queue = $1 AND due_at <= $2 \
                       ORDER BY due_at, tenant, id LIMIT $4 \
                       FOR UPDATE SKIP LOCKED) d \
                 WHERE j.tenant = d.tenant AND j.queue = d.queue AND j.id = d.id \
                 RETURNING j.tenant, j.id, j.payload, j.attempts, d.due_at",
            )
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &queue.as_str(),
                    &now.as_micros(),
                    &lease_until.as_micros(),
                    &limit,
                ],
            )
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let attempts: i32 = get(row, 3)?;
            let job = Job {
                tenant: rows::tenant_id(get(row, 0)?)?,
                queue,
                id: record_key(get(row, 1)?)?,
                payload: get(row, 2)?,
                due_at: lease_until,
                attempts: u32::try_from(attempts)
                    .map_err(|_| Fail::corrupt(format_args!("job attempts {attempts}")))?,
            };
            claimed.push((get::<i64>(row, 4)?, job));
        }
        claimed.sort_by(|(a, x), (b, y)| {
            (a, x.tenant.as_str(), &x.id).cmp(&(b, y.tenant.as_str(), &y.id))
        });
        Ok(claimed.into_iter().map(|(_, job)| job).collect())
    }
    .await
    .map_err(Fail::into_store_error)
}

pub(crate) async fn finish_job(
    store: &PgStore,
    tenant: &TenantId,
    queue: JobQueue,
    id: &RecordKey,
) -> Result<(), StoreError> {
    execute(
        store,
        "DELETE FROM jobs WHERE tenant = $1 AND queue = $2 AND id = $3",
        &[&tenant.as_str(), &queue.as_str(), &id.as_str()],
    )
    .await
    .map(drop)
}

pub(crate) async fn defer_job(
    store: &PgStore,
    tenant: &TenantId,
    queue: JobQueue,
    id: &RecordKey,
    due_at: Timestamp,
) -> Result<(), StoreError> {
    execute(
        store,
        "UPDATE jobs SET due_at = $4 WHERE tenant = $1 AND queue = $2 AND id = $3",
        &[
            &tenant.as_str(),
            &queue.as_str(),
            &id.as_str(),
            &due_at.as_micros(),
        ],
    )
    .await
    .map(drop)
}

/// Runs one statement and returns how many rows it changed.
async fn execute(
    store: &PgStore,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, StoreError> {
    let client = store.client().await?;
    async {
        let statement = client.prepare_cached(sql).await?;
        Ok::<_, Fail>(client.execute(&statement, params).await?)
    }
    .await
    .map_err(Fail::into_store_error)
}
