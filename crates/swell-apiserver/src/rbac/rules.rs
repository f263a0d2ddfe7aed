//! Whether one policy rule allows one request: Kubernetes' `RuleAllows` and its
//! `VerbMatches`, `APIGroupMatches`, `ResourceMatches`, `ResourceNameMatches` and
//! `NonResourceURLMatches`.

use super::Request;
use k8s_openapi::api::rbac::v1::PolicyRule;

/// The values of an optional rule field (`None` and `[]` alike mean none).
pub(super) fn items(field: &Option<Vec<String>>) -> &[String] {
    field.as_deref().unwrap_or(&[])
}

/// Whether `rule` allows `req`, exactly as Kubernetes' `RuleAllows`.
pub fn rule_allows(rule: &PolicyRule, req: &Request<'_>) -> bool {
    match *req {
        Request::Resource {
            verb,
            api_group,
            resource,
            subresource,
            name,
            ..
        } => {
            verb_matches(rule, verb)
                && api_group_matches(rule, api_group)
                && resource_matches(rule, resource, subresource)
                && resource_name_matches(rule, name)
        }
        Request::NonResource { verb, path } => {
            verb_matches(rule, verb) && non_resource_url_matches(rule, path)
        }
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    items(&rule.api_groups)
        .iter()
        .any(|g| g == "*" || g == group)
}

/// `*`, the exact `resource` or `resource/subresource`, or `*/subresource`. Kubernetes has
/// no `resource/*`: such a rule only matches a subresource literally named `*`.
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    items(&rule.resources).iter().any(|r| {
        if r == "*" {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        // `resource/subresource`, compared without building the combined string.
        let combined = r
            .strip_prefix(resource)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|sub| sub == subresource);
        combined || r.strip_prefix("*/").is_some_and(|sub| sub == subresource)
    })
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = items(&rule.resource_names);
    names.is_empty() || names.iter().any(|n| n == name)
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    items(&rule.non_resource_urls).iter().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|_| path.starts_with(u.trim_end_matches('*')))
    })
}

/// A rule from verbs, API groups and resources (tests and the default roles).
pub(super) fn resource_rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..PolicyRule::default()
    }
}

/// A rule from verbs and non-resource URLs.
pub(super) fn url_rule(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(urls)),
        ..PolicyRule::default()
    }
}

pub(super) fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request in namespace `ns`.
    fn res<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        sub: &'a str,
        name: &'a str,
    ) -> Request<'a> {
        crate::rbac::test_support::sub_res(verb, group, resource, sub, "ns", name)
    }

    #[test]
    fn verbs_match_exactly_or_by_star() {
        let r = resource_rule(&["get", "list"], &[""], &["configmaps"]);
        assert!(rule_allows(&r, &res("get", "", "configmaps", "", "x")));
        assert!(rule_allows(&r, &res("list", "", "configmaps", "", "")));
        for verb in ["watch", "patch", "deletecollection", "GET"] {
            assert!(
                !rule_allows(&r, &res(verb, "", "configmaps", "", "")),
                "{verb}"
            );
        }
        let all = resource_rule(&["*"], &[""], &["configmaps"]);
        for verb in ["watch", "patch", "deletecollection", "escalate"] {
            assert!(
                rule_allows(&all, &res(verb, "", "configmaps", "", "")),
                "{verb}"
            );
        }
    }

    #[test]
    fn groups_match_exactly_or_by_star() {
        let r = resource_rule(&["get"], &["serving.knative.dev"], &["services"]);
        assert!(rule_allows(
            &r,
            &res("get", "serving.knative.dev", "services", "", "")
        ));
        assert!(!rule_allows(&r, &res("get", "", "services", "", "")));
        let all = resource_rule(&["get"], &["*"], &["services"]);
        assert!(rule_allows(&all, &res("get", "", "services", "", "")));
        let none = PolicyRule {
            api_groups: None,
            ..resource_rule(&["get"], &[], &["services"])
        };
        assert!(!rule_allows(&none, &res("get", "", "services", "", "")));
    }

    #[test]
    fn subresources_need_their_own_rule_or_a_star() {
        let g = "serving.knative.dev";
        let plain = resource_rule(&["get"], &[g], &["services"]);
        assert!(!rule_allows(
            &plain,
            &res("get", g, "services", "status", "")
        ));
        let status = resource_rule(&["get"], &[g], &["services/status"]);
        assert!(rule_allows(
            &status,
            &res("get", g, "services", "status", "")
        ));
        assert!(!rule_allows(&status, &res("get", g, "services", "", "")));
        assert!(!rule_allows(
            &status,
            &res("get", g, "routes", "status", "")
        ));
        assert!(!rule_allows(
            &status,
            &res("get", g, "service", "s/status", "")
        ));
        let any_status = resource_rule(&["get"], &[g], &["*/status"]);
        assert!(rule_allows(
            &any_status,
            &res("get", g, "routes", "status", "")
        ));
        assert!(!rule_allows(&any_status, &res("get", g, "routes", "", "")));
        assert!(!rule_allows(
            &any_status,
            &res("get", g, "routes", "scale", "")
        ));
        let star = resource_rule(&["get"], &[g], &["*"]);
        assert!(rule_allows(&star, &res("get", g, "routes", "status", "")));
        // Kubernetes has no `resource/*` wildcard.
        let sub_star = resource_rule(&["get"], &[g], &["services/*"]);
        assert!(!rule_allows(
            &sub_star,
            &res("get", g, "services", "status", "")
        ));
    }

    #[test]
    fn resource_names_restrict_to_named_objects() {
        let mut r = resource_rule(&["get", "list", "update"], &[""], &["configmaps"]);
        r.resource_names = Some(strings(&["config-network"]));
        assert!(rule_allows(
            &r,
            &res("get", "", "configmaps", "", "config-network")
        ));
        assert!(rule_allows(
            &r,
            &res("update", "", "configmaps", "", "config-network")
        ));
        assert!(!rule_allows(
            &r,
            &res("get", "", "configmaps", "", "config-gc")
        ));
        assert!(!rule_allows(&r, &res("list", "", "configmaps", "", "")));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_trailing_star() {
        let r = url_rule(&["get"], &["/healthz", "/apis/*", "/version/"]);
        let get = |path| Request::NonResource { verb: "get", path };
        assert!(rule_allows(&r, &get("/healthz")));
        assert!(!rule_allows(&r, &get("/healthz/etcd")));
        assert!(rule_allows(&r, &get("/apis/serving.knative.dev/v1")));
        assert!(rule_allows(&r, &get("/apis/")));
        assert!(!rule_allows(&r, &get("/apis")));
        assert!(rule_allows(&r, &get("/version/")));
        assert!(!rule_allows(&r, &get("/version")));
        assert!(!rule_allows(
            &r,
            &Request::NonResource {
                verb: "post",
                path: "/healthz"
            }
        ));
        let all = url_rule(&["*"], &["*"]);
        assert!(rule_allows(
            &all,
            &Request::NonResource {
                verb: "post",
                path: "/anything"
            }
        ));
        // Resource rules never allow non-resource requests, nor the other way round.
        assert!(!rule_allows(
            &resource_rule(&["*"], &["*"], &["*"]),
            &get("/healthz")
        ));
        assert!(!rule_allows(&all, &res("get", "", "configmaps", "", "")));
    }
}
