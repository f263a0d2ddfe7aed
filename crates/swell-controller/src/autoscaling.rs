//! The autoscaler at work (§3.1): every second it reads each Revision's request
//! statistics from its data-plane pool, every two seconds it ticks each Revision's KPA
//! (or, for the HPA class, reads its replicas' CPU and memory from the backend) and
//! applies the replicas wanted to the backend, and a request that finds a Revision at
//! zero pokes it at once. It is the only caller of [`Backend::ensure`], and makes every
//! backend call from its one task, in order, on a blocking thread and outside its lock:
//! ticks, pokes and reconciles never race over a Revision's replica count, and no async
//! thread waits on a process start, a volume rewrite or a `/proc` read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use swell_autoscaler::{Activity, Hpa, HpaSpec, Kpa, ScalerSpec, Spec};
use swell_dataplane::{RevisionKey, Revisions};
use swell_runtime::{Backend, ReplicaStatus, ReplicaUsage, RevisionRef, Workload};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often request statistics are read (Knative's scrape interval).
const COLLECT_EVERY: Duration = Duration::from_secs(1);
/// How often the deciders run (Knative's tick interval).
const TICK_EVERY: Duration = Duration::from_secs(2);

/// What a Revision's status reports of its scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    /// Replicas asked of the backend.
    pub desired: i32,
    /// What the backend sees.
    pub observed: ReplicaStatus,
    /// The PodAutoscaler's `Active` condition.
    pub activity: Activity,
    /// Initial scale was reached once.
    pub initialized: bool,
    /// Initial scale was not reached within the progress deadline (seconds).
    pub deadline_exceeded: Option<f64>,
}

impl Scale {
    /// Nothing runs, and nothing is asked to.
    fn stopped() -> Self {
        Scale {
            desired: 0,
            observed: ReplicaStatus::default(),
            activity: Activity::Inactive { timed_out: false },
            initialized: false,
            deadline_exceeded: None,
        }
    }
}

/// How a Revision scales, resolved from its annotations and the configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    /// Knative's KPA: the decider's spec and the PodAutoscaler's limits.
    Kpa(Spec, ScalerSpec),
    /// The HPA class.
    Hpa(HpaSpec),
}

/// An HPA-class Revision's state.
struct HpaScaling {
    spec: HpaSpec,
    hpa: Hpa,
    replicas: i32,
    initialized: bool,
}

enum Scaling {
    Kpa(Box<Kpa>),
    Hpa(HpaScaling),
}

struct Entry {
    scaling: Scaling,
    workload: Arc<Workload>,
    observed: ReplicaStatus,
    /// What the Revision's status was last told.
    reported: Option<Scale>,
}

/// What the autoscaler's task is asked from outside it, answered in order.
enum Job {
    /// Take a Revision's spec and workload and apply it ([`Autoscaler::reconcile`]).
    Reconcile {
        rev: RevisionRef,
        resolved: Box<Resolved>,
        workload: Arc<Workload>,
        done: oneshot::Sender<Scale>,
    },
    /// Stop a Revision's replicas ([`Autoscaler::forget`]), and delete their files too
    /// if it is deleted ([`Autoscaler::remove`]).
    Stop { rev: RevisionRef, deleted: bool },
}

/// Every Revision's KPA, and the backend they drive.
pub struct Autoscaler {
    backend: Arc<dyn Backend>,
    pools: Revisions,
    /// Wakes the Revision reconciler when a Revision's scale changed.
    changes: mpsc::UnboundedSender<RevisionRef>,
    epoch: Instant,
    revisions: Mutex<HashMap<RevisionRef, Entry>>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Taken by [`Autoscaler::run`].
    job_queue: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
}

impl std::fmt::Debug for Autoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoscaler").finish_non_exhaustive()
    }
}

fn key(rev: &RevisionRef) -> RevisionKey {
    RevisionKey {
        namespace: rev.namespace.clone(),
        name: rev.name.clone(),
    }
}

