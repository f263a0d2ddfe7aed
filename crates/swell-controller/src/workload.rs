//! What a Revision runs, resolved for the backend: the serving container's environment
//! (`envFrom`, then `env` with ConfigMap/Secret references and Kubernetes' `$(VAR)`
//! expansion, then Knative's `K_*`), its argv, port and stop grace period, and the
//! files of its ConfigMap, Secret and projected volumes.

use crate::labels;
use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Secret};
use kube::api::Api;
use std::collections::BTreeMap;
use std::time::Duration;
use swell_api::Revision;
use swell_runtime::image::Credentials;
use swell_runtime::volume::{Volume, VolumeFile, VolumeSource};
use swell_runtime::{ContainerRun, Failure, Workload};

/// The default container port (runtime contract).
pub const DEFAULT_PORT: u16 = 8080;

/// Expands `$(VAR)` from `vars` (unknown references stay as written; `$$` is `$`).
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[i..i + 2 + end + 1]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn config_error(message: String) -> Failure {
    Failure {
        reason: "CreateContainerConfigError".into(),
        message,
        failed: true,
    }
}

/// A ConfigMap's or Secret's keys and values.
type Data = BTreeMap<String, Vec<u8>>;

/// Reads ConfigMaps and Secrets of one namespace, once each.
struct Sources<'t> {
    client: kube::Client,
    access: &'t crate::token::ApiAccess,
    service_account: String,
    maps: Api<ConfigMap>,
    secrets: Api<Secret>,
    map_cache: BTreeMap<String, Option<Data>>,
    secret_cache: BTreeMap<String, Option<Data>>,
}

/// Binary values, then text values over them (a ConfigMap's `binaryData` and `data`,
/// a Secret's `data` and `stringData`).
fn merged(
    bytes: Option<BTreeMap<String, k8s_openapi::ByteString>>,
    text: Option<BTreeMap<String, String>>,
) -> Data {
    let mut data: Data = bytes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    data.extend(
        text.unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    data
}

impl Sources<'_> {
    /// A ConfigMap's `data` and `binaryData`.
    async fn map(&mut self, name: &str) -> Result<Option<Data>, kube::Error> {
        if !self.map_cache.contains_key(name) {
            let m = self.maps.get_opt(name).await?;
            let data = m.map(|m| merged(m.binary_data, m.data));
            self.map_cache.insert(name.to_string(), data);
        }
        Ok(self.map_cache[name].clone())
    }

    /// A Secret's `data` and `stringData`.
    async fn secret(&mut self, name: &str) -> Result<Option<Data>, kube::Error> {
        if !self.secret_cache.contains_key(name) {
            let s = self.secrets.get_opt(name).await?;
            let data = s.map(|s| merged(s.data, s.string_data));
            self.secret_cache.insert(name.to_string(), data);
        }
        Ok(self.secret_cache[name].clone())
    }
}

