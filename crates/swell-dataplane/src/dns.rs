//! The cluster's DNS as replicas see it, as in Kubernetes: every host a Route serves
//! (`NAME.NS.svc.cluster.local` and the other cluster-local forms, public hosts such as
//! `NAME.NS.localhost`, DomainMappings) answers with the address where replicas reach
//! the ingress; any other name under the cluster domain does not exist; every other
//! question is relayed to the host's resolvers as it came. UDP and TCP (RFC 1035
//! §4.2), one question per message; answers live 5 s, as CoreDNS's `kubernetes` plugin
//! gives them.

use crate::ingress::Peers;
use crate::routes::RoutingTables;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::{Duration, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long answers may be cached (CoreDNS's `kubernetes` plugin's default).
const TTL: u32 = 5;
/// How long one upstream resolver gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may stay idle between questions.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Relayed questions and TCP connections in flight at once; beyond, SERVFAIL.
const IN_FLIGHT: usize = 256;

const TYPE_A: u16 = 1;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
const FORMERR: u8 = 1;
const SERVFAIL: u8 = 2;
const NXDOMAIN: u8 = 3;
const NOTIMP: u8 = 4;

/// What to do with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send this answer.
    Answer(Vec<u8>),
    /// Relay the question to the host's resolvers.
    Relay,
    /// Ignore it (not a query, or too short to answer).
    Drop,
}

/// The names Swell answers for itself.
#[derive(Clone, Debug)]
pub struct Zone {
    /// Every Route's hosts.
    pub routes: RoutingTables,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// Where replicas reach the ingress.
    pub address: Ipv4Addr,
}

/// A query's question, as parsed.
struct Question {
    /// The name, lowercase, without the trailing dot (`None`: not UTF-8).
    name: Option<String>,
    qtype: u16,
    qclass: u16,
    /// Where the question ends in the message.
    end: usize,
}

/// Parses the one question starting at offset 12; `None` if it is malformed or
/// compressed (queries never are).
fn question(msg: &[u8]) -> Option<Question> {
    let mut at = 12;
    let mut name = Vec::new();
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = msg.get(at..at + len)?;
        at += len;
        if !name.is_empty() {
            name.push(b'.');
        }
        name.extend(label.iter().map(u8::to_ascii_lowercase));
        if name.len() > 253 {
            return None;
        }
    }
    let fixed = msg.get(at..at + 4)?;
    Some(Question {
        name: String::from_utf8(name).ok(),
        qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
        end: at + 4,
    })
}

