//! The background sweeper: expires holds and wallets whose time has come.
//!
//! Every [`SWEEP_INTERVAL_MS`] it asks the store to sweep; when a sweep hit the
//! per-call limit it sweeps again at once, so a backlog drains without waiting. It also
//! runs the metrics recorder's upkeep.

use prepaid_edge::periodic::Ticker;
use prepaid_store::{Clock, SWEEP_BATCH_MAX, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the sweeper runs.
pub const SWEEP_INTERVAL_MS: u64 = 1000;
/// The most back-to-back sweeps in one round, so a huge backlog never starves the
/// shutdown check.
pub const SWEEPS_PER_ROUND_MAX: usize = 100;

pub async fn run(store: Arc<dyn Store>, clock: Arc<dyn Clock>, stop: watch::Receiver<bool>) {
    let mut ticker = Ticker::new(Duration::from_millis(SWEEP_INTERVAL_MS), stop);
    while ticker.tick().await {
        sweep(&*store, &*clock).await;
    }
}

/// One round: sweeps until a sweep comes back below the per-call limit, then runs the
/// metrics recorder's upkeep.
async fn sweep(store: &dyn Store, clock: &dyn Clock) {
    for _ in 0..SWEEPS_PER_ROUND_MAX {
        match store.sweep(clock.now()).await {
            Ok(report) => {
                if report.holds_expired > 0 || report.wallets_expired > 0 {
                    tracing::info!(
                        holds_expired = report.holds_expired,
                        wallets_expired = report.wallets_expired,
                        "swept"
                    );
                    metrics::counter!("prepaid_holds_expired_total")
                        .increment(report.holds_expired as u64);
                    metrics::counter!("prepaid_wallets_expired_total")
                        .increment(report.wallets_expired as u64);
                }
                if report.holds_expired < SWEEP_BATCH_MAX
                    && report.wallets_expired < SWEEP_BATCH_MAX
                {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "sweep failed; retrying next round");
                break;
            }
        }
    }
    if let Some(handle) = crate::ops::metrics_handle() {
        handle.run_upkeep();
    }
}
