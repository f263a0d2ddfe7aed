//! `swell get KIND [NAME]`: kubectl-style tables (the server's own Table columns), or
//! the objects as YAML or JSON.

use super::{ClientArgs, discover, resolve};
use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Options of `swell get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// Resource type: `ksvc`, `services`, `revisions`, `rt`, `configmaps`, …
    pub kind: String,
    /// One object's name (default: all).
    pub name: Option<String>,
    /// Output format: `yaml` or `json` (default: a table).
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `swell get`.
pub async fn run(args: GetArgs) -> anyhow::Result<()> {
    if let Some(o) = args
        .output
        .as_deref()
        .filter(|o| !matches!(*o, "yaml" | "json"))
    {
        bail!("error: unknown output format {o:?}: use yaml or json");
    }
    let session = args.client.connect().await?;
    let all = discover(&session.client).await?;
    let served = resolve(&all, &args.kind)?;
    let namespace = (!args.all_namespaces).then_some(session.namespace.as_str());
    let path = served.path(namespace, args.name.as_deref());
    let table = args.output.is_none();
    let accept = if table {
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    } else {
        "application/json"
    };
    let request = http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())
        .context("cannot build the request")?;
    let text = session.client.request_text(request).await?;
    let body: Value = serde_json::from_str(&text).context("the server's answer is not JSON")?;
    match args.output.as_deref() {
        Some(format) => {
            let out = if args.name.is_some() {
                body
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": body["items"]})
            };
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", serde_saphyr::to_string(&out)?);
            }
        }
        None => print_table(&body, args.all_namespaces, namespace),
    }
    Ok(())
}

fn print_table(table: &Value, with_namespace: bool, namespace: Option<&str>) {
    let empty = Vec::new();
    let rows = table["rows"].as_array().unwrap_or(&empty);
    if rows.is_empty() {
        match namespace {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        }
        return;
    }
    let columns: Vec<(usize, String)> = table["columnDefinitions"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .enumerate()
        .filter(|(_, c)| c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, c)| (i, c["name"].as_str().unwrap_or("").to_uppercase()))
        .collect();
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> = columns.iter().map(|(_, n)| n.clone()).collect();
    if with_namespace {
        header.insert(0, "NAMESPACE".into());
    }
    lines.push(header);
    for row in rows {
        let mut line: Vec<String> = columns
            .iter()
            .map(|(i, _)| match &row["cells"][*i] {
                Value::String(s) => s.clone(),
                Value::Null => "<none>".to_string(),
                other => other.to_string(),
            })
            .collect();
        if with_namespace {
            line.insert(
                0,
                row.pointer("/object/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        println!("{}", cells.join("   ").trim_end());
    }
}
