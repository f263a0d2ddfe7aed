//! kube-rs, the client Swell's controllers use, against the real server: typed list,
//! watch from a resourceVersion, status patches, and a `watcher` that survives a server
//! restart by re-listing after 410 Expired.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::{PATIENCE, Server};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::time::Duration;
use swell_api::Service;

async fn client(server: &Server) -> kube::Client {
    let kc = Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": "example.com/app:1"}]}}}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn list_watch_and_patch_status() {
    let server = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let api: Api<Service> = Api::namespaced(client(&server).await, "default");

    let created = api
        .create(&PostParams::default(), &service("hello"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.spec.traffic[0].percent, Some(100), "defaulting ran");

    let list = api.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let rv = list.metadata.resource_version.unwrap();

    let mut events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &service("second"))
        .await
        .unwrap();
    match tokio::time::timeout(PATIENCE, events.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(s)) => assert_eq!(s.metadata.name.as_deref(), Some("second")),
        other => panic!("expected ADDED second, got {other:?}"),
    }

    let status = json!({"status": {"observedGeneration": 1, "url": "http://hello.default.localhost",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    let patched = api
        .patch_status("hello", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let st = patched.status.unwrap();
    assert_eq!(
        st.route.url.as_deref(),
        Some("http://hello.default.localhost")
    );
    assert_eq!(st.status.conditions[0].type_, "Ready");
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes keep the generation"
    );
    match tokio::time::timeout(PATIENCE, events.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Modified(s)) => assert_eq!(s.metadata.name.as_deref(), Some("hello")),
        other => panic!("expected MODIFIED hello, got {other:?}"),
    }

    let spec_in_status_patch = json!({"spec": {"template": {"spec": {"containerConcurrency": 7}}}});
    let unchanged = api
        .patch_status(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(&spec_in_status_patch),
        )
        .await
        .unwrap();
    assert_eq!(
        unchanged.spec.template.spec.container_concurrency,
        Some(0),
        "/status ignores spec"
    );
}

type Events = tokio::sync::mpsc::UnboundedReceiver<Result<watcher::Event<Service>, String>>;

/// Waits until the watcher reports the Service `want`.
/// Waits for an event about `want`; on timeout, says which errors the watcher saw last.
async fn wait_for(rx: &mut Events, want: &str) -> Result<(), String> {
    let mut errors = std::collections::VecDeque::new();
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await.expect("watcher stream ended") {
                Ok(watcher::Event::InitApply(s) | watcher::Event::Apply(s))
                    if s.metadata.name.as_deref() == Some(want) =>
                {
                    return;
                }
                Err(e) => {
                    if errors.len() == 5 {
                        errors.pop_front();
                    }
                    errors.push_back(e);
                }
                _ => {}
            }
        }
    })
    .await;
    found.map_err(|_| format!("no event for {want}; last watcher errors: {errors:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_relists_after_a_restart_with_an_expired_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let history = ["--watch-history", "5", "--no-controllers"];
    let mut server =
        tokio::task::spawn_blocking(move || Server::start_in(&path, "127.0.0.1:0", &history))
            .await
            .unwrap();
    let addr = server.addr.clone();
    let api: Api<Service> = Api::namespaced(client(&server).await, "default");
    api.create(&PostParams::default(), &service("before"))
        .await
        .unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn({
        let api = api.clone();
        async move {
            // Backing off as controllers do, so reconnects are paced while the server is down.
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = stream.next().await {
                if tx.send(event.map_err(|e| e.to_string())).is_err() {
                    break;
                }
            }
        }
    });
    wait_for(&mut rx, "before")
        .await
        .expect("the watcher sees the first object");

    tokio::task::block_in_place(|| assert!(server.stop(), "clean exit on SIGTERM"));
    {
        // While the server is down, more changes than it keeps for watches happen.
        let store = swell_store::RedbStore::open(
            &dir.path().join("swell.redb"),
            swell_store::StoreConfig {
                event_log_len: 5,
                ..Default::default()
            },
        )
        .unwrap();
        for i in 0..20 {
            let key = swell_store::ObjectKey::new(
                "serving.knative.dev",
                "services",
                "default",
                &format!("offline-{i}"),
            );
            let obj = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": key.name}, "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
            swell_store::Store::create(
                &store,
                &key,
                obj,
                &swell_store::WriteOptions {
                    track_generation: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
    }
    let path = dir.path().to_path_buf();
    let _restarted = tokio::task::spawn_blocking(move || Server::start_in(&path, &addr, &history))
        .await
        .unwrap();
    if let Err(e) = wait_for(&mut rx, "offline-19").await {
        let log = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().starts_with("server-"))
            .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
            .collect::<String>();
        panic!("the watcher re-lists and sees what changed while it was away: {e}\n{log}");
    }
    let seen_relist = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(e) = rx.recv().await {
            if matches!(e, Ok(watcher::Event::InitDone)) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(seen_relist, "the watcher completed a fresh list");
    watch.abort();
}
