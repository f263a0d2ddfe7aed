//! `wsserver`: a WebSocket echo server (`?delay=<seconds>` before each echo, `$SUFFIX`
//! appended); on SIGTERM it closes open sockets with 1000 "bye".

use crate::serve::{Handler, full, is_kubelet_probe, query, text};
use futures::{SinkExt, StreamExt};
use http::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Message, Role, frame::coding::CloseCode,
};
use tokio_util::sync::CancellationToken;

/// The image's handler.
pub fn handler(stop: CancellationToken) -> Handler {
    let suffix = std::env::var("SUFFIX").ok().filter(|s| !s.is_empty());
    Arc::new(move |mut req| {
        let stop = stop.clone();
        let suffix = suffix.clone();
        Box::pin(async move {
            let upgrade = req
                .headers()
                .get(http::header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
            let key = req.headers().get("sec-websocket-key").cloned();
            let (true, Some(key)) = (upgrade, key) else {
                return if is_kubelet_probe(&req) {
                    text(StatusCode::OK, "")
                } else {
                    text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n")
                };
            };
            let delay = query(&req, "delay")
                .and_then(|d| d.parse::<u64>().ok())
                .map(Duration::from_secs);
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                echo(ws, delay, suffix, stop).await;
            });
            let mut resp = Response::new(full(""));
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = resp.headers_mut();
            h.insert(
                http::header::UPGRADE,
                http::HeaderValue::from_static("websocket"),
            );
            h.insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("Upgrade"),
            );
            if let Ok(accept) = http::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
                h.insert("sec-websocket-accept", accept);
            }
            resp
        })
    })
}

async fn echo<S>(
    mut ws: WebSocketStream<S>,
    delay: Option<Duration>,
    suffix: Option<String>,
    stop: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            () = stop.cancelled() => {
                let _ = ws.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "bye".into(),
                }))).await;
                return;
            }
        };
        let Some(Ok(msg)) = msg else { return };
        let reply = match msg {
            Message::Text(t) => match &suffix {
                Some(s) => Message::text(format!("{t} {s}")),
                None => Message::Text(t),
            },
            Message::Binary(b) => Message::Binary(b),
            Message::Close(_) => return,
            _ => continue,
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if ws.send(reply).await.is_err() {
            return;
        }
    }
}
