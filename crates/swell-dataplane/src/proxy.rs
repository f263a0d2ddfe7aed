//! Forwarding one request to one replica: hop-by-hop headers removed, `Forwarded` and
//! `X-Forwarded-*` added, HTTP/1.1 over the replica's pool of keep-alive connections or
//! HTTP/2 (prior knowledge) over one multiplexed connection per replica. A response
//! that comes before the request's body is all sent is still relayed; an idempotent
//! request whose kept-alive connection the replica had just closed goes again on a new
//! one.

use crate::policy;
use crate::tasks::Tasks;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::cell::Cell;
use std::fmt::Write as _;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The body of a request to a replica.
pub type UpstreamBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// How long connecting to a replica may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle HTTP/1.1 connections kept per replica and ingress thread.
const MAX_IDLE: usize = 1024;

/// Why a replica could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The replica.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request's host cannot address an HTTP/2 request.
    #[error("invalid upstream URI")]
    Uri,
    /// The exchange on the ingress's own HTTP/1.1 path ([`crate::http1`]) failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A request that got no response; `request` is the request itself when none of it
/// left Swell, so it can go to another replica.
#[derive(Debug)]
pub struct SendError<R = Request<UpstreamBody>> {
    /// What went wrong.
    pub error: UpstreamError,
    /// The untouched request, if it was never sent.
    pub request: Option<R>,
}

impl<R> SendError<R> {
    /// The request never left Swell.
    pub fn unsent(error: UpstreamError, request: R) -> Self {
        SendError {
            error,
            request: Some(request),
        }
    }

    /// Some of the request may have reached the replica: it goes nowhere else.
    pub fn sent(error: impl Into<UpstreamError>) -> Self {
        SendError {
            error: error.into(),
            request: None,
        }
    }
}

impl From<hyper::client::conn::TrySendError<Request<UpstreamBody>>> for SendError {
    fn from(mut e: hyper::client::conn::TrySendError<Request<UpstreamBody>>) -> Self {
        let request = e.take_message();
        SendError {
            error: e.into_error().into(),
            request,
        }
    }
}

/// An HTTP/1.1 connection lent to one exchange; give it back with
/// [`Connections::give_back`] once the response body is done.
#[derive(Debug)]
pub struct Http1Conn(http1::SendRequest<UpstreamBody>);

/// The connections to one replica. Idle HTTP/1.1 connections are kept per ingress
/// thread, so that a request goes out on a connection its own thread drives.
#[derive(Debug, Default)]
pub struct Connections {
    idle: Mutex<Vec<Vec<http1::SendRequest<UpstreamBody>>>>,
    http2: Mutex<Option<http2::SendRequest<UpstreamBody>>>,
    /// Idle connections of the ingress's own HTTP/1.1 path ([`crate::http1`]).
    plain: Mutex<Vec<Vec<TcpStream>>>,
}

