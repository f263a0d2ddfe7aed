//! Records of running replica process groups, so that a server that crashed can kill
//! what it left behind when it next starts.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), which tells a
/// process from a later one that reused its pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields resume after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Where the record of process group `pid` lives.
fn path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(pid.to_string())
}

/// Records that process group `pid` is ours.
pub fn record(dir: &Path, pid: u32) {
    let Some(t) = start_time(pid) else { return };
    if let Err(e) =
        std::fs::create_dir_all(dir).and_then(|()| std::fs::write(path(dir, pid), t.to_string()))
    {
        tracing::warn!(error = %e, pid, "cannot record replica process; a crash would orphan it");
    }
}

/// Forgets process group `pid`.
pub fn forget(dir: &Path, pid: u32) {
    let _ = std::fs::remove_file(path(dir, pid));
}

/// Kills every recorded process group that is still the same process, and forgets
/// them all. Returns how many were killed.
pub fn kill_leftovers(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut killed = 0;
    for e in entries.flatten() {
        let p = e.path();
        let pid = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok());
        let recorded = std::fs::read_to_string(&p)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        if let (Some(pid), Some(t)) = (pid, recorded)
            && start_time(pid) == Some(t)
            && let Ok(raw) = i32::try_from(pid)
            && killpg(Pid::from_raw(raw), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
        let _ = std::fs::remove_file(&p);
    }
    killed
}
