//! Drain before stop, end to end, under both backends: a Revision of an app that exits
//! at once on SIGTERM (`EXIT_ON_SIGTERM`, as many real apps do) is driven by steady
//! load through the ingress; a burst scales it out to several replicas, it scales back
//! in under the steady load, the Service rolls to a new Revision, the old one goes to
//! zero, and the server stops with slow requests in flight. Every leaving replica is
//! taken out of rotation and drained before its SIGTERM: not one request fails.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{client, service, url};
use common::oci::{Registry, push, registry, testapp_layout};
use common::{KUBECTL, PATIENCE, Server};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const NAME: &str = "drain";
const HOST: &str = "drain.default.localhost";

/// Most requests one load task sends (a bound; the scenario stops them well before).
const MAX_REQUESTS: usize = 50_000;

/// What runs the app: the testapp binary (process backend) or its image (runc).
enum App {
    Process,
    Image(String),
}

/// The Service at `version`: one replica per ten requests in flight (target 10 at
/// 100 %), at most six, exiting at once on SIGTERM.
fn yaml(app: &App, version: &str) -> String {
    let env = format!(
        "        env:\n        - name: EXIT_ON_SIGTERM\n          value: \"1\"\n        - name: VERSION\n          value: {version}\n"
    );
    let yaml = match app {
        App::Process => service(NAME, "autoscale", &env, ""),
        App::Image(image) => common::image_service(NAME, image, "", &env),
    };
    let meta = "    metadata:\n      annotations:\n        autoscaling.knative.dev/target: \"10\"\n        autoscaling.knative.dev/target-utilization-percentage: \"100\"\n        autoscaling.knative.dev/max-scale: \"6\"\n";
    yaml.replacen("  template:\n", &format!("  template:\n{meta}"), 1)
}

/// A server whose Revisions decide over a 6 s stable window and give up their last
/// replica 1 s after turning inactive.
fn start(backend: &str) -> Server {
    let server = Server::start_with(&["--backend", backend]);
    server.kubectl(KUBECTL).configure(
        "config-autoscaler",
        &[
            ("stable-window", "6s"),
            ("scale-to-zero-grace-period", "1s"),
        ],
    );
    server
}

/// Requests sent back to back on `conns` connections until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(usize, Vec<String>)>>,
}

