//! ServiceAccount tokens as kube-apiserver issues and checks them: JWTs (ES256) signed
//! by the server's key, with Kubernetes' claims (`sub`
//! `system:serviceaccount:NS:NAME`, the `kubernetes.io` claim naming the ServiceAccount
//! and its uid), valid while they have not expired and the ServiceAccount still exists
//! with that uid. TokenRequest (`serviceaccounts/NAME/token`, `kubectl create token`)
//! issues them; TokenReview checks one.

use super::UserInfo;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use swell_store::{ObjectKey, Store};

/// The issuer and default audience of tokens, as k3s's API server names itself.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// A TokenRequest's default lifetime (Kubernetes': one hour).
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(3600);
/// The shortest lifetime a TokenRequest may ask for (Kubernetes': ten minutes).
pub const MIN_EXPIRATION: Duration = Duration::from_secs(600);

/// Signs and checks ServiceAccount tokens with one ECDSA P-256 key.
pub struct TokenIssuer {
    key: EcdsaKeyPair,
    key_id: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What a token names, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountClaims {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid when the token was issued.
    pub uid: String,
    /// The token's id (`jti`).
    pub id: String,
    /// The audiences it was issued for.
    pub audiences: Vec<String>,
}

impl ServiceAccountClaims {
    /// The user the token authenticates as.
    pub fn user(&self) -> UserInfo {
        let mut user = UserInfo::authenticated(
            &format!("system:serviceaccount:{}:{}", self.namespace, self.name),
            &self.uid,
            &[
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{}", self.namespace),
            ],
        );
        user.extra = BTreeMap::from([(
            "authentication.kubernetes.io/credential-id".to_string(),
            vec![format!("JTI={}", self.id)],
        )]);
        user
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenIssuer {
    /// An issuer with the PKCS#8 (DER) ECDSA P-256 key `pkcs8`.
    pub fn new(pkcs8: &[u8]) -> Result<Self, String> {
        let rng = ring::rand::SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                .map_err(|e| {
                    format!("the service account key is not an ECDSA P-256 PKCS#8 key: {e}")
                })?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let key_id = B64.encode(&digest.as_ref()[..16]);
        Ok(Self { key, key_id })
    }

    /// A token for ServiceAccount `namespace/name` (uid `uid`) for `audiences`, valid
    /// for `lifetime`; and when it expires (seconds since the epoch).
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        lifetime: Duration,
    ) -> Result<(String, u64), String> {
        let iat = now();
        let exp = iat + lifetime.as_secs();
        let header = json!({"alg": "ES256", "kid": self.key_id, "typ": "JWT"});
        let claims = json!({
            "aud": audiences,
            "exp": exp,
            "iat": iat,
            "nbf": iat,
            "iss": ISSUER,
            "jti": uuid::Uuid::new_v4().to_string(),
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        });
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = ring::rand::SystemRandom::new();
        let sig = self
            .key
            .sign(&rng, signing_input.as_bytes())
            .map_err(|_| "cannot sign the token".to_string())?;
        Ok((format!("{signing_input}.{}", B64.encode(sig.as_ref())), exp))
    }

    /// Checks a token's signature, issuer, lifetime and audience (one of `audiences`);
    /// `Ok(None)` when it is not one of this issuer's tokens at all.
    pub fn verify(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Option<ServiceAccountClaims>, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let decode = |p: &str| B64.decode(p).ok();
        let (Some(header), Some(claims), Some(sig)) = (decode(h), decode(c), decode(s)) else {
            return Ok(None);
        };
        let Ok(claims) = serde_json::from_slice::<Value>(&claims) else {
            return Ok(None);
        };
        if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
            return Ok(None);
        }
        let header: Value =
            serde_json::from_slice(&header).map_err(|_| "bad token header".to_string())?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err("unexpected token signing algorithm".to_string());
        }
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        public
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| "invalid token signature".to_string())?;
        let t = now();
        let number = |k: &str| claims.get(k).and_then(Value::as_u64);
        if number("exp").is_none_or(|exp| exp <= t) {
            return Err("token has expired".to_string());
        }
        if number("nbf").is_some_and(|nbf| nbf > t + 60) {
            return Err("token is not valid yet".to_string());
        }
        let token_audiences: Vec<String> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        if !token_audiences.iter().any(|a| audiences.contains(a)) {
            return Err("token audiences do not match".to_string());
        }
        let k8s = &claims["kubernetes.io"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Ok(Some(ServiceAccountClaims {
            namespace: text(&k8s["namespace"]),
            name: text(&k8s["serviceaccount"]["name"]),
            uid: text(&k8s["serviceaccount"]["uid"]),
            id: text(&claims["jti"]),
            audiences: token_audiences,
        }))
    }

