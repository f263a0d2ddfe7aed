//! `swell apply`, `swell get` and `swell delete` against the real server.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::{Server, manifest, service_yaml};
use std::process::{Command, Output, Stdio};

fn ok(server: &Server, args: &[&str]) -> String {
    let out = server.swell(args);
    assert!(
        out.status.success(),
        "swell {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(server: &Server, args: &[&str]) -> String {
    let out = server.swell(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "swell {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "errors are one line: {err}");
    err
}

#[test]
fn apply_get_delete() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let hello = manifest(
        &dir,
        "hello.yaml",
        &service_yaml("hello", "example.com/app:1"),
    );
    assert_eq!(
        ok(&server, &["apply", "-f", &hello]).trim(),
        "service.serving.knative.dev/hello created"
    );
    assert_eq!(
        ok(&server, &["apply", "-f", &hello]).trim(),
        "service.serving.knative.dev/hello unchanged"
    );
    // A second later the managedFields time would differ: an unchanged apply still writes nothing.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        ok(&server, &["apply", "-f", &hello]).trim(),
        "service.serving.knative.dev/hello unchanged"
    );
    let changed = manifest(
        &dir,
        "hello2.yaml",
        &service_yaml("hello", "example.com/app:2"),
    );
    assert_eq!(
        ok(&server, &["apply", "-f", &changed]).trim(),
        "service.serving.knative.dev/hello configured"
    );

    let multi = format!(
        "{}---\n{}",
        service_yaml("one", "example.com/app:1"),
        service_yaml("two", "example.com/app:1")
    );
    let sub = tempfile::tempdir_in(dir.path()).unwrap();
    manifest(&sub, "multi.yaml", &multi);
    manifest(
        &sub,
        "cm.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"},"data":{"a":"b"}}"#,
    );
    let out = ok(&server, &["apply", "-f", sub.path().to_str().unwrap()]);
    assert_eq!(
        out,
        "configmap/settings created\nservice.serving.knative.dev/one created\nservice.serving.knative.dev/two created\n"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["apply", "-f", "-", "--kubeconfig"])
        .arg(server.kubeconfig())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        service_yaml("piped", "example.com/app:1").as_bytes(),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(child.wait_with_output().unwrap().stdout)
            .unwrap()
            .trim(),
        "service.serving.knative.dev/piped created"
    );

    let table = ok(&server, &["get", "ksvc"]);
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
        ]
    );
    assert_eq!(table.lines().count(), 5, "{table}");
    let all = ok(&server, &["get", "services", "-A"]);
    assert!(
        all.starts_with("NAMESPACE") && all.contains("default"),
        "{all}"
    );

    let yaml = ok(&server, &["get", "ksvc", "hello", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Service") && yaml.contains("image: example.com/app:2"),
        "{yaml}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&server, &["get", "kservice", "-o", "json"])).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 4);
    assert!(ok(&server, &["get", "cm", "-n", "default"]).contains("settings"));

    assert_eq!(
        ok(&server, &["delete", "ksvc", "hello"]).trim(),
        "services.serving.knative.dev \"hello\" deleted"
    );
    let err = fails(&server, &["get", "ksvc", "hello"]);
    assert_eq!(
        err.trim(),
        "Error from server (NotFound): services.serving.knative.dev \"hello\" not found"
    );
    let err = fails(&server, &["get", "widgets"]);
    assert!(
        err.contains("doesn't have a resource type \"widgets\""),
        "{err}"
    );
    let err = fails(&server, &["get", "ksvc", "-o", "wide"]);
    assert!(err.contains("unknown output format"), "{err}");

    let bad = manifest(
        &dir,
        "bad.yaml",
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  template:\n    spec:\n      containers:\n        - image: x\n          ports:\n            - containerPort: 8012\n",
    );
    let err = fails(&server, &["apply", "-f", &bad]);
    assert!(
        err.contains("spec.template.spec.containers[0].ports.containerPort"),
        "{err}"
    );
    let broken = manifest(&dir, "broken.yaml", "kind: [unclosed");
    let err = fails(&server, &["apply", "-f", &broken]);
    assert!(err.contains("error parsing"), "{err}");
}

#[test]
fn unreachable_server_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = manifest(
        &dir,
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["get", "ksvc", "--kubeconfig", &kubeconfig])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot reach the API server") && err.contains("swell server"),
        "{err}"
    );
}

#[test]
fn server_stops_cleanly_on_sigterm_and_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), "127.0.0.1:0", &[]);
    let hello = manifest(
        &dir,
        "hello.yaml",
        &service_yaml("hello", "example.com/app:1"),
    );
    ok(&server, &["apply", "-f", &hello]);
    assert!(server.stop(), "swell server exits 0 on SIGTERM");
    let again = Server::start_in(dir.path(), "127.0.0.1:0", &[]);
    assert!(ok(&again, &["get", "ksvc"]).contains("hello"));
    let kubeconfig = std::fs::read_to_string(again.kubeconfig()).unwrap();
    assert!(
        kubeconfig.contains(&again.url),
        "the kubeconfig points at the running server"
    );
}

