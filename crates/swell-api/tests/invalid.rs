//! Invalid manifests are refused with Knative's messages and the offending field's path.

use serde_json::{Value, json};
use swell_api::admission::{AdmissionContext, AdmissionError, FieldValidation, Kind, admit};

fn service(template_spec: Value) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"template": {"spec": template_spec}}
    })
}

fn container(extra: Value) -> Value {
    let mut c = json!({"image": "ghcr.io/knative/helloworld-go:latest"});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"containers": [c]})
}

fn reject(kind: Kind, obj: &Value) -> String {
    match admit(
        kind,
        obj,
        None,
        FieldValidation::Strict,
        false,
        &AdmissionContext::default(),
    ) {
        Err(e) => e.to_string(),
        Ok(a) => panic!("accepted: {}", a.object),
    }
}

#[test]
fn each_rule_names_its_field() {
    let cases: Vec<(Value, &str)> = vec![
        (
            container(json!({"ports": [{"containerPort": 8012}]})),
            "invalid value: 8012: spec.template.spec.containers[0].ports.containerPort",
        ),
        (
            container(json!({"ports": [{"containerPort": 9091}]})),
            "spec.template.spec.containers[0].ports.containerPort",
        ),
        (
            container(json!({"ports": [{"containerPort": 8080, "name": "grpc"}]})),
            "Port name grpc is not allowed: spec.template.spec.containers[0].ports",
        ),
        (
            container(json!({"ports": [{"containerPort": 8080, "hostPort": 80}]})),
            "must not set the field(s): spec.template.spec.containers[0].ports.hostPort",
        ),
        (
            container(json!({"ports": [{"containerPort": 8080, "protocol": "UDP"}]})),
            "invalid value: UDP: spec.template.spec.containers[0].ports.protocol",
        ),
        (
            container(json!({"ports": [{"containerPort": 8080}, {"containerPort": 8081}]})),
            "more than one container port is set: spec.template.spec.containers[*].ports",
        ),
        (
            container(json!({"env": [{"name": "PORT", "value": "1"}]})),
            "invalid value: PORT: spec.template.spec.containers[0].env[0].name",
        ),
        (
            container(json!({"env": [{"name": "K_SERVICE", "value": "x"}]})),
            "spec.template.spec.containers[0].env[0].name",
        ),
        (
            container(json!({"lifecycle": {"preStop": {"exec": {"command": ["x"]}}}})),
            "must not set the field(s): spec.template.spec.containers[0].lifecycle",
        ),
        (
            container(json!({"stdin": true, "tty": true})),
            "must not set the field(s): spec.template.spec.containers[0].stdin, spec.template.spec.containers[0].tty",
        ),
        (
            container(json!({"name": "queue-proxy"})),
            "invalid value: queue-proxy: spec.template.spec.containers[0].name",
        ),
        (
            container(json!({"securityContext": {"runAsUser": -10}})),
            "expected 0 <= -10 <= 2147483647: spec.template.spec.containers[0].securityContext.runAsUser",
        ),
        (
            container(json!({"securityContext": {"privileged": true}})),
            "spec.template.spec.containers[0].securityContext.privileged",
        ),
        (
            container(
                json!({"readinessProbe": {"periodSeconds": 0, "failureThreshold": 2, "tcpSocket": {"port": 0}}}),
            ),
            "must not set the field(s): spec.template.spec.containers[0].readinessProbe.failureThreshold",
        ),
        (
            container(
                json!({"readinessProbe": {"httpGet": {"port": 0}, "tcpSocket": {"port": 0}}}),
            ),
            "expected exactly one, got both: spec.template.spec.containers[0].readinessProbe.httpGet, spec.template.spec.containers[0].readinessProbe.tcpSocket",
        ),
        (
            container(json!({"envFrom": [{}]})),
            "expected exactly one, got neither: spec.template.spec.containers[0].envFrom[0].configMapRef",
        ),
        (
            container(json!({"volumeMounts": [{"name": "missing", "mountPath": "/x"}]})),
            "spec.template.spec.containers[0].volumeMounts[0].name",
        ),
        (
            json!({"containers": []}),
            "missing field(s): spec.template.spec.containers",
        ),
        (
            json!({"containers": [{"name": "a"}]}),
            "missing field(s): spec.template.spec.containers[0].image",
        ),
        (
            json!({"containers": [{"image": "Bad Image"}]}),
            "invalid value: Bad Image: spec.template.spec.containers[0].image",
        ),
        (
            json!({"containers": [{"image": "a"}, {"image": "b"}]}),
            "missing field(s): spec.template.spec.containers.ports",
        ),
        (
            json!({"containers": [{"image": "a"}], "restartPolicy": "Never"}),
            "must not set the field(s): spec.template.spec.restartPolicy",
        ),
        (
            json!({"containers": [{"image": "a"}], "nodeSelector": {"a": "b"}}),
            "must not set the field(s): spec.template.spec.nodeSelector",
        ),
        (
            json!({"containers": [{"image": "a"}], "containerConcurrency": 1001}),
            "expected 0 <= 1001 <= 1000: spec.template.spec.containerConcurrency",
        ),
        (
            json!({"containers": [{"image": "a"}], "timeoutSeconds": 601}),
            "expected 0 <= 601 <= 600: spec.template.spec.timeoutSeconds",
        ),
        (
            json!({"containers": [{"image": "a"}], "timeoutSeconds": -1}),
            "spec.template.spec.timeoutSeconds",
        ),
        (
            json!({"containers": [{"image": "a"}], "volumes": [{"name": "v", "configMap": {"name": "c"}}]}),
            "volume with name \"v\" not mounted: spec.template.spec.volumes[0].name",
        ),
    ];
    for (spec, want) in cases {
        let got = reject(Kind::Service, &service(spec.clone()));
        assert!(
            got.contains(want),
            "for {spec}\n  want: {want}\n  got:  {got}"
        );
    }
}

