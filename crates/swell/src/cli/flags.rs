//! kn's Service flags (`--image`, `--env`, `--scale`, `--mount`, …) and how each one edits
//! a Service: the same flag names, forms and removal syntax (`KEY-`) as `kn service
//! create|update|apply`.

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, LocalObjectReference, ResourceRequirements, SecretEnvSource,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;
use std::path::PathBuf;
use swell_api::Service;

/// The label that keeps a Service off the public ingress.
pub const VISIBILITY_LABEL: &str = "networking.knative.dev/visibility";

/// What a Service's flags can set (kn's names and forms).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServiceFlags {
    /// Image to run.
    #[arg(long)]
    pub image: Option<String>,
    /// Environment variable: `NAME=value`; `NAME-` removes it. Repeatable.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Variables from a ConfigMap or Secret: `cm:NAME` / `config-map:NAME` or
    /// `secret:NAME` / `sc:NAME`; a trailing `-` removes it. Repeatable.
    #[arg(long = "env-from")]
    pub env_from: Vec<String>,
    /// File of `NAME=value` lines (blank lines and `#` comments skipped).
    #[arg(long = "env-file")]
    pub env_file: Option<PathBuf>,
    /// The port the app listens on: `PORT` or `NAME:PORT` (`h2c:8080` for HTTP/2).
    #[arg(short = 'p', long)]
    pub port: Option<String>,
    /// The command to run instead of the image's entrypoint. Repeatable (one word each).
    #[arg(long = "cmd")]
    pub cmd: Vec<String>,
    /// An argument for the command. Repeatable; replaces all arguments.
    #[arg(long = "arg")]
    pub arg: Vec<String>,
    /// Replicas: `N` (exactly), `MIN..MAX`, `MIN..` or `..MAX`.
    #[arg(long)]
    pub scale: Option<String>,
    /// Fewest replicas (`autoscaling.knative.dev/min-scale`).
    #[arg(long = "scale-min")]
    pub scale_min: Option<u32>,
    /// Most replicas (`autoscaling.knative.dev/max-scale`).
    #[arg(long = "scale-max")]
    pub scale_max: Option<u32>,
    /// Replicas at creation (`autoscaling.knative.dev/initial-scale`).
    #[arg(long = "scale-init")]
    pub scale_init: Option<u32>,
    /// Target of the scaling metric per replica (`autoscaling.knative.dev/target`).
    #[arg(long = "scale-target")]
    pub scale_target: Option<u32>,
    /// Percent of the target to aim for (`autoscaling.knative.dev/target-utilization-percentage`).
    #[arg(long = "scale-utilization")]
    pub scale_utilization: Option<u32>,
    /// Scaling metric: `concurrency`, `rps`, `cpu` or `memory` (`autoscaling.knative.dev/metric`).
    #[arg(long = "scale-metric")]
    pub scale_metric: Option<String>,
    /// Stable window, e.g. `60s` (`autoscaling.knative.dev/window`).
    #[arg(long = "scale-window")]
    pub scale_window: Option<String>,
    /// Most requests one replica handles at once (`containerConcurrency`; 0 = unlimited).
    #[arg(long = "concurrency-limit")]
    pub concurrency_limit: Option<i64>,
    /// Longest a request may take, in seconds (`timeoutSeconds`).
    #[arg(long)]
    pub timeout: Option<i64>,
    /// Resource limits: `cpu=500m`, `memory=128Mi`; `cpu-` removes. Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub limit: Vec<String>,
    /// Resource requests, as `--limit`.
    #[arg(long, value_delimiter = ',')]
    pub request: Vec<String>,
    /// Annotation for the Service and its Revisions: `KEY=VALUE`; `KEY-` removes. Repeatable.
    #[arg(short = 'a', long)]
    pub annotation: Vec<String>,
    /// Annotation for the Service only.
    #[arg(long = "annotation-service")]
    pub annotation_service: Vec<String>,
    /// Annotation for the Revisions only.
    #[arg(long = "annotation-revision")]
    pub annotation_revision: Vec<String>,
    /// Label for the Service and its Revisions: `KEY=VALUE`; `KEY-` removes. Repeatable.
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    /// Label for the Service only.
    #[arg(long = "label-service")]
    pub label_service: Vec<String>,
    /// Label for the Revisions only.
    #[arg(long = "label-revision")]
    pub label_revision: Vec<String>,
    /// Name of the new Revision; `{{.Service}}`, `{{.Generation}}` and `{{.Random N}}`
    /// are filled in, and the Service's name is put in front when missing.
    #[arg(long = "revision-name")]
    pub revision_name: Option<String>,
    /// Mount a volume: `PATH=cm:NAME`, `PATH=secret:NAME`, `PATH=ed:NAME` (emptyDir) or
    /// `PATH=VOLUME`, optionally `/SUBPATH` after the name; `PATH-` unmounts. Repeatable.
    #[arg(long)]
    pub mount: Vec<String>,
    /// Define a volume: `NAME=cm:CONFIGMAP`, `NAME=secret:SECRET` or `NAME=ed:` (emptyDir);
    /// `NAME-` removes it. Repeatable.
    #[arg(long)]
    pub volume: Vec<String>,
    /// User ID the container runs as (`securityContext.runAsUser`).
    #[arg(long)]
    pub user: Option<i64>,
    /// Secret to pull the image with (`imagePullSecrets`); empty removes them.
    #[arg(long = "pull-secret")]
    pub pull_secret: Option<String>,
    /// Reachable only from this machine's loopback (cluster-local visibility);
    /// `--cluster-local=false` makes it public again.
    #[arg(long = "cluster-local", num_args = 0..=1, default_missing_value = "true")]
    pub cluster_local: Option<bool>,
}

