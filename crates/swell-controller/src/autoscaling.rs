//! The autoscaler at work (§3.1): every second it reads each Revision's request
//! statistics from its data-plane pool, every two seconds it ticks each Revision's KPA
//! (or, for the HPA class, reads its replicas' CPU and memory from the backend) and
//! applies the replicas wanted to the backend, and a request that finds a Revision at
//! zero pokes it at once. It is the only caller of [`Backend::ensure`], so ticks and
//! reconciles never race over a Revision's replica count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use swell_autoscaler::{Activity, Hpa, HpaSpec, Kpa, ScalerSpec, Spec};
use swell_dataplane::{RevisionKey, Revisions};
use swell_runtime::{Backend, ReplicaStatus, RevisionRef, Workload};
use tokio::sync::mpsc;
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
    workload: Workload,
    observed: ReplicaStatus,
    /// What the Revision's status was last told.
    reported: Option<Scale>,
}

/// Every Revision's KPA, and the backend they drive.
pub struct Autoscaler {
    backend: Arc<dyn Backend>,
    pools: Revisions,
    /// Wakes the Revision reconciler when a Revision's scale changed.
    changes: mpsc::UnboundedSender<RevisionRef>,
    epoch: Instant,
    revisions: Mutex<HashMap<RevisionRef, Entry>>,
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
    fn new(resolved: Resolved, workload: Workload, now: f64) -> Self {
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

    /// One 2-second tick.
    fn tick(&mut self, backend: &dyn Backend, rev: &RevisionRef, now: f64) {
        let ready = self.observed.ready;
        match &mut self.scaling {
            Scaling::Kpa(k) => {
                k.tick(now, ready);
            }
            Scaling::Hpa(h) => {
                let readings = backend.usage(rev);
                let readings = readings
                    .iter()
                    .map(|r| (r.id, r.cpu_seconds, r.memory_bytes));
                let usage = h.hpa.observe(&h.spec.target, now, readings);
                h.replicas = h.hpa.desired(&h.spec, now, h.replicas, usage);
                h.initialized |= ready >= h.spec.min_scale.max(1);
            }
        }
    }

    /// Makes the backend run what the autoscaler wants; returns whether the scale the
    /// Revision reports changed since it was last reported.
    fn apply(&mut self, backend: &dyn Backend, rev: &RevisionRef, now: f64) -> bool {
        self.observed = backend.ensure(rev, &self.workload, self.replicas());
        let scale = self.scale(now);
        self.reported.as_ref() != Some(&scale)
    }
}

impl Autoscaler {
    /// An autoscaler driving `backend` from the statistics of `pools`; Revisions whose
    /// scale changes are sent to `changes`.
    pub fn new(
        backend: Arc<dyn Backend>,
        pools: Revisions,
        changes: mpsc::UnboundedSender<RevisionRef>,
    ) -> Self {
        Autoscaler {
            backend,
            pools,
            changes,
            epoch: Instant::now(),
            revisions: Mutex::new(HashMap::new()),
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
    pub fn reconcile(&self, rev: &RevisionRef, resolved: Resolved, workload: &Workload) -> Scale {
        let now = self.now();
        let mut revisions = self.lock();
        let entry = match revisions.entry(rev.clone()) {
            std::collections::hash_map::Entry::Occupied(o) => {
                let e = o.into_mut();
                e.update(resolved, now);
                e.workload = workload.clone();
                e
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Entry::new(resolved, workload.clone(), now))
            }
        };
        entry.apply(self.backend.as_ref(), rev, now);
        entry.reconcile(now);
        entry.apply(self.backend.as_ref(), rev, now);
        let scale = entry.scale(now);
        entry.reported = Some(scale.clone());
        scale
    }

    /// Stops a Revision's replicas and forgets it.
    pub fn forget(&self, rev: &RevisionRef) {
        let mut revisions = self.lock();
        revisions.remove(rev);
        self.backend.teardown(rev);
    }

    /// The Revision is deleted: forgets it, stops its replicas and deletes their files.
    pub fn remove(&self, rev: &RevisionRef) {
        let mut revisions = self.lock();
        revisions.remove(rev);
        self.backend.remove(rev);
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

    /// Ticks every Revision's decider and applies the results.
    fn tick(&self) {
        let now = self.now();
        let mut changed = Vec::new();
        for (rev, e) in self.lock().iter_mut() {
            e.tick(self.backend.as_ref(), rev, now);
            if e.apply(self.backend.as_ref(), rev, now) {
                changed.push(rev.clone());
            }
        }
        for rev in changed {
            let _ = self.changes.send(rev);
        }
    }

    /// A request waits for a Revision with no replica: decide for it now.
    fn poke(&self, k: &RevisionKey) {
        let rev = RevisionRef {
            namespace: k.namespace.clone(),
            name: k.name.clone(),
        };
        let concurrency = self.pools.get(k).map_or(0, |p| p.in_flight());
        let now = self.now();
        let changed = {
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
            tracing::debug!(revision = %rev.name, "scaling from zero");
            e.apply(self.backend.as_ref(), &rev, now)
        };
        if changed {
            let _ = self.changes.send(rev);
        }
    }

    /// Collects, ticks and answers pokes until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        mut demand: mpsc::UnboundedReceiver<RevisionKey>,
        shutdown: CancellationToken,
    ) {
        let mut collect = tokio::time::interval(COLLECT_EVERY);
        let mut tick = tokio::time::interval(TICK_EVERY);
        for i in [&mut collect, &mut tick] {
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = collect.tick() => self.collect(),
                _ = tick.tick() => self.tick(),
                Some(k) = demand.recv() => self.poke(&k),
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
        let s = scaler.reconcile(&rev(), specs(&[]), &workload());
        assert_eq!((s.desired, s.observed.ready), (1, 1));
        assert_eq!(s.activity, Activity::Active);
        let pool = pools.pool(&key(&rev()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(scaler.clone().run(demand, shutdown.clone()));
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
        scaler.reconcile(&rev(), specs(&[("min-scale", "2")]), &workload());
        let shutdown = CancellationToken::new();
        let (_d, demand) = mpsc::unbounded_channel();
        let task = tokio::spawn(scaler.clone().run(demand, shutdown.clone()));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(backend.replicas(&rev()), 2);
        scaler.forget(&rev());
        assert_eq!(backend.replicas(&rev()), 0);
        shutdown.cancel();
        task.await.unwrap();
    }
}
