//! Validation of a Revision's PodSpec and containers (§1.4, `k8s_validation.go`).

use crate::defaults::{Defaults, Features, serving_container_index};
use crate::field_error::{FieldError, FieldErrors};
use crate::names::{dns1123_subdomain_errors, is_dns1123_label};
use crate::revision::RevisionSpec;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeSet;

/// Ports the queue-proxy and activator use; a user container may not listen on them.
pub const RESERVED_PORTS: [i32; 6] = [8012, 8013, 8022, 9090, 9091, 8008];
/// Environment variables Knative sets itself.
pub const RESERVED_ENV: [&str; 4] = ["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];

const SPEC_FIELDS: &[&str] = &[
    "containers",
    "volumes",
    "imagePullSecrets",
    "enableServiceLinks",
    "automountServiceAccountToken",
    "serviceAccountName",
    "containerConcurrency",
    "timeoutSeconds",
    "responseStartTimeoutSeconds",
    "idleTimeoutSeconds",
];

/// PodSpec fields that a `config-features` flag lets through.
const GATED_SPEC_FIELDS: &[(&str, &str)] = &[
    ("affinity", "kubernetes.podspec-affinity"),
    (
        "topologySpreadConstraints",
        "kubernetes.podspec-topologyspreadconstraints",
    ),
    ("hostAliases", "kubernetes.podspec-hostaliases"),
    ("nodeSelector", "kubernetes.podspec-nodeselector"),
    ("runtimeClassName", "kubernetes.podspec-runtimeclassname"),
    ("tolerations", "kubernetes.podspec-tolerations"),
    ("securityContext", "kubernetes.podspec-securitycontext"),
    (
        "shareProcessNamespace",
        "kubernetes.podspec-shareprocessnamespace",
    ),
    ("priorityClassName", "kubernetes.podspec-priorityclassname"),
    ("schedulerName", "kubernetes.podspec-schedulername"),
    ("initContainers", "kubernetes.podspec-init-containers"),
    ("dnsPolicy", "kubernetes.podspec-dnspolicy"),
    ("dnsConfig", "kubernetes.podspec-dnsconfig"),
    ("hostIPC", "kubernetes.podspec-hostipc"),
    ("hostPID", "kubernetes.podspec-hostpid"),
    ("hostNetwork", "kubernetes.podspec-hostnetwork"),
];

/// Gated PodSpec fields Swell cannot honour: each is refused even with its flag
/// enabled, rather than accepted and ignored. (Swell runs every replica on one machine,
/// in its own network, PID and IPC namespaces, under runc alone.)
const UNSUPPORTED_SPEC_FIELDS: &[(&str, &str)] = &[
    ("affinity", "Swell runs every replica on one machine"),
    (
        "topologySpreadConstraints",
        "Swell runs every replica on one machine",
    ),
    ("nodeSelector", "Swell runs every replica on one machine"),
    ("tolerations", "Swell runs every replica on one machine"),
    (
        "priorityClassName",
        "Swell does not schedule or preempt pods",
    ),
    ("schedulerName", "Swell does not schedule pods"),
    ("runtimeClassName", "Swell runs every container with runc"),
    (
        "shareProcessNamespace",
        "each container of a Swell replica has its own PID namespace",
    ),
    ("hostIPC", "replicas never share the host's IPC namespace"),
    ("hostPID", "replicas never share the host's PID namespace"),
    ("hostNetwork", "replicas never share the host's network"),
];

/// The pod `securityContext` fields Knative lets through (`PodSecurityContextMask`),
/// with `seccompProfile`.
const POD_SECURITY_CONTEXT_FIELDS: &[&str] = &[
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "supplementalGroups",
    "seccompProfile",
];

const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "args",
    "command",
    "env",
    "workingDir",
    "envFrom",
    "image",
    "imagePullPolicy",
    "livenessProbe",
    "ports",
    "readinessProbe",
    "resources",
    "securityContext",
    "startupProbe",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "volumeMounts",
];
const PORT_FIELDS: &[&str] = &["containerPort", "name", "protocol"];
const SECURITY_CONTEXT_FIELDS: &[&str] = &[
    "capabilities",
    "readOnlyRootFilesystem",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "allowPrivilegeEscalation",
    "seccompProfile",
    "privileged",
];
const RESOURCE_FIELDS: &[&str] = &["limits", "requests"];
/// The `fieldRef` paths replicas' environment can be given (`swell-controller`'s
/// `workload.rs` resolves them).
const FIELD_REFS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "status.podIP",
    "status.hostIP",
];

