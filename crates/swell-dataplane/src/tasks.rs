//! The data plane's own tasks: what the ingress spawns beyond its connections —
//! WebSocket splices, the drivers of its connections to replicas, and the HTTP/2
//! streams hyper runs — joins one tracker, which the ingress's drain waits for.

use std::future::Future;
use tokio_util::task::TaskTracker;

/// Every task the data plane spawns; also hyper's executor.
#[derive(Clone, Debug, Default)]
pub struct Tasks(TaskTracker);

impl Tasks {
    /// Runs `task` as one of the data plane's tasks.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.spawn(task);
    }

    /// Resolves once every task has ended; tasks spawned meanwhile are waited for too.
    pub async fn wait(&self) {
        self.0.close();
        self.0.wait().await;
    }

    /// How many tasks run.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No task runs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
}
