//! Watches: replay from the event log, then follow live events, with no gap and no
//! duplicate in between.

use crate::error::{Result, StoreError};
use crate::key::{ListScope, ObjectKey};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast;

/// The kind of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed; the object is its last state with a new resourceVersion.
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADDED" => Self::Added,
            "MODIFIED" => Self::Modified,
            "DELETED" => Self::Deleted,
            _ => return None,
        })
    }
}

/// One change to one object.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// The resourceVersion of the change.
    pub resource_version: u64,
    /// What happened.
    pub type_: EventType,
    /// Which object.
    pub key: ObjectKey,
    /// The object after the change.
    pub object: Value,
}

/// A stream of changes in one scope, in resourceVersion order.
#[derive(Debug)]
pub struct Watch {
    pub(crate) scope: ListScope,
    pub(crate) replay: VecDeque<Arc<WatchEvent>>,
    pub(crate) live: broadcast::Receiver<Arc<WatchEvent>>,
    pub(crate) last: u64,
}

impl Watch {
    /// The next change in scope. Fails with `Lagged` if this watcher fell so far behind
    /// that live events were dropped; the caller should re-watch from its last
    /// resourceVersion. Returns `None` when the store is closed.
    pub async fn next(&mut self) -> Option<Result<Arc<WatchEvent>>> {
        if let Some(e) = self.replay.pop_front() {
            self.last = e.resource_version;
            return Some(Ok(e));
        }
        loop {
            match self.live.recv().await {
                Ok(e) if e.resource_version <= self.last || !self.scope.contains(&e.key) => {}
                Ok(e) => {
                    self.last = e.resource_version;
                    return Some(Ok(e));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some(Err(StoreError::Lagged(n)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The resourceVersion of the last event returned (or the start point).
    pub fn last_resource_version(&self) -> u64 {
        self.last
    }
}
