//! `bench/run dataplane`: requests/s and latency through Swell's ingress against the
//! same `swell-testapp` replica reached directly, through nginx and through HAProxy
//! (wrk, loopback, concurrency 1/16/128), and Swell's memory per idle Revision.

use super::{Proc, admin_http, rss_kib};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOST: &str = "hello.default.localhost";

fn need(tool: &str) -> anyhow::Result<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()?
        .success();
    if !found {
        bail!("{tool} is missing: apt-get install -y wrk nginx haproxy");
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One wrk run: (requests/s, p50 µs, p99 µs).
fn wrk(url: &str, conns: usize, secs: u64) -> anyhow::Result<(f64, f64, f64)> {
    let threads = conns.min(2);
    let out = Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            "-H",
            &format!("Host: {HOST}"),
            url,
        ])
        .output()
        .context("wrk runs")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    let pct = |p: &str| -> anyhow::Result<f64> {
        let v = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .with_context(|| format!("no {p} in wrk output:\n{text}"))?
            .trim();
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse()?;
        Ok(match unit {
            "us" => n,
            "ms" => n * 1e3,
            "s" => n * 1e6,
            _ => bail!("unknown unit {unit:?}"),
        })
    };
    let errors = text.contains("Non-2xx") || text.contains("Socket errors");
    if errors {
        eprintln!("warning: wrk saw errors for {url} c={conns}:\n{text}");
    }
    Ok((rps, pct("50%")?, pct("99%")?))
}

fn service(name: &str, testapp: &str) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
           "metadata": {"name": name},
           "spec": {"template": {"spec": {"containers": [
               {"image": "testapp", "command": [testapp, "helloworld"]}]}}}})
}

pub(crate) async fn wait_ready(
    http: &reqwest::Client,
    api: &str,
    names: &[String],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    for n in names {
        loop {
            let svc: Value = http
                .get(format!(
                    "{api}/apis/serving.knative.dev/v1/namespaces/default/services/{n}"
                ))
                .send()
                .await?
                .json()
                .await?;
            if super::is_ready(&svc) {
                break;
            }
            if Instant::now() > deadline {
                bail!("{n} never became Ready: {svc}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// The replica addresses the server logged (JSON logs).
fn replica_addrs(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "replica ready")
        .filter_map(|v| v["fields"]["addr"].as_str().map(str::to_string))
        .collect()
}

/// Runs the scenario.
pub async fn run(secs: u64) -> anyhow::Result<()> {
    for t in ["wrk", "nginx", "haproxy"] {
        need(t)?;
    }
    let exe = std::env::current_exe()?;
    let swell = exe.with_file_name("swell");
    let testapp = exe.with_file_name("swell-testapp");
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("server.log");
    let ingress_port = free_port()?;
    let mut child = Command::new(&swell)
        .args([
            "server",
            "--api-addr",
            "127.0.0.1:0",
            "--backend",
            "process",
        ])
        .args([
            "--http-addr",
            &format!("127.0.0.1:{ingress_port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("SWELL_LOG", "info")
        .env("SWELL_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("cannot start swell (run bench/run, which builds it)")?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.stdout.take().context("no stdout")?,
    ));
    let api = loop {
        let line = lines.next().context("server exited")??;
        if let Some(u) = line.strip_prefix("Swell API server listening on ") {
            break u.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let server_pid = child.id();
    let _server = Proc(child);
    let http = admin_http(dir.path())?;
    let services = format!("{api}/apis/serving.knative.dev/v1/namespaces/default/services");
    let rss_empty = rss_kib(server_pid);
    http.post(&services)
        .json(&service("hello", &testapp.display().to_string()))
        .send()
        .await?
        .error_for_status()?;
    wait_ready(&http, &api, &["hello".into()]).await?;
    let app = replica_addrs(&log)
        .first()
        .cloned()
        .context("the server logged no ready replica")?;

    let nginx_port = free_port()?;
    let haproxy_port = free_port()?;
    let ndir = dir.path().join("nginx");
    std::fs::create_dir_all(&ndir)?;
    let nconf = ndir.join("nginx.conf");
    std::fs::File::create(&nconf)?.write_all(
        format!(
            "worker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off;\n upstream app {{ server {app}; keepalive 256; }}\n\
              server {{ listen 127.0.0.1:{nginx_port};\n  location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host; }} }} }}\n",
            d = ndir.display()
        )
        .as_bytes(),
    )?;
    let _nginx = Proc(
        Command::new("nginx")
            .args(["-p"])
            .arg(&ndir)
            .arg("-c")
            .arg(&nconf)
            .args(["-g", "daemon off;"])
            .stderr(Stdio::null())
            .spawn()?,
    );
    let hconf = dir.path().join("haproxy.cfg");
    std::fs::write(
        &hconf,
        format!(
            "global\n  nbthread 2\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend f\n  bind 127.0.0.1:{haproxy_port}\n  default_backend app\n\
             backend app\n  http-reuse always\n  server s1 {app}\n"
        ),
    )?;
    let _haproxy = Proc(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&hconf)
            .stderr(Stdio::null())
            .spawn()?,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let targets = [
        ("testapp directly", format!("http://{app}/")),
        ("through Swell", format!("http://127.0.0.1:{ingress_port}/")),
        ("through nginx", format!("http://127.0.0.1:{nginx_port}/")),
        (
            "through HAProxy",
            format!("http://127.0.0.1:{haproxy_port}/"),
        ),
    ];
    println!("| path | conns | requests/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    let mut p50_at_1 = Vec::new();
    for conns in [1usize, 16, 128] {
        for (name, url) in &targets {
            let (rps, p50, p99) = wrk(url, conns, secs)?;
            if conns == 1 {
                p50_at_1.push((*name, p50));
            }
            println!("| {name} | {conns} | {rps:.0} | {p50:.0} µs | {p99:.0} µs |");
        }
    }
    if let (Some((_, direct)), Some((_, swell))) = (p50_at_1.first(), p50_at_1.get(1)) {
        println!(
            "\nSwell's added p50 at 1 connection: {:.0} µs",
            swell - direct
        );
    }

    // Memory: the server with one Revision, then with 21 (each one idle replica).
    let rss_one = rss_kib(server_pid);
    let names: Vec<String> = (1..=20).map(|i| format!("idle-{i}")).collect();
    for n in &names {
        http.post(&services)
            .json(&service(n, &testapp.display().to_string()))
            .send()
            .await?
            .error_for_status()?;
    }
    wait_ready(&http, &api, &names).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_many = rss_kib(server_pid);
    let replica_rss: Vec<u64> = std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c).contains(&*testapp.display().to_string())
            })
        })
        .map(rss_kib)
        .collect();
    println!("\n| memory | value |\n|---|---|");
    println!(
        "| swell server, no Revision | {:.1} MiB |",
        rss_empty as f64 / 1024.0
    );
    println!(
        "| swell server, 1 Revision after the load runs | {:.1} MiB |",
        rss_one as f64 / 1024.0
    );
    println!(
        "| swell server per extra idle Revision (20 added, 1 replica each) | {:.0} KiB |",
        (rss_many.saturating_sub(rss_one)) as f64 / 20.0
    );
    if !replica_rss.is_empty() {
        println!(
            "| one replica (swell-testapp helloworld process), average of {} | {:.1} MiB |",
            replica_rss.len(),
            replica_rss.iter().sum::<u64>() as f64 / replica_rss.len() as f64 / 1024.0
        );
    }
    Ok(())
}
