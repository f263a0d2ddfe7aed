//! Who is asking, and may they: every request is authenticated (x509 client
//! certificates, bearer tokens) and then authorized by RBAC, as kube-apiserver does.
//!
//! The HTTPS server ([`crate::https`]) puts what the TLS connection proved on each
//! request ([`Peer`]); the server's own in-process clients put [`Authenticated`] on
//! theirs. [`guard`] turns either, or an `Authorization: Bearer` header, into a
//! [`UserInfo`], answers 401 or 403 where Kubernetes would, and hands the user on.

pub mod authn;
pub mod escalation;
pub mod policy;
pub mod request_info;
pub mod reviews;
pub mod serviceaccount;

pub use authn::{Authenticator, Peer, TokenFile};

use crate::{ApiError, ApiState};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of requests that carry no credential.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of requests that carry no credential.
pub const ANONYMOUS: &str = "system:anonymous";

/// An authenticated user, as Kubernetes' `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `alice`, `system:serviceaccount:NS:NAME`.
    pub name: String,
    /// Empty for certificate users.
    pub uid: String,
    /// Including `system:authenticated`.
    pub groups: Vec<String>,
    /// Extra attributes (ServiceAccount tokens' pod binding).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user in `groups`, plus `system:authenticated`.
    pub fn authenticated(name: &str, uid: &str, groups: &[String]) -> Self {
        let mut groups = groups.to_vec();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        Self {
            name: name.to_string(),
            uid: uid.to_string(),
            groups,
            extra: BTreeMap::new(),
        }
    }

    fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.to_string(),
            groups: vec![UNAUTHENTICATED.to_string()],
            ..Self::default()
        }
    }

    /// The user as RBAC sees it.
    pub fn rbac(&self) -> crate::rbac::User<'_> {
        crate::rbac::User {
            name: &self.name,
            groups: &self.groups,
        }
    }

    /// `status.userInfo` of reviews: Kubernetes' `UserInfo` JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = self.uid.clone().into();
        }
        if !self.extra.is_empty() {
            v["extra"] = serde_json::json!(self.extra);
        }
        v
    }
}

/// Put on a request by a client inside the server that needs no credential on the
/// wire (the controllers' in-process `kube::Client`). Nothing read from the network
/// can set it: extensions do not come from bytes.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Arc<UserInfo>);

/// The identity of the server's own controllers: all-powerful, as kube-controller-manager
/// is through its bindings.
pub fn controllers() -> Authenticated {
    Authenticated(Arc::new(UserInfo::authenticated(
        "system:swell-controller",
        "",
        &["system:masters".to_string()],
    )))
}

/// Paths anyone may read without a credential, as kube-apiserver's anonymous
/// authenticator allows with conditions (`/version`, the health checks).
fn public(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/version" | "/healthz" | "/livez" | "/readyz"
    )
}

/// The authentication and authorization layer: 401 for a missing or wrong
/// credential, 403 with Kubernetes' "forbidden" message when RBAC says no.
pub async fn guard(State(state): State<Arc<ApiState>>, mut req: Request, next: Next) -> Response {
    let user = match req.extensions().get::<Authenticated>() {
        Some(a) => a.0.clone(),
        None => {
            let found = state
                .authenticator()
                .map(|a| a.authenticate(req.extensions().get::<Peer>(), req.headers()));
            match found {
                Some(Ok(Some(user))) => Arc::new(user),
                Some(Ok(None)) if public(req.uri().path()) => Arc::new(UserInfo::anonymous()),
                Some(Ok(None) | Err(_)) | None => return ApiError::unauthorized().into_response(),
            }
        }
    };
    let info = request_info::RequestInfo::parse(req.method(), req.uri());
    let decision = state.rbac.authorize(&user.rbac(), &info.as_rbac());
    if !decision.allowed {
        tracing::debug!(user = %user.name, reason = %decision.reason, "forbidden");
        return ApiError::forbidden(&info, &user).into_response();
    }
    req.extensions_mut().insert(Authenticated(user));
    next.run(req).await
}
