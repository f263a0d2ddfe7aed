//! Parsing one API request: which resource it addresses, its query parameters and body,
//! and how the client wants the answer (JSON or Table).

use crate::error::{ApiError, ApiResult};
use crate::registry::{Registry, ResourceDef};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

/// Largest request body accepted (the Kubernetes API server's limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The object or collection a request addresses.
#[derive(Debug, Clone)]
pub struct Target<'r> {
    /// The resource.
    pub res: &'r ResourceDef,
    /// Namespace for namespaced resources (`None`: all namespaces).
    pub namespace: Option<String>,
    /// Object name, for item requests.
    pub name: Option<String>,
    /// True for the `/status` subresource.
    pub status: bool,
    /// The `serviceaccounts/NAME/token` subresource (TokenRequest).
    pub token: bool,
    /// The `pods/NAME/log` subresource.
    pub log: bool,
    /// Who asks (set by [`crate::auth::guard`]; `None` where nothing guards the router).
    pub user: Option<std::sync::Arc<crate::auth::UserInfo>>,
}

/// Parses the path after `/api/v1/` or `/apis/<g>/<v>/` (already split into segments).
pub fn parse_target<'r>(
    registry: &'r Registry,
    group: &str,
    version: &str,
    segs: &[&str],
) -> ApiResult<Target<'r>> {
    let find = |plural: &str| {
        registry
            .find(group, version, plural)
            .ok_or_else(ApiError::no_route)
    };
    let (namespace, rest): (Option<String>, &[&str]) = match segs {
        ["namespaces", ns, resource, rest @ ..] if find(resource).is_ok_and(|r| r.namespaced) => {
            (Some((*ns).to_string()), &segs[2..][..1 + rest.len()])
        }
        _ => (None, segs),
    };
    let (res, name, sub) = match rest {
        [resource] => (find(resource)?, None, None),
        [resource, name] => (find(resource)?, Some(*name), None),
        [resource, name, sub] => (find(resource)?, Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_route()),
    };
    if namespace.is_none() && res.namespaced && name.is_some() {
        return Err(ApiError::no_route());
    }
    let (status, token) = match sub {
        None | Some("log") => (false, false),
        Some("status") if res.status_subresource || res.plural == "namespaces" => (true, false),
        Some("token") if res.plural == "serviceaccounts" => (false, true),
        Some(_) => return Err(ApiError::no_route()),
    };
    let log = sub == Some("log");
    if log && res.plural != "pods" {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        res,
        namespace,
        name: name.map(String::from),
        status,
        token,
        log,
        user: None,
    })
}

/// Query parameters the API understands. `force`, `gracePeriodSeconds`, `pretty` and
/// `timeout` are accepted for compatibility and change nothing here: apply never reports
/// field conflicts (so there is nothing to force), objects have no termination grace
/// period (deletion is immediate unless finalizers hold it), answers are compact JSON,
/// and no request runs long enough to time out.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs, dead_code)]
pub struct Params {
    pub watch: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: Option<bool>,
    pub send_initial_events: Option<bool>,
    pub limit: Option<usize>,
    #[serde(rename = "continue")]
    pub continue_: Option<String>,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub dry_run: Option<String>,
    pub force: Option<bool>,
    pub include_object: Option<String>,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub pretty: Option<String>,
    pub timeout: Option<String>,
}

impl Params {
    /// Parses the query string.
    pub fn parse(query: Option<&str>) -> ApiResult<Self> {
        serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
    }

    /// `watch=true` or `watch=1`.
    pub fn is_watch(&self) -> bool {
        matches!(self.watch.as_deref(), Some("true" | "1"))
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "unsupported dryRun value {other:?}: only All is supported"
            ))),
        }
    }

    /// `fieldValidation`: Strict, Warn (default) or Ignore.
    pub fn field_validation(&self) -> ApiResult<swell_api::admission::FieldValidation> {
        use swell_api::admission::FieldValidation;
        match self.field_validation.as_deref() {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid fieldValidation {other:?}: must be Ignore, Warn or Strict"
            ))),
        }
    }
}

/// True when the client asked for a `meta.k8s.io` Table.
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
        })
}

/// Reads the whole body, refusing bodies over [`MAX_BODY_BYTES`].
pub async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_BODY_BYTES}"),
            )
        })
}

/// The media type of the body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("application/json")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a JSON (or, for YAML media types, YAML) body into an object.
pub fn decode_object(bytes: &[u8], media_type: &str, res: &ResourceDef) -> ApiResult<Value> {
    decode_object_of(bytes, media_type, res.kind)
}

/// Decodes a body of `kind` (JSON, YAML, or protobuf for the kinds kubectl sends so).
pub fn decode_object_of(bytes: &[u8], media_type: &str, kind: &str) -> ApiResult<Value> {
    if media_type == "application/vnd.kubernetes.protobuf" && crate::protobuf::KINDS.contains(&kind)
    {
        return crate::protobuf::decode(bytes, kind);
    }
    if media_type.contains("protobuf") || media_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({media_type} is not supported)"
            ),
        ));
    }
    let value: Value = if media_type.contains("yaml") {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(value)
}

/// A JSON answer with optional `Warning` headers.
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut resp = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response();
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// A Table answer.
pub fn table_response(body: &Value) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        )],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}
