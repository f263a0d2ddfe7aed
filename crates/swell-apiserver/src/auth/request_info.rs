//! What a request asks for, as Kubernetes' `RequestInfoFactory` reads it from the
//! method and path: a verb on a resource (group, resource, subresource, namespace,
//! name), or a verb on a non-resource URL (discovery, OpenAPI, `/version`, `/metrics`).

use http::{Method, Uri};

/// A request's authorization attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether it names an API resource.
    pub is_resource: bool,
    /// `get`, `list`, `watch`, `create`, … for resources; the lowercased method else.
    pub verb: String,
    /// The path, for non-resource requests.
    pub path: String,
    /// API group (`""` for core).
    pub api_group: String,
    /// Version.
    pub api_version: String,
    /// Plural resource.
    pub resource: String,
    /// `status`, `scale`, `token`, …
    pub subresource: String,
    /// `""` at cluster scope.
    pub namespace: String,
    /// `""` when the request names no object.
    pub name: String,
}

impl RequestInfo {
    /// Reads a request as kube-apiserver does.
    pub fn parse(method: &Method, uri: &Uri) -> Self {
        let path = uri.path();
        let mut info = RequestInfo {
            is_resource: false,
            verb: method.as_str().to_ascii_lowercase(),
            path: path.to_string(),
            api_group: String::new(),
            api_version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match parts.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => {
                info.api_version = (*version).to_string();
                rest
            }
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                info.api_group = (*group).to_string();
                info.api_version = (*version).to_string();
                rest
            }
            _ => return info,
        };
        info.is_resource = true;
        info.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
        let mut rest = rest;
        if rest[0] == "namespaces" && rest.len() > 1 {
            info.namespace = rest[1].to_string();
            // `/namespaces/NS/status` and `/finalize` are the Namespace's own subresources.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        info.resource = rest[0].to_string();
        if let Some(name) = rest.get(1) {
            info.name = (*name).to_string();
        }
        if let Some(sub) = rest.get(2) {
            info.subresource = (*sub).to_string();
        }
        let query: Vec<(String, String)> = uri
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if info.name.is_empty() && info.verb == "get" {
            info.verb = match param("watch") {
                Some("true" | "1") => "watch",
                _ => "list",
            }
            .to_string();
            // A list or watch of one name by field selector is about that object.
            if let Some(selector) = param("fieldSelector") {
                for term in selector.split(',') {
                    if let Some(name) = term
                        .strip_prefix("metadata.name==")
                        .or_else(|| term.strip_prefix("metadata.name="))
                    {
                        info.name = name.to_string();
                    }
                }
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        info
    }

    /// The request as RBAC reads it.
    pub fn as_rbac(&self) -> crate::rbac::Request<'_> {
        if self.is_resource {
            crate::rbac::Request::Resource {
                verb: &self.verb,
                api_group: &self.api_group,
                resource: &self.resource,
                subresource: &self.subresource,
                namespace: &self.namespace,
                name: &self.name,
            }
        } else {
            crate::rbac::Request::NonResource {
                verb: &self.verb,
                path: &self.path,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, uri: &str) -> RequestInfo {
        RequestInfo::parse(&method, &uri.parse().unwrap())
    }

    #[test]
    fn resource_requests_are_read_as_kubernetes_reads_them() {
        let i = info(
            Method::GET,
            "/apis/serving.knative.dev/v1/namespaces/team-a/services/hello",
        );
        assert!(i.is_resource);
        assert_eq!(
            (i.verb.as_str(), i.api_group.as_str(), i.resource.as_str()),
            ("get", "serving.knative.dev", "services")
        );
        assert_eq!((i.namespace.as_str(), i.name.as_str()), ("team-a", "hello"));

        let i = info(Method::GET, "/apis/serving.knative.dev/v1/services?watch=1");
        assert_eq!((i.verb.as_str(), i.namespace.as_str()), ("watch", ""));
        let i = info(
            Method::GET,
            "/api/v1/namespaces/a/configmaps?fieldSelector=metadata.name%3Dx",
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("list", "x"));
        let i = info(Method::DELETE, "/api/v1/namespaces/a/secrets");
        assert_eq!(i.verb, "deletecollection");
        let i = info(
            Method::PUT,
            "/apis/serving.knative.dev/v1/namespaces/a/services/s/status",
        );
        assert_eq!(
            (i.verb.as_str(), i.subresource.as_str()),
            ("update", "status")
        );
        let i = info(Method::GET, "/api/v1/namespaces/a");
        assert_eq!(
            (i.resource.as_str(), i.namespace.as_str(), i.name.as_str()),
            ("namespaces", "a", "a")
        );
        let i = info(
            Method::POST,
            "/api/v1/namespaces/a/serviceaccounts/default/token",
        );
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str(), i.subresource.as_str()),
            ("create", "serviceaccounts", "token")
        );
    }

    #[test]
    fn discovery_and_the_rest_are_non_resource_urls() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/serving.knative.dev/v1",
            "/version",
            "/metrics",
            "/openapi/v3",
        ] {
            let i = info(Method::GET, path);
            assert!(!i.is_resource, "{path}");
            assert_eq!((i.verb.as_str(), i.path.as_str()), ("get", path));
        }
        assert_eq!(info(Method::POST, "/metrics").verb, "post");
    }
}