impl Entry {
    fn new(resolved: Resolved, workload: Arc<Workload>, now: f64) -> Self {
        let scaling = match resolved {
            Resolved::Kpa(spec, limits) => Scaling::Kpa(Box::new(Kpa::new(spec, limits, now))),
            Resolved::Hpa(spec) => Scaling::Hpa(HpaScaling {
                replicas: spec.min_scale.max(1),
                spec,
                hpa: Hpa::default(),
                initialized: false,
            }),
        };
        Entry {
            scaling,
            workload,
            observed: ReplicaStatus::default(),
            reported: None,
        }
    }

    /// Takes a changed spec; a changed class starts over.
    fn update(&mut self, resolved: Resolved, now: f64) {
        match (&mut self.scaling, resolved) {
            (Scaling::Kpa(k), Resolved::Kpa(spec, limits)) => k.update(spec, limits),
            (Scaling::Hpa(h), Resolved::Hpa(spec)) => h.spec = spec,
            (_, other) => self.scaling = Entry::new(other, self.workload.clone(), now).scaling,
        }
    }

    fn replicas(&self) -> i32 {
        match &self.scaling {
            Scaling::Kpa(k) => k.pod_autoscaler().replicas(),
            Scaling::Hpa(h) => h.replicas,
        }
    }

    fn scale(&self, now: f64) -> Scale {
        match &self.scaling {
            Scaling::Kpa(k) => {
                let pa = k.pod_autoscaler();
                let spec = k.scaler_spec();
                Scale {
                    desired: pa.replicas(),
                    observed: self.observed.clone(),
                    activity: pa.activity(),
                    initialized: pa.initialized(),
                    deadline_exceeded: pa
                        .deadline_exceeded(spec, now)
                        .then_some(spec.progress_deadline),
                }
            }
            Scaling::Hpa(h) => Scale {
                desired: h.replicas,
                observed: self.observed.clone(),
                activity: if self.observed.ready > 0 {
                    Activity::Active
                } else {
                    Activity::Activating
                },
                initialized: h.initialized,
                deadline_exceeded: None,
            },
        }
    }

    /// Reconciles the PodAutoscaler (KPA) or notes readiness (HPA) with the replicas
    /// ready now.
    fn reconcile(&mut self, now: f64) {
        let ready = self.observed.ready;
        match &mut self.scaling {
            Scaling::Kpa(k) => {
                k.reconcile(now, ready);
            }
            Scaling::Hpa(h) => h.initialized |= ready >= h.spec.min_scale.max(1),
        }
    }

    /// One 2-second tick; an HPA-class Revision is given its replicas' `usage`.
    fn tick(&mut self, usage: Option<Vec<ReplicaUsage>>, now: f64) {
        let ready = self.observed.ready;
        match &mut self.scaling {
            Scaling::Kpa(k) => {
                k.tick(now, ready);
            }
            Scaling::Hpa(h) => {
                let readings = usage.unwrap_or_default();
                let readings = readings
                    .iter()
                    .map(|r| (r.id, r.cpu_seconds, r.memory_bytes));
                let usage = h.hpa.observe(&h.spec.target, now, readings);
                h.replicas = h.hpa.desired(&h.spec, now, h.replicas, usage);
                h.initialized |= ready >= h.spec.min_scale.max(1);
            }
        }
    }

    /// Takes what the backend now runs; returns whether the scale the Revision reports
    /// changed since it was last reported.
    fn observe(&mut self, observed: ReplicaStatus, now: f64) -> bool {
        self.observed = observed;
        self.reported.as_ref() != Some(&self.scale(now))
    }
}

/// What the backend is asked to run for one Revision.
struct Wanted {
    rev: RevisionRef,
    workload: Arc<Workload>,
    replicas: i32,
}

