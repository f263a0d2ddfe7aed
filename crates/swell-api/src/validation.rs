//! Knative's validating webhook: per-kind rules over defaulted objects (§1).

pub mod podspec;
pub mod traffic;

use crate::annotations::{forbid_autoscaling, validate_autoscaling, validate_rollout_duration};
use crate::config;
use crate::configuration::Configuration;
use crate::defaults::{Defaults, Features};
use crate::domainmapping::DomainMapping;
use crate::field_error::{FieldError, FieldErrors};
use crate::names::{dns1035_label_error, generate_name_error, is_dns1123_subdomain};
use crate::revision::{Revision, RevisionTemplateSpec};
use crate::route::Route;
use crate::service::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use podspec::validate_revision_spec;
pub use traffic::validate_traffic;

/// The configuration validation depends on.
#[derive(Clone, Debug, Default)]
pub struct ValidationConfig {
    /// `config-defaults`.
    pub defaults: Defaults,
    /// `config-features`.
    pub features: Features,
    /// `config-autoscaler`, which bounds the autoscaling annotations.
    pub autoscaler: config::Autoscaler,
}

impl ValidationConfig {
    /// What validation follows of the server's `config-*` maps.
    pub fn of(serving: &config::ServingConfig) -> Self {
        ValidationConfig {
            defaults: serving.defaults.clone(),
            features: serving.features.clone(),
            autoscaler: serving.autoscaler.clone(),
        }
    }
}

/// Annotation holding the user who created the object.
pub const CREATOR: &str = "serving.knative.dev/creator";
/// Annotation holding the user who last changed the object's spec.
pub const LAST_MODIFIER: &str = "serving.knative.dev/lastModifier";

/// Validates `metadata` of a top-level Service, Configuration, Route or Revision.
fn validate_object_meta(meta: &ObjectMeta, allow_autoscaling: bool) -> FieldErrors {
    let mut errs = FieldErrors::default();
    match (
        meta.name.as_deref().filter(|n| !n.is_empty()),
        meta.generate_name.as_deref(),
    ) {
        (Some(name), _) => {
            if let Some(why) = dns1035_label_error(name) {
                errs.push(FieldError::invalid(format!("{name:?}"), "name").with_details(why));
            }
        }
        (None, Some(prefix)) if !prefix.is_empty() => {
            if let Some(why) = generate_name_error(prefix) {
                errs.push(
                    FieldError::invalid(format!("{prefix:?}"), "generateName").with_details(why),
                );
            }
        }
        _ => errs.push(FieldError::one_of(&[], &["name", "generateName"])),
    }
    if !allow_autoscaling {
        errs.0
            .extend(forbid_autoscaling(meta.annotations.as_ref().unwrap_or(&Default::default())).0);
    }
    errs
}

fn annotations(meta: &ObjectMeta) -> std::collections::BTreeMap<String, String> {
    meta.annotations.clone().unwrap_or_default()
}

/// Validates a Revision template inside a parent named `parent` (relative paths
/// `metadata.…`, `spec.…`).
fn validate_template(
    t: &RevisionTemplateSpec,
    parent: &ObjectMeta,
    cfg: &ValidationConfig,
) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if let Some(name) = t.metadata.name.as_deref().filter(|n| !n.is_empty()) {
        match parent.name.as_deref().filter(|n| !n.is_empty()) {
            Some(parent_name) => {
                let prefix = format!("{parent_name}-");
                if !name.starts_with(&prefix) {
                    errs.push(FieldError::invalid(
                        format!("{name:?} must have prefix {prefix:?}"),
                        "metadata.name",
                    ));
                }
            }
            None => errs.push(FieldError::invalid(name, "metadata.name").with_details(
                "a Revision name may not be given when the parent uses generateName",
            )),
        }
        if let Some(why) = dns1035_label_error(name) {
            errs.push(FieldError::invalid(name, "metadata.name").with_details(why));
        }
    }
    let ann = annotations(&t.metadata);
    errs.extend_via("metadata", validate_autoscaling(&ann, &cfg.autoscaler));
    errs.extend_via(
        "spec",
        validate_revision_spec(&t.spec, &cfg.defaults, &cfg.features),
    );
    errs
}

/// A BYO Revision name that stays the same while the template changes is rejected.
fn validate_template_update(new: &RevisionTemplateSpec, old: &RevisionTemplateSpec) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if let Some(name) = new.metadata.name.as_deref().filter(|n| !n.is_empty())
        && old.metadata.name.as_deref() == Some(name)
        && (new.spec != old.spec
            || new.metadata.labels != old.metadata.labels
            || new.metadata.annotations != old.metadata.annotations)
    {
        errs.push(
            FieldError::new(
                "Saw the following changes without a name change (-old +new)",
                "spec.template.metadata.name",
            )
            .with_details(format!(
                "the template changed but its Revision name {name:?} did not; give it a new name"
            )),
        );
    }
    errs
}

