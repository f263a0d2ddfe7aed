//! `swell kubeconfig create`: a client certificate from Swell's CA for a user and its
//! groups, printed as a kubeconfig for the server this data directory belongs to.

use anyhow::Context;
use std::path::PathBuf;

/// `swell kubeconfig …`.
#[derive(Debug, clap::Args)]
pub struct KubeconfigArgs {
    #[command(subcommand)]
    command: KubeconfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KubeconfigCommand {
    /// Issue a client certificate for a user and print a kubeconfig with it.
    Create(CreateArgs),
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The user (the certificate's CN), as RBAC bindings name it.
    #[arg(long)]
    user: String,
    /// A group the user is in (the certificate's O). Repeatable.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// The kubeconfig context's namespace.
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    /// How long the certificate is valid (Go duration: 24h, 90m, 8760h).
    #[arg(long, default_value = "8760h", value_parser = parse_expiration)]
    expiration: std::time::Duration,
    /// The server's data directory (its CA and kubeconfig).
    #[arg(long, env = "SWELL_DATA_DIR", default_value_os_t = crate::server::default_data_dir())]
    data_dir: PathBuf,
}

fn parse_expiration(s: &str) -> Result<std::time::Duration, String> {
    let d = swell_api::duration::parse_go_duration(s)?;
    if d < std::time::Duration::from_secs(600) {
        return Err(format!("{s} is too short: at least 10m"));
    }
    Ok(d)
}

/// A kubeconfig for `server`, trusting `ca_pem`, as `user` with a client certificate
/// and key (PEM) when there are any.
pub fn yaml(
    server: &str,
    ca_pem: &str,
    user: &str,
    credentials: Option<&(String, String)>,
    namespace: &str,
) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user_fields = match credentials {
        Some((cert, key)) => format!(
            "\n    client-certificate-data: {}\n    client-key-data: {}",
            b64(cert),
            b64(key)
        ),
        None => " {}".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: swell\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: swell\n  context:\n    cluster: swell\n    namespace: {namespace}\n    user: {user}\ncurrent-context: swell\nusers:\n- name: {user}\n  user:{user_fields}\n",
        ca = b64(ca_pem),
    )
}

/// Runs `swell kubeconfig`.
pub fn run(args: KubeconfigArgs) -> anyhow::Result<()> {
    let KubeconfigCommand::Create(a) = args.command;
    if a.user.is_empty() || a.user.contains(['\n', '/']) {
        anyhow::bail!("--user {:?} is not a user name", a.user);
    }
    let server_config = crate::server::kubeconfig_path(&a.data_dir);
    let config = kube::config::Kubeconfig::read_from(&server_config).with_context(|| {
        format!(
            "cannot read {}: start `swell server` with this data directory first",
            server_config.display()
        )
    })?;
    let cluster = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .context("the server's kubeconfig names no cluster")?;
    let server = cluster
        .server
        .clone()
        .context("the server's kubeconfig has no server")?;
    let ca = match &cluster.certificate_authority_data {
        Some(data) => {
            use base64::Engine;
            let pem = base64::engine::general_purpose::STANDARD
                .decode(data)
                .context("the server's kubeconfig has bad certificate-authority-data")?;
            String::from_utf8(pem).context("certificate-authority-data is not PEM")?
        }
        None => anyhow::bail!("the server's kubeconfig has no certificate-authority-data"),
    };
    let credentials = crate::pki::issue_client(&a.data_dir, &a.user, &a.groups, a.expiration)?;
    print!(
        "{}",
        yaml(&server, &ca, &a.user, Some(&credentials), &a.namespace)
    );
    Ok(())
}
