//! `servingcontainer` (fetches `http://localhost:$FORWARD_PORT` and answers with its
//! body) and `sidecarcontainer` (a fixed text on port 8882), Knative's multi-container
//! test images: the two share a replica's network namespace.

use crate::serve::{Handler, ok, text};
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

/// `sidecarcontainer`'s port (fixed, as in Knative's image).
pub const SIDECAR_PORT: u16 = 8882;

/// `sidecarcontainer`'s text.
pub const SIDECAR_TEXT: &str = "Yay!! multi-container works\n";

/// `servingcontainer`: the sidecar's answer and a newline.
pub fn serving() -> Result<Handler, String> {
    let port: u16 = std::env::var("FORWARD_PORT")
        .map_err(|_| "FORWARD_PORT is not set")?
        .parse()
        .map_err(|_| "FORWARD_PORT is not a port")?;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    Ok(Arc::new(move |_req| {
        let client = client.clone();
        Box::pin(async move {
            let uri = format!("http://localhost:{port}").parse().expect("a URI");
            let body = match client.get(uri).await {
                Ok(resp) => resp.into_body().collect().await.map(|b| b.to_bytes()),
                Err(e) => return text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
            };
            match body {
                Ok(b) => ok(format!("{}\n", String::from_utf8_lossy(&b))),
                Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
            }
        })
    }))
}

/// `sidecarcontainer`.
pub fn sidecar() -> Handler {
    crate::hello::text_handler(SIDECAR_TEXT)
}
