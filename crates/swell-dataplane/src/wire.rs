//! HTTP/1.1 on the wire, for the ingress's own request path ([`crate::http1`]): request
//! and response heads parsed with httparse and rewritten for the next hop (hop-by-hop
//! headers dropped, forwarding headers added), and the framing of the bodies behind
//! them (`Content-Length`, chunked, until close). Pure: no IO.

use crate::proxy;
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::net::IpAddr;

/// Headers a head may carry (as many as hyper takes).
pub const MAX_HEADERS: usize = 100;

/// Bytes a head may take; a longer one is not for this path.
pub const MAX_HEAD: usize = 64 * 1024;

/// Request body bytes this path forwards; a connection sending more goes to hyper,
/// which streams bodies both ways at once.
pub const MAX_BODY: usize = 16 * 1024;

/// Storage for one head's parsed headers.
pub type HeaderSlots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Empty header storage.
pub fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// A request this path can forward: HTTP/1.1, origin-form, one `Host`, its body (if
/// any) announced by one `Content-Length`.
#[derive(Debug)]
pub struct RequestHead<'b> {
    /// The method.
    pub method: &'b str,
    /// The origin-form target (`/path?query`).
    pub target: &'b str,
    /// Every header as sent.
    pub headers: &'b [httparse::Header<'b>],
    /// Bytes the head takes.
    pub len: usize,
    /// The `Host` header.
    pub host: &'b str,
    /// The body's length.
    pub body_len: usize,
    /// `Connection: close`.
    pub close: bool,
}

impl RequestHead<'_> {
    /// The first value of a header, if sent.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// What the bytes read so far hold.
#[derive(Debug)]
pub enum Parsed<'b> {
    /// Not a whole head (and body) yet.
    Partial,
    /// A request for this path.
    Request(RequestHead<'b>),
    /// Something else (HTTP/2, HTTP/1.0, an upgrade, a chunked or large body, an
    /// absolute target, a malformed head…): hyper serves the connection from here.
    Other,
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Parses the request at the start of `buf`; [`Parsed::Request`] only once its whole
/// body is there too.
pub fn parse_request<'b>(buf: &'b [u8], slots: &'b mut HeaderSlots<'b>) -> Parsed<'b> {
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
        _ => return Parsed::Other,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    if !target.starts_with('/') || method == "CONNECT" {
        return Parsed::Other;
    }
    let headers: &'b [httparse::Header<'b>] = req.headers;
    let (mut host, mut length, mut close) = (None, None, false);
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Parsed::Other;
            }
            host = Some(std::str::from_utf8(h.value).ok());
        } else if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Parsed::Other;
            }
            length = Some(parse_length(h.value));
        } else if name.eq_ignore_ascii_case("connection") {
            close |= has_token(h.value, "close");
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Parsed::Other;
        }
    }
    let (Some(Some(host)), Some(body_len)) = (host, length.unwrap_or(Some(0))) else {
        return Parsed::Other;
    };
    let Ok(body_len) = usize::try_from(body_len) else {
        return Parsed::Other;
    };
    if body_len > MAX_BODY {
        return Parsed::Other;
    }
    if buf.len() - len < body_len {
        return Parsed::Partial;
    }
    Parsed::Request(RequestHead {
        method,
        target,
        headers,
        len,
        host,
        body_len,
        close,
    })
}

/// Whether a header goes no further than this hop: the fixed hop-by-hop set, and the
/// headers `Connection` names (`connection` holds its values).
fn hop_by_hop(name: &str, value: &[u8], connection: &[&[u8]]) -> bool {
    if proxy::HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_str()))
    {
        return true;
    }
    if name.eq_ignore_ascii_case("te") && !value.trim_ascii().eq_ignore_ascii_case(b"trailers") {
        return true;
    }
    connection.iter().any(|v| has_token(v, name))
}

/// The values of a head's `Connection` headers.
fn connection_values<'b>(headers: &[httparse::Header<'b>]) -> Vec<&'b [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .map(|h| h.value)
        .collect()
}

