//! Volumes with the runc backend, as Knative's volume conformance tests use them
//! (`TestConfigMapVolume`, `TestProjectedSecretVolume`, `TestServiceCreateWithEmptyDir`):
//! the testapp's `hellovolume` and `volumes` images, pushed to Debian's
//! `docker-registry`, read a ConfigMap volume (beside an optional one that does not
//! exist), a projected Secret bound by `subPath` straight onto a file, and write to an
//! in-memory emptyDir; a ConfigMap edited after deployment shows in the running
//! replica. The process backend, which cannot mount anything, refuses volumes with a
//! reason instead of ignoring them.

mod common;

use common::apps::{apply_ready, client, get, service, url};
use common::oci::{push, registry, testapp_layout};
use common::{KUBECTL, PATIENCE, Server, eventually};
use std::time::Instant;

fn hello_service(name: &str, image: &str, volumes: &str, mounts: &str) -> String {
    format!(
        r#"apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
spec:
  template:
    spec:
      containers:
      - image: {image}
        volumeMounts:
{mounts}      volumes:
{volumes}"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn configmap_secret_and_empty_dir_volumes_reach_the_container() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runc backend needs root, as CI has"
    );
    let t = tempfile::tempdir().unwrap();
    testapp_layout(t.path(), &["hellovolume", "volumes"]);
    let reg = registry();
    let image = |name: &str| format!("{}/knative/{name}:v1", reg.addr);
    for name in ["hellovolume", "volumes"] {
        push(t.path(), "T", name, &image(name));
    }
    let mut server = Server::start_with(&["--backend", "runc"]);
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: hello-config
data:
  world: first text
---
apiVersion: v1
kind: Secret
metadata:
  name: hello-secret
stringData:
  world: secret text
"#,
    );
    apply_ready(
        &server,
        "config",
        &hello_service(
            "config",
            &image("hellovolume"),
            "      - name: hello\n        configMap: {name: hello-config}\n      - name: absent\n        configMap: {name: no-such-config, optional: true}\n",
            "        - {name: hello, mountPath: /hello, readOnly: true}\n        - {name: absent, mountPath: /absent, readOnly: true}\n",
        ),
    );
    apply_ready(
        &server,
        "secret",
        &hello_service(
            "secret",
            &image("hellovolume"),
            "      - name: projected\n        projected:\n          sources:\n          - secret: {name: hello-secret, items: [{key: world, path: greeting}]}\n",
            "        - {name: projected, mountPath: /hello/world, subPath: greeting, readOnly: true}\n",
        ),
    );
    apply_ready(
        &server,
        "scratch",
        &hello_service(
            "scratch",
            &image("volumes"),
            "      - name: data\n        emptyDir: {medium: Memory, sizeLimit: 100M}\n",
            "        - {name: data, mountPath: /data}\n",
        ),
    );
    let c = client(
        &server,
        &[
            "config.default.localhost",
            "secret.default.localhost",
            "scratch.default.localhost",
        ],
    );
    let at = |host: &str| url(&server, &format!("{host}.default.localhost"), "/");
    assert_eq!(get(&c, &at("config")).await, (200, "first text\n".into()));
    assert_eq!(get(&c, &at("secret")).await, (200, "secret text\n".into()));
    assert_eq!(
        get(&c, &at("scratch")).await,
        (200, "From file in empty dir!".into())
    );

    // An edited ConfigMap shows in the running replica, which is not restarted.
    let revision = k.ok(&[
        "get",
        "ksvc",
        "config",
        "-o",
        "jsonpath={.status.latestReadyRevisionName}",
    ]);
    k.ok(&[
        "patch",
        "configmap",
        "hello-config",
        "--type=merge",
        "-p",
        r#"{"data":{"world":"second text"}}"#,
    ]);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = get(&c, &at("config")).await;
        if (status, body.as_str()) == (200, "second text\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica still reads {status} {body:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let latest = k.ok(&[
        "get",
        "ksvc",
        "config",
        "-o",
        "jsonpath={.status.latestReadyRevisionName}",
    ]);
    assert_eq!(latest, revision, "editing a ConfigMap makes no Revision");
    assert!(server.stop(), "server stopped uncleanly");
}

#[test]
fn the_process_backend_refuses_volumes_with_a_reason() {
    let mut server = Server::start_with(&["--backend", "process"]);
    let k = server.kubectl(KUBECTL);
    let yaml = service(
        "vol",
        "helloworld",
        "        volumeMounts: [{name: data, mountPath: /data}]\n",
        "      volumes: [{name: data, emptyDir: {}}]\n",
    );
    k.ok_stdin(&["apply", "-f", "-"], &yaml);
    eventually("vol-00001 to refuse its volume", || {
        let (status, reason, _) = k.condition("revision/vol-00001", "ContainerHealthy");
        (status == "False" && reason == "VolumesUnsupported").then_some(())
    });
    assert!(server.stop(), "server stopped uncleanly");
}
