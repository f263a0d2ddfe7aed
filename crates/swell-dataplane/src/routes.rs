//! Routing tables: what each Route publishes (its hosts and how their traffic splits),
//! and the host index the ingress looks requests up in (§2.1–2.3).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Identifies a Route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteKey {
    /// Namespace.
    pub namespace: String,
    /// Route name.
    pub name: String,
}

/// A share of a traffic group's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Revision name (in the Route's namespace).
    pub revision: String,
    /// Percent of requests.
    pub percent: i64,
}

/// One routing group of a Route: the default target or one tag, the hosts that reach
/// it and how its traffic splits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficGroup {
    /// The tag, or `None` for the default target.
    pub tag: Option<String>,
    /// The public host (`hello.default.localhost`), or `None` for a cluster-local Route.
    pub public_host: Option<String>,
    /// Hosts reachable only from this machine (`hello.default`, `hello.default.svc`,
    /// `hello.default.svc.cluster.local`).
    pub local_hosts: Vec<String>,
    /// Where requests go (percents sum to 100).
    pub splits: Vec<Split>,
}

/// A Route's resolved routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingTable {
    /// The default group first, then one per tag.
    pub groups: Vec<TrafficGroup>,
    /// `tag-header-based-routing`: on the default hosts, `Knative-Serving-Tag: <tag>`
    /// picks that tag's target.
    pub tag_header_routing: bool,
}

/// Where a request for a host goes.
#[derive(Debug)]
pub struct HostRoute {
    /// The Route's namespace (its Revisions live there).
    pub namespace: String,
    /// The group's tag (`None` on default hosts).
    pub tag: Option<String>,
    /// The group's weighted split.
    pub splits: Weighted,
    /// Reachable only from loopback peers.
    pub local_only: bool,
    /// With tag-header routing, on default hosts: tag → that tag's split.
    pub header_tags: Option<Arc<HashMap<String, Weighted>>>,
    /// Tag-header routing is on (tag hosts then tell the app their tag).
    pub tag_header_routing: bool,
}

/// Revisions with cumulative weights, for a weighted random pick per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighted {
    /// (revision, cumulative percent), increasing.
    targets: Vec<(Arc<str>, u32)>,
}

impl Weighted {
    /// From splits; zero-percent splits are dropped.
    pub fn new(splits: &[Split]) -> Self {
        let mut total = 0u32;
        let targets = splits
            .iter()
            .filter(|s| s.percent > 0)
            .map(|s| {
                total += u32::try_from(s.percent).unwrap_or(0);
                (Arc::from(s.revision.as_str()), total)
            })
            .collect();
        Weighted { targets }
    }

    /// A revision picked with probability proportional to its percent.
    pub fn pick(&self) -> Option<&Arc<str>> {
        match self.targets.as_slice() {
            [] => None,
            [(only, _)] => Some(only),
            all => {
                let total = all.last().map_or(0, |t| t.1);
                let x = fastrand::u32(0..total.max(1));
                all.iter().find(|t| x < t.1).map(|t| &t.0)
            }
        }
    }

    /// Every revision the split can pick.
    pub fn revisions(&self) -> impl Iterator<Item = &Arc<str>> {
        self.targets.iter().map(|t| &t.0)
    }
}

#[derive(Debug, Default)]
struct Index {
    by_host: HashMap<String, (RouteKey, Arc<HostRoute>)>,
    by_route: HashMap<RouteKey, Vec<String>>,
}

/// Every Route's published table, indexed by host. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct RoutingTables {
    index: Arc<RwLock<Index>>,
}

impl RoutingTables {
    /// Publishes (replaces) a Route's table.
    pub fn publish(&self, key: RouteKey, table: &RoutingTable) {
        let header_tags = table.tag_header_routing.then(|| {
            Arc::new(
                table
                    .groups
                    .iter()
                    .filter_map(|g| Some((g.tag.clone()?, Weighted::new(&g.splits))))
                    .collect::<HashMap<_, _>>(),
            )
        });
        let mut entries = Vec::new();
        for g in &table.groups {
            let route = |local_only| {
                Arc::new(HostRoute {
                    namespace: key.namespace.clone(),
                    tag: g.tag.clone(),
                    splits: Weighted::new(&g.splits),
                    local_only,
                    header_tags: if g.tag.is_none() {
                        header_tags.clone()
                    } else {
                        None
                    },
                    tag_header_routing: table.tag_header_routing,
                })
            };
            if let Some(h) = &g.public_host {
                entries.push((h.to_ascii_lowercase(), route(false)));
            }
            let local = route(true);
            for h in &g.local_hosts {
                entries.push((h.to_ascii_lowercase(), local.clone()));
            }
        }
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        Self::unpublish(&mut index, &key);
        let hosts = entries.iter().map(|(h, _)| h.clone()).collect();
        for (host, route) in entries {
            index.by_host.insert(host, (key.clone(), route));
        }
        index.by_route.insert(key, hosts);
    }

