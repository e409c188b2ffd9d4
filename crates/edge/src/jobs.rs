//! The claiming loop shared by the background workers of the dialects (TMF event
//! delivery and recurring top-ups, TouchTopUp payment recovery):
//! claim a batch of due jobs of one queue under a lease, run them at once, and claim
//! again while batches come back full.

use crate::SharedState;
use prepaid_store::{JOB_CLAIM_MAX, Job, JobQueue};

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
