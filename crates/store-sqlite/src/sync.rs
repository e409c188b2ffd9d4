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
//!
//! The writer must not outrun the checkpointer for long: the log starts over from its
//! beginning only once a checkpoint has copied all of it, so a writer that keeps adding
//! frames faster than they are copied grows the log without end (gigabytes after a
//! sustained burst of batches), every commit then extends the file (on ext4 each such
//! append waits for the journal behind the checkpoint's sync of the database file),
//! and every read searches an ever longer index of the log. So the checkpointer
//! publishes the [`Backlog`] (the frames in the log and those it copied), and once
//! the log file is larger than [`WAL_BYTES_MAX`] the writer waits before its next
//! transaction until a checkpoint has copied the whole log, so that transaction starts
//! the log over (and cuts the file back); it waits at most [`WAL_BACKLOG_WAIT_MS_MAX`], since a reader holding
//! an old snapshot may keep a checkpoint from finishing and writes must not stop for
//! it. The writer reads the log's size off the file rather than the checkpointer's
//! last figures: a checkpoint copying a large backlog runs for seconds, in which the
//! writer would add hundreds of megabytes unchecked.

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

/// The largest the log grows before the writer lets a checkpoint copy all of it so that
/// the log starts over, and the size the log file is cut back to when it does
/// (`journal_size_limit`): 64 MiB. The file passes it only when the log has grown past
/// it since it last started over, which the writer reads off the file's size.
pub(crate) const WAL_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// The longest the writer waits for the checkpointer before one transaction.
pub(crate) const WAL_BACKLOG_WAIT_MS_MAX: u64 = 5_000;

/// What the checkpointer found, and a way for the writer to wait for a checkpoint that
/// copies the whole log.
pub(crate) struct Backlog {
    /// The database's `-wal` file.
    wal: PathBuf,
    frames: Mutex<Frames>,
    changed: Condvar,
    /// Whether the writer is waiting, so the checkpointer runs without pause.
    waiting: std::sync::atomic::AtomicBool,
}

#[derive(Clone, Copy, Default)]
struct Frames {
    /// Checkpoints run so far.
    runs: u64,
    /// The frames in the log as the last checkpoint found it.
    log: i64,
    /// The frames that checkpoint had copied into the database.
    copied: i64,
    /// `copied` when the writer last waited in vain: it does not wait again until a
    /// checkpoint gets further, so a reader keeping checkpoints back costs one wait.
    stalled_at: Option<i64>,
}

