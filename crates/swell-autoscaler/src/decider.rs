//! The decider: from the stable and panic window averages and the ready replica count,
//! the replicas a Revision wants and its excess burst capacity — Knative's
//! `autoscaler.Scale` (§3.4), run every 2 seconds. Pure: time comes in as seconds.

use std::collections::VecDeque;

/// What the decider needs of a Revision's spec (`DeciderSpec`).
#[derive(Clone, Debug, PartialEq)]
pub struct DeciderSpec {
    /// The metric value one replica should carry (`target × utilization`, ≥ 0.01).
    pub target_value: f64,
    /// The metric value one replica can carry at most (the target before utilization).
    pub total_value: f64,
    /// `target-burst-capacity`: 0, −1 (unlimited) or a positive value.
    pub target_burst_capacity: f64,
    /// Panic when desired panic replicas / ready ≥ this factor (2.0 = 200 %).
    pub panic_threshold: f64,
    /// `max-scale-up-rate`.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`.
    pub max_scale_down_rate: f64,
    /// The stable window, in seconds.
    pub stable_window: u64,
    /// `scale-down-delay`, in seconds.
    pub scale_down_delay: u64,
    /// The Revision is routed (not `reserve`): scale-down is rate-limited and delayed.
    pub reachable: bool,
    /// `activation-scale`: at least this many replicas once there is any demand.
    pub activation_scale: i32,
}

/// One decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Replicas wanted.
    pub desired: i32,
    /// Capacity beyond the burst the Revision must absorb; negative keeps the
    /// activator's queue in the path; −1 with unlimited target burst capacity.
    pub excess_burst_capacity: f64,
    /// Panic mode is on.
    pub panicking: bool,
}

/// The decider's memory between ticks.
#[derive(Clone, Debug, Default)]
pub struct Decider {
    /// When panic mode last started or was extended (seconds), if panicking.
    panic_time: Option<f64>,
    /// The most replicas wanted since panic mode started.
    max_panic_pods: i32,
    /// Scale-down delay: (2-second slot, desired) in slot order, maxima only.
    delayed: VecDeque<(u64, i32)>,
}

impl Decider {
    /// A decider for a Revision that already has `ready` replicas: with more than one it
    /// starts in panic mode holding them (no scale-down right after a restart).
    pub fn new(ready: u32, now: f64) -> Self {
        let mut d = Decider::default();
        if ready > 1 {
            d.panic_time = Some(now);
            d.max_panic_pods = ready as i32;
        }
        d
    }

    /// Panic mode is on.
    pub fn panicking(&self) -> bool {
        self.panic_time.is_some()
    }

    /// Decides at time `now` (seconds) from `ready` replicas and the window averages.
    pub fn scale(
        &mut self,
        spec: &DeciderSpec,
        now: f64,
        ready: u32,
        stable: f64,
        panic: f64,
    ) -> Decision {
        let ready_f = f64::from(ready.max(1));
        let max_up = (spec.max_scale_up_rate * ready_f).ceil();
        let max_down = if spec.reachable {
            (ready_f / spec.max_scale_down_rate).floor()
        } else {
            0.0
        };
        let dspc = (stable / spec.target_value).ceil();
        let dppc = (panic / spec.target_value).ceil();
        let clamp = |d: f64| d.max(max_down).min(max_up);
        let mut desired_stable = clamp(dspc) as i32;
        let mut desired_panic = clamp(dppc) as i32;
        if spec.activation_scale > 1 {
            if dspc > 0.0 {
                desired_stable = desired_stable.max(spec.activation_scale);
            }
            if dppc > 0.0 {
                desired_panic = desired_panic.max(spec.activation_scale);
            }
        }
        let over_threshold = dppc / ready_f >= spec.panic_threshold;
        match self.panic_time {
            _ if over_threshold => self.panic_time = Some(now),
            Some(t) if t + (spec.stable_window as f64) < now => {
                self.panic_time = None;
                self.max_panic_pods = 0;
            }
            _ => {}
        }
        let mut desired = if self.panic_time.is_some() {
            self.max_panic_pods = self.max_panic_pods.max(desired_stable.max(desired_panic));
            self.max_panic_pods
        } else {
            desired_stable
        };
        if spec.reachable && spec.scale_down_delay > 0 {
            desired = self.delay(spec.scale_down_delay, now, desired);
        }
        let excess_burst_capacity = if spec.target_burst_capacity == 0.0 {
            0.0
        } else if spec.target_burst_capacity < 0.0 {
            -1.0
        } else {
            (f64::from(ready) * spec.total_value - spec.target_burst_capacity - panic).floor()
        };
        Decision {
            desired,
            excess_burst_capacity,
            panicking: self.panic_time.is_some(),
        }
    }

