//! Swell's benchmark runner. `bench/run api` measures the API server: create throughput,
//! get and list latency with many Services stored, watch fan-out, server memory, and
//! what authentication and RBAC add to a request (`auth.rs`);
//! `bench/run controllers` the reconcilers; `bench/run dataplane` the ingress against
//! direct, nginx and HAProxy; `bench/run autoscaler` cold starts and the KPA's cost;
//! `bench/run runc` image import and cold starts with the runc backend.
//! Results are printed as a Markdown section to paste into `bench/RESULTS.md`.

#![expect(
    clippy::disallowed_methods,
    reason = "the benchmark harness drives servers and load tools from its own threads; the ban keeps blocking calls off the server's"
)]

mod auth;
mod autoscaler;
mod dataplane;
mod runc;
mod tls_cost;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVICES: &str = "/apis/serving.knative.dev/v1/namespaces/default/services";

struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// A client for its API as the admin.
    fn admin(&self) -> anyhow::Result<reqwest::Client> {
        admin_http(self.dir.path())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(extra: &[&str]) -> anyhow::Result<Server> {
    let exe = std::env::current_exe()?.with_file_name("swell");
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(&exe)
        .args(["server", "--api-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(extra)
        .env("SWELL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (run bench/run, which builds it)",
                exe.display()
            )
        })?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let url = loop {
        let line = lines.next().context("server exited")??;
        if let Some(u) = line.strip_prefix("Swell API server listening on ") {
            break u.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Server { child, url, dir })
}

/// A process stopped when dropped: SIGTERM first, so `swell server` stops its
/// replicas; SIGKILL after 30 s.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client for Swell's HTTPS API: trusts `ca_pem`, presents `identity` (certificate
/// and key, PEM) when given, and sends `token` as a bearer token when given. HTTP/1.1
/// with keep-alive, as the plain-HTTP API was measured. Ring is rustls' provider: the
/// workspace's reqwest has none built in.
fn api_client(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    token: Option<&str>,
) -> anyhow::Result<reqwest::Client> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.context("bad CA certificate")?)?;
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => config.with_client_auth_cert(
            CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<_, _>>()
                .context("bad client certificate")?,
            PrivateKeyDer::from_pem_slice(key.as_bytes()).context("bad client key")?,
        )?,
        None => config.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
    }
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .default_headers(headers)
        .build()?)
}

/// A client for the API of the server whose data directory is `data`, as its admin
/// (`swell-admin` in `system:masters`): the CA and admin certificate it made in `pki/`.
pub(crate) fn admin_http(data: &Path) -> anyhow::Result<reqwest::Client> {
    let pki = data.join("pki");
    let read = |f: &str| {
        std::fs::read_to_string(pki.join(f))
            .with_context(|| format!("cannot read {}", pki.join(f).display()))
    };
    api_client(
        &read("ca.crt")?,
        Some((&read("admin.crt")?, &read("admin.key")?)),
        None,
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn service(name: &str) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": name, "labels": {"app": name}},
           "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go:latest", "env": [{"name": "TARGET", "value": "bench"}]}]}}}})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

