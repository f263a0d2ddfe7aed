//! A replica's network: its own network namespace, wired by the standard CNI plugins
//! (Debian's `containernetworking-plugins`: `loopback`, and `bridge` with `host-local`
//! IP addresses), so every replica has its own IP on Swell's bridge and listens at its
//! `containerPort`, with outbound traffic masqueraded. Where Swell serves replicas on
//! other ports than the well-known ones, the replica's own namespace redirects the
//! gateway's well-known ports to them ([`Redirect`]). Detaching releases the address
//! and deletes the namespace; namespaces a crashed server left are found by name.
//! Plugins and `ip` run as async child processes: nothing here blocks a runtime thread.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Where Debian installs the CNI plugins.
pub const PLUGIN_DIR: &str = "/usr/lib/cni";

/// The replicas' subnet.
pub const SUBNET: &str = "10.86.0.0/16";
/// The host's address on the replicas' bridge (host-local's gateway: the subnet's
/// first address), where replicas reach the host.
pub const GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 86, 0, 1);

/// Why a replica's network could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A command or plugin failed.
    #[error("{what} failed: {message}")]
    Failed {
        /// What ran.
        what: String,
        /// What it said.
        message: String,
    },
    /// The plugin answered something that is not a CNI result with an address.
    #[error("the bridge plugin gave no usable address: {0}")]
    NoAddress(String),
}

/// Swell's bridge network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// The Linux bridge (`swell0`).
    pub bridge: String,
    /// The replicas' subnet.
    pub subnet: String,
    /// Where the CNI plugins are.
    pub plugin_dir: PathBuf,
    /// Where `host-local` keeps its leases.
    pub state_dir: PathBuf,
    /// The names of the namespaces this network creates start with this (`swell-`).
    pub prefix: String,
    /// Ports of the gateway each replica's connections are redirected from.
    pub redirects: Vec<Redirect>,
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A replica's packets to the gateway's `port` go to its port `to` instead: DNAT in
/// the replica's own network namespace, as kube-proxy sends a Service's port to its
/// endpoints. Swell uses it when another server on the machine holds the well-known
/// ports (53, 80) on the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// The protocol.
    pub protocol: Protocol,
    /// The port replicas connect to.
    pub port: u16,
    /// The port Swell serves on.
    pub to: u16,
}

/// The `iptables-restore` input that applies `redirects` to connections to `gateway`.
fn redirect_rules(gateway: std::net::Ipv4Addr, redirects: &[Redirect]) -> String {
    let mut rules = String::from("*nat\n");
    for r in redirects {
        let p = match r.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        rules.push_str(&format!(
            "-A OUTPUT -d {gateway}/32 -p {p} -m {p} --dport {} -j DNAT --to-destination {gateway}:{}\n",
            r.port, r.to
        ));
    }
    rules.push_str("COMMIT\n");
    rules
}

/// `tool` in the system directories, or as PATH finds it.
fn system_tool(tool: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(tool))
}

