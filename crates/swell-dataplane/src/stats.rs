//! Request statistics as queue-proxy computes them for the autoscaler (§5.3):
//! time-weighted average concurrency and the number of requests that arrived, per
//! reporting period.

use tokio::time::{Duration, Instant};

/// One reporting period's numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    /// Σ(concurrency·dt) / Σdt over the period.
    pub average_concurrency: f64,
    /// Requests that arrived in the period.
    pub request_count: f64,
}

/// Accumulates concurrency × time between events.
#[derive(Debug)]
pub struct RequestStats {
    concurrency: u64,
    last_change: Instant,
    period_start: Instant,
    weighted: f64,
    arrived: u64,
}

impl RequestStats {
    /// Starts a period at `now`.
    pub fn new(now: Instant) -> Self {
        RequestStats {
            concurrency: 0,
            last_change: now,
            period_start: now,
            weighted: 0.0,
            arrived: 0,
        }
    }

    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last_change);
        self.weighted += self.concurrency as f64 * dt.as_secs_f64();
        self.last_change = now.max(self.last_change);
    }

    /// A request arrived.
    pub fn request_in(&mut self, now: Instant) {
        self.advance(now);
        self.concurrency += 1;
        self.arrived += 1;
    }

    /// A request finished.
    pub fn request_out(&mut self, now: Instant) {
        self.advance(now);
        self.concurrency = self.concurrency.saturating_sub(1);
    }

    /// Requests in flight now.
    pub fn concurrency(&self) -> u64 {
        self.concurrency
    }

    /// Closes the period at `now` and starts the next one (in-flight requests carry
    /// over).
    pub fn report(&mut self, now: Instant) -> Stat {
        self.advance(now);
        let period = now.saturating_duration_since(self.period_start);
        let stat = Stat {
            average_concurrency: if period > Duration::ZERO {
                self.weighted / period.as_secs_f64()
            } else {
                self.concurrency as f64
            },
            request_count: self.arrived as f64,
        };
        self.period_start = now;
        self.weighted = 0.0;
        self.arrived = 0;
        stat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_half_second_requests_in_one_second_average_one() {
        let t0 = Instant::now();
        let mut s = RequestStats::new(t0);
        s.request_in(t0);
        s.request_out(t0 + Duration::from_millis(500));
        s.request_in(t0 + Duration::from_millis(500));
        s.request_out(t0 + Duration::from_millis(1000));
        let st = s.report(t0 + Duration::from_secs(1));
        assert!((st.average_concurrency - 1.0).abs() < 1e-9);
        assert_eq!(st.request_count, 2.0);
    }

    #[test]
    fn in_flight_requests_carry_over_and_counts_reset() {
        let t0 = Instant::now();
        let mut s = RequestStats::new(t0);
        s.request_in(t0);
        s.request_in(t0);
        let first = s.report(t0 + Duration::from_secs(1));
        assert!((first.average_concurrency - 2.0).abs() < 1e-9);
        let second = s.report(t0 + Duration::from_secs(2));
        assert!((second.average_concurrency - 2.0).abs() < 1e-9);
        assert_eq!(second.request_count, 0.0);
        assert_eq!(s.concurrency(), 2);
    }

    #[test]
    fn a_quarter_second_request_averages_a_quarter() {
        let t0 = Instant::now();
        let mut s = RequestStats::new(t0);
        s.request_in(t0 + Duration::from_millis(250));
        s.request_out(t0 + Duration::from_millis(500));
        let st = s.report(t0 + Duration::from_secs(1));
        assert!((st.average_concurrency - 0.25).abs() < 1e-9);
    }
}