/// Bytes as an environment value.
fn text(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Why a Workload cannot be built: the API failed (retry), or the Revision's
/// references cannot be satisfied (report it).
#[derive(Debug)]
pub enum WorkloadError {
    /// Retry.
    Api(kube::Error),
    /// Report on the Revision.
    Config(Failure),
}

impl From<kube::Error> for WorkloadError {
    fn from(e: kube::Error) -> Self {
        WorkloadError::Api(e)
    }
}

/// The serving container and the others.
fn split_containers(rev: &Revision) -> Option<(Container, Vec<Container>)> {
    let mut all = rev.spec.pod_spec.containers.clone();
    let i = swell_api::defaults::serving_container_index(&all)?;
    let serving = all.remove(i);
    Some((serving, all))
}

/// The registry credentials of the Revision's `imagePullSecrets`, in order. As kubelet
/// does, a Secret that is missing or holds no docker config is passed over (logged).
pub async fn pull_credentials(
    client: &kube::Client,
    rev: &Revision,
) -> Result<Credentials, kube::Error> {
    let ns = rev.metadata.namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut credentials = Credentials::default();
    for r in rev.spec.pod_spec.image_pull_secrets.iter().flatten() {
        let Some(secret) = secrets.get_opt(&r.name).await? else {
            tracing::warn!(namespace = %ns, secret = %r.name, "imagePullSecret not found; pulling without it");
            continue;
        };
        let data = merged(secret.data, secret.string_data);
        let doc = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"));
        match doc.map(|d| Credentials::from_docker_config(d)) {
            Some(Ok(c)) => credentials = credentials.then(&c),
            Some(Err(e)) => {
                tracing::warn!(namespace = %ns, secret = %r.name, error = %e, "imagePullSecret unusable; pulling without it");
            }
            None => {
                tracing::warn!(namespace = %ns, secret = %r.name, "imagePullSecret has no .dockerconfigjson; pulling without it");
            }
        }
    }
    Ok(credentials)
}

/// One container's environment (`envFrom`, then `env` with ConfigMap/Secret
/// references and `$(VAR)` expansion, then Knative's `K_*`) and its expanded
/// `command`/`args`.
async fn run_spec(
    src: &mut Sources<'_>,
    rev: &Revision,
    container: Container,
) -> Result<ContainerRun, WorkloadError> {
    let ns = rev.metadata.namespace.as_deref().unwrap_or_default();
    let name = rev.metadata.name.as_deref().unwrap_or_default();
    // As kubelet, the API's address comes first; the container's own env may override it.
    let mut env: Vec<(String, String)> = src.access.endpoint.map(api_env).unwrap_or_default();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, what, optional) = if let Some(r) = &from.config_map_ref {
            (
                src.map(&r.name).await?,
                format!("configmap {:?}", r.name),
                r.optional,
            )
        } else if let Some(r) = &from.secret_ref {
            (
                src.secret(&r.name).await?,
                format!("secret {:?}", r.name),
                r.optional,
            )
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    set(&mut env, format!("{prefix}{k}"), text(v));
                }
            }
            None if optional == Some(true) => {}
            None => {
                return Err(WorkloadError::Config(config_error(format!(
                    "{what} not found"
                ))));
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = match &e.value_from {
            None => Some(expand(
                e.value.as_deref().unwrap_or_default(),
                &vars_snapshot(&env),
            )),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    let d = src.map(&r.name).await?;
                    key_ref(d, "ConfigMap", ns, &r.name, &r.key, r.optional)?
                } else if let Some(r) = &from.secret_key_ref {
                    let d = src.secret(&r.name).await?;
                    key_ref(d, "Secret", ns, &r.name, &r.key, r.optional)?
                } else if let Some(f) = &from.field_ref {
                    match f.field_path.as_str() {
                        "metadata.namespace" => Some(ns.to_string()),
                        "metadata.name" => Some(format!("{name}-deployment")),
                        "status.podIP" | "status.hostIP" => Some("127.0.0.1".into()),
                        other => {
                            return Err(WorkloadError::Config(config_error(format!(
                                "env {}: fieldRef {other:?} is not supported by Swell",
                                e.name
                            ))));
                        }
                    }
                } else {
                    return Err(WorkloadError::Config(config_error(format!(
                        "env {}: resourceFieldRef is not supported by Swell",
                        e.name
                    ))));
                }
            }
        };
        if let Some(v) = value {
            set(&mut env, e.name.clone(), v);
        }
    }
    let label = |k: &str| {
        rev.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .cloned()
            .unwrap_or_default()
    };
    set(&mut env, "K_REVISION".into(), name.to_string());
    set(
        &mut env,
        "K_CONFIGURATION".into(),
        label(labels::CONFIGURATION),
    );
    set(&mut env, "K_SERVICE".into(), label(labels::SERVICE));
    // `$(PORT)` stays: each replica's port is the backend's to fill in.
    let final_vars = vars_snapshot(&env);
    let expanded = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| v.iter().map(|a| expand(a, &final_vars)).collect::<Vec<_>>())
    };
    Ok(ContainerRun {
        command: expanded(&container.command),
        args: expanded(&container.args),
        env,
        container,
    })
}

