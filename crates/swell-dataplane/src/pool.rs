//! Revision pools: each Revision's ready replicas, the per-replica in-flight limit
//! (`containerConcurrency`), least-loaded choice, and the activator queue that holds
//! requests while no replica has room — or none is ready yet (§4.3, §5.2) — and the
//! drain of replicas that leave: no new requests, and a wake-up when the last one ends.

use crate::metrics::{Metrics, RevisionMetrics};
use crate::proxy::Connections;
use crate::stats::{RequestStats, Stat};
use crate::tasks::Tasks;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

/// Requests a Revision's queue holds before answering 503, unless told otherwise (the
/// activator's depth).
pub const QUEUE_DEPTH: usize = 10_000;

/// Identifies a Revision.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    /// Namespace.
    pub namespace: String,
    /// Revision name.
    pub name: String,
}

/// What the data plane needs to know of a Revision's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionConfig {
    /// Requests one replica serves at once; 0 = unlimited.
    pub container_concurrency: usize,
    /// `timeoutSeconds`: the whole request, queueing included.
    pub timeout: Duration,
    /// `responseStartTimeoutSeconds`: until the first response byte.
    pub response_start_timeout: Option<Duration>,
    /// `idleTimeoutSeconds`: between response writes.
    pub idle_timeout: Option<Duration>,
    /// The container's port is named `h2c`: speak HTTP/2 (prior knowledge) to it.
    pub h2c: bool,
    /// `config-features` `autodetect-http2` is on: a request that arrives over HTTP/2
    /// goes to the replica over HTTP/2 (prior knowledge) too, whatever its port is
    /// named, as queue-proxy's auto transport does; HTTP/1 requests stay HTTP/1.1.
    pub autodetect_http2: bool,
}

impl Default for RevisionConfig {
    fn default() -> Self {
        RevisionConfig {
            container_concurrency: 0,
            timeout: Duration::from_secs(300),
            response_start_timeout: None,
            idle_timeout: None,
            h2c: false,
            autodetect_http2: false,
        }
    }
}

/// Why a request got no replica.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcquireError {
    /// The queue is at its depth.
    #[error("pending request queue full")]
    QueueFull,
    /// The Revision went away while the request waited.
    #[error("revision is gone")]
    Gone,
    /// The Revision cannot start (its image cannot be pulled, its container keeps
    /// failing, …) and has no ready replica: why, in one line.
    #[error("{0}")]
    Failed(String),
}

/// One ready replica.
#[derive(Debug)]
pub struct Replica {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The data plane's connections to it; they close when it leaves the pool.
    pub conns: Connections,
    in_flight: AtomicUsize,
    /// The backend no longer lists it: its last request ending wakes `drained`.
    leaving: AtomicBool,
    drained: tokio::sync::Notify,
}

impl Replica {
    fn new(addr: SocketAddr) -> Arc<Self> {
        Arc::new(Replica {
            addr,
            conns: Connections::default(),
            in_flight: AtomicUsize::new(0),
            leaving: AtomicBool::new(false),
            drained: tokio::sync::Notify::new(),
        })
    }

    /// Gives one request's slot back (under its pool's lock); the last request of a
    /// leaving replica wakes whoever waits for it to drain.
    fn release(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 && self.leaving.load(Ordering::SeqCst)
        {
            self.drained.notify_waiters();
        }
    }

