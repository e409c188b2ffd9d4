//! Recurring top-ups (TMF654 `isAutoTopup` with `recurringPeriod` and `numberOfPeriods`).
//!
//! A plan tops a wallet up by one amount every period, `periods_total` times. Period 1
//! is posted by the request that creates the plan, at once; [`schedule`] makes periods
//! `2..=periods_total` durable as jobs of the queue [`RECURRING_QUEUE`], one at a time:
//! the job of period `n` has the id `<plan id>:<n>` and is due at
//! `first_at + (n - 1)` periods ([`due_at`]). Daily, weekly and fortnightly periods are
//! 24 hours, 7 days and 14 days of UTC time; a monthly period falls on the same day of
//! the month and time of day as `first_at`, on the month's last day when the month is
//! shorter (a plan of January 31 runs on February 28 or 29, March 31, April 30, ...).
//!
//! The worker ([`run`]) claims due jobs every [`RECURRING_INTERVAL_MS`] on every
//! instance. Running period `n` means:
//!
//! 1. post a top-up through the engine with the idempotency key
//!    `tmf-recurring:<plan id>:<n>` and a mutation id derived from it
//!    ([`mutation_id`]), in one unit with the job of period `n + 1` (if any) and the
//!    period's `TopupBalanceCreateEvent` in the hub's outbox; a job that runs twice (its
//!    lease ran out, a crash, two instances) posts once: the second run is a replay;
//! 2. finish the job of period `n`.
//!
//! A crash between the steps leaves the job of period `n` to be claimed again when its
//! lease ends, and the replay changes nothing, so each period is posted exactly once,
//! with its next period and its event, across restarts and across instances on one
//! PostgreSQL database.
//!
//! A refusal of the ledger (the wallet is suspended, expired, outside its validity, its
//! ceiling would be passed, ...) is a business outcome: the period is not retried, a
//! `TopupBalanceFailureEvent` is published to the hub, and the plan goes on with the
//! next period (queued on its own, since the refused unit left nothing), which may well
//! succeed. A wallet or tenant that is gone ends the plan.
//! Operating failures (the store is unavailable, the engine stops) are retried with
//! exponential backoff, from [`RETRY_BACKOFF_BASE_MS`] up to [`RETRY_BACKOFF_MS_MAX`],
//! without a bound on attempts: a scheduled payment is not dropped because the database
//! was away for a while. A successful period that was not a replay publishes a
//! `TopupBalanceCreateEvent`.
//!
//! [`cancel`] (a PATCH of the plan's first `topupBalance` with `status: cancelled`)
//! stops a plan: it leaves a record of kind [`CANCELLED_KIND`] under the
//! plan's id, and a period that finds it is finished without posting and without
//! enqueueing the next. A period already running when the plan is cancelled may still
//! post.
//!
//! The TMF dialect links [`first_job`] (period 2) to the unit of period 1, so a plan
//! exists exactly when its first top-up does.
//!
//! Limits: [`PERIODS_MAX`] periods per plan (callers check `numberOfPeriods` against
//! it before calling [`first_job`] or [`schedule`]); plan ids are at most [`PLAN_ID_LEN_MAX`] bytes.

use super::hub;
use super::types::{Ctx, Flavour, bucket_ref, quantity};
use chrono::{DateTime, Months, Utc};
use prepaid_edge::jobs;
use prepaid_edge::periodic::Ticker;
use prepaid_edge::submit::Operation;
use prepaid_edge::{AppState, SharedState};
use prepaid_ledger::{
    Amount, Command, Done, Fingerprint, IdempotencyKey, MutationId, MutationKind, Outcome,
    Reference, Refusal, TenantId, Timestamp, WalletId,
};
use prepaid_ledger::{JobQueue, RecordKey, RecordKind};
use prepaid_store::{EngineError, Job, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::sync::watch;

/// The job queue of scheduled periods.
pub const RECURRING_QUEUE: JobQueue = JobQueue::new("tmf.recurring");
/// The record kind that marks a plan cancelled (keyed by the plan id).
pub const CANCELLED_KIND: RecordKind = RecordKind::new("tmf.recurring.cancel");
/// How often the worker looks for due periods.
pub const RECURRING_INTERVAL_MS: u64 = 200;
/// How long a claimed period is leased to one worker before another may take it.
pub const RECURRING_LEASE_MS: u64 = 60_000;
/// The first wait after an operating failure; it doubles with every attempt.
pub const RETRY_BACKOFF_BASE_MS: u64 = 1_000;
/// The longest wait between two attempts of one period.
pub const RETRY_BACKOFF_MS_MAX: u64 = 60_000;
/// The most periods of one plan (`numberOfPeriods`): ten years of daily top-ups. A
/// plan without `numberOfPeriods` recurs until it is cancelled, and stops here at the
/// latest.
pub const PERIODS_MAX: u32 = 3660;
/// The longest plan id, in bytes, so that `<plan id>:<n>` is a valid job id and
/// `tmf-recurring:<plan id>:<n>` a valid idempotency key.
pub const PLAN_ID_LEN_MAX: usize = 200;
/// The prefix of the idempotency keys of scheduled periods.
pub const IDEMPOTENCY_PREFIX: &str = "tmf-recurring";

/// How often a plan tops up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Daily,
    Weekly,
    Fortnightly,
    Monthly,
}