impl ServiceFlags {
    /// Edits `svc` as the flags say. The template's revision name is cleared when the
    /// template changes without `--revision-name` (a Revision's name is used once).
    pub fn edit(&self, svc: &mut Service) -> anyhow::Result<()> {
        let before = svc.spec.template.clone();
        let service_name = svc.metadata.name.clone().unwrap_or_default();
        let template = &mut svc.spec.template;
        if template.spec.pod_spec.containers.is_empty() {
            template.spec.pod_spec.containers.push(Container::default());
        }
        let container = &mut template.spec.pod_spec.containers[0];
        if let Some(image) = &self.image {
            container.image = Some(image.clone());
        }
        self.edit_env(container)?;
        if let Some(port) = &self.port {
            container.ports = Some(vec![parse_port(port)?]);
        }
        if !self.cmd.is_empty() {
            container.command = Some(self.cmd.clone());
        }
        if !self.arg.is_empty() {
            container.args = Some(self.arg.clone());
        }
        edit_resources(container, &self.limit, &self.request)?;
        if let Some(user) = self.user {
            container
                .security_context
                .get_or_insert_with(SecurityContext::default)
                .run_as_user = Some(user);
        }
        edit_volumes(&mut template.spec.pod_spec, &self.volume, &self.mount)?;
        if let Some(secret) = &self.pull_secret {
            template.spec.pod_spec.image_pull_secrets = (!secret.is_empty()).then(|| {
                vec![LocalObjectReference {
                    name: secret.clone(),
                }]
            });
        }
        if let Some(cc) = self.concurrency_limit {
            template.spec.container_concurrency = Some(cc);
        }
        if let Some(t) = self.timeout {
            template.spec.timeout_seconds = Some(t);
        }
        let revision_annotations = template.metadata.annotations.get_or_insert_default();
        for (key, value) in self.scale_annotations()? {
            revision_annotations.insert(key, value);
        }
        edit_map(revision_annotations, "--annotation", &self.annotation)?;
        edit_map(
            revision_annotations,
            "--annotation-revision",
            &self.annotation_revision,
        )?;
        let revision_labels = template.metadata.labels.get_or_insert_default();
        edit_map(revision_labels, "--label", &self.label)?;
        edit_map(revision_labels, "--label-revision", &self.label_revision)?;
        tidy(&mut template.metadata.annotations);
        tidy(&mut template.metadata.labels);

        let meta = &mut svc.metadata;
        let annotations = meta.annotations.get_or_insert_default();
        edit_map(annotations, "--annotation", &self.annotation)?;
        edit_map(
            annotations,
            "--annotation-service",
            &self.annotation_service,
        )?;
        let labels = meta.labels.get_or_insert_default();
        edit_map(labels, "--label", &self.label)?;
        edit_map(labels, "--label-service", &self.label_service)?;
        match self.cluster_local {
            Some(true) => {
                labels.insert(VISIBILITY_LABEL.into(), "cluster-local".into());
            }
            Some(false) => {
                labels.remove(VISIBILITY_LABEL);
            }
            None => {}
        }
        tidy(&mut meta.annotations);
        tidy(&mut meta.labels);

        let generation = svc.metadata.generation.unwrap_or(0) + 1;
        let template = &mut svc.spec.template;
        match &self.revision_name {
            Some(name) => {
                template.metadata.name = Some(revision_name(name, &service_name, generation)?);
            }
            None if *template != before => template.metadata.name = None,
            None => {}
        }
        Ok(())
    }

