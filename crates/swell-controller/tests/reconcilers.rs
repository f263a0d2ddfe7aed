//! Component tests of the reconcilers' IO halves: the controllers run in-process over
//! the API router and a fake backend, and each test asserts on the objects they write
//! through the API and on what they publish to the data plane.

mod common;

use common::{Env, INGRESS_PORT, condition, ready, split};
use kube::api::{Patch, PatchParams};
use serde_json::json;
use swell_api::{Configuration, DomainMapping, Revision, Route, Service, TrafficTarget};
use swell_controller::labels;
use swell_controller::revision::FINALIZER;

fn service(name: &str, env: &str) -> serde_json::Value {
    json!({"metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": "example.com/hello", "env": [{"name": "V", "value": env}]}]}}}})
}

fn configuration(name: &str, env: &str) -> serde_json::Value {
    json!({"metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": "example.com/hello", "env": [{"name": "V", "value": env}]}]}}}})
}

fn owned_by(meta: &kube::api::ObjectMeta, kind: &str, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == kind && r.uid == uid && r.controller == Some(true))
}

fn label<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// Changes the template of the Configuration `name` (a new env value) so that it stamps
/// a new Revision.
async fn change_template(env: &Env, name: &str, value: &str) {
    env.api::<Configuration>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
                {"image": "example.com/hello", "env": [{"name": "V", "value": value}]}]}}}})),
        )
        .await
        .expect("the Configuration is patched");
}

#[tokio::test]
async fn a_service_creates_its_configuration_and_route_and_becomes_ready() {
    let env = Env::start().await;
    let svc: Service = env.create(service("hello", "1")).await;
    let uid = svc.metadata.uid.clone().unwrap();

    let svc = env.eventually::<Service>("hello", "Ready", ready).await;
    let cfg = env
        .eventually::<Configuration>("hello", "exists", |_| true)
        .await;
    let route = env.eventually::<Route>("hello", "exists", |_| true).await;
    assert!(owned_by(&cfg.metadata, "Service", &uid), "{cfg:?}");
    assert!(owned_by(&route.metadata, "Service", &uid), "{route:?}");
    assert_eq!(label(&cfg.metadata, labels::SERVICE), Some("hello"));
    assert_eq!(
        route.spec.traffic,
        vec![TrafficTarget {
            configuration_name: Some("hello".into()),
            latest_revision: Some(true),
            percent: Some(100),
            ..Default::default()
        }]
    );

    let st = svc.status.clone().unwrap();
    assert_eq!(
        st.configuration.latest_ready_revision_name.as_deref(),
        Some("hello-00001")
    );
    assert_eq!(
        st.configuration.latest_created_revision_name.as_deref(),
        Some("hello-00001")
    );
    let url = format!("http://hello.default.localhost:{INGRESS_PORT}");
    assert_eq!(st.route.url.as_deref(), Some(url.as_str()));
    assert_eq!(st.status.observed_generation, svc.metadata.generation);
    for c in ["ConfigurationsReady", "RoutesReady"] {
        assert_eq!(
            condition(&svc, c).map(|c| c.0).as_deref(),
            Some("True"),
            "{c}"
        );
    }
    // The backend runs the Revision; the ingress sends the Service's host to it.
    assert_eq!(env.replicas("hello-00001"), 1);
    assert!(env.has_pool("hello-00001"));
    assert_eq!(
        env.split_of("hello.default.localhost"),
        Some(split(&[("hello-00001", 100)]))
    );
    env.stop().await;
}

#[tokio::test]
async fn a_configuration_stamps_a_revision_and_a_new_one_when_its_template_changes() {
    let env = Env::start().await;
    let cfg: Configuration = env.create(configuration("app", "1")).await;
    let uid = cfg.metadata.uid.clone().unwrap();

    let cfg = env
        .eventually::<Configuration>("app", "the first Revision ready", |c| {
            ready(c)
                && c.status.as_ref().is_some_and(|s| {
                    s.fields.latest_ready_revision_name.as_deref() == Some("app-00001")
                })
        })
        .await;
    assert_eq!(
        cfg.status
            .unwrap()
            .fields
            .latest_created_revision_name
            .as_deref(),
        Some("app-00001")
    );
    let first = env.api::<Revision>().get("app-00001").await.unwrap();
    assert!(
        owned_by(&first.metadata, "Configuration", &uid),
        "{first:?}"
    );
    assert_eq!(label(&first.metadata, labels::CONFIGURATION), Some("app"));
    assert_eq!(
        label(&first.metadata, labels::CONFIGURATION_GENERATION),
        Some("1")
    );
    assert_eq!(
        first.spec.pod_spec.containers[0].env.as_ref().unwrap()[0]
            .value
            .as_deref(),
        Some("1")
    );

    change_template(&env, "app", "2").await;
    let cfg = env
        .eventually::<Configuration>("app", "the second Revision ready", |c| {
            c.status.as_ref().is_some_and(|s| {
                s.fields.latest_ready_revision_name.as_deref() == Some("app-00002")
                    && s.status.observed_generation == c.metadata.generation
            })
        })
        .await;
    assert_eq!(cfg.metadata.generation, Some(2));
    let second = env.api::<Revision>().get("app-00002").await.unwrap();
    assert_eq!(
        label(&second.metadata, labels::CONFIGURATION_GENERATION),
        Some("2")
    );
    assert_eq!(
        second.spec.pod_spec.containers[0].env.as_ref().unwrap()[0]
            .value
            .as_deref(),
        Some("2")
    );
    // The first Revision stays (garbage collection keeps it for hours).
    env.api::<Revision>().get("app-00001").await.unwrap();
    env.stop().await;
}

