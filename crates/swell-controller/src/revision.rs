//! Revision: resolves what it runs and how it scales, configures its data-plane pool,
//! hands both to the autoscaler (which runs the replicas) and reports what it sees
//! (§1.4).

use crate::autoscaling::{Resolved, Scale};
use crate::condition::{self, FALSE, TRUE, UNKNOWN};
use crate::workload::{self, WorkloadError};
use crate::{Ctx, ReconcileError, labels};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use swell_api::annotations::{Autoscaling, Class};
use swell_api::config::ServingConfig;
use swell_api::revision::ContainerStatus;
use swell_api::{Revision, RevisionStatus};
use swell_autoscaler::{Activity, spec};
use swell_dataplane::{RevisionConfig, RevisionKey};
use swell_runtime::image::pull::Progress;
use swell_runtime::{Failure, ReplicaStatus, RevisionRef};

/// How the Revision scales — the KPA spec and the PodAutoscaler's limits, or the HPA
/// class's — from `config-autoscaler`, `config-deployment`, its annotations, its
/// routing state and (HPA) its container's CPU request.
pub fn autoscaling(rev: &Revision, cfg: &ServingConfig) -> Result<Resolved, Failure> {
    let fail = |message: String| Failure {
        reason: "AutoscalingUnsupported".into(),
        message,
        failed: true,
    };
    // Admission validated the annotations; any that slipped past it fail the Revision.
    let ann = Autoscaling::parse(
        rev.metadata
            .annotations
            .as_ref()
            .unwrap_or(&BTreeMap::new()),
    )
    .map_err(|e| fail(e.to_string()))?;
    let reachable = rev
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::ROUTING_STATE))
        .is_none_or(|s| s != "reserve");
    let cc = rev
        .spec
        .container_concurrency
        .and_then(|c| u64::try_from(c).ok())
        .unwrap_or(0);
    if ann.class == Some(Class::Hpa) {
        let cpu_request =
            swell_api::defaults::serving_container_index(&rev.spec.pod_spec.containers)
                .and_then(|i| rev.spec.pod_spec.containers[i].resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("cpu"))
                .and_then(|q| swell_api::quantity::cores(&q.0));
        return spec::hpa_spec(&cfg.autoscaler, &ann, reachable, cpu_request)
            .map(Resolved::Hpa)
            .map_err(|e| fail(e.to_string()));
    }
    let kpa =
        spec::resolve(&cfg.autoscaler, &ann, cc, reachable).map_err(|e| fail(e.to_string()))?;
    let scaler = spec::scaler_spec(&cfg.autoscaler, &ann, reachable, cfg.progress_deadline);
    Ok(Resolved::Kpa(kpa, scaler))
}

/// Which Revision, for the backend.
pub fn revision_ref(rev: &Revision) -> RevisionRef {
    RevisionRef {
        namespace: rev.metadata.namespace.clone().unwrap_or_default(),
        name: rev.metadata.name.clone().unwrap_or_default(),
    }
}

/// What the data plane needs of the Revision's spec (and of `config-features`).
pub fn pool_config(rev: &Revision, cfg: &ServingConfig) -> RevisionConfig {
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
        autodetect_http2: cfg.features.get("autodetect-http2") == Some("enabled"),
    }
}

