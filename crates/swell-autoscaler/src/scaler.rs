//! The PodAutoscaler's rules between the decider and the replicas (§3.6): min/max
//! bounds, initial scale, the scale-to-zero gate (stable window, grace period, pod
//! retention, activation timeout) and the `Active` condition. Pure: time is seconds.

/// A Revision's scaling limits, resolved from `config-autoscaler`, its annotations,
/// its reachability and the progress deadline.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalerSpec {
    /// `min-scale` (0 when the Revision is unreachable).
    pub min_scale: i32,
    /// `max-scale`; 0 = unbounded.
    pub max_scale: i32,
    /// `initial-scale`: replicas started on deploy.
    pub initial_scale: i32,
    /// The Revision is routed (not `reserve`).
    pub reachable: bool,
    /// `enable-scale-to-zero`.
    pub enable_scale_to_zero: bool,
    /// `scale-to-zero-grace-period`, seconds.
    pub grace_period: f64,
    /// `scale-to-zero-pod-retention-period`, seconds (0 when unreachable).
    pub retention_period: f64,
    /// The stable window, seconds.
    pub stable_window: f64,
    /// The progress deadline, seconds: initial scale must be reached within it.
    pub progress_deadline: f64,
}

impl ScalerSpec {
    /// How long activation may take before the Revision is let go to zero.
    fn activation_timeout(&self) -> f64 {
        self.progress_deadline + 30.0
    }
}

/// The PodAutoscaler's `Active` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// `Unknown`: replicas are being brought up (`Queued`).
    Activating,
    /// `True`: enough replicas are ready.
    Active,
    /// `False`: scaled (or scaling) to zero — `NoTraffic`, or `TimedOut` when
    /// activation never succeeded.
    Inactive {
        /// Activation timed out.
        timed_out: bool,
    },
}

/// One Revision's PodAutoscaler state.
#[derive(Clone, Debug)]
pub struct PodAutoscaler {
    activity: Activity,
    /// When `activity` last changed.
    since: f64,
    /// `ScaleTargetInitialized`: initial scale was reached once.
    initialized: bool,
    /// Since when the activator (the pool's queue) is in the path (SKS `Proxy` mode).
    proxy_since: Option<f64>,
    /// Replicas applied to the backend.
    replicas: i32,
    created: f64,
}

fn apply_bounds(min: i32, max: i32, x: i32) -> i32 {
    if x < min {
        min
    } else if max != 0 && x > max {
        max
    } else {
        x
    }
}

impl PodAutoscaler {
    /// A new Revision's PodAutoscaler: activating, with `initial-scale` replicas.
    pub fn new(spec: &ScalerSpec, now: f64) -> Self {
        PodAutoscaler {
            activity: Activity::Activating,
            since: now,
            initialized: false,
            proxy_since: None,
            replicas: spec.initial_scale,
            created: now,
        }
    }

    /// The `Active` condition.
    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// Replicas the backend should run.
    pub fn replicas(&self) -> i32 {
        self.replicas
    }

    /// Initial scale was reached once (`ScaleTargetInitialized`).
    pub fn initialized(&self) -> bool {
        self.initialized
    }

    /// Initial scale was not reached within the progress deadline.
    pub fn deadline_exceeded(&self, spec: &ScalerSpec, now: f64) -> bool {
        !self.initialized && now - self.created >= spec.progress_deadline
    }

    /// One reconcile at `now`: the decider's `desired` replicas (`None` before it has
    /// data) and excess burst capacity, and the replicas ready now. Returns the
    /// replicas wanted (`None`: unknown, nothing changes).
    pub fn reconcile(
        &mut self,
        spec: &ScalerSpec,
        now: f64,
        desired: Option<i32>,
        excess_burst_capacity: f64,
        ready: i32,
    ) -> Option<i32> {
        let want = self.scale(spec, now, desired);
        let proxy = want == Some(0)
            || excess_burst_capacity < 0.0
            || (want.is_none() && matches!(self.activity, Activity::Inactive { .. }));
        match (proxy, self.proxy_since) {
            (true, None) => self.proxy_since = Some(now),
            (false, Some(_)) => self.proxy_since = None,
            _ => {}
        }
        self.compute_active(spec, now, want, ready);
        want
    }

    /// Knative's `scaler.scale`: bounds, then the scale-to-zero gate.
    fn scale(&mut self, spec: &ScalerSpec, now: f64, desired: Option<i32>) -> Option<i32> {
        if desired.is_none() && self.activity != Activity::Activating {
            return None;
        }
        let mut min = spec.min_scale;
        if spec.initial_scale > 1 && !self.initialized && spec.reachable {
            min = min.max(spec.initial_scale);
        }
        let mut x = apply_bounds(min, spec.max_scale, desired.unwrap_or(-1));
        if x == 0 {
            let (value, apply) = self.scale_to_zero(spec, now);
            if !apply {
                return value;
            }
            x = value.unwrap_or(0);
        }
        self.replicas = x;
        Some(x)
    }