impl Period {
    /// TM Forum's name (`RecurringPeriodType`; `daily` is Oracle BRM's addition).
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Fortnightly => "fortnightly",
            Period::Monthly => "monthly",
        }
    }

    /// Oracle BRM's name in answers (`1 Day`, ...).
    pub fn brm_str(self) -> &'static str {
        match self {
            Period::Daily => "1 Day",
            Period::Weekly => "1 Week",
            Period::Fortnightly => "2 Weeks",
            Period::Monthly => "1 Month",
        }
    }

    /// Reads either name, ignoring ASCII case.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Period::Daily,
            Period::Weekly,
            Period::Fortnightly,
            Period::Monthly,
        ]
        .into_iter()
        .find(|p| s.eq_ignore_ascii_case(p.as_str()) || s.eq_ignore_ascii_case(p.brm_str()))
    }
}

/// A recurring top-up as the TMF dialect creates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The topupBalance id (at most [`PLAN_ID_LEN_MAX`] bytes).
    pub id: String,
    pub wallet: WalletId,
    pub amount: Amount,
    pub period: Period,
    /// 1 to [`PERIODS_MAX`].
    pub periods_total: u32,
    /// When period 1 was posted; period `n` is due [`due_at`] `(first_at, period, n)`.
    pub first_at: Timestamp,
    pub reference: Reference,
}

/// When period `n` (1-based) of a plan is due; `None` past the end of representable
/// time.
pub fn due_at(first_at: Timestamp, period: Period, n: u32) -> Option<Timestamp> {
    const DAY_MICROS: i64 = 86_400_000_000;
    let steps = i64::from(n.checked_sub(1)?);
    let days = match period {
        Period::Daily => 1,
        Period::Weekly => 7,
        Period::Fortnightly => 14,
        Period::Monthly => {
            let start = DateTime::<Utc>::from_timestamp_micros(first_at.as_micros())?;
            // From the first date each time, so a short month never shifts later ones.
            let due = start.checked_add_months(Months::new(u32::try_from(steps).ok()?))?;
            return Some(Timestamp::from_micros(due.timestamp_micros()));
        }
    };
    let micros = steps.checked_mul(days)?.checked_mul(DAY_MICROS)?;
    Some(Timestamp::from_micros(
        first_at.as_micros().checked_add(micros)?,
    ))
}

/// The idempotency key of period `n` of plan `plan`.
pub fn idempotency_key(plan: &str, n: u32) -> String {
    format!("{IDEMPOTENCY_PREFIX}:{plan}:{n}")
}

/// The mutation id of period `n` of plan `plan`: the first 16 bytes of the SHA-256 of
/// its idempotency key and tenant, marked as a UUID of version 8 (custom) and the RFC
/// variant. Deterministic, so every run of the period proposes the same id.
pub fn mutation_id(tenant: &TenantId, plan: &str, n: u32) -> MutationId {
    jobs::derived_mutation_id(tenant, &idempotency_key(plan, n))
}

/// The job of one period as stored: the whole plan, so that a period needs nothing
/// but its job to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PeriodJob {
    plan: String,
    wallet: String,
    amount_minor: i64,
    period: String,
    periods_total: u32,
    first_at_micros: i64,
    reference_kind: String,
    reference_text: String,
    reference_link: String,
    n: u32,
}

