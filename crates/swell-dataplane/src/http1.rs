//! The ingress's own HTTP/1.1 path: a client connection's plain requests (HTTP/1.1,
//! a `Content-Length` body of at most 16 KiB, no upgrade) are parsed once, their heads
//! rewritten straight into the bytes the replica gets, and the response relayed with
//! its head rewritten the same way: no header maps, no second codec, no task hop per
//! request. The first request it does not serve, and all after it, go to hyper
//! ([`ingress::serve_hyper`]) with the bytes already read. Routing, admission, the
//! Revision's queue, timeouts, retries and refusals are the request policy both paths
//! follow ([`crate::policy`]).

use crate::ingress::{self, Ingress};
use crate::policy::{self, Admission, Refusal};
use crate::pool::Replica;
use crate::proxy::{self, SendError};
use crate::routes::host_name;
use crate::wire::{self, Framing, Parsed};
use std::cell::Cell;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Duration, Instant, timeout_at};

/// How long a client may take to send a request's head (and body), idle keep-alive
/// time included: hyper's default.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Room a read gets.
const READ_SIZE: usize = 8 * 1024;

/// How a connection goes on after one request.
enum Next {
    KeepAlive,
    Close,
    /// Hyper serves the rest.
    Hyper,
}

/// A request read whole and admitted, its head rewritten for the replica.
struct Admitted {
    admission: Admission,
    head_request: bool,
    /// It may go again if the replica closes a kept-alive connection under it (its
    /// body, if any, is all in hand).
    idempotent: bool,
    close: bool,
}

/// What the bytes read so far lead to.
enum Prepared {
    Partial,
    Hyper,
    Refuse {
        refusal: Refusal,
        head_request: bool,
        close: bool,
    },
    Forward(Admitted),
}

/// One client connection and its buffers.
struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    /// Bytes read from the client and not yet handled.
    read: Vec<u8>,
    /// Bytes to write: the request for the replica, then the response for the client.
    out: Vec<u8>,
    /// Bytes read from the replica and not yet relayed.
    up: Vec<u8>,
}

/// Serves a client connection until it closes, then hyper serves whatever is left.
pub(crate) async fn serve_connection(ingress: Arc<Ingress>, stream: TcpStream, peer: SocketAddr) {
    let mut client = Client {
        stream,
        peer,
        read: Vec::with_capacity(READ_SIZE),
        out: Vec::with_capacity(READ_SIZE),
        up: Vec::with_capacity(READ_SIZE),
    };
    loop {
        match client.serve_one(&ingress).await {
            Next::KeepAlive => {}
            Next::Close => return,
            Next::Hyper => break,
        }
    }
    let Client {
        stream, read, peer, ..
    } = client;
    ingress::serve_hyper(&ingress, stream, read, peer).await;
}

/// Reads more into `buf`, keeping room for a full read.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    stream.read_buf(buf).await
}

