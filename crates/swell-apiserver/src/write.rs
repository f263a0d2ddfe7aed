//! Writes: create, update, patch (merge, JSON, server-side apply), delete and
//! deletecollection — each through admission, then the store.

use crate::ApiState;
use crate::core::{admission_error, admit_core, validate_metadata};
use crate::error::{ApiError, ApiResult};
use crate::patch::{apply_fields, merge_strategic};
use crate::request::{Params, Target, content_type, decode_object, json_response};
use crate::selector::{FieldSelector, LabelSelector};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use swell_api::admission::FieldValidation;
use swell_store::{
    DeleteOptions, Deleted, ListScope, ObjectKey, Propagation, StoreError, WriteOptions,
};

/// How many times a patch is retried when the object changes under it.
const PATCH_RETRIES: usize = 8;

fn key(t: &Target<'_>, name: &str) -> ObjectKey {
    ObjectKey::new(
        t.res.group,
        t.res.plural,
        t.namespace.as_deref().unwrap_or(""),
        name,
    )
}

fn write_opts(t: &Target<'_>, dry_run: bool) -> WriteOptions {
    WriteOptions {
        dry_run,
        track_generation: t.res.status_subresource,
    }
}

/// Checks `apiVersion`/`kind`/namespace/name in the body against the URL and fills them.
fn reconcile_identity(t: &Target<'_>, obj: &mut Value, url_name: Option<&str>) -> ApiResult<()> {
    let api_version = t.res.api_version();
    if let Some(v) = obj.get("apiVersion").and_then(Value::as_str)
        && v != api_version
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({api_version})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != t.res.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            t.res.kind
        )));
    }
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(t.res.kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    match (&t.namespace, meta.get("namespace").and_then(Value::as_str)) {
        (Some(url), Some(body)) if !body.is_empty() && body != url => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (Some(url), _) => meta["namespace"] = json!(url),
        (None, _) => {}
    }
    if let Some(url_name) = url_name {
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != url_name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )));
            }
            _ => meta["name"] = json!(url_name),
        }
    }
    Ok(())
}

/// Runs the kind's admission (Knative webhooks or core rules) and the shared metadata
/// rules; returns the object to store and the warnings.
fn admit(
    state: &ApiState,
    t: &Target<'_>,
    name: &str,
    obj: &Value,
    old: Option<&Value>,
    fv: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    let (mut out, warnings) = match t.res.admission {
        Some(kind) => {
            let ctx = state.admission_context();
            let admitted = swell_api::admit(kind, obj, old, fv, t.status, &ctx)
                .map_err(|e| admission_error(t.res, name, e))?;
            (admitted.object, admitted.warnings)
        }
        None => admit_core(t.res, name, obj, old, fv)?,
    };
    out["apiVersion"] = json!(t.res.api_version());
    out["kind"] = json!(t.res.kind);
    validate_metadata(t.res, name, &out)?;
    crate::auth::escalation::check(state, t, name, &out)?;
    Ok((out, warnings))
}

/// Applies status-subresource rules: writes to the main resource keep the stored status;
/// writes to `/status` keep everything but the status.
fn split_status(t: &Target<'_>, new: Value, old: &Value) -> Value {
    if !t.res.status_subresource && t.res.plural != "namespaces" {
        return new;
    }
    if t.status {
        let mut out = old.clone();
        match new.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                out.as_object_mut().map(|m| m.remove("status"));
            }
        }
        if let Some(rv) = new.pointer("/metadata/resourceVersion") {
            out["metadata"]["resourceVersion"] = rv.clone();
        }
        out
    } else {
        let mut out = new;
        match old.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                out.as_object_mut().map(|m| m.remove("status"));
            }
        }
        out
    }
}

fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let suffix: String = bytes
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

fn namespace_exists(state: &ApiState, t: &Target<'_>) -> ApiResult<()> {
    let Some(ns) = t.namespace.as_deref() else {
        return Ok(());
    };
    let key = ObjectKey::new("", "namespaces", "", ns);
    match state.store.get(&key) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::not_found_named(
            "namespaces",
            "",
            "namespaces",
            ns,
        )),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// Reads the object a write is aimed at.
