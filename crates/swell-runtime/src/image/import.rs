//! `swell image import`: loads an OCI image layout — a directory, or a tarball of one
//! (plain, gzip or zstd) — or a `docker save` tarball into the store without any
//! registry. Every blob is verified against its digest; a multi-platform index
//! contributes the manifest for this machine's platform.

use super::digest::{Digest, copy_hashed};
use super::layer::{self, Compression};
use super::store::{ImageError, ImageStore, digest_of, platform_manifest};
use oci_spec::image::{Descriptor, ImageIndex, MediaType};
use serde_json::json;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

/// `name` with `:latest` when it has no tag (a digest reference stays as it is).
pub fn with_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Imports the image(s) at `path`; `name` names them (for one image, the whole
/// reference; with several, each keeps its tag). Each image's root filesystem is
/// unpacked at once, so a layer Swell refuses fails the import and leaves nothing
/// behind. Returns each reference and manifest.
pub fn import(
    store: &ImageStore,
    path: &Path,
    name: Option<&str>,
) -> Result<Vec<(String, Digest)>, ImageError> {
    let imported = read_images(store, path, name)?;
    for (_, d) in &imported {
        if let Err(e) = store.rootfs(d) {
            for (reference, _) in &imported {
                let _ = store.remove(reference);
            }
            return Err(e);
        }
    }
    Ok(imported)
}

fn read_images(
    store: &ImageStore,
    path: &Path,
    name: Option<&str>,
) -> Result<Vec<(String, Digest)>, ImageError> {
    let meta = fs::metadata(path).map_err(io_err(format!("reading {}", path.display())))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| s.trim_end_matches(".tar").to_string())
        .unwrap_or_else(|| "image".into());
    if meta.is_dir() {
        return import_dir(store, path, name, &stem);
    }
    // A tarball: unpack it aside (with the same safety as a layer), then import that.
    let scratch = store.scratch("import");
    fs::create_dir(&scratch).map_err(io_err(format!("creating {}", scratch.display())))?;
    let result = (|| {
        let compression = sniff(path)?;
        let file = fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
        layer::apply(&scratch, io::BufReader::new(file), compression, false).map_err(|e| {
            ImageError::Invalid(format!("{} is not a usable archive: {e}", path.display()))
        })?;
        import_dir(store, &scratch, name, &stem)
    })();
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn import_dir(
    store: &ImageStore,
    dir: &Path,
    name: Option<&str>,
    stem: &str,
) -> Result<Vec<(String, Digest)>, ImageError> {
    if dir.join("oci-layout").is_file() && dir.join("index.json").is_file() {
        import_layout(store, dir, name, stem)
    } else if dir.join("manifest.json").is_file() {
        import_docker(store, dir, name)
    } else {
        Err(ImageError::Invalid(format!(
            "{} is neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)",
            dir.display()
        )))
    }
}

fn layout_blob(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(d.hex())
}

fn copy_blob(store: &ImageStore, dir: &Path, d: &Digest) -> Result<(), ImageError> {
    let path = layout_blob(dir, d);
    let f = fs::File::open(&path).map_err(io_err(format!("opening blob {d}")))?;
    store.put_blob(io::BufReader::new(f), d)?;
    Ok(())
}

fn is_index(mt: &MediaType) -> bool {
    matches!(mt, MediaType::ImageIndex)
        || mt.to_string() == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// Copies the manifest `desc` names (the platform's one, for an index) with its
/// configuration and layers; returns the manifest's digest.
fn copy_image(store: &ImageStore, dir: &Path, desc: &Descriptor) -> Result<Digest, ImageError> {
    let d = digest_of(desc.digest())?;
    if is_index(desc.media_type()) {
        copy_blob(store, dir, &d)?;
        let index = ImageIndex::from_reader(
            &fs::read(store.blob_path(&d)).map_err(io_err(format!("reading index {d}")))?[..],
        )
        .map_err(|e| ImageError::Invalid(format!("index {d}: {e}")))?;
        let mine = platform_manifest(&index, &format!("index {d}"))?;
        return copy_image(store, dir, mine);
    }
    copy_blob(store, dir, &d)?;
    let manifest = store.manifest(&d)?;
    for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
        copy_blob(store, dir, &digest_of(blob.digest())?)?;
    }
    Ok(d)
}

fn import_layout(
    store: &ImageStore,
    dir: &Path,
    name: Option<&str>,
    stem: &str,
) -> Result<Vec<(String, Digest)>, ImageError> {
    let index = ImageIndex::from_file(dir.join("index.json"))
        .map_err(|e| ImageError::Invalid(format!("{}/index.json: {e}", dir.display())))?;
    let single = index.manifests().len() == 1;
    let mut out = Vec::new();
    for desc in index.manifests() {
        let tag = desc
            .annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned();
        let reference = match (name, tag) {
            (Some(n), _) if single => with_tag(n),
            (Some(n), Some(t)) => format!("{}:{t}", n.split(':').next().unwrap_or(n)),
            // A full reference (skopeo, buildah) or just a tag (umoci).
            (None, Some(t)) if t.contains('/') || t.contains(':') => with_tag(&t),
            (None, Some(t)) => format!("{stem}:{t}"),
            (_, None) => with_tag(name.unwrap_or(stem)),
        };
        let manifest = copy_image(store, dir, desc)?;
        store.tag(&reference, &manifest)?;
        out.push((reference, manifest));
    }
    if out.is_empty() {
        return Err(ImageError::Invalid(format!(
            "{}/index.json lists no image",
            dir.display()
        )));
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// A file of a `docker save` archive, by the relative path its manifest gives.
fn archive_file(dir: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(ImageError::Invalid(format!(
            "manifest.json names {rel:?}, outside the archive"
        )));
    }
    Ok(dir.join(p))
}

/// The compression of a file, from its first bytes.
fn sniff(path: &Path) -> Result<Compression, ImageError> {
    let mut f = fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let mut magic = [0u8; 4];
    let n = f
        .read(&mut magic)
        .map_err(io_err(format!("reading {}", path.display())))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

/// Stores a file whose digest is not known in advance.
fn put_file(store: &ImageStore, path: &Path) -> Result<(Digest, u64, Compression), ImageError> {
    let compression = sniff(path)?;
    let f = fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let (size, d) = copy_hashed(io::BufReader::new(f), io::sink())
        .map_err(io_err(format!("reading {}", path.display())))?;
    let f = fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    store.put_blob(io::BufReader::new(f), &d)?;
    Ok((d, size, compression))
}

fn import_docker(
    store: &ImageStore,
    dir: &Path,
    name: Option<&str>,
) -> Result<Vec<(String, Digest)>, ImageError> {
    let images: Vec<DockerImage> = serde_json::from_slice(
        &fs::read(dir.join("manifest.json")).map_err(io_err("reading manifest.json"))?,
    )
    .map_err(|e| ImageError::Invalid(format!("manifest.json: {e}")))?;
    let single = images.len() == 1;
    let mut out = Vec::new();
    for image in images {
        let (config, config_size, _) = put_file(store, &archive_file(dir, &image.config)?)?;
        let mut layers = Vec::new();
        for l in &image.layers {
            let (d, size, compression) = put_file(store, &archive_file(dir, l)?)?;
            let media_type = match compression {
                Compression::None => "application/vnd.oci.image.layer.v1.tar",
                Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            layers.push(json!({"mediaType": media_type, "digest": d.to_string(), "size": size}));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config.to_string(), "size": config_size},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::Invalid(format!("encoding a manifest: {e}")))?;
        let d = store.put_bytes(&bytes)?;
        let references = match (name, image.repo_tags) {
            (Some(n), _) if single => vec![with_tag(n)],
            (_, Some(tags)) if !tags.is_empty() => tags.iter().map(|t| with_tag(t)).collect(),
            (Some(n), _) => vec![with_tag(n)],
            (None, _) => {
                return Err(ImageError::Invalid(format!(
                    "{}/manifest.json names no tag for image {}; name it with --name",
                    dir.display(),
                    image.config
                )));
            }
        };
        for r in references {
            store.tag(&r, &d)?;
            out.push((r, d.clone()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layer::tests::{E, tar};
    use std::collections::BTreeSet;

    /// An OCI layout with one image of `layers`, tagged `tag`; returns its manifest.
    fn layout(dir: &Path, tag: &str, layers: &[Vec<u8>]) -> Digest {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let d = Digest::of(bytes);
            fs::write(blobs.join(d.hex()), bytes).unwrap();
            (d, bytes.len())
        };
        let descs: Vec<_> = layers
            .iter()
            .map(|l| {
                let (d, size) = put(l);
                json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": size})
            })
            .collect();
        let config = json!({"architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": ["/hello"], "Env": ["A=b"], "WorkingDir": "/w"},
            "rootfs": {"type": "layers", "diff_ids": []}});
        let (c, csize) = put(config.to_string().as_bytes());
        let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.to_string(), "size": csize},
            "layers": descs});
        let (m, msize) = put(manifest.to_string().as_bytes());
        let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m.to_string(), "size": msize, "annotations": {REF_NAME: tag}}]});
        fs::write(dir.join("index.json"), index.to_string()).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
        m
    }

    #[test]
    #[allow(
        clippy::disallowed_methods,
        reason = "a synchronous test spacing the images' use in time"
    )]
    fn pruning_removes_the_least_recently_used_pulled_images_not_in_use() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&t.path().join("store")).unwrap();
        let mut digests = Vec::new();
        for name in ["reg.example/a:1", "reg.example/b:1", "local:1"] {
            let dir = t.path().join(name.replace(['/', ':'], "-"));
            let d = layout(&dir, "x", &[tar(&[E::File("f", name)])]);
            import(&store, &dir, Some(name)).unwrap();
            store.rootfs(&d).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            digests.push(d);
        }
        let full = store.usage();
        assert!(full > 0);
        // One image's worth over: the least recently used pulled image goes.
        let pruned = store.prune(full - 1, &BTreeSet::new()).unwrap();
        assert_eq!(pruned.removed, ["reg.example/a:1"]);
        assert!(pruned.usage < full);
        assert!(!store.has_blob(&digests[0]));
        // In use or imported: nothing more goes, even over the limit.
        let in_use: BTreeSet<Digest> = [digests[1].clone()].into();
        let pruned = store.prune(0, &in_use).unwrap();
        assert!(pruned.removed.is_empty());
        assert!(store.has_blob(&digests[1]) && store.has_blob(&digests[2]));
        // Not in use any more: it goes; the imported one stays.
        assert_eq!(
            store.prune(0, &BTreeSet::new()).unwrap().removed,
            ["reg.example/b:1"]
        );
        assert_eq!(store.resolve("local:1").unwrap(), digests[2]);
    }

    #[test]
    fn an_oci_layout_imports_lists_unpacks_and_is_collected() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&t.path().join("store")).unwrap();
        let dir = t.path().join("hello");
        let m = layout(
            &dir,
            "v1",
            &[
                tar(&[E::File("hello", "one"), E::File("gone", "")]),
                tar(&[E::File(".wh.gone", "")]),
            ],
        );
        let imported = import(&store, &dir, None).unwrap();
        assert_eq!(imported, vec![("hello:v1".to_string(), m.clone())]);
        assert_eq!(store.resolve("hello:v1").unwrap(), m);
        let images = store.images().unwrap();
        assert_eq!(images.len(), 1);
        assert!(images[0].size > 0);
        let rootfs = store.rootfs(&m).unwrap();
        assert_eq!(fs::read_to_string(rootfs.join("hello")).unwrap(), "one");
        assert!(!rootfs.join("gone").exists());
        let config = store.config(&m).unwrap();
        let c = config.config().as_ref().unwrap();
        assert_eq!(c.entrypoint().as_deref(), Some(&["/hello".to_string()][..]));
        assert_eq!(c.working_dir().as_deref(), Some("/w"));
        // Named on import; the old name stays until removed.
        assert_eq!(
            import(&store, &dir, Some("greeter")).unwrap()[0].0,
            "greeter:latest"
        );
        assert!(store.remove("hello:v1").unwrap());
        assert!(store.has_blob(&m), "greeter still uses it");
        assert!(store.remove("greeter").unwrap());
        assert!(!store.has_blob(&m));
        assert!(!rootfs.exists());
        assert!(!store.remove("greeter").unwrap());
        assert_eq!(store.collect(&BTreeSet::new()).unwrap(), Default::default());
    }

    #[test]
    fn tampered_blobs_and_malicious_layers_leave_nothing() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&t.path().join("store")).unwrap();
        let dir = t.path().join("tampered");
        layout(&dir, "v1", &[tar(&[E::File("hello", "one")])]);
        // Change a layer's bytes after its digest was taken.
        let layer = fs::read_dir(dir.join("blobs/sha256"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| fs::read(p).unwrap().len() > 1000)
            .unwrap();
        let mut bytes = fs::read(&layer).unwrap();
        bytes[600] ^= 1;
        fs::write(&layer, bytes).unwrap();
        assert!(matches!(
            import(&store, &dir, None),
            Err(ImageError::DigestMismatch { .. })
        ));
        assert!(store.images().unwrap().is_empty());

        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let evil = t.path().join("evil");
        let target = outside.display().to_string();
        layout(
            &evil,
            "v1",
            &[tar(&[
                E::Symlink("esc", &target),
                E::File("esc/owned", "x"),
                E::File("../../outside/y", "y"),
            ])],
        );
        let err = import(&store, &evil, None).unwrap_err().to_string();
        assert!(err.contains("refused"), "{err}");
        assert!(store.images().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing outside the store"
        );
        assert_eq!(
            fs::read_dir(t.path().join("store/rootfs")).unwrap().count(),
            0,
            "no half-unpacked root filesystem"
        );
    }

    #[test]
    fn blob_writers_keep_only_matching_content() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&t.path().join("store")).unwrap();
        let d = Digest::of(b"right");
        let mut w = store.blob_writer(&d).unwrap();
        w.write(b"wrong").unwrap();
        assert!(matches!(w.finish(), Err(ImageError::DigestMismatch { .. })));
        assert!(!store.has_blob(&d));
        let mut w = store.blob_writer(&d).unwrap();
        w.write(b"ri").unwrap();
        drop(w);
        assert_eq!(
            fs::read_dir(t.path().join("store/tmp")).unwrap().count(),
            0,
            "nothing left"
        );
        let mut w = store.blob_writer(&d).unwrap();
        w.write(b"ri").unwrap();
        w.write(b"ght").unwrap();
        assert_eq!(w.finish().unwrap(), 5);
        assert!(store.has_blob(&d));
    }

    #[test]
    fn docker_save_tarballs_import() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&t.path().join("store")).unwrap();
        let config = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": []}})
        .to_string();
        let manifest = json!([{"Config": "abc.json", "RepoTags": ["busybox:1.36"], "Layers": ["l1/layer.tar"]}]).to_string();
        let layer = tar(&[E::Dir("bin/"), E::File("bin/sh", "#!")]);
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("manifest.json", manifest.as_bytes()),
            ("abc.json", config.as_bytes()),
            ("l1/layer.tar", &layer[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        let archive = t.path().join("busybox.tar");
        fs::write(&archive, b.into_inner().unwrap()).unwrap();
        let imported = import(&store, &archive, None).unwrap();
        assert_eq!(imported[0].0, "busybox:1.36");
        let rootfs = store.rootfs(&imported[0].1).unwrap();
        assert_eq!(fs::read_to_string(rootfs.join("bin/sh")).unwrap(), "#!");
        // Neither a layout nor a docker archive.
        let junk = t.path().join("junk");
        fs::create_dir(&junk).unwrap();
        let err = import(&store, &junk, None).unwrap_err().to_string();
        assert!(err.contains("neither"), "{err}");
    }
}
