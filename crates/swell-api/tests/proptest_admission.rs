//! Random bodies never panic admission, and whatever it accepts re-admits unchanged.

use proptest::prelude::*;
use serde_json::{Value, json};
use swell_api::admission::{AdmissionContext, FieldValidation, Kind, admit};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9:/._-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let keys = prop_oneof![
            Just("metadata".to_string()),
            Just("spec".to_string()),
            Just("template".to_string()),
            Just("containers".to_string()),
            Just("image".to_string()),
            Just("ports".to_string()),
            Just("containerPort".to_string()),
            Just("traffic".to_string()),
            Just("percent".to_string()),
            Just("name".to_string()),
            Just("env".to_string()),
            Just("annotations".to_string()),
            "[a-zA-Z]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn admission_never_panics_and_is_idempotent(body in json_value(), kind in 0usize..5) {
        let kind = [Kind::Service, Kind::Configuration, Kind::Revision, Kind::Route, Kind::DomainMapping][kind];
        let ctx = AdmissionContext::default();
        if let Ok(first) = admit(kind, &body, None, FieldValidation::Warn, false, &ctx) {
            let again = admit(kind, &first.object, None, FieldValidation::Strict, false, &ctx)
                .expect("an admitted object is admitted again");
            prop_assert_eq!(first.object, again.object);
        }
    }

    #[test]
    fn mutated_services_never_panic(port in any::<i32>(), percent in any::<i64>(), name in "\\PC{0,20}") {
        let obj = json!({"metadata": {"name": name}, "spec": {
            "template": {"spec": {"containers": [{"image": "x", "ports": [{"containerPort": port}]}]}},
            "traffic": [{"percent": percent, "latestRevision": true}]}});
        let _ = admit(Kind::Service, &obj, None, FieldValidation::Strict, false, &AdmissionContext::default());
    }
}
