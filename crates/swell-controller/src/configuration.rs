//! Configuration → one immutable Revision per template generation (§1.3).

use crate::condition::{self, FALSE, TRUE, UNKNOWN};
use crate::labels;
use crate::owner::controller_ref;
use crate::{Ctx, ReconcileError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use swell_api::names::child_name;
use swell_api::{Configuration, ConfigurationStatus, Revision};

/// The name of the Revision for the Configuration's current generation: the template's
/// BYO name, else `<config>-<generation, 5 digits>`.
pub fn revision_name(cfg: &Configuration) -> String {
    match cfg
        .spec
        .template
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        Some(byo) => byo.to_string(),
        None => child_name(
            cfg.metadata.name.as_deref().unwrap_or_default(),
            &format!("-{:05}", cfg.metadata.generation.unwrap_or(1)),
        ),
    }
}

/// The Revision a Configuration stamps out for its current generation.
pub fn desired_revision(cfg: &Configuration) -> Revision {
    let template = &cfg.spec.template;
    let cfg_labels = cfg.metadata.labels.clone().unwrap_or_default();
    let cfg_ann = cfg.metadata.annotations.clone().unwrap_or_default();
    let mut labels = template.metadata.labels.clone().unwrap_or_default();
    labels.insert(
        labels::CONFIGURATION.into(),
        cfg.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        labels::CONFIGURATION_GENERATION.into(),
        cfg.metadata.generation.unwrap_or(1).to_string(),
    );
    labels.insert(
        labels::CONFIGURATION_UID.into(),
        cfg.metadata.uid.clone().unwrap_or_default(),
    );
    for k in [labels::SERVICE, labels::SERVICE_UID] {
        if let Some(v) = cfg_labels.get(k) {
            labels.insert(k.into(), v.clone());
        }
    }
    let routed = cfg_ann.contains_key(labels::ROUTES);
    labels.insert(
        labels::ROUTING_STATE.into(),
        if routed { "active" } else { "pending" }.into(),
    );
    let mut annotations = template.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(labels::ROUTING_STATE_MODIFIED.into(), condition::now());
    if let Some(v) = cfg_ann.get(swell_api::validation::LAST_MODIFIER) {
        annotations.insert(swell_api::validation::CREATOR.into(), v.clone());
    }
    if let Some(v) = cfg_ann.get(labels::ROUTES) {
        annotations.insert(labels::ROUTES.into(), v.clone());
    }
    Revision {
        metadata: ObjectMeta {
            name: Some(revision_name(cfg)),
            namespace: cfg.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(
                "serving.knative.dev/v1",
                "Configuration",
                &cfg.metadata,
            )]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

fn generation_of(rev: &Revision) -> i64 {
    rev.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::CONFIGURATION_GENERATION))
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

fn ready(rev: &Revision) -> Option<&swell_api::Condition> {
    rev.status
        .as_ref()
        .and_then(|s| condition::status_of(&s.status.conditions, "Ready"))
}

/// The Configuration's status given its Revisions and the latest created one.
pub fn configuration_status(
    cfg: &Configuration,
    latest: &Revision,
    revisions: &[Revision],
) -> ConfigurationStatus {
    let mut st = cfg.status.clone().unwrap_or_default();
    st.status.observed_generation = cfg.metadata.generation;
    let latest_name = latest.metadata.name.clone().unwrap_or_default();
    st.fields.latest_created_revision_name = Some(latest_name.clone());
    // The newest Ready Revision, no older than the current latest ready one.
    let floor = st
        .fields
        .latest_ready_revision_name
        .as_ref()
        .and_then(|n| {
            revisions
                .iter()
                .find(|r| r.metadata.name.as_ref() == Some(n))
        })
        .map_or(0, generation_of);
    let newest_ready = revisions
        .iter()
        .filter(|r| ready(r).is_some_and(|c| c.status == TRUE) && generation_of(r) >= floor)
        .max_by_key(|r| {
            (
                r.metadata.name.as_ref() == Some(&latest_name),
                generation_of(r),
            )
        });
    if let Some(r) = newest_ready {
        st.fields.latest_ready_revision_name = r.metadata.name.clone();
    }
    let conds = &mut st.status.conditions;
    match ready(latest) {
        Some(c)
            if c.status == TRUE
                && st.fields.latest_ready_revision_name.as_deref() == Some(&latest_name) =>
        {
            condition::set(conds, "Ready", TRUE, "", "");
        }
        Some(c) if c.status == FALSE => condition::set(
            conds,
            "Ready",
            FALSE,
            "RevisionFailed",
            &format!(
                "Revision {latest_name:?} failed with message: {}.",
                c.message
            ),
        ),
        _ => condition::set(conds, "Ready", UNKNOWN, "", ""),
    }
    st
}

/// Reconciles one Configuration.
pub async fn reconcile(cfg: Arc<Configuration>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if cfg.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = cfg.metadata.namespace.clone().unwrap_or_default();
    let name = cfg.metadata.name.clone().unwrap_or_default();
    let revisions: Api<Revision> = Api::namespaced(ctx.client.clone(), &ns);
    let rev_name = revision_name(&cfg);
    let latest = match revisions.get_opt(&rev_name).await? {
        Some(r) => r,
        None => match revisions
            .create(&PostParams::default(), &desired_revision(&cfg))
            .await
        {
            Ok(r) => r,
            Err(kube::Error::Api(e)) if e.code == 409 => revisions.get(&rev_name).await?,
            Err(kube::Error::Api(e)) => {
                let mut st = cfg.status.clone().unwrap_or_default();
                st.status.observed_generation = cfg.metadata.generation;
                condition::set(
                    &mut st.status.conditions,
                    "Ready",
                    FALSE,
                    "RevisionFailed",
                    &format!("Revision creation failed with message: {}.", e.message),
                );
                patch_status(&ctx, &cfg, &st).await?;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
            Err(e) => return Err(e.into()),
        },
    };
    let owned = revisions
        .list(&ListParams::default().labels(&format!("{}={name}", labels::CONFIGURATION)))
        .await?
        .items;
    let st = configuration_status(&cfg, &latest, &owned);
    patch_status(&ctx, &cfg, &st).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn patch_status(
    ctx: &Ctx,
    cfg: &Configuration,
    st: &ConfigurationStatus,
) -> Result<(), ReconcileError> {
    if cfg.status.as_ref() == Some(st) {
        return Ok(());
    }
    let api: Api<Configuration> = Api::namespaced(
        ctx.client.clone(),
        cfg.metadata.namespace.as_deref().unwrap_or_default(),
    );
    api.patch_status(
        cfg.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": st})),
    )
    .await?;
    Ok(())
}