    /// Checks a token as authentication does: valid for the API's audience and naming a
    /// ServiceAccount that still exists with the same uid.
    pub fn authenticate(
        &self,
        store: &dyn Store,
        token: &str,
        audiences: &[String],
    ) -> Result<Option<ServiceAccountClaims>, String> {
        let Some(claims) = self.verify(token, audiences)? else {
            return Ok(None);
        };
        let key = ObjectKey::new("", "serviceaccounts", &claims.namespace, &claims.name);
        let stored = store.get(&key).map_err(|e| e.to_string())?;
        match stored
            .as_ref()
            .and_then(|sa| sa.pointer("/metadata/uid"))
            .and_then(Value::as_str)
        {
            Some(uid) if uid == claims.uid => Ok(Some(claims)),
            Some(_) => Err("the service account was deleted and created again".to_string()),
            None => Err(format!("serviceaccounts {:?} not found", claims.name)),
        }
    }
}

/// Makes `default` ServiceAccounts in every namespace that lacks one, as Kubernetes'
/// ServiceAccount controller does.
pub async fn ensure_default_service_accounts(
    store: &dyn Store,
) -> Result<(), swell_store::StoreError> {
    let namespaces = store.list(&swell_store::ListScope::all("", "namespaces"))?;
    for ns in namespaces.items {
        let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        if ns.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let key = ObjectKey::new("", "serviceaccounts", name, "default");
        if store.get(&key)?.is_none() {
            let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}});
            match store
                .create(&key, sa, &swell_store::WriteOptions::default())
                .await
            {
                Ok(_) | Err(swell_store::StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        TokenIssuer::new(pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn tokens_verify_for_their_audience_only() {
        let i = issuer();
        let api = vec![ISSUER.to_string()];
        let (token, exp) = i
            .issue("team", "builder", "u-1", &api, DEFAULT_EXPIRATION)
            .unwrap();
        assert!(exp > now());
        let claims = i.verify(&token, &api).unwrap().unwrap();
        assert_eq!(
            (
                claims.namespace.as_str(),
                claims.name.as_str(),
                claims.uid.as_str()
            ),
            ("team", "builder", "u-1")
        );
        assert_eq!(claims.user().name, "system:serviceaccount:team:builder");
        assert_eq!(
            claims.user().groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
        assert!(i.verify(&token, &["other".to_string()]).is_err());
        // Another key's token, or a tampered one, does not verify.
        assert!(issuer().verify(&token, &api).is_err());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(json!({"iss": ISSUER, "aud": api, "exp": now() + 100, "kubernetes.io": {"namespace": "kube-system", "serviceaccount": {"name": "admin"}}}).to_string());
        parts[1] = &forged;
        assert!(i.verify(&parts.join("."), &api).is_err());
        assert_eq!(i.verify("static-token", &api), Ok(None));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let i = issuer();
        let api = vec![ISSUER.to_string()];
        let (token, _) = i
            .issue("team", "builder", "u-1", &api, Duration::ZERO)
            .unwrap();
        assert_eq!(i.verify(&token, &api), Err("token has expired".to_string()));
    }
}
