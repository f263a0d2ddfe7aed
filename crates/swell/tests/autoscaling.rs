//! The autoscaler end to end: the real `swell` binary with the process backend scales
//! `swell-testapp` replicas from the load the ingress sees — to zero when idle, back on
//! the next request, out under load — within the Revision's bounds, and no request
//! fails on the way. The stable window is shortened through `config-autoscaler`.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, pids_of, service, url};
use common::{KUBECTL, PATIENCE, Server};
use serde_json::Value;
use std::time::{Duration, Instant};

const HELLO: &str = "Hello World! How about some tasty noodles?\n";

/// A server whose Revisions decide over a 6 s stable window and give up their last
/// replica 1 s after turning inactive.
fn start() -> Server {
    let server = Server::start_with(&["--backend", "process"]);
    server.kubectl(KUBECTL).configure(
        "config-autoscaler",
        &[
            ("stable-window", "6s"),
            ("scale-to-zero-grace-period", "1s"),
        ],
    );
    server
}

/// `service` with the template annotated.
fn annotated(yaml: &str, annotations: &[(&str, &str)]) -> String {
    let mut meta = String::from("    metadata:\n      annotations:\n");
    for (k, v) in annotations {
        meta.push_str(&format!("        autoscaling.knative.dev/{k}: \"{v}\"\n"));
    }
    yaml.replacen("  template:\n", &format!("  template:\n{meta}"), 1)
}

async fn revision(server: &Server, name: &str) -> Value {
    server
        .api_get(&format!(
            "/apis/serving.knative.dev/v1/namespaces/default/revisions/{name}"
        ))
        .await
        .expect("the API answers")
        .json()
        .await
        .expect("a Revision")
}

