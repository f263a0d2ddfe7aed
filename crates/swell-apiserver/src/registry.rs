//! The resources the API server serves: Knative's (from their CRDs) and the handful of
//! core `v1` kinds configuration lives in.

use swell_api::PrinterColumn;
use swell_api::admission::Kind;

/// One served resource.
#[derive(Clone, Debug)]
pub struct ResourceDef {
    /// API group, `""` for core.
    pub group: &'static str,
    /// `v1`, `v1beta1`.
    pub version: &'static str,
    /// Plural name used in paths.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: &'static [&'static str],
    /// Categories (`all`, `knative`, …).
    pub categories: &'static [&'static str],
    /// Has a `/status` subresource (and so a `generation`).
    pub status_subresource: bool,
    /// Table columns after NAME; `None` for the core kinds, whose columns are computed.
    pub columns: Option<&'static [PrinterColumn]>,
    /// Knative admission, for Knative kinds.
    pub admission: Option<Kind>,
    /// The verbs served: every verb for stored kinds, `create` alone for reviews
    /// (answered, never stored).
    pub verbs: &'static [&'static str],
}

impl ResourceDef {
    /// `serving.knative.dev/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `services.serving.knative.dev` or `configmaps`, as error messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Kind for messages about one object: `Service.serving.knative.dev` or `ConfigMap`.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The verbs served.
    pub fn verbs(&self) -> &'static [&'static str] {
        self.verbs
    }

    /// Whether objects of this resource are answered, never stored (the reviews).
    pub fn is_review(&self) -> bool {
        self.verbs == REVIEW_VERBS
    }
}

/// The verbs of stored kinds.
const STORED_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The verbs of Pods: Swell's kubelet writes them, users read and delete them.
const POD_VERBS: &[&str] = &["delete", "deletecollection", "get", "list", "watch"];

/// The one verb of reviews.
const REVIEW_VERBS: &[&str] = &["create"];

const fn core(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> ResourceDef {
    ResourceDef {
        group: "",
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names: short,
        categories: &[],
        status_subresource: false,
        columns: None,
        admission: None,
        verbs: STORED_VERBS,
    }
}

/// A kind of a built-in group other than core: RBAC's, and the reviews of
/// `authentication.k8s.io` and `authorization.k8s.io`.
const fn builtin(
    group: &'static str,
    version: &'static str,
    (plural, singular, kind): (&'static str, &'static str, &'static str),
    namespaced: bool,
    verbs: &'static [&'static str],
) -> ResourceDef {
    ResourceDef {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names: &[],
        categories: &[],
        status_subresource: false,
        columns: None,
        admission: None,
        verbs,
    }
}

/// Every served resource.
#[derive(Clone, Debug)]
pub struct Registry {
    resources: Vec<ResourceDef>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut resources = vec![
            core("namespaces", "namespace", "Namespace", false, &["ns"]),
            core("configmaps", "configmap", "ConfigMap", true, &["cm"]),
            core("secrets", "secret", "Secret", true, &[]),
            core("events", "event", "Event", true, &["ev"]),
            core(
                "serviceaccounts",
                "serviceaccount",
                "ServiceAccount",
                true,
                &["sa"],
            ),
            // Read-only for users: the Services Knative makes for Routes (`lib.rs`).
            core("services", "service", "Service", true, &["svc"]),
            ResourceDef {
                verbs: POD_VERBS,
                categories: &["all"],
                ..core("pods", "pod", "Pod", true, &["po"])
            },
        ];
        for crd in swell_api::CRDS {
            resources.push(ResourceDef {
                group: swell_api::GROUP,
                version: crd.version,
                plural: crd.plural,
                singular: crd.singular,
                kind: crd.kind,
                namespaced: true,
                short_names: crd.short_names,
                categories: crd.categories,
                status_subresource: true,
                columns: Some(crd.columns),
                admission: Kind::from_plural(crd.plural),
                verbs: STORED_VERBS,
            });
        }
        // Knative's group first: it is what this server is for.
        const RBAC: &str = crate::rbac::GROUP;
        for (names, namespaced) in [
            (("roles", "role", "Role"), true),
            (("rolebindings", "rolebinding", "RoleBinding"), true),
            (("clusterroles", "clusterrole", "ClusterRole"), false),
            (
                (
                    "clusterrolebindings",
                    "clusterrolebinding",
                    "ClusterRoleBinding",
                ),
                false,
            ),
        ] {
            resources.push(builtin(RBAC, "v1", names, namespaced, STORED_VERBS));
        }
        resources.push(builtin(
            "authentication.k8s.io",
            "v1",
            ("tokenreviews", "tokenreview", "TokenReview"),
            false,
            REVIEW_VERBS,
        ));
        for version in ["v1", "v1beta1", "v1alpha1"] {
            resources.push(builtin(
                "authentication.k8s.io",
                version,
                (
                    "selfsubjectreviews",
                    "selfsubjectreview",
                    "SelfSubjectReview",
                ),
                false,
                REVIEW_VERBS,
            ));
        }
        for names in [
            (
                "selfsubjectaccessreviews",
                "selfsubjectaccessreview",
                "SelfSubjectAccessReview",
            ),
            (
                "selfsubjectrulesreviews",
                "selfsubjectrulesreview",
                "SelfSubjectRulesReview",
            ),
        ] {
            resources.push(builtin(
                "authorization.k8s.io",
                "v1",
                names,
                false,
                REVIEW_VERBS,
            ));
        }
        Self { resources }
    }
}

impl Registry {
    /// The resource served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// Every resource.
    pub fn all(&self) -> &[ResourceDef] {
        &self.resources
    }

    /// Resources of one group/version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceDef> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// The named groups served (not core), in the order they were added.
    pub fn groups(&self) -> Vec<&'static str> {
        let mut groups: Vec<&'static str> = Vec::new();
        for r in self.resources.iter().filter(|r| !r.group.is_empty()) {
            if !groups.contains(&r.group) {
                groups.push(r.group);
            }
        }
        groups
    }

    /// The versions served for a group, preferred first.
    pub fn versions(&self, group: &str) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = Vec::new();
        for r in self.resources.iter().filter(|r| r.group == group) {
            if !v.contains(&r.version) {
                v.push(r.version);
            }
        }
        v
    }
}
