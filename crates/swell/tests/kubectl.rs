//! The real kubectl binaries against the real `swell server`: every command a Knative user
//! runs, on the kubectl on PATH and on versioned ones from the machine image.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::{KUBECTL, Server, eventually, manifest, service_yaml, versioned_kubectl};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

/// apply (created, unchanged, configured), server-side apply, get with Knative's columns,
/// -A, categories, describe, label, selectors, merge patch, strategic patch refused,
/// explain, delete.
fn everyday_flow(binary: &str) {
    let server = Server::start();
    let k = server.kubectl(binary);
    let dir = tempfile::tempdir().unwrap();
    let hello = manifest(
        &dir,
        "hello.yaml",
        &service_yaml("hello", "ghcr.io/knative/helloworld-go:latest"),
    );

    assert_eq!(
        k.ok(&["apply", "-f", &hello]).trim(),
        "service.serving.knative.dev/hello created"
    );
    assert_eq!(
        k.ok(&["apply", "-f", &hello]).trim(),
        "service.serving.knative.dev/hello unchanged"
    );
    let changed = manifest(
        &dir,
        "hello2.yaml",
        &service_yaml("hello", "ghcr.io/knative/helloworld-go:v2"),
    );
    assert_eq!(
        k.ok(&["apply", "-f", &changed]).trim(),
        "service.serving.knative.dev/hello configured"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "ksvc",
            "hello",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "2"
    );

    let other = manifest(
        &dir,
        "other.yaml",
        &service_yaml("other", "ghcr.io/knative/helloworld-go:latest"),
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", &other]).trim(),
        "service.serving.knative.dev/other serverside-applied"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "ksvc",
            "other",
            "-o",
            "jsonpath={.metadata.managedFields[0].manager}"
        ]),
        "kubectl"
    );
    let rv = k.ok(&[
        "get",
        "ksvc",
        "other",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    std::thread::sleep(Duration::from_millis(1100));
    k.ok(&["apply", "--server-side", "-f", &other]);
    assert_eq!(
        k.ok(&[
            "get",
            "ksvc",
            "other",
            "-o",
            "jsonpath={.metadata.resourceVersion}"
        ]),
        rv,
        "an unchanged server-side apply writes nothing"
    );

    let table = k.ok(&["get", "ksvc"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "URL",
            "LATESTCREATED",
            "LATESTREADY",
            "READY",
            "REASON"
        ],
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("hello ")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("other ")), "{table}");

    let paged = k.ok(&["get", "ksvc", "--chunk-size=1", "-o", "name"]);
    assert_eq!(
        paged, "service.serving.knative.dev/hello\nservice.serving.knative.dev/other\n",
        "pages of one, joined by continue tokens"
    );

    let all = k.ok(&["get", "ksvc", "-A"]);
    assert!(
        all.lines().next().unwrap().starts_with("NAMESPACE"),
        "{all}"
    );
    assert!(
        all.lines()
            .any(|l| l.starts_with("default ") && l.contains("hello")),
        "{all}"
    );

    let knative = k.ok(&["get", "knative"]);
    assert!(
        knative.contains("service.serving.knative.dev/hello"),
        "{knative}"
    );
    for short in ["kservice", "configurations", "cfg", "rev", "rt", "dm"] {
        k.ok(&["get", short]);
    }

    let described = k.ok(&["describe", "ksvc", "hello"]);
    for want in [
        "Name:",
        "hello",
        "Namespace:",
        "default",
        "API Version:",
        "serving.knative.dev/v1",
        "Kind:",
        "Service",
        "ghcr.io/knative/helloworld-go:v2",
    ] {
        assert!(
            described.contains(want),
            "describe lacks {want}:\n{described}"
        );
    }

    assert_eq!(
        k.ok(&["label", "ksvc", "hello", "team=a"]).trim(),
        "service.serving.knative.dev/hello labeled"
    );
    assert!(
        k.ok(&["get", "ksvc", "-l", "team=a", "-o", "name"])
            .contains("service.serving.knative.dev/hello")
    );
    assert!(
        !k.ok(&["get", "ksvc", "-l", "team!=a", "-o", "name"])
            .contains("/hello")
    );
    assert!(
        k.ok(&["get", "ksvc", "-l", "team in (a,b)", "-o", "name"])
            .contains("/hello")
    );

    let patch = r#"{"spec":{"template":{"spec":{"containerConcurrency":5}}}}"#;
    assert_eq!(
        k.ok(&["patch", "ksvc", "hello", "--type=merge", "-p", patch])
            .trim(),
        "service.serving.knative.dev/hello patched"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "ksvc",
            "hello",
            "-o",
            "jsonpath={.spec.template.spec.containerConcurrency}"
        ]),
        "5"
    );
    let refused = k.fails(&["patch", "ksvc", "hello", "-p", patch]);
    assert!(
        refused.contains("application/strategic-merge-patch+json is not supported"),
        "{refused}"
    );

    let explained = k.ok(&["explain", "ksvc"]);
    assert!(
        explained.contains("Service") && explained.contains("FIELDS") && explained.contains("spec"),
        "{explained}"
    );
    let explained = k.ok(&["explain", "ksvc.spec.traffic"]);
    assert!(
        explained.contains("percent") && explained.contains("revisionName"),
        "{explained}"
    );

    assert_eq!(
        k.ok(&["delete", "ksvc", "hello"]).trim(),
        "service.serving.knative.dev \"hello\" deleted"
    );
    let gone = k.fails(&["get", "ksvc", "hello"]);
    assert!(
        gone.contains("services.serving.knative.dev \"hello\" not found"),
        "{gone}"
    );
}

