//! Private registries: Debian's `docker-registry` with htpasswd basic auth holds an
//! image that anonymous pulls cannot get. A Revision reaches it through an
//! `imagePullSecrets` Secret made by the real `kubectl create secret docker-registry`
//! (a Revision without it fails with the registry's refusal, and retries once the
//! Secret it names appears), or through the server's own docker `config.json`
//! (`--registry-config`); `swell image pull` signs in with `--username`/`--password`.
//! Needs root, runc and the CNI plugins, as CI has.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, url};
use common::oci::{busybox_layout, busybox_web as web, private_registry, run};
use common::{KUBECTL, Server, eventually};
use std::path::Path;
use std::process::Command;

fn image_pull(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["image", "--data-dir"])
        .arg(data)
        .arg("pull")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn private_images_need_and_get_their_credentials() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runc backend needs root, as CI has"
    );
    let t = tempfile::tempdir().unwrap();
    busybox_layout(t.path());
    let reg = private_registry("swell", "s3cret");
    let image = format!("{}/private/busybox:1", reg.addr);
    run(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "swell:s3cret",
            "oci:L:latest",
            &format!("docker://{image}"),
        ],
        t.path(),
    );

    // The CLI: refused anonymously, pulled with credentials.
    let store = t.path().join("cli-store");
    let anonymous = image_pull(&store, &[&image]);
    assert!(!anonymous.status.success());
    let signed_in = image_pull(
        &store,
        &[&image, "--username", "swell", "--password", "s3cret"],
    );
    assert!(
        signed_in.status.success(),
        "{}",
        String::from_utf8_lossy(&signed_in.stderr)
    );

    // A Revision without credentials fails on the registry's refusal …
    let mut server = Server::start_with(&["--backend", "runc"]);
    let k = server.kubectl(KUBECTL);
    let secret_ref = "      imagePullSecrets: [{name: regcred}]\n";
    k.ok_stdin(
        &["apply", "-f", "-"],
        &web("private", &image, "private-text", secret_ref),
    );
    let (_, _, message) = eventually("private-00001 to fail on its image", || {
        let c = k.condition("revision/private-00001", "Ready");
        (c.0 == "False" && c.1 == "ContainerMissing").then_some(c)
    });
    assert!(
        message.contains(&image) && message.contains("Not authorized"),
        "{message}"
    );
    // … and succeeds once the Secret it names exists.
    k.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", reg.addr),
        "--docker-username=swell",
        "--docker-password=s3cret",
    ]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/private",
        "--timeout=60s",
    ]);
    let c = client(&server, &["private.default.localhost"]);
    let (status, body) = get(&c, &url(&server, "private.default.localhost", "/")).await;
    assert_eq!((status, body.trim()), (200, "private-text"));
    assert!(server.stop(), "server stopped uncleanly");

    // The server's own docker config serves Revisions that name no Secret.
    let config = t.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths": {{"http://{}": {{"username": "swell", "password": "s3cret"}}}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut server = Server::start_with(&["--backend", "runc", "--registry-config", &config]);
    apply_ready(&server, "node", &web("node", &image, "node-text", ""));
    let c = client(&server, &["node.default.localhost"]);
    let (status, body) = get(&c, &url(&server, "node.default.localhost", "/")).await;
    assert_eq!((status, body.trim()), (200, "node-text"));
    assert!(server.stop(), "server stopped uncleanly");
}

#[test]
fn a_malformed_registry_config_stops_the_server_with_its_name() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("config.json");
    std::fs::write(&config, "{\"auths\": 3}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["server", "--backend", "runc", "--data-dir"])
        .arg(t.path().join("data"))
        .args(["--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--registry-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.json") && err.contains("not a docker config"),
        "{err}"
    );
}
