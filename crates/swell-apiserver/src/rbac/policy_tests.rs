//! Decisions and rules of a [`Policy`] built from roles and bindings.

use super::rules::{resource_rule, url_rule};
use super::test_support::*;
use super::*;

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
