//! One Revision's whole KPA: its metric windows, decider and PodAutoscaler, fed one
//! sample per second and ticked every two seconds (or at once when a request arrives
//! at zero). Pure: time comes in as seconds.

use crate::decider::{Decider, Decision, initial_excess_burst_capacity};
use crate::scaler::{PodAutoscaler, ScalerSpec};
use crate::spec::{Metric, Spec};
use crate::window::Window;

/// What one tick decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    /// Replicas wanted after bounds and the scale-to-zero gate (`None`: unknown).
    pub want: Option<i32>,
    /// The decider's output, when it had data.
    pub decision: Option<Decision>,
}

/// One Revision's autoscaling state.
#[derive(Clone, Debug)]
pub struct Kpa {
    spec: Spec,
    scaler: ScalerSpec,
    stable: Window,
    panic: Window,
    decider: Option<Decider>,
    pa: PodAutoscaler,
    /// The decider's last valid desired scale (`None` before it had data).
    desired: Option<i32>,
    excess_burst_capacity: f64,
}

impl Kpa {
    /// A new Revision's autoscaler at `now`: activating, with its initial scale.
    pub fn new(spec: Spec, scaler: ScalerSpec, now: f64) -> Self {
        let initial = u32::try_from(scaler.initial_scale).unwrap_or(0);
        Kpa {
            stable: Window::new(spec.decider.stable_window, spec.algorithm),
            panic: Window::new(spec.panic_window, spec.algorithm),
            excess_burst_capacity: initial_excess_burst_capacity(&spec.decider, initial),
            pa: PodAutoscaler::new(&scaler, now),
            decider: None,
            desired: None,
            spec,
            scaler,
        }
    }

    /// Takes a changed spec; the windows start over when their shape changed.
    pub fn update(&mut self, spec: Spec, scaler: ScalerSpec) {
        if spec.decider.stable_window != self.spec.decider.stable_window
            || spec.panic_window != self.spec.panic_window
            || spec.algorithm != self.spec.algorithm
            || spec.metric != self.spec.metric
        {
            self.stable = Window::new(spec.decider.stable_window, spec.algorithm);
            self.panic = Window::new(spec.panic_window, spec.algorithm);
        }
        self.spec = spec;
        self.scaler = scaler;
    }

    /// The resolved spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The scaling limits.
    pub fn scaler_spec(&self) -> &ScalerSpec {
        &self.scaler
    }

    /// The PodAutoscaler.
    pub fn pod_autoscaler(&self) -> &PodAutoscaler {
        &self.pa
    }

    /// The last excess burst capacity (negative: the queue must stay in the path).
    pub fn excess_burst_capacity(&self) -> f64 {
        self.excess_burst_capacity
    }

    /// Records one second's revision-wide average concurrency and request count.
    pub fn record(&mut self, now: f64, concurrency: f64, requests: f64) {
        let value = match self.spec.metric {
            Metric::Concurrency => concurrency,
            Metric::Rps => requests,
        };
        let second = now.max(0.0).floor() as u64;
        self.stable.record(second, value);
        self.panic.record(second, value);
    }

    /// A request arrived while the Revision runs no replica: record the demand and
    /// decide at once (the activator's poke). Returns the tick when it changed anything.
    pub fn poke(&mut self, now: f64, concurrency: f64) -> Option<Tick> {
        if self.pa.replicas() != 0 || concurrency <= 0.0 {
            return None;
        }
        self.record(now, concurrency, concurrency);
        Some(self.tick(now, 0))
    }

    /// Re-applies the last decision at `now` with `ready` replicas (what Knative does
    /// when a PodAutoscaler changes between ticks, e.g. its replicas became ready).
    /// Returns the replicas wanted (`None`: unknown).
    pub fn reconcile(&mut self, now: f64, ready: i32) -> Option<i32> {
        self.pa.reconcile(
            &self.scaler,
            now,
            self.desired,
            self.excess_burst_capacity,
            ready,
        )
    }

