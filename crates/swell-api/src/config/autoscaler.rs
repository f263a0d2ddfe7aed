//! `config-autoscaler` (§3.7): its keys parsed once, with Knative's defaults and
//! validation, into the [`Autoscaler`] that admission and the autoscaler both read.

use super::{Data, boolean, err, float, int};
use crate::annotations::{HPA, KPA};
use crate::duration::parse_go_duration;
use crate::field_error::FieldErrors;
use std::time::Duration;

/// `config-autoscaler`, every key Swell uses, with Knative's defaults. Its
/// `pod-autoscaler-class` is validated but not kept: a Revision's class is its
/// `autoscaling.knative.dev/class` annotation, the KPA when absent.
#[derive(Clone, Debug, PartialEq)]
pub struct Autoscaler {
    /// `container-concurrency-target-percentage`, as a fraction (70 → 0.7).
    pub container_concurrency_target_fraction: f64,
    /// `container-concurrency-target-default`.
    pub container_concurrency_target_default: f64,
    /// `requests-per-second-target-default`.
    pub requests_per_second_target_default: f64,
    /// `target-burst-capacity` (−1: unlimited).
    pub target_burst_capacity: f64,
    /// `stable-window` (whole seconds, 6 s to 1 h).
    pub stable_window: Duration,
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
    /// `scale-to-zero-grace-period`.
    pub scale_to_zero_grace_period: Duration,
    /// `scale-to-zero-pod-retention-period`.
    pub scale_to_zero_pod_retention_period: Duration,
    /// `scale-down-delay` (whole seconds).
    pub scale_down_delay: Duration,
    /// `activator-capacity`.
    pub activator_capacity: f64,
    /// `initial-scale`.
    pub initial_scale: u32,
    /// `allow-zero-initial-scale`.
    pub allow_zero_initial_scale: bool,
    /// `min-scale`.
    pub min_scale: u32,
    /// `max-scale` (0: unbounded).
    pub max_scale: u32,
    /// `max-scale-limit` (0: none): the most a Revision's `max-scale` may ask for.
    pub max_scale_limit: u32,
}

impl Default for Autoscaler {
    fn default() -> Self {
        Self {
            container_concurrency_target_fraction: 0.7,
            container_concurrency_target_default: 100.0,
            requests_per_second_target_default: 200.0,
            target_burst_capacity: 211.0,
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            enable_scale_to_zero: true,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            scale_down_delay: Duration::ZERO,
            activator_capacity: 100.0,
            initial_scale: 1,
            allow_zero_initial_scale: false,
            min_scale: 0,
            max_scale: 0,
            max_scale_limit: 0,
        }
    }
}

impl Autoscaler {
    /// Parses `config-autoscaler`'s data; the errors name each offending key
    /// (`data.<key>`), as admission reports them.
    pub fn from_data(data: &Data) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::default();
        let parsed = parse(data, &mut errs);
        errs.into_result().map(|()| parsed)
    }
}

/// A replica count admission checked to be ≥ 0.
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads every key of `config-autoscaler`, recording what is invalid in `errs`; an
/// invalid key keeps its default.
pub(super) fn parse(data: &Data, errs: &mut FieldErrors) -> Autoscaler {
    let mut a = Autoscaler::default();
    let pct = |key: &str, lo: f64, hi: f64, errs: &mut FieldErrors| {
        let n = float(data, key, lo, errs)?;
        if n > hi {
            errs.push(err(key, &data[key], &format!("must be at most {hi}")));
            return None;
        }
        Some(n)
    };
    if let Some(p) = pct("container-concurrency-target-percentage", 0.0, 100.0, errs) {
        // Values up to 1.0 are a fraction already, as in Knative.
        a.container_concurrency_target_fraction = if p <= 1.0 { p } else { p / 100.0 };
    }
    if let Some(n) = float(data, "container-concurrency-target-default", 0.01, errs) {
        a.container_concurrency_target_default = n;
    }
    if let Some(n) = float(data, "requests-per-second-target-default", 0.01, errs) {
        a.requests_per_second_target_default = n;
    }
    if let Some(v) = data.get("target-burst-capacity") {
        match v.trim().parse::<f64>() {
            Ok(n) if n >= 0.0 || n == -1.0 => a.target_burst_capacity = n,
            _ => errs.push(err("target-burst-capacity", v, "must be >= 0 or -1")),
        }
    }
    if let Some(n) = pct("panic-window-percentage", 1.0, 100.0, errs) {
        a.panic_window_percentage = n;
    }
    if let Some(n) = float(data, "panic-threshold-percentage", 110.0, errs) {
        a.panic_threshold_percentage = n;
    }
    for (key, slot) in [
        ("max-scale-up-rate", &mut a.max_scale_up_rate),
        ("max-scale-down-rate", &mut a.max_scale_down_rate),
    ] {
        match float(data, key, 1.0, errs) {
            Some(1.0) => errs.push(err(key, &data[key], "must be greater than 1")),
            Some(n) => *slot = n,
            None => {}
        }
    }
    if let Some(n) = float(data, "activator-capacity", 1.0, errs) {
        a.activator_capacity = n;
    }
    parse_durations(data, &mut a, errs);
    if let Some(b) = boolean(data, "enable-scale-to-zero", errs) {
        a.enable_scale_to_zero = b;
    }
    if let Some(b) = boolean(data, "allow-zero-initial-scale", errs) {
        a.allow_zero_initial_scale = b;
    }
    match int(data, "initial-scale", 0, errs) {
        Some(0) if !a.allow_zero_initial_scale => errs.push(err(
            "initial-scale",
            "0",
            "0 requires allow-zero-initial-scale: true",
        )),
        Some(n) => a.initial_scale = count(n),
        None => {}
    }
    if let Some(n) = int(data, "max-scale-limit", 0, errs) {
        a.max_scale_limit = count(n);
    }
    let min = int(data, "min-scale", 0, errs);
    let max = int(data, "max-scale", 0, errs);
    if let (Some(min), Some(max)) = (min, max)
        && max > 0
        && min > max
    {
        errs.push(err(
            "min-scale",
            &min.to_string(),
            "must not exceed max-scale",
        ));
    }
    a.min_scale = min.map_or(a.min_scale, count);
    a.max_scale = max.map_or(a.max_scale, count);
    if let Some(v) = data.get("pod-autoscaler-class")
        && !matches!(v.as_str(), KPA | HPA)
    {
        errs.push(err(
            "pod-autoscaler-class",
            v,
            "must be kpa.autoscaling.knative.dev or hpa.autoscaling.knative.dev",
        ));
    }
    a
}

