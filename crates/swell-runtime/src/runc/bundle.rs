//! A replica's OCI runtime configuration (`config.json`) for runc, built with
//! `oci-spec` the way Kubernetes runs a container: the image's entrypoint and cmd
//! merged with the container's `command`/`args`, the image's environment then the
//! container's, the user from `securityContext` or the image (`runAsNonRoot`
//! enforced), containerd's default capabilities, no new privileges, masked and
//! read-only kernel paths (`/proc/sys` included), `/tmp` as tmpfs, the standard `/dev`
//! and no `/dev/console`, the replica's `/etc/resolv.conf`, `/etc/hosts` and
//! `/etc/hostname`, the container's volume mounts, and cgroup limits from `resources`.

use crate::security::{self, Effective, ReplicaPolicy};
use k8s_openapi::api::core::v1::{Container, PodSecurityContext};
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder, get_default_maskedpaths, get_default_mounts,
    get_default_readonly_paths,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// containerd's (and Docker's) default capability set.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Processes a replica may run at once (the container's cgroup `pids.max`).
pub const PIDS_LIMIT: i64 = 4096;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container cannot be run as specified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// Neither the container nor the image says what to run.
    #[error("no command: the image has no entrypoint or cmd and the container sets none")]
    NoCommand,
    /// `runAsNonRoot` with a root user.
    #[error("container has runAsNonRoot and image will run as root")]
    RunsAsRoot,
    /// The image's `USER` names someone its `/etc/passwd` does not know.
    #[error("unable to find user {0} in the image's /etc/passwd")]
    UnknownUser(String),
    /// The image's `USER` names a group its `/etc/group` does not know.
    #[error("unable to find group {0} in the image's /etc/group")]
    UnknownGroup(String),
    /// A resource quantity that is not one.
    #[error("invalid quantity {0:?} in resources")]
    Quantity(String),
    /// oci-spec refused what was built.
    #[error("cannot build the runtime spec: {0}")]
    Spec(String),
    /// `seccompProfile.type: Unconfined` on a server that does not allow it.
    #[error(
        "seccompProfile.type Unconfined: this server runs every container under the RuntimeDefault seccomp profile (start it with --allow-unconfined-seccomp to allow Unconfined)"
    )]
    UnconfinedSeccomp,
    /// A `seccompProfile.type` Swell does not run (`Localhost`, or unknown).
    #[error("seccompProfile.type {0}: not supported by Swell (use RuntimeDefault)")]
    SeccompProfile(String),
}

pub(crate) fn spec_err(e: impl std::fmt::Display) -> BundleError {
    BundleError::Spec(e.to_string())
}

/// A directory of the host bound into the container (a volume, or part of one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Where it appears in the container (`mountPath`).
    pub destination: String,
    /// What appears there.
    pub source: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What the replica's `config.json` is made from.
#[derive(Clone, Debug)]
pub struct BundleInput<'a> {
    /// The image's configuration (`config` of the image configuration).
    pub image: Option<&'a oci_spec::image::Config>,
    /// The container as the Revision has it.
    pub container: &'a Container,
    /// `command`, `$(VAR)`-expanded.
    pub command: Option<Vec<String>>,
    /// `args`, `$(VAR)`-expanded.
    pub args: Option<Vec<String>>,
    /// The container's environment, then `PORT` and `K_*`, in order.
    pub env: &'a [(String, String)],
    /// The root filesystem runc runs (the image's `/etc/passwd` is read from it).
    pub rootfs: &'a Path,
    /// The replica's host name.
    pub hostname: &'a str,
    /// The replica's `/etc/resolv.conf`, `/etc/hosts` and `/etc/hostname`.
    pub etc: [PathBuf; 3],
    /// The network namespace to join (a new one when `None`).
    pub netns: Option<PathBuf>,
    /// The container's cgroup, relative to the cgroup root.
    pub cgroups_path: String,
    /// Its volume mounts, in the order the container lists them.
    pub volumes: &'a [BindMount],
    /// The pod's `securityContext`.
    pub pod_security: Option<&'a PodSecurityContext>,
    /// What the operator allows.
    pub policy: ReplicaPolicy,
}

