//! Validation of Knative's annotations: `autoscaling.knative.dev/*` (§3.8), rollout
//! duration (§2.4) and progress deadline.

use crate::duration::parse_go_duration;
use crate::field_error::{FieldError, FieldErrors};
use std::collections::BTreeMap;
use std::time::Duration;

/// Prefix of every autoscaling annotation.
pub const AUTOSCALING_PREFIX: &str = "autoscaling.knative.dev";
/// Gradual rollout duration, and its older spelling.
pub const ROLLOUT_DURATION: [&str; 2] = [
    "serving.knative.dev/rollout-duration",
    "serving.knative.dev/rolloutDuration",
];
/// Per-revision progress deadline.
pub const PROGRESS_DEADLINE: &str = "serving.knative.dev/progress-deadline";

/// The `config-autoscaler` values that annotation validation depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutoscalerLimits {
    /// `allow-zero-initial-scale`.
    pub allow_zero_initial_scale: bool,
    /// `max-scale-limit` (0 = none).
    pub max_scale_limit: i64,
}

type Annotations = BTreeMap<String, String>;

fn key(name: &str) -> String {
    format!("{AUTOSCALING_PREFIX}/{name}")
}

/// Every spelling of an `autoscaling.knative.dev/*` annotation that is set, as
/// (full key, value), in the order of `names`.
fn spellings<'a>(ann: &'a Annotations, names: &[&str]) -> Vec<(String, &'a str)> {
    names
        .iter()
        .map(|n| key(n))
        .filter_map(|k| ann.get(&k).map(|v| (k, v.as_str())))
        .collect()
}

/// An `autoscaling.knative.dev/*` annotation under the first of its spellings that is
/// set, as (full key, value). [`validate_autoscaling`] refuses setting two.
pub fn autoscaling<'a>(ann: &'a Annotations, names: &[&str]) -> Option<(String, &'a str)> {
    spellings(ann, names).into_iter().next()
}

/// Looks up an annotation under any of its spellings; both spellings at once is an error.
fn lookup<'a>(
    ann: &'a Annotations,
    names: &[&str],
    errs: &mut FieldErrors,
) -> Option<(String, &'a str)> {
    let found = spellings(ann, names);
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
            let _ = f;
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
) {
    let Some((k, v)) = lookup(ann, names, errs) else {
        return;
    };
    match parse_go_duration(v) {
        Ok(d) if d < lo || d > hi => {
            errs.push(FieldError::out_of_bounds(
                v,
                format!("{}s", lo.as_secs()),
                format!("{}s", hi.as_secs()),
                k,
            ));
        }
        Ok(d) if whole_seconds && d.subsec_nanos() != 0 => {
            errs.push(FieldError::invalid(v, k).with_details("must be a whole number of seconds"));
        }
        Ok(_) => {}
        Err(_) => errs.push(FieldError::invalid(v, k)),
    }
}

/// Rejects every `autoscaling.knative.dev/*` annotation: they belong on the template.
pub fn forbid_autoscaling(ann: &Annotations) -> FieldErrors {
    let mut errs = FieldErrors::default();
    for k in ann.keys().filter(|k| k.starts_with(AUTOSCALING_PREFIX)) {
        errs.push(FieldError::invalid(k, format!("annotations.{k}")).with_details(
            "autoscaling annotations must be put under `spec.template.metadata.annotations` to work",
        ));
    }
    errs
}

