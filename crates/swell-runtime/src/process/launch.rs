//! How a replica's process starts: [`LocalProcess`] runs the container's command on a
//! free loopback port, as an unprivileged user; the runc backend's launcher runs the container under
//! `runc run`. Either way the supervisor sees one child process group, an address to
//! send requests to, probes that reach it, and what to undo when it ends.

use super::RevisionState;
use super::probe::Target;
use crate::backend::{Failure, Workload};
use crate::runc::etc::{self, ClusterDns};
use crate::security::{self, NONROOT, ReplicaPolicy};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::process::{Child, Command};

/// A started replica.
pub struct Launched {
    /// The process to supervise (its process group is the replica).
    pub child: Child,
    /// Where it serves.
    pub addr: SocketAddr,
    /// How probes reach it.
    pub probe: Target,
    /// Undoes what launching set up, once the process has ended.
    pub cleanup: Option<Cleanup>,
    /// Says why the replica ended when it knows better than the exit status (the
    /// container's cgroup saw an OOM kill); asked before `cleanup`.
    pub explain: Option<Box<dyn Fn() -> Option<Failure> + Send + Sync>>,
}

impl std::fmt::Debug for Launched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launched")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What undoes a launch: awaited once the replica's process has ended.
pub type Cleanup = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A launch in progress.
pub type Launching<'a> = Pin<Box<dyn Future<Output = Result<Launched, Failure>> + Send + 'a>>;

/// Starts replicas one way.
pub trait Launcher: Send + Sync + std::fmt::Debug + 'static {
    /// Why this launcher cannot run `w`, if it cannot.
    fn refuse(&self, w: &Workload) -> Option<Failure>;
    /// Starts replica `id` of `rev`, its output appended to `log`.
    fn launch<'a>(&'a self, rev: &'a RevisionState, id: u64, log: &'a Path) -> Launching<'a>;
    /// The contents of `rev`'s ConfigMap or Secret volumes changed: running replicas
    /// should see [`RevisionState::volumes`].
    fn volumes_changed(&self, _rev: &RevisionState) {}
}

/// Replica `id`'s hostname, named as Kubernetes names a Revision's pods
/// (`<revision>-deployment-…`) and cut as kubelet cuts a pod's hostname: at most 63
/// bytes (the kernel takes 64 with the terminating NUL), no trailing `-` or `.`.
pub fn pod_hostname(revision: &str, id: u64) -> String {
    const MAX: usize = 63;
    let mut name = format!("{revision}-deployment-{id}");
    if name.len() > MAX {
        let mut cut = MAX;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        let kept = name.trim_end_matches(['-', '.']).len();
        name.truncate(kept);
    }
    name
}

/// The probe target of a container whose port `port` is reached at `host`.
pub fn probe_target(w: &Workload, host: std::net::IpAddr, port: u16) -> Target {
    let c = &w.container;
    Target {
        host,
        port,
        container_port: w.port,
        port_name: c
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| p.name.clone()),
        env: w.env.clone(),
        cwd: c.working_dir.clone().map(PathBuf::from),
        exec_prefix: Vec::new(),
    }
}

/// Appends to a replica's log.
pub fn log_file(log: &Path) -> std::io::Result<(std::fs::File, std::fs::File)> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    Ok((out, err))
}

/// The container's `command`/`args` as a local process group on a free loopback port,
/// run as an unprivileged user when the server is root ([`local_user`]). As root, each
/// replica also gets its own mount namespace whose `/etc/resolv.conf` is the pod's
/// (the cluster's DNS under `dnsPolicy: ClusterFirst`, `dnsConfig` applied), as a
/// container's is; otherwise replicas see the host's.
#[derive(Debug, Default)]
pub struct LocalProcess {
    /// What the operator allows (`--allow-root-replicas`).
    pub policy: ReplicaPolicy,
    /// The cluster's DNS, for `dnsPolicy: ClusterFirst`.
    pub cluster_dns: Option<ClusterDns>,
}

