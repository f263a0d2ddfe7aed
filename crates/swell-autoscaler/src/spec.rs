//! What the autoscaler runs a Revision with: `config-autoscaler` (§3.7) overridden by
//! the Revision's annotations (§3.8), both as `swell-api` parsed them, resolved into
//! windows, a target (§3.3) and a [`DeciderSpec`], the PodAutoscaler's limits (§3.6),
//! or the HPA class's spec.

use crate::decider::DeciderSpec;
use crate::hpa::{HpaSpec, HpaTarget};
use crate::scaler::ScalerSpec;
use std::time::Duration;
use swell_api::annotations::{self, Autoscaling, Class, KPA, MetricAggregationAlgorithm};
use swell_api::config;

/// Why a Revision's annotations ask for what this autoscaler cannot do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// The KPA was asked to scale a Revision of another class.
    #[error(
        "autoscaling.knative.dev/class: {:?} is not the KPA class ({KPA})",
        .0.as_str()
    )]
    NotKpa(Class),
    /// The KPA scales on concurrency or requests per second.
    #[error(
        "autoscaling.knative.dev/metric: {:?} is not supported by the KPA (concurrency or rps)",
        .0.as_str()
    )]
    KpaMetric(annotations::Metric),
    /// The HPA class scales on CPU or memory.
    #[error(
        "autoscaling.knative.dev/metric: {:?} needs a custom metrics adapter; Swell's HPA class scales on cpu or memory",
        .0.as_str()
    )]
    HpaMetric(annotations::Metric),
    /// The HPA class's CPU target is a share of the container's CPU request.
    #[error(
        "the HPA class scales on CPU utilization of the container's resources.requests.cpu, and this container requests none"
    )]
    NoCpuRequest,
}

/// The metric a Revision scales on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// In-flight requests (KPA default).
    Concurrency,
    /// Requests per second.
    Rps,
}

/// A Revision's resolved autoscaling parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The decider's inputs.
    pub decider: DeciderSpec,
    /// The metric.
    pub metric: Metric,
    /// How windows average.
    pub algorithm: MetricAggregationAlgorithm,
    /// Panic window, seconds (at least 1).
    pub panic_window: u64,
}