#[tokio::test]
async fn a_revision_gets_its_finalizer_and_status_and_lets_go_when_deleted() {
    let env = Env::start().await;
    // A Revision made by hand has no finalizer; the Revision controller adds it.
    let rev: Revision = env
        .create(json!({"metadata": {"name": "solo"},
            "spec": {"containers": [{"image": "example.com/hello"}]}}))
        .await;
    assert!(
        rev.metadata
            .finalizers
            .iter()
            .flatten()
            .all(|f| f != FINALIZER)
    );

    let rev = env
        .eventually::<Revision>("solo", "Ready with the finalizer", |r| {
            ready(r)
                && r.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FINALIZER)
        })
        .await;
    let st = rev.status.clone().unwrap();
    assert_eq!(st.status.observed_generation, rev.metadata.generation);
    for c in ["ResourcesAvailable", "ContainerHealthy"] {
        assert_eq!(
            condition(&rev, c).map(|c| c.0).as_deref(),
            Some("True"),
            "{c}"
        );
    }
    assert_eq!(env.replicas("solo"), 1);
    assert!(env.has_pool("solo"));

    // Deleting it marks it; the controller tears down its replicas and pool and lets go.
    env.delete::<Revision>("solo").await;
    env.gone::<Revision>("solo").await;
    env.until("the replicas are torn down", || env.replicas("solo") == 0)
        .await;
    env.until("the pool is removed", || !env.has_pool("solo"))
        .await;
    env.stop().await;
}

#[tokio::test]
async fn a_route_resolves_latest_and_named_revisions_and_their_tags() {
    let env = Env::start().await;
    env.create::<Configuration>(configuration("app", "1")).await;
    env.eventually::<Revision>("app-00001", "Ready", ready)
        .await;
    change_template(&env, "app", "2").await;
    env.eventually::<Configuration>("app", "the second Revision ready", |c| {
        c.status
            .as_ref()
            .is_some_and(|s| s.fields.latest_ready_revision_name.as_deref() == Some("app-00002"))
    })
    .await;

    env.create::<Route>(json!({"metadata": {"name": "web"}, "spec": {"traffic": [
        {"configurationName": "app", "latestRevision": true, "percent": 70, "tag": "current"},
        {"revisionName": "app-00001", "percent": 30, "tag": "old"},
    ]}}))
    .await;
    let route = env.eventually::<Route>("web", "Ready", ready).await;
    let st = route.status.unwrap();
    assert_eq!(
        st.fields.url.as_deref(),
        Some(format!("http://web.default.localhost:{INGRESS_PORT}").as_str())
    );
    assert_eq!(
        st.fields.address.and_then(|a| a.url).as_deref(),
        Some("http://web.default.svc.cluster.local")
    );
    assert_eq!(
        st.fields.traffic,
        vec![
            TrafficTarget {
                tag: Some("current".into()),
                revision_name: Some("app-00002".into()),
                latest_revision: Some(true),
                percent: Some(70),
                url: Some(format!(
                    "http://current-web.default.localhost:{INGRESS_PORT}"
                )),
                ..Default::default()
            },
            TrafficTarget {
                tag: Some("old".into()),
                revision_name: Some("app-00001".into()),
                latest_revision: Some(false),
                percent: Some(30),
                url: Some(format!("http://old-web.default.localhost:{INGRESS_PORT}")),
                ..Default::default()
            },
        ]
    );
    // The data plane splits the Route's host, and each tag's host goes to its Revision.
    assert_eq!(
        env.split_of("web.default.localhost"),
        Some(split(&[("app-00002", 70), ("app-00001", 30)]))
    );
    assert_eq!(
        env.split_of("current-web.default.localhost"),
        Some(split(&[("app-00002", 100)]))
    );
    assert_eq!(
        env.split_of("old-web.default.localhost"),
        Some(split(&[("app-00001", 100)]))
    );
    // Both Revisions are routed to: `active`, naming the Route.
    for name in ["app-00001", "app-00002"] {
        let rev = env
            .eventually::<Revision>(name, "active", |r| {
                label(&r.metadata, labels::ROUTING_STATE) == Some("active")
            })
            .await;
        let routes = rev.metadata.annotations.unwrap_or_default();
        assert_eq!(routes.get(labels::ROUTES).map(String::as_str), Some("web"));
    }

    // A new latest Revision moves the `current` target and leaves the named one.
    change_template(&env, "app", "3").await;
    let route = env
        .eventually::<Route>("web", "the third Revision routed", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.fields
                    .traffic
                    .first()
                    .and_then(|t| t.revision_name.as_deref())
                    == Some("app-00003")
            })
        })
        .await;
    let traffic = route.status.unwrap().fields.traffic;
    assert_eq!(traffic[1].revision_name.as_deref(), Some("app-00001"));
    env.until("the ingress follows the new Revision", || {
        env.split_of("web.default.localhost")
            == Some(split(&[("app-00003", 70), ("app-00001", 30)]))
    })
    .await;
    env.stop().await;
}

