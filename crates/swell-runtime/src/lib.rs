//! Swell's workload backends: the [`Backend`] seam the Revision reconciler drives, the
//! `process` backend that runs a Revision's serving container as local process groups,
//! the `runc` backend that runs it as a container from the image store, and the volumes
//! backends materialize.

pub mod backend;
pub mod backoff;
pub mod image;
pub mod process;
pub mod runc;
pub mod security;
pub mod volume;

pub use backend::{
    Backend, ContainerLog, ContainerRun, Failure, FakeBackend, ImageResolver, NoBackend,
    ReplicaObserver, ReplicaPod, ReplicaStatus, ReplicaUsage, RevisionRef, Termination, Workload,
};
pub use backoff::Backoff;
pub use process::ProcessBackend;
pub use security::ReplicaPolicy;
