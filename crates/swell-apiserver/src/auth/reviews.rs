//! The review APIs clients ask about themselves with: SelfSubjectReview (`kubectl
//! auth whoami`), SelfSubjectAccessReview (`kubectl auth can-i`) and
//! SelfSubjectRulesReview (`kubectl auth can-i --list`). Answered, never stored.

use super::{Authenticated, UserInfo};
use crate::rbac::Request;
use crate::registry::ResourceDef;
use crate::{ApiError, ApiResult, ApiState};
use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// Answers a review `body` (already decoded) for `user`.
pub fn create(
    state: &Arc<ApiState>,
    res: &ResourceDef,
    user: Option<&Authenticated>,
    body: &Value,
) -> ApiResult<Response> {
    let user: &UserInfo = &user.ok_or_else(ApiError::unauthorized)?.0;
    let status = match res.plural {
        "selfsubjectreviews" => json!({"userInfo": user.to_json()}),
        "selfsubjectaccessreviews" => access(state, user, body)?,
        "selfsubjectrulesreviews" => rules(state, user, body),
        other => return Err(ApiError::internal(format!("no review for {other}"))),
    };
    let review = json!({
        "kind": res.kind,
        "apiVersion": res.api_version(),
        "metadata": {"creationTimestamp": null},
        "spec": body.get("spec").cloned().unwrap_or(json!({})),
        "status": status,
    });
    Ok(crate::request::json_response(
        StatusCode::CREATED,
        &review,
        &[],
    ))
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn access(state: &ApiState, user: &UserInfo, body: &Value) -> ApiResult<Value> {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let req = match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Request::Resource {
            verb: field(r, "verb"),
            api_group: field(r, "group"),
            resource: field(r, "resource"),
            subresource: field(r, "subresource"),
            namespace: field(r, "namespace"),
            name: field(r, "name"),
        },
        (None, Some(n)) => Request::NonResource {
            verb: field(n, "verb"),
            path: field(n, "path"),
        },
        _ => {
            return Err(ApiError::new(
                422,
                "Invalid",
                "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let decision = state.rbac.authorize(&user.rbac(), &req);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason.to_string());
    }
    Ok(status)
}

fn rules(state: &ApiState, user: &UserInfo, body: &Value) -> Value {
    let namespace = body
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in state.rbac.policy().rules_for(&user.rbac(), namespace) {
        if rule
            .non_resource_urls
            .as_ref()
            .is_some_and(|u| !u.is_empty())
        {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        } else {
            let mut r = json!({"verbs": rule.verbs});
            for (key, value) in [
                ("apiGroups", &rule.api_groups),
                ("resources", &rule.resources),
                ("resourceNames", &rule.resource_names),
            ] {
                if let Some(v) = value {
                    r[key] = json!(v);
                }
            }
            resource_rules.push(r);
        }
    }
    json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    })
}
