//! Part of `bench/run api`: what HTTPS authentication and RBAC cost a request. Three
//! clients, each on one warm keep-alive connection, take turns on the same requests so
//! machine noise hits them alike: the admin (client certificate, `system:masters`, so
//! RBAC short-circuits), a user whose access comes from a RoleBinding to the `edit`
//! ClusterRole (client certificate from `swell kubeconfig create`), and another such
//! user authenticated by a bearer token from `--token-auth-file`. Then again with 1,000
//! more RoleBindings to other users, spread over 100 namespaces.

use super::{SERVICES, Server, api_client, fmt, percentile, service};
use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token user's line in the `--token-auth-file` the server starts with.
pub(crate) const TOKEN: &str = "bench-token-9f3c1a7e52d04b68";
pub(crate) const TOKEN_USER: &str = "bench-token-user";
const CERT_USER: &str = "bench-cert-user";
/// A namespace with a few Services, for a list whose cost is mostly per request.
const SMALL_NS: &str = "bench-small";
const SMALL_SERVICES: usize = 10;
const EXTRA_BINDINGS: usize = 1000;
const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

/// The namespace of the `i`th extra RoleBinding: 100 namespaces, including the two the
/// measured users are bound in.
fn extra_namespace(i: usize) -> String {
    match i % 100 {
        0 => "default".to_string(),
        1 => SMALL_NS.to_string(),
        k => format!("bench-{k}"),
    }
}

pub(crate) fn role_binding(name: &str, role: &str, users: &[&str]) -> Value {
    let subjects: Vec<Value> = users
        .iter()
        .map(|u| json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": u}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": subjects})
}

pub(crate) async fn create(
    http: &reqwest::Client,
    url: String,
    body: &Value,
) -> anyhow::Result<()> {
    let r = http.post(&url).json(body).send().await?;
    if r.status() != 201 {
        bail!("POST {url}: {} {}", r.status(), r.text().await?);
    }
    Ok(())
}