thread_local! {
    static THREAD_SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Numbers the calling ingress thread: the idle connections it opens are kept for it.
pub fn set_thread_slot(slot: usize) {
    THREAD_SLOT.set(slot);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new connection to the replica at `addr`, with Nagle's algorithm off.
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, UpstreamError> {
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(source)) => return Err(UpstreamError::Connect { addr, source }),
        Err(_) => {
            let source = std::io::ErrorKind::TimedOut.into();
            return Err(UpstreamError::Connect { addr, source });
        }
    };
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Whether the replica closed an idle connection, as the runtime last saw it (no
/// system call).
fn closed(tcp: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(tcp.ready(Interest::READABLE)).poll(&mut cx) {
        Poll::Ready(Ok(r)) => r.is_read_closed() || r.is_error(),
        Poll::Ready(Err(_)) => true,
        Poll::Pending => false,
    }
}

/// The calling thread's list among per-thread lists.
fn mine<T>(lists: &mut Vec<Vec<T>>) -> &mut Vec<T> {
    let slot = THREAD_SLOT.get();
    if lists.len() <= slot {
        lists.resize_with(slot + 1, Vec::new);
    }
    &mut lists[slot]
}

impl Connections {
    /// Sends `req` to the replica at `addr`: HTTP/2 when `h2c`, else HTTP/1.1. An
    /// HTTP/1.1 response comes with its connection, to give back when the body is done.
    /// A new connection's driver runs as one of `tasks`.
    pub async fn send(
        &self,
        addr: SocketAddr,
        h2c: bool,
        req: Request<UpstreamBody>,
        tasks: &Tasks,
    ) -> Result<(Response<Incoming>, Option<Http1Conn>), SendError> {
        if h2c {
            self.send_http2(addr, req, tasks).await.map(|r| (r, None))
        } else {
            self.send_http1(addr, req, tasks)
                .await
                .map(|(r, c)| (r, Some(Http1Conn(c))))
        }
    }

    /// Keeps an HTTP/1.1 connection for the next request, unless it closed.
    pub fn give_back(&self, conn: Http1Conn) {
        if conn.0.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        let mine = mine(&mut idle);
        if mine.len() < MAX_IDLE {
            mine.push(conn.0);
        }
    }

    /// An idle connection of this thread for the ingress's own HTTP/1.1 path, unless
    /// none is left open.
    pub fn take_plain(&self) -> Option<TcpStream> {
        let mut idle = lock(&self.plain);
        let mine = mine(&mut idle);
        while let Some(tcp) = mine.pop() {
            if !closed(&tcp) {
                return Some(tcp);
            }
        }
        None
    }

    /// Keeps a connection of the ingress's own HTTP/1.1 path, whose last response was
    /// read whole, for this thread's next request.
    pub fn give_back_plain(&self, tcp: TcpStream) {
        let mut idle = lock(&self.plain);
        let mine = mine(&mut idle);
        if mine.len() < MAX_IDLE {
            mine.push(tcp);
        }
    }

    /// An idle connection of this thread that can take a request now. Closed ones are
    /// dropped; busy ones (still sending a request body the replica did not wait for)
    /// stay for later.
    fn take_idle(&self) -> Option<http1::SendRequest<UpstreamBody>> {
        let mut idle = lock(&self.idle);
        let mine = idle.get_mut(THREAD_SLOT.get())?;
        let mut i = mine.len();
        while i > 0 {
            i -= 1;
            if mine[i].is_closed() {
                mine.swap_remove(i);
            } else if mine[i].is_ready() {
                return Some(mine.swap_remove(i));
            }
        }
        None
    }

    /// Closes every connection (the replica went away or misbehaved).
    pub fn close(&self) {
        lock(&self.idle).clear();
        lock(&self.http2).take();
        lock(&self.plain).clear();
    }

    async fn send_http1(
        &self,
        addr: SocketAddr,
        mut req: Request<UpstreamBody>,
        tasks: &Tasks,
    ) -> Result<(Response<Incoming>, http1::SendRequest<UpstreamBody>), SendError> {
        if req.uri().scheme().is_some() {
            // An absolute-form target (a client that took Swell for a proxy): origin-form.
            let pq = req.uri().path_and_query().cloned();
            *req.uri_mut() = Uri::from(pq.unwrap_or_else(|| PathAndQuery::from_static("/")));
        }
        *req.version_mut() = Version::HTTP_11;
        let mut fresh = false;
        loop {
            let idle = if fresh { None } else { self.take_idle() };
            let (mut sender, was_idle) = match idle {
                Some(c) => (c, true),
                None => match self.connect_http1(addr, tasks).await {
                    Ok(c) => (c, false),
                    Err(error) => return Err(SendError::unsent(error, req)),
                },
            };
            // What goes again if the replica closes this kept-alive connection under it.
            let again = if was_idle { replayable(&req) } else { None };
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(e) => match (SendError::from(e), again) {
                    // A kept-alive connection the replica had just closed: another one.
                    (
                        SendError {
                            request: Some(back),
                            ..
                        },
                        _,
                    ) if was_idle => req = back,
                    // Closed as the request went out on it, before any answer: an
                    // idempotent request goes once more, on a new connection.
                    (
                        SendError {
                            request: None,
                            error,
                        },
                        Some(copy),
                    ) if closed_under(&error) => {
                        tracing::debug!(error = %error, %addr, "kept-alive connection closed by the replica; retrying");
                        req = copy;
                        fresh = true;
                    }
                    (e, _) => return Err(e),
                },
            }
        }
    }

    async fn connect_http1(
        &self,
        addr: SocketAddr,
        tasks: &Tasks,
    ) -> Result<http1::SendRequest<UpstreamBody>, UpstreamError> {
        let io = TokioIo::new(EarlyResponse {
            tcp: connect(addr).await?,
            broken: false,
        });
        let (sender, conn) = http1::Builder::new().handshake(io).await?;
        tasks.spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, %addr, "HTTP/1.1 connection to replica ended");
            }
        });
        Ok(sender)
    }

    async fn send_http2(
        &self,
        addr: SocketAddr,
        mut req: Request<UpstreamBody>,
        tasks: &Tasks,
    ) -> Result<Response<Incoming>, SendError> {
        // HTTP/2 carries the host as :authority.
        let authority = req
            .headers_mut()
            .remove(header::HOST)
            .and_then(|h| h.to_str().ok().map(str::to_string))
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_else(|| addr.to_string());
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        match format!("http://{authority}{pq}").parse::<Uri>() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => {
                return Err(SendError::sent(UpstreamError::Uri));
            }
        }
        *req.version_mut() = Version::HTTP_2;
        let mut sender = match self.http2_sender(addr, tasks).await {
            Ok(s) => s,
            Err(error) => return Err(SendError::unsent(error, req)),
        };
        Ok(sender.try_send_request(req).await?)
    }

    async fn http2_sender(
        &self,
        addr: SocketAddr,
        tasks: &Tasks,
    ) -> Result<http2::SendRequest<UpstreamBody>, UpstreamError> {
        let cached = lock(&self.http2).clone().filter(|s| !s.is_closed());
        if let Some(mut s) = cached
            && s.ready().await.is_ok()
        {
            return Ok(s);
        }
        let io = TokioIo::new(connect(addr).await?);
        let (sender, conn) = http2::Builder::new(tasks.clone())
            .timer(TokioTimer::new())
            .handshake(io)
            .await?;
        tasks.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %addr, "HTTP/2 connection to replica ended");
            }
        });
        *lock(&self.http2) = Some(sender.clone());
        Ok(sender)
    }
}

