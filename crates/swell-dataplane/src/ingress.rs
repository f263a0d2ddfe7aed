//! The ingress: accepts HTTP/1.1 and h2c connections and serves them, each request
//! first on Swell's own HTTP/1.1 path ([`crate::http1`]), else with hyper (here); both
//! follow the request policy of [`crate::policy`] (Route by host, Revision by weight,
//! replica slot, timeouts, retries). Errors it makes itself carry a `swell-error` header.

use crate::Dataplane;
use crate::body::{BoxError, TimedBody};
use crate::http1;
use crate::policy::{self, Admission, Refusal};
use crate::pool::{Lease, Replica};
use crate::proxy;
use crate::routes::request_host;
use crate::tasks::Tasks;
use crate::wire::TagHeader;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every response body the ingress sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// The header naming why the data plane itself answered with an error.
pub const ERROR_HEADER: &str = "swell-error";

/// How long a stopping ingress waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(30);

fn full(body: impl Into<Bytes>) -> ResponseBody {
    Full::new(body.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// The response of a request the ingress answers itself.
fn refused(refusal: &Refusal) -> Response<ResponseBody> {
    let mut r = Response::new(full(format!("{refusal}\n")));
    *r.status_mut() = refusal.status();
    r.headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static(refusal.reason()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Who, among the peers of a listener, is inside the cluster: they may reach
/// cluster-local hosts, which do not exist for anyone else (Knative's 404).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peers {
    /// Loopback peers only: the public listener (`--http-addr`).
    Loopback,
    /// Loopback peers and those in this IPv4 network (address, prefix length): a
    /// listener on the replicas' network, which only replicas reach.
    Replicas(std::net::Ipv4Addr, u8),
}

impl Peers {
    /// Whether `peer` is inside the cluster.
    pub fn inside(self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        if peer.is_loopback() {
            return true;
        }
        match (self, peer) {
            (Peers::Replicas(net, len), std::net::IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(len.min(32)))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net) & mask
            }
            _ => false,
        }
    }
}

/// Runs the ingress on `listeners` (each with who its peers are) until `shutdown`,
/// then drains (up to 30 s): one single-threaded runtime per thread, `threads` of
/// them, all accepting from the same sockets. As in nginx's worker model, a
/// connection, its requests and their exchanges with replicas stay on one thread: no
/// work stealing, no cross-thread wake-ups on the hot path. Blocks until every thread
/// has drained.
pub fn run(
    listeners: Vec<(std::net::TcpListener, Peers)>,
    dp: Arc<Dataplane>,
    shutdown: CancellationToken,
    threads: usize,
) -> std::io::Result<()> {
    for (l, _) in &listeners {
        l.set_nonblocking(true)?;
    }
    let mut workers = Vec::new();
    for i in 0..threads.max(1) {
        let listeners = listeners
            .iter()
            .map(|(l, peers)| Ok((l.try_clone()?, *peers)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let (dp, shutdown) = (dp.clone(), shutdown.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let worker = std::thread::Builder::new()
            .name(format!("swell-ingress-{i}"))
            .spawn(move || {
                proxy::set_thread_slot(i);
                runtime.block_on(async move {
                    let mut serving = tokio::task::JoinSet::new();
                    for (listener, peers) in listeners {
                        match TcpListener::from_std(listener) {
                            Ok(l) => {
                                serving.spawn(serve(l, dp.clone(), shutdown.clone(), peers));
                            }
                            Err(e) => tracing::error!(error = %e, "ingress thread cannot listen"),
                        }
                    }
                    while serving.join_next().await.is_some() {}
                });
            })?;
        workers.push(worker);
    }
    for w in workers {
        if w.join().is_err() {
            tracing::error!("an ingress thread panicked");
        }
    }
    Ok(())
}

/// What every connection of one ingress thread shares.
#[derive(Debug)]
pub(crate) struct Ingress {
    pub dp: Arc<Dataplane>,
    pub shutdown: CancellationToken,
    /// Who the listener's peers are.
    pub peers: Peers,
    hyper: auto::Builder<Tasks>,
}

/// Serves the ingress on `listener` (in the current runtime) until `shutdown`, then
/// drains (up to 30 s). Connections start on Swell's own HTTP/1.1 path
/// ([`crate::http1`]); what it does not serve, hyper does ([`serve_hyper`]).
pub async fn serve(
    listener: TcpListener,
    dp: Arc<Dataplane>,
    shutdown: CancellationToken,
    peers: Peers,
) {
    let mut hyper = auto::Builder::new(dp.revisions.tasks().clone());
    hyper.http1().timer(TokioTimer::new());
    hyper.http2().timer(TokioTimer::new());
    // A token of this thread's own: connections wait on it, not on one shared by all.
    let ingress = Arc::new(Ingress {
        dp,
        shutdown: shutdown.child_token(),
        peers,
        hyper,
    });
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = ingress.shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(http1::serve_connection(ingress.clone(), stream, peer));
    }
    drop(listener);
    connections.close();
    let drained = tokio::time::timeout(DRAIN, async {
        connections.wait().await;
        // Every request is done: the connections to replicas are idle, and closing
        // them ends their drivers; open WebSockets end when either side closes.
        ingress.dp.revisions.close_connections();
        ingress.dp.revisions.tasks().wait().await;
    });
    if drained.await.is_err() {
        tracing::warn!(
            tasks = ingress.dp.revisions.tasks().len(),
            "ingress requests or WebSockets still open after {DRAIN:?}; stopping anyway"
        );
    }
}

/// Serves the rest of a connection with hyper (HTTP/1 with upgrades, or HTTP/2),
/// starting with the bytes already read from it; on shutdown it finishes what is in
/// flight and closes.
pub(crate) async fn serve_hyper(
    ingress: &Ingress,
    stream: TcpStream,
    read: Vec<u8>,
    peer: SocketAddr,
) {
    let dp = ingress.dp.clone();
    let inside = ingress.peers.inside(peer.ip());
    let service = hyper::service::service_fn(move |req| {
        let dp = dp.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(dp, peer, inside, req).await) }
    });
    let io = TokioIo::new(Replay {
        read,
        at: 0,
        stream,
    });
    let conn = ingress.hyper.serve_connection_with_upgrades(io, service);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = ingress.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, %peer, "ingress connection ended");
    }
}

