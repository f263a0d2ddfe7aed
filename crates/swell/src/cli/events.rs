//! `swell events`: what the controllers reported (Created, Updated, InternalError, …),
//! newest last, as `kubectl get events` lists them.

use super::output::{self, OutputArgs};
use super::{ClientArgs, describe};
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;

/// Options of `swell events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only events about this object: `NAME` or `KIND/NAME` (`service/hello`, `revision/hello-00001`).
    #[arg(long = "for")]
    pub for_object: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `swell events`.
pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let session = args.client.connect().await?;
    let api: Api<Event> = if args.all_namespaces {
        Api::all(session.client.clone())
    } else {
        Api::namespaced(session.client.clone(), &session.namespace)
    };
    let mut events = api.list(&ListParams::default()).await?.items;
    if let Some(wanted) = &args.for_object {
        let (kind, name) = match wanted.split_once('/') {
            Some((k, n)) => (Some(k.to_lowercase()), n),
            None => (None, wanted.as_str()),
        };
        events.retain(|e| {
            let o = &e.involved_object;
            o.name.as_deref() == Some(name)
                && kind.as_ref().is_none_or(|k| {
                    let actual = o.kind.as_deref().unwrap_or_default().to_lowercase();
                    *k == actual
                        || k.trim_end_matches('s') == actual
                        || (k == "ksvc" && actual == "service")
                })
        });
    }
    events.sort_by_key(describe::event_time);
    if args.output.print_objects(&events, false)? {
        return Ok(());
    }
    if events.is_empty() {
        println!("No events found.");
        return Ok(());
    }
    let header = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    let rows: Vec<(String, Vec<String>)> = events
        .iter()
        .map(|e| {
            let o = &e.involved_object;
            let row = vec![
                output::age(describe::event_time(e).as_ref()),
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                format!(
                    "{}/{}",
                    o.kind.as_deref().unwrap_or_default().to_lowercase(),
                    o.name.as_deref().unwrap_or_default()
                ),
                e.message.clone().unwrap_or_default().replace('\n', " "),
            ];
            (e.metadata.namespace.clone().unwrap_or_default(), row)
        })
        .collect();
    output::print_namespaced_table(&header, rows, args.all_namespaces, args.output.no_headers);
    Ok(())
}
