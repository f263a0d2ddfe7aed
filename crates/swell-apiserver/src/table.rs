//! Server-side printing: `meta.k8s.io/v1` Tables built from Knative's printer columns
//! (and kubectl's usual columns for the core kinds).

use crate::registry::ResourceDef;
use serde_json::{Value, json};

/// What a Table row carries as its `object` (`includeObject`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// Only metadata (`PartialObjectMetadata`), the default.
    #[default]
    Metadata,
    /// The whole object.
    Object,
    /// Nothing.
    None,
}

impl IncludeObject {
    /// Parses the query parameter.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Object") => Self::Object,
            Some("None") => Self::None,
            _ => Self::Metadata,
        }
    }
}

/// Evaluates the JSONPath forms CRD printer columns use: `.a.b`, `.a['k\.x']`,
/// `.a[?(@.type=='Ready')].b`.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("[?(@.") {
            let end = r.find(")]")?;
            let (field, want) = r[..end].split_once("==")?;
            let want = want.trim_matches(['\'', '"']);
            cur = cur
                .as_array()?
                .iter()
                .find(|item| item.get(field).and_then(Value::as_str) == Some(want))?;
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            cur = cur.get(r[..end].replace("\\.", "."))?;
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else {
            return None;
        }
    }
    Some(cur)
}

/// Kubernetes' `HumanDuration` of the time since an RFC 3339 timestamp.
pub fn age(timestamp: Option<&str>) -> String {
    let Some(ts) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = jiff::Timestamp::now().as_second() - ts.as_second();
    human_duration(secs)
}

/// Formats a number of seconds the way kubectl's AGE column does.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

fn column(name: &str, type_: &str, format: &str, description: &str) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": 0})
}

fn name_column() -> Value {
    column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    )
}

