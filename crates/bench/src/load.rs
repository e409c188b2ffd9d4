//! The closed-loop load runner shared by every cell.
//!
//! A cell opens all its connections first, then starts one task per connection. Each
//! task sends a request, waits for the answer, and sends the next until the cell's stop
//! time, so a cell never runs longer than warm-up + measurement + a short linger + one
//! request timeout.
//! Only requests that finish inside the measurement window are counted, which keeps the
//! warm-up (cold caches, growing files) out of the figures.

use crate::machine::{CpuSample, CpuUse, ServerProcs};
use crate::writer::{WriterProbe, WriterUse};
use hdrhistogram::Histogram;
use std::future::Future;
use std::time::{Duration, Instant};

/// The longest a single request may take before it counts as an error; it bounds every
/// request loop even if the server stops answering.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The highest latency the histograms can hold, in microseconds (one minute).
const LATENCY_MAX_US: u64 = 60_000_000;

/// The longest error text kept for the report.
const ERROR_TEXT_LEN_MAX: usize = 300;

/// How long connections keep working after the measurement window closes, so the
/// closing CPU sample sees every server process still alive (a PostgreSQL backend
/// exits, taking its CPU counters with it, as soon as its connection closes).
const LINGER: Duration = Duration::from_millis(250);

/// When a cell measures.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub measure_from: Instant,
    pub end: Instant,
    /// When connections stop sending; requests finishing after `end` are not counted.
    stop: Instant,
}

impl Window {
    /// Whether a connection should send another request.
    pub fn is_open(&self) -> bool {
        Instant::now() < self.stop
    }
}

/// Which row (wallet or account) a connection uses for its next request.
#[derive(Clone, Copy, Debug)]
pub enum Pick {
    /// Connection `c` of `n` walks rows `c, c + n, c + 2n, …` (modulo `rows`), so no two
    /// connections share a row unless there are more connections than rows.
    Spread { connections: usize, rows: usize },
    /// Every request goes to the one hot row.
    Hot,
}

impl Pick {
    /// The index of the spread row, or `None` for the hot row.
    pub fn index(self, connection: usize, seq: u64) -> Option<usize> {
        match self {
            Self::Spread { connections, rows } => {
                let slot = connection as u64 + seq * connections as u64;
                Some((slot % rows as u64) as usize)
            }
            Self::Hot => None,
        }
    }
}

/// What one connection saw.
pub struct WorkerStats {
    /// Request latency in microseconds.
    hist: Histogram<u64>,
    /// Operations (mutations or reads) that succeeded inside the window; a batch request
    /// counts each of its mutations.
    ops_ok: u64,
    /// Operations that failed inside the window (or whose request failed).
    ops_failed: u64,
    first_error: Option<String>,
}

impl WorkerStats {
    pub fn new() -> Self {
        Self {
            hist: latency_histogram(),
            ops_ok: 0,
            ops_failed: 0,
            first_error: None,
        }
    }

    /// Records one finished request that started at `started`.
    pub fn record(&mut self, window: &Window, started: Instant, ops_ok: u64, ops_failed: u64) {
        // A request counts when it finishes inside the window, wherever it started: the
        // requests cut off at the end balance those carried in from the warm-up, which
        // matters when a cell completes only a few long requests (batches).
        let finished = Instant::now();
        if finished < window.measure_from || finished > window.end {
            return;
        }
        let us = u64::try_from(finished.duration_since(started).as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.clamp(1, LATENCY_MAX_US));
        self.ops_ok += ops_ok;
        self.ops_failed += ops_failed;
    }

    /// Keeps the first error a connection saw, for the report.
    pub fn note_error(&mut self, error: impl std::fmt::Display) {
        if self.first_error.is_none() {
            let mut text = error.to_string();
            if text.len() > ERROR_TEXT_LEN_MAX {
                let mut cut = ERROR_TEXT_LEN_MAX;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push('…');
            }
            self.first_error = Some(text);
        }
    }
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

/// The result of one cell.
#[derive(Clone, Debug)]
pub struct CellResult {
    pub connections: usize,
    pub seconds: f64,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub cpu: CpuUse,
    /// What prepaid's group-commit writer did, when its metrics could be read.
    pub writer: Option<WriterUse>,
    pub first_error: Option<String>,
}

impl CellResult {
    pub fn ops_per_second(&self) -> f64 {
        self.ops_ok as f64 / self.seconds
    }

    /// CPU time per successful operation, in microseconds, of something that used
    /// `cores` over the window.
    pub fn us_per_op(&self, cores: f64) -> Option<f64> {
        (self.ops_ok > 0).then(|| cores * self.seconds * 1e6 / self.ops_ok as f64)
    }
}

/// How long a cell warms up and measures.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
    pub ticks_per_second: f64,
}

/// What to watch on the server side while a cell runs.
#[derive(Clone, Debug)]
pub struct Probes {
    pub procs: ServerProcs,
    pub writer: Option<WriterProbe>,
}

/// Runs one task per already-open connection and merges what they saw.
pub async fn run_cell<C, F, Fut>(
    connections: Vec<C>,
    timing: Timing,
    probes: Probes,
    worker: F,
) -> CellResult
where
    F: Fn(C, usize, Window) -> Fut,
    Fut: Future<Output = WorkerStats> + Send + 'static,
{
    let count = connections.len();
    let start = Instant::now();
    let end = start + timing.warmup + timing.measure;
    let window = Window {
        measure_from: start + timing.warmup,
        end,
        stop: end + LINGER,
    };
    let sampler = tokio::spawn(async move {
        let writer = |probe: Option<WriterProbe>| async move {
            match probe {
                Some(p) => p.sample().await,
                None => None,
            }
        };
        tokio::time::sleep_until(window.measure_from.into()).await;
        let cpu_first = CpuSample::take(&probes.procs);
        let writer_first = writer(probes.writer.clone()).await;
        tokio::time::sleep_until(window.end.into()).await;
        let cpu_last = CpuSample::take(&probes.procs);
        let writer_last = writer(probes.writer.clone()).await;
        let writer = match (writer_first, writer_last) {
            (Some(a), Some(b)) => Some(WriterUse::between(&a, &b)),
            _ => None,
        };
        (
            CpuUse::between(&cpu_first, &cpu_last, timing.ticks_per_second),
            writer,
        )
    });
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(index, conn)| tokio::spawn(worker(conn, index, window)))
        .collect();
    let mut hist = latency_histogram();
    let (mut ops_ok, mut ops_failed) = (0, 0);
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(stats) => {
                hist.add(&stats.hist).expect("histograms share bounds");
                ops_ok += stats.ops_ok;
                ops_failed += stats.ops_failed;
                first_error = first_error.or(stats.first_error);
            }
            Err(e) => first_error = first_error.or(Some(format!("load task failed: {e}"))),
        }
    }
    let (cpu, writer) = sampler.await.unwrap_or_default();
    CellResult {
        connections: count,
        seconds: timing.measure.as_secs_f64(),
        ops_ok,
        ops_failed,
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
        cpu,
        writer,
        first_error,
    }
}
