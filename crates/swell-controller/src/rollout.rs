//! Gradual rollout (§2.4): when a configuration target's latest ready Revision changes,
//! traffic moves from the old Revisions to the new one in steps over the rollout
//! duration instead of at once. The state is kept as JSON in the Route's
//! `status.annotations`, in Knative's shape.

use serde::{Deserialize, Serialize};

/// Status annotation holding the rollout state.
pub const ANNOTATION: &str = "networking.internal.knative.dev/rollout";

/// One Revision's share within a configuration target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionShare {
    /// Revision name.
    pub revision_name: String,
    /// Its percent of the whole Route.
    pub percent: i64,
}

/// When and by how much the next step moves traffic (times in Unix nanoseconds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepParams {
    /// When the current rollout started.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_time: i64,
    /// When the next step is due.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_step_time: i64,
    /// Nanoseconds between steps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step_duration: i64,
    /// Percent moved per step.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step_size: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The rollout of one configuration target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationRollout {
    /// The Configuration.
    pub configuration_name: String,
    /// The target's tag (empty for none).
    #[serde(default)]
    pub tag: String,
    /// The target's total percent.
    pub percent: i64,
    /// Oldest first; the last is the newest.
    pub revisions: Vec<RevisionShare>,
    /// Step parameters while rolling.
    #[serde(default)]
    pub step_params: StepParams,
}

/// Every configuration target's rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Sorted by tag, then configuration name.
    pub configurations: Vec<ConfigurationRollout>,
}

const SECOND: i64 = 1_000_000_000;

impl ConfigurationRollout {
    /// True while more than one Revision shares the target.
    pub fn rolling(&self) -> bool {
        self.revisions.len() > 1
    }

    /// Moves the target to `latest` at `percent`: a new Revision enters with 1%, taken
    /// from the newest one (only when rollouts apply: `percent > 1` and `duration > 0`);
    /// a changed total goes to the newest (up) or comes from the oldest (down).
    /// Returns true when a rollout started.
    fn retarget(&mut self, latest: &str, percent: i64, now: i64, enabled: bool) -> bool {
        let mut started = false;
        if self
            .revisions
            .last()
            .is_some_and(|r| r.revision_name != latest)
        {
            if enabled && percent > 1 && self.revisions.last().is_some_and(|r| r.percent > 1) {
                if let Some(newest) = self.revisions.last_mut() {
                    newest.percent -= 1;
                }
                self.revisions.push(RevisionShare {
                    revision_name: latest.into(),
                    percent: 1,
                });
                self.step_params = StepParams {
                    start_time: now,
                    ..StepParams::default()
                };
                started = true;
            } else {
                self.revisions = vec![RevisionShare {
                    revision_name: latest.into(),
                    percent,
                }];
                self.step_params = StepParams::default();
            }
        }
        let total: i64 = self.revisions.iter().map(|r| r.percent).sum();
        if percent > total {
            if let Some(newest) = self.revisions.last_mut() {
                newest.percent += percent - total;
            }
        } else {
            let mut excess = total - percent;
            for r in &mut self.revisions {
                let take = excess.min(r.percent);
                r.percent -= take;
                excess -= take;
            }
            let newest = self.revisions.last().cloned();
            self.revisions.retain(|r| r.percent > 0);
            if self.revisions.is_empty()
                && let Some(mut n) = newest
            {
                n.percent = percent;
                self.revisions.push(n);
            }
        }
        self.percent = percent;
        started
    }

    /// Advances the rollout to `now` for a rollout lasting `duration` nanoseconds.
    fn step(&mut self, now: i64, duration: i64) {
        if !self.rolling() {
            self.step_params = StepParams::default();
            return;
        }
        let p = &mut self.step_params;
        if p.step_size == 0 {
            // First observation: spread the remaining time over steps at least as long
            // as it took to get here.
            let min_step = ((now - p.start_time + SECOND - 1) / SECOND).max(1) * SECOND;
            let d = (duration - min_step).max(SECOND);
            let num_steps = (d / min_step).max(1).min((self.percent - 1).max(1));
            p.step_size = (((self.percent - 1) as f64 / num_steps as f64).round() as i64).max(1);
            p.step_duration = d / num_steps;
            p.next_step_time = now + p.step_duration;
            return;
        }
        while self.rolling() && now >= self.step_params.next_step_time {
            let mut moved = self.step_params.step_size;
            let last = self.revisions.len() - 1;
            for r in &mut self.revisions[..last] {
                let take = moved.min(r.percent);
                r.percent -= take;
                moved -= take;
            }
            let gained = self.step_params.step_size - moved;
            self.revisions[last].percent += gained;
            self.revisions.retain(|r| r.percent > 0);
            self.step_params.next_step_time += self.step_params.step_duration;
        }
        if !self.rolling() {
            self.step_params = StepParams::default();
        }
    }
}

/// One configuration target as the Route resolves it.
#[derive(Clone, Debug)]
pub struct Target {
    /// Tag, or empty.
    pub tag: String,
    /// Configuration name.
    pub configuration_name: String,
    /// Its latest ready Revision.
    pub latest: String,
    /// Its percent.
    pub percent: i64,
}

