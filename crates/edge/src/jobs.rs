//! The claiming loop shared by the background workers of the dialects (TMF event
//! delivery and recurring top-ups, TouchTopUp payment recovery):
//! claim a batch of due jobs of one queue under a lease, run them at once, and claim
//! again while batches come back full.

use crate::SharedState;
use prepaid_ledger::{MutationId, TenantId};
use prepaid_store::{JOB_CLAIM_MAX, Job, JobQueue};
use sha2::{Digest, Sha256};

/// The most claims in one round, so a huge backlog never starves the shutdown check.
pub const CLAIMS_PER_ROUND_MAX: usize = 100;

/// Milliseconds as microseconds, saturating.
pub fn micros(ms: u64) -> i64 {
    i64::try_from(ms.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Claims and runs due jobs of `queue` until none are left (or the round's bound is
/// reached). Each job runs as its own task, so one slow job never holds up the others
/// of its claim. `failing` remembers a failing store between rounds, so an outage is
/// logged once, not every round; `what` names the jobs in those logs.
pub async fn drain<F>(
    state: &SharedState,
    queue: JobQueue,
    lease_ms: u64,
    what: &str,
    failing: &mut bool,
    work: impl Fn(SharedState, Job) -> F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    for _ in 0..CLAIMS_PER_ROUND_MAX {
        let now = state.clock.now();
        let lease_until = now.plus_micros(micros(lease_ms));
        let jobs = match state
            .store
            .claim_jobs(queue, now, lease_until, JOB_CLAIM_MAX)
            .await
        {
            Ok(jobs) => {
                if std::mem::take(failing) {
                    tracing::info!("claiming {what} works again");
                }
                jobs
            }
            Err(e) => {
                if std::mem::replace(failing, true) {
                    tracing::debug!(error = %e, "claiming {what} still fails");
                } else {
                    tracing::warn!(error = %e, "claiming {what} failed; retrying every round");
                }
                return;
            }
        };
        let claimed = jobs.len();
        let mut running = tokio::task::JoinSet::new();
        for job in jobs {
            running.spawn(work(state.clone(), job));
        }
        while running.join_next().await.is_some() {}
        if claimed < JOB_CLAIM_MAX {
            return;
        }
    }
}

/// The id of the mutation a job posts with the idempotency key `key`: the first 16
/// bytes of the SHA-256 of the tenant and the key, marked as a UUID of version 8
/// (custom) and the RFC variant. Deterministic, so every run of the job proposes the
/// same id.
pub fn derived_mutation_id(tenant: &TenantId, key: &str) -> MutationId {
    let digest = Sha256::new()
        .chain_update(tenant.as_str().as_bytes())
        .chain_update([0u8])
        .chain_update(key.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    MutationId(uuid::Uuid::from_bytes(bytes))
}

/// Deletes a finished job of `queue`; a failure is logged (the job runs again later,
/// as a replay). `what` names the jobs in the log.
pub async fn finish(state: &SharedState, queue: JobQueue, job: &Job, what: &str) {
    if let Err(e) = state.store.finish_job(&job.tenant, queue, &job.id).await {
        tracing::warn!(error = %e, job = %job.id, "finishing {what} failed; it will run again as a replay");
    }
}

/// Makes a claimed job of `queue` due again in `wait_ms`; a failure is logged (its
/// lease ends instead).
pub async fn defer(state: &SharedState, queue: JobQueue, job: &Job, wait_ms: u64, what: &str) {
    let due = state.clock.now().plus_micros(micros(wait_ms));
    if let Err(e) = state
        .store
        .defer_job(&job.tenant, queue, &job.id, due)
        .await
    {
        tracing::warn!(error = %e, "deferring {what} failed; its lease will end");
    }
}
