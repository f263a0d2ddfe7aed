//! How objects are named in the store: group/resource/namespace/name.

use std::fmt;

/// The address of one object. `namespace` is empty for cluster-scoped resources and
/// `group` is empty for the core group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// API group (`serving.knative.dev`, or `""` for core).
    pub group: String,
    /// Plural resource name (`services`).
    pub resource: String,
    /// Namespace, or `""`.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

/// Which objects a list or watch covers: one resource, in one namespace or all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListScope {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// `None` for every namespace.
    pub namespace: Option<String>,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key's encoding in the database; prefixes of it select a resource or namespace.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.group, self.resource, self.namespace, self.name
        )
    }

    pub(crate) fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(4, '/');
        Some(Self::new(
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        ))
    }

    /// The scope of this key's resource in its namespace.
    pub fn scope(&self) -> ListScope {
        ListScope {
            group: self.group.clone(),
            resource: self.resource.clone(),
            namespace: Some(self.namespace.clone()),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gr = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        if self.namespace.is_empty() {
            write!(f, "{gr} {:?}", self.name)
        } else {
            write!(f, "{gr} {}/{}", self.namespace, self.name)
        }
    }
}

impl ListScope {
    /// Every object of a resource in every namespace.
    pub fn all(group: &str, resource: &str) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
            namespace: None,
        }
    }

    /// Every object of a resource in one namespace.
    pub fn namespaced(group: &str, resource: &str, namespace: &str) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
            namespace: Some(namespace.into()),
        }
    }

    pub(crate) fn prefix(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{ns}/", self.group, self.resource),
            None => format!("{}/{}/", self.group, self.resource),
        }
    }

    /// True when `key` is inside this scope.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        key.group == self.group
            && key.resource == self.resource
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }
}
