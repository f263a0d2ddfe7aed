//! Failures stay visible and fail fast, end to end: a missing image fails its
//! Revision (`ContainerMissing`), Configuration and Service (`RevisionFailed`) within
//! seconds and keeps them failed while Swell retries the registry with kubelet's
//! back-off (manifest requests counted through a proxy in front of a real registry);
//! `swell service create` and `kubectl wait` return with the reason; the image pushed,
//! the Revision recovers. A container that keeps exiting is restarted with back-off,
//! its Revision says why in a message that does not grow, requests get 503 with the
//! reason at once, and flow again when it recovers. A Service with a long name runs
//! under runc with its hostname cut as kubelet cuts it. The runc tests need root, runc
//! and the CNI plugins (`.ci/run` installs them).

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, pids_of, url};
use common::oci::{busybox_layout, busybox_web, push, registry};
use common::{KUBECTL, Kubectl, Server, eventually};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP proxy in front of a registry that records every HTTP request line it sees.
struct Recorder {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start(upstream: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (upstream, seen) = (upstream.to_string(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut downstream) = conn else { break };
                let Ok(mut up) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut down2, mut up2) =
                    (downstream.try_clone().unwrap(), up.try_clone().unwrap());
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    let mut pending = Vec::new();
                    while let Ok(n) = downstream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                            let line = String::from_utf8_lossy(&pending[..i]).to_string();
                            if line.contains(" /v2/") && line.ends_with(" HTTP/1.1") {
                                seen.lock().unwrap().push(line);
                            }
                            pending.drain(..i + 2);
                        }
                        if up.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = up.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up2, &mut down2);
                    let _ = down2.shutdown(Shutdown::Write);
                });
            }
        });
        Recorder { addr, requests }
    }

    /// Manifest requests for `repository` so far.
    fn manifests(&self, repository: &str) -> usize {
        let path = format!("/v2/{repository}/manifests/");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&path))
            .count()
    }
}

/// `resource`'s Ready condition: status, reason, message, lastTransitionTime.
fn ready(k: &Kubectl, resource: &str) -> [String; 4] {
    let c = "{.status.conditions[?(@.type==\"Ready\")]";
    let path = format!("jsonpath={c}.status}}|{c}.reason}}|{c}.lastTransitionTime}}|{c}.message}}");
    let out = k.ok(&["get", resource, "-o", &path]);
    let mut parts = out.splitn(4, '|').map(str::to_string);
    let mut next = || parts.next().unwrap_or_default();
    let (status, reason, time, message) = (next(), next(), next(), next());
    [status, reason, message, time]
}