fn fetch(
    state: &ApiState,
    t: &Target<'_>,
    key: &ObjectKey,
    name: &str,
) -> ApiResult<Option<Value>> {
    state
        .store
        .get(key)
        .map_err(|e| ApiError::from_store(e, t.res, name))
}

/// Admits and stores a new object named `name` (a status in the body is dropped for
/// kinds with a status subresource). `Ok(None)` when the name is taken.
async fn create_new(
    state: &ApiState,
    t: &Target<'_>,
    name: &str,
    obj: &Value,
    fv: FieldValidation,
    dry_run: bool,
) -> ApiResult<Option<(Value, Vec<String>)>> {
    let mut obj = obj.clone();
    obj["metadata"]["name"] = json!(name);
    if t.res.status_subresource {
        obj.as_object_mut().map(|m| m.remove("status"));
    }
    let (admitted, warnings) = admit(state, t, name, &obj, None, fv)?;
    match state
        .store
        .create(&key(t, name), admitted, &write_opts(t, dry_run))
        .await
    {
        Ok(created) => Ok(Some((created, warnings))),
        Err(StoreError::AlreadyExists(_)) => Ok(None),
        Err(e) => Err(ApiError::from_store(e, t.res, name)),
    }
}

/// POST to a collection.
pub async fn create(
    state: &Arc<ApiState>,
    t: &Target<'_>,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let mut obj = decode_object(body, &content_type(headers), t.res)?;
    reconcile_identity(t, &mut obj, None)?;
    namespace_exists(state, t)?;
    let dry_run = params.dry_run()?;
    let fv = params.field_validation()?;
    let generate = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let prefix = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if generate && prefix.is_empty() {
        return Err(ApiError::invalid(
            t.res,
            "",
            vec![(
                "metadata.name".into(),
                "Required value: name or generateName is required".into(),
            )],
        ));
    }
    for _ in 0..8 {
        let name = if generate {
            generate_name(&prefix)
        } else {
            obj["metadata"]["name"].as_str().unwrap_or("").to_string()
        };
        match create_new(state, t, &name, &obj, fv, dry_run).await? {
            Some((created, warnings)) => {
                return Ok(json_response(StatusCode::CREATED, &created, &warnings));
            }
            None if generate => continue,
            None => return Err(ApiError::already_exists(t.res, &name)),
        }
    }
    Err(ApiError::new(
        409,
        "AlreadyExists",
        "could not generate a unique name",
    ))
}

/// PUT to an object (or its status).
pub async fn update(
    state: &Arc<ApiState>,
    t: &Target<'_>,
    name: &str,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let mut obj = decode_object(body, &content_type(headers), t.res)?;
    reconcile_identity(t, &mut obj, Some(name))?;
    let key = key(t, name);
    let old = fetch(state, t, &key, name)?.ok_or_else(|| ApiError::not_found(t.res, name))?;
    let merged = split_status(t, obj, &old);
    let (admitted, warnings) = admit(
        state,
        t,
        name,
        &merged,
        Some(&old),
        params.field_validation()?,
    )?;
    let updated = state
        .store
        .update(&key, admitted, &write_opts(t, params.dry_run()?))
        .await
        .map_err(|e| ApiError::from_store(e, t.res, name))?;
    Ok(json_response(StatusCode::OK, &updated, &warnings))
}

