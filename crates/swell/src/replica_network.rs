//! Where replicas reach other Services, as pods do on Kubernetes: a DNS server that
//! answers Services' names (`NAME.NS.svc.cluster.local`, public hosts) with an address
//! of this host, and ingress listeners there on port 80 and on the public URLs' port.
//!
//! - runc: replicas reach the host at their bridge's gateway (10.86.0.1). Swell serves
//!   DNS on its port 53 and the ingress on its port 80 (bound before the bridge exists,
//!   as the API is). When another server on the machine holds those ports, Swell takes
//!   free ones and each replica's network namespace redirects 53 and 80 to them.
//!   Requests from the replicas' network may reach cluster-local hosts.
//! - process (as root): replicas share the host's network, so Swell takes a loopback
//!   address of its own (127.86.0.1, else the next free one) with DNS on port 53 and
//!   the ingress on port 80; each replica's mount namespace binds its own
//!   `/etc/resolv.conf` naming it. Not as root, replicas keep the host's resolver and
//!   only public URLs resolve (say so at start).

use crate::server::BackendKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use swell_dataplane::dns::{Dns, Zone};
use swell_dataplane::ingress::Peers;
use swell_runtime::runc::etc::ClusterDns;
use swell_runtime::runc::network::{GATEWAY, Protocol, Redirect};
use tokio_util::sync::CancellationToken;

/// Kubernetes' default cluster domain, which Knative's cluster-local URLs use.
const CLUSTER_DOMAIN: &str = "cluster.local";
/// The process backend's first choice of loopback address.
const LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 86, 0, 1);
/// How many loopback addresses after it are tried.
const LOOPBACK_TRIES: u8 = 64;

/// What the server hands on: the ingress listeners replicas reach, the DNS the
/// backends name in replicas' `resolv.conf`, the redirects runc applies, and the DNS
/// server's task.
#[derive(Debug, Default)]
pub struct ReplicaNetwork {
    /// Ingress listeners for replicas, with who their peers are.
    pub listeners: Vec<(std::net::TcpListener, Peers)>,
    /// The cluster's DNS.
    pub dns: Option<ClusterDns>,
    /// Ports each runc replica's namespace redirects.
    pub redirects: Vec<Redirect>,
    /// The DNS server, serving until the server's shutdown.
    pub task: Option<tokio::task::JoinHandle<()>>,
}

/// The sockets at one address: DNS (UDP and TCP) and the ingress listeners.
struct Bound {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    http: Vec<std::net::TcpListener>,
}

fn socket(
    addr: SocketAddr,
    kind: nix::sys::socket::SockType,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{self as s, AddressFamily, SockFlag, sockopt};
    let SocketAddr::V4(v4) = addr else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let fd = s::socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None)?;
    // The replicas' bridge, and so the gateway's address, appears with the first one.
    s::setsockopt(&fd, sockopt::IpFreebind, &true)?;
    if kind == s::SockType::Stream {
        s::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    s::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &s::SockaddrIn::from(v4),
    )?;
    if kind == s::SockType::Stream {
        s::listen(&fd, s::Backlog::new(1024)?)?;
    }
    Ok(fd)
}

fn tcp(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    socket(addr, nix::sys::socket::SockType::Stream).map(Into::into)
}

fn udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    socket(addr, nix::sys::socket::SockType::Datagram).map(Into::into)
}

/// DNS on `ip:dns` (UDP and TCP; port 0: any free one, the same for both) and the
/// ingress on `ip:port` for each of `http`.
fn bind(ip: Ipv4Addr, dns: u16, http: &[u16]) -> std::io::Result<Bound> {
    let tcp_dns = tcp(SocketAddr::from((ip, dns)))?;
    let port = tcp_dns.local_addr()?.port();
    Ok(Bound {
        udp: udp(SocketAddr::from((ip, port)))?,
        tcp: tcp_dns,
        http: http
            .iter()
            .map(|p| tcp(SocketAddr::from((ip, *p))))
            .collect::<std::io::Result<_>>()?,
    })
}

/// The ports replicas reach the ingress on: 80, and the public URLs' port unless a
/// listener on every address already serves it there.
fn http_ports(public: SocketAddr) -> Vec<u16> {
    let mut ports = vec![80];
    if public.port() != 80 && !public.ip().is_unspecified() {
        ports.push(public.port());
    }
    ports
}

