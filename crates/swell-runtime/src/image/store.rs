//! The local image store, shared by every Revision: verified blobs by digest, image
//! references (`name:tag` → manifest digest), and each image's root filesystem — its
//! layers applied in order — unpacked once and shared read-only by its replicas.
//! Everything appears atomically (written aside, then renamed into place); blobs and
//! root filesystems no reference reaches are collected.
//!
//! ```text
//! <root>/blobs/sha256/<hex>     verified content
//! <root>/rootfs/<hex>/          the root filesystem of manifest <hex>
//! <root>/refs.json              {"name:tag": "sha256:<hex>"}
//! <root>/tmp/                   work in progress (emptied on open)
//! ```

use super::digest::{Digest, copy_hashed};
use super::layer::{self, Compression, LayerError};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A blob's content does not match its digest.
    #[error("blob {expected} has digest {actual}: refusing it")]
    DigestMismatch {
        /// What it should be.
        expected: Digest,
        /// What it is.
        actual: Digest,
    },
    /// No image has this reference.
    #[error("no image {0:?} in the store")]
    UnknownImage(String),
    /// A manifest, index or configuration that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A layer was refused or failed to unpack.
    #[error("layer {digest}: {source}")]
    Layer {
        /// Which layer.
        digest: Digest,
        /// Why.
        source: LayerError,
    },
    /// The filesystem failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why.
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

/// One image the store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// `name:tag`.
    pub reference: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// Bytes of its compressed layers and configuration.
    pub size: u64,
}

/// What garbage collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Blobs removed.
    pub blobs: usize,
    /// Root filesystems removed.
    pub rootfs: usize,
}

/// What pruning removed, and the store's size after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The references removed.
    pub removed: Vec<String>,
    /// Bytes the store takes on disk now.
    pub usage: u64,
}

