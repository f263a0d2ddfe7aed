//! Revision: asks the backend for replicas and reports what it sees (§1.4).

use crate::backend::RevisionRef;
use crate::condition::{self, TRUE, UNKNOWN};
use crate::{Ctx, ReconcileError};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use swell_api::{Revision, RevisionStatus};

/// Replicas to run until the autoscaler exists: `initial-scale` or `min-scale`, at least 1.
pub fn wanted_replicas(rev: &Revision) -> i32 {
    let ann = rev.metadata.annotations.clone().unwrap_or_default();
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| ann.get(&format!("autoscaling.knative.dev/{n}")))
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(0)
    };
    get(&["initial-scale", "initialScale"])
        .max(get(&["min-scale", "minScale"]))
        .max(1)
}

/// The Revision's status after the backend reported `ready` replicas out of `desired`.
pub fn revision_status(
    rev: &Revision,
    desired: i32,
    observed: &crate::backend::ReplicaStatus,
) -> RevisionStatus {
    let mut st = rev.status.clone().unwrap_or_default();
    st.status.observed_generation = rev.metadata.generation;
    st.actual_replicas = Some(observed.ready);
    st.desired_replicas = Some(desired);
    let conds = &mut st.status.conditions;
    match &observed.failure {
        Some((reason, message)) => {
            condition::set(conds, "ResourcesAvailable", UNKNOWN, reason, message);
            condition::set(conds, "ContainerHealthy", UNKNOWN, reason, message);
            condition::set(conds, "Active", UNKNOWN, reason, message);
        }
        None if observed.ready > 0 => {
            condition::set(conds, "ResourcesAvailable", TRUE, "", "");
            condition::set(conds, "ContainerHealthy", TRUE, "", "");
            condition::set(conds, "Active", TRUE, "", "");
        }
        None => {
            condition::set(conds, "ResourcesAvailable", UNKNOWN, "Deploying", "");
            condition::set(conds, "ContainerHealthy", UNKNOWN, "Deploying", "");
            condition::set(conds, "Active", UNKNOWN, "Deploying", "");
        }
    }
    condition::set_ready(conds, &["ResourcesAvailable", "ContainerHealthy"]);
    st
}

/// Reconciles one Revision.
pub async fn reconcile(rev: Arc<Revision>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let r = RevisionRef {
        namespace: rev.metadata.namespace.clone().unwrap_or_default(),
        name: rev.metadata.name.clone().unwrap_or_default(),
    };
    if rev.metadata.deletion_timestamp.is_some() {
        ctx.backend.teardown(&r);
        return Ok(Action::await_change());
    }
    let desired = wanted_replicas(&rev);
    let observed = ctx.backend.ensure(&r, &rev.spec, desired);
    let st = revision_status(&rev, desired, &observed);
    if rev.status.as_ref() != Some(&st) {
        let api: Api<Revision> = Api::namespaced(ctx.client.clone(), &r.namespace);
        api.patch_status(
            &r.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": st})),
        )
        .await?;
    }
    Ok(Action::requeue(Duration::from_secs(
        if observed.ready > 0 { 300 } else { 5 },
    )))
}
