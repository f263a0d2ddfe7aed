//! Metric windows in 1-second buckets, as Knative's `aggregation` package keeps them:
//! the linear bucket average (the default) and the weighted-exponential one (§3.2).
//! Times are whole seconds on any monotonic clock.

use swell_api::annotations::MetricAggregationAlgorithm;

/// Below this the weighted average would be a plain average over huge windows.
const MIN_SMOOTHING: f64 = 0.2;
/// The weights of a full window add up to at least this much.
const WEIGHT_PRECISION: f64 = 0.9999;

/// A ring of per-second buckets covering `window` seconds.
#[derive(Clone, Debug)]
pub struct Window {
    buckets: Vec<f64>,
    algorithm: MetricAggregationAlgorithm,
    smoothing: f64,
    /// Seconds since the first write (reset after a full window without writes).
    first_write: u64,
    /// The newest second written, `None` before the first write.
    last_write: Option<u64>,
    /// The sum of every bucket in the ring.
    total: f64,
}

/// Rounds down to 6 decimals, as Knative does.
fn round6(f: f64) -> f64 {
    (f * 1e6).floor() / 1e6
}

impl Window {
    /// A window of `seconds` (at least 1) buckets.
    pub fn new(seconds: u64, algorithm: MetricAggregationAlgorithm) -> Self {
        let n = seconds.max(1);
        Window {
            buckets: vec![0.0; n as usize],
            algorithm,
            smoothing: (1.0 - (1.0 - WEIGHT_PRECISION).powf(1.0 / n as f64)).max(MIN_SMOOTHING),
            first_write: 0,
            last_write: None,
            total: 0.0,
        }
    }

    fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    fn slot(&self, t: u64) -> usize {
        (t % self.len()) as usize
    }

    /// The weighted-exponential smoothing coefficient for this window's length.
    pub fn smoothing(&self) -> f64 {
        self.smoothing
    }

    /// Adds `value` to second `t`'s bucket. Seconds skipped since the last write count
    /// as zeros; a full window without writes starts the window afresh; a write older
    /// than the window is ignored.
    pub fn record(&mut self, t: u64, value: f64) {
        let window = self.len();
        match self.last_write {
            Some(last) if last == t => {}
            Some(last) if t + window <= last => return,
            Some(last) if t < last => self.first_write = self.first_write.min(t),
            Some(last) if t - last < window => {
                for s in last + 1..=t {
                    let i = self.slot(s);
                    self.total -= self.buckets[i];
                    self.buckets[i] = 0.0;
                }
                self.last_write = Some(t);
            }
            _ => {
                self.buckets.iter_mut().for_each(|b| *b = 0.0);
                self.total = 0.0;
                self.first_write = t;
                self.last_write = Some(t);
            }
        }
        let i = self.slot(t);
        self.buckets[i] += value;
        self.total += value;
    }

    /// No write in the last window.
    pub fn is_empty(&self, now: u64) -> bool {
        self.last_write
            .is_none_or(|last| now.saturating_sub(last) > self.len())
    }

    /// The window's average at second `now`.
    pub fn average(&self, now: u64) -> f64 {
        match self.algorithm {
            MetricAggregationAlgorithm::Linear => self.linear(now),
            MetricAggregationAlgorithm::WeightedExponential => self.weighted(now),
        }
    }

    /// The average over the seconds the window has seen: a young window is not diluted
    /// by zeros from before its first write, and seconds after the last write drop out.
    fn linear(&self, now: u64) -> f64 {
        let Some(last) = self.last_write else {
            return 0.0;
        };
        let seen = last - self.first_write + 1;
        if now <= last {
            return round6(self.total / seen.min(self.len()) as f64);
        }
        let since = now - last;
        if since >= self.len() {
            return 0.0;
        }
        let stale: f64 = (last + 1..=now).map(|s| self.buckets[self.slot(s)]).sum();
        round6((self.total - stale) / seen.min(self.len() - since) as f64)
    }

