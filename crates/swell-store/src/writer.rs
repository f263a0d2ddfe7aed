//! Group commit: one writer thread runs every write, and the writes that arrive while a
//! commit is on disk share the next transaction, commit and fsync.
//!
//! Callers never touch redb or wait for an fsync on their own thread: a write is a
//! [`Pending`] answer that async code awaits and blocking code [`Pending::wait`]s for.
//! Each write is answered only after the transaction holding it is durable, and its
//! watch events go out before its answer, in resourceVersion order.

use crate::error::{Result, StoreError};
use crate::redb_store::{Shared, Txn};
use crate::{Deleted, watch::WatchEvent};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// The most writes one transaction holds.
const MAX_BATCH: usize = 512;

/// What a write produced.
pub(crate) enum Done {
    Object(Value),
    Deleted(Deleted),
}

/// One write, as a function of the open transaction. It may run more than once (when
/// another write of its batch fails half-way and the batch is re-run without it), so it
/// must not consume what it captures.
pub(crate) type Op = Box<dyn FnMut(&mut Txn<'_>) -> Result<Done> + Send>;

struct Job {
    op: Op,
    dry_run: bool,
    reply: oneshot::Sender<Result<Done>>,
}

/// The answer to a write, ready once the write is durable (or has failed).
#[must_use = "a write is only known to have happened once its answer is awaited or waited for"]
pub struct Pending<T> {
    rx: oneshot::Receiver<Result<Done>>,
    project: fn(Done) -> T,
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl<T> Pending<T> {
    /// An answer that is already in: a write refused before it reached the writer.
    pub(crate) fn failed(e: StoreError) -> Self {
        let (reply, rx) = oneshot::channel();
        let _ = reply.send(Err(e));
        Self {
            rx,
            project: |_| unreachable!("a failed write has no outcome to project"),
        }
    }

    /// Blocks the calling thread until the answer is in. For threads that do not run
    /// async tasks (tools, tests); async code awaits the `Pending` instead (called from
    /// inside an async task this panics, as tokio's `blocking_recv` does).
    pub fn wait(self) -> Result<T> {
        let project = self.project;
        match self.rx.blocking_recv() {
            Ok(answer) => answer.map(project),
            Err(_) => Err(writer_gone()),
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let project = self.project;
        Pin::new(&mut self.rx).poll(cx).map(|answer| match answer {
            Ok(answer) => answer.map(project),
            Err(_) => Err(writer_gone()),
        })
    }
}

fn writer_gone() -> StoreError {
    StoreError::Storage("the store's writer has stopped".into())
}

pub(crate) fn object(done: Done) -> Value {
    match done {
        Done::Object(v) => v,
        Done::Deleted(Deleted::Gone(v) | Deleted::Pending(v)) => v,
    }
}

pub(crate) fn deleted(done: Done) -> Deleted {
    match done {
        Done::Deleted(d) => d,
        Done::Object(v) => Deleted::Pending(v),
    }
}

/// The sending end of the writer thread's queue; dropping it lets the thread finish the
/// queued writes and exit, and waits for that.
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn start(shared: Arc<Shared>) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("swell-store-writer".into())
            .spawn(move || run(&shared, &jobs))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues a write; `project` turns what it did into the caller's answer.
    pub(crate) fn submit<T>(&self, dry_run: bool, op: Op, project: fn(Done) -> T) -> Pending<T> {
        let (reply, rx) = oneshot::channel();
        let job = Job { op, dry_run, reply };
        if let Some(queue) = &self.queue {
            // A send fails only when the thread has gone; the dropped reply then answers
            // `writer_gone`.
            let _ = queue.send(job);
        }
        Pending { rx, project }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: takes what is queued (up to [`MAX_BATCH`]), commits it as one
/// transaction, answers, and goes again, until every sender is gone.
fn run(shared: &Shared, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (dry, mut wet): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| j.dry_run);
        for job in dry {
            dry_run(shared, job);
        }
        while !wet.is_empty() && !commit(shared, &mut wet) {}
    }
}

/// Runs a dry-run write in a transaction of its own and throws the transaction away.
fn dry_run(shared: &Shared, mut job: Job) {
    let answer = (|| {
        let tx = shared.db.begin_write()?;
        let out = {
            let mut txn = Txn::open(&tx, shared.config.event_log_len)?;
            run_op(&mut job, &mut txn)
        };
        tx.abort()?;
        out
    })();
    let _ = job.reply.send(answer);
}

/// Runs one write. A write that panics (a bug) fails like a write that returns an
/// error: alone, its transaction thrown away if it had changed something (every change
/// takes a resourceVersion first), and the writer thread goes on serving the others.
fn run_op(job: &mut Job, txn: &mut Txn<'_>) -> Result<Done> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.op)(txn)))
        .unwrap_or_else(|_| Err(StoreError::Storage("the write panicked".into())))
}

/// Runs `jobs` in one transaction and commits it. Returns false when one write failed
/// after it had changed something: only aborting the transaction undoes that, so that
/// write is answered with its error, removed, and the caller runs the rest again.
fn commit(shared: &Shared, jobs: &mut Vec<Job>) -> bool {
    let tx = match shared.db.begin_write() {
        Ok(tx) => tx,
        Err(e) => return fail_all(jobs, &e.into()),
    };
    let mut answers = Vec::with_capacity(jobs.len());
    let emitted: Vec<WatchEvent>;
    {
        let mut txn = match Txn::open(&tx, shared.config.event_log_len) {
            Ok(txn) => txn,
            Err(e) => return fail_all(jobs, &e),
        };
        let start = txn.rv();
        for i in 0..jobs.len() {
            let before = txn.rv();
            let answer = run_op(&mut jobs[i], &mut txn);
            if answer.is_err() && txn.rv() != before {
                drop(txn);
                let _ = tx.abort();
                let job = jobs.remove(i);
                let _ = job.reply.send(answer);
                return false;
            }
            answers.push(answer);
        }
        if txn.rv() == start {
            // Nothing changed (every write was refused or a no-op): nothing to commit.
            drop(txn);
            let _ = tx.abort();
            answer_all(jobs, answers);
            return true;
        }
        if let Err(e) = txn.finish() {
            return fail_all(jobs, &e);
        }
        emitted = std::mem::take(&mut txn.emitted);
    }
    if let Err(e) = tx.commit() {
        return fail_all(jobs, &e.into());
    }
    shared
        .commits
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for event in emitted {
        // No receiver is fine: nobody is watching.
        let _ = shared.events.send(Arc::new(event));
    }
    answer_all(jobs, answers);
    true
}

fn answer_all(jobs: &mut Vec<Job>, answers: Vec<Result<Done>>) {
    for (job, answer) in jobs.drain(..).zip(answers) {
        let _ = job.reply.send(answer);
    }
}

/// Answers every write of a batch whose transaction could not be written.
fn fail_all(jobs: &mut Vec<Job>, e: &StoreError) -> bool {
    tracing::error!(error = %e, writes = jobs.len(), "store transaction failed");
    for job in jobs.drain(..) {
        let _ = job
            .reply
            .send(Err(StoreError::Storage(format!("{e} ({e:?})").into())));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redb_store::RedbStore;
    use crate::watch::EventType;
    use crate::{ObjectKey, Store, StoreConfig, WriteOptions};
    use serde_json::json;
    use std::sync::Mutex;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("serving.knative.dev", "services", "default", name)
    }

    /// Holds the writer thread inside a write until the returned sender is dropped, so
    /// the writes queued meanwhile are taken as one batch. Returns once the writer is
    /// held (its batch taken, nothing else in it).
    fn hold(store: &RedbStore) -> (mpsc::Sender<()>, Pending<Value>) {
        let (release, gate) = mpsc::channel::<()>();
        let (entered, held_now) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let entered = Mutex::new(entered);
        let held = store.writer.submit(
            false,
            Box::new(move |_txn: &mut Txn<'_>| {
                let _ = entered.lock().unwrap().send(());
                let _ = gate.lock().unwrap().recv();
                Ok(Done::Object(Value::Null))
            }),
            object,
        );
        held_now.recv().unwrap();
        (release, held)
    }

    #[test]
    fn writes_queued_together_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb"), StoreConfig::default()).unwrap();
        let (release, held) = hold(&store);
        let writes: Vec<_> = (0..20)
            .map(|i| store.create(&key(&format!("s{i}")), json!({}), &WriteOptions::default()))
            .collect();
        drop(release);
        held.wait().unwrap();
        let rvs: Vec<u64> = writes
            .into_iter()
            .map(|w| {
                w.wait().unwrap()["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(rvs, (1..=20).collect::<Vec<_>>(), "in order, one each");
        assert_eq!(store.commits(), 1, "twenty writes, one transaction");
    }

    #[test]
    fn a_write_that_fails_half_way_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb"), StoreConfig::default()).unwrap();
        let mut watch = store
            .watch(
                &crate::ListScope::all("serving.knative.dev", "services"),
                None,
            )
            .unwrap();
        let (release, held) = hold(&store);
        let before = store.create(&key("before"), json!({}), &WriteOptions::default());
        let half = store.writer.submit(
            false,
            Box::new(|txn: &mut Txn<'_>| {
                txn.put(&key("half"), json!({"metadata": {}}), EventType::Added)?;
                Err(StoreError::Invalid("failed after writing".into()))
            }),
            object,
        );
        let taken = store.create(&key("before"), json!({}), &WriteOptions::default());
        let after = store.create(&key("after"), json!({}), &WriteOptions::default());
        drop(release);
        held.wait().unwrap();
        assert!(before.wait().is_ok());
        assert!(matches!(half.wait(), Err(StoreError::Invalid(_))));
        assert!(matches!(taken.wait(), Err(StoreError::AlreadyExists(_))));
        let after = after.wait().unwrap();
        assert!(store.get(&key("half")).unwrap().is_none(), "undone");
        assert_eq!(after["metadata"]["resourceVersion"], "2");
        assert_eq!(store.resource_version().unwrap(), 2);
        // Watchers see exactly the two writes that stand.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let names: Vec<String> = rt.block_on(async {
            let mut names = Vec::new();
            for _ in 0..2 {
                names.push(watch.next().await.unwrap().unwrap().key.name.clone());
            }
            names
        });
        assert_eq!(names, ["before", "after"]);
    }

    #[test]
    fn a_write_that_panics_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb"), StoreConfig::default()).unwrap();
        let panicking = store.writer.submit(
            false,
            Box::new(|txn: &mut Txn<'_>| {
                txn.put(&key("half"), json!({"metadata": {}}), EventType::Added)?;
                panic!("a bug in a write");
            }),
            object,
        );
        assert!(matches!(panicking.wait(), Err(StoreError::Storage(_))));
        assert!(store.get(&key("half")).unwrap().is_none(), "undone");
        store
            .create(&key("after"), json!({}), &WriteOptions::default())
            .wait()
            .unwrap();
        assert_eq!(store.resource_version().unwrap(), 1);
    }

    #[test]
    fn writes_from_many_threads_are_all_acknowledged_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Arc::new(RedbStore::open(&path, StoreConfig::default()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        store
                            .create(
                                &key(&format!("t{t}-{i}")),
                                json!({}),
                                &WriteOptions::default(),
                            )
                            .wait()
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(store);
        let reopened = RedbStore::open(&path, StoreConfig::default()).unwrap();
        let all = reopened
            .list(&crate::ListScope::all("serving.knative.dev", "services"))
            .unwrap();
        assert_eq!(all.items.len(), 200);
        assert_eq!(all.resource_version, 200);
    }
}
