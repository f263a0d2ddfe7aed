//! Swell's durable object store: Kubernetes object semantics over an embedded redb file.
//!
//! One global, monotonically increasing `resourceVersion`; `uid`, `creationTimestamp` and
//! `generation` kept by the store; optimistic concurrency; `deletionTimestamp` and
//! finalizers; ownerReference garbage collection (Background, Foreground, Orphan); and a
//! bounded event log that watches replay from. Writes go to one writer thread that
//! commits the writes queued together as one redb transaction with one fsync (group
//! commit); a write is acknowledged only once its transaction is on disk, so an
//! acknowledged write survives a crash and a crash never leaves half a write.
//!
//! Start at [`Store`] and its implementation [`RedbStore`].

mod error;
mod gc;
mod key;
mod meta;
mod redb_store;
mod watch;
mod writer;

pub use error::{Result, StoreError};
pub use key::{ListScope, ObjectKey};
pub use redb_store::{RedbStore, StoreConfig};
pub use watch::{EventType, Watch, WatchEvent};
pub use writer::Pending;

use serde_json::Value;

/// How deleting an owner treats its dependents (`propagationPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now and its dependents right after (the default).
    #[default]
    Background,
    /// Delete the dependents first; the owner stays, marked for deletion, until they are gone.
    Foreground,
    /// Keep the dependents, removing their ownerReferences to the owner.
    Orphan,
}

/// Options of a create or update.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Validate and answer as if written, but store nothing.
    pub dry_run: bool,
    /// Keep `metadata.generation`, bumped when `spec` changes (resources with a status
    /// subresource).
    pub track_generation: bool,
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// What happens to dependents.
    pub propagation: Propagation,
    /// Delete only if the object still has this uid.
    pub uid: Option<String>,
    /// Delete only if the object still has this resourceVersion.
    pub resource_version: Option<u64>,
    /// Answer as if deleted, but change nothing.
    pub dry_run: bool,
}

/// What a delete did.
#[derive(Clone, Debug, PartialEq)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// Finalizers (or dependents, under Foreground) hold it; it now has a
    /// `deletionTimestamp`.
    Pending(Value),
}

/// A consistent list of objects and the resourceVersion it was read at.
#[derive(Clone, Debug, PartialEq)]
pub struct List {
    /// The objects, ordered by namespace then name.
    pub items: Vec<Value>,
    /// The store's resourceVersion when the list was read; a watch from it misses nothing.
    pub resource_version: u64,
}

/// A Kubernetes-style object store. Objects are JSON; the store owns the
/// server-managed metadata (`uid`, `resourceVersion`, `generation`,
/// `creationTimestamp`, `deletionTimestamp`).
pub trait Store: Send + Sync + 'static {
    /// Reads one object.
    fn get(&self, key: &ObjectKey) -> Result<Option<Value>>;
    /// Lists every object of a resource, in one namespace or all.
    fn list(&self, scope: &ListScope) -> Result<List> {
        let mut items = Vec::new();
        let resource_version = self.scan(scope, None, &mut |o| {
            items.push(o);
            true
        })?;
        Ok(List {
            items,
            resource_version,
        })
    }
    /// Visits the objects in scope in key order (namespace, then name), starting after
    /// `start_after` if given, until `visit` returns false. Returns the resourceVersion
    /// the scan read at. Paged lists use this to stop at the page boundary.
    fn scan(
        &self,
        scope: &ListScope,
        start_after: Option<&ObjectKey>,
        visit: &mut dyn FnMut(Value) -> bool,
    ) -> Result<u64> {
        self.scan_where(scope, start_after, &|_| true, visit)
    }
    /// [`Store::scan`] of only the objects whose stored JSON passes `keep`, a cheap
    /// test made before decoding (label selectors use it).
    fn scan_where(
        &self,
        scope: &ListScope,
        start_after: Option<&ObjectKey>,
        keep: &dyn Fn(&[u8]) -> bool,
        visit: &mut dyn FnMut(Value) -> bool,
    ) -> Result<u64> {
        let mut corrupt = None;
        let rv = self.scan_bytes(scope, start_after, &mut |bytes| {
            if !keep(bytes) {
                return true;
            }
            match serde_json::from_slice(bytes) {
                Ok(object) => visit(object),
                Err(e) => {
                    corrupt = Some(StoreError::Corrupt(e));
                    false
                }
            }
        })?;
        corrupt.map_or(Ok(rv), Err)
    }
    /// [`Store::scan`] over the objects' stored JSON, which is what the API serves:
    /// an unfiltered list copies these bytes out without decoding them.
    fn scan_bytes(
        &self,
        scope: &ListScope,
        start_after: Option<&ObjectKey>,
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<u64>;
    /// Creates an object; fails with `AlreadyExists` if the name is taken. Writes are
    /// answered once they are durable: await the [`Pending`] (or `wait` for it).
    fn create(&self, key: &ObjectKey, object: Value, opts: &WriteOptions) -> Pending<Value>;
    /// Replaces an object. A `metadata.resourceVersion` in `object` must match the stored
    /// one (else `Conflict`). Removing the last finalizer of an object being deleted
    /// deletes it.
    fn update(&self, key: &ObjectKey, object: Value, opts: &WriteOptions) -> Pending<Value>;
    /// Deletes an object, honouring finalizers and propagating to dependents.
    fn delete(&self, key: &ObjectKey, opts: &DeleteOptions) -> Pending<Deleted>;
    /// Watches a resource from just after `from` (`None`: from now). A `from` older than
    /// the retained event log fails with `Expired`.
    fn watch(&self, scope: &ListScope, from: Option<u64>) -> Result<Watch>;
    /// The newest resourceVersion.
    fn resource_version(&self) -> Result<u64>;
}