/// The Revision's status from what the autoscaler and the backend report.
pub fn revision_status(rev: &Revision, scale: &Scale) -> RevisionStatus {
    let observed = &scale.observed;
    let mut st = rev.status.clone().unwrap_or_default();
    st.status.observed_generation = rev.metadata.generation;
    st.actual_replicas = Some(observed.ready);
    st.desired_replicas = Some(scale.desired);
    let conds = &mut st.status.conditions;
    match &observed.failure {
        _ if observed.ready > 0 => {
            condition::set(conds, "ResourcesAvailable", TRUE, "", "");
            condition::set(conds, "ContainerHealthy", TRUE, "", "");
        }
        Some(f) if f.failed => {
            // Once the Revision has been healthy, a crash is not a deployment failure.
            if !scale.initialized
                && condition::status_of(conds, "ResourcesAvailable")
                    .is_none_or(|c| c.status != TRUE)
            {
                condition::set(conds, "ResourcesAvailable", FALSE, &f.reason, &f.message);
            }
            condition::set(conds, "ContainerHealthy", FALSE, &f.reason, &f.message);
        }
        // Scaled to zero (or initial scale 0) after reaching its initial scale.
        _ if scale.initialized => {
            condition::set(conds, "ResourcesAvailable", TRUE, "", "");
            condition::set(conds, "ContainerHealthy", TRUE, "", "");
        }
        _ if scale.deadline_exceeded.is_some() => {
            let secs = scale.deadline_exceeded.unwrap_or_default();
            condition::set(
                conds,
                "ResourcesAvailable",
                FALSE,
                "ProgressDeadlineExceeded",
                &format!(
                    "Initial scale was never achieved within the progress deadline ({secs}s)."
                ),
            );
            let (reason, message) = observed.failure.as_ref().map_or(("Deploying", ""), |f| {
                (f.reason.as_str(), f.message.as_str())
            });
            condition::set(conds, "ContainerHealthy", UNKNOWN, reason, message);
        }
        Some(f) => {
            condition::set(conds, "ResourcesAvailable", UNKNOWN, &f.reason, &f.message);
            condition::set(conds, "ContainerHealthy", UNKNOWN, &f.reason, &f.message);
        }
        None => {
            condition::set(conds, "ResourcesAvailable", UNKNOWN, "Deploying", "");
            condition::set(conds, "ContainerHealthy", UNKNOWN, "Deploying", "");
        }
    }
    match scale.activity {
        Activity::Active => condition::set(conds, "Active", TRUE, "", ""),
        Activity::Activating => condition::set(
            conds,
            "Active",
            UNKNOWN,
            "Queued",
            "Requests to the target are being buffered as resources are provisioned.",
        ),
        Activity::Inactive { timed_out: false } => condition::set(
            conds,
            "Active",
            FALSE,
            "NoTraffic",
            "The target is not receiving traffic.",
        ),
        Activity::Inactive { timed_out: true } => condition::set(
            conds,
            "Active",
            FALSE,
            "TimedOut",
            "The target could not be activated.",
        ),
    }
    condition::set_ready(conds, &["ResourcesAvailable", "ContainerHealthy"]);
    st
}

/// What the data plane answers for a Revision that cannot start (its `Ready` is False),
/// in one line: `Revision "NAME" failed (REASON): MESSAGE`. `None` while it can.
pub fn serving_failure(rev: &Revision, st: &RevisionStatus) -> Option<String> {
    let ready = condition::status_of(&st.status.conditions, "Ready")?;
    if ready.status != FALSE {
        return None;
    }
    let name = rev.metadata.name.as_deref().unwrap_or_default();
    let message: Vec<&str> = ready
        .message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Some(format!(
        "Revision {name:?} failed ({}): {}",
        ready.reason,
        message.join(" ")
    ))
}

/// What a Revision that cannot run reports.
fn not_running(failure: Failure) -> Scale {
    Scale {
        desired: 0,
        observed: ReplicaStatus {
            ready: 0,
            failure: Some(failure),
            stalled: true,
        },
        activity: Activity::Activating,
        initialized: false,
        deadline_exceeded: None,
    }
}

/// Holds a deleted Revision until its replicas are stopped and its files deleted, so a
/// Revision deleted while the server is down is cleaned up on the next start. Named as
/// knative.dev/pkg names a reconciler's finalizer (`<resource>.<group>`).
pub const FINALIZER: &str = "revisions.serving.knative.dev";

/// Reconciles one Revision.
pub async fn reconcile(rev: Arc<Revision>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let r = revision_ref(&rev);
    let key = RevisionKey {
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    };
    if rev.metadata.deletion_timestamp.is_some() {
        ctx.autoscaler.remove(&r);
        ctx.pools.remove(&key);
        ctx.pulls.forget(&r);
        set_finalizer(&ctx, &rev, false).await?;
        return Ok(Action::await_change());
    }
    set_finalizer(&ctx, &rev, true).await?;
    let uid = rev.metadata.uid.as_deref();
    let credentials = workload::pull_credentials(&ctx.client, &rev).await?;
    // An image that could not be resolved is tried again only after its back-off (or
    // with other pull secrets); meanwhile the Revision keeps saying why.
    if let Some((failure, wait)) = ctx.pulls.waiting(&r, uid, &credentials) {
        let st = revision_status(&rev, &not_running(failure));
        ctx.pools.set_failure(&key, serving_failure(&rev, &st));
        write_status(&ctx, &rev, st).await?;
        return Ok(Action::requeue(wait));
    }
    let cfg = ctx.config.borrow().clone();
    let retrying = ctx.pulls.retrying(&r, uid);
    let pinned = match pin_images(&ctx, &rev, &cfg, &credentials, retrying).await {
        Ok(p) => {
            ctx.pulls.forget(&r);
            p
        }
        Err(failure) => {
            ctx.autoscaler.forget(&r);
            let wait = ctx.pulls.failed(&r, uid, &credentials, failure.clone());
            let st = revision_status(&rev, &not_running(failure));
            ctx.pools.set_failure(&key, serving_failure(&rev, &st));
            write_status(&ctx, &rev, st).await?;
            return Ok(Action::requeue(wait));
        }
    };
    let scale = match workload::resolve(&ctx.client, &ctx.api_access, &rev, credentials).await {
        Ok(mut w) => {
            let runs = std::iter::once(&mut w.container)
                .chain(w.sidecars.iter_mut().map(|s| &mut s.container))
                .chain(w.init_containers.iter_mut().map(|s| &mut s.container));
            for c in runs {
                if let Some(image) = pinned.image(&c.name) {
                    c.image = Some(image);
                }
            }
            ctx.pools.configure(&key, pool_config(&rev, &cfg));
            match autoscaling(&rev, &cfg) {
                Ok(resolved) => ctx.autoscaler.reconcile(&r, resolved, &w).await,
                Err(failure) => {
                    ctx.autoscaler.forget(&r);
                    not_running(failure)
                }
            }
        }
        Err(WorkloadError::Api(e)) => return Err(e.into()),
        Err(WorkloadError::Config(failure)) => not_running(failure),
    };
    let mut st = revision_status(&rev, &scale);
    st.container_statuses = pinned.containers;
    st.init_container_statuses = pinned.init_containers;
    // Requests wait for a replica that is starting again (its first restart, or after
    // its back-off), not for one that cannot start or waits out a back-off.
    let nothing_to_wait_for = scale.observed.stalled || scale.deadline_exceeded.is_some();
    let failure = serving_failure(&rev, &st).filter(|_| nothing_to_wait_for);
    ctx.pools.set_failure(&key, failure);
    write_status(&ctx, &rev, st).await?;
    // Replica changes trigger reconciles; the requeue only catches what slipped by.
    Ok(Action::requeue(Duration::from_secs(
        if scale.observed.ready > 0 { 300 } else { 10 },
    )))
}

