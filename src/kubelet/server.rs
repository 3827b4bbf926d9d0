//! The node agent's HTTPS endpoint (port 10250 by default), which the API server calls for
//! what only the node has: container logs (`/containerLogs/{ns}/{pod}/{container}`),
//! `/exec/...` and `/attach/...` (`exec`), `/portForward/{ns}/{pod}` (`portforward`) and a
//! health check. Only clients with a certificate of the cluster CA in `system:masters`
//! (the API server's node client) get in. It reads pods through the API and files on disk.

use super::logs::{self, LogOptions};
use crate::pki::{user_from_cert, UserInfo};
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

struct State {
    client: kube::Client,
    log_dir: PathBuf,
    run_dir: PathBuf,
}

pub fn empty() -> Response<Body> {
    Response::new(
        http_body_util::Empty::<Bytes>::new()
            .map_err(|e| match e {})
            .boxed_unsync(),
    )
}

pub fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg.into()))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serve until `cancel`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    client: kube::Client,
    log_dir: PathBuf,
    run_dir: PathBuf,
    cancel: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let state = Arc::new(State {
        client,
        log_dir,
        run_dir,
    });
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "node server: accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    _ => {
                        tracing::debug!(%peer, "node server: tls handshake failed");
                        return;
                    }
                };
            let user: Option<UserInfo> = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|leaf| user_from_cert(leaf.as_ref()));
            let svc = service_fn(move |req| {
                let state = state.clone();
                let user = user.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, req, user).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tls), svc)
                .with_upgrades();
            tokio::select! {
                _ = conn => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>, user: Option<UserInfo>) -> Response<Body> {
    let allowed = user.is_some_and(|u| u.groups.iter().any(|g| g == "system:masters"));
    if !allowed {
        return text(StatusCode::FORBIDDEN, "Forbidden");
    }
    let path = req.uri().path().to_string();
    let query = crate::apiserver::request::Query::parse(req.uri().query());
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let streaming = matches!(parts.first(), Some(&"exec" | &"attach" | &"portForward"));
    let allowed = req.method() == Method::GET || (streaming && req.method() == Method::POST);
    if !allowed {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    match parts.as_slice() {
        [kind @ ("exec" | "attach"), ns, pod, container] => {
            let target = match super::exec::locate(
                &state.client,
                &state.run_dir,
                ns,
                pod,
                container,
            )
            .await
            {
                Ok(t) => t,
                Err((status, msg)) => return text(status, msg),
            };
            if *kind == "exec" {
                super::exec::exec(target, req).await
            } else {
                super::exec::attach(target, req).await
            }
        }
        ["portForward", ns, pod] => {
            let uid = match super::exec::pod_uid(&state.client, ns, pod).await {
                Ok(u) => u,
                Err((status, msg)) => return text(status, msg),
            };
            let net = super::portforward::PodNet {
                netns: state.run_dir.join("netns").join(&uid),
                name: pod.to_string(),
                uid,
            };
            super::portforward::serve(net, req)
        }
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["containerLogs", ns, pod, container] => {
            container_logs(state, ns, pod, container, &query).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

fn options(q: &crate::apiserver::request::Query) -> Result<LogOptions, String> {
    let num = |k: &str| -> Result<Option<i64>, String> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{k}: {v:?} is not an integer"))
            })
            .transpose()
    };
    let since = match (num("sinceSeconds")?, q.get("sinceTime")) {
        (Some(s), _) => Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s)),
        (None, Some(t)) => Some(
            t.parse::<jiff::Timestamp>()
                .map_err(|e| format!("sinceTime: {e}"))?,
        ),
        _ => None,
    };
    Ok(LogOptions {
        follow: q.flag("follow"),
        tail_lines: num("tailLines")?.filter(|n| *n >= 0).map(|n| n as usize),
        timestamps: q.flag("timestamps"),
        since,
        limit_bytes: num("limitBytes")?.filter(|n| *n > 0).map(|n| n as u64),
    })
}

async fn container_logs(
    state: &State,
    ns: &str,
    pod: &str,
    container: &str,
    q: &crate::apiserver::request::Query,
) -> Response<Body> {
    let opts = match options(q) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let api: Api<Pod> = Api::namespaced(state.client.clone(), ns);
    let uid = match api.get_opt(pod).await {
        Ok(Some(p)) => p.metadata.uid.unwrap_or_default(),
        Ok(None) => return text(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} not found")),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let dir = state
        .log_dir
        .join(format!("{ns}_{pod}_{uid}"))
        .join(container);
    let files = logs::files(&dir);
    let previous = q.flag("previous");
    let chosen = if previous {
        files.len().checked_sub(2).and_then(|i| files.get(i))
    } else {
        files.last()
    };
    let Some((restart, path)) = chosen.cloned() else {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" has no logs yet")
        };
        return text(StatusCode::BAD_REQUEST, msg);
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let client = state.client.clone();
    let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
    let follow = opts.follow && !previous;
    let opts = LogOptions { follow, ..opts };
    tokio::spawn(async move {
        let running = move || {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let (pod, container) = (pod.clone(), container.clone());
            async move { still_running(&api, &pod, &container, restart).await }
        };
        logs::stream(path, opts, tx, running).await;
    });
    let body =
        StreamBody::new(tokio_stream_from(rx).map(|b| Ok::<_, std::io::Error>(Frame::data(b))));
    let mut r = Response::new(BodyExt::boxed_unsync(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Whether the container instance whose log is followed still runs.
async fn still_running(api: &Api<Pod>, pod: &str, container: &str, restart: u32) -> bool {
    let Ok(Some(p)) = api.get_opt(pod).await else {
        return false;
    };
    let Some(status) = p.status else { return false };
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|s| s.name == container)
        .is_some_and(|s| {
            s.restart_count as u32 == restart
                && s.state.as_ref().is_some_and(|st| st.running.is_some())
        })
}
