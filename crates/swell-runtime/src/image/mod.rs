//! Container images on this machine: content digests, safe layer unpacking, the
//! content-addressed store shared by all Revisions, pulling from registries and
//! importing without one.

pub mod digest;
pub mod import;
pub mod layer;
pub mod pull;
pub mod store;

pub use digest::Digest;
pub use store::{ImageError, ImageInfo, ImageStore};
