//! `timeout`: sleeps `?initialTimeout=` ms, sends the 200 headers at once, sleeps
//! `?timeout=` ms, then writes `Slept for N milliseconds`.

use crate::serve::{BoxError, Handler, query};
use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::sync::Arc;
use std::time::Duration;

/// The image's handler.
pub fn handler() -> Handler {
    Arc::new(|req| {
        let ms = |name| {
            query(&req, name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (initial, timeout) = (ms("initialTimeout"), ms("timeout"));
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(initial)).await;
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(timeout)).await;
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from(format!(
                        "Slept for {timeout} milliseconds"
                    )))))
                    .await;
            });
            let body = StreamBody::new(tokio_stream_from(rx)).boxed();
            Response::new(body)
        })
    })
}

/// A stream of what arrives on `rx`.
pub fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
