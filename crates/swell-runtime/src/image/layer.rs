//! Applying one image layer — a tar stream, plain, gzip or zstd — onto a root
//! filesystem directory, with OCI whiteouts (`.wh.NAME` deletes, `.wh..wh..opq` empties
//! a directory of what lower layers put there), without ever writing outside it:
//! absolute and `..` paths and device nodes are refused, and symlinks met on the way
//! are resolved as if the root were `/`, so no entry lands outside it.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

/// How a layer's tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression of an OCI or Docker layer media type.
    pub fn from_media_type(media_type: &str) -> Result<Self, LayerError> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Ok(Compression::Zstd)
            }
            other => Err(LayerError::MediaType(other.to_string())),
        }
    }
}

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An entry that would write outside the root, or that Swell does not create.
    #[error("layer entry {path:?} refused: {why}")]
    Refused {
        /// The entry's path as the layer names it.
        path: String,
        /// Why.
        why: String,
    },
    /// The media type is not a layer Swell can unpack.
    #[error("unsupported layer media type {0:?}")]
    MediaType(String),
    /// Reading the layer or writing the root failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: io::Error,
    },
}

fn refused(path: &Path, why: impl Into<String>) -> LayerError {
    LayerError::Refused {
        path: path.display().to_string(),
        why: why.into(),
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LayerError {
    let context = context.into();
    move |source| LayerError::Io { context, source }
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// Symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
const MAX_HOPS: usize = 40;

/// The components of a path a layer names: relative, no `..`.
fn entry_components(path: &Path) -> Result<Vec<OsString>, LayerError> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(path, "absolute path"));
            }
            Component::ParentDir => return Err(refused(path, "path contains `..`")),
        }
    }
    Ok(out)
}

/// The host path of directory `components` inside `root`, symlinks followed as if
/// `root` were `/` (`..` stops at the root). Missing directories are created.
fn resolve_dir(root: &Path, components: &[OsString]) -> io::Result<PathBuf> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = components.iter().cloned().collect();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        if c == "." || c.is_empty() {
            continue;
        }
        let here: PathBuf = root.join(resolved.iter().collect::<PathBuf>()).join(&c);
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(io::Error::other(format!(
                        "too many symlinks resolving {}",
                        here.display()
                    )));
                }
                let target = fs::read_link(&here)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for t in target.components().rev() {
                    match t {
                        Component::Normal(n) => pending.push_front(n.to_os_string()),
                        Component::ParentDir => pending.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            Ok(m) if m.is_dir() => resolved.push(c),
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a directory",
                    here.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&here)?;
                resolved.push(c);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(root.join(resolved.iter().collect::<PathBuf>()))
}

/// Removes whatever is at `path` (never following a symlink).
fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// What applying a layer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Entries written (files, directories, links).
    pub entries: u64,
    /// Entries whiteouts removed.
    pub whiteouts: u64,
}