async fn create_namespace(http: &reqwest::Client, api: &str, ns: &str) -> anyhow::Result<()> {
    create(
        http,
        format!("{api}/api/v1/namespaces"),
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await
}

/// Base64 (standard alphabet, padded) to bytes; the bench has no base64 crate.
fn base64_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {c:?}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

/// A client certificate and key (PEM) for `user` from `swell kubeconfig create`.
fn issue_certificate(server: &Server, user: &str) -> anyhow::Result<(String, String)> {
    let out = Command::new(std::env::current_exe()?.with_file_name("swell"))
        .args(["kubeconfig", "create", "--user", user, "--data-dir"])
        .arg(server.dir.path())
        .output()?;
    ensure!(
        out.status.success(),
        "swell kubeconfig create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let field = |key: &str| -> anyhow::Result<String> {
        let b64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .with_context(|| format!("no {key} in the kubeconfig"))?;
        Ok(String::from_utf8(base64_decode(b64.trim())?)?)
    };
    Ok((
        field("client-certificate-data:")?,
        field("client-key-data:")?,
    ))
}

/// `rounds` rounds of `path(i)` GET by each client in turn (after 20 unrecorded
/// rounds), each answered 200 and read to the end; the latencies, sorted, per client.
async fn interleaved(
    clients: &[reqwest::Client],
    api: &str,
    rounds: usize,
    path: impl Fn(usize) -> String,
    accept: &str,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut out = vec![Vec::with_capacity(rounds); clients.len()];
    let warm = 20.min(rounds);
    for i in 0..warm + rounds {
        let url = format!("{api}{}", path(i));
        for (c, times) in clients.iter().zip(&mut out) {
            let t = Instant::now();
            let r = c.get(&url).header("accept", accept).send().await?;
            ensure!(r.status() == 200, "GET {url}: {}", r.status());
            r.bytes().await?;
            if i >= warm {
                times.push(t.elapsed());
            }
        }
    }
    for times in &mut out {
        times.sort();
    }
    Ok(out)
}

/// One table row per request kind: p50 and p99 per client; and the p50s.
async fn measure(
    clients: &[reqwest::Client],
    api: &str,
    services: usize,
    label: &str,
    p50s: &mut Vec<(String, Vec<Duration>)>,
) -> anyhow::Result<()> {
    let small = format!("/apis/serving.knative.dev/v1/namespaces/{SMALL_NS}/services");
    let json = "application/json";
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
    type Path = Box<dyn Fn(usize) -> String>;
    let kinds: [(String, usize, Path, &str); 4] = [
        (
            format!("get one Service ({services} stored)"),
            2000,
            Box::new(move |i| format!("{SERVICES}/svc-{}", (i * 7919) % services)),
            json,
        ),
        (
            format!("list {SMALL_SERVICES} Services (namespace {SMALL_NS})"),
            500,
            Box::new(move |_| small.clone()),
            json,
        ),
        (
            "list as Table, limit=500".to_string(),
            50,
            Box::new(|_| format!("{SERVICES}?limit=500")),
            table,
        ),
        (
            format!("list all {services} Services (JSON)"),
            10,
            Box::new(|_| SERVICES.to_string()),
            json,
        ),
    ];
    for (name, rounds, path, accept) in kinds {
        let times = interleaved(clients, api, rounds, path, accept).await?;
        let cells: Vec<String> = times
            .iter()
            .map(|t| format!("{} · {}", fmt(percentile(t, 0.5)), fmt(percentile(t, 0.99))))
            .collect();
        println!("| {name}{label} | {} |", cells.join(" | "));
        p50s.push((
            format!("{name}{label}"),
            times.iter().map(|t| percentile(t, 0.5)).collect(),
        ));
    }
    Ok(())
}

/// Creates the extra RoleBindings (16 clients at once) and waits until the
/// authorizer has the last one.
async fn extra_bindings(admin: &reqwest::Client, api: &str) -> anyhow::Result<()> {
    for k in 2..100 {
        create_namespace(admin, api, &format!("bench-{k}")).await?;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, api, next) = (admin.clone(), api.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= EXTRA_BINDINGS {
                    return anyhow::Ok(());
                }
                let role = if i % 2 == 0 { "edit" } else { "view" };
                let user = format!("other-{i}");
                create(
                    &http,
                    format!("{api}{RBAC}/namespaces/{}/rolebindings", extra_namespace(i)),
                    &role_binding(&format!("extra-{i}"), role, &[&user]),
                )
                .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Every binding is stored; the authorizer follows the store's watch: give it a
    // moment (the server has no SubjectAccessReview to ask it directly).
    let all: Value = admin
        .get(format!("{api}{RBAC}/rolebindings"))
        .send()
        .await?
        .json()
        .await?;
    let n = all["items"].as_array().map_or(0, Vec::len);
    ensure!(n > EXTRA_BINDINGS, "only {n} RoleBindings stored");
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

/// Runs this part of the API scenario and prints its section.
pub(crate) async fn run(
    server: &Server,
    admin: &reqwest::Client,
    services: usize,
) -> anyhow::Result<()> {
    let api = server.url.as_str();
    create_namespace(admin, api, SMALL_NS).await?;
    for i in 0..SMALL_SERVICES {
        create(
            admin,
            format!("{api}/apis/serving.knative.dev/v1/namespaces/{SMALL_NS}/services"),
            &service(&format!("small-{i}")),
        )
        .await?;
    }
    for ns in ["default", SMALL_NS] {
        create(
            admin,
            format!("{api}{RBAC}/namespaces/{ns}/rolebindings"),
            &role_binding("bench-edit", "edit", &[CERT_USER, TOKEN_USER]),
        )
        .await?;
    }
    let ca = std::fs::read_to_string(server.dir.path().join("pki/ca.crt"))?;
    let (cert, key) = issue_certificate(server, CERT_USER)?;
    let clients = [
        admin.clone(),
        api_client(&ca, Some((&cert, &key)), None)?,
        api_client(&ca, None, Some(TOKEN))?,
    ];
    // RBAC really decides for the users: allowed in their namespaces, not elsewhere.
    for (c, who) in clients.iter().zip(["admin", CERT_USER, TOKEN_USER]).skip(1) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = c.get(format!("{api}{SERVICES}/svc-0")).send().await?;
            if r.status() == 200 {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{who} cannot read a Service: {}",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = c.get(format!("{api}/api/v1/namespaces")).send().await?;
        ensure!(r.status() == 403, "{who} lists namespaces: {}", r.status());
    }

    let mut p50s = Vec::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("\n## API server over HTTPS: authentication and RBAC ({date})\n");
    println!(
        "Warm connection: one keep-alive HTTP/1.1 client each; the three take turns on every \
         request. Cells are p50 · p99.\n"
    );
    println!(
        "| request | admin (cert, system:masters) | user via RoleBinding (cert) | user via RoleBinding (token) |"
    );
    println!("|---|---|---|---|");
    measure(&clients, api, services, "", &mut p50s).await?;
    extra_bindings(admin, api).await?;
    measure(
        &clients,
        api,
        services,
        &format!(", {EXTRA_BINDINGS} more RoleBindings"),
        &mut p50s,
    )
    .await?;

    println!("\nRBAC decision and identity, p50 difference from the admin (µs):\n");
    println!("| request | user (cert) − admin | user (token) − admin |\n|---|---|---|");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for (name, p) in &p50s {
        println!(
            "| {name} | {:+.0} | {:+.0} |",
            us(p[1]) - us(p[0]),
            us(p[2]) - us(p[0])
        );
    }
    Ok(())
}
