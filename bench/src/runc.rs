//! `bench/run runc`: the runc backend with two images — Debian's static busybox (its
//! httpd as the app), imported, and the testapp (`helloworld`) with its shared
//! libraries, pushed to Debian's `docker-registry` on loopback: import and pull (with
//! unpack) times, and scale-from-zero latency (request sent to a Revision at zero
//! replicas → first response byte: overlay, CNI network, runc, readiness) over 50 cold
//! starts each. Needs root, runc, the CNI plugins, busybox-static, skopeo and
//! docker-registry.

use super::Proc;
use super::autoscaler::{Wake, first_requests};
use super::{fmt, percentile};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const COLD_STARTS: usize = 50;
const IMPORTS: usize = 10;

/// An OCI layout (tag `latest`) of one plain tar layer holding `files` (host path →
/// path in the image) and `links` (path → target), with image configuration `config`.
fn layout(
    dir: &Path,
    files: &[(PathBuf, String)],
    links: &[(&str, &str)],
    config: Value,
) -> anyhow::Result<()> {
    let mut layer = tar::Builder::new(Vec::new());
    for (from, to) in files {
        // Whole contents, never a sparse entry (which image layers do not use).
        let bytes =
            std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(bytes.len() as u64);
        h.set_mode(0o755);
        layer.append_data(&mut h, to, &bytes[..])?;
    }
    for (path, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        layer.append_link(&mut h, path, target)?;
    }
    let layer = layer.into_inner()?;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> anyhow::Result<(String, usize)> {
        let d = swell_runtime::image::Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes)?;
        Ok((d.to_string(), bytes.len()))
    };
    let (l, lsize) = put(&layer)?;
    let config = json!({"architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": []}});
    let (c, csize) = put(config.to_string().as_bytes())?;
    let manifest = json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": lsize}]});
    let (m, msize) = put(manifest.to_string().as_bytes())?;
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": msize,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
    std::fs::write(dir.join("index.json"), index.to_string())?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}

/// Debian's static busybox as `/bin/busybox` and `/bin/sh`.
fn busybox_layout(dir: &Path) -> anyhow::Result<()> {
    if !Path::new("/usr/bin/busybox").exists() {
        bail!("busybox-static is needed: apt-get install -y busybox-static");
    }
    let files = [(PathBuf::from("/usr/bin/busybox"), "bin/busybox".to_string())];
    layout(dir, &files, &[("bin/sh", "busybox")], json!({}))
}

/// The release testapp and the shared libraries `ldd` says it loads, as Knative's
/// `helloworld` image: `/ko-app/helloworld` (a link to the testapp), user 65532.
fn testapp_layout(dir: &Path) -> anyhow::Result<u64> {
    let app = std::env::current_exe()?.with_file_name("swell-testapp");
    let ldd = Command::new("ldd").arg(&app).output()?;
    let mut files = vec![(app.clone(), "ko-app/swell-testapp".to_string())];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line
            .split("=>")
            .last()
            .and_then(|p| p.split_whitespace().next());
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push((PathBuf::from(p), p.trim_start_matches('/').to_string()));
        }
    }
    let size = files
        .iter()
        .map(|(f, _)| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    layout(
        dir,
        &files,
        &[("ko-app/helloworld", "swell-testapp")],
        json!({"Entrypoint": ["/ko-app/helloworld"], "User": "65532"}),
    )?;
    Ok(size)
}

/// Debian's `docker-registry` on a free loopback port, stopped on drop.
struct Registry {
    _proc: Proc,
    addr: String,
    _dir: tempfile::TempDir,
}

fn registry() -> anyhow::Result<Registry> {
    let dir = tempfile::tempdir()?;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("docker-registry is needed: apt-get install -y docker-registry")?;
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            bail!("docker-registry did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Registry {
        _proc: proc,
        addr,
        _dir: dir,
    })
}

