//! The runc backend's launcher: a replica is its image's root filesystem under a
//! private overlay (the store's copy stays read-only and shared), in its own network
//! namespace with its own address, run in the foreground by `runc run` — so the
//! supervisor watches, probes, signals and restarts it like any replica process.
//! Its volumes live in its bundle (`emptyDir` on disk or tmpfs, ConfigMap and Secret
//! files) and are bound into the container. Images are pulled on first use. What a crashed server left (containers, mounts,
//! namespaces) is removed when the next one starts.

use super::bundle;
use super::command::{Containers, RuncBinary};
use super::etc::ClusterDns;
use super::network::{Attachment, Network, Redirect};
use super::pod::{self, ContainerPlan, Pod};
use crate::backend::{Failure, ImageResolver, Workload};
use crate::image::pull::{self, names_registry};
use crate::image::{Credentials, Digest, ImageError, ImageStore};
use crate::process::RevisionState;
use crate::process::launch::{
    Cleanup, Launched, Launcher, Launching, log_file, pod_hostname, probe_target,
};
use crate::process::replica::{log_len, log_tail_since};
use crate::security::ReplicaPolicy;
use crate::volume::{self, Volume, VolumeSource};
use k8s_openapi::api::core::v1::Container;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How long sidecars get to stop after the serving container has ended.
const SIDECAR_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the container `name` of a replica writes: beside the replica's (serving
/// container's) log `<id>.log`, as `<id>.<name>.log`.
pub fn container_log(replica_log: &Path, name: &str) -> PathBuf {
    let stem = replica_log
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    replica_log.with_file_name(format!("{stem}.{name}.log"))
}

/// Runs replicas as runc containers.
#[derive(Debug)]
pub struct Runc {
    store: ImageStore,
    /// The server's own registry credentials, tried after a Revision's pull secrets.
    credentials: Credentials,
    /// Bytes the image store may take before pulled images nothing runs are pruned.
    store_limit: Option<u64>,
    /// The images each replica (by container id) is starting or running from.
    in_use: Arc<Mutex<BTreeMap<String, Vec<Digest>>>>,
    /// Pulls hold it shared, pruning exclusively: a pull's blobs are not referenced
    /// until it ends.
    pulls: tokio::sync::RwLock<()>,
    network: Network,
    /// runc, which keeps its state under the launcher's directory.
    containers: Arc<dyn Containers>,
    /// One bundle directory per running replica.
    bundles: PathBuf,
    /// What the operator allows (`--allow-unconfined-seccomp`).
    policy: ReplicaPolicy,
    /// The cluster's DNS, for `dnsPolicy: ClusterFirst`.
    cluster_dns: Option<ClusterDns>,
}

