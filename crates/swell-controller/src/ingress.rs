//! The routing tables Routes publish for the data plane (the ingress reads them; it
//! arrives with the data plane, issue 4).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Identifies a Route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteKey {
    /// Namespace.
    pub namespace: String,
    /// Route name.
    pub name: String,
}

/// A share of a host's traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Revision name (in the Route's namespace).
    pub revision: String,
    /// Percent of requests.
    pub percent: i64,
}

/// A Route's resolved routing: each host and how its traffic splits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingTable {
    /// Host → splits (the main host first, then one per tag).
    pub hosts: Vec<(String, Vec<Split>)>,
    /// Reachable only from inside (loopback).
    pub cluster_local: bool,
}

/// Every Route's published table, shared with the data plane.
#[derive(Clone, Debug, Default)]
pub struct RoutingTables {
    tables: Arc<RwLock<HashMap<RouteKey, RoutingTable>>>,
}

impl RoutingTables {
    /// Publishes (replaces) a Route's table.
    pub fn publish(&self, key: RouteKey, table: RoutingTable) {
        self.tables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, table);
    }

    /// Removes a Route's table.
    pub fn remove(&self, key: &RouteKey) {
        self.tables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// A Route's table, if published.
    pub fn get(&self, key: &RouteKey) -> Option<RoutingTable> {
        self.tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }
}
