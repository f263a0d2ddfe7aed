//! Knative Serving's API: the `serving.knative.dev` types (JSON-identical to Knative's),
//! their defaulting and their validation. No IO and no async: the API server, the
//! controllers and the CLI share this one definition of what is valid.
//!
//! Start at [`admission::admit`], which runs defaulting then validation on a JSON object.

pub mod admission;
pub mod annotations;
pub mod condition;
pub mod config;
pub mod configuration;
pub mod crd;
pub mod defaults;
pub mod domainmapping;
pub mod duration;
pub mod field_error;
pub mod names;
pub mod quantity;
pub mod revision;
pub mod route;
pub mod service;
pub mod traffic;
pub mod validation;

pub use admission::{AdmissionContext, AdmissionError, Kind, admit};
pub use condition::{Addressable, Condition, Status};
pub use configuration::{Configuration, ConfigurationSpec, ConfigurationStatus};
pub use crd::{CRDS, Crd, GROUP, PrinterColumn};
pub use defaults::{Defaults, Features};
pub use domainmapping::{DomainMapping, DomainMappingSpec, DomainMappingStatus, KReference};
pub use field_error::{FieldError, FieldErrors};
pub use revision::{Revision, RevisionSpec, RevisionStatus, RevisionTemplateSpec};
pub use route::{Route, RouteSpec, RouteStatus};
pub use service::{Service, ServiceSpec, ServiceStatus};
pub use traffic::TrafficTarget;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Implements k8s-openapi's resource traits so that kube-rs clients (`kube::Api<Service>`)
/// work with these types unchanged.
macro_rules! knative_resource {
    ($ty:ty, $kind:literal, $version:literal, $plural:literal) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = concat!("serving.knative.dev/", $version);
            const GROUP: &'static str = GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }
        impl k8s_openapi::ListableResource for $ty {
            const LIST_KIND: &'static str = concat!($kind, "List");
        }
        impl k8s_openapi::Metadata for $ty {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

knative_resource!(Service, "Service", "v1", "services");
knative_resource!(Configuration, "Configuration", "v1", "configurations");
knative_resource!(Revision, "Revision", "v1", "revisions");
knative_resource!(Route, "Route", "v1", "routes");
knative_resource!(DomainMapping, "DomainMapping", "v1beta1", "domainmappings");
