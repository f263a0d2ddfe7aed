//! The RBAC objects kube-apiserver creates on start (its bootstrap policy's user-facing
//! roles and bindings) and Knative Serving's namespaced roles, which aggregate into
//! `admin`, `edit` and `view`.

use super::GROUP;
use super::aggregate_to::{READ, admin_rules, edit_rules, view_rules};
use super::aggregation::aggregate;
use super::rules::{resource_rule as rule, url_rule};
use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::Value;
use std::collections::BTreeMap;

const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

/// The default ClusterRoles and ClusterRoleBindings, as JSON objects ready to store:
/// Kubernetes' `cluster-admin`, `admin`, `edit`, `view`, `system:aggregate-to-*`,
/// `system:discovery`, `system:basic-user` and `system:public-info-viewer` (labelled
/// `kubernetes.io/bootstrapping: rbac-defaults`, annotated for auto-update) with their
/// bindings, and Knative's `knative-serving-namespaced-{admin,edit,view}`. The aggregated
/// roles carry the rules the aggregation controller would write.
pub fn bootstrap_objects() -> Vec<Value> {
    let mut roles = kubernetes_roles();
    roles.extend(knative_roles());
    let rules = aggregate(&roles);
    for role in &mut roles {
        if role.aggregation_rule.is_some() {
            let name = role.metadata.name.as_deref().unwrap_or("");
            role.rules = rules.get(name).cloned();
        }
    }
    let bindings = [
        ("cluster-admin", &["system:masters"][..]),
        ("system:discovery", &["system:authenticated"]),
        ("system:basic-user", &["system:authenticated"]),
        (
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
    .into_iter()
    .map(|(name, groups)| ClusterRoleBinding {
        metadata: kubernetes_meta(name, &[]),
        role_ref: RoleRef {
            api_group: GROUP.into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(
            groups
                .iter()
                .map(|g| Subject {
                    api_group: Some(GROUP.into()),
                    kind: "Group".into(),
                    name: (*g).into(),
                    namespace: None,
                })
                .collect(),
        ),
    });
    let roles = roles.iter().map(serde_json::to_value);
    roles
        .chain(bindings.map(|b| serde_json::to_value(&b)))
        .filter_map(Result::ok)
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn kubernetes_meta(name: &str, extra_labels: &[(&str, &str)]) -> ObjectMeta {
    let mut l = labels(&[("kubernetes.io/bootstrapping", "rbac-defaults")]);
    l.extend(labels(extra_labels));
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(l),
        annotations: Some(labels(&[(
            "rbac.authorization.kubernetes.io/autoupdate",
            "true",
        )])),
        ..ObjectMeta::default()
    }
}

fn cluster_role(meta: ObjectMeta, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta,
        rules: Some(rules),
        aggregation_rule: None,
    }
}

/// A role aggregating those labelled `aggregate-to-<to>`, itself labelled with `labels`.
fn aggregated(name: &str, to: &str, labels: &[(&str, &str)]) -> ClusterRole {
    ClusterRole {
        metadata: kubernetes_meta(name, labels),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(self::labels(&[(&format!("{AGGREGATE_TO}{to}"), "true")])),
                match_expressions: None,
            }]),
        }),
    }
}

fn kubernetes_roles() -> Vec<ClusterRole> {
    let to = |name: &str| format!("{AGGREGATE_TO}{name}");
    let (to_admin, to_edit, to_view) = (to("admin"), to("edit"), to("view"));
    vec![
        cluster_role(
            kubernetes_meta("cluster-admin", &[]),
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        aggregated("admin", "admin", &[]),
        aggregated("edit", "edit", &[(&to_admin, "true")]),
        aggregated("view", "view", &[(&to_edit, "true")]),
        cluster_role(
            kubernetes_meta("system:aggregate-to-admin", &[(&to_admin, "true")]),
            admin_rules(),
        ),
        cluster_role(
            kubernetes_meta("system:aggregate-to-edit", &[(&to_edit, "true")]),
            edit_rules(),
        ),
        cluster_role(
            kubernetes_meta("system:aggregate-to-view", &[(&to_view, "true")]),
            view_rules(),
        ),
        cluster_role(
            kubernetes_meta("system:discovery", &[]),
            vec![url_rule(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            kubernetes_meta("system:basic-user", &[]),
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            kubernetes_meta("system:public-info-viewer", &[]),
            vec![url_rule(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
    ]
}

/// Knative Serving's `config/core/200-roles/clusterrole-namespaced.yaml`.
fn knative_roles() -> Vec<ClusterRole> {
    let internal = [
        "networking.internal.knative.dev",
        "autoscaling.internal.knative.dev",
        "caching.internal.knative.dev",
    ];
    let meta = |name: &str, to: &str| ObjectMeta {
        name: Some(name.into()),
        labels: Some(labels(&[
            (&format!("{AGGREGATE_TO}{to}"), "true"),
            ("app.kubernetes.io/version", "devel"),
            ("app.kubernetes.io/name", "knative-serving"),
        ])),
        ..ObjectMeta::default()
    };
    let serving = "serving.knative.dev";
    let mut all = vec![serving];
    all.extend(internal);
    vec![
        cluster_role(
            meta("knative-serving-namespaced-admin", "admin"),
            vec![
                rule(&["*"], &[serving], &["*"]),
                rule(READ, &internal, &["*"]),
            ],
        ),
        cluster_role(
            meta("knative-serving-namespaced-edit", "edit"),
            vec![
                rule(&["create", "update", "patch", "delete"], &[serving], &["*"]),
                rule(READ, &internal, &["*"]),
            ],
        ),
        cluster_role(
            meta("knative-serving-namespaced-view", "view"),
            vec![rule(READ, &all, &["*"])],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::validation::validate;

    #[test]
    fn objects_are_valid_and_complete() {
        let objs = bootstrap_objects();
        let names: Vec<(&str, &str)> = objs
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        for want in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:aggregate-to-admin",
            "system:aggregate-to-edit",
            "system:aggregate-to-view",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer",
            "knative-serving-namespaced-admin",
            "knative-serving-namespaced-edit",
            "knative-serving-namespaced-view",
        ] {
            assert!(names.contains(&("ClusterRole", want)), "{want}");
        }
        for want in [
            "cluster-admin",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer",
        ] {
            assert!(names.contains(&("ClusterRoleBinding", want)), "{want}");
        }
        for o in &objs {
            assert_eq!(o["apiVersion"], "rbac.authorization.k8s.io/v1");
            let kind = o["kind"].as_str().unwrap();
            assert_eq!(validate(kind, o), Vec::<(String, String)>::new(), "{o}");
        }
        let admin = objs
            .iter()
            .find(|o| o["metadata"]["name"] == "cluster-admin")
            .unwrap();
        assert_eq!(
            admin["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        assert_eq!(
            admin["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
            "true"
        );
        let view = objs
            .iter()
            .find(|o| o["metadata"]["name"] == "view")
            .unwrap();
        assert_eq!(
            view["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]["rbac.authorization.k8s.io/aggregate-to-view"],
            "true"
        );
        assert_eq!(
            view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
            "true"
        );
        assert!(view["rules"].as_array().unwrap().len() > 10);
        let binding = objs
            .iter()
            .find(|o| {
                o["kind"] == "ClusterRoleBinding"
                    && o["metadata"]["name"] == "system:public-info-viewer"
            })
            .unwrap();
        assert_eq!(binding["subjects"][1]["name"], "system:unauthenticated");
        assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    }
}