/// A copy of an idempotent request without a body (RFC 9110 §9.2.2: it may go again),
/// or `None`.
fn replayable(req: &Request<UpstreamBody>) -> Option<Request<UpstreamBody>> {
    if !policy::idempotent(req.method().as_str()) || !http_body::Body::is_end_stream(req.body()) {
        return None;
    }
    let mut copy = Request::new(Empty::new().map_err(|e| match e {}).boxed_unsync());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Whether the connection closed (or was reset) before any response came.
fn closed_under(error: &UpstreamError) -> bool {
    let UpstreamError::Http(e) = error else {
        return false;
    };
    if e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            );
        }
        source = s.source();
    }
    false
}

/// A connection to a replica that may answer before it read the whole request (and
/// close): once writing fails because the replica closed, the rest of the request is
/// dropped rather than failing the exchange, so the response it sent is still read.
#[derive(Debug)]
struct EarlyResponse {
    tcp: TcpStream,
    /// The replica stopped reading; writes go nowhere.
    broken: bool,
}

impl EarlyResponse {
    /// Whether a write error means the replica closed (its answer may still be there).
    fn closed(&mut self, r: std::io::Result<usize>, len: usize) -> std::io::Result<usize> {
        match r {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                self.broken = true;
                Ok(len)
            }
            r => r,
        }
    }
}

