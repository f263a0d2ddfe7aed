//! Forwarding one request to one replica: hop-by-hop headers removed, `Forwarded` and
//! `X-Forwarded-*` added, HTTP/1.1 through a pooled client or HTTP/2 (prior knowledge)
//! over one multiplexed connection per replica.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;

/// The body of a request to a replica (the client's, or empty on a retry).
pub type UpstreamBody = UnsyncBoxBody<Bytes, hyper::Error>;
use hyper::client::conn::http2;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Why a replica could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// HTTP/1.1 exchange failed.
    #[error("{0}")]
    Http1(#[from] hyper_util::client::legacy::Error),
    /// Connecting failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The replica.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// HTTP/2 exchange failed.
    #[error("{0}")]
    Http2(#[from] hyper::Error),
    /// The request could not be addressed to the replica.
    #[error("invalid upstream URI")]
    Uri,
}

impl UpstreamError {
    /// The request never reached the replica (nothing listens there any more).
    pub fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Http1(e) => e.is_connect(),
            UpstreamError::Connect { .. } => true,
            _ => false,
        }
    }
}

/// Connections to replicas.
#[derive(Debug)]
pub struct Upstreams {
    http1: Client<HttpConnector, UpstreamBody>,
    http2: Mutex<HashMap<SocketAddr, http2::SendRequest<UpstreamBody>>>,
}

impl Default for Upstreams {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Upstreams {
            http1,
            http2: Mutex::new(HashMap::new()),
        }
    }
}

impl Upstreams {
    /// Sends `req` to the replica at `addr`.
    pub async fn send(
        &self,
        addr: SocketAddr,
        h2c: bool,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        if !h2c {
            *req.uri_mut() = format!("http://{addr}{pq}")
                .parse::<Uri>()
                .map_err(|_| UpstreamError::Uri)?;
            *req.version_mut() = Version::HTTP_11;
            return Ok(self.http1.request(req).await?);
        }
        // HTTP/2 carries the host as :authority.
        let authority = req
            .headers_mut()
            .remove(header::HOST)
            .and_then(|h| h.to_str().ok().map(str::to_string))
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_else(|| addr.to_string());
        *req.uri_mut() = format!("http://{authority}{pq}")
            .parse::<Uri>()
            .map_err(|_| UpstreamError::Uri)?;
        *req.version_mut() = Version::HTTP_2;
        let mut sender = self.http2_sender(addr).await?;
        Ok(sender.send_request(req).await?)
    }

    async fn http2_sender(
        &self,
        addr: SocketAddr,
    ) -> Result<http2::SendRequest<UpstreamBody>, UpstreamError> {
        let cached = {
            let conns = self.http2.lock().unwrap_or_else(|e| e.into_inner());
            conns.get(&addr).filter(|s| !s.is_closed()).cloned()
        };
        if let Some(mut s) = cached
            && s.ready().await.is_ok()
        {
            return Ok(s);
        }
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| UpstreamError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(tcp))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %addr, "HTTP/2 connection to replica ended");
            }
        });
        self.http2
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(addr, sender.clone());
        Ok(sender)
    }

    /// Forgets connections to a replica that went away.
    pub fn forget(&self, addr: SocketAddr) {
        self.http2
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }
}

const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
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
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove("http2-settings");
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

/// The `for=` node of an address (IPv6 quoted and bracketed).
fn node(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

/// Adds `X-Forwarded-For` (the peer appended), `X-Forwarded-Proto` (when absent) and a
/// `Forwarded` element for this hop (RFC 7239), and makes sure `Host` is set.
pub fn add_forwarding(headers: &mut HeaderMap, peer: SocketAddr, host: Option<&str>) {
    let ip = peer.ip().to_canonical();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    let mut element = format!("for={}", node(ip));
    if let Some(h) = host {
        if !headers.contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(h)
        {
            headers.insert(header::HOST, v);
        }
        if h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            element.push_str(&format!(";host={h}"));
        } else if !h.contains('"') {
            element.push_str(&format!(";host=\"{h}\""));
        }
    }
    element.push_str(";proto=http");
    let forwarded = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {element}"),
        _ => element,
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
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