    /// Whether a desired scale of zero may be applied now: the value to report, and
    /// whether to apply it.
    fn scale_to_zero(&self, spec: &ScalerSpec, now: f64) -> (Option<i32>, bool) {
        if !spec.enable_scale_to_zero {
            return (Some(1), true);
        }
        let held = now - self.since;
        match self.activity {
            Activity::Activating if held >= spec.activation_timeout() => (Some(0), true),
            Activity::Activating => (None, false),
            // Report zero (the PodAutoscaler turns inactive) but keep the replicas.
            Activity::Active if held >= spec.stable_window => (Some(0), false),
            Activity::Active => (Some(1), true),
            Activity::Inactive { .. } => {
                let retention = spec.retention_period;
                if held >= spec.grace_period.max(retention) {
                    return (Some(0), true);
                }
                if retention > 0.0 && held < retention {
                    return (Some(0), false);
                }
                let proxied = self.proxy_since.map_or(0.0, |t| now - t);
                (Some(0), proxied >= spec.grace_period)
            }
        }
    }

    /// Knative's `computeActiveCondition`.
    fn compute_active(&mut self, spec: &ScalerSpec, now: f64, want: Option<i32>, ready: i32) {
        let min_ready = if self.initialized {
            spec.min_scale.max(1)
        } else {
            spec.initial_scale.max(spec.min_scale)
        };
        if ready >= min_ready {
            self.initialized = true;
        }
        let inactive = matches!(self.activity, Activity::Inactive { .. });
        let wanted = want.is_some_and(|w| w > 0);
        let next = if want == Some(0) || min_ready == 0 {
            Activity::Inactive {
                timed_out: self.activity == Activity::Activating && min_ready > 0,
            }
        } else if inactive && !wanted {
            // Inactive with nothing wanted stays inactive (initial scale 0, or no
            // decision yet after scaling to zero).
            return;
        } else if ready < min_ready {
            Activity::Activating
        } else {
            Activity::Active
        };
        if std::mem::discriminant(&next) != std::mem::discriminant(&self.activity) {
            self.since = now;
        }
        self.activity = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ScalerSpec {
        ScalerSpec {
            min_scale: 0,
            max_scale: 0,
            initial_scale: 1,
            reachable: true,
            enable_scale_to_zero: true,
            grace_period: 30.0,
            retention_period: 0.0,
            stable_window: 60.0,
            progress_deadline: 600.0,
        }
    }

    /// Reconciles at each (time, desired, ebc, ready) and returns (want, replicas,
    /// activity) after each.
    fn run(
        spec: &ScalerSpec,
        steps: &[(f64, Option<i32>, f64, i32)],
    ) -> Vec<(Option<i32>, i32, Activity)> {
        let mut pa = PodAutoscaler::new(spec, 0.0);
        steps
            .iter()
            .map(|&(t, d, ebc, ready)| {
                let want = pa.reconcile(spec, t, d, ebc, ready);
                (want, pa.replicas(), pa.activity())
            })
            .collect()
    }

    const ACTIVE: Activity = Activity::Active;
    const INACTIVE: Activity = Activity::Inactive { timed_out: false };

    #[test]
    fn deploys_initial_scale_and_waits_for_it() {
        let s = ScalerSpec {
            initial_scale: 3,
            ..spec()
        };
        let out = run(
            &s,
            &[
                (0.0, None, -1.0, 0),
                (2.0, Some(0), -1.0, 2),
                (4.0, Some(0), -1.0, 3),
            ],
        );
        // Activating: nothing changes until three are ready; initial scale is a floor.
        assert_eq!(out[0], (Some(3), 3, Activity::Activating));
        assert_eq!(out[1], (Some(3), 3, Activity::Activating));
        assert_eq!(out[2], (Some(3), 3, ACTIVE));
        // Once initialized, the floor is min-scale again.
        let mut pa = PodAutoscaler::new(&s, 0.0);
        pa.reconcile(&s, 0.0, None, -1.0, 3);
        assert!(pa.initialized());
        assert_eq!(pa.reconcile(&s, 2.0, Some(1), -1.0, 3), Some(1));
    }

    #[test]
    fn idle_revision_goes_to_zero_after_stable_window_then_grace() {
        // EBC ≥ 0: the activator enters the path only when the PA turns inactive, so
        // the grace period runs from there.
        let out = run(
            &spec(),
            &[
                (0.0, None, 0.0, 1),     // ready → Active at 0
                (30.0, Some(0), 0.0, 1), // active < stable window: keep 1
                (60.0, Some(0), 0.0, 1), // active ≥ 60 s: report 0, turn inactive
                (80.0, Some(0), 0.0, 1), // inactive 20 s < grace 30 s
                (90.0, Some(0), 0.0, 1), // inactive 30 s: scale to zero
            ],
        );
        assert_eq!(out[0], (None, 1, ACTIVE));
        assert_eq!(out[1], (Some(1), 1, ACTIVE));
        assert_eq!(out[2], (Some(0), 1, INACTIVE));
        assert_eq!(out[3], (Some(0), 1, INACTIVE));
        assert_eq!(out[4], (Some(0), 0, INACTIVE));
    }

    #[test]
    fn proxy_mode_for_the_grace_period_lets_it_go_at_once() {
        // Negative EBC kept the activator in the path all along (the default TBC with
        // one replica), so zero is applied as soon as the PA is inactive.
        let out = run(
            &spec(),
            &[
                (0.0, None, -1.0, 1),
                (60.0, Some(0), -1.0, 1),
                (62.0, Some(0), -1.0, 1),
            ],
        );
        assert_eq!(out[1], (Some(0), 1, INACTIVE));
        assert_eq!(out[2], (Some(0), 0, INACTIVE));
    }

    #[test]
    fn retention_period_holds_the_last_replica() {
        let s = ScalerSpec {
            retention_period: 100.0,
            ..spec()
        };
        let out = run(
            &s,
            &[
                (0.0, None, -1.0, 1),
                (60.0, Some(0), -1.0, 1),
                (150.0, Some(0), -1.0, 1),
                (160.0, Some(0), -1.0, 1),
            ],
        );
        assert_eq!(out[2].1, 1, "inactive 90 s < retention 100 s");
        assert_eq!(out[3].1, 0);
        // Unreachable Revisions have no retention (resolved by the caller).
    }

    #[test]
    fn scale_to_zero_disabled_keeps_one() {
        let s = ScalerSpec {
            enable_scale_to_zero: false,
            ..spec()
        };
        let out = run(&s, &[(0.0, None, 0.0, 1), (600.0, Some(0), 0.0, 1)]);
        assert_eq!(out[1], (Some(1), 1, ACTIVE));
    }

    #[test]
    fn bounds_clamp_the_decider() {
        let s = ScalerSpec {
            min_scale: 2,
            max_scale: 3,
            initial_scale: 1,
            ..spec()
        };
        let out = run(
            &s,
            &[
                (0.0, None, 0.0, 2),
                (2.0, Some(10), 0.0, 2),
                (4.0, Some(0), 0.0, 3),
            ],
        );
        assert_eq!(out[1], (Some(3), 3, ACTIVE));
        assert_eq!(
            out[2],
            (Some(2), 2, ACTIVE),
            "min-scale holds through idleness"
        );
        // Unreachable: min-scale is 0 (resolved by the caller) and zero is allowed.
    }

    #[test]
    fn a_request_at_zero_activates_then_activity_follows_readiness() {
        let mut pa = PodAutoscaler::new(&spec(), 0.0);
        let s = spec();
        pa.reconcile(&s, 0.0, None, -1.0, 1);
        pa.reconcile(&s, 60.0, Some(0), -1.0, 1);
        pa.reconcile(&s, 62.0, Some(0), -1.0, 1);
        assert_eq!((pa.replicas(), pa.activity()), (0, INACTIVE));
        // At zero with no data the PA stays as it is.
        assert_eq!(pa.reconcile(&s, 64.0, None, -1.0, 0), None);
        assert_eq!(pa.activity(), INACTIVE);
        // The poke: one request wants one replica.
        assert_eq!(pa.reconcile(&s, 65.0, Some(1), -1.0, 0), Some(1));
        assert_eq!((pa.replicas(), pa.activity()), (1, Activity::Activating));
        assert_eq!(pa.reconcile(&s, 65.1, Some(1), -1.0, 1), Some(1));
        assert_eq!(pa.activity(), ACTIVE);
        // Freshly active: zero is not reported before a whole stable window.
        assert_eq!(pa.reconcile(&s, 100.0, Some(0), -1.0, 1), Some(1));
    }

    #[test]
    fn activation_that_never_succeeds_times_out_to_zero() {
        let s = ScalerSpec {
            progress_deadline: 10.0,
            ..spec()
        };
        let mut pa = PodAutoscaler::new(&s, 0.0);
        assert_eq!(pa.reconcile(&s, 5.0, Some(0), -1.0, 0), None);
        assert!(!pa.deadline_exceeded(&s, 5.0));
        assert!(pa.deadline_exceeded(&s, 10.0));
        assert_eq!(pa.reconcile(&s, 20.0, Some(0), -1.0, 0), None);
        assert_eq!(pa.replicas(), 1);
        // Deadline + 30 s: let go.
        assert_eq!(pa.reconcile(&s, 40.0, Some(0), -1.0, 0), Some(0));
        assert_eq!(pa.replicas(), 0);
        assert_eq!(pa.activity(), Activity::Inactive { timed_out: true });
    }

    #[test]
    fn zero_initial_scale_starts_inactive() {
        let s = ScalerSpec {
            initial_scale: 0,
            ..spec()
        };
        let mut pa = PodAutoscaler::new(&s, 0.0);
        assert_eq!(pa.replicas(), 0);
        pa.reconcile(&s, 0.0, None, -1.0, 0);
        assert_eq!(pa.activity(), INACTIVE);
        assert!(pa.initialized());
        assert_eq!(pa.replicas(), 0);
    }
}
