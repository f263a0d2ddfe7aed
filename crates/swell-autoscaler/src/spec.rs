//! What the autoscaler runs a Revision with: `config-autoscaler` (§3.7) with its
//! defaults, overridden by the Revision's `autoscaling.knative.dev/*` annotations
//! (§3.8), resolved into windows, a target (§3.3) and a [`DeciderSpec`].

use crate::decider::DeciderSpec;
use crate::hpa::{HpaSpec, HpaTarget};
use crate::scaler::ScalerSpec;
use crate::window::Algorithm;
use std::collections::BTreeMap;
use swell_api::annotations::autoscaling as annotation;
use swell_api::duration::parse_go_duration;

/// A ConfigMap's data or an object's annotations.
pub type Data = BTreeMap<String, String>;

/// Why a configuration or annotation cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct SpecError(pub String);

/// `config-autoscaler`, every key, with Knative's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalerConfig {
    /// `container-concurrency-target-percentage`, as a fraction.
    pub target_utilization: f64,
    /// `container-concurrency-target-default`.
    pub concurrency_target: f64,
    /// `requests-per-second-target-default`.
    pub rps_target: f64,
    /// `target-burst-capacity`.
    pub target_burst_capacity: f64,
    /// `stable-window`, seconds.
    pub stable_window: u64,
    /// `panic-window-percentage`.
    pub panic_window_percentage: f64,
    /// `panic-threshold-percentage`.
    pub panic_threshold_percentage: f64,
    /// `max-scale-up-rate`.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`.
    pub max_scale_down_rate: f64,
    /// `enable-scale-to-zero`.
    pub enable_scale_to_zero: bool,
    /// `scale-to-zero-grace-period`, seconds.
    pub scale_to_zero_grace_period: f64,
    /// `scale-to-zero-pod-retention-period`, seconds.
    pub scale_to_zero_pod_retention_period: f64,
    /// `scale-down-delay`, seconds.
    pub scale_down_delay: u64,
    /// `activator-capacity`.
    pub activator_capacity: f64,
    /// `initial-scale`.
    pub initial_scale: u32,
    /// `allow-zero-initial-scale`.
    pub allow_zero_initial_scale: bool,
    /// `min-scale`.
    pub min_scale: u32,
    /// `max-scale` (0 = unbounded).
    pub max_scale: u32,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            target_utilization: 0.7,
            concurrency_target: 100.0,
            rps_target: 200.0,
            target_burst_capacity: 211.0,
            stable_window: 60,
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            enable_scale_to_zero: true,
            scale_to_zero_grace_period: 30.0,
            scale_to_zero_pod_retention_period: 0.0,
            scale_down_delay: 0,
            activator_capacity: 100.0,
            initial_scale: 1,
            allow_zero_initial_scale: false,
            min_scale: 0,
            max_scale: 0,
        }
    }
}

fn seconds(key: &str, v: &str) -> Result<f64, SpecError> {
    parse_go_duration(v.trim())
        .map(|d| d.as_secs_f64())
        .map_err(|e| SpecError(format!("{key}: {e}")))
}

