//! Defaulting and validation of the four RBAC kinds, as kube-apiserver's
//! `pkg/apis/rbac/v1` defaults and `pkg/apis/rbac/validation` do, on the JSON objects.
//! Errors are (field path, message) pairs; messages are Kubernetes' field-error bodies.

use super::GROUP;
use super::gofmt::{go_syntax_list, quote};
use serde_json::Value;

/// The verbs Kubernetes' own code knows. Kubernetes accepts any verb; Swell refuses
/// others, so a typo does not silently grant nothing.
pub const SUPPORTED_VERBS: [&str; 16] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "escalate",
    "bind",
    "impersonate",
    "use",
    "approve",
    "sign",
    "proxy",
    "*",
];

/// Verbs of non-resource requests: lowercased HTTP methods.
const NON_RESOURCE_VERBS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "*",
];

type Errors = Vec<(String, String)>;

/// Kubernetes' defaults: `roleRef.apiGroup` and the `apiGroup` of User and Group
/// subjects become `rbac.authorization.k8s.io` when empty.
pub fn set_defaults(kind: &str, obj: &mut Value) {
    if !matches!(kind, "RoleBinding" | "ClusterRoleBinding") {
        return;
    }
    if let Some(role_ref) = obj.get_mut("roleRef").and_then(Value::as_object_mut)
        && str_at(role_ref.get("apiGroup")).is_empty()
    {
        role_ref.insert("apiGroup".into(), GROUP.into());
    }
    for s in obj
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let kind = str_at(s.get("kind"));
        if matches!(kind, "User" | "Group") && str_at(s.get("apiGroup")).is_empty() {
            s["apiGroup"] = GROUP.into();
        }
    }
}

