//! What client-go users and Knative's conformance tests rely on: protobuf bodies for
//! every verb on the built-in kinds (encoded here with Kubernetes' own generated
//! messages), Knative's field error text, and the Kubernetes Service Knative makes for
//! each Route.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::{KUBECTL, Server, eventually, manifest};
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// client-go's protobuf body: the `k8s\0` prefix, then a runtime.Unknown holding the
/// type and the encoded object.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".to_vec(), unknown.encode_to_vec()].concat()
}

fn delete_options(opts: meta::DeleteOptions) -> Vec<u8> {
    envelope("v1", "DeleteOptions", opts.encode_to_vec())
}

/// The API as client-go's typed clientset talks to it.
struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn new(server: &Server) -> Self {
        Self {
            http: server.api_http().build().unwrap(),
            url: server.url.clone(),
        }
    }

    /// Sends `body` as protobuf, asking for protobuf or anything (as client-go does);
    /// returns the status code and the JSON answer.
    async fn send(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("content-type", PROTOBUF)
            .header("accept", "application/vnd.kubernetes.protobuf, */*")
            .body(body)
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with("application/json"),
            "client-go decodes JSON answers: {content_type}"
        );
        (code, resp.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_bodies_work_for_every_verb_on_built_in_kinds() {
    let server = Server::start();
    let api = Client::new(&server);
    let cms = "/api/v1/namespaces/default/configmaps";
    use reqwest::Method;

    // create
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some("settings".into()),
            labels: labels(&[("app", "web")]),
            annotations: labels(&[("note", "from client-go")]),
            ..Default::default()
        }),
        data: labels(&[("level", "debug")]),
        ..Default::default()
    };
    let (code, created) = api
        .send(
            Method::POST,
            cms,
            envelope("v1", "ConfigMap", cm.encode_to_vec()),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["data"], json!({"level": "debug"}));
    assert_eq!(created["metadata"]["labels"], json!({"app": "web"}));
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // update: client-go sends the whole object back, server-set fields included.
    let mut updated = cm.clone();
    let m = updated.metadata.as_mut().unwrap();
    m.namespace = Some("default".into());
    m.uid = Some(uid.clone());
    m.resource_version = Some(rv.clone());
    m.creation_timestamp = Some(meta::Time {
        seconds: Some(1_700_000_000),
        nanos: Some(0),
    });
    updated.data = labels(&[("level", "info")]);
    let (code, body) = api
        .send(
            Method::PUT,
            &format!("{cms}/settings"),
            envelope("v1", "ConfigMap", updated.encode_to_vec()),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"], json!({"level": "info"}));
    assert_eq!(body["metadata"]["uid"], json!(uid));
    // The resourceVersion in the body is a precondition: the old one conflicts.
    let (code, body) = api
        .send(
            Method::PUT,
            &format!("{cms}/settings"),
            envelope("v1", "ConfigMap", updated.encode_to_vec()),
        )
        .await;
    assert_eq!(code, 409, "{body}");

    // delete: DeleteOptions as protobuf, preconditions honoured.
    let wrong = delete_options(meta::DeleteOptions {
        preconditions: Some(meta::Preconditions {
            uid: Some("not-it".into()),
            resource_version: None,
        }),
        ..Default::default()
    });
    let (code, body) = api
        .send(Method::DELETE, &format!("{cms}/settings"), wrong)
        .await;
    assert_eq!(code, 409, "{body}");
    let right = delete_options(meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        propagation_policy: Some("Foreground".into()),
        ..Default::default()
    });
    let (code, body) = api
        .send(Method::DELETE, &format!("{cms}/settings"), right)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(api.get(&format!("{cms}/settings")).await.0, 404);

    // Secrets: bytes data, a dry-run delete that keeps it, a deletecollection.
    let secrets = "/api/v1/namespaces/default/secrets";
    for name in ["token-a", "token-b"] {
        let secret = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: Some(name.into()),
                labels: labels(&[("set", "tokens")]),
                ..Default::default()
            }),
            data: BTreeMap::from([("key".to_string(), vec![0u8, 1, 2])]),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let (code, body) = api
            .send(
                Method::POST,
                secrets,
                envelope("v1", "Secret", secret.encode_to_vec()),
            )
            .await;
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["data"], json!({"key": "AAEC"}));
    }
    let dry = delete_options(meta::DeleteOptions {
        dry_run: vec!["All".into()],
        ..Default::default()
    });
    let (code, body) = api
        .send(Method::DELETE, &format!("{secrets}/token-a"), dry)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(api.get(&format!("{secrets}/token-a")).await.0, 200);
    let background = delete_options(meta::DeleteOptions {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    });
    let (code, body) = api
        .send(
            Method::DELETE,
            &format!("{secrets}?labelSelector=set%3Dtokens"),
            background,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(api.get(&format!("{secrets}/token-b")).await.0, 404);

    // Events, as client-go's event recorder posts them.
    let event = core::Event {
        metadata: Some(meta::ObjectMeta {
            name: Some("hello.1".into()),
            ..Default::default()
        }),
        involved_object: Some(core::ObjectReference {
            kind: Some("Service".into()),
            namespace: Some("default".into()),
            name: Some("hello".into()),
            api_version: Some("serving.knative.dev/v1".into()),
            ..Default::default()
        }),
        reason: Some("Created".into()),
        message: Some("Created Route \"hello\"".into()),
        source: Some(core::EventSource {
            component: Some("service-controller".into()),
            host: None,
        }),
        first_timestamp: Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        }),
        last_timestamp: Some(meta::Time {
            seconds: Some(1_700_000_060),
            nanos: Some(0),
        }),
        count: Some(2),
        r#type: Some("Normal".into()),
        ..Default::default()
    };
    let (code, body) = api
        .send(
            Method::POST,
            "/api/v1/namespaces/default/events",
            envelope("v1", "Event", event.encode_to_vec()),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["involvedObject"]["name"], "hello");
    assert_eq!(body["reason"], "Created");
    assert_eq!(body["count"], 2);
    assert_eq!(body["type"], "Normal");
    assert_eq!(body["source"]["component"], "service-controller");
    assert_eq!(body["lastTimestamp"], "2023-11-14T22:14:20Z");

    // A body that is not protobuf is refused as such, not half decoded.
    let (code, body) = api
        .send(
            Method::DELETE,
            &format!("{secrets}/token-a"),
            b"k8s\0\x0a\x05ab".to_vec(),
        )
        .await;
    assert_eq!(code, 400, "{body}");
}

