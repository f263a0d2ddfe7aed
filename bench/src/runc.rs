//! `bench/run runc`: the runc backend with an image of Debian's static busybox (its
//! httpd as the app): import and unpack time of the image, and scale-from-zero latency
//! (request sent to a Revision at zero replicas → first response byte: overlay, CNI
//! network, runc, readiness) over 50 cold starts. Needs root, runc, the CNI plugins and
//! busybox-static.

use super::autoscaler::first_requests;
use super::{fmt, percentile};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const COLD_STARTS: usize = 50;
const IMPORTS: usize = 10;

/// An OCI layout with busybox as `/bin/busybox` and `/bin/sh` (plain tar layer).
fn busybox_layout(dir: &Path) -> anyhow::Result<()> {
    let mut layer = tar::Builder::new(Vec::new());
    layer
        .append_path_with_name("/usr/bin/busybox", "bin/busybox")
        .context("busybox-static is needed: apt-get install -y busybox-static")?;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    layer.append_link(&mut h, "bin/sh", "busybox")?;
    let layer = layer.into_inner()?;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> anyhow::Result<(String, usize)> {
        let d = swell_runtime::image::Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes)?;
        Ok((d.to_string(), bytes.len()))
    };
    let (l, lsize) = put(&layer)?;
    let config = json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": []}});
    let (c, csize) = put(config.to_string().as_bytes())?;
    let manifest = json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": lsize}]});
    let (m, msize) = put(manifest.to_string().as_bytes())?;
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": msize}]});
    std::fs::write(dir.join("index.json"), index.to_string())?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
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

fn service(name: &str) -> Value {
    json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
           "metadata": {"name": name},
           "spec": {"template": {
               "metadata": {"annotations": {"autoscaling.knative.dev/initial-scale": "0"}},
               "spec": {"containers": [{"image": "busybox:bench", "command": ["/bin/sh", "-c",
                   "trap 'exit 0' TERM; mkdir -p /www && echo hi > /www/index.html && busybox httpd -f -p 8080 -h /www & wait"]}]}}}})
}

/// Runs the scenario.
pub async fn run() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the runc backend needs root");
    }
    let dir = tempfile::tempdir()?;
    let layout = dir.path().join("layout");
    busybox_layout(&layout)?;
    let mut imports = Vec::new();
    for i in 0..IMPORTS {
        imports.push(import(&dir.path().join(format!("import{i}")), &layout)?);
    }
    let data = dir.path().join("data");
    import(&data, &layout)?;
    let services: Vec<Value> = (0..COLD_STARTS)
        .map(|i| service(&format!("runc{i}")))
        .collect();
    let mut cold = first_requests("runc", &data, &services).await?;
    imports.sort();
    cold.sort();
    println!("| runc backend | n | p50 | p99 |");
    println!("|---|---|---|---|");
    println!(
        "| `swell image import` + unpack, busybox image ({} KiB) | {IMPORTS} | {} | {} |",
        std::fs::metadata("/usr/bin/busybox")?.len() / 1024,
        fmt(percentile(&imports, 0.5)),
        fmt(percentile(&imports, 0.99))
    );
    println!(
        "| request at zero replicas → first byte (overlay + CNI + runc + probe) | {} | {} | {} |",
        cold.len(),
        fmt(percentile(&cold, 0.5)),
        fmt(percentile(&cold, 0.99))
    );
    Ok(())
}
