//! Services that run `swell-testapp` with the process backend, and an HTTP client that
//! reaches them through the ingress.

use super::{KUBECTL, PATIENCE, Server};
use std::path::PathBuf;

/// The testapp binary, built next to `swell` (the workspace test build builds it).
pub fn testapp() -> String {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_swell")).with_file_name("swell-testapp");
    assert!(
        p.exists(),
        "{} is missing: build the workspace (`cargo build -p swell-testapp`)",
        p.display()
    );
    p.display().to_string()
}

/// A Service running `swell-testapp <image>`, with extra container YAML (indented for
/// the container) and extra spec YAML (indented for `spec.template.spec`).
pub fn service(name: &str, image: &str, container: &str, spec: &str) -> String {
    let app = testapp();
    super::image_service(
        name,
        "testapp",
        spec,
        &format!("        command: [{app}, {image}]\n{container}"),
    )
}

pub fn apply_ready(server: &Server, name: &str, yaml: &str) {
    let k = server.kubectl(KUBECTL);
    k.ok_stdin(&["apply", "-f", "-"], yaml);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("ksvc/{name}"),
        "--timeout=60s",
    ]);
}

/// An HTTP client that resolves the ingress's hosts to the ingress.
pub fn client(server: &Server, hosts: &[&str]) -> reqwest::Client {
    let mut b = super::http().timeout(PATIENCE);
    for h in hosts {
        b = b.resolve(h, server.ingress);
    }
    b.build().unwrap()
}

pub fn url(server: &Server, host: &str, path: &str) -> String {
    format!("http://{host}:{}{path}", server.ingress_port())
}

pub async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.expect("request completes");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// The processes whose command line contains `marker`.
pub fn pids_of(marker: &str) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// What the `helloworld` image answers.
pub const HELLO: &str = "Hello World! How about some tasty noodles?";
