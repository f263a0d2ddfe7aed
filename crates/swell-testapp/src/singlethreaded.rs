//! `singlethreaded`: serves one request at a time; a second concurrent request gets a
//! 500. Each request takes 500 ms.

use crate::serve::{Handler, ok, text};
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The image's handler.
pub fn handler() -> Handler {
    let busy = Arc::new(AtomicBool::new(false));
    Arc::new(move |_req| {
        let busy = busy.clone();
        Box::pin(async move {
            if busy.swap(true, Ordering::SeqCst) {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Another request is already in flight\n",
                );
            }
            // Released even when the client goes away mid-request.
            let _release = Release(busy);
            tokio::time::sleep(Duration::from_millis(500)).await;
            ok("One at a time")
        })
    })
}

struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
