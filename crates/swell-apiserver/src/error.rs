//! API errors, rendered as Kubernetes `Status` objects with the right code and reason.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};
use swell_store::StoreError;

use crate::registry::ResourceDef;

/// An error answer: HTTP code, Kubernetes reason, message and optional details.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `Conflict`, `Invalid`, …
    pub reason: &'static str,
    /// Human-readable message, as kubectl prints it.
    pub message: String,
    /// `details` of the Status.
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A plain error.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 401 for a request with a missing or wrong credential.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 with Kubernetes' "forbidden" message for what RBAC refused.
    pub fn forbidden(
        info: &crate::auth::request_info::RequestInfo,
        user: &crate::auth::UserInfo,
    ) -> Self {
        let details = info.is_resource.then(|| {
            let mut d = json!({"group": info.api_group, "kind": info.resource});
            if !info.name.is_empty() {
                d["name"] = json!(info.name);
            }
            d
        });
        Self {
            details: Some(details.unwrap_or_else(|| json!({}))),
            ..Self::new(
                403,
                "Forbidden",
                crate::rbac::forbidden_message(&user.rbac(), &info.as_rbac()),
            )
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 for an unknown path.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 405.
    pub fn method_not_allowed(what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({what})"),
        )
    }

    /// 404 for a missing object.
    pub fn not_found(res: &ResourceDef, name: &str) -> Self {
        Self::not_found_named(&res.qualified(), res.group, res.plural, name)
    }

    /// 404 for a missing object of a resource named by its qualified name.
    pub fn not_found_named(qualified: &str, group: &str, plural: &str, name: &str) -> Self {
        Self {
            details: Some(json!({"name": name, "group": group, "kind": plural})),
            ..Self::new(404, "NotFound", format!("{qualified} {name:?} not found"))
        }
    }

    /// 409 AlreadyExists.
    pub fn already_exists(res: &ResourceDef, name: &str) -> Self {
        Self {
            details: Some(json!({"name": name, "group": res.group, "kind": res.plural})),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} {name:?} already exists", res.qualified()),
            )
        }
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn conflict(res: &ResourceDef, name: &str) -> Self {
        Self {
            details: Some(json!({"name": name, "group": res.group, "kind": res.plural})),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: the object has been modified; \
                     please apply your changes to the latest version and try again",
                    res.qualified()
                ),
            )
        }
    }

    /// 422 Invalid with one cause per offending field.
    pub fn invalid(res: &ResourceDef, name: &str, causes: Vec<(String, String)>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|(field, msg)| {
                if field.is_empty() {
                    msg.clone()
                } else {
                    format!("{field}: {msg}")
                }
            })
            .collect();
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(field, message)| json!({"reason": "FieldValueInvalid", "message": message, "field": field}))
            .collect();
        Self {
            details: Some(
                json!({"name": name, "group": res.group, "kind": res.kind, "causes": causes}),
            ),
            ..Self::new(
                422,
                "Invalid",
                format!(
                    "{} {name:?} is invalid: {}",
                    res.qualified_kind(),
                    summary.join(", ")
                ),
            )
        }
    }

    /// 410 Expired, for watches and continue tokens that are too old.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 for a patch type the resource does not accept (kubectl prefixes the media type
    /// and kind itself).
    pub fn unsupported_patch() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// Maps a store error for an object of `res` named `name`.
    pub fn from_store(err: StoreError, res: &ResourceDef, name: &str) -> Self {
        match err {
            StoreError::NotFound(_) => Self::not_found(res, name),
            StoreError::AlreadyExists(_) => Self::already_exists(res, name),
            StoreError::Conflict { .. } => Self::conflict(res, name),
            StoreError::Precondition { message, .. } => Self {
                details: Some(json!({"name": name, "group": res.group, "kind": res.plural})),
                ..Self::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} {name:?}: {message}",
                        res.qualified()
                    ),
                )
            },
            StoreError::Expired { requested, oldest } => {
                Self::expired(format!("too old resource version: {requested} ({oldest})"))
            }
            StoreError::Invalid(m) => Self::bad_request(m),
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "store failure");
                Self::internal(other.to_string())
            }
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}
