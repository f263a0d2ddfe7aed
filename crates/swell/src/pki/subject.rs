//! Client certificate subjects with several groups: rcgen keeps one value per
//! attribute type, but Kubernetes reads every O of a client certificate as a group, so
//! the subject rcgen wrote is replaced and the certificate signed again.

/// `cert` with its subject replaced by CN `common_name` and one O per organization,
/// signed again by `ca_key` (ECDSA P-256, as Swell's CA).
pub fn with_subject(
    cert: &[u8],
    ca_key: &rcgen::KeyPair,
    common_name: &str,
    organizations: &[String],
) -> anyhow::Result<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| anyhow::anyhow!("the certificate rcgen made does not parse: {e}"))?;
    let tbs = parsed.tbs_certificate.as_ref();
    let subject = parsed.tbs_certificate.subject.as_raw();
    let at = subject.as_ptr() as usize - tbs.as_ptr() as usize;
    let (head, len) = der::element(tbs)?;
    let body = &tbs[head..head + len];
    let at = at - head;
    let mut name = Vec::new();
    for o in organizations {
        name.extend(der::tlv(
            0x31,
            &der::tlv(
                0x30,
                &[der::ORGANIZATION, &der::tlv(0x0c, o.as_bytes())].concat(),
            ),
        ));
    }
    name.extend(der::tlv(
        0x31,
        &der::tlv(
            0x30,
            &[der::COMMON_NAME, &der::tlv(0x0c, common_name.as_bytes())].concat(),
        ),
    ));
    let body = [
        &body[..at],
        &der::tlv(0x30, &name),
        &body[at + subject.len()..],
    ]
    .concat();
    let tbs = der::tlv(0x30, &body);
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &ca_key.serialize_der(),
        &rng,
    )
    .map_err(|e| anyhow::anyhow!("the CA key is not ECDSA P-256: {e}"))?;
    let signature = key
        .sign(&rng, &tbs)
        .map_err(|_| anyhow::anyhow!("cannot sign the certificate"))?;
    // The certificate is SEQUENCE { tbsCertificate, signatureAlgorithm, signature }.
    let (outer, _) = der::element(cert)?;
    let rest = &cert[outer + parsed.tbs_certificate.as_ref().len()..];
    let (alg_head, alg_len) = der::element(rest)?;
    let algorithm = &rest[..alg_head + alg_len];
    let bits = [&[0u8][..], signature.as_ref()].concat();
    Ok(der::tlv(
        0x30,
        &[&tbs[..], algorithm, &der::tlv(0x03, &bits)].concat(),
    ))
}

/// The little DER a certificate subject needs.
mod der {
    /// The attribute type `organizationName` (2.5.4.10), encoded.
    pub const ORGANIZATION: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];
    /// The attribute type `commonName` (2.5.4.3), encoded.
    pub const COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

    /// The header and contents lengths of the element `bytes` starts with.
    pub fn element(bytes: &[u8]) -> anyhow::Result<(usize, usize)> {
        use anyhow::Context;
        let first = *bytes.get(1).context("a truncated DER element")?;
        if first & 0x80 == 0 {
            return Ok((2, usize::from(first)));
        }
        let n = usize::from(first & 0x7f);
        let len_bytes = bytes.get(2..2 + n).context("a truncated DER length")?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if bytes.len() < 2 + n + len {
            anyhow::bail!("a truncated DER element");
        }
        Ok((2 + n, len))
    }

    /// One element: tag, definite length, contents.
    pub fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = contents.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(contents);
        out
    }
}

/// A DER certificate as PEM.
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};

    #[test]
    fn every_group_is_an_organization_of_a_certificate_the_ca_signed() {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "ca");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "alice");
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let groups = ["team-a".to_string(), "ops".to_string()];
        let der = super::with_subject(cert.der(), issuer.key(), "alice", &groups).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let orgs: Vec<&str> = parsed
            .subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(orgs, ["team-a", "ops"]);
        let cn = parsed.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "alice");
        let (_, ca) = x509_parser::parse_x509_certificate(ca_cert.der()).unwrap();
        parsed
            .verify_signature(Some(ca.public_key()))
            .expect("signed again by the CA");
    }
}