/// The variables kubelet gives every container to find the API, for `api` (where
/// replicas reach it).
fn api_env(api: std::net::SocketAddr) -> Vec<(String, String)> {
    let (host, port) = (api.ip().to_string(), api.port().to_string());
    vec![
        ("KUBERNETES_SERVICE_HOST".into(), host.clone()),
        ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone()),
        ("KUBERNETES_PORT".into(), format!("tcp://{api}")),
        (
            format!("KUBERNETES_PORT_{port}_TCP"),
            format!("tcp://{api}"),
        ),
        (format!("KUBERNETES_PORT_{port}_TCP_PROTO"), "tcp".into()),
        (format!("KUBERNETES_PORT_{port}_TCP_PORT"), port),
        (format!("KUBERNETES_PORT_{}_TCP_ADDR", api.port()), host),
    ]
}

/// Resolves what `rev` runs; its images are pulled with `pull_credentials`; replicas
/// call the API through `access`.
pub async fn resolve(
    client: &kube::Client,
    access: &crate::token::ApiAccess,
    rev: &Revision,
    pull_credentials: Credentials,
) -> Result<Workload, WorkloadError> {
    let ns = rev.metadata.namespace.clone().unwrap_or_default();
    let Some((container, sidecars)) = split_containers(rev) else {
        return Err(WorkloadError::Config(config_error(
            "the Revision has no serving container".into(),
        )));
    };
    let service_account = rev
        .spec
        .pod_spec
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    // As Kubernetes' ServiceAccount admission: no pod of an account that is not there.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &ns);
    let Some(account) = accounts
        .get_opt(&service_account)
        .await
        .map_err(WorkloadError::Api)?
    else {
        return Err(WorkloadError::Config(config_error(format!(
            "error looking up service account {ns}/{service_account}: serviceaccount {service_account:?} not found"
        ))));
    };
    let automount = rev
        .spec
        .pod_spec
        .automount_service_account_token
        .or(account.automount_service_account_token)
        != Some(false);
    let mut src = Sources {
        client: client.clone(),
        access,
        service_account,
        maps: Api::namespaced(client.clone(), &ns),
        secrets: Api::namespaced(client.clone(), &ns),
        map_cache: BTreeMap::new(),
        secret_cache: BTreeMap::new(),
    };
    let serving = run_spec(&mut src, rev, container).await?;
    let mut sidecar_runs = Vec::new();
    for c in sidecars {
        sidecar_runs.push(run_spec(&mut src, rev, c).await?);
    }
    let mut init_runs = Vec::new();
    for c in rev
        .spec
        .pod_spec
        .init_containers
        .clone()
        .unwrap_or_default()
    {
        init_runs.push(run_spec(&mut src, rev, c).await?);
    }
    let ContainerRun {
        container,
        env,
        command,
        args,
    } = serving;
    let port = container
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .and_then(|p| u16::try_from(p.container_port).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_PORT);
    let argv = command
        .iter()
        .flatten()
        .chain(args.iter().flatten())
        .cloned()
        .collect();
    let grace = Duration::from_secs(
        rev.spec
            .timeout_seconds
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(300),
    );
    let mut volumes = volumes(&mut src, rev, &ns).await?;
    let mut container = container;
    if automount && let Some(ca) = &access.ca {
        volumes.push(api_access_volume(&mut src, ca, &ns).await?);
        let runs = std::iter::once(&mut container)
            .chain(sidecar_runs.iter_mut().map(|r| &mut r.container))
            .chain(init_runs.iter_mut().map(|r| &mut r.container));
        for c in runs {
            let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
            if !mounts
                .iter()
                .any(|m| m.mount_path.trim_end_matches('/') == crate::token::MOUNT_PATH)
            {
                mounts.push(k8s_openapi::api::core::v1::VolumeMount {
                    name: API_ACCESS_VOLUME.to_string(),
                    mount_path: crate::token::MOUNT_PATH.to_string(),
                    read_only: Some(true),
                    ..Default::default()
                });
            }
        }
    }
    Ok(Workload {
        container,
        env,
        argv,
        command,
        args,
        port,
        grace,
        sidecars: sidecar_runs,
        init_containers: init_runs,
        volumes,
        pull_credentials,
        security_context: rev.spec.pod_spec.security_context.clone(),
        host_aliases: rev.spec.pod_spec.host_aliases.clone().unwrap_or_default(),
        dns_policy: rev.spec.pod_spec.dns_policy.clone(),
        dns_config: rev.spec.pod_spec.dns_config.clone(),
    })
}

