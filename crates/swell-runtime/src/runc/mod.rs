//! The `runc` backend's pieces: replicas' OCI runtime bundles built from an image in
//! the store and the container's spec (the backend itself is being built, issue 6).

pub mod bundle;