impl PeriodJob {
    fn new(plan: &Plan, n: u32) -> Self {
        Self {
            plan: plan.id.clone(),
            wallet: plan.wallet.as_str().to_owned(),
            amount_minor: plan.amount.get(),
            period: plan.period.as_str().to_owned(),
            periods_total: plan.periods_total,
            first_at_micros: plan.first_at.as_micros(),
            reference_kind: plan.reference.parts().0.to_owned(),
            reference_text: plan.reference.parts().1.to_owned(),
            reference_link: plan.reference.parts().2.to_owned(),
            n,
        }
    }

    /// The plan back in core types; `None` when the payload is corrupt.
    fn plan(&self) -> Option<Plan> {
        Some(Plan {
            id: self.plan.clone(),
            wallet: WalletId::parse(&self.wallet).ok()?,
            amount: Amount::positive(self.amount_minor).ok()?,
            period: Period::parse(&self.period)?,
            periods_total: self.periods_total,
            first_at: Timestamp::from_micros(self.first_at_micros),
            reference: Reference::new(
                &self.reference_kind,
                &self.reference_text,
                &self.reference_link,
            )
            .ok()?,
        })
    }
}

/// A plan the dialect should have refused: a bug, logged and reported as a store
/// failure since the signature has no other.
fn bad_plan(plan: &Plan, why: &str) -> StoreError {
    tracing::error!(plan = %plan.id, why, "refusing to schedule an invalid recurring plan");
    StoreError::internal(format!("invalid recurring plan: {why}"))
}

/// A period's job, to be queued linked to the operation that makes it due.
pub struct Scheduled {
    pub id: RecordKey,
    pub payload: String,
    pub due_at: Timestamp,
}

/// The job of period `n` of `plan` (its id is deterministic, so queueing it twice
/// queues it once).
fn period_job(plan: &Plan, n: u32) -> Result<Scheduled, StoreError> {
    let Some(due) = due_at(plan.first_at, plan.period, n) else {
        return Err(bad_plan(plan, "a period falls past the end of time"));
    };
    let payload = serde_json::to_string(&PeriodJob::new(plan, n))
        .map_err(|e| StoreError::internal(format!("encoding a recurring period: {e}")))?;
    if !prepaid_store::records::value_is_valid(&payload) {
        return Err(bad_plan(plan, "the plan does not fit a job"));
    }
    let id = RecordKey::parse(format!("{}:{n}", plan.id))
        .map_err(|_| bad_plan(plan, "the plan id does not make a job id"))?;
    Ok(Scheduled {
        id,
        payload,
        due_at: due,
    })
}

/// The job that schedules periods `2..=periods_total` (period 1 the caller posts itself,
/// now, in the same unit as this job): only period 2; each period queues the next in
/// the unit of its own top-up. `None` for a plan of one period.
///
/// The caller has checked `periods_total` (1 to [`PERIODS_MAX`]) and the plan id (1
/// to [`PLAN_ID_LEN_MAX`] bytes, no control characters); a plan outside them is a bug
/// and answered `StoreError::Internal`.
pub fn first_job(plan: &Plan) -> Result<Option<Scheduled>, StoreError> {
    if plan.periods_total == 0 || plan.periods_total > PERIODS_MAX {
        return Err(bad_plan(plan, "periods_total is out of range"));
    }
    if plan.id.len() > PLAN_ID_LEN_MAX || RecordKey::parse(plan.id.as_str()).is_err() {
        return Err(bad_plan(
            plan,
            "the plan id is empty, too long or has control characters",
        ));
    }
    if plan.periods_total < 2 {
        return Ok(None);
    }
    period_job(plan, 2).map(Some)
}

/// Schedules a plan's later periods on their own (for a plan whose first period was
/// posted some other way); the dialect links [`first_job`] to the first top-up
/// instead. Calling it again for the same plan changes nothing.
pub async fn schedule(state: &AppState, tenant: &TenantId, plan: Plan) -> Result<(), StoreError> {
    if let Some(job) = first_job(&plan)? {
        state
            .store
            .enqueue_job(tenant, RECURRING_QUEUE, &job.id, &job.payload, job.due_at)
            .await?;
    }
    Ok(())
}

/// Queues period `n` of `plan` on its own, after period `n - 1` was refused.
async fn enqueue(
    state: &AppState,
    tenant: &TenantId,
    plan: &Plan,
    n: u32,
) -> Result<(), StoreError> {
    let job = period_job(plan, n)?;
    state
        .store
        .enqueue_job(tenant, RECURRING_QUEUE, &job.id, &job.payload, job.due_at)
        .await?;
    Ok(())
}

