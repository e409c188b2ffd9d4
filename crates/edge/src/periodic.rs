//! The clock of the background workers: a tick every interval until the stop signal
//! turns true, so each worker's loop reads
//! `while ticker.tick().await { ... }`.

use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

/// Ticks at a fixed interval (a late tick waits rather than bursts) and watches the
/// stop signal.
pub struct Ticker {
    tick: Interval,
    stop: watch::Receiver<bool>,
}

impl Ticker {
    pub fn new(interval: Duration, stop: watch::Receiver<bool>) -> Self {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ticker { tick, stop }
    }

    /// Waits for the next tick: `false` when the stop signal turned true (or its
    /// sender went away) first.
    pub async fn tick(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => {}
            _ = self.stop.changed() => return false,
        }
        !*self.stop.borrow()
    }

    /// Runs `work` unless the stop signal changes first, which drops `work` where it
    /// stands (so it must be safe to cut): `false` when it was dropped.
    pub async fn unless_stopped(&mut self, work: impl Future<Output = ()>) -> bool {
        tokio::select! {
            () = work => true,
            _ = self.stop.changed() => false,
        }
    }
}
