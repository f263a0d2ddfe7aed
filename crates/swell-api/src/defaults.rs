//! Knative's defaulting webhook: `config-defaults` values and what they fill in.

use crate::revision::{RevisionSpec, RevisionTemplateSpec};
use crate::traffic::TrafficTarget;
use k8s_openapi::api::core::v1::{
    Capabilities, Probe, ResourceRequirements, SeccompProfile, SecurityContext, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The `config-defaults` ConfigMap (§1.10), with Knative's stock values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// `revision-timeout-seconds`.
    pub revision_timeout_seconds: i64,
    /// `max-revision-timeout-seconds`.
    pub max_revision_timeout_seconds: i64,
    /// `revision-response-start-timeout-seconds` (defaults to the revision timeout).
    pub revision_response_start_timeout_seconds: i64,
    /// `revision-idle-timeout-seconds`.
    pub revision_idle_timeout_seconds: i64,
    /// `container-concurrency`.
    pub container_concurrency: i64,
    /// `container-concurrency-max-limit`.
    pub container_concurrency_max_limit: i64,
    /// `allow-container-concurrency-zero`.
    pub allow_container_concurrency_zero: bool,
    /// `container-name-template` (only the literal form is supported).
    pub container_name: String,
    /// `init-container-name-template`.
    pub init_container_name: String,
    /// `enable-service-links`: `Some(false)` by default; `None` leaves the field unset.
    pub enable_service_links: Option<bool>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            revision_timeout_seconds: 300,
            max_revision_timeout_seconds: 600,
            revision_response_start_timeout_seconds: 300,
            revision_idle_timeout_seconds: 0,
            container_concurrency: 0,
            container_concurrency_max_limit: 1000,
            allow_container_concurrency_zero: true,
            container_name: "user-container".into(),
            init_container_name: "init-container".into(),
            enable_service_links: Some(false),
        }
    }
}

/// The `config-features` ConfigMap (§1.11): flag name → `enabled`/`disabled`/`allowed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    flags: BTreeMap<String, String>,
}

impl Default for Features {
    fn default() -> Self {
        let mut flags = BTreeMap::new();
        flags.insert("multi-container".to_string(), "enabled".to_string());
        flags.insert(
            "kubernetes.podspec-volumes-emptydir".to_string(),
            "enabled".to_string(),
        );
        Self { flags }
    }
}

impl Features {
    /// Sets one flag (`enabled`, `disabled` or `allowed`).
    pub fn set(&mut self, flag: &str, value: &str) {
        self.flags.insert(flag.to_string(), value.to_string());
    }

    /// A flag's value as `config-features` has it (`None`: not set, so `disabled`
    /// unless the flag defaults on).
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.flags.get(flag).map(String::as_str)
    }

    /// `secure-pod-defaults`: `Some(true)` when `enabled` (runAsNonRoot defaulted too),
    /// `Some(false)` when `AllowRootBounded`, `None` when off.
    pub fn secure_pod_defaults(&self) -> Option<bool> {
        match self.get("secure-pod-defaults") {
            Some(v) if v.eq_ignore_ascii_case("enabled") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("AllowRootBounded") => Some(false),
            _ => None,
        }
    }

    /// True when a flag lets a field through validation (`enabled` or `allowed`).
    pub fn allows(&self, flag: &str) -> bool {
        matches!(
            self.flags.get(flag).map(String::as_str),
            Some("enabled" | "allowed")
        )
    }
}

/// Fills a Service's empty traffic block: 100% to the latest Revision.
pub fn default_service_traffic(traffic: &mut Vec<TrafficTarget>) {
    if traffic.is_empty() {
        traffic.push(TrafficTarget {
            percent: Some(100),
            latest_revision: Some(true),
            ..TrafficTarget::default()
        });
    }
}

/// Fills `latestRevision` on every traffic entry (true when no revisionName is given).
pub fn default_traffic_entries(traffic: &mut [TrafficTarget]) {
    for t in traffic {
        if t.latest_revision.is_none() {
            t.latest_revision = Some(t.revision_name.as_deref().unwrap_or("").is_empty());
        }
    }
}

/// Fills the scalar fields of a Revision template's spec (timeouts, concurrency, service
/// links). Defaults inside list elements (containers, volume mounts) are left to
/// [`default_revision_spec`], so that a stored template stays as the user wrote its lists.
pub fn default_template(template: &mut RevisionTemplateSpec, defaults: &Defaults) {
    default_revision_spec_scalars(&mut template.spec, defaults);
}

/// Fills a RevisionSpec completely, as Knative's `revision_defaults.go` does.
pub fn default_revision_spec(spec: &mut RevisionSpec, d: &Defaults) {
    default_revision_spec_scalars(spec, d);
    default_containers(spec, d);
}

