//! The ingress: accepts HTTP/1.1 and h2c connections, finds each request's Route by
//! host, picks a Revision by weight, waits for a replica slot, and proxies the request
//! with the Revision's timeouts. Errors it makes itself carry a `swell-error` header.

use crate::Dataplane;
use crate::body::{BoxError, TimedBody};
use crate::pool::{Lease, RevisionKey, RevisionPool, Tracked};
use crate::proxy;
use crate::routes::request_host;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Every response body the ingress sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// The header naming why the data plane itself answered with an error.
pub const ERROR_HEADER: &str = "swell-error";

/// How long a stopping ingress waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(30);

fn empty() -> proxy::UpstreamBody {
    http_body_util::Empty::new()
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// Takes an unreachable replica out of rotation and puts it back once it accepts
/// connections again (or forgets it once the backend stops listing it).
fn suspect(pool: &Arc<RevisionPool>, addr: SocketAddr) {
    pool.evict(addr);
    let pool = pool.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        while pool.lists(addr) {
            let pause = if started.elapsed() < Duration::from_secs(5) {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            };
            tokio::time::sleep(pause).await;
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                pool.restore(addr);
                return;
            }
        }
    });
}

fn full(body: impl Into<Bytes>) -> ResponseBody {
    Full::new(body.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// A response the data plane makes itself.
fn error(status: StatusCode, reason: &'static str, message: String) -> Response<ResponseBody> {
    let mut r = Response::new(full(message + "\n"));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static(reason));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves the ingress on `listener` until `shutdown`, then drains (up to 30 s).
pub async fn serve(listener: TcpListener, dp: Arc<Dataplane>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
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
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let dp = dp.clone();
        let service = hyper::service::service_fn(move |req| {
            let dp = dp.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(dp, peer, req).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "ingress connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("ingress requests still in flight after {DRAIN:?}; stopping anyway");
    }
}

/// Holds a proxied request's slot and statistics; records its metrics when dropped.
struct InFlight {
    _lease: Lease,
    _tracked: Tracked,
    pool: Arc<RevisionPool>,
    status: u16,
    start: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.pool
            .metrics
            .observe(self.status, self.start.elapsed().as_secs_f64());
    }
}

/// Handles one request.
pub async fn handle(
    dp: Arc<Dataplane>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    let Some(host) = request_host(&req) else {
        return error(
            StatusCode::BAD_REQUEST,
            "no-host",
            "request has no Host".into(),
        );
    };
    let route = match dp.routes.lookup(&host) {
        Some(r) if !r.local_only || peer.ip().to_canonical().is_loopback() => r,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "unknown-host",
                format!("no Route serves host {host:?}"),
            );
        }
    };
    let mut splits = &route.splits;
    if let Some(tags) = &route.header_tags {
        let wanted = req
            .headers()
            .get("knative-serving-tag")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| tags.get(t));
        match wanted {
            Some(s) => splits = s,
            None => {
                req.headers_mut().insert(
                    "knative-serving-default-route",
                    HeaderValue::from_static("true"),
                );
            }
        }
    } else if route.tag_header_routing
        && let Some(tag) = route
            .tag
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
    {
        req.headers_mut().insert("knative-serving-tag", tag);
    }
    let Some(revision) = splits.pick() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-revision",
            format!("host {host:?} has no Revision to send traffic to"),
        );
    };
    let key = RevisionKey {
        namespace: route.namespace.clone(),
        name: revision.to_string(),
    };
    let Some(pool) = dp.revisions.get(&key) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unknown-revision",
            format!("Revision {:?} is not known to the data plane", key.name),
        );
    };
    let cfg = pool.config();
    let tracked = pool.track();
    let observe = |r: Response<ResponseBody>| {
        pool.metrics
            .observe(r.status().as_u16(), start.elapsed().as_secs_f64());
        r
    };
    let deadline = start + cfg.timeout;
    let upgrade = proxy::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let host_header = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    proxy::strip_hop_by_hop(req.headers_mut(), upgrade);
    proxy::add_forwarding(req.headers_mut(), peer, host_header.as_deref());
    let mut first_byte = deadline;
    for t in [cfg.response_start_timeout, cfg.idle_timeout]
        .into_iter()
        .flatten()
    {
        first_byte = first_byte.min(start + t);
    }
    // A bodiless request that never reached a replica (it had just died) can go to
    // another one.
    let replayable = !upgrade && http_body::Body::is_end_stream(req.body());
    let (parts, body) = req.into_parts();
    let spare = replayable.then(|| {
        (
            parts.method.clone(),
            parts.uri.clone(),
            parts.version,
            parts.headers.clone(),
        )
    });
    let mut next = Some(Request::from_parts(parts, body.boxed_unsync()));
    let mut attempt = 0;
    let (lease, mut resp) = loop {
        attempt += 1;
        let lease = match tokio::time::timeout_at(deadline, pool.acquire()).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(e)) => {
                return observe(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overload",
                    e.to_string(),
                ));
            }
            Err(_) => {
                return observe(error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    "request timeout (no replica became available)".into(),
                ));
            }
        };
        let upstream_req = match next.take() {
            Some(r) => r,
            None => {
                let Some((method, uri, version, headers)) = spare.clone() else {
                    unreachable!("only replayable requests are sent twice");
                };
                let mut r = Request::new(empty());
                *r.method_mut() = method;
                *r.uri_mut() = uri;
                *r.version_mut() = version;
                *r.headers_mut() = headers;
                r
            }
        };
        let addr = lease.addr();
        let sent = tokio::select! {
            r = dp.upstreams.send(addr, cfg.h2c, upstream_req) => r,
            () = tokio::time::sleep_until(first_byte) => {
                return observe(error(StatusCode::GATEWAY_TIMEOUT, "timeout", "request timeout".into()));
            }
        };
        match sent {
            Ok(r) => break (lease, r),
            Err(e) => {
                tracing::debug!(error = %e, revision = %key.name, %addr, "replica unreachable");
                if cfg.h2c {
                    dp.upstreams.forget(addr);
                }
                suspect(&pool, addr);
                if e.is_connect() && spare.is_some() && attempt < 3 {
                    continue;
                }
                return observe(error(
                    StatusCode::BAD_GATEWAY,
                    "upstream",
                    format!("error reaching Revision {:?}: {e}", key.name),
                ));
            }
        }
    };
    let status = resp.status().as_u16();
    let in_flight = InFlight {
        _lease: lease,
        _tracked: tracked,
        pool: pool.clone(),
        status,
        start,
    };
    if let Some(client) = client_upgrade
        && resp.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let upstream = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
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
        TimedBody::new(body, deadline, cfg.idle_timeout, can_append, in_flight).boxed_unsync()
    })
}
