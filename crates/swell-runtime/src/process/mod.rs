//! The `process` backend: each replica of a Revision is its serving container's
//! `command`/`args` run as a local process group, on a free loopback port given as
//! `PORT`, with the container's environment, `workingDir`, stdin at EOF and output in
//! a per-replica log file, as the container's `runAsUser`/`runAsGroup` or uid 65532
//! when the server is root (never uid 0 unless the server allows it). Replicas left behind by a crashed server are killed on the
//! next start.

pub mod launch;
mod pidfile;
pub mod probe;
pub(crate) mod replica;
mod usage;

use crate::backend::{
    Backend, ReplicaObserver, ReplicaStatus, ReplicaUsage, RevisionRef, Workload,
};
use crate::volume::Volume;
use launch::{Launcher, LocalProcess};
use replica::Replica;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest a replica gets to drain, and then to stop, when the whole server stops.
const SERVER_STOP_GRACE: Duration = Duration::from_secs(10);

/// One Revision's replicas.
#[derive(Debug)]
pub struct RevisionState {
    rev: RevisionRef,
    workload: Workload,
    /// The volumes as they are now: ConfigMap and Secret contents change under running
    /// replicas, as on Kubernetes.
    volumes: Mutex<Vec<Volume>>,
    /// Where its replicas' logs go.
    dir: PathBuf,
    pids: PathBuf,
    replicas: Mutex<Vec<Arc<Replica>>>,
    next_id: Mutex<u64>,
    observer: Arc<dyn ReplicaObserver>,
    stopping: CancellationToken,
    launcher: Arc<dyn Launcher>,
    /// The backend's tasks, which its shutdown waits for.
    tracker: TaskTracker,
}

