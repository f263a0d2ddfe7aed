//! Swell's data plane: the ingress (host routing, weighted splits, tag routing,
//! cluster-local visibility), revision pools (replica choice under
//! `containerConcurrency`, the activator queue), the proxy to replicas (HTTP/1.1, h2c,
//! upgrades, streaming), Knative's request timeouts and per-Revision metrics, and the
//! DNS replicas resolve Services' names with.
//!
//! The Route controller publishes [`RoutingTable`]s into [`RoutingTables`]; the Revision
//! controller configures [`Revisions`]; the workload backend says which replicas are
//! ready. Start at [`ingress::serve`].

pub mod body;
pub mod dns;
mod http1;
pub mod ingress;
pub mod metrics;
mod policy;
pub mod pool;
pub mod proxy;
pub mod routes;
pub mod stats;
pub mod tasks;
pub mod wire;

pub use pool::{RevisionConfig, RevisionKey, Revisions};
pub use routes::{RouteKey, RoutingTable, RoutingTables, Split, TrafficGroup};

/// What the ingress serves from: the routes and the revision pools (which hold the
/// connections to their replicas).
#[derive(Debug, Default)]
pub struct Dataplane {
    /// Every Route's hosts.
    pub routes: RoutingTables,
    /// Every Revision's pool (and the data plane's tasks, [`Revisions::tasks`]).
    pub revisions: Revisions,
}
