//! A replica's `/etc/hosts` and `/etc/resolv.conf` as kubelet writes them: the pod's
//! own name and `hostAliases` in the one, the host's resolver with the pod's
//! `dnsPolicy` and `dnsConfig` applied in the other.

use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig};
use std::net::IpAddr;

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

/// `/etc/resolv.conf`: the host's (`host`), or nothing under `dnsPolicy: None`, with
/// `dnsConfig`'s nameservers and searches appended (duplicates dropped) and its options
/// merged (a named option replaces the host's of that name).
pub fn resolv_conf(host: &str, policy: Option<&str>, config: Option<&PodDNSConfig>) -> String {
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
            resolv_conf(host, None, Some(&config)),
            "nameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch example.com ns.svc.local\noptions edns0 ndots:5 single-request\n"
        );
        assert_eq!(
            resolv_conf(host, Some("None"), Some(&config)),
            "nameserver 8.8.8.8\nnameserver 1.1.1.1\nsearch ns.svc.local\noptions ndots:5 single-request\n"
        );
        assert_eq!(
            resolv_conf(host, None, None),
            "nameserver 1.1.1.1\nsearch example.com\noptions ndots:1 edns0\n"
        );
    }
}