/// Knative's `TestServiceAccountValidation`: the value and path, then Kubernetes' own
/// RFC 1123 subdomain message on the next line.
#[test]
fn service_account_name_reads_as_knatives_conformance_test_expects() {
    let got = reject(
        Kind::Service,
        &service(json!({"containers": [{"image": "a"}], "serviceAccountName": "foo@bar.baz"})),
    );
    assert_eq!(
        got,
        "invalid value: foo@bar.baz: spec.template.spec.serviceAccountName\n\
         a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
         '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
         regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    // Failures with one message merge their paths, sorted, as Knative's do.
    let got = reject(
        Kind::Service,
        &service(
            json!({"containers": [{"image": "a", "stdin": true}], "nodeSelector": {"a": "b"}}),
        ),
    );
    assert!(
        got.contains("must not set the field(s): spec.template.spec.containers[0].stdin, spec.template.spec.nodeSelector"),
        "{got}"
    );
}

#[test]
fn traffic_tags_read_as_knatives() {
    let mut svc = service(json!({"containers": [{"image": "a"}]}));
    svc["spec"]["traffic"] = json!([{"latestRevision": true, "percent": 100, "tag": "Bad_Tag"}]);
    let got = reject(Kind::Service, &svc);
    assert!(
        got.contains("invalid value: not a DNS 1035 label: [a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]: spec.traffic[0].tag"),
        "{got}"
    );
}

#[test]
fn names_annotations_traffic_and_byo_names() {
    let mut bad_name = service(container(json!({})));
    bad_name["metadata"]["name"] = json!("Hello_World");
    assert!(reject(Kind::Service, &bad_name).contains("metadata.name"));

    let mut top_annotation = service(container(json!({})));
    top_annotation["metadata"]["annotations"] = json!({"autoscaling.knative.dev/min-scale": "1"});
    assert!(reject(Kind::Service, &top_annotation).contains("spec.template.metadata.annotations"));

    let mut bad_window = service(container(json!({})));
    bad_window["spec"]["template"]["metadata"] =
        json!({"annotations": {"autoscaling.knative.dev/window": "1s"}});
    assert!(
        reject(Kind::Service, &bad_window)
            .contains("spec.template.metadata.annotations.autoscaling.knative.dev/window")
    );

    let mut ninety_nine = service(container(json!({})));
    ninety_nine["spec"]["traffic"] = json!([{"latestRevision": true, "percent": 99}]);
    assert!(
        reject(Kind::Service, &ninety_nine)
            .contains("Traffic targets sum to 99, want 100: spec.traffic")
    );

    let mut byo = service(container(json!({})));
    byo["spec"]["template"]["metadata"] = json!({"name": "other-00001"});
    assert!(
        reject(Kind::Service, &byo)
            .contains("must have prefix \"hello-\": spec.template.metadata.name")
    );

    let route = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Route",
        "metadata": {"name": "r"}, "spec": {}});
    assert!(reject(Kind::Route, &route).contains("Traffic targets sum to 0, want 100"));

    let dm = json!({"apiVersion": "serving.knative.dev/v1beta1", "kind": "DomainMapping",
        "metadata": {"name": "hello.default.svc.cluster.local", "namespace": "default"},
        "spec": {"ref": {"name": "hello", "kind": "Service"}}});
    let msg = reject(Kind::DomainMapping, &dm);
    assert!(
        msg.contains("metadata.name") && msg.contains("spec.ref.apiVersion"),
        "{msg}"
    );
}

