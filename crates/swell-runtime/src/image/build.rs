//! Builds a one-layer image straight into the store from files on this machine (what
//! `swell quickstart` runs under runc: the sample app and the libraries it loads).

use super::digest::Digest;
use super::store::{ImageError, ImageStore};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What goes into the image.
#[derive(Debug, Default, Clone)]
pub struct Recipe {
    /// (file on this machine, absolute path in the image), copied with its mode.
    pub files: Vec<(PathBuf, String)>,
    /// (absolute path in the image, link target).
    pub symlinks: Vec<(String, String)>,
    /// The image's entrypoint.
    pub entrypoint: Vec<String>,
    /// The user it runs as (`65532`), if not root.
    pub user: Option<String>,
    /// Its working directory.
    pub working_dir: Option<String>,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(format!("{what}: {e}"))
}

/// Builds `recipe` as `reference` in `store` and returns the manifest's digest.
pub fn build(store: &ImageStore, reference: &str, recipe: &Recipe) -> Result<Digest, ImageError> {
    let layer = layer(recipe)?;
    let layer_digest = store.put_bytes(&layer)?;
    let config = json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {
            "Entrypoint": recipe.entrypoint,
            "User": recipe.user.clone().unwrap_or_default(),
            "WorkingDir": recipe.working_dir.clone().unwrap_or_else(|| "/".into()),
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    });
    let config = serde_json::to_vec(&config).map_err(|e| invalid("image configuration", e))?;
    let config_digest = store.put_bytes(&config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest.to_string(),
            "size": layer.len(),
        }],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| invalid("image manifest", e))?;
    let digest = store.put_bytes(&manifest)?;
    store.tag(reference, &digest)?;
    Ok(digest)
}

/// The layer: every parent directory, then the files and links (a fixed mtime, so the
/// same inputs give the same digest).
fn layer(recipe: &Recipe) -> Result<Vec<u8>, ImageError> {
    let mut dirs = BTreeSet::new();
    let paths = recipe
        .files
        .iter()
        .map(|(_, to)| to)
        .chain(recipe.symlinks.iter().map(|(at, _)| at));
    for path in paths {
        let mut parent = Path::new(path.trim_start_matches('/')).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_path_buf());
            parent = p.parent();
        }
    }
    let mut tar = tar::Builder::new(Vec::new());
    let io = |e| invalid("writing the image layer", e);
    for dir in &dirs {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, dir, std::io::empty()).map_err(io)?;
    }
    for (from, to) in &recipe.files {
        let mut file = std::fs::File::open(from)
            .map_err(|e| invalid(&format!("reading {}", from.display()), e))?;
        let meta = file
            .metadata()
            .map_err(|e| invalid(&format!("reading {}", from.display()), e))?;
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777);
        h.set_size(meta.len());
        h.set_mtime(0);
        tar.append_data(&mut h, to.trim_start_matches('/'), &mut file)
            .map_err(io)?;
    }
    for (at, target) in &recipe.symlinks {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_link(&mut h, at.trim_start_matches('/'), target)
            .map_err(io)?;
    }
    tar.into_inner().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_runnable_root_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("store")).unwrap();
        let app = dir.path().join("app");
        std::fs::write(&app, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let recipe = Recipe {
            files: vec![(app, "/ko-app/app".into())],
            symlinks: vec![("/ko-app/hello".into(), "app".into())],
            entrypoint: vec!["/ko-app/hello".into()],
            user: Some("65532".into()),
            working_dir: None,
        };
        let d = build(&store, "swell/hello", &recipe).unwrap();
        assert_eq!(store.resolve("swell/hello").unwrap(), d);
        assert_eq!(
            build(&store, "swell/hello", &recipe).unwrap(),
            d,
            "reproducible"
        );
        let root = store.rootfs(&d).unwrap();
        let mode = std::fs::metadata(root.join("ko-app/app")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o755
        );
        assert_eq!(
            std::fs::read_link(root.join("ko-app/hello")).unwrap(),
            Path::new("app")
        );
        let config = store.config(&d).unwrap();
        let entry = config.config().as_ref().unwrap().entrypoint().clone();
        assert_eq!(entry.unwrap(), ["/ko-app/hello"]);
    }
}
