//! The worker of automatic top-ups, run by every instance: it claims the
//! `store.auto-topup` jobs the executor queued when a wallet crossed its threshold,
//! charges the customer's saved method for those funded by payment, and settles each
//! in one unit (`Command::SettleAutoTopUp`) whose idempotency key is the job's id
//! (`auto-topup:<wallet>:<n>`): the credit, or the decline, and the end of the
//! top-up's in-flight mark commit together, once, however often the job runs. The
//! charge carries the same key, so a job run twice (a lease that ran out, two
//! instances) charges once.

use crate::SharedState;
use crate::jobs;
use crate::payments::{PaymentError, PaymentProvider};
use crate::periodic::Ticker;
use crate::submit::Operation;
use prepaid_ledger::{
    AutoTopUpFunding, AutoTopUpOutcome, Command, Done, Fingerprint, GrantCategory, IdempotencyKey,
    Outcome, Refusal, TenantId,
};
use prepaid_store::Job;
use prepaid_store::auto_topup::{AUTO_TOPUP_QUEUE, AutoTopUpJob, job_id};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the worker looks for due top-ups.
pub const AUTO_TOPUP_INTERVAL_MS: u64 = 100;
/// How long a claimed top-up is the claimer's: what a crash delays it by.
pub const AUTO_TOPUP_LEASE_MS: u64 = 30_000;
/// How long a top-up waits after the provider could not be reached.
pub const AUTO_TOPUP_RETRY_MS: u64 = 5_000;

/// Runs due automatic top-ups until `stop` turns true.
pub async fn run(
    state: SharedState,
    payments: Arc<dyn PaymentProvider>,
    stop: watch::Receiver<bool>,
) {
    let mut failing = false;
    let mut ticker = Ticker::new(Duration::from_millis(AUTO_TOPUP_INTERVAL_MS), stop);
    while ticker.tick().await {
        let round = jobs::drain(
            &state,
            AUTO_TOPUP_QUEUE,
            AUTO_TOPUP_LEASE_MS,
            "automatic top-ups",
            &mut failing,
            |state, job| run_one(state, payments.clone(), job),
        );
        if !ticker.unless_stopped(round).await {
            return;
        }
    }
}

async fn run_one(state: SharedState, payments: Arc<dyn PaymentProvider>, job: Job) {
    let Ok(top_up) = AutoTopUpJob::decode(&job.payload) else {
        tracing::error!(job = %job.id, tenant = %job.tenant, "dropping a corrupt automatic top-up job");
        finish(&state, &job).await;
        return;
    };
    let key = job_id(&top_up.wallet, top_up.n);
    let outcome = match &top_up.funding {
        AutoTopUpFunding::Granted => AutoTopUpOutcome::Credited(GrantCategory::Granted),
        AutoTopUpFunding::Payment { method_ref } => {
            let wallet = match state.store.wallet(&job.tenant, &top_up.wallet).await {
                Ok(Some(wallet)) => wallet,
                Ok(None) => {
                    tracing::info!(job = %job.id, "the wallet of an automatic top-up is gone");
                    finish(&state, &job).await;
                    return;
                }
                Err(e) => return retry_later(&state, &job, &e.to_string()).await,
            };
            let charged = payments
                .charge_saved_method(
                    &job.tenant,
                    &wallet.customer,
                    method_ref,
                    top_up.amount,
                    &key,
                )
                .await;
            match charged {
                Ok(_) => AutoTopUpOutcome::Credited(GrantCategory::Paid),
                Err(
                    e @ (PaymentError::Declined(_)
                    | PaymentError::NotApproved(_)
                    | PaymentError::UnknownToken),
                ) => {
                    tracing::info!(job = %job.id, error = %e, "an automatic top-up was declined");
                    AutoTopUpOutcome::Declined
                }
                Err(e @ PaymentError::Unavailable(_)) => {
                    return retry_later(&state, &job, &e.to_string()).await;
                }
            }
        }
    };
    let charged = matches!(top_up.funding, AutoTopUpFunding::Payment { .. })
        && matches!(outcome, AutoTopUpOutcome::Credited(_));
    // The settlement's unit also makes its event (`auto_topup.succeeded` or
    // `auto_topup.failed`), so that it exists exactly when the settlement does.
    match settle(&state, &job.tenant, &top_up, &key, outcome).await {
        Ok(Settled::Done) => finish(&state, &job).await,
        Ok(Settled::Refused(refusal)) => {
            // The wallet took no credit (suspended, over its ceiling, gone): the
            // top-up ends as a decline, so that the next may start after the back-off.
            if charged {
                tracing::error!(job = %job.id, refusal = refusal.code(),
                    "an automatic top-up was charged but the wallet refused the credit");
            }
            match settle(
                &state,
                &job.tenant,
                &top_up,
                &format!("{key}:refused"),
                AutoTopUpOutcome::Refused,
            )
            .await
            {
                Ok(_) => finish(&state, &job).await,
                Err(e) => retry_later(&state, &job, &e).await,
            }
        }
        Err(e) => retry_later(&state, &job, &e).await,
    }
}

enum Settled {
    Done,
    Refused(Refusal),
}

/// Settles the top-up with the idempotency key `key`; `Err` only for operating
/// failures, which are retried.
async fn settle(
    state: &SharedState,
    tenant: &TenantId,
    top_up: &AutoTopUpJob,
    key: &str,
    outcome: AutoTopUpOutcome,
) -> Result<Settled, String> {
    let idempotency =
        IdempotencyKey::parse(key).map_err(|e| format!("idempotency key {key:?}: {e}"))?;
    let fingerprint = Fingerprint(
        Sha256::new()
            .chain_update(b"auto-topup\0")
            .chain_update(top_up.encode().as_bytes())
            .chain_update([u8::from(matches!(outcome, AutoTopUpOutcome::Credited(_)))])
            .finalize()
            .into(),
    );
    let command = Command::SettleAutoTopUp {
        wallet: top_up.wallet.clone(),
        n: top_up.n,
        id: jobs::derived_mutation_id(tenant, key),
        amount: top_up.amount,
        outcome,
    };
    let op = Operation::system(tenant, command).idempotency(Some((idempotency, fingerprint)));
    match state.engine.submit(op.into_request()).await {
        Ok(Outcome::Done {
            done: Done::Mutation(_) | Done::Records,
            ..
        }) => Ok(Settled::Done),
        Ok(Outcome::Done { .. }) => {
            Err("the engine answered a settlement with another result".into())
        }
        Ok(Outcome::Refused(Refusal::Internal)) => Err("the store failed the settlement".into()),
        Ok(Outcome::Refused(refusal)) => Ok(Settled::Refused(refusal)),
        Err(e) => Err(e.to_string()),
    }
}

async fn retry_later(state: &SharedState, job: &Job, why: &str) {
    tracing::warn!(error = why, job = %job.id, attempts = job.attempts,
        "an automatic top-up could not be run; retrying");
    jobs::defer(
        state,
        AUTO_TOPUP_QUEUE,
        job,
        AUTO_TOPUP_RETRY_MS,
        "an automatic top-up",
    )
    .await;
}

async fn finish(state: &SharedState, job: &Job) {
    jobs::finish(state, AUTO_TOPUP_QUEUE, job, "an automatic top-up job").await;
}
