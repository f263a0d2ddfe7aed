//! The request policy both ingress paths follow (hyper's and Swell's own HTTP/1.1
//! path): a request's Route by host, its Revision by weight or tag, its admission to the
//! Revision's statistics, a replica slot acquired within `timeoutSeconds`, the first
//! response byte within the first-byte deadline, requests that never left Swell sent to
//! another replica, unreachable replicas out of rotation until they answer again — and
//! every answer the ingress makes itself, as one [`Refusal`]. The paths keep only their
//! wire handling.

use crate::Dataplane;
use crate::pool::{AcquireError, Lease, Replica, RevisionConfig, RevisionPool, Tracked};
use crate::proxy::{SendError, UpstreamError};
use crate::routes::HostRoute;
use crate::wire::TagHeader;
use http::StatusCode;
use std::fmt;
use std::sync::Arc;
use tokio::time::{Duration, Instant, timeout_at};

/// Replicas a request that never left Swell tries in all.
const ATTEMPTS: u32 = 3;

/// Why the ingress answers a request itself. Each refusal knows its status and its
/// `swell-error` reason; the body is its `Display` and a newline, as plain text.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The request names no host.
    NoHost,
    /// No Route serves the host (or only cluster-local ones do, and the peer is outside).
    UnknownHost(String),
    /// The host's traffic goes to no Revision.
    NoRevision(String),
    /// The Revision picked has no pool in the data plane.
    UnknownRevision(Arc<str>),
    /// The Revision's queue is full, or the Revision went away while the request waited
    /// ([`AcquireError::QueueFull`], [`AcquireError::Gone`]).
    Overload(AcquireError),
    /// The Revision cannot start and has no ready replica: why, in one line.
    RevisionFailed(String),
    /// A deadline passed.
    Timeout(Deadline),
    /// The replica could not be reached, or failed the exchange.
    Upstream {
        /// The Revision's name.
        revision: String,
        /// What went wrong.
        error: UpstreamError,
    },
}

/// The deadline a [`Refusal::Timeout`] missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// `timeoutSeconds`, waiting for a replica with room.
    Acquire,
    /// The first response byte (`timeoutSeconds`, `responseStartTimeoutSeconds`,
    /// `idleTimeoutSeconds`, whichever ends first).
    FirstByte,
}

/// How one ingress path sends a request to a replica (hyper's client, or the ingress's
/// own HTTP/1.1 exchange); [`Admission::forward`] decides which replica, when, and
/// what a failure means.
pub(crate) trait Upstream {
    /// The request as the path holds it, until it is sent.
    type Request;
    /// What the replica answered (the response head, and what the path needs to relay
    /// the rest).
    type Answer;

    /// Sends `request` to `replica` and waits for its answer; hands the request back
    /// ([`SendError::unsent`]) when none of it left Swell. The future is dropped when
    /// the first-byte deadline passes.
    fn send(
        &mut self,
        replica: &Replica,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Answer, SendError<Self::Request>>> + Send;
}

/// Where a request goes: its Revision's pool, and what decides the Knative tag header
/// the replica gets.
#[derive(Debug)]
pub(crate) struct Destination {
    pool: Arc<RevisionPool>,
    route: Arc<HostRoute>,
    default_route: bool,
}

/// A request admitted to its Revision: counted in the Revision's statistics until
/// dropped, with its deadlines (from its arrival).
#[derive(Debug)]
pub(crate) struct Admission {
    dest: Destination,
    config: RevisionConfig,
    _tracked: Tracked,
    start: Instant,
    deadline: Instant,
    first_byte: Instant,
}

/// The Revision a request for `host` (lowercase, no port) goes to, given whether its
/// peer is inside the cluster ([`crate::ingress::Peers::inside`]) and its
/// `Knative-Serving-Tag` header: the Route's weighted pick, or the tag's target with
/// tag-header routing.
pub(crate) fn route(
    dp: &Dataplane,
    host: &str,
    inside: bool,
    tag: Option<&[u8]>,
) -> Result<Destination, Refusal> {
    let route = match dp.routes.lookup(host) {
        Some(r) if !r.local_only || inside => r,
        _ => return Err(Refusal::UnknownHost(host.to_string())),
    };
    let mut splits = &route.splits;
    let mut default_route = false;
    if let Some(tags) = &route.header_tags {
        let wanted = tag
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| tags.get(t));
        match wanted {
            Some(s) => splits = s,
            None => default_route = true,
        }
    }
    let Some(revision) = splits.pick() else {
        return Err(Refusal::NoRevision(host.to_string()));
    };
    let Some(pool) = dp.revisions.find(&route.namespace, revision) else {
        return Err(Refusal::UnknownRevision(revision.clone()));
    };
    Ok(Destination {
        pool,
        route,
        default_route,
    })
}

