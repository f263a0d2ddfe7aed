//! Service-to-service calls, as on Kubernetes: a replica (process and runc backends)
//! calls another Service by its `status.address.url`
//! (`http://NAME.NS.svc.cluster.local`, port 80), by the search path's short form
//! (`NAME.NS`) and by its public URL, resolving them with the C library's resolver
//! through Swell's DNS; a cluster-local Service answers replicas and not the outside
//! (404, as Knative); a second server on the machine serves its own replicas. The
//! caller is the testapp's `httpproxy` (Knative's test image:
//! it proxies to `$TARGET_HOST`). Needs root (as CI has), and runc with the CNI
//! plugins for the runc test.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::apps::{HELLO, apply_ready, client, get, url};
use common::oci::{push, registry, testapp_layout};
use common::{KUBECTL, PATIENCE, Server};
use std::net::SocketAddr;

/// What the `helloworld` image answers.
fn hello() -> (u16, String) {
    (200, format!("{HELLO}\n"))
}

/// A Service `name` whose container is `container` (YAML after `- `, indented for the
/// container), with `labels` (YAML indented for `metadata.labels`) and `env`.
fn knative_service(name: &str, labels: &str, container: &str, env: &[(&str, &str)]) -> String {
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("  labels:\n{labels}")
    };
    let mut env_yaml = String::new();
    if !env.is_empty() {
        env_yaml.push_str("        env:\n");
        for (k, v) in env {
            env_yaml.push_str(&format!("        - name: {k}\n          value: \"{v}\"\n"));
        }
    }
    format!(
        "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
{labels}spec:
  template:
    spec:
      containers:
      - {container}
{env_yaml}"
    )
}

/// The host (and port) of a URL field of a Service's status.
fn status_host(server: &Server, name: &str, field: &str) -> String {
    let k = server.kubectl(KUBECTL);
    let u = k.ok(&[
        "get",
        "ksvc",
        name,
        "-o",
        &format!("jsonpath={{.status.{field}}}"),
    ]);
    u.strip_prefix("http://")
        .unwrap_or_else(|| panic!("{name}'s {field} is {u:?}"))
        .trim_end_matches('/')
        .to_string()
}

/// Deploys a callee, a cluster-local callee, and callers reaching them by each of
/// their names; every caller gets the callee's answer. `container(image)` is the
/// container YAML running the testapp as Knative's image `image`. Returns the
/// cluster-local callee's host.
async fn callers_reach_callees(server: &Server, container: &dyn Fn(&str) -> String) -> String {
    apply_ready(
        server,
        "callee",
        &knative_service("callee", "", &container("helloworld"), &[]),
    );
    apply_ready(
        server,
        "private",
        &knative_service(
            "private",
            "    networking.knative.dev/visibility: cluster-local\n",
            &container("helloworld"),
            &[],
        ),
    );
    let address = status_host(server, "callee", "address.url");
    assert_eq!(address, "callee.default.svc.cluster.local");
    let public = status_host(server, "callee", "url");
    assert_eq!(
        public,
        format!("callee.default.localhost:{}", server.ingress_port())
    );
    let private = status_host(server, "private", "address.url");
    assert_eq!(private, status_host(server, "private", "url"));
    assert_eq!(private, "private.default.svc.cluster.local");

    let callers = [
        ("by-address", address.as_str()),
        ("by-url", public.as_str()),
        ("to-private", private.as_str()),
        // The pod's search path completes it (`default.svc.cluster.local` first).
        ("short-name", "private.default"),
        ("to-nothing", "nothing.default.svc.cluster.local"),
    ];
    for (name, target) in callers {
        apply_ready(
            server,
            name,
            &knative_service(
                name,
                "",
                &container("httpproxy"),
                &[("TARGET_HOST", target)],
            ),
        );
    }
    let hosts: Vec<String> = callers
        .iter()
        .map(|(n, _)| format!("{n}.default.localhost"))
        .collect();
    let c = client(
        server,
        &hosts.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for (name, target) in &callers[..4] {
        let host = format!("{name}.default.localhost");
        assert_eq!(
            get(&c, &url(server, &host, "/")).await,
            hello(),
            "{name} calling {target}"
        );
    }
    // A name under the cluster domain that no Service has does not resolve.
    let (status, body) = get(&c, &url(server, "to-nothing.default.localhost", "/")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("dns error"), "{body}");
    private
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
async fn process_replicas_call_services_by_name() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "replicas get the cluster's DNS when the server runs as root, as CI does"
    );
    let server = Server::start_with(&["--backend", "process"]);
    let app = common::apps::testapp();
    callers_reach_callees(&server, &|image| {
        format!("image: testapp\n        command: [{app}, {image}]\n")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runc_replicas_call_services_by_name_and_cluster_local_ones_stay_inside() {
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
    testapp_layout(&work, &["helloworld", "httpproxy"]);
    let reg = registry();
    let image = |name: &str| format!("{}/knative/{name}:v1", reg.addr);
    for name in ["helloworld", "httpproxy"] {
        push(&work, "T", name, &image(name));
    }
    // On every address, so that other machines could reach it.
    let server = Server::start_with(&["--backend", "runc", "--http-addr", "0.0.0.0:0"]);
    let private = callers_reach_callees(&server, &|name| format!("image: {}\n", image(name))).await;

    // From another machine (a peer that is not loopback), the cluster-local Service
    // does not exist; the public one does.
    let outside = SocketAddr::new(non_loopback_ip(), server.ingress_port());
    let c = common::http()
        .timeout(PATIENCE)
        .resolve(&private, outside)
        .resolve("callee.default.localhost", outside)
        .build()
        .unwrap();
    let (status, body) = get(&c, &url(&server, &private, "/")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no Route serves host"), "{body}");
    assert_eq!(
        get(&c, &url(&server, "callee.default.localhost", "/")).await,
        hello()
    );

    // A second server on the machine finds the gateway's ports 53 and 80 taken: it
    // serves on others, and its replicas' namespaces redirect 53 and 80 there, so they
    // reach its Services (which the first server does not have), not the first's.
    let second = Server::start_with(&["--backend", "runc"]);
    let log = std::fs::read_to_string(
        second
            .data_dir
            .join(format!("server-{}.log", std::process::id())),
    )
    .unwrap();
    assert!(log.contains("Redirect { protocol: Udp, port: 53,"), "{log}");
    apply_ready(
        &second,
        "only-here",
        &knative_service(
            "only-here",
            "",
            &format!("image: {}\n", image("helloworld")),
            &[],
        ),
    );
    apply_ready(
        &second,
        "caller",
        &knative_service(
            "caller",
            "",
            &format!("image: {}\n", image("httpproxy")),
            &[("TARGET_HOST", "only-here.default.svc.cluster.local")],
        ),
    );
    let c = client(&second, &["caller.default.localhost"]);
    assert_eq!(
        get(&c, &url(&second, "caller.default.localhost", "/")).await,
        hello()
    );
}