/// A connection whose first bytes were already read: they are read again first.
#[derive(Debug)]
struct Replay {
    read: Vec<u8>,
    at: usize,
    stream: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at < this.read.len() {
            let n = buf.remaining().min(this.read.len() - this.at);
            buf.put_slice(&this.read[this.at..this.at + n]);
            this.at += n;
            if this.at == this.read.len() {
                this.read = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Holds a proxied request's slot, statistics and connection; when dropped (the
/// response is done), records its metrics and gives the connection back.
struct InFlight {
    lease: Lease,
    admission: Admission,
    conn: Option<proxy::Http1Conn>,
    status: u16,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.lease.replica().conns.give_back(conn);
        }
        self.admission.observe(self.status);
    }
}

/// Hyper's client to a replica: HTTP/1.1 on its keep-alive connections or, for `h2c`,
/// HTTP/2.
struct HyperClient<'a> {
    h2c: bool,
    tasks: &'a Tasks,
}

impl policy::Upstream for HyperClient<'_> {
    type Request = Request<proxy::UpstreamBody>;
    type Answer = (Response<Incoming>, Option<proxy::Http1Conn>);

    fn send(
        &mut self,
        replica: &Replica,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Answer, proxy::SendError>> + Send {
        replica
            .conns
            .send(replica.addr, self.h2c, request, self.tasks)
    }
}

