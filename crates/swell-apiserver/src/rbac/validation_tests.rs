//! Every validation message of the RBAC kinds, as kube-apiserver words it.

use super::validation::{set_defaults, validate, validate_update};
use serde_json::{Value, json};

fn errs(kind: &str, obj: &Value) -> Vec<(String, String)> {
    validate(kind, obj)
}

fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter()
        .map(|(p, m)| ((*p).to_string(), (*m).to_string()))
        .collect()
}

fn role(kind: &str, rules: Value) -> Value {
    json!({"kind": kind, "metadata": {"name": "r", "namespace": "a"}, "rules": rules})
}

fn rb(kind: &str, role_ref: Value, subjects: Value) -> Value {
    json!({"kind": kind, "metadata": {"name": "b"}, "roleRef": role_ref, "subjects": subjects})
}

const SUPPORTED: &str = r#"supported values: "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate", "use", "approve", "sign", "proxy", "*""#;

#[test]
fn valid_objects_pass() {
    let rules = json!([
        {"apiGroups": ["serving.knative.dev"], "resources": ["services", "services/status"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["config-gc"], "verbs": ["*"]},
    ]);
    assert!(errs("Role", &role("Role", rules.clone())).is_empty());
    let mut cr = role("ClusterRole", rules);
    cr["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get", "post"]}));
    assert!(errs("ClusterRole", &cr).is_empty());
    let subjects = json!([
        {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "Group", "name": "devs"},
        {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"},
    ]);
    let to = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:aggregate-to-view"});
    assert!(
        errs(
            "RoleBinding",
            &rb("RoleBinding", to.clone(), subjects.clone())
        )
        .is_empty()
    );
    assert!(
        errs(
            "ClusterRoleBinding",
            &rb("ClusterRoleBinding", to, subjects)
        )
        .is_empty()
    );
    assert!(errs("Namespace", &json!({})).is_empty());
}

#[test]
fn rule_messages() {
    let rules = json!([
        {"apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get"]},
        {"nonResourceURLs": ["/healthz"], "apiGroups": [""], "verbs": ["get"]},
    ]);
    assert_eq!(
        errs("Role", &role("Role", rules.clone())),
        pairs(&[
            (
                "rules[0].verbs",
                "Required value: verbs must contain at least one value"
            ),
            (
                "rules[1].apiGroups",
                "Required value: resource rules must supply at least one api group"
            ),
            (
                "rules[1].resources",
                "Required value: resource rules must supply at least one resource"
            ),
            (
                "rules[2].nonResourceURLs",
                r#"Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs"#
            ),
            (
                "rules[2].nonResourceURLs",
                r#"Invalid value: []string{"/healthz"}: rules cannot apply to both regular resources and non-resource URLs"#
            ),
        ])
    );
    assert_eq!(errs("ClusterRole", &role("ClusterRole", rules)).len(), 4);
}

#[test]
fn unknown_verbs_are_refused() {
    let rules = json!([
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "frobnicate"]},
        {"nonResourceURLs": ["/x"], "verbs": ["post", "list"]},
    ]);
    assert_eq!(
        errs("ClusterRole", &role("ClusterRole", rules)),
        pairs(&[
            (
                "rules[0].verbs[1]",
                &format!(r#"Unsupported value: "frobnicate": {SUPPORTED}"#)
            ),
            (
                "rules[1].verbs[1]",
                r#"Unsupported value: "list": supported values: "get", "post", "put", "patch", "delete", "head", "options", "*""#,
            ),
        ])
    );
}

