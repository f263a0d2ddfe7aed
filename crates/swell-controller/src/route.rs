//! Route: resolves traffic targets to Revisions, names the URLs, and publishes the
//! routing table for the data plane (§1.5, §2.1, §2.2).

use crate::condition::{self, FALSE, TRUE, UNKNOWN};
use crate::labels;
use crate::rollout;
use crate::{Ctx, ReconcileError};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use swell_api::config::ServingConfig;
use swell_api::{Addressable, Configuration, Revision, Route, RouteStatus, TrafficTarget};
use swell_dataplane::{RouteKey, RoutingTable, Split, TrafficGroup};

/// The cluster domain of cluster-local addresses.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Why traffic could not be assigned: the condition to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficError {
    /// `False` for failures, `Unknown` for "not ready yet".
    pub status: &'static str,
    /// Knative's reason.
    pub reason: &'static str,
    /// Knative's message, naming the target.
    pub message: String,
}

/// What a target refers to, as the reconciler found it.
#[derive(Clone, Debug)]
pub enum Lookup<T> {
    /// Exists.
    Found(T),
    /// Does not exist.
    Missing,
}

fn rev_ready(rev: &Revision) -> Option<&str> {
    rev.status
        .as_ref()
        .and_then(|s| condition::status_of(&s.status.conditions, "Ready"))
        .map(|c| c.status.as_str())
}