/// Cancels the periods of plan `plan` that have not started yet. `true` when this call
/// cancelled it, `false` when it was cancelled before. Cancelling an unknown plan (or
/// one that has run all its periods) is harmless.
pub async fn cancel(state: &AppState, tenant: &TenantId, plan: &str) -> Result<bool, StoreError> {
    let Ok(plan) = RecordKey::parse(plan) else {
        return Ok(false);
    };
    let put = state
        .store
        .put_record(
            tenant,
            CANCELLED_KIND,
            &plan,
            "cancelled",
            None,
            state.clock.now(),
        )
        .await?;
    Ok(put.is_some())
}

/// Links the cancellation of plan `plan` to `op` (a plan cancelled before stays so).
pub fn cancelling(plan: &str, op: Operation) -> Operation {
    let Ok(plan) = RecordKey::parse(plan) else {
        return op;
    };
    op.delete_record(CANCELLED_KIND, &plan).put_record(
        CANCELLED_KIND,
        &plan,
        "cancelled".to_owned(),
        None,
    )
}

/// The waiting time before attempt `attempts + 1` after an operating failure.
fn backoff_ms(attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(30);
    RETRY_BACKOFF_BASE_MS
        .saturating_mul(1u64 << doublings)
        .min(RETRY_BACKOFF_MS_MAX)
}

/// Runs due periods until `stop` turns true.
pub async fn run(state: SharedState, stop: watch::Receiver<bool>) {
    let mut failing = false;
    // A period in flight when the server stops is left to its lease: it runs again (as
    // a replay if it had posted) on the next start or on another instance. Each period
    // has its own idempotency key, so periods are independent; run at once, their
    // top-ups share the engine's transactions.
    let mut ticker = Ticker::new(Duration::from_millis(RECURRING_INTERVAL_MS), stop);
    while ticker.tick().await {
        let round = jobs::drain(
            &state,
            RECURRING_QUEUE,
            RECURRING_LEASE_MS,
            "recurring top-ups",
            &mut failing,
            run_period,
        );
        if !ticker.unless_stopped(round).await {
            return;
        }
    }
}

/// What became of one period.
enum Ran {
    /// Posted now, or posted before (a replay).
    Posted,
    /// Refused by the ledger; `ends_plan` when no later period can succeed.
    Refused { refusal: Refusal, ends_plan: bool },
}

async fn run_period(state: SharedState, job: Job) {
    let state = &state;
    let parsed: Option<(PeriodJob, Plan)> = serde_json::from_str::<PeriodJob>(&job.payload)
        .ok()
        .and_then(|p| p.plan().map(|plan| (p, plan)));
    let Some((stored, plan)) = parsed else {
        tracing::error!(job = %job.id, tenant = %job.tenant, "dropping a corrupt recurring top-up job");
        finish(state, &job).await;
        return;
    };
    let n = stored.n;
    let Ok(plan_key) = RecordKey::parse(plan.id.as_str()) else {
        tracing::error!(job = %job.id, tenant = %job.tenant, "dropping a recurring top-up job of no plan");
        finish(state, &job).await;
        return;
    };
    match state
        .store
        .record(&job.tenant, CANCELLED_KIND, &plan_key)
        .await
    {
        Ok(None) => {}
        Ok(Some(_)) => {
            tracing::info!(plan = %plan.id, n, "the plan was cancelled; not posting");
            finish(state, &job).await;
            return;
        }
        Err(e) => {
            retry_later(state, &job, &plan, n, &e.to_string()).await;
            return;
        }
    }
    let ran = match post(state, &job.tenant, &plan, n).await {
        Ok(ran) => ran,
        Err(e) => {
            retry_later(state, &job, &plan, n, &e).await;
            return;
        }
    };
    let continues = match &ran {
        Ran::Posted => {
            // Its event and the next period went into the unit of the top-up.
            metrics::counter!("prepaid_tmf_recurring_posted_total").increment(1);
            finish(state, &job).await;
            return;
        }
        Ran::Refused { refusal, ends_plan } => {
            metrics::counter!("prepaid_tmf_recurring_refused_total").increment(1);
            tracing::info!(plan = %plan.id, n, refusal = refusal.code(), "a recurring top-up was refused");
            let resource = resource(state, &job.tenant, &plan, n, Some(refusal)).await;
            if let Err(e) =
                hub::publish(state, &job.tenant, "TopupBalanceFailureEvent", resource).await
            {
                tracing::warn!(error = %e, plan = %plan.id, n, "publishing a recurring top-up failure failed");
            }
            !ends_plan
        }
    };
    // On failure period n stays claimed; when its lease ends it runs again as a replay
    // and enqueues the next period then.
    if continues
        && n < plan.periods_total
        && let Err(e) = enqueue(state, &job.tenant, &plan, n + 1).await
    {
        tracing::warn!(error = %e, plan = %plan.id, n, "enqueueing the next recurring top-up failed");
        return;
    }
    finish(state, &job).await;
}