/// `swell image pull` into a fresh data directory: fetch, verify, unpack.
fn pull(data: &Path, reference: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = Command::new(std::env::current_exe()?.with_file_name("swell"))
        .args(["image", "--data-dir"])
        .arg(data)
        .args(["pull", reference])
        .output()?;
    if !out.status.success() {
        bail!("pull failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(start.elapsed())
}

fn import(data: &Path, layout: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = Command::new(std::env::current_exe()?.with_file_name("swell"))
        .args(["image", "--data-dir"])
        .arg(data)
        .arg("import")
        .arg(layout)
        .args(["--name", "busybox:bench"])
        .output()?;
    if !out.status.success() {
        bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(start.elapsed())
}

fn service(name: &str, container: Value) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
           "metadata": {"name": name},
           "spec": {"template": {
               "metadata": {"annotations": {"autoscaling.knative.dev/initial-scale": "0"}},
               "spec": {"containers": [container]}}}})
}

fn busybox_web() -> Value {
    json!({"image": "busybox:bench", "command": ["/bin/sh", "-c",
        "trap 'exit 0' TERM; mkdir -p /www && echo hi > /www/index.html && busybox httpd -f -p 8080 -h /www & wait"]})
}

/// Runs the scenario.
pub async fn run() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the runc backend needs root");
    }
    let dir = tempfile::tempdir()?;
    let busybox = dir.path().join("busybox");
    busybox_layout(&busybox)?;
    let mut imports = Vec::new();
    for i in 0..IMPORTS {
        imports.push(import(&dir.path().join(format!("import{i}")), &busybox)?);
    }

    let testapp = dir.path().join("testapp");
    let testapp_size = testapp_layout(&testapp)?;
    let reg = registry()?;
    let reference = format!("{}/testapp:bench", reg.addr);
    let pushed = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", testapp.display()))
        .arg(format!("docker://{reference}"))
        .output()
        .context("skopeo is needed: apt-get install -y skopeo")?;
    if !pushed.status.success() {
        bail!("push failed: {}", String::from_utf8_lossy(&pushed.stderr));
    }
    let mut pulls = Vec::new();
    for i in 0..IMPORTS {
        pulls.push(pull(&dir.path().join(format!("pull{i}")), &reference)?);
    }

    let data = dir.path().join("data");
    import(&data, &busybox)?;
    let services: Vec<Value> = (0..COLD_STARTS)
        .map(|i| service(&format!("busybox{i}"), busybox_web()))
        .chain(
            (0..COLD_STARTS).map(|i| service(&format!("testapp{i}"), json!({"image": reference}))),
        )
        .collect();
    let cold = first_requests("runc", &data, &services, Wake::OneByOne).await?;
    let (mut cold_busybox, mut cold_testapp) =
        (cold[..COLD_STARTS].to_vec(), cold[COLD_STARTS..].to_vec());
    for v in [
        &mut imports,
        &mut pulls,
        &mut cold_busybox,
        &mut cold_testapp,
    ] {
        v.sort();
    }
    let row = |what: &str, v: &[Duration]| {
        println!(
            "| {what} | {} | {} | {} |",
            v.len(),
            fmt(percentile(v, 0.5)),
            fmt(percentile(v, 0.99))
        );
    };
    println!("| runc backend | n | p50 | p99 |");
    println!("|---|---|---|---|");
    row(
        &format!(
            "`swell image import` + unpack, busybox image ({} KiB)",
            std::fs::metadata("/usr/bin/busybox")?.len() / 1024
        ),
        &imports,
    );
    row(
        &format!(
            "`swell image pull` + unpack from docker-registry on loopback, testapp image ({} MiB)",
            testapp_size / (1024 * 1024)
        ),
        &pulls,
    );
    row(
        "busybox httpd: request at zero replicas → first byte (overlay + CNI + runc + probe)",
        &cold_busybox,
    );
    row(
        "testapp image: request at zero replicas → first byte (overlay + CNI + runc + probe)",
        &cold_testapp,
    );
    Ok(())
}
