//! `swell service create|update|apply|describe|list|delete|export`: kn's Service verbs,
//! through kube-rs against any API server that serves Knative.

use super::flags::ServiceFlags;
use super::output::{self, OutputArgs};
use super::traffic::TrafficFlags;
use super::wait::{self, WaitFlags};
use super::{ClientArgs, Session, describe};
use anyhow::{Context, bail};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use std::time::Duration;
use swell_api::{Revision, Service};

/// `swell service …`.
#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a Service and wait until it is ready.
    Create(CreateArgs),
    /// Change a Service (a new Revision when the template changes) and wait until it is ready.
    Update(ChangeArgs),
    /// Create a Service, or make an existing one match these flags exactly.
    Apply(ChangeArgs),
    /// Show a Service: URL, traffic, Revisions, conditions and recent events.
    Describe(DescribeArgs),
    /// List Services.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Delete Services and wait until they are gone.
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    /// Print a Service as a manifest to apply elsewhere (no status, no server fields).
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    #[command(flatten)]
    change: ChangeArgs,
    /// Replace the Service if it exists.
    #[arg(long)]
    force: bool,
}

/// What `create`, `update` and `apply` take.
#[derive(Debug, clap::Args)]
struct ChangeArgs {
    /// The Service's name.
    name: String,
    #[command(flatten)]
    flags: ServiceFlags,
    #[command(flatten)]
    traffic: TrafficFlags,
    #[command(flatten)]
    wait: WaitFlags,
}

