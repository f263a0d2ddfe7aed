//! A replica's `/etc/hosts` and `/etc/resolv.conf` as kubelet writes them: the pod's
//! own name and `hostAliases` in the one; in the other the cluster's DNS with
//! Kubernetes' search path (`dnsPolicy: ClusterFirst`, the default) or the host's
//! resolver (`Default`), with the pod's `dnsConfig` applied.

use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig};
use std::net::IpAddr;

/// The cluster's DNS, as kubelet's `clusterDNS` and `clusterDomain` name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDns {
    /// Where replicas ask.
    pub nameserver: IpAddr,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// `/etc/hosts`: loopback, the replica's address and host name, then one line per
/// `hostAliases` entry.
pub fn hosts(ip: IpAddr, hostname: &str, aliases: &[HostAlias]) -> String {
    let mut out = format!("127.0.0.1\tlocalhost\n::1\tlocalhost\n{ip}\t{hostname}\n");
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default();
            if !names.is_empty() {
                out.push_str(&format!("{}\t{}\n", a.ip, names.join("\t")));
            }
        }
    }
    out
}

/// Keeps the first of each value.
fn dedup(values: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// `/etc/resolv.conf` of a pod in `namespace`, as kubelet writes it: under
/// `dnsPolicy: ClusterFirst` (the default) and `ClusterFirstWithHostNet`, the cluster's
/// DNS (`cluster`), searched in `NAMESPACE.svc.DOMAIN svc.DOMAIN DOMAIN` then the host's
/// search domains, with `ndots:5`; under `Default`, or when there is no cluster DNS,
/// the host's (`host`); under `None`, nothing. Then `dnsConfig`'s nameservers and
/// searches are appended (duplicates dropped) and its options merged (a named option
/// replaces the one of that name).
pub fn resolv_conf(
    host: &str,
    policy: Option<&str>,
    config: Option<&PodDNSConfig>,
    cluster: Option<&ClusterDns>,
    namespace: &str,
) -> String {
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    if policy != Some("None") {
        for line in host.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => servers.extend(words.next().map(str::to_string)),
                Some("search" | "domain") => {
                    searches = words.map(str::to_string).collect();
                }
                Some("options") => options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
    }
    let cluster_first = matches!(
        policy,
        None | Some("ClusterFirst" | "ClusterFirstWithHostNet")
    );
    if let Some(c) = cluster.filter(|_| cluster_first) {
        servers = vec![c.nameserver.to_string()];
        let d = &c.domain;
        searches.splice(
            0..0,
            [
                format!("{namespace}.svc.{d}"),
                format!("svc.{d}"),
                d.clone(),
            ],
        );
        options = vec!["ndots:5".to_string()];
    }
    if let Some(c) = config {
        servers.extend(c.nameservers.clone().unwrap_or_default());
        searches.extend(c.searches.clone().unwrap_or_default());
        for o in c.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            let option = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            };
            options.retain(|x: &String| x.split(':').next() != Some(name.as_str()));
            options.push(option);
        }
    }
    let mut out = String::new();
    for s in dedup(servers) {
        out.push_str(&format!("nameserver {s}\n"));
    }
    let searches = dedup(searches);
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    let options = dedup(options);
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodDNSConfigOption;

    #[test]
    fn host_aliases_follow_the_replicas_own_name() {
        let aliases = [HostAlias {
            ip: "10.1.2.3".into(),
            hostnames: Some(vec!["foo.local".into(), "bar.local".into()]),
        }];
        let h = hosts("10.0.0.5".parse().unwrap(), "hello-1", &aliases);
        assert!(h.contains("10.0.0.5\thello-1\n"));
        assert!(h.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"));
    }

    #[test]
    fn dns_config_merges_into_the_hosts_resolver() {
        let host = "nameserver 1.1.1.1\nsearch example.com\noptions ndots:1 edns0\n";
        let config = PodDNSConfig {
            nameservers: Some(vec!["8.8.8.8".into(), "1.1.1.1".into()]),
            searches: Some(vec!["ns.svc.local".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("5".into()),
                },
                PodDNSConfigOption {
                    name: Some("single-request".into()),
                    value: None,
                },
            ]),
        };
        assert_eq!(
            resolv_conf(host, None, Some(&config), None, "ns"),
            "nameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch example.com ns.svc.local\noptions edns0 ndots:5 single-request\n"
        );
        assert_eq!(
            resolv_conf(host, Some("None"), Some(&config), None, "ns"),
            "nameserver 8.8.8.8\nnameserver 1.1.1.1\nsearch ns.svc.local\noptions ndots:5 single-request\n"
        );
        assert_eq!(
            resolv_conf(host, None, None, None, "ns"),
            "nameserver 1.1.1.1\nsearch example.com\noptions ndots:1 edns0\n"
        );
    }

    #[test]
    fn cluster_first_is_the_clusters_dns_with_kubernetes_search_path() {
        let host = "nameserver 1.1.1.1\nsearch example.com\noptions ndots:1 edns0\n";
        let cluster = ClusterDns {
            nameserver: "10.86.0.1".parse().unwrap(),
            domain: "cluster.local".into(),
        };
        let pod = "nameserver 10.86.0.1\nsearch hello.svc.cluster.local svc.cluster.local cluster.local example.com\noptions ndots:5\n";
        for policy in [None, Some("ClusterFirst"), Some("ClusterFirstWithHostNet")] {
            assert_eq!(
                resolv_conf(host, policy, None, Some(&cluster), "hello"),
                pod,
                "{policy:?}"
            );
        }
        // Default is the host's; None is dnsConfig alone.
        assert_eq!(
            resolv_conf(host, Some("Default"), None, Some(&cluster), "hello"),
            resolv_conf(host, None, None, None, "hello")
        );
        let config = PodDNSConfig {
            nameservers: Some(vec!["8.8.8.8".into()]),
            searches: Some(vec!["svc.cluster.local".into(), "corp.example".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("edns0".into()),
                    value: None,
                },
            ]),
        };
        assert_eq!(
            resolv_conf(host, None, Some(&config), Some(&cluster), "hello"),
            "nameserver 10.86.0.1\nnameserver 8.8.8.8\nsearch hello.svc.cluster.local svc.cluster.local cluster.local example.com corp.example\noptions ndots:2 edns0\n"
        );
        assert_eq!(
            resolv_conf(host, Some("None"), Some(&config), Some(&cluster), "hello"),
            "nameserver 8.8.8.8\nsearch svc.cluster.local corp.example\noptions ndots:2 edns0\n"
        );
    }
}
