//! An immutable snapshot of every RBAC object, indexed by subject so one decision looks
//! at only the bindings that name the user or one of their groups.

use super::gofmt::quote;
use super::{Decision, Request, SYSTEM_MASTERS, User, aggregation, rules::rule_allows};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Every Role, ClusterRole (aggregation applied) and binding, ready for decisions.
#[derive(Debug, Default)]
pub struct Policy {
    /// Rules of each resolved binding; cluster bindings come first, in the order given.
    grants: Vec<Arc<[PolicyRule]>>,
    /// ClusterRoleBindings by subject.
    cluster: SubjectIndex,
    /// RoleBindings by namespace, then subject.
    namespaces: HashMap<String, SubjectIndex>,
    /// Effective rules of each ClusterRole.
    cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
    /// Rules of each Role, by namespace then name.
    roles: HashMap<String, HashMap<String, Arc<[PolicyRule]>>>,
    /// The shared empty reason.
    no_reason: Arc<str>,
}

/// Bindings by the subjects they name.
#[derive(Debug, Default)]
struct SubjectIndex {
    /// By user name; ServiceAccount subjects under `system:serviceaccount:NS:NAME`.
    users: HashMap<String, Vec<Entry>>,
    /// By group name.
    groups: HashMap<String, Vec<Entry>>,
}

/// One subject of one binding. Lists hold entries in (grant, subject) order.
#[derive(Debug)]
struct Entry {
    grant: u32,
    subject: u32,
    /// `RBAC: allowed by …`, precomputed so allowing allocates nothing.
    reason: Arc<str>,
}

// === impl Policy ===

impl Policy {
    /// Builds the snapshot. ClusterRoles with an `aggregationRule` get the rules of the
    /// ClusterRoles their selectors match; bindings to missing roles are ignored.
    pub fn new(
        roles: Vec<Role>,
        cluster_roles: Vec<ClusterRole>,
        role_bindings: Vec<RoleBinding>,
        cluster_role_bindings: Vec<ClusterRoleBinding>,
    ) -> Policy {
        let mut policy = Policy {
            no_reason: Arc::from(""),
            ..Policy::default()
        };
        for (name, rules) in aggregation::aggregate(&cluster_roles) {
            policy.cluster_roles.insert(name, rules.into());
        }
        for role in roles {
            let (Some(ns), Some(name)) = (role.metadata.namespace, role.metadata.name) else {
                continue;
            };
            let rules = role.rules.unwrap_or_default().into();
            policy.roles.entry(ns).or_default().insert(name, rules);
        }
        for b in &cluster_role_bindings {
            let name = b.metadata.name.as_deref().unwrap_or("");
            let Some(rules) = policy.role_ref_rules(&b.role_ref, "") else {
                continue;
            };
            let grant = policy.push_grant(rules);
            let binding = format!("ClusterRoleBinding {}", quote(name));
            index(
                &mut policy.cluster,
                grant,
                &binding,
                &b.role_ref,
                b.subjects.as_deref(),
                "",
            );
        }
        for b in &role_bindings {
            let (Some(ns), Some(name)) = (&b.metadata.namespace, &b.metadata.name) else {
                continue;
            };
            let Some(rules) = policy.role_ref_rules(&b.role_ref, ns) else {
                continue;
            };
            let grant = policy.push_grant(rules);
            let binding = format!("RoleBinding {}", quote(&format!("{name}/{ns}")));
            let idx = policy.namespaces.entry(ns.clone()).or_default();
            index(idx, grant, &binding, &b.role_ref, b.subjects.as_deref(), ns);
        }
        policy
    }

