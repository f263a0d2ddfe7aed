//! Readiness and liveness probes against a local replica: `httpGet`, `tcpSocket` and
//! `exec`, with Knative's defaults (a TCP probe on the port when none is given).

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How to reach and run one replica's probes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The replica's address (loopback for local processes).
    pub host: std::net::IpAddr,
    /// The replica's actual port.
    pub port: u16,
    /// The container port the probes were written against.
    pub container_port: u16,
    /// The container's port name (probes may name it).
    pub port_name: Option<String>,
    /// Environment for exec probes.
    pub env: Vec<(String, String)>,
    /// Working directory for exec probes.
    pub cwd: Option<PathBuf>,
    /// Runs exec probes inside the replica (`runc exec …`); empty for local processes.
    pub exec_prefix: Vec<String>,
}

impl Target {
    /// The local port a probe's `port` means.
    fn port(&self, p: Option<&IntOrString>) -> u16 {
        match p {
            None | Some(IntOrString::Int(0)) => self.port,
            Some(IntOrString::Int(n)) if *n == i32::from(self.container_port) => self.port,
            Some(IntOrString::Int(n)) => u16::try_from(*n).unwrap_or(self.port),
            Some(IntOrString::String(name)) => {
                if self.port_name.as_deref() == Some(name.as_str()) {
                    self.port
                } else {
                    name.parse().unwrap_or(self.port)
                }
            }
        }
    }
}

/// Runs one attempt of `probe` (or the default TCP probe) within `timeout`.
pub async fn check(
    probe: Option<&Probe>,
    target: &Target,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        let Some(p) = probe else {
            return tcp(target.host, target.port).await;
        };
        if let Some(h) = &p.http_get {
            let path = h.path.as_deref().unwrap_or("/");
            let headers: Vec<(String, String)> = h
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            if h.scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"))
            {
                return Err("HTTPS probes are not supported by the process backend".into());
            }
            http_get(target.host, target.port(Some(&h.port)), path, &headers).await
        } else if let Some(t) = &p.tcp_socket {
            tcp(target.host, target.port(Some(&t.port))).await
        } else if let Some(e) = &p.exec {
            exec(e.command.as_deref().unwrap_or_default(), target).await
        } else if p.grpc.is_some() {
            Err("gRPC probes are not supported by the process backend".into())
        } else {
            tcp(target.host, target.port).await
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("probe timed out after {timeout:?}")),
    }
}

async fn tcp(host: std::net::IpAddr, port: u16) -> Result<(), String> {
    tokio::net::TcpStream::connect((host, port))
        .await
        .map(drop)
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
}

/// GET with the kubelet's User-Agent; 200–399 is success.
async fn http_get(
    host: std::net::IpAddr,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n");
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        if !k.contains(['\r', '\n']) && !v.contains(['\r', '\n']) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 32];
    let mut n = 0;
    while n < 12 {
        let got = s.read(&mut head[n..]).await.map_err(|e| e.to_string())?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed HTTP response from port {port}"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

async fn exec(command: &[String], target: &Target) -> Result<(), String> {
    if command.is_empty() {
        return Err("exec probe has no command".into());
    }
    let argv: Vec<&String> = target.exec_prefix.iter().chain(command).collect();
    let (program, args) = (argv[0], &argv[1..]);
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .env("PORT", target.port.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(d) = target
        .cwd
        .as_ref()
        .filter(|_| target.exec_prefix.is_empty())
    {
        cmd.current_dir(d);
    }
    let status = cmd
        .status()
        .await
        .map_err(|e| format!("exec probe {program:?} cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("exec probe {program:?} failed: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16) -> Target {
        Target {
            host: [127, 0, 0, 1].into(),
            port,
            container_port: 8080,
            port_name: Some("http1".into()),
            env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
            cwd: None,
            exec_prefix: Vec::new(),
        }
    }

    #[test]
    fn probe_ports_map_to_the_replica() {
        let t = target(40000);
        assert_eq!(t.port(None), 40000);
        assert_eq!(t.port(Some(&IntOrString::Int(0))), 40000);
        assert_eq!(t.port(Some(&IntOrString::Int(8080))), 40000);
        assert_eq!(t.port(Some(&IntOrString::String("http1".into()))), 40000);
        assert_eq!(t.port(Some(&IntOrString::Int(9000))), 9000);
    }

    #[tokio::test]
    async fn tcp_probe_needs_a_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(
            check(None, &target(port), Duration::from_secs(1))
                .await
                .is_ok()
        );
        drop(l);
        assert!(
            check(None, &target(port), Duration::from_secs(1))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn exec_probe_uses_the_exit_status() {
        let probe = |cmd: &str| Probe {
            exec: Some(k8s_openapi::api::core::v1::ExecAction {
                command: Some(vec!["sh".into(), "-c".into(), cmd.into()]),
            }),
            ..Probe::default()
        };
        let t = target(1);
        assert!(
            check(Some(&probe("test $PORT = 1")), &t, Duration::from_secs(5))
                .await
                .is_ok()
        );
        assert!(
            check(Some(&probe("exit 3")), &t, Duration::from_secs(5))
                .await
                .is_err()
        );
    }
}
