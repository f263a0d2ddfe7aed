//! A Revision's `autoscaling.knative.dev/*` annotations (§3.8) and its
//! `serving.knative.dev/progress-deadline`, parsed and validated once into
//! [`Autoscaling`]: admission checks them with it, and the autoscaler scales with it.

use super::{AUTOSCALING_PREFIX, Annotations, PROGRESS_DEADLINE};
use crate::config;
use crate::duration::parse_go_duration;
use crate::field_error::{FieldError, FieldErrors};
use std::time::Duration;

/// The KPA class, the default.
pub const KPA: &str = "kpa.autoscaling.knative.dev";
/// The HorizontalPodAutoscaler class.
pub const HPA: &str = "hpa.autoscaling.knative.dev";

/// A Revision's scaling annotations; `None` where the annotation is absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Autoscaling {
    /// `class`.
    pub class: Option<Class>,
    /// `metric`.
    pub metric: Option<Metric>,
    /// `target`.
    pub target: Option<f64>,
    /// `target-utilization-percentage`.
    pub target_utilization_percentage: Option<f64>,
    /// `target-burst-capacity` (−1: unlimited).
    pub target_burst_capacity: Option<f64>,
    /// `min-scale`.
    pub min_scale: Option<u32>,
    /// `max-scale` (0: unbounded).
    pub max_scale: Option<u32>,
    /// `initial-scale`.
    pub initial_scale: Option<u32>,
    /// `activation-scale`.
    pub activation_scale: Option<u32>,
    /// `window`: the stable window (whole seconds).
    pub window: Option<Duration>,
    /// `panic-window-percentage`.
    pub panic_window_percentage: Option<f64>,
    /// `panic-threshold-percentage`.
    pub panic_threshold_percentage: Option<f64>,
    /// `scale-down-delay` (whole seconds).
    pub scale_down_delay: Option<Duration>,
    /// `scale-to-zero-pod-retention-period`.
    pub scale_to_zero_pod_retention_period: Option<Duration>,
    /// `metric-aggregation-algorithm`.
    pub metric_aggregation_algorithm: Option<MetricAggregationAlgorithm>,
    /// `serving.knative.dev/progress-deadline` (whole seconds).
    pub progress_deadline: Option<Duration>,
}

/// `autoscaling.knative.dev/class`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// `kpa.autoscaling.knative.dev`: Knative's own autoscaler.
    Kpa,
    /// `hpa.autoscaling.knative.dev`: Kubernetes' HorizontalPodAutoscaler.
    Hpa,
    /// Another autoscaler's class (admission refuses those ending in `.knative.dev`).
    Other(String),
}

/// `autoscaling.knative.dev/metric`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Metric {
    /// `concurrency`: in-flight requests (the KPA's default).
    Concurrency,
    /// `rps`: requests per second.
    Rps,
    /// `cpu` (the HPA's default).
    Cpu,
    /// `memory`.
    Memory,
    /// Any other metric (another class's, or a custom one for the HPA).
    Other(String),
}

/// `autoscaling.knative.dev/metric-aggregation-algorithm`: how the KPA's windows
/// average their buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricAggregationAlgorithm {
    /// `linear`: the plain average over the seconds seen.
    #[default]
    Linear,
    /// `weighted-exponential` (or `weightedExponential`): recent seconds weigh more.
    WeightedExponential,
}

