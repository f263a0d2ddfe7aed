//! Registry credentials as Kubernetes finds them: docker `config.json` documents (the
//! `.dockerconfigjson` of an `imagePullSecrets` Secret, or the server's own file) and
//! the legacy `.dockercfg` map, matched to a registry by host the way kubelet does.

use super::pull::Auth;
use base64::Engine;

/// Why a docker config cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Not JSON of the expected shape.
    #[error("not a docker config: {0}")]
    Malformed(String),
    /// An `auth` value that is not base64 of `user:password`.
    #[error("registry {0:?}: `auth` is not base64 of user:password")]
    BadAuth(String),
}

/// Credentials for registries, first match wins (a Revision's pull secrets in order,
/// then the server's own). `Debug` never shows a secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    entries: Vec<(String, Auth)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(r, _)| r))
            .finish()
    }
}

/// The host (and port) a config key or an image reference's registry names:
/// `https://index.docker.io/v1/` → `docker.io`, `http://127.0.0.1:5000` → `127.0.0.1:5000`.
fn registry_host(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

impl Credentials {
    /// Reads a docker config: `{"auths": {registry: entry}}` (`config.json`,
    /// `.dockerconfigjson`) or `{registry: entry}` (`.dockercfg`), where an entry has
    /// `auth` (base64 `user:password`), or `username` and `password`, or a
    /// `registrytoken`/`identitytoken`.
    pub fn from_docker_config(json: &[u8]) -> Result<Self, AuthError> {
        let doc: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let auths = doc.get("auths").unwrap_or(&doc);
        let Some(auths) = auths.as_object() else {
            return Err(AuthError::Malformed("`auths` is not an object".into()));
        };
        let mut entries = Vec::new();
        for (key, entry) in auths {
            let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).unwrap_or("");
            let auth = if !field("auth").is_empty() {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(field("auth").trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| AuthError::BadAuth(key.clone()))?;
                let (user, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| AuthError::BadAuth(key.clone()))?;
                Auth::Basic(user.into(), password.into())
            } else if !field("username").is_empty() {
                Auth::Basic(field("username").into(), field("password").into())
            } else if !field("registrytoken").is_empty() {
                Auth::Bearer(field("registrytoken").into())
            } else if !field("identitytoken").is_empty() {
                Auth::Bearer(field("identitytoken").into())
            } else {
                continue;
            };
            entries.push((registry_host(key), auth));
        }
        Ok(Credentials { entries })
    }

    /// These credentials, then `other`'s.
    pub fn then(mut self, other: &Credentials) -> Self {
        self.entries.extend(other.entries.iter().cloned());
        self
    }

    /// How to sign in to `registry` (`host[:port]`): the first entry for it, else
    /// anonymously.
    pub fn for_registry(&self, registry: &str) -> Auth {
        let host = registry_host(registry);
        self.entries
            .iter()
            .find(|(r, _)| *r == host)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    /// How to sign in to the registry `image` names (Docker Hub when it names none).
    pub fn for_image(&self, image: &str) -> Auth {
        match image.parse::<oci_client::Reference>() {
            Ok(r) => self.for_registry(r.registry()),
            Err(_) => Auth::Anonymous,
        }
    }

    /// No credentials at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_entries_match_their_registry() {
        let auth = base64::engine::general_purpose::STANDARD.encode("me:secret");
        let json = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"username": "hub", "password": "pw"}},
                "ghcr.io": {{"identitytoken": "tok"}},
                "empty.example": {{}}
            }}}}"#
        );
        let c = Credentials::from_docker_config(json.as_bytes()).unwrap();
        assert_eq!(
            c.for_registry("127.0.0.1:5000"),
            Auth::Basic("me".into(), "secret".into())
        );
        assert_eq!(
            c.for_registry("docker.io"),
            Auth::Basic("hub".into(), "pw".into())
        );
        assert_eq!(c.for_registry("ghcr.io"), Auth::Bearer("tok".into()));
        assert_eq!(c.for_registry("127.0.0.1:5001"), Auth::Anonymous);
        assert_eq!(c.for_registry("empty.example"), Auth::Anonymous);
        assert!(!format!("{c:?}").contains("secret"), "{c:?}");
    }

    #[test]
    fn legacy_dockercfg_and_precedence() {
        let first = Credentials::from_docker_config(
            br#"{"http://reg.example:5000": {"username": "a", "password": "1"}}"#,
        )
        .unwrap();
        let second = Credentials::from_docker_config(
            br#"{"auths": {"reg.example:5000": {"username": "b", "password": "2"}}}"#,
        )
        .unwrap();
        assert_eq!(
            first.then(&second).for_registry("reg.example:5000"),
            Auth::Basic("a".into(), "1".into())
        );
    }

    #[test]
    fn malformed_configs_are_refused() {
        for bad in [&b"[]"[..], b"{\"auths\": 3}", b"not json"] {
            assert!(Credentials::from_docker_config(bad).is_err());
        }
        let err = Credentials::from_docker_config(br#"{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}"#)
            .unwrap_err();
        assert_eq!(err, AuthError::BadAuth("r".into()));
    }
}