/// PATCH of an object (or its status).
pub async fn patch(
    state: &Arc<ApiState>,
    t: &Target<'_>,
    name: &str,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let media = content_type(headers);
    let dry_run = params.dry_run()?;
    let fv = params.field_validation()?;
    enum Kind {
        Merge(Value),
        Json(json_patch::Patch),
        Strategic(Value),
        Apply(Value),
    }
    let patch = match media.as_str() {
        "application/merge-patch+json" => Kind::Merge(
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding merge patch: {e}")))?,
        ),
        "application/json-patch+json" => Kind::Json(
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?,
        ),
        "application/strategic-merge-patch+json" if t.res.group.is_empty() => {
            Kind::Strategic(serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error decoding strategic merge patch: {e}"))
            })?)
        }
        "application/apply-patch+yaml" | "application/apply-patch+cbor"
            if media.ends_with("yaml") =>
        {
            let mut applied = decode_object(body, "yaml", t.res)?;
            if params.field_manager.as_deref().is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(
                    "PATCH requests with an apply patch must set fieldManager",
                ));
            }
            reconcile_identity(t, &mut applied, Some(name))?;
            Kind::Apply(applied)
        }
        _ => return Err(ApiError::unsupported_patch()),
    };
    let key = key(t, name);
    for _ in 0..PATCH_RETRIES {
        let current = fetch(state, t, &key, name)?;
        let current = match (current, &patch) {
            (Some(c), _) => c,
            (None, Kind::Apply(applied)) if !t.status => {
                let manager = params.field_manager.clone().unwrap_or_default();
                let mut obj = applied.clone();
                obj["metadata"]["managedFields"] =
                    json!([apply_fields(&manager, &t.res.api_version(), applied)]);
                namespace_exists(state, t)?;
                match create_new(state, t, name, &obj, fv, dry_run).await? {
                    Some((created, warnings)) => {
                        return Ok(json_response(StatusCode::CREATED, &created, &warnings));
                    }
                    None => continue,
                }
            }
            (None, _) => return Err(ApiError::not_found(t.res, name)),
        };
        let mut patched = current.clone();
        match &patch {
            Kind::Merge(p) => json_patch::merge(&mut patched, p),
            Kind::Strategic(p) => merge_strategic(&mut patched, p),
            Kind::Json(p) => json_patch::patch(&mut patched, p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON patch could not be applied: {e}"),
                )
            })?,
            Kind::Apply(applied) => {
                json_patch::merge(&mut patched, applied);
                let manager = params.field_manager.clone().unwrap_or_default();
                let entry = apply_fields(&manager, &t.res.api_version(), applied);
                let mut fields: Vec<Value> = current
                    .pointer("/metadata/managedFields")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                fields.retain(|f| {
                    !(f["manager"] == json!(manager) && f["operation"] == json!("Apply"))
                });
                fields.push(entry);
                patched["metadata"]["managedFields"] = json!(fields);
            }
        }
        if !patched.is_object() {
            return Err(ApiError::bad_request("the patch did not produce an object"));
        }
        reconcile_identity(t, &mut patched, Some(name))?;
        let explicit_rv = patched.pointer("/metadata/resourceVersion")
            != current.pointer("/metadata/resourceVersion");
        let merged = split_status(t, patched, &current);
        let (admitted, warnings) = admit(state, t, name, &merged, Some(&current), fv)?;
        if matches!(patch, Kind::Apply(_))
            && without_managed_fields(&admitted) == without_managed_fields(&current)
        {
            // An apply that changes nothing writes nothing, not even a new timestamp.
            return Ok(json_response(StatusCode::OK, &current, &warnings));
        }
        match state
            .store
            .update(&key, admitted, &write_opts(t, dry_run))
            .await
        {
            Ok(updated) => return Ok(json_response(StatusCode::OK, &updated, &warnings)),
            Err(StoreError::Conflict { .. }) if !explicit_rv => continue,
            Err(e) => return Err(ApiError::from_store(e, t.res, name)),
        }
    }
    Err(ApiError::conflict(t.res, name))
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    o
}

