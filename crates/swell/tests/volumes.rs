//! Volumes with the runc backend, as Knative's volume conformance tests use them
//! (`TestConfigMapVolume`, `TestProjectedSecretVolume`, `TestServiceCreateWithEmptyDir`):
//! the testapp's `hellovolume` and `volumes` images, pushed to Debian's
//! `docker-registry`, read a ConfigMap volume (beside an optional one that does not
//! exist), a projected Secret bound by `subPath` straight onto a file, and write to an
//! in-memory emptyDir; a ConfigMap edited after deployment shows in the running
//! replica. The process backend, which cannot mount anything, refuses volumes with a
//! reason instead of ignoring them.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, service, url};
use common::oci::{busybox_layout, push, registry, run, testapp_layout};
use common::{KUBECTL, PATIENCE, Server, eventually, image_service};
use std::time::Instant;

/// A Service of `image` with `volumes` and the container's `mounts` (YAML list items).
fn hello_service(name: &str, image: &str, volumes: &str, mounts: &str) -> String {
    volume_service(name, image, "", volumes, mounts)
}

/// [`hello_service`] with more pod spec YAML in `spec`.
fn volume_service(name: &str, image: &str, spec: &str, volumes: &str, mounts: &str) -> String {
    image_service(
        name,
        image,
        &format!("{spec}      volumes:\n{volumes}"),
        &format!("        volumeMounts:\n{mounts}"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn configmap_secret_and_empty_dir_volumes_reach_the_container() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
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

/// `TestProjectedServiceAccountToken`, and more: a projected `serviceAccountToken`
/// holds a token of the Revision's ServiceAccount that the API accepts as that account
/// (TokenReview for the asked audience; with the API's audience, as a bearer token that
/// gets exactly the account's permissions).
#[tokio::test(flavor = "multi_thread")]
async fn a_projected_service_account_token_is_the_accounts_identity() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runc backend needs root, as CI has"
    );
    let t = tempfile::tempdir().unwrap();
    testapp_layout(t.path(), &["hellovolume"]);
    let reg = registry();
    let image = format!("{}/knative/hellovolume:v1", reg.addr);
    push(t.path(), "T", "hellovolume", &image);
    let server = Server::start_with(&["--backend", "runc"]);
    let k = server.kubectl(KUBECTL);
    k.ok(&["create", "serviceaccount", "builder"]);
    let as_account = |name: &str, account: &str, token: &str| {
        volume_service(
            name,
            &image,
            &format!("      serviceAccountName: {account}\n"),
            &format!(
                "      - name: token\n        projected:\n          defaultMode: 0444\n          sources:\n          - serviceAccountToken: {token}\n"
            ),
            "        - {name: token, mountPath: /hello/world, subPath: token, readOnly: true}\n",
        )
    };
    let with_account = |name: &str, token: &str| as_account(name, "builder", token);
    apply_ready(
        &server,
        "for-api",
        &with_account("for-api", "{audience: api, path: token}"),
    );
    apply_ready(
        &server,
        "for-us",
        &with_account("for-us", "{path: token, expirationSeconds: 600}"),
    );
    let c = client(
        &server,
        &["for-api.default.localhost", "for-us.default.localhost"],
    );
    let (status, token) = get(&c, &url(&server, "for-api.default.localhost", "/")).await;
    assert_eq!(status, 200, "{token}");
    let token = token.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let review = |token: &str, audience: &str| {
        let manifest = format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n  audiences: [{audience}]\n"
        );
        k.ok_stdin(
            &[
                "create",
                "-f",
                "-",
                "-o",
                "jsonpath={.status.authenticated} {.status.user.username}",
            ],
            &manifest,
        )
    };
    assert_eq!(
        review(&token, "api"),
        "true system:serviceaccount:default:builder"
    );
    assert!(
        review(&token, "other").starts_with("false"),
        "the audience binds the token"
    );

    // The API's own audience: the replica's token calls the API as the account, over
    // the replicas' own network (from inside a replica's network namespace, to the
    // bridge's gateway, where the server listens for them).
    let (_, token) = get(&c, &url(&server, "for-us.default.localhost", "/")).await;
    let token = token.trim().to_string();
    let ca = server.data_dir.join("pki/ca.crt");
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let from_a_replica = |path: &str| {
        let url = format!("https://10.86.0.1:{port}{path}");
        eventually("a replica network namespace to reach the API", || {
            let namespaces = std::fs::read_dir("/run/netns").ok()?;
            namespaces.flatten().find_map(|ns| {
                let ns = ns.file_name().into_string().ok()?;
                if !ns.contains(".for-us-00001.") {
                    return None;
                }
                let out = std::process::Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &ns,
                        "curl",
                        "-sS",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "--max-time",
                        "5",
                        "--cacert",
                    ])
                    .arg(&ca)
                    .args(["-H", &format!("Authorization: Bearer {token}"), &url])
                    .output()
                    .ok()?;
                let code = String::from_utf8_lossy(&out.stdout).to_string();
                (out.status.success() && code != "000").then_some(code)
            })
        })
    };
    let services = "/apis/serving.knative.dev/v1/namespaces/default/services";
    assert_eq!(from_a_replica(services), "403");
    k.ok(&[
        "create",
        "rolebinding",
        "builder-view",
        "--clusterrole=view",
        "--serviceaccount=default:builder",
    ]);
    assert_eq!(from_a_replica(services), "200");
    assert_eq!(
        from_a_replica("/api/v1/namespaces/default/secrets"),
        "403",
        "view grants no Secrets"
    );

    // A Revision whose ServiceAccount does not exist says so.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &as_account("orphan", "ghost", "{path: token}"),
    );
    let (status, _, message) = eventually("the orphan Revision to fail", || {
        let c = k.condition("revision/orphan-00001", "Ready");
        (c.0 == "False").then_some(c)
    });
    assert_eq!(status, "False");
    assert!(
        message.contains("serviceaccount \"ghost\" not found"),
        "{message}"
    );
}

