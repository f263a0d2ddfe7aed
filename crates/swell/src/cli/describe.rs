//! What `describe` prints: the fields a person wants at a glance (URL, traffic with tags
//! and percent bars, Revisions with replicas and conditions, recent events), laid out
//! as kn's `describe` lays them out.

use super::Session;
use super::output::{self, age, bold, percent_bar, timestamp};
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use std::collections::BTreeMap;
use swell_api::{Condition, Revision, Service, TrafficTarget};

/// The Ready column and its reason.
pub fn ready(conditions: &[Condition]) -> (String, String) {
    match conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) => (output::status(&c.status), c.reason.clone()),
        None => (output::status("Unknown"), String::new()),
    }
}

/// A Revision's generation (`serving.knative.dev/configurationGeneration`).
pub fn generation(r: &Revision) -> i64 {
    r.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("serving.knative.dev/configurationGeneration"))
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// The namespace's events about `kind`/`name`, oldest first, at most the last ten.
pub async fn events_for(session: &Session, kind: &str, name: &str) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut events: Vec<Event> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some(kind)
                && e.involved_object.name.as_deref() == Some(name)
        })
        .collect();
    events.sort_by_key(event_time);
    let skip = events.len().saturating_sub(10);
    Ok(events.split_off(skip))
}

/// When an event last happened.
pub fn event_time(e: &Event) -> Option<jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

pub fn field(name: &str, value: impl std::fmt::Display) {
    println!("{:<12} {value}", format!("{name}:"));
}

pub fn header(name: &str, namespace: Option<&str>, created: Option<&jiff::Timestamp>) {
    field("Name", name);
    field("Namespace", namespace.unwrap_or_default());
    field("Age", age(created));
}

/// kn's condition marks: `++` true, `--` false, `!!` false warning, `??` unknown, ` I` info.
fn mark(c: &Condition) -> &'static str {
    match (c.status.as_str(), c.severity.as_str()) {
        ("True", _) => "++",
        ("False", "Warning") => "!!",
        ("False", "Info") => " I",
        ("False", _) => "--",
        _ => "??",
    }
}

/// The conditions block, Ready first.
pub fn print_conditions(conditions: &[Condition]) {
    println!("\n{}", bold("Conditions:"));
    let mut sorted: Vec<&Condition> = conditions.iter().collect();
    sorted.sort_by_key(|c| (c.type_ != "Ready", c.type_.clone()));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|c| {
            let reason = match (c.reason.as_str(), c.message.as_str()) {
                (r, "") => r.to_string(),
                ("", m) => m.to_string(),
                (r, m) => format!("{r} ({m})"),
            };
            vec![
                format!("  {}", mark(c)),
                c.type_.clone(),
                age(timestamp(c.last_transition_time.as_deref()).as_ref()),
                reason,
            ]
        })
        .collect();
    output::print_table(&["  OK", "TYPE", "AGE", "REASON"], &rows, false);
}

/// The events block, if there are any.
pub fn print_events(events: &[Event]) {
    if events.is_empty() {
        return;
    }
    println!("\n{}", bold("Events:"));
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                format!("  {}", age(event_time(e).as_ref())),
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default().replace('\n', " "),
            ]
        })
        .collect();
    output::print_table(&["  AGE", "TYPE", "REASON", "MESSAGE"], &rows, false);
}