    /// Resolves once it is leaving and serves no request any more.
    async fn drain(&self) {
        loop {
            let notified = self.drained.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 || !self.leaving.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Requests it is serving now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct State {
    config: RevisionConfig,
    /// The replicas the backend says are ready.
    listed: Vec<SocketAddr>,
    /// Listed replicas the data plane found unreachable, until they answer again.
    suspect: Vec<SocketAddr>,
    /// Listed replicas that are not suspect: where requests go.
    replicas: Vec<Arc<Replica>>,
    waiters: VecDeque<oneshot::Sender<Lease>>,
    next: usize,
    stats: RequestStats,
    /// Why the Revision cannot start, while it cannot (see [`Revisions::set_failure`]).
    failure: Option<String>,
}

/// Where a pool says that a request is waiting and no replica runs (the activator's
/// poke to the autoscaler); set once by whoever scales.
type Demand = Arc<OnceLock<mpsc::UnboundedSender<RevisionKey>>>;

/// A Revision's replicas and queue.
#[derive(Debug)]
pub struct RevisionPool {
    /// Which Revision.
    pub key: RevisionKey,
    /// Its metric handles.
    pub metrics: RevisionMetrics,
    state: Mutex<State>,
    demand: Demand,
    queue_depth: usize,
    /// The data plane's tasks (a suspected replica's re-probe is one).
    pub(crate) tasks: Tasks,
}

/// The right to send one request to one replica; gives the slot back when dropped.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<RevisionPool>,
    replica: Arc<Replica>,
    armed: bool,
}

impl Lease {
    /// The replica's address.
    pub fn addr(&self) -> SocketAddr {
        self.replica.addr
    }

    /// The replica.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// The Revision's pool the slot belongs to.
    pub fn pool(&self) -> &Arc<RevisionPool> {
        &self.pool
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.armed {
            let mut st = self.pool.lock();
            self.replica.release();
            self.pool.dispatch(&mut st);
        }
    }
}

/// Counts a request for the autoscaler's statistics from arrival until dropped.
#[derive(Debug)]
pub struct Tracked {
    pool: Arc<RevisionPool>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.pool.lock().stats.request_out(Instant::now());
    }
}

impl RevisionPool {
    fn new(key: RevisionKey, config: RevisionConfig, revisions: &Revisions) -> Self {
        RevisionPool {
            metrics: revisions.metrics.revision(&key),
            key,
            demand: revisions.demand.clone(),
            queue_depth: revisions.queue_depth,
            tasks: revisions.tasks.clone(),
            state: Mutex::new(State {
                config,
                listed: Vec::new(),
                suspect: Vec::new(),
                replicas: Vec::new(),
                waiters: VecDeque::new(),
                next: 0,
                stats: RequestStats::new(Instant::now()),
                failure: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Revision's configuration.
    pub fn config(&self) -> RevisionConfig {
        self.lock().config.clone()
    }

    /// Admits a request: the Revision's configuration, and the request counted until
    /// the returned guard is dropped.
    pub fn admit(self: &Arc<Self>, now: Instant) -> (RevisionConfig, Tracked) {
        let mut st = self.lock();
        self.count_in(&mut st, now)
    }

    /// Like [`RevisionPool::admit`], for a request that only comes in when the
    /// Revision's configuration passes `accept`; nothing is counted otherwise.
    pub fn admit_if(
        self: &Arc<Self>,
        now: Instant,
        accept: impl FnOnce(&RevisionConfig) -> bool,
    ) -> Option<(RevisionConfig, Tracked)> {
        let mut st = self.lock();
        accept(&st.config).then(|| self.count_in(&mut st, now))
    }

    fn count_in(self: &Arc<Self>, st: &mut State, now: Instant) -> (RevisionConfig, Tracked) {
        st.stats.request_in(now);
        (st.config.clone(), Tracked { pool: self.clone() })
    }

    /// The least-loaded replica with room, its slot taken.
    fn pick(self: &Arc<Self>, st: &mut State) -> Option<Lease> {
        let cc = st.config.container_concurrency;
        let n = st.replicas.len();
        let mut best: Option<&Arc<Replica>> = None;
        for i in 0..n {
            let r = &st.replicas[(st.next + i) % n];
            let load = r.in_flight();
            if cc > 0 && load >= cc {
                continue;
            }
            if best.is_none_or(|b| load < b.in_flight()) {
                best = Some(r);
            }
        }
        let replica = best?.clone();
        st.next = (st.next + 1) % n.max(1);
        replica.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            pool: self.clone(),
            replica,
            armed: true,
        })
    }

    /// Hands free slots to waiting requests, oldest first.
    fn dispatch(self: &Arc<Self>, st: &mut State) {
        while !st.waiters.is_empty() {
            let Some(mut lease) = self.pick(st) else {
                return;
            };
            while let Some(w) = st.waiters.pop_front() {
                match w.send(lease) {
                    Ok(()) => break,
                    Err(back) => lease = back,
                }
                if st.waiters.is_empty() {
                    // Everyone left; give the slot back without re-entering.
                    lease.armed = false;
                    lease.replica.release();
                    return;
                }
            }
        }
    }

    /// A replica slot for one request, waiting in the queue while none is free. A
    /// request that finds no replica at all asks for one (see [`Revisions::on_demand`])
    /// and its wait is recorded as a cold start; while the Revision cannot start, it
    /// fails at once instead (still asking, so a Revision that can start again does).
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, AcquireError> {
        let (rx, cold) = {
            let mut st = self.lock();
            if st.waiters.is_empty()
                && let Some(lease) = self.pick(&mut st)
            {
                return Ok(lease);
            }
            if st.replicas.is_empty()
                && let Some(failure) = &st.failure
            {
                let failed = AcquireError::Failed(failure.clone());
                if st.listed.is_empty()
                    && let Some(demand) = self.demand.get()
                {
                    let _ = demand.send(self.key.clone());
                }
                return Err(failed);
            }
            if st.waiters.len() >= self.queue_depth {
                st.waiters.retain(|w| !w.is_closed());
                if st.waiters.len() >= self.queue_depth {
                    return Err(AcquireError::QueueFull);
                }
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            let cold = st.listed.is_empty().then(Instant::now);
            if cold.is_some()
                && let Some(demand) = self.demand.get()
            {
                let _ = demand.send(self.key.clone());
            }
            (rx, cold)
        };
        let Ok(lease) = rx.await else {
            // Released without a replica: the Revision failed, or went away.
            let failure = self.lock().failure.clone();
            return Err(failure.map_or(AcquireError::Gone, AcquireError::Failed));
        };
        if let Some(t) = cold {
            self.metrics.cold_start(t.elapsed().as_secs_f64());
        }
        Ok(lease)
    }

    /// Requests waiting for a replica.
    pub fn queued(&self) -> usize {
        self.lock()
            .waiters
            .iter()
            .filter(|w| !w.is_closed())
            .count()
    }

    /// Requests in flight (queued or at a replica).
    pub fn in_flight(&self) -> u64 {
        self.lock().stats.concurrency()
    }

    /// Replicas the backend lists as ready (including any the data plane suspects).
    pub fn ready(&self) -> usize {
        self.lock().listed.len()
    }

    /// Ready replicas.
    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.lock().replicas.clone()
    }

    /// Stops sending requests to a replica that could not be reached, until
    /// [`RevisionPool::restore`] (or the backend lists it anew).
    pub fn evict(&self, addr: SocketAddr) {
        let mut st = self.lock();
        if st.listed.contains(&addr) && !st.suspect.contains(&addr) {
            st.suspect.push(addr);
            st.replicas.retain(|r| r.addr != addr);
        }
    }

    /// Sends requests to an evicted replica again, if the backend still lists it.
    /// Returns false when it is no longer listed.
    pub fn restore(self: &Arc<Self>, addr: SocketAddr) -> bool {
        let mut st = self.lock();
        st.suspect.retain(|a| *a != addr);
        if !st.listed.contains(&addr) {
            return false;
        }
        if !st.replicas.iter().any(|r| r.addr == addr) {
            st.replicas.push(Replica::new(addr));
        }
        self.dispatch(&mut st);
        true
    }

    /// Whether the backend lists a replica.
    pub fn lists(&self, addr: SocketAddr) -> bool {
        self.lock().listed.contains(&addr)
    }

    /// Closes the statistics period (for the autoscaler).
    pub fn report(&self, now: Instant) -> Stat {
        self.lock().stats.report(now)
    }
}

/// Namespace → Revision name → pool.
type PoolsByNamespace = HashMap<String, HashMap<String, Arc<RevisionPool>>>;

/// Replicas that left their pool with requests in flight, until those end.
type Leaving = Arc<Mutex<Vec<(RevisionKey, Arc<Replica>)>>>;

/// Every Revision's pool, by namespace then name (so a request finds its pool without
/// building a key). Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Revisions {
    pools: Arc<RwLock<PoolsByNamespace>>,
    metrics: Arc<Metrics>,
    demand: Demand,
    queue_depth: usize,
    leaving: Leaving,
    tasks: Tasks,
}

impl Default for Revisions {
    fn default() -> Self {
        Revisions::with_queue_depth(QUEUE_DEPTH)
    }
}

impl Revisions {
    /// No pools yet; each Revision's queue will hold up to `depth` requests (at least 1).
    pub fn with_queue_depth(depth: usize) -> Self {
        Revisions {
            pools: Arc::default(),
            metrics: Arc::default(),
            demand: Demand::default(),
            queue_depth: depth.max(1),
            leaving: Leaving::default(),
            tasks: Tasks::default(),
        }
    }

