//! `helloworld`, `pizzaplanetv1`/`v2` (a fixed text on every path) and `hellohttp2`
//! (says which protocol the request came over).

use crate::serve::{Handler, ok};
use std::sync::Arc;

/// helloworld's text.
pub const HELLO: &str = "Hello World! How about some tasty noodles?\n";
/// pizzaplanetv1's text.
pub const PIZZA_V1: &str = "What a spaceport!";
/// pizzaplanetv2's text.
pub const PIZZA_V2: &str = "Re-energize yourself with a slice of pepperoni!";

/// Answers every request with `body`.
pub fn text_handler(body: &'static str) -> Handler {
    Arc::new(move |_req| Box::pin(async move { ok(body) }))
}

/// `proto=<HTTP/1.1|HTTP/2.0> method=<m> path=<p>` (or `$RESPONSE`); `/healthz` → `OK`.
pub fn http2_handler() -> Handler {
    let fixed = std::env::var("RESPONSE").ok().filter(|r| !r.is_empty());
    Arc::new(move |req| {
        let body = if req.uri().path() == "/healthz" {
            "OK".to_string()
        } else if let Some(r) = &fixed {
            r.clone()
        } else {
            let proto = match req.version() {
                http::Version::HTTP_2 => "HTTP/2.0",
                http::Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            };
            format!(
                "proto={proto} method={} path={}\n",
                req.method(),
                req.uri().path()
            )
        };
        Box::pin(async move { ok(body) })
    })
}
