//! Real OCI tooling for tests: images built with `umoci` from Debian's static busybox,
//! and Debian's `docker-registry` on a free loopback port.

use std::path::Path;
use std::process::Command;

/// Runs `cmd` in `dir`; it must succeed.
pub fn run(cmd: &str, args: &[&str], dir: &Path) {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is missing ({e}): .ci/run installs it"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OCI layout `L` (tag `latest`) holding Debian's static busybox as `/bin/busybox`
/// and `/bin/sh`, built with umoci.
pub fn busybox_layout(dir: &Path) {
    run("umoci", &["init", "--layout", "L"], dir);
    run("umoci", &["new", "--image", "L:latest"], dir);
    run(
        "umoci",
        &["unpack", "--rootless", "--image", "L:latest", "bundle"],
        dir,
    );
    let bin = dir.join("bundle/rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/usr/bin/busybox", bin.join("busybox")).expect("busybox-static is installed");
    std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
    run("umoci", &["repack", "--image", "L:latest", "bundle"], dir);
    run(
        "umoci",
        &[
            "config",
            "--image",
            "L:latest",
            "--config.entrypoint",
            "/bin/sh",
        ],
        dir,
    );
}

/// Debian's `docker-registry` on a free loopback port, stopped on drop.
pub struct Registry {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a registry.
pub fn registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker-registry is installed (.ci/run installs it)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "docker-registry did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Registry {
        child,
        addr,
        _dir: dir,
    }
}
