//! The `config-*` ConfigMaps in `knative-serving`: parsing and validation of each, into
//! one [`ServingConfig`]. Validation errors name the offending key (`data.<key>`).

use crate::defaults::{Defaults, Features};
use crate::duration::parse_go_duration;
use crate::field_error::{FieldError, FieldErrors};
use std::collections::BTreeMap;

mod autoscaler;

pub use autoscaler::Autoscaler;

/// Namespace the configuration maps live in.
pub const NAMESPACE: &str = "knative-serving";
/// The configuration maps Swell creates and reads.
pub const MAPS: [&str; 7] = [
    "config-autoscaler",
    "config-defaults",
    "config-deployment",
    "config-domain",
    "config-features",
    "config-gc",
    "config-network",
];

type Data = BTreeMap<String, String>;

/// One domain of `config-domain`: a suffix and the Route labels that select it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRule {
    /// The domain suffix.
    pub domain: String,
    /// Labels a Route must have (empty: the default domain).
    pub selector: BTreeMap<String, String>,
}

/// `config-network`'s URL settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// `domain-template`.
    pub domain_template: String,
    /// `tag-template`.
    pub tag_template: String,
    /// `default-external-scheme`.
    pub scheme: String,
    /// `rollout-duration`, in seconds (0: traffic moves at once).
    pub rollout_duration_seconds: u64,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            domain_template: "{{.Name}}.{{.Namespace}}.{{.Domain}}".into(),
            tag_template: "{{.Tag}}-{{.Name}}".into(),
            scheme: "http".into(),
            rollout_duration_seconds: 0,
        }
    }
}

/// `config-gc`: which non-active Revisions are kept. `None` means disabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gc {
    /// `retain-since-create-time`.
    pub retain_since_create: Option<std::time::Duration>,
    /// `retain-since-last-active-time`.
    pub retain_since_last_active: Option<std::time::Duration>,
    /// `min-non-active-revisions`.
    pub min_non_active: usize,
    /// `max-non-active-revisions`.
    pub max_non_active: Option<usize>,
}

impl Default for Gc {
    fn default() -> Self {
        Self {
            retain_since_create: Some(std::time::Duration::from_secs(48 * 3600)),
            retain_since_last_active: Some(std::time::Duration::from_secs(15 * 3600)),
            min_non_active: 20,
            max_non_active: Some(1000),
        }
    }
}