/// The host's resolver configuration, which replicas' own is made from and bound over.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Whether replicas get their own `/etc/resolv.conf`: the server is root (it can make
/// mount namespaces) and the host has one to bind it over.
pub fn own_resolv_conf() -> bool {
    server_ids().0 == 0 && Path::new(RESOLV_CONF).exists()
}

/// Starts `cmd` in a mount namespace of its own (mounts follow the host's, never the
/// other way) where `resolv` is bound read-only over `/etc/resolv.conf`. A thread made
/// for it enters the namespace, starts the child there (which keeps it) and ends; no
/// other thread of the server leaves the host's.
async fn spawn_with_resolv_conf(
    mut cmd: Command,
    resolv: PathBuf,
) -> std::io::Result<tokio::process::Child> {
    use nix::mount::{MsFlags, mount};
    let runtime = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("swell-replica-start".into())
        .spawn(move || {
            let started = (|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
                let none = None::<&str>;
                mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none)?;
                mount(Some(&resolv), RESOLV_CONF, none, MsFlags::MS_BIND, none)?;
                let read_only = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                mount(none, RESOLV_CONF, none, read_only, none)?;
                let _runtime = runtime.enter();
                cmd.spawn()
            })();
            let _ = tx.send(started);
        })?;
    let started = rx
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the starting thread panicked")));
    let _ = thread.join();
    started
}

/// The user a local replica runs as: `Some((uid, gid))` when the server is root (the
/// container's or pod's `runAsUser`/`runAsGroup`, else [`NONROOT`]; uid 0 only with
/// `--allow-root-replicas`), `None` when it is not and the replica runs as the server's
/// own user (which cannot become another). Supplementary groups are cleared.
pub fn local_user(
    w: &Workload,
    server: (u32, u32),
    policy: ReplicaPolicy,
) -> Result<Option<(u32, u32)>, Failure> {
    let e = security::effective(w.security_context.as_ref(), &w.container);
    let refuse = |reason: &str, message: String| Err(Failure::failed(reason, message));
    if !e.supplemental_groups.is_empty() {
        return refuse(
            "SupplementalGroupsUnsupported",
            "the process backend runs the container as a local process and cannot give it supplementary groups (supplementalGroups, fsGroup); run the server with --backend runc".into(),
        );
    }
    let (server_uid, server_gid) = server;
    if server_uid != 0 {
        if let Some(u) = e.run_as_user.filter(|u| *u != server_uid) {
            return refuse(
                "RunAsUserUnsupported",
                format!(
                    "runAsUser {u}: the server runs as uid {server_uid} and cannot start replicas as another user (run it as root)"
                ),
            );
        }
        if let Some(g) = e.run_as_group.filter(|g| *g != server_gid) {
            return refuse(
                "RunAsGroupUnsupported",
                format!(
                    "runAsGroup {g}: the server runs as gid {server_gid} and cannot start replicas as another group (run it as root)"
                ),
            );
        }
        return Ok(None);
    }
    let uid = e.run_as_user.unwrap_or(NONROOT);
    let gid = e.run_as_group.unwrap_or(NONROOT);
    if uid == 0 && e.run_as_non_root {
        return refuse("CreateContainerConfigError", security::RUNS_AS_ROOT.into());
    }
    if uid == 0 && !policy.allow_root {
        return refuse(
            "RunAsRootNotAllowed",
            "runAsUser 0: this server does not run replicas as root (start it with --allow-root-replicas to allow it)".into(),
        );
    }
    Ok(Some((uid, gid)))
}

