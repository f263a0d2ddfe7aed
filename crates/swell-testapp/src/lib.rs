//! `swell-testapp`: one binary that behaves like each of Knative's test images
//! (`test/test_images`), picked by `$SWELL_TESTAPP`, by the name it is run as (an image
//! links `/ko-app/runtime` to it, as ko lays out Knative's), or by its first argument.
//! It listens on `$PORT` (8080 when unset) and stops gracefully on SIGTERM — or, with
//! `EXIT_ON_SIGTERM` set (not empty), exits at once, dropping what is in flight, as many
//! real apps do.

mod autoscale;
mod grpc;
mod hello;
mod httpproxy;
mod multicontainer;
mod readiness;
mod runtime;
mod serve;
mod singlethreaded;
mod timeout;
mod volumes;
mod wsserver;

use std::time::Duration;
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: swell-testapp IMAGE [ARGS...]
   or: SWELL_TESTAPP=IMAGE swell-testapp [ARGS...]
   or: IMAGE [ARGS...]   (run through a link named after the image)
images: helloworld pizzaplanetv1 pizzaplanetv2 autoscale runtime timeout failing
        singlethreaded readiness hellohttp2 wsserver grpc-ping httpproxy
        hellovolume volumes servingcontainer sidecarcontainer";

/// The images, as the names they can be run as.
const IMAGES: &[&str] = &[
    "helloworld",
    "pizzaplanetv1",
    "pizzaplanet",
    "pizzaplanetv2",
    "autoscale",
    "runtime",
    "timeout",
    "failing",
    "singlethreaded",
    "readiness",
    "hellohttp2",
    "wsserver",
    "grpc-ping",
    "httpproxy",
    "hellovolume",
    "volumes",
    "servingcontainer",
    "sidecarcontainer",
];

/// Runs the image `args` pick (argv as a process gets it: `args[0]` is the name it was
/// run as) until it exits or is stopped by SIGTERM.
pub fn main_with(args: Vec<String>) -> std::process::ExitCode {
    // The env var and the link name leave argv alone, so `runtime` can report exactly
    // what it was given.
    let called = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .filter(|n| IMAGES.contains(n));
    let after_argv0 = &args[1.min(args.len())..];
    let (image, rest) = match (std::env::var("SWELL_TESTAPP"), called) {
        (Ok(image), _) if !image.is_empty() => (image, after_argv0),
        (_, Some(name)) => (name.to_string(), after_argv0),
        _ => match args.get(1) {
            Some(image) => (image.clone(), &args[2.min(args.len())..]),
            None => {
                eprintln!("{USAGE}");
                return std::process::ExitCode::from(2);
            }
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&image, rest)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("{image}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `$PORT`, or 8080.
fn port() -> Result<u16, String> {
    match std::env::var("PORT") {
        Ok(p) if !p.is_empty() => p.parse().map_err(|_| format!("PORT={p:?} is not a port")),
        _ => Ok(8080),
    }
}

async fn run(image: &str, args: &[String]) -> Result<u8, String> {
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let handler = match image {
        "helloworld" => hello::text_handler(hello::HELLO),
        "pizzaplanetv1" | "pizzaplanet" => hello::text_handler(hello::PIZZA_V1),
        "pizzaplanetv2" => hello::text_handler(hello::PIZZA_V2),
        "hellohttp2" => hello::http2_handler(),
        "autoscale" => autoscale::handler(),
        "runtime" => {
            if std::env::var_os("PORT").is_none() {
                return Err("PORT is not set (the runtime image requires it)".into());
            }
            runtime::handler()
        }
        "timeout" => timeout::handler(),
        "singlethreaded" => singlethreaded::handler(),
        "readiness" if args.first().map(String::as_str) == Some("probe") => {
            return Ok(readiness::probe(port()?).await);
        }
        "readiness" => readiness::start(stop.clone()).await?,
        "wsserver" => wsserver::handler(stop.clone()),
        "grpc-ping" => grpc::handler(),
        "httpproxy" => httpproxy::handler()?,
        "hellovolume" => volumes::hellovolume(),
        "servingcontainer" => multicontainer::serving()?,
        "sidecarcontainer" => multicontainer::sidecar(),
        "volumes" => match volumes::volumes()? {
            Some(handler) => handler,
            None => return Ok(0),
        },
        "failing" => {
            eprintln!("failing: starting, will exit with code 5 in 10 s");
            tokio::time::sleep(Duration::from_secs(10)).await;
            eprintln!("failing: exiting with code 5");
            return Ok(5);
        }
        other => return Err(format!("unknown image {other:?}\n{USAGE}")),
    };
    let port = if image == "sidecarcontainer" {
        multicontainer::SIDECAR_PORT
    } else {
        port()?
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    eprintln!("{image}: listening on port {port}");
    serve::serve(listener, handler, stop).await;
    eprintln!("{image}: stopped");
    Ok(0)
}

async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let at_once = std::env::var_os("EXIT_ON_SIGTERM").is_some_and(|v| !v.is_empty());
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {
                    if at_once {
                        eprintln!("SIGTERM: exiting at once");
                        std::process::exit(143);
                    }
                }
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    stop.cancel();
}
