//! Kubernetes' escalation rule on RBAC writes: a Role or ClusterRole may grant only
//! what its writer holds (unless they have `escalate` on it), and a binding may bind
//! only a role whose rules its writer holds (unless they have `bind` on it).

use crate::rbac::{GROUP, Request, SYSTEM_MASTERS, covers, escalation_message};
use crate::request::Target;
use crate::{ApiError, ApiResult, ApiState};
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

/// Refuses the write of `obj` (named `name`) if it would grant its writer more than
/// they hold. Writes no request's user made (nothing guards the router) pass.
pub fn check(state: &ApiState, t: &Target<'_>, name: &str, obj: &Value) -> ApiResult<()> {
    let Some(user) = &t.user else {
        return Ok(());
    };
    if user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
        return Ok(());
    }
    let who = user.rbac();
    let namespace = t.namespace.as_deref().unwrap_or("");
    let policy = state.rbac.policy();
    let refuse = |message: String| {
        Err(ApiError {
            details: Some(serde_json::json!({"name": name, "group": GROUP, "kind": t.res.plural})),
            ..ApiError::new(403, "Forbidden", message)
        })
    };
    let requested = match t.res.kind {
        "Role" | "ClusterRole" => {
            let escalate = Request::Resource {
                verb: "escalate",
                api_group: GROUP,
                resource: t.res.plural,
                subresource: "",
                namespace,
                name,
            };
            if policy.authorize(&who, &escalate).allowed {
                return Ok(());
            }
            // An aggregation rule can gather anything: only whoever holds everything may set one.
            if obj.get("aggregationRule").is_some_and(|r| !r.is_null())
                && covers(&policy.rules_for(&who, namespace), &full_authority()).is_err()
            {
                return refuse(format!(
                    "{} {name:?} is forbidden: must have cluster-admin privileges to use the aggregationRule",
                    t.res.qualified()
                ));
            }
            let rules: Vec<PolicyRule> =
                serde_json::from_value(obj.get("rules").cloned().unwrap_or(Value::Null))
                    .unwrap_or_default();
            rules
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let role_ref: RoleRef = serde_json::from_value(obj["roleRef"].clone())
                .map_err(|e| ApiError::bad_request(format!("roleRef: {e}")))?;
            let plural = if role_ref.kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            let bind = Request::Resource {
                verb: "bind",
                api_group: GROUP,
                resource: plural,
                subresource: "",
                namespace,
                name: &role_ref.name,
            };
            if policy.authorize(&who, &bind).allowed {
                return Ok(());
            }
            match policy.role_ref_rules(&role_ref, namespace) {
                Some(rules) => rules.to_vec(),
                None => {
                    return refuse(format!(
                        "{} {name:?} is forbidden: {plural}.{GROUP} {:?} not found",
                        t.res.qualified(),
                        role_ref.name
                    ));
                }
            }
        }
        _ => return Ok(()),
    };
    match covers(&policy.rules_for(&who, namespace), &requested) {
        Ok(()) => Ok(()),
        Err(uncovered) => refuse(escalation_message(
            &t.res.qualified(),
            name,
            &who,
            &uncovered,
        )),
    }
}

/// Every permission there is, as Kubernetes' `fullAuthority`.
fn full_authority() -> Vec<PolicyRule> {
    let all = || Some(vec!["*".to_string()]);
    vec![
        PolicyRule {
            verbs: vec!["*".to_string()],
            api_groups: all(),
            resources: all(),
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: vec!["*".to_string()],
            non_resource_urls: all(),
            ..PolicyRule::default()
        },
    ]
}
