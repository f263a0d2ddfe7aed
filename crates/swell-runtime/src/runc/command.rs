//! runc's command line: the one place Swell runs `runc` (run, kill, delete, exec, list),
//! behind the [`Containers`] trait so that unit tests record the calls instead of making
//! them (as youki's tests do behind its `Syscall` trait). Every call is async or spawns
//! without waiting: nothing here blocks a runtime thread.

use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Child;

/// The container runtime the runc launcher drives.
pub trait Containers: Send + Sync + std::fmt::Debug + 'static {
    /// Starts container `id` from `bundle` in the foreground (`runc run --keep`: its
    /// state is kept after it exits, so its cgroup can still say why it ended), in a
    /// process group of its own, its output appended to `stdout`/`stderr`.
    fn run(
        &self,
        bundle: &Path,
        id: &str,
        stdout: std::fs::File,
        stderr: std::fs::File,
    ) -> std::io::Result<Child>;
    /// Sends `signal` (`TERM`, `KILL`, …) to container `id`'s process; a container
    /// that is gone already is not an error worth telling.
    fn kill<'a>(&'a self, id: &'a str, signal: &'a str) -> BoxFuture<'a, ()>;
    /// Deletes container `id` whatever its state (`runc delete -f`).
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ()>;
    /// The command line that runs a command inside container `id` (exec probes
    /// append their command to it).
    fn exec(&self, id: &str) -> Vec<String>;
    /// The ids of the containers runc knows (running, stopped or half-created).
    fn list(&self) -> Vec<String>;
}

/// The `runc` binary on `PATH`, keeping its state under `root` (`runc --root`).
#[derive(Clone, Debug)]
pub struct RuncBinary {
    root: PathBuf,
}

impl RuncBinary {
    /// runc with its state under `root`.
    pub fn new(root: &Path) -> Self {
        RuncBinary {
            root: root.to_path_buf(),
        }
    }

    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("runc");
        c.arg("--root").arg(&self.root).stdin(Stdio::null());
        c
    }

    /// Runs `runc ARGS` to its end; logs what it said if it failed.
    async fn call(&self, args: &[&str]) {
        match self.command().args(args).output().await {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::debug!(
                ?args,
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "runc failed"
            ),
            Err(e) => tracing::warn!(?args, error = %e, "cannot run runc"),
        }
    }
}

impl Containers for RuncBinary {
    fn run(
        &self,
        bundle: &Path,
        id: &str,
        stdout: std::fs::File,
        stderr: std::fs::File,
    ) -> std::io::Result<Child> {
        self.command()
            .args(["run", "--keep", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
    }

    fn kill<'a>(&'a self, id: &'a str, signal: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.call(&["kill", id, signal]).await })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.call(&["delete", "-f", id]).await })
    }

    fn exec(&self, id: &str) -> Vec<String> {
        vec![
            "runc".into(),
            "--root".into(),
            self.root.display().to_string(),
            "exec".into(),
            id.into(),
        ]
    }

    fn list(&self) -> Vec<String> {
        // runc keeps one directory per container under its root.
        std::fs::read_dir(&self.root)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A fake runtime that records every call (`"kill ID TERM"`, `"delete ID"`, …) and
/// runs nothing, for unit tests of what the launcher asks of runc.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Recording {
    /// The calls made, in order.
    pub calls: std::sync::Mutex<Vec<String>>,
    /// What [`Containers::list`] answers.
    pub existing: Vec<String>,
}

#[cfg(test)]
impl Recording {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    /// The calls made so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[cfg(test)]
impl Containers for Recording {
    fn run(
        &self,
        bundle: &Path,
        id: &str,
        _: std::fs::File,
        _: std::fs::File,
    ) -> std::io::Result<Child> {
        self.record(format!("run {id} {}", bundle.display()));
        Err(std::io::Error::other("the recording runtime runs nothing"))
    }

    fn kill<'a>(&'a self, id: &'a str, signal: &'a str) -> BoxFuture<'a, ()> {
        self.record(format!("kill {id} {signal}"));
        Box::pin(std::future::ready(()))
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ()> {
        self.record(format!("delete {id}"));
        Box::pin(std::future::ready(()))
    }

    fn exec(&self, id: &str) -> Vec<String> {
        vec!["exec".into(), id.into()]
    }

    fn list(&self) -> Vec<String> {
        self.existing.clone()
    }
}
