//! The bundles Swell writes run under the real `runc`: an image of Debian's static
//! busybox, imported into the store, runs as the user, with the mounts, read-only paths,
//! devices and cgroup limits the runtime contract asks for, its supplementary groups, and
//! under containerd's default seccomp profile (`unshare` blocked). Needs root (CI runs as
//! root) and `runc` (`.ci/run` installs it).

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

use k8s_openapi::api::core::v1::{
    Container, PodSecurityContext, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::path::Path;
use std::process::{Command, Stdio};
use swell_runtime::ReplicaPolicy;
use swell_runtime::image::{Digest, ImageStore, import};
use swell_runtime::runc::bundle::{BundleInput, runtime_spec};

/// An OCI layout holding busybox as `/bin/busybox` and `/bin/sh`.
fn busybox_layout(dir: &Path) {
    let mut layer = tar::Builder::new(Vec::new());
    layer
        .append_path_with_name("/usr/bin/busybox", "bin/busybox")
        .expect("busybox-static is installed");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    layer.append_link(&mut h, "bin/sh", "busybox").unwrap();
    let layer = layer.into_inner().unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    let (l, lsize) = put(&layer);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/sh"], "Env": ["FROM_IMAGE=yes"]},
        "rootfs": {"type": "layers", "diff_ids": []}});
    let (c, csize) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": lsize}]});
    let (m, msize) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": msize}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

const SCRIPT: &str = r#"
echo "uid=$(id -u) gid=$(id -g)"
echo "port=$PORT image=$FROM_IMAGE"
echo "hostname=$(hostname)"
test -e /dev/console && echo console=yes || echo console=no
echo "dev=$(ls /dev | tr '\n' ' ')"
(echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo procsys=rw || echo procsys=ro
(touch /newfile) 2>/dev/null && echo root=rw || echo root=ro
touch /tmp/ok && echo tmp=rw
echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
echo "resolv=$(cat /etc/resolv.conf)"
echo "groups=$(id -G)"
echo "seccomp=$(grep '^Seccomp:' /proc/self/status | tr -d ' \t' | cut -d: -f2)"
busybox unshare true 2>/dev/null && echo unshare=ok || echo unshare=blocked
cat > /dev/null && echo stdin=eof
"#;

#[test]
fn a_busybox_bundle_runs_under_runc_as_the_contract_says() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED a_busybox_bundle_runs_under_runc_as_the_contract_says: needs root (CI runs every test as root)"
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    busybox_layout(&layout);
    let store = ImageStore::open(&t.path().join("store")).unwrap();
    let (_, digest) = import::import(&store, &layout, Some("busybox"))
        .unwrap()
        .remove(0);
    let rootfs = store.rootfs(&digest).unwrap();
    let config = store.config(&digest).unwrap();

    let bundle = t.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    let etc = ["resolv.conf", "hosts", "hostname"].map(|f| bundle.join(f));
    std::fs::write(&etc[0], "nameserver 192.0.2.53").unwrap();
    std::fs::write(&etc[1], "127.0.0.1 localhost").unwrap();
    std::fs::write(&etc[2], "hello-00001-1").unwrap();
    let container = Container {
        resources: Some(ResourceRequirements {
            limits: Some([("memory".to_string(), Quantity("64Mi".into()))].into()),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let id = format!("swell-test-{}", std::process::id());
    let spec = runtime_spec(&BundleInput {
        image: config.config().as_ref(),
        container: &container,
        command: None,
        args: Some(vec!["-c".into(), SCRIPT.into()]),
        env: &[("PORT".into(), "8080".into())],
        rootfs: &rootfs,
        hostname: "hello-00001-1",
        etc,
        netns: None,
        cgroups_path: format!("/{id}"),
        volumes: &[],
        pod_security: Some(&PodSecurityContext {
            supplemental_groups: Some(vec![4000]),
            ..PodSecurityContext::default()
        }),
        policy: ReplicaPolicy::default(),
    })
    .unwrap();
    spec.save(bundle.join("config.json")).unwrap();

    let state = t.path().join("runc-state");
    let out = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .expect("runc is installed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "runc failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "uid=1000 gid=1000",
        "port=8080 image=yes",
        "hostname=hello-00001-1",
        "console=no",
        "procsys=ro",
        "root=ro",
        "tmp=rw",
        "memory=67108864",
        "resolv=nameserver 192.0.2.53",
        "stdin=eof",
        "groups=1000 4000",
        "seccomp=2",
        "unshare=blocked",
    ] {
        assert!(
            stdout.lines().any(|l| l == want),
            "{want:?} missing from:\n{stdout}"
        );
    }
    let dev = stdout.lines().find(|l| l.starts_with("dev=")).unwrap();
    for node in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm",
    ] {
        assert!(
            dev.split_whitespace()
                .any(|d| d.trim_start_matches("dev=") == node),
            "{node} missing: {dev}"
        );
    }
}