/// Defers a period after an operating failure, by [`backoff_ms`] of its attempts.
async fn retry_later(state: &SharedState, job: &Job, plan: &Plan, n: u32, why: &str) {
    let wait = backoff_ms(job.attempts);
    tracing::warn!(error = why, plan = %plan.id, n, attempts = job.attempts, wait_ms = wait,
        "a recurring top-up could not be run; retrying");
    jobs::defer(state, RECURRING_QUEUE, job, wait, "a recurring top-up").await;
}

async fn finish(state: &SharedState, job: &Job) {
    jobs::finish(state, RECURRING_QUEUE, job, "a recurring top-up job").await;
}

/// Posts period `n`; `Err` only for operating failures, which are retried.
async fn post(state: &SharedState, tenant: &TenantId, plan: &Plan, n: u32) -> Result<Ran, String> {
    let key = idempotency_key(&plan.id, n);
    let key = IdempotencyKey::parse(&key).map_err(|e| format!("idempotency key {key:?}: {e}"))?;
    let due = due_at(plan.first_at, plan.period, n);
    let fingerprint = Fingerprint(
        Sha256::new()
            .chain_update(b"tmf-recurring\0")
            .chain_update(plan.id.as_bytes())
            .chain_update([0u8])
            .chain_update(plan.wallet.as_str().as_bytes())
            .chain_update([0u8])
            .chain_update(plan.amount.get().to_be_bytes())
            .chain_update(n.to_be_bytes())
            .finalize()
            .into(),
    );
    let command = Command::Post {
        id: mutation_id(tenant, &plan.id, n),
        wallet: plan.wallet.clone(),
        kind: MutationKind::TopUp,
        amount: plan.amount,
        reference: plan.reference.clone(),
        occurred_at: due,
        terms: prepaid_ledger::GrantTerms::default(),
        metadata: prepaid_ledger::Metadata::default(),
    };
    // The next period and the event are linked to the top-up: they exist exactly when
    // it does, whatever happens to this worker after the commit.
    let mut op = Operation::system(tenant, command).idempotency(Some((key, fingerprint)));
    if n < plan.periods_total {
        let next = period_job(plan, n + 1).map_err(|e| e.to_string())?;
        op = op.enqueue(RECURRING_QUEUE, &next.id, next.payload, Some(next.due_at));
    }
    if hub::has_listeners(state, tenant)
        .await
        .map_err(|e| e.to_string())?
    {
        let resource = resource(state, tenant, plan, n, None).await;
        if let Some((id, payload)) =
            hub::outboxed_resource("TopupBalanceCreateEvent", state.clock.now(), resource)
        {
            op = op.enqueue(hub::OUTBOX_QUEUE, &id, payload, None);
        }
    }
    match state.engine.submit(op.into_request()).await {
        Ok(Outcome::Done {
            done: Done::Mutation(_),
            ..
        }) => Ok(Ran::Posted),
        Ok(Outcome::Done { .. }) => {
            Err("the engine answered a top-up with another kind of result".into())
        }
        // The store rolled this one command back after a failure of its own: an
        // operating failure, not the ledger's answer.
        Ok(Outcome::Refused(Refusal::Internal)) => Err("the store failed the top-up".into()),
        Ok(Outcome::Refused(refusal)) => {
            let ends_plan = matches!(
                refusal,
                Refusal::WalletNotFound
                    | Refusal::TenantNotFound
                    | Refusal::CustomerNotFound
                    | Refusal::IdempotencyConflict
            );
            Ok(Ran::Refused { refusal, ends_plan })
        }
        Err(EngineError::Stopped) => Err("the engine is stopping".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The topupBalance of period `n` as events show it (TM Forum's flavour, `href`s
/// relative to its mount, as the worker answers no request whose host it could use):
/// the plan's fields, the period's date, and on failure the refusal's code as `reason`.
async fn resource(
    state: &SharedState,
    tenant: &TenantId,
    plan: &Plan,
    n: u32,
    refusal: Option<&Refusal>,
) -> Value {
    let ctx = Ctx {
        flavour: Flavour::Tmf,
        root: super::MOUNT_TMF.to_owned(),
    };
    let requested = due_at(plan.first_at, plan.period, n).unwrap_or(plan.first_at);
    let mut v = json!({
        "id": plan.id,
        "href": ctx.href("topupBalance", &plan.id),
        "@type": "TopupBalance",
        "isAutoTopup": true,
        "recurringPeriod": plan.period.as_str(),
        "numberOfPeriods": plan.periods_total,
        "requestedDate": prepaid_edge::time::format(requested),
        "bucket": bucket_ref(&ctx, plan.wallet.as_str()),
        "status": if refusal.is_some() { "failed" } else { "completed" },
    });
    // The amount needs the wallet's unit; without it (the wallet is gone, the store is
    // away) the event still says what happened.
    if let Ok(Some(w)) = state.store.wallet(tenant, &plan.wallet).await {
        v["amount"] = quantity(&ctx, plan.amount.get(), &w.unit);
    }
    if let Some(r) = refusal {
        v["reason"] = json!(r.code());
    } else {
        v["confirmationDate"] = json!(prepaid_edge::time::format(state.clock.now()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        prepaid_edge::time::parse(s).unwrap()
    }

    #[test]
    fn periods_fall_on_their_dates() {
        let first = at("2026-01-31T10:00:00Z");
        assert_eq!(due_at(first, Period::Daily, 1), Some(first));
        assert_eq!(
            due_at(first, Period::Daily, 3),
            Some(at("2026-02-02T10:00:00Z"))
        );
        assert_eq!(
            due_at(first, Period::Weekly, 2),
            Some(at("2026-02-07T10:00:00Z"))
        );
        assert_eq!(
            due_at(first, Period::Fortnightly, 2),
            Some(at("2026-02-14T10:00:00Z"))
        );
        // Clamped to the month's last day, and back to the 31st when the month has one.
        assert_eq!(
            due_at(first, Period::Monthly, 2),
            Some(at("2026-02-28T10:00:00Z"))
        );
        assert_eq!(
            due_at(first, Period::Monthly, 3),
            Some(at("2026-03-31T10:00:00Z"))
        );
        assert_eq!(
            due_at(first, Period::Monthly, 4),
            Some(at("2026-04-30T10:00:00Z"))
        );
        assert_eq!(
            due_at(at("2028-01-29T00:00:00Z"), Period::Monthly, 2),
            Some(at("2028-02-29T00:00:00Z"))
        );
        assert_eq!(due_at(first, Period::Monthly, 0), None);
        assert!(due_at(first, Period::Monthly, PERIODS_MAX).is_some());
        assert!(due_at(first, Period::Fortnightly, PERIODS_MAX).is_some());
    }

    #[test]
    fn periods_parse_in_both_dialects() {
        assert_eq!(Period::parse("daily"), Some(Period::Daily));
        assert_eq!(Period::parse("Monthly"), Some(Period::Monthly));
        assert_eq!(Period::parse("2 Weeks"), Some(Period::Fortnightly));
        assert_eq!(Period::parse("1 day"), Some(Period::Daily));
        assert_eq!(Period::parse("yearly"), None);
    }

    #[test]
    fn mutation_ids_are_deterministic_uuids() {
        let t = TenantId::parse("t").unwrap();
        let a = mutation_id(&t, "plan", 2);
        assert_eq!(a, mutation_id(&t, "plan", 2));
        assert_ne!(a, mutation_id(&t, "plan", 3));
        assert_ne!(a, mutation_id(&TenantId::parse("u").unwrap(), "plan", 2));
        assert_eq!(a.0.get_version_num(), 8);
        assert_eq!(a.0.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn keys_of_the_longest_plan_id_fit() {
        let id = "p".repeat(PLAN_ID_LEN_MAX);
        let key = idempotency_key(&id, PERIODS_MAX);
        assert!(IdempotencyKey::parse(&key).is_ok());
        assert!(RecordKey::parse(format!("{id}:{PERIODS_MAX}")).is_ok());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff_ms(1), RETRY_BACKOFF_BASE_MS);
        assert_eq!(backoff_ms(2), 2 * RETRY_BACKOFF_BASE_MS);
        assert_eq!(backoff_ms(1000), RETRY_BACKOFF_MS_MAX);
    }
}
