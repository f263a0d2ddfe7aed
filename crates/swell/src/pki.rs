//! The server's certificates, as k3s keeps them: a CA made on first start, and the
//! serving and admin client certificates it signs, in the data directory's `pki/`
//! (0700, every file 0600) and reused after a restart; or the operator's own files
//! (kube-apiserver's `--tls-cert-file`, `--tls-private-key-file`, `--client-ca-file`).

mod subject;

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// The user the server's own kubeconfig names, as k3s's and kubeadm's admin.
pub const ADMIN_USER: &str = "swell-admin";
/// The group that RBAC always allows (kube-apiserver's privileged group).
pub const ADMIN_GROUP: &str = "system:masters";

const CA_YEARS: i64 = 10;
/// Serving and client certificates last a year, as k3s's.
const LEAF_DAYS: i64 = 365;
/// A certificate this close to its end is made anew at start.
const RENEW_BEFORE_DAYS: i64 = 30;

/// What the server serves with and trusts.
#[derive(Debug)]
pub struct Certificates {
    /// The serving certificate chain (PEM).
    pub serving_cert: String,
    /// Its private key (PEM).
    pub serving_key: String,
    /// The CAs client certificates must be signed by (PEM).
    pub client_ca: String,
    /// What clients should trust to reach the server (PEM): Swell's CA, or the chain of
    /// the operator's serving certificate.
    pub server_ca: String,
    /// The admin client certificate and key (PEM) for the kubeconfig the server writes;
    /// `None` when the operator brings a client CA Swell cannot sign with.
    pub admin: Option<(String, String)>,
}

/// Where the generated files live.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

/// The operator's own files (kube-apiserver's flags); each `None` falls back to Swell's.
#[derive(Debug, Default)]
pub struct Provided<'a> {
    pub cert_file: Option<&'a Path>,
    pub key_file: Option<&'a Path>,
    pub client_ca_file: Option<&'a Path>,
}

/// Loads or makes the server's certificates: Swell's CA (made once), a serving
/// certificate for `sans` (made anew when a name is missing or it nears its end) and
/// the admin's client certificate, unless the operator provides their own.
pub fn ensure(
    data_dir: &Path,
    sans: &[String],
    provided: &Provided<'_>,
) -> anyhow::Result<Certificates> {
    let dir = pki_dir(data_dir);
    crate::private::create_dir(&dir)?;
    let ca = Ca::load_or_create(&dir)?;
    let (serving_cert, serving_key, server_ca) = match (provided.cert_file, provided.key_file) {
        (Some(cert), Some(key)) => {
            let cert_pem = read(cert)?;
            let key_pem = read(key)?;
            check_pair(&cert_pem, &key_pem).with_context(|| {
                format!(
                    "--tls-cert-file {} and --tls-private-key-file {}",
                    cert.display(),
                    key.display()
                )
            })?;
            (cert_pem.clone(), key_pem, cert_pem)
        }
        (None, None) => {
            let (cert, key) = ca.leaf_in(&dir, "serving", &Leaf::serving(sans))?;
            (cert, key, ca.cert_pem.clone())
        }
        _ => bail!("--tls-cert-file and --tls-private-key-file go together"),
    };
    let (client_ca, admin) = match provided.client_ca_file {
        Some(path) => {
            let pem = read(path)?;
            if certs_of(&pem).is_empty() {
                bail!("--client-ca-file {}: no certificate in it", path.display());
            }
            (pem, None)
        }
        None => {
            let admin = ca.leaf_in(
                &dir,
                "admin",
                &Leaf::client(ADMIN_USER, &[ADMIN_GROUP.to_string()]),
            )?;
            (ca.cert_pem.clone(), Some(admin))
        }
    };
    Ok(Certificates {
        serving_cert,
        serving_key,
        client_ca,
        server_ca,
        admin,
    })
}

