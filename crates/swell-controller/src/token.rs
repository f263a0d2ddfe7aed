//! How replicas reach the API as their ServiceAccount, as kubelet arranges it: where
//! the API is, tokens for projected `serviceAccountToken` volumes (requested through
//! the TokenRequest API, kept, and requested anew once 80 % of their lifetime has
//! passed), and the CA mounted with a token at
//! `/var/run/secrets/kubernetes.io/serviceaccount`.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where kubelet mounts a container's ServiceAccount token, CA and namespace.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What replicas need to call the API.
#[derive(Debug, Default)]
pub struct ApiAccess {
    /// Where replicas reach the API, if they can.
    pub endpoint: Option<std::net::SocketAddr>,
    /// The API's CA (PEM), mounted with a token at [`MOUNT_PATH`] by backends that mount
    /// volumes; `None` where nothing is mounted.
    pub ca: Option<String>,
    /// The tokens issued so far.
    pub tokens: TokenManager,
}

/// One token a volume asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Wanted {
    namespace: String,
    service_account: String,
    audience: Option<String>,
    expiration_seconds: i64,
}

/// Tokens already issued, reused until they are due for renewal.
#[derive(Debug, Default)]
pub struct TokenManager {
    tokens: Mutex<HashMap<Wanted, (String, Instant)>>,
}

impl TokenManager {
    /// A token of ServiceAccount `namespace/service_account` for `audience` (the
    /// API's when `None`), lasting `expiration_seconds`.
    pub async fn token(
        &self,
        client: &kube::Client,
        namespace: &str,
        service_account: &str,
        audience: Option<&str>,
        expiration_seconds: i64,
    ) -> Result<String, kube::Error> {
        let wanted = Wanted {
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            audience: audience.map(str::to_string),
            expiration_seconds,
        };
        if let Some((token, renew_at)) = self.lock().get(&wanted)
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        let issued = api
            .create_token_request(service_account, &PostParams::default(), &request)
            .await?;
        let token = issued.status.map(|s| s.token).unwrap_or_default();
        let lifetime = u64::try_from(expiration_seconds).unwrap_or(0);
        let renew_at = Instant::now() + Duration::from_secs(lifetime * 4 / 5);
        self.lock().insert(wanted, (token.clone(), renew_at));
        Ok(token)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Wanted, (String, Instant)>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