/// Everything the `config-*` maps configure.
#[derive(Clone, Debug, PartialEq)]
pub struct ServingConfig {
    /// `config-defaults`.
    pub defaults: Defaults,
    /// `config-features`.
    pub features: Features,
    /// `config-autoscaler`.
    pub autoscaler: Autoscaler,
    /// `config-domain`, most specific first.
    pub domains: Vec<DomainRule>,
    /// `config-network`.
    pub network: Network,
    /// `config-gc`.
    pub gc: Gc,
    /// `config-deployment`'s `progress-deadline`: how long a Revision may take to
    /// reach its initial scale.
    pub progress_deadline: std::time::Duration,
    /// `config-deployment`'s `registries-skipping-tag-resolving`: images from these
    /// registries keep their tags.
    pub registries_skipping_tag_resolving: Vec<String>,
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            defaults: Defaults::default(),
            features: Features::default(),
            autoscaler: Autoscaler::default(),
            domains: vec![DomainRule {
                domain: "localhost".into(),
                selector: BTreeMap::new(),
            }],
            network: Network::default(),
            gc: Gc::default(),
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
            registries_skipping_tag_resolving: ["kind.local", "ko.local", "dev.local"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// `config-deployment`'s default `progress-deadline`.
pub const DEFAULT_PROGRESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// The data Swell writes into each map on first start.
pub fn initial_data(map: &str) -> Data {
    let mut d = Data::new();
    let example = match map {
        "config-domain" => {
            d.insert("localhost".into(), String::new());
            "Each key is a domain suffix; its value is empty (the default domain) or\n`selector:` followed by Route labels, e.g.\n  example.com: |\n    selector:\n      app: prod\n"
        }
        "config-defaults" => {
            "revision-timeout-seconds: \"300\"\nmax-revision-timeout-seconds: \"600\"\nrevision-response-start-timeout-seconds: \"300\"\nrevision-idle-timeout-seconds: \"0\"\ncontainer-concurrency: \"0\"\ncontainer-concurrency-max-limit: \"1000\"\nallow-container-concurrency-zero: \"true\"\nenable-service-links: \"false\"\n"
        }
        "config-features" => {
            "multi-container: enabled\nkubernetes.podspec-volumes-emptydir: enabled\ntag-header-based-routing: disabled\nkubernetes.podspec-init-containers: disabled\nkubernetes.podspec-fieldref: disabled\n(every flag: enabled, disabled or allowed)\n"
        }
        "config-network" => {
            "domain-template: \"{{.Name}}.{{.Namespace}}.{{.Domain}}\"\ntag-template: \"{{.Tag}}-{{.Name}}\"\ndefault-external-scheme: http\n"
        }
        "config-autoscaler" => {
            "container-concurrency-target-default: \"100\"\ntarget-burst-capacity: \"211\"\nstable-window: 60s\nscale-to-zero-grace-period: 30s\nenable-scale-to-zero: \"true\"\nallow-zero-initial-scale: \"false\"\nmax-scale-limit: \"0\"\n"
        }
        "config-gc" => {
            "retain-since-create-time: 48h\nretain-since-last-active-time: 15h\nmin-non-active-revisions: \"20\"\nmax-non-active-revisions: \"1000\"\n"
        }
        "config-deployment" => {
            "progress-deadline: 600s\nregistries-skipping-tag-resolving: kind.local,ko.local,dev.local\n"
        }
        _ => "",
    };
    d.insert(
        "_example".into(),
        format!("# Copy a key out of this block to set it.\n{example}"),
    );
    d
}

fn err(key: &str, value: &str, why: &str) -> FieldError {
    FieldError::invalid(format!("{value:?}"), format!("data.{key}")).with_details(why.to_string())
}

fn int(data: &Data, key: &str, lo: i64, errs: &mut FieldErrors) -> Option<i64> {
    let v = data.get(key)?;
    match v.trim().parse::<i64>() {
        Ok(n) if n >= lo => Some(n),
        _ => {
            errs.push(err(key, v, &format!("must be an integer >= {lo}")));
            None
        }
    }
}

fn float(data: &Data, key: &str, lo: f64, errs: &mut FieldErrors) -> Option<f64> {
    let v = data.get(key)?;
    match v.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= lo => Some(n),
        _ => {
            errs.push(err(key, v, &format!("must be a number >= {lo}")));
            None
        }
    }
}

fn boolean(data: &Data, key: &str, errs: &mut FieldErrors) -> Option<bool> {
    let v = data.get(key)?;
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            errs.push(err(key, v, "must be true or false"));
            None
        }
    }
}

fn duration(data: &Data, key: &str, errs: &mut FieldErrors) {
    if let Some(v) = data.get(key)
        && v != "disabled"
        && parse_go_duration(v.trim()).is_err()
    {
        errs.push(err(key, v, "must be a duration such as 30s or 1h"));
    }
}

