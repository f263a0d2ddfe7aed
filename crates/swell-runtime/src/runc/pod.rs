//! A replica's pod on disk: one directory per replica under the runc backend's bundles,
//! holding what its containers share — `/etc/resolv.conf`, `/etc/hosts`,
//! `/etc/hostname` and the volumes — and one runc bundle per container (a private
//! overlay on its image's shared root filesystem, and `config.json`).

use super::bundle::{BindMount, BundleInput, runtime_spec};
use super::etc;
use crate::backend::{Failure, Workload};
use crate::security::ReplicaPolicy;
use crate::volume::{self, Volume, VolumeSource};
use k8s_openapi::api::core::v1::{Container, PodSecurityContext};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A replica's pod directory, its containers' shared files written.
#[derive(Clone, Debug)]
pub struct Pod {
    /// The directory.
    pub dir: PathBuf,
    /// The replica's runc container id; its other containers' ids extend it.
    pub id: String,
    hostname: String,
    netns: PathBuf,
    security: Option<PodSecurityContext>,
    policy: ReplicaPolicy,
}

/// One container to run in a pod.
#[derive(Clone, Debug)]
pub struct ContainerPlan<'a> {
    /// The container as the Revision has it.
    pub container: &'a Container,
    /// Its environment (`PORT` included for the serving container).
    pub env: Vec<(String, String)>,
    /// `command`, expanded.
    pub command: Option<Vec<String>>,
    /// `args`, expanded.
    pub args: Option<Vec<String>>,
    /// Its image's root filesystem in the store (read-only, shared).
    pub lower: PathBuf,
    /// Its image's configuration.
    pub image: Option<oci_spec::image::Config>,
}

impl Pod {
    /// Creates the pod directory `dir` for the replica `id` of `w` reachable at `ip` in
    /// the network namespace `netns`: its `/etc` files (with `w`'s `hostAliases`,
    /// `dnsPolicy` and `dnsConfig`, the cluster's DNS `dns` as a pod in `namespace`
    /// sees it) and its volumes (owned by its `fsGroup`). Removed again on error.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        dir: PathBuf,
        id: &str,
        hostname: &str,
        ip: IpAddr,
        netns: PathBuf,
        volumes: &[Volume],
        w: &Workload,
        policy: ReplicaPolicy,
        dns: Option<&etc::ClusterDns>,
        namespace: &str,
    ) -> Result<Pod, Failure> {
        let _ = std::fs::remove_dir_all(&dir);
        let pod = Pod {
            dir,
            id: id.to_string(),
            hostname: hostname.to_string(),
            netns,
            security: w.security_context.clone(),
            policy,
        };
        let fs_group = w
            .security_context
            .as_ref()
            .and_then(|s| s.fs_group)
            .and_then(|g| u32::try_from(g).ok());
        let io = |what: &str, e: std::io::Error| {
            Failure::failed("CreateContainerError", format!("{what}: {e}"))
        };
        let written = (|| {
            std::fs::create_dir_all(pod.dir.join("containers"))
                .map_err(|e| io("creating the pod directory", e))?;
            let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            std::fs::write(
                pod.dir.join("resolv.conf"),
                etc::resolv_conf(
                    &host,
                    w.dns_policy.as_deref(),
                    w.dns_config.as_ref(),
                    dns,
                    namespace,
                ),
            )
            .map_err(|e| io("writing resolv.conf", e))?;
            std::fs::write(
                pod.dir.join("hosts"),
                etc::hosts(ip, hostname, &w.host_aliases),
            )
            .map_err(|e| io("writing hosts", e))?;
            std::fs::write(pod.dir.join("hostname"), format!("{hostname}\n"))
                .map_err(|e| io("writing hostname", e))?;
            create_volumes(&pod.dir, volumes)?;
            if let Some(g) = fs_group {
                own_volumes(&pod.dir.join("volumes"), volumes, g)?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            remove(&pod.dir);
            return Err(e);
        }
        Ok(pod)
    }

    /// The runc container id of the container `name`; `None` is the serving container,
    /// whose id is the replica's.
    pub fn container_id(&self, name: Option<&str>) -> String {
        match name {
            None => self.id.clone(),
            Some(n) => format!("{}.{n}", self.id),
        }
    }

    /// Writes the bundle of one container of the pod (`serving`: the one whose id is
    /// the replica's) and returns its directory.
    pub fn bundle(
        &self,
        plan: &ContainerPlan<'_>,
        serving: bool,
        volumes: &[Volume],
    ) -> Result<PathBuf, Failure> {
        let name = &plan.container.name;
        let dir = self.dir.join("containers").join(name);
        let rootfs = dir.join("rootfs");
        let io = |what: &str, e: std::io::Error| {
            Failure::failed("CreateContainerError", format!("{what}: {e}"))
        };
        for d in ["upper", "work", "rootfs"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| io("creating the bundle", e))?;
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            plan.lower.display(),
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
            Failure::failed(
                "CreateContainerError",
                format!("mounting the root filesystem of {name}: {e}"),
            )
        })?;
        let mounts = bind_mounts(&self.dir, plan.container, volumes)?;
        let id = self.container_id((!serving).then_some(name.as_str()));
        let spec = runtime_spec(&BundleInput {
            image: plan.image.as_ref(),
            container: plan.container,
            command: plan.command.clone(),
            args: plan.args.clone(),
            env: &plan.env,
            rootfs: &rootfs,
            hostname: &self.hostname,
            etc: ["resolv.conf", "hosts", "hostname"].map(|f| self.dir.join(f)),
            netns: Some(self.netns.clone()),
            cgroups_path: format!("/swell/{id}"),
            volumes: &mounts,
            pod_security: self.security.as_ref(),
            policy: self.policy,
        })
        .map_err(|e| Failure::failed("CreateContainerConfigError", format!("{name}: {e}")))?;
        spec.save(dir.join("config.json")).map_err(|e| {
            Failure::failed(
                "CreateContainerError",
                format!("writing config.json of {name}: {e}"),
            )
        })?;
        Ok(dir)
    }
}