/// Knative's `TestServiceAccountValidation`, through the API: the error a client sees
/// holds `VALUE: PATH` and then Kubernetes' RFC 1123 message on the next line.
#[tokio::test(flavor = "multi_thread")]
async fn field_errors_read_as_knatives_webhook_writes_them() {
    let server = Server::start();
    let http = server.api_http().build().unwrap();
    let svc = json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "sa"},
        "spec": {"template": {"spec": {"serviceAccountName": "foo@bar.baz",
            "containers": [{"image": "example.com/app:1"}]}}}
    });
    let resp = http
        .post(format!(
            "{}/apis/serving.knative.dev/v1/namespaces/default/services",
            server.url
        ))
        .json(&svc)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let status: Value = resp.json().await.unwrap();
    let details = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
        characters, '-' or '.', and must start and end with an alphanumeric character (e.g. \
        'example.com', regex used for validation is \
        '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    assert_eq!(
        status["message"],
        format!(
            "admission webhook \"validation.webhook.serving.knative.dev\" denied the request: \
             validation failed: invalid value: foo@bar.baz: \
             spec.template.spec.serviceAccountName\n{details}"
        )
    );
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.template.spec.serviceAccountName"
    );
    // kubectl lists the causes.
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(&dir, "sa.json", &svc.to_string());
    let err = server.kubectl(KUBECTL).fails(&["create", "-f", &path]);
    assert!(
        err.contains("The Service \"sa\" is invalid")
            && err.contains("spec.template.spec.serviceAccountName: invalid value: foo@bar.baz"),
        "{err}"
    );
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap()
}

