//! Decisions with Kubernetes' and Knative's default roles, and with many bindings.

use super::rules::resource_rule;
use super::test_support::*;
use super::*;
use k8s_openapi::api::rbac::v1::PolicyRule;

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
