//! `Service` (`serving.knative.dev/v1`): a Configuration and a Route under one name.

use crate::condition::Status;
use crate::configuration::ConfigurationStatusFields;
use crate::revision::RevisionTemplateSpec;
use crate::route::RouteStatusFields;
use crate::traffic::TrafficTarget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A Knative Service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Template and traffic.
    #[serde(default)]
    pub spec: ServiceSpec,
    /// What the controllers observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
}

/// `ConfigurationSpec` and `RouteSpec`, inlined.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// What every new Revision looks like.
    #[serde(default)]
    pub template: RevisionTemplateSpec,
    /// Where traffic goes; defaults to 100% to the latest Revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// A Service's observed state: its children's, aggregated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// From the Configuration.
    #[serde(flatten)]
    pub configuration: ConfigurationStatusFields,
    /// From the Route.
    #[serde(flatten)]
    pub route: RouteStatusFields,
}