impl RevisionState {
    /// Runs `task` as one of the backend's tasks: the backend's shutdown waits for it.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// What the Revision runs.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// The volumes' current contents.
    pub fn volumes(&self) -> Vec<Volume> {
        self.volumes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes the volumes' latest contents; says whether they changed.
    fn update_volumes(&self, volumes: &[Volume]) -> bool {
        let mut current = self.volumes.lock().unwrap_or_else(|e| e.into_inner());
        let changed = current.as_slice() != volumes;
        if changed {
            *current = volumes.to_vec();
        }
        changed
    }

    /// Which Revision.
    pub fn revision(&self) -> &RevisionRef {
        &self.rev
    }

    fn replicas(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Replica>>> {
        self.replicas.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the observer the current ready set.
    fn publish(&self) {
        let ready: Vec<SocketAddr> = self
            .replicas()
            .iter()
            .filter_map(|r| *r.ready.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        self.observer.replicas_changed(&self.rev, ready);
        self.observer.pods_changed(&self.rev);
    }

    /// Each container's log file of replica `id`: the serving container's `<id>.log`,
    /// the others' `<id>.<name>.log`.
    fn container_logs(&self, id: u64) -> Vec<(String, PathBuf)> {
        let main = self.dir.join(format!("{id}.log"));
        let others = self
            .workload
            .init_containers
            .iter()
            .chain(&self.workload.sidecars)
            .map(|c| {
                let name = c.container.name.clone();
                let path = crate::runc::launcher::container_log(&main, &name);
                (name, path)
            });
        std::iter::once((self.workload.container.name.clone(), main.clone()))
            .chain(others)
            .collect()
    }

    /// A run of the replica begins: its logs' output from here on is the new run's.
    fn begin_run(&self, replica: &Replica) {
        let logs = self.container_logs(replica.id);
        let mut pod = replica.pod();
        let starts = logs
            .into_iter()
            .map(|(_, path)| {
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                let previous = pod
                    .log_starts
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, start, _)| *start);
                (path, len, previous)
            })
            .collect();
        pod.log_starts = starts;
    }

    /// The replica's containers run, serving at `addr`.
    fn started(&self, replica: &Replica, addr: SocketAddr) {
        {
            let mut pod = replica.pod();
            pod.started = Some(std::time::SystemTime::now());
            pod.addr = Some(addr);
        }
        self.observer.pods_changed(&self.rev);
    }

    /// The replica's run ended by itself (or was killed for failing a probe).
    fn ended(
        &self,
        replica: &Replica,
        failure: &crate::backend::Failure,
        status: Option<std::process::ExitStatus>,
    ) {
        use std::os::unix::process::ExitStatusExt;
        let exit_code = status
            .and_then(|s| s.code().or_else(|| s.signal().map(|n| 128 + n)))
            .unwrap_or(-1);
        let reason = match (failure.reason.as_str(), exit_code) {
            ("OOMKilled", _) => "OOMKilled",
            (_, 0) => "Completed",
            _ => "Error",
        };
        let mut pod = replica.pod();
        pod.last_termination = Some(crate::backend::Termination {
            exit_code,
            reason: reason.into(),
            message: failure.message.clone(),
            started: pod.started.take(),
            finished: std::time::SystemTime::now(),
        });
    }

    /// The replicas as Pods.
    fn pods(&self) -> Vec<crate::backend::ReplicaPod> {
        let replicas: Vec<Arc<Replica>> = self.replicas().clone();
        replicas
            .iter()
            .map(|r| {
                let ready = r.ready.lock().unwrap_or_else(|e| e.into_inner()).is_some();
                let failure = r.failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let pod = r.pod();
                let logs = self
                    .container_logs(r.id)
                    .into_iter()
                    .map(|(container, path)| {
                        let (start, previous) = pod
                            .log_starts
                            .iter()
                            .find(|(p, _, _)| *p == path)
                            .map_or((0, None), |(_, s, p)| (*s, *p));
                        crate::backend::ContainerLog {
                            container,
                            path,
                            start,
                            previous,
                        }
                    })
                    .collect();
                crate::backend::ReplicaPod {
                    id: r.id,
                    created: pod.created,
                    addr: pod.addr,
                    ready,
                    started: pod.started,
                    restarts: r.restarts.load(std::sync::atomic::Ordering::Relaxed),
                    waiting: if pod.started.is_none() { failure } else { None },
                    last_termination: pod.last_termination.clone(),
                    logs,
                }
            })
            .collect()
    }

    /// SIGTERM-to-SIGKILL time: the Revision's, bounded while the server stops.
    fn grace(&self) -> Duration {
        if self.stopping.is_cancelled() {
            self.workload.grace.min(SERVER_STOP_GRACE)
        } else {
            self.workload.grace
        }
    }

    fn status(&self) -> ReplicaStatus {
        let replicas = self.replicas();
        let ready = replicas
            .iter()
            .filter(|r| r.ready.lock().unwrap_or_else(|e| e.into_inner()).is_some())
            .count();
        let failure = if ready == 0 {
            replicas
                .iter()
                .find_map(|r| r.failure.lock().unwrap_or_else(|e| e.into_inner()).clone())
        } else {
            None
        };
        let stalled = ready == 0
            && !replicas.is_empty()
            && replicas
                .iter()
                .all(|r| r.backing_off.load(std::sync::atomic::Ordering::Relaxed));
        ReplicaStatus {
            ready: i32::try_from(ready).unwrap_or(i32::MAX),
            failure,
            stalled,
        }
    }
}

/// Runs replicas as local process groups.
#[derive(Debug)]
pub struct ProcessBackend {
    dir: PathBuf,
    pids: PathBuf,
    observer: Arc<dyn ReplicaObserver>,
    revisions: Mutex<HashMap<RevisionRef, Arc<RevisionState>>>,
    tracker: TaskTracker,
    stopping: CancellationToken,
    launcher: Arc<dyn Launcher>,
}

impl ProcessBackend {
    /// A backend keeping logs and process records under `dir`, its replicas run as
    /// `policy` allows and given the cluster's DNS `cluster_dns`; kills replicas a
    /// previous server left running there.
    pub fn new(
        dir: &Path,
        observer: Arc<dyn ReplicaObserver>,
        policy: crate::ReplicaPolicy,
        cluster_dns: Option<crate::runc::etc::ClusterDns>,
    ) -> std::io::Result<Self> {
        let local = LocalProcess {
            policy,
            cluster_dns,
        };
        Self::with_launcher(dir, observer, Arc::new(local))
    }

    /// A backend whose replicas `launcher` starts (the runc backend's containers).
    pub fn with_launcher(
        dir: &Path,
        observer: Arc<dyn ReplicaObserver>,
        launcher: Arc<dyn Launcher>,
    ) -> std::io::Result<Self> {
        let pids = dir.join("pids");
        std::fs::create_dir_all(&pids)?;
        let killed = pidfile::kill_leftovers(&pids);
        if killed > 0 {
            tracing::info!(killed, "killed replicas a previous server left running");
        }
        Ok(ProcessBackend {
            dir: dir.to_path_buf(),
            pids,
            observer,
            revisions: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            stopping: CancellationToken::new(),
            launcher,
        })
    }

    /// Where a Revision's replica logs are (`<n>.log` per replica).
    pub fn log_dir(&self, rev: &RevisionRef) -> PathBuf {
        self.dir.join("logs").join(&rev.namespace).join(&rev.name)
    }

    /// Kills every replica's process group at once (SIGKILL), as the next start would
    /// kill what a crashed server left; for a server that must stop now. Returns how
    /// many were killed.
    pub fn kill_now(&self) -> usize {
        pidfile::kill_leftovers(&self.pids)
    }

    /// Stops every replica and waits: each drains (at most 10 s; the server's ingress
    /// has finished its requests by now), gets SIGTERM, then SIGKILL after at most 10 s.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        let all: Vec<Arc<RevisionState>> = self
            .revisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in all {
            for r in s.replicas().iter() {
                r.cancel.cancel();
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Backend for ProcessBackend {
    fn ensure(&self, rev: &RevisionRef, workload: &Workload, replicas: i32) -> ReplicaStatus {
        if let Some(failure) = self.launcher.refuse(workload) {
            return ReplicaStatus {
                ready: 0,
                failure: Some(failure),
                stalled: true,
            };
        }
        if self.stopping.is_cancelled() {
            return ReplicaStatus::default();
        }
        let state = {
            let mut revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
            revisions
                .entry(rev.clone())
                .or_insert_with(|| {
                    let dir = self.log_dir(rev);
                    if let Err(e) = std::fs::create_dir_all(&dir) {
                        tracing::warn!(error = %e, dir = %dir.display(), "cannot create the log directory");
                    }
                    Arc::new(RevisionState {
                        rev: rev.clone(),
                        workload: workload.clone(),
                        volumes: Mutex::new(workload.volumes.clone()),
                        dir,
                        pids: self.pids.clone(),
                        replicas: Mutex::new(Vec::new()),
                        next_id: Mutex::new(0),
                        observer: self.observer.clone(),
                        stopping: self.stopping.clone(),
                        launcher: self.launcher.clone(),
                        tracker: self.tracker.clone(),
                    })
                })
                .clone()
        };
        if state.update_volumes(&workload.volumes) {
            self.launcher.volumes_changed(&state);
        }
        let want = usize::try_from(replicas.max(0)).unwrap_or(0);
        let changed = state.replicas().len() != want;
        {
            let mut list = state.replicas();
            while list.len() < want {
                let id = {
                    let mut n = state.next_id.lock().unwrap_or_else(|e| e.into_inner());
                    *n += 1;
                    *n
                };
                let r = Arc::new(Replica::new(id, self.stopping.child_token()));
                list.push(r.clone());
                self.tracker.spawn(replica::supervise(state.clone(), r));
            }
            while list.len() > want {
                if let Some(r) = list.pop() {
                    r.cancel.cancel();
                }
            }
        }
        if changed {
            state.observer.pods_changed(rev);
        }
        state.status()
    }

    fn pods(&self, rev: &RevisionRef) -> Vec<crate::backend::ReplicaPod> {
        self.revisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(rev)
            .cloned()
            .map(|s| s.pods())
            .unwrap_or_default()
    }

    fn replace(&self, rev: &RevisionRef, id: u64) -> bool {
        let Some(state) = self
            .revisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(rev)
            .cloned()
        else {
            return false;
        };
        if self.stopping.is_cancelled() {
            return false;
        }
        {
            let mut list = state.replicas();
            let Some(at) = list.iter().position(|r| r.id == id) else {
                return false;
            };
            let old = list.remove(at);
            old.cancel.cancel();
            let id = {
                let mut n = state.next_id.lock().unwrap_or_else(|e| e.into_inner());
                *n += 1;
                *n
            };
            let r = Arc::new(Replica::new(id, self.stopping.child_token()));
            list.push(r.clone());
            self.tracker.spawn(replica::supervise(state.clone(), r));
        }
        state.observer.pods_changed(rev);
        true
    }

    fn usage(&self, rev: &RevisionRef) -> Vec<ReplicaUsage> {
        let Some(state) = self
            .revisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(rev)
            .cloned()
        else {
            return Vec::new();
        };
        let ready: Vec<(u64, u32)> = state
            .replicas()
            .iter()
            .filter(|r| r.ready.lock().unwrap_or_else(|e| e.into_inner()).is_some())
            .filter_map(|r| Some((r.id, (*r.pid.lock().unwrap_or_else(|e| e.into_inner()))?)))
            .collect();
        ready
            .into_iter()
            .map(|(id, pid)| {
                let u = usage::group_usage(pid);
                ReplicaUsage {
                    id,
                    cpu_seconds: u.cpu_seconds,
                    memory_bytes: u.memory_bytes,
                }
            })
            .collect()
    }

    fn remove(&self, rev: &RevisionRef) {
        self.teardown(rev);
        // Replicas still draining keep writing to their open (now unlinked) log files.
        let dir = self.log_dir(rev);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot delete a deleted Revision's logs");
        }
    }

    fn teardown(&self, rev: &RevisionRef) {
        let removed = self
            .revisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(rev);
        if let Some(s) = removed {
            for r in s.replicas().drain(..) {
                r.cancel.cancel();
            }
            s.publish();
        }
    }
}
