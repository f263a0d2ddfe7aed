//! Admission: decode a JSON object strictly, default it, validate it, and hand back the
//! object to store. This is what Knative's webhooks do, run in-process on every write.

use crate::configuration::Configuration;
use crate::defaults::{
    default_containers, default_security_context, default_service_traffic, default_template,
    default_traffic_entries,
};
use crate::domainmapping::DomainMapping;
use crate::field_error::FieldErrors;
use crate::revision::Revision;
use crate::route::Route;
use crate::service::Service;
use crate::validation::{self, CREATOR, LAST_MODIFIER, ValidationConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The Knative kinds that admission knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `services`.
    Service,
    /// `configurations`.
    Configuration,
    /// `revisions`.
    Revision,
    /// `routes`.
    Route,
    /// `domainmappings`.
    DomainMapping,
}

impl Kind {
    /// The kind served under a plural resource name.
    pub fn from_plural(plural: &str) -> Option<Self> {
        Some(match plural {
            "services" => Self::Service,
            "configurations" => Self::Configuration,
            "revisions" => Self::Revision,
            "routes" => Self::Route,
            "domainmappings" => Self::DomainMapping,
            _ => return None,
        })
    }
}

/// How unknown fields are treated (`?fieldValidation=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (the Kubernetes default).
    #[default]
    Warn,
    /// Reject the request.
    Strict,
}

/// Everything admission depends on besides the object.
#[derive(Clone, Debug)]
pub struct AdmissionContext {
    /// `config-defaults`, `config-features`, `config-autoscaler` limits.
    pub config: ValidationConfig,
    /// The requesting user, recorded in the creator/lastModifier annotations.
    pub user: String,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
}

impl Default for AdmissionContext {
    fn default() -> Self {
        Self {
            config: ValidationConfig::default(),
            user: "swell-admin".into(),
            cluster_domain: "cluster.local".into(),
        }
    }
}

/// Why admission refused an object.
#[derive(Debug)]
pub enum AdmissionError {
    /// The body does not decode as this kind (a type mismatch, say).
    Decode(String),
    /// Unknown fields under `fieldValidation=Strict`.
    UnknownFields(Vec<String>),
    /// The object decoded but breaks Knative's rules.
    Invalid(FieldErrors),
}

impl std::fmt::Display for AdmissionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Decode(m) => f.write_str(m),
            Self::UnknownFields(fields) => {
                let list: Vec<String> = fields
                    .iter()
                    .map(|p| format!("unknown field {p:?}"))
                    .collect();
                write!(f, "strict decoding error: {}", list.join(", "))
            }
            Self::Invalid(errs) => write!(f, "{errs}"),
        }
    }
}

impl std::error::Error for AdmissionError {}

/// An admitted object and the warnings to return with it.
#[derive(Debug)]
pub struct Admitted {
    /// The defaulted, pruned object to store.
    pub object: Value,
    /// `Warning` headers for the client (unknown fields under `Warn`).
    pub warnings: Vec<String>,
}

/// What decoding found besides the typed object.
struct Decoded<T> {
    typed: T,
    /// Paths of fields `T` does not know.
    unknown: Vec<String>,
    /// JSON pointers of fields the typed form adds at a zero value although the input
    /// lacked them (required fields in k8s-openapi types, such as `Container.name`).
    artifacts: Vec<(String, Value)>,
}

