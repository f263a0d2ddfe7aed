//! Knative Serving's reconcilers, as kube-runtime controllers: Service → Configuration +
//! Route, Configuration → Revision, Revision → its data-plane pool and its autoscaler
//! (which runs replicas through a [`Backend`]), and Route → resolved traffic, URLs and a
//! published [`RoutingTable`].
//!
//! The controllers talk to the API through a `kube::Client`; `swell server` builds one
//! that calls the API router in-process (no TCP), so the same reconcilers can later run
//! against a real Kubernetes API server. Status derivation is pure functions
//! (`service_status`, `configuration_status`, `revision_status`, `route_status`),
//! unit-tested without any runtime. Start at [`run`].

pub mod autoscaling;
pub mod condition;
pub mod configuration;
pub mod domainmapping;
pub mod events;
pub mod gc;
pub mod labels;
mod owner;
pub mod pulls;
pub mod revision;
pub mod rollout;
pub mod route;
pub mod route_service;
pub mod service;
pub mod token;
pub mod workload;

pub use swell_dataplane::{RouteKey, RoutingTable, RoutingTables, Split};
pub use swell_runtime::{Backend, FakeBackend, NoBackend, ReplicaStatus, RevisionRef};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use std::sync::Arc;
use std::time::Duration;
use swell_api::config::ServingConfig;
use swell_api::{Configuration, DomainMapping, Revision, Route, Service};
use tokio_util::sync::CancellationToken;

/// What every reconciler works with.
pub struct Ctx {
    /// The API.
    pub client: kube::Client,
    /// Scales Revisions; the only one that asks the backend for replicas.
    pub autoscaler: Arc<autoscaling::Autoscaler>,
    /// Pins Revisions' image tags to digests, when the backend runs images.
    pub images: Option<Arc<dyn swell_runtime::ImageResolver>>,
    /// Where Routes publish their routing tables.
    pub ingress: RoutingTables,
    /// The data plane's Revision pools, configured from each Revision's spec.
    pub pools: swell_dataplane::Revisions,
    /// The ingress port, shown in URLs unless it is the scheme's default.
    pub ingress_port: Option<u16>,
    /// The `config-*` maps as last read.
    pub config: tokio::sync::watch::Receiver<Arc<ServingConfig>>,
    /// What replicas need to call the API: where it is, its CA, their tokens.
    pub api_access: token::ApiAccess,
    /// Every Revision, cached from a watch (the same stream that triggers the
    /// Configuration controller updates it first, so it is never behind the trigger).
    pub revisions: Store<Revision>,
    /// Revisions whose images could not be resolved, backing off.
    pub pulls: pulls::PullBackoffs,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

/// Why a reconcile failed; every failure is retried.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An API call failed.
    #[error("API request failed")]
    Api(#[from] kube::Error),
}

fn error_policy<K>(_: Arc<K>, err: &ReconcileError, _: Arc<Ctx>) -> Action {
    let conflict = matches!(err, ReconcileError::Api(kube::Error::Api(e)) if e.code == 409);
    tracing::debug!(error = %err, source = ?std::error::Error::source(err), "reconcile failed; retrying");
    Action::requeue(if conflict {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(1)
    })
}

/// The Routes in `namespace` with a traffic target for which `names` holds.
fn routes_naming(
    store: &Store<Route>,
    namespace: Option<&str>,
    names: impl Fn(&swell_api::TrafficTarget) -> bool,
) -> Vec<ObjectRef<Route>> {
    store
        .state()
        .iter()
        .filter(|r| {
            r.metadata.namespace.as_deref() == namespace && r.spec.traffic.iter().any(&names)
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// The Revisions in the namespace of the ConfigMap or Secret `source` that read it.
fn revisions_using(
    store: &Store<Revision>,
    source: &ObjectMeta,
    kind: workload::SourceKind,
) -> Vec<ObjectRef<Revision>> {
    let name = source.name.as_deref().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|r| r.metadata.namespace == source.namespace && workload::references(r, kind, name))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// How long reconciles in flight get to finish once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs `controller` until `shutdown`, then lets its reconciles in flight finish for
/// up to [`SHUTDOWN_GRACE`]. (A controller stopped before its cache was first filled
/// would otherwise wait for that forever; reconciles are idempotent, so one cut short
/// is redone on the next start.)
async fn drive<K, F, Fut>(
    controller: Controller<K>,
    reconcile: F,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, ReconcileError>> + Send + 'static,
{
    let running = controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        });
    let cut_short = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = running => {}
        () = cut_short => tracing::debug!("a controller was stopped before it drained"),
    }
}

/// Follows the `config-*` ConfigMaps: every change is parsed, published to the
/// reconcilers through `tx`, and handed to `on_config` (the API server's admission).
async fn follow_config(
    client: kube::Client,
    tx: tokio::sync::watch::Sender<Arc<ServingConfig>>,
    on_config: Arc<dyn Fn(&ServingConfig) + Send + Sync>,
    shutdown: CancellationToken,
) {
    let (maps, writer) = reflector::store::<ConfigMap>();
    let api = Api::<ConfigMap>::namespaced(client, swell_api::config::NAMESPACE);
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let mut events = std::pin::pin!(events.take_until(shutdown.cancelled_owned()));
    while events.next().await.is_some() {
        let data: Vec<(String, std::collections::BTreeMap<String, String>)> = maps
            .state()
            .iter()
            .map(|m| {
                (
                    m.metadata.name.clone().unwrap_or_default(),
                    m.data.clone().unwrap_or_default(),
                )
            })
            .collect();
        let cfg = swell_api::config::from_maps(data.iter().map(|(n, d)| (n.as_str(), d)));
        if **tx.borrow() != cfg {
            tracing::info!("configuration maps changed");
            on_config(&cfg);
            let _ = tx.send(Arc::new(cfg));
        }
    }
}

/// What the controllers drive, and how they hear of changes outside the API.
pub struct Wiring {
    /// The API.
    pub client: kube::Client,
    /// Runs replicas.
    pub backend: Arc<dyn Backend>,
    /// Where Routes publish their routing tables.
    pub ingress: RoutingTables,
    /// The data plane's Revision pools.
    pub pools: swell_dataplane::Revisions,
    /// The ingress port (for URLs).
    pub ingress_port: Option<u16>,
    /// Revisions whose replicas changed (the backend says so); each is reconciled.
    pub replica_changes: tokio::sync::mpsc::UnboundedReceiver<RevisionRef>,
    /// Called with every new configuration read from the `config-*` maps.
    pub on_config: Arc<dyn Fn(&ServingConfig) + Send + Sync>,
    /// Pins Revisions' image tags to digests (backends that run images).
    pub images: Option<Arc<dyn swell_runtime::ImageResolver>>,
    /// Where replicas reach the API, given to them as `KUBERNETES_SERVICE_HOST`/`PORT`.
    pub replica_api: Option<std::net::SocketAddr>,
    /// The API's CA (PEM), mounted with a ServiceAccount token into every container,
    /// for backends that mount volumes.
    pub replica_api_ca: Option<String>,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring").finish_non_exhaustive()
    }
}

/// Tears down the replicas and pool of every Revision that is deleted.
async fn follow_revision_deletions(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let api = Api::<Revision>::all(ctx.client.clone());
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events.take_until(shutdown.cancelled_owned()));
    while let Some(e) = events.next().await {
        if let Ok(watcher::Event::Delete(rev)) = e {
            let r = revision::revision_ref(&rev);
            ctx.autoscaler.remove(&r);
            ctx.pulls.forget(&r);
            ctx.pools.remove(&swell_dataplane::RevisionKey {
                namespace: r.namespace,
                name: r.name,
            });
        }
    }
}

