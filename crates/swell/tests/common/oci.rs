//! Real OCI tooling for tests: images built with `umoci` from Debian's static busybox
//! and from `swell-testapp`, and Debian's `docker-registry` on a free loopback port.

use std::path::{Path, PathBuf};
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

/// A Service whose container serves `text` with busybox httpd on 8080 (whatever
/// `PORT` says) from `image` (one of [`busybox_layout`]), with extra pod spec YAML.
/// The shell is the container's PID 1, so it traps SIGTERM itself.
pub fn busybox_web(name: &str, image: &str, text: &str, spec: &str) -> String {
    format!(
        r#"apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
spec:
  template:
    spec:
{spec}      containers:
      - image: {image}
        command: ["/bin/sh", "-c", "trap 'exit 0' TERM; mkdir -p /www && echo {text} > /www/index.html && busybox httpd -f -p 8080 -h /www & wait"]
"#
    )
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

/// Starts a registry anyone may use.
pub fn registry() -> Registry {
    start_registry(None)
}

/// Starts a registry that only `user` with `password` may use (htpasswd basic auth,
/// the hash made by apache2-utils' `htpasswd`).
pub fn private_registry(user: &str, password: &str) -> Registry {
    start_registry(Some((user, password)))
}

fn start_registry(login: Option<(&str, &str)>) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let auth = match login {
        None => String::new(),
        Some((user, password)) => {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd is installed (apache2-utils; .ci/run installs it)");
            assert!(out.status.success());
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            format!(
                "auth:\n  htpasswd:\n    realm: swell-test\n    path: {}\n",
                file.display()
            )
        }
    };
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
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{auth}",
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

/// The files the dynamic loader maps for `binary` (its interpreter and libraries), as
/// `ldd` lists them.
fn shared_libraries(binary: &str) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // `libc.so.6 => /lib/…/libc.so.6 (0x…)` or `/lib64/ld-linux….so.2 (0x…)`.
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// An OCI layout `T` holding `swell-testapp` and the shared libraries it loads, laid
/// out as ko lays out Knative's test images: one tag per name in `images`, each running
/// `/ko-app/<image>` (a link to the testapp, which picks its behaviour by that name) as
/// user 65532 in `/home/nonroot`, like Knative's `runtime` image.
pub fn testapp_layout(dir: &Path, images: &[&str]) {
    run("umoci", &["init", "--layout", "T"], dir);
    run("umoci", &["new", "--image", "T:base"], dir);
    run("umoci", &["unpack", "--image", "T:base", "testapp"], dir);
    let root = dir.join("testapp/rootfs");
    let app = super::apps::testapp();
    for lib in shared_libraries(&app) {
        let to = root.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &to).unwrap();
    }
    let ko = root.join("ko-app");
    std::fs::create_dir_all(&ko).unwrap();
    std::fs::copy(&app, ko.join("swell-testapp")).unwrap();
    for image in images {
        std::os::unix::fs::symlink("swell-testapp", ko.join(image)).unwrap();
    }
    let home = root.join("home/nonroot");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65532), Some(65532)).unwrap();
    run("umoci", &["repack", "--image", "T:base", "testapp"], dir);
    for image in images {
        let entrypoint = format!("/ko-app/{image}");
        run(
            "umoci",
            &[
                "config",
                "--image",
                "T:base",
                "--tag",
                image,
                "--config.entrypoint",
                &entrypoint,
                "--config.user",
                "65532",
                "--config.workingdir",
                "/home/nonroot",
            ],
            dir,
        );
    }
}

/// Pushes tag `tag` of the layout `layout` (under `dir`) to `reference` with skopeo.
pub fn push(dir: &Path, layout: &str, tag: &str, reference: &str) {
    let dest = format!("docker://{reference}");
    run(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{layout}:{tag}"),
            &dest,
        ],
        dir,
    );
}

/// Imports the OCI layout `layout` into the image store of the data directory `data`
/// as `name`, with `swell image import`, as a user would before starting a server there.
pub fn import(data: &Path, layout: &Path, name: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_swell"))
        .args(["image", "--data-dir"])
        .arg(data)
        .arg("import")
        .arg(layout)
        .args(["--name", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
