//! Service → Configuration + Route, and the Service's status from theirs (§1.2).

use crate::condition::{self, FALSE, TRUE, UNKNOWN};
use crate::events;
use crate::labels;
use crate::owner::{controller_ref, is_controlled_by};
use crate::{Ctx, ReconcileError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use swell_api::{
    Configuration, ConfigurationSpec, Route, RouteSpec, Service, ServiceStatus, TrafficTarget,
};

fn child_meta(
    svc: &Service,
    extra_labels: &[(&str, String)],
    drop_annotations: &[&str],
) -> ObjectMeta {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), v.clone());
    }
    let mut annotations = svc.metadata.annotations.clone().unwrap_or_default();
    for k in drop_annotations {
        annotations.remove(*k);
    }
    ObjectMeta {
        name: svc.metadata.name.clone(),
        namespace: svc.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: Some(vec![controller_ref(
            "serving.knative.dev/v1",
            "Service",
            &svc.metadata,
        )]),
        ..Default::default()
    }
}

/// The Configuration a Service wants.
pub fn desired_configuration(svc: &Service) -> Configuration {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let mut meta = child_meta(
        svc,
        &[
            (labels::SERVICE, name.clone()),
            (
                labels::SERVICE_UID,
                svc.metadata.uid.clone().unwrap_or_default(),
            ),
        ],
        &[
            labels::LAST_APPLIED,
            swell_api::annotations::ROLLOUT_DURATION[0],
            swell_api::annotations::ROLLOUT_DURATION[1],
        ],
    );
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::ROUTES.into(), name);
    Configuration {
        metadata: meta,
        spec: ConfigurationSpec {
            template: svc.spec.template.clone(),
        },
        status: None,
    }
}

/// The Route a Service wants: its traffic, with the implicit Configuration filled in.
pub fn desired_route(svc: &Service) -> Route {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let meta = child_meta(
        svc,
        &[(labels::SERVICE, name.clone())],
        &[labels::LAST_APPLIED],
    );
    let traffic = svc
        .spec
        .traffic
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if t.revision_name.as_deref().unwrap_or("").is_empty() {
                t.configuration_name = Some(name.clone());
            }
            t
        })
        .collect();
    Route {
        metadata: meta,
        spec: RouteSpec { traffic },
        status: None,
    }
}

fn child_condition(
    conditions: &[swell_api::Condition],
    generation: Option<i64>,
    observed: Option<i64>,
) -> (String, String, String) {
    if observed != generation {
        return (
            UNKNOWN.into(),
            "OutOfDate".into(),
            "The child has not yet observed its latest generation.".into(),
        );
    }
    match condition::status_of(conditions, "Ready") {
        Some(c) => (c.status.clone(), c.reason.clone(), c.message.clone()),
        None => (UNKNOWN.into(), String::new(), String::new()),
    }
}

/// The Service's status, aggregated from its children (`None` until they exist).
pub fn service_status(
    svc: &Service,
    cfg: Option<&Configuration>,
    route: Option<&Route>,
    not_owned: &[(&str, String)],
) -> ServiceStatus {
    let mut st = svc.status.clone().unwrap_or_default();
    st.status.observed_generation = svc.metadata.generation;
    let conds = &mut st.status.conditions;
    match cfg {
        Some(c) => {
            let cs = c.status.clone().unwrap_or_default();
            let (s, r, m) = child_condition(
                &cs.status.conditions,
                c.metadata.generation,
                cs.status.observed_generation,
            );
            condition::set(conds, "ConfigurationsReady", &s, &r, &m);
            st.configuration = cs.fields;
        }
        None => condition::set(conds, "ConfigurationsReady", UNKNOWN, "", ""),
    }
    match route {
        Some(r) => {
            let rs = r.status.clone().unwrap_or_default();
            let (mut s, mut reason, mut msg) = child_condition(
                &rs.status.conditions,
                r.metadata.generation,
                rs.status.observed_generation,
            );
            if s == TRUE
                && !traffic_migrated(
                    &r.spec.traffic,
                    &rs.fields.traffic,
                    st.configuration.latest_ready_revision_name.as_deref(),
                )
            {
                (s, reason, msg) = (
                    UNKNOWN.into(),
                    "TrafficNotMigrated".into(),
                    "Traffic is not yet migrated to the latest revision.".into(),
                );
            }
            condition::set(conds, "RoutesReady", &s, &reason, &msg);
            st.route = rs.fields;
        }
        None => condition::set(conds, "RoutesReady", UNKNOWN, "", ""),
    }
    for (cond, message) in not_owned {
        condition::set(conds, cond, FALSE, "NotOwned", message);
    }
    condition::set_ready(conds, &["ConfigurationsReady", "RoutesReady"]);
    st
}

