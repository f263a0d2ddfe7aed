//! The labels and annotations Knative's controllers put on what they create (§1.8).

/// Label: the Service a Configuration, Route or Revision belongs to.
pub const SERVICE: &str = "serving.knative.dev/service";
/// Label: the Service's uid.
pub const SERVICE_UID: &str = "serving.knative.dev/serviceUID";
/// Label: the Configuration a Revision belongs to.
pub const CONFIGURATION: &str = "serving.knative.dev/configuration";
/// Label: the Configuration's uid.
pub const CONFIGURATION_UID: &str = "serving.knative.dev/configurationUID";
/// Label: the Configuration generation a Revision was stamped from.
pub const CONFIGURATION_GENERATION: &str = "serving.knative.dev/configurationGeneration";
/// Label: `pending`, `active` or `reserve`.
pub const ROUTING_STATE: &str = "serving.knative.dev/routingState";
/// Annotation: when the routing state last changed.
pub const ROUTING_STATE_MODIFIED: &str = "serving.knative.dev/routingStateModified";
/// Annotation: Routes referencing a Configuration or Revision.
pub const ROUTES: &str = "serving.knative.dev/routes";
/// Label: visibility of a Route (`cluster-local`).
pub const VISIBILITY: &str = "networking.knative.dev/visibility";
/// Annotation kubectl keeps; never copied to children.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
