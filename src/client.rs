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
}

impl tower::Service<Request<kube::client::Body>> for InProcess {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
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
    InProcess { api, user }
}

pub fn server_identity() -> UserInfo {
    UserInfo {
        name: "system:k1s-server".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    }
}