/// A response to `query` (at least a header long): its id, the opcode and RD bit it
/// had, `rcode`, its question (`query[12..question_end]`, none if 0) and `answers`.
fn response(
    query: &[u8],
    authoritative: bool,
    rcode: u8,
    question_end: usize,
    answers: &[Ipv4Addr],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(question_end.max(12) + 16 * answers.len());
    out.extend_from_slice(&query[..2]);
    // QR, the query's opcode, AA, the query's RD, RA.
    let mut flags = 0x8000 | (u16::from_be_bytes([query[2], query[3]]) & 0x7900) | 0x0080;
    if authoritative {
        flags |= 0x0400;
    }
    flags |= u16::from(rcode & 0x0f);
    out.extend_from_slice(&flags.to_be_bytes());
    let questions: u16 = if question_end > 12 { 1 } else { 0 };
    out.extend_from_slice(&questions.to_be_bytes());
    out.extend_from_slice(&u16::try_from(answers.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    if question_end > 12 {
        out.extend_from_slice(&query[12..question_end]);
    }
    for a in answers {
        // The name is the question's (a pointer to offset 12).
        out.extend_from_slice(&[0xc0, 12]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&a.octets());
    }
    out
}

/// SERVFAIL for `query` (the relay failed), or nothing if it cannot be answered.
pub fn server_failure(query: &[u8]) -> Option<Vec<u8>> {
    (query.len() >= 12).then(|| {
        let end = question(query).map_or(12, |q| q.end);
        response(query, false, SERVFAIL, end, &[])
    })
}

impl Zone {
    /// Whether `name` (lowercase, no trailing dot) is the cluster domain or under it.
    fn in_cluster_domain(&self, name: &str) -> bool {
        name == self.domain
            || name
                .strip_suffix(self.domain.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    }

    /// What to answer to the DNS message `msg`.
    pub fn reply(&self, msg: &[u8]) -> Reply {
        if msg.len() < 12 || msg[2] & 0x80 != 0 {
            return Reply::Drop;
        }
        let opcode = (msg[2] >> 3) & 0x0f;
        if opcode != 0 {
            return Reply::Answer(response(msg, false, NOTIMP, 12, &[]));
        }
        let questions = u16::from_be_bytes([msg[4], msg[5]]);
        let q = match question(msg) {
            Some(q) if questions == 1 => q,
            _ => return Reply::Answer(response(msg, false, FORMERR, 12, &[])),
        };
        if q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
            return Reply::Relay;
        }
        let Some(name) = q.name else {
            return Reply::Relay;
        };
        if self.routes.lookup(&name).is_some() {
            let answers: &[Ipv4Addr] = if q.qtype == TYPE_A || q.qtype == TYPE_ANY {
                std::slice::from_ref(&self.address)
            } else {
                // The name exists, with no record of that type (no IPv6 address).
                &[]
            };
            return Reply::Answer(response(msg, true, 0, q.end, answers));
        }
        if self.in_cluster_domain(&name) {
            return Reply::Answer(response(msg, true, NXDOMAIN, q.end, &[]));
        }
        Reply::Relay
    }
}

/// The resolvers of a `resolv.conf` (port 53), without `own` (Swell's own DNS) and
/// addresses with a zone; glibc's default (127.0.0.1) if it names none.
pub fn upstreams(resolv_conf: &str, own: IpAddr) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter(|a| *a != own)
        .map(|a| SocketAddr::new(a, 53))
        .collect();
    out.dedup();
    if out.is_empty() && !resolv_conf.contains("nameserver") {
        out.push(SocketAddr::from((Ipv4Addr::LOCALHOST, 53)));
    }
    out
}

/// The DNS server: the zone Swell answers, the resolvers it relays the rest to, and
/// who may ask.
#[derive(Debug)]
pub struct Dns {
    /// What Swell answers itself.
    pub zone: Zone,
    /// The host's resolvers.
    pub upstreams: Vec<SocketAddr>,
    /// Who may ask (others are ignored).
    pub peers: Peers,
}

/// Relays `query` over UDP to the first upstream that answers it.
async fn relay_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let local: SocketAddr = match up {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let attempt = async {
            let socket = UdpSocket::bind(local).await.ok()?;
            socket.connect(up).await.ok()?;
            socket.send(query).await.ok()?;
            let mut buf = vec![0; 65_535];
            loop {
                let n = socket.recv(&mut buf).await.ok()?;
                // Only the answer to this question (same id, a response).
                if n >= 12 && buf[..2] == query[..2] && buf[2] & 0x80 != 0 {
                    buf.truncate(n);
                    return Some(buf);
                }
            }
        };
        if let Ok(Some(answer)) = timeout(UPSTREAM_TIMEOUT, attempt).await {
            return Some(answer);
        }
        tracing::debug!(upstream = %up, "DNS relay: no answer");
    }
    None
}

/// Relays `query` over TCP to the first upstream that answers it.
async fn relay_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let attempt = async {
            let mut s = TcpStream::connect(up).await.ok()?;
            write_framed(&mut s, query).await.ok()?;
            read_framed(&mut s).await.ok()
        };
        if let Ok(Some(answer)) = timeout(UPSTREAM_TIMEOUT, attempt).await {
            return Some(answer);
        }
        tracing::debug!(upstream = %up, "DNS relay over TCP: no answer");
    }
    None
}

/// One TCP DNS message (a two-byte length, then the message).
async fn read_framed(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = s.read_u16().await?;
    let mut msg = vec![0; usize::from(len)];
    s.read_exact(&mut msg).await?;
    Ok(msg)
}

async fn write_framed(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("message too long"))?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    s.write_all(&framed).await
}

