//! How a replica's process starts: [`LocalProcess`] runs the container's command on a
//! free loopback port; the runc backend's launcher runs the container under
//! `runc run`. Either way the supervisor sees one child process group, an address to
//! send requests to, probes that reach it, and what to undo when it ends.

use super::RevisionState;
use super::probe::Target;
use crate::backend::{Failure, Workload};
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
    pub cleanup: Option<Box<dyn FnOnce() + Send>>,
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

/// The container's `command`/`args` as a local process group on a free loopback port.
#[derive(Debug, Default)]
pub struct LocalProcess;

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
            let start_error = |e: std::io::Error| Failure {
                reason: "StartError".into(),
                message: format!(
                    "cannot start {:?}: {e}",
                    w.argv.first().map_or("", |s| s.as_str())
                ),
                failed: true,
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
                .env("HOSTNAME", format!("{}-deployment-{id}", rev.rev.name))
                .envs(w.env.iter().map(|(k, v)| (k, v)))
                .env("PORT", port.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            if let Some(d) = &w.container.working_dir {
                cmd.current_dir(d);
            }
            let child = cmd.spawn().map_err(start_error)?;
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
