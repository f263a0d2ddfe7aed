//! `swell autoscaler simulate`: runs a JSON-lines trace through the autoscaler's
//! windows and decider, as the server would (format: README, "Autoscaler simulator").

use anyhow::Context;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Autoscaler tools.
#[derive(Debug, clap::Args)]
pub struct AutoscalerArgs {
    #[command(subcommand)]
    command: AutoscalerCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AutoscalerCommand {
    /// Read a trace (JSON lines) on stdin; print the decider's output per tick.
    Simulate {
        /// `config-autoscaler` to run with: a ConfigMap (YAML or JSON) or just its
        /// `data` map. Without it, Knative's defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Reads `config-autoscaler` data from a ConfigMap or a plain map.
fn read_config(path: &PathBuf) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: serde_json::Value = serde_saphyr::from_str(&text)
        .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
    let map = match doc.get("data") {
        Some(d) if d.is_object() => d.clone(),
        _ => doc,
    };
    let serde_json::Value::Object(map) = map else {
        anyhow::bail!(
            "{}: expected a map of config-autoscaler keys",
            path.display()
        );
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => anyhow::bail!("{}: {k}: {other} is not a string", path.display()),
        })
        .collect()
}

/// Runs the verb.
pub fn run(args: AutoscalerArgs) -> anyhow::Result<()> {
    match args.command {
        AutoscalerCommand::Simulate { config } => {
            let data = config
                .as_ref()
                .map(read_config)
                .transpose()?
                .unwrap_or_default();
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            swell_autoscaler::simulate::run(data, stdin, std::io::BufWriter::new(stdout))?;
            Ok(())
        }
    }
}
