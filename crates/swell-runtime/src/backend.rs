//! The seam between the Revision reconciler and whatever runs replicas, with the two
//! backends that run nothing: [`NoBackend`] and [`FakeBackend`].

use k8s_openapi::api::core::v1::{Container, HostAlias, PodDNSConfig, PodSecurityContext};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Identifies a Revision's replicas.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionRef {
    /// Namespace.
    pub namespace: String,
    /// Revision name.
    pub name: String,
}

/// What to run for a Revision: its serving container with everything resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// The serving container as the Revision has it.
    pub container: Container,
    /// The environment, resolved (`env`, `envFrom`, ConfigMap and Secret references,
    /// `$(VAR)` expansion) and ending with Knative's `K_SERVICE`, `K_CONFIGURATION`,
    /// `K_REVISION`. `PORT` is set per replica by the backend.
    pub env: Vec<(String, String)>,
    /// `command` + `args` with `$(VAR)` expanded.
    pub argv: Vec<String>,
    /// `command`, expanded (an image's entrypoint applies when absent).
    pub command: Option<Vec<String>>,
    /// `args`, expanded (an image's cmd applies when absent, with no `command`).
    pub args: Option<Vec<String>>,
    /// The container port (8080 unless the Revision names one).
    pub port: u16,
    /// How long a stopping replica gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Other containers of the Revision (sidecars), resolved likewise.
    pub sidecars: Vec<ContainerRun>,
    /// Containers that run to completion, in order, before the others start.
    pub init_containers: Vec<ContainerRun>,
    /// The Revision's volumes, their ConfigMap and Secret contents read.
    pub volumes: Vec<crate::volume::Volume>,
    /// Registry credentials from the Revision's `imagePullSecrets`.
    pub pull_credentials: crate::image::Credentials,
    /// The pod's `securityContext` (its containers' own settings win over it).
    pub security_context: Option<PodSecurityContext>,
    /// `hostAliases`: more lines for the replica's `/etc/hosts`.
    pub host_aliases: Vec<HostAlias>,
    /// `dnsPolicy` (`None` means `ClusterFirst`).
    pub dns_policy: Option<String>,
    /// `dnsConfig`: what the replica's `/etc/resolv.conf` gets besides the host's.
    pub dns_config: Option<PodDNSConfig>,
}

/// A container of a Revision other than the serving one, resolved as the serving one
/// is (environment, `$(VAR)`-expanded `command` and `args`); it gets no `PORT`.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerRun {
    /// The container as the Revision has it.
    pub container: Container,
    /// Its environment, ending with `K_SERVICE`, `K_CONFIGURATION`, `K_REVISION`.
    pub env: Vec<(String, String)>,
    /// `command`, expanded.
    pub command: Option<Vec<String>>,
    /// `args`, expanded.
    pub args: Option<Vec<String>>,
}

/// Why replicas are not running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// A CamelCase reason (`ExitCode5`, `NoBackend`).
    pub reason: String,
    /// What happened, for people.
    pub message: String,
    /// The container failed (`ContainerHealthy=False`), rather than cannot be judged
    /// yet (`Unknown`).
    pub failed: bool,
}

impl Failure {
    /// A failure of the container itself (`ContainerHealthy=False`).
    pub fn failed(reason: &str, message: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            message: message.into(),
            failed: true,
        }
    }
}

/// What the backend observes of a Revision's replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Replicas running and ready.
    pub ready: i32,
    /// Why replicas are not ready, when known.
    pub failure: Option<Failure>,
    /// None is ready and none is starting: each waits out a restart back-off
    /// (kubelet's `CrashLoopBackOff`), or none can start at all. Requests have
    /// nothing to wait for.
    pub stalled: bool,
}

/// One ready replica's resource readings (for the HPA class).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplicaUsage {
    /// Identifies the replica within its Revision (stable while it runs).
    pub id: u64,
    /// CPU seconds it has used so far.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub memory_bytes: u64,
}

/// One replica as a kubelet would report its Pod: what `kubectl get pods` shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaPod {
    /// Identifies the replica within its Revision (stable while it runs).
    pub id: u64,
    /// When it was asked for.
    pub created: SystemTime,
    /// Its address once started (the pod IP; the process backend's replicas share
    /// loopback, each on its own port).
    pub addr: Option<SocketAddr>,
    /// Running and passing its readiness probe.
    pub ready: bool,
    /// When its containers started, while they run.
    pub started: Option<SystemTime>,
    /// Times its containers were restarted.
    pub restarts: u32,
    /// Why it is not running, while it is not (and is no longer starting afresh).
    pub waiting: Option<Failure>,
    /// How its containers' previous run ended.
    pub last_termination: Option<Termination>,
    /// Each container's log.
    pub logs: Vec<ContainerLog>,
}

