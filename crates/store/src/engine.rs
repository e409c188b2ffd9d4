//! The group-commit engine: one writer task per store.
//!
//! Callers submit jobs (one request, or a client's batch of requests) into a bounded
//! queue. The writer takes the first waiting job, then every job that arrived meanwhile
//! up to [`EngineConfig::batch_size_max`] requests, and hands them to the store as one
//! transaction. While the store makes one batch durable, the next batch is queueing, so
//! under load one fsync is shared by many requests. Each caller gets its own outcomes
//! only after the whole batch is durable.
//!
//! The writer stages each batch ([`Store::stage`]): it goes on to the next batch as
//! soon as the store has written this one, and a separate task releases this one's
//! answers once the store says it is durable. On a store that syncs apart from
//! committing (SQLite), batch N+1 is thus executed and written while batch N is being
//! synced; on one whose commit is the sync, staging is applying.

use crate::{Clock, Durable, Staged, Store, StoreError};
use prepaid_ledger::{Outcome, Request};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// The most requests in one store transaction (a single job larger than this still
    /// goes alone, whole).
    pub batch_size_max: usize,
    /// The most jobs waiting for the writer; submitters wait for room beyond it.
    pub queue_depth_max: usize,
    /// How many batches may be in flight at once. 1 for SQLite (one writer); a
    /// database with row locks can take more.
    pub writers: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size_max: 8192,
            queue_depth_max: 16_384,
            writers: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine is shutting down and takes no new work.
    #[error("engine stopped")]
    Stopped,
}

struct Job {
    requests: Vec<Request>,
    reply: oneshot::Sender<Result<Vec<Outcome>, EngineError>>,
}

/// A handle to the writer; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Job>,
}

impl Engine {
    /// Starts the writer tasks on the current tokio runtime. They stop once every
    /// `Engine` handle is dropped and the queue is drained, so that acknowledged work
    /// is never cut short.
    pub fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        assert!(config.batch_size_max > 0 && config.queue_depth_max > 0 && config.writers > 0);
        let (tx, rx) = mpsc::channel::<Job>(config.queue_depth_max);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let handle = tokio::spawn(async move {
            let mut writers = tokio::task::JoinSet::new();
            for _ in 0..config.writers {
                writers.spawn(writer(
                    store.clone(),
                    clock.clone(),
                    rx.clone(),
                    config.batch_size_max,
                ));
            }
            while writers.join_next().await.is_some() {}
        });
        (Self { tx }, handle)
    }

    /// Applies one request; returns once it is durable (or refused).
    pub async fn submit(&self, request: Request) -> Result<Outcome, EngineError> {
        let mut outcomes = self.submit_many(vec![request]).await?;
        Ok(outcomes.pop().expect("one outcome per request"))
    }

    /// Applies requests that arrived together (a client's batch); one outcome each, in
    /// order. They go into the same store transaction.
    pub async fn submit_many(&self, requests: Vec<Request>) -> Result<Vec<Outcome>, EngineError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { requests, reply })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }
}

async fn writer(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    batch_size_max: usize,
) {
    loop {
        let jobs = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut size = first.requests.len();
            let mut jobs = vec![first];
            while size < batch_size_max {
                match rx.try_recv() {
                    Ok(job) => {
                        size += job.requests.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        let lens: Vec<usize> = jobs.iter().map(|j| j.requests.len()).collect();
        let mut replies = Vec::with_capacity(jobs.len());
        let mut batch = Vec::with_capacity(lens.iter().sum());
        for job in jobs {
            batch.extend(job.requests);
            replies.push(job.reply);
        }
        let size = batch.len();
        let started = std::time::Instant::now();
        let result = store.stage(batch, clock.now()).await;
        metrics::histogram!("prepaid_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("prepaid_commit_batch_size").record(size as f64);
        match result {
            Ok(Staged { outcomes, durable }) => {
                assert_eq!(
                    outcomes.len(),
                    size,
                    "store returned the wrong number of outcomes"
                );
                // The next batch is taken while this one becomes durable; its answers
                // wait for that.
                tokio::spawn(release(outcomes, durable, replies, lens));
            }
            Err(e) => {
                metrics::counter!("prepaid_commit_failures_total").increment(1);
                tracing::error!(error = %e, batch_size = size, "batch failed to commit");
                for reply in replies {
                    let _ = reply.send(Err(e.clone().into()));
                }
            }
        }
    }
}

/// Hands each caller its outcomes once the batch is durable, or the error that says it
/// may not be.
async fn release(
    outcomes: Vec<Outcome>,
    durable: Durable,
    replies: Vec<oneshot::Sender<Result<Vec<Outcome>, EngineError>>>,
    lens: Vec<usize>,
) {
    match durable.await {
        Ok(()) => {
            metrics::counter!("prepaid_commits_total").increment(1);
            let mut outcomes = outcomes.into_iter();
            for (reply, len) in replies.into_iter().zip(lens) {
                // A caller that went away (client disconnected) just misses its answer.
                let _ = reply.send(Ok(outcomes.by_ref().take(len).collect()));
            }
        }
        Err(e) => {
            metrics::counter!("prepaid_commit_failures_total").increment(1);
            tracing::error!(error = %e, "a written batch failed to become durable");
            for reply in replies {
                let _ = reply.send(Err(e.clone().into()));
            }
        }
    }
}