    /// Removes a Route's table.
    pub fn remove(&self, key: &RouteKey) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        Self::unpublish(&mut index, key);
    }

    fn unpublish(index: &mut Index, key: &RouteKey) {
        for h in index.by_route.remove(key).unwrap_or_default() {
            if index.by_host.get(&h).is_some_and(|(owner, _)| owner == key) {
                index.by_host.remove(&h);
            }
        }
    }

    /// The route for a request's host (lowercase, without port).
    pub fn lookup(&self, host: &str) -> Option<Arc<HostRoute>> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index.by_host.get(host).map(|(_, r)| r.clone())
    }

    /// The hosts a Route published (for tests and diagnostics).
    pub fn hosts_of(&self, key: &RouteKey) -> Vec<String> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index.by_route.get(key).cloned().unwrap_or_default()
    }
}

/// The host a request is for: `Host` (or the URI authority for HTTP/2), lowercase,
/// without port or trailing dot. Borrowed unless it had to be lowercased.
pub fn request_host<B>(req: &http::Request<B>) -> Option<Cow<'_, str>> {
    Some(match req.uri().authority() {
        Some(a) => normalize(a.host()),
        None => host_name(req.headers().get(http::header::HOST)?.to_str().ok()?),
    })
}

/// The host name a `Host` header names: without its port or a trailing dot, lowercase.
pub fn host_name(host_header: &str) -> Cow<'_, str> {
    normalize(match host_header.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host_header,
    })
}

fn normalize(raw: &str) -> Cow<'_, str> {
    let host = raw.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(rev: &str, percent: i64) -> Split {
        Split {
            revision: rev.into(),
            percent,
        }
    }

    fn table(header: bool) -> RoutingTable {
        RoutingTable {
            groups: vec![
                TrafficGroup {
                    tag: None,
                    public_host: Some("hello.default.localhost".into()),
                    local_hosts: vec!["hello.default.svc.cluster.local".into()],
                    splits: vec![split("a", 50), split("b", 50)],
                },
                TrafficGroup {
                    tag: Some("blue".into()),
                    public_host: Some("blue-hello.default.localhost".into()),
                    local_hosts: vec![],
                    splits: vec![split("a", 100)],
                },
            ],
            tag_header_routing: header,
        }
    }

    fn key(name: &str) -> RouteKey {
        RouteKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn weighted_picks_follow_percents() {
        let w = Weighted::new(&[split("a", 90), split("b", 10), split("c", 0)]);
        let mut a = 0;
        for _ in 0..10_000 {
            if &**w.pick().unwrap() == "a" {
                a += 1;
            }
        }
        assert!((8_500..9_500).contains(&a), "a picked {a} times");
        assert_eq!(w.revisions().count(), 2);
        assert!(Weighted::new(&[]).pick().is_none());
    }

    #[test]
    fn hosts_are_indexed_and_replaced() {
        let t = RoutingTables::default();
        t.publish(key("hello"), &table(false));
        let main = t.lookup("hello.default.localhost").unwrap();
        assert!(!main.local_only && main.tag.is_none() && main.header_tags.is_none());
        assert!(
            t.lookup("hello.default.svc.cluster.local")
                .unwrap()
                .local_only
        );
        assert_eq!(
            t.lookup("blue-hello.default.localhost")
                .unwrap()
                .tag
                .as_deref(),
            Some("blue")
        );
        let mut smaller = table(true);
        smaller.groups.truncate(1);
        t.publish(key("hello"), &smaller);
        assert!(t.lookup("blue-hello.default.localhost").is_none());
        assert!(
            t.lookup("hello.default.localhost")
                .unwrap()
                .header_tags
                .is_some()
        );
        t.remove(&key("hello"));
        assert!(t.lookup("hello.default.localhost").is_none());
    }

    #[test]
    fn removing_a_route_keeps_hosts_another_route_took_over() {
        let t = RoutingTables::default();
        t.publish(key("one"), &table(false));
        t.publish(key("two"), &table(false));
        t.remove(&key("one"));
        assert!(t.lookup("hello.default.localhost").is_some());
    }

    #[test]
    fn request_hosts_lose_port_case_and_dot() {
        let req = http::Request::builder()
            .header("host", "Hello.Default.localhost.:8080")
            .body(())
            .unwrap();
        assert_eq!(
            request_host(&req).as_deref(),
            Some("hello.default.localhost")
        );
        let h2 = http::Request::builder()
            .uri("http://x.y:81/p")
            .body(())
            .unwrap();
        assert_eq!(request_host(&h2).as_deref(), Some("x.y"));
    }
}
