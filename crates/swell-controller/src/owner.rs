//! Controller ownerReferences: who owns a child, and whether it is us.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The controller ownerReference a parent puts on its children.
pub fn controller_ref(api_version: &str, kind: &str, parent: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: parent.name.clone().unwrap_or_default(),
        uid: parent.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// True when `child` is controlled by the object with `uid`.
pub fn is_controlled_by(child: &ObjectMeta, uid: &str) -> bool {
    child
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}
