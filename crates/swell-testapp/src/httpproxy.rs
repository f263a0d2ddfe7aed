//! `httpproxy`: a reverse proxy to `$TARGET_HOST` (the Host header is set to it),
//! dialling `$GATEWAY_HOST` instead when set; proxy errors answer 502 with the error
//! and its causes.

use crate::serve::{BoxError, Handler, text};
use http::{HeaderValue, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

/// The image's handler, or why it cannot run.
pub fn handler() -> Result<Handler, String> {
    let target = std::env::var("TARGET_HOST")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or("TARGET_HOST is not set")?;
    if std::env::var("CA_CERT").is_ok_and(|c| !c.is_empty()) {
        return Err("CA_CERT (HTTPS to the target) is not supported by swell-testapp".into());
    }
    let dial = std::env::var("GATEWAY_HOST")
        .ok()
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| target.clone());
    let host = HeaderValue::from_str(&target).map_err(|_| "TARGET_HOST is not a host")?;
    let client: Client<_, hyper::body::Incoming> =
        Client::builder(TokioExecutor::new()).build_http();
    Ok(Arc::new(move |mut req| {
        let client = client.clone();
        let host = host.clone();
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string());
        let uri = format!("http://{dial}{pq}").parse::<Uri>();
        Box::pin(async move {
            let Ok(uri) = uri else {
                return text(StatusCode::BAD_GATEWAY, "bad target\n");
            };
            *req.uri_mut() = uri;
            *req.version_mut() = http::Version::HTTP_11;
            req.headers_mut().insert(http::header::HOST, host);
            match client.request(req).await {
                Ok(resp) => resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()),
                Err(e) => {
                    // The whole chain: "client error (Connect): dns error: …".
                    let mut message = format!("proxy error: {e}");
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        message.push_str(&format!(": {s}"));
                        source = s.source();
                    }
                    text(StatusCode::BAD_GATEWAY, message + "\n")
                }
            }
        })
    }))
}
