//! `runtime`: answers `/` with JSON describing the request and the environment it runs
//! in (Knative's `RuntimeInfo`: env, files, cgroups, mounts, stdin, user, args),
//! `/security` with what the process may do, and `/healthz` with 200 for kubelet probes
//! only.

use crate::serve::{Handler, is_kubelet_probe, text};
use http::{Request, StatusCode};
use serde_json::{Map, Value, json};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Files the runtime contract says must or should exist.
const FILES: &[&str] = &[
    "/dev/fd",
    "/dev/full",
    "/dev/null",
    "/dev/ptmx",
    "/dev/random",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/tty",
    "/dev/urandom",
    "/dev/zero",
    "/proc/self/fd",
    "/proc/self/fd/0",
    "/proc/self/fd/1",
    "/proc/self/fd/2",
    "/tmp",
    "/var/log",
    "/etc/resolv.conf",
    "/dev/console",
];

/// cgroup files whose values the contract asks about (v1 and v2).
const CGROUPS: &[&str] = &[
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu/cpu.shares",
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/cpu.max",
    "/sys/fs/cgroup/cpu.weight",
];

static STDIN: OnceLock<Value> = OnceLock::new();

/// Whether the first read of stdin returns EOF (checked once, at start).
fn stdin_info() -> Value {
    STDIN
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut b = [0u8; 1];
                let _ = tx.send(std::io::stdin().read(&mut b));
            });
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(0)) => json!({"eof": true}),
                Ok(Ok(_)) => json!({"eof": false}),
                Ok(Err(e)) => json!({"error": e.to_string()}),
                Err(_) => json!({"eof": false, "error": "reading stdin blocked"}),
            }
        })
        .clone()
}

fn file_info(path: &str) -> Value {
    let mut m = Map::new();
    match std::fs::metadata(path) {
        Ok(md) => {
            m.insert("size".into(), json!(md.len()));
            m.insert("isDir".into(), json!(md.is_dir()));
            m.insert("mode".into(), json!(mode_string(md.permissions().mode())));
            if let Ok(target) = std::fs::read_link(path) {
                m.insert("sourceFile".into(), json!(target.to_string_lossy()));
            }
        }
        Err(e) => {
            m.insert("error".into(), json!(format!("stat {path}: {e}")));
        }
    }
    Value::Object(m)
}

/// `rwxr-xr-x`-style permission bits.
fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn cgroup_info(path: &str) -> Option<Value> {
    let raw = std::fs::read_to_string(path).ok()?;
    let raw = raw.trim().to_string();
    // Writing the value back tells whether the file is read-only.
    let read_only = std::fs::write(path, &raw).is_err();
    let mut m = Map::new();
    m.insert("name".into(), json!(path));
    match raw.parse::<i64>() {
        Ok(v) => {
            m.insert("value".into(), json!(v));
        }
        Err(_) => {
            m.insert("raw".into(), json!(raw));
        }
    }
    m.insert("readOnly".into(), json!(read_only));
    Some(Value::Object(m))
}

fn mounts() -> Value {
    match std::fs::read_to_string("/proc/mounts") {
        Ok(s) => s
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4).then(|| {
                    json!({"device": f[0], "path": f[1], "type": f[2],
                           "options": f[3].split(',').collect::<Vec<_>>()})
                })
            })
            .collect(),
        Err(e) => json!([{"error": e.to_string()}]),
    }
}

/// Go's canonical header key (`x-forwarded-for` → `X-Forwarded-For`).
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The runtime information for one request.
pub fn info<B>(req: &Request<B>) -> Value {
    let mut headers = Map::new();
    for (k, v) in req.headers() {
        let entry = headers
            .entry(canonical(k.as_str()))
            .or_insert_with(|| json!([]));
        if let Value::Array(a) = entry {
            a.push(json!(String::from_utf8_lossy(v.as_bytes())));
        }
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let (major, minor) = match req.version() {
        http::Version::HTTP_2 => (2, 0),
        http::Version::HTTP_10 => (1, 0),
        _ => (1, 1),
    };
    let envs: Map<String, Value> = std::env::vars().map(|(k, v)| (k, json!(v))).collect();
    let files: Map<String, Value> = FILES
        .iter()
        .map(|f| (f.to_string(), file_info(f)))
        .collect();
    let cwd = std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "request": {
            "ts": jiff::Timestamp::now().to_string(),
            "uri": req.uri().to_string(),
            "host": host,
            "method": req.method().as_str(),
            "headers": headers,
            "protoMajor": major,
            "protoMinor": minor,
        },
        "host": {
            "envs": envs,
            "files": files,
            "cgroups": CGROUPS.iter().filter_map(|c| cgroup_info(c)).collect::<Vec<_>>(),
            "mounts": mounts(),
            "stdin": stdin_info(),
            "user": {
                "uid": nix::unistd::getuid().as_raw(),
                "euid": nix::unistd::geteuid().as_raw(),
                "gid": nix::unistd::getgid().as_raw(),
                "egid": nix::unistd::getegid().as_raw(),
                "cwd": {"directory": cwd},
            },
            "args": std::env::args().collect::<Vec<_>>(),
        }
    })
}

/// `/security`: what the process may do — its ids and groups, capability sets,
/// `NoNewPrivs` and seccomp mode (from `/proc/self/status`), whether `/` is writable,
/// and what `unshare(CLONE_FS)` returns (a syscall containerd's default seccomp profile
/// blocks unless the container holds `CAP_SYS_ADMIN`; it affects only a throwaway
/// thread here).
pub fn security() -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    let unshare = std::thread::spawn(|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS))
        .join()
        .map_or_else(
            |_| "panicked".to_string(),
            |r| match r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            },
        );
    let probe = format!("/.swell-write-probe-{}", std::process::id());
    let root_writable = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(&probe);
    let groups: Vec<u32> = nix::unistd::getgroups()
        .map(|g| g.iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    json!({
        "uid": nix::unistd::getuid().as_raw(),
        "gid": nix::unistd::getgid().as_raw(),
        "groups": groups,
        "capEff": field("CapEff"),
        "capBnd": field("CapBnd"),
        "noNewPrivs": field("NoNewPrivs"),
        "seccomp": field("Seccomp"),
        "rootWritable": root_writable,
        "unshare": unshare,
    })
}

/// The image's handler.
pub fn handler() -> Handler {
    stdin_info();
    Arc::new(|req| {
        let resp = if req.uri().path() == "/healthz" {
            if is_kubelet_probe(&req) {
                text(StatusCode::OK, "")
            } else {
                text(StatusCode::BAD_REQUEST, "not a kubelet probe\n")
            }
        } else {
            let body = if req.uri().path() == "/security" {
                security()
            } else {
                info(&req)
            };
            let mut r = text(StatusCode::OK, body.to_string());
            let h = r.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            h.insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
            );
            h.insert(http::header::EXPIRES, http::HeaderValue::from_static("0"));
            r
        };
        Box::pin(async move { resp })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(canonical("traceparent"), "Traceparent");
    }

    #[test]
    fn modes() {
        assert_eq!(mode_string(0o777), "rwxrwxrwx");
        assert_eq!(mode_string(0o644), "rw-r--r--");
    }
}
