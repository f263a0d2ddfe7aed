//! Discovery: `/version`, `/api`, `/apis` (plain and aggregated v2/v2beta1) and the
//! per-group-version resource lists kubectl resolves `ksvc`, `rev`, … with.

use crate::registry::{Registry, ResourceDef};
use serde_json::{Value, json};

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "swell",
        "gitTreeState": "clean", "buildDate": "2026-11-22T00:00:00Z", "goVersion": "rust",
        "compiler": "rustc", "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
        "swellVersion": env!("CARGO_PKG_VERSION"),
    })
}

/// The aggregated discovery version the client asked for in `Accept`, if any.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    accept
        .split(',')
        .filter(|part| {
            part.contains("as=APIGroupDiscoveryList") && part.contains("g=apidiscovery.k8s.io")
        })
        .find_map(|part| {
            if part.contains("v=v2beta1") {
                Some("v2beta1")
            } else if part.contains("v=v2") {
                Some("v2")
            } else {
                None
            }
        })
}

/// Content type of an aggregated discovery answer.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// `/api` as `APIVersions`.
pub fn core_versions(server_addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_addr}]})
}

fn group_json(registry: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = registry
        .versions(group)
        .into_iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis` as `APIGroupList`.
pub fn group_list(registry: &Registry) -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": registry.groups().into_iter().map(|g| group_json(registry, g)).collect::<Vec<_>>()})
}

/// `/apis/<group>` as `APIGroup`.
pub fn group(registry: &Registry, group: &str) -> Option<Value> {
    if registry.versions(group).is_empty() || group.is_empty() {
        return None;
    }
    let mut g = group_json(registry, group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>` as `APIResourceList`.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in registry.in_group_version(group, version) {
        let mut entry = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        if r.status_subresource {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.plural == "pods" {
            resources.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_resource(r: &ResourceDef) -> Value {
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut entry = json!({
        "resource": r.plural, "responseKind": kind, "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular, "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if r.status_subresource {
        entry["subresources"] = json!([{"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}]);
    }
    if r.plural == "pods" {
        entry["subresources"] =
            json!([{"subresource": "log", "responseKind": kind, "verbs": ["get"]}]);
    }
    entry
}

/// `/api` (core) or `/apis` as an aggregated `APIGroupDiscoveryList`.
pub fn aggregated(registry: &Registry, core: bool, version: &str) -> Value {
    let groups: Vec<&str> = if core { vec![""] } else { registry.groups() };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let versions: Vec<Value> = registry
                .versions(g)
                .into_iter()
                .map(|v| json!({"version": v, "resources": registry.in_group_version(g, v).map(aggregated_resource).collect::<Vec<_>>(), "freshness": "Current"}))
                .collect();
            let metadata = if g.is_empty() { json!({"creationTimestamp": null}) } else { json!({"name": g, "creationTimestamp": null}) };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items})
}
