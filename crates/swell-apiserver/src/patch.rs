//! Patch helpers: strategic merge for the core kinds and server-side apply's
//! `managedFields` entry.

use serde_json::{Map, Value, json};

/// Strategic merge patch as far as the core kinds Swell serves need it: a JSON merge
/// patch whose `$patch`/`$retainKeys`/`$setElementOrder` directives are dropped.
pub fn merge_strategic(target: &mut Value, patch: &Value) {
    json_patch::merge(target, &strip_directives(patch));
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$') && !k.starts_with("$setElementOrder"))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The `managedFields` entry recording what an apply by `manager` set.
pub fn apply_fields(manager: &str, api_version: &str, applied: &Value) -> Value {
    json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(applied, true),
    })
}

/// The `FieldsV1` set of an object: `{"f:spec": {"f:template": {…}}}`. Lists are owned
/// whole.
fn fields_v1(v: &Value, top: bool) -> Value {
    let Value::Object(map) = v else {
        return json!({});
    };
    let mut out = Map::new();
    for (k, child) in map {
        if top && (k == "apiVersion" || k == "kind") {
            continue;
        }
        if top && k == "metadata" {
            let mut meta = Map::new();
            for (mk, mv) in child.as_object().into_iter().flatten() {
                if matches!(mk.as_str(), "labels" | "annotations") {
                    meta.insert(format!("f:{mk}"), fields_v1(mv, false));
                }
            }
            if !meta.is_empty() {
                out.insert("f:metadata".into(), Value::Object(meta));
            }
            continue;
        }
        let inner = if child.is_object() {
            fields_v1(child, false)
        } else {
            json!({})
        };
        out.insert(format!("f:{k}"), inner);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_an_applied_service() {
        let applied = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"template": {"spec": {"containers": [{}]}}}});
        assert_eq!(
            fields_v1(&applied, true),
            json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}})
        );
    }

    #[test]
    fn strategic_directives_are_ignored() {
        let mut t = json!({"data": {"a": "1"}});
        merge_strategic(
            &mut t,
            &json!({"data": {"b": "2"}, "$retainKeys": ["data"]}),
        );
        assert_eq!(t, json!({"data": {"a": "1", "b": "2"}}));
    }
}
