//! The request policy against a real routing table and pools and a fake upstream:
//! refusals, routing, deadlines, retries of unsent requests and suspected replicas.

use super::*;
use crate::pool::RevisionKey;
use crate::routes::{RouteKey, RoutingTable, Split, TrafficGroup};
use std::net::SocketAddr;

const HOST: &str = "hello.default.localhost";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn revision(name: &str) -> RevisionKey {
    RevisionKey {
        namespace: "default".into(),
        name: name.into(),
    }
}

fn group(tag: Option<&str>, public: &str, local: &[&str], revision: &str) -> TrafficGroup {
    TrafficGroup {
        tag: tag.map(str::to_string),
        public_host: Some(public.into()),
        local_hosts: local.iter().map(|h| h.to_string()).collect(),
        splits: vec![Split {
            revision: revision.into(),
            percent: 100,
        }],
    }
}

/// A data plane where `HOST` (and the cluster-local `hello.default`) go to
/// `hello-00001`, `blue-hello.default.localhost` and tag `blue` to `hello-00002`, with
/// tag-header routing, and `hello-00001` has `replicas` and `config`.
fn dataplane(config: RevisionConfig, replicas: &[SocketAddr]) -> Dataplane {
    let dp = Dataplane::default();
    dp.routes.publish(
        RouteKey {
            namespace: "default".into(),
            name: "hello".into(),
        },
        &RoutingTable {
            groups: vec![
                group(None, HOST, &["hello.default"], "hello-00001"),
                group(
                    Some("blue"),
                    "blue-hello.default.localhost",
                    &[],
                    "hello-00002",
                ),
            ],
            tag_header_routing: true,
        },
    );
    dp.revisions.configure(&revision("hello-00001"), config);
    dp.revisions
        .configure(&revision("hello-00002"), RevisionConfig::default());
    dp.revisions
        .set_replicas(&revision("hello-00001"), replicas);
    dp
}

fn admitted(dp: &Dataplane) -> Admission {
    route(dp, HOST, false, None)
        .expect("a destination")
        .admit(Instant::now())
}

/// The refusal's status, reason and body text.
fn answer(r: &Refusal) -> (u16, &'static str, String) {
    (r.status().as_u16(), r.reason(), r.to_string())
}

fn requests(dp: &Dataplane, class: &str) -> bool {
    dp.revisions.render_metrics().contains(&format!(
        r#"swell_revision_requests_total{{namespace="default",revision="hello-00001",response_code_class="{class}"}} 1"#
    ))
}

