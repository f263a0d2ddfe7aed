//! Decoding of the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`)
//! for the built-in kinds client-go's typed clientsets send that way, for every verb:
//! the objects of create and update (`kubectl create namespace|configmap|secret|…`,
//! `kubectl auth whoami|can-i`, Knative's conformance tests) and the `DeleteOptions` of
//! delete and deletecollection. Only what those objects carry is decoded; other fields
//! are skipped. Field numbers are those of Kubernetes' `generated.proto` files.

use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value, json};

/// The kinds whose protobuf bodies are decoded.
pub const KINDS: &[&str] = &[
    "Namespace",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Event",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "SelfSubjectReview",
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "TokenRequest",
    "TokenReview",
];

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// One decoded protobuf field.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn bad(why: &str) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf body: {why}"))
}

fn varint(buf: &mut &[u8]) -> ApiResult<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or_else(|| bad("truncated varint"))?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad("varint too long"))
}

/// Splits a message into its fields.
fn fields(mut buf: &[u8]) -> ApiResult<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(&mut buf)?),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if buf.len() < n {
                    return Err(bad("truncated fixed-width field"));
                }
                buf = &buf[n..];
                continue;
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| bad("length overflow"))?;
                if buf.len() < len {
                    return Err(bad("truncated field"));
                }
                let (data, rest) = buf.split_at(len);
                buf = rest;
                Field::Bytes(data)
            }
            _ => return Err(bad("unsupported wire type")),
        };
        out.push((number, field));
    }
    Ok(out)
}

fn string(f: &Field<'_>) -> ApiResult<String> {
    match f {
        Field::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8")),
        Field::Varint(_) => Err(bad("expected a string")),
    }
}

fn message<'a>(f: &Field<'a>) -> ApiResult<&'a [u8]> {
    match f {
        Field::Bytes(b) => Ok(b),
        Field::Varint(_) => Err(bad("expected a message")),
    }
}