/// The duration keys: `stable-window`, `scale-to-zero-grace-period`,
/// `scale-to-zero-pod-retention-period` and `scale-down-delay`.
fn parse_durations(data: &Data, a: &mut Autoscaler, errs: &mut FieldErrors) {
    let read = |key: &str, errs: &mut FieldErrors| {
        let v = data.get(key)?;
        match parse_go_duration(v.trim()) {
            Ok(d) => Some(d),
            Err(_) => {
                errs.push(err(key, v, "must be a duration such as 30s or 1h"));
                None
            }
        }
    };
    if let Some(w) = read("stable-window", errs) {
        let s = w.as_secs_f64();
        if (6.0..=3600.0).contains(&s) && s.fract() == 0.0 {
            a.stable_window = w;
        } else {
            errs.push(err(
                "stable-window",
                &data["stable-window"],
                "must be whole seconds between 6s and 1h",
            ));
        }
    }
    if let Some(g) = read("scale-to-zero-grace-period", errs) {
        if g.is_zero() {
            errs.push(err(
                "scale-to-zero-grace-period",
                &data["scale-to-zero-grace-period"],
                "must be positive",
            ));
        } else {
            a.scale_to_zero_grace_period = g;
        }
    }
    if let Some(r) = read("scale-to-zero-pod-retention-period", errs) {
        a.scale_to_zero_pod_retention_period = r;
    }
    if let Some(d) = read("scale-down-delay", errs) {
        if d.as_secs_f64().fract() == 0.0 {
            a.scale_down_delay = d;
        } else {
            errs.push(err(
                "scale-down-delay",
                &data["scale-down-delay"],
                "must be whole seconds",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::data;

    #[test]
    fn keys_are_read_with_knatives_defaults() {
        assert_eq!(
            Autoscaler::from_data(&Data::new()),
            Ok(Autoscaler::default())
        );
        let a = Autoscaler::from_data(&data(&[
            ("stable-window", "30s"),
            ("container-concurrency-target-percentage", "0.5"),
            ("scale-to-zero-grace-period", "10s"),
            ("enable-scale-to-zero", "false"),
            ("max-scale", "4"),
            ("max-scale-limit", "8"),
        ]))
        .unwrap();
        assert_eq!(a.stable_window, Duration::from_secs(30));
        assert_eq!(a.container_concurrency_target_fraction, 0.5);
        assert_eq!(a.scale_to_zero_grace_period, Duration::from_secs(10));
        assert!(!a.enable_scale_to_zero);
        assert_eq!((a.max_scale, a.max_scale_limit), (4, 8));
        let percent = data(&[("container-concurrency-target-percentage", "80")]);
        let fraction = Autoscaler::from_data(&percent)
            .unwrap()
            .container_concurrency_target_fraction;
        assert!((fraction - 0.8).abs() < 1e-9);
    }

    #[test]
    fn limits_are_knatives() {
        for (k, v) in [
            ("stable-window", "5s"),
            ("stable-window", "2h"),
            ("stable-window", "6500ms"),
            ("stable-window", "soon"),
            ("scale-to-zero-grace-period", "0s"),
            ("scale-down-delay", "1500ms"),
            ("max-scale-up-rate", "1"),
            ("max-scale-down-rate", "1.0"),
            ("target-burst-capacity", "-5"),
        ] {
            let e = Autoscaler::from_data(&data(&[(k, v)])).unwrap_err();
            assert!(
                e.to_string().contains(&format!("data.{k}")),
                "{k}: {v}: {e}"
            );
        }
        let ok = Autoscaler::from_data(&data(&[
            ("stable-window", "6s"),
            ("scale-to-zero-grace-period", "1s"),
            ("scale-down-delay", "2s"),
            ("max-scale-down-rate", "1.5"),
        ]))
        .unwrap();
        assert_eq!(ok.stable_window, Duration::from_secs(6));
        assert_eq!(ok.scale_down_delay, Duration::from_secs(2));
        assert_eq!(ok.max_scale_down_rate, 1.5);
    }
}
