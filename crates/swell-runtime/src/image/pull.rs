//! Pulling images from OCI and Docker registries into the store with `oci-client`:
//! plain HTTP for loopback registries, HTTPS otherwise; anonymous, basic or bearer
//! auth; an image index resolved to this machine's platform; every blob's digest
//! checked while it streams in, before anything is kept.

use super::digest::Digest;
use super::store::{ImageError, ImageStore, digest_of, platform_manifest};
use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::ImageIndex;

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// How to sign in to a registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    #[default]
    Anonymous,
    /// User name and password.
    Basic(String, String),
    /// A bearer token.
    Bearer(String),
}

/// What a pull stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// The full reference (`registry/repository:tag`).
    pub reference: String,
    /// The manifest's digest: what the reference resolved to.
    pub digest: Digest,
}

fn registry_error(what: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(format!("{what}: {e}"))
}

/// The reference starts with a registry host (`host.domain/…`, `host:port/…`,
/// `localhost/…`), as Docker decides.
pub fn names_registry(image: &str) -> bool {
    image.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    })
}

/// The registry is on this machine (plain HTTP is used for it).
fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(registry, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn client(reference: &Reference) -> Client {
    // reqwest's rustls needs a process-wide crypto provider; installing twice is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = reference.resolve_registry().to_string();
    let protocol = if is_loopback(&registry) {
        ClientProtocol::HttpsExcept(vec![registry])
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        ..ClientConfig::default()
    })
}

/// Fetches a manifest (or index) by reference and checks it against its digest.
async fn manifest(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
) -> Result<(Vec<u8>, Digest), ImageError> {
    let (bytes, digest) = client
        .pull_manifest_raw(reference, auth, MANIFEST_TYPES)
        .await
        .map_err(|e| registry_error(&format!("cannot fetch the manifest of {reference}"), e))?;
    let actual = Digest::of(&bytes);
    let claimed: Digest = digest
        .parse()
        .map_err(|e| registry_error(&format!("manifest of {reference}"), e))?;
    if let Some(wanted) = reference.digest()
        && wanted != actual.to_string()
    {
        return Err(ImageError::DigestMismatch {
            expected: wanted
                .parse()
                .map_err(|e| registry_error("reference digest", e))?,
            actual,
        });
    }
    if claimed != actual {
        return Err(ImageError::DigestMismatch {
            expected: claimed,
            actual,
        });
    }
    Ok((bytes.to_vec(), actual))
}

/// How far a pull has come: bytes of the image's blobs (configuration and layers)
/// stored so far, of all of them. Blobs the store already held count as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes stored.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}

/// Pulls `reference` into `store`, tags it with its full reference, and unpacks its
/// root filesystem. Blobs the store already holds are not fetched again.
pub async fn pull(store: &ImageStore, reference: &str, auth: &Auth) -> Result<Pulled, ImageError> {
    pull_with_progress(store, reference, auth, &|_| {}).await
}

/// [`pull`], telling `progress` how far it has come as blobs stream in (at most a few
/// times a second, and once at the end of each blob).
pub async fn pull_with_progress(
    store: &ImageStore,
    reference: &str,
    auth: &Auth,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Pulled, ImageError> {
    let parsed: Reference = reference
        .parse()
        .map_err(|e| registry_error(&format!("invalid image reference {reference:?}"), e))?;
    let auth = match auth {
        Auth::Anonymous => RegistryAuth::Anonymous,
        Auth::Basic(u, p) => RegistryAuth::Basic(u.clone(), p.clone()),
        Auth::Bearer(t) => RegistryAuth::Bearer(t.clone()),
    };
    let client = client(&parsed);
    let (mut bytes, mut digest) = manifest(&client, &parsed, &auth).await?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| registry_error(&format!("manifest of {reference}"), e))?;
    if doc.get("manifests").is_some() {
        let index = ImageIndex::from_reader(&bytes[..])
            .map_err(|e| registry_error(&format!("index of {reference}"), e))?;
        let mine = platform_manifest(&index, reference)?;
        let by_digest = parsed.clone_with_digest(mine.digest().to_string());
        (bytes, digest) = manifest(&client, &by_digest, &auth).await?;
    }
    store.put_blob(&bytes[..], &digest)?;
    let m = store.manifest(&digest)?;
    let blobs: Vec<_> = std::iter::once(m.config()).chain(m.layers()).collect();
    let mut now = Progress {
        done: 0,
        total: blobs.iter().map(|b| b.size()).sum(),
    };
    let mut told = std::time::Instant::now();
    for desc in blobs {
        let d = digest_of(desc.digest())?;
        if store.has_blob(&d) {
            now.done += desc.size();
            progress(now);
            continue;
        }
        let mut blob = client
            .pull_blob_stream(&parsed, d.to_string().as_str())
            .await
            .map_err(|e| registry_error(&format!("cannot fetch blob {d} of {reference}"), e))?;
        let mut writer = store.blob_writer(&d)?;
        while let Some(chunk) = blob.stream.next().await {
            let chunk = chunk.map_err(|e| registry_error(&format!("fetching blob {d}"), e))?;
            writer.write(&chunk)?;
            now.done += chunk.len() as u64;
            if told.elapsed() >= std::time::Duration::from_millis(200) {
                told = std::time::Instant::now();
                progress(now);
            }
        }
        writer.finish()?;
        progress(now);
    }
    let full = match (parsed.tag(), parsed.digest()) {
        (None, Some(d)) => format!("{}/{}@{d}", parsed.registry(), parsed.repository()),
        (tag, _) => format!(
            "{}/{}:{}",
            parsed.registry(),
            parsed.repository(),
            tag.unwrap_or("latest")
        ),
    };
    store.tag(&full, &digest)?;
    if let Err(e) = store.rootfs(&digest) {
        let _ = store.remove(&full);
        return Err(e);
    }
    Ok(Pulled {
        reference: full,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_registry_as_docker_decides() {
        for r in ["127.0.0.1:5000/app:1", "ghcr.io/org/app", "localhost/app"] {
            assert!(names_registry(r), "{r}");
        }
        for r in ["busybox", "busybox:local", "library/busybox:1"] {
            assert!(!names_registry(r), "{r}");
        }
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        for r in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "ghcr.io",
            "10.0.0.1:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }
}
