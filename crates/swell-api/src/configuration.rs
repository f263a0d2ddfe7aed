//! `Configuration` (`serving.knative.dev/v1`): stamps out one Revision per template change.

use crate::condition::Status;
use crate::revision::RevisionTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A Configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Configuration {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The template.
    #[serde(default)]
    pub spec: ConfigurationSpec,
    /// What the controllers observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ConfigurationStatus>,
}

/// The Revision template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigurationSpec {
    /// What every new Revision looks like.
    #[serde(default)]
    pub template: RevisionTemplateSpec,
}

/// The latest Revisions, shared by Configuration and Service status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStatusFields {
    /// Newest Revision that is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
    /// Newest Revision created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
}

/// A Configuration's observed state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigurationStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// Latest Revisions.
    #[serde(flatten)]
    pub fields: ConfigurationStatusFields,
}
