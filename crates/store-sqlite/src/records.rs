//! Records and jobs (see [`prepaid_store::records`]): plain rows beside the ledger.
//!
//! Writes run on the writer connection, each in its own `BEGIN IMMEDIATE` transaction,
//! so they queue behind batches like every other write and a claim's read and update
//! are one step; reads run on the read connections. The limits of kinds, keys and
//! values are asserted by the caller in `lib.rs`, before the work leaves its task.

use crate::error::Fail;
use crate::rows;
use crate::write::{begin_immediate, commit, rollback};
use prepaid_ledger::{JobQueue, RecordKey, RecordKind, TenantId, Timestamp};
use prepaid_store::{JOB_CLAIM_MAX, Job, PAGE_SIZE_MAX, Record};
use rusqlite::{Connection, Row, params};

/// Runs `f` in one immediate transaction on the writer connection; rolls back unless
/// it succeeds.
pub(crate) fn in_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, Fail>,
) -> Result<T, Fail> {
    begin_immediate(conn)?;
    match f(conn).and_then(|t| commit(conn).map(|()| t)) {
        Ok(t) => Ok(t),
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

/// A stored key, which was valid when written.
pub(crate) fn record_key(text: String) -> Result<RecordKey, Fail> {
    RecordKey::parse(text).map_err(|e| Fail::corrupt(format_args!("record key or job id: {e}")))
}

fn record_row(row: &Row<'_>, kind: RecordKind) -> Result<Record, Fail> {
    Ok(Record {
        kind,
        key: record_key(row.get(1)?)?,
        value: row.get(2)?,
        version: row.get(3)?,
        created_at: Timestamp::from_micros(row.get(4)?),
        updated_at: Timestamp::from_micros(row.get(5)?),
    })
}

const RECORD_COLUMNS: &str = "kind, key, value, version, created_at, updated_at";

pub(crate) fn record(
    conn: &Connection,
    tenant: &TenantId,
    kind: RecordKind,
    key: &RecordKey,
) -> Result<Option<Record>, Fail> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE tenant = ?1 AND kind = ?2 AND key = ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![tenant.as_str(), kind.as_str(), key.as_str()])?;
    rows.next()?.map(|r| record_row(r, kind)).transpose()
}

pub(crate) fn records(
    conn: &Connection,
    tenant: &TenantId,
    kind: RecordKind,
    after: Option<&RecordKey>,
    limit: usize,
) -> Result<Vec<Record>, Fail> {
    let limit = i64::try_from(limit.min(PAGE_SIZE_MAX)).unwrap_or(0);
    // Every key sorts after the empty string, which no valid key is.
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE tenant = ?1 AND kind = ?2 AND key > ?3 \
         ORDER BY key LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![
        tenant.as_str(),
        kind.as_str(),
        after.map_or("", RecordKey::as_str),
        limit
    ])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(record_row(row, kind)?);
    }
    Ok(found)
}

pub(crate) fn put_record(
    conn: &Connection,
    tenant: &TenantId,
    kind: RecordKind,
    key: &RecordKey,
    value: &str,
    expected_version: Option<i64>,
    now: Timestamp,
) -> Result<Option<i64>, Fail> {
    in_transaction(conn, |conn| match expected_version {
        None => {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO records \
                     (tenant, kind, key, value, version, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    tenant.as_str(),
                    kind.as_str(),
                    key.as_str(),
                    value,
                    now.as_micros()
                ])?;
            Ok((inserted == 1).then_some(1))
        }
        Some(expected) => {
            // No record reaches the largest version, so none matches it.
            let Some(next) = expected.checked_add(1) else {
                return Ok(None);
            };
            let updated = conn
                .prepare_cached(
                    "UPDATE records SET value = ?4, version = ?6, updated_at = ?5 \
                     WHERE tenant = ?1 AND kind = ?2 AND key = ?3 AND version = ?7",
                )?
                .execute(params![
                    tenant.as_str(),
                    kind.as_str(),
                    key.as_str(),
                    value,
                    now.as_micros(),
                    next,
                    expected
                ])?;
            Ok((updated == 1).then_some(next))
        }
    })
}

