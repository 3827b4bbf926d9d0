//! The in-process `kube::Client`: the apiserver's router served as a tower service, so
//! controllers in the server process speak the Kubernetes API with no TCP and no TLS, and
//! with exactly the semantics remote clients get (DESIGN.md, invariant 3).

use crate::apiserver::response::Body;
use crate::apiserver::ApiServer;
use crate::pki::UserInfo;
use futures::future::BoxFuture;
use http::{Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

#[derive(Clone)]
pub struct InProcess {
    api: Arc<ApiServer>,
    user: UserInfo,
    agent: http::HeaderValue,
}

/// The User-Agent of in-process requests unless a component names its own: as for a remote
/// client, its first word is the field manager of what the request writes.
pub const SERVER_AGENT: &str = "k1s";

impl tower::Service<Request<kube::client::Body>> for InProcess {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<kube::client::Body>) -> Self::Future {
        req.headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert_with(|| self.agent.clone());
        let api = self.api.clone();
        let user = self.user.clone();
        Box::pin(async move { Ok(api.handle(req, Some(user)).await) })
    }
}

/// A client acting as `user` (the server's own components use `system:k1s` in
/// `system:masters` until RBAC gives them roles of their own).
pub fn in_process(api: Arc<ApiServer>, user: UserInfo) -> kube::Client {
    kube::Client::new(in_process_service(api, user), "default")
}

/// The tower service under `in_process`, for callers that wrap it (a request counter).
pub fn in_process_service(api: Arc<ApiServer>, user: UserInfo) -> InProcess {
    InProcess {
        api,
        user,
        agent: http::HeaderValue::from_static(SERVER_AGENT),
    }
}

impl InProcess {
    /// The same service sending `agent` as its User-Agent (upstream's component names, such
    /// as `kubelet`, so that managedFields name who wrote what as on Kubernetes).
    pub fn with_agent(mut self, agent: &'static str) -> InProcess {
        self.agent = http::HeaderValue::from_static(agent);
        self
    }
}

pub fn server_identity() -> UserInfo {
    UserInfo {
        name: "system:k1s-server".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    }
}