const VOLUME_SOURCES: &[(&str, Option<&str>)] = &[
    ("secret", None),
    ("configMap", None),
    ("projected", None),
    ("emptyDir", Some("kubernetes.podspec-volumes-emptydir")),
    (
        "persistentVolumeClaim",
        Some("kubernetes.podspec-persistent-volume-claim"),
    ),
    ("hostPath", Some("kubernetes.podspec-volumes-hostpath")),
    ("csi", Some("kubernetes.podspec-volumes-csi")),
    ("ephemeral", Some("kubernetes.podspec-volumes-ephemeral")),
    ("image", Some("kubernetes.podspec-volumes-image")),
];

/// Fields of `obj` outside `allowed` (a Knative field mask), as `must not set` errors.
fn mask(obj: &Value, allowed: &[&str]) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if let Value::Object(map) = obj {
        let extra: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !extra.is_empty() {
            errs.push(FieldError {
                message: "must not set the field(s)".into(),
                paths: extra.iter().map(|s| (*s).to_string()).collect(),
                details: None,
            });
        }
    }
    errs
}

/// Validates a RevisionSpec after defaulting (relative paths: `containers[0].…`).
pub fn validate_revision_spec(spec: &RevisionSpec, d: &Defaults, f: &Features) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let json = serde_json::to_value(spec).unwrap_or(Value::Null);
    let mut allowed: Vec<&str> = SPEC_FIELDS.to_vec();
    allowed.extend(
        GATED_SPEC_FIELDS
            .iter()
            .filter(|(_, flag)| f.allows(flag))
            .map(|(k, _)| *k),
    );
    errs.0.extend(mask(&json, &allowed).0);
    for (field, why) in UNSUPPORTED_SPEC_FIELDS {
        let set = json.get(*field).is_some_and(|v| !v.is_null());
        if set && allowed.contains(field) {
            errs.push(
                FieldError::disallowed(*field)
                    .with_details(format!("not supported by Swell: {why}")),
            );
        }
    }

    let pod = &spec.pod_spec;
    if let Some(psc) = &pod.security_context
        && allowed.contains(&"securityContext")
    {
        let mut e = mask(&json["securityContext"], POD_SECURITY_CONTEXT_FIELDS);
        let groups = psc.supplemental_groups.iter().flatten().copied();
        let ids = [
            ("runAsUser", psc.run_as_user),
            ("runAsGroup", psc.run_as_group),
            ("fsGroup", psc.fs_group),
        ]
        .into_iter()
        .chain(groups.map(|g| ("supplementalGroups", Some(g))));
        for (field, v) in ids {
            if let Some(v) = v
                && !(0..=2_147_483_647).contains(&v)
            {
                e.push(FieldError::out_of_bounds(v, 0, 2_147_483_647, field));
            }
        }
        if let Some(p) = &psc.seccomp_profile {
            e.0.extend(validate_seccomp_profile(&p.type_).0);
        }
        errs.extend_via("securityContext", e);
    }
    if pod.automount_service_account_token == Some(true) {
        errs.push(FieldError::invalid(true, "automountServiceAccountToken"));
    }
    if let Some(sa) = pod
        .service_account_name
        .as_ref()
        .filter(|sa| !sa.is_empty())
    {
        for why in dns1123_subdomain_errors(sa) {
            errs.push(FieldError::invalid(sa, "serviceAccountName").with_details(why));
        }
    }
    if let Some(cc) = spec.container_concurrency {
        let lo = if d.allow_container_concurrency_zero {
            0
        } else {
            1
        };
        if cc < lo || cc > d.container_concurrency_max_limit {
            errs.push(FieldError::out_of_bounds(
                cc,
                lo,
                d.container_concurrency_max_limit,
                "containerConcurrency",
            ));
        }
    }
    let max_timeout = d.max_revision_timeout_seconds;
    if let Some(t) = spec.timeout_seconds
        && (t <= 0 || t > max_timeout)
    {
        errs.push(FieldError::out_of_bounds(
            t,
            0,
            max_timeout,
            "timeoutSeconds",
        ));
    }
    let timeout = spec.timeout_seconds.unwrap_or(d.revision_timeout_seconds);
    for (field, value) in [
        (
            "responseStartTimeoutSeconds",
            spec.response_start_timeout_seconds,
        ),
        ("idleTimeoutSeconds", spec.idle_timeout_seconds),
    ] {
        if let Some(v) = value
            && (v < 0 || v > timeout)
        {
            errs.push(FieldError::out_of_bounds(v, 0, timeout, field));
        }
    }

    let volumes = validate_volumes(&json, pod, f, &mut errs);
    validate_containers(&json, &pod.containers, &volumes, f, &mut errs);
    if let Some(init) = &pod.init_containers {
        for (i, c) in init.iter().enumerate() {
            let cjson = &json["initContainers"][i];
            let e = validate_container(cjson, c, false, &volumes, f);
            errs.extend_via(&format!("initContainers[{i}]"), e);
        }
    }
    let mut mounted = BTreeSet::new();
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        for m in c.volume_mounts.iter().flatten() {
            mounted.insert(m.name.clone());
        }
    }
    for (i, name) in volumes.iter().enumerate() {
        if !mounted.contains(name) {
            errs.push(FieldError::new(
                format!("volume with name {name:?} not mounted"),
                format!("volumes[{i}].name"),
            ));
        }
    }
    errs
}

