//! The runc backend end to end: Services whose images come from the store (imported)
//! and from a real registry (pulled on first use) run as runc containers, each in its
//! own network namespace at its own address, both listening on 8080 while ignoring
//! `PORT`; a Revision keeps the digest its tag had when it was created, even after the
//! tag moves; a missing image fails its Revision, Configuration and Route with the
//! reason, and a container killed for exceeding its memory limit fails its Revision
//! (`OOMKilled`); deleting a Service and stopping the server leave no container, mount
//! or namespace behind; past `--image-store-limit`, pulled images nothing runs are
//! pruned. Needs root (CI runs as root), runc and the CNI plugins (`.ci/run` installs
//! them).

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, url};
use common::oci::{busybox_layout, busybox_web, registry, run};
use common::{KUBECTL, Server, eventually};
use std::path::Path;
use std::process::Command;

fn web(name: &str, image: &str, text: &str) -> String {
    busybox_web(name, image, text, "")
}

fn containers(data: &Path) -> Vec<String> {
    let out = Command::new("runc")
        .arg("--root")
        .arg(data.join("runc/runc"))
        .args(["list", "-q"])
        .output()
        .expect("runc is installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The host PID of a running container.
fn container_pid(data: &Path, id: &str) -> Option<i64> {
    let out = Command::new("runc")
        .arg("--root")
        .arg(data.join("runc/runc"))
        .args(["state", id])
        .output()
        .ok()?;
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    state["pid"].as_i64().filter(|p| *p > 0)
}

fn namespaces(revision: &str) -> usize {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .contains(&format!(".{revision}."))
                })
                .count()
        })
        .unwrap_or(0)
}

fn mounts_under(data: &Path) -> usize {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&data.display().to_string()))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_from_the_store_and_a_registry_serve_at_their_own_addresses() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runc backend needs root, as CI has"
    );
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    busybox_layout(&work);
    let reg = registry();
    let pushed = format!("docker://{}/busybox:1", reg.addr);
    run(
        "skopeo",
        &["copy", "--dest-tls-verify=false", "oci:L:latest", &pushed],
        &work,
    );
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    common::oci::import(&data, &work.join("L"), "busybox:local");

    let mut server = Server::start_in(&data, "127.0.0.1:0", &["--backend", "runc"]);
    apply_ready(
        &server,
        "local",
        &web("local", "busybox:local", "from-the-store"),
    );
    // The pulled app says which image it runs: v1 has no /etc/image-version.
    let remote = format!("{}/busybox:1", reg.addr);
    let version = "$(cat /etc/image-version 2>/dev/null || echo v1)";
    apply_ready(&server, "pulled", &web("pulled", &remote, version));
    let c = client(
        &server,
        &["local.default.localhost", "pulled.default.localhost"],
    );
    for (host, text) in [("local", "from-the-store"), ("pulled", "v1")] {
        let (status, body) =
            get(&c, &url(&server, &format!("{host}.default.localhost"), "/")).await;
        assert_eq!((status, body.trim()), (200, text), "{host}");
    }
    // Two containers, both on 8080, each in its own namespace.
    assert_eq!(containers(&data).len(), 2, "{:?}", containers(&data));
    assert_eq!(
        (namespaces("local-00001"), namespaces("pulled-00001")),
        (1, 1)
    );

    // The Revision runs the digest its tag had when it was created: moving the tag in
    // the registry changes neither the running replica nor one that restarts.
    let k = server.kubectl(KUBECTL);
    let digest = k.ok(&[
        "get",
        "revision",
        "pulled-00001",
        "-o",
        "jsonpath={.status.containerStatuses[0].imageDigest}",
    ]);
    assert!(
        digest.starts_with(&format!("{}/busybox@sha256:", reg.addr)),
        "{digest}"
    );
    let etc = work.join("bundle/rootfs/etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("image-version"), "v2").unwrap();
    run("umoci", &["repack", "--image", "L:latest", "bundle"], &work);
    run(
        "skopeo",
        &["copy", "--dest-tls-verify=false", "oci:L:latest", &pushed],
        &work,
    );
    let before = container_pid(&data, "default.pulled-00001.1").expect("pulled-00001 runs");
    let killed = Command::new("runc")
        .arg("--root")
        .arg(data.join("runc/runc"))
        .args(["kill", "default.pulled-00001.1", "KILL"])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::task::block_in_place(|| {
        eventually("pulled-00001's container to restart", || {
            container_pid(&data, "default.pulled-00001.1")
                .filter(|p| *p != before)
                .map(|_| ())
        })
    });
    let pulled = url(&server, "pulled.default.localhost", "/");
    let (status, body) = get(&c, &pulled).await;
    assert_eq!(
        (status, body.trim()),
        (200, "v1"),
        "the restarted replica kept its digest"
    );
    // A new Revision resolves the tag again.
    let generation2 = web("pulled", &remote, version).replace(
        "        command:",
        "        env: [{name: GENERATION, value: \"2\"}]\n        command:",
    );
    k.ok_stdin(&["apply", "-f", "-"], &generation2);
    tokio::task::block_in_place(|| {
        eventually("pulled-00002 to be ready", || {
            let latest = k.ok(&[
                "get",
                "ksvc",
                "pulled",
                "-o",
                "jsonpath={.status.latestReadyRevisionName}",
            ]);
            (latest == "pulled-00002").then_some(())
        })
    });
    let (status, body) = get(&c, &pulled).await;
    assert_eq!((status, body.trim()), (200, "v2"));

    // An image no registry has fails its Revision, with the reason.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &web("ghost", &format!("{}/ghost:1", reg.addr), "x"),
    );
    let ready = |resource: &str| k.condition(resource, "Ready");
    let (_, _, message) = tokio::task::block_in_place(|| {
        eventually("ghost-00001 to fail on its image", || {
            let c = ready("revision/ghost-00001");
            (c.0 == "False" && c.1 == "ContainerMissing").then_some(c)
        })
    });
    assert!(message.contains("ghost:1"), "{message}");
    // … and so do its Configuration and Route.
    tokio::task::block_in_place(|| {
        eventually("ghost's Configuration and Route to fail", || {
            let cfg = ready("configuration/ghost");
            let route = ready("route/ghost");
            let failed = (
                cfg.0.as_str(),
                cfg.1.as_str(),
                route.0.as_str(),
                route.1.as_str(),
            );
            (failed == ("False", "RevisionFailed", "False", "RevisionMissing")).then_some(())
        })
    });

    // A container over its memory limit is OOM-killed, and the Revision says so.
    let hog = r#"apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hog