/// Looks at the Revision, Configuration and Service of `name` about every second for
/// about ten seconds: each look must find all three `Ready=False`, with the reasons
/// and messages Knative gives and the same transition time every time.
fn stays_failed(k: &Kubectl, name: &str, revision_reason: &str) -> String {
    let revision = format!("revision/{name}-00001");
    eventually("the Service to fail", || {
        (ready(k, &format!("ksvc/{name}"))[0] == "False").then_some(())
    });
    let first = ready(k, &revision);
    for _ in 0..10 {
        let rev = ready(k, &revision);
        assert_eq!(
            rev, first,
            "the Revision's Ready condition must not change while it fails"
        );
        assert_eq!(
            (rev[0].as_str(), rev[1].as_str()),
            ("False", revision_reason)
        );
        let expected = format!("Revision \"{name}-00001\" failed with message: {}.", rev[2]);
        let cfg = ready(k, &format!("configuration/{name}"));
        assert_eq!(
            (cfg[0].as_str(), cfg[1].as_str(), cfg[2].as_str()),
            ("False", "RevisionFailed", expected.as_str())
        );
        let svc = ready(k, &format!("ksvc/{name}"));
        assert_eq!(
            (svc[0].as_str(), svc[1].as_str(), svc[2].as_str()),
            ("False", "RevisionFailed", expected.as_str())
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    first[2].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_fails_at_once_stays_failed_backs_off_and_recovers() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    let reg = registry();
    let recorder = Recorder::start(&reg.addr);
    let server = Server::start_with(&["--backend", "runc"]);
    let k = server.kubectl(KUBECTL);

    // `swell service create` waits, and returns with the reason.
    let phantom = format!("{}/phantom:1", recorder.addr);
    let out = tokio::task::block_in_place(|| {
        server.swell(&[
            "service",
            "create",
            "phantom",
            "--image",
            &phantom,
            "--wait-timeout",
            "120",
        ])
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let why = format!(
        "RevisionFailed: Revision \"phantom-00001\" failed with message: Unable to fetch image \"{phantom}\": "
    );
    assert!(stderr.contains(&why), "{stderr}");
    assert!(!stderr.contains("timeout"), "{stderr}");

    let image = format!("{}/ghost:1", recorder.addr);
    let text = "back-from-the-dead";
    k.ok_stdin(
        &["apply", "-f", "-"],
        &busybox_web("ghost", &image, text, ""),
    );
    tokio::task::block_in_place(|| {
        eventually("ghost-00001 to fail on its image", || {
            let c = ready(&k, "revision/ghost-00001");
            (c[0] == "False").then_some(())
        })
    });
    let message = tokio::task::block_in_place(|| stays_failed(&k, "ghost", "ContainerMissing"));
    assert!(
        message.starts_with(&format!("Unable to fetch image \"{image}\": ")),
        "{message}"
    );
    // About twelve seconds after the first attempt: a few attempts, not a hundred.
    let manifests = recorder.manifests("ghost");
    eprintln!("{manifests} manifest requests for ghost:1 so far");
    assert!(
        (1..=10).contains(&manifests),
        "{manifests} manifest requests: {:?}",
        recorder.requests.lock().unwrap()
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready=False",
        "ksvc/ghost",
        "--timeout=60s",
    ]);

    // The image appears: the next attempt pulls it and the Service serves.
    let t = tempfile::tempdir().unwrap();
    busybox_layout(t.path());
    push(t.path(), "L", "latest", &format!("{}/ghost:1", reg.addr));
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/ghost",
        "--timeout=120s",
    ]);
    let c = client(&server, &["ghost.default.localhost"]);
    let (status, body) = get(&c, &url(&server, "ghost.default.localhost", "/")).await;
    assert_eq!((status, body.trim()), (200, text));
}

/// A directory every user may read (the process backend runs replicas as uid 65532).
fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    d
}

