//! Kubernetes Events (core `v1`) that reconcilers record on the objects they act for,
//! so `kubectl describe` shows what happened.

use crate::condition::now;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use kube::Resource;
use kube::api::{Api, PostParams};

/// The component named in every Event.
pub const COMPONENT: &str = "swell-controller";

/// Records an Event about `obj`. Failing to record is logged, never fatal.
pub async fn record<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    obj: &K,
    type_: &str,
    reason: &str,
    message: String,
) {
    let meta = obj.meta();
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let name = meta.name.clone().unwrap_or_default();
    let stamp = jiff::Timestamp::now().as_nanosecond();
    let event = Event {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{name}.{stamp:x}")),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::api_version(&()).to_string()),
            kind: Some(K::kind(&()).to_string()),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            field_path: None,
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        count: Some(1),
        first_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            now().parse().unwrap_or_default(),
        )),
        last_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            now().parse().unwrap_or_default(),
        )),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(COMPONENT.into()),
        ..Default::default()
    };
    if let Err(e) = Api::<Event>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &event)
        .await
    {
        tracing::debug!(error = %e, reason, "cannot record event");
    }
}
