//! Decisions of a [`Policy`] built from roles and bindings, including the default ones.

use super::rules::{resource_rule, url_rule};
use super::*;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const KN: &str = "serving.knative.dev";

fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..ObjectMeta::default()
    }
}

fn role(ns: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: meta(Some(ns), name),
        rules: Some(rules),
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(None, name),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn subject(kind: &str, name: &str, ns: Option<&str>) -> Subject {
    Subject {
        api_group: (kind != "ServiceAccount").then(|| GROUP.to_string()),
        kind: kind.into(),
        name: name.into(),
        namespace: ns.map(Into::into),
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: GROUP.into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn binding(ns: &str, name: &str, to: RoleRef, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(Some(ns), name),
        role_ref: to,
        subjects: Some(subjects),
    }
}

fn cluster_binding(name: &str, to: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(None, name),
        role_ref: role_ref("ClusterRole", to),
        subjects: Some(subjects),
    }
}

fn res<'a>(
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    ns: &'a str,
    name: &'a str,
) -> Request<'a> {
    Request::Resource {
        verb,
        api_group: group,
        resource,
        subresource: "",
        namespace: ns,
        name,
    }
}

fn user<'a>(name: &'a str, groups: &'a [String]) -> User<'a> {
    User { name, groups }
}

/// The default objects plus `extra_*`.
fn with_defaults(
    roles: Vec<Role>,
    mut cluster_roles: Vec<ClusterRole>,
    role_bindings: Vec<RoleBinding>,
    mut cluster_bindings: Vec<ClusterRoleBinding>,
) -> Policy {
    for obj in bootstrap_objects() {
        match obj["kind"].as_str() {
            Some("ClusterRole") => cluster_roles.push(serde_json::from_value(obj).unwrap()),
            Some("ClusterRoleBinding") => {
                cluster_bindings.push(serde_json::from_value(obj).unwrap())
            }
            _ => unreachable!(),
        }
    }
    Policy::new(roles, cluster_roles, role_bindings, cluster_bindings)
}

#[test]
fn allows_by_cluster_role_binding_with_kubernetes_reason() {
    let p = Policy::new(
        vec![],
        vec![cluster_role(
            "reader",
            vec![resource_rule(
                &["get", "list", "watch"],
                &[KN],
                &["services"],
            )],
        )],
        vec![],
        vec![cluster_binding(
            "read-all",
            "reader",
            vec![subject("User", "alice", None)],
        )],
    );
    let d = p.authorize(
        &user("alice", &[]),
        &res("watch", KN, "services", "team-a", ""),
    );
    assert!(d.allowed);
    assert_eq!(
        &*d.reason,
        r#"RBAC: allowed by ClusterRoleBinding "read-all" of ClusterRole "reader" to User "alice""#
    );
    assert!(
        p.authorize(&user("alice", &[]), &res("get", KN, "services", "", ""))
            .allowed
    );
    let d = p.authorize(
        &user("alice", &[]),
        &res("delete", KN, "services", "team-a", "x"),
    );
    assert_eq!((d.allowed, &*d.reason), (false, ""));
    assert!(
        !p.authorize(&user("bob", &[]), &res("get", KN, "services", "team-a", ""))
            .allowed
    );
}

#[test]
fn role_binding_to_cluster_role_is_scoped_to_its_namespace() {
    let p = Policy::new(
        vec![],
        vec![cluster_role(
            "editor",
            vec![resource_rule(&["*"], &[KN], &["*"])],
        )],
        vec![binding(
            "team-a",
            "edit",
            role_ref("ClusterRole", "editor"),
            vec![subject("User", "alice", None)],
        )],
        vec![],
    );
    let alice = user("alice", &[]);
    let d = p.authorize(&alice, &res("create", KN, "services", "team-a", ""));
    assert!(d.allowed);
    assert_eq!(
        &*d.reason,
        r#"RBAC: allowed by RoleBinding "edit/team-a" of ClusterRole "editor" to User "alice""#
    );
    assert!(
        !p.authorize(&alice, &res("create", KN, "services", "team-b", ""))
            .allowed
    );
    assert!(
        !p.authorize(&alice, &res("list", KN, "services", "", ""))
            .allowed
    );
}

