//! prepaid's group-commit writer, seen through its Prometheus metrics.
//!
//! The engine records, per store transaction, how long it took and how many requests it
//! carried (`prepaid_commit_seconds`, `prepaid_commit_batch_size`), and how that time
//! splits into phases (`prepaid_writer_phase_seconds{phase=…}`). Reading their sums
//! before and after a cell tells how busy the writer was, how well commits were shared,
//! and where the writer's time went, which is what limits single-mutation throughput on
//! a one-writer store.

use crate::http::{Conn, Target};
use hyper::{Method, StatusCode};
use std::time::Instant;

/// The phases of a store transaction, in the order they run and the report shows them.
pub const PHASES: [&str; 5] = ["load", "execute", "write", "commit", "sync"];

/// The histogram whose per-phase sums split the writer's time.
const PHASE_METRIC_SUM: &str = "prepaid_writer_phase_seconds_sum";

/// Reads the `/metrics` of one or more servers and adds their counters up, so that
/// several instances on one store read as the sum of their writers.
#[derive(Clone, Debug)]
pub struct WriterProbe {
    targets: Vec<Target>,
}

/// The writers' counters at one moment.
#[derive(Clone, Copy, Debug)]
pub struct WriterSample {
    at: Instant,
    commits: f64,
    commit_seconds: f64,
    requests: f64,
    /// Seconds spent in each of [`PHASES`], `None` where the server does not export it.
    phase_seconds: [Option<f64>; PHASES.len()],
}

/// What the writers did over an interval.
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
    /// Writer time per request in each of [`PHASES`], in microseconds; `None` where the
    /// server does not export the phase or no request was written.
    pub phase_us_per_request: [Option<f64>; PHASES.len()],
}

impl WriterProbe {
    pub fn new(targets: Vec<Target>) -> Self {
        Self { targets }
    }

    /// Reads the counters of every target and adds them up; `None` when a server's
    /// metrics cannot be read.
    pub async fn sample(&self) -> Option<WriterSample> {
        let mut total: Option<WriterSample> = None;
        for target in &self.targets {
            let text = metrics_text(target).await?;
            let one = WriterSample::parse(&text, Instant::now());
            total = Some(match total {
                None => one,
                Some(t) => t.plus(&one),
            });
        }
        total
    }
}

/// The body of a server's `/metrics`, or `None` when it cannot be read.
async fn metrics_text(target: &Target) -> Option<String> {
    let mut conn = Conn::open(target).await.ok()?;
    let answer = conn.send(Method::GET, "/metrics", None, None).await.ok()?;
    if answer.status != StatusCode::OK {
        return None;
    }
    Some(String::from_utf8_lossy(&answer.body).into_owned())
}

impl WriterSample {
    /// The counters in one `/metrics` text. A histogram appears with its first
    /// observation, so a missing commit counter means no commit yet: a fresh instance
    /// that has not committed reads as zero, not as a server without the metrics.
    fn parse(text: &str, at: Instant) -> Self {
        let value = |name: &str| metric(text, name).unwrap_or(0.0);
        Self {
            at,
            commits: value("prepaid_commit_seconds_count"),
            commit_seconds: value("prepaid_commit_seconds_sum"),
            requests: value("prepaid_commit_batch_size_sum"),
            phase_seconds: PHASES
                .map(|phase| labelled_metric(text, PHASE_METRIC_SUM, "phase", phase)),
        }
    }

    /// The counters of two servers added up, taken at the later sample's time.
    fn plus(&self, other: &Self) -> Self {
        let mut phase_seconds = self.phase_seconds;
        for (mine, theirs) in phase_seconds.iter_mut().zip(other.phase_seconds) {
            *mine = match (*mine, theirs) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
            };
        }
        Self {
            at: self.at.max(other.at),
            commits: self.commits + other.commits,
            commit_seconds: self.commit_seconds + other.commit_seconds,
            requests: self.requests + other.requests,
            phase_seconds,
        }
    }
}

impl WriterUse {
    pub fn between(start: &WriterSample, end: &WriterSample) -> Self {
        let seconds = end.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let commits = (end.commits - start.commits).max(0.0);
        let requests = (end.requests - start.requests).max(0.0);
        let per_commit = |v: f64| if commits > 0.0 { v / commits } else { 0.0 };
        let mut phase_us_per_request = [None; PHASES.len()];
        for (i, out) in phase_us_per_request.iter_mut().enumerate() {
            // A labelled series appears with its first observation, so a phase missing
            // at the start but present at the end had spent nothing before the window.
            *out = match (start.phase_seconds[i], end.phase_seconds[i]) {
                (a, Some(b)) if requests > 0.0 => {
                    Some((b - a.unwrap_or(0.0)).max(0.0) / requests * 1e6)
                }
                _ => None,
            };
        }
        Self {
            commits_per_second: commits / seconds,
            batch_size_mean: per_commit(requests),
            commit_ms_mean: per_commit(end.commit_seconds - start.commit_seconds) * 1000.0,
            busy_share: (end.commit_seconds - start.commit_seconds) / seconds,
            phase_us_per_request,
        }
    }