/// A Service that serves `helloworld` until `flag` exists, and from then on prints a
/// line that differs every run and exits with code 3.
fn flaky(name: &str, flag: &Path, marker: &str) -> String {
    let app = common::apps::testapp();
    common::image_service(
        name,
        "testapp",
        "",
        &format!(
            "        command: [/bin/sh, -c, 'if [ -e {} ]; then echo broken `date +%s%N`; exit 3; fi; exec {app} helloworld {marker}']\n",
            flag.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_looping_revision_fails_requests_fast_and_recovers() {
    let server = Server::start_with(&["--backend", "process"]);
    let k = server.kubectl(KUBECTL);
    let dir = shared_dir();
    let flag = dir.path().join("broken");
    let marker = format!("flaky-marker-{}", std::process::id());
    tokio::task::block_in_place(|| apply_ready(&server, "flaky", &flaky("flaky", &flag, &marker)));
    let c = client(&server, &["flaky.default.localhost"]);
    let target = url(&server, "flaky.default.localhost", "/");
    assert_eq!(get(&c, &target).await.0, 200);

    // The app breaks: its replica dies and every restart exits at once.
    std::fs::write(&flag, "").unwrap();
    for pid in pids_of(&marker) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let healthy = |k: &Kubectl| k.condition("revision/flaky-00001", "ContainerHealthy");
    // Two runs that failed, each quoted on its own: the message never accumulates.
    let mut seen: Vec<String> = Vec::new();
    tokio::task::block_in_place(|| {
        eventually("two failed runs to be reported", || {
            let (status, reason, message) = healthy(&k);
            if status == "False" && reason == "ExitCode3" && !seen.contains(&message) {
                seen.push(message);
            }
            (seen.len() >= 2).then_some(())
        })
    });
    for m in &seen {
        assert_eq!(m.matches("broken").count(), 1, "{m}");
        assert!(m.starts_with("Container failed with: broken "), "{m}");
    }
    // Requests are answered at once with the reason (the client would give up long
    // before the Revision's 300 s timeout).
    let quick = common::http()
        .timeout(Duration::from_secs(30))
        .resolve("flaky.default.localhost", server.ingress)
        .build()
        .unwrap();
    let r = quick.get(&target).send().await.expect("answered");
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["swell-error"], "revision-failed");
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with(
            "Revision \"flaky-00001\" failed (ExitCode3): Container failed with: broken"
        ),
        "{body}"
    );
    assert_eq!(body.trim_end().lines().count(), 1, "{body}");

    // Fixed: the next restart serves, and so do requests.
    std::fs::remove_file(&flag).unwrap();
    let mut last = (0, String::new());
    for _ in 0..120 {
        last = get(&quick, &target).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last.0, 200, "{}", last.1);
}

#[test]
fn a_command_that_does_not_exist_fails_its_service_and_swell_says_why() {
    let server = Server::start_with(&["--backend", "process"]);
    let k = server.kubectl(KUBECTL);
    let out = server.swell(&[
        "service",
        "create",
        "nothing",
        "--image",
        "testapp",
        "--cmd",
        "/nonexistent/app",
        "--wait-timeout",
        "120",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("RevisionFailed") && stderr.contains("/nonexistent/app"),
        "{stderr}"
    );
    let message = stays_failed(&k, "nothing", "StartError");
    assert!(message.contains("/nonexistent/app"), "{message}");
    k.ok(&[
        "wait",
        "--for=condition=Ready=False",
        "ksvc/nothing",
        "--timeout=60s",
    ]);
}

/// Kubelet's hostname for a pod: at most 63 bytes, no trailing `-` or `.`.
fn cut_hostname(name: &str) -> String {
    name[..name.len().min(63)]
        .trim_end_matches(['-', '.'])
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn under_runc_a_long_name_is_cut_for_the_hostname_and_a_failed_start_is_told() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    busybox_layout(&work);
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    common::oci::import(&data, &work.join("L"), "busybox:local");
    let server = Server::start_in(&data, "127.0.0.1:0", &["--backend", "runc"]);
    // 50 characters: its replica would be "<name>-00001-deployment-1", 69 bytes.
    let name = "a-service-whose-name-is-long-enough-to-need-a-trim";
    assert_eq!(name.len(), 50);
    tokio::task::block_in_place(|| {
        apply_ready(
            &server,
            name,
            &busybox_web(name, "busybox:local", "$(hostname)", ""),
        )
    });
    let host = format!("{name}.default.localhost");
    let c = client(&server, &[&host]);
    let (status, body) = get(&c, &url(&server, &host, "/")).await;
    let expected = cut_hostname(&format!("{name}-00001-deployment-1"));
    assert_eq!((status, body.trim()), (200, expected.as_str()));
    assert_eq!(expected.len(), 63);

    // When `runc run` itself fails, the Revision says what runc said.
    let k = server.kubectl(KUBECTL);
    let yaml = busybox_web("nowhere", "busybox:local", "x", "").replace(
        "        command:",
        "        workingDir: /bin/busybox\n        command:",
    );
    k.ok_stdin(&["apply", "-f", "-"], &yaml);
    let (_, _, message) = tokio::task::block_in_place(|| {
        eventually("nowhere-00001 to fail", || {
            let c = k.condition("revision/nowhere-00001", "ContainerHealthy");
            (c.0 == "False").then_some(c)
        })
    });
    assert!(message.contains("not a directory"), "{message}");
}