/// True when the Route's status traffic is its spec with configuration targets resolved to
/// `latest_ready` (ignoring urls and latestRevision).
fn traffic_migrated(
    spec: &[TrafficTarget],
    status: &[TrafficTarget],
    latest_ready: Option<&str>,
) -> bool {
    let key = |t: &TrafficTarget| {
        (
            t.tag.clone(),
            t.revision_name.clone(),
            t.percent.unwrap_or(0),
        )
    };
    let want: Vec<_> = spec
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if t.configuration_name.is_some() {
                t.revision_name = latest_ready.map(String::from);
            }
            key(&t)
        })
        .collect();
    let got: Vec<_> = status.iter().map(key).collect();
    want == got
}

/// Creates or updates a child; refuses to touch one another object controls.
async fn reconcile_child<K>(
    ctx: &Ctx,
    svc: &Service,
    api: &Api<K>,
    desired: K,
    same: impl Fn(&K, &K) -> bool,
    adopt: impl Fn(&K, K) -> K,
) -> Result<Result<K, String>, ReconcileError>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let kind = K::kind(&());
    let parent_uid = svc.metadata.uid.as_deref().unwrap_or_default();
    match api.get_opt(&name).await? {
        None => {
            let created = api.create(&PostParams::default(), &desired).await?;
            events::record(
                &ctx.client,
                svc,
                "Normal",
                "Created",
                format!("Created {kind} {name:?}"),
            )
            .await;
            Ok(Ok(created))
        }
        Some(existing) if !is_controlled_by(existing.meta(), parent_uid) => {
            let message = format!("There is an existing {kind} {name:?} that we do not own.");
            let reported = svc
                .status
                .as_ref()
                .is_some_and(|s| s.status.conditions.iter().any(|c| c.reason == "NotOwned"));
            if !reported {
                events::record(
                    &ctx.client,
                    svc,
                    "Warning",
                    "InternalError",
                    message.clone(),
                )
                .await;
            }
            Ok(Err(message))
        }
        Some(existing) if same(&existing, &desired) => Ok(Ok(existing)),
        Some(existing) => {
            let updated = api
                .replace(&name, &PostParams::default(), &adopt(&existing, desired))
                .await?;
            events::record(
                &ctx.client,
                svc,
                "Normal",
                "Updated",
                format!("Updated {kind} {name:?}"),
            )
            .await;
            Ok(Ok(updated))
        }
    }
}

fn same_meta(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    let ann = |m: &ObjectMeta| {
        let mut a = m.annotations.clone().unwrap_or_default();
        a.remove(swell_api::validation::CREATOR);
        a.remove(swell_api::validation::LAST_MODIFIER);
        a
    };
    a.labels.clone().unwrap_or_default() == b.labels.clone().unwrap_or_default() && ann(a) == ann(b)
}