/// Validates the autoscaling annotations of a Revision or template (§3.8).
pub fn validate_autoscaling(ann: &Annotations, limits: &AutoscalerLimits) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let class = lookup(ann, &["class"], &mut errs).map(|(_, v)| v.to_string());
    let kpa = class
        .as_deref()
        .is_none_or(|c| c == "kpa.autoscaling.knative.dev");
    if let Some(c) = &class
        && c.ends_with(".knative.dev")
        && c != "kpa.autoscaling.knative.dev"
        && c != "hpa.autoscaling.knative.dev"
    {
        errs.push(FieldError::invalid(c, key("class")));
    }
    if let Some((k, m)) = lookup(ann, &["metric"], &mut errs) {
        let ok = if kpa {
            matches!(m, "concurrency" | "rps")
        } else {
            !m.is_empty()
        };
        if !ok {
            errs.push(FieldError::invalid(m, k));
        }
    }
    float_in(ann, &["target"], 0.01, f64::MAX, &mut errs);
    float_in(
        ann,
        &[
            "target-utilization-percentage",
            "targetUtilizationPercentage",
        ],
        1.0,
        100.0,
        &mut errs,
    );
    if let Some((k, v)) = lookup(
        ann,
        &["target-burst-capacity", "targetBurstCapacity"],
        &mut errs,
    ) {
        match v.parse::<f64>() {
            Ok(f) if f.is_finite() && (f >= 0.0 || f == -1.0) => {}
            _ => errs.push(FieldError::invalid(v, k)),
        }
    }
    let min = int_at_least(ann, &["min-scale", "minScale"], 0, &mut errs);
    let max = int_at_least(ann, &["max-scale", "maxScale"], 0, &mut errs);
    if let (Some(min), Some(max)) = (min, max)
        && max != 0
        && min > max
    {
        errs.push(FieldError::new(
            format!("max-scale={max} is less than min-scale={min}"),
            key("max-scale"),
        ));
    }
    if limits.max_scale_limit > 0
        && let Some(max) = max
        && (max == 0 || max > limits.max_scale_limit)
    {
        errs.push(FieldError::out_of_bounds(
            max,
            1,
            limits.max_scale_limit,
            key("max-scale"),
        ));
    }
    if let Some(initial) = int_at_least(ann, &["initial-scale", "initialScale"], 0, &mut errs)
        && initial == 0
        && !limits.allow_zero_initial_scale
    {
        errs.push(
            FieldError::invalid(0, key("initial-scale")).with_details(
                "set allow-zero-initial-scale to true in config-autoscaler to allow 0",
            ),
        );
    }
    if let Some(act) = int_at_least(ann, &["activation-scale"], 2, &mut errs)
        && (min.is_some_and(|m| act < m) || max.is_some_and(|m| m > 0 && act > m))
    {
        errs.push(
            FieldError::invalid(act, key("activation-scale"))
                .with_details("activation-scale must be between min-scale and max-scale"),
        );
    }
    let hour = Duration::from_secs(3600);
    duration_in(
        ann,
        &["window"],
        Duration::from_secs(6),
        hour,
        true,
        &mut errs,
    );
    float_in(
        ann,
        &["panic-window-percentage", "panicWindowPercentage"],
        1.0,
        100.0,
        &mut errs,
    );
    float_in(
        ann,
        &["panic-threshold-percentage", "panicThresholdPercentage"],
        110.0,
        1000.0,
        &mut errs,
    );
    duration_in(
        ann,
        &["scale-down-delay", "scaleDownDelay"],
        Duration::ZERO,
        hour,
        true,
        &mut errs,
    );
    duration_in(
        ann,
        &[
            "scale-to-zero-pod-retention-period",
            "scaleToZeroPodRetentionPeriod",
        ],
        Duration::ZERO,
        hour,
        false,
        &mut errs,
    );
    if let Some((k, v)) = lookup(
        ann,
        &["metric-aggregation-algorithm", "metricAggregationAlgorithm"],
        &mut errs,
    ) && !matches!(v, "linear" | "weighted-exponential" | "weightedExponential")
    {
        errs.push(FieldError::invalid(v, k));
    }
    // Errors above name the annotation key; present them under `annotations`.
    FieldErrors(errs.0.into_iter().map(|e| e.via("annotations")).collect())
}

/// Validates `serving.knative.dev/rollout-duration` (whole seconds, ≥ 0).
pub fn validate_rollout_duration(ann: &Annotations) -> FieldErrors {
    let mut errs = FieldErrors::default();
    for k in ROLLOUT_DURATION {
        if let Some(v) = ann.get(k) {
            match parse_go_duration(v) {
                Ok(d) if d.subsec_nanos() != 0 => errs.push(
                    FieldError::invalid(v, format!("annotations.{k}"))
                        .with_details("rollout-duration must be a whole number of seconds"),
                ),
                Ok(_) => {}
                Err(_) => errs.push(FieldError::invalid(v, format!("annotations.{k}"))),
            }
        }
    }
    errs
}

/// Validates `serving.knative.dev/progress-deadline` (whole seconds, ≥ 0).
pub fn validate_progress_deadline(ann: &Annotations) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if let Some(v) = ann.get(PROGRESS_DEADLINE) {
        let path = format!("annotations.{PROGRESS_DEADLINE}");
        match parse_go_duration(v) {
            Ok(d) if d.subsec_nanos() == 0 => {}
            _ => errs.push(FieldError::invalid(v, path)),
        }
    }
    errs
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
        validate_autoscaling(&ann(pairs), &AutoscalerLimits::default()).to_string()
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
    }

    #[test]
    fn max_scale_limit_applies() {
        let limits = AutoscalerLimits {
            allow_zero_initial_scale: true,
            max_scale_limit: 10,
        };
        assert!(!validate_autoscaling(&ann(&[("max-scale", "11")]), &limits).is_empty());
        assert!(!validate_autoscaling(&ann(&[("max-scale", "0")]), &limits).is_empty());
        assert!(validate_autoscaling(&ann(&[("initial-scale", "0")]), &limits).is_empty());
    }
}