    /// The most wanted over the last `delay` seconds, in 2-second slots.
    fn delay(&mut self, delay: u64, now: f64, desired: i32) -> i32 {
        let slot = (now.max(0.0) / 2.0).floor() as u64;
        let slots = delay.div_ceil(2);
        while self
            .delayed
            .front()
            .is_some_and(|(s, _)| slot.saturating_sub(*s) >= slots)
        {
            self.delayed.pop_front();
        }
        // Keep a decreasing queue of maxima: smaller values before a larger one never
        // win again.
        while self.delayed.back().is_some_and(|(_, v)| *v <= desired) {
            self.delayed.pop_back();
        }
        self.delayed.push_back((slot, desired));
        self.delayed.front().map_or(desired, |(_, v)| *v)
    }
}

/// The initial excess burst capacity of a Revision, before the first decision.
pub fn initial_excess_burst_capacity(spec: &DeciderSpec, initial_scale: u32) -> f64 {
    if spec.target_burst_capacity <= 0.0 {
        spec.target_burst_capacity
    } else {
        f64::from(initial_scale) * spec.total_value - spec.target_burst_capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knative's defaults for containerConcurrency 10: target 7 of 10, TBC 211.
    fn spec() -> DeciderSpec {
        DeciderSpec {
            target_value: 7.0,
            total_value: 10.0,
            target_burst_capacity: 211.0,
            panic_threshold: 2.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            stable_window: 60,
            scale_down_delay: 0,
            reachable: true,
            activation_scale: 1,
        }
    }

    fn decide(d: &mut Decider, s: &DeciderSpec, now: f64, ready: u32, st: f64, pa: f64) -> i32 {
        d.scale(s, now, ready, st, pa).desired
    }

    #[test]
    fn desired_is_stable_over_target_rounded_up() {
        let mut d = Decider::default();
        assert_eq!(decide(&mut d, &spec(), 0.0, 1, 0.0, 0.0), 0);
        assert_eq!(decide(&mut d, &spec(), 2.0, 1, 7.0, 7.0), 1);
        assert_eq!(decide(&mut d, &spec(), 4.0, 1, 7.1, 7.1), 2);
    }

    #[test]
    fn scale_up_rate_limits_growth() {
        let s = DeciderSpec {
            max_scale_up_rate: 2.5,
            ..spec()
        };
        let mut d = Decider::default();
        // 2 ready → at most ceil(2.5 × 2) = 5, though 100 are wanted (also in panic).
        let r = d.scale(&s, 0.0, 2, 700.0, 700.0);
        assert_eq!(r.desired, 5);
        assert!(r.panicking);
    }

    #[test]
    fn scale_down_rate_limits_shrinking_unless_unreachable() {
        let mut d = Decider::default();
        // 10 ready, nothing wanted: at least floor(10 / 2) = 5 remain.
        assert_eq!(decide(&mut d, &spec(), 0.0, 10, 0.0, 0.0), 5);
        let unreachable = DeciderSpec {
            reachable: false,
            ..spec()
        };
        assert_eq!(decide(&mut d, &unreachable, 2.0, 10, 0.0, 0.0), 0);
    }

    #[test]
    fn panic_starts_extends_and_ends_after_a_full_stable_window() {
        let s = spec();
        let mut d = Decider::default();
        // 1 ready; panic average 14 → 2 replicas = 2 × ready: panic.
        let r = d.scale(&s, 0.0, 1, 7.0, 14.0);
        assert!(r.panicking);
        assert_eq!(r.desired, 2);
        // Still over the threshold at 30 s: extended; wants 4.
        let r = d.scale(&s, 30.0, 2, 7.0, 28.0);
        assert!(r.panicking);
        assert_eq!(r.desired, 4);
        // Below the threshold: no scale-down while panicking, for 60 s after 30 s.
        let r = d.scale(&s, 60.0, 4, 7.0, 7.0);
        assert!(r.panicking);
        assert_eq!(r.desired, 4);
        let r = d.scale(&s, 90.0, 4, 7.0, 7.0);
        assert!(
            r.panicking,
            "exactly a stable window after the last extension"
        );
        assert_eq!(r.desired, 4);
        // Later than 30 + 60: panic ends and stable rules (scale-down limited to 4/2).
        let r = d.scale(&s, 92.0, 4, 7.0, 7.0);
        assert!(!r.panicking);
        assert_eq!(r.desired, 2);
    }

    #[test]
    fn panic_keeps_the_highest_count_it_has_wanted() {
        let s = spec();
        let mut d = Decider::default();
        assert_eq!(decide(&mut d, &s, 0.0, 1, 0.0, 70.0), 10);
        // Demand drops but stays over the threshold relative to 1 ready: still 10.
        assert_eq!(decide(&mut d, &s, 2.0, 1, 0.0, 14.0), 10);
    }

    #[test]
    fn a_restarted_decider_with_replicas_starts_panicking() {
        let s = spec();
        let mut d = Decider::new(3, 100.0);
        assert!(d.panicking());
        // No load, but the 3 replicas stay until a stable window has passed.
        assert_eq!(decide(&mut d, &s, 102.0, 3, 0.0, 0.0), 3);
        assert_eq!(decide(&mut d, &s, 161.0, 3, 0.0, 0.0), 1);
        assert!(!Decider::new(1, 0.0).panicking());
    }

    #[test]
    fn activation_scale_applies_only_with_demand() {
        let s = DeciderSpec {
            activation_scale: 3,
            ..spec()
        };
        let mut d = Decider::default();
        assert_eq!(decide(&mut d, &s, 0.0, 1, 0.0, 0.0), 0);
        assert_eq!(decide(&mut d, &s, 2.0, 0, 0.5, 0.5), 3);
    }

    #[test]
    fn scale_down_delay_holds_the_maximum_over_several_ticks() {
        let s = DeciderSpec {
            scale_down_delay: 6,
            ..spec()
        };
        let mut d = Decider::default();
        // Slots of 2 s; a value stays for ceil(6 / 2) = 3 slots.
        assert_eq!(decide(&mut d, &s, 0.0, 1, 35.0, 0.0), 5);
        assert_eq!(decide(&mut d, &s, 2.0, 5, 7.0, 7.0), 5);
        assert_eq!(decide(&mut d, &s, 4.0, 5, 7.0, 7.0), 5);
        // At slot 3 the 5 from slot 0 is evicted; the 3 desired now is floor(5/2)=2…
        // but the window still holds the 2s computed at slots 1 and 2.
        assert_eq!(decide(&mut d, &s, 6.0, 5, 7.0, 7.0), 2);
        // Unreachable revisions are not delayed.
        let unreachable = DeciderSpec {
            reachable: false,
            ..s
        };
        assert_eq!(decide(&mut d, &unreachable, 8.0, 5, 0.0, 0.0), 0);
    }

    #[test]
    fn excess_burst_capacity_for_each_target_burst_capacity() {
        let mut d = Decider::default();
        // TBC 211: 3 ready × 10 − 211 − 5 = −186.
        let r = d.scale(&spec(), 0.0, 3, 5.0, 5.0);
        assert_eq!(r.excess_burst_capacity, -186.0);
        // Uses the raw ready count: 0 ready → 0 − 211 − 0.
        let r = d.scale(&spec(), 2.0, 0, 0.0, 0.0);
        assert_eq!(r.excess_burst_capacity, -211.0);
        let tbc = |t| DeciderSpec {
            target_burst_capacity: t,
            ..spec()
        };
        assert_eq!(
            d.scale(&tbc(0.0), 4.0, 3, 5.0, 5.0).excess_burst_capacity,
            0.0
        );
        assert_eq!(
            d.scale(&tbc(-1.0), 6.0, 3, 5.0, 5.0).excess_burst_capacity,
            -1.0
        );
        // Positive and roomy: 30 × 10 − 20 − 5.5, floored.
        let r = d.scale(&tbc(20.0), 8.0, 30, 5.5, 5.5);
        assert_eq!(r.excess_burst_capacity, 274.0);
        assert_eq!(initial_excess_burst_capacity(&spec(), 1), -201.0);
        assert_eq!(initial_excess_burst_capacity(&tbc(-1.0), 1), -1.0);
        assert_eq!(initial_excess_burst_capacity(&tbc(0.0), 1), 0.0);
    }
}