/// What a Revision can read values from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

/// Whether `rev` reads the ConfigMap or Secret `name` of its namespace (through a
/// volume, `env`, `envFrom` or `imagePullSecrets`), so that a change to it concerns the
/// Revision.
pub fn references(rev: &Revision, kind: SourceKind, name: &str) -> bool {
    let is = |k: SourceKind, n: &str| k == kind && n == name;
    let spec = &rev.spec.pod_spec;
    let in_volumes = spec.volumes.iter().flatten().any(|v| {
        v.config_map
            .as_ref()
            .is_some_and(|c| is(SourceKind::ConfigMap, &c.name))
            || v.secret
                .as_ref()
                .and_then(|s| s.secret_name.as_deref())
                .is_some_and(|n| is(SourceKind::Secret, n))
            || v.projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .any(|s| {
                    s.config_map
                        .as_ref()
                        .is_some_and(|c| is(SourceKind::ConfigMap, &c.name))
                        || s.secret
                            .as_ref()
                            .is_some_and(|c| is(SourceKind::Secret, &c.name))
                })
    });
    let in_env = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.env_from.iter().flatten().any(|f| {
                f.config_map_ref
                    .as_ref()
                    .is_some_and(|r| is(SourceKind::ConfigMap, &r.name))
                    || f.secret_ref
                        .as_ref()
                        .is_some_and(|r| is(SourceKind::Secret, &r.name))
            }) || c
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value_from.as_ref())
                .any(|f| {
                    f.config_map_key_ref
                        .as_ref()
                        .is_some_and(|r| is(SourceKind::ConfigMap, &r.name))
                        || f.secret_key_ref
                            .as_ref()
                            .is_some_and(|r| is(SourceKind::Secret, &r.name))
                })
        });
    let in_pull_secrets = kind == SourceKind::Secret
        && spec
            .image_pull_secrets
            .iter()
            .flatten()
            .any(|r| r.name == name);
    in_volumes || in_env || in_pull_secrets
}

/// The files `items` select from `data` (every key when there are no items), with
/// `default_mode` unless an item sets its own. A missing key fails unless `optional`.
fn select(
    data: &Data,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
    what: &str,
) -> Result<Vec<VolumeFile>, WorkloadError> {
    let mode = |m: Option<i32>| {
        m.or(default_mode)
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0o644)
    };
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        return Ok(data
            .iter()
            .map(|(k, v)| VolumeFile {
                path: k.clone(),
                data: v.clone(),
                mode: mode(None),
            })
            .collect());
    };
    let mut files = Vec::new();
    for item in items {
        match data.get(&item.key) {
            Some(v) => files.push(VolumeFile {
                path: item.path.clone(),
                data: v.clone(),
                mode: mode(item.mode),
            }),
            None if optional => {}
            None => {
                return Err(WorkloadError::Config(config_error(format!(
                    "couldn't find key {} in {what}",
                    item.key
                ))));
            }
        }
    }
    Ok(files)
}

