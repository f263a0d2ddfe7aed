//! `swell logs REVISION`: what a Revision's replicas wrote to stdout and stderr. Both
//! backends keep it per replica in the server's data directory; the Revision and its
//! container are checked through the API first.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use swell_api::Revision;

/// A Revision's logs.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The Revision.
    revision: String,
    /// Keep printing what the replicas write, new replicas included, until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// The container: the serving one when not given, or a sidecar or init container.
    #[arg(short, long)]
    container: Option<String>,
    /// The data directory of the server running the Revision.
    #[arg(long, env = "SWELL_DATA_DIR", default_value_os_t = crate::server::default_data_dir())]
    data_dir: PathBuf,
    #[command(flatten)]
    client: crate::cli::ClientArgs,
}

/// The replica logs in `dir` of the serving container (`<id>.log`), or of the
/// container `other` (`<id>.<other>.log`), by replica number.
fn replica_logs(dir: &Path, other: Option<&str>) -> BTreeMap<u64, PathBuf> {
    let suffix = other.map_or(".log".to_string(), |c| format!(".{c}.log"));
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(&suffix)?.parse().ok()?;
            Some((id, e.path()))
        })
        .collect()
}

/// Prints what `path` holds past `offset`, each line after `prefix`; a last line
/// still being written waits for its end unless `to_end`. Returns the new offset.
fn print_from(
    path: &Path,
    offset: u64,
    prefix: &str,
    to_end: bool,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let whole = if to_end {
        buf.len()
    } else {
        buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
    };
    for line in buf[..whole].split_inclusive(|b| *b == b'\n') {
        out.write_all(prefix.as_bytes())?;
        out.write_all(line)?;
        if !line.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(offset + whole as u64)
}

pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let session = args.client.connect().await?;
    let api: kube::Api<Revision> = kube::Api::namespaced(session.client, &session.namespace);
    let rev = api
        .get_opt(&args.revision)
        .await
        .with_context(|| format!("cannot read revision {:?}", args.revision))?
        .with_context(|| {
            format!(
                "revision {:?} not found in namespace {:?}",
                args.revision, session.namespace
            )
        })?;
    let spec = &rev.spec.pod_spec;
    let serving = swell_api::defaults::serving_container_index(&spec.containers)
        .map(|i| spec.containers[i].name.clone());
    let containers: Vec<String> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect();
    if let Some(c) = &args.container
        && !containers.contains(c)
    {
        bail!(
            "revision {:?} has no container {c:?} (it has: {})",
            args.revision,
            containers.join(", ")
        );
    }
    let other = args
        .container
        .as_deref()
        .filter(|c| Some(*c) != serving.as_deref());
    let dir = args
        .data_dir
        .join("replicas/logs")
        .join(&session.namespace)
        .join(&args.revision);
    let mut offsets: BTreeMap<u64, u64> = BTreeMap::new();
    let mut out = std::io::stdout().lock();
    loop {
        let logs = replica_logs(&dir, other);
        let several = logs.len() > 1;
        for (id, path) in &logs {
            let prefix = if several {
                format!("[{}-deployment-{id}] ", args.revision)
            } else {
                String::new()
            };
            let at = offsets.entry(*id).or_default();
            *at = print_from(path, *at, &prefix, !args.follow, &mut out)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        if !args.follow {
            if logs.is_empty() {
                eprintln!(
                    "revision {:?} has no logs in {} (no replica has run there yet)",
                    args.revision,
                    args.data_dir.display()
                );
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_being_written_waits_unless_printing_to_the_end() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("1.log");
        std::fs::write(&p, "one\ntw").unwrap();
        let mut out = Vec::new();
        let at = print_from(&p, 0, "[r] ", false, &mut out).unwrap();
        assert_eq!((at, out.as_slice()), (4, b"[r] one\n".as_slice()));
        std::fs::write(&p, "one\ntwo\nthr").unwrap();
        let at = print_from(&p, at, "[r] ", false, &mut out).unwrap();
        assert_eq!(at, 8);
        let at = print_from(&p, at, "[r] ", true, &mut out).unwrap();
        assert_eq!(
            (at, String::from_utf8(out).unwrap()),
            (11, "[r] one\n[r] two\n[r] thr\n".into())
        );
    }

    #[test]
    fn replica_logs_are_found_by_number() {
        let t = tempfile::tempdir().unwrap();
        for f in ["2.log", "10.log", "2.sidecar.log", "notes.txt"] {
            std::fs::write(t.path().join(f), "").unwrap();
        }
        assert_eq!(
            replica_logs(t.path(), None).keys().collect::<Vec<_>>(),
            [&2, &10]
        );
        assert_eq!(
            replica_logs(t.path(), Some("sidecar"))
                .keys()
                .collect::<Vec<_>>(),
            [&2]
        );
    }
}
