//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` grants the rules of
//! every ClusterRole its label selectors match, as Kubernetes' clusterrole-aggregation
//! controller writes them (matches in name order, each distinct rule once, to a fixpoint
//! so `admin` picks up `edit`'s rules, which picked up `view`'s).

use super::rules::items;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, HashMap};

/// The rules every ClusterRole grants, by name: its own for a plain ClusterRole, the
/// aggregated ones for a ClusterRole with an `aggregationRule`.
pub fn aggregate(cluster_roles: &[ClusterRole]) -> HashMap<String, Vec<PolicyRule>> {
    let mut sorted: Vec<&ClusterRole> = cluster_roles.iter().collect();
    sorted.sort_by(|a, b| name(a).cmp(name(b)));
    let mut rules: HashMap<String, Vec<PolicyRule>> = sorted
        .iter()
        .map(|r| {
            let own = match r.aggregation_rule {
                Some(_) => Vec::new(),
                None => r.rules.clone().unwrap_or_default(),
            };
            (name(r).to_string(), own)
        })
        .collect();
    // Each pass only adds rules, so this settles within one pass per aggregated role.
    for _ in 0..=sorted.len() {
        let mut changed = false;
        for role in &sorted {
            let Some(agg) = &role.aggregation_rule else {
                continue;
            };
            let mut new: Vec<PolicyRule> = Vec::new();
            for selector in agg.cluster_role_selectors.iter().flatten() {
                for other in &sorted {
                    if name(other) == name(role) || !selects(selector, labels(other)) {
                        continue;
                    }
                    for rule in &rules[name(other)] {
                        if !new.iter().any(|r| same_rule(r, rule)) {
                            new.push(rule.clone());
                        }
                    }
                }
            }
            let current = &rules[name(role)];
            if current.len() != new.len() || !current.iter().zip(&new).all(|(a, b)| same_rule(a, b))
            {
                rules.insert(name(role).to_string(), new);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    rules
}

fn name(role: &ClusterRole) -> &str {
    role.metadata.name.as_deref().unwrap_or("")
}

fn labels(role: &ClusterRole) -> Option<&BTreeMap<String, String>> {
    role.metadata.labels.as_ref()
}

/// Kubernetes' semantic equality of rules: an absent list equals an empty one.
pub(super) fn same_rule(a: &PolicyRule, b: &PolicyRule) -> bool {
    a.verbs == b.verbs
        && items(&a.api_groups) == items(&b.api_groups)
        && items(&a.resources) == items(&b.resources)
        && items(&a.resource_names) == items(&b.resource_names)
        && items(&a.non_resource_urls) == items(&b.non_resource_urls)
}

/// Whether a label selector matches `labels`; an empty selector matches everything and
/// an invalid one (unknown operator) nothing, as `LabelSelectorAsSelector` makes them.
pub(super) fn selects(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v));
    labels_ok
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or(&[]);
            match e.operator.as_str() {
                "In" => get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => get(&e.key).is_some(),
                "DoesNotExist" => get(&e.key).is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::rules::resource_rule;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};

    fn role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            rules: Some(rules),
            aggregation_rule: None,
        }
    }

    fn aggregated(name: &str, labels: &[(&str, &str)], selects: &str) -> ClusterRole {
        let selector = LabelSelector {
            match_labels: Some([(selects.to_string(), "true".to_string())].into()),
            ..LabelSelector::default()
        };
        ClusterRole {
            aggregation_rule: Some(AggregationRule {
                cluster_role_selectors: Some(vec![selector]),
            }),
            rules: None,
            ..role(name, labels, vec![])
        }
    }

    #[test]
    fn aggregates_transitively_in_name_order_without_duplicates() {
        let get = resource_rule(&["get"], &[""], &["configmaps"]);
        let put = resource_rule(&["update"], &[""], &["configmaps"]);
        let roles = vec![
            aggregated("admin", &[], "to-admin"),
            aggregated("edit", &[("to-admin", "true")], "to-edit"),
            aggregated("view", &[("to-edit", "true")], "to-view"),
            role("z-view", &[("to-view", "true")], vec![get.clone()]),
            role(
                "b-edit",
                &[("to-edit", "true")],
                vec![put.clone(), get.clone()],
            ),
            role("other", &[], vec![resource_rule(&["*"], &["*"], &["*"])]),
        ];
        let rules = aggregate(&roles);
        assert_eq!(rules["view"], vec![get.clone()]);
        assert_eq!(rules["edit"], vec![put.clone(), get.clone()]);
        assert_eq!(rules["admin"], vec![put, get]);
        assert_eq!(rules["other"].len(), 1);
    }

    #[test]
    fn cycles_settle() {
        let a_rule = resource_rule(&["get"], &[""], &["a"]);
        let mut a = aggregated("a", &[("x", "true")], "x");
        a.rules = Some(vec![resource_rule(&["get"], &[""], &["stale"])]);
        let b = aggregated("b", &[("x", "true")], "x");
        let c = role("c", &[("x", "true")], vec![a_rule.clone()]);
        let rules = aggregate(&[a, b, c]);
        assert_eq!(rules["a"], vec![a_rule.clone()]);
        assert_eq!(rules["b"], vec![a_rule]);
    }

    #[test]
    fn selectors_support_expressions() {
        let labels: BTreeMap<String, String> = [("tier".to_string(), "web".to_string())].into();
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| (*v).to_string()).collect()),
            }]),
            ..LabelSelector::default()
        };
        assert!(selects(&LabelSelector::default(), None));
        assert!(selects(&expr("tier", "In", &["web", "db"]), Some(&labels)));
        assert!(!selects(&expr("tier", "NotIn", &["web"]), Some(&labels)));
        assert!(selects(&expr("zone", "NotIn", &["a"]), Some(&labels)));
        assert!(selects(&expr("tier", "Exists", &[]), Some(&labels)));
        assert!(selects(&expr("zone", "DoesNotExist", &[]), Some(&labels)));
        assert!(!selects(&expr("tier", "Bogus", &[]), Some(&labels)));
    }
}