fn validate_volumes(
    json: &Value,
    pod: &k8s_openapi::api::core::v1::PodSpec,
    f: &Features,
    errs: &mut FieldErrors,
) -> Vec<String> {
    let mut names = Vec::new();
    for (i, v) in pod.volumes.iter().flatten().enumerate() {
        let path = format!("volumes[{i}]");
        if !is_dns1123_label(&v.name) {
            errs.push(FieldError::invalid(&v.name, format!("{path}.name")));
        }
        if names.contains(&v.name) {
            errs.push(FieldError::new(
                format!("duplicate volume name {:?}", v.name),
                format!("{path}.name"),
            ));
        }
        names.push(v.name.clone());
        let vjson = &json["volumes"][i];
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| vjson.get(*k).is_some())
            .collect();
        let others: Vec<String> = vjson
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|k| k.as_str() != "name" && !VOLUME_SOURCES.iter().any(|(s, _)| s == k))
            .map(|k| format!("{path}.{k}"))
            .collect();
        if !others.is_empty() {
            errs.push(FieldError {
                message: "must not set the field(s)".into(),
                paths: others,
                details: None,
            });
        }
        match sources.as_slice() {
            [] => errs.push(
                FieldError::one_of(&[], &["secret", "configMap", "projected", "emptyDir"])
                    .via(&path),
            ),
            [one] => {
                let flag = VOLUME_SOURCES
                    .iter()
                    .find(|(k, _)| k == one)
                    .and_then(|(_, f)| *f);
                if flag.is_some_and(|flag| !f.allows(flag)) {
                    errs.push(FieldError::disallowed(format!("{path}.{one}")));
                } else if !["secret", "configMap", "projected", "emptyDir"].contains(one) {
                    errs.push(
                        FieldError::disallowed(format!("{path}.{one}")).with_details(
                            "not supported by Swell: replicas get emptyDir, configMap, \
                             secret and projected volumes only",
                        ),
                    );
                }
            }
            many => errs.push(FieldError::one_of(many, many).via(&path)),
        }
        for (j, source) in vjson["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let refused: Vec<String> = source
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys())
                .filter(|k| !["configMap", "secret", "serviceAccountToken"].contains(&k.as_str()))
                .map(|k| format!("{path}.projected.sources[{j}].{k}"))
                .collect();
            if !refused.is_empty() {
                errs.push(
                    FieldError {
                        message: "must not set the field(s)".into(),
                        paths: refused,
                        details: None,
                    }
                    .with_details(
                        "not supported by Swell: projected volumes take configMap, secret \
                         and serviceAccountToken sources",
                    ),
                );
            }
        }
        if let Some(ed) = &v.empty_dir
            && let Some(m) = &ed.medium
            && !m.is_empty()
            && m != "Memory"
        {
            errs.push(FieldError::invalid(m, format!("{path}.emptyDir.medium")));
        }
    }
    names
}