    /// The tasks the data plane spawns beyond its connections, which the ingress's
    /// drain waits for.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Asks for `tx` to be told the Revision whenever a request waits for a Revision
    /// that has no replica (once per waiting request). Only the first call counts.
    pub fn on_demand(&self, tx: mpsc::UnboundedSender<RevisionKey>) {
        let _ = self.demand.set(tx);
    }

    /// The metrics of every pool.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics as OpenMetrics text.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(self)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, PoolsByNamespace> {
        self.pools.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The Revision's pool, created (with the default configuration) if need be.
    pub fn pool(&self, key: &RevisionKey) -> Arc<RevisionPool> {
        if let Some(p) = self.get(key) {
            return p;
        }
        let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(key.namespace.clone())
            .or_default()
            .entry(key.name.clone())
            .or_insert_with(|| {
                Arc::new(RevisionPool::new(
                    key.clone(),
                    RevisionConfig::default(),
                    self,
                ))
            })
            .clone()
    }

    /// Closes every idle connection to every replica (the ingress has drained: their
    /// drivers end); requests after this open new ones.
    pub fn close_connections(&self) {
        let pools: Vec<Arc<RevisionPool>> = self
            .read()
            .values()
            .flat_map(|by_name| by_name.values().cloned())
            .collect();
        for pool in pools {
            for replica in pool.lock().replicas.iter() {
                replica.conns.close();
            }
        }
    }

