//! `swell config get|set`: read and change Knative's `config-*` ConfigMaps by key
//! (`autoscaler.stable-window` is `stable-window` in `config-autoscaler`). The server
//! validates every change as it validates `kubectl edit`.

use super::ClientArgs;
use super::output;
use anyhow::bail;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use std::collections::BTreeMap;
use swell_api::config::{MAPS, NAMESPACE};

/// `swell config …`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print a key's value (`autoscaler.stable-window`), every key of a map
    /// (`autoscaler`), or every key set (no argument). Unset keys show their default.
    Get {
        /// `MAP.KEY`, `MAP`, or nothing.
        key: Option<String>,
        /// Leave out the table's header line.
        #[arg(long)]
        no_headers: bool,
    },
    /// Set a key: `swell config set autoscaler.stable-window 30s`.
    Set {
        /// `MAP.KEY`.
        key: String,
        /// The new value.
        value: String,
    },
}

/// `autoscaler` or `config-autoscaler` → `config-autoscaler`, if it is one of the maps.
fn map_name(name: &str) -> anyhow::Result<&'static str> {
    let full = if name.starts_with("config-") {
        name.to_string()
    } else {
        format!("config-{name}")
    };
    MAPS.iter().copied().find(|m| *m == full).ok_or_else(|| {
        let known: Vec<&str> = MAPS.iter().map(|m| &m[7..]).collect();
        anyhow::anyhow!(
            "unknown configuration map {name:?}: use one of {}",
            known.join(", ")
        )
    })
}

/// `MAP.KEY` → (map, key).
fn split_key(key: &str) -> anyhow::Result<(&'static str, &str)> {
    match key.split_once('.') {
        Some((map, k)) if !k.is_empty() => Ok((map_name(map)?, k)),
        _ => bail!("invalid key {key:?}: expected MAP.KEY, e.g. autoscaler.stable-window"),
    }
}

/// The defaults the map's `_example` block lists (`key: value` lines).
fn defaults(map: &ConfigMap) -> BTreeMap<String, String> {
    let example = map
        .data
        .as_ref()
        .and_then(|d| d.get("_example"))
        .cloned()
        .unwrap_or_default();
    example
        .lines()
        .filter(|l| !l.starts_with([' ', '#']))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// Runs `swell config …`.
pub async fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let session = args.client.connect().await?;
    let api: Api<ConfigMap> = Api::namespaced(session.client.clone(), NAMESPACE);
    match args.command {
        Command::Get { key: Some(key), .. } if key.contains('.') => {
            let (map, k) = split_key(&key)?;
            let cm = api.get(map).await?;
            match cm.data.as_ref().and_then(|d| d.get(k)) {
                Some(v) => println!("{v}"),
                None => match defaults(&cm).get(k) {
                    Some(v) => {
                        println!("{v}");
                        eprintln!("({map} does not set {k}; this is the default)");
                    }
                    None => bail!("{map} has no key {k:?} and Swell knows no default for it"),
                },
            }
        }
        Command::Get { key, no_headers } => {
            let maps: Vec<&str> = match &key {
                Some(map) => vec![map_name(map)?],
                None => MAPS.to_vec(),
            };
            let mut rows = Vec::new();
            for map in maps {
                let cm = api.get(map).await?;
                let set = cm.data.clone().unwrap_or_default();
                let short = &map[7..];
                for (k, v) in &set {
                    if k != "_example" {
                        rows.push(vec![
                            format!("{short}.{k}"),
                            v.replace('\n', "\\n"),
                            "set".into(),
                        ]);
                    }
                }
                if key.is_some() {
                    for (k, v) in defaults(&cm) {
                        if !set.contains_key(&k) {
                            rows.push(vec![format!("{short}.{k}"), v, "default".into()]);
                        }
                    }
                }
            }
            output::print_table(&["KEY", "VALUE", "SOURCE"], &rows, no_headers);
        }
        Command::Set { key, value } => {
            let (map, k) = split_key(&key)?;
            let patch = serde_json::json!({"data": {k: value}});
            api.patch(map, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            println!("{map}: {k} set to {value:?}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_a_map_and_a_key() {
        assert_eq!(
            split_key("autoscaler.stable-window").unwrap(),
            ("config-autoscaler", "stable-window")
        );
        assert_eq!(
            split_key("config-domain.example.com").unwrap(),
            ("config-domain", "example.com")
        );
        assert!(split_key("nope.x").is_err());
        assert!(split_key("autoscaler").is_err());
    }

    #[test]
    fn defaults_come_from_the_example_block() {
        let cm = ConfigMap {
            data: Some(BTreeMap::from([(
                "_example".to_string(),
                "# Copy a key\nstable-window: 60s\nenable-scale-to-zero: \"true\"\n  nested: no\n"
                    .to_string(),
            )])),
            ..Default::default()
        };
        let d = defaults(&cm);
        assert_eq!(d["stable-window"], "60s");
        assert_eq!(d["enable-scale-to-zero"], "true");
        assert!(!d.contains_key("nested"));
    }
}