fn validate_creator_unchanged(new: &ObjectMeta, old: &ObjectMeta) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let get = |m: &ObjectMeta| m.annotations.as_ref().and_then(|a| a.get(CREATOR).cloned());
    if let Some(old_creator) = get(old)
        && get(new) != Some(old_creator.clone())
    {
        errs.push(
            FieldError::invalid(
                format!("{:?}", get(new).unwrap_or_default()),
                format!("metadata.annotations.{CREATOR}"),
            )
            .with_details("the creator annotation is immutable"),
        );
    }
    errs
}

/// Validates a Service (and, on update, its change from `old`).
pub fn validate_service(s: &Service, old: Option<&Service>, cfg: &ValidationConfig) -> FieldErrors {
    let mut errs = FieldErrors::default();
    errs.extend_via("metadata", validate_object_meta(&s.metadata, false));
    errs.extend_via(
        "metadata",
        validate_rollout_duration(&annotations(&s.metadata)),
    );
    errs.extend_via(
        "spec.template",
        validate_template(&s.spec.template, &s.metadata, cfg),
    );
    errs.extend_via("spec", validate_traffic(&s.spec.traffic, true));
    if let Some(old) = old {
        errs.0
            .extend(validate_template_update(&s.spec.template, &old.spec.template).0);
        errs.0
            .extend(validate_creator_unchanged(&s.metadata, &old.metadata).0);
    }
    errs
}

/// Validates a Configuration.
pub fn validate_configuration(
    c: &Configuration,
    old: Option<&Configuration>,
    cfg: &ValidationConfig,
) -> FieldErrors {
    let mut errs = FieldErrors::default();
    errs.extend_via("metadata", validate_object_meta(&c.metadata, false));
    errs.extend_via(
        "spec.template",
        validate_template(&c.spec.template, &c.metadata, cfg),
    );
    if let Some(old) = old {
        errs.0
            .extend(validate_template_update(&c.spec.template, &old.spec.template).0);
        errs.0
            .extend(validate_creator_unchanged(&c.metadata, &old.metadata).0);
    }
    errs
}

/// Validates a Revision; its spec is immutable once created.
pub fn validate_revision(
    r: &Revision,
    old: Option<&Revision>,
    cfg: &ValidationConfig,
) -> FieldErrors {
    let mut errs = FieldErrors::default();
    errs.extend_via("metadata", validate_object_meta(&r.metadata, true));
    let ann = annotations(&r.metadata);
    errs.extend_via("metadata", validate_autoscaling(&ann, &cfg.autoscaler));
    match old {
        Some(old) if old.spec != r.spec => errs.push(
            FieldError::new("Immutable fields changed (-old +new)", "spec").with_details(
                "a Revision's spec cannot change; change the Configuration or Service instead",
            ),
        ),
        Some(_) => {}
        None => errs.extend_via(
            "spec",
            validate_revision_spec(&r.spec, &cfg.defaults, &cfg.features),
        ),
    }
    errs
}

/// Validates a Route.
pub fn validate_route(r: &Route, old: Option<&Route>) -> FieldErrors {
    let mut errs = FieldErrors::default();
    errs.extend_via("metadata", validate_object_meta(&r.metadata, false));
    errs.extend_via(
        "metadata",
        validate_rollout_duration(&annotations(&r.metadata)),
    );
    errs.extend_via("spec", validate_traffic(&r.spec.traffic, false));
    if let Some(old) = old {
        errs.0
            .extend(validate_creator_unchanged(&r.metadata, &old.metadata).0);
    }
    errs
}

/// Validates a DomainMapping (§1.7): its name is the fully qualified hostname.
pub fn validate_domain_mapping(dm: &DomainMapping, cluster_domain: &str) -> FieldErrors {
    let mut errs = FieldErrors::default();
    if dm
        .metadata
        .generate_name
        .as_deref()
        .is_some_and(|g| !g.is_empty())
    {
        errs.push(FieldError::disallowed("metadata.generateName"));
    }
    match dm.metadata.name.as_deref() {
        None | Some("") => errs.push(FieldError::missing("metadata.name")),
        Some(name) => {
            if !is_dns1123_subdomain(name) || !name.contains('.') {
                errs.push(
                    FieldError::invalid(name, "metadata.name")
                        .with_details("must be a fully qualified domain name"),
                );
            }
            if name.ends_with(&format!(".svc.{cluster_domain}")) {
                errs.push(
                    FieldError::invalid(name, "metadata.name")
                        .with_details(format!("must not be a subdomain of svc.{cluster_domain}")),
                );
            }
        }
    }
    let r = &dm.spec.reference;
    for (field, v) in [
        ("kind", &r.kind),
        ("name", &r.name),
        ("apiVersion", &r.api_version),
    ] {
        if v.is_empty() {
            errs.push(FieldError::missing(format!("spec.ref.{field}")));
        }
    }
    if let Some(ns) = &r.namespace
        && dm.metadata.namespace.as_ref().is_some_and(|own| own != ns)
    {
        errs.push(
            FieldError::invalid(ns, "spec.ref.namespace")
                .with_details("must be the DomainMapping's own namespace"),
        );
    }
    errs
}