    fn edit_env(&self, container: &mut Container) -> anyhow::Result<()> {
        let mut entries = Vec::new();
        if let Some(path) = &self.env_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --env-file {}", path.display()))?;
            for line in text.lines().map(str::trim) {
                if !line.is_empty() && !line.starts_with('#') {
                    entries.push(line.to_string());
                }
            }
        }
        entries.extend(self.env.iter().cloned());
        let env = container.env.get_or_insert_default();
        for entry in &entries {
            match key_value("--env", entry)? {
                (name, None) => env.retain(|e| e.name != name),
                (name, Some(value)) => match env.iter_mut().find(|e| e.name == name) {
                    Some(e) => {
                        e.value = Some(value);
                        e.value_from = None;
                    }
                    None => env.push(EnvVar {
                        name,
                        value: Some(value),
                        value_from: None,
                    }),
                },
            }
        }
        if env.is_empty() {
            container.env = None;
        }
        let env_from = container.env_from.get_or_insert_default();
        for entry in &self.env_from {
            let (source, remove) = match entry.strip_suffix('-') {
                Some(s) => (s, true),
                None => (entry.as_str(), false),
            };
            let wanted = env_source(source)?;
            env_from.retain(|e| *e != wanted);
            if !remove {
                env_from.push(wanted);
            }
        }
        if env_from.is_empty() {
            container.env_from = None;
        }
        Ok(())
    }

    fn scale_annotations(&self) -> anyhow::Result<Vec<(String, String)>> {
        let key = |k: &str| format!("autoscaling.knative.dev/{k}");
        let mut out = Vec::new();
        if let Some(scale) = &self.scale {
            if self.scale_min.is_some() || self.scale_max.is_some() {
                bail!("--scale cannot be used with --scale-min or --scale-max");
            }
            let (min, max) = parse_scale(scale)?;
            out.extend(min.map(|m| (key("min-scale"), m.to_string())));
            out.extend(max.map(|m| (key("max-scale"), m.to_string())));
        }
        let numbers = [
            ("min-scale", self.scale_min),
            ("max-scale", self.scale_max),
            ("initial-scale", self.scale_init),
            ("target", self.scale_target),
            ("target-utilization-percentage", self.scale_utilization),
        ];
        for (name, value) in numbers {
            out.extend(value.map(|v| (key(name), v.to_string())));
        }
        if let Some(metric) = &self.scale_metric {
            out.push((key("metric"), metric.clone()));
        }
        if let Some(window) = &self.scale_window {
            out.push((key("window"), window.clone()));
        }
        Ok(out)
    }
}