impl AsyncRead for EarlyResponse {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for EarlyResponse {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.broken {
            return Poll::Ready(Ok(buf.len()));
        }
        let r = std::task::ready!(Pin::new(&mut self.tcp).poll_write(cx, buf));
        Poll::Ready(self.closed(r, buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        if self.broken {
            return Poll::Ready(Ok(len));
        }
        let r = std::task::ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs));
        Poll::Ready(self.closed(r, len))
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.broken {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.broken {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The headers that go no further than one hop, whatever `Connection` names (`TE`
/// too, unless it is `trailers`).
pub static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("http2-settings"),
];

/// True when the request asks to switch protocols (WebSocket and the like — not the
/// obsolete `h2c` upgrade, which is served as plain HTTP/1.1).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|u| !u.trim().eq_ignore_ascii_case("h2c"))
}

/// Removes hop-by-hop headers (those named by `Connection` too); `keep_upgrade` keeps
/// `Connection: upgrade` and `Upgrade` for a protocol switch. `TE: trailers` stays.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        if keep_upgrade && (n == header::CONNECTION || n == header::UPGRADE) {
            continue;
        }
        headers.remove(n);
    }
    if headers
        .get(header::TE)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Appends a forwarding header's previous hops (its value as received, if not blank)
/// and `, `, for this hop to follow.
fn previous_hops(out: &mut String, previous: Option<&str>) {
    if let Some(prev) = previous
        && !prev.trim().is_empty()
    {
        out.push_str(prev);
        out.push_str(", ");
    }
}

/// Appends the `X-Forwarded-For` value for this hop: the previous hops, then the peer.
pub fn x_forwarded_for(out: &mut String, previous: Option<&str>, peer: IpAddr) {
    previous_hops(out, previous);
    let _ = write!(out, "{}", peer.to_canonical());
}

/// Appends the `Forwarded` value for this hop (RFC 7239): the previous elements, then
/// `for=<peer>;host=<host>;proto=http`.
pub fn forwarded(out: &mut String, previous: Option<&str>, peer: IpAddr, host: Option<&str>) {
    previous_hops(out, previous);
    // The `for=` node: IPv6 quoted and bracketed.
    let _ = match peer.to_canonical() {
        IpAddr::V4(v4) => write!(out, "for={v4}"),
        IpAddr::V6(v6) => write!(out, "for=\"[{v6}]\""),
    };
    if let Some(h) = host {
        if h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            let _ = write!(out, ";host={h}");
        } else if !h.contains('"') {
            let _ = write!(out, ";host=\"{h}\"");
        }
    }
    out.push_str(";proto=http");
}

/// Adds `X-Forwarded-For` (the peer appended), `X-Forwarded-Proto` (when absent) and a
/// `Forwarded` element for this hop (RFC 7239), and makes sure `Host` is set.
pub fn add_forwarding(headers: &mut HeaderMap, peer: SocketAddr, host: Option<&str>) {
    let previous = |headers: &HeaderMap, name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut xff = String::with_capacity(96);
    x_forwarded_for(
        &mut xff,
        previous(headers, "x-forwarded-for").as_deref(),
        peer.ip(),
    );
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert("x-forwarded-for", v);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    if let Some(h) = host
        && !headers.contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(h)
    {
        headers.insert(header::HOST, v);
    }
    let mut value = String::with_capacity(96);
    forwarded(
        &mut value,
        previous(headers, "forwarded").as_deref(),
        peer.ip(),
        host,
    );
    if let Ok(v) = HeaderValue::try_from(value) {
        headers.insert(header::FORWARDED, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("x-custom", "stays"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["te", "x-custom"]);
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        let h2c = headers(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert!(!is_upgrade(&h2c));
    }

    #[test]
    fn forwarding_headers_append_this_hop() {
        let mut h = headers(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("host", "a.b.localhost:8080"),
        ]);
        add_forwarding(
            &mut h,
            "127.0.0.1:5000".parse().unwrap(),
            Some("a.b.localhost:8080"),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(
            h["forwarded"],
            "for=127.0.0.1;host=\"a.b.localhost:8080\";proto=http"
        );
        let mut v6 = HeaderMap::new();
        add_forwarding(&mut v6, "[::2]:1".parse().unwrap(), Some("x"));
        assert_eq!(v6["forwarded"], "for=\"[::2]\";host=x;proto=http");
        assert_eq!(v6["host"], "x");
    }
}