/// The server's own (uid, gid).
fn server_ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// Writes `text` to `path`, readable by every user (the replica's).
fn write_readable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Launcher for LocalProcess {
    fn refuse(&self, w: &Workload) -> Option<Failure> {
        if !w.sidecars.is_empty() {
            return Some(Failure {
                reason: "SidecarsUnsupported".into(),
                message:
                    "the process backend runs one container per Revision; this one has sidecars"
                        .into(),
                failed: true,
            });
        }
        if !w.init_containers.is_empty() {
            return Some(Failure {
                reason: "InitContainersUnsupported".into(),
                message: "the process backend runs one container per Revision; this one has init containers (run the server with --backend runc)".into(),
                failed: true,
            });
        }
        let mounts = w
            .container
            .volume_mounts
            .as_ref()
            .is_some_and(|m| !m.is_empty());
        if mounts || !w.volumes.is_empty() {
            return Some(Failure {
                reason: "VolumesUnsupported".into(),
                message: "the process backend runs the container as a local process and cannot mount volumes (run the server with --backend runc)".into(),
                failed: true,
            });
        }
        let sc = w.container.security_context.as_ref();
        let unsupported = [
            (!w.host_aliases.is_empty(), "hostAliases"),
            (
                (w.dns_config.is_some() || w.dns_policy.as_deref() == Some("None"))
                    && !own_resolv_conf(),
                "dnsConfig (it needs the server to run as root)",
            ),
            (
                sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
                "securityContext.readOnlyRootFilesystem",
            ),
            (
                sc.and_then(|s| s.capabilities.as_ref())
                    .and_then(|c| c.add.as_ref())
                    .is_some_and(|a| !a.is_empty()),
                "securityContext.capabilities.add",
            ),
        ];
        if let Some((_, field)) = unsupported.iter().find(|(set, _)| *set) {
            return Some(Failure::failed(
                "PodSpecUnsupported",
                format!(
                    "the process backend runs the container as a local process and cannot apply {field} (run the server with --backend runc)"
                ),
            ));
        }
        if let Err(f) = local_user(w, server_ids(), self.policy) {
            return Some(f);
        }
        w.argv.is_empty().then(|| Failure {
            reason: "CommandRequired".into(),
            message: format!(
                "the process backend runs the container's command, and this container has none (image {:?} needs a container backend)",
                w.container.image.as_deref().unwrap_or_default()
            ),
            failed: true,
        })
    }

    fn launch<'a>(&'a self, rev: &'a RevisionState, id: u64, log: &'a Path) -> Launching<'a> {
        Box::pin(async move {
            let port = free_port().map_err(|e| Failure {
                reason: "NoPort".into(),
                message: format!("cannot find a free loopback port: {e}"),
                failed: false,
            })?;
            let w = &rev.workload;
            let user = local_user(w, server_ids(), self.policy)?;
            let start_error = |e: std::io::Error| {
                let program = w.argv.first().map_or("", |s| s.as_str());
                let message = match user {
                    Some((uid, gid)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        format!(
                            "cannot start {program:?} as uid {uid} (gid {gid}): {e}; that user needs to search every directory on the way to it (and to workingDir) and to execute it"
                        )
                    }
                    Some((uid, _)) => format!("cannot start {program:?} as uid {uid}: {e}"),
                    None => format!("cannot start {program:?}: {e}"),
                };
                Failure {
                    reason: "StartError".into(),
                    message,
                    failed: true,
                }
            };
            let (program, args) = w
                .argv
                .split_first()
                .ok_or_else(|| start_error(std::io::Error::other("no command")))?;
            let (out, err) = log_file(log).map_err(start_error)?;
            let mut cmd = Command::new(program);
            // `$(PORT)` means this replica's port.
            cmd.args(args.iter().map(|a| a.replace("$(PORT)", &port.to_string())))
                .env_clear()
                .env(
                    "PATH",
                    std::env::var_os("PATH")
                        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
                )
                .env("HOSTNAME", pod_hostname(&rev.rev.name, id))
                .envs(w.env.iter().map(|(k, v)| (k, v)))
                .env("PORT", port.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            let resolv = if own_resolv_conf() {
                let host = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
                let resolv = log.with_extension("resolv.conf");
                let text = etc::resolv_conf(
                    &host,
                    w.dns_policy.as_deref(),
                    w.dns_config.as_ref(),
                    self.cluster_dns.as_ref(),
                    &rev.revision().namespace,
                );
                write_readable(&resolv, &text).map_err(start_error)?;
                Some(resolv)
            } else {
                None
            };
            if let Some(d) = &w.container.working_dir {
                cmd.current_dir(d);
            }
            if let Some((uid, gid)) = user {
                // As root, std clears the supplementary groups when it sets the uid.
                cmd.uid(uid).gid(gid);
            }
            let child = match resolv {
                Some(resolv) => spawn_with_resolv_conf(cmd, resolv).await,
                None => cmd.spawn(),
            }
            .map_err(start_error)?;
            let host = std::net::IpAddr::from([127, 0, 0, 1]);
            Ok(Launched {
                child,
                addr: SocketAddr::new(host, port),
                probe: probe_target(w, host, port),
                cleanup: None,
                explain: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_cut_as_kubelet_cuts_them() {
        assert_eq!(pod_hostname("hello-00001", 3), "hello-00001-deployment-3");
        // 51 + "-deployment-12" = 65 bytes: cut to 63, and the '-' it ends on goes.
        let long = "a".repeat(51);
        let h = pod_hostname(&long, 12);
        assert_eq!(h, format!("{long}-deployment"));
        let long = format!("{}-00001", "x".repeat(57));
        let h = pod_hostname(&long, 12);
        assert!(h.len() <= 63 && !h.ends_with(['-', '.']), "{h}");
        assert_eq!(h, long[..63]);
    }
    use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext};

    fn workload(user: Option<i64>, pod: Option<PodSecurityContext>) -> Workload {
        Workload {
            container: Container {
                security_context: Some(SecurityContext {
                    run_as_user: user,
                    ..SecurityContext::default()
                }),
                ..Container::default()
            },
            env: vec![],
            argv: vec!["app".into()],
            command: None,
            args: None,
            port: 8080,
            grace: std::time::Duration::from_secs(1),
            sidecars: vec![],
            init_containers: vec![],
            volumes: vec![],
            pull_credentials: Default::default(),
            security_context: pod,
            host_aliases: vec![],
            dns_policy: None,
            dns_config: None,
        }
    }

    #[test]
    fn a_root_server_runs_replicas_as_someone_else() {
        let deny = ReplicaPolicy::default();
        let root = (0, 0);
        assert_eq!(
            local_user(&workload(None, None), root, deny),
            Ok(Some((NONROOT, NONROOT)))
        );
        let pod = PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(1001),
            ..PodSecurityContext::default()
        };
        assert_eq!(
            local_user(&workload(None, Some(pod.clone())), root, deny),
            Ok(Some((1000, 1001)))
        );
        assert_eq!(
            local_user(&workload(Some(7), Some(pod)), root, deny),
            Ok(Some((7, 1001)))
        );
        let refused = local_user(&workload(Some(0), None), root, deny).unwrap_err();
        assert_eq!(refused.reason, "RunAsRootNotAllowed");
        assert!(refused.message.contains("--allow-root-replicas"));
        let allow = ReplicaPolicy {
            allow_root: true,
            ..ReplicaPolicy::default()
        };
        assert_eq!(
            local_user(&workload(Some(0), None), root, allow),
            Ok(Some((0, NONROOT)))
        );
        let non_root = PodSecurityContext {
            run_as_non_root: Some(true),
            ..PodSecurityContext::default()
        };
        let refused = local_user(&workload(Some(0), Some(non_root)), root, allow).unwrap_err();
        assert_eq!(refused.message, security::RUNS_AS_ROOT);
        let groups = PodSecurityContext {
            fs_group: Some(5),
            ..PodSecurityContext::default()
        };
        assert_eq!(
            local_user(&workload(None, Some(groups)), root, allow)
                .unwrap_err()
                .reason,
            "SupplementalGroupsUnsupported"
        );
    }

    #[test]
    fn an_unprivileged_server_runs_replicas_as_itself() {
        let me = (1000, 1000);
        let deny = ReplicaPolicy::default();
        assert_eq!(local_user(&workload(None, None), me, deny), Ok(None));
        assert_eq!(local_user(&workload(Some(1000), None), me, deny), Ok(None));
        let refused = local_user(&workload(Some(2000), None), me, deny).unwrap_err();
        assert_eq!(refused.reason, "RunAsUserUnsupported");
    }
}