#[test]
fn everyday_flow_kubectl_on_path() {
    everyday_flow(KUBECTL);
}

#[test]
fn everyday_flow_kubectl_1_27() {
    everyday_flow(&versioned_kubectl(27));
}

#[test]
fn everyday_flow_kubectl_1_29() {
    everyday_flow(&versioned_kubectl(29));
}

#[test]
fn everyday_flow_kubectl_1_33() {
    everyday_flow(&versioned_kubectl(33));
}

/// Lines kubectl prints while it runs, read on a thread.
fn stream_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_line_with(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = rx
            .recv_timeout(common::PATIENCE)
            .unwrap_or_else(|_| panic!("no line with {needle:?} arrived"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn get_watch_shows_rows_as_objects_change() {
    let server = Server::start();
    let k = server.kubectl(KUBECTL);
    let dir = tempfile::tempdir().unwrap();
    k.ok(&[
        "apply",
        "-f",
        &manifest(&dir, "a.yaml", &service_yaml("first", "example.com/app:1")),
    ]);

    let mut all = k
        .command(&["get", "ksvc", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rows = stream_lines(&mut all);
    next_line_with(&rows, "NAME");
    next_line_with(&rows, "first");
    k.ok(&[
        "apply",
        "-f",
        &manifest(&dir, "b.yaml", &service_yaml("second", "example.com/app:1")),
    ]);
    next_line_with(&rows, "second");

    // A single-object watch starts with a synthetic ADDED that kubectl swallows; the next
    // change must still show.
    let mut one = k
        .command(&["get", "ksvc", "first", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let one_rows = stream_lines(&mut one);
    next_line_with(&one_rows, "service.serving.knative.dev/first");
    std::thread::sleep(Duration::from_millis(300));
    k.ok(&["label", "ksvc", "first", "changed=yes"]);
    next_line_with(&one_rows, "service.serving.knative.dev/first");
    next_line_with(&rows, "first");
    let _ = all.kill();
    let _ = one.kill();
}

#[test]
fn wait_returns_when_the_controllers_make_the_service_ready() {
    let server = Server::start_with(&["--backend", "fake"]);
    let k = server.kubectl(KUBECTL);
    let dir = tempfile::tempdir().unwrap();
    k.ok(&[
        "apply",
        "-f",
        &manifest(&dir, "a.yaml", &service_yaml("hello", "example.com/app:1")),
    ]);
    let out = k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/hello",
        "--timeout=60s",
    ]);
    assert_eq!(
        out.trim(),
        "service.serving.knative.dev/hello condition met"
    );
    assert_eq!(
        k.ok(&["get", "ksvc", "hello", "-o", "jsonpath={.status.url}"]),
        format!("http://hello.default.localhost:{}", server.ingress_port())
    );
    // A new generation is not Ready until the controllers have observed it.
    k.ok(&[
        "apply",
        "-f",
        &manifest(&dir, "b.yaml", &service_yaml("hello", "example.com/app:2")),
    ]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/hello",
        "--timeout=60s",
    ]);
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
    // The reconcilers' Events show in describe.
    let described = k.ok(&["describe", "ksvc", "hello"]);
    for want in [
        "Created Configuration \"hello\"",
        "Created Route \"hello\"",
        "Updated Configuration \"hello\"",
        "swell-controller",
    ] {
        assert!(
            described.contains(want),
            "describe lacks {want}:\n{described}"
        );
    }
    let described = k.ok(&["describe", "configuration", "hello"]);
    assert!(
        described.contains("Created Revision \"hello-00002\""),
        "{described}"
    );
}

#[test]
fn delete_returns_only_once_the_object_is_gone() {
    let server = Server::start();
    let k = server.kubectl(KUBECTL);
    let held = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: held\n  finalizers: [test.swell.dev/hold]\nspec:\n  template:\n    spec:\n      containers:\n        - image: example.com/app:1\n";
    k.ok_stdin(&["apply", "-f", "-"], held);
    let mut deleter = k
        .command(&["delete", "ksvc", "held"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the deletionTimestamp", || {
        let ts = k.ok(&[
            "get",
            "ksvc",
            "held",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        (!ts.is_empty()).then_some(())
    });
    assert!(
        deleter.try_wait().unwrap().is_none(),
        "kubectl delete returned while a finalizer still holds the object"
    );
    k.ok(&[
        "patch",
        "ksvc",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let out = deleter.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "service.serving.knative.dev \"held\" deleted"
    );
    k.fails(&["get", "ksvc", "held"]);
}

fn owned_route(owner_uid: &str, name: &str) -> String {
    format!(
        "apiVersion: serving.knative.dev/v1\nkind: Route\nmetadata:\n  name: {name}\n  ownerReferences:\n  - apiVersion: serving.knative.dev/v1\n    kind: Service\n    name: owner\n    uid: {owner_uid}\n    controller: true\n    blockOwnerDeletion: true\nspec:\n  traffic:\n  - configurationName: owner\n    percent: 100\n"
    )
}

#[test]
fn cascading_deletes_and_dry_runs() {
    let server = Server::start();
    let k = server.kubectl(KUBECTL);
    let dir = tempfile::tempdir().unwrap();
    let owner = manifest(
        &dir,
        "owner.yaml",
        &service_yaml("owner", "example.com/app:1"),
    );

    k.ok(&["apply", "--dry-run=server", "-f", &owner]);
    k.fails(&["get", "ksvc", "owner"]);

    k.ok(&["apply", "-f", &owner]);
    let uid = k.ok(&["get", "ksvc", "owner", "-o", "jsonpath={.metadata.uid}"]);
    k.ok_stdin(&["apply", "-f", "-"], &owned_route(&uid, "owner"));
    k.ok(&["delete", "ksvc", "owner", "--dry-run=server"]);
    k.ok(&["get", "ksvc", "owner"]);

    k.ok(&["delete", "ksvc", "owner", "--cascade=orphan"]);
    let orphan = k.ok(&[
        "get",
        "route",
        "owner",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(orphan, "", "orphaned route keeps no owner reference");
    k.ok(&["delete", "route", "owner"]);

    k.ok(&["apply", "-f", &owner]);
    let uid = k.ok(&["get", "ksvc", "owner", "-o", "jsonpath={.metadata.uid}"]);
    k.ok_stdin(&["apply", "-f", "-"], &owned_route(&uid, "owner"));
    k.ok(&["delete", "ksvc", "owner", "--cascade=foreground"]);
    k.fails(&["get", "route", "owner"]);

    k.ok(&["apply", "-f", &owner]);
    let uid = k.ok(&["get", "ksvc", "owner", "-o", "jsonpath={.metadata.uid}"]);
    k.ok_stdin(&["apply", "-f", "-"], &owned_route(&uid, "owner"));
    k.ok(&["delete", "ksvc", "owner"]);
    eventually("the route to be collected", || {
        k.run(&["get", "route", "owner"])
            .status
            .success()
            .then_some(())
            .xor(Some(()))
    });
}

#[test]
fn errors_read_like_kubernetes() {
    let server = Server::start();
    let k = server.kubectl(KUBECTL);
    let dir = tempfile::tempdir().unwrap();
    let hello = manifest(
        &dir,
        "hello.yaml",
        &service_yaml("hello", "example.com/app:1"),
    );
    k.ok(&["create", "-f", &hello]);
    let exists = k.fails(&["create", "-f", &hello]);
    assert!(
        exists.contains("AlreadyExists")
            && exists.contains("services.serving.knative.dev \"hello\" already exists"),
        "{exists}"
    );

    let bad_port = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  template:\n    spec:\n      containers:\n        - image: example.com/app:1\n          ports:\n            - containerPort: 8012\n";
    let err = k.fails(&["apply", "-f", &manifest(&dir, "bad.yaml", bad_port)]);
    assert!(
        err.contains("The Service \"bad\" is invalid")
            && err.contains("spec.template.spec.containers[0].ports.containerPort"),
        "{err}"
    );

    let typo = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: typo\nspec:\n  template:\n    spec:\n      containers:\n        - image: example.com/app:1\n          imagePullPolicyy: Always\n";
    let err = k.fails(&["apply", "-f", &manifest(&dir, "typo.yaml", typo)]);
    assert!(
        err.contains("unknown field \"spec.template.spec.containers[0].imagePullPolicyy\""),
        "{err}"
    );

    let stale = k
        .ok(&["get", "ksvc", "hello", "-o", "json"])
        .replace("\"resourceVersion\": \"", "\"resourceVersion\": \"1");
    let err = k.fails(&["replace", "-f", &manifest(&dir, "stale.json", &stale)]);
    assert!(
        err.contains("Conflict") && err.contains("the object has been modified"),
        "{err}"
    );

    let err = k.fails(&["get", "ksvc", "nope"]);
    assert!(
        err.contains(
            "Error from server (NotFound): services.serving.knative.dev \"nope\" not found"
        ),
        "{err}"
    );
    let err = k.fails(&["get", "ksvc", "-n", "missing-ns", "x"]);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn configmaps_and_namespaces() {
    let server = Server::start();
    let k = server.kubectl(KUBECTL);
    let namespaces = k.ok(&["get", "namespaces", "-o", "name"]);
    assert!(
        namespaces.contains("namespace/default")
            && namespaces.contains("namespace/knative-serving"),
        "{namespaces}"
    );
    k.ok(&["create", "namespace", "team"]);
    k.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team",
        "--from-literal=level=debug",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: team\ndata:\n  level: info\n  extra: 'yes'\n";
    let out = k.ok(&["apply", "-f", &manifest(&dir, "cm.yaml", cm)]);
    assert!(out.contains("configmap/settings configured"), "{out}");
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "settings",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.level}"
        ]),
        "info"
    );
    k.ok(&[
        "patch",
        "cm",
        "settings",
        "-n",
        "team",
        "-p",
        r#"{"data":{"level":"warn"}}"#,
    ]);
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "settings",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.level}"
        ]),
        "warn"
    );
    let table = k.ok(&["get", "cm", "-n", "team"]);
    assert!(
        table.starts_with("NAME") && table.contains("DATA") && table.contains("settings"),
        "{table}"
    );
    k.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "team",
        "--from-literal=token=s3cret",
    ]);
    assert_eq!(
        k.ok(&[
            "get",
            "secret",
            "creds",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.token}"
        ]),
        "czNjcmV0"
    );
    k.ok(&[
        "apply",
        "-f",
        &manifest(
            &dir,
            "svc.yaml",
            &service_yaml("app", "example.com/app:1")
                .replace("name: app", "name: app\n  namespace: team"),
        ),
    ]);
    k.ok(&["delete", "namespace", "team"]);
    k.fails(&["get", "ksvc", "app", "-n", "team"]);
    let err = k.fails(&["delete", "namespace", "default"]);
    assert!(err.contains("Forbidden"), "{err}");
}

