//! The escalation check on writes of roles and bindings (Kubernetes'
//! `ConfirmNoEscalation`): a user may only grant permissions they hold themselves.

use super::User;
use super::gofmt::{quote, quote_list};
use super::rules::items;
use k8s_openapi::api::rbac::v1::PolicyRule;
use std::collections::{BTreeSet, HashMap};

/// Whether `owner`'s rules cover every rule in `requested` (Kubernetes' `Covers`):
/// `Err` holds the uncovered rules, broken down to one verb, group, resource, name or URL
/// each.
pub fn covers(owner: &[PolicyRule], requested: &[PolicyRule]) -> Result<(), Vec<PolicyRule>> {
    let uncovered: Vec<PolicyRule> = requested
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    if uncovered.is_empty() {
        Ok(())
    } else {
        Err(uncovered)
    }
}

/// Kubernetes' refusal of an escalating write, e.g. `roles.rbac.authorization.k8s.io
/// "deployer" is forbidden: user "alice" (groups=["system:authenticated"]) is attempting to
/// grant RBAC permissions not currently held:` followed by the missing rules, one a line.
pub fn escalation_message(
    kind_plural_group: &str,
    name: &str,
    user: &User<'_>,
    uncovered: &[PolicyRule],
) -> String {
    let missing: BTreeSet<String> = compact(uncovered).iter().map(compact_string).collect();
    format!(
        "{kind_plural_group} {} is forbidden: user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        quote(name),
        quote(user.name),
        quote_list(user.groups),
        missing.into_iter().collect::<Vec<_>>().join("\n")
    )
}

/// One rule per (group, resource, verb, name) and per (URL, verb), as `BreakdownRule`.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| Some(vec![s.clone()]);
    let mut subrules = Vec::new();
    for group in items(&rule.api_groups) {
        for resource in items(&rule.resources) {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: vec![verb.clone()],
                    ..PolicyRule::default()
                };
                let names = items(&rule.resource_names);
                if names.is_empty() {
                    subrules.push(base);
                } else {
                    subrules.extend(names.iter().map(|n| PolicyRule {
                        resource_names: one(n),
                        ..base.clone()
                    }));
                }
            }
        }
    }
    for url in items(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            subrules.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..PolicyRule::default()
            });
        }
    }
    subrules
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

/// Whether `owner` covers `sub`, a rule from [`breakdown`] (`ruleCovers`).
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = {
        let own = items(&owner.api_groups);
        has(own, "*") || has_all(own, items(&sub.api_groups))
    };
    let resources = resources_cover(items(&owner.resources), items(&sub.resources));
    let urls = items(&sub.non_resource_urls).iter().all(|path| {
        items(&owner.non_resource_urls).iter().any(|o| {
            o == path
                || o.strip_suffix('*')
                    .is_some_and(|_| path.starts_with(o.trim_end_matches('*')))
        })
    });
    let (own_names, sub_names) = (items(&owner.resource_names), items(&sub.resource_names));
    let names = own_names.is_empty() || (!sub_names.is_empty() && has_all(own_names, sub_names));
    verbs && groups && resources && names && urls
}

/// `resourceCoversAll`: `*`, exact matches, or `*/subresource` for subresources.
fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, "*") || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        has(owner, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| owner.iter().any(|o| o.strip_prefix("*/") == Some(sub)))
    })
}

/// `CompactRules`: rules with one group and one resource and nothing else merge their
/// verbs; the others stay as they are.
fn compact(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut compacted = Vec::with_capacity(rules.len());
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut by_resource: HashMap<(String, String), usize> = HashMap::new();
    for rule in rules {
        let (groups, resources) = (items(&rule.api_groups), items(&rule.resources));
        let is_simple = items(&rule.resource_names).is_empty()
            && items(&rule.non_resource_urls).is_empty()
            && groups.len() == 1
            && resources.len() == 1;
        if !is_simple {
            compacted.push(rule.clone());
            continue;
        }
        let key = (groups[0].clone(), resources[0].clone());
        match by_resource.get(&key) {
            Some(&i) => simple[i].verbs.extend(rule.verbs.iter().cloned()),
            None => {
                by_resource.insert(key, simple.len());
                simple.push(rule.clone());
            }
        }
    }
    compacted.extend(simple);
    compacted
}

