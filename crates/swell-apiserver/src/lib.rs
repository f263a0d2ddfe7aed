//! A Kubernetes-compatible REST API server for Knative Serving's resources, over a
//! [`swell_store::Store`].
//!
//! It follows the Kubernetes API conventions closely enough that the real `kubectl` and
//! kube-rs clients work against it unchanged: discovery (plain and aggregated), OpenAPI
//! v2/v3, CRUD with the `status` subresource, merge/JSON/apply patches, server-side
//! Tables with Knative's printer columns, label and field selectors, dry runs, and
//! watches. Every write goes through admission (Knative's defaulting then validation)
//! and errors come back as `Status` objects.
//!
//! Start at [`router`].

pub mod auth;
mod core;
mod discovery;
mod error;
pub mod https;
mod openapi;
mod patch;
pub mod pods;
mod protobuf;
pub mod rbac;
mod read;
mod registry;
mod request;
mod selector;
mod table;
mod write;

pub use error::{ApiError, ApiResult};
pub use registry::{Registry, ResourceDef};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::sync::{Arc, LazyLock, RwLock};
use swell_api::AdmissionContext;
use swell_store::{ObjectKey, Store, StoreError, WriteOptions};
use tokio_util::sync::CancellationToken;

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The resources this server serves.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// Namespaces that exist from the first start.
pub const BUILTIN_NAMESPACES: [&str; 2] = ["default", "knative-serving"];

/// Shared state of the API server.
pub struct ApiState {
    /// Where objects live.
    pub store: Arc<dyn Store>,
    admission: RwLock<Arc<AdmissionContext>>,
    /// Cancelled on shutdown: open watches end so the server can drain.
    pub shutdown: CancellationToken,
    /// `host:port` clients reach the server at (for `/api`).
    pub server_addr: String,
    /// Who may ask (client CA and tokens); `None` until the server sets one, when
    /// [`secured`] refuses every request it guards.
    authenticator: std::sync::OnceLock<Arc<auth::Authenticator>>,
    /// The RBAC policy every request is authorized by.
    pub rbac: auth::policy::PolicyCache,
    /// Where Pods' logs are read (`pods/log`); `None` while nothing runs replicas.
    pod_logs: std::sync::OnceLock<Arc<dyn pods::PodLogs>>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("server_addr", &self.server_addr)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State over `store`, with Knative's default admission configuration.
    pub fn new(store: Arc<dyn Store>, server_addr: String, shutdown: CancellationToken) -> Self {
        Self {
            rbac: auth::policy::PolicyCache::new(store.clone()),
            store,
            admission: RwLock::new(Arc::new(AdmissionContext::default())),
            shutdown,
            server_addr,
            authenticator: std::sync::OnceLock::new(),
            pod_logs: std::sync::OnceLock::new(),
        }
    }

    /// Sets where Pods' logs are read; only the first call counts.
    pub fn set_pod_logs(&self, logs: Arc<dyn pods::PodLogs>) {
        let _ = self.pod_logs.set(logs);
    }

    /// Where Pods' logs are read, once set.
    pub fn pod_logs(&self) -> Option<&Arc<dyn pods::PodLogs>> {
        self.pod_logs.get()
    }

    /// Sets who may ask; only the first call counts.
    pub fn set_authenticator(&self, authenticator: Arc<auth::Authenticator>) {
        let _ = self.authenticator.set(authenticator);
    }

    /// Who may ask, once set.
    pub fn authenticator(&self) -> Option<&auth::Authenticator> {
        self.authenticator.get().map(Arc::as_ref)
    }

    /// The admission configuration in force.
    pub fn admission_context(&self) -> Arc<AdmissionContext> {
        self.admission
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the admission configuration (when `config-*` ConfigMaps change).
    pub fn set_admission_context(&self, ctx: AdmissionContext) {
        *self
            .admission
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ctx);
    }
}