/// A ConfigMap or Secret a volume shows: which, its name, the keys it selects, and
/// whether it may be missing.
struct Projection<'a> {
    kind: SourceKind,
    name: &'a str,
    items: Option<&'a Vec<KeyToPath>>,
    optional: Option<bool>,
}

/// The files of one projection (none when it is missing and optional; an error when
/// it is missing otherwise), with `default_mode` unless an item sets its own.
async fn projection_files(
    src: &mut Sources<'_>,
    p: &Projection<'_>,
    default_mode: Option<i32>,
    ns: &str,
) -> Result<Vec<VolumeFile>, WorkloadError> {
    let (data, kind) = match p.kind {
        SourceKind::Secret => (src.secret(p.name).await?, "secret"),
        SourceKind::ConfigMap => (src.map(p.name).await?, "configmap"),
    };
    let optional = p.optional == Some(true);
    let name = p.name;
    match data {
        Some(d) => select(
            &d,
            p.items,
            default_mode,
            optional,
            &format!("{kind} {ns}/{name}"),
        ),
        None if optional => Ok(Vec::new()),
        None => Err(WorkloadError::Config(config_error(format!(
            "{kind} {name:?} not found"
        )))),
    }
}

/// The volume kubelet mounts into every container unless told not to (Kubernetes
/// names it `kube-api-access-<random>`).
const API_ACCESS_VOLUME: &str = "kube-api-access-swell";

/// `token` (of the API's audience, one hour), `ca.crt` and `namespace`, as kubelet's
/// automounted volume holds them.
async fn api_access_volume(
    src: &mut Sources<'_>,
    ca: &str,
    ns: &str,
) -> Result<Volume, WorkloadError> {
    let token = k8s_openapi::api::core::v1::ServiceAccountTokenProjection {
        path: "token".to_string(),
        expiration_seconds: Some(3607),
        audience: None,
    };
    let file = |path: &str, data: &[u8]| VolumeFile {
        path: path.to_string(),
        data: data.to_vec(),
        mode: 0o644,
    };
    Ok(Volume {
        name: API_ACCESS_VOLUME.to_string(),
        source: VolumeSource::Files(vec![
            token_file(src, &token, None, ns).await?,
            file("ca.crt", ca.as_bytes()),
            file("namespace", ns.as_bytes()),
        ]),
    })
}

/// A projected `serviceAccountToken`: a token of the Revision's ServiceAccount for the
/// asked audience and lifetime (kubelet's defaults: the API's audience, one hour),
/// mode `defaultMode` or 0644 as kubelet writes it.
async fn token_file(
    src: &mut Sources<'_>,
    t: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection,
    default_mode: Option<i32>,
    ns: &str,
) -> Result<VolumeFile, WorkloadError> {
    let expiration = t.expiration_seconds.unwrap_or(3600);
    let token = src
        .access
        .tokens
        .token(
            &src.client,
            ns,
            &src.service_account,
            t.audience.as_deref().filter(|a| !a.is_empty()),
            expiration,
        )
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) => WorkloadError::Config(config_error(format!(
                "cannot get a token for service account {:?}: {}",
                src.service_account, s.message
            ))),
            other => WorkloadError::Api(other),
        })?;
    Ok(VolumeFile {
        path: t.path.clone(),
        data: token.into_bytes(),
        mode: default_mode.map_or(0o644, |m| u32::try_from(m).unwrap_or(0o644)),
    })
}

