//! The controllers in-process, for component tests: a store in a temporary directory,
//! the API router as their `kube::Client` (as `swell server` builds it), a
//! [`FakeBackend`], the data plane's routing tables and pools, and
//! [`swell_controller::run`] on a task of the test's runtime.
//!
//! Every wait is bounded by [`PATIENCE`] and names what it waited for when it gives up,
//! with the object as last seen.

use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use swell_controller::{FakeBackend, RevisionRef, RoutingTables};
use swell_dataplane::routes::Weighted;
use swell_dataplane::{RevisionKey, Revisions, Split};
use swell_store::{RedbStore, StoreConfig};
use tokio_util::sync::CancellationToken;

/// How long any one wait may take (real time: the store's writer is a thread of its own,
/// so paused time would race past it).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The port the ingress is said to listen on (shown in URLs).
pub const INGRESS_PORT: u16 = 8080;

/// The namespace tests work in.
pub const NS: &str = "default";

/// Running controllers over an in-process API.
pub struct Env {
    /// The API, as the controllers' identity.
    pub client: kube::Client,
    /// Runs nothing; counts the replicas asked for.
    pub backend: Arc<FakeBackend>,
    /// What the Route and DomainMapping controllers publish.
    pub ingress: RoutingTables,
    /// The data plane's Revision pools.
    pub pools: Revisions,
    shutdown: CancellationToken,
    controllers: Option<tokio::task::JoinHandle<()>>,
    // Kept open: the controllers' replica-change stream ends when it closes.
    _replica_changes: tokio::sync::mpsc::UnboundedSender<RevisionRef>,
    _dir: tempfile::TempDir,
}

impl Env {
    /// Opens a fresh store (with the built-in namespaces and `config-*` maps), serves the
    /// API over it in-process and starts the controllers.
    pub async fn start() -> Env {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = RedbStore::open(&dir.path().join("swell.redb"), StoreConfig::default())
            .expect("a store in a temporary directory");
        swell_apiserver::bootstrap(&store)
            .await
            .expect("the built-in objects");
        let store: Arc<dyn swell_store::Store> = Arc::new(store);
        let shutdown = CancellationToken::new();
        let state = Arc::new(swell_apiserver::ApiState::new(
            store,
            "127.0.0.1:0".into(),
            shutdown.clone(),
        ));
        let app = swell_apiserver::secured(swell_apiserver::router(state.clone()), state.clone());
        let client = kube::Client::new(
            tower::ServiceBuilder::new()
                .map_request(|mut req: http::Request<kube::client::Body>| {
                    req.extensions_mut()
                        .insert(swell_apiserver::auth::controllers());
                    req
                })
                .service(app),
            NS,
        );
        let backend = Arc::new(FakeBackend::default());
        let ingress = RoutingTables::default();
        let pools = Revisions::default();
        let (replica_changes_tx, replica_changes) = tokio::sync::mpsc::unbounded_channel();
        let wiring = swell_controller::Wiring {
            client: client.clone(),
            backend: backend.clone(),
            ingress: ingress.clone(),
            pools: pools.clone(),
            ingress_port: Some(INGRESS_PORT),
            replica_changes,
            // Admission follows the `config-*` maps, as in `swell server`.
            on_config: Arc::new(move |cfg: &swell_api::config::ServingConfig| {
                state.set_admission_context(swell_api::AdmissionContext {
                    config: swell_api::validation::ValidationConfig::of(cfg),
                    ..swell_api::AdmissionContext::default()
                });
            }),
            images: None,
            replica_api: None,
            replica_api_ca: None,
        };
        let controllers = tokio::spawn(swell_controller::run(wiring, shutdown.clone()));
        Env {
            client,
            backend,
            ingress,
            pools,
            shutdown,
            controllers: Some(controllers),
            _replica_changes: replica_changes_tx,
            _dir: dir,
        }
    }

