//! Knative's runtime conformance cases (`test/conformance/runtime`) with the runc
//! backend: the testapp, built into an image laid out like Knative's `runtime` image
//! (user 65532, `/home/nonroot`), pushed to Debian's `docker-registry` and referenced by
//! tag, reports what its container sees — argv, env (`PORT`, `K_*`, ConfigMap and Secret
//! values through `env` and `envFrom`), user, working directory, cgroup limits and their
//! read-only mount, `/dev`, `/tmp`, `/etc/resolv.conf`, no `/dev/console`, stdin at EOF,
//! a read-only `/proc/sys`, and the protocol its port name asks for; what it prints is
//! what `swell logs` shows, and while its image is pulled its Revision says so. A `failing` image turns `ContainerHealthy` False. Needs root, runc and the CNI plugins, as CI has.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, url};
use common::oci::{push, registry, testapp_layout};
use common::{KUBECTL, Server, eventually};
use serde_json::Value;

const SOURCES: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: conformance-test-configmap
data:
  testKey: testValue
---
apiVersion: v1
kind: Secret
metadata:
  name: conformance-test-secret
stringData:
  testKey: testValue
"#;

/// `TestCmdArgs`, `TestMustEnvVars` (port 8801), `TestShouldEnvVars`, the env
/// propagation tests, `TestMustHaveCgroupConfigured`, and the port named `http1`.
fn runtime(image: &str) -> String {
    format!(
        r#"apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: runtime
spec:
  template:
    spec:
      containers:
      - image: {image}
        command: [/ko-app/runtime, abra]
        args: [cadabra, do]
        ports: [{{name: http1, containerPort: 8801}}]
        env:
        - name: FROM_MAP
          valueFrom: {{configMapKeyRef: {{name: conformance-test-configmap, key: testKey}}}}
        - name: FROM_SECRET
          valueFrom: {{secretKeyRef: {{name: conformance-test-secret, key: testKey}}}}
        envFrom:
        - configMapRef: {{name: conformance-test-configmap}}
          prefix: MAP_
        - secretRef: {{name: conformance-test-secret}}
          prefix: SECRET_
        resources:
          limits: {{cpu: "1", memory: 128Mi}}
          requests: {{cpu: 125m}}
"#
    )
}

/// `TestMustRunAsUser`, `TestWorkingDirService` and the port named `h2c`.
fn as_user(image: &str) -> String {
    format!(
        r#"apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: as-user
spec:
  template:
    spec:
      containers:
      - image: {image}
        workingDir: /tmp
        securityContext: {{runAsUser: 2020}}
        ports: [{{name: h2c, containerPort: 8080}}]
"#
    )
}

/// The value a cgroup file holds, and whether writing it failed.
fn cgroup(info: &Value, file: &str) -> Option<(Value, bool)> {
    info["host"]["cgroups"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == file)
        .map(|c| {
            let value = if c["value"].is_null() {
                c["raw"].clone()
            } else {
                c["value"].clone()
            };
            (value, c["readOnly"] == true)
        })
}