fn parse_defaults(data: &Data, errs: &mut FieldErrors) -> Defaults {
    let mut d = Defaults::default();
    if let Some(n) = int(data, "revision-timeout-seconds", 1, errs) {
        d.revision_timeout_seconds = n;
        d.revision_response_start_timeout_seconds = n;
    }
    if let Some(n) = int(data, "max-revision-timeout-seconds", 1, errs) {
        d.max_revision_timeout_seconds = n;
    }
    if let Some(n) = int(data, "revision-response-start-timeout-seconds", 0, errs) {
        d.revision_response_start_timeout_seconds = n;
    }
    if let Some(n) = int(data, "revision-idle-timeout-seconds", 0, errs) {
        d.revision_idle_timeout_seconds = n;
    }
    if let Some(n) = int(data, "container-concurrency-max-limit", 1, errs) {
        d.container_concurrency_max_limit = n;
    }
    if let Some(b) = boolean(data, "allow-container-concurrency-zero", errs) {
        d.allow_container_concurrency_zero = b;
    }
    if let Some(n) = int(data, "container-concurrency", 0, errs) {
        d.container_concurrency = n;
    }
    for (key, slot) in [
        ("container-name-template", &mut d.container_name),
        ("init-container-name-template", &mut d.init_container_name),
    ] {
        if let Some(v) = data.get(key) {
            if v.contains("{{") || crate::names::dns1035_label_error(v).is_some() {
                errs.push(err(
                    key,
                    v,
                    "only a literal container name (a DNS-1035 label) is supported",
                ));
            } else {
                *slot = v.clone();
            }
        }
    }
    match data.get("enable-service-links").map(String::as_str) {
        None => {}
        Some("true") => d.enable_service_links = Some(true),
        Some("false") => d.enable_service_links = Some(false),
        Some("default") => d.enable_service_links = None,
        Some(v) => errs.push(err(
            "enable-service-links",
            v,
            "must be true, false or default",
        )),
    }
    if d.max_revision_timeout_seconds < d.revision_timeout_seconds {
        errs.push(err(
            "max-revision-timeout-seconds",
            &d.max_revision_timeout_seconds.to_string(),
            "must be at least revision-timeout-seconds",
        ));
    }
    for (key, v) in [
        (
            "revision-response-start-timeout-seconds",
            d.revision_response_start_timeout_seconds,
        ),
        (
            "revision-idle-timeout-seconds",
            d.revision_idle_timeout_seconds,
        ),
    ] {
        if v > d.revision_timeout_seconds {
            errs.push(err(
                key,
                &v.to_string(),
                "must not exceed revision-timeout-seconds",
            ));
        }
    }
    if d.container_concurrency > d.container_concurrency_max_limit {
        errs.push(err(
            "container-concurrency",
            &d.container_concurrency.to_string(),
            "must not exceed container-concurrency-max-limit",
        ));
    }
    for key in [
        "revision-cpu-request",
        "revision-memory-request",
        "revision-ephemeral-storage-request",
        "revision-cpu-limit",
        "revision-memory-limit",
        "revision-ephemeral-storage-limit",
    ] {
        if data.contains_key(key) {
            errs.push(err(
                key,
                &data[key],
                "default resource requests and limits are not supported yet",
            ));
        }
    }
    d
}

fn parse_features(data: &Data, errs: &mut FieldErrors) -> Features {
    let mut f = Features::default();
    for (k, v) in data.iter().filter(|(k, _)| !k.starts_with('_')) {
        let ok = matches!(v.as_str(), "enabled" | "disabled" | "allowed")
            || (k == "secure-pod-defaults" && v == "AllowRootBounded");
        if ok {
            f.set(k, v);
        } else {
            errs.push(err(k, v, "must be enabled, disabled or allowed"));
        }
    }
    f
}

fn parse_domains(data: &Data, errs: &mut FieldErrors) -> Vec<DomainRule> {
    let mut rules = Vec::new();
    for (domain, value) in data.iter().filter(|(k, _)| !k.starts_with('_')) {
        if !crate::names::is_dns1123_subdomain(domain) {
            errs.push(err(domain, domain, "the key must be a domain name"));
            continue;
        }
        let selector = if value.trim().is_empty() {
            BTreeMap::new()
        } else {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Entry {
                #[serde(default)]
                selector: BTreeMap<String, String>,
                #[serde(default, rename = "type")]
                _type: Option<String>,
            }
            match serde_saphyr::from_str::<Entry>(value) {
                Ok(e) => e.selector,
                Err(e) => {
                    let first = e.to_string().lines().next().unwrap_or_default().to_string();
                    errs.push(err(
                        domain,
                        value,
                        &format!("expected `selector:` with labels ({first})"),
                    ));
                    continue;
                }
            }
        };
        rules.push(DomainRule {
            domain: domain.clone(),
            selector,
        });
    }
    // Most labels first; ties go to the lexicographically smallest domain.
    rules.sort_by(|a, b| {
        b.selector
            .len()
            .cmp(&a.selector.len())
            .then(a.domain.cmp(&b.domain))
    });
    rules
}