/// Splits `KEY=VALUE` (value `Some`) or `KEY-` (value `None`: remove).
pub fn key_value(flag: &str, entry: &str) -> anyhow::Result<(String, Option<String>)> {
    if let Some((key, value)) = entry.split_once('=') {
        if !key.is_empty() {
            return Ok((key.to_string(), Some(value.to_string())));
        }
    } else if let Some(key) = entry.strip_suffix('-').filter(|k| !k.is_empty()) {
        return Ok((key.to_string(), None));
    }
    bail!("invalid {flag} {entry:?}: expected KEY=VALUE, or KEY- to remove KEY")
}

fn edit_map(
    map: &mut BTreeMap<String, String>,
    flag: &str,
    entries: &[String],
) -> anyhow::Result<()> {
    for entry in entries {
        match key_value(flag, entry)? {
            (key, Some(value)) => map.insert(key, value),
            (key, None) => map.remove(&key),
        };
    }
    Ok(())
}

fn tidy(map: &mut Option<BTreeMap<String, String>>) {
    if map.as_ref().is_some_and(BTreeMap::is_empty) {
        *map = None;
    }
}

fn parse_port(port: &str) -> anyhow::Result<ContainerPort> {
    let (name, number) = match port.split_once(':') {
        Some((name, number)) => (Some(name.to_string()), number),
        None => (None, port),
    };
    let container_port = number
        .parse::<i32>()
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .with_context(|| {
            format!("invalid --port {port:?}: expected PORT or NAME:PORT, e.g. 8080 or h2c:8080")
        })?;
    Ok(ContainerPort {
        container_port,
        name,
        ..Default::default()
    })
}

fn parse_scale(scale: &str) -> anyhow::Result<(Option<u32>, Option<u32>)> {
    let bad = || {
        anyhow::anyhow!(
            "invalid --scale {scale:?}: expected N, MIN..MAX, MIN.. or ..MAX (whole numbers)"
        )
    };
    let number = |s: &str| s.parse::<u32>().map_err(|_| bad());
    match scale.split_once("..") {
        None => {
            let n = number(scale)?;
            Ok((Some(n), Some(n)))
        }
        Some(("", "")) => Err(bad()),
        Some((min, max)) => {
            let min = (!min.is_empty()).then(|| number(min)).transpose()?;
            let max = (!max.is_empty()).then(|| number(max)).transpose()?;
            if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                bail!("invalid --scale {scale:?}: the minimum is above the maximum");
            }
            Ok((min, max))
        }
    }
}

fn env_source(source: &str) -> anyhow::Result<EnvFromSource> {
    let (kind, name) = source.split_once(':').unwrap_or(("", ""));
    let name = name.to_string();
    match kind {
        "cm" | "config-map" | "configmap" if !name.is_empty() => Ok(EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name,
                optional: None,
            }),
            ..Default::default()
        }),
        "secret" | "sc" if !name.is_empty() => Ok(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name,
                optional: None,
            }),
            ..Default::default()
        }),
        _ => bail!(
            "invalid --env-from {source:?}: expected cm:NAME or secret:NAME (a trailing - removes it)"
        ),
    }
}

fn edit_resources(
    container: &mut Container,
    limits: &[String],
    requests: &[String],
) -> anyhow::Result<()> {
    if limits.is_empty() && requests.is_empty() {
        return Ok(());
    }
    let resources = container
        .resources
        .get_or_insert_with(ResourceRequirements::default);
    for (flag, entries, map) in [
        ("--limit", limits, &mut resources.limits),
        ("--request", requests, &mut resources.requests),
    ] {
        let map = map.get_or_insert_default();
        for entry in entries {
            match key_value(flag, entry)? {
                (key, Some(value)) => map.insert(key, Quantity(value)),
                (key, None) => map.remove(&key),
            };
        }
    }
    if resources.limits.as_ref().is_some_and(BTreeMap::is_empty) {
        resources.limits = None;
    }
    if resources.requests.as_ref().is_some_and(BTreeMap::is_empty) {
        resources.requests = None;
    }
    Ok(())
}

