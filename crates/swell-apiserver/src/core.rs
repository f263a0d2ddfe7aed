//! Admission for the core `v1` kinds Swell serves (Namespace, ConfigMap, Secret, Event,
//! ServiceAccount, Service)
//! and the metadata rules every kind shares.

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;
use crate::selector::{valid_label_key, valid_label_value};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::{Value, json};
use swell_api::admission::{AdmissionError, FieldValidation, decode_known};
use swell_api::names::{is_dns1123_label, is_dns1123_subdomain};

/// Largest total size of an object's annotations (Kubernetes' limit).
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Labels and annotations must have valid keys (and label values valid values).
pub fn validate_metadata(res: &ResourceDef, name: &str, obj: &Value) -> ApiResult<()> {
    let mut causes = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !valid_label_key(k) {
                causes.push(("metadata.labels".to_string(), format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
            }
            match v.as_str() {
                Some(s) if valid_label_value(s) => {}
                _ => causes.push(("metadata.labels".to_string(), format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))),
            }
        }
    }
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in ann {
            total += k.len() + v.as_str().map_or(0, str::len);
            if !valid_label_key(k)
                && !k
                    .split_once('/')
                    .is_some_and(|(p, n)| is_dns1123_subdomain(p) && !n.is_empty() && n.len() <= 63)
            {
                causes.push((
                    "metadata.annotations".into(),
                    format!("Invalid value: {k:?}: invalid annotation key"),
                ));
            }
        }
        if total > MAX_ANNOTATIONS_BYTES {
            causes.push((
                "metadata.annotations".into(),
                format!("Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"),
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(res, name, causes))
    }
}

/// Turns an admission failure into the API error kubectl expects.
pub fn admission_error(res: &ResourceDef, name: &str, err: AdmissionError) -> ApiError {
    match err {
        AdmissionError::Decode(m) => ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {m}",
            res.kind, res.version, res.kind
        )),
        e @ AdmissionError::UnknownFields(_) => ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {e}",
            res.kind, res.version, res.kind
        )),
        AdmissionError::Invalid(errs) => {
            // Knative's kinds are refused as Knative's validating webhook refuses them:
            // its `FieldError` text (`VALUE: PATH`, details on the next line) behind
            // kube-apiserver's webhook prefix. Causes name each field either way.
            let webhook = res.admission.is_some().then(|| {
                format!(
                    "admission webhook \"validation.webhook.serving.knative.dev\" denied the \
                     request: validation failed: {errs}"
                )
            });
            let mut causes = Vec::new();
            for e in errs.0 {
                let message = match &e.details {
                    Some(d) => format!("{}: {d}", e.message),
                    None => e.message.clone(),
                };
                for p in e.paths {
                    causes.push((p, message.clone()));
                }
            }
            causes.sort();
            causes.dedup();
            let mut err = ApiError::invalid(res, name, causes);
            if let Some(message) = webhook {
                err.message = message;
            }
            err
        }
    }
}

/// Admits a core object: decodes it as the Kubernetes type (pruning unknown fields),
/// validates its name and fills defaults. Returns the object and any warnings.
pub fn admit_core(
    res: &ResourceDef,
    name: &str,
    obj: &Value,
    old: Option<&Value>,
    fv: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    if res.plural == "pods" {
        return Err(crate::pods::read_only(name));
    }
    let mut obj = obj.clone();
    if res.plural == "secrets" {
        merge_string_data(&mut obj);
    }
    let decoded = match res.plural {
        "namespaces" => decode_known::<Namespace>(&obj),
        "configmaps" => decode_known::<ConfigMap>(&obj),
        "secrets" => decode_known::<Secret>(&obj),
        "events" => decode_known::<Event>(&obj),
        "serviceaccounts" => decode_known::<ServiceAccount>(&obj),
        "services" => decode_known::<k8s_openapi::api::core::v1::Service>(&obj),
        "roles" => decode_known::<Role>(&obj),
        "clusterroles" => decode_known::<ClusterRole>(&obj),
        "rolebindings" => decode_known::<RoleBinding>(&obj),
        "clusterrolebindings" => decode_known::<ClusterRoleBinding>(&obj),
        _ => {
            return Err(ApiError::internal(format!(
                "no admission for {}",
                res.plural
            )));
        }
    };
    let (mut out, unknown) = decoded.map_err(|e| admission_error(res, name, e))?;
    let warnings = match fv {
        FieldValidation::Strict if !unknown.is_empty() => {
            return Err(admission_error(
                res,
                name,
                AdmissionError::UnknownFields(unknown),
            ));
        }
        FieldValidation::Warn => unknown
            .iter()
            .map(|p| format!("unknown field {p:?}"))
            .collect(),
        _ => Vec::new(),
    };
    if res.group == crate::rbac::GROUP {
        crate::rbac::set_defaults(res.kind, &mut out);
    }
    // RBAC names are path segments (`system:aggregate-to-admin`); the RBAC rules check them.
    let name_ok = if res.group == crate::rbac::GROUP {
        true
    } else if res.plural == "namespaces" {
        is_dns1123_label(name)
    } else {
        is_dns1123_subdomain(name)
    };
    if !name_ok {
        return Err(ApiError::invalid(
            res,
            name,
            vec![(
                "metadata.name".into(),
                format!(
                    "Invalid value: {name:?}: a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-' or '.'",
                    if res.plural == "namespaces" {
                        "label"
                    } else {
                        "subdomain"
                    }
                ),
            )],
        ));
    }
    if res.plural == "configmaps"
        && out.pointer("/metadata/namespace").and_then(Value::as_str)
            == Some(swell_api::config::NAMESPACE)
        && swell_api::config::MAPS.contains(&name)
    {
        let data: std::collections::BTreeMap<String, String> =
            serde_json::from_value(out.get("data").cloned().unwrap_or(json!({})))
                .unwrap_or_default();
        if let Err(errs) = swell_api::config::validate(name, &data) {
            return Err(admission_error(res, name, AdmissionError::Invalid(errs)));
        }
    }
    if res.group == crate::rbac::GROUP {
        let mut causes = crate::rbac::validate(res.kind, &out);
        if let Some(old) = old {
            causes.extend(crate::rbac::validate_update(res.kind, old, &out));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(res, name, causes));
        }
    }
    if res.plural == "namespaces" {
        out["status"] = json!({"phase": "Active"});
    }
    if res.plural == "secrets" && out.get("type").is_none() {
        out["type"] = json!("Opaque");
    }
    if let Some(old) = old
        && old.get("immutable") == Some(&json!(true))
        && (old.get("data") != out.get("data")
            || old.get("binaryData") != out.get("binaryData")
            || out.get("immutable") != Some(&json!(true)))
    {
        return Err(ApiError::invalid(
            res,
            name,
            vec![(
                "data".into(),
                "Forbidden: field is immutable when `immutable` is set".into(),
            )],
        ));
    }
    Ok((out, warnings))
}

/// A Secret's `stringData` is write-only: it is merged into `data`, base64-encoded.
fn merge_string_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            if let Some(s) = v.as_str() {
                data.insert(k, json!(base64_encode(s.as_bytes())));
            }
        }
    }
}

/// Standard base64 with padding.
pub(crate) fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
    }
}
