//! Acknowledged writes survive `kill -9` and restart; resourceVersions keep increasing; a
//! Revision deleted while the server is down is cleaned up on the next start.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::Server;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";

fn service(name: &str) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"template": {"spec": {"containers": [{"image": "example.com/app:1"}]}}}})
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut server =
        tokio::task::spawn_blocking(move || Server::start_in(&path, "127.0.0.1:0", &[]))
            .await
            .unwrap();
    let base = server.url.clone();
    let http = server.api_http().build().unwrap();

    // Writers keep creating Services while the server is killed under them.
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, base, stop, acks) = (http.clone(), base.clone(), stop.clone(), acks.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("w{w}-{i}");
                match http
                    .post(format!("{base}{SERVICES}"))
                    .json(&service(&name))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 201 => {
                        acked.push((name, rv(&r.json::<Value>().await.unwrap())));
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::task::block_in_place(|| {
        common::eventually("40 acknowledged writes", || {
            (acks.load(Ordering::Relaxed) >= 40).then_some(())
        });
        server.kill9();
    });
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() >= 40,
        "writes were acknowledged before the kill ({})",
        acked.len()
    );
    let highest = acked.iter().map(|(_, rv)| *rv).max().unwrap();

    let path = dir.path().to_path_buf();
    let restarted =
        tokio::task::spawn_blocking(move || Server::start_in(&path, "127.0.0.1:0", &[]))
            .await
            .unwrap();
    let list: Value = http
        .get(format!("{}{SERVICES}", restarted.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: std::collections::HashSet<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    for (name, _) in &acked {
        assert!(
            names.contains(name.as_str()),
            "acknowledged {name} was lost"
        );
    }
    for item in list["items"].as_array().unwrap() {
        assert_eq!(
            item["spec"]["template"]["spec"]["containers"][0]["image"], "example.com/app:1",
            "no partially written object"
        );
    }
    let after: Value = http
        .post(format!("{}{SERVICES}", restarted.url))
        .json(&service("after-restart"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        rv(&after) > highest,
        "resourceVersion {} must exceed {highest} from before the crash",
        rv(&after)
    );
}

#[test]
fn a_revision_deleted_while_the_server_is_down_is_cleaned_up_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), "127.0.0.1:0", &["--backend", "process"]);
    let yaml = common::apps::service("gone", "helloworld", "", "");
    common::apps::apply_ready(&server, "gone", &yaml);
    let k = server.kubectl(common::KUBECTL);
    assert_eq!(
        k.ok(&[
            "get",
            "revision",
            "gone-00001",
            "-o",
            "jsonpath={.metadata.finalizers}"
        ]),
        r#"["revisions.serving.knative.dev"]"#,
        "the Configuration stamps Revisions with the finalizer"
    );
    let logs = dir.path().join("replicas/logs/default/gone-00001");
    assert!(logs.is_dir(), "{} holds the replica's log", logs.display());
    assert!(server.stop(), "clean exit on SIGTERM");

    // While the server is down, the Service goes, and with it its Configuration; the
    // Revision stays, marked for deletion, held by its finalizer.
    {
        use swell_store::{DeleteOptions, ObjectKey, Store};
        let store =
            swell_store::RedbStore::open(&dir.path().join("swell.redb"), Default::default())
                .unwrap();
        let key = |plural: &str, name: &str| {
            ObjectKey::new("serving.knative.dev", plural, "default", name)
        };
        store
            .delete(&key("services", "gone"), &DeleteOptions::default())
            .wait()
            .unwrap();
        assert!(store.get(&key("configurations", "gone")).unwrap().is_none());
        let held = store.get(&key("revisions", "gone-00001")).unwrap().unwrap();
        assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    }

    let server = Server::start_in(dir.path(), "127.0.0.1:0", &["--backend", "process"]);
    let k = server.kubectl(common::KUBECTL);
    common::eventually("the Revision to be gone", || {
        let out = k.run(&[
            "get",
            "revision",
            "gone-00001",
            "--ignore-not-found",
            "-o",
            "name",
        ]);
        (out.status.success() && out.stdout.is_empty()).then_some(())
    });
    assert!(
        !logs.exists(),
        "the deleted Revision's logs are deleted too"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pods",
            "-l",
            "serving.knative.dev/revision=gone-00001",
            "-o",
            "name"
        ]),
        "",
        "no Pod is left"
    );
}
