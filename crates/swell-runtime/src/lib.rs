//! Swell's workload backends: the [`Backend`] seam the Revision reconciler drives, and
//! the `process` backend that runs a Revision's serving container as local process
//! groups (the runc backend joins it with issue 6).

pub mod backend;
pub mod process;

pub use backend::{
    Backend, Failure, FakeBackend, NoBackend, ReplicaObserver, ReplicaStatus, ReplicaUsage,
    RevisionRef, Workload,
};
pub use process::ProcessBackend;