#[derive(Debug, clap::Args)]
struct DescribeArgs {
    /// The Service's name.
    name: String,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only this Service.
    name: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
struct DeleteArgs {
    /// The Services to delete.
    #[arg(required_unless_present = "all")]
    names: Vec<String>,
    /// Delete every Service in the namespace.
    #[arg(long, conflicts_with = "names")]
    all: bool,
    #[command(flatten)]
    wait: WaitFlags,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// The Service's name.
    name: String,
    /// `yaml` (default) or `json`.
    #[arg(short = 'o', long, default_value = "yaml", value_parser = ["yaml", "json"])]
    output: String,
}

/// Runs `swell service …`.
pub async fn run(args: ServiceArgs) -> anyhow::Result<()> {
    let session = args.client.connect().await?;
    match args.command {
        Command::Create(a) => create(&session, a).await,
        Command::Update(a) => update(&session, a).await,
        Command::Apply(a) => apply(&session, a).await,
        Command::Describe(a) => describe_service(&session, a).await,
        Command::List(a) => list(&session, a).await,
        Command::Delete(a) => delete(&session, a).await,
        Command::Export(a) => export(&session, a).await,
    }
}

fn services(session: &Session) -> Api<Service> {
    Api::namespaced(session.client.clone(), &session.namespace)
}

fn new_service(session: &Session, name: &str) -> Service {
    let mut svc = Service::default();
    svc.metadata.name = Some(name.to_string());
    svc.metadata.namespace = Some(session.namespace.clone());
    svc
}

async fn create(session: &Session, args: CreateArgs) -> anyhow::Result<()> {
    let (a, force) = (args.change, args.force);
    if a.flags.image.is_none() {
        bail!("'service create' requires the image name to run provided with the --image option");
    }
    let api = services(session);
    let mut svc = new_service(session, &a.name);
    a.flags.edit(&mut svc)?;
    if a.traffic.any() {
        svc.spec.traffic = a.traffic.compute(&svc, true)?;
    }
    let ns = &session.namespace;
    let (created, verb) = match api.get_opt(&a.name).await? {
        Some(_) if !force => bail!(
            "cannot create service '{}' in namespace '{ns}' because the service already exists and no --force option was given",
            a.name
        ),
        Some(existing) => {
            svc.metadata.resource_version = existing.metadata.resource_version;
            announce(&a.wait, "Replacing", &a.name, ns);
            let replaced = api.replace(&a.name, &PostParams::default(), &svc).await?;
            (replaced, "replaced")
        }
        None => {
            announce(&a.wait, "Creating", &a.name, ns);
            (api.create(&PostParams::default(), &svc).await?, "created")
        }
    };
    finish(session, &a.wait, &created, verb, None).await
}

async fn update(session: &Session, a: ChangeArgs) -> anyhow::Result<()> {
    let api = services(session);
    // Another writer may change the Service between our read and write: retry on conflict.
    for attempt in 0.. {
        let existing = api.get(&a.name).await?;
        let mut svc = existing.clone();
        a.flags.edit(&mut svc)?;
        if a.traffic.any() {
            svc.spec.traffic = a.traffic.compute(&svc, false)?;
        }
        if attempt == 0 {
            announce(&a.wait, "Updating", &a.name, &session.namespace);
        }
        match api.replace(&a.name, &PostParams::default(), &svc).await {
            Ok(updated) => {
                let before = latest_created(&existing);
                return finish(session, &a.wait, &updated, "updated", before).await;
            }
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 5 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the retry loop returns")
}

async fn apply(session: &Session, a: ChangeArgs) -> anyhow::Result<()> {
    let api = services(session);
    let mut desired = new_service(session, &a.name);
    a.flags.edit(&mut desired)?;
    if a.traffic.any() {
        desired.spec.traffic = a.traffic.compute(&desired, true)?;
    }
    let ns = &session.namespace;
    let Some(existing) = api.get_opt(&a.name).await? else {
        if a.flags.image.is_none() {
            bail!(
                "'service apply' requires the image name to run provided with the --image option when the service does not exist"
            );
        }
        announce(&a.wait, "Creating", &a.name, ns);
        let created = api.create(&PostParams::default(), &desired).await?;
        return finish(session, &a.wait, &created, "created", None).await;
    };
    let mut svc = existing.clone();
    svc.spec = desired.spec;
    svc.metadata.labels = desired.metadata.labels;
    svc.metadata.annotations = desired.metadata.annotations;
    if svc.spec.template.spec.pod_spec.containers[0]
        .image
        .is_none()
    {
        svc.spec.template.spec.pod_spec.containers[0].image = existing
            .spec
            .template
            .spec
            .pod_spec
            .containers
            .first()
            .and_then(|c| c.image.clone());
    }
    // What the server would store, to tell a real change from a restatement.
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let would_be = api.replace(&a.name, &dry_run, &svc).await?;
    if would_be.spec == existing.spec
        && would_be.metadata.labels == existing.metadata.labels
        && would_be.metadata.annotations == existing.metadata.annotations
    {
        println!("No changes to apply to service '{}'.", a.name);
        return Ok(());
    }
    announce(&a.wait, "Applying", &a.name, ns);
    let updated = api.replace(&a.name, &PostParams::default(), &svc).await?;
    finish(
        session,
        &a.wait,
        &updated,
        "applied",
        latest_created(&existing),
    )
    .await
}

fn announce(wait: &WaitFlags, verb: &str, name: &str, ns: &str) {
    if !wait.no_wait {
        println!("{verb} service '{name}' in namespace '{ns}':\n");
    }
}

fn latest_created(svc: &Service) -> Option<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.configuration.latest_created_revision_name.clone())
}

/// Waits (unless `--no-wait`) and prints kn's closing lines.
async fn finish(
    session: &Session,
    wait: &WaitFlags,
    svc: &Service,
    verb: &str,
    latest_before: Option<String>,
) -> anyhow::Result<()> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let ns = &session.namespace;
    if wait.no_wait {
        println!("Service '{name}' {verb} in namespace '{ns}'.");
        return Ok(());
    }
    let generation = svc.metadata.generation.unwrap_or(1);
    let ready = wait::until_ready(
        &session.client,
        ns,
        &name,
        generation,
        Duration::from_secs(wait.wait_timeout),
    )
    .await?;
    let status = ready.status.unwrap_or_default();
    let latest = status
        .configuration
        .latest_ready_revision_name
        .unwrap_or_default();
    let url = status.route.url.unwrap_or_default();
    println!();
    if latest_before.as_deref() == Some(latest.as_str()) {
        println!(
            "Service '{name}' with latest revision '{latest}' (unchanged) is available at URL:"
        );
    } else {
        println!("Service '{name}' {verb} to latest revision '{latest}' is available at URL:");
    }
    println!("{url}");
    Ok(())
}

