//! The runc backend's launcher: a replica is its image's root filesystem under a
//! private overlay (the store's copy stays read-only and shared), in its own network
//! namespace with its own address, run in the foreground by `runc run` — so the
//! supervisor watches, probes, signals and restarts it like any replica process.
//! Its volumes live in its bundle (`emptyDir` on disk or tmpfs, ConfigMap and Secret
//! files) and are bound into the container. Images are pulled on first use. What a crashed server left (containers, mounts,
//! namespaces) is removed when the next one starts.

use super::bundle::{BindMount, BundleInput, runtime_spec};
use super::network::{Attachment, Network};
use crate::backend::{Failure, ImageResolver, Workload};
use crate::image::pull;
use crate::image::{Credentials, Digest, ImageError, ImageStore};
use crate::process::RevisionState;
use crate::process::launch::{Launched, Launcher, Launching, log_file, probe_target};
use crate::volume::{self, Volume, VolumeSource};
use k8s_openapi::api::core::v1::Container;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs replicas as runc containers.
#[derive(Debug)]
pub struct Runc {
    store: ImageStore,
    /// The server's own registry credentials, tried after a Revision's pull secrets.
    credentials: Credentials,
    network: Network,
    /// runc's own state (`runc --root`).
    state: PathBuf,
    /// One bundle directory per running replica.
    bundles: PathBuf,
}

fn failure(reason: &str, message: impl Into<String>) -> Failure {
    Failure {
        reason: reason.into(),
        message: message.into(),
        failed: true,
    }
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
    pub fn new(dir: &Path, store: ImageStore, credentials: Credentials) -> std::io::Result<Self> {
        let tag = Digest::of(dir.as_os_str().as_encoded_bytes());
        let runc = Runc {
            store,
            credentials,
            network: Network {
                prefix: format!("swell-{}-", &tag.hex()[..8]),
                ..Network::new(Path::new("/run/swell/cni"))
            },
            state: dir.join("runc"),
            bundles: dir.join("bundles"),
        };
        std::fs::create_dir_all(&runc.state)?;
        std::fs::create_dir_all(&runc.bundles)?;
        runc.clean_leftovers();
        Ok(runc)
    }

    fn runc(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&self.state);
        c
    }

    fn clean_leftovers(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.state) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.runc().args(["delete", "-f", &id]).output();
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.bundles) {
            for e in entries.flatten() {
                remove_bundle(&e.path());
            }
        }
        let n = self.network.clean_leftovers();
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
    ) -> Result<pull::Pulled, ImageError> {
        let auth = credentials.clone().then(&self.credentials).for_image(image);
        pull::pull(&self.store, image, &auth).await
    }

    /// The image's manifest: from the store, else pulled.
    async fn image(&self, image: &str, credentials: &Credentials) -> Result<Digest, Failure> {
        match self.store.resolve(image) {
            Ok(d) => Ok(d),
            Err(ImageError::UnknownImage(_)) => self
                .pull(image, credentials)
                .await
                .map(|p| p.digest)
                .map_err(|e| failure("ErrImagePull", format!("cannot pull image {image:?}: {e}"))),
            Err(e) => Err(failure("InvalidImage", e.to_string())),
        }
    }

    /// Everything up to `runc run`: root filesystem, network, bundle. Undone on error.
    fn prepare(
        &self,
        w: &Workload,
        volumes: &[Volume],
        digest: &Digest,
        cid: &str,
        hostname: &str,
    ) -> Result<(PathBuf, Attachment), Failure> {
        let lower = self
            .store
            .rootfs(digest)
            .map_err(|e| failure("InvalidImage", e.to_string()))?;
        let config = self
            .store
            .config(digest)
            .map_err(|e| failure("InvalidImage", e.to_string()))?;
        let dir = self.bundles.join(cid);
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        let io =
            |what: &str, e: std::io::Error| failure("CreateContainerError", format!("{what}: {e}"));
        for d in ["upper", "work", "rootfs"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| io("creating the bundle", e))?;
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        nix::mount::mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| {
            failure(
                "CreateContainerError",
                format!("mounting the root filesystem: {e}"),
            )
        })?;
        let undo_mount = || remove_bundle(&dir);
        let net = match self.network.attach(cid) {
            Ok(n) => n,
            Err(e) => {
                undo_mount();
                return Err(failure(
                    "CreateContainerError",
                    format!("replica network: {e}"),
                ));
            }
        };
        let written = (|| {
            let etc = ["resolv.conf", "hosts", "hostname"].map(|f| dir.join(f));
            let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            std::fs::write(&etc[0], resolv).map_err(|e| io("writing resolv.conf", e))?;
            std::fs::write(
                &etc[1],
                format!(
                    "127.0.0.1\tlocalhost\n::1\tlocalhost\n{}\t{hostname}\n",
                    net.ip
                ),
            )
            .map_err(|e| io("writing hosts", e))?;
            std::fs::write(&etc[2], format!("{hostname}\n"))
                .map_err(|e| io("writing hostname", e))?;
            let volumes = volume_mounts(&dir, &w.container, volumes)?;
            let mut env = w.env.clone();
            env.push(("PORT".into(), w.port.to_string()));
            let spec = runtime_spec(&BundleInput {
                image: config.config().as_ref(),
                container: &w.container,
                command: w.command.clone(),
                args: w.args.clone(),
                env: &env,
                rootfs: &rootfs,
                hostname,
                etc,
                netns: Some(net.netns.clone()),
                cgroups_path: format!("/swell/{cid}"),
                volumes: &volumes,
            })
            .map_err(|e| failure("CreateContainerConfigError", e.to_string()))?;
            spec.save(dir.join("config.json"))
                .map_err(|e| failure("CreateContainerError", format!("writing config.json: {e}")))
        })();
        if let Err(e) = written {
            self.network.detach(&net);
            undo_mount();
            return Err(e);
        }
        Ok((dir, net))
    }
}