/// The column definitions of a resource.
pub fn columns(res: &ResourceDef) -> Vec<Value> {
    let age = column(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match (res.columns, res.plural) {
        (Some(cols), _) => std::iter::once(name_column())
            .chain(
                cols.iter()
                    .map(|c| column(c.name, c.type_, "", "Custom resource definition column")),
            )
            .collect(),
        (None, "pods") => crate::pods::columns(),
        (None, "namespaces") => vec![
            name_column(),
            column("Status", "string", "", "The status of the namespace"),
            age,
        ],
        (None, "configmaps") => vec![
            name_column(),
            column("Data", "string", "", "Data contains the configuration data"),
            age,
        ],
        (None, "secrets") => vec![
            name_column(),
            column("Type", "string", "", "The type of secret"),
            column("Data", "string", "", "Data contains the secret data"),
            age,
        ],
        (None, "services") => vec![
            name_column(),
            column("Type", "string", "", "The type of the service"),
            column("Cluster-IP", "string", "", "The cluster IP of the service"),
            column(
                "External-IP",
                "string",
                "",
                "The external IP of the service",
            ),
            column("Port(s)", "string", "", "The ports of the service"),
            age.clone(),
        ],
        (None, "events") => vec![
            column(
                "Last Seen",
                "string",
                "",
                "Time when this event was last observed",
            ),
            column("Type", "string", "", "Type of this event"),
            column("Reason", "string", "", "Why the action was taken"),
            column("Object", "string", "", "The object this event is about"),
            column(
                "Message",
                "string",
                "",
                "A human-readable description of the status of this operation",
            ),
        ],
        _ => vec![name_column(), age],
    }
}

fn count(v: Option<&Value>) -> usize {
    v.and_then(Value::as_object).map_or(0, serde_json::Map::len)
}

fn cells(res: &ResourceDef, obj: &Value) -> Vec<Value> {
    let name = obj
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let created = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    match (res.columns, res.plural) {
        (Some(cols), _) => std::iter::once(name)
            .chain(cols.iter().map(|c| match json_path(obj, c.json_path) {
                Some(v) if c.type_ == "integer" => v.clone(),
                Some(Value::String(s)) => json!(s),
                Some(Value::Null) | None => {
                    if c.type_ == "integer" {
                        Value::Null
                    } else {
                        json!("")
                    }
                }
                Some(other) => json!(other.to_string()),
            }))
            .collect(),
        (None, "pods") => crate::pods::cells(obj),
        (None, "namespaces") => vec![
            name,
            obj.pointer("/status/phase")
                .cloned()
                .unwrap_or(json!("Active")),
            json!(age(created)),
        ],
        (None, "configmaps") => {
            let n = count(obj.get("data")) + count(obj.get("binaryData"));
            vec![name, json!(n), json!(age(created))]
        }
        (None, "secrets") => vec![
            name,
            obj.get("type").cloned().unwrap_or(json!("Opaque")),
            json!(count(obj.get("data"))),
            json!(age(created)),
        ],
        (None, "services") => {
            let mut row = vec![name];
            row.extend(service_cells(obj));
            row.push(json!(age(created)));
            row
        }
        (None, "events") => {
            let last = obj
                .get("lastTimestamp")
                .or_else(|| obj.get("eventTime"))
                .and_then(Value::as_str)
                .or(created);
            let involved = &obj["involvedObject"];
            let object = format!(
                "{}/{}",
                involved["kind"].as_str().unwrap_or("").to_lowercase(),
                involved["name"].as_str().unwrap_or("")
            );
            vec![
                json!(age(last)),
                obj["type"].clone(),
                obj["reason"].clone(),
                json!(object),
                obj["message"].clone(),
            ]
        }
        _ => vec![name, json!(age(created))],
    }
}

/// kubectl's TYPE, CLUSTER-IP, EXTERNAL-IP and PORT(S) of a core Service.
fn service_cells(obj: &Value) -> Vec<Value> {
    let spec = &obj["spec"];
    let type_ = spec["type"].as_str().unwrap_or("ClusterIP");
    let cluster_ip = spec["clusterIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let lb: Vec<&str> = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
        .collect();
    let external = match type_ {
        "ExternalName" => spec["externalName"]
            .as_str()
            .unwrap_or("<none>")
            .to_string(),
        "LoadBalancer" if lb.is_empty() => "<pending>".to_string(),
        "LoadBalancer" => lb.join(","),
        _ => "<none>".to_string(),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(node) => format!("{}:{node}/{protocol}", p["port"]),
                None => format!("{}/{protocol}", p["port"]),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        json!(type_),
        json!(cluster_ip),
        json!(external),
        json!(ports),
    ]
}

fn row(res: &ResourceDef, obj: &Value, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells(res, obj)});
    match include {
        IncludeObject::Metadata => {
            let mut meta = obj.get("metadata").cloned().unwrap_or(json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.remove("managedFields");
            }
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta});
        }
        IncludeObject::Object => r["object"] = obj.clone(),
        IncludeObject::None => {}
    }
    r
}

/// A Table of `items`.
pub fn table(
    res: &ResourceDef,
    items: &[Value],
    list_meta: Value,
    include: IncludeObject,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(res),
        "rows": items.iter().map(|o| row(res, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_of_knative_columns() {
        let obj = json!({
            "metadata": {"labels": {"serving.knative.dev/configuration": "hello"}},
            "status": {"url": "http://x", "conditions": [{"type": "Active", "status": "False"}, {"type": "Ready", "status": "True", "reason": "R"}]}
        });
        assert_eq!(json_path(&obj, ".status.url"), Some(&json!("http://x")));
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type=='Ready')].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type=='Ready')].reason"),
            Some(&json!("R"))
        );
        assert_eq!(
            json_path(
                &obj,
                ".metadata.labels['serving\\.knative\\.dev/configuration']"
            ),
            Some(&json!("hello"))
        );
        assert_eq!(json_path(&obj, ".status.missing"), None);
    }

    #[test]
    fn ages_like_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (100 * 86400, "100d"),
        ] {
            assert_eq!(human_duration(s), want);
        }
    }
}
