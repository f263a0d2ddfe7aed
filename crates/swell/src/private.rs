//! Files only the server's user may read: the data directory is 0700 and the state in
//! it (kubeconfig, keys, database) 0600, as k3s keeps its own.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) if missing and makes it 0700.
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    restrict(dir, 0o700)
}

/// Sets `path`'s mode (the database, which redb creates with the umask's mode).
pub fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot make {} mode {mode:o}", path.display()))
}

/// Writes `path` whole, mode 0600, by renaming a complete temporary file over it.
pub fn write(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