/// Creates the built-in namespaces and the `config-*` ConfigMaps (with Knative's
/// defaults) if they are missing.
pub async fn bootstrap(store: &dyn Store) -> Result<(), StoreError> {
    for ns in BUILTIN_NAMESPACES {
        let key = ObjectKey::new("", "namespaces", "", ns);
        if store.get(&key)?.is_none() {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {}, "status": {"phase": "Active"}});
            match store.create(&key, obj, &WriteOptions::default()).await {
                Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    for map in swell_api::config::MAPS {
        let key = ObjectKey::new("", "configmaps", swell_api::config::NAMESPACE, map);
        if store.get(&key)?.is_none() {
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": map, "namespace": swell_api::config::NAMESPACE, "labels": {"app.kubernetes.io/part-of": "swell"}},
                "data": swell_api::config::initial_data(map)});
            match store.create(&key, obj, &WriteOptions::default()).await {
                Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    auth::serviceaccount::ensure_default_service_accounts(store).await?;
    for obj in rbac::bootstrap_objects() {
        let plural = match obj["kind"].as_str() {
            Some("ClusterRole") => "clusterroles",
            Some("ClusterRoleBinding") => "clusterrolebindings",
            _ => continue,
        };
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = ObjectKey::new(rbac::GROUP, plural, "", &name);
        match store.get(&key)? {
            None => match store.create(&key, obj, &WriteOptions::default()).await {
                Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            },
            // As kube-apiserver, defaults marked for auto-update are put back as shipped.
            Some(mut stored)
                if stored.pointer(
                    "/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate",
                ) != Some(&json!("false")) =>
            {
                let mut changed = false;
                for field in ["rules", "aggregationRule", "roleRef", "subjects"] {
                    if stored.get(field) != obj.get(field) {
                        match obj.get(field) {
                            Some(v) => stored[field] = v.clone(),
                            None => {
                                stored.as_object_mut().map(|o| o.remove(field));
                            }
                        }
                        changed = true;
                    }
                }
                if changed {
                    store.update(&key, stored, &WriteOptions::default()).await?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Guards `app` with authentication and RBAC authorization ([`auth::guard`]): what
/// the HTTPS server serves. Routes added to `app` before this are guarded too.
pub fn secured(app: Router, state: Arc<ApiState>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(state, auth::guard))
}

/// The axum router serving the whole API.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/version", get(|| async { Json(discovery::version()) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/api", get(api_root))
        .route("/apis", get(apis_root))
        .route("/openapi/v2", get(openapi_v2))
        .route(
            "/openapi/v3",
            get(|| async { Json(openapi::v3_index(registry())) }),
        )
        .route("/openapi/v3/{*path}", get(openapi_v3))
        .fallback(dispatch)
        .with_state(state)
}

struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        request::json_response(StatusCode::OK, &self.0, &[])
    }
}

fn accept(req: &Request) -> &str {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn aggregated_or(req: &Request, core: bool, plain: Value) -> Response {
    match discovery::aggregated_version(accept(req)) {
        Some(v) => {
            let body =
                serde_json::to_vec(&discovery::aggregated(registry(), core, v)).unwrap_or_default();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, discovery::aggregated_content_type(v))],
                body,
            )
                .into_response()
        }
        None => Json(plain).into_response(),
    }
}

async fn api_root(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    aggregated_or(&req, true, discovery::core_versions(&state.server_addr))
}

async fn apis_root(req: Request) -> Response {
    aggregated_or(&req, false, discovery::group_list(registry()))
}

async fn openapi_v2() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, openapi::OPENAPI_V2_CONTENT_TYPE)],
        openapi::OPENAPI_V2_PROTOBUF,
    )
        .into_response()
}

async fn openapi_v3(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    let segs: Vec<&str> = path.split('/').collect();
    let doc = match segs.as_slice() {
        ["api", v] => openapi::v3_document(registry(), "", v),
        ["apis", g, v] => openapi::v3_document(registry(), g, v),
        _ => None,
    };
    match doc {
        Some(d) => Json(d).into_response(),
        None => ApiError::no_route().into_response(),
    }
}

/// Routes `/api/v1/…` and `/apis/<group>/<version>/…` requests.
async fn dispatch(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let started = tokio::time::Instant::now();
    let resp = match handle(&state, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.code >= 500 {
                tracing::error!(%method, %path, code = e.code, message = %e.message, "request failed");
            }
            e.into_response()
        }
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed = ?started.elapsed(), "request");
    resp
}

