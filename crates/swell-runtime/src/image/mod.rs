//! Container images on this machine: content digests, safe layer unpacking, the
//! content-addressed store shared by all Revisions, pulling from registries (with the
//! credentials docker configs give) and importing without one.

pub mod auth;
pub mod build;
pub mod digest;
pub mod import;
pub mod layer;
pub mod pull;
pub mod store;

pub use auth::Credentials;
pub use digest::Digest;
pub use store::{ImageError, ImageInfo, ImageStore, Pruned};