    /// Σ value·α·(1−α)^k from the newest second back; seconds after the last write
    /// count as zeros.
    fn weighted(&self, now: u64) -> f64 {
        let Some(last) = self.last_write else {
            return 0.0;
        };
        if self.is_empty(now) {
            return 0.0;
        }
        let a = self.smoothing;
        let mut weight = a;
        let mut n = self.len();
        if now > last {
            let zeros = now - last;
            weight *= (1.0 - a).powi(zeros as i32);
            n -= zeros.min(n);
        }
        let mut sum = 0.0;
        for k in 0..n {
            sum += self.buckets[self.slot(last + self.len() - k)] * weight;
            weight *= 1.0 - a;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(seconds: u64) -> Window {
        Window::new(seconds, MetricAggregationAlgorithm::Linear)
    }

    #[test]
    fn a_young_window_averages_only_what_it_has_seen() {
        let mut w = linear(60);
        w.record(100, 10.0);
        w.record(101, 20.0);
        assert_eq!(w.average(101), 15.0);
        // Two values in one second add up.
        w.record(101, 6.0);
        assert_eq!(w.average(101), 18.0);
    }

    #[test]
    fn gaps_shorter_than_the_window_are_zeros() {
        let mut w = linear(10);
        w.record(0, 10.0);
        w.record(4, 10.0);
        // Seconds 0..=4 seen, 1..=3 were zero.
        assert_eq!(w.average(4), 4.0);
    }

    #[test]
    fn seconds_after_the_last_write_drop_out() {
        let mut w = linear(5);
        for t in 0..5 {
            w.record(t, (t + 1) as f64); // 1 2 3 4 5
        }
        assert_eq!(w.average(4), 3.0);
        // At 6 the window is 2..=6: 3+4+5 over the 3 seconds still covered.
        assert_eq!(w.average(6), 4.0);
        // Once a whole window passed without writes it is empty and averages 0.
        assert_eq!(w.average(9), 0.0);
        assert!(!w.is_empty(9));
        assert!(w.is_empty(10));
    }

    #[test]
    fn a_full_window_without_writes_starts_afresh() {
        let mut w = linear(5);
        w.record(0, 100.0);
        w.record(5, 2.0);
        assert_eq!(w.average(5), 2.0);
        w.record(6, 4.0);
        assert_eq!(w.average(6), 3.0);
    }

    #[test]
    fn the_ring_wraps_and_forgets_old_seconds() {
        let mut w = linear(3);
        for t in 0..6 {
            w.record(t, t as f64); // keeps 3 4 5
        }
        assert_eq!(w.average(5), 4.0);
        // Writes older than the window are ignored; late ones inside it count.
        w.record(2, 1000.0);
        assert_eq!(w.average(5), 4.0);
        w.record(4, 3.0);
        assert_eq!(w.average(5), 5.0);
    }

    #[test]
    fn averages_round_down_to_six_decimals() {
        let mut w = linear(3);
        w.record(0, 1.0);
        w.record(1, 0.0);
        w.record(2, 0.0);
        assert_eq!(w.average(2), 0.333333);
    }

    #[test]
    fn weighted_exponential_coefficients_match_knative() {
        let c = |n| Window::new(n, MetricAggregationAlgorithm::WeightedExponential).smoothing();
        assert!((c(6) - 0.784557).abs() < 1e-6, "{}", c(6));
        assert!((c(40) - 0.205672).abs() < 1e-6, "{}", c(40));
        assert_eq!(c(60), 0.2);
        assert_eq!(c(600), 0.2);
    }

    #[test]
    fn weighted_exponential_favours_recent_seconds() {
        let mut w = Window::new(5, MetricAggregationAlgorithm::WeightedExponential);
        let a = w.smoothing();
        w.record(10, 2.0);
        assert!((w.average(10) - 2.0 * a).abs() < 1e-12);
        assert!((w.average(11) - 2.0 * a * (1.0 - a)).abs() < 1e-12);
        w.record(11, 4.0);
        let want = 4.0 * a + 2.0 * a * (1.0 - a);
        assert!((w.average(11) - want).abs() < 1e-12);
        assert_eq!(w.average(17), 0.0);
    }
}