fn check_template(key: &str, template: &str, allowed: &[&str], errs: &mut FieldErrors) {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            errs.push(err(key, template, "unclosed {{"));
            return;
        };
        let field = rest[start + 2..start + end].trim();
        if !allowed.contains(&field) {
            errs.push(err(
                key,
                template,
                &format!(
                    "unsupported template field {field:?}; use {}",
                    allowed.join(", ")
                ),
            ));
            return;
        }
        rest = &rest[start + end + 2..];
    }
}

fn parse_network(data: &Data, errs: &mut FieldErrors) -> Network {
    let mut n = Network::default();
    if let Some(t) = data.get("domain-template") {
        check_template(
            "domain-template",
            t,
            &[".Name", ".Namespace", ".Domain"],
            errs,
        );
        n.domain_template = t.clone();
    }
    if let Some(t) = data.get("tag-template") {
        check_template("tag-template", t, &[".Tag", ".Name"], errs);
        n.tag_template = t.clone();
    }
    match data.get("default-external-scheme").map(String::as_str) {
        None => {}
        Some(s @ ("http" | "https")) => n.scheme = s.into(),
        Some(v) => errs.push(err("default-external-scheme", v, "must be http or https")),
    }
    if let Some(secs) = int(data, "rollout-duration", 0, errs) {
        n.rollout_duration_seconds = u64::try_from(secs).unwrap_or(0);
    }
    n
}

fn parse_gc(data: &Data, errs: &mut FieldErrors) -> Gc {
    let mut gc = Gc::default();
    for (key, slot) in [
        ("retain-since-create-time", &mut gc.retain_since_create),
        (
            "retain-since-last-active-time",
            &mut gc.retain_since_last_active,
        ),
    ] {
        match data.get(key).map(|v| v.trim()) {
            None => {}
            Some("disabled") => *slot = None,
            Some(v) => match parse_go_duration(v) {
                Ok(d) => *slot = Some(d),
                Err(_) => errs.push(err(key, v, "must be a duration such as 15h, or disabled")),
            },
        }
    }
    if let Some(n) = int(data, "min-non-active-revisions", 0, errs) {
        gc.min_non_active = usize::try_from(n).unwrap_or(0);
    }
    match data.get("max-non-active-revisions").map(|v| v.trim()) {
        None => {}
        Some("disabled") => gc.max_non_active = None,
        Some(_) => {
            gc.max_non_active =
                int(data, "max-non-active-revisions", 0, errs).and_then(|n| usize::try_from(n).ok())
        }
    }
    if let Some(max) = gc.max_non_active
        && gc.min_non_active > max
    {
        errs.push(err(
            "min-non-active-revisions",
            &gc.min_non_active.to_string(),
            "must not exceed max-non-active-revisions",
        ));
    }
    gc
}

/// Validates one map's data; `Ok` when every key Swell knows has a valid value.
pub fn validate(map: &str, data: &Data) -> Result<(), FieldErrors> {
    let mut cfg = ServingConfig::default();
    let mut errs = FieldErrors::default();
    apply(&mut cfg, map, data, &mut errs);
    errs.into_result()
}

fn apply(cfg: &mut ServingConfig, map: &str, data: &Data, errs: &mut FieldErrors) {
    match map {
        "config-defaults" => cfg.defaults = parse_defaults(data, errs),
        "config-features" => cfg.features = parse_features(data, errs),
        "config-autoscaler" => cfg.autoscaler = autoscaler::parse(data, errs),
        "config-domain" => cfg.domains = parse_domains(data, errs),
        "config-network" => cfg.network = parse_network(data, errs),
        "config-gc" => cfg.gc = parse_gc(data, errs),
        "config-deployment" => {
            duration(data, "progress-deadline", errs);
            cfg.progress_deadline = data
                .get("progress-deadline")
                .and_then(|v| parse_go_duration(v.trim()).ok())
                .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
            if let Some(v) = data.get("registries-skipping-tag-resolving") {
                cfg.registries_skipping_tag_resolving = v
                    .split(',')
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty())
                    .collect();
            }
        }
        _ => {}
    }
}