/// Decodes `obj` as `T`, naming the failing field, and reports the fields that `T` does
/// not know (they would be lost: Kubernetes prunes them the same way).
fn decode<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Decoded<T>, AdmissionError> {
    let typed: T = serde_path_to_error::deserialize(obj).map_err(|e| {
        let path = e.path().to_string();
        AdmissionError::Decode(
            pod_spec_decode_error(obj, &path)
                .unwrap_or_else(|| format!("error decoding {path}: {}", e.inner())),
        )
    })?;
    let round = serde_json::to_value(&typed).map_err(|e| AdmissionError::Decode(e.to_string()))?;
    let mut unknown = Vec::new();
    if let (Value::Object(input), Value::Object(known)) = (obj, &round) {
        for (k, v) in input {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            diff_unknown(k, v, known.get(k), &mut unknown);
        }
    }
    let mut artifacts = Vec::new();
    added_zeros("", obj, &round, &mut artifacts);
    Ok(Decoded {
        typed,
        unknown,
        artifacts,
    })
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn added_zeros(pointer: &str, input: &Value, round: &Value, out: &mut Vec<(String, Value)>) {
    match (input, round) {
        (Value::Object(i), Value::Object(r)) => {
            for (k, rv) in r {
                let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                match i.get(k) {
                    None if is_zero(rv) => out.push((p, rv.clone())),
                    None => {}
                    Some(iv) => added_zeros(&p, iv, rv, out),
                }
            }
        }
        (Value::Array(i), Value::Array(r)) => {
            for (n, (iv, rv)) in i.iter().zip(r).enumerate() {
                added_zeros(&format!("{pointer}/{n}"), iv, rv, out);
            }
        }
        _ => {}
    }
}

/// Removes the serializer artifacts that are still at their zero value.
fn remove_artifacts(object: &mut Value, artifacts: &[(String, Value)]) {
    for (pointer, zero) in artifacts {
        let Some((parent, key)) = pointer.rsplit_once('/') else {
            continue;
        };
        let key = key.replace("~1", "/").replace("~0", "~");
        if let Some(Value::Object(map)) = object.pointer_mut(parent)
            && map.get(&key) == Some(zero)
        {
            map.remove(&key);
        }
    }
}

/// serde loses the path inside the flattened PodSpec of a RevisionSpec; decoding that part
/// on its own recovers it (`spec.template.spec.containers[0].ports[0].containerPort`).
fn pod_spec_decode_error(obj: &Value, path: &str) -> Option<String> {
    let pointer = format!("/{}", path.replace('.', "/"));
    let spec = obj.pointer(&pointer)?;
    spec.get("containers")?;
    let err =
        serde_path_to_error::deserialize::<_, k8s_openapi::api::core::v1::PodSpec>(spec).err()?;
    Some(format!(
        "error decoding {path}.{}: {}",
        err.path(),
        err.inner()
    ))
}

fn diff_unknown(path: &str, input: &Value, known: Option<&Value>, out: &mut Vec<String>) {
    let empty = match input {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match (input, known) {
        (_, None) if !empty => out.push(path.to_string()),
        (Value::Object(i), Some(Value::Object(k))) => {
            for (key, v) in i {
                diff_unknown(&format!("{path}.{key}"), v, k.get(key), out);
            }
        }
        (Value::Array(i), Some(Value::Array(k))) => {
            for (n, v) in i.iter().enumerate() {
                diff_unknown(&format!("{path}[{n}]"), v, k.get(n), out);
            }
        }
        _ => {}
    }
}

/// Decodes `obj` as the typed `T` and returns it re-encoded (unknown fields pruned) with
/// the paths of the unknown fields. For kinds admission has no rules for, such as the
/// core `ConfigMap`.
pub fn decode_known<T: DeserializeOwned + Serialize>(
    obj: &Value,
) -> Result<(Value, Vec<String>), AdmissionError> {
    let decoded = decode::<T>(obj)?;
    let mut pruned =
        serde_json::to_value(&decoded.typed).map_err(|e| AdmissionError::Decode(e.to_string()))?;
    remove_artifacts(&mut pruned, &decoded.artifacts);
    Ok((pruned, decoded.unknown))
}

/// Runs defaulting then validation on a write of `kind`. `old` is the stored object on
/// update. `status_only` writes (the `/status` subresource) are only decoded and pruned.
pub fn admit(
    kind: Kind,
    obj: &Value,
    old: Option<&Value>,
    field_validation: FieldValidation,
    status_only: bool,
    ctx: &AdmissionContext,
) -> Result<Admitted, AdmissionError> {
    match kind {
        // Services and Configurations are validated fully defaulted but stored with their
        // lists as written, so that re-applying an unchanged manifest is a no-op for
        // kubectl's three-way merge (docs/design/001-api-wire-compat.md).
        Kind::Service => run::<Service>(
            obj,
            old,
            field_validation,
            status_only,
            ctx,
            |s, old, ctx| {
                default_template(&mut s.spec.template, &ctx.config.defaults);
                default_service_traffic(&mut s.spec.traffic);
                set_user_info(
                    &mut s.metadata,
                    old.map(|o| &o.metadata),
                    old.is_none_or(|o| o.spec != s.spec),
                    &ctx.user,
                );
                let mut full = s.clone();
                default_containers(&mut full.spec.template.spec, &ctx.config.defaults);
                default_security_context(&mut full.spec.template.spec, &ctx.config.features);
                default_traffic_entries(&mut full.spec.traffic);
                validation::validate_service(&full, old, &ctx.config)
            },
        ),
        Kind::Configuration => run::<Configuration>(
            obj,
            old,
            field_validation,
            status_only,
            ctx,
            |c, old, ctx| {
                default_template(&mut c.spec.template, &ctx.config.defaults);
                let changed = old.is_none_or(|o| o.spec != c.spec);
                record_user_unless_owned(
                    &mut c.metadata,
                    old.map(|o| &o.metadata),
                    changed,
                    &ctx.user,
                );
                let mut full = c.clone();
                default_containers(&mut full.spec.template.spec, &ctx.config.defaults);
                default_security_context(&mut full.spec.template.spec, &ctx.config.features);
                validation::validate_configuration(&full, old, &ctx.config)
            },
        ),
        Kind::Revision => run::<Revision>(
            obj,
            old,
            field_validation,
            status_only,
            ctx,
            |r, old, ctx| {
                if old.is_none() {
                    crate::defaults::default_revision_spec(&mut r.spec, &ctx.config.defaults);
                    default_security_context(&mut r.spec, &ctx.config.features);
                }
                validation::validate_revision(r, old, &ctx.config)
            },
        ),
        Kind::Route => run::<Route>(
            obj,
            old,
            field_validation,
            status_only,
            ctx,
            |r, old, ctx| {
                let changed = old.is_none_or(|o| o.spec != r.spec);
                record_user_unless_owned(
                    &mut r.metadata,
                    old.map(|o| &o.metadata),
                    changed,
                    &ctx.user,
                );
                let mut full = r.clone();
                default_traffic_entries(&mut full.spec.traffic);
                validation::validate_route(&full, old)
            },
        ),
        Kind::DomainMapping => run::<DomainMapping>(
            obj,
            old,
            field_validation,
            status_only,
            ctx,
            |dm, old, ctx| {
                if dm
                    .spec
                    .reference
                    .namespace
                    .as_deref()
                    .is_none_or(str::is_empty)
                {
                    dm.spec.reference.namespace = dm.metadata.namespace.clone();
                }
                set_user_info(
                    &mut dm.metadata,
                    old.map(|o| &o.metadata),
                    old.is_none_or(|o| o.spec != dm.spec),
                    &ctx.user,
                );
                validation::validate_domain_mapping(dm, &ctx.cluster_domain)
            },
        ),
    }
}

fn run<T: DeserializeOwned + Serialize>(
    obj: &Value,
    old: Option<&Value>,
    field_validation: FieldValidation,
    status_only: bool,
    ctx: &AdmissionContext,
    admit: impl FnOnce(&mut T, Option<&T>, &AdmissionContext) -> FieldErrors,
) -> Result<Admitted, AdmissionError> {
    let Decoded {
        mut typed,
        unknown,
        artifacts,
    } = decode::<T>(obj)?;
    let warnings = match field_validation {
        FieldValidation::Strict if !unknown.is_empty() => {
            return Err(AdmissionError::UnknownFields(unknown));
        }
        FieldValidation::Warn => unknown
            .iter()
            .map(|p| format!("unknown field {p:?}"))
            .collect(),
        _ => Vec::new(),
    };
    if !status_only {
        // The stored object was admitted before, so it decodes; if it somehow does not,
        // validate as a create rather than failing the update.
        let old_typed: Option<T> = old.and_then(|o| serde_json::from_value(o.clone()).ok());
        let errs = admit(&mut typed, old_typed.as_ref(), ctx);
        if !errs.is_empty() {
            return Err(AdmissionError::Invalid(errs));
        }
    }
    let mut object =
        serde_json::to_value(&typed).map_err(|e| AdmissionError::Decode(e.to_string()))?;
    remove_artifacts(&mut object, &artifacts);
    if let (Value::Object(out), Value::Object(input)) = (&mut object, obj) {
        for k in ["apiVersion", "kind"] {
            if let Some(v) = input.get(k) {
                out.insert(k.to_string(), v.clone());
            }
        }
    }
    Ok(Admitted { object, warnings })
}

/// Records the requesting user on objects a person manages; Routes and Configurations
/// owned by a Service get the Service's annotations instead (Knative §1.1).
fn record_user_unless_owned(
    meta: &mut ObjectMeta,
    old: Option<&ObjectMeta>,
    spec_changed: bool,
    user: &str,
) {
    if meta.owner_references.as_ref().is_none_or(Vec::is_empty) {
        set_user_info(meta, old, spec_changed, user);
    }
}

/// Records the requesting user: `creator` and `lastModifier` on create, `lastModifier`
/// when the spec changed, and the creator carried over if the new object dropped it.
fn set_user_info(meta: &mut ObjectMeta, old: Option<&ObjectMeta>, spec_changed: bool, user: &str) {
    let ann = meta.annotations.get_or_insert_with(Default::default);
    match old {
        None => {
            ann.insert(CREATOR.into(), user.into());
            ann.insert(LAST_MODIFIER.into(), user.into());
        }
        Some(old) => {
            let old_ann = old.annotations.clone().unwrap_or_default();
            for k in [CREATOR, LAST_MODIFIER] {
                if !ann.contains_key(k)
                    && let Some(v) = old_ann.get(k)
                {
                    ann.insert(k.into(), v.clone());
                }
            }
            if spec_changed {
                ann.insert(LAST_MODIFIER.into(), user.into());
            }
        }
    }
}