/// Writes `a` then `b`, in one system call when the socket takes them.
async fn write_both(stream: &mut TcpStream, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = if b.is_empty() {
            stream.write(a).await?
        } else if a.is_empty() {
            stream.write(b).await?
        } else {
            stream
                .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

thread_local! {
    static DATE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
}

/// The `Date` header's value now (IMF-fixdate), formatted once a second per thread.
fn http_date() -> [u8; 29] {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (cached, value) = DATE.get();
    if cached == second {
        return value;
    }
    let mut value = [0; 29];
    let text = httpdate::fmt_http_date(now);
    let n = text.len().min(value.len());
    value[..n].copy_from_slice(&text.as_bytes()[..n]);
    DATE.set((second, value));
    value
}

fn invalid(what: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Client {
    /// Serves one request (or hands the connection over).
    async fn serve_one(&mut self, ingress: &Ingress) -> Next {
        let deadline = Instant::now() + HEADER_READ_TIMEOUT;
        let prepared = loop {
            match self.prepare(ingress, Instant::now()) {
                Prepared::Partial => {}
                Prepared::Hyper => return Next::Hyper,
                p => break p,
            }
            let idle = self.read.is_empty();
            let read = tokio::select! {
                biased;
                r = timeout_at(deadline, read_more(&mut self.stream, &mut self.read)) => r,
                () = ingress.shutdown.cancelled(), if idle => return Next::Close,
            };
            if !matches!(read, Ok(Ok(n)) if n > 0) {
                return Next::Close;
            }
        };
        match prepared {
            Prepared::Forward(admitted) => self.forward(ingress, admitted).await,
            Prepared::Refuse {
                refusal,
                head_request,
                close,
            } => self.refuse(&refusal, head_request, close).await,
            Prepared::Partial | Prepared::Hyper => Next::Hyper,
        }
    }

    /// Parses what was read; for a whole request, finds its Revision, admits it and
    /// writes what the replica gets into `out`. The request's bytes are consumed unless
    /// it is partial or hyper's.
    fn prepare(&mut self, ingress: &Ingress, now: Instant) -> Prepared {
        let mut slots = wire::header_slots();
        let req = match wire::parse_request(&self.read, &mut slots) {
            Parsed::Partial => return Prepared::Partial,
            Parsed::Other => return Prepared::Hyper,
            Parsed::Request(r) => r,
        };
        let consumed = req.len + req.body_len;
        let (head_request, close) = (req.method == "HEAD", req.close);
        let idempotent = policy::idempotent(req.method);
        let tag = req.header("knative-serving-tag");
        let host = host_name(req.host);
        let inside = ingress.peers.inside(self.peer.ip());
        let dest = match policy::route(&ingress.dp, &host, inside, tag) {
            Ok(d) => d,
            Err(refusal) => {
                self.read.drain(..consumed);
                return Prepared::Refuse {
                    refusal,
                    head_request,
                    close,
                };
            }
        };
        // A Revision that speaks h2c is hyper's to reach.
        let Some(admission) = dest.admit_if(now, |c| !c.h2c) else {
            return Prepared::Hyper;
        };
        self.out.clear();
        wire::write_request(&mut self.out, &req, self.peer.ip(), admission.tag_header());
        self.out.extend_from_slice(&self.read[req.len..consumed]);
        self.read.drain(..consumed);
        Prepared::Forward(Admitted {
            admission,
            head_request,
            idempotent,
            close,
        })
    }

    /// Answers with an error of the ingress's own.
    async fn refuse(&mut self, refusal: &Refusal, head_request: bool, close: bool) -> Next {
        self.out.clear();
        wire::write_refusal(
            &mut self.out,
            refusal.status(),
            refusal.reason(),
            &refusal.to_string(),
            &http_date(),
            head_request,
            close,
        );
        match self.stream.write_all(&self.out).await {
            Ok(()) if !close => Next::KeepAlive,
            _ => Next::Close,
        }
    }

    /// Sends an admitted request to a replica and relays its response.
    async fn forward(&mut self, ingress: &Ingress, admitted: Admitted) -> Next {
        let Admitted {
            admission,
            head_request,
            idempotent,
            close,
        } = admitted;
        let mut exchange = Exchange {
            out: &mut self.out,
            up: &mut self.up,
            shutdown: &ingress.shutdown,
            head_request,
            idempotent,
            close,
        };
        let sent = admission.forward(&mut exchange, ()).await;
        let close = exchange.close;
        let (lease, (mut tcp, (status, framing, keep_alive))) = match sent {
            Ok(sent) => sent,
            Err(refusal) => return self.refuse(&refusal, head_request, close).await,
        };
        let relayed = self
            .relay(
                &mut tcp,
                framing,
                admission.deadline(),
                admission.config().idle_timeout,
            )
            .await;
        if relayed == Relayed::Whole && keep_alive && self.up.is_empty() {
            lease.replica().conns.give_back_plain(tcp);
        }
        drop(lease);
        admission.observe(status);
        drop(admission);
        match relayed {
            Relayed::Whole | Relayed::Ended if !close => Next::KeepAlive,
            _ => Next::Close,
        }
    }

    /// Relays the response body behind the head in `out` (and whatever of it is in
    /// `up`), within the request's deadline and idle timeout.
    async fn relay(
        &mut self,
        tcp: &mut TcpStream,
        framing: Framing,
        deadline: Instant,
        idle_timeout: Option<Duration>,
    ) -> Relayed {
        let Client {
            stream, out, up, ..
        } = self;
        let mut send = async |out: &[u8], body: &[u8]| {
            matches!(
                timeout_at(deadline, write_both(stream, out, body)).await,
                Ok(Ok(()))
            )
        };
        let wait = || idle_timeout.map_or(deadline, |i| deadline.min(Instant::now() + i));
        match framing {
            Framing::Empty => {
                if send(out, &[]).await {
                    Relayed::Whole
                } else {
                    Relayed::Cut
                }
            }
            Framing::Length(length) => {
                let mut left = length;
                loop {
                    let n = up.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    if !send(out, &up[..n]).await {
                        return Relayed::Cut;
                    }
                    out.clear();
                    up.drain(..n);
                    left -= n as u64;
                    if left == 0 {
                        return Relayed::Whole;
                    }
                    // A body with a length cannot be ended early: a timeout cuts it.
                    match timeout_at(wait(), read_more(tcp, up)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return Relayed::Cut,
                    }
                }
            }
            Framing::Chunked | Framing::UntilClose => {
                let mut chunks = (framing == Framing::Chunked).then(wire::ChunkedDecoder::default);
                loop {
                    match &mut chunks {
                        Some(decoder) => {
                            match decoder.decode(up, |data| wire::write_chunk(out, data)) {
                                Ok(used) => {
                                    up.drain(..used);
                                }
                                Err(_) => return Relayed::Cut,
                            }
                        }
                        None => {
                            wire::write_chunk(out, up);
                            up.clear();
                        }
                    }
                    let done = chunks.as_ref().is_some_and(wire::ChunkedDecoder::is_done);
                    if done {
                        out.extend_from_slice(wire::LAST_CHUNK);
                    }
                    if !send(out, &[]).await {
                        return Relayed::Cut;
                    }
                    out.clear();
                    if done {
                        return Relayed::Whole;
                    }
                    match timeout_at(wait(), read_more(tcp, up)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        // The replica closed: the end of an until-close body.
                        Ok(Ok(_)) if chunks.is_none() => {
                            return if send(wire::LAST_CHUNK, &[]).await {
                                Relayed::Ended
                            } else {
                                Relayed::Cut
                            };
                        }
                        Ok(_) => return Relayed::Cut,
                        // Timed out: the message says so and the body ends cleanly.
                        Err(_) => {
                            wire::write_chunk(out, crate::body::TIMEOUT_TEXT.as_bytes());
                            out.extend_from_slice(wire::LAST_CHUNK);
                            return if send(out, &[]).await {
                                Relayed::Ended
                            } else {
                                Relayed::Cut
                            };
                        }
                    }
                }
            }
        }
    }
}

/// The ingress's own exchange with a replica, on a plain keep-alive connection: the
/// request's bytes in `out`, the response's read into `up`.
struct Exchange<'a> {
    out: &'a mut Vec<u8>,
    up: &'a mut Vec<u8>,
    shutdown: &'a tokio_util::sync::CancellationToken,
    head_request: bool,
    /// The request may go again if the replica closes a kept-alive connection under
    /// it.
    idempotent: bool,
    /// The client's connection closes after the response (also once the ingress is
    /// stopping when the request goes out).
    close: bool,
}

impl policy::Upstream for Exchange<'_> {
    type Request = ();
    /// The connection, and the response's status, framing and whether the connection
    /// can serve again.
    type Answer = (TcpStream, (u16, Framing, bool));

    async fn send(&mut self, replica: &Replica, (): ()) -> Result<Self::Answer, SendError<()>> {
        let (mut tcp, reused) = match replica.conns.take_plain() {
            Some(tcp) => (tcp, true),
            None => match proxy::connect(replica.addr).await {
                Ok(tcp) => (tcp, false),
                // Nothing was sent.
                Err(e) => return Err(SendError::unsent(e, ())),
            },
        };
        self.close = self.close || self.shutdown.is_cancelled();
        let (head_request, close) = (self.head_request, self.close);
        self.up.clear();
        let mut head = exchange(&mut tcp, self.out, self.up, head_request, close).await;
        // The replica closed the kept-alive connection as the request went out on it,
        // before any answer: an idempotent request goes once more, on a new connection.
        if reused
            && self.idempotent
            && self.up.is_empty()
            && head.is_err()
            && let Ok(fresh) = proxy::connect(replica.addr).await
        {
            let addr = replica.addr;
            tracing::debug!(%addr, "kept-alive connection closed by the replica; retrying");
            tcp = fresh;
            head = exchange(&mut tcp, self.out, self.up, head_request, close).await;
        }
        head.map(|head| (tcp, head)).map_err(SendError::sent)
    }
}

/// How a response body went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relayed {
    /// All of it; the replica's connection can serve again.
    Whole,
    /// Ended cleanly for the client, but not read whole from the replica.
    Ended,
    /// Cut short: the client's connection must close.
    Cut,
}