fn validate_containers(
    json: &Value,
    containers: &[Container],
    volumes: &[String],
    f: &Features,
    errs: &mut FieldErrors,
) {
    if containers.is_empty() {
        errs.push(FieldError::missing("containers"));
        return;
    }
    if containers.len() > 1 && !f.allows("multi-container") {
        errs.push(FieldError::new(
            "multi-container is off, but found 2 containers",
            "containers",
        ));
    }
    let ports: usize = containers
        .iter()
        .map(|c| c.ports.as_ref().map_or(0, Vec::len))
        .sum();
    if ports > 1 {
        errs.push(
            FieldError::new("more than one container port is set", "containers[*].ports")
                .with_details("Only a single port is allowed across all containers"),
        );
    } else if ports == 0 && containers.len() > 1 {
        errs.push(FieldError::missing("containers.ports").with_details(
            "exactly one container must declare a port: it serves requests, the others are sidecars",
        ));
    }
    let serving = serving_container_index(containers);
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let path = format!("containers[{i}]");
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            errs.push(FieldError::new(
                format!("duplicate container name {:?}", c.name),
                format!("{path}.name"),
            ));
        }
        let e = validate_container(&json["containers"][i], c, Some(i) == serving, volumes, f);
        errs.extend_via(&path, e);
    }
}

/// Validates one container (relative paths).
fn validate_container(
    json: &Value,
    c: &Container,
    serving: bool,
    volumes: &[String],
    f: &Features,
) -> FieldErrors {
    let mut errs = mask(json, CONTAINER_FIELDS);
    if c.name == "queue-proxy" {
        errs.push(
            FieldError::invalid(&c.name, "name")
                .with_details("queue-proxy is a reserved container name"),
        );
    } else if !c.name.is_empty() && !is_dns1123_label(&c.name) {
        errs.push(FieldError::invalid(&c.name, "name"));
    }
    match c.image.as_deref() {
        None | Some("") => errs.push(FieldError::missing("image")),
        Some(image) => {
            if let Err(why) = check_image_reference(image) {
                errs.push(FieldError::invalid(image, "image").with_details(why));
            }
        }
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        let path = format!("env[{i}]");
        if e.name.is_empty() {
            errs.push(FieldError::missing(format!("{path}.name")));
        } else if RESERVED_ENV.contains(&e.name.as_str()) && (serving || e.name != "PORT") {
            errs.push(
                FieldError::invalid(&e.name, format!("{path}.name"))
                    .with_details(format!("{:?} is a reserved environment variable", e.name)),
            );
        }
        if let Some(vf) = &e.value_from {
            let vjson = &json["env"][i]["valueFrom"];
            let mut allowed = vec!["configMapKeyRef", "secretKeyRef"];
            if f.allows("kubernetes.podspec-fieldref") {
                allowed.extend(["fieldRef", "resourceFieldRef"]);
            }
            errs.extend_via(&format!("{path}.valueFrom"), mask(vjson, &allowed));
            let set = [
                vf.config_map_key_ref.is_some(),
                vf.secret_key_ref.is_some(),
                vf.field_ref.is_some(),
                vf.resource_field_ref.is_some(),
            ];
            if allowed.contains(&"fieldRef") {
                if let Some(fr) = &vf.field_ref
                    && !FIELD_REFS.contains(&fr.field_path.as_str())
                {
                    errs.push(
                        FieldError::invalid(
                            &fr.field_path,
                            format!("{path}.valueFrom.fieldRef.fieldPath"),
                        )
                        .with_details(format!(
                            "not supported by Swell: replicas can be given {}",
                            FIELD_REFS.join(", ")
                        )),
                    );
                }
                if vf.resource_field_ref.is_some() {
                    errs.push(
                        FieldError::disallowed(format!("{path}.valueFrom.resourceFieldRef"))
                            .with_details("not supported by Swell"),
                    );
                }
            }
            if set.iter().filter(|b| **b).count() != 1 {
                errs.push(
                    FieldError::one_of(
                        if set.iter().any(|b| *b) {
                            &["configMapKeyRef", "secretKeyRef"]
                        } else {
                            &[]
                        },
                        &["configMapKeyRef", "secretKeyRef"],
                    )
                    .via(&format!("{path}.valueFrom")),
                );
            }
        }
    }
    for (i, e) in c.env_from.iter().flatten().enumerate() {
        match (&e.config_map_ref, &e.secret_ref) {
            (Some(_), None) | (None, Some(_)) => {}
            (Some(_), Some(_)) => errs.push(
                FieldError::one_of(
                    &["configMapRef", "secretRef"],
                    &["configMapRef", "secretRef"],
                )
                .via(&format!("envFrom[{i}]")),
            ),
            (None, None) => errs.push(
                FieldError::one_of(&[], &["configMapRef", "secretRef"])
                    .via(&format!("envFrom[{i}]")),
            ),
        }
    }
    let port_name = c
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .and_then(|p| p.name.clone());
    if let Some(p) = c.ports.as_ref().and_then(|p| p.first()) {
        let mut e = mask(&json["ports"][0], PORT_FIELDS);
        if let Some(proto) = &p.protocol
            && !proto.is_empty()
            && proto != "TCP"
        {
            e.push(FieldError::invalid(proto, "protocol"));
        }
        if RESERVED_PORTS.contains(&p.container_port) {
            e.push(
                FieldError::invalid(p.container_port, "containerPort")
                    .with_details(format!("port {} is reserved by Knative", p.container_port)),
            );
        }
        if !(0..=65535).contains(&p.container_port) {
            e.push(FieldError::out_of_bounds(
                p.container_port,
                0,
                65535,
                "containerPort",
            ));
        }
        if let Some(name) = &p.name
            && !matches!(name.as_str(), "" | "h2c" | "http1")
        {
            e.push(
                FieldError::new(format!("Port name {name} is not allowed"), "")
                    .with_details("Name must be empty, or one of: 'h2c', 'http1'"),
            );
        }
        errs.extend_via("ports", e);
    }
    for (field, probe) in [
        ("readinessProbe", &c.readiness_probe),
        ("livenessProbe", &c.liveness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(p) = probe {
            if !serving && !f.allows("multi-container-probing") {
                errs.push(FieldError::disallowed(field));
                continue;
            }
            errs.extend_via(
                field,
                validate_probe(p, field == "readinessProbe", port_name.as_deref()),
            );
        }
    }
    if c.security_context.is_some() {
        errs.extend_via(
            "securityContext",
            validate_security_context(&json["securityContext"], c, f),
        );
    }
    if let Some(r) = json.get("resources") {
        errs.extend_via("resources", mask(r, RESOURCE_FIELDS));
    }
    if let Some(p) = &c.termination_message_policy
        && !matches!(p.as_str(), "" | "File" | "FallbackToLogsOnError")
    {
        errs.push(FieldError::invalid(p, "terminationMessagePolicy"));
    }
    let mut paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let path = format!("volumeMounts[{i}]");
        if !volumes.contains(&m.name) {
            errs.push(
                FieldError::invalid(&m.name, format!("{path}.name"))
                    .with_details("volumeMount has no matching volume"),
            );
        }
        if !m.mount_path.starts_with('/') {
            errs.push(
                FieldError::invalid(&m.mount_path, format!("{path}.mountPath"))
                    .with_details("must be an absolute path"),
            );
        } else if matches!(m.mount_path.trim_end_matches('/'), "" | "/dev" | "/dev/log") {
            errs.push(
                FieldError::invalid(&m.mount_path, format!("{path}.mountPath"))
                    .with_details("mountPath may not be /, /dev or /dev/log"),
            );
        }
        if !paths.insert(m.mount_path.clone()) {
            errs.push(FieldError::new(
                format!("{:?} must be unique", m.mount_path),
                format!("{path}.mountPath"),
            ));
        }
        if m.mount_propagation.is_some()
            && !f.allows("kubernetes.podspec-volumes-mount-propagation")
        {
            errs.push(FieldError::disallowed(format!("{path}.mountPropagation")));
        }
    }
    errs
}