fn adopt_meta(existing: &ObjectMeta, mut desired: ObjectMeta) -> ObjectMeta {
    let old = existing.annotations.clone().unwrap_or_default();
    let ann = desired.annotations.get_or_insert_with(BTreeMap::new);
    for k in [
        swell_api::validation::CREATOR,
        swell_api::validation::LAST_MODIFIER,
    ] {
        if let Some(v) = old.get(k) {
            ann.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
    desired.resource_version = existing.resource_version.clone();
    desired.uid = existing.uid.clone();
    desired
}

/// Reconciles one Service.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let configs: Api<Configuration> = Api::namespaced(ctx.client.clone(), &ns);
    let routes: Api<Route> = Api::namespaced(ctx.client.clone(), &ns);
    let mut not_owned = Vec::new();
    let cfg = reconcile_child(
        &ctx,
        &svc,
        &configs,
        desired_configuration(&svc),
        |a, b| a.spec == b.spec && same_meta(&a.metadata, &b.metadata),
        |e, d| Configuration {
            metadata: adopt_meta(&e.metadata, d.metadata),
            spec: d.spec,
            status: e.status.clone(),
        },
    )
    .await?;
    let cfg = cfg
        .map_err(|m| not_owned.push(("ConfigurationsReady", m)))
        .ok();
    // With a BYO Revision name, the Route waits until the Configuration has seen the
    // new template, so traffic never points at a name that does not exist yet.
    let byo = svc.spec.template.metadata.name.is_some();
    let cfg_caught_up = cfg.as_ref().is_some_and(|c| {
        c.status.as_ref().and_then(|s| s.status.observed_generation) == c.metadata.generation
    });
    let route = if !byo || cfg_caught_up {
        reconcile_child(
            &ctx,
            &svc,
            &routes,
            desired_route(&svc),
            |a, b| a.spec == b.spec && same_meta(&a.metadata, &b.metadata),
            |e, d| Route {
                metadata: adopt_meta(&e.metadata, d.metadata),
                spec: d.spec,
                status: e.status.clone(),
            },
        )
        .await?
        .map_err(|m| not_owned.push(("RoutesReady", m)))
        .ok()
    } else {
        routes
            .get_opt(svc.metadata.name.as_deref().unwrap_or_default())
            .await?
    };
    let status = service_status(&svc, cfg.as_ref(), route.as_ref(), &not_owned);
    if Some(&status) != svc.status.as_ref() {
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            svc.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Service {
        serde_json::from_value(json!({"metadata": {"name": "hello", "namespace": "default", "uid": "u1", "generation": 2,
            "labels": {"team": "a"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "serving.knative.dev/rollout-duration": "60s", "owner": "x"}},
            "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}, "traffic": [{"latestRevision": true, "percent": 100}]}})).unwrap()
    }

    #[test]
    fn children_carry_labels_and_annotations_as_knative_does() {
        let cfg = desired_configuration(&svc());
        let ann = cfg.metadata.annotations.clone().unwrap();
        assert_eq!(ann.get("owner").map(String::as_str), Some("x"));
        assert_eq!(ann.get(labels::ROUTES).map(String::as_str), Some("hello"));
        assert!(
            !ann.contains_key(labels::LAST_APPLIED)
                && !ann.contains_key("serving.knative.dev/rollout-duration")
        );
        assert_eq!(cfg.metadata.labels.unwrap()[labels::SERVICE_UID], "u1");
        let route = desired_route(&svc());
        assert_eq!(
            route.spec.traffic[0].configuration_name.as_deref(),
            Some("hello")
        );
        assert!(
            route
                .metadata
                .annotations
                .unwrap()
                .contains_key("serving.knative.dev/rollout-duration"),
            "the Route keeps the rollout duration"
        );
    }

    #[test]
    fn ready_children_with_unmigrated_traffic_are_not_ready() {
        let mut cfg = desired_configuration(&svc());
        cfg.metadata.generation = Some(1);
        cfg.status = Some(
            serde_json::from_value(
                json!({"observedGeneration": 1, "latestReadyRevisionName": "hello-00002",
            "conditions": [{"type": "Ready", "status": "True"}]}),
            )
            .unwrap(),
        );
        let mut route = desired_route(&svc());
        route.metadata.generation = Some(1);
        route.status = Some(
            serde_json::from_value(json!({"observedGeneration": 1,
            "traffic": [{"revisionName": "hello-00001", "percent": 100, "latestRevision": true}],
            "conditions": [{"type": "Ready", "status": "True"}]}))
            .unwrap(),
        );
        let st = service_status(&svc(), Some(&cfg), Some(&route), &[]);
        let routes_ready = condition::status_of(&st.status.conditions, "RoutesReady").unwrap();
        assert_eq!(
            (routes_ready.status.as_str(), routes_ready.reason.as_str()),
            (UNKNOWN, "TrafficNotMigrated")
        );
        assert_eq!(st.status.observed_generation, Some(2));

        let st = service_status(
            &svc(),
            Some(&cfg),
            None,
            &[(
                "RoutesReady",
                "There is an existing Route \"hello\" that we do not own.".into(),
            )],
        );
        let ready = condition::status_of(&st.status.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            (FALSE, "NotOwned")
        );
    }
}