/// Handles one request from `peer`, which is `inside` the cluster or not.
pub async fn handle(
    dp: Arc<Dataplane>,
    peer: SocketAddr,
    inside: bool,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    let dest = {
        let Some(host) = request_host(&req) else {
            return refused(&Refusal::NoHost);
        };
        let tag = req.headers().get("knative-serving-tag");
        match policy::route(&dp, &host, inside, tag.map(HeaderValue::as_bytes)) {
            Ok(d) => d,
            Err(refusal) => return refused(&refusal),
        }
    };
    match dest.tag_header() {
        TagHeader::None => {}
        TagHeader::DefaultRoute => {
            req.headers_mut().insert(
                "knative-serving-default-route",
                HeaderValue::from_static("true"),
            );
        }
        TagHeader::Tag(tag) => {
            if let Ok(tag) = HeaderValue::from_str(tag) {
                req.headers_mut().insert("knative-serving-tag", tag);
            }
        }
    }
    let admission = dest.admit(start);
    let upgrade = proxy::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let host_header = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok().map(str::to_string),
        None => req.uri().authority().map(|a| a.to_string()),
    };
    proxy::strip_hop_by_hop(req.headers_mut(), upgrade);
    proxy::add_forwarding(req.headers_mut(), peer, host_header.as_deref());
    let cfg = admission.config();
    let h2c = cfg.h2c || (cfg.autodetect_http2 && req.version() == hyper::Version::HTTP_2);
    let upstream_req = req.map(|b| b.boxed_unsync());
    let sent = admission
        .forward(
            &mut HyperClient {
                h2c,
                tasks: dp.revisions.tasks(),
            },
            upstream_req,
        )
        .await;
    let (lease, (mut resp, conn)) = match sent {
        Ok(sent) => sent,
        Err(refusal) => return refused(&refusal),
    };
    let (deadline, idle_timeout) = (admission.deadline(), admission.config().idle_timeout);
    let status = resp.status().as_u16();
    let upgraded = client_upgrade.is_some() && resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let in_flight = InFlight {
        lease,
        admission,
        // An upgraded connection is the client's now.
        conn: conn.filter(|_| !upgraded),
        status,
    };
    if let Some(client) = client_upgrade
        && upgraded
    {
        let upstream = hyper::upgrade::on(&mut resp);
        dp.revisions.tasks().spawn(async move {
            let _held = in_flight;
            if let (Ok(c), Ok(u)) = tokio::join!(client, upstream) {
                let _ =
                    tokio::io::copy_bidirectional(&mut TokioIo::new(c), &mut TokioIo::new(u)).await;
            }
        });
        return resp.map(|_| full(Bytes::new()));
    }
    proxy::strip_hop_by_hop(resp.headers_mut(), false);
    let can_append = !resp.headers().contains_key(header::CONTENT_LENGTH);
    resp.map(|body| {
        TimedBody::new(body, deadline, idle_timeout, can_append, in_flight).boxed_unsync()
    })
}

#[cfg(test)]
mod tests {
    use super::Peers;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn cluster_local_hosts_are_for_loopback_and_the_replica_network() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let replicas = Peers::Replicas(Ipv4Addr::new(10, 86, 0, 0), 16);
        for (peer, public, on_replica_network) in [
            ("127.0.0.1", true, true),
            ("127.86.0.1", true, true),
            ("::1", true, true),
            ("::ffff:127.0.0.1", true, true),
            ("10.86.3.4", false, true),
            ("::ffff:10.86.3.4", false, true),
            ("10.87.0.1", false, false),
            ("192.168.1.10", false, false),
            ("2001:db8::1", false, false),
        ] {
            assert_eq!(Peers::Loopback.inside(ip(peer)), public, "{peer}");
            assert_eq!(replicas.inside(ip(peer)), on_replica_network, "{peer}");
        }
        assert!(Peers::Replicas(Ipv4Addr::UNSPECIFIED, 0).inside(ip("192.0.2.1")));
    }
}