/// Takes an unreachable replica out of rotation (its connections closed) and puts it
/// back once it accepts connections again, or forgets it once the backend stops
/// listing it or the ingress drains (the re-probe is one of the data plane's tasks).
fn suspect(pool: &Arc<RevisionPool>, replica: &Replica, error: &UpstreamError) {
    let addr = replica.addr;
    tracing::debug!(%error, revision = %pool.key.name, %addr, "replica unreachable");
    replica.conns.close();
    pool.evict(addr);
    let pool = pool.clone();
    pool.tasks.clone().spawn(async move {
        let started = Instant::now();
        while pool.lists(addr) {
            let pause = if started.elapsed() < Duration::from_secs(5) {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                () = pool.tasks.draining() => return,
                () = tokio::time::sleep(pause) => {}
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                pool.restore(addr);
                return;
            }
        }
    });
}

/// Whether a request with this method may go again (RFC 9110 §9.2.2), when its body,
/// if any, is all in hand.
pub(crate) fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

// === impl Refusal ===

impl Refusal {
    /// The response's status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Refusal::NoHost => StatusCode::BAD_REQUEST,
            Refusal::UnknownHost(_) => StatusCode::NOT_FOUND,
            Refusal::NoRevision(_)
            | Refusal::UnknownRevision(_)
            | Refusal::Overload(_)
            | Refusal::RevisionFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Refusal::Upstream { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `swell-error` header's value.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Refusal::NoHost => "no-host",
            Refusal::UnknownHost(_) => "unknown-host",
            Refusal::NoRevision(_) => "no-revision",
            Refusal::UnknownRevision(_) => "unknown-revision",
            Refusal::Overload(_) => "overload",
            Refusal::RevisionFailed(_) => "revision-failed",
            Refusal::Timeout(_) => "timeout",
            Refusal::Upstream { .. } => "upstream",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoHost => f.write_str("request has no Host"),
            Refusal::UnknownHost(host) => write!(f, "no Route serves host {host:?}"),
            Refusal::NoRevision(host) => {
                write!(f, "host {host:?} has no Revision to send traffic to")
            }
            Refusal::UnknownRevision(revision) => {
                write!(f, "Revision {revision:?} is not known to the data plane")
            }
            Refusal::Overload(e) => e.fmt(f),
            Refusal::RevisionFailed(why) => f.write_str(why),
            Refusal::Timeout(Deadline::Acquire) => {
                f.write_str("request timeout (no replica became available)")
            }
            Refusal::Timeout(Deadline::FirstByte) => f.write_str("request timeout"),
            Refusal::Upstream { revision, error } => {
                write!(f, "error reaching Revision {revision:?}: {error}")
            }
        }
    }
}

impl From<AcquireError> for Refusal {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::Failed(why) => Refusal::RevisionFailed(why),
            e @ (AcquireError::QueueFull | AcquireError::Gone) => Refusal::Overload(e),
        }
    }
}

// === impl Destination ===

