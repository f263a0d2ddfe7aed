//! Knative's own sample manifests load unchanged: every field they set survives
//! admission with the same value, and defaulting only adds.

use serde_json::Value;
use swell_api::admission::{AdmissionContext, FieldValidation, Kind, admit};

fn kind_of(obj: &Value) -> Kind {
    let plural = match obj["kind"].as_str().unwrap() {
        "Service" => "services",
        "Configuration" => "configurations",
        "Revision" => "revisions",
        "Route" => "routes",
        "DomainMapping" => "domainmappings",
        other => panic!("unexpected kind {other}"),
    };
    Kind::from_plural(plural).unwrap()
}

/// Asserts that every leaf of `expected` is in `actual` at the same path.
fn assert_contains(path: &str, expected: &Value, actual: &Value) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let got = a.get(k).unwrap_or_else(|| panic!("{path}.{k} was dropped"));
                assert_contains(&format!("{path}.{k}"), v, got);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: list length changed");
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_contains(&format!("{path}[{i}]"), ev, av);
            }
        }
        _ => assert_eq!(expected, actual, "{path} changed"),
    }
}

#[test]
fn knative_samples_load_unchanged() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/samples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let obj: Value = serde_saphyr::from_str(&text).unwrap();
        let admitted = admit(
            kind_of(&obj),
            &obj,
            None,
            FieldValidation::Strict,
            false,
            &AdmissionContext::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            admitted.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            admitted.warnings
        );
        // The webhook records the requesting user on create, whatever the manifest says.
        let mut expected = obj.clone();
        if let Some(ann) = expected
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            ann.remove("serving.knative.dev/creator");
            ann.remove("serving.knative.dev/lastModifier");
        }
        assert_contains(&path.display().to_string(), &expected, &admitted.object);
        seen += 1;
    }
    assert!(seen >= 8, "expected the sample manifests, found {seen}");
}

#[test]
fn defaults_match_knative() {
    let obj: Value = serde_saphyr::from_str(include_str!("samples/helloworld-go.yaml")).unwrap();
    let out = admit(
        Kind::Service,
        &obj,
        None,
        FieldValidation::Strict,
        false,
        &AdmissionContext::default(),
    )
    .unwrap()
    .object;
    let spec = &out["spec"]["template"]["spec"];
    assert_eq!(spec["timeoutSeconds"], 300);
    assert_eq!(spec["containerConcurrency"], 0);
    assert_eq!(spec["enableServiceLinks"], false);
    // The template's lists stay as written; the Revision stamped from it gets them.
    assert_eq!(
        spec["containers"],
        obj["spec"]["template"]["spec"]["containers"]
    );
    let rev = serde_json::json!({"apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": "helloworld-go-00001"}, "spec": obj["spec"]["template"]["spec"]});
    let rev = admit(
        Kind::Revision,
        &rev,
        None,
        FieldValidation::Strict,
        false,
        &AdmissionContext::default(),
    )
    .unwrap()
    .object;
    let c = &rev["spec"]["containers"][0];
    assert_eq!(c["name"], "user-container");
    assert_eq!(c["resources"], serde_json::json!({}));
    assert_eq!(
        c["readinessProbe"],
        serde_json::json!({"successThreshold": 1, "tcpSocket": {"port": 0}})
    );
    assert_eq!(
        out["spec"]["traffic"],
        serde_json::json!([{"latestRevision": true, "percent": 100}])
    );
    let ann = &out["metadata"]["annotations"];
    assert_eq!(ann["serving.knative.dev/creator"], "swell-admin");
    assert_eq!(ann["serving.knative.dev/lastModifier"], "swell-admin");
}