/// The start of the runc container ids of a Revision's replicas (letters, digits, `-`,
/// `.`).
fn container_prefix(namespace: &str, revision: &str) -> String {
    format!("{namespace}.{revision}.")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A replica's runc container id.
fn container_id(namespace: &str, revision: &str, id: u64) -> String {
    format!("{}{id}", container_prefix(namespace, revision))
}

impl Runc {
    /// A launcher keeping its state under `dir`, running images from `store`; removes
    /// whatever a previous server left there. Addresses are leased machine-wide (under
    /// `/run/swell/cni`), so servers with different data directories share the bridge
    /// without clashing; each names its namespaces after its directory.
    pub async fn new(
        dir: &Path,
        store: ImageStore,
        credentials: Credentials,
    ) -> std::io::Result<Self> {
        let state = dir.join("runc");
        std::fs::create_dir_all(&state)?;
        let containers = Arc::new(RuncBinary::new(&state));
        let runc = Self::with_containers(dir, store, credentials, containers)?;
        runc.clean_leftovers().await;
        Ok(runc)
    }

    /// A launcher driving `containers` (unit tests record the calls); keeps what it
    /// makes under `dir` and cleans nothing up yet.
    fn with_containers(
        dir: &Path,
        store: ImageStore,
        credentials: Credentials,
        containers: Arc<dyn Containers>,
    ) -> std::io::Result<Self> {
        let tag = Digest::of(dir.as_os_str().as_encoded_bytes());
        let runc = Runc {
            store,
            credentials,
            store_limit: None,
            in_use: Arc::default(),
            pulls: tokio::sync::RwLock::new(()),
            network: Network {
                prefix: format!("swell-{}-", &tag.hex()[..8]),
                ..Network::new(Path::new("/run/swell/cni"))
            },
            containers,
            bundles: dir.join("bundles"),
            policy: ReplicaPolicy::default(),
            cluster_dns: None,
        };
        std::fs::create_dir_all(&runc.bundles)?;
        Ok(runc)
    }

    /// Keeps the image store under `limit` bytes (checked after every pull).
    pub fn with_store_limit(mut self, limit: u64) -> Self {
        self.store_limit = Some(limit);
        self
    }

    /// Runs containers as `policy` allows.
    pub fn with_policy(mut self, policy: ReplicaPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Gives replicas the cluster's DNS `dns` (`dnsPolicy: ClusterFirst`), and in each
    /// replica's network namespace sends connections to the gateway's ports to
    /// others ([`Redirect`]: where Swell serves the replicas' DNS and ingress when the
    /// well-known ports are someone else's).
    pub fn with_cluster_dns(mut self, dns: ClusterDns, redirects: Vec<Redirect>) -> Self {
        self.cluster_dns = Some(dns);
        self.network.redirects = redirects;
        self
    }

    /// Prunes the image store down to its limit, sparing every image a replica runs
    /// or is starting from, and `pulled`.
    async fn prune(&self, pulled: &Digest) {
        let Some(limit) = self.store_limit else {
            return;
        };
        let _alone = self.pulls.write().await;
        let mut in_use: BTreeSet<Digest> = self
            .in_use
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flatten()
            .cloned()
            .collect();
        in_use.insert(pulled.clone());
        match tokio::task::block_in_place(|| self.store.prune(limit, &in_use)) {
            Ok(p) => {
                if !p.removed.is_empty() {
                    tracing::info!(removed = ?p.removed, bytes = p.usage, "pruned the image store");
                }
                if p.usage > limit {
                    tracing::warn!(
                        bytes = p.usage,
                        limit,
                        "the image store is over its limit; what it holds is in use or imported"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot prune the image store"),
        }
    }

    /// Removes what a previous server left: containers, their bundles (and the
    /// mounts in them), their networks.
    async fn clean_leftovers(&self) {
        for id in self.containers.list() {
            self.containers.delete(&id).await;
        }
        let bundles = self.bundles.clone();
        let removed = tokio::task::spawn_blocking(move || {
            if let Ok(entries) = std::fs::read_dir(&bundles) {
                for e in entries.flatten() {
                    pod::remove(&e.path());
                }
            }
        });
        let _ = removed.await;
        let n = self.network.clean_leftovers().await;
        if n > 0 {
            tracing::info!(
                namespaces = n,
                "removed replica networks a previous server left"
            );
        }
    }

    /// Pulls `image`, signing in with `credentials`, else with the server's own.
    async fn pull(
        &self,
        image: &str,
        credentials: &Credentials,
        progress: &(dyn Fn(pull::Progress) + Sync),
    ) -> Result<pull::Pulled, ImageError> {
        let auth = credentials.clone().then(&self.credentials).for_image(image);
        let pulled = {
            let _shared = self.pulls.read().await;
            pull::pull_with_progress(&self.store, image, &auth, progress).await?
        };
        self.prune(&pulled.digest).await;
        Ok(pulled)
    }

    /// The image's manifest: from the store, else pulled.
    async fn image(&self, image: &str, credentials: &Credentials) -> Result<Digest, Failure> {
        match self.store.resolve(image) {
            Ok(d) => Ok(d),
            Err(ImageError::UnknownImage(_)) => self
                .pull(image, credentials, &|_| {})
                .await
                .map(|p| p.digest)
                .map_err(|e| {
                    Failure::failed("ErrImagePull", format!("cannot pull image {image:?}: {e}"))
                }),
            Err(e) => Err(Failure::failed("InvalidImage", e.to_string())),
        }
    }

    /// The plan for one container of the replica `cid`, its image pulled if need be
    /// and counted as in use by the replica from then on.
    async fn plan<'c>(
        &self,
        cid: &str,
        container: &'c Container,
        env: Vec<(String, String)>,
        command: Option<Vec<String>>,
        args: Option<Vec<String>>,
        credentials: &Credentials,
    ) -> Result<ContainerPlan<'c>, Failure> {
        let image = container.image.clone().unwrap_or_default();
        let digest = self.image(&image, credentials).await?;
        self.in_use
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(cid.to_string())
            .or_default()
            .push(digest.clone());
        let invalid = |e: ImageError| Failure::failed("InvalidImage", e.to_string());
        let plan = ContainerPlan {
            container,
            env,
            command,
            args,
            lower: self.store.rootfs(&digest).map_err(invalid)?,
            image: self
                .store
                .config(&digest)
                .map_err(invalid)?
                .config()
                .clone(),
        };
        Ok(plan)
    }

    /// The replica's network and pod directory. Undone on error.
    async fn pod(
        &self,
        cid: &str,
        hostname: &str,
        volumes: &[Volume],
        w: &Workload,
        namespace: &str,
    ) -> Result<(Pod, Attachment), Failure> {
        let net = self.network.attach(cid).await.map_err(|e| {
            Failure::failed("CreateContainerError", format!("replica network: {e}"))
        })?;
        let created = tokio::task::block_in_place(|| {
            Pod::create(
                self.bundles.join(cid),
                cid,
                hostname,
                net.ip,
                net.netns.clone(),
                volumes,
                w,
                self.policy,
                self.cluster_dns.as_ref(),
                namespace,
            )
        });
        match created {
            Ok(pod) => Ok((pod, net)),
            Err(e) => {
                self.network.detach(&net).await;
                Err(e)
            }
        }
    }

    /// `runc run` of one of the pod's bundles, in the foreground, output to `log`.
    fn run(&self, bundle: &Path, id: &str, log: &Path) -> std::io::Result<tokio::process::Child> {
        let (out, err) = log_file(log)?;
        self.containers.run(bundle, id, out, err)
    }

    /// Runs the init containers one after the other, each to completion; the first that
    /// fails stops the replica's start with its exit code and last lines.
    async fn run_init_containers(
        &self,
        pod: &Pod,
        plans: &[ContainerPlan<'_>],
        volumes: &[Volume],
        log: &Path,
    ) -> Result<(), Failure> {
        for plan in plans {
            let name = &plan.container.name;
            let bundle = tokio::task::block_in_place(|| pod.bundle(plan, false, volumes))?;
            let id = pod.container_id(Some(name));
            let log = container_log(log, name);
            let since = log_len(&log);
            let status = match self.run(&bundle, &id, &log) {
                Ok(mut child) => child.wait().await,
                Err(e) => Err(e),
            };
            self.containers.delete(&id).await;
            let code = match status {
                Ok(s) if s.success() => continue,
                Ok(s) => s.code().unwrap_or(-1),
                Err(e) => {
                    return Err(Failure::failed(
                        "StartError",
                        format!("cannot run init container {name}: {e}"),
                    ));
                }
            };
            return Err(Failure::failed(
                &format!("ExitCode{code}"),
                format!(
                    "init container {name} exited with code {code}: {}",
                    log_tail_since(&log, since)
                ),
            ));
        }
        Ok(())
    }
}

impl ImageResolver for Runc {
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        credentials: &'a Credentials,
        progress: &'a (dyn Fn(pull::Progress) + Sync),
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Failure>> + Send + 'a>>
    {
        Box::pin(async move {
            let missing = |message: String| {
                Failure::failed(
                    "ContainerMissing",
                    format!("Unable to fetch image {image:?}: {message}"),
                )
            };
            // A reference naming its registry is resolved there (the tag may have
            // moved); a bare name may be an imported image.
            let digest = if names_registry(image) {
                self.pull(image, credentials, progress)
                    .await
                    .map(|p| p.digest)
                    .map_err(|e| missing(e.to_string()))?
            } else {
                self.image(image, credentials)
                    .await
                    .map_err(|f| missing(f.message))?
            };
            let name = match image.parse::<oci_client::Reference>() {
                Ok(r) => format!("{}/{}", r.registry(), r.repository()),
                Err(_) => image.split(['@', ':']).next().unwrap_or(image).to_string(),
            };
            Ok(format!("{name}@{digest}"))
        })
    }
}

/// Stops a pod's containers once its serving container `main` has ended: the
/// `sidecars` get SIGTERM and up to [`SIDECAR_GRACE`] to end (`running` counts those
/// still running), then every container is deleted.
async fn stop_containers(
    containers: &dyn Containers,
    sidecars: &[String],
    main: &str,
    running: &AtomicUsize,
) {
    for id in sidecars {
        containers.kill(id, "TERM").await;
    }
    let deadline = tokio::time::Instant::now() + SIDECAR_GRACE;
    while running.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for id in sidecars.iter().map(String::as_str).chain([main]) {
        containers.delete(id).await;
    }
}

/// The container's cgroup (`/swell/<cid>`, cgroup v1 or v2) saw an OOM kill.
fn oom_killed(cid: &str) -> bool {
    ["/sys/fs/cgroup/memory/swell", "/sys/fs/cgroup/swell"]
        .iter()
        .flat_map(|base| {
            ["memory.oom_control", "memory.events"].map(|f| Path::new(base).join(cid).join(f))
        })
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .any(|text| {
            text.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
}

impl Launcher for Runc {
    fn refuse(&self, w: &Workload) -> Option<Failure> {
        let containers = std::iter::once(&w.container)
            .chain(w.sidecars.iter().map(|c| &c.container))
            .chain(w.init_containers.iter().map(|c| &c.container));
        for c in containers {
            if c.image.as_deref().is_none_or(str::is_empty) {
                return Some(Failure::failed(
                    "ImageRequired",
                    format!("container {:?} names no image", c.name),
                ));
            }
            if let Err(e) = bundle::check(w.security_context.as_ref(), c, self.policy) {
                return Some(Failure::failed(
                    "CreateContainerConfigError",
                    format!("{}: {e}", c.name),
                ));
            }
        }
        None
    }

    fn launch<'a>(&'a self, rev: &'a RevisionState, id: u64, log: &'a Path) -> Launching<'a> {
        Box::pin(async move {
            let w = rev.workload();
            let r = rev.revision();
            let volumes = rev.volumes();
            let credentials = &w.pull_credentials;
            let cid = container_id(&r.namespace, &r.name, id);
            let hostname = pod_hostname(&r.name, id);
            let prepared = async {
                let mut env = w.env.clone();
                env.push(("PORT".into(), w.port.to_string()));
                let serving = self
                    .plan(
                        &cid,
                        &w.container,
                        env,
                        w.command.clone(),
                        w.args.clone(),
                        credentials,
                    )
                    .await?;
                let (mut inits, mut sidecars) = (Vec::new(), Vec::new());
                let others = w.init_containers.iter().map(|c| (c, true));
                for (c, init) in others.chain(w.sidecars.iter().map(|c| (c, false))) {
                    let plan = self
                        .plan(
                            &cid,
                            &c.container,
                            c.env.clone(),
                            c.command.clone(),
                            c.args.clone(),
                            credentials,
                        )
                        .await?;
                    if init {
                        inits.push(plan)
                    } else {
                        sidecars.push(plan)
                    }
                }
                let (pod, net) = self.pod(&cid, &hostname, &volumes, w, &r.namespace).await?;
                Ok((serving, inits, sidecars, pod, net))
            };
            let (serving, inits, sidecars, pod, net) = match prepared.await {
                Ok(p) => p,
                Err(e) => {
                    self.in_use
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&cid);
                    return Err(e);
                }
            };
            // Sidecars keep running until the serving container has ended; one that
            // ends first takes the replica down with it, and says why.
            let sidecar_ids: Vec<String> = sidecars
                .iter()
                .map(|p| pod.container_id(Some(&p.container.name)))
                .collect();
            let stopping = Arc::new(AtomicBool::new(false));
            let running = Arc::new(AtomicUsize::new(0));
            let died: Arc<Mutex<Option<Failure>>> = Arc::default();
            let cleanup: Cleanup = {
                let in_use = self.in_use.clone();
                let (containers, network, pod, net) = (
                    self.containers.clone(),
                    self.network.clone(),
                    pod.clone(),
                    net.clone(),
                );
                let (ids, stopping, running) =
                    (sidecar_ids.clone(), stopping.clone(), running.clone());
                Box::pin(async move {
                    stopping.store(true, Ordering::SeqCst);
                    stop_containers(containers.as_ref(), &ids, &pod.id, &running).await;
                    network.detach(&net).await;
                    let dir = pod.dir.clone();
                    let _ = tokio::task::spawn_blocking(move || pod::remove(&dir)).await;
                    in_use
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&pod.id);
                })
            };
            let started = async {
                self.run_init_containers(&pod, &inits, &volumes, log)
                    .await?;
                for (plan, id) in sidecars.iter().zip(&sidecar_ids) {
                    let name = &plan.container.name;
                    let bundle = tokio::task::block_in_place(|| pod.bundle(plan, false, &volumes))?;
                    let log = container_log(log, name);
                    let since = log_len(&log);
                    let mut child = self.run(&bundle, id, &log).map_err(|e| {
                        Failure::failed("StartError", format!("cannot run sidecar {name}: {e}"))
                    })?;
                    running.fetch_add(1, Ordering::SeqCst);
                    let (stopping, running, died) =
                        (stopping.clone(), running.clone(), died.clone());
                    let (containers, main, name) =
                        (self.containers.clone(), pod.id.clone(), name.clone());
                    rev.spawn(async move {
                        let status = child.wait().await;
                        if !stopping.load(Ordering::SeqCst) {
                            let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
                            *died.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(Failure::failed(
                                    &format!("ExitCode{code}"),
                                    format!(
                                        "sidecar {name} exited with code {code}: {}",
                                        log_tail_since(&log, since)
                                    ),
                                ));
                            containers.kill(&main, "KILL").await;
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                let bundle = tokio::task::block_in_place(|| pod.bundle(&serving, true, &volumes))?;
                self.run(&bundle, &pod.id, log)
                    .map_err(|e| Failure::failed("StartError", format!("cannot run runc: {e}")))
            };
            let child = match started.await {
                Ok(c) => c,
                Err(e) => {
                    cleanup.await;
                    return Err(e);
                }
            };
            let mut probe = probe_target(w, net.ip, w.port);
            probe.exec_prefix = self.containers.exec(&cid);
            let explain = move || {
                died.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .or_else(|| {
                        oom_killed(&cid).then(|| {
                            Failure::failed(
                                "OOMKilled",
                                "the container exceeded its memory limit and was killed",
                            )
                        })
                    })
            };
            Ok(Launched {
                child,
                addr: SocketAddr::new(net.ip, w.port),
                probe,
                cleanup: Some(cleanup),
                explain: Some(Box::new(explain)),
            })
        })
    }

    /// Rewrites the ConfigMap and Secret volumes of every replica of the Revision in
    /// place (an atomic swap each), so running containers read the new contents.
    fn volumes_changed(&self, rev: &RevisionState) {
        let r = rev.revision();
        let prefix = container_prefix(&r.namespace, &r.name);
        let Ok(bundles) = std::fs::read_dir(&self.bundles) else {
            return;
        };
        for b in bundles.flatten() {
            if !b.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let fs_group = rev
                .workload()
                .security_context
                .as_ref()
                .and_then(|s| s.fs_group)
                .and_then(|g| u32::try_from(g).ok());
            for v in rev.volumes() {
                if let VolumeSource::Files(files) = &v.source {
                    let dir = b.path().join("volumes").join(&v.name);
                    let written = volume::write_files(&dir, files).map_err(|e| e.to_string());
                    let owned = written.and_then(|()| match fs_group {
                        Some(g) => {
                            pod::own_volumes(&b.path().join("volumes"), std::slice::from_ref(&v), g)
                                .map_err(|f| f.message)
                        }
                        None => Ok(()),
                    });
                    if let Err(e) = owned {
                        tracing::warn!(error = %e, volume = %v.name, revision = %r.name, "cannot update a volume");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runc::command::Recording;

    #[tokio::test(start_paused = true)]
    async fn sidecars_get_sigterm_and_their_grace_then_every_container_is_deleted() {
        let runc = Recording::default();
        let sidecars = ["p.1.log-shipper".to_string(), "p.1.proxy".to_string()];
        // Both sidecars end at once: nothing waits.
        let running = AtomicUsize::new(0);
        stop_containers(&runc, &sidecars, "p.1", &running).await;
        assert_eq!(
            runc.calls(),
            [
                "kill p.1.log-shipper TERM",
                "kill p.1.proxy TERM",
                "delete p.1.log-shipper",
                "delete p.1.proxy",
                "delete p.1",
            ]
        );
        // One never ends: it gets the grace period, then is deleted all the same.
        let runc = Recording::default();
        let running = AtomicUsize::new(1);
        let started = tokio::time::Instant::now();
        stop_containers(&runc, &sidecars[..1], "p.1", &running).await;
        assert!(started.elapsed() >= SIDECAR_GRACE);
        assert_eq!(
            runc.calls(),
            [
                "kill p.1.log-shipper TERM",
                "delete p.1.log-shipper",
                "delete p.1"
            ]
        );
    }

    #[tokio::test]
    async fn a_new_launcher_deletes_the_containers_and_bundles_a_previous_server_left() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&t.path().join("store")).unwrap();
        let runc = Arc::new(Recording {
            existing: vec![
                "default.hello-00001.1".into(),
                "default.hello-00001.2".into(),
            ],
            ..Recording::default()
        });
        let launcher =
            Runc::with_containers(t.path(), store, Credentials::default(), runc.clone()).unwrap();
        let left = t.path().join("bundles/default.hello-00001.1");
        std::fs::create_dir_all(left.join("rootfs")).unwrap();
        launcher.clean_leftovers().await;
        assert!(!left.exists());
        assert_eq!(
            runc.calls(),
            [
                "delete default.hello-00001.1",
                "delete default.hello-00001.2"
            ]
        );
    }

    #[test]
    fn container_ids_are_runc_safe() {
        assert_eq!(
            container_id("default", "hello-00001", 3),
            "default.hello-00001.3"
        );
        assert_eq!(container_id("a_b", "x/y", 1), "a-b.x-y.1");
    }
}
