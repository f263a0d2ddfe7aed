//! Builders of RBAC objects and requests for the module's tests.

use super::*;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub(super) const KN: &str = "serving.knative.dev";

pub(super) fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..ObjectMeta::default()
    }
}

pub(super) fn role(ns: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: meta(Some(ns), name),
        rules: Some(rules),
    }
}

pub(super) fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(None, name),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

pub(super) fn subject(kind: &str, name: &str, ns: Option<&str>) -> Subject {
    Subject {
        api_group: (kind != "ServiceAccount").then(|| GROUP.to_string()),
        kind: kind.into(),
        name: name.into(),
        namespace: ns.map(Into::into),
    }
}

pub(super) fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: GROUP.into(),
        kind: kind.into(),
        name: name.into(),
    }
}

pub(super) fn binding(ns: &str, name: &str, to: RoleRef, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(Some(ns), name),
        role_ref: to,
        subjects: Some(subjects),
    }
}

pub(super) fn cluster_binding(name: &str, to: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(None, name),
        role_ref: role_ref("ClusterRole", to),
        subjects: Some(subjects),
    }
}

pub(super) fn res<'a>(
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    ns: &'a str,
    name: &'a str,
) -> Request<'a> {
    sub_res(verb, group, resource, "", ns, name)
}

/// A resource request on a subresource.
pub(super) fn sub_res<'a>(
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    subresource: &'a str,
    ns: &'a str,
    name: &'a str,
) -> Request<'a> {
    Request::Resource {
        verb,
        api_group: group,
        resource,
        subresource,
        namespace: ns,
        name,
    }
}

pub(super) fn user<'a>(name: &'a str, groups: &'a [String]) -> User<'a> {
    User { name, groups }
}

/// The default objects plus `extra_*`.
pub(super) fn with_defaults(
    roles: Vec<Role>,
    mut cluster_roles: Vec<ClusterRole>,
    role_bindings: Vec<RoleBinding>,
    mut cluster_bindings: Vec<ClusterRoleBinding>,
) -> Policy {
    for obj in bootstrap_objects() {
        match obj["kind"].as_str() {
            Some("ClusterRole") => cluster_roles.push(serde_json::from_value(obj).unwrap()),
            Some("ClusterRoleBinding") => {
                cluster_bindings.push(serde_json::from_value(obj).unwrap())
            }
            _ => unreachable!(),
        }
    }
    Policy::new(roles, cluster_roles, role_bindings, cluster_bindings)
}