impl Autoscaling {
    /// Parses a Revision's annotations. The errors name each annotation under
    /// `annotations.`, as admission reports them; the bounds `config-autoscaler` puts
    /// on annotations (`max-scale-limit`, `allow-zero-initial-scale`) are admission's
    /// alone ([`validate_autoscaling`]).
    pub fn parse(ann: &Annotations) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::default();
        let parsed = Self::read(ann, None, &mut errs);
        under_annotations(errs).into_result().map(|()| parsed)
    }

    /// Reads every annotation, recording what is invalid (and, with `config`, what
    /// exceeds its bounds) in `errs` under the annotation's key.
    fn read(
        ann: &Annotations,
        config: Option<&config::Autoscaler>,
        errs: &mut FieldErrors,
    ) -> Self {
        let mut a = Autoscaling::default();
        if let Some((k, v)) = lookup(ann, &["class"], errs) {
            let class = Class::from(v);
            if let Class::Other(c) = &class
                && c.ends_with(".knative.dev")
            {
                errs.push(FieldError::invalid(c, k));
            }
            a.class = Some(class);
        }
        let kpa = a.class.as_ref().is_none_or(|c| *c == Class::Kpa);
        if let Some((k, v)) = lookup(ann, &["metric"], errs) {
            let metric = Metric::from(v);
            let ok = if kpa {
                matches!(metric, Metric::Concurrency | Metric::Rps)
            } else {
                !v.is_empty()
            };
            if !ok {
                errs.push(FieldError::invalid(v, k));
            }
            a.metric = Some(metric);
        }
        a.target = float_in(ann, &["target"], 0.01, f64::MAX, errs);
        a.target_utilization_percentage = float_in(
            ann,
            &[
                "target-utilization-percentage",
                "targetUtilizationPercentage",
            ],
            1.0,
            100.0,
            errs,
        );
        if let Some((k, v)) = lookup(ann, &["target-burst-capacity", "targetBurstCapacity"], errs) {
            match v.parse::<f64>() {
                Ok(f) if f.is_finite() && (f >= 0.0 || f == -1.0) => {
                    a.target_burst_capacity = Some(f);
                }
                _ => errs.push(FieldError::invalid(v, k)),
            }
        }
        a.read_scales(ann, config, errs);
        a.read_windows(ann, errs);
        a
    }

    /// `min-scale`, `max-scale`, `initial-scale` and `activation-scale`.
    fn read_scales(
        &mut self,
        ann: &Annotations,
        config: Option<&config::Autoscaler>,
        errs: &mut FieldErrors,
    ) {
        let min = int_at_least(ann, &["min-scale", "minScale"], 0, errs);
        let max = int_at_least(ann, &["max-scale", "maxScale"], 0, errs);
        if let (Some(min), Some(max)) = (min, max)
            && max != 0
            && min > max
        {
            errs.push(FieldError::new(
                format!("max-scale={max} is less than min-scale={min}"),
                key("max-scale"),
            ));
        }
        if let Some(limit) = config.map(|c| c.max_scale_limit).filter(|l| *l > 0)
            && let Some(max) = max
            && (max == 0 || max > i64::from(limit))
        {
            errs.push(FieldError::out_of_bounds(max, 1, limit, key("max-scale")));
        }
        let initial = int_at_least(ann, &["initial-scale", "initialScale"], 0, errs);
        if initial == Some(0)
            && let Some(config) = config
            && !config.allow_zero_initial_scale
        {
            errs.push(FieldError::invalid(0, key("initial-scale")).with_details(
                "set allow-zero-initial-scale to true in config-autoscaler to allow 0",
            ));
        }
        let activation = int_at_least(ann, &["activation-scale"], 2, errs);
        if let Some(act) = activation
            && (min.is_some_and(|m| act < m) || max.is_some_and(|m| m > 0 && act > m))
        {
            errs.push(
                FieldError::invalid(act, key("activation-scale"))
                    .with_details("activation-scale must be between min-scale and max-scale"),
            );
        }
        // Admission checked each is ≥ 0.
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        self.min_scale = min.map(count);
        self.max_scale = max.map(count);
        self.initial_scale = initial.map(count);
        self.activation_scale = activation.map(count);
    }

    /// The window, panic and scale-down annotations, and the progress deadline.
    fn read_windows(&mut self, ann: &Annotations, errs: &mut FieldErrors) {
        let hour = Duration::from_secs(3600);
        self.window = duration_in(ann, &["window"], Duration::from_secs(6), hour, true, errs);
        self.panic_window_percentage = float_in(
            ann,
            &["panic-window-percentage", "panicWindowPercentage"],
            1.0,
            100.0,
            errs,
        );
        self.panic_threshold_percentage = float_in(
            ann,
            &["panic-threshold-percentage", "panicThresholdPercentage"],
            110.0,
            1000.0,
            errs,
        );
        self.scale_down_delay = duration_in(
            ann,
            &["scale-down-delay", "scaleDownDelay"],
            Duration::ZERO,
            hour,
            true,
            errs,
        );
        self.scale_to_zero_pod_retention_period = duration_in(
            ann,
            &[
                "scale-to-zero-pod-retention-period",
                "scaleToZeroPodRetentionPeriod",
            ],
            Duration::ZERO,
            hour,
            false,
            errs,
        );
        if let Some((k, v)) = lookup(
            ann,
            &["metric-aggregation-algorithm", "metricAggregationAlgorithm"],
            errs,
        ) {
            self.metric_aggregation_algorithm = match v {
                "linear" => Some(MetricAggregationAlgorithm::Linear),
                "weighted-exponential" | "weightedExponential" => {
                    Some(MetricAggregationAlgorithm::WeightedExponential)
                }
                _ => {
                    errs.push(FieldError::invalid(v, k));
                    None
                }
            };
        }
        if let Some(v) = ann.get(PROGRESS_DEADLINE) {
            match parse_go_duration(v) {
                Ok(d) if d.subsec_nanos() == 0 => self.progress_deadline = Some(d),
                _ => errs.push(FieldError::invalid(v, PROGRESS_DEADLINE)),
            }
        }
    }
}