/// A replica count as the scalers count (`i32`, as Kubernetes does).
fn replicas(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Resolves a Revision's spec from the configuration, its annotations and its
/// `containerConcurrency` (0 = unlimited); `reachable` is false for `reserve`
/// Revisions.
pub fn resolve(
    cfg: &config::Autoscaler,
    ann: &Autoscaling,
    container_concurrency: u64,
    reachable: bool,
) -> Result<Spec, SpecError> {
    if let Some(class) = ann.class.as_ref().filter(|c| **c != Class::Kpa) {
        return Err(SpecError::NotKpa(class.clone()));
    }
    let metric = match &ann.metric {
        None | Some(annotations::Metric::Concurrency) => Metric::Concurrency,
        Some(annotations::Metric::Rps) => Metric::Rps,
        Some(other) => return Err(SpecError::KpaMetric(other.clone())),
    };
    let fraction = cfg.container_concurrency_target_fraction;
    let (mut total, mut utilization) = match metric {
        Metric::Concurrency if container_concurrency > 0 => {
            (container_concurrency as f64, fraction)
        }
        Metric::Concurrency => (cfg.container_concurrency_target_default, fraction),
        Metric::Rps => (cfg.requests_per_second_target_default, 0.7),
    };
    if let Some(t) = ann.target {
        total = if metric == Metric::Concurrency && container_concurrency > 0 {
            t.min(container_concurrency as f64)
        } else {
            t
        };
    }
    if let Some(p) = ann.target_utilization_percentage {
        utilization = p / 100.0;
    }
    let stable_window = ann.window.unwrap_or(cfg.stable_window).as_secs();
    let panic_pct = ann
        .panic_window_percentage
        .unwrap_or(cfg.panic_window_percentage);
    let panic_threshold = ann
        .panic_threshold_percentage
        .unwrap_or(cfg.panic_threshold_percentage);
    Ok(Spec {
        decider: DeciderSpec {
            target_value: (total * utilization).max(0.01),
            total_value: total,
            target_burst_capacity: ann
                .target_burst_capacity
                .unwrap_or(cfg.target_burst_capacity),
            panic_threshold: panic_threshold / 100.0,
            max_scale_up_rate: cfg.max_scale_up_rate,
            max_scale_down_rate: cfg.max_scale_down_rate,
            stable_window,
            scale_down_delay: ann
                .scale_down_delay
                .unwrap_or(cfg.scale_down_delay)
                .as_secs(),
            reachable,
            activation_scale: ann.activation_scale.map_or(1, replicas),
        },
        metric,
        algorithm: ann.metric_aggregation_algorithm.unwrap_or_default(),
        panic_window: ((stable_window as f64 * panic_pct / 100.0).round() as u64).max(1),
    })
}

/// Knative's `ScaleBounds`: `min-scale` (0 when the Revision is unreachable) and
/// `max-scale` (0 = unbounded), from the annotations or the configuration.
fn scale_bounds(cfg: &config::Autoscaler, ann: &Autoscaling, reachable: bool) -> (i32, i32) {
    let min = if reachable {
        replicas(ann.min_scale.unwrap_or(cfg.min_scale))
    } else {
        0
    };
    (min, replicas(ann.max_scale.unwrap_or(cfg.max_scale)))
}

/// Resolves an HPA-class Revision's spec (Knative's `MakeHPA`): metric `cpu`
/// (default; `target` is a utilization percentage of `cpu_request`, 80 when absent)
/// or `memory` (`target` in MiB per replica; without one, Kubernetes' default of 80 %
/// CPU applies), within `min-scale` (at least 1) and `max-scale`.
pub fn hpa_spec(
    cfg: &config::Autoscaler,
    ann: &Autoscaling,
    reachable: bool,
    cpu_request: Option<f64>,
) -> Result<HpaSpec, SpecError> {
    let cpu = |utilization: f64| match cpu_request.filter(|c| *c > 0.0) {
        Some(request_cores) => Ok(HpaTarget::Cpu {
            utilization: utilization.ceil(),
            request_cores,
        }),
        None => Err(SpecError::NoCpuRequest),
    };
    let target = match &ann.metric {
        None | Some(annotations::Metric::Cpu) => cpu(ann.target.unwrap_or(80.0))?,
        Some(annotations::Metric::Memory) => match ann.target {
            Some(mib) => HpaTarget::Memory {
                bytes: mib.round() * 1024.0 * 1024.0,
            },
            None => cpu(80.0)?,
        },
        Some(other) => return Err(SpecError::HpaMetric(other.clone())),
    };
    let (min, max) = scale_bounds(cfg, ann, reachable);
    Ok(HpaSpec {
        target,
        min_scale: min.max(1),
        max_scale: max,
    })
}

/// Resolves a Revision's scaling limits (§3.6) from the configuration, its annotations,
/// its reachability and the progress deadline (`config-deployment`; the
/// `serving.knative.dev/progress-deadline` annotation overrides it). An `initial-scale`
/// of 0 counts only with `allow-zero-initial-scale`; otherwise the configuration's
/// applies.
pub fn scaler_spec(
    cfg: &config::Autoscaler,
    ann: &Autoscaling,
    reachable: bool,
    progress_deadline: Duration,
) -> ScalerSpec {
    let (min_scale, max_scale) = scale_bounds(cfg, ann, reachable);
    let initial_scale = match ann.initial_scale {
        Some(n) if n > 0 || cfg.allow_zero_initial_scale => n,
        _ => cfg.initial_scale,
    };
    let retention_period = ann
        .scale_to_zero_pod_retention_period
        .unwrap_or(cfg.scale_to_zero_pod_retention_period);
    ScalerSpec {
        min_scale,
        max_scale,
        initial_scale: replicas(initial_scale),
        reachable,
        enable_scale_to_zero: cfg.enable_scale_to_zero,
        grace_period: cfg.scale_to_zero_grace_period.as_secs_f64(),
        retention_period: if reachable {
            retention_period.as_secs_f64()
        } else {
            0.0
        },
        stable_window: ann.window.unwrap_or(cfg.stable_window).as_secs_f64(),
        progress_deadline: ann
            .progress_deadline
            .unwrap_or(progress_deadline)
            .as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `autoscaling.knative.dev/*` annotations as the controller does.
    fn ann(pairs: &[(&str, &str)]) -> Autoscaling {
        let map = pairs
            .iter()
            .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), v.to_string()))
            .collect();
        Autoscaling::parse(&map).unwrap()
    }

    const DEADLINE: Duration = Duration::from_secs(600);

    #[test]
    fn defaults_give_knatives_targets() {
        let cfg = config::Autoscaler::default();
        let s = resolve(&cfg, &ann(&[]), 0, true).unwrap();
        assert_eq!(s.decider.target_value, 70.0);
        assert_eq!(s.decider.total_value, 100.0);
        assert_eq!(s.decider.target_burst_capacity, 211.0);
        assert_eq!(s.decider.panic_threshold, 2.0);
        assert_eq!(s.decider.stable_window, 60);
        assert_eq!(s.panic_window, 6);
        assert_eq!(s.metric, Metric::Concurrency);
        let cc10 = resolve(&cfg, &ann(&[]), 10, true).unwrap();
        assert_eq!(cc10.decider.target_value, 7.0);
        let rps = resolve(&cfg, &ann(&[("metric", "rps")]), 10, true).unwrap();
        assert!((rps.decider.target_value - 140.0).abs() < 1e-9);
    }

    #[test]
    fn annotations_override_the_configuration() {
        let cfg = config::Autoscaler::default();
        let s = resolve(
            &cfg,
            &ann(&[
                ("target", "50"),
                ("targetUtilizationPercentage", "80"),
                ("window", "20s"),
                ("panic-window-percentage", "25"),
                ("panic-threshold-percentage", "150"),
                ("scale-down-delay", "10s"),
                ("target-burst-capacity", "-1"),
                ("metric-aggregation-algorithm", "weighted-exponential"),
                ("activation-scale", "3"),
            ]),
            10,
            false,
        )
        .unwrap();
        // target is capped by containerConcurrency.
        assert_eq!(s.decider.total_value, 10.0);
        assert_eq!(s.decider.target_value, 8.0);
        assert_eq!(s.decider.stable_window, 20);
        assert_eq!(s.panic_window, 5);
        assert_eq!(s.decider.panic_threshold, 1.5);
        assert_eq!(s.decider.scale_down_delay, 10);
        assert_eq!(s.decider.target_burst_capacity, -1.0);
        assert_eq!(s.algorithm, MetricAggregationAlgorithm::WeightedExponential);
        assert_eq!(s.decider.activation_scale, 3);
        assert!(!s.decider.reachable);
    }

    #[test]
    fn scaler_limits_follow_annotations_and_reachability() {
        let cfg = config::Autoscaler {
            min_scale: 1,
            max_scale: 9,
            ..config::Autoscaler::default()
        };
        let a = ann(&[
            ("minScale", "2"),
            ("max-scale", "3"),
            ("initial-scale", "0"),
            ("scale-to-zero-pod-retention-period", "90s"),
        ]);
        let s = scaler_spec(&cfg, &a, true, DEADLINE);
        assert_eq!((s.min_scale, s.max_scale), (2, 3));
        assert_eq!(s.initial_scale, 1, "0 needs allow-zero-initial-scale");
        assert_eq!(s.retention_period, 90.0);
        assert_eq!(s.grace_period, 30.0);
        assert_eq!(s.stable_window, 60.0);
        assert_eq!(s.progress_deadline, 600.0);
        let unreachable = scaler_spec(&cfg, &a, false, DEADLINE);
        assert_eq!(
            (unreachable.min_scale, unreachable.retention_period),
            (0, 0.0)
        );
        let zero = config::Autoscaler {
            allow_zero_initial_scale: true,
            ..config::Autoscaler::default()
        };
        let deadline = Autoscaling {
            progress_deadline: Some(Duration::from_secs(20)),
            ..a
        };
        let z = scaler_spec(&zero, &deadline, true, DEADLINE);
        assert_eq!((z.initial_scale, z.progress_deadline), (0, 20.0));
        let five = Duration::from_secs(5);
        assert_eq!(scaler_spec(&cfg, &ann(&[]), true, five).min_scale, 1);
    }

    #[test]
    fn the_kpa_takes_only_its_own_class_and_metrics() {
        let tiny_panic = resolve(
            &config::Autoscaler::default(),
            &ann(&[("window", "6s"), ("panic-window-percentage", "1")]),
            0,
            true,
        )
        .unwrap();
        assert_eq!(tiny_panic.panic_window, 1, "at least one second");
        let hpa = ann(&[("class", "hpa.autoscaling.knative.dev"), ("metric", "cpu")]);
        let e = resolve(&config::Autoscaler::default(), &hpa, 0, true).unwrap_err();
        assert_eq!(e, SpecError::NotKpa(Class::Hpa));
        assert_eq!(
            e.to_string(),
            "autoscaling.knative.dev/class: \"hpa.autoscaling.knative.dev\" is not the KPA class (kpa.autoscaling.knative.dev)"
        );
        let cpu = Autoscaling {
            metric: Some(annotations::Metric::Cpu),
            ..Autoscaling::default()
        };
        let e = resolve(&config::Autoscaler::default(), &cpu, 0, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "autoscaling.knative.dev/metric: \"cpu\" is not supported by the KPA (concurrency or rps)"
        );
    }

    #[test]
    fn hpa_class_follows_knatives_mapping() {
        let cfg = config::Autoscaler::default();
        let hpa = |pairs: &[(&str, &str)]| {
            let mut all = vec![("class", "hpa.autoscaling.knative.dev")];
            all.extend_from_slice(pairs);
            ann(&all)
        };
        let s = hpa_spec(&cfg, &hpa(&[("max-scale", "4")]), true, Some(0.1)).unwrap();
        assert_eq!(
            s.target,
            HpaTarget::Cpu {
                utilization: 80.0,
                request_cores: 0.1
            }
        );
        assert_eq!((s.min_scale, s.max_scale), (1, 4));
        let m = hpa_spec(
            &cfg,
            &hpa(&[("metric", "memory"), ("target", "64")]),
            true,
            None,
        )
        .unwrap();
        assert_eq!(
            m.target,
            HpaTarget::Memory {
                bytes: 64.0 * 1024.0 * 1024.0
            }
        );
        let no_request = hpa_spec(&cfg, &hpa(&[("target", "50")]), true, None).unwrap_err();
        assert_eq!(no_request, SpecError::NoCpuRequest);
        assert!(
            no_request.to_string().contains("resources.requests.cpu"),
            "{no_request}"
        );
        let custom = hpa_spec(&cfg, &hpa(&[("metric", "qps")]), true, Some(1.0)).unwrap_err();
        assert!(
            custom.to_string().contains("custom metrics adapter"),
            "{custom}"
        );
        let two = hpa_spec(&cfg, &hpa(&[("min-scale", "2")]), true, Some(1.0)).unwrap();
        assert_eq!(two.min_scale, 2);
        let unrouted = hpa_spec(&cfg, &hpa(&[("min-scale", "2")]), false, Some(1.0)).unwrap();
        assert_eq!(unrouted.min_scale, 1, "never below one");
    }
}
