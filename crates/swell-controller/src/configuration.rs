//! Configuration → one immutable Revision per template generation (§1.3).

use crate::condition::{self, FALSE, TRUE, UNKNOWN};
use crate::events;
use crate::labels;
use crate::owner::controller_ref;
use crate::{Ctx, ReconcileError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
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
            finalizers: Some(vec![crate::revision::FINALIZER.into()]),
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
            Ok(r) => {
                let message = format!("Created Revision {rev_name:?}");
                events::record(&ctx.client, cfg.as_ref(), "Normal", "Created", message).await;
                r
            }
            Err(kube::Error::Api(e)) if e.code == 409 => revisions.get(&rev_name).await?,
            Err(kube::Error::Api(e)) => {
                events::record(
                    &ctx.client,
                    cfg.as_ref(),
                    "Warning",
                    "CreationFailed",
                    format!("Failed to create Revision: {}", e.message),
                )
                .await;
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
    if ctx.revisions.wait_until_ready().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // The cached Revisions, with the one just read or created in its fresh state.
    let owned: Vec<Revision> = ctx
        .revisions
        .state()
        .iter()
        .filter(|r| {
            r.metadata.namespace.as_deref() == Some(ns.as_str())
                && r.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::CONFIGURATION))
                    == Some(&name)
                && r.metadata.name.as_deref() != Some(rev_name.as_str())
        })
        .map(|r| (**r).clone())
        .chain(std::iter::once(latest.clone()))
        .collect();
    let st = configuration_status(&cfg, &latest, &owned);
    patch_status(&ctx, &cfg, &st).await?;
    let gc = ctx.config.borrow().gc.clone();
    let now = jiff::Timestamp::now().as_second();
    for doomed in crate::gc::collect(
        &owned,
        st.fields.latest_ready_revision_name.as_deref(),
        &gc,
        now,
    ) {
        match revisions.delete(&doomed, &Default::default()).await {
            Ok(_) => {
                let message = format!("Garbage collected Revision {doomed:?}");
                events::record(&ctx.client, cfg.as_ref(), "Normal", "Deleted", message).await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(generation: i64, latest_ready: Option<&str>) -> Configuration {
        serde_json::from_value(json!({"metadata": {"name": "hello", "generation": generation, "annotations": {"serving.knative.dev/routes": "hello"}},
            "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}},
            "status": {"latestReadyRevisionName": latest_ready}})).unwrap()
    }

    fn rev(generation: i64, ready: &str, message: &str) -> Revision {
        serde_json::from_value(json!({"metadata": {"name": format!("hello-{generation:05}"), "labels": {"serving.knative.dev/configurationGeneration": generation.to_string()}},
            "status": {"conditions": [{"type": "Ready", "status": ready, "message": message}]}})).unwrap()
    }

    #[test]
    fn names_follow_the_generation_unless_brought() {
        assert_eq!(revision_name(&cfg(3, None)), "hello-00003");
        let mut byo = cfg(3, None);
        byo.spec.template.metadata.name = Some("hello-blue".into());
        assert_eq!(revision_name(&byo), "hello-blue");
        let r = desired_revision(&cfg(3, None));
        let labels = r.metadata.labels.unwrap();
        assert_eq!(labels["serving.knative.dev/configurationGeneration"], "3");
        assert_eq!(
            labels["serving.knative.dev/routingState"], "active",
            "routed Configurations stamp active Revisions"
        );
    }

    #[test]
    fn an_older_ready_revision_stays_latest_ready_while_the_new_one_deploys() {
        let revs = [rev(1, "True", ""), rev(2, "Unknown", "")];
        let st = configuration_status(&cfg(2, Some("hello-00001")), &revs[1], &revs);
        assert_eq!(
            st.fields.latest_created_revision_name.as_deref(),
            Some("hello-00002")
        );
        assert_eq!(
            st.fields.latest_ready_revision_name.as_deref(),
            Some("hello-00001")
        );
        assert_eq!(
            condition::status_of(&st.status.conditions, "Ready")
                .unwrap()
                .status,
            UNKNOWN
        );
    }

    #[test]
    fn a_failed_latest_revision_fails_the_configuration() {
        let revs = [rev(1, "True", ""), rev(2, "False", "boom")];
        let st = configuration_status(&cfg(2, Some("hello-00001")), &revs[1], &revs);
        let ready = condition::status_of(&st.status.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            (FALSE, "RevisionFailed")
        );
        assert_eq!(
            ready.message,
            "Revision \"hello-00002\" failed with message: boom."
        );
        assert_eq!(
            st.fields.latest_ready_revision_name.as_deref(),
            Some("hello-00001")
        );
    }
}