#[tokio::test]
async fn a_route_naming_a_missing_revision_is_not_ready() {
    let env = Env::start().await;
    env.create::<Route>(json!({"metadata": {"name": "web"}, "spec": {"traffic": [
        {"revisionName": "nowhere", "percent": 100},
    ]}}))
    .await;
    let route = env
        .eventually::<Route>("web", "AllTrafficAssigned", |r| {
            condition(r, "AllTrafficAssigned").is_some()
        })
        .await;
    assert_eq!(
        condition(&route, "AllTrafficAssigned"),
        Some(("False".into(), "RevisionMissing".into()))
    );
    assert_eq!(
        condition(&route, "Ready").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert_eq!(env.split_of("web.default.localhost"), None);
    env.stop().await;
}

#[tokio::test]
async fn a_domain_mapping_is_ready_once_its_route_is() {
    let env = Env::start().await;
    let mapping = json!({"apiVersion": "serving.knative.dev/v1beta1", "kind": "DomainMapping",
        "metadata": {"name": "app.example.com"},
        "spec": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "hello"}}});
    env.create::<DomainMapping>(mapping).await;
    let dm = env
        .eventually::<DomainMapping>("app.example.com", "ReferenceResolved", |d| {
            condition(d, "ReferenceResolved").is_some()
        })
        .await;
    assert_eq!(
        condition(&dm, "ReferenceResolved"),
        Some(("False".into(), "ResolveFailed".into()))
    );
    assert!(!ready(&dm));
    let url = format!("http://app.example.com:{INGRESS_PORT}");
    assert_eq!(dm.status.unwrap().url.as_deref(), Some(url.as_str()));
    assert_eq!(env.split_of("app.example.com"), None);

    // The Service's Route appears and becomes ready: the mapping follows it.
    env.create::<Service>(service("hello", "1")).await;
    let dm = env
        .eventually::<DomainMapping>("app.example.com", "Ready", ready)
        .await;
    for c in [
        "DomainClaimed",
        "ReferenceResolved",
        "CertificateProvisioned",
        "IngressReady",
    ] {
        assert_eq!(
            condition(&dm, c).map(|c| c.0).as_deref(),
            Some("True"),
            "{c}"
        );
    }
    let st = dm.status.unwrap();
    assert_eq!(st.status.observed_generation, dm.metadata.generation);
    assert_eq!(
        st.address.and_then(|a| a.url).as_deref(),
        Some(url.as_str())
    );
    assert_eq!(
        env.split_of("app.example.com"),
        Some(split(&[("hello-00001", 100)]))
    );

    // Deleting the mapping unpublishes its host.
    env.delete::<DomainMapping>("app.example.com").await;
    env.gone::<DomainMapping>("app.example.com").await;
    env.until("the mapping's host is unpublished", || {
        env.split_of("app.example.com").is_none()
    })
    .await;
    env.stop().await;
}

#[tokio::test]
async fn deleting_a_service_removes_what_it_owns() {
    let env = Env::start().await;
    env.create::<Service>(service("hello", "1")).await;
    env.eventually::<Service>("hello", "Ready", ready).await;
    assert_eq!(env.replicas("hello-00001"), 1);

    env.delete::<Service>("hello").await;
    env.gone::<Service>("hello").await;
    env.gone::<Configuration>("hello").await;
    env.gone::<Route>("hello").await;
    // The Revision is held by its finalizer until its controller has torn it down.
    env.gone::<Revision>("hello-00001").await;
    env.until("the replicas are torn down", || {
        env.replicas("hello-00001") == 0
    })
    .await;
    env.until("the pool is removed", || !env.has_pool("hello-00001"))
        .await;
    env.until("the Service's host is unpublished", || {
        env.split_of("hello.default.localhost").is_none()
    })
    .await;
    env.stop().await;
}
