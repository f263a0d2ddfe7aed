//! The `runc` backend: replicas' OCI runtime bundles built from an image in the store
//! and the container's spec, their pods (shared files and volumes), their networks (a
//! namespace each, wired by the CNI plugins), and the launcher that runs them under
//! `runc run` for the replica supervisor, and runc's command line they all go through.

pub mod bundle;
pub mod command;
pub mod etc;
pub mod launcher;
pub mod network;
pub mod pod;
pub mod seccomp;

pub use launcher::Runc;