/// Unpublishes the host of every DomainMapping that is deleted (a deleted object is
/// never reconciled).
async fn follow_mapping_deletions(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let api = Api::<DomainMapping>::all(ctx.client.clone());
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events.take_until(shutdown.cancelled_owned()));
    while let Some(e) = events.next().await {
        if let Ok(watcher::Event::Delete(dm)) = e {
            ctx.ingress.remove(&domainmapping::key(&dm));
        }
    }
}

/// Unpublishes the routing table of every Route that is deleted (a Route has no
/// finalizer, so a deleted one is never reconciled).
async fn follow_route_deletions(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let api = Api::<Route>::all(ctx.client.clone());
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events.take_until(shutdown.cancelled_owned()));
    while let Some(e) = events.next().await {
        if let Ok(watcher::Event::Delete(route)) = e {
            ctx.ingress.remove(&RouteKey {
                namespace: route.metadata.namespace.clone().unwrap_or_default(),
                name: route.metadata.name.clone().unwrap_or_default(),
            });
        }
    }
}

/// Runs the controllers until `shutdown` is cancelled.
pub async fn run(wiring: Wiring, shutdown: CancellationToken) {
    let Wiring {
        client,
        backend,
        ingress,
        pools,
        ingress_port,
        replica_changes,
        on_config,
        images,
        replica_api,
        replica_api_ca,
    } = wiring;
    let c = client.clone();
    let wc = watcher::Config::default;
    let (revisions, writer) = reflector::store::<Revision>();
    let revision_events = watcher(Api::<Revision>::all(c.clone()), wc())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let (config_tx, config) = tokio::sync::watch::channel(Arc::new(ServingConfig::default()));
    let config_changes =
        tokio_stream::wrappers::WatchStream::from_changes(config.clone()).map(|_| ());
    let follow = follow_config(client.clone(), config_tx, on_config, shutdown.clone());
    let (scale_changes_tx, scale_changes) = tokio::sync::mpsc::unbounded_channel();
    let (demand_tx, demand) = tokio::sync::mpsc::unbounded_channel();
    pools.on_demand(demand_tx);
    let autoscaler = Arc::new(autoscaling::Autoscaler::new(
        backend,
        pools.clone(),
        scale_changes_tx,
    ));
    let ctx = Arc::new(Ctx {
        client,
        autoscaler: autoscaler.clone(),
        images,
        ingress,
        pools,
        ingress_port,
        config,
        revisions,
        pulls: pulls::PullBackoffs::default(),
        api_access: token::ApiAccess {
            endpoint: replica_api,
            ca: replica_api_ca,
            tokens: token::TokenManager::default(),
        },
    });
    let stop = || {
        let s = shutdown.clone();
        async move { s.cancelled().await }
    };
    let services = Controller::new(Api::<Service>::all(c.clone()), wc())
        .owns(Api::<Configuration>::all(c.clone()), wc())
        .owns(Api::<Route>::all(c.clone()), wc())
        .graceful_shutdown_on(stop());
    let gc_changes =
        tokio_stream::wrappers::WatchStream::from_changes(ctx.config.clone()).map(|_| ());
    let configurations = Controller::new(Api::<Configuration>::all(c.clone()), wc())
        .owns_stream(revision_events)
        .reconcile_all_on(gc_changes)
        .graceful_shutdown_on(stop());
    // Replicas became ready or went away (the backend), or the scale changed (the
    // autoscaler): the Revision's status follows.
    let refs = |rx: tokio::sync::mpsc::UnboundedReceiver<RevisionRef>| {
        futures::stream::unfold(rx, |mut rx| async move {
            let r = rx.recv().await?;
            Some((ObjectRef::<Revision>::new(&r.name).within(&r.namespace), rx))
        })
    };
    let replica_changes = futures::stream::select(refs(replica_changes), refs(scale_changes));
    // A Revision's scaling follows `config-autoscaler` and `config-deployment`.
    let revision_config_changes =
        tokio_stream::wrappers::WatchStream::from_changes(ctx.config.clone()).map(|_| ());
    // A Revision re-reads the ConfigMaps and Secrets it uses when they change (its
    // volumes show the new contents; one that was missing may now exist).
    let revisions = Controller::new(Api::<Revision>::all(c.clone()), wc());
    let (by_map, by_secret) = (revisions.store(), revisions.store());
    let revisions = revisions
        .watches(Api::<ConfigMap>::all(c.clone()), wc(), move |m| {
            revisions_using(&by_map, &m.metadata, workload::SourceKind::ConfigMap)
        })
        .watches(Api::<Secret>::all(c.clone()), wc(), move |s| {
            revisions_using(&by_secret, &s.metadata, workload::SourceKind::Secret)
        })
        .reconcile_on(replica_changes)
        .reconcile_all_on(revision_config_changes)
        .graceful_shutdown_on(stop());
    // A Route follows the Configurations and Revisions it names; a Service's Route has
    // the Configuration's name, and a Revision names its Configuration in a label.
    let routes = Controller::new(Api::<Route>::all(c.clone()), wc());
    // A Route follows the Configurations and Revisions its traffic names; the Route
    // controller's own cache says which Routes name what.
    let by_config = routes.store();
    let by_revision = routes.store();
    let routes = routes
        .watches(Api::<Configuration>::all(c.clone()), wc(), move |cfg| {
            routes_naming(&by_config, cfg.metadata.namespace.as_deref(), |t| {
                t.configuration_name.as_ref() == cfg.metadata.name.as_ref()
            })
        })
        .watches(Api::<Revision>::all(c.clone()), wc(), move |rev| {
            let cfg = rev
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::CONFIGURATION))
                .cloned();
            routes_naming(&by_revision, rev.metadata.namespace.as_deref(), |t| {
                t.revision_name.as_ref() == rev.metadata.name.as_ref()
                    || (cfg.is_some() && t.configuration_name == cfg)
            })
        })
        .reconcile_all_on(config_changes)
        .graceful_shutdown_on(stop());
    // A DomainMapping follows its Route's traffic.
    let mappings = Controller::new(Api::<DomainMapping>::all(c.clone()), wc());
    let by_route = mappings.store();
    let mappings = mappings
        .watches(Api::<Route>::all(c), wc(), move |route| {
            by_route
                .state()
                .iter()
                .filter(|dm| domainmapping::mapping_route(dm, &route))
                .map(|dm| ObjectRef::from_obj(dm.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop());
    tokio::join!(
        autoscaler.run(demand, shutdown.clone()),
        drive(
            mappings,
            domainmapping::reconcile,
            ctx.clone(),
            shutdown.clone()
        ),
        follow,
        follow_revision_deletions(ctx.clone(), shutdown.clone()),
        follow_mapping_deletions(ctx.clone(), shutdown.clone()),
        follow_route_deletions(ctx.clone(), shutdown.clone()),
        drive(services, service::reconcile, ctx.clone(), shutdown.clone()),
        drive(
            configurations,
            configuration::reconcile,
            ctx.clone(),
            shutdown.clone()
        ),
        drive(
            revisions,
            revision::reconcile,
            ctx.clone(),
            shutdown.clone()
        ),
        drive(routes, route::reconcile, ctx, shutdown.clone()),
    );
}