/// Serves DNS on `udp` and `tcp` until `shutdown`.
pub async fn serve(udp: UdpSocket, tcp: TcpListener, dns: Arc<Dns>, shutdown: CancellationToken) {
    let udp = Arc::new(udp);
    let tasks = TaskTracker::new();
    let room = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf = vec![0; 65_535];
    loop {
        tokio::select! {
            received = udp.recv_from(&mut buf) => {
                let Ok((n, peer)) = received else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if !dns.peers.inside(peer.ip()) {
                    continue;
                }
                let query = &buf[..n];
                match dns.zone.reply(query) {
                    Reply::Drop => {}
                    Reply::Answer(a) => {
                        let _ = udp.send_to(&a, peer).await;
                    }
                    Reply::Relay => {
                        let Ok(permit) = room.clone().try_acquire_owned() else {
                            if let Some(a) = server_failure(query) {
                                let _ = udp.send_to(&a, peer).await;
                            }
                            continue;
                        };
                        let (udp, dns, query) = (udp.clone(), dns.clone(), query.to_vec());
                        tasks.spawn(async move {
                            let _permit = permit;
                            let answer = match relay_udp(&query, &dns.upstreams).await {
                                Some(a) => Some(a),
                                None => server_failure(&query),
                            };
                            if let Some(a) = answer {
                                let _ = udp.send_to(&a, peer).await;
                            }
                        });
                    }
                }
            }
            accepted = tcp.accept() => {
                let Ok((stream, peer)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if !dns.peers.inside(peer.ip()) {
                    continue;
                }
                let Ok(permit) = room.clone().try_acquire_owned() else { continue };
                let (dns, shutdown) = (dns.clone(), shutdown.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    tokio::select! {
                        () = serve_tcp(stream, &dns) => {}
                        () = shutdown.cancelled() => {}
                    }
                });
            }
            () = shutdown.cancelled() => break,
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// Answers one TCP client's questions, one after the other, until it goes quiet.
async fn serve_tcp(mut stream: TcpStream, dns: &Dns) {
    while let Ok(Ok(query)) = timeout(TCP_IDLE, read_framed(&mut stream)).await {
        let answer = match dns.zone.reply(&query) {
            Reply::Drop => return,
            Reply::Answer(a) => Some(a),
            Reply::Relay => match relay_tcp(&query, &dns.upstreams).await {
                Some(a) => Some(a),
                None => server_failure(&query),
            },
        };
        let Some(a) = answer else { return };
        if write_framed(&mut stream, &a).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{RouteKey, RoutingTable, Split, TrafficGroup};

    const RD: u16 = 0x0100;

    fn query(id: u16, flags: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut q = Vec::new();
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&flags.to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            q.push(u8::try_from(label.len()).unwrap());
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn zone() -> Zone {
        let routes = RoutingTables::default();
        let group = |public: Option<&str>| TrafficGroup {
            tag: None,
            public_host: public.map(str::to_string),
            local_hosts: vec![],
            splits: vec![Split {
                revision: "r".into(),
                percent: 100,
            }],
        };
        let local = |name: &str| {
            ["default", "default.svc", "default.svc.cluster.local"]
                .map(|d| format!("{name}.{d}"))
                .to_vec()
        };
        for (name, public) in [
            ("callee", Some("callee.default.localhost")),
            ("private", None),
        ] {
            let mut g = group(public);
            g.local_hosts = local(name);
            routes.publish(
                RouteKey {
                    namespace: "default".into(),
                    name: name.into(),
                },
                &RoutingTable {
                    groups: vec![g],
                    tag_header_routing: false,
                },
            );
        }
        Zone {
            routes,
            domain: "cluster.local".into(),
            address: Ipv4Addr::new(10, 86, 0, 1),
        }
    }

    /// (id, flags, questions, answers, the answers' addresses) of an answer.
    fn parse(a: &[u8], question_len: usize) -> (u16, u16, u16, u16, Vec<Ipv4Addr>) {
        let u16_at = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
        let answers = u16_at(6);
        let mut at = 12 + question_len;
        let mut addrs = Vec::new();
        for _ in 0..answers {
            assert_eq!(&a[at..at + 2], &[0xc0, 12]);
            assert_eq!(u16_at(at + 2), TYPE_A);
            assert_eq!(u16_at(at + 4), CLASS_IN);
            assert_eq!(&a[at + 6..at + 10], &TTL.to_be_bytes());
            assert_eq!(u16_at(at + 10), 4);
            addrs.push(Ipv4Addr::new(
                a[at + 12],
                a[at + 13],
                a[at + 14],
                a[at + 15],
            ));
            at += 16;
        }
        assert_eq!(at, a.len(), "nothing after the answers");
        (u16_at(0), u16_at(2), u16_at(4), answers, addrs)
    }

    fn answer(z: &Zone, q: &[u8]) -> Vec<u8> {
        match z.reply(q) {
            Reply::Answer(a) => a,
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    #[test]
    fn route_hosts_answer_with_the_ingress_address() {
        let z = zone();
        for name in [
            "callee.default.svc.cluster.local",
            "callee.default.svc",
            "callee.default",
            "callee.default.localhost",
            "private.default.svc.cluster.local",
            "Callee.Default.SVC.Cluster.Local.",
        ] {
            let q = query(0xbeef, RD, name, TYPE_A);
            let a = answer(&z, &q);
            // The question is echoed as asked (case kept).
            assert_eq!(a[12..q.len()], q[12..], "{name}");
            let (id, flags, questions, answers, addrs) = parse(&a, q.len() - 12);
            assert_eq!(id, 0xbeef);
            // A response, authoritative, recursion desired and available, NOERROR.
            assert_eq!(flags, 0x8000 | 0x0400 | RD | 0x0080, "{name}");
            assert_eq!((questions, answers), (1, 1));
            assert_eq!(addrs, [Ipv4Addr::new(10, 86, 0, 1)]);
        }
    }

    #[test]
    fn route_hosts_have_no_other_records() {
        let z = zone();
        for qtype in [28u16, 65, 15] {
            let q = query(7, RD, "callee.default.svc.cluster.local", qtype);
            let (_, flags, questions, answers, _) = parse(&answer(&z, &q), q.len() - 12);
            assert_eq!(flags & 0x000f, 0, "NOERROR with no data");
            assert_eq!((questions, answers), (1, 0));
        }
    }

    #[test]
    fn other_cluster_names_do_not_exist() {
        let z = zone();
        // What a resolver with Kubernetes' search path tries first.
        for name in [
            "callee.default.svc.cluster.local.default.svc.cluster.local",
            "nothing.default.svc.cluster.local",
            "kubernetes.default.svc.cluster.local",
            "cluster.local",
        ] {
            let q = query(9, RD, name, TYPE_A);
            let (_, flags, _, answers, _) = parse(&answer(&z, &q), q.len() - 12);
            assert_eq!(flags, 0x8000 | 0x0400 | RD | 0x0080 | 3, "{name}");
            assert_eq!(answers, 0);
        }
    }

    #[test]
    fn everything_else_is_relayed() {
        let z = zone();
        for name in ["example.com", "other.default.localhost", "notcluster.local"] {
            assert_eq!(z.reply(&query(1, RD, name, TYPE_A)), Reply::Relay, "{name}");
        }
        let mut chaos = query(1, RD, "version.bind", 16);
        let n = chaos.len();
        chaos[n - 1] = 3;
        assert_eq!(z.reply(&chaos), Reply::Relay);
    }

    #[test]
    fn bad_messages_are_refused_or_ignored() {
        let z = zone();
        assert_eq!(z.reply(&[0; 11]), Reply::Drop);
        // A response is not a question.
        assert_eq!(
            z.reply(&query(1, 0x8000, "callee.default", TYPE_A)),
            Reply::Drop
        );
        let rcode = |a: &[u8]| (a[3] & 0x0f, u16::from_be_bytes([a[4], a[5]]), a.len());
        // Not a QUERY: NOTIMP, no question.
        let status = query(1, 2 << 11, "callee.default", TYPE_A);
        assert_eq!(rcode(&answer(&z, &status)), (NOTIMP, 0, 12));
        // Two questions, a truncated one, a compressed one, an overlong label: FORMERR.
        let mut two = query(1, RD, "callee.default", TYPE_A);
        two[5] = 2;
        let full = query(1, RD, "callee.default", TYPE_A);
        let truncated = full[..full.len() - 3].to_vec();
        let mut compressed = full[..12].to_vec();
        compressed.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let mut long = full[..12].to_vec();
        long.push(64);
        long.extend_from_slice(&[b'a'; 64]);
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        for bad in [two, truncated, compressed, long] {
            assert_eq!(rcode(&answer(&z, &bad)), (FORMERR, 0, 12));
        }
        let failed = server_failure(&full).unwrap();
        assert_eq!(rcode(&failed), (SERVFAIL, 1, full.len()));
        assert_eq!(server_failure(&[1, 2, 3]), None);
    }

    #[test]
    fn upstreams_come_from_resolv_conf() {
        let own: IpAddr = "10.86.0.1".parse().unwrap();
        let conf = "# comment\nnameserver 10.86.0.1\nnameserver 1.1.1.1\nnameserver fe80::1%eth0\nnameserver 2001:db8::1\nsearch example.com\noptions ndots:2\n";
        assert_eq!(
            upstreams(conf, own),
            [
                "1.1.1.1:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(
            upstreams("search example.com\n", own),
            ["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
        );
        assert!(upstreams("nameserver 10.86.0.1\n", own).is_empty());
    }

    /// A resolver on loopback that answers every question with 192.0.2.7 (UDP) or
    /// 192.0.2.8 (TCP), counting what it is asked.
    async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).await.unwrap();
        let task = tokio::spawn(async move {
            let mut buf = vec![0; 512];
            loop {
                tokio::select! {
                    Ok((n, peer)) = udp.recv_from(&mut buf) => {
                        let q = question(&buf[..n]).unwrap();
                        let a = response(&buf[..n], false, 0, q.end, &[Ipv4Addr::new(192, 0, 2, 7)]);
                        udp.send_to(&a, peer).await.unwrap();
                    }
                    Ok((mut s, _)) = tcp.accept() => {
                        let m = read_framed(&mut s).await.unwrap();
                        let q = question(&m).unwrap();
                        let a = response(&m, false, 0, q.end, &[Ipv4Addr::new(192, 0, 2, 8)]);
                        write_framed(&mut s, &a).await.unwrap();
                    }
                }
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn the_server_answers_and_relays_over_udp_and_tcp() {
        let (upstream, fake) = fake_upstream().await;
        // A silent resolver first: the relay moves on to the next.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dns = Arc::new(Dns {
            zone: zone(),
            upstreams: vec![silent.local_addr().unwrap(), upstream],
            peers: Peers::Loopback,
        });
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).await.unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(udp, tcp, dns, shutdown.clone()));

        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(addr).await.unwrap();
        for (name, expected) in [
            (
                "callee.default.svc.cluster.local",
                Ipv4Addr::new(10, 86, 0, 1),
            ),
            ("example.com", Ipv4Addr::new(192, 0, 2, 7)),
        ] {
            let q = query(42, RD, name, TYPE_A);
            client.send(&q).await.unwrap();
            let mut buf = vec![0; 512];
            let n = timeout(Duration::from_secs(10), client.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(parse(&buf[..n], q.len() - 12).4, [expected], "{name}");
        }

        let mut s = TcpStream::connect(addr).await.unwrap();
        for (name, expected) in [
            (
                "private.default.svc.cluster.local",
                Ipv4Addr::new(10, 86, 0, 1),
            ),
            ("example.com", Ipv4Addr::new(192, 0, 2, 8)),
        ] {
            let q = query(43, RD, name, TYPE_A);
            write_framed(&mut s, &q).await.unwrap();
            let a = timeout(Duration::from_secs(10), read_framed(&mut s))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(parse(&a, q.len() - 12).4, [expected], "{name}");
        }
        shutdown.cancel();
        timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
        fake.abort();
    }

    #[tokio::test]
    async fn a_relay_nobody_answers_is_a_server_failure() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let q = query(5, RD, "example.com", TYPE_A);
        assert_eq!(relay_udp(&q, &[silent.local_addr().unwrap()]).await, None);
    }
}