/// Applies the layer read from `layer` onto `root`. File owners are set from the
/// layer when `owners` (which needs root). On error `root` may hold part of the layer:
/// apply into a scratch copy and discard it on failure.
pub fn apply(
    root: &Path,
    layer: impl Read,
    compression: Compression,
    owners: bool,
) -> Result<Applied, LayerError> {
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(layer),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(layer)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(layer).map_err(io_err("opening the zstd stream"))?,
        ),
    };
    let mut archive = tar::Archive::new(reader);
    let mut applied = Applied::default();
    // Paths this layer wrote: an opaque directory keeps them.
    let mut written: HashSet<PathBuf> = HashSet::new();
    // Directory modes are set last, so a read-only directory can still be filled.
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive.entries().map_err(io_err("reading the layer"))? {
        let mut entry = entry.map_err(io_err("reading the layer"))?;
        let name = entry
            .path()
            .map_err(io_err("reading an entry's path"))?
            .into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName
        ) {
            continue;
        }
        let mut parts = entry_components(&name)?;
        let Some(last) = parts.pop() else {
            // The root itself (`./`).
            continue;
        };
        let parent = resolve_dir(root, &parts)
            .map_err(|e| refused(&name, format!("cannot resolve its directory: {e}")))?;
        let last_str = last.to_string_lossy();
        if last_str == OPAQUE {
            for child in fs::read_dir(&parent).map_err(io_err(parent.display().to_string()))? {
                let child = child.map_err(io_err(parent.display().to_string()))?.path();
                if !written.contains(&child) {
                    remove(&child).map_err(io_err(child.display().to_string()))?;
                    applied.whiteouts += 1;
                }
            }
            continue;
        }
        if let Some(hidden) = last_str.strip_prefix(WHITEOUT) {
            if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(refused(&name, "whiteout of an invalid name"));
            }
            let target = parent.join(hidden);
            remove(&target).map_err(io_err(target.display().to_string()))?;
            applied.whiteouts += 1;
            continue;
        }
        let path = parent.join(&last);
        let header = entry.header().clone();
        let mode = header.mode().map_err(io_err("reading an entry's mode"))? & 0o7777;
        let existing_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        match kind {
            tar::EntryType::Directory => {
                if !existing_dir {
                    remove(&path).map_err(io_err(path.display().to_string()))?;
                    fs::create_dir(&path).map_err(io_err(path.display().to_string()))?;
                }
                dir_modes.push((path.clone(), mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove(&path).map_err(io_err(path.display().to_string()))?;
                let mut f =
                    fs::File::create_new(&path).map_err(io_err(path.display().to_string()))?;
                io::copy(&mut entry, &mut f).map_err(io_err(path.display().to_string()))?;
                f.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(io_err(path.display().to_string()))?;
                if let Ok(mtime) = header.mtime() {
                    let _ = f.set_modified(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime),
                    );
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(io_err("reading a symlink's target"))?
                    .ok_or_else(|| refused(&name, "symlink without a target"))?;
                remove(&path).map_err(io_err(path.display().to_string()))?;
                symlink(&target, &path).map_err(io_err(path.display().to_string()))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(io_err("reading a hard link's target"))?
                    .ok_or_else(|| refused(&name, "hard link without a target"))?
                    .into_owned();
                let mut tparts = entry_components(&target)
                    .map_err(|_| refused(&name, "hard link target outside the root"))?;
                let tlast = tparts
                    .pop()
                    .ok_or_else(|| refused(&name, "hard link to the root"))?;
                let tparent = resolve_dir(root, &tparts)
                    .map_err(|e| refused(&name, format!("hard link target: {e}")))?;
                let source = tparent.join(tlast);
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_dir() => {
                        return Err(refused(&name, "hard link to a directory"));
                    }
                    Ok(_) => {}
                    Err(_) => return Err(refused(&name, "hard link to a missing file")),
                }
                remove(&path).map_err(io_err(path.display().to_string()))?;
                fs::hard_link(&source, &path).map_err(io_err(path.display().to_string()))?;
            }
            tar::EntryType::Fifo => {
                remove(&path).map_err(io_err(path.display().to_string()))?;
                nix::unistd::mkfifo(
                    &path,
                    nix::sys::stat::Mode::from_bits_truncate(mode & 0o777),
                )
                .map_err(|e| refused(&name, format!("cannot create the FIFO: {e}")))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refused(&name, "device nodes are not allowed in layers"));
            }
            other => {
                return Err(refused(&name, format!("unsupported entry type {other:?}")));
            }
        }
        if owners && let (Ok(uid), Ok(gid)) = (header.uid(), header.gid()) {
            let (uid, gid) = (
                u32::try_from(uid).unwrap_or(u32::MAX),
                u32::try_from(gid).unwrap_or(u32::MAX),
            );
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(io_err(format!("chown {}", path.display())))?;
            // chown clears set-id bits; put them back.
            if kind == tar::EntryType::Regular && mode & 0o6000 != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .map_err(io_err(path.display().to_string()))?;
            }
        }
        written.insert(path);
        applied.entries += 1;
    }
    for (dir, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(io_err(dir.display().to_string()))?;
    }
    Ok(applied)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// One raw tar entry; names are written as given, unchecked, as an attacker would.
    pub(crate) enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a str),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        CharDevice(&'a str),
    }

    pub(crate) fn tar(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            let (name, kind, data, link): (&str, tar::EntryType, &[u8], &str) = match e {
                E::Dir(n) => (n, tar::EntryType::Directory, b"", ""),
                E::File(n, d) => (n, tar::EntryType::Regular, d.as_bytes(), ""),
                E::Symlink(n, t) => (n, tar::EntryType::Symlink, b"", t),
                E::Hardlink(n, t) => (n, tar::EntryType::Link, b"", t),
                E::CharDevice(n) => (n, tar::EntryType::Char, b"", ""),
            };
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(kind);
            h.set_mode(if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn apply_plain(root: &Path, entries: &[E<'_>]) -> Result<Applied, LayerError> {
        apply(root, &tar(entries)[..], Compression::None, false)
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn layers_stack_with_whiteouts_and_opaque_directories() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        apply_plain(
            root,
            &[
                E::Dir("etc/"),
                E::File("etc/a", "1"),
                E::File("etc/b", "b"),
                E::Hardlink("etc/hl", "etc/a"),
                E::Dir("var/"),
                E::File("var/keep", "k"),
                E::Dir("usr/lib/"),
                E::Symlink("lib", "usr/lib"),
                E::File("./usr/lib/libx", "x"),
            ],
        )
        .unwrap();
        let applied = apply_plain(
            root,
            &[
                E::File("etc/.wh.b", ""),
                E::File("var/new", "n"),
                E::File("var/.wh..wh..opq", ""),
                E::File("lib/liby", "y"),
                E::File("etc/a", "2"),
            ],
        )
        .unwrap();
        assert_eq!(
            applied,
            Applied {
                entries: 3,
                whiteouts: 2
            }
        );
        assert_eq!(read(&root.join("etc/a")), "2");
        assert_eq!(
            read(&root.join("etc/hl")),
            "1",
            "the link kept the old file"
        );
        assert!(!root.join("etc/b").exists());
        assert!(!root.join("var/keep").exists(), "opaque directory");
        assert_eq!(
            read(&root.join("var/new")),
            "n",
            "written by the same layer"
        );
        assert_eq!(read(&root.join("usr/lib/liby")), "y", "through the symlink");
        assert!(fs::symlink_metadata(root.join("lib")).unwrap().is_symlink());
        let mode = fs::metadata(root.join("etc/a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn escapes_are_refused_or_kept_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "s").unwrap();
        let out = outside.display().to_string();
        let fresh = |name: &str| {
            let r = t.path().join(name);
            fs::create_dir(&r).unwrap();
            r
        };
        let refused = |r: Result<Applied, LayerError>| match r {
            Err(LayerError::Refused { why, .. }) => why,
            other => panic!("not refused: {other:?}"),
        };
        let r = fresh("a");
        assert!(refused(apply_plain(&r, &[E::File("../outside/x", "x")])).contains(".."));
        let r = fresh("b");
        assert!(refused(apply_plain(&r, &[E::File("/abs", "x")])).contains("absolute"));
        // Symlinks met on the way resolve inside the root, whatever they say.
        let r = fresh("c");
        apply_plain(
            &r,
            &[
                E::Symlink("up", "../../../.."),
                E::File("up/x", "x"),
                E::Symlink("abs", &out),
                E::File("abs/y", "y"),
                E::File("abs/.wh.secret", ""),
            ],
        )
        .unwrap();
        assert_eq!(read(&r.join("x")), "x", "`..` stops at the root");
        assert_eq!(
            read(&r.join(outside.strip_prefix("/").unwrap()).join("y")),
            "y"
        );
        let r = fresh("d");
        assert!(
            refused(apply_plain(&r, &[E::Hardlink("h", "../outside/secret")])).contains("outside")
        );
        let r = fresh("e");
        let why = refused(apply_plain(
            &r,
            &[E::Symlink("abs", &out), E::Hardlink("h", "abs/secret")],
        ));
        assert!(why.contains("missing"), "{why}");
        let r = fresh("f");
        assert!(refused(apply_plain(&r, &[E::CharDevice("null")])).contains("device"));
        let r = fresh("g");
        assert!(refused(apply_plain(&r, &[E::File(".wh..", "")])).contains("whiteout"));
        // Nothing outside changed.
        let names: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
        assert_eq!(read(&outside.join("secret")), "s");
    }

    #[test]
    fn gzip_and_zstd_layers_unpack() {
        let plain = tar(&[E::File("hello", "hi")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&plain[..], 1).unwrap();
        for (data, c) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
            let t = tempfile::tempdir().unwrap();
            apply(t.path(), &data[..], c, false).unwrap();
            assert_eq!(read(&t.path().join("hello")), "hi");
        }
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip")
                .unwrap(),
            Compression::Gzip
        );
        assert!(matches!(
            Compression::from_media_type("application/x-evil"),
            Err(LayerError::MediaType(_))
        ));
        // Garbage is an error, not a panic.
        let t = tempfile::tempdir().unwrap();
        assert!(
            apply(
                t.path(),
                &b"not a tarball at all, sorry"[..],
                Compression::Gzip,
                false
            )
            .is_err()
        );
    }
}
