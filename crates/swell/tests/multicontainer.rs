//! Multi-container Revisions and init containers with the runc backend, as Knative's
//! `TestMultiContainer` and `initcontainers` samples use them: the testapp's
//! `servingcontainer` reaches its `sidecarcontainer` on localhost (one network
//! namespace per replica), every container's image is pinned to its digest, and a
//! sidecar's output is its own log; an init container (the `volumes` image) fills an
//! emptyDir the serving container then serves, and a failing one fails the Revision
//! with its exit code. A sidecar that dies takes its replica down and back up.
//! Needs root, runc and the CNI plugins, as CI has.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, url};
use common::oci::{push, registry, testapp_layout};
use common::{KUBECTL, PATIENCE, Server, eventually};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread")]
async fn sidecars_share_the_replica_and_init_containers_run_first() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runc backend needs root, as CI has"
    );
    let t = tempfile::tempdir().unwrap();
    let images = ["servingcontainer", "sidecarcontainer", "volumes"];
    testapp_layout(t.path(), &images);
    let reg = registry();
    let image = |name: &str| format!("{}/knative/{name}:v1", reg.addr);
    for name in images {
        push(t.path(), "T", name, &image(name));
    }
    let server = Server::start_with(&["--backend", "runc"]);
    let k = server.kubectl(KUBECTL);
    k.enable_features(&["kubernetes.podspec-init-containers"]);

    let multi = format!(
        r#"apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: multi
spec:
  template:
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
    let c = client(
        &server,
        &["multi.default.localhost", "init.default.localhost"],
    );
    let multi_url = url(&server, "multi.default.localhost", "/");
    // The Revision is Ready once the serving container answers; the sidecar it forwards
    // to may still be starting (Kubernetes does not wait for sidecars either), so the
    // first answers may be the serving container's own 502 (seen once on a loaded
    // machine); it must become 200.
    let deadline = Instant::now() + PATIENCE;
    let answer = loop {
        let answer = get(&c, &multi_url).await;
        if answer.0 == 200 || Instant::now() >= deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(answer, (200, "Yay!! multi-container works\n\n".into()));
    let digests = k.ok(&[
        "get",
        "revision",
        "multi-00001",
        "-o",
        "jsonpath={.status.containerStatuses[*].name}={.status.containerStatuses[*].imageDigest}",
    ]);
    let (names, pinned) = digests.split_once('=').unwrap();
    assert_eq!(names, "serving sidecar");
    assert_eq!(pinned.matches("@sha256:").count(), 2, "{pinned}");
    let logs = server.swell(&["logs", "multi-00001", "-c", "sidecar"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        text.contains("sidecarcontainer: listening on port 8882"),
        "{text}{}",
        String::from_utf8_lossy(&logs.stderr)
    );

    // The sidecar dies: the replica goes down with it and comes back whole.
    let killed = std::process::Command::new("runc")
        .arg("--root")
        .arg(server.data_dir.join("runc/runc"))
        .args(["kill", "default.multi-00001.1.sidecar", "KILL"])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + PATIENCE;
    let mut saw_down = false;
    loop {
        let logs = server.swell(&["logs", "multi-00001", "-c", "sidecar"]);
        let starts = String::from_utf8_lossy(&logs.stdout)
            .matches("listening on port 8882")
            .count();
        saw_down |= starts >= 2;
        if saw_down && get(&c, &multi_url).await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not come back");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // An init container fills the emptyDir the serving container serves.
    let init = |name: &str, data_path: &str| {
        format!(
            r#"apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
spec:
  template:
    spec:
      initContainers:
      - name: fill
        image: {volumes}
        env:
        - {{name: SKIP_DATA_SERVE, value: "true"}}
        - {{name: DATA_PATH, value: {data_path}}}
        volumeMounts: [{{name: data, mountPath: /data}}]
      containers:
      - image: {volumes}
        env: [{{name: SKIP_DATA_WRITE, value: "true"}}]
        volumeMounts: [{{name: data, mountPath: /data}}]
      volumes: [{{name: data, emptyDir: {{}}}}]
"#,
            volumes = image("volumes")
        )
    };
    apply_ready(&server, "init", &init("init", "/data"));
    assert_eq!(
        get(&c, &url(&server, "init.default.localhost", "/")).await,
        (200, "From file in empty dir!".into())
    );
    let init_pinned = k.ok(&[
        "get",
        "revision",
        "init-00001",
        "-o",
        "jsonpath={.status.initContainerStatuses[0].name}",
    ]);
    assert_eq!(init_pinned, "fill");

    // An init container that fails stops the Revision, with its exit code.
    k.ok_stdin(&["apply", "-f", "-"], &init("broken", "/no/such/dir"));
    let (_, _, message) = tokio::task::block_in_place(|| {
        eventually("broken-00001 to report its init container", || {
            let c = k.condition("revision/broken-00001", "ContainerHealthy");
            (c.0 == "False" && c.1 == "ExitCode1").then_some(c)
        })
    });
    assert!(
        message.contains("init container fill") && message.contains("/no/such/dir"),
        "{message}"
    );
    let mut server = server;
    assert!(server.stop(), "server stopped uncleanly");
}
