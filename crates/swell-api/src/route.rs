//! `Route` (`serving.knative.dev/v1`): splits traffic across Revisions and names URLs.

use crate::condition::{Addressable, Status};
use crate::traffic::TrafficTarget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A Route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The traffic block.
    #[serde(default)]
    pub spec: RouteSpec,
    /// What the controllers observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RouteStatus>,
}

/// Where traffic goes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Targets whose percents sum to 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// URL, address and resolved traffic, shared by Route and Service status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteStatusFields {
    /// The public URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The cluster-internal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Traffic with every target resolved to a Revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// A Route's observed state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// URL, address and traffic.
    #[serde(flatten)]
    pub fields: RouteStatusFields,
}
