//! `swell server`: opens the store, serves the API (with `/metrics`) and the ingress,
//! runs the controllers and the workload backend, writes a kubeconfig, and shuts down
//! gracefully on SIGTERM or Ctrl-C.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use swell_apiserver::ApiState;
use swell_store::{RedbStore, StoreConfig};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a shutdown may take, every drain included (the ingress's 30 s, then each
/// replica's drain and SIGTERM grace, 10 s each), before the server stops at once.
const SHUTDOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Options of `swell server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Where state (the database) and the kubeconfig live.
    #[arg(long, env = "SWELL_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Address of the Kubernetes-compatible API (HTTPS only; every request is
    /// authenticated and authorized by RBAC).
    #[arg(long, env = "SWELL_API_ADDR", default_value = "127.0.0.1:6443")]
    pub api_addr: SocketAddr,
    /// The API's serving certificate (PEM, leaf first, then its chain), instead of the
    /// one Swell's CA signs; goes with --tls-private-key-file (kube-apiserver's flag).
    #[arg(long, env = "SWELL_TLS_CERT_FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM).
    #[arg(long, env = "SWELL_TLS_PRIVATE_KEY_FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Client certificates signed by a CA in this file (PEM) authenticate as their CN
    /// (user) and O (groups), instead of those Swell's CA signs (kube-apiserver's flag).
    #[arg(long, env = "SWELL_CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// More names (DNS names or IP addresses) for the serving certificate Swell makes,
    /// besides 127.0.0.1, ::1, localhost and this host's name. Repeatable.
    #[arg(long = "tls-san", env = "SWELL_TLS_SAN", value_delimiter = ',')]
    pub tls_sans: Vec<String>,
    /// Bearer tokens, in kube-apiserver's static token file format: CSV lines
    /// `token,user,uid,"group1,group2"`.
    #[arg(long, env = "SWELL_TOKEN_AUTH_FILE")]
    pub token_auth_file: Option<PathBuf>,
    /// How many recent changes watches can resume from; a client further behind gets
    /// 410 Expired and lists again.
    #[arg(long, env = "SWELL_WATCH_HISTORY", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_history: u64,
    /// Address of the ingress that serves Routes' URLs.
    #[arg(long, env = "SWELL_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// What runs Revisions' replicas. `process`: each replica is the container's
    /// `command`/`args` run as a local process. `runc`: each replica is the container's
    /// image run by runc, in its own network namespace (needs root, runc and the CNI
    /// plugins). `fake`: replicas count as ready at once and nothing runs
    /// (control-plane testing). `none`: nothing runs, and Revisions say so. Default:
    /// `runc` where it can run (as root, with `runc` on PATH and the CNI plugins in
    /// /usr/lib/cni), else `process`.
    #[arg(long, env = "SWELL_BACKEND", value_enum)]
    pub backend: Option<BackendKind>,
    /// A docker `config.json` whose registry credentials every image pull may use
    /// (after the Revision's `imagePullSecrets`). Default: `$DOCKER_CONFIG/config.json`,
    /// else `~/.docker/config.json`, when it exists.
    #[arg(long, env = "SWELL_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// How much disk the image store may take (a Kubernetes quantity: `20Gi`, `500M`).
    /// Past it, pulled images no replica runs are removed, least recently used first
    /// (they can be pulled again); imported images stay until `swell image rm`.
    #[arg(long, env = "SWELL_IMAGE_STORE_LIMIT", default_value = "20Gi", value_parser = parse_bytes)]
    pub image_store_limit: u64,
    /// Requests each Revision's activator queue holds while they wait for a replica with
    /// room; one more is answered 503 Service Unavailable (Knative's activator holds
    /// 10000).
    #[arg(long, env = "SWELL_QUEUE_DEPTH", default_value_t = swell_dataplane::pool::QUEUE_DEPTH as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub queue_depth: u64,
    /// Serve the API only: no controller reconciles anything (for API-level testing and
    /// debugging).
    #[arg(long, env = "SWELL_NO_CONTROLLERS")]
    pub no_controllers: bool,
    /// Let a Revision run its replicas as root (`runAsUser: 0`) under the process
    /// backend; without it they run as `runAsUser` or uid 65532 and uid 0 is refused.
    #[arg(long, env = "SWELL_ALLOW_ROOT_REPLICAS")]
    pub allow_root_replicas: bool,
    /// Let a container whose `seccompProfile.type` is `Unconfined` run without a
    /// seccomp filter under the runc backend; without it such a Revision is refused.
    #[arg(long, env = "SWELL_ALLOW_UNCONFINED_SECCOMP")]
    pub allow_unconfined_seccomp: bool,
}

/// The workload backends `--backend` can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Local processes.
    Process,
    /// Containers run by runc.
    Runc,
    /// Replicas are ready at once; nothing runs.
    Fake,
    /// No workload backend.
    None,
}

impl BackendKind {
    /// `runc` where it can run, else `process`.
    fn detect() -> BackendKind {
        let on_path = |tool: &str| {
            std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        };
        let cni = Path::new(swell_runtime::runc::network::PLUGIN_DIR).join("bridge");
        if nix::unistd::geteuid().is_root() && on_path("runc") && cni.is_file() {
            BackendKind::Runc
        } else {
            BackendKind::Process
        }
    }
}

/// Hands the backend's ready replicas to the data plane and wakes the Revision
/// reconciler and the Pod publisher; tells the backend when a leaving replica has
/// drained.
struct ToDataplane {
    pools: swell_dataplane::Revisions,
    changes: tokio::sync::mpsc::UnboundedSender<swell_runtime::RevisionRef>,
    pods: tokio::sync::mpsc::UnboundedSender<swell_runtime::RevisionRef>,
}

impl swell_runtime::ReplicaObserver for ToDataplane {
    fn replicas_changed(&self, rev: &swell_runtime::RevisionRef, ready: Vec<SocketAddr>) {
        let key = swell_dataplane::RevisionKey {
            namespace: rev.namespace.clone(),
            name: rev.name.clone(),
        };
        // A Revision that is gone gets no pool back.
        if self.pools.get(&key).is_some() {
            self.pools.set_replicas(&key, &ready);
        }
        let _ = self.changes.send(rev.clone());
    }

    fn drained(
        &self,
        rev: &swell_runtime::RevisionRef,
        addr: SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let key = swell_dataplane::RevisionKey {
            namespace: rev.namespace.clone(),
            name: rev.name.clone(),
        };
        Box::pin(self.pools.drained(&key, addr))
    }

    fn pods_changed(&self, rev: &swell_runtime::RevisionRef) {
        let _ = self.pods.send(rev.clone());
    }
}

/// A Kubernetes byte quantity.
fn parse_bytes(s: &str) -> Result<u64, String> {
    swell_api::quantity::bytes(s)
        .ok_or_else(|| format!("{s:?} is not a quantity of bytes (like 20Gi)"))
}

/// The registry credentials of `--registry-config`, else of the docker config file in
/// its usual place if there is one.
fn registry_credentials(
    configured: Option<&Path>,
) -> anyhow::Result<swell_runtime::image::Credentials> {
    let usual = || {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
        Some(dir.join("config.json")).filter(|p| p.exists())
    };
    let Some(path) = configured.map(Path::to_path_buf).or_else(usual) else {
        return Ok(Default::default());
    };
    let bytes = std::fs::read(&path)
        .with_context(|| format!("cannot read registry config {}", path.display()))?;
    swell_runtime::image::Credentials::from_docker_config(&bytes)
        .with_context(|| format!("registry config {}", path.display()))
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

/// What a started server tells whoever started it in-process (`swell quickstart`).
#[derive(Debug)]
pub struct Started {
    /// The kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// What runs replicas.
    pub backend: BackendKind,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    serve(args, None).await
}

/// Runs the server until SIGTERM or Ctrl-C, saying on `started` once it serves.
pub async fn serve(
    args: ServerArgs,
    started: Option<tokio::sync::oneshot::Sender<Started>>,
) -> anyhow::Result<()> {
    crate::private::create_dir(&args.data_dir)?;
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
    crate::private::restrict(&db, 0o600)?;
    swell_apiserver::bootstrap(&store)
        .await
        .context("cannot create the built-in namespaces")?;
    let store: Arc<dyn swell_store::Store> = Arc::new(store);
    let backend_kind = args.backend.unwrap_or_else(BackendKind::detect);
    // runc replicas live in their own network namespaces and reach the host, and so
    // the API, at their bridge's gateway.
    let replica_gateway = (backend_kind == BackendKind::Runc)
        .then_some(std::net::IpAddr::V4(swell_runtime::runc::network::GATEWAY));
    let (authenticator, tls, certs) =
        crate::security::api_security(&args, store.clone(), replica_gateway)?;
    let listener = tokio::net::TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.api_addr))?;
    let addr = listener.local_addr()?;
    // A server on every address is reached, and named in its certificate, as loopback.
    let reach = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let url = format!("https://{reach}");
    let kubeconfig = kubeconfig_path(&args.data_dir);
    let admin = crate::pki::ADMIN_USER;
    crate::private::write(
        &kubeconfig,
        crate::kubeconfig::yaml(
            &url,
            &certs.server_ca,
            admin,
            certs.admin.as_ref(),
            "default",
        )
        .as_bytes(),
    )?;

    let mut listeners = vec![listener];
    // Where replicas reach the API: on the host, as anyone there; under runc, at their
    // bridge's gateway.
    let replica_api = match replica_gateway {
        Some(ip) => match bind_before_the_address_exists(SocketAddr::new(ip, addr.port())) {
            Ok(l) => {
                listeners.push(l);
                Some(SocketAddr::new(ip, addr.port()))
            }
            // Taken by a listener on every address (--api-addr 0.0.0.0:…), which serves it.
            Err(_) if addr.ip().is_unspecified() => Some(SocketAddr::new(ip, addr.port())),
            Err(e) => {
                tracing::warn!(error = %e, %ip, "replicas cannot reach the API");
                None
            }
        },
        None => Some(reach),
    };
    let ingress_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} (ingress)", args.http_addr))?;
    let ingress_addr = ingress_listener.local_addr()?;

    let shutdown = CancellationToken::new();
    let state = Arc::new(ApiState::new(
        store.clone(),
        reach.to_string(),
        shutdown.clone(),
    ));
    state.set_authenticator(authenticator.clone());
    let dataplane = Arc::new(swell_dataplane::Dataplane {
        routes: swell_dataplane::RoutingTables::default(),
        revisions: swell_dataplane::Revisions::with_queue_depth(
            usize::try_from(args.queue_depth).unwrap_or(usize::MAX),
        ),
    });
    // Replicas call Services by name: DNS and ingress listeners where they reach them.
    let replica_network = crate::replica_network::ReplicaNetwork::start(
        backend_kind,
        ingress_addr,
        &dataplane.routes,
        shutdown.clone(),
    );
    let pools = dataplane.revisions.clone();
    let routes = swell_apiserver::router(state.clone()).route(
        "/metrics",
        axum::routing::get(move || {
            let body = pools.render_metrics();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    let app = swell_apiserver::secured(routes, state.clone());

    let (changes_tx, replica_changes) = tokio::sync::mpsc::unbounded_channel();
    let (pods_tx, pod_changes) = tokio::sync::mpsc::unbounded_channel();
    let observer = Arc::new(ToDataplane {
        pools: dataplane.revisions.clone(),
        changes: changes_tx,
        pods: pods_tx,
    });
    let mut images: Option<Arc<dyn swell_runtime::ImageResolver>> = None;
    let policy = swell_runtime::ReplicaPolicy {
        allow_root: args.allow_root_replicas,
        allow_unconfined_seccomp: args.allow_unconfined_seccomp,
    };
    let process = match backend_kind {
        BackendKind::Process => {
            let dir = args.data_dir.join("replicas");
            Some(Arc::new(
                swell_runtime::ProcessBackend::new(
                    &dir,
                    observer,
                    policy,
                    replica_network.dns.clone(),
                )
                .with_context(|| {
                    format!("cannot prepare the process backend in {}", dir.display())
                })?,
            ))
        }
        BackendKind::Runc => {
            let dir = args.data_dir.join("replicas");
            let store = crate::image::store(&args.data_dir)?;
            let runc = Arc::new(
                swell_runtime::runc::Runc::new(
                    &args.data_dir.join("runc"),
                    store,
                    registry_credentials(args.registry_config.as_deref())?,
                )
                .await
                .map(|r| {
                    let r = r
                        .with_store_limit(args.image_store_limit)
                        .with_policy(policy);
                    match &replica_network.dns {
                        Some(dns) => {
                            r.with_cluster_dns(dns.clone(), replica_network.redirects.clone())
                        }
                        None => r,
                    }
                })
                .context("cannot prepare the runc backend")?,
            );
            images = Some(runc.clone());
            Some(Arc::new(
                swell_runtime::ProcessBackend::with_launcher(&dir, observer, runc).with_context(
                    || format!("cannot prepare the runc backend in {}", dir.display()),
                )?,
            ))
        }
        _ => None,
    };
    let backend: Arc<dyn swell_controller::Backend> = match (&process, backend_kind) {
        (Some(p), _) => p.clone(),
        (None, BackendKind::Fake) => Arc::new(swell_controller::FakeBackend::default()),
        (None, _) => Arc::new(swell_controller::NoBackend),
    };
    // Replicas are published as Pods, as kubelet would.
    let pods = Arc::new(crate::pods::Pods::new(
        store,
        backend.clone(),
        crate::pods::node_name(),
    ));
    state.set_pod_logs(pods.clone());
    let publisher = tokio::spawn(pods.run(pod_changes, shutdown.clone()));
    // The controllers reach the API through the router itself, in-process, as an
    // identity no request from the network can carry.
    let client = kube::Client::new(
        tower::ServiceBuilder::new()
            .map_request(|mut req: http::Request<kube::client::Body>| {
                req.extensions_mut()
                    .insert(swell_apiserver::auth::controllers());
                req
            })
            .service(app.clone()),
        "default",
    );
    let wiring = swell_controller::Wiring {
        client,
        backend,
        ingress: dataplane.routes.clone(),
        pools: dataplane.revisions.clone(),
        ingress_port: Some(ingress_addr.port()),
        replica_api,
        // Only runc mounts volumes; kubelet's automounted token needs one.
        replica_api_ca: (backend_kind == BackendKind::Runc).then(|| certs.server_ca.clone()),
        replica_changes,
        images,
        on_config: Arc::new(move |cfg: &swell_api::config::ServingConfig| {
            state.set_admission_context(swell_api::AdmissionContext {
                config: swell_api::validation::ValidationConfig::of(cfg),
                ..swell_api::AdmissionContext::default()
            });
        }),
    };
    // The ingress as a Kubernetes Service, where Knative's conformance tests look for it.
    if !args.no_controllers
        && let Err(e) =
            swell_controller::route_service::publish_ingress(&wiring.client, ingress_addr).await
    {
        tracing::warn!(error = %e, "cannot publish the ingress as a Service");
    }
    let ingress = tokio::task::spawn_blocking({
        let public = (
            ingress_listener.into_std()?,
            swell_dataplane::ingress::Peers::Loopback,
        );
        let listener = [public]
            .into_iter()
            .chain(replica_network.listeners)
            .collect();
        let shutdown = shutdown.clone();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        move || swell_dataplane::ingress::run(listener, dataplane, shutdown, threads)
    });
    let controllers = tokio::spawn({
        let shutdown = shutdown.clone();
        let enabled = !args.no_controllers;
        async move {
            if enabled {
                swell_controller::run(wiring, shutdown).await;
            }
        }
        .instrument(tracing::info_span!("controllers"))
    });
    tracing::info!(api = %url, ingress = %ingress_addr, data_dir = %args.data_dir.display(), "swell server started");
    let stop = StopSignals::watch();
    // Whoever started the server may stop reading its output (`swell server | head -1`):
    // that must not stop the server, so write errors are ignored.
    let banner = format!(
        "Swell API server listening on {url}\n\
         Swell ingress listening on http://{ingress_addr}\n\
         Swell runs replicas with the {} backend\n\
         Use it with kubectl or swell:\n  export KUBECONFIG={}\n  kubectl get ksvc\n",
        clap::ValueEnum::to_possible_value(&backend_kind)
            .map_or_else(String::new, |v| v.get_name().to_string()),
        kubeconfig.display()
    );
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    if let Some(tx) = started {
        let _ = tx.send(Started {
            kubeconfig: kubeconfig.clone(),
            backend: backend_kind,
        });
    }

    // The first SIGTERM or Ctrl-C drains; a second one, or a drain that outlasts
    // SHUTDOWN_BOUND, stops at once: replica processes are killed, and what else they
    // leave (runc containers, networks) the next start removes.
    let stopper = tokio::spawn({
        let (shutdown, process) = (shutdown.clone(), process.clone());
        let mut stop = stop;
        async move {
            tokio::select! {
                () = stop.recv() => tracing::info!(
                    "shutdown requested, draining (a second SIGTERM or Ctrl-C stops at once)"
                ),
                () = shutdown.cancelled() => {}
            }
            shutdown.cancel();
            tokio::select! {
                () = stop.recv() => tracing::warn!("stopping at once, without draining"),
                () = tokio::time::sleep(SHUTDOWN_BOUND) => tracing::error!(
                    bound = ?SHUTDOWN_BOUND,
                    "the shutdown did not end in time; stopping at once"
                ),
            }
            if let Some(p) = process {
                let killed = p.kill_now();
                tracing::warn!(replicas = killed, "killed the replicas still running");
            }
            std::process::exit(1);
        }
    });
    swell_apiserver::https::serve(listeners, tls, authenticator, app, shutdown.clone()).await;
    shutdown.cancel();
    controllers.await.context("controllers panicked")?;
    publisher.await.context("the Pod publisher panicked")?;
    if let Some(dns) = replica_network.task {
        dns.await.context("replicas' DNS panicked")?;
    }
    ingress
        .await
        .context("ingress panicked")?
        .context("ingress failed")?;
    if let Some(p) = process {
        p.shutdown().await;
    }
    stopper.abort();
    tracing::info!("drained cleanly");
    Ok(())
}

/// A listener on `addr` even while no interface has that address yet (IP_FREEBIND):
/// the replicas' bridge appears with the first replica.
fn bind_before_the_address_exists(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::IpFreebind, &true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Stop signals, watched from the moment this is called (so a SIGTERM that arrives
/// during start-up drains the server instead of killing it).
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn watch() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch {name}");
                None
            }
        };
        StopSignals {
            term: watch(SignalKind::terminate(), "SIGTERM"),
            interrupt: watch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// The next SIGTERM or SIGINT.
    async fn recv(&mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.term) => {}
            () = next(&mut self.interrupt) => {}
        }
    }
}
