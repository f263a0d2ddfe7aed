//! The `runc` backend's pieces: replicas' OCI runtime bundles built from an image in
//! the store and the container's spec, and their networks (a namespace each, wired by
//! the CNI plugins). The backend itself is being built (issue 6).

pub mod bundle;
pub mod network;
