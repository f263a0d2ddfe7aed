//! The ingress: accepts HTTP/1.1 and h2c connections, finds each request's Route by
//! host, picks a Revision by weight, waits for a replica slot, and proxies the request
//! with the Revision's timeouts. Errors it makes itself carry a `swell-error` header.

use crate::Dataplane;
use crate::body::{BoxError, TimedBody};
use crate::pool::{Lease, RevisionPool, Tracked};
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

/// Runs the ingress on `listener` until `shutdown`, then drains (up to 30 s): one
/// single-threaded runtime per thread, `threads` of them, all accepting from the same
/// socket. As in nginx's worker model, a connection, its requests and their exchanges
/// with replicas stay on one thread: no work stealing, no cross-thread wake-ups on the
/// hot path. Blocks until every thread has drained.
pub fn run(
    listener: std::net::TcpListener,
    dp: Arc<Dataplane>,
    shutdown: CancellationToken,
    threads: usize,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut workers = Vec::new();
    for i in 0..threads.max(1) {
        let listener = listener.try_clone()?;
        let (dp, shutdown) = (dp.clone(), shutdown.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let worker = std::thread::Builder::new()
            .name(format!("swell-ingress-{i}"))
            .spawn(move || {
                proxy::set_thread_slot(i);
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => serve(l, dp, shutdown).await,
                        Err(e) => tracing::error!(error = %e, "ingress thread cannot listen"),
                    }
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

/// Serves the ingress on `listener` (in the current runtime) until `shutdown`, then
/// drains (up to 30 s).
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

/// Holds a proxied request's slot, statistics and connection; when dropped (the
/// response is done), records its metrics and gives the connection back.
struct InFlight {
    lease: Lease,
    _tracked: Tracked,
    conn: Option<proxy::Http1Conn>,
    status: u16,
    start: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.lease.replica().conns.give_back(conn);
        }
        self.lease
            .pool()
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
    let route = {
        let Some(host) = request_host(&req) else {
            return error(
                StatusCode::BAD_REQUEST,
                "no-host",
                "request has no Host".into(),
            );
        };
        match dp.routes.lookup(&host) {
            Some(r) if !r.local_only || peer.ip().to_canonical().is_loopback() => r,
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    "unknown-host",
                    format!("no Route serves host {host:?}"),
                );
            }
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
            format!(
                "host {:?} has no Revision to send traffic to",
                request_host(&req).unwrap_or_default()
            ),
        );
    };
    let Some(pool) = dp.revisions.find(&route.namespace, revision) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unknown-revision",
            format!("Revision {revision:?} is not known to the data plane"),
        );
    };
    let (cfg, tracked) = pool.admit(start);
    let observe = |r: Response<ResponseBody>| {
        pool.metrics
            .observe(r.status().as_u16(), start.elapsed().as_secs_f64());
        r
    };
    let deadline = start + cfg.timeout;
    let upgrade = proxy::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let host_header = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok().map(str::to_string),
        None => req.uri().authority().map(|a| a.to_string()),
    };
    proxy::strip_hop_by_hop(req.headers_mut(), upgrade);
    proxy::add_forwarding(req.headers_mut(), peer, host_header.as_deref());
    let mut first_byte = deadline;
    for t in [cfg.response_start_timeout, cfg.idle_timeout]
        .into_iter()
        .flatten()
    {
        first_byte = first_byte.min(start + t);
    }
    let mut upstream_req = req.map(|b| b.boxed_unsync());
    let mut attempt = 0;
    let (lease, mut resp, conn) = loop {
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
        let replica = lease.replica();
        let sent = tokio::select! {
            r = replica.conns.send(replica.addr, cfg.h2c, upstream_req) => r,
            () = tokio::time::sleep_until(first_byte) => {
                return observe(error(StatusCode::GATEWAY_TIMEOUT, "timeout", "request timeout".into()));
            }
        };
        match sent {
            Ok((resp, conn)) => break (lease, resp, conn),
            Err(e) => {
                let addr = replica.addr;
                tracing::debug!(error = %e.error, revision = %pool.key.name, %addr, "replica unreachable");
                replica.conns.close();
                suspect(&pool, addr);
                // A request that never left Swell (the replica had just died) can go
                // to another one.
                match e.request {
                    Some(r) if attempt < 3 => upstream_req = r,
                    _ => {
                        return observe(error(
                            StatusCode::BAD_GATEWAY,
                            "upstream",
                            format!("error reaching Revision {:?}: {}", pool.key.name, e.error),
                        ));
                    }
                }
            }
        }
    };
    let status = resp.status().as_u16();
    let upgraded = client_upgrade.is_some() && resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let in_flight = InFlight {
        lease,
        _tracked: tracked,
        // An upgraded connection is the client's now.
        conn: conn.filter(|_| !upgraded),
        status,
        start,
    };
    if let Some(client) = client_upgrade
        && upgraded
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