/// Runs `swell autoscaler simulate` with `args`, feeding `trace` on stdin.
fn simulate(args: &[&str], trace: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swell"));
    cmd.args(["autoscaler", "simulate"]).args(args);
    common::output_with_stdin(&mut cmd, trace)
}

#[test]
fn autoscaler_simulate_prints_one_decision_per_tick() {
    let dir = tempfile::tempdir().unwrap();
    // A ConfigMap as users keep it: a 10 s stable window → a 1 s panic window.
    let config = manifest(
        &dir,
        "config-autoscaler.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-autoscaler\n  namespace: knative-serving\ndata:\n  stable-window: 10s\n",
    );
    let trace = "\
{\"time\": 0, \"ready\": 1, \"containerConcurrency\": 10, \"concurrency\": 7}
{\"time\": 1, \"concurrency\": 70}
{\"time\": 2, \"ready\": 10, \"concurrency\": 7}
";
    let out = simulate(&["--config", &config], trace);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["desired"], 1);
    // The 1 s panic window sees only the burst: 70 / 7 = 10 replicas, panic.
    assert_eq!(lines[1]["panicValue"], 70.0);
    assert_eq!(lines[1]["stableValue"], 38.5);
    assert_eq!(lines[1]["desired"], 10);
    assert_eq!(lines[1]["panicking"], true);
    // Load is gone from the panic window, but panic mode never scales down.
    assert_eq!(lines[2]["panicValue"], 7.0);
    assert_eq!(lines[2]["desired"], 10);

    let bad = simulate(&[], "{\"time\": 0}\nnot json\n");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("line 2:"), "{err}");
    let bad_config = manifest(&dir, "bad.yaml", "stable-window: 1s\n");
    let bad = simulate(&["--config", &bad_config], "");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("stable-window"));
}

/// `swell logs` prints what a Revision's replicas wrote, follows what they write next
/// with `-f` (a restarted replica's start-up line), and refuses an unknown Revision or
/// container in one line.
#[test]
fn logs_print_and_follow_what_replicas_write() {
    use std::io::BufRead;
    let server = Server::start_with(&["--backend", "process"]);
    // The marker tells this test's replica from other tests' helloworlds.
    let marker = format!("logs-test-{}", std::process::id());
    let yaml = common::apps::service(
        "hello",
        "helloworld",
        &format!("        args: [{marker}]\n"),
        "",
    );
    common::apps::apply_ready(&server, "hello", &yaml);
    let started = "helloworld: listening on port";
    let out = ok(&server, &["logs", "hello-00001"]);
    assert!(out.contains(started), "{out}");
    let named = ok(
        &server,
        &["logs", "hello-00001", "--container", "user-container"],
    );
    assert_eq!(named, out);
    let err = fails(&server, &["logs", "hello-00001", "-c", "nope"]);
    assert!(err.contains("no container \"nope\""), "{err}");
    let err = fails(&server, &["logs", "ghost-00001"]);
    assert!(err.contains("\"ghost-00001\" not found"), "{err}");

    let mut follow = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["logs", "-f", "hello-00001", "--kubeconfig"])
        .arg(server.kubeconfig())
        .env("SWELL_DATA_DIR", &server.data_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let next_start = |what: &str| loop {
        let line = rx
            .recv_timeout(common::PATIENCE)
            .unwrap_or_else(|_| panic!("no {what}"));
        if line.contains(started) {
            break;
        }
    };
    next_start("first start-up line");
    let replicas = common::apps::pids_of(&format!("helloworld {marker}"));
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    for pid in replicas {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    next_start("start-up line from the restarted replica");
    let _ = follow.kill();
    let _ = follow.wait();
}

/// The backend `swell server` picks by itself: runc where it can run (root, `runc` on
/// PATH, the CNI plugins; CI has all three), the process backend where it cannot. A
/// closed stdout does not stop the server.
#[test]
fn the_default_backend_is_runc_where_it_can_run() {
    use std::io::BufRead;
    let says = |path: &str| {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_swell"))
            .args(["server", "--data-dir"])
            .arg(dir.path())
            .args(["--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .env("PATH", path)
            .env_remove("SWELL_BACKEND")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The pipe closes after that line, as `swell server | grep …` would close it:
        // the server keeps going, and stops cleanly on SIGTERM.
        let line = std::io::BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("Swell runs replicas with"))
            .unwrap_or_default();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + common::PATIENCE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("swell server did not stop on SIGTERM once its output was closed");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.success(), "{status}");
        line
    };
    assert!(nix::unistd::geteuid().is_root(), "CI runs as root");
    let path = std::env::var("PATH").unwrap();
    assert_eq!(says(&path), "Swell runs replicas with the runc backend");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        says(&empty.path().display().to_string()),
        "Swell runs replicas with the process backend"
    );
}