/// As kubelet does unless told not to, every container gets its ServiceAccount's
/// token, the API's CA and its namespace at /var/run/secrets/kubernetes.io/serviceaccount
/// (what in-cluster clients read); `automountServiceAccountToken: false` on the
/// ServiceAccount, or a missing ServiceAccount, is honoured.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_account_is_mounted_where_kubernetes_clients_look() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runc backend needs root, as CI has"
    );
    let t = tempfile::tempdir().unwrap();
    busybox_layout(t.path());
    let reg = registry();
    let image = format!("{}/busybox:1", reg.addr);
    run(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "oci:L:latest",
            &format!("docker://{image}"),
        ],
        t.path(),
    );
    let server = Server::start_with(&["--backend", "runc"]);
    let k = server.kubectl(KUBECTL);
    k.ok(&["create", "serviceaccount", "quiet"]);
    k.ok(&[
        "patch",
        "serviceaccount",
        "quiet",
        "-p",
        r#"{"automountServiceAccountToken":false}"#,
    ]);
    // busybox httpd serves the container's whole file system.
    let root = |name: &str, account: &str| {
        image_service(
            name,
            &image,
            &format!("      serviceAccountName: {account}\n"),
            "        command: [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM; busybox httpd -f -p 8080 -h / & wait\"]\n",
        )
    };
    apply_ready(&server, "mounted", &root("mounted", "default"));
    apply_ready(&server, "unmounted", &root("unmounted", "quiet"));
    let c = client(
        &server,
        &["mounted.default.localhost", "unmounted.default.localhost"],
    );
    let file = |host: &str, f: &str| {
        url(
            &server,
            &format!("{host}.default.localhost"),
            &format!("/var/run/secrets/kubernetes.io/serviceaccount/{f}"),
        )
    };
    assert_eq!(
        get(&c, &file("mounted", "namespace")).await,
        (200, "default".to_string())
    );
    let ca = std::fs::read_to_string(server.data_dir.join("pki/ca.crt")).unwrap();
    assert_eq!(get(&c, &file("mounted", "ca.crt")).await, (200, ca));
    let (status, token) = get(&c, &file("mounted", "token")).await;
    assert_eq!(status, 200);
    let review = format!(
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n"
    );
    assert_eq!(
        k.ok_stdin(
            &[
                "create",
                "-f",
                "-",
                "-o",
                "jsonpath={.status.user.username}"
            ],
            &review
        ),
        "system:serviceaccount:default:default"
    );
    assert_eq!(
        get(&c, &file("unmounted", "token")).await.0,
        404,
        "the account said no"
    );

    k.ok_stdin(&["apply", "-f", "-"], &root("nobody", "ghost"));
    let (status, _, message) = eventually("the Revision of a missing account to fail", || {
        let c = k.condition("revision/nobody-00001", "Ready");
        (c.0 == "False").then_some(c)
    });
    assert_eq!(status, "False");
    assert!(
        message.contains("serviceaccount \"ghost\" not found"),
        "{message}"
    );
}