impl Network {
    /// The default network, keeping its state under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Network {
            bridge: "swell0".into(),
            subnet: SUBNET.into(),
            plugin_dir: PathBuf::from(PLUGIN_DIR),
            state_dir: state_dir.to_path_buf(),
            prefix: "swell-".into(),
            redirects: Vec::new(),
        }
    }

    /// Applies [`Network::redirects`] in namespace `name` (one `iptables-restore` run
    /// inside it).
    async fn redirect(&self, name: &str) -> Result<(), NetworkError> {
        if self.redirects.is_empty() {
            return Ok(());
        }
        let what = "iptables-restore in the replica's namespace".to_string();
        let failed = |message: String| NetworkError::Failed {
            what: what.clone(),
            message,
        };
        let netns = std::fs::File::open(netns_path(name)).map_err(|e| failed(e.to_string()))?;
        let rules = redirect_rules(GATEWAY, &self.redirects);
        // A thread of its own (not one of the runtime's) enters the namespace, the
        // others stay where they are, and ends once iptables-restore, started there, has.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let run = || {
                use std::io::Write;
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                let mut child = std::process::Command::new(system_tool("iptables-restore"))
                    .args(["--noflush", "--wait"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()?;
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(rules.as_bytes());
                }
                child.wait_with_output()
            };
            let _ = tx.send(run());
        });
        let out = rx
            .await
            .map_err(|_| failed("the thread running it panicked".into()))?
            .map_err(|e| failed(format!("{e} (is iptables installed?)")))?;
        if !out.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(())
    }

    fn bridge_config(&self) -> String {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "swell",
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.subnet}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": self.state_dir.join("ipam"),
            }
        })
        .to_string()
    }

    fn loopback_config() -> String {
        r#"{"cniVersion": "1.0.0", "name": "swell-lo", "type": "loopback"}"#.into()
    }

    /// Runs CNI plugin `plugin` with `command` for namespace `name`.
    async fn plugin(
        &self,
        plugin: &str,
        command: &str,
        name: &str,
        ifname: &str,
        config: &str,
    ) -> Result<String, NetworkError> {
        let what = format!("CNI {plugin} {command}");
        let mut child = Command::new(self.plugin_dir.join(plugin))
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", name)
            .env("CNI_NETNS", netns_path(name))
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.plugin_dir)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| NetworkError::Failed {
                what: what.clone(),
                message: format!(
                    "{e} (is containernetworking-plugins installed in {}?)",
                    self.plugin_dir.display()
                ),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(config.as_bytes()).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| NetworkError::Failed {
                what: what.clone(),
                message: e.to_string(),
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(NetworkError::Failed {
                what,
                message: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr))
                    .trim()
                    .into(),
            });
        }
        Ok(stdout)
    }

    /// Creates namespace `<prefix><id>` and wires it; returns where it is and the
    /// replica's address.
    pub async fn attach(&self, id: &str) -> Result<Attachment, NetworkError> {
        let name = format!("{}{id}", self.prefix);
        ip(&["netns", "add", &name]).await?;
        let wired = async {
            self.plugin("loopback", "ADD", &name, "lo", &Self::loopback_config())
                .await?;
            let result = self
                .plugin("bridge", "ADD", &name, "eth0", &self.bridge_config())
                .await?;
            let v: serde_json::Value = serde_json::from_str(&result)
                .map_err(|_| NetworkError::NoAddress(result.clone()))?;
            let ip = v["ips"][0]["address"]
                .as_str()
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse::<IpAddr>().ok())
                .ok_or(NetworkError::NoAddress(result))?;
            self.redirect(&name).await?;
            Ok(ip)
        };
        match wired.await {
            Ok(ip) => Ok(Attachment {
                netns: netns_path(&name),
                ip,
                name,
            }),
            Err(e) => {
                self.detach_name(&name).await;
                Err(e)
            }
        }
    }

    /// Releases the address and deletes the namespace (whatever is left of them).
    pub async fn detach(&self, a: &Attachment) {
        self.detach_name(&a.name).await;
    }

    async fn detach_name(&self, name: &str) {
        let config = self.bridge_config();
        if let Err(e) = self.plugin("bridge", "DEL", name, "eth0", &config).await {
            tracing::debug!(error = %e, netns = name, "releasing a replica's address");
        }
        let _ = self
            .plugin("loopback", "DEL", name, "lo", &Self::loopback_config())
            .await;
        if let Err(e) = ip(&["netns", "delete", name]).await {
            tracing::debug!(error = %e, netns = name, "deleting a replica's network namespace");
        }
    }

    /// Detaches every namespace of this network a previous server left (by name).
    pub async fn clean_leftovers(&self) -> usize {
        let Ok(entries) = std::fs::read_dir("/run/netns") else {
            return 0;
        };
        let mut n = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&self.prefix) {
                self.detach_name(&name).await;
                n += 1;
            }
        }
        n
    }
}

/// One replica's network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Its namespace's name (`<prefix><id>`).
    pub name: String,
    /// The namespace, for runc's config.
    pub netns: PathBuf,
    /// The replica's address on the bridge.
    pub ip: IpAddr,
}

fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

async fn ip(args: &[&str]) -> Result<(), NetworkError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| NetworkError::Failed {
            what: format!("ip {}", args.join(" ")),
            message: format!("{e} (is iproute2 installed?)"),
        })?;
    if !out.status.success() {
        return Err(NetworkError::Failed {
            what: format!("ip {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_dnat_rules_for_the_gateway() {
        let rules = redirect_rules(
            GATEWAY,
            &[
                Redirect {
                    protocol: Protocol::Udp,
                    port: 53,
                    to: 40000,
                },
                Redirect {
                    protocol: Protocol::Tcp,
                    port: 80,
                    to: 40001,
                },
            ],
        );
        assert_eq!(
            rules,
            "*nat\n\
             -A OUTPUT -d 10.86.0.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.86.0.1:40000\n\
             -A OUTPUT -d 10.86.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.86.0.1:40001\n\
             COMMIT\n"
        );
    }
}
