//! `swell image pull|import|ls|rm`: the local image store Revisions run from (in the
//! data directory, shared with `swell server`), filled from registries or without one.

use anyhow::Context;
use std::io::IsTerminal;
use std::path::PathBuf;
use swell_runtime::image::pull::{self, Auth};
use swell_runtime::image::{ImageStore, import};

/// The image store.
#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    /// The data directory whose image store to use.
    #[arg(long, env = "SWELL_DATA_DIR", default_value_os_t = crate::server::default_data_dir())]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ImageCommand {
    /// Fetch an image from its registry (plain HTTP for loopback registries).
    Pull {
        /// `registry/repository[:tag|@digest]` (Docker Hub when no registry is named).
        reference: String,
        /// User name for basic auth (with `--password` or `SWELL_REGISTRY_PASSWORD`).
        #[arg(long, requires = "password")]
        username: Option<String>,
        /// Password for basic auth.
        #[arg(long, env = "SWELL_REGISTRY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Load an OCI image layout (directory or tarball) or a `docker save` tarball.
    Import {
        /// The layout directory or the tarball (plain, gzip or zstd).
        path: PathBuf,
        /// The reference to give it (`name[:tag]`; `:latest` when no tag).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the images.
    #[command(alias = "list")]
    Ls,
    /// Remove images by reference, and whatever only they used.
    Rm {
        /// `name:tag` references.
        #[arg(required = true)]
        references: Vec<String>,
    },
}

/// The store of a data directory.
pub fn store(data_dir: &std::path::Path) -> anyhow::Result<ImageStore> {
    let dir = data_dir.join("images");
    ImageStore::open(&dir)
        .with_context(|| format!("cannot open the image store in {}", dir.display()))
}

fn human(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// `reference [#######       ] 4.2 MiB / 9.0 MiB`.
fn progress_bar(reference: &str, p: pull::Progress) -> String {
    const WIDTH: u64 = 24;
    let filled = (p.done.min(p.total) * WIDTH)
        .checked_div(p.total)
        .unwrap_or(WIDTH);
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { ' ' })
        .collect();
    format!("{reference} [{bar}] {} / {}", human(p.done), human(p.total))
}

/// Runs the verb.
pub async fn run(args: ImageArgs) -> anyhow::Result<()> {
    let store = store(&args.data_dir)?;
    match args.command {
        ImageCommand::Pull {
            reference,
            username,
            password,
        } => {
            let auth = match (username, password) {
                (Some(u), Some(p)) => Auth::Basic(u, p),
                _ => Auth::Anonymous,
            };
            // A bar redrawn in place on a terminal; nothing but the result in a pipe.
            let terminal = std::io::stderr().is_terminal();
            let show = |p: pull::Progress| {
                if terminal {
                    eprint!("\r\x1b[2K{}", progress_bar(&reference, p));
                }
            };
            let pulled = pull::pull_with_progress(&store, &reference, &auth, &show).await;
            if terminal {
                eprintln!();
            }
            let pulled = pulled.with_context(|| format!("cannot pull {reference}"))?;
            println!("Pulled {} ({})", pulled.reference, pulled.digest);
        }
        ImageCommand::Import { path, name } => {
            let imported = import::import(&store, &path, name.as_deref())
                .with_context(|| format!("cannot import {}", path.display()))?;
            for (reference, digest) in imported {
                println!("Imported {reference} ({digest})");
            }
        }
        ImageCommand::Ls => {
            println!("{:<40} {:<19} {:>10}", "REFERENCE", "DIGEST", "SIZE");
            for i in store.images()? {
                let short = &i.digest.hex()[..12];
                println!("{:<40} sha256:{short} {:>10}", i.reference, human(i.size));
            }
        }
        ImageCommand::Rm { references } => {
            let mut missing = Vec::new();
            for r in &references {
                if store.remove(r)? {
                    println!("Removed {r}");
                } else {
                    missing.push(r.as_str());
                }
            }
            if !missing.is_empty() {
                anyhow::bail!("no such image: {}", missing.join(", "));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_bytes_stored() {
        let p = |done, total| pull::Progress { done, total };
        assert_eq!(
            progress_bar("r", p(512 * 1024, 2048 * 1024)),
            "r [######                  ] 512.0 KiB / 2.0 MiB"
        );
        assert_eq!(
            progress_bar("r", p(0, 0)),
            format!("r [{}] 0.0 KiB / 0.0 KiB", "#".repeat(24))
        );
    }
}
