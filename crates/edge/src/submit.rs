//! The one way every dialect sends a client operation to the engine.
//!
//! A client-visible change is one [`Operation`]: a ledger command with the steps linked
//! to it (a customer made on first use, the client's extra fields as a record, an event
//! in the outbox, the first top-up of a new wallet). The engine carries the steps out
//! as one unit, in one transaction: a handler never calls the engine twice for one
//! change, so no refusal, crash or race can leave half of it behind.

use crate::AppState;
use crate::auth::Principal;
use crate::engine_problem;
use crate::failure::Failure;
use prepaid_ledger::{
    Command, Done, Fingerprint, IdempotencyKey, JobQueue, Outcome, RecordKey, RecordKind, Refusal,
    Request, Step, TenantId, Timestamp,
};

/// One client operation on its way to the engine.
#[derive(Clone, Debug)]
#[must_use = "an operation does nothing until it is submitted"]
pub struct Operation {
    request: Request,
}

/// What the engine made of an operation: the command's result and whether it repeats
/// an earlier answer, or the refusal of one of its steps.
pub type Submitted = Result<(Done, bool), Refusal>;

impl Operation {
    /// `command` as `caller`: of its tenant, restricted as its key is.
    pub fn new(caller: &Principal, command: Command) -> Self {
        let mut request = Request::new(caller.tenant.clone(), command);
        request.customer_only = caller.customer.clone();
        Self { request }
    }

    /// A unit of record and job steps alone, as `caller` (see [`Command::Records`]).
    pub fn records(caller: &Principal) -> Self {
        Self::new(caller, Command::Records)
    }

    /// `command` of `tenant` with the rights of the system (background work).
    pub fn system(tenant: &TenantId, command: Command) -> Self {
        Self {
            request: Request::new(tenant.clone(), command),
        }
    }

    pub fn idempotency(mut self, key: Option<(IdempotencyKey, Fingerprint)>) -> Self {
        self.request.idempotency = key;
        self
    }

    /// Carries out `command` first, in the same unit.
    pub fn before(mut self, command: Command) -> Self {
        self.request.before.push(Step::Command(command));
        self
    }

    /// Carries out `command` after the others, in the same unit.
    pub fn then(mut self, command: Command) -> Self {
        self.request.after.push(Step::Command(command));
        self
    }

    /// Writes a record in the same unit (compare-and-set, see [`Step::PutRecord`]).
    pub fn put_record(
        mut self,
        kind: RecordKind,
        key: &RecordKey,
        value: String,
        expected_version: Option<i64>,
    ) -> Self {
        self.request.after.push(Step::PutRecord {
            kind,
            key: key.clone(),
            value,
            expected_version,
        });
        self
    }

    /// Deletes a record in the same unit.
    pub fn delete_record(mut self, kind: RecordKind, key: &RecordKey) -> Self {
        self.request.after.push(Step::DeleteRecord {
            kind,
            key: key.clone(),
        });
        self
    }

    /// Queues a job (an event to deliver, the next period of a plan) in the same unit,
    /// so it exists exactly when the change it follows does.
    pub fn enqueue(
        mut self,
        queue: JobQueue,
        id: &RecordKey,
        payload: String,
        due_at: Option<Timestamp>,
    ) -> Self {
        self.request.after.push(Step::EnqueueJob {
            queue,
            id: id.clone(),
            payload,
            due_at,
        });
        self
    }

    /// The request as it stands (for a client's batch of several).
    pub fn into_request(self) -> Request {
        self.request
    }

    /// Sends the operation and waits until it is durable or refused. An operating
    /// failure of the engine is the dialect-neutral [`Failure`] (logged with `context`)
    /// that each dialect renders in its own shape.
    pub async fn submit(self, state: &AppState, context: &str) -> Result<Submitted, Failure> {
        match state.engine.submit(self.request).await {
            Ok(Outcome::Done { done, replayed }) => Ok(Ok((done, replayed))),
            Ok(Outcome::Refused(r)) => Ok(Err(r)),
            Err(e) => Err(engine_problem(&e, context)),
        }
    }
}