/// How a run of a replica's containers ended (a container's `lastState.terminated`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    /// The serving container's exit code (128 + signal when killed).
    pub exit_code: i32,
    /// Kubernetes' reason: `Completed`, `Error`, `OOMKilled`.
    pub reason: String,
    /// What happened (the log's last lines, or the failed probe).
    pub message: String,
    /// When that run started.
    pub started: Option<SystemTime>,
    /// When it ended.
    pub finished: SystemTime,
}

/// Where one container of a replica writes its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerLog {
    /// The container's name.
    pub container: String,
    /// The log file (appended to by every run).
    pub path: std::path::PathBuf,
    /// Where the current (or last) run's output starts.
    pub start: u64,
    /// Where the previous run's output starts (it ends at `start`).
    pub previous: Option<u64>,
}

/// Pins image tags to digests when a Revision is created, so a Revision never changes
/// image under its users.
pub trait ImageResolver: Send + Sync + 'static {
    /// `image` by digest (`registry/repository@sha256:…`), signing in to its registry
    /// with `credentials` when they have an entry for it; a pull says how far it has
    /// come to `progress`.
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        credentials: &'a crate::image::Credentials,
        progress: &'a (dyn Fn(crate::image::pull::Progress) + Sync),
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Failure>> + Send + 'a>>;
}

impl std::fmt::Debug for dyn ImageResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImageResolver")
    }
}

/// Told whenever a Revision's set of ready replicas changes.
pub trait ReplicaObserver: Send + Sync + 'static {
    /// `ready` is the complete set of ready replica addresses.
    fn replicas_changed(&self, rev: &RevisionRef, ready: Vec<SocketAddr>);

    /// Resolves once a replica that left the ready set has no request in flight any
    /// more, so it can be stopped without failing one (the backend bounds the wait by
    /// the grace period). At once by default: nothing sends requests.
    fn drained(
        &self,
        _rev: &RevisionRef,
        _addr: SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(std::future::ready(()))
    }

    /// Something [`Backend::pods`] reports of the Revision changed (a replica was
    /// added, started, ended, restarted or removed); also after `replicas_changed`.
    fn pods_changed(&self, _rev: &RevisionRef) {}
}

impl std::fmt::Debug for dyn ReplicaObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplicaObserver")
    }
}

/// Runs a Revision's replicas somewhere.
pub trait Backend: Send + Sync + 'static {
    /// Makes `replicas` replicas of the Revision run. Idempotent.
    fn ensure(&self, rev: &RevisionRef, workload: &Workload, replicas: i32) -> ReplicaStatus;
    /// Stops everything of a Revision; tolerates "already gone".
    fn teardown(&self, rev: &RevisionRef);
    /// The Revision is deleted: stops everything of it, as `teardown`, and deletes what
    /// is kept for it on disk (its replicas' logs).
    fn remove(&self, rev: &RevisionRef) {
        self.teardown(rev);
    }
    /// CPU and memory of the Revision's ready replicas; empty when the backend cannot
    /// measure them.
    fn usage(&self, _rev: &RevisionRef) -> Vec<ReplicaUsage> {
        Vec::new()
    }
    /// The Revision's replicas as Pods; empty when the backend runs nothing to show.
    fn pods(&self, _rev: &RevisionRef) -> Vec<ReplicaPod> {
        Vec::new()
    }
    /// Stops replica `id` of the Revision and starts another in its place (a Pod
    /// deleted under its ReplicaSet); false when there is no such replica.
    fn replace(&self, _rev: &RevisionRef, _id: u64) -> bool {
        false
    }
}

/// No workload backend: nothing runs, and Revisions say so.
#[derive(Debug, Default)]
pub struct NoBackend;

impl Backend for NoBackend {
    fn ensure(&self, _: &RevisionRef, _: &Workload, _: i32) -> ReplicaStatus {
        ReplicaStatus {
            ready: 0,
            failure: Some(Failure {
                reason: "NoBackend".into(),
                message: "this server runs no workload backend (start it with --backend process)"
                    .into(),
                failed: false,
            }),
            stalled: false,
        }
    }

    fn teardown(&self, _: &RevisionRef) {}
}

/// A backend whose replicas are ready the moment they are asked for, and that runs
/// nothing. For control-plane tests and benchmarks.
#[derive(Debug, Default)]
pub struct FakeBackend {
    replicas: Mutex<HashMap<RevisionRef, i32>>,
}

impl FakeBackend {
    /// Replicas the fake currently "runs" for a Revision.
    pub fn replicas(&self, rev: &RevisionRef) -> i32 {
        self.replicas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(rev)
            .copied()
            .unwrap_or(0)
    }
}

impl Backend for FakeBackend {
    fn ensure(&self, rev: &RevisionRef, _: &Workload, replicas: i32) -> ReplicaStatus {
        self.replicas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(rev.clone(), replicas);
        ReplicaStatus {
            ready: replicas,
            failure: None,
            stalled: false,
        }
    }

    fn teardown(&self, rev: &RevisionRef) {
        self.replicas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(rev);
    }
}