    /// Decides at `now` with `ready` replicas, then reconciles the PodAutoscaler.
    pub fn tick(&mut self, now: f64, ready: i32) -> Tick {
        let second = now.max(0.0).floor() as u64;
        let ready_u = u32::try_from(ready.max(0)).unwrap_or(0);
        let decision = if self.stable.is_empty(second) {
            None
        } else {
            let stable = self.stable.average(second);
            let panic = self.panic.average(second);
            let d = self
                .decider
                .get_or_insert_with(|| Decider::new(ready_u, now))
                .scale(&self.spec.decider, now, ready_u, stable, panic);
            self.excess_burst_capacity = d.excess_burst_capacity;
            Some(d)
        };
        // Like Knative's multiscaler, a tick without data keeps the last decision.
        if let Some(d) = decision {
            self.desired = Some(d.desired);
        }
        let want = self.reconcile(now, ready);
        Tick { want, decision }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaler::Activity;
    use crate::spec::resolve;
    use std::time::Duration;
    use swell_api::annotations::{self, Autoscaling};
    use swell_api::config;

    /// A KPA with a stable window of `window` seconds.
    fn kpa(window: u64, cc: u64) -> Kpa {
        let ann = Autoscaling {
            window: Some(Duration::from_secs(window)),
            ..Autoscaling::default()
        };
        let spec = resolve(&config::Autoscaler::default(), &ann, cc, true).unwrap();
        let scaler = ScalerSpec {
            min_scale: 0,
            max_scale: 0,
            initial_scale: 1,
            reachable: true,
            enable_scale_to_zero: true,
            grace_period: 1.0,
            retention_period: 0.0,
            stable_window: spec.decider.stable_window as f64,
            progress_deadline: 600.0,
        };
        Kpa::new(spec, scaler, 0.0)
    }

    #[test]
    fn idle_to_zero_and_back_on_a_poke() {
        let mut k = kpa(6, 0);
        // One ready replica, no requests: zeros recorded every second.
        let mut t = 0.0;
        let mut replicas = vec![];
        while t <= 12.0 {
            k.record(t, 0.0, 0.0);
            if (t as u64).is_multiple_of(2) {
                k.tick(
                    t,
                    if k.pod_autoscaler().replicas() > 0 {
                        1
                    } else {
                        0
                    },
                );
                replicas.push((t, k.pod_autoscaler().replicas()));
            }
            t += 1.0;
        }
        // Active at 0 s, inactive once active for the 6 s window, zero applied on the
        // next tick (the activator was in the path: TBC 211 > one replica's 100).
        assert_eq!(
            replicas,
            vec![
                (0.0, 1),
                (2.0, 1),
                (4.0, 1),
                (6.0, 1),
                (8.0, 0),
                (10.0, 0),
                (12.0, 0)
            ]
        );
        assert_eq!(
            k.pod_autoscaler().activity(),
            Activity::Inactive { timed_out: false }
        );
        // A request at zero: the poke wants one replica at once.
        let tick = k.poke(13.2, 1.0).expect("poke decides");
        assert_eq!(tick.want, Some(1));
        assert_eq!(k.pod_autoscaler().replicas(), 1);
        // Already scaling: further pokes change nothing.
        assert_eq!(k.poke(13.3, 2.0), None);
    }

    #[test]
    fn rps_scales_on_request_counts() {
        let ann = Autoscaling {
            metric: Some(annotations::Metric::Rps),
            ..Autoscaling::default()
        };
        let spec = resolve(&config::Autoscaler::default(), &ann, 0, true).unwrap();
        let mut k = Kpa::new(spec, kpa(60, 0).scaler_spec().clone(), 0.0);
        k.tick(0.0, 1);
        for s in 0..=2 {
            // Concurrency 1, but 300 requests a second against a target of 140.
            k.record(f64::from(s), 1.0, 300.0);
        }
        assert_eq!(k.tick(2.0, 1).want, Some(3));
    }

    #[test]
    fn load_scales_by_target() {
        // containerConcurrency 10 → target 7 per replica.
        let mut k = kpa(6, 10);
        k.tick(0.0, 1);
        for s in 0..=4 {
            k.record(f64::from(s), 50.0, 500.0);
        }
        let t = k.tick(4.0, 1);
        // 50 / 7 → 8 replicas (panic: 8 / 1 ≥ 2).
        assert_eq!(t.want, Some(8));
        assert!(t.decision.unwrap().panicking);
    }
}
