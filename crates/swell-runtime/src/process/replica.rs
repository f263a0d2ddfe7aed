//! One replica's life: start the process group on a free loopback port, wait for its
//! startup probe, probe it ready (aggressively at first, as queue-proxy does), watch
//! readiness and liveness, restart it when it exits or fails its startup or liveness
//! probe, stop it — first out of the ready set, its in-flight requests drained (up to
//! the grace period), then SIGTERM, then SIGKILL after the grace period.

use super::launch::Launched;
use super::probe::{self, Target};
use super::{RevisionState, pidfile};
use crate::backend::Failure;
use crate::backoff::Backoff;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::Child;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the rest of the backend sees of a replica.
#[derive(Debug)]
pub struct Replica {
    /// Its number within the Revision.
    pub id: u64,
    /// Cancelled to stop it.
    pub cancel: CancellationToken,
    /// Its address while ready.
    pub ready: Mutex<Option<SocketAddr>>,
    /// Why it last stopped, if it did.
    pub failure: Mutex<Option<Failure>>,
    /// Times it was restarted.
    pub restarts: AtomicU32,
    /// It ended and waits out its restart back-off.
    pub backing_off: AtomicBool,
    /// Its process (group) while it runs.
    pub pid: Mutex<Option<u32>>,
    /// What it shows as a Pod: when it was asked for, when its current run started
    /// and where it serves, how its last run ended, where each run's log starts.
    pub pod: Mutex<PodState>,
}

/// The parts of a replica only its Pod shows.
#[derive(Debug)]
pub struct PodState {
    /// When the replica was asked for.
    pub created: std::time::SystemTime,
    /// When the current run started, while it runs.
    pub started: Option<std::time::SystemTime>,
    /// Where the current (or last) run serves.
    pub addr: Option<SocketAddr>,
    /// How the last run ended.
    pub last_termination: Option<crate::backend::Termination>,
    /// Per log file: where the current run's and the previous run's output start.
    pub log_starts: Vec<(std::path::PathBuf, u64, Option<u64>)>,
}

impl Replica {
    /// A new replica, not started.
    pub fn new(id: u64, cancel: CancellationToken) -> Self {
        Replica {
            id,
            cancel,
            ready: Mutex::new(None),
            failure: Mutex::new(None),
            restarts: AtomicU32::new(0),
            backing_off: AtomicBool::new(false),
            pid: Mutex::new(None),
            pod: Mutex::new(PodState {
                created: std::time::SystemTime::now(),
                started: None,
                addr: None,
                last_termination: None,
                log_starts: Vec::new(),
            }),
        }
    }

    /// Its Pod's state.
    pub fn pod(&self) -> std::sync::MutexGuard<'_, PodState> {
        self.pod.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records whether (and where) it is ready and tells the observer.
    fn announce(&self, rev: &RevisionState, addr: Option<SocketAddr>) {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = addr;
        rev.publish();
    }

    fn set_failure(&self, f: Option<Failure>) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }
}

enum Outcome {
    /// Asked to stop; stopped.
    Stopped,
    /// Ended by itself or was killed for failing liveness.
    Ended(Failure),
}

/// Aggressive readiness polling (§5.5) for the first 10 s: for network probes every
/// millisecond during the first 100 ms, then every 5 ms (a refused loopback connection
/// costs microseconds, and every millisecond here is cold-start latency); every 50 ms
/// for exec probes.
const AGGRESSIVE_PERIOD: Duration = Duration::from_millis(5);
const EAGER_PERIOD: Duration = Duration::from_millis(1);
const EAGER_FOR: Duration = Duration::from_millis(100);
const AGGRESSIVE_EXEC_PERIOD: Duration = Duration::from_millis(50);
const AGGRESSIVE_TIMEOUT: Duration = Duration::from_millis(100);
const AGGRESSIVE_FOR: Duration = Duration::from_secs(10);

/// Runs the replica until it is cancelled, restarting it when it ends as kubelet
/// restarts a container: at once the first time, then after kubelet's
/// `CrashLoopBackOff` (10 s doubling to 5 minutes; 10 minutes of running starts over).
pub async fn supervise(rev: Arc<RevisionState>, replica: Arc<Replica>) {
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        let wait = match run_once(&rev, &replica).await {
            Outcome::Stopped => break,
            Outcome::Ended(failure) => {
                tracing::info!(revision = %rev.rev.name, replica = replica.id, reason = %failure.reason, "replica ended");
                let wait = backoff.restart_after(started.elapsed());
                if !wait.is_zero() {
                    tracing::info!(revision = %rev.rev.name, replica = replica.id, ?wait, "back-off restarting failed container");
                }
                // Said before the announcement, so whoever looks sees it.
                replica
                    .backing_off
                    .store(!wait.is_zero(), Ordering::Relaxed);
                replica.set_failure(Some(failure));
                replica.announce(&rev, None);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = replica.cancel.cancelled() => break,
        }
        if replica.backing_off.swap(false, Ordering::Relaxed) {
            // Starting again: requests may wait for it.
            rev.publish();
        }
        replica.restarts.fetch_add(1, Ordering::Relaxed);
    }
    replica.announce(&rev, None);
}