/// Parses DeleteOptions from the body (JSON, or protobuf as client-go sends it) and
/// the query.
fn delete_options(params: &Params, headers: &HeaderMap, body: &[u8]) -> ApiResult<DeleteOptions> {
    let opts: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if content_type(headers) == "application/vnd.kubernetes.protobuf" {
        crate::protobuf::decode_delete_options(body)?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = opts
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(params.propagation_policy.as_deref());
    let propagation = match policy {
        None | Some("Background") => {
            if opts.get("orphanDependents") == Some(&json!(true)) {
                Propagation::Orphan
            } else {
                Propagation::Background
            }
        }
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid propagationPolicy {other:?}: must be Background, Foreground or Orphan"
            )));
        }
    };
    let dry_run = match opts.get("dryRun").and_then(Value::as_array) {
        Some(a) if a.iter().all(|v| v == "All") && !a.is_empty() => true,
        Some(a) if !a.is_empty() => {
            return Err(ApiError::bad_request(
                "unsupported dryRun value: only All is supported",
            ));
        }
        _ => params.dry_run()?,
    };
    let pre = opts.get("preconditions");
    let uid = pre
        .and_then(|p| p.get("uid"))
        .and_then(Value::as_str)
        .map(String::from);
    let resource_version = match pre
        .and_then(|p| p.get("resourceVersion"))
        .and_then(Value::as_str)
    {
        Some(rv) => Some(rv.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resourceVersion precondition {rv:?}"))
        })?),
        None => None,
    };
    Ok(DeleteOptions {
        propagation,
        uid,
        resource_version,
        dry_run,
    })
}

fn success_status(t: &Target<'_>, name: &str, obj: &Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name, "group": t.res.group, "kind": t.res.plural, "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null)},
    })
}

/// DELETE of an object.
pub async fn delete(
    state: &Arc<ApiState>,
    t: &Target<'_>,
    name: &str,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let opts = delete_options(params, headers, body)?;
    if t.res.plural == "namespaces" && ["default", "knative-serving"].contains(&name) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("namespaces {name:?} is forbidden: this namespace may not be deleted"),
        ));
    }
    let deleted = state
        .store
        .delete(&key(t, name), &opts)
        .await
        .map_err(|e| ApiError::from_store(e, t.res, name))?;
    if t.res.plural == "namespaces" && !opts.dry_run {
        delete_contents(state, name).await?;
    }
    match deleted {
        Deleted::Gone(obj) => Ok(json_response(
            StatusCode::OK,
            &success_status(t, name, &obj),
            &[],
        )),
        Deleted::Pending(obj) => Ok(json_response(StatusCode::OK, &obj, &[])),
    }
}

/// Deletes everything in namespace `ns`, as Kubernetes' namespace controller does, so
/// that nothing of it (a RoleBinding least of all) lives on into a namespace created
/// later with the same name.
async fn delete_contents(state: &ApiState, ns: &str) -> ApiResult<()> {
    for res in crate::registry()
        .all()
        .iter()
        .filter(|r| r.namespaced && !r.is_review())
    {
        let list = state
            .store
            .list(&ListScope::namespaced(res.group, res.plural, ns))
            .map_err(|e| ApiError::from_store(e, res, ""))?;
        for obj in list.items {
            let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            let key = ObjectKey::new(res.group, res.plural, ns, name);
            match state.store.delete(&key, &DeleteOptions::default()).await {
                Ok(_) | Err(swell_store::StoreError::NotFound(_)) => {}
                Err(e) => return Err(ApiError::from_store(e, res, name)),
            }
        }
    }
    state.rbac.invalidate();
    Ok(())
}

/// DELETE of a collection: every object matching the selectors.
pub async fn delete_collection(
    state: &Arc<ApiState>,
    t: &Target<'_>,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let opts = delete_options(params, headers, body)?;
    let labels = LabelSelector::parse(params.label_selector.as_deref().unwrap_or(""))?;
    let fields =
        FieldSelector::parse(params.field_selector.as_deref().unwrap_or(""), t.res.plural)?;
    let scope = ListScope {
        group: t.res.group.into(),
        resource: t.res.plural.into(),
        namespace: t.namespace.clone(),
    };
    let list = state
        .store
        .list(&scope)
        .map_err(|e| ApiError::from_store(e, t.res, ""))?;
    let mut deleted = Vec::new();
    for obj in list
        .items
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
    {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let key = ObjectKey::new(t.res.group, t.res.plural, ns, name);
        match state.store.delete(&key, &opts).await {
            Ok(Deleted::Gone(o) | Deleted::Pending(o)) => deleted.push(o),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(ApiError::from_store(e, t.res, name)),
        }
    }
    let body = json!({"apiVersion": t.res.api_version(), "kind": format!("{}List", t.res.kind), "metadata": {}, "items": deleted});
    Ok(json_response(StatusCode::OK, &body, &[]))
}
