//! Making commits durable apart from committing them.
//!
//! The writer connection runs with `synchronous=NORMAL`: its `COMMIT` appends the
//! transaction's frames to the write-ahead log and returns without waiting for the
//! disk. The [`Syncer`] makes them durable on its own thread: each commit of the
//! writer takes the next *generation*; the thread calls `fdatasync` on the log file and
//! then declares every generation committed before that call durable. So while one
//! batch is being synced, the writer already executes and writes the next one, and
//! one `fdatasync` covers every commit made meanwhile.
//!
//! The log's frames reach the disk in order and a later `fdatasync` covers every
//! earlier write to the file, so generation `g` durable implies every generation
//! before it is. SQLite itself syncs the log before each checkpoint copies it into
//! the database file, and the log's header when the log starts over, so what a crash
//! keeps is always a prefix of the commits, and it holds every durable one.
//!
//! A failed `fdatasync` leaves the kernel's view of the file unknown (the pages may be
//! dropped and marked clean), so the store stops taking writes until it is opened
//! again: every waiter then gets an error, and so does every later write.
//!
//! The [`Checkpointer`] copies the log into the database file from its own
//! connection, so that checkpoints (and their syncs of the database file) stay off
//! the writer's path; the writer's automatic checkpoints are off.

use prepaid_store::StoreError;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What has been made durable so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Synced {
    generation: u64,
    failed: bool,
}

#[derive(Default)]
struct State {
    /// The generation of the writer's last commit.
    committed: u64,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    synced: watch::Sender<Synced>,
}

/// Syncs the write-ahead log on its own thread; see the module documentation.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread that syncs `wal`, the database's `-wal` file.
    pub(crate) fn start(wal: PathBuf) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            synced: watch::Sender::new(Synced::default()),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("prepaid-sqlite-sync".into())
                .spawn(move || run(&shared, &wal))
                .expect("spawning the log sync thread")
        };
        Self {
            shared,
            thread: Some(thread),
        }
    }

    /// Notes a commit of the writer (call it with the writer still held, so that
    /// generations follow commits) and returns its generation.
    pub(crate) fn committed(&self) -> u64 {
        let mut state = self.shared.lock();
        state.committed += 1;
        self.shared.wake.notify_one();
        state.committed
    }

    /// Whether a sync failed, after which the store takes no writes.
    pub(crate) fn failed(&self) -> bool {
        self.shared.synced.borrow().failed
    }

    /// Resolves once `generation` is durable, or fails when a sync failed first.
    pub(crate) fn durable(
        &self,
        generation: u64,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let mut synced = self.shared.synced.subscribe();
        async move {
            let seen = synced
                .wait_for(|s| s.failed || s.generation >= generation)
                .await
                .map(|s| *s)
                .map_err(|_| StoreError::unavailable("the store is closed".to_owned()))?;
            if seen.generation >= generation {
                Ok(())
            } else {
                Err(sync_failed())
            }
        }
    }
}

pub(crate) fn sync_failed() -> StoreError {
    StoreError::internal(
        "syncing the write-ahead log failed; the store takes no writes until it is opened again"
            .to_owned(),
    )
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // The thread syncs what was committed before it stops.
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, wal: &std::path::Path) {
    let mut file: Option<std::fs::File> = None;
    let mut done = 0;
    loop {
        let target = {
            let mut state = shared.lock();
            while state.committed == done && !state.stop {
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.committed == done {
                return;
            }
            state.committed
        };
        let started = Instant::now();
        let result = match &file {
            Some(f) => f.sync_data(),
            None => std::fs::OpenOptions::new()
                .read(true)
                .open(wal)
                .and_then(|f| f.sync_data().map(|()| f))
                .map(|f| file = Some(f)),
        };
        metrics::histogram!("prepaid_writer_phase_seconds", "phase" => "sync")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                done = target;
                shared.synced.send_replace(Synced {
                    generation: done,
                    failed: false,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, wal = %wal.display(), "syncing the write-ahead log failed");
                shared.synced.send_replace(Synced {
                    generation: done,
                    failed: true,
                });
                return;
            }
        }
    }
}

/// How often the checkpointer copies the log into the database. A checkpoint with
/// nothing new to copy returns at once, without syncing anything.
pub(crate) const CHECKPOINT_INTERVAL_MS: u64 = 100;

/// Copies the write-ahead log into the database file from its own connection.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(conn: Connection) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("prepaid-sqlite-checkpoint".into())
                .spawn(move || checkpoints(&conn, &stop))
                .expect("spawning the checkpoint thread")
        };
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.1.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn checkpoints(conn: &Connection, stop: &(Mutex<bool>, Condvar)) {
    loop {
        {
            let stopped = stop.0.lock().unwrap_or_else(PoisonError::into_inner);
            let (stopped, _) = stop
                .1
                .wait_timeout_while(
                    stopped,
                    Duration::from_millis(CHECKPOINT_INTERVAL_MS),
                    |s| !*s,
                )
                .unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return;
            }
        }
        let started = Instant::now();
        // Passive: it copies what no reader still needs and never waits for the
        // writer or a reader.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        match result {
            Ok(frames) if frames > 0 => {
                metrics::histogram!("prepaid_checkpoint_seconds")
                    .record(started.elapsed().as_secs_f64());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_generation_is_durable_once_a_later_sync_returned() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let syncer = Syncer::start(wal);
        let first = syncer.committed();
        let second = syncer.committed();
        assert_eq!((first, second), (1, 2));
        syncer.durable(second).await.unwrap();
        // An earlier generation is implied by a later one.
        syncer.durable(first).await.unwrap();
        assert!(!syncer.failed());
    }

    /// A log that cannot be synced fails its waiters and every later write.
    #[tokio::test]
    async fn a_failed_sync_fails_its_waiters_and_stays_failed() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start(dir.path().join("missing-wal"));
        let generation = syncer.committed();
        match syncer.durable(generation).await {
            Err(StoreError::Internal { .. }) => {}
            other => panic!("expected an internal error, got {other:?}"),
        }
        assert!(syncer.failed());
        let later = syncer.committed();
        assert!(syncer.durable(later).await.is_err());
    }
}