impl ReplicaNetwork {
    /// Sets up what replicas of `backend` need to reach Services through the ingress
    /// listening on `public`, answering names from `routes`, until `shutdown`.
    pub fn start(
        backend: BackendKind,
        public: SocketAddr,
        routes: &swell_dataplane::RoutingTables,
        shutdown: CancellationToken,
    ) -> ReplicaNetwork {
        let started = match backend {
            BackendKind::Runc => Self::runc(public),
            BackendKind::Process => Self::process(public),
            BackendKind::Fake | BackendKind::None => return ReplicaNetwork::default(),
        };
        let (bound, address, peers, redirects) = match started {
            Ok(s) => s,
            Err(why) => {
                tracing::warn!(
                    "{why}: replicas use this host's DNS, and Services' cluster-local names \
                     (NAME.NAMESPACE.svc.{CLUSTER_DOMAIN}) do not resolve in them; \
                     public URLs do where this host resolves them"
                );
                return ReplicaNetwork::default();
            }
        };
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let dns = Arc::new(Dns {
            zone: Zone {
                routes: routes.clone(),
                domain: CLUSTER_DOMAIN.into(),
                address,
            },
            upstreams: swell_dataplane::dns::upstreams(&host, IpAddr::V4(address)),
            peers,
        });
        let dns_addr = bound.tcp.local_addr().ok();
        let listening = (|| {
            bound.udp.set_nonblocking(true)?;
            bound.tcp.set_nonblocking(true)?;
            Ok::<_, std::io::Error>((
                tokio::net::UdpSocket::from_std(bound.udp)?,
                tokio::net::TcpListener::from_std(bound.tcp)?,
            ))
        })();
        let (udp, tcp) = match listening {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "replicas' DNS cannot serve");
                return ReplicaNetwork::default();
            }
        };
        let http: Vec<_> = bound
            .http
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        tracing::info!(dns = ?dns_addr, ingress = ?http, ?redirects, "replicas reach Services by name");
        ReplicaNetwork {
            listeners: bound.http.into_iter().map(|l| (l, peers)).collect(),
            dns: Some(ClusterDns {
                nameserver: IpAddr::V4(address),
                domain: CLUSTER_DOMAIN.into(),
            }),
            redirects,
            task: Some(tokio::spawn(swell_dataplane::dns::serve(
                udp, tcp, dns, shutdown,
            ))),
        }
    }

    /// runc: the gateway's well-known ports, else free ones and redirects.
    #[allow(clippy::type_complexity)]
    fn runc(public: SocketAddr) -> Result<(Bound, Ipv4Addr, Peers, Vec<Redirect>), String> {
        let peers = Peers::Replicas(Ipv4Addr::new(10, 86, 0, 0), 16);
        let ports = http_ports(public);
        if let Ok(b) = bind(GATEWAY, 53, &ports) {
            return Ok((b, GATEWAY, peers, Vec::new()));
        }
        // A port free for TCP may be taken for UDP: a few tries.
        let mut tried = bind(GATEWAY, 0, &[0]);
        for _ in 0..3 {
            if tried.is_ok() {
                break;
            }
            tried = bind(GATEWAY, 0, &[0]);
        }
        let b = tried.map_err(|e| format!("cannot serve replicas on {GATEWAY}: {e}"))?;
        let port = |l: &std::net::TcpListener| l.local_addr().map(|a| a.port()).unwrap_or(0);
        let (dns, http) = (port(&b.tcp), b.http.first().map_or(0, port));
        let mut redirects = vec![
            Redirect {
                protocol: Protocol::Udp,
                port: 53,
                to: dns,
            },
            Redirect {
                protocol: Protocol::Tcp,
                port: 53,
                to: dns,
            },
        ];
        for p in [80, public.port()] {
            if redirects.iter().all(|r| r.port != p) {
                redirects.push(Redirect {
                    protocol: Protocol::Tcp,
                    port: p,
                    to: http,
                });
            }
        }
        Ok((b, GATEWAY, peers, redirects))
    }

    /// process: a loopback address of Swell's own, as root.
    #[allow(clippy::type_complexity)]
    fn process(public: SocketAddr) -> Result<(Bound, Ipv4Addr, Peers, Vec<Redirect>), String> {
        if !swell_runtime::process::launch::own_resolv_conf() {
            return Err(
                "the process backend gives replicas their own resolv.conf only when the server \
                 runs as root (and this host has /etc/resolv.conf)"
                    .into(),
            );
        }
        let ports = http_ports(public);
        let mut last = None;
        for i in 0..LOOPBACK_TRIES {
            let ip = Ipv4Addr::from(u32::from(LOOPBACK) + u32::from(i));
            match bind(ip, 53, &ports) {
                Ok(b) => return Ok((b, ip, Peers::Loopback, Vec::new())),
                Err(e) => last = Some(e),
            }
        }
        Err(format!(
            "no loopback address from {LOOPBACK} on has ports 53 and {ports:?} free (last: {})",
            last.map_or_else(String::new, |e| e.to_string())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_reach_the_ingress_on_80_and_the_public_port() {
        assert_eq!(http_ports("127.0.0.1:8080".parse().unwrap()), [80, 8080]);
        assert_eq!(http_ports("127.0.0.1:80".parse().unwrap()), [80]);
        // A listener on every address serves the public port to replicas already.
        assert_eq!(http_ports("0.0.0.0:8080".parse().unwrap()), [80]);
    }

    #[test]
    fn dns_and_ingress_bind_together_on_any_free_ports() {
        let b = bind(Ipv4Addr::LOCALHOST, 0, &[0, 0]).unwrap();
        let dns = b.tcp.local_addr().unwrap();
        assert_ne!(dns.port(), 0);
        assert_eq!(b.udp.local_addr().unwrap(), dns);
        assert_eq!(b.http.len(), 2);
        // Ports taken: the whole set fails.
        assert!(bind(Ipv4Addr::LOCALHOST, dns.port(), &[0]).is_err());
    }
}