/// The next rollout state from the previous one, the targets now, the time (Unix ns)
/// and the rollout duration (ns; 0 = disabled).
pub fn advance(previous: &Rollout, targets: &[Target], now: i64, duration: i64) -> Rollout {
    let mut configurations: Vec<ConfigurationRollout> = targets
        .iter()
        .map(|t| {
            let mut c = previous
                .configurations
                .iter()
                .find(|c| c.configuration_name == t.configuration_name && c.tag == t.tag)
                .cloned()
                .unwrap_or_else(|| ConfigurationRollout {
                    configuration_name: t.configuration_name.clone(),
                    tag: t.tag.clone(),
                    percent: t.percent,
                    revisions: vec![RevisionShare {
                        revision_name: t.latest.clone(),
                        percent: t.percent,
                    }],
                    step_params: StepParams::default(),
                });
            let started = c.retarget(&t.latest, t.percent, now, duration > 0);
            if duration > 0 {
                // Step parameters come from the next observation, not the one that
                // started the rollout.
                if !started {
                    c.step(now, duration);
                }
            } else {
                c.revisions = vec![RevisionShare {
                    revision_name: t.latest.clone(),
                    percent: t.percent,
                }];
                c.step_params = StepParams::default();
            }
            c
        })
        .collect();
    configurations
        .sort_by(|a, b| (&a.tag, &a.configuration_name).cmp(&(&b.tag, &b.configuration_name)));
    Rollout { configurations }
}

impl Rollout {
    /// True while any target is rolling.
    pub fn in_progress(&self) -> bool {
        self.configurations
            .iter()
            .any(ConfigurationRollout::rolling)
    }

    /// When the rollout should next be looked at (Unix ns), if rolling: the next step,
    /// or one second after the start while the step parameters are not computed yet.
    pub fn next_step(&self) -> Option<i64> {
        self.configurations
            .iter()
            .filter(|c| c.rolling())
            .map(|c| {
                if c.step_params.step_size == 0 {
                    c.step_params.start_time + SECOND
                } else {
                    c.step_params.next_step_time
                }
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(latest: &str, percent: i64) -> Target {
        Target {
            tag: String::new(),
            configuration_name: "hello".into(),
            latest: latest.into(),
            percent,
        }
    }

    fn shares(r: &Rollout) -> Vec<(String, i64)> {
        r.configurations[0]
            .revisions
            .iter()
            .map(|s| (s.revision_name.clone(), s.percent))
            .collect()
    }

    #[test]
    fn a_new_revision_starts_at_one_percent_and_takes_over_in_steps() {
        let d = 120 * SECOND;
        let start = 1_000 * SECOND;
        let r = advance(&Rollout::default(), &[target("v1", 100)], start, d);
        assert_eq!(shares(&r), [("v1".into(), 100)]);
        let r = advance(&r, &[target("v2", 100)], start, d);
        assert_eq!(shares(&r), [("v1".into(), 99), ("v2".into(), 1)]);
        // Observed 1 s later: 99 steps of 1% every 119/99 s (Knative's worked example).
        let r = advance(&r, &[target("v2", 100)], start + SECOND, d);
        let p = &r.configurations[0].step_params;
        assert_eq!((p.step_size, p.step_duration), (1, 119 * SECOND / 99));
        let r = advance(&r, &[target("v2", 100)], p.next_step_time, d);
        assert_eq!(shares(&r), [("v1".into(), 98), ("v2".into(), 2)]);
        let r = advance(&r, &[target("v2", 100)], start + 200 * SECOND, d);
        assert_eq!(shares(&r), [("v2".into(), 100)]);
        assert!(!r.in_progress());
        assert_eq!(r.configurations[0].step_params, StepParams::default());
    }

    #[test]
    fn slow_observation_takes_bigger_steps() {
        let d = 120 * SECOND;
        let r = advance(&Rollout::default(), &[target("v1", 100)], 0, d);
        let r = advance(&r, &[target("v2", 100)], 0, d);
        let r = advance(&r, &[target("v2", 100)], 2_400_000_000, d);
        let p = &r.configurations[0].step_params;
        assert_eq!(
            (p.step_size, p.step_duration),
            (3, 3 * SECOND),
            "minStep 3 s: 39 steps of 3%"
        );
    }

    #[test]
    fn disabled_or_one_percent_targets_switch_at_once() {
        let r = advance(&Rollout::default(), &[target("v1", 100)], 0, 0);
        assert_eq!(
            shares(&advance(&r, &[target("v2", 100)], 0, 0)),
            [("v2".into(), 100)]
        );
        let r = advance(&Rollout::default(), &[target("v1", 1)], 0, 60 * SECOND);
        assert_eq!(
            shares(&advance(&r, &[target("v2", 1)], 0, 60 * SECOND)),
            [("v2".into(), 1)]
        );
    }

    #[test]
    fn percent_changes_go_to_the_newest_and_come_from_the_oldest() {
        let d = 60 * SECOND;
        let r = advance(&Rollout::default(), &[target("v1", 50)], 0, d);
        let r = advance(&r, &[target("v2", 50)], 0, d);
        assert_eq!(shares(&r), [("v1".into(), 49), ("v2".into(), 1)]);
        let up = advance(&r, &[target("v2", 60)], 0, d);
        assert_eq!(shares(&up), [("v1".into(), 49), ("v2".into(), 11)]);
        let down = advance(&r, &[target("v2", 10)], 0, d);
        assert_eq!(shares(&down), [("v1".into(), 9), ("v2".into(), 1)]);
    }
}