/// Fills the scalar fields of a RevisionSpec.
pub fn default_revision_spec_scalars(spec: &mut RevisionSpec, d: &Defaults) {
    if spec.timeout_seconds.is_none_or(|t| t == 0) {
        spec.timeout_seconds = Some(d.revision_timeout_seconds);
    }
    let timeout = spec.timeout_seconds.unwrap_or(d.revision_timeout_seconds);
    if spec.response_start_timeout_seconds.is_none()
        && d.revision_response_start_timeout_seconds != 0
        && d.revision_response_start_timeout_seconds < timeout
    {
        spec.response_start_timeout_seconds = Some(d.revision_response_start_timeout_seconds);
    }
    if spec.idle_timeout_seconds.is_none()
        && d.revision_idle_timeout_seconds != 0
        && d.revision_idle_timeout_seconds < timeout
    {
        spec.idle_timeout_seconds = Some(d.revision_idle_timeout_seconds);
    }
    if spec.container_concurrency.is_none() {
        spec.container_concurrency = Some(d.container_concurrency);
    }
    if spec.pod_spec.enable_service_links.is_none() {
        spec.pod_spec.enable_service_links = d.enable_service_links;
    }
}

/// Fills container names, the serving container's readiness probe, empty resources and
/// read-only mounts of non-writable volumes.
pub fn default_containers(spec: &mut RevisionSpec, d: &Defaults) {
    let pod = &mut spec.pod_spec;
    name_containers(&mut pod.containers, &d.container_name);
    if let Some(init) = &mut pod.init_containers {
        name_containers(init, &d.init_container_name);
    }
    let serving = serving_container_index(&pod.containers);
    let non_writable: Vec<String> = pod
        .volumes
        .iter()
        .flatten()
        .filter(|v| {
            v.empty_dir.is_none() && v.persistent_volume_claim.is_none() && v.ephemeral.is_none()
        })
        .map(|v| v.name.clone())
        .collect();
    for (i, c) in pod.containers.iter_mut().enumerate() {
        if c.resources.is_none() {
            c.resources = Some(ResourceRequirements::default());
        }
        for m in c.volume_mounts.iter_mut().flatten() {
            if non_writable.contains(&m.name) {
                m.read_only = Some(true);
            }
        }
        if Some(i) == serving {
            default_readiness_probe(&mut c.readiness_probe);
        }
    }
}

/// Knative's `secure-pod-defaults` (`revision_defaults.go`): when `enabled` or
/// `AllowRootBounded`, every container and init container gets
/// `allowPrivilegeEscalation: false`, `seccompProfile: RuntimeDefault` (unless the pod
/// names a profile), and, when it sets no capabilities, `drop: [ALL]` (with
/// `add: [NET_BIND_SERVICE]` for a port below 1024); when `enabled`, also
/// `runAsNonRoot: true` unless the pod or the container says otherwise.
pub fn default_security_context(spec: &mut RevisionSpec, f: &Features) {
    let Some(non_root) = f.secure_pod_defaults() else {
        return;
    };
    let pod = &mut spec.pod_spec;
    let psc = pod.security_context.clone().unwrap_or_default();
    let pod_seccomp = psc
        .seccomp_profile
        .as_ref()
        .is_some_and(|p| !p.type_.is_empty());
    for c in pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten())
    {
        let mut sc = c.security_context.clone().unwrap_or_default();
        if sc.allow_privilege_escalation.is_none() {
            sc.allow_privilege_escalation = Some(false);
        }
        if !pod_seccomp {
            let profile = sc
                .seccomp_profile
                .get_or_insert_with(SeccompProfile::default);
            if profile.type_.is_empty() {
                profile.type_ = "RuntimeDefault".into();
            }
        }
        if sc.capabilities.is_none() {
            let low_port = c.ports.iter().flatten().any(|p| p.container_port < 1024);
            sc.capabilities = Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: low_port.then(|| vec!["NET_BIND_SERVICE".into()]),
            });
        }
        if non_root && psc.run_as_non_root.is_none() && sc.run_as_non_root.is_none() {
            sc.run_as_non_root = Some(true);
        }
        if sc != SecurityContext::default() {
            c.security_context = Some(sc);
        }
    }
}

/// Index of the serving container: the only one, or the one that declares ports.
pub fn serving_container_index(
    containers: &[k8s_openapi::api::core::v1::Container],
) -> Option<usize> {
    if containers.len() == 1 {
        return Some(0);
    }
    containers
        .iter()
        .position(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty()))
}

fn name_containers(containers: &mut [k8s_openapi::api::core::v1::Container], base: &str) {
    if containers.len() == 1 {
        if containers[0].name.is_empty() {
            containers[0].name = base.to_string();
        }
        return;
    }
    let mut used: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    let mut next = 0;
    for c in containers.iter_mut().filter(|c| c.name.is_empty()) {
        loop {
            let candidate = format!("{base}-{next}");
            next += 1;
            if !used.contains(&candidate) {
                c.name = candidate.clone();
                used.push(candidate);
                break;
            }
        }
    }
}

