//! `Revision` (`serving.knative.dev/v1`): one immutable snapshot of code and configuration.

use crate::condition::Status;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A Revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to run.
    #[serde(default)]
    pub spec: RevisionSpec,
    /// What the controllers observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RevisionStatus>,
}

/// A Kubernetes PodSpec plus Knative's four per-revision knobs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    /// The containers, volumes and so on.
    #[serde(flatten)]
    pub pod_spec: PodSpec,
    /// Most requests one replica handles at once; 0 = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<i64>,
    /// Longest a request may take, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Longest until the first response byte, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_start_timeout_seconds: Option<i64>,
    /// Longest a request may sit idle, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<i64>,
}

/// A Revision's observed state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// Where the logs are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// Image digests, one per container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    /// Image digests, one per init container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    /// Replicas running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_replicas: Option<i32>,
    /// Replicas wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
}

/// The resolved image of one container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// The container's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `repo@sha256:…`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_digest: String,
}

/// `spec.template` of a Service or Configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RevisionTemplateSpec {
    /// Labels, annotations and the optional BYO Revision name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The Revision spec to stamp out.
    #[serde(default)]
    pub spec: RevisionSpec,
}
