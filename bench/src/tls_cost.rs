//! `bench/run tls`: what HTTPS, authentication and RBAC add to an API request, side by
//! side in one process and one run. The same API router over the same store is served
//! twice on loopback: once bare over plain HTTP/1.1 (a baseline only this benchmark
//! makes; Swell itself serves no plain-HTTP API), once as `swell server` serves it —
//! TLS, client certificates, the authentication and RBAC layer. Clients on warm
//! keep-alive connections take turns on the same GET, so machine noise hits all alike:
//! plain, HTTPS as the admin (`system:masters`), HTTPS as a user whose access comes
//! from a RoleBinding; then again with 1,000 more RoleBindings.

use super::auth::{create, role_binding};
use super::{api_client, fmt, percentile, service};
use anyhow::Context;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use std::sync::Arc;
use std::time::{Duration, Instant};
use swell_apiserver::ApiState;
use swell_apiserver::auth::{Authenticator, TokenFile};
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 3000;
const SERVICE: &str = "/apis/serving.knative.dev/v1/namespaces/default/services/hello";

/// A certificate for `cn` in `groups` (or, with `server`, for 127.0.0.1) from `ca`.
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    cn: &str,
    groups: &[&str],
    server: bool,
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let sans = if server {
        vec!["127.0.0.1".to_string()]
    } else {
        Vec::new()
    };
    let mut params = CertificateParams::new(sans)?;
    if let Some(g) = groups.first() {
        params.distinguished_name.push(DnType::OrganizationName, *g);
    }
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    Ok((params.signed_by(&key, ca)?.pem(), key.serialize_pem()))
}

/// Serves `app` over plain HTTP/1.1 on `listener` until `stop`.
async fn plain(listener: tokio::net::TcpListener, app: axum::Router, stop: CancellationToken) {
    use tower::ServiceExt;
    loop {
        let (tcp, _) = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn get(c: &reqwest::Client, url: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let r = c.get(url).send().await?;
    anyhow::ensure!(r.status() == 200, "GET {url}: {}", r.status());
    r.bytes().await?;
    Ok(t.elapsed())
}

/// Runs the scenario and prints its table.
pub async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let store = swell_store::RedbStore::open(&dir.path().join("swell.redb"), Default::default())?;
    swell_apiserver::bootstrap(&store).await?;
    let stop = CancellationToken::new();
    let state = Arc::new(ApiState::new(
        Arc::new(store),
        "127.0.0.1".into(),
        stop.clone(),
    ));

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench-ca");
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key)?.pem();
    let ca = Issuer::new(ca_params, ca_key);
    let (serving, serving_key) = leaf(&ca, "api", &[], true)?;
    let admin = leaf(&ca, "bench-admin", &["system:masters"], false)?;
    let user = leaf(&ca, "bench-user", &[], false)?;
    let auth =
        Arc::new(Authenticator::new(&ca_pem, TokenFile::default()).map_err(anyhow::Error::msg)?);
    state.set_authenticator(auth.clone());
    let tls = swell_apiserver::https::server_config(&serving, &serving_key, &auth)
        .map_err(anyhow::Error::msg)?;

    let bare = swell_apiserver::router(state.clone());
    let secured = swell_apiserver::secured(swell_apiserver::router(state.clone()), state.clone());
    let plain_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let plain_url = format!("http://{}", plain_listener.local_addr()?);
    let tls_url = format!("https://{}", tls_listener.local_addr()?);
    tokio::spawn(plain(plain_listener, bare, stop.clone()));
    tokio::spawn(swell_apiserver::https::serve(
        vec![tls_listener],
        tls,
        auth,
        secured,
        stop.clone(),
    ));

    let plain_client = reqwest::Client::builder().build()?;
    let admin_client = api_client(&ca_pem, Some((&admin.0, &admin.1)), None)?;
    let user_client = api_client(&ca_pem, Some((&user.0, &user.1)), None)?;
    let post = |path: &str, body: serde_json::Value| {
        let url = format!("{tls_url}{path}");
        let c = admin_client.clone();
        async move { create(&c, url, &body).await }
    };
    post(
        "/apis/serving.knative.dev/v1/namespaces/default/services",
        service("hello"),
    )
    .await?;
    const BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings";
    post(
        BINDINGS,
        role_binding("bench-user", "edit", &["bench-user"]),
    )
    .await?;

    let mut rows = Vec::new();
    for extra in [0, 1000] {
        if extra > 0 {
            for i in 0..extra {
                let other = format!("other-{i}");
                post(BINDINGS, role_binding(&other, "edit", &[&other])).await?;
            }
        }
        let clients = [
            (&plain_client, &plain_url),
            (&admin_client, &tls_url),
            (&user_client, &tls_url),
        ];
        let mut times: [Vec<Duration>; 3] = Default::default();
        for c in &clients {
            for _ in 0..50 {
                get(c.0, &format!("{}{SERVICE}", c.1))
                    .await
                    .context("warm-up")?;
            }
        }
        for _ in 0..ROUNDS {
            for (i, c) in clients.iter().enumerate() {
                times[i].push(get(c.0, &format!("{}{SERVICE}", c.1)).await?);
            }
        }
        for t in &mut times {
            t.sort();
        }
        rows.push((extra, times));
    }
    stop.cancel();

    println!("## API request cost of TLS, authentication and RBAC — `bench/run tls`\n");
    println!(
        "GET one Service, {ROUNDS} rounds on warm keep-alive connections, the three clients taking turns; the same router and store in one process.\n"
    );
    println!(
        "| RoleBindings besides the user's | plain HTTP (no auth) p50 · p99 | HTTPS admin p50 · p99 | HTTPS RoleBinding user p50 · p99 | added at p50 (admin · user) |"
    );
    println!("|---|---|---|---|---|");
    for (extra, t) in &rows {
        let p50 = |i: usize| percentile(&t[i], 0.5);
        let p99 = |i: usize| percentile(&t[i], 0.99);
        let added = |i: usize| p50(i).as_micros() as i64 - p50(0).as_micros() as i64;
        println!(
            "| {extra} | {} · {} | {} · {} | {} · {} | {} µs · {} µs |",
            fmt(p50(0)),
            fmt(p99(0)),
            fmt(p50(1)),
            fmt(p99(1)),
            fmt(p50(2)),
            fmt(p99(2)),
            added(1),
            added(2)
        );
    }
    Ok(())
}