/// Writes the request in `out` to the replica and reads its response head, skipping
/// informational responses; the head the client gets is left in `out`, the body bytes
/// read with it in `up`. Returns the status, how the body is framed and whether the
/// replica's connection can serve again. A replica that answered and closed before
/// reading the whole request still has its answer read.
async fn exchange(
    tcp: &mut TcpStream,
    out: &mut Vec<u8>,
    up: &mut Vec<u8>,
    head_request: bool,
    close: bool,
) -> io::Result<(u16, Framing, bool)> {
    // Why the replica stopped reading, if it did.
    let broken = match tcp.write_all(out).await {
        Ok(()) => None,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            Some(e)
        }
        Err(e) => return Err(e),
    };
    loop {
        if !up.is_empty() {
            let mut slots = wire::header_slots();
            match wire::parse_response(up, &mut slots, head_request) {
                Ok(None) => {}
                Ok(Some(resp)) if resp.status < 200 => {
                    let len = resp.len;
                    up.drain(..len);
                    continue;
                }
                Ok(Some(resp)) => {
                    out.clear();
                    wire::write_response(out, &resp, &http_date(), close);
                    let head = (
                        resp.status,
                        resp.framing,
                        resp.keep_alive && broken.is_none(),
                    );
                    let len = resp.len;
                    up.drain(..len);
                    return Ok(head);
                }
                Err(e) => return Err(invalid(e)),
            }
        }
        match read_more(tcp, up).await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(e) => return Err(broken.unwrap_or(e)),
        }
        return Err(broken.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        }));
    }
}