/// What a `--volume` or `--mount` value names.
#[derive(Debug, PartialEq)]
enum VolumeRef {
    ConfigMap(String),
    Secret(String),
    EmptyDir,
    Existing(String),
}

fn volume_ref(flag: &str, entry: &str, value: &str) -> anyhow::Result<VolumeRef> {
    let bad = || {
        anyhow::anyhow!(
            "invalid {flag} {entry:?}: expected cm:NAME, secret:NAME, ed:NAME or a volume's name"
        )
    };
    Ok(match value.split_once(':') {
        Some(("cm" | "config-map" | "configmap", n)) if !n.is_empty() => {
            VolumeRef::ConfigMap(n.into())
        }
        Some(("secret" | "sc", n)) if !n.is_empty() => VolumeRef::Secret(n.into()),
        Some(("ed" | "emptyDir" | "emptydir", _)) => VolumeRef::EmptyDir,
        Some(("pvc" | "persistentVolumeClaim", _)) => bail!(
            "invalid {flag} {entry:?}: Swell does not run persistentVolumeClaim volumes; use cm:, secret: or ed:"
        ),
        Some(_) => return Err(bad()),
        None if value.is_empty() => return Err(bad()),
        None => VolumeRef::Existing(value.into()),
    })
}

fn volume(name: String, r: &VolumeRef) -> Volume {
    let mut v = Volume {
        name,
        ..Default::default()
    };
    match r {
        VolumeRef::ConfigMap(n) => {
            v.config_map = Some(ConfigMapVolumeSource {
                name: n.clone(),
                ..Default::default()
            })
        }
        VolumeRef::Secret(n) => {
            v.secret = Some(SecretVolumeSource {
                secret_name: Some(n.clone()),
                ..Default::default()
            })
        }
        VolumeRef::EmptyDir | VolumeRef::Existing(_) => {
            v.empty_dir = Some(EmptyDirVolumeSource::default())
        }
    }
    v
}

/// A volume name made from a mount path: `/etc/my config` → `etc-my-config`.
fn volume_name_for(path: &str) -> String {
    let mut name = String::new();
    for c in path.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_matches('-');
    let name: String = name.chars().take(63).collect();
    let name = name.trim_end_matches('-');
    if name.is_empty() {
        "root".into()
    } else {
        name.to_string()
    }
}