impl ImageResolver for Runc {
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        credentials: &'a Credentials,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Failure>> + Send + 'a>>
    {
        Box::pin(async move {
            let missing = |message: String| {
                failure(
                    "ContainerMissing",
                    format!("Unable to fetch image {image:?}: {message}"),
                )
            };
            // A reference naming its registry is resolved there (the tag may have
            // moved); a bare name may be an imported image.
            let digest = if names_registry(image) {
                self.pull(image, credentials)
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

/// Unmounts a replica's bundle (its root filesystem and in-memory volumes) and removes
/// it.
fn remove_bundle(dir: &Path) {
    let detach = |p: &Path| {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    };
    detach(&dir.join("rootfs"));
    if let Ok(volumes) = std::fs::read_dir(dir.join("volumes")) {
        for v in volumes.flatten() {
            detach(&v.path());
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Creates the replica's volumes under `bundle/volumes` and says where each of the
/// container's `volumeMounts` binds: emptyDirs are world-writable directories (tmpfs
/// with `medium: Memory`, capped at `sizeLimit`), ConfigMap, Secret and projected
/// volumes their files, always read-only.
fn volume_mounts(
    bundle: &Path,
    container: &Container,
    volumes: &[Volume],
) -> Result<Vec<BindMount>, Failure> {
    use std::os::unix::fs::PermissionsExt;
    let err = |m: String| failure("CreateContainerConfigError", m);
    let root = bundle.join("volumes");
    for v in volumes {
        let dir = root.join(&v.name);
        let io = |e: std::io::Error| err(format!("volume {:?}: {e}", v.name));
        std::fs::create_dir_all(&dir).map_err(io)?;
        match &v.source {
            VolumeSource::EmptyDir { memory, size_limit } => {
                if *memory {
                    let options =
                        size_limit.map_or("mode=1777".into(), |b| format!("mode=1777,size={b}"));
                    nix::mount::mount(
                        Some("tmpfs"),
                        &dir,
                        Some("tmpfs"),
                        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                        Some(options.as_str()),
                    )
                    .map_err(|e| err(format!("volume {:?}: mounting tmpfs: {e}", v.name)))?;
                } else {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                        .map_err(io)?;
                }
            }
            VolumeSource::Files(files) => volume::write_files(&dir, files)
                .map_err(|e| err(format!("volume {:?}: {e}", v.name)))?,
        }
    }
    let mut mounts = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            return Err(err(format!(
                "volumeMount {:?}: the Revision has no such volume",
                m.name
            )));
        };
        let mut source = root.join(&v.name);
        if let Some(sub) = m.sub_path.as_deref().filter(|p| !p.is_empty()) {
            let inside = Path::new(sub)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside {
                return Err(err(format!(
                    "volumeMount {:?}: subPath {sub:?} must be relative and must not contain '..'",
                    m.name
                )));
            }
            if v.source.writable() {
                // As kubelet does, an emptyDir's subPath is created on first use.
                let _ = std::fs::create_dir_all(source.join(sub));
            }
            // The link a ConfigMap's key is becomes the file itself, as kubelet binds it.
            let base = std::fs::canonicalize(&source).unwrap_or_else(|_| source.clone());
            source = std::fs::canonicalize(source.join(sub))
                .ok()
                .filter(|p| p.starts_with(&base))
                .ok_or_else(|| {
                    err(format!(
                        "volumeMount {:?}: subPath {sub:?} is not in volume {:?}",
                        m.name, v.name
                    ))
                })?;
        }
        mounts.push(BindMount {
            destination: m.mount_path.clone(),
            source,
            read_only: m.read_only == Some(true) || !v.source.writable(),
        });
    }
    Ok(mounts)
}

/// The reference starts with a registry host (`host.domain/…`, `host:port/…`,
/// `localhost/…`), as Docker decides.
fn names_registry(image: &str) -> bool {
    image.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    })
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
        if !w.sidecars.is_empty() {
            return Some(failure(
                "SidecarsUnsupported",
                "the runc backend runs one container per Revision for now; this one has sidecars",
            ));
        }
        if !w.init_containers.is_empty() {
            return Some(failure(
                "InitContainersUnsupported",
                "the runc backend does not run init containers yet; this Revision has some",
            ));
        }
        w.container
            .image
            .as_deref()
            .is_none_or(str::is_empty)
            .then(|| failure("ImageRequired", "the container names no image"))
    }

    fn launch<'a>(&'a self, rev: &'a RevisionState, id: u64, log: &'a Path) -> Launching<'a> {
        Box::pin(async move {
            let w = rev.workload();
            let r = rev.revision();
            let image = w.container.image.clone().unwrap_or_default();
            let digest = self.image(&image, &w.pull_credentials).await?;
            let cid = container_id(&r.namespace, &r.name, id);
            let hostname = format!("{}-deployment-{id}", r.name);
            let (dir, net) = tokio::task::block_in_place(|| {
                self.prepare(w, &rev.volumes(), &digest, &cid, &hostname)
            })?;
            let cleanup = {
                let (state, network, cid, dir, net) = (
                    self.state.clone(),
                    self.network.clone(),
                    cid.clone(),
                    dir.clone(),
                    net.clone(),
                );
                move || {
                    let _ = Command::new("runc")
                        .arg("--root")
                        .arg(&state)
                        .args(["delete", "-f", &cid])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    network.detach(&net);
                    remove_bundle(&dir);
                }
            };
            let (out, err) = match log_file(log) {
                Ok(f) => f,
                Err(e) => {
                    cleanup();
                    return Err(failure("StartError", format!("replica log: {e}")));
                }
            };
            let child = tokio::process::Command::new("runc")
                .arg("--root")
                .arg(&self.state)
                // Kept after it exits, so its cgroup can still say why it ended.
                .args(["run", "--keep", "--bundle"])
                .arg(&dir)
                .arg(&cid)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0)
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    cleanup();
                    return Err(failure("StartError", format!("cannot run runc: {e}")));
                }
            };
            let mut probe = probe_target(w, net.ip, w.port);
            probe.exec_prefix = vec![
                "runc".into(),
                "--root".into(),
                self.state.display().to_string(),
                "exec".into(),
                cid.clone(),
            ];
            let explain = {
                let cid = cid.clone();
                move || {
                    oom_killed(&cid).then(|| {
                        failure(
                            "OOMKilled",
                            "the container exceeded its memory limit and was killed",
                        )
                    })
                }
            };
            Ok(Launched {
                child,
                addr: SocketAddr::new(net.ip, w.port),
                probe,
                cleanup: Some(Box::new(cleanup)),
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
            for v in rev.volumes() {
                if let VolumeSource::Files(files) = &v.source {
                    let dir = b.path().join("volumes").join(&v.name);
                    if let Err(e) = volume::write_files(&dir, files) {
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

    #[test]
    fn references_name_their_registry_as_docker_decides() {
        for r in ["127.0.0.1:5000/app:1", "ghcr.io/org/app", "localhost/app"] {
            assert!(names_registry(r), "{r}");
        }
        for r in ["busybox", "busybox:local", "library/busybox:1"] {
            assert!(!names_registry(r), "{r}");
        }
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