fn validate_probe(p: &Probe, readiness: bool, port_name: Option<&str>) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let handlers: Vec<&str> = [
        ("httpGet", p.http_get.is_some()),
        ("tcpSocket", p.tcp_socket.is_some()),
        ("exec", p.exec.is_some()),
        ("grpc", p.grpc.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if handlers.len() != 1 {
        errs.push(FieldError::one_of(
            &handlers,
            &["httpGet", "tcpSocket", "exec", "grpc"],
        ));
    }
    let named_port = p
        .http_get
        .as_ref()
        .map(|h| &h.port)
        .or(p.tcp_socket.as_ref().map(|t| &t.port));
    if let Some(IntOrString::String(name)) = named_port
        && Some(name.as_str()) != port_name
    {
        errs.push(
            FieldError::invalid(name, "port")
                .with_details("a named probe port must be the container port's name"),
        );
    }
    let nonneg = |v: Option<i32>, field: &str, errs: &mut FieldErrors| {
        if let Some(v) = v
            && v < 0
        {
            errs.push(FieldError::out_of_bounds(v, 0, "+Inf", field));
        }
    };
    nonneg(p.initial_delay_seconds, "initialDelaySeconds", &mut errs);
    nonneg(p.period_seconds, "periodSeconds", &mut errs);
    if readiness {
        if p.success_threshold.is_some_and(|s| s < 1) {
            errs.push(FieldError::out_of_bounds(
                p.success_threshold.unwrap_or(0),
                1,
                "+Inf",
                "successThreshold",
            ));
        }
        if p.period_seconds.unwrap_or(0) == 0 {
            for (field, v) in [
                ("failureThreshold", p.failure_threshold),
                ("timeoutSeconds", p.timeout_seconds),
            ] {
                if v.is_some_and(|v| v != 0) {
                    errs.push(
                        FieldError::disallowed(field)
                            .with_details("when periodSeconds is 0 (aggressive probing)"),
                    );
                }
            }
        } else {
            for (field, v) in [
                ("failureThreshold", p.failure_threshold),
                ("timeoutSeconds", p.timeout_seconds),
            ] {
                if v.is_some_and(|v| v < 1) {
                    errs.push(FieldError::out_of_bounds(v.unwrap_or(0), 1, "+Inf", field));
                }
            }
        }
    }
    errs
}

fn validate_security_context(json: &Value, c: &Container, f: &Features) -> FieldErrors {
    let mut errs = mask(json, SECURITY_CONTEXT_FIELDS);
    let Some(sc) = &c.security_context else {
        return errs;
    };
    for (field, v) in [
        ("runAsUser", sc.run_as_user),
        ("runAsGroup", sc.run_as_group),
    ] {
        if let Some(v) = v
            && !(0..=2_147_483_647).contains(&v)
        {
            errs.push(FieldError::out_of_bounds(v, 0, 2_147_483_647, field));
        }
    }
    if sc.privileged == Some(true) {
        errs.push(FieldError::invalid(true, "privileged"));
    }
    // secure-pod-defaults itself adds NET_BIND_SERVICE for a low port.
    let bind_only = |add: &[String]| {
        f.secure_pod_defaults().is_some() && add.iter().all(|c| c == "NET_BIND_SERVICE")
    };
    if let Some(caps) = &sc.capabilities
        && let Some(add) = &caps.add
        && !add.is_empty()
        && !f.allows("kubernetes.containerspec-addcapabilities")
        && !bind_only(add)
    {
        errs.push(FieldError::disallowed("capabilities.add"));
    }
    if let Some(p) = &sc.seccomp_profile {
        errs.0.extend(validate_seccomp_profile(&p.type_).0);
    }
    errs
}

/// `seccompProfile.type`: `RuntimeDefault` or `Unconfined` (which the server must
/// allow); Swell has no `Localhost` profiles.
fn validate_seccomp_profile(typ: &str) -> FieldErrors {
    let mut errs = FieldErrors::default();
    match typ {
        "RuntimeDefault" | "Unconfined" => {}
        "Localhost" => errs.push(
            FieldError::invalid(typ, "seccompProfile.type").with_details(
                "Localhost seccomp profiles are not supported by Swell; use RuntimeDefault",
            ),
        ),
        _ => errs.push(
            FieldError::invalid(typ, "seccompProfile.type")
                .with_details("must be RuntimeDefault, Unconfined or Localhost"),
        ),
    }
    errs
}

/// Checks that `image` parses as an image reference (`[host[:port]/]path[:tag][@digest]`).
pub fn check_image_reference(image: &str) -> Result<(), String> {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let (algo, hex) = d.split_once(':').ok_or("digest must be algorithm:hex")?;
        if algo.is_empty() || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("invalid digest".into());
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag
        && (t.is_empty()
            || t.len() > 128
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            || t.starts_with(['.', '-']))
    {
        return Err(format!("invalid tag {t:?}"));
    }
    let mut parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            return Err(format!("invalid registry {host:?}"));
        }
    }
    for p in parts {
        let ok = !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && p.as_bytes()[0].is_ascii_alphanumeric()
            && p.as_bytes()[p.len() - 1].is_ascii_alphanumeric();
        if !ok {
            return Err(
                "repository name must be lowercase alphanumerics separated by '.', '_' or '-'"
                    .into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "ghcr.io/knative/helloworld-go:latest",
            "nginx",
            "127.0.0.1:5000/testapp:v1",
            "localhost/app",
            "gcr.io/knative-samples/helloworld-go@sha256:5ea96ba4b872685ff4ddb5cd8d1a97ec18c18fae79ee8df0d29f446c5efe5f50",
        ] {
            assert_eq!(check_image_reference(ok), Ok(()), "{ok}");
        }
        for bad in ["UPPER/case", "a b", "x:", "repo@sha256:zz", "-lead"] {
            assert!(check_image_reference(bad).is_err(), "{bad}");
        }
    }
}