impl Load {
    fn start(c: &reqwest::Client, target: &str, conns: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..conns)
            .map(|_| {
                let (c, target, stop) = (c.clone(), target.to_string(), stop.clone());
                tokio::spawn(async move {
                    let (mut sent, mut failed) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) && sent < MAX_REQUESTS {
                        sent += 1;
                        match c.get(&target).send().await {
                            Ok(r) if r.status() == 200 => {
                                if let Err(e) = r.bytes().await {
                                    failed.push(format!("body: {e}"));
                                }
                            }
                            Ok(r) => {
                                let status = r.status();
                                let body = r.text().await.unwrap_or_default();
                                failed.push(format!("{status}: {}", body.trim()));
                            }
                            Err(e) => failed.push(format!("{e:?}")),
                        }
                    }
                    (sent, failed)
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops it; the requests sent and the failures.
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut sent, mut failed) = (0, Vec::new());
        for t in self.tasks {
            let (s, f) = tokio::time::timeout(PATIENCE, t)
                .await
                .expect("the load stops")
                .unwrap();
            sent += s;
            failed.extend(f);
        }
        (sent, failed)
    }
}

async fn get_json(server: &Server, path: &str) -> Value {
    server
        .api_get(path)
        .await
        .expect("the API answers")
        .json()
        .await
        .expect("JSON")
}

/// A Revision's `status.actualReplicas` (-1 before it has one).
async fn actual_replicas(server: &Server, revision: &str) -> i64 {
    let r = get_json(
        server,
        &format!("/apis/serving.knative.dev/v1/namespaces/default/revisions/{revision}"),
    )
    .await;
    r["status"]["actualReplicas"].as_i64().unwrap_or(-1)
}

/// Polls `f` until it returns true, or panics naming `what` after [`PATIENCE`].
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + PATIENCE;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The requests in flight for a Revision, as the server's metrics say.
async fn in_flight(server: &Server, revision: &str) -> f64 {
    let text = server
        .api_get("/metrics")
        .await
        .expect("the API answers")
        .text()
        .await
        .unwrap_or_default();
    let label = format!("revision=\"{revision}\"");
    text.lines()
        .filter(|l| l.starts_with("swell_revision_requests_in_flight{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scenario(mut server: Server, app: App) {
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(&["apply", "-f", "-"], &yaml(&app, "v1"));
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("ksvc/{NAME}"),
        "--timeout=60s",
    ]);
    let c = client(&server, &[HOST]);
    let target = |sleep: &str| url(&server, HOST, &format!("/?sleep={sleep}"));
    let first = format!("{NAME}-00001");
    let second = format!("{NAME}-00002");

    // Steady load (two replicas' worth), and a burst on top of it: the Revision scales
    // out. Every replica serves several requests at any moment, so one stopped without
    // a drain would fail some.
    let steady = Load::start(&c, &target("200"), 20);
    let burst = Load::start(&c, &target("200"), 40);
    until("the burst to scale the Revision out", || async {
        actual_replicas(&server, &first).await >= 5
    })
    .await;
    // The burst ends: it scales back in under the steady load.
    let (burst_sent, burst_failed) = burst.finish().await;
    until("the Revision to scale back in", || async {
        (0..=3).contains(&actual_replicas(&server, &first).await)
    })
    .await;

    // A new Revision takes the traffic; the old one goes to zero.
    k.ok_stdin(&["apply", "-f", "-"], &yaml(&app, "v2"));
    until("the Route to send traffic to the new Revision", || async {
        let route = get_json(
            &server,
            &format!("/apis/serving.knative.dev/v1/namespaces/default/routes/{NAME}"),
        )
        .await;
        route["status"]["traffic"][0]["revisionName"] == second.as_str()
    })
    .await;
    until("the old Revision to go to zero", || async {
        actual_replicas(&server, &first).await == 0
    })
    .await;
    let (steady_sent, steady_failed) = steady.finish().await;
    let sent = burst_sent + steady_sent;
    let failed: Vec<String> = burst_failed.into_iter().chain(steady_failed).collect();
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
    assert!(sent >= 1000, "only {sent} requests were sent");
    eprintln!(
        "{sent} requests through scale-out, scale-in, rollout and scale to zero; none failed"
    );

    // The server stops with slow requests in flight: they all finish.
    let slow: Vec<_> = (0..12)
        .map(|_| {
            let (c, target) = (c.clone(), target("3s"));
            tokio::spawn(async move {
                let r = c.get(&target).send().await.map_err(|e| format!("{e:?}"))?;
                let status = r.status().as_u16();
                let body = r.text().await.map_err(|e| format!("{e:?}"))?;
                Ok::<_, String>((status, body))
            })
        })
        .collect();
    until("the slow requests to be in flight", || async {
        in_flight(&server, &second).await >= 12.0
    })
    .await;
    let stopped = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    for s in slow {
        let (status, body) = s.await.unwrap().expect("a slow request completes");
        assert_eq!(status, 200, "a slow request in flight at shutdown: {body}");
    }
    assert!(stopped, "the server stops cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn process_replicas_drain_before_they_stop() {
    scenario(start("process"), App::Process).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runc_replicas_drain_before_they_stop() {
    if !common::can_run(&[common::Needs::Root]) {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runc backend needs root, as CI has"
    );
    let t = tempfile::tempdir().unwrap();
    testapp_layout(t.path(), &["autoscale"]);
    let reg: Registry = registry();
    let image = format!("{}/knative/autoscale:v1", reg.addr);
    push(t.path(), "T", "autoscale", &image);
    scenario(start("runc"), App::Image(image)).await;
}

/// A second SIGTERM while the server drains stops it at once: it exits with status 1
/// instead of waiting for a request that would take a minute, and kills the replica
/// serving it.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_stop_signal_stops_at_once_and_kills_the_replicas() {
    let mut server = Server::start_with(&[]);
    let marker = format!("second-signal-{}", std::process::id());
    let yaml = service(
        NAME,
        "autoscale",
        &format!("        args: [{marker}]\n"),
        "",
    );
    common::apps::apply_ready(&server, NAME, &yaml);
    assert_eq!(common::apps::pids_of(&marker).len(), 1, "one replica runs");
    let c = client(&server, &[HOST]);
    let slow = tokio::spawn({
        let (c, target) = (c.clone(), url(&server, HOST, "/?sleep=60s"));
        async move { c.get(&target).send().await.map(|r| r.status().as_u16()) }
    });
    until("the slow request to be in flight", || async {
        in_flight(&server, &format!("{NAME}-00001")).await >= 1.0
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    let term = || nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    term();
    // Draining: the request in flight holds the server up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server waits for the request in flight"
    );
    term();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the server did not stop after a second SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(1), "a forced stop is not a clean exit");
    until("the replica to be killed with the server", || async {
        common::apps::pids_of(&marker).is_empty()
    })
    .await;
    // The request in flight was cut, not answered.
    assert!(!matches!(slow.await.unwrap(), Ok(200)));
}
