//! Status conditions as Knative's "living condition sets" keep them: `Ready` follows its
//! dependent conditions; a condition's `lastTransitionTime` changes only with its status.

use swell_api::Condition;

/// `True`, `False`, `Unknown`.
pub const TRUE: &str = "True";
/// Condition status False.
pub const FALSE: &str = "False";
/// Condition status Unknown.
pub const UNKNOWN: &str = "Unknown";

/// Now, as Kubernetes writes times.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Sets one condition, keeping its transition time if the status did not change.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let previous = conditions.iter().find(|c| c.type_ == type_).cloned();
    let last_transition_time = match &previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(now()),
    };
    let c = Condition {
        type_: type_.into(),
        status: status.into(),
        severity: String::new(),
        last_transition_time,
        reason: reason.into(),
        message: message.into(),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(slot) => *slot = c,
        None => conditions.push(c),
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Sets `Ready` from `deps`: False (with the first failure's reason and message) if any
/// is False, Unknown (likewise) if any is Unknown or missing, else True.
pub fn set_ready(conditions: &mut Vec<Condition>, deps: &[&str]) {
    let find = |t: &str| conditions.iter().find(|c| c.type_ == t).cloned();
    let states: Vec<Condition> = deps
        .iter()
        .map(|d| {
            find(d).unwrap_or_else(|| Condition {
                type_: (*d).into(),
                status: UNKNOWN.into(),
                ..Default::default()
            })
        })
        .collect();
    let pick = |s: &str| states.iter().find(|c| c.status == s);
    let (status, reason, message) = match (pick(FALSE), pick(UNKNOWN)) {
        (Some(c), _) => (FALSE, c.reason.clone(), c.message.clone()),
        (None, Some(c)) => (UNKNOWN, c.reason.clone(), c.message.clone()),
        (None, None) => (TRUE, String::new(), String::new()),
    };
    set(conditions, "Ready", status, &reason, &message);
}

/// The status of a condition, if present.
pub fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_follows_dependents() {
        let mut c = Vec::new();
        set(&mut c, "A", TRUE, "", "");
        set_ready(&mut c, &["A", "B"]);
        assert_eq!(
            status_of(&c, "Ready").unwrap().status,
            UNKNOWN,
            "a missing dependent is Unknown"
        );
        set(&mut c, "B", FALSE, "Broken", "it broke");
        set_ready(&mut c, &["A", "B"]);
        let ready = status_of(&c, "Ready").unwrap();
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.as_str()
            ),
            (FALSE, "Broken", "it broke")
        );
        set(&mut c, "B", TRUE, "", "");
        set_ready(&mut c, &["A", "B"]);
        assert_eq!(status_of(&c, "Ready").unwrap().status, TRUE);
    }

    #[test]
    fn transition_time_kept_while_status_holds() {
        let mut c = vec![Condition {
            type_: "A".into(),
            status: TRUE.into(),
            last_transition_time: Some("2020-01-01T00:00:00Z".into()),
            ..Default::default()
        }];
        set(&mut c, "A", TRUE, "Again", "");
        assert_eq!(
            c[0].last_transition_time.as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        set(&mut c, "A", FALSE, "Now", "");
        assert_ne!(
            c[0].last_transition_time.as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
    }
}
