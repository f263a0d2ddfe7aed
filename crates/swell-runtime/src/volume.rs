//! A Revision's volumes as a backend materializes them: `emptyDir`s, and the files of
//! ConfigMap, Secret and projected volumes (read by the controller), written the way
//! kubelet's atomic writer writes them so that an update swaps every file at once.

use std::io;
use std::path::{Component, Path};

/// One volume of a Revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Its name, as `volumeMounts` refer to it.
    pub name: String,
    /// What it holds.
    pub source: VolumeSource,
}

/// What a volume holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeSource {
    /// Scratch space that lives as long as the replica: on disk, or in memory
    /// (`medium: Memory`) capped at `size_limit` bytes.
    EmptyDir {
        /// `medium: Memory`.
        memory: bool,
        /// `sizeLimit`, in bytes.
        size_limit: Option<u64>,
    },
    /// Read-only files (ConfigMap, Secret and projected volumes).
    Files(Vec<VolumeFile>),
}

impl VolumeSource {
    /// Whether containers may write to it.
    pub fn writable(&self) -> bool {
        matches!(self, VolumeSource::EmptyDir { .. })
    }
}

/// One file of a ConfigMap, Secret or projected volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeFile {
    /// Where it is, relative to the volume (`items[].path`, else the key).
    pub path: String,
    /// Its contents.
    pub data: Vec<u8>,
    /// Its permission bits (`items[].mode`, else `defaultMode`, else 0644).
    pub mode: u32,
}

/// Why a file cannot be placed in a volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// An absolute path, `..`, or an empty one.
    #[error("volume file path {0:?} must be relative and must not contain '..'")]
    Path(String),
    /// The file system said no.
    #[error("writing volume files: {0}")]
    Io(#[from] io::Error),
}

/// The link kubelet's atomic writer swaps to update a volume.
const DATA_LINK: &str = "..data";

/// Whether `path` stays inside the volume.
fn relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Writes `files` into the volume directory `dir`, replacing what it held: the files
/// go into a fresh `..<generation>` directory, `..data` is renamed over to point at it
/// (one atomic step), each top-level name links through `..data`, and the previous
/// generation and names no longer present are removed. A reader sees the old set or
/// the new one, never a mix. Nothing changes when a path is refused.
pub fn write_files(dir: &Path, files: &[VolumeFile]) -> Result<(), VolumeError> {
    use std::os::unix::fs::{PermissionsExt, symlink};
    if let Some(bad) = files.iter().find(|f| !relative(&f.path)) {
        return Err(VolumeError::Path(bad.path.clone()));
    }
    std::fs::create_dir_all(dir)?;
    let old = std::fs::read_link(dir.join(DATA_LINK)).ok();
    let generation = (1u64..)
        .map(|n| format!("..{n}"))
        .find(|g| !dir.join(g).exists() && old.as_deref() != Some(Path::new(g)))
        .unwrap_or_else(|| "..0".into());
    let fresh = dir.join(&generation);
    std::fs::create_dir(&fresh)?;
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755))?;
    for f in files {
        let to = fresh.join(&f.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&to, &f.data)?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(f.mode & 0o7777))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&generation, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_LINK))?;
    let names: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|f| {
            Path::new(&f.path)
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
        })
        .collect();
    for name in &names {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_LINK).join(name), &link)?;
        }
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale_link = !name.starts_with("..") && !names.contains(&name);
        let stale_generation = name.starts_with("..")
            && name != DATA_LINK
            && name != generation
            && e.file_type().is_ok_and(|t| t.is_dir());
        if stale_link {
            let _ = std::fs::remove_file(e.path());
        } else if stale_generation {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> VolumeFile {
        VolumeFile {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    #[test]
    fn files_are_written_behind_one_link_and_updates_swap_them_all() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("v");
        write_files(&dir, &[file("a", "1"), file("sub/b", "2")]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert!(
            std::fs::symlink_metadata(dir.join("a"))
                .unwrap()
                .is_symlink()
        );

        write_files(&dir, &[file("a", "one"), file("c", "3")]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(dir.join("c")).unwrap(), "3");
        assert!(!dir.join("sub").exists(), "names no longer present go");
        let generations = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir())
            .count();
        assert_eq!(generations, 1, "the previous generation is removed");
    }

    #[test]
    fn modes_are_applied() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let mut f = file("key", "x");
        f.mode = 0o400;
        write_files(t.path(), &[f]).unwrap();
        let mode = std::fs::metadata(t.path().join("key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
    }

    #[test]
    fn paths_leaving_the_volume_are_refused_and_nothing_is_written() {
        let t = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            let err = write_files(t.path(), &[file("ok", "1"), file(bad, "2")]).unwrap_err();
            assert!(matches!(err, VolumeError::Path(_)), "{bad}: {err}");
        }
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
