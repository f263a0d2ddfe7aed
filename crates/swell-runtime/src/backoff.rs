//! Kubelet's back-off for what keeps failing: image pulls (`ImagePullBackOff`) and
//! containers that keep exiting (`CrashLoopBackOff`) wait 10 s, then twice as long
//! after every further failure, at most 5 minutes; something that ran well for twice
//! that (10 minutes) starts over.

use std::time::Duration;

/// Kubelet's first back-off (`backOffPeriod`).
pub const INITIAL: Duration = Duration::from_secs(10);
/// Kubelet's longest back-off (`MaxContainerBackOff`).
pub const MAX: Duration = Duration::from_secs(300);

/// One thing's back-off, as kubelet's `flowcontrol.Backoff` keeps it per image and per
/// container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// The current window; none before the first failure.
    window: Option<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

impl Backoff {
    /// A back-off starting at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            window: None,
        }
    }

    /// Something failed (an image pull): how long to wait before trying again — the
    /// initial window after the first failure, twice the last one after each further
    /// failure, never more than the maximum.
    pub fn failed(&mut self) -> Duration {
        let next = match self.window {
            None => self.initial,
            Some(w) => (w * 2).min(self.max),
        };
        self.window = Some(next);
        next
    }

    /// A container ended after running for `ran`: how long to wait before restarting
    /// it. As kubelet: the first restart is at once, later ones wait out the current
    /// window (10 s, 20 s, 40 s, … 5 min); a container that ran for more than twice the
    /// maximum (10 minutes) counts as healthy and starts over.
    pub fn restart_after(&mut self, ran: Duration) -> Duration {
        if ran > self.max * 2 {
            self.window = None;
        }
        let wait = self.window.unwrap_or(Duration::ZERO);
        self.failed();
        wait
    }

    /// Forgets the failures.
    pub fn reset(&mut self) {
        self.window = None;
    }

    /// Whether anything failed since the last reset.
    pub fn is_backing_off(&self) -> bool {
        self.window.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn image_pulls_wait_ten_seconds_doubling_to_five_minutes() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.failed().as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        b.reset();
        assert!(!b.is_backing_off());
        assert_eq!(b.failed(), S(10));
    }

    #[test]
    fn crash_loops_restart_at_once_then_back_off() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.restart_after(S(1)).as_secs()).collect();
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn ten_minutes_of_running_well_starts_over() {
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.restart_after(S(1));
        }
        // Exactly twice the maximum is not yet enough, as kubelet's `hasExpired`.
        assert_eq!(b.restart_after(S(600)), S(160));
        assert_eq!(b.restart_after(S(601)), S(0));
        assert_eq!(b.restart_after(S(1)), S(10));
    }
}