impl Destination {
    /// The tag header the replica gets (§2.3).
    pub(crate) fn tag_header(&self) -> TagHeader<'_> {
        if self.default_route {
            TagHeader::DefaultRoute
        } else if self.route.header_tags.is_none()
            && self.route.tag_header_routing
            && let Some(tag) = &self.route.tag
        {
            TagHeader::Tag(tag)
        } else {
            TagHeader::None
        }
    }

    /// Admits the request that arrived at `start` to its Revision.
    pub(crate) fn admit(self, start: Instant) -> Admission {
        let (config, tracked) = self.pool.admit(start);
        Admission::new(self, config, tracked, start)
    }

    /// Like [`Destination::admit`], for a request that only comes in when the
    /// Revision's configuration passes `accept`; nothing is counted otherwise.
    pub(crate) fn admit_if(
        self,
        start: Instant,
        accept: impl FnOnce(&RevisionConfig) -> bool,
    ) -> Option<Admission> {
        let (config, tracked) = self.pool.admit_if(start, accept)?;
        Some(Admission::new(self, config, tracked, start))
    }
}

// === impl Admission ===

impl Admission {
    fn new(dest: Destination, config: RevisionConfig, tracked: Tracked, start: Instant) -> Self {
        let deadline = start + config.timeout;
        let first_byte = [config.response_start_timeout, config.idle_timeout]
            .into_iter()
            .flatten()
            .fold(deadline, |d, t| d.min(start + t));
        Admission {
            dest,
            config,
            _tracked: tracked,
            start,
            deadline,
            first_byte,
        }
    }

    /// The tag header the replica gets.
    pub(crate) fn tag_header(&self) -> TagHeader<'_> {
        self.dest.tag_header()
    }

    /// The Revision's configuration, as the request was admitted.
    pub(crate) fn config(&self) -> &RevisionConfig {
        &self.config
    }

    /// When the whole request must be over (`timeoutSeconds` from its arrival).
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Records the request's response (its status, and its latency from its arrival)
    /// in the Revision's metrics.
    pub(crate) fn observe(&self, status: u16) {
        self.dest
            .pool
            .metrics
            .observe(status, self.start.elapsed().as_secs_f64());
    }

    /// Sends `request` to a replica of the Revision through `upstream`.
    ///
    /// A replica slot is acquired within the request's deadline; the replica must
    /// answer by the first-byte deadline. A replica the send fails on is suspected: its
    /// connections close and it leaves rotation until it accepts connections again
    /// ([`RevisionPool::evict`], [`RevisionPool::restore`]). When the request never
    /// left Swell (the send hands it back), it goes to another replica, up to three in
    /// all. Returns the slot (give it back when the response is done) with the answer,
    /// or the refusal for the client, already counted in the Revision's metrics.
    pub(crate) async fn forward<U: Upstream>(
        &self,
        upstream: &mut U,
        mut request: U::Request,
    ) -> Result<(Lease, U::Answer), Refusal> {
        let pool = &self.dest.pool;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lease = match timeout_at(self.deadline, pool.acquire()).await {
                Ok(Ok(lease)) => lease,
                Ok(Err(e)) => return Err(self.refuse(e.into())),
                Err(_) => return Err(self.refuse(Refusal::Timeout(Deadline::Acquire))),
            };
            let sent = upstream.send(lease.replica(), request);
            let error = match timeout_at(self.first_byte, sent).await {
                Ok(Ok(answer)) => return Ok((lease, answer)),
                Ok(Err(e)) => e,
                Err(_) => return Err(self.refuse(Refusal::Timeout(Deadline::FirstByte))),
            };
            suspect(pool, lease.replica(), &error.error);
            match error.request {
                // It never left Swell (the replica had just died): another can take it.
                Some(unsent) if attempt < ATTEMPTS => request = unsent,
                _ => {
                    return Err(self.refuse(Refusal::Upstream {
                        revision: pool.key.name.clone(),
                        error: error.error,
                    }));
                }
            }
        }
    }

    /// A refusal of this admitted request, counted in the Revision's metrics.
    fn refuse(&self, refusal: Refusal) -> Refusal {
        self.observe(refusal.status().as_u16());
        refusal
    }
}

#[cfg(test)]
mod tests;
