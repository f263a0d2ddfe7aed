//! Test harness: starts the real `swell` binary on a free loopback port with its own
//! data directory, and runs the real kubectl binaries against it.

#![allow(dead_code)]

pub mod apps;
pub mod oci;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long anything in these tests may take before it counts as hung.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The kubectl on PATH.
pub const KUBECTL: &str = "kubectl";
/// A versioned kubectl from the machine image's google-cloud-sdk.
pub fn versioned_kubectl(minor: u32) -> String {
    let path = format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: the machine image ships it"
    );
    path
}

/// What a test needs beyond cargo and the kubectl binaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Root: runc containers, network namespaces, replicas that change user.
    Root,
    /// Debian's `docker-registry` to pull from.
    Registry,
}

/// Whether this test can run here. As root, as in CI, every test runs, and a missing
/// package fails it with its name (`.ci/run` installs them all). As another user, a
/// test that needs root, or a registry that is not installed, says why on stderr and
/// is skipped.
pub fn can_run(needs: &[Needs]) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let missing: Vec<&str> = needs
        .iter()
        .filter_map(|need| match need {
            Needs::Root => Some("root"),
            Needs::Registry => (!on_path("docker-registry")).then_some("docker-registry"),
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!(
        "SKIPPED {}: needs {} (CI runs every test as root with the packages .ci/run installs)",
        std::thread::current().name().unwrap_or("this test"),
        missing.join(" and ")
    );
    false
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}

/// A running `swell server`, killed (SIGTERM, then waited for) on drop.
pub struct Server {
    pub child: Child,
    pub data_dir: PathBuf,
    pub url: String,
    pub addr: String,
    /// The ingress address (`127.0.0.1:PORT`).
    pub ingress: std::net::SocketAddr,
    /// The lines it printed after its banner's addresses.
    pub output: mpsc::Receiver<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server with a fresh data directory that serves the API only (no
    /// controller writes anything behind the test's back).
    pub fn start() -> Self {
        Self::start_with(&["--no-controllers"])
    }

    /// Starts a server with a fresh data directory and extra flags.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::start_in(dir.path(), "127.0.0.1:0", extra);
        s._dir = Some(dir);
        s
    }

    /// Starts a server on `data_dir` listening on `addr`, with extra flags.
    pub fn start_in(data_dir: &Path, addr: &str, extra: &[&str]) -> Self {
        Self::start_verb("server", data_dir, addr, extra)
    }

    /// Starts `swell VERB` (`server`, or `quickstart`, which prints the same banner).
    pub fn start_verb(verb: &str, data_dir: &Path, addr: &str, extra: &[&str]) -> Self {
        let log =
            std::fs::File::create(data_dir.join(format!("server-{}.log", std::process::id()))).ok();
        let mut child = Command::new(env!("CARGO_BIN_EXE_swell"))
            .args([verb, "--data-dir"])
            .arg(data_dir)
            .args(["--api-addr", addr])
            .args(if extra.contains(&"--http-addr") {
                &[][..]
            } else {
                &["--http-addr", "127.0.0.1:0"][..]
            })
            // Tests say which backend they need; the rest get the light one.
            .args(if extra.contains(&"--backend") {
                &[][..]
            } else {
                &["--backend", "process"][..]
            })
            .args(extra)
            .env("SWELL_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log.map_or(Stdio::null(), Stdio::from))
            .spawn()
            .expect("swell binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let url = loop {
            let line = rx
                .recv_timeout(PATIENCE)
                .expect("swell server prints its address");
            if let Some(url) = line.strip_prefix("Swell API server listening on ") {
                break url.trim().to_string();
            }
        };
        let addr = url.trim_start_matches("https://").to_string();
        let ingress = loop {
            let line = rx
                .recv_timeout(PATIENCE)
                .expect("swell server prints its ingress address");
            if let Some(a) = line.strip_prefix("Swell ingress listening on http://") {
                break a.trim().parse().expect("an address");
            }
        };
        Self {
            child,
            data_dir: data_dir.to_path_buf(),
            url,
            addr,
            ingress,
            output: rx,
            _dir: None,
        }
    }

    /// Runs a `swell` client command against this server: its kubeconfig, and its data
    /// directory for what is read from there (logs).
    pub fn swell(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_swell"))
            .args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .env("SWELL_DATA_DIR", &self.data_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// An HTTP client builder for the API: it trusts the server's CA and presents the
    /// admin's client certificate, as the server's kubeconfig does.
    pub fn api_http(&self) -> reqwest::ClientBuilder {
        let pki = self.data_dir.join("pki");
        let read = |f: &str| std::fs::read_to_string(pki.join(f)).unwrap();
        http_with(
            &read("ca.crt"),
            Some((&read("admin.crt"), &read("admin.key"))),
        )
    }

    /// GETs `path` on the API as the admin.
    pub async fn api_get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.api_http()
            .build()?
            .get(format!("{}{path}", self.url))
            .send()
            .await
    }

    /// curl's flags to reach the API as the admin (`--cacert`, `--cert`, `--key`).
    pub fn curl_api_flags(&self) -> Vec<String> {
        let pki = self.data_dir.join("pki");
        let f = |name: &str| pki.join(name).display().to_string();
        vec![
            "--cacert".into(),
            f("ca.crt"),
            "--cert".into(),
            f("admin.crt"),
            "--key".into(),
            f("admin.key"),
        ]
    }

    /// The ingress port, which public URLs carry.
    pub fn ingress_port(&self) -> u16 {
        self.ingress.port()
    }

    /// The kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns whether it
    /// exited successfully.
    pub fn stop(&mut self) -> bool {
        self.terminate()
            .expect("swell server did not stop after SIGTERM")
            .success()
    }

    /// Sends SIGTERM and waits up to `PATIENCE` for the exit status.
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A kubectl bound to this server, with its own discovery cache.
    pub fn kubectl(&self, binary: &str) -> Kubectl {
        Kubectl {
            binary: binary.to_string(),
            kubeconfig: self.kubeconfig(),
            cache: tempfile::tempdir().unwrap(),
        }
    }
}

impl Drop for Server {
    /// Stops the server as an operator would (SIGTERM), so it stops its replicas too;
    /// SIGKILL only if it does not exit in time. Killing it outright would leave the
    /// replicas of a data directory that is about to be deleted running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() || self.terminate().is_some() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kubectl binary with a kubeconfig and a private cache directory.
pub struct Kubectl {
    pub binary: String,
    pub kubeconfig: PathBuf,
    pub cache: tempfile::TempDir,
}

impl Kubectl {
    /// The command, with `--kubeconfig` and `--cache-dir` set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs kubectl to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    /// Runs kubectl and returns stdout, failing the test if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?} failed:\n{}{}",
            self.binary,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl expecting failure and returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{} {args:?} should have failed:\n{}",
            self.binary,
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Condition `type_` of `resource` (`revision/hello-00001`): its status, reason and
    /// message (empty while it has none, or while the object does not exist yet, as
    /// when a test waits for a Revision its Configuration has still to make).
    pub fn condition(&self, resource: &str, type_: &str) -> (String, String, String) {
        let c = format!("{{.status.conditions[?(@.type==\"{type_}\")]");
        let path = format!("jsonpath={c}.status}}|{c}.reason}}|{c}.message}}");
        let args = ["get", resource, "-o", &path];
        let got = self.run(&args);
        if !got.status.success() {
            let stderr = String::from_utf8_lossy(&got.stderr);
            assert!(
                stderr.contains("(NotFound)"),
                "{} {args:?} failed:\n{stderr}",
                self.binary
            );
            return Default::default();
        }
        let out = String::from_utf8(got.stdout).unwrap();
        let mut parts = out.splitn(3, '|').map(str::to_string);
        let mut next = || parts.next().unwrap_or_default();
        (next(), next(), next())
    }

    /// Turns on Knative feature flags (`config-features` keys set to `enabled`).
    pub fn enable_features(&self, flags: &[&str]) {
        let data: Vec<(&str, &str)> = flags.iter().map(|f| (*f, "enabled")).collect();
        self.configure("config-features", &data);
    }

    /// Sets keys of one of Knative's `config-*` ConfigMaps (`kubectl patch`).
    pub fn configure(&self, map: &str, data: &[(&str, &str)]) {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).into()))
            .collect();
        let patch = serde_json::json!({ "data": data }).to_string();
        self.ok(&[
            "patch",
            "configmap",
            map,
            "-n",
            "knative-serving",
            "--type=merge",
            "-p",
            &patch,
        ]);
    }

    /// Runs kubectl with `stdin` as standard input.
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = output_with_stdin(&mut self.command(args), stdin);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// An HTTP client builder. The workspace's reqwest has rustls without a built-in
/// crypto provider (oci-client's choice), so ring is installed first.
pub fn http() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// An HTTP client builder that trusts `ca_pem` alone and, given one, presents a client
/// certificate and key (PEM).
pub fn http_with(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::ClientBuilder {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => config
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => config.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder().tls_backend_preconfigured(config)
}

/// GETs `url` with a fresh client.
pub async fn get_url(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().build()?.get(url).send().await
}

/// Polls `f` until it returns `Some`, or panics naming `what` after [`PATIENCE`].
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes a manifest into a temporary file and returns its path (kept with the dir).
pub fn manifest(dir: &tempfile::TempDir, name: &str, yaml: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, yaml).unwrap();
    p.display().to_string()
}

/// A Knative Service running `image`, with extra `spec.template.spec` YAML (indented
/// six spaces) before `containers`, and extra container YAML (indented eight) after
/// `image`.
pub fn image_service(name: &str, image: &str, spec: &str, container: &str) -> String {
    format!(
        "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
spec:
  template:
    spec:
{spec}      containers:
      - image: {image}
{container}"
    )
}

/// A minimal Knative Service manifest.
pub fn service_yaml(name: &str, image: &str) -> String {
    format!(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers:\n        - image: {image}\n          env:\n            - name: TARGET\n              value: World\n"
    )
}

/// Runs `cmd` to completion with `stdin` as its standard input.
pub fn output_with_stdin(cmd: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