/// The last lines of a log file (at most ~2 KiB, like a termination message).
pub fn log_tail(path: &std::path::Path) -> String {
    log_tail_since(path, 0)
}

/// The last lines (at most 10, ~2 KiB) written to a log file past byte `since`: what
/// one run of a container wrote, as kubelet's termination message from the logs is.
pub fn log_tail_since(path: &std::path::Path, since: u64) -> String {
    let Ok(data) = std::fs::read(path) else {
        return String::new();
    };
    let since = usize::try_from(since)
        .ok()
        .filter(|s| *s <= data.len())
        .unwrap_or(0);
    let start = data.len().saturating_sub(2048).max(since);
    let text = String::from_utf8_lossy(&data[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Bytes in a log file now (where the next run's output starts).
pub fn log_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn signal_group(pid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(raw), sig);
    }
}

/// Takes a replica out of the ready set, then waits until the data plane has no request
/// in flight on it, at most the grace period (or until it exits by itself), so that
/// stopping it fails no request.
async fn drain(rev: &RevisionState, replica: &Replica, child: &mut Child) {
    let addr = *replica.ready.lock().unwrap_or_else(|e| e.into_inner());
    replica.announce(rev, None);
    let Some(addr) = addr else { return };
    let grace = rev.grace();
    let started = Instant::now();
    tokio::select! {
        () = rev.observer.drained(&rev.rev, addr) => {
            tracing::debug!(revision = %rev.rev.name, replica = replica.id, after = ?started.elapsed(), "replica drained");
        }
        () = tokio::time::sleep(grace) => {
            tracing::info!(revision = %rev.rev.name, replica = replica.id, ?grace, "requests still in flight after the grace period; stopping the replica anyway");
        }
        _ = child.wait() => {}
    }
}

/// SIGTERM to the group, SIGKILL after `grace`.
async fn stop(child: &mut Child, pid: u32, grace: Duration) {
    signal_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Whatever else is left in the group goes too.
    signal_group(pid, Signal::SIGKILL);
}

/// Says what exited with `status`; [`run_once`] words the message from the run's own
/// output.
fn exit_failure(status: std::process::ExitStatus, log: &std::path::Path) -> Failure {
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    Failure {
        reason: format!("ExitCode{code}"),
        message: exit_message(&log_tail(log)),
        failed: true,
    }
}

/// Knative's message for a container that exited, given what it wrote last.
fn exit_message(tail: &str) -> String {
    format!("Container failed with: {tail}")
}

async fn run_once(rev: &RevisionState, replica: &Replica) -> Outcome {
    let log = rev.dir.join(format!("{}.log", replica.id));
    // Earlier runs' output stays in the log; a failure quotes only this run's.
    let since = log_len(&log);
    rev.begin_run(replica);
    let launched = match rev.launcher.launch(rev, replica.id, &log).await {
        Ok(l) => l,
        Err(failure) => return Outcome::Ended(failure),
    };
    let Launched {
        mut child,
        addr,
        probe,
        cleanup,
        explain,
    } = launched;
    let outcome = match child.id() {
        None => Outcome::Ended(Failure {
            reason: "StartError".into(),
            message: "the process exited at once".into(),
            failed: true,
        }),
        Some(pid) => {
            pidfile::record(&rev.pids, pid);
            *replica.pid.lock().unwrap_or_else(|e| e.into_inner()) = Some(pid);
            rev.started(replica, addr);
            let mut outcome = watch(rev, replica, &mut child, pid, addr, &probe, &log).await;
            if let (Outcome::Ended(_), Some(explain)) = (&outcome, &explain)
                && let Some(better) = explain()
            {
                outcome = Outcome::Ended(better);
            }
            if let Outcome::Ended(f) = &mut outcome
                && f.reason.starts_with("ExitCode")
                && f.message.starts_with(&exit_message(""))
            {
                f.message = exit_message(&log_tail_since(&log, since));
            }
            *replica.pid.lock().unwrap_or_else(|e| e.into_inner()) = None;
            signal_group(pid, Signal::SIGKILL);
            let status = child.wait().await;
            pidfile::forget(&rev.pids, pid);
            if let Outcome::Ended(f) = &outcome {
                rev.ended(replica, f, status.ok());
            }
            outcome
        }
    };
    if let Some(cleanup) = cleanup {
        cleanup.await;
    }
    outcome
}

async fn watch(
    rev: &RevisionState,
    replica: &Replica,
    child: &mut Child,
    pid: u32,
    addr: SocketAddr,
    target: &Target,
    log: &std::path::Path,
) -> Outcome {
    let c = &rev.workload.container;
    let readiness = c.readiness_probe.as_ref();
    let secs = |s: Option<i32>, d: u64| {
        Duration::from_secs(
            s.and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .unwrap_or(d),
        )
    };
    let ready_period = readiness.and_then(|p| p.period_seconds).filter(|p| *p > 0);
    let ready_timeout = secs(readiness.and_then(|p| p.timeout_seconds), 1);
    let success_threshold = readiness
        .and_then(|p| p.success_threshold)
        .filter(|t| *t > 0)
        .unwrap_or(1);
    let failure_threshold = readiness
        .and_then(|p| p.failure_threshold)
        .filter(|t| *t > 0)
        .unwrap_or(3);
    let start = Instant::now();
    let mut next_ready = start + secs(readiness.and_then(|p| p.initial_delay_seconds), 0);
    let liveness = c.liveness_probe.as_ref();
    let live_period = secs(liveness.and_then(|p| p.period_seconds), 10);
    let live_timeout = secs(liveness.and_then(|p| p.timeout_seconds), 1);
    let live_threshold = liveness
        .and_then(|p| p.failure_threshold)
        .filter(|t| *t > 0)
        .unwrap_or(3);
    let mut next_live =
        start + secs(liveness.and_then(|p| p.initial_delay_seconds), 0) + live_period;
    let startup = c.startup_probe.as_ref();
    let startup_period = secs(startup.and_then(|p| p.period_seconds), 10);
    let startup_timeout = secs(startup.and_then(|p| p.timeout_seconds), 1);
    let startup_threshold = startup
        .and_then(|p| p.failure_threshold)
        .filter(|t| *t > 0)
        .unwrap_or(3);
    let mut next_startup = start + secs(startup.and_then(|p| p.initial_delay_seconds), 0);
    // Readiness and liveness wait for the startup probe, as on Kubernetes.
    let mut started = startup.is_none();
    let aggressive_period = if readiness.is_some_and(|p| p.exec.is_some()) {
        AGGRESSIVE_EXEC_PERIOD
    } else {
        AGGRESSIVE_PERIOD
    };
    let (mut ready, mut successes, mut failures, mut live_failures) = (false, 0, 0, 0);
    let mut startup_failures = 0;
    loop {
        tokio::select! {
            status = child.wait() => {
                return Outcome::Ended(match status {
                    Ok(s) => exit_failure(s, log),
                    Err(e) => Failure { reason: "Unknown".into(), message: e.to_string(), failed: true },
                });
            }
            () = replica.cancel.cancelled() => {
                drain(rev, replica, child).await;
                stop(child, pid, rev.grace()).await;
                return Outcome::Stopped;
            }
            () = tokio::time::sleep_until(next_startup), if !started => {
                match probe::check(startup, target, startup_timeout).await {
                    Ok(()) => {
                        started = true;
                        let now = Instant::now();
                        next_ready = next_ready.max(now);
                        next_live = next_live.max(now + live_period);
                    }
                    Err(e) => {
                        startup_failures += 1;
                        next_startup = Instant::now() + startup_period;
                        if startup_failures >= startup_threshold {
                            tracing::info!(revision = %rev.rev.name, replica = replica.id, error = %e, "startup probe failed; restarting");
                            stop(child, pid, rev.grace()).await;
                            return Outcome::Ended(Failure {
                                reason: "StartupProbeFailed".into(),
                                message: format!("Container failed startup probe: {e}"),
                                failed: false,
                            });
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(next_ready), if started => {
                let aggressive = ready_period.is_none() && !ready && start.elapsed() < AGGRESSIVE_FOR;
                let timeout = if aggressive { AGGRESSIVE_TIMEOUT } else { ready_timeout };
                let result = probe::check(readiness, target, timeout).await;
                let period = match ready_period {
                    Some(p) => Duration::from_secs(u64::try_from(p).unwrap_or(1)),
                    None if aggressive && aggressive_period == AGGRESSIVE_PERIOD && start.elapsed() < EAGER_FOR => EAGER_PERIOD,
                    None if aggressive => aggressive_period,
                    None => Duration::from_secs(1),
                };
                next_ready = Instant::now() + period;
                match result {
                    Ok(()) => {
                        failures = 0;
                        successes += 1;
                        if !ready && successes >= success_threshold {
                            ready = true;
                            tracing::info!(revision = %rev.rev.name, replica = replica.id, %addr, after = ?start.elapsed(), "replica ready");
                            replica.set_failure(None);
                            replica.announce(rev, Some(addr));
                        }
                    }
                    Err(e) => {
                        successes = 0;
                        failures += 1;
                        if ready && failures >= failure_threshold {
                            ready = false;
                            tracing::info!(revision = %rev.rev.name, replica = replica.id, error = %e, "replica not ready");
                            replica.announce(rev, None);
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(next_live), if started && liveness.is_some() => {
                next_live = Instant::now() + live_period;
                match probe::check(liveness, target, live_timeout).await {
                    Ok(()) => live_failures = 0,
                    Err(e) => {
                        live_failures += 1;
                        if live_failures >= live_threshold {
                            tracing::info!(revision = %rev.rev.name, replica = replica.id, error = %e, "liveness probe failed; restarting");
                            drain(rev, replica, child).await;
                            stop(child, pid, rev.grace()).await;
                            return Outcome::Ended(Failure {
                                reason: "LivenessProbeFailed".into(),
                                message: format!("Container failed liveness probe: {e}"),
                                failed: false,
                            });
                        }
                    }
                }
            }
        }
    }
}