/// A condition's (status, reason).
fn condition(rev: &Value, type_: &str) -> (String, String) {
    let c = rev["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_default();
    (
        c["status"].as_str().unwrap_or_default().to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
    )
}

fn replicas(rev: &Value, field: &str) -> i64 {
    rev["status"][field].as_i64().unwrap_or(-1)
}

/// Polls `f` until it returns `Some`, or panics naming `what` after [`PATIENCE`].
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn marker(name: &str) -> String {
    format!("{name}-marker-{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_revisions_scale_to_zero_unless_min_scale_and_come_back_on_a_request() {
    let server = start();
    let (zero, two) = (marker("zero"), marker("two"));
    apply_ready(
        &server,
        "zero",
        &service(
            "zero",
            "helloworld",
            &format!("        args: [{zero}]\n"),
            "",
        ),
    );
    apply_ready(
        &server,
        "two",
        &annotated(
            &service("two", "helloworld", &format!("        args: [{two}]\n"), ""),
            &[("min-scale", "2")],
        ),
    );
    let c = client(
        &server,
        &["zero.default.localhost", "two.default.localhost"],
    );
    let zero_url = url(&server, "zero.default.localhost", "/");
    assert_eq!(get(&c, &zero_url).await, (200, HELLO.to_string()));

    // Idle: the stable window, then the grace period, then no replica at all — while
    // the Revision stays Ready.
    let rev = until("zero-00001 to scale to zero", || async {
        let r = revision(&server, "zero-00001").await;
        (replicas(&r, "actualReplicas") == 0 && condition(&r, "Active").0 == "False").then_some(r)
    })
    .await;
    assert_eq!(condition(&rev, "Active").1, "NoTraffic");
    assert_eq!(condition(&rev, "Ready").0, "True");
    assert_eq!(replicas(&rev, "desiredReplicas"), 0);
    until("the last zero replica to exit", || async {
        pids_of(&zero).is_empty().then_some(())
    })
    .await;
    let svc = server.kubectl(KUBECTL).ok(&[
        "get",
        "ksvc",
        "zero",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(svc, "True", "the Service stays Ready at zero");

    // Through the same idleness, min-scale kept two replicas running.
    let r = revision(&server, "two-00001").await;
    assert_eq!(replicas(&r, "actualReplicas"), 2);
    assert_eq!(condition(&r, "Active").0, "True");
    assert_eq!(pids_of(&two).len(), 2);

    // The next request wakes the Revision and succeeds.
    assert_eq!(get(&c, &zero_url).await, (200, HELLO.to_string()));
    let rev = until("zero-00001 to be active again", || async {
        let r = revision(&server, "zero-00001").await;
        (condition(&r, "Active").0 == "True").then_some(r)
    })
    .await;
    assert_eq!(replicas(&rev, "actualReplicas"), 1);
    assert_eq!(pids_of(&zero).len(), 1);
    let metrics = server
        .api_get("/metrics")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cold = metrics
        .lines()
        .find(|l| {
            l.starts_with("swell_revision_cold_start_seconds_count")
                && l.contains("revision=\"zero-00001\"")
        })
        .expect("a cold-start histogram for zero-00001");
    assert!(cold.ends_with(" 1"), "one cold start recorded: {cold}");
}

/// What `clients` concurrent clients saw while they sent requests to `url` for `for_`,
/// and the most replicas the Revision reported and the backend ran meanwhile.
struct Load {
    statuses: Vec<u16>,
    most_reported: i64,
    most_running: usize,
}

async fn load(
    server: &Server,
    host: &str,
    rev: &str,
    mark: &str,
    clients: usize,
    for_: Duration,
) -> Load {
    let c = client(server, &[host]);
    let u = url(server, host, "/?sleep=100");
    let end = Instant::now() + for_;
    let senders: Vec<_> = (0..clients)
        .map(|_| {
            let (c, u) = (c.clone(), u.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while Instant::now() < end {
                    statuses.push(get(&c, &u).await.0);
                }
                statuses
            })
        })
        .collect();
    let (mut most_reported, mut most_running) = (0, 0);
    while Instant::now() < end {
        let r = revision(server, rev).await;
        most_reported = most_reported
            .max(replicas(&r, "actualReplicas"))
            .max(replicas(&r, "desiredReplicas"));
        most_running = most_running.max(pids_of(mark).len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut statuses = Vec::new();
    for s in senders {
        statuses.extend(s.await.unwrap());
    }
    Load {
        statuses,
        most_reported,
        most_running,
    }
}

fn assert_all_ok(what: &str, statuses: &[u16]) {
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed ({:?}…)",
        failed.len(),
        statuses.len(),
        failed.first()
    );
    assert!(
        statuses.len() > 100,
        "{what}: only {} requests",
        statuses.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn load_scales_out_within_max_scale_and_back_down_without_failures() {
    let server = start();
    let (wide, capped) = (marker("wide"), marker("capped"));
    for (name, mark, ann) in [
        ("wide", &wide, vec![]),
        ("capped", &capped, vec![("max-scale", "3")]),
    ] {
        apply_ready(
            &server,
            name,
            &annotated(
                &service(
                    name,
                    "autoscale",
                    &format!("        args: [{mark}]\n"),
                    "      containerConcurrency: 10\n",
                ),
                &ann,
            ),
        );
    }
    // 50 clients each, one request in flight per client, 100 ms per request: a
    // concurrency of 50 against a target of 7 (10 × 70 %) per replica.
    let (w, c) = tokio::join!(
        load(
            &server,
            "wide.default.localhost",
            "wide-00001",
            &wide,
            50,
            Duration::from_secs(15)
        ),
        load(
            &server,
            "capped.default.localhost",
            "capped-00001",
            &capped,
            50,
            Duration::from_secs(15)
        ),
    );
    assert_all_ok("wide", &w.statuses);
    assert_all_ok("capped", &c.statuses);
    assert!(
        w.most_reported >= 5,
        "wide reached only {} replicas",
        w.most_reported
    );
    assert!(
        w.most_running >= 5,
        "wide ran only {} processes",
        w.most_running
    );
    assert!(
        c.most_reported <= 3,
        "capped reported {} replicas",
        c.most_reported
    );
    assert!(
        c.most_running <= 3,
        "capped ran {} processes",
        c.most_running
    );
    assert_eq!(c.most_reported, 3, "capped scaled out to its max-scale");

    // Load gone: back down (and on to zero).
    until("wide-00001 to scale back down", || async {
        let r = revision(&server, "wide-00001").await;
        (replicas(&r, "desiredReplicas") <= 1 && replicas(&r, "actualReplicas") <= 1).then_some(())
    })
    .await;
    until("the extra wide replicas to exit", || async {
        (pids_of(&wide).len() <= 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hpa_class_scales_on_the_replicas_cpu_and_memory() {
    let server = start();
    let (cpu, memory) = (marker("cpu"), marker("memory"));
    let hpa = |name: &str, mark: &str, ann: &[(&str, &str)]| {
        let mut all = vec![("class", "hpa.autoscaling.knative.dev")];
        all.extend_from_slice(ann);
        annotated(
            &service(
                name,
                "autoscale",
                &format!(
                    "        args: [{mark}]\n        resources:\n          requests: {{cpu: 100m}}\n"
                ),
                "",
            ),
            &all,
        )
    };
    // Memory: a replica holds a few MiB against a target of 1 MiB per replica, so the
    // HPA wants more without any load — up to max-scale.
    apply_ready(
        &server,
        "memory",
        &hpa(
            "memory",
            &memory,
            &[("metric", "memory"), ("target", "1"), ("max-scale", "2")],
        ),
    );
    // CPU: 50 % of a 100m request; sieving primes keeps a replica far above it.
    apply_ready(
        &server,
        "cpu",
        &hpa(
            "cpu",
            &cpu,
            &[("metric", "cpu"), ("target", "50"), ("max-scale", "3")],
        ),
    );
    let idle = revision(&server, "cpu-00001").await;
    assert_eq!(replicas(&idle, "desiredReplicas"), 1);

    let c = client(&server, &["cpu.default.localhost"]);
    let u = url(&server, "cpu.default.localhost", "/?prime=3000000");
    let busy = Instant::now() + PATIENCE;
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (c, u, statuses) = (c.clone(), u.clone(), statuses.clone());
            tokio::spawn(async move {
                while Instant::now() < busy {
                    let s = get(&c, &u).await.0;
                    statuses.lock().unwrap().push(s);
                    if s != 200 {
                        return;
                    }
                }
            })
        })
        .collect();
    until("cpu-00001 to scale out on CPU", || async {
        let r = revision(&server, "cpu-00001").await;
        (replicas(&r, "actualReplicas") == 3).then_some(())
    })
    .await;
    for s in senders {
        s.abort();
    }
    assert_eq!(pids_of(&cpu).len(), 3);
    let statuses = statuses.lock().unwrap().clone();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let r = until("memory-00001 to scale out on memory", || async {
        let r = revision(&server, "memory-00001").await;
        (replicas(&r, "actualReplicas") == 2).then_some(r)
    })
    .await;
    assert_eq!(replicas(&r, "desiredReplicas"), 2, "max-scale caps it");
    assert_eq!(pids_of(&memory).len(), 2);

    // Without a CPU request the HPA has nothing to measure against: said on the
    // Revision, nothing runs.
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(
        &["apply", "-f", "-"],
        &annotated(
            &service("norequest", "autoscale", "", ""),
            &[("class", "hpa.autoscaling.knative.dev")],
        ),
    );
    let r = until("norequest-00001 to fail", || async {
        let r = revision(&server, "norequest-00001").await;
        (condition(&r, "Ready").0 == "False").then_some(r)
    })
    .await;
    assert_eq!(
        condition(&r, "ResourcesAvailable").1,
        "AutoscalingUnsupported"
    );
    let message = r["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("resources.requests.cpu"), "{message}");
}