fn edit_volumes(
    pod: &mut k8s_openapi::api::core::v1::PodSpec,
    volumes: &[String],
    mounts: &[String],
) -> anyhow::Result<()> {
    if volumes.is_empty() && mounts.is_empty() {
        return Ok(());
    }
    let list = pod.volumes.get_or_insert_default();
    for entry in volumes {
        match key_value("--volume", entry)? {
            (name, None) => list.retain(|v| v.name != name),
            (name, Some(value)) => {
                let r = volume_ref("--volume", entry, &value)?;
                if let VolumeRef::Existing(_) = r {
                    bail!(
                        "invalid --volume {entry:?}: expected NAME=cm:CONFIGMAP, NAME=secret:SECRET or NAME=ed:"
                    );
                }
                list.retain(|v| v.name != name);
                list.push(volume(name, &r));
            }
        }
    }
    let container = &mut pod.containers[0];
    let container_mounts = container.volume_mounts.get_or_insert_default();
    for entry in mounts {
        match key_value("--mount", entry)? {
            (path, None) => {
                let generated = volume_name_for(&path);
                container_mounts.retain(|m| m.mount_path != path);
                list.retain(|v| v.name != generated);
            }
            (path, Some(value)) => {
                if !path.starts_with('/') {
                    bail!("invalid --mount {entry:?}: the mount path must be absolute");
                }
                let (source, sub_path) = match value.split_once('/') {
                    Some((s, p)) => (s.to_string(), Some(p.to_string())),
                    None => (value.clone(), None),
                };
                let r = volume_ref("--mount", entry, &source)?;
                let name = match &r {
                    VolumeRef::Existing(name) => {
                        if !list.iter().any(|v| v.name == *name) {
                            bail!(
                                "invalid --mount {entry:?}: there is no volume {name:?} (define it with --volume)"
                            );
                        }
                        name.clone()
                    }
                    _ => {
                        let name = volume_name_for(&path);
                        list.retain(|v| v.name != name);
                        list.push(volume(name.clone(), &r));
                        name
                    }
                };
                container_mounts.retain(|m| m.mount_path != path);
                container_mounts.push(VolumeMount {
                    name,
                    mount_path: path,
                    sub_path,
                    read_only: matches!(r, VolumeRef::ConfigMap(_) | VolumeRef::Secret(_))
                        .then_some(true),
                    ..Default::default()
                });
            }
        }
    }
    if container_mounts.is_empty() {
        container.volume_mounts = None;
    }
    if list.is_empty() {
        pod.volumes = None;
    }
    Ok(())
}

