//! The Kubernetes Services Knative makes for a Route (one for the Route, one per tag,
//! each named after its host), and the Service that publishes the ingress itself.

use crate::ReconcileError;
use crate::labels;
use crate::owner::{controller_ref, is_controlled_by};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Service as KubeService, ServicePort, ServiceSpec,
    ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::collections::BTreeMap;
use swell_api::Route;
use swell_api::config::ServingConfig;

/// The label naming the Route a Kubernetes Service was made for.
pub const ROUTE: &str = "serving.knative.dev/route";

/// Where the ingress is published as a Kubernetes Service.
pub const INGRESS_NAMESPACE: &str = "knative-serving";
/// The name of the ingress's Kubernetes Service.
pub const INGRESS_SERVICE: &str = "swell-ingress";

/// The in-cluster name of the ingress, which every Route's Service points at
/// (Knative's `status.privateLoadBalancer.ingress[0].domainInternal`).
pub fn ingress_internal_name() -> String {
    format!(
        "{INGRESS_SERVICE}.{INGRESS_NAMESPACE}.svc.{}",
        crate::route::CLUSTER_DOMAIN
    )
}

/// The name of the Service for the Route or one of its tags: the first label of its
/// host, as Knative's `HostnameFromTemplate` gives it.
fn hostname(route: &Route, tag: Option<&str>, cfg: &ServingConfig) -> String {
    let name = route.metadata.name.as_deref().unwrap_or_default();
    match tag {
        Some(t) => cfg
            .network
            .tag_template
            .replace("{{.Tag}}", t)
            .replace("{{.Name}}", name),
        None => name.to_string(),
    }
}

