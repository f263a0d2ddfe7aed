//! Replicas as Pods, through the real kubectl: `get pods` (Knative's labels, selectors,
//! kubectl's columns, `-o wide`), `describe pod`, `logs` (`-c`, `--tail`, `-f`,
//! `--previous`), a failing liveness probe counted in `restartCount` and
//! `lastState.terminated` (Knative's `TestLivenessWithFail`), `delete pod` replacing
//! the replica, Pods going with their replicas (scale to zero, Service deleted), writes
//! refused, and client-go's protobuf-first `Accept` answered with JSON. Under both
//! backends (the runc one with a sidecar).

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, service, testapp, url};
use common::{KUBECTL, Kubectl, PATIENCE, Server, eventually};
use serde_json::Value;
use std::io::BufRead;

/// The Pods `kubectl get pods -l SELECTOR -o json` lists.
fn pods(k: &Kubectl, selector: &str) -> Vec<Value> {
    let out = k.ok(&["get", "pods", "-l", selector, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("a PodList");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The one ready Pod of a Revision, once there is exactly one and it is ready.
fn ready_pod(k: &Kubectl, revision: &str) -> Value {
    eventually(&format!("one ready Pod of {revision}"), || {
        let mut ps = pods(k, &format!("serving.knative.dev/revision={revision}"));
        (ps.len() == 1 && ps[0]["status"]["containerStatuses"][0]["ready"] == true)
            .then(|| ps.remove(0))
    })
}

fn name_of(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap().to_string()
}

/// The highest `tick N` in `text`.
fn last_tick(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

/// A running kubectl whose output lines arrive on a channel; killed on drop.
struct Streaming {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Streaming {
    fn start(k: &Kubectl, args: &[&str]) -> Self {
        let mut child = k
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// The first line (from now on) that `f` accepts, within [`PATIENCE`].
    fn until<T>(&self, what: &str, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
            if let Some(v) = f(&line) {
                return v;
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

const TICKER_PROBE: &str = "        livenessProbe:
          httpGet: {path: /healthz/liveness}
          periodSeconds: 1
          failureThreshold: 3
";

#[tokio::test(flavor = "multi_thread")]
async fn replicas_are_pods_under_the_process_backend() {
    let server = Server::start_with(&["--backend", "process"]);
    let k = server.kubectl(KUBECTL);
    k.configure(
        "config-autoscaler",
        &[
            ("stable-window", "6s"),
            ("scale-to-zero-grace-period", "1s"),
        ],
    );
    // The readiness app (liveness that can be made to fail) beside a loop printing a
    // numbered line every 200 ms; one replica at least, so it stays while we look.
    let app = testapp();
    let ticker = common::image_service(
        "ticker",
        "testapp",
        "",
        &format!(
            "        command: [sh, -c, '{app} readiness & i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done']\n{TICKER_PROBE}"
        ),
    )
    .replacen(
        "  template:\n",
        "  template:\n    metadata:\n      annotations:\n        autoscaling.knative.dev/min-scale: \"1\"\n      labels:\n        team: blue\n",
        1,
    );
    apply_ready(&server, "ticker", &ticker);

    // Listed with Knative's labels, owned by the Revision, with kubelet's status.
    let pod = ready_pod(&k, "ticker-00001");
    let name = name_of(&pod);
    assert!(name.starts_with("ticker-00001-deployment-"), "{name}");
    let labels = &pod["metadata"]["labels"];
    for (key, want) in [
        ("serving.knative.dev/service", "ticker"),
        ("serving.knative.dev/configuration", "ticker"),
        ("serving.knative.dev/revision", "ticker-00001"),
        ("app", "ticker-00001"),
        ("team", "blue"),
    ] {
        assert_eq!(labels[key], want, "{key} in {labels}");
    }
    let rev: Value =
        serde_json::from_str(&k.ok(&["get", "revision", "ticker-00001", "-o", "json"])).unwrap();
    assert_eq!(
        labels["serving.knative.dev/revisionUID"],
        rev["metadata"]["uid"]
    );
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"]),
        (&"Revision".into(), &"ticker-00001".into())
    );
    let status = &pod["status"];
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["podIP"], "127.0.0.1");
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    let c = &status["containerStatuses"][0];
    assert_eq!(c["name"], "user-container");
    assert_eq!(c["restartCount"], 0);
    assert!(c["state"]["running"]["startedAt"].is_string(), "{c}");

    // kubectl's columns, and selectors that match nothing.
    let table = k.ok(&["get", "pods"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with(&name))
        .expect("the Pod's row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["1/1", "Running", "0"], "{table}");
    let wide = k.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("IP"), "{wide}");
    assert!(wide.contains("127.0.0.1"), "{wide}");
    let none = k.run(&["get", "pods", "-l", "serving.knative.dev/revision=other"]);
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("No resources found"),
        "{none:?}"
    );
    let all = k.ok(&["get", "all"]);
    assert!(all.contains(&format!("pod/{name}")), "{all}");

    // describe.
    let described = k.ok(&["describe", "pod", &name]);
    for want in [
        "serving.knative.dev/revision=ticker-00001",
        "Status:",
        "Running",
        "user-container",
        "Restart Count:  0",
        "Controlled By:  Revision/ticker-00001",
    ] {
        assert!(
            described.contains(want),
            "{want:?} missing from:\n{described}"
        );
    }

    // logs, -c, --tail, and -f streaming what is written after it began.
    let logs = k.ok(&["logs", &name]);
    assert!(logs.contains("readiness: listening on port"), "{logs}");
    let seen = last_tick(&logs);
    assert!(seen > 0, "{logs}");
    let tail = k.ok(&["logs", &name, "-c", "user-container", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let follow = Streaming::start(&k, &["logs", "-f", &name]);
    follow.until("a tick written after `logs -f` began", |l| {
        (last_tick(l) > seen).then_some(())
    });
    drop(follow);
    let bad = k.fails(&["logs", &name, "-c", "nope"]);
    assert!(bad.contains("is not valid for pod"), "{bad}");

    // client-go asks for protobuf first and takes JSON.
    let resp = server
        .api_http()
        .build()
        .unwrap()
        .get(format!(
            "{}/api/v1/namespaces/default/pods?labelSelector=serving.knative.dev%2Frevision%3Dticker-00001",
            server.url
        ))
        .header("Accept", "application/vnd.kubernetes.protobuf, */*")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let list: k8s_openapi::List<k8s_openapi::api::core::v1::Pod> = resp.json().await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some(name.as_str()));

    // A failing liveness probe restarts the container: the same Pod counts it and says
    // how the last run ended, and `--previous` reads that run.
    let c = client(&server, &["ticker.default.localhost"]);
    let failing = c
        .post(url(&server, "ticker.default.localhost", "/start-failing"))
        .send()
        .await
        .unwrap();
    assert_eq!(failing.status(), 200);
    let restarted = eventually("the liveness restart to be counted", || {
        let ps = pods(&k, "serving.knative.dev/revision=ticker-00001");
        ps.into_iter().find(|p| {
            name_of(p) == name
                && p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)
                && p["status"]["containerStatuses"][0]["ready"] == true
        })
    });
    let last = &restarted["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["reason"], "Error", "{last}");
    assert_ne!(last["exitCode"], 0, "{last}");
    assert!(last["finishedAt"].is_string(), "{last}");
    assert!(
        last["message"].as_str().unwrap().contains("liveness"),
        "{last}"
    );
    let previous = k.ok(&["logs", &name, "--previous"]);
    assert!(last_tick(&previous) > 0, "{previous}");
    let row = k.ok(&["get", "pod", &name, "--no-headers"]);
    assert!(row.split_whitespace().nth(3) >= Some("1"), "{row}");

    // Deleting the Pod replaces its replica (as `get pods -w` shows); the new one serves.
    let watching = Streaming::start(&k, &["get", "pods", "-w", "--no-headers"]);
    watching.until("the Pod in the watch's first list", |l| {
        l.starts_with(&name).then_some(())
    });
    k.ok(&["delete", "pod", &name]);
    let replacement = ready_pod(&k, "ticker-00001");
    let new_name = name_of(&replacement);
    watching.until("the replacement in the watch", |l| {
        (l.starts_with(&new_name) && l.contains("1/1")).then_some(())
    });
    drop(watching);
    assert_ne!(name_of(&replacement), name);
    assert_eq!(
        replacement["status"]["containerStatuses"][0]["restartCount"],
        0
    );
    assert!(k.fails(&["get", "pod", &name]).contains("not found"));
    let (code, body) = get(&c, &url(&server, "ticker.default.localhost", "/")).await;
    assert_eq!(code, 200, "{body}");

    // Pods are Swell's to write.
    let refused = k.fails(&["label", "pod", &name_of(&replacement), "x=y"]);
    assert!(
        refused.contains("cannot be created or changed"),
        "{refused}"
    );
    let created = k.run(&["run", "mine", "--image", "busybox"]);
    assert!(!created.status.success());
    assert!(
        String::from_utf8_lossy(&created.stderr).contains("cannot be created or changed"),
        "{created:?}"
    );

    // A Revision at zero has no Pod.
    apply_ready(&server, "idle", &service("idle", "helloworld", "", ""));
    ready_pod(&k, "idle-00001");
    eventually("idle-00001 to have no Pod at zero", || {
        pods(&k, "serving.knative.dev/revision=idle-00001")
            .is_empty()
            .then_some(())
    });

    // Nor does a deleted Service's Revision.
    k.ok(&["delete", "ksvc", "ticker"]);
    eventually("ticker's Pods to go", || {
        pods(&k, "serving.knative.dev/service=ticker")
            .is_empty()
            .then_some(())
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn runc_replicas_are_pods_with_their_sidecars() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runc backend needs root, as CI has"
    );
    use common::oci::{push, registry, testapp_layout};
    let t = tempfile::tempdir().unwrap();
    let images = ["servingcontainer", "sidecarcontainer"];
    testapp_layout(t.path(), &images);
    let reg = registry();
    let image = |name: &str| format!("{}/knative/{name}:v1", reg.addr);
    for name in images {
        push(t.path(), "T", name, &image(name));
    }
    let server = Server::start_with(&["--backend", "runc"]);
    let k = server.kubectl(KUBECTL);
    let multi = format!(
        r#"apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: multi
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containers:
      - name: serving
        image: {}
        ports: [{{containerPort: 8881}}]
        env: [{{name: FORWARD_PORT, value: "8882"}}]
      - name: sidecar
        image: {}
"#,
        image("servingcontainer"),
        image("sidecarcontainer")
    );
    apply_ready(&server, "multi", &multi);
    let pod = ready_pod(&k, "multi-00001");
    let name = name_of(&pod);
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.86."), "{ip}");
    let statuses = pod["status"]["containerStatuses"].as_array().unwrap();
    let names: Vec<&str> = statuses.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["serving", "sidecar"]);
    assert!(statuses.iter().all(|c| c["ready"] == true), "{statuses:?}");
    assert!(
        statuses[0]["imageID"]
            .as_str()
            .unwrap()
            .contains("@sha256:"),
        "{statuses:?}"
    );
    let row = k.ok(&["get", "pod", &name, "--no-headers"]);
    assert_eq!(row.split_whitespace().nth(1), Some("2/2"), "{row}");

    // The default container is the serving one; -c reads the sidecar's own log.
    let serving = k.ok(&["logs", &name]);
    assert!(
        serving.contains("servingcontainer: listening on port 8881"),
        "{serving}"
    );
    let sidecar = k.ok(&["logs", &name, "-c", "sidecar"]);
    assert!(
        sidecar.contains("sidecarcontainer: listening on port 8882"),
        "{sidecar}"
    );

    // Deleting the Pod replaces the replica; the new one serves.
    k.ok(&["delete", "pod", &name]);
    let replacement = ready_pod(&k, "multi-00001");
    assert_ne!(name_of(&replacement), name);
    // (Only the serving container is probed: its sidecar may take a moment longer.)
    let c = client(&server, &["multi.default.localhost"]);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let answer = get(&c, &url(&server, "multi.default.localhost", "/")).await;
        if answer == (200, "Yay!! multi-container works\n\n".into()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{answer:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    k.ok(&["delete", "ksvc", "multi"]);
    eventually("multi's Pods to go", || {
        pods(&k, "serving.knative.dev/service=multi")
            .is_empty()
            .then_some(())
    });
}
