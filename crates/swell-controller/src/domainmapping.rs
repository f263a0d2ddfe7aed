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
use swell_api::{Addressable, DomainMapping, DomainMappingStatus, Route};
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

/// The Route the mapping targets: the one its reference names, when that is in the
/// mapping's own namespace (a mapping cannot reach across namespaces).
pub fn target_route(dm: &DomainMapping) -> Option<&str> {
    let ns = dm.metadata.namespace.as_deref().unwrap_or_default();
    route_name(dm).filter(|_| {
        dm.spec
            .reference
            .namespace
            .as_deref()
            .is_none_or(|n| n == ns)
    })
}

/// True when an older mapping of the same name in another namespace holds the name
/// (the oldest holds it; creation time, then namespace, breaks ties).
pub fn claimed_elsewhere(dm: &DomainMapping, all: &[DomainMapping]) -> bool {
    let age = |m: &DomainMapping| {
        (
            m.metadata.creation_timestamp.as_ref().map(|t| t.0),
            m.metadata.namespace.clone(),
        )
    };
    all.iter().any(|other| {
        other.metadata.name == dm.metadata.name
            && other.metadata.namespace != dm.metadata.namespace
            && age(other) < age(dm)
    })
}

/// The mapping's status, from what was found: whether another namespace holds the name,
/// and the target Route (if it exists). `port` is the ingress's, shown in the URL unless
/// it is 80.
pub fn domain_mapping_status(
    dm: &DomainMapping,
    claimed_elsewhere: bool,
    route: Option<&Route>,
    port: Option<u16>,
) -> DomainMappingStatus {
    let name = dm.metadata.name.as_deref().unwrap_or_default();
    let ns = dm.metadata.namespace.as_deref().unwrap_or_default();
    let mut st = dm.status.clone().unwrap_or_default();
    st.status.observed_generation = dm.metadata.generation;
    let url = match port.filter(|p| *p != 80) {
        Some(p) => format!("http://{name}:{p}"),
        None => format!("http://{name}"),
    };
    st.url = Some(url.clone());
    st.address = Some(Addressable {
        url: Some(url),
        ..Default::default()
    });
    let conditions = &mut st.status.conditions;
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
    match route {
        None => {
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
        Some(route) if route_ready(route) => {
            condition::set(conditions, "ReferenceResolved", TRUE, "", "");
            condition::set(conditions, "IngressReady", TRUE, "", "");
        }
        Some(_) => {
            condition::set(conditions, "ReferenceResolved", TRUE, "", "");
            condition::set(
                conditions,
                "IngressReady",
                UNKNOWN,
                "RouteNotReady",
                "Waiting for the target Route to be ready",
            );
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
    st
}

/// True when the Route's `Ready` condition is `True`.
fn route_ready(route: &Route) -> bool {
    route
        .status
        .as_ref()
        .and_then(|s| condition::status_of(&s.status.conditions, "Ready"))
        .is_some_and(|c| c.status == TRUE)
}

/// The routing table of a ready mapping: its name as one more public host of the
/// Route's default traffic (the resolved targets with a share of it).
pub fn routing_table(dm: &DomainMapping, route: &Route) -> RoutingTable {
    let traffic = route
        .status
        .as_ref()
        .map(|s| s.fields.traffic.as_slice())
        .unwrap_or_default();
    let splits = traffic
        .iter()
        .filter(|t| t.percent.unwrap_or(0) > 0)
        .filter_map(|t| {
            Some(Split {
                revision: t.revision_name.clone()?,
                percent: t.percent.unwrap_or(0),
            })
        })
        .collect();
    RoutingTable {
        groups: vec![TrafficGroup {
            tag: None,
            public_host: dm.metadata.name.clone(),
            local_hosts: Vec::new(),
            splits,
        }],
        tag_header_routing: false,
    }
}

/// Reconciles one DomainMapping: reads every mapping (to see who holds the name) and
/// the target Route, writes the status if it changed, and publishes the mapping's host
/// while it is ready.
pub async fn reconcile(dm: Arc<DomainMapping>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let key = key(&dm);
    if dm.metadata.deletion_timestamp.is_some() {
        ctx.ingress.remove(&key);
        return Ok(Action::await_change());
    }
    let name = dm.metadata.name.clone().unwrap_or_default();
    let all = Api::<DomainMapping>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let route = match target_route(&dm) {
        Some(r) => {
            Api::<Route>::namespaced(ctx.client.clone(), &key.namespace)
                .get_opt(r)
                .await?
        }
        None => None,
    };
    let st = domain_mapping_status(
        &dm,
        claimed_elsewhere(&dm, &all),
        route.as_ref(),
        ctx.ingress_port,
    );
    let ready =
        condition::status_of(&st.status.conditions, "Ready").is_some_and(|c| c.status == TRUE);
    match route.as_ref().filter(|_| ready) {
        Some(route) => {
            let table = routing_table(&dm, route);
            ctx.ingress.publish(key.clone(), &table);
        }
        None => ctx.ingress.remove(&key),
    }
    if dm.status.as_ref() != Some(&st) {
        Api::<DomainMapping>::namespaced(ctx.client.clone(), &key.namespace)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(namespace: &str, created: &str, spec: serde_json::Value) -> DomainMapping {
        serde_json::from_value(
            json!({"metadata": {"name": "app.example.com", "namespace": namespace,
            "generation": 3, "creationTimestamp": created}, "spec": spec}),
        )
        .unwrap()
    }

    fn to_service(name: &str) -> serde_json::Value {
        json!({"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}})
    }

    fn route(ready: &str, traffic: serde_json::Value) -> Route {
        serde_json::from_value(
            json!({"metadata": {"name": "hello", "namespace": "default"},
            "status": {"conditions": [{"type": "Ready", "status": ready}], "traffic": traffic}}),
        )
        .unwrap()
    }

    fn cond(st: &DomainMappingStatus, type_: &str) -> (String, String) {
        let c = condition::status_of(&st.status.conditions, type_).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn a_mapping_to_a_ready_route_is_ready() {
        let dm = mapping("default", "2024-01-01T00:00:00Z", to_service("hello"));
        let r = route(
            "True",
            json!([{"revisionName": "hello-00001", "percent": 100}]),
        );
        let st = domain_mapping_status(&dm, false, Some(&r), Some(8080));
        assert_eq!(st.url.as_deref(), Some("http://app.example.com:8080"));
        assert_eq!(
            st.address.as_ref().and_then(|a| a.url.as_deref()),
            Some("http://app.example.com:8080")
        );
        assert_eq!(st.status.observed_generation, Some(3));
        for c in [
            "DomainClaimed",
            "ReferenceResolved",
            "IngressReady",
            "Ready",
        ] {
            assert_eq!(cond(&st, c).0, TRUE, "{c}");
        }
        assert_eq!(
            cond(&st, "CertificateProvisioned"),
            (TRUE.into(), "TLSNotEnabled".into())
        );
        // Port 80 is the scheme's own and is not shown.
        let st = domain_mapping_status(&dm, false, Some(&r), Some(80));
        assert_eq!(st.url.as_deref(), Some("http://app.example.com"));
    }

    #[test]
    fn a_missing_or_unready_route_keeps_the_mapping_waiting() {
        let dm = mapping("default", "2024-01-01T00:00:00Z", to_service("hello"));
        let st = domain_mapping_status(&dm, false, None, None);
        assert_eq!(
            cond(&st, "ReferenceResolved"),
            (FALSE.into(), "ResolveFailed".into())
        );
        assert_eq!(cond(&st, "IngressReady").0, UNKNOWN);
        assert_eq!(cond(&st, "Ready").0, FALSE);

        let r = route("Unknown", json!([]));
        let st = domain_mapping_status(&dm, false, Some(&r), None);
        assert_eq!(cond(&st, "ReferenceResolved").0, TRUE);
        assert_eq!(
            cond(&st, "IngressReady"),
            (UNKNOWN.into(), "RouteNotReady".into())
        );
        assert_eq!(cond(&st, "Ready").0, UNKNOWN);
    }

    #[test]
    fn a_name_held_elsewhere_or_tls_fails_the_mapping() {
        let dm = mapping("default", "2024-01-01T00:00:00Z", to_service("hello"));
        let r = route("True", json!([]));
        let st = domain_mapping_status(&dm, true, Some(&r), None);
        assert_eq!(
            cond(&st, "DomainClaimed"),
            (FALSE.into(), "DomainAlreadyClaimed".into())
        );
        assert_eq!(cond(&st, "Ready").0, FALSE);

        let mut spec = to_service("hello");
        spec["tls"] = json!({"secretName": "cert"});
        let dm = mapping("default", "2024-01-01T00:00:00Z", spec);
        let st = domain_mapping_status(&dm, false, Some(&r), None);
        assert_eq!(
            cond(&st, "CertificateProvisioned"),
            (FALSE.into(), "TLSNotSupported".into())
        );
        assert_eq!(cond(&st, "Ready").0, FALSE);
    }

    #[test]
    fn the_oldest_mapping_of_a_name_holds_it() {
        let old = mapping("a", "2024-01-01T00:00:00Z", to_service("x"));
        let new = mapping("b", "2024-02-01T00:00:00Z", to_service("x"));
        let twin = mapping("c", "2024-02-01T00:00:00Z", to_service("x"));
        let all = [old.clone(), new.clone(), twin.clone()];
        assert!(!claimed_elsewhere(&old, &all));
        assert!(claimed_elsewhere(&new, &all));
        // Created at the same time: the namespace decides.
        assert!(!claimed_elsewhere(&new, &[new.clone(), twin.clone()]));
        assert!(claimed_elsewhere(&twin, &[new, twin.clone()]));
    }

    #[test]
    fn only_knative_targets_in_the_mapping_namespace_are_routes() {
        let dm = |reference: serde_json::Value| {
            mapping("default", "2024-01-01T00:00:00Z", json!({"ref": reference}))
        };
        let svc = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "s"});
        assert_eq!(target_route(&dm(svc.clone())), Some("s"));
        let mut here = svc.clone();
        here["namespace"] = json!("default");
        assert_eq!(target_route(&dm(here)), Some("s"));
        let mut elsewhere = svc;
        elsewhere["namespace"] = json!("other");
        assert_eq!(target_route(&dm(elsewhere)), None);
        let k8s = json!({"apiVersion": "v1", "kind": "Service", "name": "s"});
        assert_eq!(target_route(&dm(k8s)), None);
    }

    #[test]
    fn a_ready_mapping_publishes_the_route_default_traffic_under_its_name() {
        let dm = mapping("default", "2024-01-01T00:00:00Z", to_service("hello"));
        let r = route(
            "True",
            json!([
                {"revisionName": "hello-00002", "percent": 80},
                {"revisionName": "hello-00001", "percent": 20, "tag": "old"},
                {"revisionName": "hello-00003", "percent": 0, "tag": "next"},
            ]),
        );
        let table = routing_table(&dm, &r);
        assert!(!table.tag_header_routing);
        assert_eq!(table.groups.len(), 1);
        let g = &table.groups[0];
        assert_eq!(g.public_host.as_deref(), Some("app.example.com"));
        assert_eq!((g.tag.as_deref(), g.local_hosts.len()), (None, 0));
        let splits: Vec<(&str, i64)> = g
            .splits
            .iter()
            .map(|s| (s.revision.as_str(), s.percent))
            .collect();
        assert_eq!(splits, [("hello-00002", 80), ("hello-00001", 20)]);
    }
}