/// Resolves `spec.traffic` into `status.traffic`: every entry gets its Revision; entries
/// with the same (tag, revision, latestRevision) are merged. Failures override
/// not-ready-yet errors, as in Knative.
pub fn resolve(
    route: &Route,
    config: impl Fn(&str) -> Lookup<Configuration>,
    revision: impl Fn(&str) -> Lookup<Revision>,
) -> Result<Vec<TrafficTarget>, TrafficError> {
    let service = route
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::SERVICE))
        .cloned();
    let mut out: Vec<TrafficTarget> = Vec::new();
    let mut worst: Option<TrafficError> = None;
    let mut note = |e: TrafficError| {
        if worst.as_ref().is_none_or(|w| w.status != FALSE) {
            worst = Some(e);
        }
    };
    // The spec keeps traffic as written; resolve it with Knative's defaults applied.
    let mut traffic = route.spec.traffic.clone();
    swell_api::defaults::default_traffic_entries(&mut traffic);
    for t in &traffic {
        let rev_name = match (
            t.revision_name.as_deref().filter(|s| !s.is_empty()),
            t.configuration_name.as_deref(),
        ) {
            (Some(r), _) => r.to_string(),
            (None, Some(c)) => match config(c) {
                Lookup::Missing => {
                    note(TrafficError {
                        status: FALSE,
                        reason: "ConfigurationMissing",
                        message: format!("Configuration {c:?} referenced in traffic not found."),
                    });
                    continue;
                }
                Lookup::Found(cfg) => match cfg
                    .status
                    .as_ref()
                    .and_then(|s| s.fields.latest_ready_revision_name.clone())
                {
                    Some(r) => r,
                    None => {
                        let failed = cfg
                            .status
                            .as_ref()
                            .and_then(|s| condition::status_of(&s.status.conditions, "Ready"))
                            .is_some_and(|c| c.status == FALSE);
                        note(if failed {
                            TrafficError {
                                status: FALSE,
                                reason: "RevisionMissing",
                                message: format!(
                                    "Configuration {c:?} does not have any ready Revision."
                                ),
                            }
                        } else {
                            TrafficError {
                                status: UNKNOWN,
                                reason: "RevisionMissing",
                                message: format!(
                                    "Configuration {c:?} is waiting for a Revision to become ready."
                                ),
                            }
                        });
                        continue;
                    }
                },
            },
            (None, None) => continue,
        };
        match revision(&rev_name) {
            Lookup::Missing => note(TrafficError {
                status: FALSE,
                reason: "RevisionMissing",
                message: format!("Revision {rev_name:?} referenced in traffic not found."),
            }),
            Lookup::Found(rev) => {
                let rev_service = rev
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::SERVICE))
                    .cloned();
                if service.is_some() && rev_service != service {
                    note(TrafficError {
                        status: FALSE,
                        reason: "RevisionNotOwned",
                        message: format!("Revision {rev_name:?} does not belong to this Service."),
                    });
                    continue;
                }
                match rev_ready(&rev) {
                    Some("True") => {}
                    Some("False") => {
                        note(TrafficError {
                            status: FALSE,
                            reason: "RevisionMissing",
                            message: format!("Revision {rev_name:?} failed to become ready."),
                        });
                        continue;
                    }
                    _ => {
                        note(TrafficError {
                            status: UNKNOWN,
                            reason: "RevisionMissing",
                            message: format!("Revision {rev_name:?} is not yet ready."),
                        });
                        continue;
                    }
                }
                let entry = TrafficTarget {
                    tag: t.tag.clone(),
                    revision_name: Some(rev_name),
                    configuration_name: None,
                    latest_revision: t.latest_revision,
                    percent: t.percent,
                    url: None,
                };
                match out.iter_mut().find(|o| {
                    o.tag == entry.tag
                        && o.revision_name == entry.revision_name
                        && o.latest_revision == entry.latest_revision
                }) {
                    Some(o) => {
                        o.percent = Some(o.percent.unwrap_or(0) + entry.percent.unwrap_or(0))
                    }
                    None => out.push(entry),
                }
            }
        }
    }
    match worst {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// True when the Route is visible only inside the cluster: labelled so, or given the
/// cluster domain by `config-domain`.
pub fn cluster_local(route: &Route, cfg: &ServingConfig) -> bool {
    let labels = route.metadata.labels.clone().unwrap_or_default();
    labels
        .get(labels::VISIBILITY)
        .is_some_and(|v| v == "cluster-local")
        || cfg.domain_for(&labels) == format!("svc.{CLUSTER_DOMAIN}")
}

/// The host of the Route (or of one of its tags), from `config-domain` and the
/// `config-network` templates; cluster-local Routes always use the default template.
pub fn host(route: &Route, tag: Option<&str>, cfg: &ServingConfig) -> String {
    let name = route.metadata.name.as_deref().unwrap_or_default();
    let ns = route.metadata.namespace.as_deref().unwrap_or_default();
    if cluster_local(route, cfg) {
        let forced = ServingConfig {
            network: Default::default(),
            ..cfg.clone()
        };
        return forced.host(name, ns, tag, &format!("svc.{CLUSTER_DOMAIN}"));
    }
    cfg.host(
        name,
        ns,
        tag,
        &cfg.domain_for(&route.metadata.labels.clone().unwrap_or_default()),
    )
}

/// The URL of the Route (or a tag): public URLs carry the ingress port unless it is the
/// scheme's default, so they work as written.
fn url(route: &Route, tag: Option<&str>, cfg: &ServingConfig, port: Option<u16>) -> String {
    if cluster_local(route, cfg) {
        return format!("http://{}", host(route, tag, cfg));
    }
    let scheme = cfg.network.scheme.as_str();
    let default_port = if scheme == "https" { 443 } else { 80 };
    match port.filter(|p| *p != default_port) {
        Some(p) => format!("{scheme}://{}:{p}", host(route, tag, cfg)),
        None => format!("{scheme}://{}", host(route, tag, cfg)),
    }
}

/// The Route's status for resolved traffic (or for the error that stopped resolution);
/// `port` is the ingress's.
pub fn route_status(
    route: &Route,
    resolved: &Result<Vec<TrafficTarget>, TrafficError>,
    cfg: &ServingConfig,
    port: Option<u16>,
) -> RouteStatus {
    let mut st = route.status.clone().unwrap_or_default();
    st.status.observed_generation = route.metadata.generation;
    let name = route.metadata.name.as_deref().unwrap_or_default();
    let ns = route.metadata.namespace.as_deref().unwrap_or_default();
    st.fields.url = Some(url(route, None, cfg, port));
    st.fields.address = Some(Addressable {
        url: Some(format!("http://{name}.{ns}.svc.{CLUSTER_DOMAIN}")),
        ..Default::default()
    });
    let conds = &mut st.status.conditions;
    match resolved {
        Ok(traffic) => {
            st.fields.traffic = traffic
                .iter()
                .map(|t| TrafficTarget {
                    url: t.tag.as_deref().map(|tag| url(route, Some(tag), cfg, port)),
                    ..t.clone()
                })
                .collect();
            condition::set(conds, "AllTrafficAssigned", TRUE, "", "");
            condition::set(conds, "IngressReady", TRUE, "", "");
        }
        Err(e) => {
            condition::set(conds, "AllTrafficAssigned", e.status, e.reason, &e.message);
            if condition::status_of(conds, "IngressReady").is_none() {
                condition::set(
                    conds,
                    "IngressReady",
                    UNKNOWN,
                    "IngressNotConfigured",
                    "Ingress has not yet been reconciled.",
                );
            }
        }
    }
    let tls = if cluster_local(route, cfg) {
        "TLS is not enabled for cluster-local"
    } else {
        "external-domain-tls is not enabled"
    };
    condition::set(conds, "CertificateProvisioned", TRUE, "TLSNotEnabled", tls);
    condition::set_ready(
        conds,
        &[
            "AllTrafficAssigned",
            "IngressReady",
            "CertificateProvisioned",
        ],
    );
    st
}

/// The cluster-local names of a host part (`hello` → `hello.default`,
/// `hello.default.svc`, `hello.default.svc.cluster.local`).
fn local_hosts(route: &Route, tag: Option<&str>, cfg: &ServingConfig) -> Vec<String> {
    let full = host(
        &Route {
            metadata: kube::api::ObjectMeta {
                labels: Some(
                    [(labels::VISIBILITY.to_string(), "cluster-local".to_string())]
                        .into_iter()
                        .collect(),
                ),
                ..route.metadata.clone()
            },
            ..route.clone()
        },
        tag,
        cfg,
    );
    let short = full
        .strip_suffix(&format!(".svc.{CLUSTER_DOMAIN}"))
        .unwrap_or(&full)
        .to_string();
    vec![short.clone(), format!("{short}.svc"), full]
}

/// The routing table for resolved traffic: the default group splits by percent; each
/// tag's group sends everything to its one Revision (or splits while it rolls out).
pub fn routing_table(
    route: &Route,
    traffic: &[TrafficTarget],
    cfg: &ServingConfig,
) -> RoutingTable {
    let splits = |entries: Vec<&TrafficTarget>, force_single: bool| {
        let mut out: Vec<Split> = Vec::new();
        for t in &entries {
            let rev = t.revision_name.clone().unwrap_or_default();
            let pct = if force_single && entries.len() == 1 {
                100
            } else {
                t.percent.unwrap_or(0)
            };
            if pct == 0 {
                continue;
            }
            match out.iter_mut().find(|s| s.revision == rev) {
                Some(s) => s.percent += pct,
                None => out.push(Split {
                    revision: rev,
                    percent: pct,
                }),
            }
        }
        out
    };
    let public = !cluster_local(route, cfg);
    let group = |tag: Option<&str>, splits: Vec<Split>| TrafficGroup {
        tag: tag.map(str::to_string),
        public_host: public.then(|| host(route, tag, cfg)),
        local_hosts: local_hosts(route, tag, cfg),
        splits,
    };
    let mut groups = vec![group(None, splits(traffic.iter().collect(), false))];
    let mut tags: Vec<&str> = Vec::new();
    for tag in traffic.iter().filter_map(|t| t.tag.as_deref()) {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    for tag in tags {
        let entries: Vec<&TrafficTarget> = traffic
            .iter()
            .filter(|t| t.tag.as_deref() == Some(tag))
            .collect();
        groups.push(group(Some(tag), splits(entries, true)));
    }
    RoutingTable {
        groups,
        tag_header_routing: cfg.features.allows("tag-header-based-routing"),
    }
}

/// The rollout duration in nanoseconds: the Route's annotation, else `config-network`.
fn rollout_duration(route: &Route, cfg: &ServingConfig) -> i64 {
    let ann = route.metadata.annotations.clone().unwrap_or_default();
    let from_annotation = swell_api::annotations::ROLLOUT_DURATION
        .iter()
        .find_map(|k| ann.get(*k))
        .and_then(|v| swell_api::duration::parse_go_duration(v).ok())
        .filter(|d| !d.is_zero());
    let d = from_annotation.unwrap_or(Duration::from_secs(cfg.network.rollout_duration_seconds));
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Applies gradual rollout to the untagged configuration targets of a resolved status:
/// their traffic is split between the old and new Revisions as the rollout state says,
/// and `IngressReady` is Unknown/RolloutInProgress meanwhile. Returns when to look again.
fn apply_rollout(
    route: &Route,
    configs: &[Configuration],
    cfg: &ServingConfig,
    st: &mut RouteStatus,
) -> Option<i64> {
    let resolved = condition::status_of(&st.status.conditions, "AllTrafficAssigned")
        .is_some_and(|c| c.status == TRUE);
    if !resolved {
        return None;
    }
    let targets: Vec<rollout::Target> = route
        .spec
        .traffic
        .iter()
        .filter(|t| t.percent.unwrap_or(0) > 0)
        .filter_map(|t| {
            let name = t.configuration_name.clone()?;
            let latest = configs
                .iter()
                .find(|c| c.metadata.name.as_ref() == Some(&name))?
                .status
                .as_ref()?
                .fields
                .latest_ready_revision_name
                .clone()?;
            Some(rollout::Target {
                tag: t.tag.clone().unwrap_or_default(),
                configuration_name: name,
                latest,
                percent: t.percent.unwrap_or(0),
            })
        })
        .collect();
    let previous: rollout::Rollout = route
        .status
        .as_ref()
        .and_then(|s| s.status.annotations.get(rollout::ANNOTATION))
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let duration = rollout_duration(route, cfg);
    let state = rollout::advance(&previous, &targets, now, duration);
    if duration > 0 && !state.configurations.is_empty() {
        st.status.annotations.insert(
            rollout::ANNOTATION.into(),
            serde_json::to_string(&state).unwrap_or_default(),
        );
    } else {
        st.status.annotations.remove(rollout::ANNOTATION);
    }
    if !state.in_progress() {
        return None;
    }
    // Replace each rolling target's entry with one entry per Revision.
    let mut traffic = Vec::new();
    for t in std::mem::take(&mut st.fields.traffic) {
        let rolling = state.configurations.iter().find(|c| {
            c.rolling()
                && c.tag == t.tag.clone().unwrap_or_default()
                && t.latest_revision == Some(true)
                && c.revisions.last().map(|r| &r.revision_name) == t.revision_name.as_ref()
        });
        match rolling {
            Some(c) => {
                let newest = c.revisions.len() - 1;
                for (i, share) in c.revisions.iter().enumerate() {
                    traffic.push(TrafficTarget {
                        revision_name: Some(share.revision_name.clone()),
                        percent: Some(share.percent),
                        latest_revision: Some(i == newest),
                        ..t.clone()
                    });
                }
            }
            None => traffic.push(t),
        }
    }
    st.fields.traffic = traffic;
    condition::set(
        &mut st.status.conditions,
        "IngressReady",
        UNKNOWN,
        "RolloutInProgress",
        "A gradual rollout of the latest revision(s) is in progress.",
    );
    condition::set_ready(
        &mut st.status.conditions,
        &[
            "AllTrafficAssigned",
            "IngressReady",
            "CertificateProvisioned",
        ],
    );
    state.next_step()
}

/// The Revisions a Route references: in its status and spec traffic, and for
/// configuration targets the latest created and latest ready Revisions.
fn referenced(route: &Route, st: &RouteStatus, configs: &[Configuration]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = st
        .fields
        .traffic
        .iter()
        .chain(&route.spec.traffic)
        .filter_map(|t| t.revision_name.clone())
        .collect();
    for t in route
        .spec
        .traffic
        .iter()
        .filter(|t| t.configuration_name.is_some())
    {
        if let Some(cfg) = configs
            .iter()
            .find(|c| c.metadata.name == t.configuration_name)
            && let Some(fields) = cfg.status.as_ref().map(|s| &s.fields)
        {
            names.extend(fields.latest_ready_revision_name.clone());
            if t.latest_revision != Some(false) {
                names.extend(fields.latest_created_revision_name.clone());
            }
        }
    }
    names
}

/// Keeps `routingState` and the `routes` annotation of Revisions in step with the
/// Route (§6.1): referenced Revisions become `active`; once the Route has settled, ones
/// it no longer references drop it and, with no Route left, become `reserve`.
async fn label_revisions(
    ctx: &Ctx,
    route: &Route,
    st: &RouteStatus,
    configs: &[Configuration],
    settled: bool,
) -> Result<(), ReconcileError> {
    let ns = route.metadata.namespace.clone().unwrap_or_default();
    let me = route.metadata.name.clone().unwrap_or_default();
    let wanted = referenced(route, st, configs);
    let api: Api<Revision> = Api::namespaced(ctx.client.clone(), &ns);
    // Only the Revisions this Route references or has referenced (it is named in their
    // `routes` annotation) can change; the rest are skipped without a copy.
    let names_me = |rev: &Revision| {
        rev.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::ROUTES))
            .is_some_and(|v| v.split(',').any(|r| r == me))
    };
    for rev in ctx.revisions.state().iter().filter(|r| {
        r.metadata.namespace.as_deref() == Some(ns.as_str())
            && (r.metadata.name.as_ref().is_some_and(|n| wanted.contains(n)) || names_me(r))
    }) {
        let name = rev.metadata.name.clone().unwrap_or_default();
        let mut routes: BTreeSet<String> = rev
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::ROUTES))
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let before = routes.clone();
        if wanted.contains(&name) {
            routes.insert(me.clone());
        } else if settled {
            routes.remove(&me);
        }
        let state = rev
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::ROUTING_STATE))
            .cloned();
        let new_state = if !routes.is_empty() {
            "active"
        } else if before.is_empty() {
            state.as_deref().unwrap_or("pending")
        } else {
            "reserve"
        };
        if routes == before && state.as_deref() == Some(new_state) {
            continue;
        }
        let joined =
            (!routes.is_empty()).then(|| routes.iter().cloned().collect::<Vec<_>>().join(","));
        let mut patch = json!({"metadata": {"labels": {labels::ROUTING_STATE: new_state}, "annotations": {labels::ROUTES: joined}}});
        if state.as_deref() != Some(new_state) {
            patch["metadata"]["annotations"][labels::ROUTING_STATE_MODIFIED] =
                json!(condition::now());
        }
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn find_named<K: kube::Resource + Clone>(list: &[K], name: &str) -> Lookup<K> {
    list.iter()
        .find(|o| o.meta().name.as_deref() == Some(name))
        .cloned()
        .map_or(Lookup::Missing, Lookup::Found)
}

