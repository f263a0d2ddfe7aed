//! Random bodies sent to every write endpoint never crash the server, never get a 5xx,
//! and a refused request writes nothing.

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;
use swell_store::{ObjectKey, RedbStore, Store, StoreConfig};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9:/._-]{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        let keys = prop_oneof![
            Just("apiVersion".to_string()),
            Just("kind".to_string()),
            Just("metadata".to_string()),
            Just("name".to_string()),
            Just("spec".to_string()),
            Just("template".to_string()),
            Just("containers".to_string()),
            Just("image".to_string()),
            Just("traffic".to_string()),
            Just("percent".to_string()),
            Just("status".to_string()),
            Just("op".to_string()),
            Just("path".to_string()),
            Just("value".to_string()),
            Just("finalizers".to_string()),
            "[a-zA-Z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const RESOURCES: [&str; 5] = [
    "services",
    "configurations",
    "revisions",
    "routes",
    "domainmappings",
];

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<RedbStore>,
    app: axum::Router,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(RedbStore::open(&dir.path().join("s.redb"), StoreConfig::default()).unwrap());
    swell_apiserver::bootstrap(store.as_ref()).await.unwrap();
    let state = Arc::new(swell_apiserver::ApiState::new(
        store.clone(),
        "127.0.0.1:0".into(),
        CancellationToken::new(),
    ));
    Env {
        _dir: dir,
        store,
        app: swell_apiserver::router(state),
    }
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_writes_are_all_or_nothing(body in json_value(), resource in 0usize..5, verb in 0usize..5) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let env = env().await;
            let plural = RESOURCES[resource];
            let version = if plural == "domainmappings" { "v1beta1" } else { "v1" };
            let base = format!("/apis/serving.knative.dev/{version}/namespaces/default/{plural}");
            // One valid object to aim updates and patches at.
            let seed = json!({"metadata": {"name": "seed.example.com"}, "spec": {"ref": {"kind": "Service", "name": "x", "apiVersion": "serving.knative.dev/v1"}}});
            let seed = if plural == "domainmappings" { seed } else if plural == "routes" {
                json!({"metadata": {"name": "seed"}, "spec": {"traffic": [{"configurationName": "seed", "percent": 100}]}})
            } else if plural == "revisions" {
                json!({"metadata": {"name": "seed"}, "spec": {"containers": [{"image": "x"}]}})
            } else {
                json!({"metadata": {"name": "seed"}, "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
            };
            let name = seed["metadata"]["name"].as_str().unwrap().to_string();
            let (code, _) = send(&env.app, "POST", &base, "application/json", serde_json::to_vec(&seed).unwrap()).await;
            assert_eq!(code, 201);
            let key = ObjectKey::new("serving.knative.dev", plural, "default", &name);
            let before = env.store.get(&key).unwrap();
            let rv = env.store.resource_version().unwrap();

            let bytes = serde_json::to_vec(&body).unwrap();
            let item = format!("{base}/{name}");
            let (method, uri, ct) = match verb {
                0 => ("POST", base.as_str(), "application/json"),
                1 => ("PUT", item.as_str(), "application/json"),
                2 => ("PATCH", item.as_str(), "application/merge-patch+json"),
                3 => ("PATCH", item.as_str(), "application/json-patch+json"),
                _ => ("PUT", "", "application/json"),
            };
            let uri = if uri.is_empty() { format!("{item}/status") } else { uri.to_string() };
            let (code, resp) = send(&env.app, method, &uri, ct, bytes).await;
            assert!(code < 500, "{method} {uri} gave {code}: {resp}");
            if code >= 400 {
                assert_eq!(resp["kind"], "Status", "errors are Status objects: {resp}");
                assert_eq!(env.store.resource_version().unwrap(), rv, "a refused write changed the store");
                assert_eq!(env.store.get(&key).unwrap(), before);
            }
        });
    }
}
