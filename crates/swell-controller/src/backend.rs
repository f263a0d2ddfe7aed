//! The seam between the Revision reconciler and whatever runs replicas. Issue-by-issue
//! the process and runc backends implement it; until then the server has no workload
//! backend, and tests and control-plane benchmarks use the fake one.

use std::collections::HashMap;
use std::sync::Mutex;

/// Identifies a Revision's replicas.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RevisionRef {
    /// Namespace.
    pub namespace: String,
    /// Revision name.
    pub name: String,
}

/// What the backend observes of a Revision's replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Replicas running and ready.
    pub ready: i32,
    /// Why replicas cannot run, if they cannot: (reason, message).
    pub failure: Option<(String, String)>,
}

/// Runs a Revision's replicas somewhere.
pub trait Backend: Send + Sync + 'static {
    /// Makes `replicas` replicas of the Revision run. Idempotent.
    fn ensure(
        &self,
        rev: &RevisionRef,
        spec: &swell_api::RevisionSpec,
        replicas: i32,
    ) -> ReplicaStatus;
    /// Stops everything of a Revision; tolerates "already gone".
    fn teardown(&self, rev: &RevisionRef);
}

/// No workload backend: nothing runs, and Revisions say so.
#[derive(Debug, Default)]
pub struct NoBackend;

impl Backend for NoBackend {
    fn ensure(&self, _: &RevisionRef, _: &swell_api::RevisionSpec, _: i32) -> ReplicaStatus {
        ReplicaStatus {
            ready: 0,
            failure: Some((
                "NoBackend".into(),
                "this server runs no workload backend (start it with --backend fake to test the control plane)".into(),
            )),
        }
    }

    fn teardown(&self, _: &RevisionRef) {}
}

/// A backend whose replicas are ready the moment they are asked for, and that runs
/// nothing. For control-plane tests and benchmarks.
#[derive(Debug, Default)]
pub struct FakeBackend {
    replicas: Mutex<HashMap<RevisionRef, i32>>,
}

impl FakeBackend {
    /// Replicas the fake currently "runs" for a Revision.
    pub fn replicas(&self, rev: &RevisionRef) -> i32 {
        self.replicas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(rev)
            .copied()
            .unwrap_or(0)
    }
}

impl Backend for FakeBackend {
    fn ensure(
        &self,
        rev: &RevisionRef,
        _: &swell_api::RevisionSpec,
        replicas: i32,
    ) -> ReplicaStatus {
        self.replicas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(rev.clone(), replicas);
        ReplicaStatus {
            ready: replicas,
            failure: None,
        }
    }

    fn teardown(&self, rev: &RevisionRef) {
        self.replicas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(rev);
    }
}