fn header_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The Knative header the ingress sets on a request (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagHeader<'a> {
    /// None.
    None,
    /// `Knative-Serving-Default-Route: true` (no tag header matched).
    DefaultRoute,
    /// `Knative-Serving-Tag: <tag>` (the request came by a tag's host).
    Tag(&'a str),
}

/// Writes the head of `req` as the replica gets it: HTTP/1.1, hop-by-hop headers
/// gone, `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded` for this hop, and the
/// tag header.
pub fn write_request(out: &mut Vec<u8>, req: &RequestHead<'_>, peer: IpAddr, tag: TagHeader<'_>) {
    let connection = connection_values(req.headers);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut xff, mut forwarded, mut proto) = (None, None, false);
    for h in req.headers {
        let name = h.name;
        if hop_by_hop(name, h.value, &connection) {
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            xff.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case("forwarded") {
            forwarded.get_or_insert(h.value);
        } else if (tag == TagHeader::DefaultRoute
            && name.eq_ignore_ascii_case("knative-serving-default-route"))
            || (matches!(tag, TagHeader::Tag(_))
                && name.eq_ignore_ascii_case("knative-serving-tag"))
        {
        } else {
            proto |= name.eq_ignore_ascii_case("x-forwarded-proto");
            header_line(out, name, h.value);
        }
    }
    let mut value = String::with_capacity(96);
    proxy::x_forwarded_for(
        &mut value,
        xff.and_then(|v| std::str::from_utf8(v).ok()),
        peer,
    );
    header_line(out, "x-forwarded-for", value.as_bytes());
    if !proto {
        header_line(out, "x-forwarded-proto", b"http");
    }
    value.clear();
    proxy::forwarded(
        &mut value,
        forwarded.and_then(|v| std::str::from_utf8(v).ok()),
        peer,
        Some(req.host),
    );
    header_line(out, "forwarded", value.as_bytes());
    match tag {
        TagHeader::None => {}
        TagHeader::DefaultRoute => header_line(out, "knative-serving-default-route", b"true"),
        TagHeader::Tag(t) => header_line(out, "knative-serving-tag", t.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response body is delimited on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the replica closes the connection.
    UntilClose,
}

/// Why a replica's response cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The response head is malformed or too large.
    #[error("invalid response head from the replica")]
    Head,
    /// The replica answered with a protocol switch nobody asked for.
    #[error("unexpected 101 Switching Protocols from the replica")]
    Switch,
    /// The chunked body is malformed.
    #[error("invalid chunked body from the replica")]
    Chunk,
}

/// A replica's response head, parsed.
#[derive(Debug)]
pub struct ResponseHead<'b> {
    /// The status code.
    pub status: u16,
    /// Its reason phrase.
    pub reason: &'b str,
    /// Every header as sent.
    pub headers: &'b [httparse::Header<'b>],
    /// Bytes the head takes.
    pub len: usize,
    /// How its body is delimited.
    pub framing: Framing,
    /// The connection can carry another request afterwards.
    pub keep_alive: bool,
}

/// Parses the response at the start of `buf`; `Ok(None)` when it is not whole yet. An
/// informational (1xx) response is returned like any other: the caller skips it.
pub fn parse_response<'b>(
    buf: &'b [u8],
    slots: &'b mut HeaderSlots<'b>,
    head_request: bool,
) -> Result<Option<ResponseHead<'b>>, WireError> {
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        _ => return Err(WireError::Head),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(WireError::Head);
    };
    if status == 101 {
        return Err(WireError::Switch);
    }
    let headers: &'b [httparse::Header<'b>] = resp.headers;
    let (mut length, mut chunked, mut encoded) = (None, false, false);
    let mut keep_alive = version == 1;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(WireError::Head)?;
            if length.is_some_and(|l| l != n) {
                return Err(WireError::Head);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            // Only a final `chunked` delimits the body; any other coding runs to close.
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                keep_alive = false;
            } else if has_token(h.value, "keep-alive") {
                keep_alive = true;
            }
        }
    }
    let framing = if head_request || status == 204 || status == 304 || status < 200 {
        Framing::Empty
    } else if encoded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Some(ResponseHead {
        status,
        reason: resp.reason.unwrap_or(""),
        headers,
        len,
        framing,
        keep_alive,
    }))
}

