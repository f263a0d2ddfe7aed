//! Kubernetes RBAC for the API server: decisions, escalation checks, validation and the
//! default roles, as kube-apiserver's RBAC authorizer and registry implement them.
//!
//! Everything here is pure: the server builds a [`Policy`] snapshot from the stored
//! Role, ClusterRole, RoleBinding and ClusterRoleBinding objects whenever one of them
//! changes, and asks it for a [`Decision`] on every request.

mod aggregate_to;
mod aggregation;
mod defaults;
mod escalation;
mod forbidden;
mod gofmt;
mod policy;
mod rules;
mod validation;

#[cfg(test)]
mod default_policy_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod validation_tests;

pub use aggregation::aggregate;
pub use defaults::bootstrap_objects;
pub use escalation::{covers, escalation_message};
pub use forbidden::forbidden_message;
pub use policy::Policy;
pub use rules::rule_allows;
pub use validation::{SUPPORTED_VERBS, set_defaults, validate, validate_update};

use std::sync::Arc;

/// The API group of the RBAC kinds.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// The group whose members may do anything (kube-apiserver's privileged-group authorizer).
pub const SYSTEM_MASTERS: &str = "system:masters";

/// Who asks, as authentication established it.
#[derive(Clone, Copy, Debug)]
pub struct User<'a> {
    /// User name (`alice`, `system:serviceaccount:team-a:builder`, `system:anonymous`).
    pub name: &'a str,
    /// Groups (`system:authenticated`, `system:serviceaccounts`, …).
    pub groups: &'a [String],
}

/// What is asked, as Kubernetes' `authorizer.Attributes`.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    /// A request on an API resource.
    Resource {
        /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, …
        verb: &'a str,
        /// API group, `""` for core.
        api_group: &'a str,
        /// Plural resource name.
        resource: &'a str,
        /// Subresource (`status`), `""` for none.
        subresource: &'a str,
        /// Namespace, `""` for cluster scope.
        namespace: &'a str,
        /// Object name, `""` for none (list, create, deletecollection).
        name: &'a str,
    },
    /// A request on any other path (`/healthz`, `/apis`).
    NonResource {
        /// The lowercased HTTP method (`get`, `post`, …).
        verb: &'a str,
        /// The request path.
        path: &'a str,
    },
}

impl Request<'_> {
    /// The namespace the request is in (`""` for cluster scope and non-resource paths).
    pub fn namespace(&self) -> &str {
        match self {
            Request::Resource { namespace, .. } => namespace,
            Request::NonResource { .. } => "",
        }
    }

    /// The verb asked for.
    pub fn verb(&self) -> &str {
        match self {
            Request::Resource { verb, .. } | Request::NonResource { verb, .. } => verb,
        }
    }
}

/// The answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Kubernetes' reason (`RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to
    /// User "alice"`), `""` when denied or when allowed for `system:masters`. Shared with
    /// the [`Policy`], so deciding allocates nothing.
    pub reason: Arc<str>,
}