#[test]
fn gradual_rollout_moves_traffic_in_steps() {
    let server = Server::start_with(&["--backend", "fake"]);
    let k = server.kubectl(KUBECTL);
    let dir = tempfile::tempdir().unwrap();
    let svc = |image: &str| {
        service_yaml("hello", image).replace("metadata:\n  name: hello\n", "metadata:\n  name: hello\n  annotations:\n    serving.knative.dev/rollout-duration: 4s\n")
    };
    k.ok(&[
        "apply",
        "-f",
        &manifest(&dir, "v1.yaml", &svc("example.com/app:1")),
    ]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/hello",
        "--timeout=60s",
    ]);
    k.ok(&[
        "apply",
        "-f",
        &manifest(&dir, "v2.yaml", &svc("example.com/app:2")),
    ]);
    // While rolling, both Revisions share the traffic and the Route says why it waits.
    let split = common::eventually("a split between the two revisions", || {
        let out = k.ok(&[
            "get",
            "route",
            "hello",
            "-o",
            "jsonpath={range .status.traffic[*]}{.revisionName}={.percent} {end}",
        ]);
        let parts: Vec<String> = out.split_whitespace().map(String::from).collect();
        (parts.len() == 2).then_some(parts)
    });
    assert!(
        split[0].starts_with("hello-00001=") && split[1].starts_with("hello-00002="),
        "{split:?}"
    );
    let total: i64 = split
        .iter()
        .map(|p| p.split('=').nth(1).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 100);
    let reason = k.ok(&[
        "get",
        "route",
        "hello",
        "-o",
        "jsonpath={.status.conditions[?(@.type=='IngressReady')].reason}",
    ]);
    assert_eq!(reason, "RolloutInProgress");
    // Then all of it reaches the new Revision and the Service is Ready again.
    common::eventually("the rollout to finish", || {
        let out = k.ok(&[
            "get",
            "ksvc",
            "hello",
            "-o",
            "jsonpath={range .status.traffic[*]}{.revisionName}={.percent} {end}",
        ]);
        (out.trim() == "hello-00002=100").then_some(())
    });
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/hello",
        "--timeout=60s",
    ]);
    let annotations = k.ok(&[
        "get",
        "route",
        "hello",
        "-o",
        "jsonpath={.status.annotations}",
    ]);
    assert!(
        annotations.contains("networking.internal.knative.dev/rollout"),
        "{annotations}"
    );
}