    /// The phases' writer time per request added up, in microseconds; `None` when the
    /// server exports none of them.
    pub fn phase_total_us(&self) -> Option<f64> {
        self.phase_us_per_request
            .iter()
            .flatten()
            .copied()
            .reduce(|a, b| a + b)
    }
}

/// The value of an unlabelled metric in Prometheus text format.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The value of the series of metric `name` whose label `label` is `value`, in
/// Prometheus text format (other labels of the series are allowed).
fn labelled_metric(text: &str, name: &str, label: &str, value: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, sample) = rest.split_once('}')?;
        let wanted = labels.split(',').any(|pair| {
            pair.trim()
                .split_once('=')
                .is_some_and(|(k, v)| k.trim() == label && v.trim() == format!("\"{value}\""))
        });
        if !wanted {
            return None;
        }
        sample.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const COMMITS: &str = "prepaid_commit_seconds_count 3\nprepaid_commit_seconds_sum 1.5\n\
                           prepaid_commit_batch_size_sum 30\n";

    #[test]
    fn metric_reads_exact_names_only() {
        let text = "# TYPE x summary\nprepaid_commit_seconds_sum 1.5\nprepaid_commit_seconds_sum_other 9\n\
                    prepaid_commit_seconds_count 3\n";
        assert_eq!(metric(text, "prepaid_commit_seconds_sum"), Some(1.5));
        assert_eq!(metric(text, "prepaid_commit_seconds_count"), Some(3.0));
        assert_eq!(metric(text, "prepaid_commit_batch_size_sum"), None);
    }

    #[test]
    fn labelled_metric_picks_the_series_by_label() {
        let text = "prepaid_writer_phase_seconds_bucket{phase=\"execute\",le=\"0.001\"} 7\n\
                    prepaid_writer_phase_seconds_sum{phase=\"execute\"} 0.123\n\
                    prepaid_writer_phase_seconds_sum{phase=\"executed\"} 9\n\
                    prepaid_writer_phase_seconds_sum{instance=\"a\", phase=\"commit\"} 2e-3\n\
                    prepaid_writer_phase_seconds_sum_total{phase=\"load\"} 5\n";
        let read = |phase| labelled_metric(text, PHASE_METRIC_SUM, "phase", phase);
        assert_eq!(read("execute"), Some(0.123));
        assert_eq!(read("commit"), Some(0.002));
        assert_eq!(read("load"), None);
        assert_eq!(read("sync"), None);
        assert_eq!(
            labelled_metric(text, "prepaid_writer_phase_seconds_bucket", "le", "0.001"),
            Some(7.0)
        );
    }

    #[test]
    fn phases_are_per_request_and_missing_ones_stay_missing() {
        let t0 = Instant::now();
        let start = WriterSample::parse(
            &format!("{COMMITS}prepaid_writer_phase_seconds_sum{{phase=\"execute\"}} 0.5\n"),
            t0,
        );
        let end = WriterSample::parse(
            "prepaid_commit_seconds_count 5\nprepaid_commit_seconds_sum 2.5\n\
             prepaid_commit_batch_size_sum 50\n\
             prepaid_writer_phase_seconds_sum{phase=\"execute\"} 0.52\n\
             prepaid_writer_phase_seconds_sum{phase=\"commit\"} 0.01\n",
            t0 + Duration::from_secs(1),
        );
        let w = WriterUse::between(&start, &end);
        let [load, execute, write, commit, sync] = w.phase_us_per_request;
        assert_eq!((load, write, sync), (None, None, None));
        // 0.02 s over 20 requests, and a phase first seen at the end counts from zero.
        assert!((execute.expect("execute") - 1000.0).abs() < 1e-6);
        assert!((commit.expect("commit") - 500.0).abs() < 1e-6);
        assert!((w.phase_total_us().expect("total") - 1500.0).abs() < 1e-6);
        assert!((w.batch_size_mean - 10.0).abs() < 1e-9);
    }

    #[test]
    fn a_server_without_phases_has_no_split() {
        let t0 = Instant::now();
        let start = WriterSample::parse(COMMITS, t0);
        let end = WriterSample::parse(
            "prepaid_commit_seconds_count 4\nprepaid_commit_seconds_sum 2\n\
             prepaid_commit_batch_size_sum 40\n",
            t0 + Duration::from_secs(1),
        );
        let w = WriterUse::between(&start, &end);
        assert!((w.commits_per_second - 1.0).abs() < 1e-9);
        assert_eq!(w.phase_us_per_request, [None; PHASES.len()]);
        assert_eq!(w.phase_total_us(), None);
    }

    #[test]
    fn samples_of_several_servers_add_up() {
        let t0 = Instant::now();
        let a = WriterSample::parse(COMMITS, t0);
        let b = WriterSample::parse(
            &format!("{COMMITS}prepaid_writer_phase_seconds_sum{{phase=\"write\"}} 0.25\n"),
            t0,
        );
        let sum = a.plus(&b);
        assert_eq!(sum.commits, 6.0);
        assert_eq!(sum.requests, 60.0);
        assert_eq!(sum.phase_seconds[2], Some(0.25));
        assert_eq!(sum.phase_seconds[0], None);
        // An instance that has not committed yet exports no commit series at all.
        let fresh = WriterSample::parse("# no series yet\n", t0);
        assert_eq!(a.plus(&fresh).commits, 3.0);
    }
}