impl Autoscaler {
    /// An autoscaler driving `backend` from the statistics of `pools`; Revisions whose
    /// scale changes are sent to `changes`. Nothing reaches the backend until
    /// [`Autoscaler::run`] runs.
    pub fn new(
        backend: Arc<dyn Backend>,
        pools: Revisions,
        changes: mpsc::UnboundedSender<RevisionRef>,
    ) -> Self {
        let (jobs, job_queue) = mpsc::unbounded_channel();
        Autoscaler {
            backend,
            pools,
            changes,
            epoch: Instant::now(),
            revisions: Mutex::new(HashMap::new()),
            jobs,
            job_queue: Mutex::new(Some(job_queue)),
        }
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RevisionRef, Entry>> {
        self.revisions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a Revision's (possibly changed) spec and workload, reconciles its
    /// PodAutoscaler with the replicas ready now, and returns what its status reports.
    /// A new Revision starts with its initial scale.
    pub async fn reconcile(
        &self,
        rev: &RevisionRef,
        resolved: Resolved,
        workload: &Workload,
    ) -> Scale {
        let (done, scale) = oneshot::channel();
        let job = Job::Reconcile {
            rev: rev.clone(),
            resolved: Box::new(resolved),
            workload: Arc::new(workload.clone()),
            done,
        };
        if self.jobs.send(job).is_ok()
            && let Ok(scale) = scale.await
        {
            return scale;
        }
        // The autoscaler has stopped (the server is shutting down): nothing runs.
        Scale::stopped()
    }

    /// Stops a Revision's replicas and forgets it.
    pub fn forget(&self, rev: &RevisionRef) {
        self.stop(rev, false);
    }

    /// The Revision is deleted: forgets it, stops its replicas and deletes their files.
    pub fn remove(&self, rev: &RevisionRef) {
        self.stop(rev, true);
    }

    fn stop(&self, rev: &RevisionRef, deleted: bool) {
        // Forgotten at once, so no tick asks for replicas for it again.
        self.lock().remove(rev);
        let _ = self.jobs.send(Job::Stop {
            rev: rev.clone(),
            deleted,
        });
    }

    /// Runs `f` with the backend on a blocking thread.
    async fn with_backend<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Backend) -> T + Send + 'static,
    ) -> Option<T> {
        let backend = self.backend.clone();
        match tokio::task::spawn_blocking(move || f(backend.as_ref())).await {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "a backend call failed");
                None
            }
        }
    }

    /// Makes the backend run what each of `wanted` wants, then records what it runs;
    /// returns the Revisions whose reported scale changed.
    async fn apply(&self, wanted: Vec<Wanted>) -> Vec<RevisionRef> {
        if wanted.is_empty() {
            return Vec::new();
        }
        let observed = self
            .with_backend(move |b| {
                wanted
                    .into_iter()
                    .map(|w| {
                        let status = b.ensure(&w.rev, &w.workload, w.replicas);
                        (w.rev, status)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        let now = self.now();
        let mut revisions = self.lock();
        observed
            .into_iter()
            .filter(|(rev, status)| {
                revisions
                    .get_mut(rev)
                    .is_some_and(|e| e.observe(status.clone(), now))
            })
            .map(|(rev, _)| rev)
            .collect()
    }

    /// What the backend should run for `rev` now.
    fn wanted(&self, rev: &RevisionRef) -> Vec<Wanted> {
        self.lock()
            .get(rev)
            .map(|e| Wanted {
                rev: rev.clone(),
                workload: e.workload.clone(),
                replicas: e.replicas(),
            })
            .into_iter()
            .collect()
    }

    /// Answers [`Autoscaler::reconcile`]: applies the scale, reconciles the
    /// PodAutoscaler with the replicas ready then, and applies what that decided.
    async fn reconcile_now(
        &self,
        rev: RevisionRef,
        resolved: Resolved,
        workload: Arc<Workload>,
    ) -> Scale {
        let now = self.now();
        {
            let mut revisions = self.lock();
            match revisions.entry(rev.clone()) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    let e = o.into_mut();
                    e.update(resolved, now);
                    e.workload = workload;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Entry::new(resolved, workload, now));
                }
            }
        }
        self.apply(self.wanted(&rev)).await;
        if let Some(e) = self.lock().get_mut(&rev) {
            e.reconcile(self.now());
        }
        self.apply(self.wanted(&rev)).await;
        let now = self.now();
        let mut revisions = self.lock();
        let Some(e) = revisions.get_mut(&rev) else {
            // Forgotten meanwhile.
            return Scale::stopped();
        };
        let scale = e.scale(now);
        e.reported = Some(scale.clone());
        scale
    }

    /// Reads every Revision's statistics for the last second into its windows.
    fn collect(&self) {
        let now = self.now();
        let at = Instant::now();
        for (rev, e) in self.lock().iter_mut() {
            let Scaling::Kpa(kpa) = &mut e.scaling else {
                continue;
            };
            let Some(pool) = self.pools.get(&key(rev)) else {
                continue;
            };
            let stat = pool.report(at);
            // As Knative's scraper: nothing is recorded for a Revision with no
            // replica unless requests are waiting for it.
            if e.observed.ready > 0 || stat.average_concurrency > 0.0 || stat.request_count > 0.0 {
                kpa.record(now, stat.average_concurrency, stat.request_count);
            }
        }
    }

    /// Ticks every Revision's decider (reading the HPA-class ones' usage from the
    /// backend first) and applies the results.
    async fn tick(&self) {
        let hpa: Vec<RevisionRef> = self
            .lock()
            .iter()
            .filter(|(_, e)| matches!(e.scaling, Scaling::Hpa(_)))
            .map(|(rev, _)| rev.clone())
            .collect();
        let mut usage: HashMap<RevisionRef, Vec<ReplicaUsage>> = if hpa.is_empty() {
            HashMap::new()
        } else {
            self.with_backend(move |b| hpa.into_iter().map(|r| (r.clone(), b.usage(&r))).collect())
                .await
                .unwrap_or_default()
        };
        let now = self.now();
        let wanted = self
            .lock()
            .iter_mut()
            .map(|(rev, e)| {
                e.tick(usage.remove(rev), now);
                Wanted {
                    rev: rev.clone(),
                    workload: e.workload.clone(),
                    replicas: e.replicas(),
                }
            })
            .collect();
        for rev in self.apply(wanted).await {
            let _ = self.changes.send(rev);
        }
    }

    /// A request waits for a Revision with no replica: decide for it now.
    async fn poke(&self, k: &RevisionKey) {
        let rev = RevisionRef {
            namespace: k.namespace.clone(),
            name: k.name.clone(),
        };
        let concurrency = self.pools.get(k).map_or(0, |p| p.in_flight());
        let now = self.now();
        {
            let mut revisions = self.lock();
            let Some(e) = revisions.get_mut(&rev) else {
                return;
            };
            let Scaling::Kpa(kpa) = &mut e.scaling else {
                return;
            };
            if kpa.poke(now, concurrency as f64).is_none() {
                return;
            }
        }
        tracing::debug!(revision = %rev.name, "scaling from zero");
        for rev in self.apply(self.wanted(&rev)).await {
            let _ = self.changes.send(rev);
        }
    }

    /// Does what was asked from outside.
    async fn answer(&self, job: Job) {
        match job {
            Job::Reconcile {
                rev,
                resolved,
                workload,
                done,
            } => {
                let _ = done.send(self.reconcile_now(rev, *resolved, workload).await);
            }
            Job::Stop { rev, deleted } => {
                self.with_backend(move |b| {
                    if deleted {
                        b.remove(&rev)
                    } else {
                        b.teardown(&rev)
                    }
                })
                .await;
            }
        }
    }

    /// Collects, ticks, answers pokes and does what was asked, one at a time, until
    /// `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        mut demand: mpsc::UnboundedReceiver<RevisionKey>,
        shutdown: CancellationToken,
    ) {
        let Some(mut jobs) = self
            .job_queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            tracing::error!("the autoscaler runs once");
            return;
        };
        let mut collect = tokio::time::interval(COLLECT_EVERY);
        let mut tick = tokio::time::interval(TICK_EVERY);
        for i in [&mut collect, &mut tick] {
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(job) = jobs.recv() => self.answer(job).await,
                Some(k) = demand.recv() => self.poke(&k).await,
                _ = collect.tick() => self.collect(),
                _ = tick.tick() => self.tick().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swell_api::annotations::Autoscaling;
    use swell_api::config;
    use swell_autoscaler::{resolve, spec::scaler_spec};
    use swell_runtime::FakeBackend;

    fn workload() -> Workload {
        Workload {
            container: Default::default(),
            env: vec![],
            argv: vec!["app".into()],
            command: Some(vec!["app".into()]),
            args: None,
            port: 8080,
            grace: Duration::from_secs(1),
            sidecars: vec![],
            init_containers: vec![],
            volumes: vec![],
            pull_credentials: Default::default(),
            security_context: None,
            host_aliases: vec![],
            dns_policy: None,
            dns_config: None,
        }
    }

    fn rev() -> RevisionRef {
        RevisionRef {
            namespace: "default".into(),
            name: "hello-00001".into(),
        }
    }

    fn specs(ann: &[(&str, &str)]) -> Resolved {
        let cfg = config::Autoscaler {
            stable_window: Duration::from_secs(6),
            scale_to_zero_grace_period: Duration::from_secs(1),
            ..config::Autoscaler::default()
        };
        let ann = Autoscaling::parse(
            &ann.iter()
                .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), v.to_string()))
                .collect(),
        )
        .unwrap();
        let spec = resolve(&cfg, &ann, 0, true).unwrap();
        let scaler = scaler_spec(&cfg, &ann, true, Duration::from_secs(600));
        Resolved::Kpa(spec, scaler)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_revision_scales_to_zero_and_a_request_brings_it_back() {
        let backend = Arc::new(FakeBackend::default());
        let pools = Revisions::default();
        let (tx, mut changes) = mpsc::unbounded_channel();
        let (demand_tx, demand) = mpsc::unbounded_channel();
        pools.on_demand(demand_tx);
        let scaler = Arc::new(Autoscaler::new(backend.clone(), pools.clone(), tx));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(scaler.clone().run(demand, shutdown.clone()));
        let s = scaler.reconcile(&rev(), specs(&[]), &workload()).await;
        assert_eq!((s.desired, s.observed.ready), (1, 1));
        assert_eq!(s.activity, Activity::Active);
        let pool = pools.pool(&key(&rev()));
        // Idle: stable window (6 s) plus a tick, then the grace period.
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(backend.replicas(&rev()), 0);
        assert_eq!(changes.try_recv(), Ok(rev()));
        // A request at zero: the pool's poke brings one replica back without a tick.
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move {
                let _t = pool.admit(Instant::now());
                pool.acquire().await.map(|l| l.addr())
            }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(backend.replicas(&rev()), 1);
        waiting.abort();
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn min_scale_holds_and_forget_tears_down() {
        let backend = Arc::new(FakeBackend::default());
        let pools = Revisions::default();
        let (tx, _changes) = mpsc::unbounded_channel();
        let scaler = Arc::new(Autoscaler::new(backend.clone(), pools, tx));
        let shutdown = CancellationToken::new();
        let (_d, demand) = mpsc::unbounded_channel();
        let task = tokio::spawn(scaler.clone().run(demand, shutdown.clone()));
        scaler
            .reconcile(&rev(), specs(&[("min-scale", "2")]), &workload())
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(backend.replicas(&rev()), 2);
        scaler.forget(&rev());
        // Torn down by the autoscaler's task, in order after what it was doing.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(backend.replicas(&rev()), 0);
        shutdown.cancel();
        task.await.unwrap();
    }
}