/// `CompactString`: `{APIGroups:["x"], Resources:["y"], Verbs:["get"]}`.
fn compact_string(rule: &PolicyRule) -> String {
    let parts: Vec<String> = [
        ("APIGroups", items(&rule.api_groups)),
        ("Resources", items(&rule.resources)),
        ("NonResourceURLs", items(&rule.non_resource_urls)),
        ("ResourceNames", items(&rule.resource_names)),
        ("Verbs", &rule.verbs[..]),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}:{}", quote_list(v)))
    .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::rules::{resource_rule, strings, url_rule};

    #[test]
    fn owner_covers_equal_star_and_subresource_rules() {
        let g = "serving.knative.dev";
        let owner = vec![
            resource_rule(&["get", "list", "watch"], &[g], &["services", "routes"]),
            resource_rule(&["*"], &[""], &["configmaps"]),
            resource_rule(&["update"], &[g], &["*/status"]),
            url_rule(&["get"], &["/apis/*"]),
        ];
        let ok = vec![
            resource_rule(&["get", "watch"], &[g], &["services"]),
            resource_rule(&["delete", "patch"], &[""], &["configmaps"]),
            resource_rule(&["update"], &[g], &["routes/status"]),
            url_rule(&["get"], &["/apis/serving.knative.dev"]),
        ];
        assert_eq!(covers(&owner, &ok), Ok(()));
        let star = vec![
            resource_rule(&["*"], &["*"], &["*"]),
            url_rule(&["*"], &["*"]),
        ];
        assert_eq!(covers(&star, &owner), Ok(()));
    }

    #[test]
    fn uncovered_rules_come_back_broken_down() {
        let owner = vec![resource_rule(&["get"], &[""], &["configmaps"])];
        let wanted = vec![resource_rule(
            &["get", "delete"],
            &["", "apps"],
            &["configmaps"],
        )];
        let missing = covers(&owner, &wanted).unwrap_err();
        assert_eq!(
            missing,
            vec![
                resource_rule(&["delete"], &[""], &["configmaps"]),
                resource_rule(&["get"], &["apps"], &["configmaps"]),
                resource_rule(&["delete"], &["apps"], &["configmaps"]),
            ]
        );
    }

    #[test]
    fn resource_names_only_cover_the_named_objects() {
        let mut owner = resource_rule(&["get"], &[""], &["secrets"]);
        owner.resource_names = Some(strings(&["a", "b"]));
        let mut wanted = resource_rule(&["get"], &[""], &["secrets"]);
        wanted.resource_names = Some(strings(&["a"]));
        assert!(covers(std::slice::from_ref(&owner), std::slice::from_ref(&wanted)).is_ok());
        wanted.resource_names = Some(strings(&["c"]));
        assert!(covers(std::slice::from_ref(&owner), &[wanted]).is_err());
        let unnamed = resource_rule(&["get"], &[""], &["secrets"]);
        assert!(covers(&[owner], std::slice::from_ref(&unnamed)).is_err());
        let mut named = unnamed.clone();
        named.resource_names = Some(strings(&["x"]));
        assert!(covers(&[unnamed], &[named]).is_ok());
    }

    #[test]
    fn escalation_message_is_kubernetes_text() {
        let groups = vec!["system:authenticated".to_string(), "dev".to_string()];
        let alice = User {
            name: "alice",
            groups: &groups,
        };
        let owner = vec![resource_rule(
            &["get"],
            &["serving.knative.dev"],
            &["services"],
        )];
        let wanted = vec![
            resource_rule(
                &["get", "delete", "patch"],
                &["serving.knative.dev"],
                &["services"],
            ),
            url_rule(&["get"], &["/metrics"]),
        ];
        let missing = covers(&owner, &wanted).unwrap_err();
        assert_eq!(
            escalation_message(
                "roles.rbac.authorization.k8s.io",
                "deployer",
                &alice,
                &missing
            ),
            "roles.rbac.authorization.k8s.io \"deployer\" is forbidden: user \"alice\" \
             (groups=[\"system:authenticated\" \"dev\"]) is attempting to grant RBAC permissions \
             not currently held:\n\
             {APIGroups:[\"serving.knative.dev\"], Resources:[\"services\"], Verbs:[\"delete\" \"patch\"]}\n\
             {NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"
        );
    }
}