/// Traffic targets as bars: `██████████░░░░░░░░░░  50%  @latest (hello-00002)  #tag  URL`.
pub fn print_traffic(traffic: &[TrafficTarget]) {
    println!("\n{}", bold("Traffic:"));
    if traffic.is_empty() {
        println!("  (none yet)");
        return;
    }
    let rows: Vec<Vec<String>> = traffic
        .iter()
        .map(|t| {
            let percent = t.percent.unwrap_or(0);
            let revision = t.revision_name.clone().unwrap_or_default();
            let target = if t.latest_revision == Some(true) {
                format!("@latest ({revision})")
            } else {
                revision
            };
            vec![
                format!("  {}", percent_bar(percent)),
                format!("{percent:>3}%"),
                target,
                t.tag.as_ref().map(|t| format!("#{t}")).unwrap_or_default(),
                if t.tag.is_some() {
                    t.url.clone().unwrap_or_default()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    output::print_table(&["", "", "", "", ""], &rows, true);
}

fn image(r: &Revision) -> String {
    let spec = r.spec.pod_spec.containers.first();
    let image = spec.and_then(|c| c.image.clone()).unwrap_or_default();
    let digest = r
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.first())
        .map(|c| c.image_digest.clone())
        .filter(|d| !d.is_empty());
    match digest.as_deref().and_then(|d| d.split_once("@sha256:")) {
        Some((_, hex)) => format!("{image} (pinned to {})", &hex[..hex.len().min(12)]),
        None => image,
    }
}

fn replicas(r: &Revision) -> String {
    let status = r.status.as_ref();
    let actual = status.and_then(|s| s.actual_replicas).unwrap_or(0);
    let desired = status.and_then(|s| s.desired_replicas).unwrap_or(0);
    format!("{actual}/{desired}")
}

/// `swell service describe`.
pub fn print_service(svc: &Service, revisions: &[Revision], events: &[Event]) {
    let meta = &svc.metadata;
    header(
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref(),
        meta.creation_timestamp.as_ref().map(|t| &t.0),
    );
    let status = svc.status.clone().unwrap_or_default();
    field("URL", status.route.url.clone().unwrap_or_default());
    print_traffic(&status.route.traffic);
    let percents: BTreeMap<&str, i64> =
        status
            .route
            .traffic
            .iter()
            .fold(BTreeMap::new(), |mut m, t| {
                if let Some(r) = t.revision_name.as_deref() {
                    *m.entry(r).or_insert(0) += t.percent.unwrap_or(0);
                }
                m
            });
    println!("\n{}", bold("Revisions:"));
    let rows: Vec<Vec<String>> = revisions
        .iter()
        .map(|r| {
            let name = r.metadata.name.clone().unwrap_or_default();
            let conditions = r
                .status
                .as_ref()
                .map(|s| s.status.conditions.clone())
                .unwrap_or_default();
            let (ready, reason) = ready(&conditions);
            vec![
                format!("  {name}"),
                format!("[{}]", generation(r)),
                percents
                    .get(name.as_str())
                    .map(|p| format!("{p}%"))
                    .unwrap_or_default(),
                replicas(r),
                output::conditions_summary(&conditions),
                ready,
                reason,
                image(r),
            ]
        })
        .collect();
    output::print_table(
        &[
            "  NAME",
            "GEN",
            "TRAFFIC",
            "REPLICAS",
            "CONDITIONS",
            "READY",
            "REASON",
            "IMAGE",
        ],
        &rows,
        false,
    );
    print_conditions(&status.status.conditions);
    print_events(events);
}

/// `swell revision describe`.
pub fn print_revision(r: &Revision, events: &[Event]) {
    let meta = &r.metadata;
    header(
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref(),
        meta.creation_timestamp.as_ref().map(|t| &t.0),
    );
    let labels = meta.labels.clone().unwrap_or_default();
    if let Some(s) = labels.get("serving.knative.dev/service") {
        field("Service", s);
    }
    field("Generation", generation(r));
    field("Image", image(r));
    field("Replicas", replicas(r));
    let container = r.spec.pod_spec.containers.first();
    if let Some(ports) = container.and_then(|c| c.ports.as_ref()) {
        let ports: Vec<String> = ports
            .iter()
            .map(|p| match &p.name {
                Some(n) => format!("{n}:{}", p.container_port),
                None => p.container_port.to_string(),
            })
            .collect();
        field("Port", ports.join(", "));
    }
    if let Some(env) = container.and_then(|c| c.env.as_ref()) {
        let env: Vec<String> = env
            .iter()
            .map(|e| match &e.value {
                Some(v) => format!("{}={v}", e.name),
                None => format!("{}=<from a reference>", e.name),
            })
            .collect();
        field("Env", env.join(", "));
    }
    if let Some(cc) = r.spec.container_concurrency {
        field("Concurrency", format!("{cc} (containerConcurrency)"));
    }
    if let Some(t) = r.spec.timeout_seconds {
        field("Timeout", format!("{t}s"));
    }
    let scaling: Vec<String> = meta
        .annotations
        .iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix("autoscaling.knative.dev/")
                .map(|k| format!("{k}={v}"))
        })
        .collect();
    if !scaling.is_empty() {
        field("Autoscaling", scaling.join(", "));
    }
    let conditions = r
        .status
        .as_ref()
        .map(|s| s.status.conditions.clone())
        .unwrap_or_default();
    print_conditions(&conditions);
    print_events(events);
}
