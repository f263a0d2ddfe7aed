//! Authentication as kube-apiserver does it: x509 client certificates (CN is the user,
//! each O a group) signed by the client CA, then bearer tokens: ServiceAccount tokens
//! the server signed, and those of the static token file (`--token-auth-file`).

use super::UserInfo;
use super::serviceaccount::{ISSUER, TokenIssuer};
use http::HeaderMap;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use std::collections::HashMap;
use std::sync::Arc;
use swell_store::Store;

/// What a TLS connection proved about its client, put on each of its requests: the
/// user of a client certificate that verified, the reason one did not, or nothing.
#[derive(Clone, Debug)]
pub enum Peer {
    /// No client certificate.
    Anonymous,
    /// A client certificate signed by the client CA.
    Certified(Arc<UserInfo>),
    /// A client certificate that did not verify: expired, or signed by another CA.
    Refused(Arc<str>),
}

/// Turns credentials into users.
pub struct Authenticator {
    client_ca: Arc<dyn ClientCertVerifier>,
    tokens: TokenFile,
    service_accounts: Option<(Arc<TokenIssuer>, Arc<dyn Store>)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.users.len())
            .finish_non_exhaustive()
    }
}

/// Why a credential was refused (the client gets 401 "Unauthorized" either way).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The client certificate did not verify.
    #[error("x509: {0}")]
    Certificate(String),
    /// The bearer token is not known.
    #[error("invalid bearer token")]
    Token,
    /// A ServiceAccount token that does not hold (expired, audience, account gone).
    #[error("invalid service account token: {0}")]
    ServiceAccount(String),
}

impl Authenticator {
    /// Trusts client certificates signed by a CA in `client_ca_pem` and the tokens of
    /// `tokens`.
    pub fn new(client_ca_pem: &str, tokens: TokenFile) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("client CA: {e}"))?;
            roots.add(cert).map_err(|e| format!("client CA: {e}"))?;
        }
        if roots.is_empty() {
            return Err("client CA: no certificate".to_string());
        }
        let client_ca = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client CA: {e}"))?;
        Ok(Self {
            client_ca,
            tokens,
            service_accounts: None,
        })
    }

    /// Also accepts the ServiceAccount tokens `issuer` signs, while their ServiceAccount
    /// exists in `store`.
    pub fn with_service_accounts(
        mut self,
        issuer: Arc<TokenIssuer>,
        store: Arc<dyn Store>,
    ) -> Self {
        self.service_accounts = Some((issuer, store));
        self
    }

    /// The ServiceAccount token issuer, once set.
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.service_accounts.as_ref().map(|(i, _)| i.as_ref())
    }

    /// Who a bearer token names, as TokenReview and authentication check it: a
    /// ServiceAccount token for one of `audiences`, or a static token.
    pub fn review_token(&self, token: &str, audiences: &[String]) -> Result<UserInfo, Refused> {
        if let Some((issuer, store)) = &self.service_accounts {
            match issuer.authenticate(store.as_ref(), token, audiences) {
                Ok(Some(claims)) => return Ok(claims.user()),
                Ok(None) => {}
                Err(e) => return Err(Refused::ServiceAccount(e)),
            }
        }
        self.tokens.get(token).cloned().ok_or(Refused::Token)
    }

    /// The verifier the TLS server asks for client certificates with.
    pub fn client_ca(&self) -> Arc<dyn ClientCertVerifier> {
        self.client_ca.clone()
    }

    /// What a connection's client certificates (end entity first) prove.
    pub fn peer(&self, certs: Option<&[CertificateDer<'static>]>) -> Peer {
        let Some((leaf, intermediates)) = certs.and_then(<[_]>::split_first) else {
            return Peer::Anonymous;
        };
        if let Err(e) = self
            .client_ca
            .verify_client_cert(leaf, intermediates, UnixTime::now())
        {
            return Peer::Refused(e.to_string().into());
        }
        match user_of(leaf) {
            Ok(user) => Peer::Certified(Arc::new(user)),
            Err(e) => Peer::Refused(e.into()),
        }
    }

    /// The user a request proves to be: `Ok(None)` when it carries no credential.
    pub fn authenticate(
        &self,
        peer: Option<&Peer>,
        headers: &HeaderMap,
    ) -> Result<Option<UserInfo>, Refused> {
        let mut refused = None;
        match peer {
            Some(Peer::Certified(user)) => return Ok(Some((**user).clone())),
            Some(Peer::Refused(why)) => refused = Some(Refused::Certificate(why.to_string())),
            Some(Peer::Anonymous) | None => {}
        }
        if let Some(token) = bearer(headers) {
            return self.review_token(token, &[ISSUER.to_string()]).map(Some);
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header, as kube-apiserver reads it.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// The user a client certificate names: CN the user, each O a group.
fn user_of(cert: &CertificateDer<'_>) -> Result<UserInfo, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("the client certificate does not parse: {e}"))?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or("the client certificate has no common name")?;
    let groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Ok(UserInfo::authenticated(name, "", &groups))
}

/// kube-apiserver's static token file: CSV lines `token,user,uid[,"group1,group2"]`.
#[derive(Debug, Default)]
pub struct TokenFile {
    users: HashMap<String, UserInfo>,
}

impl TokenFile {
    /// Parses the file's text; an error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            if line.trim().is_empty() {
                continue;
            }
            let record = csv_record(line).map_err(|e| format!("line {number}: {e}"))?;
            if record.len() < 3 {
                return Err(format!(
                    "line {number}: must have at least 3 columns (token, user name, user uid), found {}",
                    record.len()
                ));
            }
            if record[0].is_empty() {
                return Err(format!("line {number}: the token is empty"));
            }
            if record[1].is_empty() {
                return Err(format!("line {number}: the user name is empty"));
            }
            let groups: Vec<String> = record
                .get(3)
                .map(|g| {
                    g.split(',')
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let user = UserInfo::authenticated(&record[1], &record[2], &groups);
            if users.insert(record[0].clone(), user).is_some() {
                return Err(format!(
                    "line {number}: the token is already on an earlier line"
                ));
            }
        }
        Ok(Self { users })
    }

    fn get(&self, token: &str) -> Option<&UserInfo> {
        self.users.get(token)
    }
}

/// One CSV record (RFC 4180 quoting, leading spaces trimmed as Go's reader is told to).
fn csv_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".to_string()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in a field that is not quoted".to_string()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_reads_as_kube_apiservers() {
        let file = TokenFile::parse(
            "s3cret,alice,1001,\"team-a,ops\"\n\n  other,bob,1002\nq\"uoted,carol,3,\"a \"\"b\"\"\"\n",
        );
        assert!(file.is_err(), "a bare quote is refused");
        let file =
            TokenFile::parse("s3cret,alice,1001,\"team-a,ops\"\n\n other,bob,1002\n").unwrap();
        let alice = file.get("s3cret").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "1001");
        assert_eq!(alice.groups, ["team-a", "ops", "system:authenticated"]);
        assert_eq!(file.get("other").unwrap().groups, ["system:authenticated"]);
        assert!(file.get("nope").is_none());
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = TokenFile::parse("a,b,c\nonly,two\n").unwrap_err();
        assert_eq!(
            err,
            "line 2: must have at least 3 columns (token, user name, user uid), found 2"
        );
        let err = TokenFile::parse("a,b,c\n\"open,b,c\n").unwrap_err();
        assert_eq!(err, "line 2: a quoted field is not closed");
        let err = TokenFile::parse("a,b,c\na,d,e\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn bearer_tokens_are_read_as_kubernetes_reads_them() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "bearer   abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