#[test]
fn byo_name_must_change_with_the_template() {
    let ctx = AdmissionContext::default();
    let mut v1 = service(container(json!({})));
    v1["spec"]["template"]["metadata"] = json!({"name": "hello-one"});
    let stored = admit(
        Kind::Service,
        &v1,
        None,
        FieldValidation::Strict,
        false,
        &ctx,
    )
    .unwrap()
    .object;
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("ghcr.io/knative/helloworld-go:v2");
    let err = admit(
        Kind::Service,
        &v2,
        Some(&stored),
        FieldValidation::Strict,
        false,
        &ctx,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("Saw the following changes without a name change"),
        "{err}"
    );
    v2["spec"]["template"]["metadata"]["name"] = json!("hello-two");
    admit(
        Kind::Service,
        &v2,
        Some(&stored),
        FieldValidation::Strict,
        false,
        &ctx,
    )
    .unwrap();
}

#[test]
fn revision_spec_is_immutable() {
    let ctx = AdmissionContext::default();
    let rev = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": "hello-00001"}, "spec": {"containers": [{"image": "a"}]}});
    let stored = admit(
        Kind::Revision,
        &rev,
        None,
        FieldValidation::Strict,
        false,
        &ctx,
    )
    .unwrap()
    .object;
    let mut changed = stored.clone();
    changed["spec"]["containers"][0]["image"] = json!("b");
    let err = admit(
        Kind::Revision,
        &changed,
        Some(&stored),
        FieldValidation::Strict,
        false,
        &ctx,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("Immutable fields changed"),
        "{err}"
    );
    let mut relabelled = stored.clone();
    relabelled["metadata"]["labels"] = json!({"team": "a"});
    admit(
        Kind::Revision,
        &relabelled,
        Some(&stored),
        FieldValidation::Strict,
        false,
        &ctx,
    )
    .unwrap();
}

#[test]
fn unknown_fields_follow_field_validation() {
    let ctx = AdmissionContext::default();
    let mut obj = service(container(json!({"imagee": "typo"})));
    obj["spec"]["foo"] = json!(1);
    match admit(
        Kind::Service,
        &obj,
        None,
        FieldValidation::Strict,
        false,
        &ctx,
    ) {
        Err(AdmissionError::UnknownFields(f)) => {
            assert_eq!(f, ["spec.foo", "spec.template.spec.containers[0].imagee"])
        }
        other => panic!("{other:?}"),
    }
    let warned = admit(
        Kind::Service,
        &obj,
        None,
        FieldValidation::Warn,
        false,
        &ctx,
    )
    .unwrap();
    assert_eq!(warned.warnings.len(), 2);
    assert!(
        warned.object["spec"].get("foo").is_none(),
        "unknown fields are pruned"
    );
}

#[test]
fn type_errors_name_the_field() {
    let obj = service(container(json!({"ports": [{"containerPort": "eighty"}]})));
    let msg = reject(Kind::Service, &obj);
    assert!(
        msg.contains("spec.template.spec.containers[0].ports[0].containerPort"),
        "{msg}"
    );
}

/// Admission with these `config-features` flags set.
fn admit_with(flags: &[(&str, &str)], obj: &Value) -> Result<Value, String> {
    let mut ctx = AdmissionContext::default();
    for (k, v) in flags {
        ctx.config.features.set(k, v);
    }
    admit(
        Kind::Service,
        obj,
        None,
        FieldValidation::Strict,
        false,
        &ctx,
    )
    .map(|a| a.object)
    .map_err(|e| e.to_string())
}

#[test]
fn gated_fields_swell_cannot_honour_are_refused_even_when_enabled() {
    for (field, value, flag) in [
        (
            "runtimeClassName",
            json!("gvisor"),
            "kubernetes.podspec-runtimeclassname",
        ),
        ("hostNetwork", json!(true), "kubernetes.podspec-hostnetwork"),
        ("hostPID", json!(true), "kubernetes.podspec-hostpid"),
        ("hostIPC", json!(true), "kubernetes.podspec-hostipc"),
        (
            "nodeSelector",
            json!({"a": "b"}),
            "kubernetes.podspec-nodeselector",
        ),
        (
            "shareProcessNamespace",
            json!(true),
            "kubernetes.podspec-shareprocessnamespace",
        ),
    ] {
        let obj = service(json!({"containers": [{"image": "a"}], field: value}));
        let e = admit_with(&[(flag, "enabled")], &obj).unwrap_err();
        assert!(
            e.contains(&format!(
                "must not set the field(s): spec.template.spec.{field}"
            )) && e.contains("not supported by Swell"),
            "{field}: {e}"
        );
    }
    // What Swell applies goes through once enabled.
    let applied = service(json!({
        "containers": [{"image": "a"}],
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}],
        "dnsConfig": {"nameservers": ["10.0.0.2"]},
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3000]},
    }));
    let flags = [
        ("kubernetes.podspec-hostaliases", "enabled"),
        ("kubernetes.podspec-dnsconfig", "enabled"),
        ("kubernetes.podspec-securitycontext", "enabled"),
    ];
    admit_with(&flags, &applied).unwrap();
    let e = admit_with(&flags[..2], &applied).unwrap_err();
    assert!(
        e.contains("must not set the field(s): spec.template.spec.securityContext"),
        "{e}"
    );
}

