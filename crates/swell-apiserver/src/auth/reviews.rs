//! The review APIs clients ask about themselves with: SelfSubjectReview (`kubectl
//! auth whoami`), SelfSubjectAccessReview (`kubectl auth can-i`) and
//! SelfSubjectRulesReview (`kubectl auth can-i --list`), TokenReview (is this token
//! good, and whose is it), and TokenRequest (`kubectl create token`). Answered, never
//! stored.

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
        "tokenreviews" => token_review(state, body),
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

/// Answers a TokenRequest for ServiceAccount `name` in `namespace`: a token signed by
/// the server for the asked audiences (the API's by default) and lifetime.
pub fn token_request(
    state: &ApiState,
    namespace: &str,
    name: &str,
    body: &Value,
) -> ApiResult<Response> {
    use super::serviceaccount::{DEFAULT_EXPIRATION, MIN_EXPIRATION};
    let issuer = state
        .authenticator()
        .and_then(|a| a.token_issuer())
        .ok_or_else(|| ApiError::internal("this server issues no service account tokens"))?;
    let res = crate::registry()
        .find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not served"))?;
    let key = swell_store::ObjectKey::new("", "serviceaccounts", namespace, name);
    let sa = state
        .store
        .get(&key)
        .map_err(|e| ApiError::from_store(e, res, name))?
        .ok_or_else(|| ApiError::not_found(res, name))?;
    let uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let audiences = audiences(&spec);
    let seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_EXPIRATION.as_secs());
    if seconds < MIN_EXPIRATION.as_secs() || seconds > 1 << 32 {
        let why = if seconds < MIN_EXPIRATION.as_secs() {
            "may not specify a duration less than 10 minutes"
        } else {
            "may not specify a duration larger than 2^32 seconds"
        };
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "TokenRequest.authentication.k8s.io {name:?} is invalid: spec.expirationSeconds: Invalid value: {seconds}: {why}"
            ),
        ));
    }
    let (token, exp) = issuer
        .issue(
            namespace,
            name,
            uid,
            &audiences,
            std::time::Duration::from_secs(seconds),
        )
        .map_err(ApiError::internal)?;
    let expires = jiff::Timestamp::from_second(i64::try_from(exp).unwrap_or(i64::MAX))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let review = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": spec.get("boundObjectRef")},
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(crate::request::json_response(
        StatusCode::CREATED,
        &review,
        &[],
    ))
}

/// A review's `spec.audiences`, the API's own when it names none.
fn audiences(spec: &Value) -> Vec<String> {
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(super::serviceaccount::ISSUER.to_string());
    }
    audiences
}

/// TokenReview: who a token belongs to, for the audiences asked (the API's by default).
fn token_review(state: &ApiState, body: &Value) -> Value {
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let audiences = audiences(body.get("spec").unwrap_or(&Value::Null));
    let Some(auth) = state.authenticator() else {
        return json!({"authenticated": false, "error": "no authenticator"});
    };
    match auth.review_token(token, &audiences) {
        Ok(user) => json!({"authenticated": true, "user": user.to_json(), "audiences": audiences}),
        Err(e) => json!({"authenticated": false, "user": {}, "error": e.to_string()}),
    }
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
