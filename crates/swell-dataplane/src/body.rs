//! The response body on its way back to the client: it enforces `timeoutSeconds` and
//! `idleTimeoutSeconds` once headers have gone out (§5.4), and holds the request's
//! replica slot and statistics until the last byte.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Duration, Instant, Sleep};

/// Errors the proxied body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The text appended when a timeout ends a response whose headers were already sent.
pub const TIMEOUT_TEXT: &str = "request timeout";

/// Why a streamed response was cut.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Cut(&'static str);

pin_project! {
    /// A response body with timeouts, holding `guard` until it ends.
    pub struct TimedBody<B, G> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
        #[pin]
        idle: Option<Sleep>,
        idle_timeout: Option<Duration>,
        // Appending the message is only possible when the length was not announced.
        can_append: bool,
        guard: Option<G>,
    }
}

impl<B, G> TimedBody<B, G> {
    /// Wraps `inner`; the whole response must end by `deadline`, and each write must
    /// follow the previous within `idle_timeout`.
    pub fn new(
        inner: B,
        deadline: Instant,
        idle_timeout: Option<Duration>,
        can_append: bool,
        guard: G,
    ) -> Self {
        TimedBody {
            inner,
            deadline: tokio::time::sleep_until(deadline),
            idle: idle_timeout.map(|d| tokio::time::sleep(d)),
            idle_timeout,
            can_append,
            guard: Some(guard),
        }
    }
}

impl<B, G> Body for TimedBody<B, G>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if this.guard.is_none() {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(d), Some(idle)) = (this.idle_timeout, this.idle.as_mut().as_pin_mut())
                {
                    idle.reset(Instant::now() + *d);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => {
                this.guard.take();
                return Poll::Ready(Some(Err(e.into())));
            }
            Poll::Ready(None) => {
                this.guard.take();
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let fired = this.deadline.as_mut().poll(cx).is_ready()
            || this
                .idle
                .as_mut()
                .as_pin_mut()
                .is_some_and(|s| s.poll(cx).is_ready());
        if !fired {
            return Poll::Pending;
        }
        this.guard.take();
        if *this.can_append {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                TIMEOUT_TEXT.as_bytes(),
            )))))
        } else {
            Poll::Ready(Some(Err(Box::new(Cut(TIMEOUT_TEXT)))))
        }
    }

    fn is_end_stream(&self) -> bool {
        self.guard.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    type Chunk = Result<Frame<Bytes>, BoxError>;

    fn channel() -> (
        tokio::sync::mpsc::Sender<Chunk>,
        impl Body<Data = Bytes, Error = BoxError> + Unpin,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(4);
        let body = StreamBody::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        (tx, body)
    }

    /// The body's bytes, and whether it ended cleanly.
    async fn collect<B: Body<Data = Bytes>>(b: B) -> (Vec<u8>, bool) {
        let mut b = std::pin::pin!(b);
        let mut out = Vec::new();
        while let Some(f) = b.frame().await {
            match f {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        out.extend_from_slice(&d);
                    }
                }
                Err(_) => return (out, false),
            }
        }
        (out, true)
    }

    #[tokio::test(start_paused = true)]
    async fn overall_timeout_appends_the_message_after_headers() {
        let released = Arc::new(AtomicBool::new(false));
        let (tx, inner) = channel();
        tx.send(Ok(Frame::data(Bytes::from_static(b"partial "))))
            .await
            .unwrap();
        let body = TimedBody::new(
            inner,
            Instant::now() + Duration::from_secs(10),
            None,
            true,
            Flag(released.clone()),
        );
        let (bytes, clean) = collect(body).await;
        assert_eq!(bytes, b"partial request timeout");
        assert!(clean);
        assert!(released.load(Ordering::SeqCst));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_rearms_on_each_write() {
        let (tx, inner) = channel();
        let body = TimedBody::new(
            inner,
            Instant::now() + Duration::from_secs(100),
            Some(Duration::from_secs(2)),
            false,
            (),
        );
        let writer = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .await
                    .unwrap();
            }
            // Then silence: the idle timeout cuts the body.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tx);
        });
        let (bytes, clean) = collect(body).await;
        assert_eq!(bytes, b"xxx");
        assert!(!clean, "a body with a length is cut with an error");
        writer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn finished_bodies_release_the_guard() {
        let released = Arc::new(AtomicBool::new(false));
        let body = TimedBody::new(
            http_body_util::Full::new(Bytes::from_static(b"done")),
            Instant::now() + Duration::from_secs(1),
            None,
            true,
            Flag(released.clone()),
        );
        let (bytes, clean) = collect(body).await;
        assert_eq!((bytes.as_slice(), clean), (&b"done"[..], true));
        assert!(released.load(Ordering::SeqCst));
    }
}
