//! `grpc-ping`: gRPC over h2c without a gRPC framework — `ping.PingService/Ping`
//! (unary), `PingStream` (bidirectional) and `grpc.health.v1.Health/Check`. Replies
//! carry the request's `msg` (+ the hostname when `HOSTNAME=true`) + `$SUFFIX`;
//! `$DELAY` ms delays each unary call. Other requests get an empty 200.

use crate::serve::{BoxError, Handler, ok};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use std::sync::Arc;
use std::time::Duration;

type Frames = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

/// Encodes `{string msg = 1}` as a length-prefixed gRPC message.
pub fn encode_msg(msg: &str) -> Bytes {
    let mut pb = BytesMut::new();
    if !msg.is_empty() {
        pb.put_u8(0x0a);
        put_varint(&mut pb, msg.len() as u64);
        pb.put_slice(msg.as_bytes());
    }
    frame(&pb)
}

fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

fn put_varint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn get_varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if b.is_empty() {
            return None;
        }
        let byte = b.get_u8();
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Decodes field 1 (`msg`) of a protobuf message, skipping other fields.
pub fn decode_msg(mut b: &[u8]) -> Option<String> {
    let mut msg = String::new();
    while !b.is_empty() {
        let key = get_varint(&mut b)?;
        match key & 7 {
            0 => {
                get_varint(&mut b)?;
            }
            1 => b.advance(8.min(b.len())),
            5 => b.advance(4.min(b.len())),
            2 => {
                let len = usize::try_from(get_varint(&mut b)?).ok()?;
                if len > b.len() {
                    return None;
                }
                if key >> 3 == 1 {
                    msg = String::from_utf8_lossy(&b[..len]).into_owned();
                }
                b.advance(len);
            }
            _ => return None,
        }
    }
    Some(msg)
}

/// Splits complete length-prefixed messages off the front of `buf`.
fn next_message(buf: &mut BytesMut) -> Option<Bytes> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    buf.advance(5);
    Some(buf.split_to(len).freeze())
}

fn reply_text(msg: &str) -> String {
    let mut out = msg.to_string();
    if std::env::var("HOSTNAME").is_ok_and(|h| h == "true") {
        out.push_str(
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim(),
        );
    }
    out.push_str(&std::env::var("SUFFIX").unwrap_or_default());
    out
}

fn trailers(status: u32, message: &str) -> Frame<Bytes> {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from(status));
    if let Ok(m) = HeaderValue::from_str(message)
        && !message.is_empty()
    {
        t.insert("grpc-message", m);
    }
    Frame::trailers(t)
}

/// Reads request messages and answers each with `reply`, then sends the trailers.
async fn answer_each(body: Incoming, tx: Frames, unary: bool) {
    let delay = std::env::var("DELAY")
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .map(Duration::from_millis);
    let mut body = body;
    let mut buf = BytesMut::new();
    loop {
        while let Some(m) = next_message(&mut buf) {
            let Some(msg) = decode_msg(&m) else {
                let _ = tx.send(Ok(trailers(13, "malformed message"))).await;
                return;
            };
            if unary && let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if tx
                .send(Ok(Frame::data(encode_msg(&reply_text(&msg)))))
                .await
                .is_err()
            {
                return;
            }
            if unary {
                let _ = tx.send(Ok(trailers(0, ""))).await;
                return;
            }
        }
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
            Some(Err(_)) => return,
            None => break,
        }
    }
    let (status, message) = if unary {
        (13, "no request message")
    } else {
        (0, "")
    };
    let _ = tx.send(Ok(trailers(status, message))).await;
}

/// The image's handler.
pub fn handler() -> Handler {
    Arc::new(|req| {
        Box::pin(async move {
            let is_grpc = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/grpc"));
            if !is_grpc {
                return ok("");
            }
            let path = req.uri().path().to_string();
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            match path.as_str() {
                "/ping.PingService/Ping" => {
                    tokio::spawn(answer_each(req.into_body(), tx, true));
                }
                "/ping.PingService/PingStream" => {
                    tokio::spawn(answer_each(req.into_body(), tx, false));
                }
                "/grpc.health.v1.Health/Check" => {
                    // HealthCheckResponse{status: SERVING}.
                    let _ = tx.try_send(Ok(Frame::data(frame(&[0x08, 0x01]))));
                    let _ = tx.try_send(Ok(trailers(0, "")));
                }
                _ => {
                    let _ = tx.try_send(Ok(trailers(12, "unknown method")));
                }
            }
            let body = StreamBody::new(crate::timeout::tokio_stream_from(rx)).boxed();
            let mut resp = Response::new(body);
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            resp
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let framed = encode_msg("hello");
        let mut buf = BytesMut::from(&framed[..]);
        let m = next_message(&mut buf).unwrap();
        assert_eq!(decode_msg(&m).as_deref(), Some("hello"));
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_frames_wait_for_the_rest() {
        let framed = encode_msg("hello");
        let mut buf = BytesMut::from(&framed[..4]);
        assert!(next_message(&mut buf).is_none());
    }

    #[test]
    fn malformed_protobuf_is_refused() {
        assert_eq!(decode_msg(&[0x0a, 0x10, b'a']), None);
    }
}
