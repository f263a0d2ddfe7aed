//! `readiness`: readiness and liveness endpoints that can be delayed (`READY_DELAY`,
//! `LISTEN_DELAY`) and made to fail (`/start-failing`), plus `readiness probe`, the exec
//! probe that checks them.

use crate::autoscale::parse_sleep;
use crate::hello::HELLO;
use crate::serve::{Handler, ok, query, text};
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct State {
    ready_at: Instant,
    failing: AtomicBool,
    liveness: AtomicU64,
}

fn env_delay(name: &str) -> Result<std::time::Duration, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => {
            parse_sleep(&v).ok_or_else(|| format!("{name}={v:?} is not a duration"))
        }
        _ => Ok(std::time::Duration::ZERO),
    }
}

/// Waits `LISTEN_DELAY`, then returns the handler (and serves `/readiness` and
/// `/liveness` on `HEALTHCHECK_PORT` when set).
pub async fn start(stop: CancellationToken) -> Result<Handler, String> {
    let ready_delay = env_delay("READY_DELAY")?;
    let listen_delay = env_delay("LISTEN_DELAY")?;
    let state = Arc::new(State {
        ready_at: Instant::now() + ready_delay,
        failing: AtomicBool::new(false),
        liveness: AtomicU64::new(0),
    });
    tokio::time::sleep(listen_delay).await;
    let handler = make_handler(state);
    if let Ok(p) = std::env::var("HEALTHCHECK_PORT")
        && !p.is_empty()
    {
        let port: u16 = p
            .parse()
            .map_err(|_| format!("HEALTHCHECK_PORT={p:?} is not a port"))?;
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
        tokio::spawn(crate::serve::serve(listener, handler.clone(), stop));
    }
    Ok(handler)
}

fn make_handler(state: Arc<State>) -> Handler {
    Arc::new(move |req| {
        let state = state.clone();
        let path = req.uri().path().to_string();
        let probe_ok = query(&req, "probe").as_deref() == Some("ok");
        Box::pin(async move {
            let healthy =
                || !state.failing.load(Ordering::SeqCst) && Instant::now() >= state.ready_at;
            match path.as_str() {
                "/start-failing" => {
                    state.failing.store(true, Ordering::SeqCst);
                    ok("will start failing\n")
                }
                "/healthz/readiness" | "/readiness" => {
                    if healthy() {
                        ok(HELLO)
                    } else {
                        text(StatusCode::INTERNAL_SERVER_ERROR, "not healthy\n")
                    }
                }
                "/healthz/liveness" | "/liveness" => {
                    if state.failing.load(Ordering::SeqCst) {
                        return text(StatusCode::INTERNAL_SERVER_ERROR, "not healthy\n");
                    }
                    let n = state.liveness.fetch_add(1, Ordering::SeqCst) + 1;
                    ok(n.to_string())
                }
                "/healthz/livenessCounter" => ok(state.liveness.load(Ordering::SeqCst).to_string()),
                "/query" if probe_ok => ok(format!("{HELLO}no query\n")),
                "/query" => text(StatusCode::INTERNAL_SERVER_ERROR, "no query\n"),
                "/start-failing-sidecar" => match std::env::var("FORWARD_PORT") {
                    Ok(p) => match get_status(&format!("127.0.0.1:{p}"), "/start-failing").await {
                        Ok(_) => ok("sidecar will start failing\n"),
                        Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
                    },
                    Err(_) => text(StatusCode::BAD_REQUEST, "FORWARD_PORT is not set\n"),
                },
                _ => ok(HELLO),
            }
        })
    })
}

/// GETs `path` from `addr` and returns the status code.
async fn get_status(addr: &str, path: &str) -> Result<u16, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 64];
    let n = s.read(&mut head).await.map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed response from {addr}"))
}

/// The exec probe: exit 0 when `/healthz/readiness` answers 2xx, else 1.
pub async fn probe(port: u16) -> u8 {
    match get_status(&format!("127.0.0.1:{port}"), "/healthz/readiness").await {
        Ok(code) if (200..300).contains(&code) => 0,
        Ok(code) => {
            eprintln!("readiness probe: status {code}");
            1
        }
        Err(e) => {
            eprintln!("readiness probe: {e}");
            1
        }
    }
}