#[test]
fn each_route_has_the_kubernetes_service_knative_makes() {
    let server = Server::start_with(&["--backend", "fake"]);
    let k = server.kubectl(KUBECTL);
    let dir = tempfile::tempdir().unwrap();
    let ksvc = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: hello\n  labels:\n    team: a\n  annotations:\n    owner: alice\nspec:\n  template:\n    spec:\n      containers:\n        - image: example.com/app:1\n";
    k.ok(&["apply", "-f", &manifest(&dir, "hello.yaml", ksvc)]);

    let svc = eventually("the Route's Service", || {
        let out = k.run(&["get", "svc", "hello", "-o", "json"]);
        out.status
            .success()
            .then(|| json_of(&String::from_utf8_lossy(&out.stdout)))
    });
    let labels = &svc["metadata"]["labels"];
    assert_eq!(labels["serving.knative.dev/route"], "hello", "{svc}");
    assert_eq!(labels["serving.knative.dev/service"], "hello", "{svc}");
    assert_eq!(labels["team"], "a", "{svc}");
    let annotations = &svc["metadata"]["annotations"];
    assert_eq!(annotations["owner"], "alice", "{svc}");
    assert!(
        annotations["serving.knative.dev/creator"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{svc}"
    );
    let owner = &svc["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["controller"]),
        (&json!("Route"), &json!("hello"), &json!(true))
    );
    assert_eq!(svc["spec"]["type"], "ExternalName");
    assert_eq!(
        svc["spec"]["externalName"],
        "swell-ingress.knative-serving.svc.cluster.local"
    );

    // kubectl's columns.
    let table = k.ok(&["get", "svc", "hello"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..5],
        [
            "hello",
            "ExternalName",
            "<none>",
            "swell-ingress.knative-serving.svc.cluster.local",
            "80/TCP"
        ]
    );
    let yaml = k.ok(&["get", "svc", "hello", "-o", "yaml"]);
    assert!(
        yaml.contains("serving.knative.dev/route: hello") && yaml.contains("owner: alice"),
        "{yaml}"
    );

    let described = k.ok(&["describe", "svc", "hello"]);
    assert!(
        described.contains("ExternalName") && described.contains("serving.knative.dev/route=hello"),
        "{described}"
    );

    // The Knative Service's labels and annotations follow it to the Route's Service.
    k.ok(&["label", "ksvc", "hello", "team=b", "--overwrite"]);
    k.ok(&["annotate", "ksvc", "hello", "owner=bob", "--overwrite"]);
    eventually("the new label and annotation", || {
        let svc = json_of(&k.ok(&["get", "svc", "hello", "-o", "json"]));
        (svc["metadata"]["labels"]["team"] == "b"
            && svc["metadata"]["annotations"]["owner"] == "bob")
            .then_some(())
    });

    // Users cannot write these Services.
    for args in [
        vec!["delete", "svc", "hello"],
        vec!["label", "svc", "hello", "x=y"],
        vec!["create", "service", "clusterip", "mine", "--tcp=80:80"],
    ] {
        let err = k.fails(&args);
        assert!(
            err.to_lowercase().contains("forbidden") && err.contains("managed by Swell"),
            "{args:?}: {err}"
        );
    }

    // The ingress is published where Knative's conformance tests look for a gateway.
    let ingress = json_of(&k.ok(&[
        "get",
        "svc",
        "swell-ingress",
        "-n",
        "knative-serving",
        "-o",
        "json",
    ]));
    assert_eq!(ingress["spec"]["type"], "LoadBalancer");
    assert_eq!(
        ingress["status"]["loadBalancer"]["ingress"][0]["ip"],
        "127.0.0.1"
    );
    assert_eq!(
        ingress["spec"]["ports"][0]["port"],
        json!(server.ingress_port())
    );

    // Deleting the Knative Service deletes the Route and so its Service.
    k.ok(&["delete", "ksvc", "hello"]);
    eventually("the Route's Service to go", || {
        let out = k.run(&["get", "svc", "hello"]);
        String::from_utf8_lossy(&out.stderr)
            .contains("NotFound")
            .then_some(())
    });
}
