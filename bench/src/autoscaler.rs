//! `bench/run autoscaler`: scale-from-zero latency through Swell (request sent to a
//! Revision at zero replicas → first response byte) against the app's own start-up
//! time (process spawned → first response byte), over 50 cold starts each with the
//! process backend; the mass wake-up (100 Services of a Python app at zero, each sent
//! one request at the same moment, against the same 100 apps started directly at
//! once); and the KPA's cost per tick for 10,000 Revisions.

use super::{Proc, admin_http, fmt, percentile};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use swell_api::annotations::Autoscaling;
use swell_api::config;
use swell_autoscaler::{Kpa, resolve, spec::scaler_spec};

const COLD_STARTS: usize = 50;
/// Services woken at once in the mass wake-up.
const WAKE_UPS: usize = 100;

/// A Python HTTP server answering 200 on `$PORT`: an app whose own start-up (the
/// interpreter) costs tens of milliseconds of CPU, as most real apps' does.
const PYTHON_APP: &str = r#"
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')
    def log_message(self, *args):
        pass
http.server.HTTPServer(('', int(os.environ['PORT'])), H).serve_forever()
"#;

/// Debian's Python, not a version manager's shim in front of it.
fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}
const REVISIONS: usize = 10_000;

/// One HTTP/1.1 GET on a new connection; the time until the first response byte.
pub(crate) fn first_byte(addr: &str, host: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut byte = [0u8; 1];
    s.read_exact(&mut byte)?;
    let took = start.elapsed();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)?;
    rest.insert(0, byte[0]);
    if !rest.starts_with(b"HTTP/1.1 200") {
        bail!(
            "{host}: {}",
            String::from_utf8_lossy(&rest[..rest.len().min(200)])
        );
    }
    Ok(took)
}

/// The app's own start-up: spawn `argv` on a free port and poll (every `period`) until
/// it answers; the time from spawn to the first response byte.
fn app_start(argv: &[String], period: Duration) -> anyhow::Result<Duration> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let _app = Proc(
        Command::new(&argv[0])
            .args(&argv[1..])
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    loop {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            write!(s, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut byte = [0u8; 1];
            if s.read_exact(&mut byte).is_ok() {
                return Ok(start.elapsed());
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("{argv:?} did not answer within 60 s");
        }
        std::thread::sleep(period);
    }
}

/// A Service running `command` whose Revision starts with no replica.
fn service(name: &str, command: &[String]) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
           "metadata": {"name": name},
           "spec": {"template": {
               "metadata": {"annotations": {"autoscaling.knative.dev/initial-scale": "0"}},
               "spec": {"containers": [{"image": "app", "command": command}]}}}})
}

fn summary(name: &str, mut d: Vec<Duration>) {
    d.sort();
    println!(
        "| {name} | {} | {} | {} |",
        d.len(),
        fmt(percentile(&d, 0.5)),
        fmt(percentile(&d, 0.99))
    );
}

/// How the first requests are sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// One after the other, each on its own.
    OneByOne,
    /// All at the same moment.
    AllAtOnce,
}