/// Writes the head of `resp` as the client gets it: HTTP/1.1, hop-by-hop headers gone,
/// the body chunked unless its length is known (so a cut can still end it cleanly),
/// `Date` added when missing, `Connection: close` when `close`.
pub fn write_response(out: &mut Vec<u8>, resp: &ResponseHead<'_>, date: &[u8], close: bool) {
    let connection = connection_values(resp.headers);
    let reason = if resp.reason.is_empty() {
        http::StatusCode::from_u16(resp.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    } else {
        resp.reason
    };
    let _ = write!(Line(out), "HTTP/1.1 {} {reason}\r\n", resp.status);
    let mut dated = false;
    for h in resp.headers {
        let name = h.name;
        let length = name.eq_ignore_ascii_case("content-length");
        if hop_by_hop(name, h.value, &connection) || (length && resp.framing != Framing::Empty) {
            continue;
        }
        dated |= name.eq_ignore_ascii_case("date");
        header_line(out, name, h.value);
    }
    match resp.framing {
        Framing::Empty => {}
        Framing::Length(n) => {
            let _ = write!(Line(out), "content-length: {n}\r\n");
        }
        Framing::Chunked | Framing::UntilClose => {
            header_line(out, "transfer-encoding", b"chunked");
        }
    }
    if !dated {
        header_line(out, "date", date);
    }
    if close {
        header_line(out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a response the ingress makes itself (`swell-error` says why); no body for a
/// HEAD request.
pub fn write_refusal(
    out: &mut Vec<u8>,
    status: http::StatusCode,
    reason: &str,
    message: &str,
    date: &[u8],
    head_request: bool,
    close: bool,
) {
    let _ = write!(
        Line(out),
        "HTTP/1.1 {} {}\r\nswell-error: {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        message.len() + 1
    );
    header_line(out, "date", date);
    if close {
        header_line(out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !head_request {
        out.extend_from_slice(message.as_bytes());
        out.push(b'\n');
    }
}

/// `fmt::Write` into a byte buffer.
struct Line<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Line<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends `data` as one chunk.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if !data.is_empty() {
        let _ = write!(Line(out), "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
}

/// The last chunk, which ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size { digits: u8 },
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    EndLf,
    Done,
}

/// Decodes a chunked body as it arrives: the chunks' data out, framing and trailers
/// dropped.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size { digits: 0 },
            size: 0,
            trailer_bytes: 0,
        }
    }
}

impl ChunkedDecoder {
    /// The last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, handing each piece of chunk data to `data`. Returns the bytes
    /// used: all of `input`, unless the body ended before its end.
    pub fn decode(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, WireError> {
        use ChunkState as S;
        let mut i = 0;
        while i < input.len() && self.state != S::Done {
            let b = input[i];
            self.state = match self.state {
                S::Size { digits } => match b {
                    _ if b.is_ascii_hexdigit() => {
                        if digits >= 15 {
                            return Err(WireError::Chunk);
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0);
                        self.size = self.size * 16 + u64::from(d);
                        S::Size { digits: digits + 1 }
                    }
                    b';' | b' ' | b'\t' if digits > 0 => S::Extension,
                    b'\r' if digits > 0 => S::SizeLf,
                    _ => return Err(WireError::Chunk),
                },
                S::Extension => match b {
                    b'\r' => S::SizeLf,
                    b'\n' => return Err(WireError::Chunk),
                    _ => S::Extension,
                },
                S::SizeLf if b == b'\n' => {
                    if self.size == 0 {
                        S::TrailerStart
                    } else {
                        S::Data
                    }
                }
                S::Data => {
                    let n = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    data(&input[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = S::DataCr;
                    }
                    continue;
                }
                S::DataCr if b == b'\r' => S::DataLf,
                S::DataLf if b == b'\n' => S::Size { digits: 0 },
                S::TrailerStart if b == b'\r' => S::EndLf,
                S::TrailerStart | S::Trailer => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_HEAD {
                        return Err(WireError::Chunk);
                    }
                    if b == b'\n' {
                        S::TrailerStart
                    } else {
                        S::Trailer
                    }
                }
                S::EndLf if b == b'\n' => S::Done,
                _ => return Err(WireError::Chunk),
            };
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &[u8]) -> String {
        let mut slots = header_slots();
        match parse_request(raw, &mut slots) {
            Parsed::Request(r) => format!(
                "{} {} host={} body={} close={}",
                r.method, r.target, r.host, r.body_len, r.close
            ),
            Parsed::Partial => "partial".into(),
            Parsed::Other => "other".into(),
        }
    }

    #[test]
    fn plain_requests_are_for_this_path() {
        assert_eq!(
            request(b"GET /a?b HTTP/1.1\r\nHost: h.localhost:8080\r\n\r\n"),
            "GET /a?b host=h.localhost:8080 body=0 close=false"
        );
        assert_eq!(
            request(
                b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\nConnection: Close\r\n\r\nabc"
            ),
            "POST / host=h body=3 close=true"
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nab"),
            "partial"
        );
        assert_eq!(request(b"GET / HTTP/1.1\r\nhost: h\r\n"), "partial");
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for raw in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\nhost: h\r\n\r\n",
            b"GET http://h/ HTTP/1.1\r\nhost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 99999\r\n\r\n",
            b"POST / HTTP/1.1\r\nhost: h\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: h\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            b"CONNECT h:443 HTTP/1.1\r\nhost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nho st: h\r\n\r\n",
        ] {
            assert_eq!(request(raw), "other", "{}", String::from_utf8_lossy(raw));
        }
        let huge = [b"GET / HTTP/1.1\r\nx: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(request(&huge), "other");
    }

    fn forwarded(raw: &[u8], tag: TagHeader<'_>) -> String {
        let mut slots = header_slots();
        let Parsed::Request(r) = parse_request(raw, &mut slots) else {
            panic!("not a request")
        };
        let mut out = Vec::new();
        write_request(&mut out, &r, "127.0.0.1".parse().unwrap(), tag);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn requests_lose_hop_by_hop_headers_and_gain_this_hop() {
        let out = forwarded(
            b"GET /x HTTP/1.1\r\nHost: a.b.localhost:8080\r\nConnection: keep-alive, X-Private\r\n\
              Keep-Alive: 5\r\nX-Private: 1\r\nTE: gzip\r\nProxy-Authorization: s\r\n\
              X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Custom: Stays\r\n\
              knative-serving-default-route: false\r\n\r\n",
            TagHeader::DefaultRoute,
        );
        assert_eq!(
            out,
            "GET /x HTTP/1.1\r\nHost: a.b.localhost:8080\r\nX-Custom: Stays\r\n\
             x-forwarded-for: 10.0.0.1, 127.0.0.1\r\nx-forwarded-proto: http\r\n\
             forwarded: for=127.0.0.1;host=\"a.b.localhost:8080\";proto=http\r\n\
             knative-serving-default-route: true\r\n\r\n"
        );
        let out = forwarded(
            b"GET / HTTP/1.1\r\nhost: h\r\nte: trailers\r\nx-forwarded-proto: https\r\n\
              forwarded: for=1.2.3.4\r\nknative-serving-tag: other\r\n\r\n",
            TagHeader::Tag("blue"),
        );
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nhost: h\r\nte: trailers\r\nx-forwarded-proto: https\r\n\
             x-forwarded-for: 127.0.0.1\r\nforwarded: for=1.2.3.4, for=127.0.0.1;host=h;proto=http\r\n\
             knative-serving-tag: blue\r\n\r\n"
        );
    }

    fn response(raw: &[u8], head: bool) -> Result<Option<(u16, Framing, bool, String)>, WireError> {
        let mut slots = header_slots();
        Ok(parse_response(raw, &mut slots, head)?.map(|r| {
            let mut out = Vec::new();
            write_response(&mut out, &r, b"D", false);
            (
                r.status,
                r.framing,
                r.keep_alive,
                String::from_utf8(out).unwrap(),
            )
        }))
    }

    #[test]
    fn responses_are_framed_as_rfc_9112_says() {
        let r = response(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nDate: x\r\n\r\nhello",
            false,
        );
        assert_eq!(
            r,
            Ok(Some((
                200,
                Framing::Length(5),
                true,
                "HTTP/1.1 200 OK\r\nDate: x\r\ncontent-length: 5\r\n\r\n".into()
            )))
        );
        let r = response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\nConnection: close, x-a\r\nx-a: 1\r\n\r\n", false);
        assert_eq!(
            r,
            Ok(Some((
                200,
                Framing::Chunked,
                false,
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: D\r\n\r\n".into()
            )))
        );
        let r = response(b"HTTP/1.0 200 \r\n\r\n", false).unwrap().unwrap();
        assert_eq!((r.1, r.2), (Framing::UntilClose, false));
        assert!(r.3.starts_with("HTTP/1.1 200 OK\r\n"));
        let r = response(
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.1, r.2), (Framing::Length(0), true));
        let r = response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!((r.1, r.2), (Framing::UntilClose, false));
        for (raw, head) in [
            (&b"HTTP/1.1 204 No Content\r\n\r\n"[..], false),
            (
                b"HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n", true),
            (b"HTTP/1.1 100 Continue\r\n\r\n", false),
        ] {
            assert_eq!(response(raw, head).unwrap().unwrap().1, Framing::Empty);
        }
        assert_eq!(response(b"HTTP/1.1 200 OK\r\ncontent-", false), Ok(None));
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert_eq!(response(bad, false), Err(WireError::Head));
        }
        assert_eq!(
            response(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false),
            Err(WireError::Switch)
        );
    }

    fn decode_all(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), WireError> {
        let mut d = ChunkedDecoder::default();
        let mut data = Vec::new();
        let mut used = 0;
        for p in pieces {
            used += d.decode(p, |b| data.extend_from_slice(b))?;
        }
        Ok((data, d.is_done(), used))
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\nEXTRA";
        let whole = decode_all(&[body]).unwrap();
        assert_eq!(
            whole,
            (
                b"helloabcdefghijklmnopqrstuvwxyz".to_vec(),
                true,
                body.len() - 5
            )
        );
        for split in 1..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(decode_all(&[a, b]).unwrap(), whole, "split at {split}");
        }
        assert_eq!(
            decode_all(&[b"3\r\nab"]).unwrap(),
            (b"ab".to_vec(), false, 5)
        );
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcd\r\n",
            b"1\n",
            b"1234567890123456\r\n",
        ] {
            assert_eq!(
                decode_all(&[bad]),
                Err(WireError::Chunk),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunks_and_refusals_are_written_whole() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"");
        write_chunk(&mut out, &[b'x'; 17]);
        out.extend_from_slice(LAST_CHUNK);
        assert_eq!(
            out,
            [b"11\r\n".as_slice(), &[b'x'; 17], b"\r\n0\r\n\r\n"].concat()
        );
        let mut out = Vec::new();
        write_refusal(
            &mut out,
            http::StatusCode::NOT_FOUND,
            "unknown-host",
            "no Route",
            b"D",
            false,
            true,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nswell-error: unknown-host\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: 9\r\ndate: D\r\nconnection: close\r\n\r\nno Route\n"
        );
    }
}