/// Bytes the files under `path` take (directories and links not counted).
fn tree_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// The store at one directory.
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens (creating) the store at `root` and clears unfinished work.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        for d in ["blobs/sha256", "rootfs", "tmp", "used"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
        }
        let store = ImageStore {
            root: root.to_path_buf(),
        };
        if let Ok(entries) = fs::read_dir(store.tmp()) {
            for e in entries.flatten() {
                let _ = remove_any(&e.path());
            }
        }
        Ok(store)
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh path under `tmp/`.
    pub fn scratch(&self, what: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.tmp()
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Where blob `d` is kept.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// The store holds blob `d`.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Stores the blob read from `from`, which must have digest `expected`; nothing is
    /// kept when it does not.
    pub fn put_blob(&self, from: impl Read, expected: &Digest) -> Result<u64, ImageError> {
        if let Ok(m) = fs::metadata(self.blob_path(expected)) {
            return Ok(m.len());
        }
        let tmp = self.scratch("blob");
        let file = fs::File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        let copied = copy_hashed(from, io::BufWriter::new(file));
        let (size, actual) = match copied {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(format!("storing blob {expected}"))(e));
            }
        };
        if actual != *expected {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        fs::rename(&tmp, self.blob_path(expected))
            .map_err(io_err(format!("storing blob {expected}")))?;
        Ok(size)
    }

    /// A writer for blob `expected`, stored when [`BlobWriter::finish`] finds the
    /// content matches.
    pub fn blob_writer(&self, expected: &Digest) -> Result<BlobWriter, ImageError> {
        let tmp = self.scratch("blob");
        let file = fs::File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        Ok(BlobWriter {
            file: io::BufWriter::new(file),
            hasher: Sha256::new(),
            size: 0,
            tmp,
            dest: self.blob_path(expected),
            expected: expected.clone(),
        })
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, ImageError> {
        let d = Digest::of(bytes);
        self.put_blob(bytes, &d)?;
        Ok(d)
    }

    fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, ImageError> {
        fs::read(self.blob_path(d)).map_err(io_err(format!("reading blob {d}")))
    }

    /// The manifest `d`, parsed.
    pub fn manifest(&self, d: &Digest) -> Result<ImageManifest, ImageError> {
        ImageManifest::from_reader(&self.read_blob(d)?[..])
            .map_err(|e| ImageError::Invalid(format!("manifest {d}: {e}")))
    }

    /// The configuration (entrypoint, cmd, env, user, working directory) of manifest `d`.
    pub fn config(&self, d: &Digest) -> Result<ImageConfiguration, ImageError> {
        let m = self.manifest(d)?;
        let c = digest_of(m.config().digest())?;
        ImageConfiguration::from_reader(&self.read_blob(&c)?[..])
            .map_err(|e| ImageError::Invalid(format!("image configuration {c}: {e}")))
    }

    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    fn read_refs(&self) -> Result<BTreeMap<String, String>, ImageError> {
        match fs::read(self.refs_path()) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| ImageError::Invalid(format!("{}: {e}", self.refs_path().display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_err("reading refs.json")(e)),
        }
    }

    /// Changes the references under an exclusive lock (the server and the CLI may
    /// share a store), writing them atomically.
    fn update_refs<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, String>) -> T,
    ) -> Result<T, ImageError> {
        let lock_path = self.root.join("refs.lock");
        let lock = fs::File::create(&lock_path).map_err(io_err("opening refs.lock"))?;
        lock.lock().map_err(io_err("locking refs.lock"))?;
        let mut refs = self.read_refs()?;
        let out = f(&mut refs);
        let tmp = self.scratch("refs");
        let json = serde_json::to_vec_pretty(&refs)
            .map_err(|e| ImageError::Invalid(format!("encoding refs: {e}")))?;
        fs::write(&tmp, json).map_err(io_err("writing refs.json"))?;
        fs::rename(&tmp, self.refs_path()).map_err(io_err("writing refs.json"))?;
        Ok(out)
    }

    /// Points `reference` at manifest `d` (which must be stored, with its blobs).
    pub fn tag(&self, reference: &str, d: &Digest) -> Result<(), ImageError> {
        let m = self.manifest(d)?;
        for desc in std::iter::once(m.config()).chain(m.layers()) {
            let b = digest_of(desc.digest())?;
            if !self.has_blob(&b) {
                return Err(ImageError::Invalid(format!(
                    "manifest {d} names blob {b}, which is not stored"
                )));
            }
        }
        self.update_refs(|refs| {
            refs.insert(reference.to_string(), d.to_string());
        })
    }

    /// The manifest `reference` points at (a digest, alone or as `name@digest`, names
    /// itself).
    pub fn resolve(&self, reference: &str) -> Result<Digest, ImageError> {
        let by_digest = reference.rsplit_once('@').map_or(reference, |(_, d)| d);
        if let Ok(d) = by_digest.parse::<Digest>()
            && self.has_blob(&d)
        {
            return Ok(d);
        }
        let refs = self.read_refs()?;
        let found = refs
            .get(reference)
            .or_else(|| refs.get(&format!("{reference}:latest")));
        found
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| ImageError::UnknownImage(reference.to_string()))
    }

    /// Every image, by reference.
    pub fn images(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let mut out = Vec::new();
        for (reference, d) in self.read_refs()? {
            let Ok(digest) = d.parse::<Digest>() else {
                continue;
            };
            let size = self.manifest(&digest).map_or(0, |m| {
                m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>()
            });
            out.push(ImageInfo {
                reference,
                digest,
                size,
            });
        }
        Ok(out)
    }

    /// Removes `reference`, then collects what nothing references any more. Returns
    /// false when there was no such reference.
    pub fn remove(&self, reference: &str) -> Result<bool, ImageError> {
        let removed = self.update_refs(|refs| {
            refs.remove(reference).is_some()
                || refs.remove(&format!("{reference}:latest")).is_some()
        })?;
        if removed {
            self.collect(&BTreeSet::new())?;
        }
        Ok(removed)
    }

    /// Removes blobs and root filesystems that no reference and no manifest in
    /// `in_use` reaches.
    /// A pull in progress has blobs nothing references yet: whoever pulls and collects
    /// in one process must not do both at once.
    pub fn collect(&self, in_use: &BTreeSet<Digest>) -> Result<Collected, ImageError> {
        let mut live_manifests: BTreeSet<Digest> = in_use.clone();
        for d in self.read_refs()?.values() {
            if let Ok(d) = d.parse() {
                live_manifests.insert(d);
            }
        }
        let mut live_blobs = BTreeSet::new();
        for m in &live_manifests {
            live_blobs.insert(m.clone());
            if let Ok(manifest) = self.manifest(m) {
                for desc in std::iter::once(manifest.config()).chain(manifest.layers()) {
                    if let Ok(d) = digest_of(desc.digest()) {
                        live_blobs.insert(d);
                    }
                }
            }
        }
        let mut collected = Collected::default();
        for (dir, live, count) in [
            ("blobs/sha256", &live_blobs, &mut collected.blobs),
            ("rootfs", &live_manifests, &mut collected.rootfs),
        ] {
            let path = self.root.join(dir);
            for e in fs::read_dir(&path).map_err(io_err(format!("reading {}", path.display())))? {
                let e = e.map_err(io_err(format!("reading {}", path.display())))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let keep = format!("sha256:{name}")
                    .parse::<Digest>()
                    .is_ok_and(|d| live.contains(&d));
                if !keep {
                    remove_any(&e.path())
                        .map_err(io_err(format!("removing {}", e.path().display())))?;
                    *count += 1;
                }
            }
        }
        Ok(collected)
    }

    /// Bytes the store takes on disk: blobs and unpacked root filesystems.
    pub fn usage(&self) -> u64 {
        tree_size(&self.root.join("blobs")) + tree_size(&self.root.join("rootfs"))
    }

    /// When manifest `d`'s root filesystem was last asked for (never: the epoch).
    fn last_used(&self, d: &Digest) -> std::time::SystemTime {
        fs::metadata(self.root.join("used").join(d.hex()))
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH)
    }

    /// Brings the store under `limit` bytes if it can: removes pulled images (whose
    /// references name a registry, so they can be pulled again) that no manifest in
    /// `in_use` is, least recently used first, with whatever only they used. Imported
    /// images are the user's to remove. Like [`ImageStore::collect`], not while pulling.
    pub fn prune(&self, limit: u64, in_use: &BTreeSet<Digest>) -> Result<Pruned, ImageError> {
        let mut usage = self.usage();
        let mut removed = Vec::new();
        if usage <= limit {
            return Ok(Pruned { removed, usage });
        }
        let mut by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for (reference, d) in self.read_refs()? {
            if let Ok(d) = d.parse::<Digest>() {
                by_digest.entry(d).or_default().push(reference);
            }
        }
        let mut candidates: Vec<(std::time::SystemTime, Digest)> = by_digest
            .iter()
            .filter(|(d, refs)| {
                !in_use.contains(*d) && refs.iter().all(|r| super::pull::names_registry(r))
            })
            .map(|(d, _)| (self.last_used(d), d.clone()))
            .collect();
        candidates.sort();
        for (_, d) in candidates {
            if usage <= limit {
                break;
            }
            let wanted = d.to_string();
            self.update_refs(|refs| refs.retain(|_, v| *v != wanted))?;
            self.collect(in_use)?;
            let _ = fs::remove_file(self.root.join("used").join(d.hex()));
            removed.extend(by_digest.remove(&d).unwrap_or_default());
            usage = self.usage();
        }
        Ok(Pruned { removed, usage })
    }

    /// The root filesystem of manifest `d`, unpacked on first use (as root, with the
    /// layers' owners). Shared: replicas must not write to it.
    pub fn rootfs(&self, d: &Digest) -> Result<PathBuf, ImageError> {
        // When it was last used decides what pruning removes first.
        let _ = fs::File::create(self.root.join("used").join(d.hex()));
        let dir = self.root.join("rootfs").join(d.hex());
        if dir.is_dir() {
            return Ok(dir);
        }
        let manifest = self.manifest(d)?;
        let tmp = self.scratch("rootfs");
        fs::create_dir(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        let owners = nix::unistd::geteuid().is_root();
        let unpacked =
            (|| {
                for l in manifest.layers() {
                    let digest = digest_of(l.digest())?;
                    let compression = Compression::from_media_type(l.media_type().as_ref())
                        .map_err(|source| ImageError::Layer {
                            digest: digest.clone(),
                            source,
                        })?;
                    let blob = fs::File::open(self.blob_path(&digest))
                        .map_err(io_err(format!("opening layer {digest}")))?;
                    layer::apply(&tmp, io::BufReader::new(blob), compression, owners)
                        .map_err(|source| ImageError::Layer { digest, source })?;
                }
                Ok(())
            })();
        if let Err(e) = unpacked {
            let _ = remove_any(&tmp);
            return Err(e);
        }
        match fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir),
            // Someone else finished first.
            Err(_) if dir.is_dir() => {
                let _ = remove_any(&tmp);
                Ok(dir)
            }
            Err(e) => Err(io_err(format!("storing {}", dir.display()))(e)),
        }
    }
}