/// Starts `swell server --backend <backend>` on `data` with Revisions allowed to start
/// at zero, creates `services` (their Revisions start with no replica), and returns the
/// time to the first response byte of one request to each: a cold start each.
pub(crate) async fn first_requests(
    backend: &str,
    data: &std::path::Path,
    services: &[Value],
    wake: Wake,
) -> anyhow::Result<Vec<Duration>> {
    let exe = std::env::current_exe()?;
    let ingress = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut child = Command::new(exe.with_file_name("swell"))
        .args(["server", "--api-addr", "127.0.0.1:0", "--backend", backend])
        .args(["--http-addr", &ingress.to_string(), "--data-dir"])
        .arg(data)
        .env("SWELL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start swell (run bench/run, which builds it)")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let api = loop {
        let line = lines.next().context("server exited")??;
        if let Some(u) = line.strip_prefix("Swell API server listening on ") {
            break u.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let _server = Proc(child);
    let http = admin_http(data)?;
    http.patch(format!(
        "{api}/api/v1/namespaces/knative-serving/configmaps/config-autoscaler"
    ))
    .header("content-type", "application/merge-patch+json")
    .body(r#"{"data":{"allow-zero-initial-scale":"true"}}"#)
    .send()
    .await?
    .error_for_status()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = format!("{api}/apis/serving.knative.dev/v1/namespaces/default/services");
    let mut names = Vec::new();
    for s in services {
        http.post(&url).json(s).send().await?.error_for_status()?;
        names.push(
            s["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    super::dataplane::wait_ready(&http, &api, &names).await?;
    let request = |n: &String| {
        let (addr, host) = (ingress.to_string(), format!("{n}.default.localhost"));
        std::thread::spawn(move || first_byte(&addr, &host))
    };
    let mut times = Vec::new();
    match wake {
        Wake::OneByOne => {
            for n in &names {
                times.push(join(request(n))?);
            }
        }
        Wake::AllAtOnce => {
            let sent: Vec<_> = names.iter().map(request).collect();
            for s in sent {
                times.push(join(s)?);
            }
        }
    }
    Ok(times)
}

fn join(t: std::thread::JoinHandle<anyhow::Result<Duration>>) -> anyhow::Result<Duration> {
    t.join()
        .map_err(|_| anyhow::anyhow!("a request thread panicked"))?
}

async fn cold_starts() -> anyhow::Result<()> {
    let testapp = std::env::current_exe()?.with_file_name("swell-testapp");
    let argv = vec![testapp.display().to_string(), "helloworld".to_string()];
    let dir = tempfile::tempdir()?;
    let services: Vec<Value> = (0..COLD_STARTS)
        .map(|i| service(&format!("cold{i}"), &argv))
        .collect();
    let through_swell = first_requests("process", dir.path(), &services, Wake::OneByOne).await?;
    let mut own = Vec::new();
    for _ in 0..COLD_STARTS {
        let argv = argv.clone();
        own.push(
            tokio::task::spawn_blocking(move || app_start(&argv, Duration::from_micros(200)))
                .await??,
        );
    }
    println!("| cold start | n | p50 | p99 |");
    println!("|---|---|---|---|");
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        percentile(&v, 0.5)
    };
    let added = median(&through_swell).saturating_sub(median(&own));
    summary(
        "request at zero replicas → first byte, through Swell",
        through_swell,
    );
    summary("testapp spawned → first byte (its own start-up)", own);
    println!("\nSwell's added median cold-start latency: {}", fmt(added));
    Ok(())
}

/// 100 Services of a Python app at zero, each sent one request at the same moment,
/// against the same 100 apps started directly at the same moment, in one run.
async fn mass_wake_up() -> anyhow::Result<()> {
    let argv = vec![
        python().to_string(),
        "-c".to_string(),
        PYTHON_APP.to_string(),
    ];
    let dir = tempfile::tempdir()?;
    let services: Vec<Value> = (0..WAKE_UPS)
        .map(|i| service(&format!("wake{i}"), &argv))
        .collect();
    let through_swell = first_requests("process", dir.path(), &services, Wake::AllAtOnce).await?;
    let started: Vec<_> = (0..WAKE_UPS)
        .map(|_| {
            let argv = argv.clone();
            // Polled as often as Swell probes a starting replica after its first
            // 100 ms: a hundred pollers at 0.2 ms would take the machine themselves.
            std::thread::spawn(move || app_start(&argv, Duration::from_millis(5)))
        })
        .collect();
    let mut own = Vec::new();
    for s in started {
        own.push(join(s)?);
    }
    let (mut swell, mut direct) = (through_swell, own);
    swell.sort();
    direct.sort();
    println!("\n| mass wake-up ({WAKE_UPS} at once, Python app) | p50 | p95 | max |");
    println!("|---|---|---|---|");
    for (name, d) in [
        (
            "request at zero replicas → first byte, through Swell",
            &swell,
        ),
        ("app spawned → first byte, started directly", &direct),
    ] {
        println!(
            "| {name} | {} | {} | {} |",
            fmt(percentile(d, 0.5)),
            fmt(percentile(d, 0.95)),
            fmt(percentile(d, 1.0))
        );
    }
    let p95 = |d: &[Duration]| percentile(d, 0.95).as_secs_f64();
    println!(
        "\nSwell's p95 against the apps' own: {:.2}x",
        p95(&swell) / p95(&direct).max(f64::EPSILON)
    );
    Ok(())
}

fn decider_cost() -> anyhow::Result<()> {
    let cfg = config::Autoscaler::default();
    let ann = Autoscaling::default();
    let spec = resolve(&cfg, &ann, 0, true)?;
    let limits = scaler_spec(&cfg, &ann, true, Duration::from_secs(600));
    let mut kpas: Vec<Kpa> = (0..REVISIONS)
        .map(|_| Kpa::new(spec.clone(), limits.clone(), 0.0))
        .collect();
    // A minute of history, varied load.
    for s in 0..60u32 {
        for (i, k) in kpas.iter_mut().enumerate() {
            k.record(f64::from(s), f64::from((i as u32 + s) % 300), 0.0);
        }
    }
    let mut per_tick = Vec::new();
    for t in 0..30u32 {
        let now = 60.0 + 2.0 * f64::from(t);
        let start = Instant::now();
        for (i, k) in kpas.iter_mut().enumerate() {
            k.record(now, f64::from((i as u32 + t) % 300), 0.0);
            std::hint::black_box(k.tick(now, 3));
        }
        per_tick.push(start.elapsed());
    }
    println!(
        "\n| KPA tick (record + decide + PodAutoscaler) | revisions | p50 per tick | p99 per tick | per revision (p50) |"
    );
    println!("|---|---|---|---|---|");
    per_tick.sort();
    let p50 = percentile(&per_tick, 0.5);
    println!(
        "| all Revisions, one tick | {REVISIONS} | {} | {} | {:.0} ns |",
        fmt(p50),
        fmt(percentile(&per_tick, 0.99)),
        p50.as_nanos() as f64 / REVISIONS as f64
    );
    Ok(())
}

/// Runs the scenario.
pub async fn run() -> anyhow::Result<()> {
    cold_starts().await?;
    mass_wake_up().await?;
    decider_cost()
}