/// The key ServiceAccount tokens are signed with (`pki/sa.key`, ECDSA P-256, made
/// once), as PKCS#8 DER.
pub fn service_account_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = pki_dir(data_dir).join("sa.key");
    if path.exists() {
        let key = KeyPair::from_pem(&read(&path)?).context("pki/sa.key is not a private key")?;
        return Ok(key.serialize_der());
    }
    let key = KeyPair::generate()?;
    crate::private::write(&path, key.serialize_pem().as_bytes())?;
    Ok(key.serialize_der())
}

/// Issues a client certificate from the CA in `data_dir` for `user` in `groups`,
/// valid for `validity`: (certificate, key), PEM.
pub fn issue_client(
    data_dir: &Path,
    user: &str,
    groups: &[String],
    validity: Duration,
) -> anyhow::Result<(String, String)> {
    let dir = pki_dir(data_dir);
    if !dir.join("ca.key").exists() {
        bail!(
            "no CA in {}: start `swell server` with this data directory first",
            dir.display()
        );
    }
    let ca = Ca::load_or_create(&dir)?;
    let mut leaf = Leaf::client(user, groups);
    leaf.validity = time::Duration::try_from(validity).context("expiration too long")?;
    ca.sign(&leaf)
}

/// Swell's certificate authority.
struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn load_or_create(dir: &Path) -> anyhow::Result<Ca> {
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        if cert_path.exists() || key_path.exists() {
            let cert_pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?)
                .context("the CA key in pki/ca.key is not a private key")?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
                .context("pki/ca.crt is not a CA certificate")?;
            return Ok(Ca { cert_pem, issuer });
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(
            &format!("swell-ca@{}", OffsetDateTime::now_utc().unix_timestamp()),
            &[],
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365 * CA_YEARS);
        let cert = params.self_signed(&key)?;
        crate::private::write(&key_path, key.serialize_pem().as_bytes())?;
        crate::private::write(&cert_path, cert.pem().as_bytes())?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// `NAME.crt`/`NAME.key` in `dir`, reused while they are signed by this CA, carry
    /// `leaf`'s names and are not near their end; else made anew.
    fn leaf_in(&self, dir: &Path, file: &str, leaf: &Leaf) -> anyhow::Result<(String, String)> {
        let (cert_path, key_path) = (
            dir.join(format!("{file}.crt")),
            dir.join(format!("{file}.key")),
        );
        if let (Ok(cert), Ok(key)) = (
            std::fs::read_to_string(&cert_path),
            std::fs::read_to_string(&key_path),
        ) && self.still_good(&cert, leaf)
            && check_pair(&cert, &key).is_ok()
        {
            return Ok((cert, key));
        }
        let (cert, key) = self.sign(leaf)?;
        crate::private::write(&key_path, key.as_bytes())?;
        crate::private::write(&cert_path, cert.as_bytes())?;
        Ok((cert, key))
    }

    fn sign(&self, leaf: &Leaf) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(leaf.sans.clone())?;
        params.distinguished_name = name(&leaf.common_name, &leaf.organizations);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![leaf.usage.clone()];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + leaf.validity;
        let cert = params.signed_by(&key, &self.issuer)?;
        if leaf.organizations.len() < 2 {
            return Ok((cert.pem(), key.serialize_pem()));
        }
        // rcgen keeps one value per attribute type; Kubernetes reads every O as a group.
        let der = subject::with_subject(
            cert.der(),
            self.issuer.key(),
            &leaf.common_name,
            &leaf.organizations,
        )?;
        Ok((subject::pem_of(&der), key.serialize_pem()))
    }

    /// Whether `cert_pem` was signed by this CA, names what `leaf` names and has more
    /// than [`RENEW_BEFORE_DAYS`] left.
    fn still_good(&self, cert_pem: &str, leaf: &Leaf) -> bool {
        let Some(der) = certs_of(cert_pem).into_iter().next() else {
            return false;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
            return false;
        };
        let Some(ca_der) = certs_of(&self.cert_pem).into_iter().next() else {
            return false;
        };
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&ca_der) else {
            return false;
        };
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            return false;
        }
        let renew_at = OffsetDateTime::now_utc() + time::Duration::days(RENEW_BEFORE_DAYS);
        if cert.validity().not_after.to_datetime() < renew_at {
            return false;
        }
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok());
        if cn != Some(leaf.common_name.as_str()) {
            return false;
        }
        let names: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_string()),
                        x509_parser::extensions::GeneralName::IPAddress(ip) => ip_string(ip),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        leaf.sans.iter().all(|s| names.iter().any(|n| n == s))
    }
}