/// Admission's check of a Revision's or template's annotations: [`Autoscaling::parse`]'s,
/// and the bounds `config-autoscaler` puts on them.
pub fn validate_autoscaling(ann: &Annotations, config: &config::Autoscaler) -> FieldErrors {
    let mut errs = FieldErrors::default();
    Autoscaling::read(ann, Some(config), &mut errs);
    under_annotations(errs)
}

/// Errors raised under an annotation's key, presented under `annotations`.
fn under_annotations(errs: FieldErrors) -> FieldErrors {
    FieldErrors(errs.0.into_iter().map(|e| e.via("annotations")).collect())
}

fn key(name: &str) -> String {
    format!("{AUTOSCALING_PREFIX}/{name}")
}

/// Looks up an annotation under any of its spellings, as (full key, value); setting two
/// spellings at once is an error.
fn lookup<'a>(
    ann: &'a Annotations,
    names: &[&str],
    errs: &mut FieldErrors,
) -> Option<(String, &'a str)> {
    let found: Vec<(String, &str)> = names
        .iter()
        .map(|n| key(n))
        .filter_map(|k| ann.get(&k).map(|v| (k, v.as_str())))
        .collect();
    if found.len() > 1 {
        let paths: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        errs.push(FieldError::one_of(&paths, &paths));
    }
    found.into_iter().next()
}

fn float_in(
    ann: &Annotations,
    names: &[&str],
    lo: f64,
    hi: f64,
    errs: &mut FieldErrors,
) -> Option<f64> {
    let (k, v) = lookup(ann, names, errs)?;
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= lo && f <= hi => Some(f),
        Ok(f) if f.is_finite() => {
            let hi = if hi == f64::MAX {
                "+Inf".to_string()
            } else {
                hi.to_string()
            };
            errs.push(FieldError::out_of_bounds(v, lo, hi, k));
            None
        }
        _ => {
            errs.push(FieldError::invalid(v, k));
            None
        }
    }
}

fn int_at_least(ann: &Annotations, names: &[&str], lo: i64, errs: &mut FieldErrors) -> Option<i64> {
    let (k, v) = lookup(ann, names, errs)?;
    match v.parse::<i64>() {
        Ok(i) if i >= lo => Some(i),
        Ok(_) => {
            errs.push(FieldError::out_of_bounds(v, lo, "+Inf", k));
            None
        }
        Err(_) => {
            errs.push(FieldError::invalid(v, k));
            None
        }
    }
}

fn duration_in(
    ann: &Annotations,
    names: &[&str],
    lo: Duration,
    hi: Duration,
    whole_seconds: bool,
    errs: &mut FieldErrors,
) -> Option<Duration> {
    let (k, v) = lookup(ann, names, errs)?;
    match parse_go_duration(v) {
        Ok(d) if d < lo || d > hi => {
            errs.push(FieldError::out_of_bounds(
                v,
                format!("{}s", lo.as_secs()),
                format!("{}s", hi.as_secs()),
                k,
            ));
            None
        }
        Ok(d) if whole_seconds && d.subsec_nanos() != 0 => {
            errs.push(FieldError::invalid(v, k).with_details("must be a whole number of seconds"));
            None
        }
        Ok(d) => Some(d),
        Err(_) => {
            errs.push(FieldError::invalid(v, k));
            None
        }
    }
}

// === impl Class ===

impl Class {
    /// The annotation's value.
    pub fn as_str(&self) -> &str {
        match self {
            Class::Kpa => KPA,
            Class::Hpa => HPA,
            Class::Other(c) => c,
        }
    }
}

impl From<&str> for Class {
    fn from(v: &str) -> Self {
        match v {
            KPA => Class::Kpa,
            HPA => Class::Hpa,
            other => Class::Other(other.to_string()),
        }
    }
}

// === impl Metric ===

impl Metric {
    /// The annotation's value.
    pub fn as_str(&self) -> &str {
        match self {
            Metric::Concurrency => "concurrency",
            Metric::Rps => "rps",
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Other(m) => m,
        }
    }
}