impl Backlog {
    pub(crate) fn new(wal: PathBuf) -> Self {
        Self {
            wal,
            frames: Mutex::default(),
            changed: Condvar::new(),
            waiting: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn set(&self, log: i64, copied: i64) {
        let mut frames = self.frames.lock().unwrap_or_else(PoisonError::into_inner);
        frames.runs += 1;
        frames.log = log;
        frames.copied = copied;
        drop(frames);
        self.changed.notify_all();
        metrics::gauge!("prepaid_wal_frames").set(log as f64);
    }

    /// Called by the writer before a transaction: when the log file is over
    /// [`WAL_BYTES_MAX`], waits until a checkpoint that began after this call has
    /// copied the whole log (so this transaction starts the log over), or for at most
    /// [`WAL_BACKLOG_WAIT_MS_MAX`]. Returns whether it waited.
    pub(crate) fn wait_for_checkpoints(&self) -> bool {
        use std::sync::atomic::Ordering;
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if size <= WAL_BYTES_MAX {
            return false;
        }
        let frames = self.frames.lock().unwrap_or_else(PoisonError::into_inner);
        if frames.stalled_at == Some(frames.copied) {
            return false;
        }
        let started = Instant::now();
        // A checkpoint running now may have read the log before the last commit; the
        // one after it has not.
        let after = frames.runs + 1;
        let copied_all = move |f: &Frames| f.runs > after && f.copied >= f.log;
        self.waiting.store(true, Ordering::Relaxed);
        let (mut frames, _) = self
            .changed
            .wait_timeout_while(
                frames,
                Duration::from_millis(WAL_BACKLOG_WAIT_MS_MAX),
                |f| !copied_all(f),
            )
            .unwrap_or_else(PoisonError::into_inner);
        if !copied_all(&frames) {
            frames.stalled_at = Some(frames.copied);
            tracing::warn!(
                log_bytes = size,
                frames = frames.log,
                copied = frames.copied,
                "checkpoints did not catch up with the log; writing on"
            );
        }
        drop(frames);
        self.waiting.store(false, Ordering::Relaxed);
        metrics::histogram!("prepaid_wal_backlog_wait_seconds")
            .record(started.elapsed().as_secs_f64());
        true
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
    pub(crate) fn start(conn: Connection, backlog: Arc<Backlog>) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("prepaid-sqlite-checkpoint".into())
                .spawn(move || checkpoints(&conn, &stop, &backlog))
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

fn checkpoints(conn: &Connection, stop: &(Mutex<bool>, Condvar), backlog: &Backlog) {
    loop {
        // While the writer waits for it, the next checkpoint starts at once.
        let pause = if backlog.waiting.load(std::sync::atomic::Ordering::Relaxed) {
            Duration::ZERO
        } else {
            Duration::from_millis(CHECKPOINT_INTERVAL_MS)
        };
        {
            let stopped = stop.0.lock().unwrap_or_else(PoisonError::into_inner);
            let (stopped, _) = stop
                .1
                .wait_timeout_while(stopped, pause, |s| !*s)
                .unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return;
            }
        }
        let started = Instant::now();
        // Passive: it copies what no reader still needs and never waits for the
        // writer or a reader. It answers the frames in the log and those copied.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match result {
            Ok((log, copied)) => {
                if log > 0 {
                    metrics::histogram!("prepaid_checkpoint_seconds")
                        .record(started.elapsed().as_secs_f64());
                }
                backlog.set(log, copied);
            }
            Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backlog over a log file of `bytes`.
    fn backlog_of(dir: &tempfile::TempDir, bytes: u64) -> Backlog {
        let wal = dir.path().join("db-wal");
        std::fs::File::create(&wal).unwrap().set_len(bytes).unwrap();
        Backlog::new(wal)
    }

    #[test]
    fn the_writer_waits_only_for_a_log_over_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let backlog = backlog_of(&dir, WAL_BYTES_MAX);
        backlog.set(100, 0);
        assert!(!backlog.wait_for_checkpoints(), "at the bound, no wait");
        let missing = Backlog::new(dir.path().join("no-wal"));
        assert!(!missing.wait_for_checkpoints(), "no log yet, no wait");
    }

    #[test]
    fn the_writer_waits_until_a_later_checkpoint_copied_the_whole_log() {
        let dir = tempfile::tempdir().unwrap();
        let backlog = Arc::new(backlog_of(&dir, WAL_BYTES_MAX + 1));
        backlog.set(100, 100);
        let checkpointer = {
            let backlog = backlog.clone();
            std::thread::spawn(move || {
                while !backlog.waiting.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::yield_now();
                }
                // The checkpoint that was running may have missed the last commit.
                backlog.set(100, 100);
                backlog.set(120, 110);
                backlog.set(120, 120);
            })
        };
        assert!(backlog.wait_for_checkpoints());
        checkpointer.join().unwrap();
        let frames = *backlog.frames.lock().unwrap();
        assert_eq!((frames.runs, frames.log, frames.copied), (4, 120, 120));
        assert_eq!(frames.stalled_at, None);
    }

    /// A checkpoint held back (by a reader's old snapshot) costs the writer one wait,
    /// not one per transaction, until a checkpoint gets further.
    #[test]
    fn a_stalled_checkpoint_costs_one_wait() {
        let dir = tempfile::tempdir().unwrap();
        let backlog = backlog_of(&dir, WAL_BYTES_MAX + 1);
        backlog.set(100, 10);
        assert!(backlog.wait_for_checkpoints());
        assert!(!backlog.wait_for_checkpoints());
        backlog.set(100, 11);
        let frames = *backlog.frames.lock().unwrap();
        assert_ne!(
            frames.stalled_at,
            Some(frames.copied),
            "progress: it waits again"
        );
    }

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
