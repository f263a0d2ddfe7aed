//! `swell domain create|list|describe|delete`: kn's verbs for DomainMappings, which give
//! a Service (or Route) a hostname of its own.

use super::output::{self, OutputArgs};
use super::{ClientArgs, describe};
use anyhow::bail;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use swell_api::{DomainMapping, KReference};

/// `swell domain …`.
#[derive(Debug, clap::Args)]
pub struct DomainArgs {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Map a hostname to a Service or Route.
    Create(CreateArgs),
    /// List domain mappings.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show a domain mapping: URL, target and conditions.
    Describe(DescribeArgs),
    /// Delete domain mappings.
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The hostname (`hello.example.com`).
    name: String,
    /// The target: `ksvc:NAME` (or just `NAME`), `kroute:NAME`, optionally `:NAMESPACE` after.
    #[arg(long = "ref", required = true)]
    reference: String,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
struct DescribeArgs {
    /// The hostname.
    name: String,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, clap::Args)]
struct DeleteArgs {
    /// The hostnames.
    #[arg(required = true)]
    names: Vec<String>,
}

/// `ksvc:hello`, `hello`, `kroute:hello:other-ns` → a KReference.
fn parse_ref(reference: &str) -> anyhow::Result<KReference> {
    let parts: Vec<&str> = reference.split(':').collect();
    let (kind, rest) = match parts.as_slice() {
        [name] => ("Service", vec![*name]),
        ["ksvc", rest @ ..] => ("Service", rest.to_vec()),
        ["kroute", rest @ ..] => ("Route", rest.to_vec()),
        _ => bail!(
            "invalid --ref {reference:?}: expected ksvc:NAME, kroute:NAME or NAME (optionally :NAMESPACE after)"
        ),
    };
    let (name, namespace) = match rest.as_slice() {
        [name] if !name.is_empty() => (*name, None),
        [name, ns] if !name.is_empty() && !ns.is_empty() => (*name, Some(ns.to_string())),
        _ => bail!("invalid --ref {reference:?}: the name is missing"),
    };
    Ok(KReference {
        kind: kind.into(),
        name: name.into(),
        namespace,
        api_version: "serving.knative.dev/v1".into(),
        group: None,
    })
}

/// Runs `swell domain …`.
pub async fn run(args: DomainArgs) -> anyhow::Result<()> {
    let session = args.client.connect().await?;
    let ns = session.namespace.clone();
    let api: Api<DomainMapping> = Api::namespaced(session.client.clone(), &ns);
    match args.command {
        Command::Create(a) => {
            let mut dm = DomainMapping::default();
            dm.metadata.name = Some(a.name.clone());
            dm.metadata.namespace = Some(ns.clone());
            dm.spec.reference = parse_ref(&a.reference)?;
            api.create(&PostParams::default(), &dm).await?;
            println!("Domain mapping '{}' created in namespace '{ns}'.", a.name);
        }
        Command::List(a) => {
            let items = api.list(&ListParams::default()).await?.items;
            if a.output.print_objects(&items, false)? {
                return Ok(());
            }
            if items.is_empty() {
                println!("No domain mapping found.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|d| {
                    let status = d.status.clone().unwrap_or_default();
                    vec![
                        d.metadata.name.clone().unwrap_or_default(),
                        status.url.clone().unwrap_or_default(),
                        describe::ready(&status.status.conditions).0,
                        d.spec.reference.name.clone(),
                    ]
                })
                .collect();
            output::print_table(
                &["NAME", "URL", "READY", "KSVC"],
                &rows,
                a.output.no_headers,
            );
        }
        Command::Describe(a) => {
            let d = api.get(&a.name).await?;
            if a.output.print_objects(std::slice::from_ref(&d), true)? {
                return Ok(());
            }
            let status = d.status.clone().unwrap_or_default();
            describe::header(
                &a.name,
                d.metadata.namespace.as_deref(),
                d.metadata.creation_timestamp.as_ref().map(|t| &t.0),
            );
            describe::field("URL", status.url.clone().unwrap_or_default());
            let r = &d.spec.reference;
            describe::field(
                "Reference",
                format!(
                    "{} {} ({})",
                    r.kind,
                    r.name,
                    r.namespace.as_deref().unwrap_or(&ns)
                ),
            );
            describe::print_conditions(&status.status.conditions);
            describe::print_events(
                &describe::events_for(&session, "DomainMapping", &a.name).await?,
            );
        }
        Command::Delete(a) => {
            for name in &a.names {
                api.delete(name, &DeleteParams::background()).await?;
                println!("Domain mapping '{name}' deleted in namespace '{ns}'.");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = parse_ref("hello").unwrap();
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("Service", "hello"));
        let r = parse_ref("kroute:web:prod").unwrap();
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.namespace.as_deref()),
            ("Route", "web", Some("prod"))
        );
        assert!(parse_ref("pod:x").is_err());
        assert!(parse_ref("ksvc:").is_err());
    }
}
