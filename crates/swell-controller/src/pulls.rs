//! Image pulls that failed, per Revision: each is retried with kubelet's
//! `ImagePullBackOff` (10 s doubling to 5 minutes) however often its Revision is
//! reconciled meanwhile, and at once when its pull secrets change.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use swell_runtime::image::Credentials;
use swell_runtime::{Backoff, Failure, RevisionRef};

/// One Revision's image that could not be resolved: why, and when to try again.
#[derive(Debug)]
struct PullRetry {
    uid: Option<String>,
    /// The pull secrets' credentials it was tried with.
    credentials: Credentials,
    backoff: Backoff,
    failure: Failure,
    next: tokio::time::Instant,
}

/// Revisions whose images could not be resolved, each retried with kubelet's
/// `ImagePullBackOff` (10 s doubling to 5 minutes) — per Revision, however often it
/// is reconciled meanwhile; at once when its pull secrets change.
#[derive(Debug, Default)]
pub struct PullBackoffs(Mutex<HashMap<RevisionRef, PullRetry>>);

impl PullBackoffs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RevisionRef, PullRetry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// While the Revision (this one: `uid`, with these pull credentials) waits out
    /// its back-off: the failure it reports and how long until the next attempt.
    pub fn waiting(
        &self,
        r: &RevisionRef,
        uid: Option<&str>,
        credentials: &Credentials,
    ) -> Option<(Failure, Duration)> {
        let retries = self.lock();
        let retry = retries
            .get(r)
            .filter(|e| e.uid.as_deref() == uid && e.credentials == *credentials)?;
        let left = retry
            .next
            .saturating_duration_since(tokio::time::Instant::now());
        (!left.is_zero()).then(|| (retry.failure.clone(), left))
    }

    /// Whether an earlier attempt for the Revision failed.
    pub fn retrying(&self, r: &RevisionRef, uid: Option<&str>) -> bool {
        self.lock().get(r).is_some_and(|e| e.uid.as_deref() == uid)
    }

    /// An attempt with `credentials` failed with `failure`: how long until the next.
    pub fn failed(
        &self,
        r: &RevisionRef,
        uid: Option<&str>,
        credentials: &Credentials,
        failure: Failure,
    ) -> Duration {
        let mut retries = self.lock();
        let retry = retries
            .entry(r.clone())
            .and_modify(|e| {
                if e.uid.as_deref() != uid {
                    e.uid = uid.map(str::to_string);
                    e.backoff.reset();
                }
            })
            .or_insert_with(|| PullRetry {
                uid: uid.map(str::to_string),
                credentials: credentials.clone(),
                backoff: Backoff::default(),
                failure: failure.clone(),
                next: tokio::time::Instant::now(),
            });
        let wait = retry.backoff.failed();
        retry.failure = failure;
        retry.credentials = credentials.clone();
        retry.next = tokio::time::Instant::now() + wait;
        tracing::info!(revision = %r.name, ?wait, reason = %retry.failure.reason, "back-off pulling image");
        wait
    }

    /// The Revision's images resolved, or it is gone.
    pub fn forget(&self, r: &RevisionRef) {
        self.lock().remove(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> RevisionRef {
        RevisionRef {
            namespace: "default".into(),
            name: "ghost-00001".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn image_retries_back_off_per_revision() {
        let pulls = PullBackoffs::default();
        let r = r();
        let f = Failure::failed("ContainerMissing", "nope");
        let none = Credentials::default();
        assert!(!pulls.retrying(&r, Some("u1")));
        let failed = |uid, f: &Failure| pulls.failed(&r, Some(uid), &none, f.clone());
        assert_eq!(failed("u1", &f), Duration::from_secs(10));
        // However often it is reconciled meanwhile, it waits.
        let (failure, left) = pulls.waiting(&r, Some("u1"), &none).unwrap();
        assert_eq!((failure, left), (f.clone(), Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(4)).await;
        let left = pulls.waiting(&r, Some("u1"), &none).unwrap().1;
        assert_eq!(left, Duration::from_secs(6));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(pulls.waiting(&r, Some("u1"), &none), None);
        assert!(pulls.retrying(&r, Some("u1")));
        assert_eq!(failed("u1", &f), Duration::from_secs(20));
        // New pull secrets are tried at once.
        let other = swell_runtime::image::Credentials::from_docker_config(
            br#"{"auths": {"r.example": {"auth": "dTpw"}}}"#,
        )
        .unwrap();
        assert!(pulls.waiting(&r, Some("u1"), &other).is_none());
        // A new Revision of the same name starts over; success forgets.
        assert!(pulls.waiting(&r, Some("u2"), &none).is_none());
        assert_eq!(failed("u2", &f), Duration::from_secs(10));
        pulls.forget(&r);
        assert!(!pulls.retrying(&r, Some("u2")));
    }
}
