//! The message of a 403 for a denied request, as kube-apiserver's `responsewriters.Forbidden`
//! writes it inside `apierrors.NewForbidden`.

use super::gofmt::{push_quoted, quote};
use super::{Request, User};

/// Kubernetes' forbidden message, e.g. `services.serving.knative.dev "hello" is forbidden:
/// User "alice" cannot get resource "services" in API group "serving.knative.dev" in the
/// namespace "team-b"`. Cluster-scope requests end `at the cluster scope`; non-resource
/// ones read `forbidden: User "alice" cannot get path "/metrics"`.
pub fn forbidden_message(user: &User<'_>, req: &Request<'_>) -> String {
    match *req {
        Request::NonResource { verb, path } => {
            let detail = format!(
                "User {} cannot {verb} path {}",
                quote(user.name),
                quote(path)
            );
            format!("forbidden: {}", sanitize(&detail))
        }
        Request::Resource {
            verb,
            api_group,
            resource,
            subresource,
            namespace,
            name,
        } => {
            let mut combined = resource.to_string();
            if !subresource.is_empty() {
                combined.push('/');
                combined.push_str(subresource);
            }
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {}", quote(namespace))
            };
            let detail = format!(
                "User {} cannot {verb} resource {} in API group {} {scope}",
                quote(user.name),
                quote(&combined),
                quote(api_group)
            );
            if resource.is_empty() && api_group.is_empty() {
                return format!("forbidden: {}", sanitize(&detail));
            }
            let mut msg = String::from(resource);
            if !api_group.is_empty() {
                msg.push('.');
                msg.push_str(api_group);
            }
            if !name.is_empty() {
                msg.push(' ');
                push_quoted(&mut msg, name);
            }
            msg.push_str(" is forbidden: ");
            msg.push_str(&sanitize(&detail));
            msg
        }
    }
}

/// kube-apiserver escapes `&`, `<` and `>` so the message never looks like HTML.
fn sanitize(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::test_support::sub_res as res;

    #[test]
    fn namespaced_named_request() {
        let alice = User {
            name: "alice",
            groups: &[],
        };
        assert_eq!(
            forbidden_message(
                &alice,
                &res(
                    "get",
                    "serving.knative.dev",
                    "services",
                    "",
                    "team-b",
                    "hello"
                )
            ),
            r#"services.serving.knative.dev "hello" is forbidden: User "alice" cannot get resource "services" in API group "serving.knative.dev" in the namespace "team-b""#
        );
    }

    #[test]
    fn list_in_core_group_and_subresource() {
        let anon = User {
            name: "system:anonymous",
            groups: &[],
        };
        assert_eq!(
            forbidden_message(&anon, &res("list", "", "configmaps", "", "default", "")),
            r#"configmaps is forbidden: User "system:anonymous" cannot list resource "configmaps" in API group "" in the namespace "default""#
        );
        assert_eq!(
            forbidden_message(
                &anon,
                &res(
                    "update",
                    "serving.knative.dev",
                    "services",
                    "status",
                    "a",
                    "s"
                )
            ),
            r#"services.serving.knative.dev "s" is forbidden: User "system:anonymous" cannot update resource "services/status" in API group "serving.knative.dev" in the namespace "a""#
        );
    }

    #[test]
    fn cluster_scope_request() {
        let bob = User {
            name: "bob",
            groups: &[],
        };
        assert_eq!(
            forbidden_message(
                &bob,
                &res(
                    "list",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "",
                    "",
                    ""
                )
            ),
            r#"clusterroles.rbac.authorization.k8s.io is forbidden: User "bob" cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#
        );
        assert_eq!(
            forbidden_message(&bob, &res("delete", "", "namespaces", "", "", "team-a")),
            r#"namespaces "team-a" is forbidden: User "bob" cannot delete resource "namespaces" in API group "" at the cluster scope"#
        );
    }

    #[test]
    fn non_resource_request_and_html_escaping() {
        let bob = User {
            name: "bob<script>",
            groups: &[],
        };
        assert_eq!(
            forbidden_message(
                &bob,
                &Request::NonResource {
                    verb: "get",
                    path: "/metrics"
                }
            ),
            r#"forbidden: User "bob&lt;script&gt;" cannot get path "/metrics""#
        );
    }
}
