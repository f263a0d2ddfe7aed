//! `swell`: Knative Serving in one binary. `swell server` runs it; the other verbs are a
//! client for it (or for any Kubernetes cluster running Knative).

mod autoscaler;
mod cli;
mod image;
mod kubeconfig;
mod logging;
mod logs;
mod pki;
mod pods;
mod private;
mod quickstart;
mod replica_network;
mod security;
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
    /// Start a server here, deploy a sample Service, print its URL, keep serving.
    Quickstart(quickstart::QuickstartArgs),
    /// Run the Swell server: API, controllers and data plane.
    Server(server::ServerArgs),
    /// Create or update resources from YAML or JSON files (server-side apply).
    Apply(cli::apply::ApplyArgs),
    /// Show resources.
    Get(cli::get::GetArgs),
    /// Delete a resource and wait until it is gone.
    Delete(cli::delete::DeleteArgs),
    /// Services: create, update, apply, describe, list, delete, export (kn's flags).
    #[command(visible_aliases = ["ksvc", "services"])]
    Service(Box<cli::service::ServiceArgs>),
    /// Revisions: list, describe, delete.
    #[command(visible_aliases = ["revisions"])]
    Revision(cli::revision::RevisionArgs),
    /// Routes: list, describe.
    #[command(visible_aliases = ["routes"])]
    Route(cli::revision::RouteArgs),
    /// Domain mappings: create, list, describe, delete.
    #[command(visible_aliases = ["domains"])]
    Domain(cli::domain::DomainArgs),
    /// Events the controllers reported.
    Events(cli::events::EventsArgs),
    /// Knative's config-* maps by key: `get`, `set`.
    Config(cli::config::ConfigArgs),
    /// Run one of the test app's images (`helloworld`, …): the sample `quickstart` deploys.
    #[command(hide = true)]
    Testapp {
        /// The image and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Print a shell completion script: `swell completion bash|zsh|fish`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Autoscaler tools: `simulate` runs a metrics trace through the KPA decider.
    Autoscaler(autoscaler::AutoscalerArgs),
    /// The local image store: `pull`, `import`, `ls`, `rm`.
    Image(image::ImageArgs),
    /// What a Revision's replicas wrote to stdout and stderr.
    Logs(logs::LogsArgs),
    /// Kubeconfigs for more users: `create --user U [--group G]…`, a client certificate
    /// from Swell's CA.
    Kubeconfig(kubeconfig::KubeconfigArgs),
}

/// Help and version print as clap prints them; a usage error is one line (the first of
/// clap's, with where to read more) and exit code 1, as every other error.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("error: invalid arguments");
    eprintln!("{first} (see --help)");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return usage_error(e),
    };
    // The test app runs its own async runtime.
    if let Command::Testapp { args } = args.command {
        let argv = std::iter::once("swell-testapp".to_string()).chain(args);
        return swell_testapp::main_with(argv.collect());
    }
    // One TLS implementation for every client and server in the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Command::Kubeconfig(a) = args.command {
        return match kubeconfig::run(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
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
            Command::Quickstart(a) => {
                logging::init();
                quickstart::run(a).await
            }
            Command::Testapp { .. } | Command::Kubeconfig(_) => {
                unreachable!("handled before the runtime starts")
            }
            Command::Apply(a) => cli::apply::run(a).await,
            Command::Get(a) => cli::get::run(a).await,
            Command::Delete(a) => cli::delete::run(a).await,
            Command::Service(a) => cli::service::run(*a).await,
            Command::Revision(a) => cli::revision::run(a).await,
            Command::Route(a) => cli::revision::run_route(a).await,
            Command::Domain(a) => cli::domain::run(a).await,
            Command::Events(a) => cli::events::run(a).await,
            Command::Config(a) => cli::config::run(a).await,
            Command::Completion { shell } => {
                let mut command = <Args as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut command, "swell", &mut std::io::stdout());
                Ok(())
            }
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