fn whole_seconds(key: &str, v: &str) -> Result<u64, SpecError> {
    let s = seconds(key, v)?;
    if s.fract() != 0.0 {
        return Err(SpecError(format!("{key}: {v:?} must be whole seconds")));
    }
    Ok(s as u64)
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, SpecError> {
    v.trim()
        .parse()
        .map_err(|_| SpecError(format!("{key}: {v:?} is not a valid number")))
}

impl AutoscalerConfig {
    /// Reads `config-autoscaler`'s data, validated as admission validates it.
    pub fn from_data(data: &Data) -> Result<Self, SpecError> {
        swell_api::config::validate("config-autoscaler", data)
            .map_err(|e| SpecError(e.to_string()))?;
        let mut c = AutoscalerConfig::default();
        for (k, v) in data.iter().filter(|(k, _)| !k.starts_with('_')) {
            match k.as_str() {
                "container-concurrency-target-percentage" => {
                    let p: f64 = number(k, v)?;
                    // Values up to 1.0 are a fraction already, as in Knative.
                    c.target_utilization = if p <= 1.0 { p } else { p / 100.0 };
                }
                "container-concurrency-target-default" => c.concurrency_target = number(k, v)?,
                "requests-per-second-target-default" => c.rps_target = number(k, v)?,
                "target-burst-capacity" => c.target_burst_capacity = number(k, v)?,
                "stable-window" => c.stable_window = whole_seconds(k, v)?,
                "panic-window-percentage" => c.panic_window_percentage = number(k, v)?,
                "panic-threshold-percentage" => c.panic_threshold_percentage = number(k, v)?,
                "max-scale-up-rate" => c.max_scale_up_rate = number(k, v)?,
                "max-scale-down-rate" => c.max_scale_down_rate = number(k, v)?,
                "enable-scale-to-zero" => c.enable_scale_to_zero = v.trim() == "true",
                "scale-to-zero-grace-period" => c.scale_to_zero_grace_period = seconds(k, v)?,
                "scale-to-zero-pod-retention-period" => {
                    c.scale_to_zero_pod_retention_period = seconds(k, v)?;
                }
                "scale-down-delay" => c.scale_down_delay = whole_seconds(k, v)?,
                "activator-capacity" => c.activator_capacity = number(k, v)?,
                "initial-scale" => c.initial_scale = number(k, v)?,
                "allow-zero-initial-scale" => c.allow_zero_initial_scale = v.trim() == "true",
                "min-scale" => c.min_scale = number(k, v)?,
                "max-scale" => c.max_scale = number(k, v)?,
                _ => {}
            }
        }
        Ok(c)
    }
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
    pub algorithm: Algorithm,
    /// Panic window, seconds (at least 1).
    pub panic_window: u64,
}

/// Resolves a Revision's spec from the configuration, its annotations and its
/// `containerConcurrency` (0 = unlimited); `reachable` is false for `reserve`
/// Revisions.
pub fn resolve(
    cfg: &AutoscalerConfig,
    ann: &Data,
    container_concurrency: u64,
    reachable: bool,
) -> Result<Spec, SpecError> {
    let limits = swell_api::annotations::AutoscalerLimits {
        allow_zero_initial_scale: cfg.allow_zero_initial_scale,
        max_scale_limit: 0,
    };
    let errs = swell_api::annotations::validate_autoscaling(ann, &limits);
    if !errs.is_empty() {
        return Err(SpecError(errs.to_string()));
    }
    if let Some((_, class)) = annotation(ann, &["class"])
        && class != KPA
    {
        return Err(SpecError(format!(
            "autoscaling.knative.dev/class: {class:?} is not the KPA class ({KPA})"
        )));
    }
    let float = |names: &[&str]| -> Result<Option<f64>, SpecError> {
        annotation(ann, names)
            .map(|(k, v)| number::<f64>(&k, v))
            .transpose()
    };
    let metric = match annotation(ann, &["metric"]).map(|(_, v)| v) {
        None | Some("concurrency") => Metric::Concurrency,
        Some("rps") => Metric::Rps,
        Some(other) => {
            return Err(SpecError(format!(
                "autoscaling.knative.dev/metric: {other:?} is not supported by the KPA (concurrency or rps)"
            )));
        }
    };
    let (mut total, mut utilization) = match metric {
        Metric::Concurrency if container_concurrency > 0 => {
            (container_concurrency as f64, cfg.target_utilization)
        }
        Metric::Concurrency => (cfg.concurrency_target, cfg.target_utilization),
        Metric::Rps => (cfg.rps_target, 0.7),
    };
    if let Some(t) = float(&["target"])? {
        total = if metric == Metric::Concurrency && container_concurrency > 0 {
            t.min(container_concurrency as f64)
        } else {
            t
        };
    }
    if let Some(p) = float(&[
        "target-utilization-percentage",
        "targetUtilizationPercentage",
    ])? {
        utilization = p / 100.0;
    }
    let stable_window = match annotation(ann, &["window"]) {
        Some((k, v)) => whole_seconds(&k, v)?,
        None => cfg.stable_window,
    };
    let panic_pct = float(&["panic-window-percentage", "panicWindowPercentage"])?
        .unwrap_or(cfg.panic_window_percentage);
    let panic_threshold = float(&["panic-threshold-percentage", "panicThresholdPercentage"])?
        .unwrap_or(cfg.panic_threshold_percentage);
    let scale_down_delay = match annotation(ann, &["scale-down-delay", "scaleDownDelay"]) {
        Some((k, v)) => whole_seconds(&k, v)?,
        None => cfg.scale_down_delay,
    };
    let algorithm = match annotation(
        ann,
        &["metric-aggregation-algorithm", "metricAggregationAlgorithm"],
    )
    .map(|(_, v)| v)
    {
        None | Some("linear") => Algorithm::Linear,
        Some("weighted-exponential" | "weightedExponential") => Algorithm::WeightedExponential,
        Some(other) => {
            return Err(SpecError(format!(
                "autoscaling.knative.dev/metric-aggregation-algorithm: {other:?} is not linear or weighted-exponential"
            )));
        }
    };
    let activation_scale = match annotation(ann, &["activation-scale"]) {
        Some((k, v)) => number(&k, v)?,
        None => 1,
    };
    Ok(Spec {
        decider: DeciderSpec {
            target_value: (total * utilization).max(0.01),
            total_value: total,
            target_burst_capacity: float(&["target-burst-capacity", "targetBurstCapacity"])?
                .unwrap_or(cfg.target_burst_capacity),
            panic_threshold: panic_threshold / 100.0,
            max_scale_up_rate: cfg.max_scale_up_rate,
            max_scale_down_rate: cfg.max_scale_down_rate,
            stable_window,
            scale_down_delay,
            reachable,
            activation_scale,
        },
        metric,
        algorithm,
        panic_window: ((stable_window as f64 * panic_pct / 100.0).round() as u64).max(1),
    })
}

/// The default autoscaler class.
pub const KPA: &str = "kpa.autoscaling.knative.dev";
/// The HorizontalPodAutoscaler class.
pub const HPA: &str = "hpa.autoscaling.knative.dev";

/// The Revision asks for the HPA class.
pub fn is_hpa(ann: &Data) -> bool {
    annotation(ann, &["class"]).is_some_and(|(_, c)| c == HPA)
}

/// Resolves an HPA-class Revision's spec (Knative's `MakeHPA`): metric `cpu`
/// (default; `target` is a utilization percentage of `cpu_request`, 80 when absent)
/// or `memory` (`target` in MiB per replica; without one, Kubernetes' default of 80 %
/// CPU applies), within `min-scale` (at least 1) and `max-scale`.
pub fn hpa_spec(
    cfg: &AutoscalerConfig,
    ann: &Data,
    reachable: bool,
    cpu_request: Option<f64>,
) -> Result<HpaSpec, SpecError> {
    let target = annotation(ann, &["target"])
        .map(|(k, v)| number::<f64>(&k, v))
        .transpose()?;
    let cpu = |utilization: f64| {
        match cpu_request.filter(|c| *c > 0.0) {
        Some(request_cores) => Ok(HpaTarget::Cpu {
            utilization: utilization.ceil(),
            request_cores,
        }),
        None => Err(SpecError(
            "the HPA class scales on CPU utilization of the container's resources.requests.cpu, and this container requests none".into(),
        )),
    }
    };
    let target = match annotation(ann, &["metric"]).map(|(_, v)| v) {
        None | Some("cpu") => cpu(target.unwrap_or(80.0))?,
        Some("memory") => match target {
            Some(mib) => HpaTarget::Memory {
                bytes: mib.round() * 1024.0 * 1024.0,
            },
            None => cpu(80.0)?,
        },
        Some(other) => {
            return Err(SpecError(format!(
                "autoscaling.knative.dev/metric: {other:?} needs a custom metrics adapter; Swell's HPA class scales on cpu or memory"
            )));
        }
    };
    let int = |names: &[&str]| -> Result<Option<i32>, SpecError> {
        annotation(ann, names)
            .map(|(k, v)| number::<i32>(&k, v))
            .transpose()
    };
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let min = if reachable {
        int(&["min-scale", "minScale"])?.unwrap_or(to_i32(cfg.min_scale))
    } else {
        0
    };
    Ok(HpaSpec {
        target,
        min_scale: min.max(1),
        max_scale: int(&["max-scale", "maxScale"])?.unwrap_or(to_i32(cfg.max_scale)),
    })
}

/// Resolves a Revision's scaling limits (§3.6) from the configuration, its annotations,
/// its reachability and the progress deadline (`config-deployment`, in seconds; the
/// `serving.knative.dev/progress-deadline` annotation overrides it).
pub fn scaler_spec(
    cfg: &AutoscalerConfig,
    ann: &Data,
    reachable: bool,
    stable_window: u64,
    progress_deadline: f64,
) -> Result<ScalerSpec, SpecError> {
    let int = |names: &[&str]| -> Result<Option<i32>, SpecError> {
        annotation(ann, names)
            .map(|(k, v)| number::<i32>(&k, v))
            .transpose()
    };
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let min_scale = if reachable {
        int(&["min-scale", "minScale"])?.unwrap_or(to_i32(cfg.min_scale))
    } else {
        0
    };
    let max_scale = int(&["max-scale", "maxScale"])?.unwrap_or(to_i32(cfg.max_scale));
    let initial_scale = match int(&["initial-scale", "initialScale"])? {
        Some(n) if n > 0 || cfg.allow_zero_initial_scale => n,
        _ => to_i32(cfg.initial_scale),
    };
    let retention_period = match annotation(
        ann,
        &[
            "scale-to-zero-pod-retention-period",
            "scaleToZeroPodRetentionPeriod",
        ],
    ) {
        Some((k, v)) => seconds(&k, v)?,
        None => cfg.scale_to_zero_pod_retention_period,
    };
    let progress_deadline = match ann.get(swell_api::annotations::PROGRESS_DEADLINE) {
        Some(v) => seconds(swell_api::annotations::PROGRESS_DEADLINE, v)?,
        None => progress_deadline,
    };
    Ok(ScalerSpec {
        min_scale,
        max_scale,
        initial_scale,
        reachable,
        enable_scale_to_zero: cfg.enable_scale_to_zero,
        grace_period: cfg.scale_to_zero_grace_period,
        retention_period: if reachable { retention_period } else { 0.0 },
        stable_window: stable_window as f64,
        progress_deadline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> Data {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ann(pairs: &[(&str, &str)]) -> Data {
        pairs
            .iter()
            .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_give_knatives_targets() {
        let cfg = AutoscalerConfig::default();
        let s = resolve(&cfg, &Data::new(), 0, true).unwrap();
        assert_eq!(s.decider.target_value, 70.0);
        assert_eq!(s.decider.total_value, 100.0);
        assert_eq!(s.decider.target_burst_capacity, 211.0);
        assert_eq!(s.decider.panic_threshold, 2.0);
        assert_eq!(s.decider.stable_window, 60);
        assert_eq!(s.panic_window, 6);
        assert_eq!(s.metric, Metric::Concurrency);
        let cc10 = resolve(&cfg, &Data::new(), 10, true).unwrap();
        assert_eq!(cc10.decider.target_value, 7.0);
        let rps = resolve(&cfg, &ann(&[("metric", "rps")]), 10, true).unwrap();
        assert!((rps.decider.target_value - 140.0).abs() < 1e-9);
    }

    #[test]
    fn annotations_override_the_configuration() {
        let cfg = AutoscalerConfig::default();
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
        assert_eq!(s.algorithm, Algorithm::WeightedExponential);
        assert_eq!(s.decider.activation_scale, 3);
        assert!(!s.decider.reachable);
    }

    #[test]
    fn scaler_limits_follow_annotations_and_reachability() {
        let cfg = AutoscalerConfig {
            min_scale: 1,
            max_scale: 9,
            ..AutoscalerConfig::default()
        };
        let a = ann(&[
            ("minScale", "2"),
            ("max-scale", "3"),
            ("initial-scale", "0"),
            ("scale-to-zero-pod-retention-period", "90s"),
        ]);
        let s = scaler_spec(&cfg, &a, true, 60, 600.0).unwrap();
        assert_eq!((s.min_scale, s.max_scale), (2, 3));
        assert_eq!(s.initial_scale, 1, "0 needs allow-zero-initial-scale");
        assert_eq!(s.retention_period, 90.0);
        assert_eq!(s.grace_period, 30.0);
        assert_eq!(s.progress_deadline, 600.0);
        let unreachable = scaler_spec(&cfg, &a, false, 60, 600.0).unwrap();
        assert_eq!(
            (unreachable.min_scale, unreachable.retention_period),
            (0, 0.0)
        );
        let zero = AutoscalerConfig {
            allow_zero_initial_scale: true,
            ..AutoscalerConfig::default()
        };
        let mut deadline = a.clone();
        deadline.insert("serving.knative.dev/progress-deadline".into(), "20s".into());
        let z = scaler_spec(&zero, &deadline, true, 60, 600.0).unwrap();
        assert_eq!((z.initial_scale, z.progress_deadline), (0, 20.0));
        assert_eq!(
            scaler_spec(&cfg, &Data::new(), true, 60, 5.0)
                .unwrap()
                .min_scale,
            1
        );
    }

    #[test]
    fn configuration_is_read_and_validated() {
        let c = AutoscalerConfig::from_data(&data(&[
            ("stable-window", "30s"),
            ("container-concurrency-target-percentage", "0.5"),
            ("scale-to-zero-grace-period", "10s"),
            ("enable-scale-to-zero", "false"),
            ("max-scale", "4"),
        ]))
        .unwrap();
        assert_eq!(c.stable_window, 30);
        assert_eq!(c.target_utilization, 0.5);
        assert_eq!(c.scale_to_zero_grace_period, 10.0);
        assert!(!c.enable_scale_to_zero);
        assert_eq!(c.max_scale, 4);
        for bad in [
            ("stable-window", "2s"),
            ("stable-window", "soon"),
            ("max-scale-up-rate", "1"),
            ("target-burst-capacity", "-5"),
        ] {
            assert!(
                AutoscalerConfig::from_data(&data(&[bad])).is_err(),
                "{bad:?} accepted"
            );
        }
        let tiny_panic = resolve(
            &AutoscalerConfig::default(),
            &ann(&[("window", "6s"), ("panic-window-percentage", "1")]),
            0,
            true,
        )
        .unwrap();
        assert_eq!(tiny_panic.panic_window, 1, "at least one second");
        assert!(
            resolve(
                &AutoscalerConfig::default(),
                &ann(&[("metric", "cpu")]),
                0,
                true
            )
            .is_err()
        );
        let hpa = ann(&[("class", "hpa.autoscaling.knative.dev"), ("metric", "cpu")]);
        assert!(resolve(&AutoscalerConfig::default(), &hpa, 0, true).is_err());
    }

    #[test]
    fn hpa_class_follows_knatives_mapping() {
        let cfg = AutoscalerConfig::default();
        let hpa = |pairs: &[(&str, &str)]| {
            let mut a = ann(pairs);
            a.insert(
                "autoscaling.knative.dev/class".into(),
                "hpa.autoscaling.knative.dev".into(),
            );
            a
        };
        assert!(is_hpa(&hpa(&[])));
        assert!(!is_hpa(&ann(&[])));
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
        assert!(
            no_request.0.contains("resources.requests.cpu"),
            "{no_request}"
        );
        let custom = hpa_spec(&cfg, &hpa(&[("metric", "qps")]), true, Some(1.0)).unwrap_err();
        assert!(custom.0.contains("custom metrics adapter"), "{custom}");
        let two = hpa_spec(&cfg, &hpa(&[("min-scale", "2")]), true, Some(1.0)).unwrap();
        assert_eq!(two.min_scale, 2);
        let unrouted = hpa_spec(&cfg, &hpa(&[("min-scale", "2")]), false, Some(1.0)).unwrap();
        assert_eq!(unrouted.min_scale, 1, "never below one");
    }
}