fn cgroups_are_configured_and_read_only(info: &Value) {
    let v1 = cgroup(info, "/sys/fs/cgroup/memory/memory.limit_in_bytes");
    let v2 = cgroup(info, "/sys/fs/cgroup/memory.max");
    let files: Vec<(&str, Value)> = match (v1, v2) {
        (Some(_), _) => {
            let quota = cgroup(info, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
                .unwrap()
                .0;
            let period = cgroup(info, "/sys/fs/cgroup/cpu/cpu.cfs_period_us")
                .unwrap()
                .0;
            assert_eq!(
                quota.as_i64().unwrap() * 1000 / period.as_i64().unwrap(),
                1000,
                "cpu limit 1 is 1000 millicpu"
            );
            vec![
                (
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    134217728.into(),
                ),
                ("/sys/fs/cgroup/cpu/cpu.shares", 128.into()),
                ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", quota),
                ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", period),
            ]
        }
        (None, Some(_)) => {
            let weight = cgroup(info, "/sys/fs/cgroup/cpu.weight").unwrap().0;
            assert!(weight.as_i64().unwrap() >= 1, "cpu.weight {weight}");
            vec![
                ("/sys/fs/cgroup/memory.max", 134217728.into()),
                ("/sys/fs/cgroup/cpu.max", "100000 100000".into()),
                ("/sys/fs/cgroup/cpu.weight", weight),
            ]
        }
        (None, None) => panic!("no cgroup files in {}", info["host"]["cgroups"]),
    };
    for (file, want) in files {
        let (got, read_only) = cgroup(info, file).unwrap_or_else(|| panic!("{file} missing"));
        assert_eq!(got, want, "{file}");
        assert!(read_only, "{file} is writable");
    }
}

fn files_are_shaped_as_the_contract_says(info: &Value) {
    let files = &info["host"]["files"];
    let file = |p: &str| &files[p];
    assert_eq!(file("/dev/fd")["sourceFile"], "/proc/self/fd");
    for dev in [
        "/dev/full",
        "/dev/null",
        "/dev/ptmx",
        "/dev/random",
        "/dev/tty",
        "/dev/urandom",
        "/dev/zero",
    ] {
        assert_eq!(file(dev)["isDir"], false, "{dev}: {}", file(dev));
    }
    for (i, std) in ["/dev/stdin", "/dev/stdout", "/dev/stderr"]
        .iter()
        .enumerate()
    {
        assert_eq!(file(std)["sourceFile"], format!("/proc/self/fd/{i}"));
        assert!(file(&format!("/proc/self/fd/{i}"))["error"].is_null());
    }
    assert_eq!(
        (&file("/tmp")["isDir"], &file("/tmp")["mode"]),
        (&Value::Bool(true), &Value::from("rwxrwxrwx"))
    );
    let resolv = file("/etc/resolv.conf")["mode"]
        .as_str()
        .unwrap_or_default();
    let bytes = resolv.as_bytes();
    assert!(
        bytes.len() == 9 && &bytes[..2] == b"rw" && bytes[3] == b'r' && bytes[6] == b'r',
        "/etc/resolv.conf mode {resolv}"
    );
    assert!(
        file("/dev/console")["error"].is_string(),
        "/dev/console must not exist: {}",
        file("/dev/console")
    );
}

fn proc_sys_is_read_only(info: &Value) {
    let mounts = info["host"]["mounts"].as_array().unwrap();
    let sys = mounts
        .iter()
        .rfind(|m| m["path"] == "/proc/sys")
        .unwrap_or_else(|| panic!("no /proc/sys mount in {mounts:?}"));
    assert_eq!(
        (&sys["type"], &sys["device"]),
        (&"proc".into(), &"proc".into())
    );
    assert!(
        sys["options"].as_array().unwrap().contains(&"ro".into()),
        "{sys}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_image_sees_what_knatives_runtime_conformance_asks_for() {
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
    testapp_layout(&work, &["runtime", "failing"]);
    let reg = registry();
    let image = |name: &str| format!("{}/knative/{name}:v1", reg.addr);
    for name in ["runtime", "failing"] {
        push(&work, "T", name, &image(name));
    }

    let mut server = Server::start_with(&["--backend", "runc"]);
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(&["apply", "-f", "-"], SOURCES);
    // While its image is pulled, the Revision says so (seen through a kubectl watch).
    let mut watch = k
        .command(&[
            "get",
            "revisions",
            "-w",
            "-o",
            "jsonpath={.metadata.name} {.status.conditions[?(@.type==\"Ready\")].message}{\"\\n\"}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watched = {
        use std::io::BufRead;
        let out = std::io::BufReader::new(watch.stdout.take().unwrap());
        std::thread::spawn(move || out.lines().map_while(Result::ok).collect::<Vec<_>>())
    };
    apply_ready(&server, "runtime", &runtime(&image("runtime")));
    let _ = watch.kill();
    let _ = watch.wait();
    let lines = watched.join().unwrap();
    let pulling = format!("runtime-00001 Pulling image \"{}\"", image("runtime"));
    assert!(
        lines.iter().any(|l| l.starts_with(&pulling)),
        "no pulling message in {lines:#?}"
    );
    apply_ready(&server, "as-user", &as_user(&image("runtime")));
    let c = client(
        &server,
        &["runtime.default.localhost", "as-user.default.localhost"],
    );

    let (status, body) = get(&c, &url(&server, "runtime.default.localhost", "/")).await;
    assert_eq!(status, 200, "{body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    let host = &info["host"];
    assert_eq!(
        host["args"],
        serde_json::json!(["/ko-app/runtime", "abra", "cadabra", "do"])
    );
    let envs = &host["envs"];
    for (name, want) in [
        ("PORT", "8801"),
        ("K_SERVICE", "runtime"),
        ("K_CONFIGURATION", "runtime"),
        ("K_REVISION", "runtime-00001"),
        ("FROM_MAP", "testValue"),
        ("FROM_SECRET", "testValue"),
        ("MAP_testKey", "testValue"),
        ("SECRET_testKey", "testValue"),
    ] {
        assert_eq!(envs[name], want, "env {name}");
    }
    // As kubelet does, the API's address; for runc replicas, their bridge's gateway.
    let api_port = server.addr.rsplit(':').next().unwrap();
    assert_eq!(envs["KUBERNETES_SERVICE_HOST"], "10.86.0.1");
    assert_eq!(envs["KUBERNETES_SERVICE_PORT"], api_port);
    assert_eq!(
        envs["KUBERNETES_PORT"],
        format!("tcp://10.86.0.1:{api_port}")
    );
    // The image's USER and working directory apply when the Service names neither.
    assert_eq!(
        (&host["user"]["uid"], &host["user"]["euid"]),
        (&65532.into(), &65532.into())
    );
    assert_eq!(host["user"]["cwd"]["directory"], "/home/nonroot");
    assert_eq!(host["stdin"]["eof"], true, "{}", host["stdin"]);
    assert_eq!(info["request"]["protoMajor"], 1, "port named http1");
    cgroups_are_configured_and_read_only(&info);
    files_are_shaped_as_the_contract_says(&info);
    proc_sys_is_read_only(&info);

    let (status, body) = get(&c, &url(&server, "as-user.default.localhost", "/")).await;
    assert_eq!(status, 200, "{body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    let user = &info["host"]["user"];
    assert_eq!((&user["uid"], &user["euid"]), (&2020.into(), &2020.into()));
    assert_eq!(user["cwd"]["directory"], "/tmp");
    assert_eq!(info["request"]["protoMajor"], 2, "port named h2c");

    // The container's output is the Revision's log.
    let logs = server.swell(&["logs", "runtime-00001"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.status.success() && text.contains("runtime: listening on port 8801"),
        "{text}{}",
        String::from_utf8_lossy(&logs.stderr)
    );

    // The `failing` image exits with code 5: its Revision says the container failed.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: failing\nspec:\n  template:\n    spec:\n      containers:\n      - image: {}\n",
            image("failing")
        ),
    );
    tokio::task::block_in_place(|| {
        eventually("failing-00001 to report its exit", || {
            let (status, reason, _) = k.condition("revision/failing-00001", "ContainerHealthy");
            (status == "False" && reason == "ExitCode5").then_some(())
        })
    });
    assert!(server.stop(), "server stopped uncleanly");
}