/// The process argv, as Kubernetes merges image and container.
pub fn argv(
    image: Option<&oci_spec::image::Config>,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
) -> Result<Vec<String>, BundleError> {
    let entrypoint = image.and_then(|c| c.entrypoint().clone());
    let cmd = image.and_then(|c| c.cmd().clone());
    let argv: Vec<String> = match (command, args) {
        (Some(c), Some(a)) => c.into_iter().chain(a).collect(),
        (Some(c), None) => c,
        (None, Some(a)) => entrypoint
            .unwrap_or_default()
            .into_iter()
            .chain(a)
            .collect(),
        (None, None) => entrypoint
            .unwrap_or_default()
            .into_iter()
            .chain(cmd.unwrap_or_default())
            .collect(),
    };
    if argv.is_empty() {
        return Err(BundleError::NoCommand);
    }
    Ok(argv)
}

/// The environment: the image's, then the container's (later names win, in place).
pub fn environment(
    image: Option<&oci_spec::image::Config>,
    container: &[(String, String)],
) -> Vec<String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(n, _)| n == k) {
        Some(slot) => slot.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    for e in image.and_then(|c| c.env().clone()).unwrap_or_default() {
        let (k, v) = e.split_once('=').unwrap_or((&e, ""));
        set(k, v);
    }
    for (k, v) in container {
        set(k, v);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Reads `/etc/<file>` of the image, refusing anything but a regular file there (an
/// image's symlink must not make Swell read the host's).
fn image_file(rootfs: &Path, file: &str) -> Option<String> {
    let etc = rootfs.join("etc");
    if !std::fs::symlink_metadata(&etc).is_ok_and(|m| m.is_dir()) {
        return None;
    }
    let path = etc.join(file);
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// `name` → (uid, gid) from an `/etc/passwd`, or `gname` → gid from an `/etc/group`.
fn lookup(db: Option<String>, name: &str) -> Option<(u32, u32)> {
    db?.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| {
                Some((
                    f.get(2)?.parse().ok()?,
                    f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
                ))
            })
            .flatten()
    })
}

/// The (uid, gid) the process runs as: `runAsUser`/`runAsGroup` (the container's, else
/// the pod's), else the image's `USER` (`uid`, `uid:gid`, `name`, `name:group`, names
/// looked up in the image); `runAsNonRoot` refuses uid 0.
pub fn user(
    image: Option<&oci_spec::image::Config>,
    e: &Effective,
    rootfs: &Path,
) -> Result<(u32, u32), BundleError> {
    let image_user = image.and_then(|c| c.user().clone()).unwrap_or_default();
    let (u, g) = image_user
        .split_once(':')
        .map_or((image_user.as_str(), None), |(u, g)| (u, Some(g)));
    let (mut uid, mut gid) = (0u32, 0u32);
    if !u.is_empty() {
        match u.parse::<u32>() {
            Ok(n) => uid = n,
            Err(_) => {
                (uid, gid) = lookup(image_file(rootfs, "passwd"), u)
                    .ok_or_else(|| BundleError::UnknownUser(u.to_string()))?;
            }
        }
    }
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                lookup(image_file(rootfs, "group"), g)
                    .ok_or_else(|| BundleError::UnknownGroup(g.to_string()))?
                    .0
            }
        };
    }
    if let Some(n) = e.run_as_user {
        uid = n;
    }
    if let Some(n) = e.run_as_group {
        gid = n;
    }
    if e.run_as_non_root && uid == 0 {
        return Err(BundleError::RunsAsRoot);
    }
    Ok((uid, gid))
}

/// The seccomp filter: containerd's `RuntimeDefault` unless the container (or its pod)
/// asks for `Unconfined` and `policy` allows it; `Localhost` profiles are refused.
pub fn seccomp(
    e: &Effective,
    bounding: &[Capability],
    policy: ReplicaPolicy,
) -> Result<Option<oci_spec::runtime::LinuxSeccomp>, BundleError> {
    match e.seccomp.as_deref() {
        None | Some("" | "RuntimeDefault") => super::seccomp::runtime_default(bounding).map(Some),
        Some("Unconfined") if policy.allow_unconfined_seccomp => Ok(None),
        Some("Unconfined") => Err(BundleError::UnconfinedSeccomp),
        Some(other) => Err(BundleError::SeccompProfile(other.to_string())),
    }
}