#[test]
fn aggregation_rule_messages() {
    let mut cr = role("ClusterRole", json!([]));
    cr["aggregationRule"] = json!({"clusterRoleSelectors": []});
    assert_eq!(
        errs("ClusterRole", &cr),
        pairs(&[(
            "aggregationRule.clusterRoleSelectors",
            "Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"
        )])
    );
    cr["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchExpressions": [
        {"key": "a", "operator": "In"},
        {"key": "a", "operator": "Exists", "values": ["x"]},
        {"key": "a", "operator": "Near"},
    ]}]});
    let at = "aggregationRule.clusterRoleSelectors[0].matchExpressions";
    assert_eq!(
        errs("ClusterRole", &cr),
        pairs(&[
            (
                &format!("{at}[0].values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'"
            ),
            (
                &format!("{at}[1].values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            ),
            (
                &format!("{at}[2].operator"),
                r#"Invalid value: "Near": not a valid selector operator"#
            ),
        ])
    );
}

#[test]
fn name_messages() {
    let mut r = role("Role", json!([]));
    r["metadata"]["name"] = json!("a/b%c");
    assert_eq!(
        errs("Role", &r),
        pairs(&[
            (
                "metadata.name",
                r#"Invalid value: "a/b%c": may not contain '/'"#
            ),
            (
                "metadata.name",
                r#"Invalid value: "a/b%c": may not contain '%'"#
            ),
        ])
    );
    r["metadata"]["name"] = json!("..");
    assert_eq!(
        errs("Role", &r),
        pairs(&[("metadata.name", r#"Invalid value: "..": may not be '..'"#)])
    );
    r["metadata"] = json!({});
    assert_eq!(
        errs("Role", &r),
        pairs(&[(
            "metadata.name",
            "Required value: name or generateName is required"
        )])
    );
    r["metadata"] = json!({"generateName": "r-"});
    assert!(errs("Role", &r).is_empty());
}

#[test]
fn role_ref_messages() {
    let subjects = json!([]);
    assert_eq!(
        errs(
            "RoleBinding",
            &json!({"kind": "RoleBinding", "metadata": {"name": "b"}})
        ),
        pairs(&[
            (
                "roleRef.kind",
                r#"Unsupported value: "": supported values: "Role", "ClusterRole""#
            ),
            ("roleRef.name", "Required value"),
        ])
    );
    let bad = json!({"apiGroup": "example.com", "kind": "Role", "name": "a/b"});
    assert_eq!(
        errs(
            "ClusterRoleBinding",
            &rb("ClusterRoleBinding", bad, subjects)
        ),
        pairs(&[
            (
                "roleRef.apiGroup",
                r#"Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io""#
            ),
            (
                "roleRef.kind",
                r#"Unsupported value: "Role": supported values: "ClusterRole""#
            ),
            (
                "roleRef.name",
                r#"Invalid value: "a/b": may not contain '/'"#
            ),
        ])
    );
}

#[test]
fn subject_messages() {
    let to = json!({"kind": "ClusterRole", "name": "view"});
    let subjects = json!([
        {"kind": "User", "name": "", "apiGroup": "example.com"},
        {"kind": "Group", "name": "g", "apiGroup": "v1"},
        {"kind": "ServiceAccount", "name": "Builder_1", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "Robot", "name": "r2"},
    ]);
    let rbac = r#"supported values: "rbac.authorization.k8s.io""#;
    assert_eq!(
        errs(
            "ClusterRoleBinding",
            &rb("ClusterRoleBinding", to.clone(), subjects.clone())
        ),
        pairs(&[
            ("subjects[0].name", "Required value"),
            (
                "subjects[0].apiGroup",
                &format!(r#"Unsupported value: "example.com": {rbac}"#)
            ),
            (
                "subjects[1].apiGroup",
                &format!(r#"Unsupported value: "v1": {rbac}"#)
            ),
            (
                "subjects[2].name",
                r#"Invalid value: "Builder_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
            ),
            (
                "subjects[2].apiGroup",
                r#"Unsupported value: "rbac.authorization.k8s.io": supported values: """#
            ),
            ("subjects[2].namespace", "Required value"),
            (
                "subjects[3].kind",
                r#"Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#
            ),
        ])
    );
    // In a RoleBinding a ServiceAccount defaults to the binding's namespace.
    assert!(
        !errs("RoleBinding", &rb("RoleBinding", to, subjects))
            .iter()
            .any(|(p, _)| p == "subjects[2].namespace")
    );
}

#[test]
fn role_ref_cannot_change() {
    let old = rb(
        "RoleBinding",
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}),
        json!([]),
    );
    let mut new = old.clone();
    new["subjects"] = json!([{"kind": "User", "name": "alice"}]);
    assert!(validate_update("RoleBinding", &old, &new).is_empty());
    // A defaulted apiGroup is no change.
    new["roleRef"] = json!({"kind": "ClusterRole", "name": "view"});
    assert!(validate_update("RoleBinding", &old, &new).is_empty());
    new["roleRef"]["name"] = json!("edit");
    assert_eq!(
        validate_update("RoleBinding", &old, &new),
        pairs(&[(
            "roleRef",
            r#"Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef"#
        )])
    );
    assert!(validate_update("Role", &role("Role", json!([])), &role("Role", json!([]))).is_empty());
}

#[test]
fn defaults_fill_api_groups() {
    let mut b = rb(
        "RoleBinding",
        json!({"kind": "Role", "name": "r"}),
        json!([{"kind": "User", "name": "a"}, {"kind": "Group", "name": "g"}, {"kind": "ServiceAccount", "name": "s"}]),
    );
    set_defaults("RoleBinding", &mut b);
    assert_eq!(b["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(b["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(b["subjects"][1]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(b["subjects"][2].get("apiGroup").is_none());
}