/// Unmounts a replica's pod directory (its containers' root filesystems and its
/// in-memory volumes) and removes it.
pub fn remove(dir: &Path) {
    let detach = |p: &Path| {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    };
    for sub in ["containers", "volumes"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                detach(&e.path().join("rootfs"));
                detach(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn config_error(m: String) -> Failure {
    Failure::failed("CreateContainerConfigError", m)
}

/// Creates the pod's volumes under `pod/volumes`: emptyDirs as world-writable
/// directories (tmpfs with `medium: Memory`, capped at `sizeLimit`), ConfigMap, Secret
/// and projected volumes as their files.
fn create_volumes(pod: &Path, volumes: &[Volume]) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let err = config_error;
    let root = pod.join("volumes");
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
    Ok(())
}

/// Gives the pod's volumes to its `fsGroup` as kubelet does: every file and directory
/// group-owned by it, readable by the group (writable too in an emptyDir), directories
/// setgid so that new files stay in the group. Symbolic links (a ConfigMap's `..data`)
/// are left alone; what they point at is visited.
pub fn own_volumes(root: &Path, volumes: &[Volume], fs_group: u32) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(path: &Path, gid: u32, writable: bool) -> std::io::Result<()> {
        let md = std::fs::symlink_metadata(path)?;
        if md.file_type().is_symlink() {
            return Ok(());
        }
        std::os::unix::fs::lchown(path, None, Some(gid))?;
        let mut mask = if writable { 0o660 } else { 0o440 };
        if md.is_dir() {
            mask |= 0o2000 | 0o110;
        }
        let mode = md.permissions().mode() & 0o7777;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | mask))?;
        if md.is_dir() {
            for e in std::fs::read_dir(path)? {
                walk(&e?.path(), gid, writable)?;
            }
        }
        Ok(())
    }
    for v in volumes {
        walk(&root.join(&v.name), fs_group, v.source.writable())
            .map_err(|e| config_error(format!("volume {:?}: fsGroup {fs_group}: {e}", v.name)))?;
    }
    Ok(())
}

/// Where each of a container's `volumeMounts` binds from the pod's volumes;
/// ConfigMap, Secret and projected volumes are always read-only.
fn bind_mounts(
    pod: &Path,
    container: &Container,
    volumes: &[Volume],
) -> Result<Vec<BindMount>, Failure> {
    let err = config_error;
    let root = pod.join("volumes");
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