/// Fills in kn's revision-name template and puts the Service's name in front if missing.
fn revision_name(template: &str, service: &str, generation: i64) -> anyhow::Result<String> {
    let mut out = template
        .replace("{{.Service}}", service)
        .replace("{{.Generation}}", &generation.to_string());
    while let Some(start) = out.find("{{.Random") {
        let end = out[start..]
            .find("}}")
            .map(|e| start + e)
            .with_context(|| format!("invalid --revision-name {template:?}: unclosed {{{{"))?;
        let n: usize = out[start + "{{.Random".len()..end]
            .trim()
            .parse()
            .with_context(|| {
                format!("invalid --revision-name {template:?}: {{{{.Random N}}}} needs a number")
            })?;
        const CONSONANTS: &[u8] = b"bcdfghjklmnpqrstvwxz";
        let random: String = (0..n)
            .map(|_| CONSONANTS[fastrand::usize(..CONSONANTS.len())] as char)
            .collect();
        out.replace_range(start..end + 2, &random);
    }
    if out.contains("{{") {
        bail!(
            "invalid --revision-name {template:?}: only {{{{.Service}}}}, {{{{.Generation}}}} and {{{{.Random N}}}} are filled in"
        );
    }
    if !out.starts_with(&format!("{service}-")) {
        out = format!("{service}-{out}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s
    }

    fn flags(args: &[&str]) -> ServiceFlags {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            f: ServiceFlags,
        }
        let mut argv = vec!["p"];
        argv.extend_from_slice(args);
        <P as clap::Parser>::parse_from(argv).f
    }

    #[test]
    fn env_sets_replaces_and_removes_in_order() {
        let mut s = service("hello");
        flags(&["--image", "x", "-e", "A=1", "--env", "B=2=3"])
            .edit(&mut s)
            .unwrap();
        flags(&["--env", "A-", "--env", "B=4", "--env", "C="])
            .edit(&mut s)
            .unwrap();
        let env = s.spec.template.spec.pod_spec.containers[0]
            .env
            .clone()
            .unwrap();
        let pairs: Vec<_> = env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(pairs, [("B", "4"), ("C", "")]);
    }

    #[test]
    fn bad_env_names_the_flag() {
        let err = flags(&["--env", "FOO"])
            .edit(&mut service("hello"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid --env \"FOO\": expected KEY=VALUE, or KEY- to remove KEY"
        );
    }

    #[test]
    fn scale_forms() {
        assert_eq!(parse_scale("3").unwrap(), (Some(3), Some(3)));
        assert_eq!(parse_scale("1..5").unwrap(), (Some(1), Some(5)));
        assert_eq!(parse_scale("2..").unwrap(), (Some(2), None));
        assert_eq!(parse_scale("..4").unwrap(), (None, Some(4)));
        assert!(parse_scale("5..1").is_err());
        assert!(parse_scale("..").is_err());
        assert!(parse_scale("x").is_err());
    }

    #[test]
    fn scale_flags_become_annotations() {
        let mut s = service("hello");
        flags(&[
            "--scale",
            "1..3",
            "--scale-init",
            "2",
            "--scale-window",
            "10s",
        ])
        .edit(&mut s)
        .unwrap();
        let a = s.spec.template.metadata.annotations.unwrap();
        assert_eq!(a["autoscaling.knative.dev/min-scale"], "1");
        assert_eq!(a["autoscaling.knative.dev/max-scale"], "3");
        assert_eq!(a["autoscaling.knative.dev/initial-scale"], "2");
        assert_eq!(a["autoscaling.knative.dev/window"], "10s");
        assert!(s.metadata.annotations.is_none());
    }

    #[test]
    fn ports_take_an_optional_name() {
        assert_eq!(parse_port("h2c:8080").unwrap().name.as_deref(), Some("h2c"));
        assert_eq!(parse_port("9000").unwrap().container_port, 9000);
        assert!(parse_port("http:0").is_err());
        assert!(parse_port("eighty").is_err());
    }

    #[test]
    fn mounts_generate_volumes_and_unmount_removes_them() {
        let mut s = service("hello");
        flags(&[
            "--mount",
            "/etc/conf=cm:settings/sub",
            "--volume",
            "scratch=ed:",
            "--mount",
            "/tmp/scratch=scratch",
        ])
        .edit(&mut s)
        .unwrap();
        let pod = &s.spec.template.spec.pod_spec;
        let names: Vec<_> = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["scratch", "etc-conf"]);
        let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
        assert_eq!(mounts[0].sub_path.as_deref(), Some("sub"));
        assert_eq!(mounts[1].name, "scratch");
        flags(&["--mount", "/etc/conf-"]).edit(&mut s).unwrap();
        let pod = &s.spec.template.spec.pod_spec;
        assert_eq!(pod.volumes.as_ref().unwrap().len(), 1);
        assert_eq!(pod.containers[0].volume_mounts.as_ref().unwrap().len(), 1);
        assert!(
            flags(&["--mount", "/x=nothing"])
                .edit(&mut service("a"))
                .is_err()
        );
    }

    #[test]
    fn revision_names_fill_the_template() {
        assert_eq!(revision_name("v2", "hello", 2).unwrap(), "hello-v2");
        assert_eq!(
            revision_name("{{.Service}}-{{.Generation}}", "hello", 3).unwrap(),
            "hello-3"
        );
        let r = revision_name("{{.Service}}-{{.Random 5}}", "hello", 1).unwrap();
        assert_eq!(r.len(), "hello-".len() + 5);
        assert!(revision_name("{{.Nope}}", "hello", 1).is_err());
    }

    #[test]
    fn a_changed_template_drops_an_old_revision_name() {
        let mut s = service("hello");
        flags(&["--image", "a", "--revision-name", "one"])
            .edit(&mut s)
            .unwrap();
        assert_eq!(s.spec.template.metadata.name.as_deref(), Some("hello-one"));
        flags(&["--image", "b"]).edit(&mut s).unwrap();
        assert_eq!(s.spec.template.metadata.name, None);
    }

    #[test]
    fn cluster_local_is_a_label_on_the_service() {
        let mut s = service("hello");
        flags(&["--cluster-local"]).edit(&mut s).unwrap();
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()[VISIBILITY_LABEL],
            "cluster-local"
        );
        flags(&["--cluster-local=false"]).edit(&mut s).unwrap();
        assert!(s.metadata.labels.is_none());
    }
}
