//! Revision: resolves what it runs, configures its data-plane pool, asks the backend
//! for replicas and reports what it sees (§1.4).

use crate::condition::{self, FALSE, TRUE, UNKNOWN};
use crate::workload::{self, WorkloadError};
use crate::{Ctx, ReconcileError};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use swell_api::{Revision, RevisionStatus};
use swell_dataplane::{RevisionConfig, RevisionKey};
use swell_runtime::{ReplicaStatus, RevisionRef};

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

/// Which Revision, for the backend.
pub fn revision_ref(rev: &Revision) -> RevisionRef {
    RevisionRef {
        namespace: rev.metadata.namespace.clone().unwrap_or_default(),
        name: rev.metadata.name.clone().unwrap_or_default(),
    }
}

/// What the data plane needs of the Revision's spec.
pub fn pool_config(rev: &Revision) -> RevisionConfig {
    let secs = |s: Option<i64>| {
        s.and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    };
    let serving = swell_api::defaults::serving_container_index(&rev.spec.pod_spec.containers)
        .map(|i| &rev.spec.pod_spec.containers[i]);
    let h2c = serving
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .is_some_and(|p| p.name.as_deref() == Some("h2c"));
    RevisionConfig {
        container_concurrency: rev
            .spec
            .container_concurrency
            .and_then(|c| usize::try_from(c).ok())
            .unwrap_or(0),
        timeout: secs(rev.spec.timeout_seconds).unwrap_or(Duration::from_secs(300)),
        response_start_timeout: secs(rev.spec.response_start_timeout_seconds),
        idle_timeout: secs(rev.spec.idle_timeout_seconds),
        h2c,
    }
}

/// The Revision's status after the backend reported `observed` for `desired` replicas.
pub fn revision_status(rev: &Revision, desired: i32, observed: &ReplicaStatus) -> RevisionStatus {
    let mut st = rev.status.clone().unwrap_or_default();
    st.status.observed_generation = rev.metadata.generation;
    st.actual_replicas = Some(observed.ready);
    st.desired_replicas = Some(desired);
    let conds = &mut st.status.conditions;
    match &observed.failure {
        _ if observed.ready > 0 => {
            condition::set(conds, "ResourcesAvailable", TRUE, "", "");
            condition::set(conds, "ContainerHealthy", TRUE, "", "");
            condition::set(conds, "Active", TRUE, "", "");
        }
        Some(f) if f.failed => {
            // Once the Revision has been healthy, a crash is not a deployment failure.
            if condition::status_of(conds, "ResourcesAvailable").is_none_or(|c| c.status != TRUE) {
                condition::set(conds, "ResourcesAvailable", FALSE, &f.reason, &f.message);
            }
            condition::set(conds, "ContainerHealthy", FALSE, &f.reason, &f.message);
            condition::set(conds, "Active", UNKNOWN, &f.reason, &f.message);
        }
        Some(f) => {
            condition::set(conds, "ResourcesAvailable", UNKNOWN, &f.reason, &f.message);
            condition::set(conds, "ContainerHealthy", UNKNOWN, &f.reason, &f.message);
            condition::set(conds, "Active", UNKNOWN, &f.reason, &f.message);
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
    let r = revision_ref(&rev);
    let key = RevisionKey {
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    };
    if rev.metadata.deletion_timestamp.is_some() {
        ctx.backend.teardown(&r);
        ctx.pools.remove(&key);
        return Ok(Action::await_change());
    }
    let desired = wanted_replicas(&rev);
    let observed = match workload::resolve(&ctx.client, &rev).await {
        Ok(w) => {
            ctx.pools.configure(&key, pool_config(&rev));
            ctx.backend.ensure(&r, &w, desired)
        }
        Err(WorkloadError::Api(e)) => return Err(e.into()),
        Err(WorkloadError::Config(failure)) => ReplicaStatus {
            ready: 0,
            failure: Some(failure),
        },
    };
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
    // Replica changes trigger reconciles; the requeue only catches what slipped by.
    Ok(Action::requeue(Duration::from_secs(
        if observed.ready > 0 { 300 } else { 10 },
    )))
}
