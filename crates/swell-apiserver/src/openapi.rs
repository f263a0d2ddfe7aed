//! OpenAPI documents: a minimal v2 (protobuf, so old kubectl's `apply` validation finds
//! nothing to check) and v3 per group-version, with PATCH operations that declare
//! `fieldValidation` (kubectl then lets the server validate) and schemas that make
//! `kubectl explain ksvc` work.

use crate::registry::{Registry, ResourceDef};
use serde_json::{Map, Value, json};

/// An empty gnostic `openapi_v2.Document`: swagger "2.0", info{title, version}, no paths.
pub const OPENAPI_V2_PROTOBUF: &[u8] = &[
    0x0a, 0x03, b'2', b'.', b'0', 0x12, 0x0b, 0x0a, 0x05, b's', b'w', b'e', b'l', b'l', 0x12, 0x02,
    b'v', b'1', 0x42, 0x00,
];
/// Its content type (no `@`: Go's media type parser rejects it in a response).
pub const OPENAPI_V2_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The group-versions with a v3 document, as index paths (`apis/serving.knative.dev/v1`).
fn group_versions(registry: &Registry) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in registry.all() {
        let gv = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

/// `/openapi/v3`.
pub fn v3_index(registry: &Registry) -> Value {
    let paths: Map<String, Value> = group_versions(registry)
        .into_iter()
        .map(|gv| {
            let url = format!(
                "/openapi/v3/{gv}?hash={}",
                env!("CARGO_PKG_VERSION").replace('.', "")
            );
            (gv, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

fn s(desc: &str) -> Value {
    json!({"type": "string", "description": desc})
}
fn int(desc: &str) -> Value {
    json!({"type": "integer", "format": "int64", "description": desc})
}
fn boolean(desc: &str) -> Value {
    json!({"type": "boolean", "description": desc})
}
fn map_of_strings(desc: &str) -> Value {
    json!({"type": "object", "description": desc, "additionalProperties": {"type": "string"}})
}
fn free(desc: &str) -> Value {
    json!({"type": "object", "description": desc, "x-kubernetes-preserve-unknown-fields": true})
}
fn array(desc: &str, items: Value) -> Value {
    json!({"type": "array", "description": desc, "items": items})
}
fn object(desc: &str, props: &[(&str, Value)]) -> Value {
    let properties: Map<String, Value> = props
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    json!({"type": "object", "description": desc, "properties": properties})
}

fn metadata() -> Value {
    free(
        "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    )
}

fn traffic_target() -> Value {
    object(
        "TrafficTarget holds a single entry of the routing table for a Route.",
        &[
            (
                "tag",
                s(
                    "Tag is optionally used to expose a dedicated url for referencing this target exclusively.",
                ),
            ),
            (
                "revisionName",
                s("RevisionName of a specific revision to which to send this portion of traffic."),
            ),
            (
                "configurationName",
                s(
                    "ConfigurationName of a configuration to whose latest revision we will send this portion of traffic (Route only).",
                ),
            ),
            (
                "latestRevision",
                boolean(
                    "LatestRevision may be optionally provided to indicate that the latest ready Revision of the Configuration should be used for this traffic target.",
                ),
            ),
            (
                "percent",
                int(
                    "Percent indicates that percentage based routing should be used and the value indicates the percent of traffic that is routed to this Revision or Configuration.",
                ),
            ),
            (
                "url",
                s("URL displays the URL for accessing named traffic targets (status only)."),
            ),
        ],
    )
}

fn revision_spec() -> Value {
    object(
        "RevisionSpec holds the desired state of the Revision (from the client).",
        &[
            (
                "containers",
                array(
                    "List of containers belonging to the pod. Only one may declare a port.",
                    free("A single application container that you want to run within a pod."),
                ),
            ),
            (
                "volumes",
                array(
                    "List of volumes that can be mounted by containers.",
                    free("Volume represents a named volume in a pod."),
                ),
            ),
            (
                "containerConcurrency",
                int(
                    "ContainerConcurrency specifies the maximum allowed in-flight (concurrent) requests per container of the Revision. Defaults to 0 which means concurrency to the application is not limited.",
                ),
            ),
            (
                "timeoutSeconds",
                int(
                    "TimeoutSeconds is the maximum duration in seconds that the request instance is allowed to respond to a request.",
                ),
            ),
            (
                "responseStartTimeoutSeconds",
                int(
                    "ResponseStartTimeoutSeconds is the maximum duration in seconds that the request routing layer will wait for a request delivered to a container to begin sending any network traffic.",
                ),
            ),
            (
                "idleTimeoutSeconds",
                int(
                    "IdleTimeoutSeconds is the maximum duration in seconds a request will be allowed to stay open while not receiving any bytes from the user's application.",
                ),
            ),
            (
                "serviceAccountName",
                s("ServiceAccountName is the name of the ServiceAccount to use to run this pod."),
            ),
            (
                "imagePullSecrets",
                array(
                    "ImagePullSecrets is an optional list of references to secrets to use for pulling the images.",
                    free("LocalObjectReference"),
                ),
            ),
            (
                "enableServiceLinks",
                boolean(
                    "EnableServiceLinks indicates whether information about services should be injected into pod's environment variables.",
                ),
            ),
            (
                "automountServiceAccountToken",
                boolean(
                    "AutomountServiceAccountToken indicates whether a service account token should be automatically mounted.",
                ),
            ),
        ],
    )
}

fn template() -> Value {
    object(
        "Template holds the latest specification for the Revision to be stamped out.",
        &[("metadata", metadata()), ("spec", revision_spec())],
    )
}

fn status(extra: &[(&str, Value)]) -> Value {
    let mut props = vec![
        (
            "observedGeneration",
            int(
                "ObservedGeneration is the 'Generation' of the object that was last processed by the controller.",
            ),
        ),
        (
            "conditions",
            array(
                "Conditions the latest available observations of a resource's current state.",
                object(
                    "Condition defines a readiness condition for a Knative resource.",
                    &[
                        ("type", s("Type of condition.")),
                        (
                            "status",
                            s("Status of the condition, one of True, False, Unknown."),
                        ),
                        (
                            "severity",
                            s("Severity with which to treat failures of this type of condition."),
                        ),
                        (
                            "lastTransitionTime",
                            s(
                                "LastTransitionTime is the last time the condition transitioned from one status to another.",
                            ),
                        ),
                        (
                            "reason",
                            s("The reason for the condition's last transition."),
                        ),
                        (
                            "message",
                            s("A human readable message indicating details about the transition."),
                        ),
                    ],
                ),
            ),
        ),
        (
            "annotations",
            map_of_strings(
                "Annotations is additional Status fields for the Resource to save some additional State as well as convey more information to the user.",
            ),
        ),
    ];
    props.extend(extra.iter().cloned());
    object(
        "Status communicates the observed state of the resource (from the controller).",
        &props,
    )
}

fn route_status_fields() -> Vec<(&'static str, Value)> {
    vec![
        (
            "url",
            s("URL holds the url that will distribute traffic over the provided traffic targets."),
        ),
        (
            "address",
            object(
                "Address holds the information needed for a Route to be the target of an event.",
                &[("url", s("URL"))],
            ),
        ),
        (
            "traffic",
            array(
                "Traffic holds the configured traffic distribution.",
                traffic_target(),
            ),
        ),
    ]
}

fn config_status_fields() -> Vec<(&'static str, Value)> {
    vec![
        (
            "latestReadyRevisionName",
            s(
                "LatestReadyRevisionName holds the name of the latest Revision stamped out from this Configuration that has had its \"Ready\" condition become \"True\".",
            ),
        ),
        (
            "latestCreatedRevisionName",
            s(
                "LatestCreatedRevisionName is the last revision that was created from this Configuration.",
            ),
        ),
    ]
}

/// The schema of a resource's kind, with `x-kubernetes-group-version-kind`.
fn schema(r: &ResourceDef) -> Value {
    if r.group.is_empty() && r.plural == "services" {
        let mut sch = free(
            "Service is a named abstraction of software service (for example, mysql) consisting of local port (for example 3306) that the proxy listens on, and the selector that determines which pods will answer requests sent through the proxy.",
        );
        sch["x-kubernetes-group-version-kind"] =
            json!([{"group": "", "kind": "Service", "version": "v1"}]);
        return sch;
    }
    let spec_and_status: Vec<(&str, Value)> = match r.plural {
        "services" => {
            let mut st = config_status_fields();
            st.extend(route_status_fields());
            vec![
                (
                    "spec",
                    object(
                        "ServiceSpec represents the configuration for the Service object. A Service's specification is the union of the specifications for a Route and Configuration.",
                        &[
                            ("template", template()),
                            (
                                "traffic",
                                array(
                                    "Traffic specifies how to distribute traffic over a collection of revisions and configurations.",
                                    traffic_target(),
                                ),
                            ),
                        ],
                    ),
                ),
                ("status", status(&st)),
            ]
        }
        "configurations" => vec![
            (
                "spec",
                object(
                    "ConfigurationSpec holds the desired state of the Configuration (from the client).",
                    &[("template", template())],
                ),
            ),
            ("status", status(&config_status_fields())),
        ],
        "revisions" => vec![
            ("spec", revision_spec()),
            (
                "status",
                status(&[
                    (
                        "logUrl",
                        s(
                            "LogURL specifies the generated logging url for this particular revision.",
                        ),
                    ),
                    (
                        "containerStatuses",
                        array(
                            "ContainerStatuses is a slice of images present in .Spec.Container[*].Image to their respective digests.",
                            object(
                                "ContainerStatus holds the information of container name and image digest value",
                                &[("name", s("")), ("imageDigest", s(""))],
                            ),
                        ),
                    ),
                    (
                        "actualReplicas",
                        int(
                            "ActualReplicas reflects the amount of ready pods running this revision.",
                        ),
                    ),
                    (
                        "desiredReplicas",
                        int(
                            "DesiredReplicas reflects the desired amount of pods running this revision.",
                        ),
                    ),
                ]),
            ),
        ],
        "routes" => vec![
            (
                "spec",
                object(
                    "RouteSpec holds the desired state of the Route (from the client).",
                    &[(
                        "traffic",
                        array(
                            "Traffic specifies how to distribute traffic over a collection of revisions and configurations.",
                            traffic_target(),
                        ),
                    )],
                ),
            ),
            ("status", status(&route_status_fields())),
        ],
        "domainmappings" => vec![
            (
                "spec",
                object(
                    "DomainMappingSpec describes the DomainMapping the user wishes to exist.",
                    &[
                        (
                            "ref",
                            object(
                                "Ref specifies which KResource to use as the backing resource.",
                                &[
                                    ("kind", s("Kind of the referent.")),
                                    ("name", s("Name of the referent.")),
                                    ("namespace", s("Namespace of the referent.")),
                                    ("apiVersion", s("API version of the referent.")),
                                ],
                            ),
                        ),
                        (
                            "tls",
                            object(
                                "TLS allows the DomainMapping to terminate TLS traffic with an existing secret.",
                                &[(
                                    "secretName",
                                    s(
                                        "SecretName is the name of the existing secret used to terminate TLS traffic.",
                                    ),
                                )],
                            ),
                        ),
                    ],
                ),
            ),
            (
                "status",
                status(&[
                    ("url", s("URL is the URL of this DomainMapping.")),
                    (
                        "address",
                        object(
                            "Address holds the information needed for a DomainMapping to be the target of an event.",
                            &[("url", s("URL"))],
                        ),
                    ),
                ]),
            ),
        ],
        "configmaps" => vec![
            (
                "data",
                map_of_strings("Data contains the configuration data."),
            ),
            (
                "binaryData",
                map_of_strings("BinaryData contains the binary data (base64)."),
            ),
            (
                "immutable",
                boolean(
                    "Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated.",
                ),
            ),
        ],
        "secrets" => vec![
            (
                "data",
                map_of_strings("Data contains the secret data, base64 encoded."),
            ),
            (
                "stringData",
                map_of_strings(
                    "stringData allows specifying non-binary secret data in string form.",
                ),
            ),
            (
                "type",
                s("Used to facilitate programmatic handling of secret data."),
            ),
            (
                "immutable",
                boolean(
                    "Immutable, if set to true, ensures that data stored in the Secret cannot be updated.",
                ),
            ),
        ],
        "pods" => vec![
            (
                "spec",
                free("Specification of the desired behavior of the pod."),
            ),
            ("status", free("Most recently observed status of the pod.")),
        ],
        "namespaces" => vec![
            ("spec", free("Spec defines the behavior of the Namespace.")),
            (
                "status",
                free("Status describes the current status of a Namespace."),
            ),
        ],
        _ => vec![],
    };
    let description = match r.plural {
        "services" => {
            "Service acts as a top-level container that manages a Route and Configuration which implement a network service."
        }
        "configurations" => {
            "Configuration represents the \"floating HEAD\" of a linear history of Revisions."
        }
        "revisions" => "Revision is an immutable snapshot of code and configuration.",
        "routes" => "Route is responsible for configuring ingress over a collection of Revisions.",
        "domainmappings" => "DomainMapping is a mapping from a custom hostname to an Addressable.",
        _ => "",
    };
    let mut props = vec![
        (
            "apiVersion",
            s("APIVersion defines the versioned schema of this representation of an object."),
        ),
        (
            "kind",
            s("Kind is a string value representing the REST resource this object represents."),
        ),
        ("metadata", metadata()),
    ];
    props.extend(spec_and_status);
    let mut sch = object(description, &props);
    if r.plural == "events" {
        sch = free("Event is a report of an event somewhere in the cluster.");
    }
    sch["x-kubernetes-group-version-kind"] =
        json!([{"group": r.group, "kind": r.kind, "version": r.version}]);
    sch
}

fn schema_name(r: &ResourceDef) -> String {
    if r.group.is_empty() {
        format!("io.k8s.api.core.v1.{}", r.kind)
    } else {
        format!("dev.knative.serving.{}.{}", r.version, r.kind)
    }
}

fn patch_operation(r: &ResourceDef) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(r))});
    let patch_schema = json!({"type": "object"});
    let mut content = Map::new();
    content.insert(
        "application/json-patch+json".into(),
        json!({"schema": patch_schema}),
    );
    content.insert(
        "application/merge-patch+json".into(),
        json!({"schema": patch_schema}),
    );
    content.insert(
        "application/apply-patch+yaml".into(),
        json!({"schema": patch_schema}),
    );
    if r.group.is_empty() {
        content.insert(
            "application/strategic-merge-patch+json".into(),
            json!({"schema": patch_schema}),
        );
    }
    let query = |name: &str, desc: &str| json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string", "uniqueItems": true}});
    json!({
        "description": format!("partially update the specified {}", r.kind),
        "operationId": format!("patch{}", r.kind),
        "parameters": [
            query("dryRun", "When present, indicates that modifications should not be persisted."),
            query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
            query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict."),
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ],
        "requestBody": {"content": content, "required": true},
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`.
pub fn v3_document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceDef> = registry.in_group_version(group, version).collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in resources {
        let base = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        paths.insert(item, json!({"patch": patch_operation(r)}));
        schemas.insert(schema_name(r), schema(r));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Swell", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