async fn handle(state: &Arc<ApiState>, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g] => {
            return discovery::group(registry(), g)
                .map(|g| Json(g).into_response())
                .ok_or_else(ApiError::no_route);
        }
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(ApiError::no_route()),
    };
    if rest.is_empty() {
        return match discovery::resource_list(registry(), group, version) {
            Some(list) if req.method() == Method::GET => Ok(Json(list).into_response()),
            Some(_) => Err(ApiError::method_not_allowed("discovery")),
            None => Err(ApiError::no_route()),
        };
    }
    let mut target = request::parse_target(registry(), group, version, rest)?;
    target.user = req
        .extensions()
        .get::<auth::Authenticated>()
        .map(|a| a.0.clone());
    let params = request::Params::parse(req.uri().query())?;
    let req_query = req.uri().query().map(String::from);
    let as_table = request::wants_table(req.headers());
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = request::read_body(req.into_body()).await?;
    let name = target.name.clone();
    if target.token {
        let (true, Some(n), Some(ns)) = (
            method == Method::POST,
            name.as_deref(),
            target.namespace.as_deref(),
        ) else {
            return Err(ApiError::method_not_allowed(method.as_str()));
        };
        let media = request::content_type(&headers);
        let review = request::decode_object_of(&body, &media, "TokenRequest")?;
        return auth::reviews::token_request(state, ns, n, &review);
    }
    if target.log {
        let (true, Some(n), Some(ns)) = (
            method == Method::GET,
            name.as_deref(),
            target.namespace.as_deref(),
        ) else {
            return Err(ApiError::method_not_allowed(method.as_str()));
        };
        return pods::log(state, ns, n, req_query.as_deref()).await;
    }
    if target.res.is_review() {
        if method != Method::POST || name.is_some() {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        let media = request::content_type(&headers);
        let review = request::decode_object(&body, &media, target.res)?;
        let user = req_user(&target);
        return auth::reviews::create(state, target.res, user.as_ref(), &review);
    }
    let writes = method != Method::GET;
    if writes {
        managed_by_swell(&target, name.as_deref())?;
    }
    let resp = match (method, name.as_deref()) {
        (Method::GET, Some(n)) => read::get(state, &target, n, as_table).await,
        (Method::GET, None) if params.is_watch() => {
            read::watch(state, &target, &params, as_table).await
        }
        (Method::GET, None) => read::list(state, &target, &params, as_table).await,
        (Method::POST, None) if !target.status => {
            write::create(state, &target, &params, &headers, &body).await
        }
        (Method::PUT, Some(n)) => write::update(state, &target, n, &params, &headers, &body).await,
        (Method::PATCH, Some(n)) => write::patch(state, &target, n, &params, &headers, &body).await,
        (Method::DELETE, Some(n)) if !target.status => {
            write::delete(state, &target, n, &params, &headers, &body).await
        }
        (Method::DELETE, None) => {
            write::delete_collection(state, &target, &params, &headers, &body).await
        }
        (m, _) => Err(ApiError::method_not_allowed(m.as_str())),
    };
    // Every namespace has a `default` ServiceAccount, as Kubernetes' controller makes.
    if writes && target.res.plural == "namespaces" && resp.is_ok() {
        auth::serviceaccount::ensure_default_service_accounts(state.store.as_ref())
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    // A change to a Role, ClusterRole or binding changes what everyone may do.
    if writes && target.res.group == rbac::GROUP && resp.is_ok() {
        state.rbac.invalidate();
    }
    resp
}

/// Core Services are made by Swell's controllers (one per Route and per tag, and the
/// ingress's): only they may write them; anyone else's write is refused as Forbidden.
fn managed_by_swell(target: &request::Target<'_>, name: Option<&str>) -> ApiResult<()> {
    if !(target.res.group.is_empty() && target.res.plural == "services") {
        return Ok(());
    }
    let controller = auth::controllers();
    if target
        .user
        .as_ref()
        .is_some_and(|u| u.name == controller.0.name)
    {
        return Ok(());
    }
    let what = match name {
        Some(n) => format!("services {n:?}"),
        None => "services".to_string(),
    };
    Err(ApiError::new(
        403,
        "Forbidden",
        format!(
            "{what} is forbidden: Services are managed by Swell, which makes one for each \
             Knative Route; change the Knative Service or Route instead"
        ),
    ))
}

fn req_user(target: &request::Target<'_>) -> Option<auth::Authenticated> {
    target.user.clone().map(auth::Authenticated)
}