/// A `map<string, string>` entry (or, with `base64`, `map<string, bytes>` as base64).
fn map_entry(f: &Field<'_>, base64: bool) -> ApiResult<(String, Value)> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, inner) in fields(message(f)?)? {
        match n {
            1 => key = string(&inner)?,
            2 if base64 => value = json!(crate::core::base64_encode(message(&inner)?)),
            2 => value = json!(string(&inner)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_entry(obj: &mut Value, field: &str, f: &Field<'_>, base64: bool) -> ApiResult<()> {
    let (k, v) = map_entry(f, base64)?;
    if !obj.get(field).is_some_and(Value::is_object) {
        obj[field] = json!({});
    }
    obj[field][k] = v;
    Ok(())
}

fn object_meta(buf: &[u8]) -> ApiResult<Value> {
    let mut meta = json!({});
    for (n, f) in fields(buf)? {
        match n {
            1 => meta["name"] = json!(string(&f)?),
            2 => {
                let prefix = string(&f)?;
                if !prefix.is_empty() {
                    meta["generateName"] = json!(prefix);
                }
            }
            3 => meta["namespace"] = json!(string(&f)?),
            5 => meta["uid"] = json!(string(&f)?),
            6 => meta["resourceVersion"] = json!(string(&f)?),
            7 => {
                if let Field::Varint(v) = f {
                    meta["generation"] = json!(v.cast_signed());
                }
            }
            8 => meta["creationTimestamp"] = time(message(&f)?, false)?,
            13 => push(&mut meta, "ownerReferences", owner_reference(message(&f)?)?),
            11 => insert_entry(&mut meta, "labels", &f, false)?,
            12 => insert_entry(&mut meta, "annotations", &f, false)?,
            14 => {
                let list = meta
                    .as_object_mut()
                    .expect("object")
                    .entry("finalizers")
                    .or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(string(&f)?));
                }
            }
            _ => {}
        }
    }
    Ok(meta)
}

/// meta/v1 `OwnerReference`.
fn owner_reference(buf: &[u8]) -> ApiResult<Value> {
    let mut owner = strings(
        buf,
        &[(1, "kind"), (3, "name"), (4, "uid"), (5, "apiVersion")],
    )?;
    for (n, f) in fields(buf)? {
        match (n, f) {
            (6, Field::Varint(v)) => owner["controller"] = json!(v != 0),
            (7, Field::Varint(v)) => owner["blockOwnerDeletion"] = json!(v != 0),
            _ => {}
        }
    }
    Ok(owner)
}

/// meta/v1 `Time` (RFC 3339 in seconds) or `MicroTime` (in microseconds).
fn time(buf: &[u8], micro: bool) -> ApiResult<Value> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    for (n, f) in fields(buf)? {
        match (n, f) {
            (1, Field::Varint(v)) => seconds = v.cast_signed(),
            (2, Field::Varint(v)) => nanos = i32::try_from(v).map_err(|_| bad("bad nanos"))?,
            _ => {}
        }
    }
    let at = jiff::Timestamp::new(seconds, if micro { nanos } else { 0 })
        .map_err(|_| bad("time out of range"))?;
    let text = if micro {
        format!("{}", at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    } else {
        format!("{}", at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    };
    Ok(json!(text))
}

/// core/v1 `Event`, field `n` (metadata excluded).
fn event_field(obj: &mut Value, n: u64, f: &Field<'_>) -> ApiResult<()> {
    const REFERENCE: [(u64, &str); 7] = [
        (1, "kind"),
        (2, "namespace"),
        (3, "name"),
        (4, "uid"),
        (5, "apiVersion"),
        (6, "resourceVersion"),
        (7, "fieldPath"),
    ];
    match (n, f) {
        (2, _) => obj["involvedObject"] = strings(message(f)?, &REFERENCE)?,
        (3, _) => obj["reason"] = json!(string(f)?),
        (4, _) => obj["message"] = json!(string(f)?),
        (5, _) => obj["source"] = strings(message(f)?, &[(1, "component"), (2, "host")])?,
        (6, _) => obj["firstTimestamp"] = time(message(f)?, false)?,
        (7, _) => obj["lastTimestamp"] = time(message(f)?, false)?,
        (8, Field::Varint(v)) => obj["count"] = json!(v),
        (9, _) => obj["type"] = json!(string(f)?),
        (10, _) => obj["eventTime"] = time(message(f)?, true)?,
        (11, _) => {
            let mut series = json!({});
            for (sn, sf) in fields(message(f)?)? {
                match (sn, &sf) {
                    (1, Field::Varint(v)) => series["count"] = json!(v),
                    (2, _) => series["lastObservedTime"] = time(message(&sf)?, true)?,
                    _ => {}
                }
            }
            obj["series"] = series;
        }
        (12, _) => obj["action"] = json!(string(f)?),
        (13, _) => obj["related"] = strings(message(f)?, &REFERENCE)?,
        (14, _) => obj["reportingComponent"] = json!(string(f)?),
        (15, _) => obj["reportingInstance"] = json!(string(f)?),
        _ => {}
    }
    Ok(())
}

/// The runtime.Unknown envelope: the TypeMeta as JSON and the raw message.
fn envelope(body: &[u8]) -> ApiResult<(Map<String, Value>, &[u8])> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf prefix"))?;
    let mut raw: &[u8] = &[];
    let mut type_meta = Map::new();
    for (n, f) in fields(unknown)? {
        match n {
            1 => {
                for (tn, tf) in fields(message(&f)?)? {
                    match tn {
                        1 => type_meta.insert("apiVersion".into(), json!(string(&tf)?)),
                        2 => type_meta.insert("kind".into(), json!(string(&tf)?)),
                        _ => None,
                    };
                }
            }
            2 => raw = message(&f)?,
            _ => {}
        }
    }
    Ok((type_meta, raw))
}

/// Decodes a protobuf meta/v1 `DeleteOptions` body into its JSON form.
pub fn decode_delete_options(body: &[u8]) -> ApiResult<Value> {
    let (type_meta, raw) = envelope(body)?;
    let mut opts = Value::Object(type_meta);
    for (n, f) in fields(raw)? {
        match (n, &f) {
            (1, Field::Varint(v)) => opts["gracePeriodSeconds"] = json!(v.cast_signed()),
            (2, _) => {
                opts["preconditions"] =
                    strings(message(&f)?, &[(1, "uid"), (2, "resourceVersion")])?;
            }
            (3, Field::Varint(v)) => opts["orphanDependents"] = json!(*v != 0),
            (4, _) => opts["propagationPolicy"] = json!(string(&f)?),
            (5, _) => push(&mut opts, "dryRun", json!(string(&f)?)),
            _ => {}
        }
    }
    Ok(opts)
}

/// Decodes a protobuf body of `kind` (one of [`KINDS`]) into JSON.
pub fn decode(body: &[u8], kind: &str) -> ApiResult<Value> {
    let (type_meta, raw) = envelope(body)?;
    let mut obj = Value::Object(type_meta);
    for (n, f) in fields(raw)? {
        match (kind, n) {
            (_, 1) => obj["metadata"] = object_meta(message(&f)?)?,
            ("Event", _) => event_field(&mut obj, n, &f)?,
            ("ConfigMap", 2) => insert_entry(&mut obj, "data", &f, false)?,
            ("ConfigMap", 3) => insert_entry(&mut obj, "binaryData", &f, true)?,
            ("ConfigMap", 4) | ("Secret", 5) => {
                obj["immutable"] = json!(matches!(f, Field::Varint(1)))
            }
            ("Secret", 2) => insert_entry(&mut obj, "data", &f, true)?,
            ("Secret", 3) => obj["type"] = json!(string(&f)?),
            ("Secret", 4) => insert_entry(&mut obj, "stringData", &f, false)?,
            ("ServiceAccount", 3) => {
                push(&mut obj, "imagePullSecrets", local_object_reference(&f)?)
            }
            ("ServiceAccount", 4) => {
                obj["automountServiceAccountToken"] = json!(matches!(f, Field::Varint(1)))
            }
            ("Role" | "ClusterRole", 2) => push(&mut obj, "rules", policy_rule(message(&f)?)?),
            ("ClusterRole", 3) => obj["aggregationRule"] = aggregation_rule(message(&f)?)?,
            ("RoleBinding" | "ClusterRoleBinding", 2) => {
                push(&mut obj, "subjects", subject(message(&f)?)?)
            }
            ("RoleBinding" | "ClusterRoleBinding", 3) => obj["roleRef"] = role_ref(message(&f)?)?,
            ("SelfSubjectAccessReview", 2) => obj["spec"] = access_review_spec(message(&f)?)?,
            ("TokenRequest", 2) => obj["spec"] = token_request_spec(message(&f)?)?,
            ("TokenReview", 2) => {
                let mut spec = json!({});
                for (sn, sf) in fields(message(&f)?)? {
                    match sn {
                        1 => spec["token"] = json!(string(&sf)?),
                        2 => push(&mut spec, "audiences", json!(string(&sf)?)),
                        _ => {}
                    }
                }
                obj["spec"] = spec;
            }
            ("SelfSubjectRulesReview", 2) => {
                obj["spec"] = strings(message(&f)?, &[(1, "namespace")])?
            }
            ("Namespace", 2) => {
                let mut finalizers = Vec::new();
                for (sn, sf) in fields(message(&f)?)? {
                    if sn == 1 {
                        finalizers.push(json!(string(&sf)?));
                    }
                }
                obj["spec"] = json!({"finalizers": finalizers});
            }
            _ => {}
        }
    }
    Ok(obj)
}

/// Appends `item` to the array `obj[field]`.
fn push(obj: &mut Value, field: &str, item: Value) {
    if !obj.get(field).is_some_and(Value::is_array) {
        obj[field] = json!([]);
    }
    if let Some(list) = obj[field].as_array_mut() {
        list.push(item);
    }
}

/// A message of string fields: `(number, name)` pairs; others skipped.
fn strings(buf: &[u8], names: &[(u64, &str)]) -> ApiResult<Value> {
    let mut out = json!({});
    for (n, f) in fields(buf)? {
        if let Some((_, name)) = names.iter().find(|(number, _)| *number == n) {
            // Go writes unset optional strings as empty ones.
            let value = string(&f)?;
            if !value.is_empty() {
                out[*name] = json!(value);
            }
        }
    }
    Ok(out)
}

fn local_object_reference(f: &Field<'_>) -> ApiResult<Value> {
    strings(message(f)?, &[(1, "name")])
}

/// rbac/v1 `PolicyRule`: every field a repeated string.
fn policy_rule(buf: &[u8]) -> ApiResult<Value> {
    const NAMES: [(u64, &str); 5] = [
        (1, "verbs"),
        (2, "apiGroups"),
        (3, "resources"),
        (4, "resourceNames"),
        (5, "nonResourceURLs"),
    ];
    let mut rule = json!({"verbs": []});
    for (n, f) in fields(buf)? {
        if let Some((_, name)) = NAMES.iter().find(|(number, _)| *number == n) {
            push(&mut rule, name, json!(string(&f)?));
        }
    }
    Ok(rule)
}

/// rbac/v1 `AggregationRule`: label selectors.
fn aggregation_rule(buf: &[u8]) -> ApiResult<Value> {
    let mut rule = json!({"clusterRoleSelectors": []});
    for (n, f) in fields(buf)? {
        if n == 1 {
            push(
                &mut rule,
                "clusterRoleSelectors",
                label_selector(message(&f)?)?,
            );
        }
    }
    Ok(rule)
}

fn label_selector(buf: &[u8]) -> ApiResult<Value> {
    let mut selector = json!({});
    for (n, f) in fields(buf)? {
        match n {
            1 => insert_entry(&mut selector, "matchLabels", &f, false)?,
            2 => {
                let mut req = json!({"values": []});
                for (rn, rf) in fields(message(&f)?)? {
                    match rn {
                        1 => req["key"] = json!(string(&rf)?),
                        2 => req["operator"] = json!(string(&rf)?),
                        3 => push(&mut req, "values", json!(string(&rf)?)),
                        _ => {}
                    }
                }
                push(&mut selector, "matchExpressions", req);
            }
            _ => {}
        }
    }
    Ok(selector)
}

fn subject(buf: &[u8]) -> ApiResult<Value> {
    strings(
        buf,
        &[(1, "kind"), (2, "apiGroup"), (3, "name"), (4, "namespace")],
    )
}

fn role_ref(buf: &[u8]) -> ApiResult<Value> {
    strings(buf, &[(1, "apiGroup"), (2, "kind"), (3, "name")])
}

/// authentication/v1 `TokenRequestSpec`.
fn token_request_spec(buf: &[u8]) -> ApiResult<Value> {
    let mut spec = json!({});
    for (n, f) in fields(buf)? {
        match (n, &f) {
            (1, _) => push(&mut spec, "audiences", json!(string(&f)?)),
            (3, _) => {
                spec["boundObjectRef"] = strings(
                    message(&f)?,
                    &[(1, "kind"), (2, "apiVersion"), (3, "name"), (4, "uid")],
                )?;
            }
            (4, Field::Varint(v)) => spec["expirationSeconds"] = json!(v),
            _ => {}
        }
    }
    Ok(spec)
}

/// authorization/v1 `SelfSubjectAccessReviewSpec`.
fn access_review_spec(buf: &[u8]) -> ApiResult<Value> {
    let mut spec = json!({});
    for (n, f) in fields(buf)? {
        match n {
            1 => {
                spec["resourceAttributes"] = strings(
                    message(&f)?,
                    &[
                        (1, "namespace"),
                        (2, "verb"),
                        (3, "group"),
                        (4, "version"),
                        (5, "resource"),
                        (6, "subresource"),
                        (7, "name"),
                    ],
                )?;
            }
            2 => {
                spec["nonResourceAttributes"] = strings(message(&f)?, &[(1, "path"), (2, "verb")])?
            }
            _ => {}
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, u8::try_from(data.len()).unwrap()];
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn decodes_a_configmap() {
        let meta = [
            ld(1, b"settings"),
            ld(3, b"team"),
            ld(11, &[ld(1, b"app"), ld(2, b"web")].concat()),
        ]
        .concat();
        let cm = [
            ld(1, &meta),
            ld(2, &[ld(1, b"level"), ld(2, b"debug")].concat()),
            ld(3, &[ld(1, b"bin"), ld(2, b"\x00\x01")].concat()),
        ]
        .concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), ld(1, &type_meta), ld(2, &cm)].concat();
        let obj = decode(&body, "ConfigMap").unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "settings", "namespace": "team", "labels": {"app": "web"}},
                   "data": {"level": "debug"}, "binaryData": {"bin": "AAE="}})
        );
    }

    #[test]
    fn decodes_delete_options() {
        let pre = [ld(1, b"u-1"), ld(2, b"42")].concat();
        let opts = [
            vec![1 << 3, 5],
            ld(2, &pre),
            ld(4, b"Foreground"),
            ld(5, b"All"),
        ]
        .concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"DeleteOptions")].concat();
        let body = [MAGIC.to_vec(), ld(1, &type_meta), ld(2, &opts)].concat();
        assert_eq!(
            decode_delete_options(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 5,
                   "preconditions": {"uid": "u-1", "resourceVersion": "42"},
                   "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
    }

    #[test]
    fn truncated_bodies_are_refused() {
        assert!(decode(b"k8s\0\x0a\x05ab", "ConfigMap").is_err());
        assert!(decode(b"nope", "ConfigMap").is_err());
    }
}