pub(crate) fn delete_record(
    conn: &Connection,
    tenant: &TenantId,
    kind: RecordKind,
    key: &RecordKey,
) -> Result<bool, Fail> {
    in_transaction(conn, |conn| {
        let deleted = conn
            .prepare_cached("DELETE FROM records WHERE tenant = ?1 AND kind = ?2 AND key = ?3")?
            .execute(params![tenant.as_str(), kind.as_str(), key.as_str()])?;
        Ok(deleted == 1)
    })
}

pub(crate) fn enqueue_job(
    conn: &Connection,
    tenant: &TenantId,
    queue: JobQueue,
    id: &RecordKey,
    payload: &str,
    due_at: Timestamp,
) -> Result<bool, Fail> {
    in_transaction(conn, |conn| {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO jobs (tenant, queue, id, payload, due_at, attempts) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                tenant.as_str(),
                queue.as_str(),
                id.as_str(),
                payload,
                due_at.as_micros()
            ])?;
        Ok(inserted == 1)
    })
}

pub(crate) fn claim_jobs(
    conn: &Connection,
    queue: JobQueue,
    now: Timestamp,
    lease_until: Timestamp,
    limit: usize,
) -> Result<Vec<Job>, Fail> {
    let limit = i64::try_from(limit.min(JOB_CLAIM_MAX)).unwrap_or(0);
    in_transaction(conn, |conn| {
        // The single writer makes the read and the update one step: no other claim
        // runs in between.
        let due: Vec<(String, String, String, i64)> = conn
            .prepare_cached(
                "SELECT tenant, id, payload, attempts FROM jobs \
                 WHERE queue = ?1 AND due_at <= ?2 ORDER BY due_at, tenant, id LIMIT ?3",
            )?
            .query_map(params![queue.as_str(), now.as_micros(), limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut update = conn.prepare_cached(
            "UPDATE jobs SET due_at = ?4, attempts = ?5 \
             WHERE tenant = ?1 AND queue = ?2 AND id = ?3",
        )?;
        let mut claimed = Vec::with_capacity(due.len());
        for (tenant, id, payload, attempts) in due {
            let attempts = u32::try_from(attempts)
                .ok()
                .and_then(|a| a.checked_add(1))
                .ok_or_else(|| Fail::corrupt(format_args!("job attempts {attempts}")))?;
            update.execute(params![
                tenant,
                queue.as_str(),
                id,
                lease_until.as_micros(),
                attempts
            ])?;
            claimed.push(Job {
                tenant: rows::tenant_id(&tenant)?,
                queue,
                id: record_key(id)?,
                payload,
                due_at: lease_until,
                attempts,
            });
        }
        Ok(claimed)
    })
}

pub(crate) fn finish_job(
    conn: &Connection,
    tenant: &TenantId,
    queue: JobQueue,
    id: &RecordKey,
) -> Result<(), Fail> {
    in_transaction(conn, |conn| {
        conn.prepare_cached("DELETE FROM jobs WHERE tenant = ?1 AND queue = ?2 AND id = ?3")?
            .execute(params![tenant.as_str(), queue.as_str(), id.as_str()])?;
        Ok(())
    })
}

pub(crate) fn defer_job(
    conn: &Connection,
    tenant: &TenantId,
    queue: JobQueue,
    id: &RecordKey,
    due_at: Timestamp,
) -> Result<(), Fail> {
    in_transaction(conn, |conn| {
        conn.prepare_cached(
            "UPDATE jobs SET due_at = ?4 WHERE tenant = ?1 AND queue = ?2 AND id = ?3",
        )?
        .execute(params![
            tenant.as_str(),
            queue.as_str(),
            id.as_str(),
            due_at.as_micros()
        ])?;
        Ok(())
    })
}
