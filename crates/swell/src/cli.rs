//! The client verbs — kubectl's (`apply`, `get`, `delete`) and kn's (`service`,
//! `revision`, `route`, `domain`, `events`, `config`): kube-rs against whatever the
//! kubeconfig points at — `swell server`, or any Kubernetes cluster running Knative.

pub mod apply;
pub mod config;
pub mod delete;
pub mod describe;
pub mod domain;
pub mod events;
pub mod flags;
pub mod get;
pub mod output;
pub mod revision;
pub mod service;
pub mod traffic;
pub mod wait;

use anyhow::Context;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use std::path::PathBuf;

/// Connection options shared by the client verbs.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Kubeconfig to use (default: $KUBECONFIG, else the one `swell server` wrote in its
    /// default data directory, else ~/.kube/config).
    #[arg(long, env = "KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

/// A connected client and the namespace to use.
pub struct Session {
    pub client: kube::Client,
    pub namespace: String,
}

impl ClientArgs {
    /// Connects as the kubeconfig says.
    pub async fn connect(&self) -> anyhow::Result<Session> {
        let path = self.kubeconfig.clone().or_else(|| {
            let p = crate::server::kubeconfig_path(&crate::server::default_data_dir());
            p.exists().then_some(p)
        });
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match path {
            Some(p) => {
                let kc = Kubeconfig::read_from(&p)
                    .with_context(|| format!("cannot read kubeconfig {}", p.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .with_context(|| format!("invalid kubeconfig {}", p.display()))?
            }
            None => kube::Config::from_kubeconfig(&options)
                .await
                .context("no kubeconfig found: start `swell server` or pass --kubeconfig")?,
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).context("cannot build the API client")?;
        Ok(Session { client, namespace })
    }
}

/// One resource the server serves, as discovery describes it.
#[derive(Debug, Clone)]
pub struct Served {
    pub api: ApiResource,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub singular: String,
}

impl Served {
    /// `services.serving.knative.dev` or `configmaps`.
    pub fn qualified(&self) -> String {
        if self.api.group.is_empty() {
            self.api.plural.clone()
        } else {
            format!("{}.{}", self.api.plural, self.api.group)
        }
    }

    /// `service.serving.knative.dev/hello`, as kubectl prints it.
    pub fn object_ref(&self, name: &str) -> String {
        let kind = self.api.kind.to_lowercase();
        if self.api.group.is_empty() {
            format!("{kind}/{name}")
        } else {
            format!("{kind}.{}/{name}", self.api.group)
        }
    }

    /// The REST path of the collection (or of one object).
    pub fn path(&self, namespace: Option<&str>, name: Option<&str>) -> String {
        let base = if self.api.group.is_empty() {
            format!("/api/{}", self.api.version)
        } else {
            format!("/apis/{}/{}", self.api.group, self.api.version)
        };
        let ns = match namespace {
            Some(ns) if self.namespaced => format!("/namespaces/{ns}"),
            _ => String::new(),
        };
        let name = name.map(|n| format!("/{n}")).unwrap_or_default();
        format!("{base}{ns}/{}{name}", self.api.plural)
    }
}

fn served(group: &str, version: &str, r: &APIResource) -> Option<Served> {
    if r.name.contains('/') {
        return None;
    }
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(Served {
        api: ApiResource {
            group: group.into(),
            version: version.into(),
            api_version,
            kind: r.kind.clone(),
            plural: r.name.clone(),
        },
        namespaced: r.namespaced,
        short_names: r.short_names.clone().unwrap_or_default(),
        singular: r.singular_name.clone(),
    })
}

/// Every resource the server serves (core v1 and every group's versions).
pub async fn discover(client: &kube::Client) -> anyhow::Result<Vec<Served>> {
    let mut out = Vec::new();
    for r in client.list_core_api_resources("v1").await?.resources {
        out.extend(served("", "v1", &r));
    }
    for g in client.list_api_groups().await?.groups {
        for v in &g.versions {
            for r in client
                .list_api_group_resources(&v.group_version)
                .await?
                .resources
            {
                out.extend(served(&g.name, &v.version, &r));
            }
        }
    }
    Ok(out)
}

/// Finds a resource by plural, singular, kind or short name (`ksvc`, `services`, …),
/// optionally qualified by group (`services.serving.knative.dev`). A name two groups
/// serve (`services`) means Knative's: this is Knative's CLI (`svc` is the core kind).
pub fn resolve<'a>(all: &'a [Served], name: &str) -> anyhow::Result<&'a Served> {
    let lower = name.to_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    let mut knative_first = all
        .iter()
        .filter(|s| s.api.group == "serving.knative.dev")
        .chain(all.iter().filter(|s| s.api.group != "serving.knative.dev"));
    knative_first
        .find(|s| {
            group.as_ref().is_none_or(|g| *g == s.api.group)
                && (s.api.plural == base
                    || s.singular == base
                    || s.api.kind.to_lowercase() == base
                    || s.short_names.contains(&base))
        })
        .ok_or_else(|| anyhow::anyhow!("error: the server doesn't have a resource type {name:?}"))
}

/// One line for an error: the API's own message where there is one (Knative's field
/// errors put their details on lines of their own: they are joined with "; ").
pub fn describe_error(err: &anyhow::Error) -> String {
    for cause in err.chain() {
        if let Some(kube::Error::Api(status)) = cause.downcast_ref::<kube::Error>() {
            let message: Vec<&str> = status.message.lines().collect();
            return format!(
                "Error from server ({}): {}",
                status.reason,
                message.join("; ")
            );
        }
    }
    // Each cause once: kube's and std's messages often repeat their source's text.
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
    }
    let text = parts.join(": ");
    if text.contains("Connection refused") || text.contains("tcp connect error") {
        return "error: cannot reach the API server (connection refused); is `swell server` running, and is the kubeconfig the one it wrote?".to_string();
    }
    let text = text.replace('\n', " ");
    if text.starts_with("error") {
        text
    } else {
        format!("error: {text}")
    }
}
