//! Controller scenarios written as data: `tests/fixtures/<case>/` holds numbered steps
//! (`N-*.yaml` applied with kubectl, `N-delete.txt` lines of `<resource> <name>` deleted)
//! and `expected.yaml`, partial objects the live ones must match (a `null` field must be
//! absent; `absent: true` means the object must not exist). Each case runs against the
//! real server with the fake backend, whose replicas are ready at once.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::{KUBECTL, PATIENCE, Server};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Where `expected` (partial) and `actual` differ, if they do.
fn mismatch(path: &str, expected: &Value, actual: Option<&Value>) -> Option<String> {
    match (expected, actual) {
        (Value::Null, None | Some(Value::Null)) => None,
        (Value::Null, Some(a)) => Some(format!("{path}: expected absent, found {a}")),
        (_, None) => Some(format!("{path}: missing, expected {expected}")),
        (Value::Object(e), Some(Value::Object(a))) => e
            .iter()
            .find_map(|(k, v)| mismatch(&format!("{path}.{k}"), v, a.get(k))),
        (Value::Array(e), Some(Value::Array(a))) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| mismatch(&format!("{path}[{i}]"), ev, Some(av))),
        (e, Some(a)) if e == a => None,
        (e, Some(a)) => Some(format!("{path}: expected {e}, found {a}")),
    }
}

fn plural(kind: &str) -> &'static str {
    match kind {
        // Plain `services` are the core kind, as in any Kubernetes cluster.
        "Service" => "services.serving.knative.dev",
        "Configuration" => "configurations",
        "Revision" => "revisions",
        "Route" => "routes",
        other => panic!("no plural for {other}"),
    }
}

fn get(k: &common::Kubectl, kind: &str, name: &str) -> Option<Value> {
    let out = k.run(&["get", plural(kind), name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// Waits until every Service has observed its generation and decided Ready either way.
fn settle(k: &common::Kubectl) {
    common::eventually("the Services to settle", || {
        let list: Value = serde_json::from_str(&k.ok(&["get", "ksvc", "-o", "json"])).ok()?;
        let settled = list["items"].as_array()?.iter().all(|s| {
            let ready = s["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
            s["status"]["observedGeneration"] == s["metadata"]["generation"]
                && ready.is_some_and(|r| r["status"] != "Unknown")
        });
        settled.then_some(())
    });
}

fn run_case(dir: &Path) {
    let server = Server::start_with(&["--backend", "fake"]);
    let k = server.kubectl(KUBECTL);
    let mut steps: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("expected.yaml"))
        .collect();
    steps.sort();
    for step in steps {
        let path = step.to_str().unwrap();
        if path.ends_with("-delete.txt") {
            for line in std::fs::read_to_string(&step)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                let args: Vec<&str> = std::iter::once("delete")
                    .chain(line.split_whitespace())
                    .collect();
                k.ok(&args);
            }
        } else {
            k.ok(&["apply", "-f", path]);
            settle(&k);
        }
    }
    // Public URLs carry the ingress port, which differs per run.
    let text = std::fs::read_to_string(dir.join("expected.yaml"))
        .unwrap()
        .replace("${INGRESS_PORT}", &server.ingress_port().to_string());
    let expected: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let problems: Vec<String> = expected
            .iter()
            .filter_map(|e| {
                let kind = e["kind"].as_str().unwrap();
                let name = e["metadata"]["name"].as_str().unwrap();
                let live = get(&k, kind, name);
                match (e.get("absent") == Some(&Value::Bool(true)), live) {
                    (true, None) => None,
                    (true, Some(_)) => Some(format!("{kind} {name}: still exists")),
                    (false, None) => Some(format!("{kind} {name}: not found")),
                    (false, Some(live)) => mismatch(&format!("{kind} {name}"), e, Some(&live)),
                }
            })
            .collect();
        if problems.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "case {}:\n{}",
            dir.display(),
            problems.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn controller_scenarios() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 11, "scenario folders are missing");
    for case in cases {
        run_case(&case);
    }
}

/// Revision names in the default namespace.
fn revisions(k: &common::Kubectl) -> Vec<String> {
    k.ok(&[
        "get",
        "revisions",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])
    .split_whitespace()
    .map(String::from)
    .collect()
}

#[test]
fn restarts_mid_way_converge_without_duplicate_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    let fake = ["--backend", "fake"];
    let mut server = Server::start_in(dir.path(), "127.0.0.1:0", &fake);
    let k = server.kubectl(KUBECTL);
    let v1 = common::manifest(
        &manifests,
        "v1.yaml",
        &common::service_yaml("hello", "example.com/app:1"),
    );
    k.ok(&["apply", "-f", &v1]);
    server.kill9();

    let mut server = Server::start_in(dir.path(), "127.0.0.1:0", &fake);
    let k = server.kubectl(KUBECTL);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/hello",
        "--timeout=60s",
    ]);
    assert_eq!(revisions(&k), ["hello-00001"]);

    let v2 = common::manifest(
        &manifests,
        "v2.yaml",
        &common::service_yaml("hello", "example.com/app:2"),
    );
    k.ok(&["apply", "-f", &v2]);
    assert!(server.stop());
    let server = Server::start_in(dir.path(), "127.0.0.1:0", &fake);
    let k = server.kubectl(KUBECTL);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/hello",
        "--timeout=60s",
    ]);
    settle(&k);
    assert_eq!(revisions(&k), ["hello-00001", "hello-00002"]);
    assert_eq!(
        k.ok(&[
            "get",
            "ksvc",
            "hello",
            "-o",
            "jsonpath={.status.latestReadyRevisionName}"
        ]),
        "hello-00002"
    );
    assert_eq!(
        k.ok(&["get", "configurations", "-o", "name"])
            .lines()
            .count(),
        1
    );
    assert_eq!(k.ok(&["get", "routes", "-o", "name"]).lines().count(), 1);
}
