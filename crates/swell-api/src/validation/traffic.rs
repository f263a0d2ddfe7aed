//! Validation of traffic blocks (§1.5).

use crate::field_error::{FieldError, FieldErrors};
use crate::names::{dns1035_label_error, dns1035_label_errors};
use crate::traffic::TrafficTarget;
use std::collections::BTreeSet;

/// Validates `spec.traffic` (relative paths: `traffic[i].…`). In a Service,
/// `configurationName` is implicit and therefore forbidden.
pub fn validate_traffic(traffic: &[TrafficTarget], in_service: bool) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let mut sum = 0i64;
    let mut tags = BTreeSet::new();
    for (i, t) in traffic.iter().enumerate() {
        let mut e = FieldErrors::default();
        let rev = t.revision_name.as_deref().filter(|s| !s.is_empty());
        let cfg = t.configuration_name.as_deref().filter(|s| !s.is_empty());
        if in_service {
            if cfg.is_some() {
                e.push(FieldError::disallowed("configurationName"));
            }
        } else {
            match (rev, cfg) {
                (Some(_), Some(_)) => e.push(FieldError::one_of(
                    &["revisionName", "configurationName"],
                    &["revisionName", "configurationName"],
                )),
                (None, None) => e.push(FieldError::one_of(
                    &[],
                    &["revisionName", "configurationName"],
                )),
                _ => {}
            }
        }
        if let Some(latest) = t.latest_revision
            && latest == rev.is_some()
        {
            e.push(
                FieldError::invalid(latest, "latestRevision").with_details(match rev {
                    Some(r) => {
                        format!("may not set revisionName {r:?} when latestRevision is true")
                    }
                    None => "may not set latestRevision to false without a revisionName".into(),
                }),
            );
        }
        if let Some(r) = rev
            && let Some(why) = dns1035_label_error(r)
        {
            e.push(FieldError::invalid(r, "revisionName").with_details(why));
        }
        match t.percent {
            Some(p) if !(0..=100).contains(&p) => {
                e.push(FieldError::out_of_bounds(p, 0, 100, "percent"))
            }
            Some(p) => sum += p,
            None => {}
        }
        if t.url.is_some() {
            e.push(FieldError::disallowed("url"));
        }
        if let Some(tag) = &t.tag {
            let why = dns1035_label_errors(tag);
            if !why.is_empty() {
                // Knative prints Go's rendering of the list: `[first second]`.
                e.push(FieldError::invalid(
                    format!("not a DNS 1035 label: [{}]", why.join(" ")),
                    "tag",
                ));
            }
            if !tags.insert(tag.clone()) {
                e.push(FieldError::new(
                    format!("Multiple definitions for {tag:?}"),
                    "tag",
                ));
            }
        }
        errs.extend_via(&format!("traffic[{i}]"), e);
    }
    if sum != 100 {
        errs.push(FieldError::new(
            format!("Traffic targets sum to {sum}, want 100"),
            "traffic",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(tag: Option<&str>, rev: Option<&str>, percent: i64) -> TrafficTarget {
        TrafficTarget {
            tag: tag.map(Into::into),
            revision_name: rev.map(Into::into),
            latest_revision: Some(rev.is_none()),
            percent: Some(percent),
            ..Default::default()
        }
    }

    #[test]
    fn sum_must_be_100() {
        let t = [target(None, Some("a-1"), 50), target(None, None, 49)];
        assert_eq!(
            validate_traffic(&t, true).to_string(),
            "Traffic targets sum to 99, want 100: traffic"
        );
        let t = [
            target(Some("current"), Some("a-1"), 90),
            target(Some("candidate"), None, 10),
        ];
        assert!(validate_traffic(&t, true).is_empty());
    }

    #[test]
    fn tags_are_unique() {
        let t = [
            target(Some("x"), Some("a-1"), 50),
            target(Some("x"), None, 50),
        ];
        assert_eq!(
            validate_traffic(&t, true).to_string(),
            "Multiple definitions for \"x\": traffic[1].tag"
        );
    }

    #[test]
    fn route_needs_exactly_one_target_kind() {
        let mut t = target(None, Some("a-1"), 100);
        t.configuration_name = Some("a".into());
        let msg = validate_traffic(&[t], false).to_string();
        assert!(msg.contains("expected exactly one, got both"), "{msg}");
        let t = TrafficTarget {
            percent: Some(100),
            ..Default::default()
        };
        assert!(
            validate_traffic(std::slice::from_ref(&t), false)
                .to_string()
                .contains("got neither")
        );
        let mut svc = t;
        svc.configuration_name = Some("a".into());
        assert!(
            validate_traffic(&[svc], true)
                .to_string()
                .contains("must not set")
        );
    }
}