/// What can be refused before anything is pulled or started: the seccomp profile and an
/// explicit root user under `runAsNonRoot`.
pub fn check(
    pod: Option<&PodSecurityContext>,
    c: &Container,
    policy: ReplicaPolicy,
) -> Result<(), BundleError> {
    let e = security::effective(pod, c);
    seccomp(&e, &[], policy)?;
    if e.run_as_non_root && e.run_as_user == Some(0) {
        return Err(BundleError::RunsAsRoot);
    }
    Ok(())
}

/// The capabilities: containerd's defaults, with the container's `add` and `drop`
/// (`ALL` drops everything).
pub fn capabilities(container: &Container) -> Vec<Capability> {
    let caps = container
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref());
    // Kubernetes names capabilities without `CAP_`, as oci-spec's `Display` does.
    let name = |c: &str| {
        let c = c.trim().to_ascii_uppercase();
        c.strip_prefix("CAP_").map_or(c.clone(), str::to_string)
    };
    let drop: HashSet<String> = caps
        .and_then(|c| c.drop.clone())
        .unwrap_or_default()
        .iter()
        .map(|c| name(c))
        .collect();
    let mut out: Vec<Capability> = if drop.contains("ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES
            .into_iter()
            .filter(|c| !drop.contains(&c.to_string()))
            .collect()
    };
    for add in caps.and_then(|c| c.add.clone()).unwrap_or_default() {
        if let Ok(c) = name(&add).parse::<Capability>()
            && !out.contains(&c)
        {
            out.push(c);
        }
    }
    out
}

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, BundleError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(spec_err)
}