/// Builds the configuration from the maps present; an invalid map (which admission
/// normally prevents) keeps its defaults.
pub fn from_maps<'a>(maps: impl IntoIterator<Item = (&'a str, &'a Data)>) -> ServingConfig {
    let mut cfg = ServingConfig::default();
    for (name, data) in maps {
        let mut errs = FieldErrors::default();
        let mut candidate = cfg.clone();
        apply(&mut candidate, name, data, &mut errs);
        if errs.is_empty() {
            cfg = candidate;
        }
    }
    cfg
}

impl ServingConfig {
    /// The domain for a Route with these labels; `svc.cluster.local` when none matches.
    pub fn domain_for(&self, labels: &BTreeMap<String, String>) -> String {
        self.domains
            .iter()
            .find(|r| r.selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .map_or_else(|| "svc.cluster.local".to_string(), |r| r.domain.clone())
    }

    /// The host of a Route (`tag`: of one of its tags) from the templates.
    pub fn host(&self, name: &str, namespace: &str, tag: Option<&str>, domain: &str) -> String {
        let name = match tag {
            Some(t) => self
                .network
                .tag_template
                .replace("{{.Tag}}", t)
                .replace("{{.Name}}", name),
            None => name.to_string(),
        };
        self.network
            .domain_template
            .replace("{{.Name}}", &name)
            .replace("{{.Namespace}}", namespace)
            .replace("{{.Domain}}", domain)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// ConfigMap data from pairs.
    pub(crate) fn data(pairs: &[(&str, &str)]) -> Data {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn initial_maps_are_valid() {
        for m in MAPS {
            assert_eq!(validate(m, &initial_data(m)), Ok(()), "{m}");
        }
    }

    #[test]
    fn maps_build_the_configuration_and_invalid_ones_keep_defaults() {
        let cfg = from_maps([
            ("config-autoscaler", &data(&[("stable-window", "6s")])),
            ("config-deployment", &data(&[("progress-deadline", "90s")])),
        ]);
        assert_eq!(
            cfg.autoscaler.stable_window,
            std::time::Duration::from_secs(6)
        );
        assert_eq!(cfg.progress_deadline, std::time::Duration::from_secs(90));
        let invalid = from_maps([(
            "config-autoscaler",
            &data(&[("stable-window", "6s"), ("max-scale-up-rate", "1")]),
        )]);
        assert_eq!(invalid.autoscaler, Autoscaler::default());
    }

    #[test]
    fn errors_name_the_key() {
        let e = validate(
            "config-defaults",
            &data(&[("revision-timeout-seconds", "abc")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("data.revision-timeout-seconds"),
            "{e}"
        );
        let e = validate(
            "config-network",
            &data(&[("domain-template", "{{.Name}}.{{.Foo}}")]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("data.domain-template") && e.to_string().contains(".Foo"),
            "{e}"
        );
        let e = validate("config-features", &data(&[("multi-container", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("data.multi-container"), "{e}");
        assert!(
            validate(
                "config-domain",
                &data(&[("example.com", "selector: [oops")])
            )
            .is_err()
        );
    }

    #[test]
    fn domains_pick_the_most_specific_selector() {
        let cfg = from_maps([(
            "config-domain",
            &data(&[
                ("example.com", ""),
                ("prod.example.com", "selector:\n  app: prod\n"),
            ]),
        )]);
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
        };
        assert_eq!(
            cfg.domain_for(&labels(&[("app", "prod")])),
            "prod.example.com"
        );
        assert_eq!(cfg.domain_for(&labels(&[])), "example.com");
        let none = from_maps([(
            "config-domain",
            &data(&[("prod.example.com", "selector:\n  app: prod\n")]),
        )]);
        assert_eq!(none.domain_for(&labels(&[])), "svc.cluster.local");
        assert_eq!(
            cfg.host("hello", "default", Some("v2"), "example.com"),
            "v2-hello.default.example.com"
        );
    }
}