#[test]
fn role_binding_to_role_and_missing_roles() {
    let p = Policy::new(
        vec![role(
            "team-a",
            "cm",
            vec![resource_rule(&["get"], &[""], &["configmaps"])],
        )],
        vec![],
        vec![
            binding(
                "team-a",
                "cm",
                role_ref("Role", "cm"),
                vec![subject("User", "alice", None)],
            ),
            binding(
                "team-b",
                "cm",
                role_ref("Role", "cm"),
                vec![subject("User", "alice", None)],
            ),
            binding(
                "team-a",
                "gone",
                role_ref("ClusterRole", "gone"),
                vec![subject("User", "bob", None)],
            ),
        ],
        vec![cluster_binding(
            "gone",
            "gone",
            vec![subject("User", "bob", None)],
        )],
    );
    assert!(
        p.authorize(
            &user("alice", &[]),
            &res("get", "", "configmaps", "team-a", "x")
        )
        .allowed
    );
    // The Role lives in team-a only; a binding in team-b names a missing role.
    assert!(
        !p.authorize(
            &user("alice", &[]),
            &res("get", "", "configmaps", "team-b", "x")
        )
        .allowed
    );
    assert!(
        !p.authorize(
            &user("bob", &[]),
            &res("get", "", "configmaps", "team-a", "x")
        )
        .allowed
    );
}

