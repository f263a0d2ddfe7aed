//! Knative's annotations: their keys; the `autoscaling.knative.dev/*` ones (§3.8) and
//! the progress deadline, parsed into [`Autoscaling`]; autoscaling annotations out of
//! place; the rollout duration (§2.4).

use crate::duration::parse_go_duration;
use crate::field_error::{FieldError, FieldErrors};
use std::collections::BTreeMap;

mod autoscaling;

pub use autoscaling::{
    Autoscaling, Class, HPA, KPA, Metric, MetricAggregationAlgorithm, validate_autoscaling,
};

/// Prefix of every autoscaling annotation.
pub const AUTOSCALING_PREFIX: &str = "autoscaling.knative.dev";
/// Gradual rollout duration, and its older spelling.
pub const ROLLOUT_DURATION: [&str; 2] = [
    "serving.knative.dev/rollout-duration",
    "serving.knative.dev/rolloutDuration",
];
/// Per-revision progress deadline.
pub const PROGRESS_DEADLINE: &str = "serving.knative.dev/progress-deadline";

type Annotations = BTreeMap<String, String>;

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