async fn list(session: &Session, a: ListArgs) -> anyhow::Result<()> {
    let api: Api<Service> = if a.all_namespaces {
        Api::all(session.client.clone())
    } else {
        services(session)
    };
    let mut items = api.list(&ListParams::default()).await?.items;
    output::keep_named(&mut items, a.name.as_deref(), &session.namespace)?;
    if a.output.print_objects(&items, false)? {
        return Ok(());
    }
    if items.is_empty() {
        println!("No services found.");
        return Ok(());
    }
    let header = vec![
        "NAME",
        "URL",
        "LATEST",
        "AGE",
        "CONDITIONS",
        "READY",
        "REASON",
    ];
    let rows: Vec<(String, Vec<String>)> = items
        .iter()
        .map(|s| {
            let status = s.status.clone().unwrap_or_default();
            let (ready, reason) = describe::ready(&status.status.conditions);
            let row = vec![
                s.metadata.name.clone().unwrap_or_default(),
                status.route.url.clone().unwrap_or_default(),
                status
                    .configuration
                    .latest_created_revision_name
                    .clone()
                    .unwrap_or_default(),
                output::age(s.metadata.creation_timestamp.as_ref().map(|t| &t.0)),
                output::conditions_summary(&status.status.conditions),
                ready,
                reason,
            ];
            (s.metadata.namespace.clone().unwrap_or_default(), row)
        })
        .collect();
    output::print_namespaced_table(&header, rows, a.all_namespaces, a.output.no_headers);
    Ok(())
}

async fn describe_service(session: &Session, a: DescribeArgs) -> anyhow::Result<()> {
    let svc = services(session).get(&a.name).await?;
    if a.output.print_objects(std::slice::from_ref(&svc), true)? {
        return Ok(());
    }
    let revisions: Api<Revision> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut owned = revisions
        .list(&ListParams::default().labels(&format!("serving.knative.dev/service={}", a.name)))
        .await?
        .items;
    owned.sort_by_key(|r| std::cmp::Reverse(describe::generation(r)));
    let events = describe::events_for(session, "Service", &a.name).await?;
    describe::print_service(&svc, &owned, &events);
    Ok(())
}

async fn delete(session: &Session, a: DeleteArgs) -> anyhow::Result<()> {
    let api = services(session);
    let names = if a.all {
        api.list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect()
    } else {
        a.names
    };
    let ns = &session.namespace;
    for name in &names {
        api.delete(name, &DeleteParams::background()).await?;
    }
    let since = tokio::time::Instant::now();
    for name in &names {
        a.wait.until_gone(&api, "service", name, since).await?;
        println!("Service '{name}' successfully deleted in namespace '{ns}'.");
    }
    Ok(())
}

async fn export(session: &Session, a: ExportArgs) -> anyhow::Result<()> {
    let svc = services(session).get(&a.name).await?;
    let mut clean = Service::default();
    clean.metadata.name = svc.metadata.name;
    clean.metadata.namespace = svc.metadata.namespace;
    clean.metadata.labels = svc.metadata.labels;
    let mut annotations = svc.metadata.annotations.unwrap_or_default();
    annotations.retain(|k, _| {
        !k.starts_with("serving.knative.dev/")
            && k != "kubectl.kubernetes.io/last-applied-configuration"
    });
    clean.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    clean.spec = svc.spec;
    let document = output::document(&clean)?;
    if a.output == "json" {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print!(
            "{}",
            serde_saphyr::to_string(&document).context("cannot write YAML")?
        );
    }
    Ok(())
}