/// A blob being written; nothing is stored unless its content has the digest.
#[derive(Debug)]
pub struct BlobWriter {
    file: io::BufWriter<fs::File>,
    hasher: Sha256,
    size: u64,
    tmp: PathBuf,
    dest: PathBuf,
    expected: Digest,
}

impl BlobWriter {
    /// Appends `chunk`.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), ImageError> {
        use std::io::Write;
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file
            .write_all(chunk)
            .map_err(io_err(format!("storing blob {}", self.expected)))
    }

    /// Checks the digest and stores the blob; returns its size.
    pub fn finish(mut self) -> Result<u64, ImageError> {
        use std::io::Write;
        let flushed = self.file.flush();
        let actual = Digest::from_sha256(self.hasher.clone().finalize().into());
        if let Err(e) = flushed {
            let _ = fs::remove_file(&self.tmp);
            return Err(io_err(format!("storing blob {}", self.expected))(e));
        }
        if actual != self.expected {
            let _ = fs::remove_file(&self.tmp);
            return Err(ImageError::DigestMismatch {
                expected: self.expected.clone(),
                actual,
            });
        }
        fs::rename(&self.tmp, &self.dest)
            .map_err(io_err(format!("storing blob {}", self.expected)))?;
        Ok(self.size)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Unfinished (or refused): nothing stays behind. After a rename this is a no-op.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// The manifest an image index `index` (named `what` in errors) holds for this
/// machine's platform.
pub fn platform_manifest<'a>(
    index: &'a oci_spec::image::ImageIndex,
    what: &str,
) -> Result<&'a oci_spec::image::Descriptor, ImageError> {
    let (os, arch) = (
        oci_spec::image::Os::default(),
        oci_spec::image::Arch::default(),
    );
    index
        .manifests()
        .iter()
        .find(|m| {
            m.platform()
                .as_ref()
                .is_some_and(|p| *p.os() == os && *p.architecture() == arch)
        })
        .ok_or_else(|| ImageError::Invalid(format!("{what} has no image for {os}/{arch}")))
}

/// Our digest of an oci-spec digest (only sha256 is accepted).
pub fn digest_of(d: &oci_spec::image::Digest) -> Result<Digest, ImageError> {
    d.to_string()
        .parse()
        .map_err(|e: super::digest::InvalidDigest| ImageError::Invalid(e.to_string()))
}

/// Removes a file or a directory tree (never following symlinks), even one whose
/// directories are read-only.
fn remove_any(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            if fs::remove_dir_all(path).is_ok() {
                return Ok(());
            }
            // Read-only directories from a layer: open them up, then remove.
            let mut stack = vec![path.to_path_buf()];
            while let Some(d) = stack.pop() {
                let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
                if let Ok(entries) = fs::read_dir(&d) {
                    for e in entries.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            stack.push(e.path());
                        }
                    }
                }
            }
            fs::remove_dir_all(path)
        }
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
