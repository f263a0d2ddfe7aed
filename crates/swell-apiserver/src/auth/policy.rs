//! The RBAC policy in force: a [`Policy`] snapshot of every Role, ClusterRole and
//! binding in the store, made anew on the first decision after one of them changes.

use crate::rbac::{Decision, GROUP, Policy, Request, User};
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use swell_store::{ListScope, Store};

/// The policy snapshot and when it was made.
pub struct PolicyCache {
    store: Arc<dyn Store>,
    /// Bumped by every change to an RBAC object.
    changes: AtomicU64,
    /// The snapshot and the `changes` count it was made at.
    current: RwLock<(u64, Arc<Policy>)>,
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCache")
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

impl PolicyCache {
    /// A cache over `store`'s RBAC objects, read on the first decision.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            changes: AtomicU64::new(1),
            current: RwLock::new((0, Arc::new(Policy::default()))),
        }
    }

    /// Marks the snapshot stale (an RBAC object was written).
    pub fn invalidate(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// The policy as of the last change.
    pub fn policy(&self) -> Arc<Policy> {
        let wanted = self.changes.load(Ordering::Acquire);
        {
            let current = self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.0 == wanted {
                return current.1.clone();
            }
        }
        let policy = Arc::new(self.read());
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.0 < wanted {
            *current = (wanted, policy.clone());
        }
        policy
    }

    /// RBAC's decision on `req` by `user`.
    pub fn authorize(&self, user: &User<'_>, req: &Request<'_>) -> Decision {
        self.policy().authorize(user, req)
    }

    fn read(&self) -> Policy {
        Policy::new(
            self.all("roles"),
            self.all("clusterroles"),
            self.all("rolebindings"),
            self.all("clusterrolebindings"),
        )
    }

    /// Every stored object of an RBAC resource; one that does not decode (which
    /// admission prevents) grants nothing.
    fn all<T: DeserializeOwned>(&self, plural: &str) -> Vec<T> {
        match self.store.list(&ListScope::all(GROUP, plural)) {
            Ok(list) => list
                .items
                .into_iter()
                .filter_map(|o| serde_json::from_value(o).ok())
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, plural, "cannot read RBAC objects; they grant nothing");
                Vec::new()
            }
        }
    }
}