/// Knative's `MakeK8sService` for a Route whose ingress has an internal domain: an
/// `ExternalName` Service named after the host, labelled with the Route's labels (but
/// its visibility) and `serving.knative.dev/route`, annotated with the Route's
/// annotations, controlled by the Route.
pub fn make_services(route: &Route, cfg: &ServingConfig) -> Vec<KubeService> {
    let name = route.metadata.name.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = route
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != labels::VISIBILITY)
        .collect();
    labels.insert(ROUTE.into(), name);
    let mut tags: Vec<Option<&str>> = vec![None];
    for t in &route.spec.traffic {
        if let Some(tag) = t.tag.as_deref()
            && !tags.contains(&Some(tag))
        {
            tags.push(Some(tag));
        }
    }
    tags.into_iter()
        .map(|tag| KubeService {
            metadata: ObjectMeta {
                name: Some(hostname(route, tag, cfg)),
                namespace: route.metadata.namespace.clone(),
                labels: Some(labels.clone()),
                annotations: route.metadata.annotations.clone().filter(|a| !a.is_empty()),
                owner_references: Some(vec![controller_ref(
                    "serving.knative.dev/v1",
                    "Route",
                    &route.metadata,
                )]),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(ingress_internal_name()),
                session_affinity: Some("None".into()),
                ports: Some(vec![ServicePort {
                    name: Some("http2".into()),
                    app_protocol: Some("kubernetes.io/h2c".into()),
                    // Kubernetes' default, written out so that what is stored is what
                    // this makes.
                    protocol: Some("TCP".into()),
                    port: 80,
                    target_port: Some(IntOrString::Int(80)),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        })
        .collect()
}

/// What a reconcile compares: what the Route decides, nothing the server fills.
fn same(a: &KubeService, b: &KubeService) -> bool {
    let meta = |s: &KubeService| {
        (
            s.metadata.labels.clone().unwrap_or_default(),
            s.metadata.annotations.clone().unwrap_or_default(),
            s.metadata.owner_references.clone().unwrap_or_default(),
        )
    };
    let spec = |s: &KubeService| {
        let spec = s.spec.clone().unwrap_or_default();
        (spec.type_, spec.external_name, spec.ports)
    };
    meta(a) == meta(b) && spec(a) == spec(b)
}

/// `want` as an update of `have`: labels and annotations are the union of both,
/// `want`'s values winning, as Knative's Route reconciler updates them (a label or
/// annotation removed from the Knative Service stays on the Route's Service; upstream's
/// `TestLabelPropagation` and `TestAnnotationPropagation` check for it).
fn kept_with(have: &KubeService, want: &KubeService) -> KubeService {
    let union = |have: &Option<BTreeMap<String, String>>,
                 want: &Option<BTreeMap<String, String>>| {
        let mut all = have.clone().unwrap_or_default();
        all.extend(want.clone().unwrap_or_default());
        (!all.is_empty()).then_some(all)
    };
    let mut next = want.clone();
    next.metadata.labels = union(&have.metadata.labels, &want.metadata.labels);
    next.metadata.annotations = union(&have.metadata.annotations, &want.metadata.annotations);
    next.metadata.resource_version = have.metadata.resource_version.clone();
    next.metadata.uid = have.metadata.uid.clone();
    next
}

/// Creates or updates the Route's Kubernetes Services and deletes those it no longer
/// has (a tag removed). A Service of that name the Route does not control is left
/// alone.
pub async fn reconcile(
    client: &kube::Client,
    route: &Route,
    cfg: &ServingConfig,
) -> Result<(), ReconcileError> {
    let ns = route.metadata.namespace.clone().unwrap_or_default();
    let route_name = route.metadata.name.clone().unwrap_or_default();
    let uid = route.metadata.uid.clone().unwrap_or_default();
    let api: Api<KubeService> = Api::namespaced(client.clone(), &ns);
    let desired = make_services(route, cfg);
    for want in &desired {
        let name = want.metadata.name.clone().unwrap_or_default();
        match api.get_opt(&name).await? {
            None => {
                api.create(&PostParams::default(), want).await?;
            }
            Some(have) if !is_controlled_by(&have.metadata, &uid) => {
                tracing::warn!(%ns, service = %name, route = %route_name, "a Service of that name exists and is not the Route's");
            }
            Some(have) => {
                let next = kept_with(&have, want);
                if !same(&have, &next) {
                    api.replace(&name, &PostParams::default(), &next).await?;
                }
            }
        }
    }
    let selector = format!("{ROUTE}={route_name}");
    for have in api.list(&ListParams::default().labels(&selector)).await? {
        let name = have.metadata.name.clone().unwrap_or_default();
        if is_controlled_by(&have.metadata, &uid)
            && !desired
                .iter()
                .any(|d| d.metadata.name.as_deref() == Some(name.as_str()))
        {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The Service that publishes the ingress: `LoadBalancer`, its address as the load
/// balancer's IP, the ingress port as its port and nodePort. Knative's conformance tests read the
/// ingress address from such a Service (`GATEWAY_OVERRIDE`, `GATEWAY_NAMESPACE_OVERRIDE`).
pub fn make_ingress_service(address: std::net::SocketAddr) -> KubeService {
    let ip = match address.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let port = i32::from(address.port());
    KubeService {
        metadata: ObjectMeta {
            name: Some(INGRESS_SERVICE.into()),
            namespace: Some(INGRESS_NAMESPACE.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "swell-ingress".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                name: Some("http2".into()),
                port,
                target_port: Some(IntOrString::Int(port)),
                // The ingress listens on this port of this machine, the node: clients
                // given the node's address (knative.dev/pkg's spoofing client with
                // `-ingressendpoint`) use the nodePort of port 80.
                node_port: Some(port),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip.to_string()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        }),
    }
}

/// Creates or updates the ingress's Service for the ingress listening at `address`.
pub async fn publish_ingress(
    client: &kube::Client,
    address: std::net::SocketAddr,
) -> Result<(), kube::Error> {
    let api: Api<KubeService> = Api::namespaced(client.clone(), INGRESS_NAMESPACE);
    let want = make_ingress_service(address);
    match api.get_opt(INGRESS_SERVICE).await? {
        None => {
            api.create(&PostParams::default(), &want).await?;
        }
        Some(have) if have.spec == want.spec && have.status == want.status => {}
        Some(have) => {
            let mut next = want;
            next.metadata.resource_version = have.metadata.resource_version;
            api.replace(INGRESS_SERVICE, &PostParams::default(), &next)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_update_keeps_labels_and_annotations_the_knative_service_dropped() {
        let svc = |labels: serde_json::Value, annotations: serde_json::Value| -> KubeService {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "hello", "labels": labels, "annotations": annotations}
            }))
            .unwrap()
        };
        let have = svc(
            serde_json::json!({"team": "a", "juicy": "yes"}),
            serde_json::json!({"owner": "alice", "juicy": "jamba"}),
        );
        let want = svc(
            serde_json::json!({"team": "b"}),
            serde_json::json!({"owner": "bob"}),
        );
        let next = kept_with(&have, &want);
        assert_eq!(
            serde_json::to_value(&next.metadata.labels).unwrap(),
            serde_json::json!({"team": "b", "juicy": "yes"})
        );
        assert_eq!(
            serde_json::to_value(&next.metadata.annotations).unwrap(),
            serde_json::json!({"owner": "bob", "juicy": "jamba"})
        );
        assert!(
            same(&kept_with(&next, &want), &next),
            "nothing more to write"
        );
    }

    #[test]
    fn a_route_has_a_service_per_host_with_its_labels_and_annotations() {
        let route: Route = serde_json::from_value(json!({
            "metadata": {"name": "hello", "namespace": "team", "uid": "u-1",
                "labels": {"serving.knative.dev/service": "hello", labels::VISIBILITY: "cluster-local"},
                "annotations": {"serving.knative.dev/creator": "alice"}},
            "spec": {"traffic": [{"percent": 100, "latestRevision": true, "tag": "cur"}]},
        }))
        .unwrap();
        let made = make_services(&route, &ServingConfig::default());
        let names: Vec<_> = made
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["hello", "cur-hello"]);
        let svc = serde_json::to_value(&made[0]).unwrap();
        assert_eq!(
            svc["metadata"]["labels"],
            json!({"serving.knative.dev/service": "hello", "serving.knative.dev/route": "hello"})
        );
        assert_eq!(
            svc["metadata"]["annotations"],
            json!({"serving.knative.dev/creator": "alice"})
        );
        assert_eq!(svc["metadata"]["ownerReferences"][0]["kind"], "Route");
        assert_eq!(svc["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(
            svc["spec"],
            json!({"type": "ExternalName", "externalName": "swell-ingress.knative-serving.svc.cluster.local",
                   "sessionAffinity": "None",
                   "ports": [{"name": "http2", "appProtocol": "kubernetes.io/h2c", "protocol": "TCP", "port": 80, "targetPort": 80}]})
        );
    }

    #[test]
    fn the_ingress_service_names_a_reachable_address() {
        let svc = make_ingress_service("0.0.0.0:8080".parse().unwrap());
        let v = serde_json::to_value(&svc).unwrap();
        assert_eq!(v["status"]["loadBalancer"]["ingress"][0]["ip"], "127.0.0.1");
        assert_eq!(v["spec"]["ports"][0]["port"], 8080);
    }
}
