//! `DomainMapping` (`serving.knative.dev/v1beta1`): a custom hostname for a Service or Route.

use crate::condition::{Addressable, Status};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A DomainMapping; its name is the hostname.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainMapping {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The target.
    #[serde(default)]
    pub spec: DomainMappingSpec,
    /// What the controllers observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DomainMappingStatus>,
}

/// What the hostname maps to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainMappingSpec {
    /// The Addressable target.
    #[serde(rename = "ref", default)]
    pub reference: KReference,
    /// Optional TLS secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SecretTls>,
}

/// A reference to a Knative or Kubernetes object (`duckv1.KReference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KReference {
    /// The target's kind.
    #[serde(default)]
    pub kind: String,
    /// Defaults to the DomainMapping's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The target's name.
    #[serde(default)]
    pub name: String,
    /// The target's API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The target's group (when apiVersion is omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// TLS for the mapped host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretTls {
    /// Secret with `tls.crt` and `tls.key`.
    pub secret_name: String,
}

/// A DomainMapping's observed state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainMappingStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// `http://<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Same URL as an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
}
