//! Watch semantics and collection verbs through the real router, in-process, with paused
//! time so bookmark and timeout behaviour is checked without waiting.

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use swell_store::{RedbStore, StoreConfig};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";

struct Env {
    _dir: tempfile::TempDir,
    app: axum::Router,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(RedbStore::open(&dir.path().join("s.redb"), StoreConfig::default()).unwrap());
    swell_apiserver::bootstrap(store.as_ref()).await.unwrap();
    let state = Arc::new(swell_apiserver::ApiState::new(
        store,
        "127.0.0.1:0".into(),
        CancellationToken::new(),
    ));
    Env {
        _dir: dir,
        app: swell_apiserver::router(state),
    }
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: Value) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn service(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}, "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
}

/// Reads watch events (one JSON object per line) from a streaming response.
struct Events {
    body: Body,
    buf: Vec<u8>,
}

impl Events {
    async fn open(app: &axum::Router, query: &str) -> Self {
        let req = Request::get(format!("{SERVICES}?watch=true&{query}"))
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        Self {
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }

    /// The next event, or None when the stream ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let frame = self.body.frame().await?.unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn initial_events_bookmarks_and_timeouts() {
    let env = env().await;
    call(
        &env.app,
        "POST",
        SERVICES,
        service("a", json!({"tier": "web"})),
    )
    .await;
    call(
        &env.app,
        "POST",
        SERVICES,
        service("b", json!({"tier": "db"})),
    )
    .await;

    // rv=0: synthetic ADDED for what exists, filtered by the selector.
    let mut w = Events::open(&env.app, "resourceVersion=0&labelSelector=tier%3Dweb").await;
    let first = w.next().await.unwrap();
    assert_eq!(
        (
            first["type"].as_str(),
            first["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("a"))
    );

    // Watch-list: ADDED for everything, then the end-of-initial-events bookmark.
    let mut wl = Events::open(
        &env.app,
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    )
    .await;
    assert_eq!(wl.next().await.unwrap()["type"], "ADDED");
    assert_eq!(wl.next().await.unwrap()["type"], "ADDED");
    let end = wl.next().await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let (code, _) = call(
        &env.app,
        "GET",
        &format!("{SERVICES}?watch=true&sendInitialEvents=true"),
        json!({}),
    )
    .await;
    assert_eq!(
        code, 422,
        "sendInitialEvents without NotOlderThan is refused, not ignored"
    );

    // Periodic bookmarks (a minute apart; time is paused, so no real wait) and the timeout.
    let mut bm = Events::open(
        &env.app,
        "resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=150",
    )
    .await;
    assert_eq!(bm.next().await.unwrap()["type"], "ADDED");
    assert_eq!(bm.next().await.unwrap()["type"], "ADDED");
    let mark = bm.next().await.unwrap();
    assert_eq!(mark["type"], "BOOKMARK");
    assert_eq!(mark["object"]["kind"], "Service");
    assert!(
        mark["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert_eq!(bm.next().await.unwrap()["type"], "BOOKMARK");
    assert!(
        bm.next().await.is_none(),
        "the watch ends at timeoutSeconds"
    );

    // A live change reaches the filtered watch; a non-matching one does not.
    call(
        &env.app,
        "POST",
        SERVICES,
        service("c", json!({"tier": "db"})),
    )
    .await;
    call(
        &env.app,
        "POST",
        SERVICES,
        service("d", json!({"tier": "web"})),
    )
    .await;
    let live = w.next().await.unwrap();
    assert_eq!(
        (
            live["type"].as_str(),
            live["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("d"))
    );
}

#[tokio::test]
async fn expired_versions_get_an_error_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        RedbStore::open(
            &dir.path().join("s.redb"),
            StoreConfig {
                event_log_len: 3,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    swell_apiserver::bootstrap(store.as_ref()).await.unwrap();
    let app = swell_apiserver::router(Arc::new(swell_apiserver::ApiState::new(
        store,
        "x".into(),
        CancellationToken::new(),
    )));
    for i in 0..10 {
        call(&app, "POST", SERVICES, service(&format!("s{i}"), json!({}))).await;
    }
    let mut w = Events::open(&app, "resourceVersion=1").await;
    let err = w.next().await.unwrap();
    assert_eq!(err["type"], "ERROR");
    assert_eq!(err["object"]["code"], 410);
    assert_eq!(err["object"]["reason"], "Expired");
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn deletecollection_and_event_field_selectors() {
    let env = env().await;
    for (name, team) in [("a", "x"), ("b", "x"), ("c", "y")] {
        call(
            &env.app,
            "POST",
            SERVICES,
            service(name, json!({"team": team})),
        )
        .await;
    }
    let (code, deleted) = call(
        &env.app,
        "DELETE",
        &format!("{SERVICES}?labelSelector=team%3Dx"),
        json!({}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(deleted["items"].as_array().unwrap().len(), 2);
    let (_, left) = call(&env.app, "GET", SERVICES, json!({})).await;
    let names: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c"]);

    let events = "/api/v1/namespaces/default/events";
    let event = |name: &str, kind: &str, obj: &str| json!({"metadata": {"name": name}, "involvedObject": {"kind": kind, "name": obj, "namespace": "default"}, "reason": "Created", "message": "m", "type": "Normal"});
    assert_eq!(
        call(&env.app, "POST", events, event("e1", "Service", "c"))
            .await
            .0,
        201
    );
    assert_eq!(
        call(&env.app, "POST", events, event("e2", "Route", "c"))
            .await
            .0,
        201
    );
    let (_, found) = call(
        &env.app,
        "GET",
        &format!("{events}?fieldSelector=involvedObject.name%3Dc%2CinvolvedObject.kind%3DService"),
        json!({}),
    )
    .await;
    let names: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e1"]);
}

#[tokio::test]
async fn discovery_and_openapi_content_types() {
    let env = env().await;
    let req = Request::get("/apis")
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let resp = env.app.clone().oneshot(req).await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let resources = &body["items"][0]["versions"][0]["resources"];
    assert_eq!(resources[0]["resource"], "services");
    assert_eq!(resources[0]["shortNames"], json!(["kservice", "ksvc"]));

    let resp = env
        .app
        .clone()
        .oneshot(Request::get("/openapi/v2").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    let (code, doc) = call(
        &env.app,
        "GET",
        "/openapi/v3/apis/serving.knative.dev/v1",
        json!({}),
    )
    .await;
    assert_eq!(code, 200);
    let patch = &doc["paths"]["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"]
        ["patch"];
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none()
    );
}

/// An informer lists in pages, then watches from the list's resourceVersion. An object
/// created between two pages, behind the cursor, is in no page; the watch must
/// replay it, so every page answers with the first page's resourceVersion.
#[tokio::test]
async fn a_paged_list_then_a_watch_misses_nothing_written_between_pages() {
    let env = env().await;
    for name in ["b", "c", "d"] {
        call(&env.app, "POST", SERVICES, service(name, json!({}))).await;
    }
    let (code, first) = call(&env.app, "GET", &format!("{SERVICES}?limit=2"), json!({})).await;
    assert_eq!(code, 200);
    let listed_at = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // Written while the informer is between pages, and sorted before the cursor.
    call(&env.app, "POST", SERVICES, service("a", json!({}))).await;
    let (code, second) = call(
        &env.app,
        "GET",
        &format!("{SERVICES}?limit=2&continue={token}"),
        json!({}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(second["metadata"]["resourceVersion"], listed_at.as_str());
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first), ["b", "c"]);
    assert_eq!(names(&second), ["d"], "the pages do not see it");
    let mut w = Events::open(&env.app, &format!("resourceVersion={listed_at}")).await;
    let added = w.next().await.unwrap();
    assert_eq!(
        (
            added["type"].as_str(),
            added["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("a")),
        "the watch from the list's resourceVersion replays it"
    );
}
