//! Revision garbage collection per `config-gc` (§6.2): which non-active Revisions of a
//! Configuration to delete. A routed Revision (routingState other than `reserve`), the
//! latest ready one and `no-gc` ones are never deleted.

use crate::labels;
use std::time::Duration;
use swell_api::Revision;
use swell_api::config::Gc;

/// Annotation that exempts a Revision from garbage collection.
pub const NO_GC: &str = "serving.knative.dev/no-gc";

fn seconds(ts: Option<&str>) -> Option<i64> {
    ts?.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// When a Revision was last active: its routingState change, else its creation.
fn last_active(rev: &Revision) -> i64 {
    let modified = rev
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::ROUTING_STATE_MODIFIED))
        .map(String::as_str);
    let created = rev
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second());
    seconds(modified).or(created).unwrap_or(0)
}

fn older_than(now: i64, then: i64, keep: Option<Duration>) -> bool {
    keep.is_none_or(|d| now - then >= i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Names of the Revisions to delete, oldest first. `now` is in Unix seconds.
pub fn collect(
    revisions: &[Revision],
    latest_ready: Option<&str>,
    gc: &Gc,
    now: i64,
) -> Vec<String> {
    if gc.max_non_active.is_none()
        && gc.retain_since_create.is_none()
        && gc.retain_since_last_active.is_none()
    {
        return Vec::new();
    }
    if revisions.len() <= gc.min_non_active {
        return Vec::new();
    }
    let mut candidates: Vec<&Revision> = revisions
        .iter()
        .filter(|r| {
            let name = r.metadata.name.as_deref();
            let no_gc = r
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(NO_GC))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let state = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::ROUTING_STATE))
                .map(String::as_str);
            name != latest_ready && !no_gc && state == Some("reserve")
        })
        .collect();
    if candidates.len() <= gc.min_non_active {
        return Vec::new();
    }
    // Timestamps have one-second resolution: ties go to the older Revision.
    candidates.sort_by_key(|r| {
        (
            last_active(r),
            r.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            r.metadata.name.clone(),
        )
    });
    let mut doomed = Vec::new();
    let mut survivors = Vec::new();
    let time_checks = gc.retain_since_create.is_some() || gc.retain_since_last_active.is_some();
    for r in &candidates {
        let created = r
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second());
        let stale = time_checks
            && older_than(now, created, gc.retain_since_create)
            && older_than(now, last_active(r), gc.retain_since_last_active);
        if stale && doomed.len() < candidates.len() - gc.min_non_active {
            doomed.push(r.metadata.name.clone().unwrap_or_default());
        } else {
            survivors.push(r.metadata.name.clone().unwrap_or_default());
        }
    }
    if let Some(max) = gc.max_non_active {
        let excess = survivors.len().saturating_sub(max);
        doomed.extend(survivors.into_iter().take(excess));
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: i64 = 3600;
    const NOW: i64 = 1_800_000_000;

    fn rev(n: i64, state: &str, active_hours_ago: i64) -> Revision {
        let ts = |s: i64| {
            jiff::Timestamp::from_second(s)
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        };
        serde_json::from_value(json!({"metadata": {
            "name": format!("hello-{n:05}"),
            "creationTimestamp": ts(NOW - 100 * HOUR + n),
            "labels": {"serving.knative.dev/routingState": state},
            "annotations": {"serving.knative.dev/routingStateModified": ts(NOW - active_hours_ago * HOUR)},
        }}))
        .unwrap()
    }

    fn gc(create: Option<i64>, active: Option<i64>, min: usize, max: Option<usize>) -> Gc {
        Gc {
            retain_since_create: create
                .map(|h| Duration::from_secs(u64::try_from(h * HOUR).unwrap())),
            retain_since_last_active: active
                .map(|h| Duration::from_secs(u64::try_from(h * HOUR).unwrap())),
            min_non_active: min,
            max_non_active: max,
        }
    }

    #[test]
    fn stale_reserve_revisions_go_oldest_first_down_to_min() {
        let revs = [
            rev(1, "reserve", 30),
            rev(2, "reserve", 20),
            rev(3, "reserve", 16),
            rev(4, "reserve", 1),
            rev(5, "active", 0),
        ];
        // Stale = inactive ≥ 15 h (and created ≥ 48 h ago, which all were): 1, 2, 3.
        assert_eq!(
            collect(
                &revs,
                Some("hello-00005"),
                &gc(Some(48), Some(15), 1, Some(1000)),
                NOW
            ),
            ["hello-00001", "hello-00002", "hello-00003"]
        );
        // min 3 of the 4 non-active: only one may go.
        assert_eq!(
            collect(
                &revs,
                Some("hello-00005"),
                &gc(Some(48), Some(15), 3, Some(1000)),
                NOW
            ),
            ["hello-00001"]
        );
    }

    #[test]
    fn routed_latest_ready_and_no_gc_revisions_are_kept() {
        let mut pinned = rev(2, "reserve", 40);
        pinned
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(NO_GC.into(), "TRUE".into());
        let revs = [
            rev(1, "active", 40),
            pinned,
            rev(3, "pending", 40),
            rev(4, "reserve", 40),
        ];
        assert_eq!(
            collect(
                &revs,
                Some("hello-00004"),
                &gc(Some(1), Some(1), 0, None),
                NOW
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn ties_in_last_activity_go_to_the_older_revision() {
        let revs = [
            rev(3, "reserve", 2),
            rev(2, "reserve", 2),
            rev(4, "active", 0),
        ];
        assert_eq!(
            collect(&revs, Some("hello-00004"), &gc(None, None, 0, Some(1)), NOW),
            ["hello-00002"]
        );
    }

    #[test]
    fn max_bounds_survivors_even_without_time_checks() {
        let revs = [
            rev(1, "reserve", 1),
            rev(2, "reserve", 1),
            rev(3, "reserve", 1),
            rev(4, "active", 0),
        ];
        assert_eq!(
            collect(&revs, Some("hello-00004"), &gc(None, None, 0, Some(1)), NOW),
            ["hello-00001", "hello-00002"]
        );
        assert!(
            collect(&revs, None, &gc(None, None, 0, None), NOW).is_empty(),
            "everything disabled"
        );
    }
}
