//! `swell revision list|describe|delete` and `swell route list|describe`: kn's views of
//! the Revisions a Configuration stamped out and the Routes that split traffic over them.

use super::output::{self, OutputArgs};
use super::wait::WaitFlags;
use super::{ClientArgs, Session, describe};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use std::collections::BTreeMap;
use swell_api::{Revision, Route, Service};

/// `swell revision …`.
#[derive(Debug, clap::Args)]
pub struct RevisionArgs {
    #[command(subcommand)]
    command: RevisionCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Subcommand)]
enum RevisionCommand {
    /// List Revisions, newest first, with their share of traffic and tags.
    #[command(visible_alias = "ls")]
    List(RevisionListArgs),
    /// Show a Revision: image, replicas, settings, conditions and recent events.
    Describe(NamedArgs),
    /// Delete Revisions.
    #[command(visible_alias = "rm")]
    Delete(RevisionDeleteArgs),
}

#[derive(Debug, clap::Args)]
struct RevisionListArgs {
    /// Only this Revision.
    name: Option<String>,
    /// Only this Service's Revisions.
    #[arg(short = 's', long)]
    service: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
struct NamedArgs {
    /// The object's name.
    name: String,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
struct RevisionDeleteArgs {
    /// The Revisions to delete.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    wait: WaitFlags,
}

/// Runs `swell revision …`.
pub async fn run(args: RevisionArgs) -> anyhow::Result<()> {
    let session = args.client.connect().await?;
    let api: Api<Revision> = Api::namespaced(session.client.clone(), &session.namespace);
    match args.command {
        RevisionCommand::List(a) => list(&session, a).await,
        RevisionCommand::Describe(a) => {
            let r = api.get(&a.name).await?;
            if !a.output.print_objects(std::slice::from_ref(&r), true)? {
                let events = describe::events_for(&session, "Revision", &a.name).await?;
                describe::print_revision(&r, &events);
            }
            Ok(())
        }
        RevisionCommand::Delete(a) => {
            for name in &a.names {
                api.delete(name, &DeleteParams::background()).await?;
            }
            let since = tokio::time::Instant::now();
            for name in &a.names {
                a.wait.until_gone(&api, "revision", name, since).await?;
                println!(
                    "Revision '{name}' deleted in namespace '{}'.",
                    session.namespace
                );
            }
            Ok(())
        }
    }
}

async fn list(session: &Session, a: RevisionListArgs) -> anyhow::Result<()> {
    let (revisions, services): (Api<Revision>, Api<Service>) = if a.all_namespaces {
        (
            Api::all(session.client.clone()),
            Api::all(session.client.clone()),
        )
    } else {
        (
            Api::namespaced(session.client.clone(), &session.namespace),
            Api::namespaced(session.client.clone(), &session.namespace),
        )
    };
    let mut params = ListParams::default();
    if let Some(s) = &a.service {
        params = params.labels(&format!("serving.knative.dev/service={s}"));
    }
    let mut items = revisions.list(&params).await?.items;
    output::keep_named(&mut items, a.name.as_deref(), &session.namespace)?;
    let service_of = |r: &Revision| -> String {
        r.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("serving.knative.dev/service"))
            .cloned()
            .unwrap_or_default()
    };
    items.sort_by_key(|r| (service_of(r), std::cmp::Reverse(describe::generation(r))));
    if a.output.print_objects(&items, false)? {
        return Ok(());
    }
    if items.is_empty() {
        println!("No revisions found.");
        return Ok(());
    }
    // Traffic and tags come from each Service's resolved traffic.
    let mut traffic: BTreeMap<(String, String), (i64, Vec<String>)> = BTreeMap::new();
    for s in services.list(&ListParams::default()).await?.items {
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        for t in s.status.iter().flat_map(|st| st.route.traffic.iter()) {
            if let Some(r) = &t.revision_name {
                let e = traffic.entry((ns.clone(), r.clone())).or_default();
                e.0 += t.percent.unwrap_or(0);
                e.1.extend(t.tag.clone());
            }
        }
    }
    let header = vec![
        "NAME",
        "SERVICE",
        "TRAFFIC",
        "TAGS",
        "GENERATION",
        "AGE",
        "CONDITIONS",
        "READY",
        "REASON",
    ];
    let rows: Vec<(String, Vec<String>)> = items
        .iter()
        .map(|r| {
            let name = r.metadata.name.clone().unwrap_or_default();
            let ns = r.metadata.namespace.clone().unwrap_or_default();
            let (percent, tags) = traffic
                .get(&(ns.clone(), name.clone()))
                .cloned()
                .unwrap_or_default();
            let conditions = r
                .status
                .as_ref()
                .map(|s| s.status.conditions.clone())
                .unwrap_or_default();
            let (ready, reason) = describe::ready(&conditions);
            let row = vec![
                name,
                service_of(r),
                if percent > 0 {
                    format!("{percent}%")
                } else {
                    String::new()
                },
                tags.join(","),
                describe::generation(r).to_string(),
                output::age(r.metadata.creation_timestamp.as_ref().map(|t| &t.0)),
                output::conditions_summary(&conditions),
                ready,
                reason,
            ];
            (ns, row)
        })
        .collect();
    output::print_namespaced_table(&header, rows, a.all_namespaces, a.output.no_headers);
    Ok(())
}

/// `swell route …`.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {
    #[command(subcommand)]
    command: RouteCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Subcommand)]
enum RouteCommand {
    /// List Routes.
    #[command(visible_alias = "ls")]
    List(RouteListArgs),
    /// Show a Route: URL, traffic targets with tags, conditions.
    Describe(NamedArgs),
}

#[derive(Debug, clap::Args)]
struct RouteListArgs {
    /// Only this Route.
    name: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `swell route …`.
pub async fn run_route(args: RouteArgs) -> anyhow::Result<()> {
    let session = args.client.connect().await?;
    let api: Api<Route> = Api::namespaced(session.client.clone(), &session.namespace);
    match args.command {
        RouteCommand::List(a) => {
            let mut items = api.list(&ListParams::default()).await?.items;
            output::keep_named(&mut items, a.name.as_deref(), &session.namespace)?;
            if a.output.print_objects(&items, false)? {
                return Ok(());
            }
            if items.is_empty() {
                println!("No routes found.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|r| {
                    let status = r.status.clone().unwrap_or_default();
                    vec![
                        r.metadata.name.clone().unwrap_or_default(),
                        status.fields.url.clone().unwrap_or_default(),
                        describe::ready(&status.status.conditions).0,
                    ]
                })
                .collect();
            output::print_table(&["NAME", "URL", "READY"], &rows, a.output.no_headers);
            Ok(())
        }
        RouteCommand::Describe(a) => {
            let r = api.get(&a.name).await?;
            if a.output.print_objects(std::slice::from_ref(&r), true)? {
                return Ok(());
            }
            let status = r.status.clone().unwrap_or_default();
            describe::header(
                &a.name,
                r.metadata.namespace.as_deref(),
                r.metadata.creation_timestamp.as_ref().map(|t| &t.0),
            );
            describe::field("URL", status.fields.url.clone().unwrap_or_default());
            if let Some(s) = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("serving.knative.dev/service"))
            {
                describe::field("Service", s);
            }
            describe::print_traffic(&status.fields.traffic);
            describe::print_conditions(&status.status.conditions);
            describe::print_events(&describe::events_for(&session, "Route", &a.name).await?);
            Ok(())
        }
    }
}