fn default_readiness_probe(probe: &mut Option<Probe>) {
    let p = probe.get_or_insert_with(Probe::default);
    let has_handler =
        p.http_get.is_some() || p.tcp_socket.is_some() || p.exec.is_some() || p.grpc.is_some();
    if !has_handler {
        p.tcp_socket = Some(TCPSocketAction {
            port: IntOrString::Int(0),
            host: None,
        });
    }
    if p.success_threshold.is_none_or(|t| t == 0) {
        p.success_threshold = Some(1);
    }
    if p.period_seconds.is_some_and(|s| s != 0) {
        if p.failure_threshold.is_none_or(|t| t == 0) {
            p.failure_threshold = Some(3);
        }
        if p.timeout_seconds.is_none_or(|t| t == 0) {
            p.timeout_seconds = Some(1);
        }
    }
    if let Some(g) = &mut p.grpc {
        g.service.get_or_insert_with(String::new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    #[test]
    fn stock_defaults_fill_a_minimal_spec() {
        let mut spec = RevisionSpec::default();
        spec.pod_spec.containers.push(Container {
            image: Some("x".into()),
            ..Default::default()
        });
        default_revision_spec(&mut spec, &Defaults::default());
        assert_eq!(spec.timeout_seconds, Some(300));
        assert_eq!(spec.container_concurrency, Some(0));
        assert_eq!(
            spec.response_start_timeout_seconds, None,
            "300 is not < 300"
        );
        assert_eq!(spec.pod_spec.enable_service_links, Some(false));
        let c = &spec.pod_spec.containers[0];
        assert_eq!(c.name, "user-container");
        let probe = c.readiness_probe.as_ref().unwrap();
        assert_eq!(probe.success_threshold, Some(1));
        assert_eq!(probe.tcp_socket.as_ref().unwrap().port, IntOrString::Int(0));
    }

    #[test]
    fn several_containers_are_numbered_around_taken_names() {
        let mut spec = RevisionSpec::default();
        for name in ["", "user-container-0", ""] {
            spec.pod_spec.containers.push(Container {
                name: name.into(),
                ..Default::default()
            });
        }
        default_revision_spec(&mut spec, &Defaults::default());
        let names: Vec<_> = spec
            .pod_spec
            .containers
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["user-container-1", "user-container-0", "user-container-2"]
        );
    }

    #[test]
    fn traffic_defaults_to_latest() {
        let mut t = vec![];
        default_service_traffic(&mut t);
        assert_eq!(t[0].percent, Some(100));
        assert_eq!(t[0].latest_revision, Some(true));
        let mut t = vec![TrafficTarget {
            revision_name: Some("a".into()),
            ..Default::default()
        }];
        default_traffic_entries(&mut t);
        assert_eq!(t[0].latest_revision, Some(false));
    }

    #[test]
    fn secure_pod_defaults_tighten_every_container() {
        use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSecurityContext};
        let spec = || {
            let mut s = RevisionSpec::default();
            s.pod_spec.containers = vec![Container {
                ports: Some(vec![ContainerPort {
                    container_port: 80,
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }];
            s.pod_spec.init_containers = Some(vec![Container {
                security_context: Some(SecurityContext {
                    run_as_non_root: Some(false),
                    capabilities: Some(Capabilities::default()),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }]);
            s
        };
        let mut off = spec();
        default_security_context(&mut off, &Features::default());
        assert_eq!(off, spec(), "disabled by default");

        let mut f = Features::default();
        f.set("secure-pod-defaults", "enabled");
        let mut on = spec();
        default_security_context(&mut on, &f);
        let sc = on.pod_spec.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(sc.run_as_non_root, Some(true));
        let caps = sc.capabilities.unwrap();
        assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
        assert_eq!(caps.add, Some(vec!["NET_BIND_SERVICE".to_string()]));
        let init = on.pod_spec.init_containers.unwrap()[0]
            .security_context
            .clone()
            .unwrap();
        assert_eq!(init.run_as_non_root, Some(false), "the container's own");
        assert_eq!(init.capabilities, Some(Capabilities::default()));

        f.set("secure-pod-defaults", "AllowRootBounded");
        let mut bounded = spec();
        bounded.pod_spec.security_context = Some(PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "Unconfined".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        });
        default_security_context(&mut bounded, &f);
        let sc = bounded.pod_spec.containers[0]
            .security_context
            .clone()
            .unwrap();
        assert_eq!(
            sc.run_as_non_root, None,
            "AllowRootBounded leaves root alone"
        );
        assert_eq!(sc.seccomp_profile, None, "the pod's profile stands");
    }
}
