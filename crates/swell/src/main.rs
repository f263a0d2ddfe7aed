//! `swell`: Knative Serving in one binary. `swell server` runs it; the other verbs are a
//! client for it (or for any Kubernetes cluster running Knative).

mod autoscaler;
mod cli;
mod image;
mod logging;
mod logs;
mod server;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Knative Serving, in one binary.
#[derive(Debug, Parser)]
#[command(name = "swell", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Swell server: API, controllers and data plane.
    Server(server::ServerArgs),
    /// Create or update resources from YAML or JSON files (server-side apply).
    Apply(cli::apply::ApplyArgs),
    /// Show resources.
    Get(cli::get::GetArgs),
    /// Delete a resource and wait until it is gone.
    Delete(cli::delete::DeleteArgs),
    /// Autoscaler tools: `simulate` runs a metrics trace through the KPA decider.
    Autoscaler(autoscaler::AutoscalerArgs),
    /// The local image store: `pull`, `import`, `ls`, `rm`.
    Image(image::ImageArgs),
    /// What a Revision's replicas wrote to stdout and stderr.
    Logs(logs::LogsArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.command {
            Command::Server(a) => {
                logging::init();
                server::run(a).await
            }
            Command::Apply(a) => cli::apply::run(a).await,
            Command::Get(a) => cli::get::run(a).await,
            Command::Delete(a) => cli::delete::run(a).await,
            Command::Autoscaler(a) => autoscaler::run(a),
            Command::Image(a) => image::run(a).await,
            Command::Logs(a) => logs::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", cli::describe_error(&e));
            ExitCode::FAILURE
        }
    }
}