async fn timed<F: std::future::Future<Output = anyhow::Result<()>>>(
    n: usize,
    mut f: impl FnMut(usize) -> F,
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

async fn api(services: usize) -> anyhow::Result<()> {
    let tokens = tempfile::tempdir()?;
    let token_file = tokens.path().join("tokens.csv");
    std::fs::write(
        &token_file,
        format!("{},{},1001\n", auth::TOKEN, auth::TOKEN_USER),
    )?;
    let server = start_server(&[
        "--no-controllers",
        "--backend",
        "none",
        "--token-auth-file",
        token_file.to_str().context("temporary path")?,
    ])?;
    let pid = server.child.id();
    let http = server.admin()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kib(pid);

    // Create throughput: 16 concurrent clients.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, url, next) = (http.clone(), server.url.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= services {
                    return anyhow::Ok(());
                }
                let r = http
                    .post(format!("{url}{SERVICES}"))
                    .json(&service(&format!("svc-{i}")))
                    .send()
                    .await?;
                if r.status() != 201 {
                    bail!("create failed: {}", r.status());
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let create_secs = started.elapsed().as_secs_f64();

    let gets = timed(2000, |i| {
        let (http, url) = (http.clone(), server.url.clone());
        async move {
            let name = format!("svc-{}", (i * 7919) % services);
            let r = http.get(format!("{url}{SERVICES}/{name}")).send().await?;
            anyhow::ensure!(r.status() == 200);
            r.bytes().await?;
            Ok(())
        }
    })
    .await?;
    // Timed to the last byte of the body, as the auth scenario does; decoding 10,000
    // objects on the client side (about as long again) is checked once, after.
    let lists = timed(20, |_| {
        let (http, url) = (http.clone(), server.url.clone());
        async move {
            let r = http.get(format!("{url}{SERVICES}")).send().await?;
            anyhow::ensure!(r.status() == 200, "list: {}", r.status());
            r.bytes().await?;
            Ok(())
        }
    })
    .await?;
    let body: Value = http
        .get(format!("{}{SERVICES}", server.url))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(body["items"].as_array().map_or(0, Vec::len) == services);
    let tables = timed(20, |_| {
        let (http, url) = (http.clone(), server.url.clone());
        async move {
            let r = http
                .get(format!("{url}{SERVICES}?limit=500"))
                .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
                .send()
                .await?;
            r.bytes().await?;
            Ok(())
        }
    })
    .await?;
    let selected = timed(50, |i| {
        let (http, url) = (http.clone(), server.url.clone());
        async move {
            let body: Value = http
                .get(format!(
                    "{url}{SERVICES}?labelSelector=app%3Dsvc-{}",
                    i % services
                ))
                .send()
                .await?
                .json()
                .await?;
            anyhow::ensure!(body["items"].as_array().map_or(0, Vec::len) == 1);
            Ok(())
        }
    })
    .await?;
    let loaded_rss = rss_kib(pid);

    // Watch fan-out: 100 watchers, then 100 updates; latency from the write's answer to
    // the last watcher receiving it.
    let rv = current_rv(&http, &server.url).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut watchers = Vec::new();
    for _ in 0..100 {
        let (http, url, rv, tx) = (http.clone(), server.url.clone(), rv.clone(), tx.clone());
        watchers.push(tokio::spawn(async move {
            watch_until(&http, &url, &rv, |o| {
                if let Some(n) = o["metadata"]["labels"]["round"]
                    .as_str()
                    .and_then(|n| n.parse().ok())
                {
                    let _ = tx.send((n, Instant::now()));
                }
                false
            })
            .await
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut fanout = Vec::new();
    let fan_started = Instant::now();
    for round in 0..100usize {
        let patch = json!({"metadata": {"labels": {"round": round.to_string()}}});
        let r = http
            .patch(format!("{}{SERVICES}/svc-0", server.url))
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string())
            .send()
            .await?;
        let acked = Instant::now();
        anyhow::ensure!(r.status() == 200);
        let mut got = 0;
        let mut last = acked;
        while got < 100 {
            let (n, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await?
                .context("watchers ended")?;
            if n == round {
                got += 1;
                last = last.max(at);
            }
        }
        fanout.push(last.saturating_duration_since(acked));
    }
    let fan_secs = fan_started.elapsed().as_secs_f64();
    fanout.sort();
    for w in watchers {
        w.abort();
    }

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("## API server ({date})\n");
    println!(
        "Machine: {} cores, {cpu}; release build; store on local disk with fsync per write; \
         HTTPS as the admin (client certificate), HTTP/1.1 keep-alive; commit {}.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        commit()
    );
    println!("| measure | result |\n|---|---|");
    println!(
        "| create {services} Services, 16 concurrent clients | {:.0} objects/s ({create_secs:.1} s) |",
        services as f64 / create_secs
    );
    println!(
        "| get one Service ({services} stored), sequential | p50 {} · p99 {} |",
        fmt(percentile(&gets, 0.5)),
        fmt(percentile(&gets, 0.99))
    );
    println!(
        "| list all {services} Services (JSON) | p50 {} · p99 {} |",
        fmt(percentile(&lists, 0.5)),
        fmt(percentile(&lists, 0.99))
    );
    println!(
        "| list as Table, limit=500 (what kubectl asks) | p50 {} · p99 {} |",
        fmt(percentile(&tables, 0.5)),
        fmt(percentile(&tables, 0.99))
    );
    println!(
        "| list with labelSelector matching 1 of {services} | p50 {} · p99 {} |",
        fmt(percentile(&selected, 0.5)),
        fmt(percentile(&selected, 0.99))
    );
    println!(
        "| watch fan-out: write answered → all 100 watchers have it | p50 {} · p99 {} ({:.0} events/s delivered) |",
        fmt(percentile(&fanout, 0.5)),
        fmt(percentile(&fanout, 0.99)),
        100.0 * 100.0 / fan_secs
    );
    println!(
        "| server RSS idle (fresh start) | {:.1} MiB |",
        idle_rss as f64 / 1024.0
    );
    println!(
        "| server RSS with {services} Services (after the lists) | {:.1} MiB |",
        loaded_rss as f64 / 1024.0
    );
    auth::run(&server, &http, services).await
}

/// The checked-out commit, with `+dirty` when the work tree has changes.
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        head
    } else {
        format!("{head}+dirty")
    }
}

fn is_ready(svc: &Value) -> bool {
    svc["status"]["observedGeneration"] == svc["metadata"]["generation"]
        && svc["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Follows a watch on Services from `rv` until `done` says every Service it has seen is
/// as wanted; returns when that happens.
async fn watch_until(
    http: &reqwest::Client,
    url: &str,
    rv: &str,
    mut done: impl FnMut(&Value) -> bool,
) -> anyhow::Result<()> {
    let mut resp = http
        .get(format!("{url}{SERVICES}?watch=true&resourceVersion={rv}"))
        .send()
        .await?;
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let ev: Value = serde_json::from_slice(&line)?;
            if done(&ev["object"]) {
                return Ok(());
            }
        }
    }
    bail!("watch ended early")
}

async fn current_rv(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let body: Value = http
        .get(format!("{url}{SERVICES}?limit=1"))
        .send()
        .await?
        .json()
        .await?;
    Ok(body["metadata"]["resourceVersion"]
        .as_str()
        .context("no rv")?
        .to_string())
}

/// Creates (or updates, when `image` changes) `n` Services with 16 clients at once.
async fn apply_many(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    offset: usize,
    image: &str,
) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, url, next, image) = (
            http.clone(),
            url.to_string(),
            next.clone(),
            image.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let mut body = service(&format!("svc-{}", i + offset));
                body["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
                let r = http
                    .patch(format!(
                        "{url}{SERVICES}/svc-{}?fieldManager=bench",
                        i + offset
                    ))
                    .header("content-type", "application/apply-patch+yaml")
                    .body(body.to_string())
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("apply failed: {}", r.status());
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn controllers(services: usize) -> anyhow::Result<()> {
    let server = start_server(&["--backend", "fake"])?;
    let pid = server.child.id();
    let http = server.admin()?;
    let url = server.url.clone();

    let mut single = Vec::new();
    for i in 0..20 {
        let name = format!("one-{i}");
        let rv = current_rv(&http, &url).await?;
        let started = Instant::now();
        let watcher = watch_until(&http, &url, &rv, |o| {
            o["metadata"]["name"] == json!(name) && is_ready(o)
        });
        let create = async {
            let r = http
                .post(format!("{url}{SERVICES}"))
                .json(&service(&name))
                .send()
                .await?;
            anyhow::ensure!(r.status() == 201);
            Ok(())
        };
        let (w, c) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(60), watcher),
            create
        );
        c?;
        w??;
        single.push(started.elapsed());
    }
    single.sort();

    let ready_all = |want: usize, generation: i64| {
        let mut ready = std::collections::HashSet::new();
        move |o: &Value| {
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            if name.starts_with("svc-")
                && is_ready(o)
                && o["metadata"]["generation"].as_i64() == Some(generation)
            {
                ready.insert(name);
            }
            ready.len() >= want
        }
    };
    let rv = current_rv(&http, &url).await?;
    let started = Instant::now();
    let watcher = tokio::spawn({
        let (http, url, rv) = (http.clone(), url.clone(), rv.clone());
        let done = ready_all(services, 1);
        async move { watch_until(&http, &url, &rv, done).await }
    });
    apply_many(&http, &url, services, 0, "ghcr.io/knative/helloworld-go:v1").await?;
    tokio::time::timeout(Duration::from_secs(600), watcher).await???;
    let many = started.elapsed();

    for (generation, image) in [(2, "v2"), (3, "v3")] {
        let rv = current_rv(&http, &url).await?;
        let watcher = tokio::spawn({
            let (http, url) = (http.clone(), url.clone());
            let done = ready_all(services, generation);
            async move { watch_until(&http, &url, &rv, done).await }
        });
        apply_many(
            &http,
            &url,
            services,
            0,
            &format!("ghcr.io/knative/helloworld-go:{image}"),
        )
        .await?;
        tokio::time::timeout(Duration::from_secs(600), watcher).await???;
    }
    let rss = rss_kib(pid);

    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // Each new Service means: Configuration, Route, Revision created, and status written
    // on all four (at least 7 reconciles).
    println!("## Controllers, fake backend ({date})\n");
    println!("| measure | result |\n|---|---|");
    println!(
        "| apply → Ready=True, 1 Service (20 runs, one at a time) | p50 {} · p99 {} |",
        fmt(percentile(&single, 0.5)),
        fmt(percentile(&single, 0.99))
    );
    println!(
        "| apply → all Ready, {services} Services applied at once (16 clients) | {:.2} s ({:.0} Services/s) |",
        many.as_secs_f64(),
        services as f64 / many.as_secs_f64()
    );
    println!(
        "| reconcile throughput in that run (≥ 7 reconciles per Service) | ≥ {:.0} reconciles/s |",
        7.0 * services as f64 / many.as_secs_f64()
    );
    println!(
        "| server RSS with {services} Services × 3 Revisions | {:.1} MiB |",
        rss as f64 / 1024.0
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map_or("api", String::as_str);
    let services = args
        .iter()
        .position(|a| a == "--services")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(10_000), |s| s.parse())
        .context("--services takes a number")?;
    match scenario {
        "api" => api(services).await,
        "controllers" => {
            controllers(
                args.iter()
                    .position(|a| a == "--services")
                    .map_or(1000, |_| services),
            )
            .await
        }
        "dataplane" => {
            let secs = args
                .iter()
                .position(|a| a == "--seconds")
                .and_then(|i| args.get(i + 1))
                .map_or(Ok(10), |s| s.parse())
                .context("--seconds takes a number")?;
            dataplane::run(secs).await
        }
        "autoscaler" => autoscaler::run().await,
        "tls" => tls_cost::run().await,
        "runc" => runc::run().await,
        other => {
            bail!(
                "unknown scenario {other:?}; scenarios: api, controllers, dataplane, autoscaler, runc, tls"
            )
        }
    }
}
