//! The data plane's own tasks: what the ingress spawns beyond its connections —
//! WebSocket splices, the drivers of its connections to replicas, and the HTTP/2
//! streams hyper runs — joins one tracker, which the ingress's drain waits for.

use std::future::Future;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every task the data plane spawns; also hyper's executor.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    /// Cancelled when the drain starts waiting: background loops end then.
    draining: CancellationToken,
}

impl Tasks {
    /// Runs `task` as one of the data plane's tasks.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Resolves when the drain starts: a task that would run on (a re-probe) ends then.
    pub async fn draining(&self) {
        self.draining.cancelled().await;
    }

    /// Resolves once every task has ended; tasks spawned meanwhile are waited for too.
    pub async fn wait(&self) {
        self.draining.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// How many tasks run.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// No task runs.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

impl<F> hyper::rt::Executor<F> for Tasks
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, task: F) {
        self.spawn(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn wait_ends_when_every_task_has() {
        let tasks = Tasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _ = rx.await;
        });
        assert_eq!(tasks.len(), 1);
        let waited = tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await;
        assert!(waited.is_err(), "a task still runs");
        drop(tx);
        tokio::time::timeout(Duration::from_secs(1), tasks.wait())
            .await
            .expect("every task ended");
        assert!(tasks.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_would_run_on_ends_when_the_drain_starts() {
        let tasks = Tasks::default();
        let t = tasks.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = t.draining() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .expect("the loop ended when the drain started");
    }
}