impl From<&str> for Metric {
    fn from(v: &str) -> Self {
        match v {
            "concurrency" => Metric::Concurrency,
            "rps" => Metric::Rps,
            "cpu" => Metric::Cpu,
            "memory" => Metric::Memory,
            other => Metric::Other(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), v.to_string()))
            .collect()
    }

    fn check(pairs: &[(&str, &str)]) -> String {
        validate_autoscaling(&ann(pairs), &config::Autoscaler::default()).to_string()
    }

    #[test]
    fn accepts_knative_examples() {
        assert_eq!(
            check(&[("min-scale", "1"), ("max-scale", "3"), ("target", "10")]),
            ""
        );
        assert_eq!(
            check(&[("window", "60s"), ("target-burst-capacity", "-1")]),
            ""
        );
        assert_eq!(
            check(&[("class", "hpa.autoscaling.knative.dev"), ("metric", "cpu")]),
            ""
        );
    }

    #[test]
    fn rejects_out_of_range_values() {
        assert!(check(&[("target", "0")]).contains("annotations.autoscaling.knative.dev/target"));
        assert!(check(&[("min-scale", "-1")]).contains("min-scale"));
        assert!(check(&[("min-scale", "5"), ("max-scale", "3")]).contains("less than min-scale"));
        assert!(check(&[("window", "5s")]).contains("window"));
        assert!(check(&[("window", "6500ms")]).contains("whole number"));
        assert!(check(&[("panic-threshold-percentage", "100")]).contains("panic-threshold"));
        assert!(check(&[("metric", "cpu")]).contains("invalid value: cpu"));
        assert!(check(&[("class", "foo.knative.dev")]).contains("class"));
        assert!(check(&[("initial-scale", "0")]).contains("allow-zero-initial-scale"));
        assert!(check(&[("minScale", "1"), ("min-scale", "1")]).contains("got both"));
        assert!(check(&[("target-burst-capacity", "-2")]).contains("target-burst-capacity"));
        assert!(check(&[("activation-scale", "1")]).contains("activation-scale"));
        let deadline = [(PROGRESS_DEADLINE.to_string(), "1500ms".to_string())].into();
        assert_eq!(
            validate_autoscaling(&deadline, &config::Autoscaler::default()).to_string(),
            "invalid value: 1500ms: annotations.serving.knative.dev/progress-deadline"
        );
    }

    #[test]
    fn max_scale_limit_applies() {
        let limits = config::Autoscaler {
            allow_zero_initial_scale: true,
            max_scale_limit: 10,
            ..config::Autoscaler::default()
        };
        assert!(!validate_autoscaling(&ann(&[("max-scale", "11")]), &limits).is_empty());
        assert!(!validate_autoscaling(&ann(&[("max-scale", "0")]), &limits).is_empty());
        assert!(validate_autoscaling(&ann(&[("initial-scale", "0")]), &limits).is_empty());
    }

    #[test]
    fn parses_every_annotation_under_either_spelling() {
        let mut a = ann(&[
            ("class", "hpa.autoscaling.knative.dev"),
            ("metric", "memory"),
            ("target", "64"),
            ("targetUtilizationPercentage", "80"),
            ("targetBurstCapacity", "-1"),
            ("minScale", "2"),
            ("max-scale", "5"),
            ("initial-scale", "0"),
            ("activation-scale", "3"),
            ("window", "20s"),
            ("panicWindowPercentage", "25"),
            ("panic-threshold-percentage", "150"),
            ("scaleDownDelay", "10s"),
            ("scale-to-zero-pod-retention-period", "1m30s"),
            ("metricAggregationAlgorithm", "weightedExponential"),
        ]);
        a.insert(PROGRESS_DEADLINE.into(), "20s".into());
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            Autoscaling::parse(&a),
            Ok(Autoscaling {
                class: Some(Class::Hpa),
                metric: Some(Metric::Memory),
                target: Some(64.0),
                target_utilization_percentage: Some(80.0),
                target_burst_capacity: Some(-1.0),
                min_scale: Some(2),
                max_scale: Some(5),
                // Without config-autoscaler's bounds: the autoscaler decides what 0 means.
                initial_scale: Some(0),
                activation_scale: Some(3),
                window: secs(20),
                panic_window_percentage: Some(25.0),
                panic_threshold_percentage: Some(150.0),
                scale_down_delay: secs(10),
                scale_to_zero_pod_retention_period: secs(90),
                metric_aggregation_algorithm: Some(MetricAggregationAlgorithm::WeightedExponential),
                progress_deadline: secs(20),
            })
        );
        assert_eq!(
            Autoscaling::parse(&Annotations::new()),
            Ok(Autoscaling::default())
        );
        let custom = Autoscaling::parse(&ann(&[("class", "example.com/mine"), ("metric", "qps")]));
        assert_eq!(
            custom.map(|a| (a.class, a.metric)),
            Ok((
                Some(Class::Other("example.com/mine".into())),
                Some(Metric::Other("qps".into()))
            ))
        );
        let e = Autoscaling::parse(&ann(&[("window", "1s")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("annotations.autoscaling.knative.dev/window"),
            "{e}"
        );
    }
}