    /// The Revision's pool, if it has one.
    pub fn get(&self, key: &RevisionKey) -> Option<Arc<RevisionPool>> {
        self.find(&key.namespace, &key.name)
    }

    /// The pool of Revision `name` in `namespace`, if it has one.
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<RevisionPool>> {
        self.read().get(namespace)?.get(name).cloned()
    }

    /// Sets a Revision's configuration.
    pub fn configure(&self, key: &RevisionKey, config: RevisionConfig) {
        let pool = self.pool(key);
        let mut st = pool.lock();
        if st.config != config {
            st.config = config;
            pool.dispatch(&mut st);
        }
    }

    /// Sets a Revision's ready replicas; waiting requests flow to new ones at once.
    /// Replicas no longer listed get no new request; those still serving some drain
    /// (see [`Revisions::drained`]).
    pub fn set_replicas(&self, key: &RevisionKey, addrs: &[SocketAddr]) {
        let pool = self.pool(key);
        let mut st = pool.lock();
        let old = std::mem::take(&mut st.replicas);
        st.listed = addrs.to_vec();
        st.suspect.retain(|a| addrs.contains(a));
        let suspect = st.suspect.clone();
        let mut leaving = self.leaving();
        st.replicas = addrs
            .iter()
            .filter(|a| !suspect.contains(a))
            .map(|a| {
                if let Some(r) = old.iter().find(|r| r.addr == *a) {
                    return r.clone();
                }
                // Back before its last requests ended: it keeps counting them.
                let back = leaving.iter().position(|(k, r)| k == key && r.addr == *a);
                match back.map(|i| leaving.swap_remove(i).1) {
                    Some(r) => {
                        r.leaving.store(false, Ordering::SeqCst);
                        r
                    }
                    None => Replica::new(*a),
                }
            })
            .collect();
        let gone = old.into_iter().filter(|r| !addrs.contains(&r.addr));
        Self::leave(&mut leaving, key, gone);
        drop(leaving);
        pool.dispatch(&mut st);
    }

