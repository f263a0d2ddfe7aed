//! Replicas cannot take the host. Under the process backend a root server runs each
//! replica as uid 65532, or as its `runAsUser`, and refuses uid 0 unless started with
//! `--allow-root-replicas`. Under runc a container gets containerd's default seccomp
//! profile (a blocked syscall fails with EPERM inside it), its image's or its
//! `securityContext`'s user, the pod's `fsGroup` and `supplementalGroups`, a read-only
//! root filesystem and dropped capabilities when asked; `runAsNonRoot` refuses a root
//! image; `Unconfined` seccomp needs `--allow-unconfined-seccomp`. Needs root (CI runs
//! as root), runc and the CNI plugins.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, service, url};
use common::oci::{busybox_layout, push, registry, testapp_layout};
use common::{KUBECTL, Kubectl, Server, eventually, image_service};
use serde_json::Value;

/// Waits until `revision`'s `ContainerHealthy` is False and returns (reason, message).
fn refused(k: &Kubectl, revision: &str) -> (String, String) {
    tokio::task::block_in_place(|| {
        eventually(&format!("{revision} to be refused"), || {
            let (status, reason, message) =
                k.condition(&format!("revision/{revision}"), "ContainerHealthy");
            (status == "False").then_some((reason, message))
        })
    })
}

