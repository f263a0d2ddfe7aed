//! `swell server`: opens the store, serves the API, writes a kubeconfig, and shuts down
//! gracefully on SIGTERM or Ctrl-C.

use anyhow::Context;
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use swell_apiserver::ApiState;
use swell_store::{RedbStore, StoreConfig};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Options of `swell server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Where state (the database) and the kubeconfig live.
    #[arg(long, env = "SWELL_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Address of the Kubernetes-compatible API (plain HTTP; keep it on loopback).
    #[arg(long, env = "SWELL_API_ADDR", default_value = "127.0.0.1:6443")]
    pub api_addr: SocketAddr,
    /// How many recent changes watches can resume from; a client further behind gets
    /// 410 Expired and lists again.
    #[arg(long, env = "SWELL_WATCH_HISTORY", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_history: u64,
    /// What runs Revisions' replicas. `none` (until the process and runc backends land):
    /// Revisions report that nothing can run them. `fake`: replicas count as ready at
    /// once and nothing runs — for testing and benchmarking the control plane.
    #[arg(long, env = "SWELL_BACKEND", value_enum, default_value_t = BackendKind::None)]
    pub backend: BackendKind,
    /// Serve the API only: no controller reconciles anything (for API-level testing and
    /// debugging).
    #[arg(long, env = "SWELL_NO_CONTROLLERS")]
    pub no_controllers: bool,
}

/// The workload backends `--backend` can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// No workload backend.
    None,
    /// Replicas are ready at once; nothing runs.
    Fake,
}

/// `$XDG_DATA_HOME/swell`, else `~/.local/share/swell`, else `./swell-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("swell");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/swell"),
        None => PathBuf::from("swell-data"),
    }
}

/// The kubeconfig `swell server` writes into its data directory.
pub fn kubeconfig_path(data_dir: &Path) -> PathBuf {
    data_dir.join("kubeconfig")
}

fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: swell\n  cluster:\n    server: {server}\ncontexts:\n- name: swell\n  context:\n    cluster: swell\n    namespace: default\n    user: swell\ncurrent-context: swell\nusers:\n- name: swell\n  user: {{}}\n"
    )
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data directory {}", args.data_dir.display()))?;
    let db = args.data_dir.join("swell.redb");
    let config = StoreConfig {
        event_log_len: args.watch_history,
        ..StoreConfig::default()
    };
    let store = RedbStore::open(&db, config).with_context(|| {
        format!(
            "cannot open the store at {} (is another swell server using this data directory?)",
            db.display()
        )
    })?;
    swell_apiserver::bootstrap(&store).context("cannot create the built-in namespaces")?;
    let listener = tokio::net::TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.api_addr))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let kubeconfig = kubeconfig_path(&args.data_dir);
    write_atomically(&kubeconfig, &kubeconfig_yaml(&url))
        .with_context(|| format!("cannot write {}", kubeconfig.display()))?;

    let shutdown = CancellationToken::new();
    let state = Arc::new(ApiState::new(
        Arc::new(store),
        addr.to_string(),
        shutdown.clone(),
    ));
    let app = swell_apiserver::router(state.clone());

    // The controllers reach the API through the router itself, in-process.
    let backend: Arc<dyn swell_controller::Backend> = match args.backend {
        BackendKind::None => Arc::new(swell_controller::NoBackend),
        BackendKind::Fake => Arc::new(swell_controller::FakeBackend::default()),
    };
    let client = kube::Client::new(app.clone(), "default");
    let ingress = swell_controller::RoutingTables::default();
    let controllers = tokio::spawn({
        let shutdown = shutdown.clone();
        let enabled = !args.no_controllers;
        async move {
            if enabled {
                let on_config = Arc::new(move |cfg: &swell_api::config::ServingConfig| {
                    state.set_admission_context(swell_api::AdmissionContext {
                        config: swell_api::validation::ValidationConfig {
                            defaults: cfg.defaults.clone(),
                            features: cfg.features.clone(),
                            autoscaler: cfg.autoscaler.clone(),
                        },
                        ..swell_api::AdmissionContext::default()
                    });
                });
                swell_controller::run(client, backend, ingress, on_config, shutdown).await;
            }
        }
        .instrument(tracing::info_span!("controllers"))
    });
    tracing::info!(api = %url, data_dir = %args.data_dir.display(), "swell server started");
    println!("Swell API server listening on {url}");
    println!("Use it with kubectl or swell:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get ksvc");

    // Watch events are small writes in quick succession: without TCP_NODELAY, Nagle's
    // algorithm holds each behind the client's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let serve = axum::serve(listener, app).with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested, draining");
            shutdown.cancel();
        }
    });
    serve.await.context("API server failed")?;
    shutdown.cancel();
    controllers.await.context("controllers panicked")?;
    tracing::info!("drained cleanly");
    Ok(())
}

/// Writes a file by renaming a complete temporary file over it.
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(tmp, path)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
            let _ = ctrl_c.await;
        }
    }
}