#[test]
fn group_and_service_account_subjects() {
    let groups = vec!["system:authenticated".to_string(), "devs".to_string()];
    let p = Policy::new(
        vec![],
        vec![cluster_role(
            "reader",
            vec![resource_rule(&["get"], &[KN], &["routes"])],
        )],
        vec![
            binding(
                "ci",
                "builders",
                role_ref("ClusterRole", "reader"),
                vec![subject("ServiceAccount", "builder", None)],
            ),
            binding(
                "ci",
                "other-ns",
                role_ref("ClusterRole", "reader"),
                vec![subject("ServiceAccount", "deployer", Some("prod"))],
            ),
        ],
        vec![cluster_binding(
            "devs",
            "reader",
            vec![
                subject("User", "carol", None),
                subject("Group", "devs", None),
            ],
        )],
    );
    let d = p.authorize(&user("dave", &groups), &res("get", KN, "routes", "x", "r"));
    assert_eq!(
        &*d.reason,
        r#"RBAC: allowed by ClusterRoleBinding "devs" of ClusterRole "reader" to Group "devs""#
    );
    // The first subject of the binding that applies is the one named.
    let d = p.authorize(&user("carol", &groups), &res("get", KN, "routes", "x", "r"));
    assert!(d.reason.ends_with(r#"to User "carol""#), "{}", d.reason);
    let sa = user("system:serviceaccount:ci:builder", &[]);
    let d = p.authorize(&sa, &res("get", KN, "routes", "ci", "r"));
    assert_eq!(
        &*d.reason,
        r#"RBAC: allowed by RoleBinding "builders/ci" of ClusterRole "reader" to ServiceAccount "builder/ci""#
    );
    assert!(
        !p.authorize(&sa, &res("get", KN, "routes", "prod", "r"))
            .allowed
    );
    let deployer = user("system:serviceaccount:prod:deployer", &[]);
    assert!(
        p.authorize(&deployer, &res("get", KN, "routes", "ci", "r"))
            .allowed
    );
    assert!(
        !p.authorize(
            &user("system:serviceaccount:ci:deployer", &[]),
            &res("get", KN, "routes", "ci", "r")
        )
        .allowed
    );
}

#[test]
fn service_account_in_cluster_binding_needs_a_namespace() {
    let p = Policy::new(
        vec![],
        vec![cluster_role(
            "reader",
            vec![resource_rule(&["get"], &[""], &["configmaps"])],
        )],
        vec![],
        vec![cluster_binding(
            "sa",
            "reader",
            vec![subject("ServiceAccount", "builder", None)],
        )],
    );
    let sa = user("system:serviceaccount::builder", &[]);
    assert!(
        !p.authorize(&sa, &res("get", "", "configmaps", "a", "x"))
            .allowed
    );
}

#[test]
fn system_masters_may_do_anything() {
    let masters = vec!["system:masters".to_string()];
    let p = Policy::new(vec![], vec![], vec![], vec![]);
    let d = p.authorize(
        &user("root", &masters),
        &res("escalate", GROUP, "clusterroles", "", "x"),
    );
    assert_eq!((d.allowed, &*d.reason), (true, ""));
    assert!(
        p.authorize(
            &user("root", &masters),
            &Request::NonResource {
                verb: "post",
                path: "/x"
            }
        )
        .allowed
    );
}

#[test]
fn non_resource_urls_and_default_bindings() {
    let p = with_defaults(vec![], vec![], vec![], vec![]);
    let authenticated = vec!["system:authenticated".to_string()];
    let anonymous = vec!["system:unauthenticated".to_string()];
    let get = |path| Request::NonResource { verb: "get", path };
    let alice = user("alice", &authenticated);
    let anon = user("system:anonymous", &anonymous);
    for path in [
        "/api",
        "/apis/serving.knative.dev/v1",
        "/openapi/v3",
        "/version",
        "/healthz",
    ] {
        assert!(p.authorize(&alice, &get(path)).allowed, "{path}");
    }
    for path in ["/healthz", "/livez", "/readyz", "/version", "/version/"] {
        assert!(p.authorize(&anon, &get(path)).allowed, "{path}");
    }
    for path in ["/api", "/apis", "/openapi/v2", "/metrics"] {
        assert!(!p.authorize(&anon, &get(path)).allowed, "{path}");
    }
    assert!(!p.authorize(&alice, &get("/metrics")).allowed);
    assert!(
        !p.authorize(
            &alice,
            &Request::NonResource {
                verb: "post",
                path: "/api"
            }
        )
        .allowed
    );
    let review = res(
        "create",
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "",
        "",
    );
    assert!(p.authorize(&alice, &review).allowed);
    assert!(!p.authorize(&anon, &review).allowed);
    let whoami = res(
        "create",
        "authentication.k8s.io",
        "selfsubjectreviews",
        "",
        "",
    );
    assert!(p.authorize(&alice, &whoami).allowed);
    let d = p.authorize(&alice, &get("/version"));
    assert_eq!(
        &*d.reason,
        r#"RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated""#
    );
}

#[test]
fn admin_edit_view_aggregate_knative_roles() {
    let bind = |ns: &str, role: &str, who: &str| {
        binding(
            ns,
            role,
            role_ref("ClusterRole", role),
            vec![subject("User", who, None)],
        )
    };
    let p = with_defaults(
        vec![],
        vec![],
        vec![
            bind("a", "admin", "ann"),
            bind("a", "edit", "ed"),
            bind("a", "view", "vi"),
        ],
        vec![],
    );
    let (ann, ed, vi) = (user("ann", &[]), user("ed", &[]), user("vi", &[]));
    for u in [&ann, &ed, &vi] {
        for verb in ["get", "list", "watch"] {
            assert!(
                p.authorize(u, &res(verb, KN, "services", "a", "")).allowed,
                "{} {verb}",
                u.name
            );
            assert!(
                p.authorize(
                    u,
                    &res(
                        verb,
                        "autoscaling.internal.knative.dev",
                        "podautoscalers",
                        "a",
                        ""
                    )
                )
                .allowed
            );
        }
        assert!(!p.authorize(u, &res("get", KN, "services", "b", "")).allowed);
    }
    for verb in ["create", "update", "patch", "delete"] {
        assert!(
            p.authorize(&ed, &res(verb, KN, "services", "a", "s"))
                .allowed,
            "{verb}"
        );
        assert!(
            p.authorize(&ann, &res(verb, KN, "services", "a", "s"))
                .allowed,
            "{verb}"
        );
        assert!(
            !p.authorize(&vi, &res(verb, KN, "services", "a", "s"))
                .allowed,
            "{verb}"
        );
    }
    // Knative's edit role has no deletecollection; its admin role has every verb.
    assert!(
        !p.authorize(&ed, &res("deletecollection", KN, "services", "a", ""))
            .allowed
    );
    assert!(
        p.authorize(&ann, &res("deletecollection", KN, "services", "a", ""))
            .allowed
    );
    // Only admin manages roles and bindings; edit reads secrets and view does not.
    assert!(
        p.authorize(&ann, &res("create", GROUP, "rolebindings", "a", ""))
            .allowed
    );
    assert!(
        !p.authorize(&ed, &res("create", GROUP, "rolebindings", "a", ""))
            .allowed
    );
    assert!(
        p.authorize(&ed, &res("get", "", "secrets", "a", "s"))
            .allowed
    );
    assert!(
        !p.authorize(&vi, &res("get", "", "secrets", "a", "s"))
            .allowed
    );
    assert!(
        p.authorize(&vi, &res("list", "", "configmaps", "a", ""))
            .allowed
    );
    assert!(
        p.authorize(&ed, &res("patch", "", "configmaps", "a", "c"))
            .allowed
    );
    let status = Request::Resource {
        verb: "get",
        api_group: KN,
        resource: "services",
        subresource: "status",
        namespace: "a",
        name: "s",
    };
    assert!(p.authorize(&vi, &status).allowed);
    let names = |role: &str| {
        p.cluster_role_rules(role)
            .map(<[PolicyRule]>::len)
            .unwrap_or(0)
    };
    assert!(names("admin") > names("edit") && names("edit") > names("view") && names("view") > 0);
}

#[test]
fn rules_for_collects_cluster_then_namespace_rules() {
    let a = resource_rule(&["get"], &[""], &["configmaps"]);
    let b = resource_rule(&["list"], &[""], &["secrets"]);
    let c = url_rule(&["get"], &["/metrics"]);
    let groups = vec!["devs".to_string()];
    let p = Policy::new(
        vec![role("x", "r", vec![b.clone()])],
        vec![
            cluster_role("cr", vec![a.clone()]),
            cluster_role("urls", vec![c.clone()]),
        ],
        vec![
            binding(
                "x",
                "rb",
                role_ref("Role", "r"),
                vec![subject("User", "alice", None)],
            ),
            binding(
                "y",
                "rb",
                role_ref("Role", "r"),
                vec![subject("User", "alice", None)],
            ),
        ],
        vec![
            cluster_binding(
                "one",
                "cr",
                vec![
                    subject("User", "alice", None),
                    subject("Group", "devs", None),
                ],
            ),
            cluster_binding("two", "urls", vec![subject("Group", "devs", None)]),
        ],
    );
    let alice = user("alice", &groups);
    assert_eq!(p.rules_for(&alice, "x"), vec![a.clone(), c.clone(), b]);
    assert_eq!(p.rules_for(&alice, ""), vec![a.clone(), c]);
    assert_eq!(p.rules_for(&user("alice", &[]), "z"), vec![a]);
    assert!(p.rules_for(&user("bob", &[]), "x").is_empty());
    // The rules held cover what a Role may grant, or not.
    let held = p.rules_for(&alice, "x");
    assert!(covers(&held, &[resource_rule(&["get"], &[""], &["configmaps"])]).is_ok());
    assert!(covers(&held, &[resource_rule(&["delete"], &[""], &["configmaps"])]).is_err());
}

#[test]
fn a_thousand_role_bindings() {
    let mut roles = Vec::new();
    let mut bindings = Vec::new();
    for i in 0..1000 {
        let ns = format!("team-{}", i % 100);
        let name = format!("role-{i}");
        roles.push(role(
            &ns,
            &name,
            vec![resource_rule(&["get", "list"], &[KN], &["services"])],
        ));
        let who = vec![
            subject("User", &format!("user-{i}"), None),
            subject("Group", &format!("group-{}", i % 10), None),
        ];
        bindings.push(binding(&ns, &name, role_ref("Role", &name), who));
    }
    let p = Policy::new(roles, vec![], bindings, vec![]);
    for i in (0..1000).step_by(37) {
        let (name, ns, other) = (
            format!("user-{i}"),
            format!("team-{}", i % 100),
            format!("team-{}", (i + 1) % 100),
        );
        let u = user(&name, &[]);
        let d = p.authorize(&u, &res("list", KN, "services", &ns, ""));
        assert!(d.allowed, "{name}");
        assert_eq!(
            &*d.reason,
            format!(
                r#"RBAC: allowed by RoleBinding "role-{i}/{ns}" of Role "role-{i}" to User "{name}""#
            )
        );
        assert!(
            !p.authorize(&u, &res("list", KN, "services", &other, ""))
                .allowed
        );
        assert!(
            !p.authorize(&u, &res("delete", KN, "services", &ns, "s"))
                .allowed
        );
    }
    // group-3 is bound in every namespace whose bindings include i % 10 == 3.
    let groups = vec!["group-3".to_string()];
    let g = user("nobody", &groups);
    assert!(
        p.authorize(&g, &res("get", KN, "services", "team-3", "s"))
            .allowed
    );
    assert!(
        p.authorize(&g, &res("get", KN, "services", "team-13", "s"))
            .allowed
    );
    assert!(
        !p.authorize(&g, &res("get", KN, "services", "team-4", "s"))
            .allowed
    );
    assert_eq!(p.rules_for(&g, "team-3").len(), 10);
}

#[test]
fn builds_from_stored_json() {
    let mut objs = bootstrap_objects();
    objs.push(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "v", "namespace": "a"},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": GROUP, "kind": "User", "name": "vi"}],
    }));
    objs.push(
        serde_json::json!({"kind": "RoleBinding", "metadata": {"name": "broken"}, "roleRef": 3}),
    );
    let p = Policy::from_values(&objs);
    assert!(
        p.authorize(&user("vi", &[]), &res("list", KN, "revisions", "a", ""))
            .allowed
    );
}