    /// The namespaced API of `K`.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Creates `object` (JSON of a `K`, namespace defaulted) and returns it as stored.
    pub async fn create<K>(&self, object: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let object: K = serde_json::from_value(object).expect("a valid object");
        self.api::<K>()
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("cannot create {object:?}: {e}"))
    }

    /// Deletes the `K` named `name` (background propagation, as kubectl).
    pub async fn delete<K>(&self, name: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + DeserializeOwned,
    {
        self.api::<K>()
            .delete(name, &DeleteParams::background())
            .await
            .unwrap_or_else(|e| panic!("cannot delete {name}: {e}"));
    }

    /// Waits until the `K` named `name` exists and `done` holds for it; returns it.
    pub async fn eventually<K>(&self, name: &str, what: &str, done: impl Fn(&K) -> bool) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let api = self.api::<K>();
        let mut last = None;
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                match api.get_opt(name).await {
                    Ok(Some(obj)) if done(&obj) => return obj,
                    Ok(obj) => last = obj,
                    Err(e) => tracing::debug!(error = %e, "get failed; retrying"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            let seen = serde_json::to_string_pretty(&last).unwrap_or_default();
            panic!("{name}: {what} did not happen within {PATIENCE:?}; last seen:\n{seen}")
        })
    }

    /// Waits until the `K` named `name` no longer exists.
    pub async fn gone<K>(&self, name: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
    {
        let api = self.api::<K>();
        let mut last = None;
        let gone = tokio::time::timeout(PATIENCE, async {
            loop {
                match api.get_opt(name).await {
                    Ok(None) => return,
                    Ok(obj) => last = obj,
                    Err(e) => tracing::debug!(error = %e, "get failed; retrying"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if gone.is_err() {
            let seen = serde_json::to_string_pretty(&last).unwrap_or_default();
            panic!("{name} was not deleted within {PATIENCE:?}; last seen:\n{seen}");
        }
    }

    /// Waits until `done` holds of something outside the API (the ingress, the backend).
    pub async fn until(&self, what: &str, done: impl Fn() -> bool) {
        until(what, || std::future::ready(done())).await;
    }

    /// The replicas the backend runs for the Revision `name`.
    pub fn replicas(&self, name: &str) -> i32 {
        self.backend.replicas(&RevisionRef {
            namespace: NS.into(),
            name: name.into(),
        })
    }

    /// True when the data plane has a pool for the Revision `name`.
    pub fn has_pool(&self, name: &str) -> bool {
        self.pools
            .get(&RevisionKey {
                namespace: NS.into(),
                name: name.into(),
            })
            .is_some()
    }

    /// How the ingress splits the requests for `host`, or `None` when nothing publishes
    /// the host.
    pub fn split_of(&self, host: &str) -> Option<Weighted> {
        self.ingress.lookup(host).map(|r| r.splits.clone())
    }

    /// Stops the controllers and waits (bounded) until they have.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.controllers.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("the controllers stop when asked")
                .expect("the controllers do not panic");
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // A test that failed half-way still stops its controllers.
        self.shutdown.cancel();
    }
}

/// Waits until the future `done` makes answers true, bounded by [`PATIENCE`].
pub async fn until<F: Future<Output = bool>>(what: &str, done: impl Fn() -> F) {
    let met = tokio::time::timeout(PATIENCE, async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(met.is_ok(), "{what} did not happen within {PATIENCE:?}");
}

/// The split that sends `percent` of requests to each Revision named.
pub fn split(shares: &[(&str, i64)]) -> Weighted {
    let splits: Vec<Split> = shares
        .iter()
        .map(|(revision, percent)| Split {
            revision: (*revision).to_string(),
            percent: *percent,
        })
        .collect();
    Weighted::new(&splits)
}

/// The status (`True`, `False`, `Unknown`) and reason of the condition `type_` of
/// `object`, if it has one.
pub fn condition(object: &impl Serialize, type_: &str) -> Option<(String, String)> {
    let v = serde_json::to_value(object).ok()?;
    let c = v
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str().unwrap_or_default().to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
    ))
}

/// True when `object`'s `Ready` condition is `True`.
pub fn ready(object: &impl Serialize) -> bool {
    condition(object, "Ready").is_some_and(|(s, _)| s == "True")
}
