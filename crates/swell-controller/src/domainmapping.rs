//! DomainMapping → a hostname of its own for a Service or Route: the mapping's name is
//! published as one more host of the target Route's default traffic, and its status
//! carries Knative's conditions (`DomainClaimed`, `ReferenceResolved`,
//! `CertificateProvisioned`, `IngressReady`, `Ready`).

use crate::condition::{self, FALSE, TRUE, UNKNOWN};
use crate::{Ctx, ReconcileError, RouteKey, RoutingTable, Split};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use swell_api::{Addressable, DomainMapping, Route, TrafficTarget};
use swell_dataplane::TrafficGroup;

/// The key a mapping's host is published under (Route names have no `/`).
pub fn key(dm: &DomainMapping) -> RouteKey {
    RouteKey {
        namespace: dm.metadata.namespace.clone().unwrap_or_default(),
        name: format!(
            "domainmapping/{}",
            dm.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

/// The Route a mapping's reference names: a Service's Route has the Service's name.
pub fn route_name(dm: &DomainMapping) -> Option<&str> {
    let r = &dm.spec.reference;
    let knative = r.api_version.starts_with("serving.knative.dev/")
        || r.group.as_deref() == Some(swell_api::GROUP);
    (knative && matches!(r.kind.as_str(), "Service" | "Route")).then_some(r.name.as_str())
}

/// The mapping's default-traffic split: the resolved, untagged targets of the Route.
fn splits(traffic: &[TrafficTarget]) -> Vec<Split> {
    traffic
        .iter()
        .filter(|t| t.percent.unwrap_or(0) > 0)
        .filter_map(|t| {
            Some(Split {
                revision: t.revision_name.clone()?,
                percent: t.percent.unwrap_or(0),
            })
        })
        .collect()
}

/// Reconciles one DomainMapping.
pub async fn reconcile(dm: Arc<DomainMapping>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let key = key(&dm);
    if dm.metadata.deletion_timestamp.is_some() {
        ctx.ingress.remove(&key);
        return Ok(Action::await_change());
    }
    let name = dm.metadata.name.clone().unwrap_or_default();
    let ns = key.namespace.clone();
    let mut st = dm.status.clone().unwrap_or_default();
    st.status.observed_generation = dm.metadata.generation;
    let port = ctx.ingress_port.filter(|p| *p != 80);
    let url = match port {
        Some(p) => format!("http://{name}:{p}"),
        None => format!("http://{name}"),
    };
    st.url = Some(url.clone());
    st.address = Some(Addressable {
        url: Some(url),
        ..Default::default()
    });
    let conditions = &mut st.status.conditions;

    // The oldest mapping of a name (in any namespace) holds it.
    let all: Api<DomainMapping> = Api::all(ctx.client.clone());
    let claimed_elsewhere = all
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|other| {
            other.metadata.name == dm.metadata.name
                && other.metadata.namespace != dm.metadata.namespace
                && (
                    other.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    other.metadata.namespace.clone(),
                ) < (
                    dm.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    dm.metadata.namespace.clone(),
                )
        });
    if claimed_elsewhere {
        condition::set(
            conditions,
            "DomainClaimed",
            FALSE,
            "DomainAlreadyClaimed",
            &format!(
                "The domain name {name:?} is already used by a DomainMapping in another namespace"
            ),
        );
    } else {
        condition::set(conditions, "DomainClaimed", TRUE, "", "");
    }
    match &dm.spec.tls {
        Some(_) => condition::set(
            conditions,
            "CertificateProvisioned",
            FALSE,
            "TLSNotSupported",
            "Swell's ingress serves plain HTTP; remove spec.tls",
        ),
        None => condition::set(
            conditions,
            "CertificateProvisioned",
            TRUE,
            "TLSNotEnabled",
            "External TLS is not enabled for this DomainMapping",
        ),
    }

    let route = match route_name(&dm) {
        Some(r)
            if dm
                .spec
                .reference
                .namespace
                .as_deref()
                .is_none_or(|n| n == ns) =>
        {
            Api::<Route>::namespaced(ctx.client.clone(), &ns)
                .get_opt(r)
                .await?
        }
        _ => None,
    };
    let traffic = route.as_ref().and_then(|r| r.status.as_ref()).filter(|s| {
        condition::status_of(&s.status.conditions, "Ready").is_some_and(|c| c.status == TRUE)
    });
    match (&route, traffic) {
        (None, _) => {
            let r = &dm.spec.reference;
            condition::set(
                conditions,
                "ReferenceResolved",
                FALSE,
                "ResolveFailed",
                &format!(
                    "{} {:?} in namespace {ns:?} was not found (a DomainMapping maps to a Knative Service or Route in its own namespace)",
                    r.kind, r.name
                ),
            );
            condition::set(conditions, "IngressReady", UNKNOWN, "", "");
        }
        (Some(_), None) => {
            condition::set(conditions, "ReferenceResolved", TRUE, "", "");
            condition::set(
                conditions,
                "IngressReady",
                UNKNOWN,
                "RouteNotReady",
                "Waiting for the target Route to be ready",
            );
        }
        (Some(_), Some(_)) => {
            condition::set(conditions, "ReferenceResolved", TRUE, "", "");
            condition::set(conditions, "IngressReady", TRUE, "", "");
        }
    }
    condition::set_ready(
        conditions,
        &[
            "DomainClaimed",
            "ReferenceResolved",
            "CertificateProvisioned",
            "IngressReady",
        ],
    );
    let ready = condition::status_of(conditions, "Ready").is_some_and(|c| c.status == TRUE);
    match traffic {
        Some(status) if ready => ctx.ingress.publish(
            key,
            &RoutingTable {
                groups: vec![TrafficGroup {
                    tag: None,
                    public_host: Some(name.clone()),
                    local_hosts: Vec::new(),
                    splits: splits(&status.fields.traffic),
                }],
                tag_header_routing: false,
            },
        ),
        _ => ctx.ingress.remove(&key),
    }
    if dm.status.as_ref() != Some(&st) {
        Api::<DomainMapping>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": st})),
            )
            .await?;
    }
    Ok(Action::requeue(Duration::from_secs(if ready {
        300
    } else {
        2
    })))
}

/// The DomainMappings whose target is `route` (they follow its traffic).
pub fn mapping_route(dm: &DomainMapping, route: &Route) -> bool {
    dm.metadata.namespace == route.metadata.namespace
        && route_name(dm) == route.metadata.name.as_deref()
}