#[test]
fn every_refusal_has_its_status_reason_and_text() {
    let why = "Revision \"hello-00001\" failed: ExitCode1: boom".to_string();
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    for (refusal, want) in [
        (Refusal::NoHost, (400, "no-host", "request has no Host")),
        (
            Refusal::UnknownHost("x.localhost".into()),
            (404, "unknown-host", r#"no Route serves host "x.localhost""#),
        ),
        (
            Refusal::NoRevision("x.localhost".into()),
            (
                503,
                "no-revision",
                r#"host "x.localhost" has no Revision to send traffic to"#,
            ),
        ),
        (
            Refusal::UnknownRevision("hello-00009".into()),
            (
                503,
                "unknown-revision",
                r#"Revision "hello-00009" is not known to the data plane"#,
            ),
        ),
        (
            AcquireError::QueueFull.into(),
            (503, "overload", "pending request queue full"),
        ),
        (
            AcquireError::Gone.into(),
            (503, "overload", "revision is gone"),
        ),
        (
            AcquireError::Failed(why.clone()).into(),
            (503, "revision-failed", why.as_str()),
        ),
        (
            Refusal::Timeout(Deadline::Acquire),
            (
                504,
                "timeout",
                "request timeout (no replica became available)",
            ),
        ),
        (
            Refusal::Timeout(Deadline::FirstByte),
            (504, "timeout", "request timeout"),
        ),
        (
            Refusal::Upstream {
                revision: "hello-00001".into(),
                error: UpstreamError::Connect {
                    addr: addr(1),
                    source: refused,
                },
            },
            (
                502,
                "upstream",
                r#"error reaching Revision "hello-00001": cannot connect to 127.0.0.1:1: connection refused"#,
            ),
        ),
    ] {
        let (status, reason, text) = want;
        assert_eq!(answer(&refusal), (status, reason, text.to_string()));
    }
}

#[test]
fn hosts_route_by_visibility_tag_and_weight() {
    let dp = dataplane(RevisionConfig::default(), &[]);
    let refused = |host, inside| route(&dp, host, inside, None).map(|_| ()).unwrap_err();
    assert_eq!(answer(&refused("nobody.localhost", true)).1, "unknown-host");
    // Cluster-local hosts exist only for peers inside.
    assert_eq!(answer(&refused("hello.default", false)).1, "unknown-host");
    let local = route(&dp, "hello.default", true, None).unwrap();
    assert_eq!(local.pool.key, revision("hello-00001"));
    // Tag-header routing: a known tag picks its target; any other is the default's.
    let tagged = route(&dp, HOST, false, Some(b"blue")).unwrap();
    assert_eq!(tagged.pool.key, revision("hello-00002"));
    assert_eq!(tagged.tag_header(), TagHeader::None);
    let other = route(&dp, HOST, false, Some(b"green")).unwrap();
    assert_eq!(other.pool.key, revision("hello-00001"));
    assert_eq!(other.tag_header(), TagHeader::DefaultRoute);
    // A tag's own host tells the app its tag.
    let by_host = route(&dp, "blue-hello.default.localhost", false, None).unwrap();
    assert_eq!(by_host.tag_header(), TagHeader::Tag("blue"));
    // A Revision the data plane does not know, or none at all.
    dp.revisions.remove(&revision("hello-00002"));
    let unknown = route(&dp, "blue-hello.default.localhost", false, None).map(|_| ());
    assert_eq!(answer(&unknown.unwrap_err()).1, "unknown-revision");
    let mut empty = group(None, "empty.localhost", &[], "hello-00001");
    empty.splits[0].percent = 0;
    dp.routes.publish(
        RouteKey {
            namespace: "default".into(),
            name: "empty".into(),
        },
        &RoutingTable {
            groups: vec![empty],
            tag_header_routing: false,
        },
    );
    assert_eq!(answer(&refused("empty.localhost", false)).1, "no-revision");
}

#[test]
fn the_first_byte_deadline_is_the_earliest_timeout() {
    let dp = dataplane(RevisionConfig::default(), &[]);
    let s = Duration::from_secs;
    let admit_with = |config: RevisionConfig| {
        dp.revisions.configure(&revision("hello-00001"), config);
        let a = admitted(&dp);
        (a.deadline - a.start, a.first_byte - a.start)
    };
    for (response_start, idle, first_byte) in [
        (None, None, s(300)),
        (Some(s(10)), None, s(10)),
        (None, Some(s(20)), s(20)),
        (Some(s(30)), Some(s(20)), s(20)),
        (Some(s(400)), None, s(300)),
    ] {
        let config = RevisionConfig {
            response_start_timeout: response_start,
            idle_timeout: idle,
            ..RevisionConfig::default()
        };
        assert_eq!(admit_with(config), (s(300), first_byte));
    }
}

/// A replica exchange that answers what `answer` says at once (`None`: never),
/// recording the replicas it was sent to.
struct Fake<F> {
    answer: F,
    tried: Vec<SocketAddr>,
}

/// What the fake's request is (a number) and what it answers (the replica).
type FakeAnswer = Option<Result<SocketAddr, SendError<u32>>>;

fn fake<F: FnMut(SocketAddr, u32) -> FakeAnswer>(answer: F) -> Fake<F> {
    Fake {
        answer,
        tried: Vec::new(),
    }
}

impl<F: FnMut(SocketAddr, u32) -> FakeAnswer + Send> Upstream for Fake<F> {
    type Request = u32;
    type Answer = SocketAddr;

    async fn send(
        &mut self,
        replica: &Replica,
        request: u32,
    ) -> Result<SocketAddr, SendError<u32>> {
        self.tried.push(replica.addr);
        match (self.answer)(replica.addr, request) {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }
}

fn refused(error: impl Into<UpstreamError>, unsent: Option<u32>) -> FakeAnswer {
    Some(Err(SendError {
        error: error.into(),
        request: unsent,
    }))
}

#[tokio::test]
async fn unsent_requests_try_three_replicas_and_each_failing_one_is_suspected() {
    let dp = dataplane(
        RevisionConfig::default(),
        &[addr(1), addr(2), addr(3), addr(4)],
    );
    let admission = admitted(&dp);
    let refusing = std::io::ErrorKind::ConnectionRefused;
    let mut upstream = fake(|addr, request| {
        let error = UpstreamError::Connect {
            addr,
            source: refusing.into(),
        };
        refused(error, Some(request))
    });
    let refusal = admission.forward(&mut upstream, 7).await.unwrap_err();
    assert_eq!(answer(&refusal).0, 502);
    let mut tried = upstream.tried;
    tried.sort();
    tried.dedup();
    assert_eq!(tried.len(), 3, "three different replicas: {tried:?}");
    let left = admission.dest.pool.replicas();
    assert_eq!(left.len(), 1, "the three are suspected");
    assert!(!tried.contains(&left[0].addr));
    assert!(requests(&dp, "5xx"), "the refusal is counted");
}

#[tokio::test]
async fn an_unsent_request_is_answered_by_the_next_replica() {
    let dp = dataplane(RevisionConfig::default(), &[addr(1), addr(2)]);
    let admission = admitted(&dp);
    let mut first = true;
    let mut upstream = fake(|addr, request| {
        assert_eq!(request, 7, "the same request");
        if std::mem::take(&mut first) {
            return refused(UpstreamError::Uri, Some(request));
        }
        Some(Ok(addr))
    });
    let (lease, answered) = admission.forward(&mut upstream, 7).await.unwrap();
    assert_eq!(answered, lease.addr());
    assert_eq!(upstream.tried.len(), 2);
    assert_eq!(lease.replica().in_flight(), 1);
    assert_eq!(admission.dest.pool.replicas().len(), 1);
}

#[tokio::test]
async fn a_request_that_may_have_left_goes_nowhere_else() {
    let dp = dataplane(RevisionConfig::default(), &[addr(1), addr(2)]);
    let admission = admitted(&dp);
    let reset = std::io::ErrorKind::ConnectionReset;
    let mut upstream = fake(|_, _| refused(std::io::Error::from(reset), None));
    let refusal = admission.forward(&mut upstream, 7).await.unwrap_err();
    assert_eq!(upstream.tried.len(), 1);
    assert_eq!(
        answer(&refusal),
        (
            502,
            "upstream",
            r#"error reaching Revision "hello-00001": connection reset"#.into()
        )
    );
    assert_eq!(admission.dest.pool.replicas().len(), 1, "suspected");
}

#[tokio::test(start_paused = true)]
async fn no_replica_within_the_timeout_is_a_504() {
    let config = RevisionConfig {
        timeout: Duration::from_secs(5),
        ..RevisionConfig::default()
    };
    let dp = dataplane(config, &[]);
    let admission = admitted(&dp);
    let mut upstream = fake(|addr, _| Some(Ok(addr)));
    let refusal = admission.forward(&mut upstream, 7).await.unwrap_err();
    assert_eq!(
        answer(&refusal),
        (
            504,
            "timeout",
            "request timeout (no replica became available)".into()
        )
    );
    assert_eq!(admission.start.elapsed(), Duration::from_secs(5));
    assert!(upstream.tried.is_empty());
    assert!(requests(&dp, "5xx"));
}

#[tokio::test(start_paused = true)]
async fn no_first_byte_in_time_is_a_504_and_suspects_nobody() {
    let config = RevisionConfig {
        response_start_timeout: Some(Duration::from_secs(2)),
        ..RevisionConfig::default()
    };
    let dp = dataplane(config, &[addr(1)]);
    let admission = admitted(&dp);
    let mut upstream = fake(|_, _| None);
    let refusal = admission.forward(&mut upstream, 7).await.unwrap_err();
    assert_eq!(answer(&refusal), (504, "timeout", "request timeout".into()));
    assert_eq!(admission.start.elapsed(), Duration::from_secs(2));
    let replicas = admission.dest.pool.replicas();
    assert_eq!(replicas.len(), 1);
    assert_eq!(replicas[0].in_flight(), 0, "the slot went back");
}

#[test]
fn idempotent_methods_may_go_again() {
    for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
        assert!(idempotent(m), "{m}");
    }
    for m in ["POST", "PATCH", "CONNECT", "get"] {
        assert!(!idempotent(m), "{m}");
    }
}