/// Adds or removes [`FINALIZER`] if it is not already so (a Revision the Configuration
/// made has it from the start). The write is conditional on the resourceVersion read,
/// so a concurrent change of the finalizers is never lost.
async fn set_finalizer(ctx: &Ctx, rev: &Revision, held: bool) -> Result<(), ReconcileError> {
    let mut finalizers = rev.metadata.finalizers.clone().unwrap_or_default();
    if finalizers.iter().any(|f| f == FINALIZER) == held {
        return Ok(());
    }
    if held {
        finalizers.push(FINALIZER.into());
    } else {
        finalizers.retain(|f| f != FINALIZER);
    }
    let r = revision_ref(rev);
    let api: Api<Revision> = Api::namespaced(ctx.client.clone(), &r.namespace);
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": rev.metadata.resource_version}});
    match api
        .patch(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Already gone: nothing holds it any more.
        Err(kube::Error::Api(e)) if e.code == 404 && !held => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes the Revision's status if it changed.
async fn write_status(ctx: &Ctx, rev: &Revision, st: RevisionStatus) -> Result<(), ReconcileError> {
    if rev.status.as_ref() != Some(&st) {
        let r = revision_ref(rev);
        let api: Api<Revision> = Api::namespaced(ctx.client.clone(), &r.namespace);
        api.patch_status(
            &r.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": st})),
        )
        .await?;
    }
    Ok(())
}

/// Resolves `image` (pulling it), saying on the Revision's status that it is being
/// pulled and how far the pull has come (at most once a second) — unless this is a
/// retry, when the status keeps saying why the last attempt failed.
async fn resolve_reporting(
    ctx: &Ctx,
    rev: &Revision,
    images: &dyn swell_runtime::ImageResolver,
    image: &str,
    credentials: &swell_runtime::image::Credentials,
    retrying: bool,
) -> Result<String, Failure> {
    let report = |progress: Option<Progress>| {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let message = match progress {
            Some(p) if p.total > 0 => format!(
                "Pulling image {image:?}: {:.1} of {:.1} MiB",
                mib(p.done),
                mib(p.total)
            ),
            _ => format!("Pulling image {image:?}"),
        };
        let pulling = not_running(Failure {
            reason: "PullingImage".into(),
            message,
            failed: false,
        });
        async move {
            if retrying {
                return Ok(());
            }
            write_status(ctx, rev, revision_status(rev, &pulling)).await
        }
    };
    let (tx, mut rx) = tokio::sync::watch::channel(None);
    let sink = move |p: Progress| {
        let _ = tx.send(Some(p));
    };
    let resolving = images.resolve(image, credentials, &sink);
    tokio::pin!(resolving);
    // The status is best effort: a pull goes on whether or not it can be reported.
    let _ = report(None).await;
    let mut last = std::time::Instant::now();
    loop {
        tokio::select! {
            resolved = &mut resolving => return resolved,
            changed = rx.changed() => {
                if changed.is_err() {
                    return resolving.await;
                }
                let p = *rx.borrow_and_update();
                if last.elapsed() >= Duration::from_secs(1) {
                    last = std::time::Instant::now();
                    let _ = report(p).await;
                }
            }
        }
    }
}

/// The Revision's images pinned to their digests, as Knative resolves tags when a
/// Revision is created: for its containers, then its init containers.
#[derive(Debug, Default)]
struct Pinned {
    containers: Vec<ContainerStatus>,
    init_containers: Vec<ContainerStatus>,
}

impl Pinned {
    /// The pinned image of the container `name`.
    fn image(&self, name: &str) -> Option<String> {
        self.containers
            .iter()
            .chain(&self.init_containers)
            .find(|s| s.name == name)
            .map(|s| s.image_digest.clone())
    }
}

/// Every container's image pinned to its digest: the digest already recorded in the
/// status, else resolved now. Nothing without a resolver, or for images of registries
/// that skip tag resolution.
async fn pin_images(
    ctx: &Ctx,
    rev: &Revision,
    cfg: &ServingConfig,
    credentials: &swell_runtime::image::Credentials,
    retrying: bool,
) -> Result<Pinned, Failure> {
    let mut pinned = Pinned::default();
    let Some(images) = ctx.images.as_deref() else {
        return Ok(pinned);
    };
    let spec = &rev.spec.pod_spec;
    let status = rev.status.as_ref();
    let lists = [
        (
            &spec.containers[..],
            status.map(|s| &s.container_statuses[..]),
            &mut pinned.containers,
        ),
        (
            spec.init_containers.as_deref().unwrap_or_default(),
            status.map(|s| &s.init_container_statuses[..]),
            &mut pinned.init_containers,
        ),
    ];
    for (containers, recorded, into) in lists {
        for c in containers {
            let Some(image) = c.image.as_deref().filter(|i| !i.is_empty()) else {
                continue;
            };
            let registry = image.split_once('/').map_or("", |(r, _)| r);
            if cfg
                .registries_skipping_tag_resolving
                .iter()
                .any(|r| r == registry)
            {
                continue;
            }
            let known = recorded
                .unwrap_or_default()
                .iter()
                .find(|s| s.name == c.name && !s.image_digest.is_empty());
            into.push(match known {
                Some(s) => s.clone(),
                None => ContainerStatus {
                    name: c.name.clone(),
                    image_digest: resolve_reporting(ctx, rev, images, image, credentials, retrying)
                        .await?,
                },
            });
        }
    }
    Ok(pinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev() -> Revision {
        serde_json::from_value(
            json!({"metadata": {"name": "ghost-00001", "namespace": "default", "generation": 1},
            "spec": {"containers": [{"image": "127.0.0.1:5000/ghost:1"}]}}),
        )
        .unwrap()
    }

    fn ready(st: &RevisionStatus) -> (String, String, String) {
        let c = condition::status_of(&st.status.conditions, "Ready").unwrap();
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    #[test]
    fn a_missing_image_fails_the_revision_and_stays_failed() {
        let missing = Failure::failed(
            "ContainerMissing",
            "Unable to fetch image \"127.0.0.1:5000/ghost:1\": manifest unknown",
        );
        let mut r = rev();
        let st = revision_status(&r, &not_running(missing.clone()));
        assert_eq!(
            ready(&st),
            (
                FALSE.into(),
                "ContainerMissing".into(),
                missing.message.clone()
            )
        );
        let healthy = condition::status_of(&st.status.conditions, "ContainerHealthy").unwrap();
        assert_eq!(
            (healthy.status.as_str(), healthy.reason.as_str()),
            (FALSE, "ContainerMissing")
        );
        // Reported again while backing off: nothing changes, so nothing is written.
        r.status = Some(st.clone());
        assert_eq!(revision_status(&r, &not_running(missing)), st);
        assert_eq!(
            serving_failure(&r, &st).as_deref(),
            Some(
                "Revision \"ghost-00001\" failed (ContainerMissing): Unable to fetch image \
                 \"127.0.0.1:5000/ghost:1\": manifest unknown"
            )
        );
    }

    #[test]
    fn the_data_plane_fails_only_revisions_that_cannot_start() {
        let r = rev();
        let pulling = not_running(Failure {
            reason: "PullingImage".into(),
            message: "Pulling image".into(),
            failed: false,
        });
        let st = revision_status(&r, &pulling);
        assert_eq!(ready(&st).0, UNKNOWN);
        assert_eq!(serving_failure(&r, &st), None, "starting is not failing");
        let crashed = not_running(Failure::failed(
            "ExitCode3",
            "Container failed with: line one\n  line two\n",
        ));
        let st = revision_status(&r, &crashed);
        assert_eq!(
            serving_failure(&r, &st).as_deref(),
            Some(
                "Revision \"ghost-00001\" failed (ExitCode3): Container failed with: line one line two"
            ),
            "one line"
        );
    }
}
