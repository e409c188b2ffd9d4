//! prepaid's group-commit writer, seen through its Prometheus metrics.
//!
//! The engine records, per store transaction, how long it took and how many requests it
//! carried (`prepaid_commit_seconds`, `prepaid_commit_batch_size`). Reading their sums
//! before and after a cell tells how busy the writer was and how well commits were
//! shared, which is what limits single-mutation throughput on a one-writer store.

use crate::http::{Conn, Target};
use hyper::{Method, StatusCode};
use std::time::Instant;

/// Reads the server's `/metrics`.
#[derive(Clone, Debug)]
pub struct WriterProbe {
    target: Target,
}

/// The writer's counters at one moment.
#[derive(Clone, Copy, Debug)]
pub struct WriterSample {
    at: Instant,
    commits: f64,
    commit_seconds: f64,
    requests: f64,
}

/// What the writer did over an interval.
#[derive(Clone, Copy, Debug)]
pub struct WriterUse {
    pub commits_per_second: f64,
    /// Requests per store transaction, on average.
    pub batch_size_mean: f64,
    /// Time per store transaction, on average, in milliseconds.
    pub commit_ms_mean: f64,
    /// Time spent inside store transactions per second of wall time; 1.0 means one
    /// writer was never idle.
    pub busy_share: f64,
}

impl WriterProbe {
    pub fn new(target: Target) -> Self {
        Self { target }
    }

    /// Reads the counters; `None` when the server does not export them.
    pub async fn sample(&self) -> Option<WriterSample> {
        let mut conn = Conn::open(&self.target).await.ok()?;
        let answer = conn.send(Method::GET, "/metrics", None, None).await.ok()?;
        if answer.status != StatusCode::OK {
            return None;
        }
        let text = String::from_utf8_lossy(&answer.body);
        let value = |name: &str| metric(&text, name);
        Some(WriterSample {
            at: Instant::now(),
            commits: value("prepaid_commit_seconds_count")?,
            commit_seconds: value("prepaid_commit_seconds_sum")?,
            requests: value("prepaid_commit_batch_size_sum")?,
        })
    }
}

impl WriterUse {
    pub fn between(start: &WriterSample, end: &WriterSample) -> Self {
        let seconds = end.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let commits = (end.commits - start.commits).max(0.0);
        let per_commit = |v: f64| if commits > 0.0 { v / commits } else { 0.0 };
        Self {
            commits_per_second: commits / seconds,
            batch_size_mean: per_commit(end.requests - start.requests),
            commit_ms_mean: per_commit(end.commit_seconds - start.commit_seconds) * 1000.0,
            busy_share: (end.commit_seconds - start.commit_seconds) / seconds,
        }
    }
}

/// The value of an unlabelled metric in Prometheus text format.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_reads_exact_names_only() {
        let text = "# TYPE x summary\nprepaid_commit_seconds_sum 1.5\nprepaid_commit_seconds_sum_other 9\n\
                    prepaid_commit_seconds_count 3\n";
        assert_eq!(metric(text, "prepaid_commit_seconds_sum"), Some(1.5));
        assert_eq!(metric(text, "prepaid_commit_seconds_count"), Some(3.0));
        assert_eq!(metric(text, "prepaid_commit_batch_size_sum"), None);
    }
}
