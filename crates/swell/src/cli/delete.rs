//! `swell delete KIND NAME`: deletes (Background propagation) and waits until the object
//! is gone.

use super::{ClientArgs, discover, resolve};
use anyhow::bail;
use kube::api::{Api, DeleteParams, DynamicObject};
use std::time::Duration;

/// Options of `swell delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Resource type: `ksvc`, `revision`, …
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// How long to wait for the object to be gone (finalizers may hold it).
    #[arg(long, default_value = "60s", value_parser = parse_seconds)]
    pub timeout: Duration,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let n = s.strip_suffix('s').unwrap_or(s);
    n.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("invalid duration {s:?}: use seconds, e.g. 60s"))
}

/// Runs `swell delete`.
pub async fn run(args: DeleteArgs) -> anyhow::Result<()> {
    let session = args.client.connect().await?;
    let all = discover(&session.client).await?;
    let served = resolve(&all, &args.kind)?;
    let api: Api<DynamicObject> = if served.namespaced {
        Api::namespaced_with(session.client.clone(), &session.namespace, &served.api)
    } else {
        Api::all_with(session.client.clone(), &served.api)
    };
    let deleted = api.delete(&args.name, &DeleteParams::background()).await?;
    let uid = deleted.left().and_then(|o| o.metadata.uid);
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        match api.get_opt(&args.name).await? {
            None => break,
            Some(o) if uid.is_some() && o.metadata.uid != uid => break,
            Some(_) if tokio::time::Instant::now() >= deadline => {
                bail!(
                    "error: timed out after {:?} waiting for {} {:?} to be deleted",
                    args.timeout,
                    served.qualified(),
                    args.name
                )
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    println!("{} {:?} deleted", served.qualified(), args.name);
    Ok(())
}