spec:
  template:
    spec:
      containers:
      - image: busybox:local
        command: ["/bin/busybox", "tail", "/dev/zero"]
        resources:
          limits: {memory: 32Mi}
"#;
    k.ok_stdin(&["apply", "-f", "-"], hog);
    tokio::task::block_in_place(|| {
        eventually("hog-00001 to be OOM-killed", || {
            let (status, reason, _) = k.condition("revision/hog-00001", "ContainerHealthy");
            (status == "False" && reason == "OOMKilled").then_some(())
        })
    });
    k.ok(&["delete", "ksvc", "hog"]);

    // Deleting a Service removes its container, mount and namespace.
    k.ok(&["delete", "ksvc", "local"]);
    tokio::task::block_in_place(|| {
        eventually("local's container to go", || {
            let left = containers(&data);
            let only_pulled = left.iter().all(|c| c.contains("pulled"));
            (only_pulled && namespaces("local-00001") == 0).then_some(())
        })
    });
    assert!(server.stop(), "server stopped uncleanly");
    assert!(containers(&data).is_empty(), "{:?}", containers(&data));
    assert_eq!(namespaces("pulled-00001") + namespaces("pulled-00002"), 0);
    assert_eq!(mounts_under(&data), 0, "overlay mounts left behind");
}

fn image_list(data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["image", "--data-dir"])
        .arg(data)
        .arg("ls")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// With `--image-store-limit`, every pull prunes the store: pulled images that no
/// replica runs go, least recently used first; images in use stay even over the limit.
#[tokio::test(flavor = "multi_thread")]
async fn the_image_store_prunes_pulled_images_nothing_runs() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    busybox_layout(&work);
    let reg = registry();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        // Each image differs from the last by one file.
        std::fs::write(work.join(format!("bundle/rootfs/{name}")), name).unwrap();
        run("umoci", &["repack", "--image", "L:latest", "bundle"], &work);
        let dest = format!("docker://{}/{name}:{i}", reg.addr);
        run(
            "skopeo",
            &["copy", "--dest-tls-verify=false", "oci:L:latest", &dest],
            &work,
        );
    }
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut server = Server::start_in(
        &data,
        "127.0.0.1:0",
        &["--backend", "runc", "--image-store-limit", "1"],
    );
    let image = |name: &str, i: usize| format!("{}/{name}:{i}", reg.addr);
    apply_ready(&server, "a", &web("a", &image("a", 0), "a"));
    apply_ready(&server, "b", &web("b", &image("b", 1), "b"));
    let listed = image_list(&data);
    assert!(
        listed.contains("/a:0") && listed.contains("/b:1"),
        "images in use stay: {listed}"
    );
    let k = server.kubectl(KUBECTL);
    k.ok(&["delete", "ksvc", "a"]);
    tokio::task::block_in_place(|| {
        eventually("a's container to go", || {
            (!containers(&data).iter().any(|c| c.contains(".a-00001."))).then_some(())
        })
    });
    apply_ready(&server, "c", &web("c", &image("c", 2), "c"));
    let listed = image_list(&data);
    assert!(
        !listed.contains("/a:0") && listed.contains("/b:1") && listed.contains("/c:2"),
        "only the image nothing runs goes: {listed}"
    );
    assert!(server.stop(), "server stopped uncleanly");
}
