//! A process group's resource usage read from `/proc`: CPU time (user + system, of
//! every live member) and resident memory, as cAdvisor reads a container's.

use nix::unistd::{SysconfVar, sysconf};

/// What a process group uses now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupUsage {
    /// CPU seconds used so far by the group's live processes.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub memory_bytes: u64,
}

/// Clock ticks per second and page size, for `/proc/<pid>/stat`.
fn units() -> (f64, u64) {
    let tick = sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100);
    let page = sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|p| *p > 0)
        .unwrap_or(4096);
    (tick as f64, u64::try_from(page).unwrap_or(4096))
}

/// (process group, CPU ticks, resident pages) from one `/proc/<pid>/stat` line.
fn parse_stat(line: &str) -> Option<(u32, u64, u64)> {
    // The command name is in parentheses and may contain anything; fields follow the
    // last `)`: state ppid pgrp … utime(14) stime(15) … rss(24), 1-based overall.
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let pgrp = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let rss: i64 = f.get(21)?.parse().ok()?;
    Some((pgrp, utime + stime, u64::try_from(rss.max(0)).unwrap_or(0)))
}

/// Sums the usage of every live process in group `pgid`.
pub fn group_usage(pgid: u32) -> GroupUsage {
    let (tick, page) = units();
    let mut u = GroupUsage::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return u;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((group, ticks, pages)) = parse_stat(&stat)
            && group == pgid
        {
            u.cpu_seconds += ticks as f64 / tick;
            u.memory_bytes += pages * page;
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 300 0 0 0 250 50 0 0 20 0 3 0 100 10000000 1280 18446744073709551615";
        assert_eq!(parse_stat(line), Some((4242, 300, 1280)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_group_uses_memory() {
        let me = nix::unistd::getpgrp().as_raw();
        let u = group_usage(u32::try_from(me).unwrap());
        assert!(u.memory_bytes > 0, "{u:?}");
    }
}