#[test]
fn pod_security_contexts_keep_to_knatives_mask() {
    let flags = [("kubernetes.podspec-securitycontext", "enabled")];
    let pod = |sc: Value| service(json!({"containers": [{"image": "a"}], "securityContext": sc}));
    let e = admit_with(
        &flags,
        &pod(json!({"sysctls": [{"name": "a", "value": "b"}]})),
    )
    .unwrap_err();
    assert!(
        e.contains("must not set the field(s): spec.template.spec.securityContext.sysctls"),
        "{e}"
    );
    let e = admit_with(&flags, &pod(json!({"fsGroup": -1}))).unwrap_err();
    assert!(
        e.contains("spec.template.spec.securityContext.fsGroup"),
        "{e}"
    );
    let e = admit_with(
        &flags,
        &pod(json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})),
    )
    .unwrap_err();
    assert!(
        e.contains(
            "invalid value: Localhost: spec.template.spec.securityContext.seccompProfile.type"
        ) && e.contains("not supported by Swell"),
        "{e}"
    );
    let c = service(container(
        json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}}),
    ));
    let e = admit_with(&[], &c).unwrap_err();
    assert!(
        e.contains("spec.template.spec.containers[0].securityContext.seccompProfile.type"),
        "{e}"
    );
}

#[test]
fn secure_pod_defaults_add_only_what_validation_accepts() {
    // A low port gets NET_BIND_SERVICE, which validation then lets through.
    let obj = service(container(json!({"ports": [{"containerPort": 80}]})));
    admit_with(&[("secure-pod-defaults", "enabled")], &obj).unwrap();
    let added = service(container(
        json!({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}}),
    ));
    admit_with(&[("secure-pod-defaults", "AllowRootBounded")], &added).unwrap();
    assert!(admit_with(&[], &added).is_err());
}

/// What no backend can run is refused at admission, field named, even with Knative's
/// flag on: never accepted and then failed at run time.
#[test]
fn what_swell_cannot_run_is_refused_at_admission() {
    let mount = json!([{"name": "v", "mountPath": "/v"}]);
    let pvc = service(json!({
        "containers": [{"image": "a", "volumeMounts": mount}],
        "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}],
    }));
    let e = admit_with(
        &[("kubernetes.podspec-persistent-volume-claim", "enabled")],
        &pvc,
    )
    .unwrap_err();
    assert!(
        e.contains(
            "must not set the field(s): spec.template.spec.volumes[0].persistentVolumeClaim"
        ) && e.contains("not supported by Swell"),
        "{e}"
    );
    let downward = service(json!({
        "containers": [{"image": "a", "volumeMounts": mount}],
        "volumes": [{"name": "v", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}},
            {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        ]}}],
    }));
    let e = admit_with(&[], &downward).unwrap_err();
    assert!(
        e.contains(
            "must not set the field(s): spec.template.spec.volumes[0].projected.sources[1].downwardAPI"
        ),
        "{e}"
    );
    let token_only = service(json!({
        "containers": [{"image": "a", "volumeMounts": mount}],
        "volumes": [{"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
    }));
    admit_with(&[], &token_only).unwrap();

    let flag = [("kubernetes.podspec-fieldref", "enabled")];
    let env = |v: Value| {
        service(json!({"containers": [{"image": "a", "env": [{"name": "X", "valueFrom": v}]}]}))
    };
    admit_with(
        &flag,
        &env(json!({"fieldRef": {"fieldPath": "metadata.name"}})),
    )
    .unwrap();
    let e = admit_with(
        &flag,
        &env(json!({"fieldRef": {"fieldPath": "spec.nodeName"}})),
    )
    .unwrap_err();
    assert!(
        e.contains("invalid value: spec.nodeName: spec.template.spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"),
        "{e}"
    );
    let e = admit_with(
        &flag,
        &env(json!({"resourceFieldRef": {"resource": "limits.cpu"}})),
    )
    .unwrap_err();
    assert!(
        e.contains("must not set the field(s): spec.template.spec.containers[0].env[0].valueFrom.resourceFieldRef"),
        "{e}"
    );
}
