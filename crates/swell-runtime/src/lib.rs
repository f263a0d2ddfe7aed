//! Swell's workload backends: the [`Backend`] seam the Revision reconciler drives, the
//! `process` backend that runs a Revision's serving container as local process groups,
//! and the image store the runc backend (issue 6) will run containers from.

pub mod backend;
pub mod image;
pub mod process;
pub mod runc;

pub use backend::{
    Backend, Failure, FakeBackend, ImageResolver, NoBackend, ReplicaObserver, ReplicaStatus,
    ReplicaUsage, RevisionRef, Workload,
};
pub use process::ProcessBackend;