/// The Revision's volumes: emptyDirs as they are, ConfigMap, Secret and projected
/// volumes as the files they hold now.
async fn volumes(
    src: &mut Sources<'_>,
    rev: &Revision,
    ns: &str,
) -> Result<Vec<Volume>, WorkloadError> {
    let mut out = Vec::new();
    let mut tokens = Vec::new();
    for v in rev.spec.pod_spec.volumes.iter().flatten() {
        let unsupported = |what: &str| {
            WorkloadError::Config(config_error(format!(
                "volume {:?}: {what} volumes are not supported by Swell",
                v.name
            )))
        };
        if let Some(e) = &v.empty_dir {
            let size_limit = match &e.size_limit {
                Some(q) => Some(swell_api::quantity::bytes(&q.0).ok_or_else(|| {
                    WorkloadError::Config(config_error(format!(
                        "volume {:?}: sizeLimit {:?} is not a quantity",
                        v.name, q.0
                    )))
                })?),
                None => None,
            };
            out.push(Volume {
                name: v.name.clone(),
                source: VolumeSource::EmptyDir {
                    memory: e.medium.as_deref() == Some("Memory"),
                    size_limit,
                },
            });
            continue;
        }
        let (projections, default_mode) = if let Some(c) = &v.config_map {
            let p = Projection {
                kind: SourceKind::ConfigMap,
                name: &c.name,
                items: c.items.as_ref(),
                optional: c.optional,
            };
            (vec![p], c.default_mode)
        } else if let Some(s) = &v.secret {
            let p = Projection {
                kind: SourceKind::Secret,
                name: s.secret_name.as_deref().unwrap_or_default(),
                items: s.items.as_ref(),
                optional: s.optional,
            };
            (vec![p], s.default_mode)
        } else if let Some(p) = &v.projected {
            let mut list = Vec::new();
            for s in p.sources.iter().flatten() {
                let (kind, name, items, optional) = if let Some(c) = &s.config_map {
                    (SourceKind::ConfigMap, &c.name, c.items.as_ref(), c.optional)
                } else if let Some(c) = &s.secret {
                    (SourceKind::Secret, &c.name, c.items.as_ref(), c.optional)
                } else if let Some(t) = &s.service_account_token {
                    tokens.push((t, p.default_mode));
                    continue;
                } else if s.downward_api.is_some() {
                    return Err(unsupported("projected downwardAPI"));
                } else {
                    return Err(unsupported("this projected source's"));
                };
                list.push(Projection {
                    kind,
                    name,
                    items,
                    optional,
                });
            }
            (list, p.default_mode)
        } else if v.persistent_volume_claim.is_some() {
            return Err(unsupported("persistentVolumeClaim"));
        } else {
            return Err(unsupported("these"));
        };
        let mut files = Vec::new();
        for p in &projections {
            files.extend(projection_files(src, p, default_mode, ns).await?);
        }
        for (t, mode) in tokens.drain(..) {
            files.push(token_file(src, t, mode, ns).await?);
        }
        out.push(Volume {
            name: v.name.clone(),
            source: VolumeSource::Files(files),
        });
    }
    Ok(out)
}

/// The value of `key` in a ConfigMap's or Secret's `data` (`None` when it is absent
/// and the reference is optional).
fn key_ref(
    data: Option<Data>,
    kind: &str,
    ns: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, WorkloadError> {
    match (data.as_ref().and_then(|d| d.get(key)), optional) {
        (Some(v), _) => Ok(Some(text(v.clone()))),
        (None, Some(true)) => Ok(None),
        (None, _) => Err(WorkloadError::Config(config_error(match data {
            Some(_) => format!("couldn't find key {key} in {kind} {ns}/{name}"),
            None => format!("{} {name:?} not found", kind.to_ascii_lowercase()),
        }))),
    }
}

/// Sets (or replaces) one variable.
fn set(env: &mut Vec<(String, String)>, k: String, v: String) {
    env.retain(|(n, _)| *n != k);
    env.push((k, v));
}

fn vars_snapshot(env: &[(String, String)]) -> BTreeMap<String, String> {
    env.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let vars: BTreeMap<String, String> =
            [("A".to_string(), "x".to_string())].into_iter().collect();
        assert_eq!(expand("$(A)-$(B)", &vars), "x-$(B)");
        assert_eq!(expand("$$(A) $ $(", &vars), "$(A) $ $(");
        assert_eq!(expand("plain", &vars), "plain");
    }
}
