//! Who a replica runs as and what it may do: the pod's and the container's
//! `securityContext` merged as kubelet merges them (the container's field wins), and the
//! operator's opt-ins ([`ReplicaPolicy`]) that let a replica run as root or without
//! seccomp.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext};

/// The uid (and gid) a process-backend replica runs as when its `securityContext` names
/// none: distroless' `nonroot`, as Knative's test images use.
pub const NONROOT: u32 = 65532;

/// What the operator lets replicas do beyond the defaults (flags of `swell server`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaPolicy {
    /// `--allow-root-replicas`: a process-backend replica may run as uid 0
    /// (`runAsUser: 0`).
    pub allow_root: bool,
    /// `--allow-unconfined-seccomp`: a runc container whose `seccompProfile.type` is
    /// `Unconfined` runs without a seccomp filter.
    pub allow_unconfined_seccomp: bool,
}

/// A container's security settings with its pod's filled in where it sets none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effective {
    /// `runAsUser`.
    pub run_as_user: Option<u32>,
    /// `runAsGroup`.
    pub run_as_group: Option<u32>,
    /// `runAsNonRoot`.
    pub run_as_non_root: bool,
    /// `seccompProfile.type` (`RuntimeDefault`, `Unconfined`, `Localhost`).
    pub seccomp: Option<String>,
    /// The pod's `supplementalGroups`, then its `fsGroup`, as kubelet adds them.
    pub supplemental_groups: Vec<u32>,
    /// The pod's `fsGroup`.
    pub fs_group: Option<u32>,
}

/// Ids in a `securityContext` are validated to 0..=2147483647 at admission.
fn id(n: i64) -> Option<u32> {
    u32::try_from(n).ok()
}

/// The container's settings over the pod's.
pub fn effective(pod: Option<&PodSecurityContext>, c: &Container) -> Effective {
    let sc = c.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod.and_then(|p| p.run_as_user))
        .and_then(id);
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or_else(|| pod.and_then(|p| p.run_as_group))
        .and_then(id);
    let run_as_non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod.and_then(|p| p.run_as_non_root))
        == Some(true);
    let seccomp = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| pod.and_then(|p| p.seccomp_profile.as_ref()))
        .map(|p| p.type_.clone());
    let fs_group = pod.and_then(|p| p.fs_group).and_then(id);
    let mut supplemental_groups: Vec<u32> = pod
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(id)
        .collect();
    if let Some(g) = fs_group
        && !supplemental_groups.contains(&g)
    {
        supplemental_groups.push(g);
    }
    Effective {
        run_as_user,
        run_as_group,
        run_as_non_root,
        seccomp,
        supplemental_groups,
        fs_group,
    }
}

/// Kubernetes' refusal of a root user under `runAsNonRoot`.
pub const RUNS_AS_ROOT: &str = "container has runAsNonRoot and image will run as root";

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{SeccompProfile, SecurityContext};

    #[test]
    fn the_containers_settings_win_over_the_pods() {
        let pod = PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(2000),
            run_as_non_root: Some(true),
            fs_group: Some(3000),
            supplemental_groups: Some(vec![4000, 3000]),
            seccomp_profile: Some(SeccompProfile {
                type_: "Unconfined".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        };
        let c = Container {
            security_context: Some(SecurityContext {
                run_as_user: Some(7),
                run_as_non_root: Some(false),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        let e = effective(Some(&pod), &c);
        assert_eq!(e.run_as_user, Some(7));
        assert_eq!(e.run_as_group, Some(2000));
        assert!(!e.run_as_non_root);
        assert_eq!(e.seccomp.as_deref(), Some("Unconfined"));
        assert_eq!(e.supplemental_groups, [4000, 3000]);
        assert_eq!(e.fs_group, Some(3000));
        assert_eq!(effective(None, &Container::default()), Effective::default());
    }
}