/// A certificate to sign.
struct Leaf {
    common_name: String,
    organizations: Vec<String>,
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
    validity: time::Duration,
}

impl Leaf {
    fn serving(sans: &[String]) -> Leaf {
        Leaf {
            common_name: "swell-apiserver".to_string(),
            organizations: Vec::new(),
            sans: sans.to_vec(),
            usage: ExtendedKeyUsagePurpose::ServerAuth,
            validity: time::Duration::days(LEAF_DAYS),
        }
    }

    /// A client certificate: CN is the user, each O a group (as Kubernetes reads them).
    fn client(user: &str, groups: &[String]) -> Leaf {
        Leaf {
            common_name: user.to_string(),
            organizations: groups.to_vec(),
            sans: Vec::new(),
            usage: ExtendedKeyUsagePurpose::ClientAuth,
            validity: time::Duration::days(LEAF_DAYS),
        }
    }
}

fn name(common_name: &str, organizations: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ip_string(raw: &[u8]) -> Option<String> {
    match raw.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(raw).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(raw).ok()?).to_string()),
        _ => None,
    }
}

/// The DER certificates in a PEM text.
fn certs_of(pem: &str) -> Vec<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect()
}

/// Fails unless `cert_pem` holds a certificate whose public key is `key_pem`'s.
fn check_pair(cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    let Some(der) = certs_of(cert_pem).into_iter().next() else {
        bail!("no certificate in the certificate file");
    };
    let key = KeyPair::from_pem(key_pem).context(
        "the key file holds no private key rcgen can read (PKCS#8, SEC1 EC or PKCS#1 RSA)",
    )?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow::anyhow!("the certificate does not parse: {e}"))?;
    if cert.public_key().subject_public_key.data.as_ref() != rcgen::PublicKeyData::der_bytes(&key) {
        bail!("the private key does not belong to the certificate");
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The names the serving certificate carries: loopback, `localhost`, this host's name
/// and the operator's `--tls-san`s, each once.
pub fn serving_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["127.0.0.1", "::1", "localhost"].map(String::from).to_vec();
    if let Ok(host) = nix::unistd::gethostname()
        && let Some(host) = host.to_str().filter(|h| !h.is_empty())
    {
        names.push(host.to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_and_certificates_are_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let sans = serving_names(&["swell.example".to_string()]);
        let first = ensure(dir.path(), &sans, &Provided::default()).unwrap();
        let again = ensure(dir.path(), &sans, &Provided::default()).unwrap();
        assert_eq!(first.serving_cert, again.serving_cert);
        assert_eq!(first.client_ca, again.client_ca);
        assert_eq!(first.admin, again.admin);
        // A new name makes a new serving certificate from the same CA.
        let more = serving_names(&["other.example".to_string()]);
        let renamed = ensure(dir.path(), &more, &Provided::default()).unwrap();
        assert_ne!(renamed.serving_cert, first.serving_cert);
        assert_eq!(renamed.client_ca, first.client_ca);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let made = ensure(dir.path(), &serving_names(&[]), &Provided::default()).unwrap();
        let (_, other_key) = made.admin.unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, &made.serving_cert).unwrap();
        std::fs::write(&key, other_key).unwrap();
        let err = ensure(
            dir.path(),
            &[],
            &Provided {
                cert_file: Some(&cert),
                key_file: Some(&key),
                client_ca_file: None,
            },
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("does not belong"), "{err:#}");
    }
}
