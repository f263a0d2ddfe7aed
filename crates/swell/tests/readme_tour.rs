//! The README's 5-minute tour, command by command, and `swell quickstart` under runc.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::{Server, eventually};
use std::process::Command;

/// The shell blocks of the README's "A 5-minute tour" section.
fn tour_commands() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("\n## A 5-minute tour\n")
        .nth(1)
        .expect("the README has a tour")
        .split("\n## ")
        .next()
        .unwrap();
    let mut commands = Vec::new();
    for block in section.split("```sh\n").skip(1) {
        let body = block.split("```").next().unwrap();
        for line in body.lines() {
            let command = line.split("  #").next().unwrap().trim();
            if !command.is_empty() {
                commands.push(command.to_string());
            }
        }
    }
    commands
}

/// The sample's URL, once quickstart printed its curl line.
fn wait_for_sample(server: &Server) -> String {
    eventually("quickstart's curl line", || {
        let line = server.output.recv_timeout(common::PATIENCE).ok()?;
        line.trim().strip_prefix("curl ").map(str::to_string)
    })
}

#[test]
fn every_command_of_the_readme_tour_works() {
    let commands = tour_commands();
    assert!(
        commands[0].starts_with("cargo run --release -p swell -- quickstart"),
        "{commands:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_verb("quickstart", dir.path(), "127.0.0.1:0", &[]);
    let url = wait_for_sample(&server);
    let port = server.ingress_port().to_string();
    assert_eq!(url, format!("http://hello.default.localhost:{port}"));
    for command in &commands[1..] {
        // The tour's ports are the defaults; this server's are free ones.
        let command = command.replace(":8080", &format!(":{port}"));
        if command.starts_with("export KUBECONFIG=") {
            continue;
        } else if let Some(args) = command.strip_prefix("swell ") {
            let args: Vec<&str> = args.split_whitespace().collect();
            let out = server.swell(&args);
            assert!(
                out.status.success(),
                "`{command}` failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        } else if command.starts_with("curl ") {
            // A domain mapping becomes ready just after `domain create` returns.
            let body = eventually(&command, || {
                let out = Command::new("sh")
                    .args([
                        "-c",
                        &format!("curl -sS --fail --max-time 30 {}", &command[5..]),
                    ])
                    .output()
                    .unwrap();
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).to_string())
            });
            assert!(!body.is_empty(), "`{command}` answered nothing");
        } else {
            panic!("the tour has a command this test does not run: {command}");
        }
    }
}

#[test]
fn quickstart_runs_the_sample_image_under_runc() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_verb(
        "quickstart",
        dir.path(),
        "127.0.0.1:0",
        &["--backend", "runc"],
    );
    let url = wait_for_sample(&server);
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", &url])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        common::apps::HELLO
    );
    // The sample is an image in the store, built from this binary, pinned by digest.
    let k = server.kubectl(common::KUBECTL);
    let digest = k.ok(&[
        "get",
        "revision",
        "hello-00001",
        "-o",
        "jsonpath={.status.containerStatuses[0].imageDigest}",
    ]);
    assert!(digest.contains("swell/helloworld@sha256:"), "{digest}");
    let images = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["image", "--data-dir"])
        .arg(dir.path())
        .arg("ls")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&images.stdout).contains("swell/helloworld"));
}
