//! `hellovolume` (serves files of the volume at `/hello`) and `volumes` (writes a file
//! into an emptyDir, then serves it), as Knative's volume test images do.

use crate::serve::{Handler, ok, text};
use http::StatusCode;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// `volumes`' text.
pub const EMPTY_DIR_TEXT: &str = "From file in empty dir!";

/// `/` → `/hello/world`, `/<p>` → `/hello/<p>`, each with a newline; a path leaving
/// `/hello` → 400 `there is no escape`; a read error → 500.
pub fn hellovolume() -> Handler {
    Arc::new(|req| {
        let path = req.uri().path().trim_start_matches('/');
        let rel = if path.is_empty() { "world" } else { path };
        let inside = Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        let resp = if !inside {
            text(StatusCode::BAD_REQUEST, "there is no escape")
        } else {
            match std::fs::read_to_string(Path::new("/hello").join(rel)) {
                Ok(s) => ok(s + "\n"),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        };
        Box::pin(async move { resp })
    })
}

/// Writes [`EMPTY_DIR_TEXT`] to `$DATA_PATH/testfile` (`/data` by default) unless
/// `SKIP_DATA_WRITE=true`; with `SKIP_DATA_SERVE=true` that is all (an init container),
/// else serves the file on every path.
pub fn volumes() -> Result<Option<Handler>, String> {
    let dir = std::env::var("DATA_PATH")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/data".into());
    let file = PathBuf::from(dir).join("testfile");
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "true");
    if !flag("SKIP_DATA_WRITE") {
        std::fs::write(&file, EMPTY_DIR_TEXT)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    if flag("SKIP_DATA_SERVE") {
        return Ok(None);
    }
    Ok(Some(Arc::new(move |_req| {
        let resp = match std::fs::read_to_string(&file) {
            Ok(s) => ok(s),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        Box::pin(async move { resp })
    })))
}