    fn leaving(&self) -> MutexGuard<'_, Vec<(RevisionKey, Arc<Replica>)>> {
        self.leaving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks replicas as leaving (under their pool's lock, as their leases end) and
    /// keeps those with requests in flight until they drain.
    fn leave(
        leaving: &mut Vec<(RevisionKey, Arc<Replica>)>,
        key: &RevisionKey,
        gone: impl Iterator<Item = Arc<Replica>>,
    ) {
        leaving.retain(|(_, r)| r.in_flight() > 0);
        for r in gone {
            r.leaving.store(true, Ordering::SeqCst);
            if r.in_flight() > 0 {
                leaving.push((key.clone(), r));
            }
        }
    }

    /// Resolves once the replica at `addr` of the Revision, which its pool no longer
    /// lists, has no request in flight (streamed responses and upgraded connections
    /// included); at once when it has none, or is unknown. Called by the backend
    /// between taking a replica out of the ready set and stopping it; bound it with
    /// the grace period.
    pub fn drained(
        &self,
        key: &RevisionKey,
        addr: SocketAddr,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let replica = {
            let mut leaving = self.leaving();
            leaving.retain(|(_, r)| r.in_flight() > 0);
            leaving
                .iter()
                .find(|(k, r)| k == key && r.addr == addr)
                .map(|(_, r)| r.clone())
        };
        async move {
            if let Some(r) = replica {
                r.drain().await;
            }
        }
    }

    /// Replicas that left their pool and still serve requests.
    pub fn draining(&self) -> usize {
        let mut leaving = self.leaving();
        leaving.retain(|(_, r)| r.in_flight() > 0);
        leaving.len()
    }

    /// Says why the Revision cannot start (`None`: it can). While it cannot and has no
    /// ready replica, requests waiting for it and new ones get
    /// [`AcquireError::Failed`] at once; a replica that becomes ready serves again.
    pub fn set_failure(&self, key: &RevisionKey, failure: Option<String>) {
        let pool = match &failure {
            Some(_) => self.pool(key),
            None => match self.get(key) {
                Some(p) => p,
                None => return,
            },
        };
        let mut st = pool.lock();
        if st.failure == failure {
            return;
        }
        st.failure = failure;
        if st.failure.is_some() && st.replicas.is_empty() {
            // Dropped senders: each waiter reads the failure.
            st.waiters.clear();
        }
    }

    /// Forgets a Revision; requests waiting for it get [`AcquireError::Gone`].
    pub fn remove(&self, key: &RevisionKey) {
        let removed = {
            let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
            let ns = pools.get_mut(&key.namespace);
            let removed = ns.and_then(|ns| ns.remove(&key.name));
            if pools.get(&key.namespace).is_some_and(HashMap::is_empty) {
                pools.remove(&key.namespace);
            }
            removed
        };
        if let Some(pool) = removed {
            self.metrics.forget(key);
            let mut st = pool.lock();
            st.waiters.clear();
            let gone = std::mem::take(&mut st.replicas);
            Self::leave(&mut self.leaving(), key, gone.into_iter());
        }
    }

    /// Every pool.
    pub fn all(&self) -> Vec<Arc<RevisionPool>> {
        self.read()
            .values()
            .flat_map(|ns| ns.values().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RevisionKey {
        RevisionKey {
            namespace: "default".into(),
            name: "hello-00001".into(),
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn with_cc(cc: usize) -> (Revisions, Arc<RevisionPool>) {
        let revs = Revisions::default();
        revs.configure(
            &key(),
            RevisionConfig {
                container_concurrency: cc,
                ..RevisionConfig::default()
            },
        );
        (revs.clone(), revs.pool(&key()))
    }

    /// A request waiting in the pool's queue; it yields the replica it gets.
    async fn queued_acquire(
        pool: &Arc<RevisionPool>,
    ) -> tokio::task::JoinHandle<Result<SocketAddr, AcquireError>> {
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire().await.map(|l| l.addr()) }
        });
        while pool.queued() == 0 {
            tokio::task::yield_now().await;
        }
        waiting
    }

    #[tokio::test]
    async fn requests_wait_for_the_first_replica() {
        let (revs, pool) = with_cc(0);
        let waiting = queued_acquire(&pool).await;
        revs.set_replicas(&key(), &[addr(1)]);
        assert_eq!(waiting.await.unwrap(), Ok(addr(1)));
    }

    #[tokio::test]
    async fn a_request_at_zero_asks_for_a_replica() {
        let (revs, pool) = with_cc(0);
        let (tx, mut rx) = mpsc::unbounded_channel();
        revs.on_demand(tx);
        let waiting = queued_acquire(&pool).await;
        assert_eq!(rx.try_recv(), Ok(key()));
        revs.set_replicas(&key(), &[addr(1)]);
        assert_eq!(waiting.await.unwrap(), Ok(addr(1)));
        // With a replica listed (busy or not), waiting asks for nothing.
        let (revs, pool) = with_cc(1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        revs.on_demand(tx);
        revs.set_replicas(&key(), &[addr(1)]);
        let _busy = pool.acquire().await.unwrap();
        let _queued = queued_acquire(&pool).await;
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_replica_never_gets_more_than_container_concurrency() {
        let (revs, pool) = with_cc(1);
        revs.set_replicas(&key(), &[addr(1), addr(2)]);
        let a = pool.acquire().await.unwrap();
        let b = pool.acquire().await.unwrap();
        assert_ne!(a.addr(), b.addr());
        let third = queued_acquire(&pool).await;
        let freed = b.addr();
        drop(b);
        assert_eq!(third.await.unwrap(), Ok(freed));
        assert_eq!(
            pool.replicas().iter().map(|r| r.in_flight()).sum::<usize>(),
            1
        );
        drop(a);
    }

    #[tokio::test]
    async fn least_loaded_replica_is_chosen() {
        let (revs, pool) = with_cc(0);
        revs.set_replicas(&key(), &[addr(1), addr(2)]);
        let a = pool.acquire().await.unwrap();
        let b = pool.acquire().await.unwrap();
        assert_ne!(a.addr(), b.addr());
        drop(a);
        let c = pool.acquire().await.unwrap();
        assert_ne!(c.addr(), b.addr());
    }

    #[tokio::test]
    async fn abandoned_waiters_do_not_swallow_slots() {
        let (revs, pool) = with_cc(1);
        let gone = queued_acquire(&pool).await;
        gone.abort();
        let _ = gone.await;
        revs.set_replicas(&key(), &[addr(1)]);
        // The slot went back: the next request gets it at once.
        let l = pool.acquire().await.unwrap();
        assert_eq!(l.addr(), addr(1));
    }

    #[tokio::test]
    async fn evicted_replicas_get_nothing_until_restored() {
        let (revs, pool) = with_cc(0);
        revs.set_replicas(&key(), &[addr(1), addr(2)]);
        pool.evict(addr(1));
        for _ in 0..4 {
            assert_eq!(pool.acquire().await.unwrap().addr(), addr(2));
        }
        // The backend listing it again does not bring it back; answering does.
        revs.set_replicas(&key(), &[addr(1), addr(2)]);
        assert_eq!(pool.replicas().len(), 1);
        assert!(pool.restore(addr(1)));
        assert_eq!(pool.replicas().len(), 2);
        // Unlisted replicas are not restored.
        pool.evict(addr(1));
        revs.set_replicas(&key(), &[addr(2)]);
        assert!(!pool.restore(addr(1)));
    }

    #[tokio::test]
    async fn removal_releases_waiters() {
        let (revs, pool) = with_cc(0);
        let waiting = queued_acquire(&pool).await;
        revs.remove(&key());
        assert_eq!(waiting.await.unwrap(), Err(AcquireError::Gone));
    }

    #[tokio::test]
    async fn a_failed_revision_fails_waiting_and_new_requests_until_it_recovers() {
        let (revs, pool) = with_cc(0);
        let (tx, mut demand) = mpsc::unbounded_channel();
        revs.on_demand(tx);
        let waiting = queued_acquire(&pool).await;
        let why = "Revision \"hello-00001\" failed: ExitCode1: boom".to_string();
        revs.set_failure(&key(), Some(why.clone()));
        assert_eq!(
            waiting.await.unwrap(),
            Err(AcquireError::Failed(why.clone()))
        );
        let now = pool.acquire().await.map(|l| l.addr());
        assert_eq!(now, Err(AcquireError::Failed(why)));
        // Every request still asks for a replica, so a Revision that can start does.
        assert_eq!(demand.try_recv(), Ok(key()));
        assert_eq!(demand.try_recv(), Ok(key()));
        // A replica that becomes ready serves, failed or not; then the failure clears.
        revs.set_replicas(&key(), &[addr(1)]);
        assert_eq!(pool.acquire().await.unwrap().addr(), addr(1));
        revs.set_failure(&key(), None);
        revs.set_replicas(&key(), &[]);
        let waiting = queued_acquire(&pool).await;
        revs.set_replicas(&key(), &[addr(2)]);
        assert_eq!(waiting.await.unwrap(), Ok(addr(2)));
    }

    #[tokio::test]
    async fn clearing_an_unknown_failure_makes_no_pool() {
        let revs = Revisions::default();
        revs.set_failure(&key(), None);
        assert!(revs.get(&key()).is_none());
    }

    #[tokio::test]
    async fn replicas_keep_their_load_across_updates() {
        let (revs, pool) = with_cc(2);
        revs.set_replicas(&key(), &[addr(1)]);
        let _a = pool.acquire().await.unwrap();
        revs.set_replicas(&key(), &[addr(1), addr(2)]);
        let loads: Vec<usize> = pool.replicas().iter().map(|r| r.in_flight()).collect();
        assert_eq!(loads, vec![1, 0]);
    }

    /// Whether `f` is still pending once everything else ready has run.
    async fn pending(f: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>) -> bool {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        futures::poll!(f.as_mut()).is_pending()
    }

    #[tokio::test]
    async fn a_leaving_replica_gets_no_new_request_and_drains_when_its_last_one_ends() {
        let (revs, pool) = with_cc(0);
        revs.set_replicas(&key(), &[addr(1)]);
        let short = pool.acquire().await.unwrap();
        let stream = pool.acquire().await.unwrap();
        revs.set_replicas(&key(), &[addr(2)]);
        assert_eq!(revs.draining(), 1);
        for _ in 0..3 {
            assert_eq!(pool.acquire().await.unwrap().addr(), addr(2));
        }
        let drained = revs.drained(&key(), addr(1));
        let mut drained = std::pin::pin!(drained);
        assert!(pending(&mut drained).await);
        drop(short);
        assert!(
            pending(&mut drained).await,
            "one request is still in flight"
        );
        drop(stream);
        assert!(!pending(&mut drained).await);
        assert_eq!(revs.draining(), 0);
        // A replica with nothing in flight, or unknown, is drained at once.
        let idle = revs.drained(&key(), addr(2));
        assert!(futures::poll!(std::pin::pin!(idle)).is_ready());
        let unknown = revs.drained(&key(), addr(9));
        assert!(futures::poll!(std::pin::pin!(unknown)).is_ready());
    }

    #[tokio::test]
    async fn a_removed_revision_drains_its_replicas() {
        let (revs, pool) = with_cc(0);
        revs.set_replicas(&key(), &[addr(1)]);
        let lease = pool.acquire().await.unwrap();
        revs.remove(&key());
        let drained = revs.drained(&key(), addr(1));
        let mut drained = std::pin::pin!(drained);
        assert!(pending(&mut drained).await);
        drop(lease);
        assert!(!pending(&mut drained).await);
    }

    #[tokio::test]
    async fn a_replica_back_before_it_drained_keeps_its_load() {
        let (revs, pool) = with_cc(1);
        revs.set_replicas(&key(), &[addr(1)]);
        let lease = pool.acquire().await.unwrap();
        revs.set_replicas(&key(), &[]);
        revs.set_replicas(&key(), &[addr(1)]);
        assert_eq!(revs.draining(), 0);
        // Still at its containerConcurrency: the next request waits for the slot.
        let next = queued_acquire(&pool).await;
        drop(lease);
        assert_eq!(next.await.unwrap(), Ok(addr(1)));
    }
}