/// Reconciles one Route.
pub async fn reconcile(route: Arc<Route>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let ns = route.metadata.namespace.clone().unwrap_or_default();
    let key = RouteKey {
        namespace: ns.clone(),
        name: route.metadata.name.clone().unwrap_or_default(),
    };
    if route.metadata.deletion_timestamp.is_some() {
        ctx.ingress.remove(&key);
        return Ok(Action::await_change());
    }
    let configs: Api<Configuration> = Api::namespaced(ctx.client.clone(), &ns);
    let revisions: Api<Revision> = Api::namespaced(ctx.client.clone(), &ns);
    let mut found_configs = Vec::new();
    let mut found_revisions = Vec::new();
    for t in &route.spec.traffic {
        if let Some(c) = &t.configuration_name
            && let Some(cfg) = configs.get_opt(c).await?
        {
            let latest_ready = cfg
                .status
                .as_ref()
                .and_then(|s| s.fields.latest_ready_revision_name.clone());
            if let Some(r) = latest_ready
                && let Some(rev) = revisions.get_opt(&r).await?
            {
                found_revisions.push(rev);
            }
            found_configs.push(cfg);
        }
        if let Some(r) = &t.revision_name
            && let Some(rev) = revisions.get_opt(r).await?
        {
            found_revisions.push(rev);
        }
    }
    let resolved = resolve(
        &route,
        |n| find_named(&found_configs, n),
        |n| find_named(&found_revisions, n),
    );
    let cfg = ctx.config.borrow().clone();
    let mut st = route_status(&route, &resolved, &cfg, ctx.ingress_port);
    let next_step = apply_rollout(&route, &found_configs, &cfg, &mut st);
    if resolved.is_ok() {
        // The status traffic includes the rollout's split.
        ctx.ingress
            .publish(key, &routing_table(&route, &st.fields.traffic, &cfg));
    }
    let settled =
        condition::status_of(&st.status.conditions, "Ready").is_some_and(|c| c.status != UNKNOWN);
    label_revisions(&ctx, &route, &st, &found_configs, settled).await?;
    crate::route_service::reconcile(&ctx.client, &route, &cfg).await?;
    if route.status.as_ref() != Some(&st) {
        let mut patch = json!({"status": st});
        let had_rollout = route
            .status
            .as_ref()
            .is_some_and(|s| s.status.annotations.contains_key(rollout::ANNOTATION));
        if had_rollout && !st.status.annotations.contains_key(rollout::ANNOTATION) {
            // A merge patch removes a key only when it says null.
            patch["status"]["annotations"] = json!({rollout::ANNOTATION: null});
        }
        let api: Api<Route> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            route.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    }
    if let Some(due) = next_step {
        let wait = u64::try_from(due - jiff::Timestamp::now().as_nanosecond() as i64).unwrap_or(0);
        return Ok(Action::requeue(
            Duration::from_nanos(wait).max(Duration::from_millis(100)),
        ));
    }
    // Targets may become ready without this Route changing: look again soon until resolved.
    Ok(Action::requeue(Duration::from_secs(if resolved.is_ok() {
        300
    } else {
        2
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(traffic: serde_json::Value, labels: serde_json::Value) -> Route {
        serde_json::from_value(json!({"metadata": {"name": "hello", "namespace": "default", "labels": labels}, "spec": {"traffic": traffic}})).unwrap()
    }

    fn rev(name: &str, ready: &str) -> Revision {
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"serving.knative.dev/service": "hello"}},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}),
        )
        .unwrap()
    }

    fn cfg(latest_ready: Option<&str>) -> Configuration {
        serde_json::from_value(json!({"metadata": {"name": "hello"}, "status": {"latestReadyRevisionName": latest_ready}})).unwrap()
    }

    #[test]
    fn failures_override_not_ready_in_either_order() {
        for traffic in [
            json!([{"configurationName": "hello", "percent": 50}, {"revisionName": "gone", "percent": 50}]),
            json!([{"revisionName": "gone", "percent": 50}, {"configurationName": "hello", "percent": 50}]),
        ] {
            let err = resolve(
                &route(traffic, json!({})),
                |_| Lookup::Found(cfg(None)),
                |_| Lookup::Missing,
            )
            .unwrap_err();
            assert_eq!(
                err,
                TrafficError {
                    status: FALSE,
                    reason: "RevisionMissing",
                    message: "Revision \"gone\" referenced in traffic not found.".into()
                }
            );
        }
        let err = resolve(
            &route(
                json!([{"configurationName": "hello", "percent": 100}]),
                json!({}),
            ),
            |_| Lookup::Found(cfg(None)),
            |_| Lookup::Missing,
        )
        .unwrap_err();
        assert_eq!((err.status, err.reason), (UNKNOWN, "RevisionMissing"));
        let err = resolve(
            &route(
                json!([{"configurationName": "nope", "percent": 100}]),
                json!({}),
            ),
            |_| Lookup::Missing,
            |_| Lookup::Missing,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Configuration \"nope\" referenced in traffic not found."
        );
    }

    #[test]
    fn same_targets_merge_and_tags_get_their_own_host() {
        let r = route(
            json!([{"revisionName": "hello-1", "percent": 30}, {"revisionName": "hello-1", "percent": 20},
                   {"configurationName": "hello", "percent": 50}, {"tag": "next", "configurationName": "hello", "percent": 0}]),
            json!({"serving.knative.dev/service": "hello"}),
        );
        let traffic = resolve(
            &r,
            |_| Lookup::Found(cfg(Some("hello-2"))),
            |n| Lookup::Found(rev(n, "True")),
        )
        .unwrap();
        let pairs: Vec<_> = traffic
            .iter()
            .map(|t| {
                (
                    t.tag.clone(),
                    t.revision_name.clone().unwrap(),
                    t.percent.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                (None, "hello-1".into(), 50),
                (None, "hello-2".into(), 50),
                (Some("next".into()), "hello-2".into(), 0)
            ]
        );
        let table = routing_table(&r, &traffic, &ServingConfig::default());
        let main = &table.groups[0];
        assert_eq!(main.public_host.as_deref(), Some("hello.default.localhost"));
        assert_eq!(
            main.local_hosts,
            vec![
                "hello.default",
                "hello.default.svc",
                "hello.default.svc.cluster.local"
            ]
        );
        assert_eq!(main.splits.len(), 2);
        let next = &table.groups[1];
        assert_eq!(next.tag.as_deref(), Some("next"));
        assert_eq!(
            next.public_host.as_deref(),
            Some("next-hello.default.localhost")
        );
        assert_eq!(next.local_hosts[2], "next-hello.default.svc.cluster.local");
        assert_eq!(
            next.splits,
            vec![Split {
                revision: "hello-2".into(),
                percent: 100
            }]
        );
    }

    #[test]
    fn a_rolling_tag_splits_its_host() {
        let r = route(json!([]), json!({}));
        let entry = |rev: &str, pct: i64, latest: bool| TrafficTarget {
            tag: Some("next".into()),
            revision_name: Some(rev.into()),
            percent: Some(pct),
            latest_revision: Some(latest),
            ..Default::default()
        };
        let table = routing_table(
            &r,
            &[entry("hello-1", 9, false), entry("hello-2", 1, true)],
            &ServingConfig::default(),
        );
        assert_eq!(
            table.groups[1].splits,
            vec![
                Split {
                    revision: "hello-1".into(),
                    percent: 9
                },
                Split {
                    revision: "hello-2".into(),
                    percent: 1
                }
            ]
        );
    }

    #[test]
    fn revisions_of_other_services_are_refused() {
        let r = route(
            json!([{"revisionName": "other-1", "percent": 100}]),
            json!({"serving.knative.dev/service": "hello"}),
        );
        let foreign = |_: &str| {
            Lookup::Found(serde_json::from_value::<Revision>(json!({"metadata": {"name": "other-1", "labels": {"serving.knative.dev/service": "other"}}})).unwrap())
        };
        assert_eq!(
            resolve(&r, |_| Lookup::Missing, foreign)
                .unwrap_err()
                .reason,
            "RevisionNotOwned"
        );
    }

    #[test]
    fn cluster_local_routes_use_the_cluster_domain() {
        let r = route(
            json!([]),
            json!({"networking.knative.dev/visibility": "cluster-local"}),
        );
        assert_eq!(
            host(&r, None, &ServingConfig::default()),
            "hello.default.svc.cluster.local"
        );
        let st = route_status(&r, &Ok(vec![]), &ServingConfig::default(), None);
        assert_eq!(
            st.fields.url.as_deref(),
            Some("http://hello.default.svc.cluster.local")
        );
        assert_eq!(
            condition::status_of(&st.status.conditions, "CertificateProvisioned")
                .unwrap()
                .message,
            "TLS is not enabled for cluster-local"
        );
    }
}
