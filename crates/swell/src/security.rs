//! What the API's security is made of at start: the certificates (Swell's or the
//! operator's), the authenticator (client CA, static tokens, the ServiceAccount token
//! key) and the TLS configuration.

use crate::server::ServerArgs;
use anyhow::Context;
use std::sync::Arc;

/// The API's authenticator, TLS configuration and certificates, from the operator's
/// files or those Swell makes in the data directory.
pub fn api_security(
    args: &ServerArgs,
    store: Arc<dyn swell_store::Store>,
    replica_gateway: Option<std::net::IpAddr>,
) -> anyhow::Result<(
    Arc<swell_apiserver::auth::Authenticator>,
    rustls::ServerConfig,
    crate::pki::Certificates,
)> {
    let provided = crate::pki::Provided {
        cert_file: args.tls_cert_file.as_deref(),
        key_file: args.tls_private_key_file.as_deref(),
        client_ca_file: args.client_ca_file.as_deref(),
    };
    let mut names = crate::pki::serving_names(&args.tls_sans);
    names.extend(replica_gateway.map(|ip| ip.to_string()));
    let certs = crate::pki::ensure(&args.data_dir, &names, &provided)?;
    let tokens = match &args.token_auth_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --token-auth-file {}", path.display()))?;
            swell_apiserver::auth::TokenFile::parse(&text)
                .map_err(|e| anyhow::anyhow!("--token-auth-file {}: {e}", path.display()))?
        }
        None => swell_apiserver::auth::TokenFile::default(),
    };
    let issuer = swell_apiserver::auth::serviceaccount::TokenIssuer::new(
        &crate::pki::service_account_key(&args.data_dir)?,
    )
    .map_err(anyhow::Error::msg)?;
    let authenticator = Arc::new(
        swell_apiserver::auth::Authenticator::new(&certs.client_ca, tokens)
            .map_err(anyhow::Error::msg)?
            .with_service_accounts(Arc::new(issuer), store),
    );
    let tls = swell_apiserver::https::server_config(
        &certs.serving_cert,
        &certs.serving_key,
        &authenticator,
    )
    .map_err(anyhow::Error::msg)?;
    Ok((authenticator, tls, certs))
}
