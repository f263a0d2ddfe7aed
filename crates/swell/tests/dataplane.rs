//! The data plane end to end: the real `swell` binary with the process backend runs
//! `swell-testapp` replicas, and requests go through the ingress — as Knative's
//! conformance tests send them.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{apply_ready, client, get, pids_of, service, testapp, url};
use common::{KUBECTL, PATIENCE, Server, eventually};
use futures::StreamExt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const HELLO: &str = "Hello World! How about some tasty noodles?\n";
const PIZZA_V1: &str = "What a spaceport!";
const PIZZA_V2: &str = "Re-energize yourself with a slice of pepperoni!";

fn start() -> Server {
    Server::start_with(&["--backend", "process"])
}

#[test]
fn helloworld_answers_at_its_url_and_leaves_no_process_behind() {
    let mut server = start();
    let marker = format!("hello-marker-{}", std::process::id());
    let yaml = service(
        "hello",
        "helloworld",
        &format!("        args: [{marker}]\n"),
        "",
    );
    apply_ready(&server, "hello", &yaml);
    let k = server.kubectl(KUBECTL);
    let status_url = k.ok(&["get", "ksvc", "hello", "-o", "jsonpath={.status.url}"]);
    assert_eq!(
        status_url,
        format!("http://hello.default.localhost:{}", server.ingress_port())
    );
    // curl resolves *.localhost to loopback itself: no Host override.
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", &status_url])
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), HELLO);
    let unknown = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "-",
            "-w",
            "%{http_code}",
            &url(&server, "nope.default.localhost", "/"),
        ])
        .output()
        .unwrap();
    let unknown = String::from_utf8_lossy(&unknown.stdout).to_string();
    assert!(
        unknown.contains("no Route serves host \"nope.default.localhost\""),
        "{unknown}"
    );
    assert!(unknown.ends_with("404"), "{unknown}");
    // The revision's requests show in the metrics on the API port.
    let metrics = std::process::Command::new("curl")
        .arg("-sS")
        .args(server.curl_api_flags())
        .arg(format!("{}/metrics", server.url))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout).to_string();
    assert!(
        metrics.contains(r#"swell_revision_requests_total{namespace="default",revision="hello-00001",response_code_class="2xx"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("swell_revision_request_latency_seconds_bucket"));
    // A crash leaves the replica running; the next start kills it and runs its own.
    let before = pids_of(&marker);
    assert_eq!(before.len(), 1, "one replica runs");
    server.kill9();
    assert_eq!(
        pids_of(&marker),
        before,
        "SIGKILL cannot take the replica along"
    );
    let data = server.data_dir.clone();
    let mut again = Server::start_in(&data, "127.0.0.1:0", &["--backend", "process"]);
    eventually("the orphan is killed and a new replica runs", || {
        let now = pids_of(&marker);
        (now.len() == 1 && now != before).then_some(())
    });
    // A graceful stop stops every replica.
    assert!(again.stop());
    assert!(pids_of(&marker).is_empty(), "replicas outlived the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_route_splits_and_tags() {
    let server = start();
    let blue = service("bg", "pizzaplanetv1", "", "").replace(
        "  template:\n",
        "  template:\n    metadata:\n      name: bg-blue\n",
    );
    apply_ready(&server, "bg", &blue);
    let green = service("bg", "pizzaplanetv2", "", "").replace(
        "  template:\n",
        "  template:\n    metadata:\n      name: bg-green\n",
    ) + "  traffic:\n  - {revisionName: bg-blue, tag: blue, percent: 50}\n  - {revisionName: bg-green, tag: green, percent: 50}\n";
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(&["apply", "-f", "-"], &green);
    eventually("both tags are routed", || {
        let urls = k.ok(&[
            "get",
            "ksvc",
            "bg",
            "-o",
            "jsonpath={.status.traffic[*].url}",
        ]);
        let ready = k.ok(&[
            "get",
            "ksvc",
            "bg",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        (urls.split(' ').count() == 2 && ready == "True").then_some(())
    });
    let c = client(
        &server,
        &[
            "bg.default.localhost",
            "blue-bg.default.localhost",
            "green-bg.default.localhost",
        ],
    );
    let main = url(&server, "bg.default.localhost", "/");
    let answers = futures::future::join_all((0..200).map(|_| get(&c, &main))).await;
    let v1 = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b == PIZZA_V1)
        .count();
    let v2 = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b == PIZZA_V2)
        .count();
    assert_eq!(v1 + v2, 200, "every request answered by one of the two");
    assert!((50..=150).contains(&v1), "blue served {v1} of 200");
    for (tag, text) in [("blue", PIZZA_V1), ("green", PIZZA_V2)] {
        let u = url(&server, &format!("{tag}-bg.default.localhost"), "/");
        for _ in 0..20 {
            assert_eq!(get(&c, &u).await, (200, text.to_string()), "tag {tag}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn single_concurrency_never_overlaps_requests() {
    let server = start();
    apply_ready(
        &server,
        "single",
        &service(
            "single",
            "singlethreaded",
            "",
            "      containerConcurrency: 1\n",
        ),
    );
    let c = client(&server, &["single.default.localhost"]);
    let u = url(&server, "single.default.localhost", "/");
    let end = Instant::now() + Duration::from_secs(10);
    let clients = (0..5).map(|_| {
        let (c, u) = (c.clone(), u.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while Instant::now() < end {
                answers.push(get(&c, &u).await);
            }
            answers
        })
    });
    let all: Vec<(u16, String)> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    assert!(all.len() >= 20, "only {} requests completed", all.len());
    let bad: Vec<_> = all.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        bad.is_empty(),
        "{} of {} failed: {:?}",
        bad.len(),
        all.len(),
        bad.first()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revision_timeout_cuts_slow_responses() {
    let server = start();
    apply_ready(
        &server,
        "slow",
        &service("slow", "timeout", "", "      timeoutSeconds: 10\n"),
    );
    let c = client(&server, &["slow.default.localhost"]);
    let quick_url = url(&server, "slow.default.localhost", "/?initialTimeout=2000");
    let (quick, late, flushed) = tokio::join!(
        get(&c, &quick_url),
        c.get(url(
            &server,
            "slow.default.localhost",
            "/?initialTimeout=12000"
        ))
        .send(),
        c.get(url(&server, "slow.default.localhost", "/?timeout=15000"))
            .send(),
    );
    assert_eq!(quick, (200, "Slept for 0 milliseconds".to_string()));
    let late = late.unwrap();
    assert_eq!(late.status().as_u16(), 504);
    assert_eq!(late.headers()["swell-error"], "timeout");
    // Headers went out at once: the status stays 200 when the timeout cuts the body.
    assert_eq!(flushed.unwrap().status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_contract_env_argv_and_headers() {
    let server = start();
    let k = server.kubectl(KUBECTL);
    k.ok(&[
        "create",
        "configmap",
        "rt-config",
        "--from-literal=fromMap=map-value",
    ]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "rt-secret",
        "--from-literal=testKey=testValue",
    ]);
    let yaml = format!(
        "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: rt
spec:
  template:
    spec:
      containers:
      - image: runtime
        command: [{app}, abra]
        args: [cadabra, do, \"$(GREETING)-x\"]
        workingDir: /tmp
        env:
        - {{name: SWELL_TESTAPP, value: runtime}}
        - {{name: GREETING, value: hi}}
        - name: FROM_MAP
          valueFrom: {{configMapKeyRef: {{name: rt-config, key: fromMap}}}}
        envFrom:
        - secretRef: {{name: rt-secret}}
",
        app = testapp()
    );
    apply_ready(&server, "rt", &yaml);
    let c = client(&server, &["rt.default.localhost"]);
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let info: serde_json::Value = c
        .get(url(&server, "rt.default.localhost", "/"))
        .header("x-custom-header", "Custom Value")
        .header("traceparent", tp)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let envs = &info["host"]["envs"];
    assert_eq!(envs["K_SERVICE"], "rt");
    assert_eq!(envs["K_CONFIGURATION"], "rt");
    assert_eq!(envs["K_REVISION"], "rt-00001");
    assert_eq!(envs["FROM_MAP"], "map-value");
    assert_eq!(envs["testKey"], "testValue");
    assert!(envs["PORT"].as_str().unwrap().parse::<u16>().is_ok());
    assert_eq!(
        info["host"]["args"],
        serde_json::json!([testapp(), "abra", "cadabra", "do", "hi-x"])
    );
    assert_eq!(info["host"]["user"]["cwd"]["directory"], "/tmp");
    assert_eq!(info["host"]["stdin"]["eof"], true);
    let h = &info["request"]["headers"];
    assert_eq!(h["X-Custom-Header"][0], "Custom Value");
    assert_eq!(h["Traceparent"][0], tp);
    assert_eq!(h["X-Forwarded-Proto"][0], "http");
    assert_eq!(h["X-Forwarded-For"][0], "127.0.0.1");
    let forwarded = h["Forwarded"][0].as_str().unwrap();
    assert!(forwarded.starts_with("for=127.0.0.1;host="), "{forwarded}");
    assert!(
        info["request"]["host"]
            .as_str()
            .unwrap()
            .starts_with("rt.default.localhost")
    );
}

/// An HTTP/2 (prior knowledge) connection to the ingress.
async fn h2_connect(
    ingress: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let tcp = tokio::net::TcpStream::connect(ingress).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}

/// Sends one HTTP/2 (prior knowledge) gRPC request through the ingress.
async fn grpc_call(
    ingress: SocketAddr,
    host: &str,
    method: &str,
    messages: &[&str],
) -> (Vec<String>, String) {
    use http_body_util::BodyExt;
    let mut send = h2_connect(ingress).await;
    let mut body = Vec::new();
    for m in messages {
        let pb = [&[0x0a, m.len() as u8][..], m.as_bytes()].concat();
        body.push(0);
        body.extend_from_slice(&(pb.len() as u32).to_be_bytes());
        body.extend_from_slice(&pb);
    }
    let req = http::Request::post(format!("http://{host}/ping.PingService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let data = collected.to_bytes();
    let mut replies = Vec::new();
    let mut rest = &data[..];
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let msg = &rest[5..5 + len];
        replies.push(String::from_utf8_lossy(&msg[2..]).into_owned());
        rest = &rest[5 + len..];
    }
    (replies, status)
}

#[tokio::test(flavor = "multi_thread")]
async fn protocols_h2c_grpc_and_websocket() {
    let server = start();
    let port = |name: &str| format!("        ports: [{{containerPort: 8080, name: {name}}}]\n");
    for (svc, ports) in [
        ("h2", port("h2c")),
        ("h1", port("http1")),
        ("plain", String::new()),
    ] {
        let k = server.kubectl(KUBECTL);
        k.ok_stdin(
            &["apply", "-f", "-"],
            &service(svc, "hellohttp2", &ports, ""),
        );
    }
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(
        &["apply", "-f", "-"],
        &service(
            "ping",
            "grpc-ping",
            &format!(
                "{}        env: [{{name: SUFFIX, value: \"!\"}}]\n",
                port("h2c")
            ),
            "",
        ),
    );
    k.ok_stdin(&["apply", "-f", "-"], &service("ws", "wsserver", "", ""));
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/h2",
        "ksvc/h1",
        "ksvc/plain",
        "ksvc/ping",
        "ksvc/ws",
        "--timeout=60s",
    ]);
    let c = client(
        &server,
        &[
            "h2.default.localhost",
            "h1.default.localhost",
            "plain.default.localhost",
        ],
    );
    for (svc, proto) in [
        ("h2", "HTTP/2.0"),
        ("h1", "HTTP/1.1"),
        ("plain", "HTTP/1.1"),
    ] {
        let (status, body) =
            get(&c, &url(&server, &format!("{svc}.default.localhost"), "/x")).await;
        assert_eq!(status, 200);
        assert_eq!(body, format!("proto={proto} method=GET path=/x\n"), "{svc}");
    }
    let (replies, status) =
        grpc_call(server.ingress, "ping.default.localhost", "Ping", &["hello"]).await;
    assert_eq!(
        (replies, status.as_str()),
        (vec!["hello!".to_string()], "0")
    );
    let (replies, status) = grpc_call(
        server.ingress,
        "ping.default.localhost",
        "PingStream",
        &["a", "b", "c"],
    )
    .await;
    assert_eq!(replies, vec!["a!", "b!", "c!"]);
    assert_eq!(status, "0");
    // WebSocket echo through the ingress.
    let tcp = tokio::net::TcpStream::connect(server.ingress)
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(
        url(&server, "ws.default.localhost", "/").replace("http", "ws"),
        tcp,
    )
    .await
    .expect("the upgrade goes through");
    assert_eq!(resp.status(), 101);
    use futures::SinkExt;
    for text in ["one", "two"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
}

/// Sends one HTTP/2 (prior knowledge) GET through the ingress; the body as text.
async fn h2_get(ingress: SocketAddr, host: &str, path: &str) -> String {
    use http_body_util::BodyExt;
    let mut send = h2_connect(ingress).await;
    let req = http::Request::get(format!("http://{host}{path}"))
        .body(http_body_util::Full::default())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// knative#4283: with `autodetect-http2` on, an app whose port is not named `h2c`
/// gets HTTP/2 requests over HTTP/2 (gRPC included), and HTTP/1 requests still over
/// HTTP/1.1; with it off, HTTP/2 requests reach it as HTTP/1.1.
#[tokio::test(flavor = "multi_thread")]
async fn autodetect_http2_serves_http2_and_grpc_on_an_unnamed_port() {
    let server = start();
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(
        &["apply", "-f", "-"],
        &service("auto", "hellohttp2", "", ""),
    );
    k.ok_stdin(
        &["apply", "-f", "-"],
        &service(
            "ping",
            "grpc-ping",
            "        env: [{name: SUFFIX, value: \"!\"}]\n",
            "",
        ),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "ksvc/auto",
        "ksvc/ping",
        "--timeout=60s",
    ]);
    let host = "auto.default.localhost";
    assert_eq!(
        h2_get(server.ingress, host, "/x").await,
        "proto=HTTP/1.1 method=GET path=/x\n",
        "without the feature, HTTP/2 requests reach the app as HTTP/1.1"
    );
    k.enable_features(&["autodetect-http2"]);
    // Every Revision follows config-features once reconciled.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body = h2_get(server.ingress, host, "/x").await;
        if body == "proto=HTTP/2.0 method=GET path=/x\n" {
            break;
        }
        assert!(Instant::now() < deadline, "still {body:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = client(&server, &[host]);
    assert_eq!(
        get(&c, &url(&server, host, "/y")).await,
        (200, "proto=HTTP/1.1 method=GET path=/y\n".to_string()),
        "HTTP/1 requests stay HTTP/1.1"
    );
    let (replies, status) = grpc_call(
        server.ingress,
        "ping.default.localhost",
        "PingStream",
        &["a", "b"],
    )
    .await;
    assert_eq!(
        (replies, status.as_str()),
        (vec!["a!".to_string(), "b!".to_string()], "0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_move_traffic_with_zero_downtime() {
    let server = start();
    apply_ready(&server, "zd", &service("zd", "pizzaplanetv1", "", ""));
    let c = client(&server, &["zd.default.localhost"]);
    let u = url(&server, "zd.default.localhost", "/");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = tokio::spawn({
        let (c, u, stop) = (c.clone(), u.clone(), stop.clone());
        async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                seen.push(get(&c, &u).await);
            }
            seen
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(
        &["apply", "-f", "-"],
        &service("zd", "pizzaplanetv2", "", ""),
    );
    let deadline = Instant::now() + PATIENCE;
    while get(&c, &u).await.1 != PIZZA_V2 {
        assert!(Instant::now() < deadline, "traffic never moved to -00002");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = prober.await.unwrap();
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} probes failed: {:?}",
        failed.len(),
        seen.len(),
        failed[0]
    );
    assert!(seen.iter().any(|(_, b)| b == PIZZA_V1) && seen.iter().any(|(_, b)| b == PIZZA_V2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dying_replica_fails_only_its_request_and_comes_back() {
    let server = start();
    let marker = format!("dying-marker-{}", std::process::id());
    apply_ready(
        &server,
        "dying",
        &service(
            "dying",
            "autoscale",
            &format!("        args: [{marker}]\n"),
            "",
        ),
    );
    let c = client(&server, &["dying.default.localhost"]);
    let slow = tokio::spawn({
        let c = c.clone();
        let u = url(&server, "dying.default.localhost", "/?sleep=20000");
        async move { get(&c, &u).await.0 }
    });
    let pids = eventually("the replica runs", || {
        let p = pids_of(&marker);
        (p.len() == 1).then_some(p)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(slow.await.unwrap(), 502, "the in-flight request fails");
    // Requests sent while no replica is ready wait for the restarted one.
    let (status, body) = get(&c, &url(&server, "dying.default.localhost", "/?sleep=10")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "Slept for 10.00 milliseconds.\n")
    );
    assert_ne!(pids_of(&marker), pids);
}

#[test]
fn failing_container_reports_its_exit_code_and_logs() {
    let server = start();
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(&["apply", "-f", "-"], &service("crash", "failing", "", ""));
    let reason = eventually("the Revision reports the exit", || {
        let r = k.ok(&[
            "get",
            "revision",
            "crash-00001",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"ContainerHealthy\")].reason}",
        ]);
        (!r.is_empty() && r != "Deploying").then_some(r)
    });
    assert_eq!(reason, "ExitCode5");
    let message = k.ok(&[
        "get",
        "revision",
        "crash-00001",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"ContainerHealthy\")].message}",
    ]);
    assert!(message.starts_with("Container failed with: "), "{message}");
    assert!(message.contains("exiting with code 5"), "{message}");
    let ready = k.ok(&[
        "get",
        "ksvc",
        "crash",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "False");
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_header_routing_and_cluster_local_hosts() {
    let server = start();
    let k = server.kubectl(KUBECTL);
    k.enable_features(&["tag-header-based-routing"]);
    let v1 = service("th", "pizzaplanetv1", "", "").replace(
        "  template:\n",
        "  template:\n    metadata:\n      name: th-one\n",
    );
    apply_ready(&server, "th", &v1);
    let v2 = service("th", "pizzaplanetv2", "", "").replace(
        "  template:\n",
        "  template:\n    metadata:\n      name: th-two\n",
    ) + "  traffic:\n  - {revisionName: th-one, percent: 100}\n  - {revisionName: th-two, tag: rev2, percent: 0}\n";
    k.ok_stdin(&["apply", "-f", "-"], &v2);
    eventually("the tag is routed", || {
        let urls = k.ok(&[
            "get",
            "ksvc",
            "th",
            "-o",
            "jsonpath={.status.traffic[*].url}",
        ]);
        let ready = k.ok(&[
            "get",
            "ksvc",
            "th",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        (!urls.is_empty() && ready == "True").then_some(())
    });
    let local = "th.default.svc.cluster.local";
    let c = client(&server, &["th.default.localhost", local]);
    let main = url(&server, "th.default.localhost", "/");
    let with_tag = |tag: &'static str| {
        let (c, main) = (c.clone(), main.clone());
        async move {
            let r = c
                .get(&main)
                .header("knative-serving-tag", tag)
                .send()
                .await
                .unwrap();
            r.text().await.unwrap()
        }
    };
    assert_eq!(with_tag("rev2").await, PIZZA_V2);
    assert_eq!(with_tag("rev-wrong").await, PIZZA_V1);
    assert_eq!(get(&c, &main).await.1, PIZZA_V1);
    // Every Route is also reachable by its cluster-local names from this machine.
    assert_eq!(
        get(&c, &url(&server, local, "/")).await,
        (200, PIZZA_V1.to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_probes_gate_traffic_and_liveness_restarts() {
    let server = start();
    // TestProbeRuntime: an exec readiness probe (the image's own `readiness probe`)
    // holds traffic until the app says it is ready, READY_DELAY after it started.
    let exec = service(
        "probed",
        "readiness",
        &format!(
            "        env:
        - {{name: READY_DELAY, value: 2s}}
        readinessProbe:
          periodSeconds: 1
          exec:
            command: [{app}, readiness, probe]
",
            app = testapp()
        ),
        "",
    );
    let applied = Instant::now();
    apply_ready(&server, "probed", &exec);
    assert!(
        applied.elapsed() >= Duration::from_secs(2),
        "Ready before the app's readiness endpoint could answer"
    );
    let c = client(
        &server,
        &["probed.default.localhost", "live.default.localhost"],
    );
    assert_eq!(
        get(&c, &url(&server, "probed.default.localhost", "/")).await,
        (200, HELLO.to_string())
    );

    // LISTEN_DELAY: nothing listens for a while; the default TCP readiness probe waits
    // for it (and liveness, as in Kubernetes, tolerates `failureThreshold` misses).
    let listen = service(
        "live",
        "readiness",
        &format!(
            "        args: [live-marker-{pid}]
        env:
        - {{name: LISTEN_DELAY, value: 1s}}
        livenessProbe:
          periodSeconds: 1
          failureThreshold: 3
          httpGet: {{path: /healthz/liveness}}
",
            pid = std::process::id()
        ),
        "",
    );
    apply_ready(&server, "live", &listen);
    let live = url(&server, "live.default.localhost", "/");
    assert_eq!(get(&c, &live).await, (200, HELLO.to_string()));
    // TestLivenessWithFail: once liveness fails, the replica is restarted and serves again.
    let marker = format!("live-marker-{}", std::process::id());
    let before = pids_of(&marker);
    assert_eq!(before.len(), 1, "one replica runs");
    assert_eq!(
        get(
            &c,
            &url(&server, "live.default.localhost", "/start-failing")
        )
        .await
        .0,
        200
    );
    tokio::task::block_in_place(|| {
        eventually("the replica failing liveness is replaced", || {
            let now = pids_of(&marker);
            (now.len() == 1 && now != before).then_some(())
        })
    });
    let served = tokio::time::timeout(PATIENCE, async {
        loop {
            if get(&c, &live).await == (200, HELLO.to_string()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "the restarted replica serves");
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_probes_hold_liveness_and_never_ready_revisions_miss_their_deadline() {
    let server = start();
    let k = server.kubectl(KUBECTL);
    // Nothing listens for 3 s; liveness alone (one miss allowed) would restart it every
    // second forever. The startup probe holds liveness and readiness until it passes.
    let marker = format!("slow-marker-{}", std::process::id());
    let slow = service(
        "slow",
        "readiness",
        &format!(
            "        args: [{marker}]
        env:
        - {{name: LISTEN_DELAY, value: 3s}}
        startupProbe:
          periodSeconds: 1
          failureThreshold: 10
          tcpSocket: {{port: 8080}}
        livenessProbe:
          periodSeconds: 1
          failureThreshold: 1
          httpGet: {{path: /healthz/liveness}}
"
        ),
        "",
    );
    k.ok_stdin(&["apply", "-f", "-"], &slow);
    let mut seen = std::collections::BTreeSet::new();
    tokio::task::block_in_place(|| {
        eventually("slow to become Ready", || {
            seen.extend(pids_of(&marker));
            let ready = k.ok(&[
                "get",
                "ksvc",
                "slow",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            (ready == "True").then_some(())
        })
    });
    seen.extend(pids_of(&marker));
    assert_eq!(seen.len(), 1, "the replica was restarted: pids {seen:?}");
    let c = client(&server, &["slow.default.localhost"]);
    assert_eq!(
        get(&c, &url(&server, "slow.default.localhost", "/")).await,
        (200, HELLO.to_string())
    );

    // A Revision that never becomes ready fails once its progress deadline passes.
    let stuck = service(
        "stuck",
        "helloworld",
        "        readinessProbe:
          periodSeconds: 1
          exec: {command: [/bin/false]}
",
        "",
    )
    .replacen(
        "  template:\n",
        "  template:\n    metadata:\n      annotations:\n        serving.knative.dev/progress-deadline: 3s\n",
        1,
    );
    k.ok_stdin(&["apply", "-f", "-"], &stuck);
    let jsonpath = |t: &str| {
        format!(
            "jsonpath={{.status.conditions[?(@.type==\"{t}\")].status}}/{{.status.conditions[?(@.type==\"{t}\")].reason}}"
        )
    };
    tokio::task::block_in_place(|| {
        eventually("stuck-00001 to miss its progress deadline", || {
            let rev = k.ok(&[
                "get",
                "revision",
                "stuck-00001",
                "-o",
                &jsonpath("ResourcesAvailable"),
            ]);
            (rev == "False/ProgressDeadlineExceeded").then_some(())
        })
    });
    assert_eq!(
        k.ok(&["get", "revision", "stuck-00001", "-o", &jsonpath("Ready")]),
        "False/ProgressDeadlineExceeded"
    );
}

/// This machine's address on its default route: not loopback.
fn non_loopback_ip() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    // Connecting a UDP socket only picks a route; nothing is sent.
    s.connect("192.0.2.1:9")
        .expect("this test needs a network interface besides loopback");
    let ip = s.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "{ip} is loopback");
    ip
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_local_hosts_refuse_other_machines() {
    let server = Server::start_with(&["--backend", "process", "--http-addr", "0.0.0.0:0"]);
    apply_ready(&server, "vis", &service("vis", "helloworld", "", ""));
    let outside = SocketAddr::new(non_loopback_ip(), server.ingress_port());
    let local = "vis.default.svc.cluster.local";
    let c = common::http()
        .timeout(PATIENCE)
        .resolve("vis.default.localhost", outside)
        .resolve(local, outside)
        .build()
        .unwrap();
    // Through a non-loopback address the peer is not loopback: the public host answers,
    // the cluster-local one does not exist.
    assert_eq!(
        get(&c, &url(&server, "vis.default.localhost", "/")).await,
        (200, HELLO.to_string())
    );
    let (status, body) = get(&c, &url(&server, local, "/")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no Route serves host"), "{body}");
    // From loopback it does.
    let c = client(&server, &[local]);
    assert_eq!(
        get(&c, &url(&server, local, "/")).await,
        (200, HELLO.to_string())
    );
}

/// The activator queue holds `--queue-depth` requests while the Revision's one
/// replica (`containerConcurrency: 1`, `max-scale: 1`) is busy; one more gets 503 at
/// once, and the held ones are all served.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_activator_queue_answers_503_and_serves_what_it_holds() {
    let server = Server::start_with(&["--backend", "process", "--queue-depth", "2"]);
    let yaml = service("busy", "timeout", "", "      containerConcurrency: 1\n").replacen(
        "  template:\n",
        "  template:\n    metadata:\n      annotations:\n        autoscaling.knative.dev/max-scale: \"1\"\n",
        1,
    );
    apply_ready(&server, "busy", &yaml);
    let c = client(&server, &["busy.default.localhost"]);
    let send = |path: &str| {
        let (c, u) = (c.clone(), url(&server, "busy.default.localhost", path));
        tokio::spawn(async move { get(&c, &u).await })
    };
    // One request occupies the replica; two more wait in the queue.
    let mut held = vec![send("/?initialTimeout=8000")];
    let metric = |m: &str| {
        m.lines().any(|l| {
            l.starts_with("swell_revision_queue_depth")
                && l.contains("revision=\"busy-00001\"")
                && l.ends_with(" 2")
        })
    };
    let deadline = Instant::now() + PATIENCE;
    tokio::time::sleep(Duration::from_millis(200)).await;
    held.push(send("/"));
    held.push(send("/"));
    loop {
        let m = server
            .api_get("/metrics")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&m) {
            break;
        }
        assert!(Instant::now() < deadline, "the queue never held 2:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let over = c
        .get(url(&server, "busy.default.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status().as_u16(), 503);
    assert_eq!(over.headers()["swell-error"], "overload");
    for h in held {
        assert_eq!(h.await.unwrap().0, 200);
    }
}

/// One keep-alive connection carries pipelined requests of both of the ingress's paths:
/// its own HTTP/1.1 path (GET, HEAD, a small POST, an unknown host) and, from the first
/// request that path hands over (a chunked body), hyper — in order, nothing lost.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_cross_from_the_fast_path_to_hyper_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start();
    apply_ready(&server, "hello", &service("hello", "helloworld", "", ""));
    let host = "hello.default.localhost";
    let requests = [
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        format!("HEAD / HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\nhello"),
        "GET / HTTP/1.1\r\nHost: nobody.default.localhost\r\n\r\n".to_string(),
        format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    ];
    let mut tcp = tokio::net::TcpStream::connect(server.ingress)
        .await
        .unwrap();
    tcp.write_all(requests.concat().as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut got))
        .await
        .expect("the ingress closes after `Connection: close`")
        .unwrap();
    let got = String::from_utf8_lossy(&got).to_lowercase();
    let statuses: Vec<&str> = got
        .match_indices("http/1.1 ")
        .map(|(i, _)| &got[i + 9..i + 12])
        .collect();
    assert_eq!(
        statuses,
        ["200", "200", "200", "404", "200", "200"],
        "{got}"
    );
    // HEAD's response has no body; the others each carry the greeting.
    assert_eq!(got.matches(&HELLO.to_lowercase()).count(), 4, "{got}");
    assert!(got.contains("swell-error: unknown-host"), "{got}");
    assert_eq!(got.matches("\r\ndate: ").count(), 6, "{got}");
}