    /// Builds the snapshot from stored JSON objects of the four kinds (by `kind`);
    /// objects that do not decode are skipped.
    pub fn from_values<'a>(objects: impl IntoIterator<Item = &'a serde_json::Value>) -> Policy {
        let (mut r, mut cr, mut rb, mut crb) = (vec![], vec![], vec![], vec![]);
        for obj in objects {
            let decoded = match obj.get("kind").and_then(|k| k.as_str()) {
                Some("Role") => serde_json::from_value(obj.clone()).map(|o| r.push(o)),
                Some("ClusterRole") => serde_json::from_value(obj.clone()).map(|o| cr.push(o)),
                Some("RoleBinding") => serde_json::from_value(obj.clone()).map(|o| rb.push(o)),
                Some("ClusterRoleBinding") => {
                    serde_json::from_value(obj.clone()).map(|o| crb.push(o))
                }
                _ => Ok(()),
            };
            if let Err(e) = decoded {
                tracing::warn!(error = %e, "skipping an RBAC object that does not decode");
            }
        }
        Policy::new(r, cr, rb, crb)
    }

    /// Kubernetes' RBAC decision, preceded by kube-apiserver's privileged-group
    /// authorizer: members of `system:masters` may do anything.
    pub fn authorize(&self, user: &User<'_>, req: &Request<'_>) -> Decision {
        if user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
            return self.decision(true, &self.no_reason);
        }
        // Kubernetes visits every ClusterRoleBinding before the namespace's RoleBindings.
        let mut found = self.cluster.first_allowing(user, req, &self.grants);
        let ns = req.namespace();
        if found.is_none() && !ns.is_empty() {
            found = self
                .namespaces
                .get(ns)
                .and_then(|idx| idx.first_allowing(user, req, &self.grants));
        }
        match found {
            Some(entry) => self.decision(true, &entry.reason),
            None => self.decision(false, &self.no_reason),
        }
    }

    /// Every rule that applies to `user` in `namespace`: the ClusterRoleBindings' and,
    /// for a non-empty namespace, that namespace's RoleBindings' (Kubernetes' `RulesFor`).
    pub fn rules_for(&self, user: &User<'_>, namespace: &str) -> Vec<PolicyRule> {
        let mut grants = self.cluster.grants_of(user);
        if let Some(idx) = self
            .namespaces
            .get(namespace)
            .filter(|_| !namespace.is_empty())
        {
            grants.extend(idx.grants_of(user));
        }
        grants.sort_unstable();
        grants.dedup();
        grants
            .into_iter()
            .flat_map(|g| self.grants[g as usize].iter().cloned())
            .collect()
    }

    /// The rules a ClusterRole grants, after aggregation.
    pub fn cluster_role_rules(&self, name: &str) -> Option<&[PolicyRule]> {
        self.cluster_roles.get(name).map(|r| &r[..])
    }

    /// The rules a binding's `roleRef` grants in `namespace` (`""` for a
    /// ClusterRoleBinding), as Kubernetes' `GetRoleReferenceRules`; `None` if the role is
    /// missing. For the escalation check on bindings.
    pub fn role_ref_rules(&self, role_ref: &RoleRef, namespace: &str) -> Option<Arc<[PolicyRule]>> {
        match role_ref.kind.as_str() {
            "Role" if !namespace.is_empty() => {
                self.roles.get(namespace)?.get(&role_ref.name).cloned()
            }
            "ClusterRole" => self.cluster_roles.get(&role_ref.name).cloned(),
            _ => None,
        }
    }

    fn push_grant(&mut self, rules: Arc<[PolicyRule]>) -> u32 {
        self.grants.push(rules);
        u32::try_from(self.grants.len() - 1).unwrap_or(u32::MAX)
    }

    fn decision(&self, allowed: bool, reason: &Arc<str>) -> Decision {
        Decision {
            allowed,
            reason: Arc::clone(reason),
        }
    }
}

/// Adds each subject of one binding to `idx`; `binding_ns` is `""` for a
/// ClusterRoleBinding.
fn index(
    idx: &mut SubjectIndex,
    grant: u32,
    binding: &str,
    role_ref: &RoleRef,
    subjects: Option<&[Subject]>,
    binding_ns: &str,
) {
    for (i, s) in subjects.unwrap_or(&[]).iter().enumerate() {
        let sa_ns = s
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(binding_ns);
        let (map, key, described) = match s.kind.as_str() {
            "User" => (&mut idx.users, s.name.clone(), quote(&s.name)),
            "Group" => (&mut idx.groups, s.name.clone(), quote(&s.name)),
            "ServiceAccount" if !sa_ns.is_empty() => (
                &mut idx.users,
                format!("system:serviceaccount:{sa_ns}:{}", s.name),
                quote(&format!("{}/{sa_ns}", s.name)),
            ),
            _ => continue,
        };
        let reason = format!(
            "RBAC: allowed by {binding} of {} {} to {} {described}",
            role_ref.kind,
            quote(&role_ref.name),
            s.kind
        );
        map.entry(key).or_default().push(Entry {
            grant,
            subject: u32::try_from(i).unwrap_or(u32::MAX),
            reason: reason.into(),
        });
    }
}

// === impl SubjectIndex ===

impl SubjectIndex {
    /// The entry of the first binding (then first subject) naming `user` whose rules
    /// allow `req`, without allocating.
    fn first_allowing(
        &self,
        user: &User<'_>,
        req: &Request<'_>,
        grants: &[Arc<[PolicyRule]>],
    ) -> Option<&Entry> {
        let mut best: Option<&Entry> = None;
        for list in self.lists(user) {
            for e in list {
                if best.is_some_and(|b| (e.grant, e.subject) >= (b.grant, b.subject)) {
                    break;
                }
                if grants[e.grant as usize].iter().any(|r| rule_allows(r, req)) {
                    best = Some(e);
                    break;
                }
            }
        }
        best
    }

    /// The grants naming `user` or one of their groups (with repeats).
    fn grants_of(&self, user: &User<'_>) -> Vec<u32> {
        self.lists(user).flatten().map(|e| e.grant).collect()
    }

    fn lists<'s>(&'s self, user: &User<'_>) -> impl Iterator<Item = &'s Vec<Entry>> {
        let groups = user
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g.as_str()));
        self.users.get(user.name).into_iter().chain(groups)
    }
}
