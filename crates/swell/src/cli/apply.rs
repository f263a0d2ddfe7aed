//! `swell apply -f FILE|DIR|-`: server-side apply of every document in YAML or JSON files.

use super::{ClientArgs, Served, discover};
use anyhow::{Context, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Options of `swell apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// File, directory (its *.yaml, *.yml and *.json files) or `-` for standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// A manifest and where it came from.
struct Document {
    source: String,
    object: Value,
}

fn read_documents(path: &Path) -> anyhow::Result<Vec<Document>> {
    let mut sources = Vec::new();
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        sources.push(("<stdin>".to_string(), text));
    } else if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read directory {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            })
            .collect();
        entries.sort();
        for p in entries {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            sources.push((p.display().to_string(), text));
        }
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        sources.push((path.display().to_string(), text));
    }
    let mut docs = Vec::new();
    for (source, text) in sources {
        let values: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
            let first = e
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            anyhow::anyhow!("error parsing {source}: {first}")
        })?;
        for v in values.into_iter().filter(|v| !v.is_null()) {
            if !v.is_object() {
                bail!("error parsing {source}: a document is not an object");
            }
            docs.push(Document {
                source: source.clone(),
                object: v,
            });
        }
    }
    Ok(docs)
}

/// Applies every document; stops at the first failure.
pub async fn run(args: ApplyArgs) -> anyhow::Result<()> {
    let mut docs = Vec::new();
    for f in &args.files {
        docs.extend(read_documents(f)?);
    }
    if docs.is_empty() {
        bail!("error: no objects passed to apply");
    }
    let session = args.client.connect().await?;
    let all = discover(&session.client).await?;
    for doc in docs {
        apply_one(&session, &all, &doc)
            .await
            .with_context(|| format!("error when applying {}", doc.source))?;
    }
    Ok(())
}

async fn apply_one(session: &super::Session, all: &[Served], doc: &Document) -> anyhow::Result<()> {
    let api_version = doc.object["apiVersion"]
        .as_str()
        .context("missing apiVersion")?;
    let kind = doc.object["kind"].as_str().context("missing kind")?;
    let name = doc
        .object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .context("missing metadata.name")?;
    let served = all
        .iter()
        .find(|s| s.api.api_version == api_version && s.api.kind == kind)
        .with_context(|| format!("the server does not serve {kind} in {api_version}"))?;
    let namespace = doc
        .object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&session.namespace);
    let api: Api<DynamicObject> = if served.namespaced {
        Api::namespaced_with(session.client.clone(), namespace, &served.api)
    } else {
        Api::all_with(session.client.clone(), &served.api)
    };
    let before = api
        .get_opt(name)
        .await?
        .and_then(|o| o.metadata.resource_version);
    let params = PatchParams::apply("swell").force();
    let after = api.patch(name, &params, &Patch::Apply(&doc.object)).await?;
    let verb = match (before, after.metadata.resource_version) {
        (None, _) => "created",
        (Some(a), Some(b)) if a == b => "unchanged",
        _ => "configured",
    };
    println!("{} {verb}", served.object_ref(name));
    Ok(())
}
