//! Container images on this machine: content digests, safe layer unpacking, the
//! content-addressed store shared by all Revisions, and importing images without a
//! registry.

pub mod digest;
pub mod import;
pub mod layer;
pub mod store;

pub use digest::Digest;
pub use store::{ImageError, ImageInfo, ImageStore};