/// The replica's runtime spec.
pub fn runtime_spec(input: &BundleInput<'_>) -> Result<Spec, BundleError> {
    let c = input.container;
    let sc = c.security_context.as_ref();
    let argv = argv(input.image, input.command.clone(), input.args.clone())?;
    let e = security::effective(input.pod_security, c);
    let (uid, gid) = user(input.image, &e, input.rootfs)?;
    let cwd = c
        .working_dir
        .clone()
        .or_else(|| input.image.and_then(|i| i.working_dir().clone()))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let caps = capabilities(c);
    let seccomp = seccomp(&e, &caps, input.policy)?;
    // A non-root process gets capabilities only in its bounding set, as on Kubernetes.
    let effective = if uid == 0 { caps.clone() } else { Vec::new() };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.iter().copied().collect::<HashSet<_>>())
        .effective(effective.iter().copied().collect::<HashSet<_>>())
        .permitted(effective.iter().copied().collect::<HashSet<_>>())
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(spec_err)?;
    // As many open files as containerd gives (1048576), or as this server may have.
    let open_files = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(_, hard)| hard.min(1_048_576));
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(argv)
        .env(environment(input.image, input.env))
        .cwd(cwd)
        .user(
            UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .additional_gids(e.supplemental_groups.clone())
                .build()
                .map_err(spec_err)?,
        )
        .capabilities(capabilities)
        .no_new_privileges(sc.and_then(|s| s.allow_privilege_escalation) != Some(true))
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(open_files)
                .soft(open_files)
                .build()
                .map_err(spec_err)?,
        ])
        .build()
        .map_err(spec_err)?;
    let read_only = sc.and_then(|s| s.read_only_root_filesystem) == Some(true);
    let root = RootBuilder::default()
        .path(input.rootfs)
        .readonly(read_only)
        .build()
        .map_err(spec_err)?;
    let mut mounts = get_default_mounts();
    mounts.push(mount(
        "/tmp",
        "tmpfs",
        Path::new("tmpfs"),
        &["nosuid", "nodev", "mode=1777"],
    )?);
    for (dest, src) in ["/etc/resolv.conf", "/etc/hosts", "/etc/hostname"]
        .iter()
        .zip(&input.etc)
    {
        mounts.push(mount(
            dest,
            "bind",
            src,
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        )?);
    }
    for v in input.volumes {
        let access = if v.read_only { "ro" } else { "rw" };
        mounts.push(mount(
            &v.destination,
            "bind",
            &v.source,
            &["rbind", access, "nosuid", "nodev"],
        )?);
    }
    let mut namespaces = Vec::new();
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Network,
    ] {
        let mut ns = LinuxNamespaceBuilder::default().typ(t);
        if t == LinuxNamespaceType::Network
            && let Some(path) = &input.netns
        {
            ns = ns.path(path.clone());
        }
        namespaces.push(ns.build().map_err(spec_err)?);
    }
    let quantity = |which: &str, kind: &str| -> Result<Option<String>, BundleError> {
        let map = match which {
            "limits" => c.resources.as_ref().and_then(|r| r.limits.as_ref()),
            _ => c.resources.as_ref().and_then(|r| r.requests.as_ref()),
        };
        Ok(map.and_then(|m| m.get(kind)).map(|q| q.0.clone()))
    };
    let mut resources = LinuxResourcesBuilder::default().pids(
        LinuxPidsBuilder::default()
            .limit(PIDS_LIMIT)
            .build()
            .map_err(spec_err)?,
    );
    if let Some(q) = quantity("limits", "memory")? {
        let bytes = swell_api::quantity::bytes(&q).ok_or(BundleError::Quantity(q))?;
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(i64::try_from(bytes).unwrap_or(i64::MAX))
                .build()
                .map_err(spec_err)?,
        );
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any_cpu = false;
    if let Some(q) = quantity("limits", "cpu")? {
        let cores = swell_api::quantity::cores(&q).ok_or(BundleError::Quantity(q))?;
        cpu = cpu
            .period(100_000u64)
            .quota(((cores * 100_000.0).ceil() as i64).max(1_000));
        any_cpu = true;
    }
    if let Some(q) = quantity("requests", "cpu")? {
        let cores = swell_api::quantity::cores(&q).ok_or(BundleError::Quantity(q))?;
        // Kubernetes' milli-CPU → shares conversion.
        cpu = cpu.shares(((cores * 1024.0).ceil() as u64).max(2));
        any_cpu = true;
    }
    if any_cpu {
        resources = resources.cpu(cpu.build().map_err(spec_err)?);
    }
    let mut linux = LinuxBuilder::default();
    if let Some(s) = seccomp {
        linux = linux.seccomp(s);
    }
    let linux = linux
        .namespaces(namespaces)
        .masked_paths(get_default_maskedpaths())
        .readonly_paths(get_default_readonly_paths())
        .cgroups_path(PathBuf::from(&input.cgroups_path))
        .resources(resources.build().map_err(spec_err)?)
        .build()
        .map_err(spec_err)?;
    SpecBuilder::default()
        .version("1.0.2")
        .hostname(input.hostname)
        .process(process)
        .root(root)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(spec_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Capabilities, ResourceRequirements, SecurityContext};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn image(
        entrypoint: &[&str],
        cmd: &[&str],
        env: &[&str],
        user: &str,
    ) -> oci_spec::image::Config {
        let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut c = oci_spec::image::Config::default();
        c.set_entrypoint(strings(entrypoint).filter(|v| !v.is_empty()));
        c.set_cmd(strings(cmd).filter(|v| !v.is_empty()));
        c.set_env(strings(env));
        c.set_user(Some(user.to_string()).filter(|u| !u.is_empty()));
        c
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn argv_merges_as_kubernetes_does() {
        let img = image(&["/entry"], &["cmd-arg"], &[], "");
        let i = Some(&img);
        assert_eq!(argv(i, None, None).unwrap(), ["/entry", "cmd-arg"]);
        assert_eq!(argv(i, None, strings(&["a"])).unwrap(), ["/entry", "a"]);
        assert_eq!(argv(i, strings(&["/bin/x"]), None).unwrap(), ["/bin/x"]);
        assert_eq!(
            argv(i, strings(&["/bin/x"]), strings(&["a"])).unwrap(),
            ["/bin/x", "a"]
        );
        assert_eq!(argv(None, None, None), Err(BundleError::NoCommand));
    }

    #[test]
    fn environment_is_the_images_then_the_containers() {
        let img = image(&[], &[], &["PATH=/img", "A=image", "B=image"], "");
        let env = environment(
            Some(&img),
            &[
                ("B".into(), "container".into()),
                ("PORT".into(), "8080".into()),
            ],
        );
        assert_eq!(env, ["PATH=/img", "A=image", "B=container", "PORT=8080"]);
        assert_eq!(environment(None, &[])[0], format!("PATH={DEFAULT_PATH}"));
    }

    #[test]
    fn users_come_from_the_security_context_or_the_image() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let plain = Container::default();
        let u = |user: &str, c: &Container| {
            let e = security::effective(None, c);
            super::user(Some(&image(&[], &[], &[], user)), &e, root)
        };
        assert_eq!(u("", &plain), Ok((0, 0)));
        assert_eq!(u("7", &plain), Ok((7, 0)));
        assert_eq!(u("7:8", &plain), Ok((7, 8)));
        assert_eq!(u("app", &plain), Ok((1001, 1002)));
        assert_eq!(u("app:staff", &plain), Ok((1001, 50)));
        assert_eq!(
            u("ghost", &plain),
            Err(BundleError::UnknownUser("ghost".into()))
        );
        assert_eq!(
            u("app:ghosts", &plain),
            Err(BundleError::UnknownGroup("ghosts".into()))
        );
        let secure = |uid: Option<i64>, non_root: bool| Container {
            security_context: Some(SecurityContext {
                run_as_user: uid,
                run_as_group: uid.map(|_| 9),
                run_as_non_root: Some(non_root),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        assert_eq!(u("app", &secure(Some(65532), true)), Ok((65532, 9)));
        assert_eq!(u("", &secure(None, true)), Err(BundleError::RunsAsRoot));
        assert_eq!(u("app", &secure(None, true)), Ok((1001, 1002)));
        // An image whose /etc/passwd points at the host's is not read.
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc/passwd")).unwrap();
        assert_eq!(
            u("root", &plain),
            Err(BundleError::UnknownUser("root".into()))
        );
    }

    #[test]
    fn capabilities_start_from_containerds_defaults() {
        assert_eq!(
            capabilities(&Container::default()),
            DEFAULT_CAPABILITIES.to_vec()
        );
        let with = |add: &[&str], drop: &[&str]| Container {
            security_context: Some(SecurityContext {
                capabilities: Some(Capabilities {
                    add: strings(add),
                    drop: strings(drop),
                }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        assert_eq!(
            capabilities(&with(&["NET_BIND_SERVICE"], &["ALL"])),
            [Capability::NetBindService]
        );
        let no_kill = capabilities(&with(&["SYS_TIME"], &["KILL"]));
        assert!(!no_kill.contains(&Capability::Kill));
        assert!(no_kill.contains(&Capability::SysTime));
    }

    #[test]
    fn the_spec_isolates_and_limits_the_container() {
        let t = tempfile::tempdir().unwrap();
        let quantities = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            )
        };
        let container = Container {
            resources: Some(ResourceRequirements {
                limits: quantities(&[("memory", "64Mi"), ("cpu", "500m")]),
                requests: quantities(&[("cpu", "250m")]),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                run_as_user: Some(1000),
                read_only_root_filesystem: Some(true),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        let etc = ["resolv.conf", "hosts", "hostname"].map(|f| t.path().join(f));
        let img = image(&["/app"], &[], &[], "");
        let spec = runtime_spec(&BundleInput {
            image: Some(&img),
            container: &container,
            command: None,
            args: None,
            env: &[("PORT".into(), "8080".into())],
            rootfs: t.path(),
            hostname: "hello-00001-1",
            etc,
            netns: Some("/run/netns/swell-x".into()),
            cgroups_path: "/swell/default-hello-00001-1".into(),
            volumes: &[BindMount {
                destination: "/etc/config".into(),
                source: t.path().join("volumes/config"),
                read_only: true,
            }],
            pod_security: None,
            policy: ReplicaPolicy::default(),
        })
        .unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        let p = &json["process"];
        assert_eq!(p["args"], serde_json::json!(["/app"]));
        assert_eq!(p["user"]["uid"], 1000);
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(
            p["capabilities"]["effective"],
            serde_json::json!([]),
            "non-root"
        );
        assert!(p["env"].as_array().unwrap().contains(&"PORT=8080".into()));
        assert_eq!(json["root"]["readonly"], true);
        let mounts = json["mounts"].as_array().unwrap();
        let at = |d: &str| mounts.iter().find(|m| m["destination"] == d).cloned();
        assert_eq!(at("/tmp").unwrap()["type"], "tmpfs");
        assert_eq!(at("/etc/hosts").unwrap()["type"], "bind");
        let config = at("/etc/config").unwrap();
        assert_eq!(config["type"], "bind");
        assert!(config["options"].as_array().unwrap().contains(&"ro".into()));
        assert!(at("/dev/console").is_none());
        let linux = &json["linux"];
        assert!(
            linux["readonlyPaths"]
                .as_array()
                .unwrap()
                .contains(&"/proc/sys".into())
        );
        assert_eq!(linux["resources"]["memory"]["limit"], 64 * 1024 * 1024);
        assert_eq!(linux["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(linux["resources"]["cpu"]["period"], 100_000);
        assert_eq!(linux["resources"]["cpu"]["shares"], 256);
        assert_eq!(linux["resources"]["pids"]["limit"], PIDS_LIMIT);
        let net = linux["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .unwrap();
        assert_eq!(net["path"], "/run/netns/swell-x");
        assert!(!serde_json::to_string(&json).unwrap().contains("console"));
        assert_eq!(linux["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    }

    fn spec_of(
        container: &Container,
        pod: Option<&PodSecurityContext>,
        policy: ReplicaPolicy,
    ) -> Result<serde_json::Value, BundleError> {
        let t = tempfile::tempdir().unwrap();
        let img = image(&["/app"], &[], &[], "");
        let spec = runtime_spec(&BundleInput {
            image: Some(&img),
            container,
            command: None,
            args: None,
            env: &[],
            rootfs: t.path(),
            hostname: "h",
            etc: ["resolv.conf", "hosts", "hostname"].map(|f| t.path().join(f)),
            netns: None,
            cgroups_path: "/swell/x".into(),
            volumes: &[],
            pod_security: pod,
            policy,
        })?;
        Ok(serde_json::to_value(&spec).unwrap())
    }

    #[test]
    fn the_pods_security_context_applies_under_the_containers() {
        use k8s_openapi::api::core::v1::SeccompProfile;
        let pod = PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            fs_group: Some(2000),
            supplemental_groups: Some(vec![4000]),
            ..PodSecurityContext::default()
        };
        let plain = Container::default();
        let json = spec_of(&plain, Some(&pod), ReplicaPolicy::default()).unwrap();
        let user = &json["process"]["user"];
        assert_eq!(user["uid"], 1000);
        assert_eq!(user["gid"], 3000);
        assert_eq!(user["additionalGids"], serde_json::json!([4000, 2000]));
        let own = Container {
            security_context: Some(SecurityContext {
                run_as_user: Some(5),
                capabilities: Some(Capabilities {
                    add: None,
                    drop: strings(&["ALL"]),
                }),
                allow_privilege_escalation: Some(true),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        let json = spec_of(&own, Some(&pod), ReplicaPolicy::default()).unwrap();
        assert_eq!(json["process"]["user"]["uid"], 5);
        assert_eq!(json["process"]["noNewPrivileges"], false);
        assert_eq!(
            json["process"]["capabilities"]["bounding"],
            serde_json::json!([])
        );
        // Unconfined only when the server allows it; Localhost never.
        let unconfined = PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "Unconfined".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        };
        assert_eq!(
            spec_of(&plain, Some(&unconfined), ReplicaPolicy::default()),
            Err(BundleError::UnconfinedSeccomp)
        );
        let allowed = ReplicaPolicy {
            allow_unconfined_seccomp: true,
            ..ReplicaPolicy::default()
        };
        let json = spec_of(&plain, Some(&unconfined), allowed).unwrap();
        assert!(json["linux"]["seccomp"].is_null());
        let localhost = Container {
            security_context: Some(SecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "Localhost".into(),
                    localhost_profile: Some("p.json".into()),
                }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        assert_eq!(
            check(None, &localhost, allowed),
            Err(BundleError::SeccompProfile("Localhost".into()))
        );
        let root = PodSecurityContext {
            run_as_user: Some(0),
            run_as_non_root: Some(true),
            ..PodSecurityContext::default()
        };
        assert_eq!(
            check(Some(&root), &plain, allowed),
            Err(BundleError::RunsAsRoot)
        );
    }
}