/// Validates a Role, ClusterRole, RoleBinding or ClusterRoleBinding (other kinds pass).
/// Missing `apiGroup`s are taken as [`set_defaults`] fills them.
pub fn validate(kind: &str, obj: &Value) -> Vec<(String, String)> {
    let mut errs = Errors::new();
    match kind {
        "Role" | "ClusterRole" => {
            validate_name(obj, &mut errs);
            let rules = obj
                .get("rules")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for (i, rule) in rules.iter().enumerate() {
                validate_rule(rule, kind == "Role", &format!("rules[{i}]"), &mut errs);
            }
            if kind == "ClusterRole" {
                validate_aggregation_rule(obj, &mut errs);
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            validate_name(obj, &mut errs);
            validate_binding(obj, kind == "RoleBinding", &mut errs);
        }
        _ => {}
    }
    errs
}

/// [`validate`] plus Kubernetes' update rule for bindings: `roleRef` cannot change.
pub fn validate_update(kind: &str, old: &Value, new: &Value) -> Vec<(String, String)> {
    let mut errs = validate(kind, new);
    if matches!(kind, "RoleBinding" | "ClusterRoleBinding") && role_ref(old) != role_ref(new) {
        let (group, kind, name) = role_ref(new);
        errs.push((
            "roleRef".into(),
            format!(
                "Invalid value: rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}: cannot change roleRef",
                quote(group),
                quote(kind),
                quote(name)
            ),
        ));
    }
    errs
}

fn str_at(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or("")
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `roleRef` as (apiGroup, kind, name), with the default group.
fn role_ref(obj: &Value) -> (&str, &str, &str) {
    let r = obj.get("roleRef");
    let group = match str_at(r.and_then(|r| r.get("apiGroup"))) {
        "" => GROUP,
        g => g,
    };
    (
        group,
        str_at(r.and_then(|r| r.get("kind"))),
        str_at(r.and_then(|r| r.get("name"))),
    )
}

fn required(detail: &str) -> String {
    if detail.is_empty() {
        "Required value".into()
    } else {
        format!("Required value: {detail}")
    }
}

fn not_supported(value: &str, supported: &[&str]) -> String {
    let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
    format!(
        "Unsupported value: {}: supported values: {}",
        quote(value),
        list.join(", ")
    )
}

/// Kubernetes' `IsValidPathSegmentName`, the rule for RBAC object and role names.
fn path_segment_errors(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|c| name.contains(*c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

fn validate_name(obj: &Value, errs: &mut Errors) {
    let meta = obj.get("metadata");
    let name = str_at(meta.and_then(|m| m.get("name")));
    if name.is_empty() {
        if str_at(meta.and_then(|m| m.get("generateName"))).is_empty() {
            errs.push((
                "metadata.name".into(),
                required("name or generateName is required"),
            ));
        }
        return;
    }
    for msg in path_segment_errors(name) {
        errs.push((
            "metadata.name".into(),
            format!("Invalid value: {}: {msg}", quote(name)),
        ));
    }
}

fn validate_rule(rule: &Value, namespaced: bool, path: &str, errs: &mut Errors) {
    let verbs = strs(rule.get("verbs"));
    let urls = strs(rule.get("nonResourceURLs"));
    let groups = strs(rule.get("apiGroups"));
    let resources = strs(rule.get("resources"));
    let names = strs(rule.get("resourceNames"));
    if verbs.is_empty() {
        errs.push((
            format!("{path}.verbs"),
            required("verbs must contain at least one value"),
        ));
    }
    let known: &[&str] = if urls.is_empty() {
        &SUPPORTED_VERBS
    } else {
        &NON_RESOURCE_VERBS
    };
    for (j, verb) in verbs.iter().enumerate() {
        if !known.contains(verb) {
            errs.push((format!("{path}.verbs[{j}]"), not_supported(verb, known)));
        }
    }
    if !urls.is_empty() {
        let value = go_syntax_list(&urls);
        let field = format!("{path}.nonResourceURLs");
        if namespaced {
            let msg = "namespaced rules cannot apply to non-resource URLs";
            errs.push((field.clone(), format!("Invalid value: {value}: {msg}")));
        }
        if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
            let msg = "rules cannot apply to both regular resources and non-resource URLs";
            errs.push((field, format!("Invalid value: {value}: {msg}")));
        }
        return;
    }
    if groups.is_empty() {
        let msg = required("resource rules must supply at least one api group");
        errs.push((format!("{path}.apiGroups"), msg));
    }
    if resources.is_empty() {
        let msg = required("resource rules must supply at least one resource");
        errs.push((format!("{path}.resources"), msg));
    }
}

fn validate_aggregation_rule(obj: &Value, errs: &mut Errors) {
    let Some(agg) = obj.get("aggregationRule").filter(|a| !a.is_null()) else {
        return;
    };
    let path = "aggregationRule.clusterRoleSelectors";
    let selectors = agg.get("clusterRoleSelectors").and_then(Value::as_array);
    let selectors = selectors.map_or(&[][..], Vec::as_slice);
    if selectors.is_empty() {
        let msg =
            required("at least one clusterRoleSelector required if aggregationRule is non-nil");
        errs.push((path.into(), msg));
    }
    for (i, sel) in selectors.iter().enumerate() {
        let exprs = sel.get("matchExpressions").and_then(Value::as_array);
        for (j, e) in exprs.into_iter().flatten().enumerate() {
            let at = format!("{path}[{i}].matchExpressions[{j}]");
            let has_values = !strs(e.get("values")).is_empty();
            match str_at(e.get("operator")) {
                "In" | "NotIn" if !has_values => errs.push((
                    format!("{at}.values"),
                    required("must be specified when `operator` is 'In' or 'NotIn'"),
                )),
                "Exists" | "DoesNotExist" if has_values => errs.push((
                    format!("{at}.values"),
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                        .into(),
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                op => errs.push((
                    format!("{at}.operator"),
                    format!(
                        "Invalid value: {}: not a valid selector operator",
                        quote(op)
                    ),
                )),
            }
        }
    }
}

fn validate_binding(obj: &Value, namespaced: bool, errs: &mut Errors) {
    let (group, kind, name) = role_ref(obj);
    if group != GROUP {
        errs.push(("roleRef.apiGroup".into(), not_supported(group, &[GROUP])));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(("roleRef.kind".into(), not_supported(kind, kinds)));
    }
    if name.is_empty() {
        errs.push(("roleRef.name".into(), required("")));
    }
    for msg in path_segment_errors(name) {
        errs.push((
            "roleRef.name".into(),
            format!("Invalid value: {}: {msg}", quote(name)),
        ));
    }
    let subjects = obj.get("subjects").and_then(Value::as_array);
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        validate_subject(s, namespaced, &format!("subjects[{i}]"), errs);
    }
}

fn validate_subject(s: &Value, namespaced: bool, path: &str, errs: &mut Errors) {
    let name = str_at(s.get("name"));
    let group = str_at(s.get("apiGroup"));
    if name.is_empty() {
        errs.push((format!("{path}.name"), required("")));
    }
    match str_at(s.get("kind")) {
        "ServiceAccount" => {
            if let Some(msg) = dns1123_subdomain_error(name) {
                errs.push((
                    format!("{path}.name"),
                    format!("Invalid value: {}: {msg}", quote(name)),
                ));
            }
            if !group.is_empty() {
                errs.push((format!("{path}.apiGroup"), not_supported(group, &[""])));
            }
            if !namespaced && str_at(s.get("namespace")).is_empty() {
                errs.push((format!("{path}.namespace"), required("")));
            }
        }
        "User" | "Group" => {
            if !group.is_empty() && group != GROUP {
                errs.push((format!("{path}.apiGroup"), not_supported(group, &[GROUP])));
            }
        }
        other => errs.push((
            format!("{path}.kind"),
            not_supported(other, &["ServiceAccount", "User", "Group"]),
        )),
    }
}

/// Kubernetes' `IsDNS1123Subdomain` message for a non-empty invalid name.
fn dns1123_subdomain_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let label_ok = |l: &str| {
        l.starts_with(alnum) && l.ends_with(alnum) && l.chars().all(|c| alnum(c) || c == '-')
    };
    if name.split('.').all(label_ok) {
        return None;
    }
    Some(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
         and must start and end with an alphanumeric character (e.g. 'example.com', regex used for \
         validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            .into(),
    )
}