async fn json(server: &Server, name: &str, path: &str) -> Value {
    let host = format!("{name}.default.localhost");
    let c = client(server, &[&host]);
    let (status, body) = get(&c, &url(server, &host, path)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn process_replicas_run_as_an_unprivileged_user() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    let server = Server::start_with(&[]);
    apply_ready(&server, "plain", &service("plain", "runtime", "", ""));
    let user = json(&server, "plain", "/").await["host"]["user"].clone();
    assert_eq!((&user["uid"], &user["gid"]), (&65532.into(), &65532.into()));
    let sec = json(&server, "plain", "/security").await;
    assert_eq!(
        sec["groups"],
        serde_json::json!([]),
        "no supplementary groups"
    );

    let own = "        securityContext: {runAsUser: 1234, runAsGroup: 2345}\n";
    apply_ready(&server, "own", &service("own", "runtime", own, ""));
    let user = json(&server, "own", "/").await["host"]["user"].clone();
    assert_eq!((&user["uid"], &user["gid"]), (&1234.into(), &2345.into()));

    let k = server.kubectl(KUBECTL);
    let root = "        securityContext: {runAsUser: 0}\n";
    k.ok_stdin(&["apply", "-f", "-"], &service("root", "runtime", root, ""));
    let (reason, message) = refused(&k, "root-00001");
    assert_eq!(reason, "RunAsRootNotAllowed", "{message}");
    assert!(message.contains("--allow-root-replicas"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_the_replicas_user_cannot_reach_fails_its_revision() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    // A directory uid 65532 cannot search.
    let hidden = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        hidden.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let app = hidden.path().join("swell-testapp");
    std::fs::copy(common::apps::testapp(), &app).unwrap();
    let server = Server::start_with(&[]);
    let k = server.kubectl(KUBECTL);
    let yaml = service("hidden", "runtime", "", "")
        .replace(&common::apps::testapp(), &app.display().to_string());
    k.ok_stdin(&["apply", "-f", "-"], &yaml);
    let (reason, message) = refused(&k, "hidden-00001");
    assert_eq!(reason, "StartError", "{message}");
    assert!(
        message.contains("as uid 65532") && message.contains("Permission denied"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn process_replicas_run_as_root_only_when_the_server_allows_it() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    let server = Server::start_with(&["--allow-root-replicas"]);
    let root = "        securityContext: {runAsUser: 0}\n";
    apply_ready(&server, "root", &service("root", "runtime", root, ""));
    let user = json(&server, "root", "/").await["host"]["user"].clone();
    assert_eq!(user["uid"], 0);
}

/// The testapp's `runtime` image (user 65532) and a busybox image (user root) in a
/// registry; returns their references.
fn images(work: &std::path::Path, reg: &common::oci::Registry) -> (String, String) {
    testapp_layout(work, &["runtime"]);
    busybox_layout(work);
    let runtime = format!("{}/knative/runtime:v1", reg.addr);
    let busybox = format!("{}/busybox:root", reg.addr);
    push(work, "T", "runtime", &runtime);
    push(work, "L", "latest", &busybox);
    (runtime, busybox)
}

/// containerd's default capability set as `/proc/self/status` shows it.
const DEFAULT_CAPS: &str = "00000000a80425fb";

#[tokio::test(flavor = "multi_thread")]
async fn runc_containers_keep_to_their_security_context_under_runtime_default() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let reg = registry();
    let (runtime, busybox) = images(t.path(), &reg);
    let mut server = Server::start_with(&["--backend", "runc"]);
    let k = server.kubectl(KUBECTL);
    k.enable_features(&["kubernetes.podspec-securitycontext"]);

    // The image's user (`65532`, so gid 0 as containerd has it), containerd's
    // capabilities, no new privileges, RuntimeDefault.
    apply_ready(&server, "plain", &image_service("plain", &runtime, "", ""));
    let sec = json(&server, "plain", "/security").await;
    assert_eq!((&sec["uid"], &sec["gid"]), (&65532.into(), &0.into()));
    assert_eq!(sec["capBnd"], DEFAULT_CAPS);
    assert_eq!(sec["capEff"], "0000000000000000", "non-root");
    assert_eq!(sec["noNewPrivs"], "1");
    assert_eq!(sec["seccomp"], "2", "filtered");
    assert_eq!(sec["unshare"], "EPERM", "RuntimeDefault blocks unshare");

    // The pod's ids and groups, the container's read-only root and dropped capabilities.
    let pod = "      securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000]}\n";
    let container =
        "        securityContext: {readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}\n";
    apply_ready(
        &server,
        "tight",
        &image_service("tight", &runtime, pod, container),
    );
    let sec = json(&server, "tight", "/security").await;
    assert_eq!((&sec["uid"], &sec["gid"]), (&1000.into(), &3000.into()));
    let groups = sec["groups"].as_array().unwrap();
    for g in [2000, 4000] {
        assert!(groups.contains(&g.into()), "group {g} in {groups:?}");
    }
    assert_eq!(sec["rootWritable"], false);
    assert_eq!(sec["capBnd"], "0000000000000000");

    // runAsNonRoot against an image that runs as root.
    let non_root = "        command: [/bin/sh, -c, 'sleep 1000']\n        securityContext: {runAsNonRoot: true}\n";
    k.ok_stdin(
        &["apply", "-f", "-"],
        &image_service("rooted", &busybox, "", non_root),
    );
    let (_, message) = refused(&k, "rooted-00001");
    assert!(
        message.contains("container has runAsNonRoot and image will run as root"),
        "{message}"
    );

    // Unconfined needs the operator's opt-in.
    let unconfined = "        securityContext: {seccompProfile: {type: Unconfined}}\n";
    k.ok_stdin(
        &["apply", "-f", "-"],
        &image_service("loose", &runtime, "", unconfined),
    );
    let (reason, message) = refused(&k, "loose-00001");
    assert_eq!(reason, "CreateContainerConfigError", "{message}");
    assert!(message.contains("--allow-unconfined-seccomp"), "{message}");
    assert!(server.stop(), "server stopped uncleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn unconfined_seccomp_runs_when_the_server_allows_it() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let reg = registry();
    let (runtime, _) = images(t.path(), &reg);
    let mut server = Server::start_with(&["--backend", "runc", "--allow-unconfined-seccomp"]);
    let unconfined = "        securityContext: {seccompProfile: {type: Unconfined}}\n";
    apply_ready(
        &server,
        "loose",
        &image_service("loose", &runtime, "", unconfined),
    );
    let sec = json(&server, "loose", "/security").await;
    assert_eq!(sec["seccomp"], "0", "no filter");
    assert_eq!(
        sec["unshare"], "ok",
        "unshare(CLONE_FS) needs no capability"
    );
    apply_ready(&server, "plain", &image_service("plain", &runtime, "", ""));
    let sec = json(&server, "plain", "/security").await;
    assert_eq!(sec["unshare"], "EPERM", "RuntimeDefault stays the default");
    assert!(server.stop(), "server stopped uncleanly");
}
