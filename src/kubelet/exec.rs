//! The node agent's `/exec/{ns}/{pod}/{container}` and `/attach/{ns}/{pod}/{container}`, as
//! the kubelet serves them to the API server: the container is found through the pod's shim,
//! the request is upgraded to a WebSocket speaking the channel protocol (`channel`) or to
//! SPDY/3.1 (`spdyexec`, kubectl's fallback), and the shim's stdio fds are pumped over it.
//!
//! This module translates between the API's names (namespace, pod, container) and the
//! shim's (pod directory, container id). It never runs anything itself: the shim starts the
//! process and owns its lifecycle; a client that goes away only closes its fds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::Value;

use super::channel::{self, End, Fd, Stdio};
use super::server::{empty, text, Body};
use super::worker::identify;
use crate::apiserver::request::percent_decode;
use crate::sandbox::shim::{session, ExecProcess, ShimClient, Status, Stdio as Named};

/// The container instance a streaming request reaches.
pub struct Target {
    pub shim_dir: PathBuf,
    pub id: String,
    /// The pod's network namespace (`/run/k1s/netns/<uid>`).
    pub netns: PathBuf,
}

type Refusal = (StatusCode, String);

/// The pod's uid, or 404.
pub async fn pod_uid(client: &kube::Client, ns: &str, pod: &str) -> Result<String, Refusal> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    match api.get_opt(pod).await {
        Ok(Some(p)) => Ok(p.metadata.uid.unwrap_or_default()),
        Ok(None) => Err((StatusCode::NOT_FOUND, format!("pod {ns}/{pod} not found"))),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The running instance of `container` (its latest restart), or upstream's 404.
pub async fn locate(
    client: &kube::Client,
    run_dir: &Path,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Target, Refusal> {
    let uid = pod_uid(client, ns, pod).await?;
    let shim_dir = run_dir.join("pods").join(&uid);
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            format!("container not found ({container:?})"),
        )
    };
    let mut shim = ShimClient::connect(&shim_dir)
        .await
        .map_err(|_| not_found())?;
    let states = shim.state().await.map_err(|_| not_found())?;
    let id = states
        .iter()
        .filter(|s| s.status == Status::Running)
        .filter_map(|s| identify(s).map(|(name, restart)| (name, restart, &s.id)))
        .filter(|(name, _, _)| name == container)
        .max_by_key(|(_, restart, _)| *restart)
        .map(|(_, _, id)| id.clone())
        .ok_or_else(not_found)?;
    Ok(Target {
        netns: run_dir.join("netns").join(&uid),
        shim_dir,
        id,
    })
}

/// The streaming options of an exec or attach request (`command` may repeat).
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

pub fn options(query: Option<&str>) -> Options {
    let mut o = Options::default();
    let on = |v: &str| matches!(v, "true" | "1" | "");
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match percent_decode(k).as_str() {
            "command" => o.command.push(v),
            "stdin" | "input" => o.stdin = on(&v),
            "stdout" | "output" => o.stdout = on(&v),
            "stderr" | "error" => o.stderr = on(&v),
            "tty" => o.tty = on(&v),
            _ => {}
        }
    }
    o
}

/// Checks the upgrade and answers 101, running `session` on the upgraded connection.
pub fn upgrade<F, Fut>(mut req: Request<Incoming>, session: F) -> Response<Body>
where
    F: FnOnce(hyper::upgrade::Upgraded, &'static str) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let headers = req.headers();
    if !channel::is_websocket(headers) {
        return spdy_upgrade(req, session);
    }
    let Some(protocol) = channel::negotiate(headers) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "unable to upgrade: none of the offered protocols {:?} is supported (v5.channel.k8s.io, v4.channel.k8s.io)",
                channel::offered(headers)
            ),
        );
    };
    let Some((status, answer)) = channel::switching(headers, protocol) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => session(upgraded, protocol).await,
            Err(e) => tracing::debug!(error = %e, "streaming upgrade failed"),
        }
    });
    let mut r = empty();
    *r.status_mut() = status;
    *r.headers_mut() = answer;
    r
}

/// The SPDY form of the upgrade (`X-Stream-Protocol-Version: v4.channel.k8s.io`).
fn spdy_upgrade<F, Fut>(mut req: Request<Incoming>, session: F) -> Response<Body>
where
    F: FnOnce(hyper::upgrade::Upgraded, &'static str) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let headers = req.headers();
    let spdy = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
    let v4 = headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim() == "v4.channel.k8s.io");
    if !spdy || !v4 {
        return text(
            StatusCode::BAD_REQUEST,
            "Upgrade request required: WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) or SPDY/3.1 (v4.channel.k8s.io)",
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            session(upgraded, super::spdyexec::SPDY_V4).await;
        }
    });
    let mut r = empty();
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("SPDY/3.1"),
    );
    h.insert(
        "x-stream-protocol-version",
        http::HeaderValue::from_static("v4.channel.k8s.io"),
    );
    r
}

fn fds_to_stdio(fds: session::Fds, o: &Options) -> std::io::Result<Stdio> {
    let mut stdio = Stdio {
        stdin: None,
        outputs: Vec::new(),
        pty: None,
    };
    for (name, fd) in fds {
        let fd = Arc::new(Fd::new(fd)?);
        match name {
            // Attaching to a terminal: its stdin is the pty master, which also takes resizes.
            Named::Stdin if o.tty => {
                if o.stdin {
                    stdio.stdin = Some(fd.clone());
                }
                stdio.pty = Some(fd);
            }
            Named::Stdin if o.stdin => stdio.stdin = Some(fd),
            Named::Stdin => {}
            Named::Stdout => stdio.outputs.push((
                if o.stdout {
                    channel::STDOUT
                } else {
                    channel::DISCARD
                },
                fd,
            )),
            Named::Stderr => stdio.outputs.push((
                if o.stderr {
                    channel::STDERR
                } else {
                    channel::DISCARD
                },
                fd,
            )),
            Named::Pty => {
                if o.stdin {
                    stdio.stdin = Some(fd.clone());
                }
                stdio.outputs.push((channel::STDOUT, fd.clone()));
                stdio.pty = Some(fd);
            }
        }
    }
    Ok(stdio)
}

fn no_stdio() -> Stdio {
    Stdio {
        stdin: None,
        outputs: Vec::new(),
        pty: None,
    }
}

pub async fn exec(target: Target, req: Request<Incoming>) -> Response<Body> {
    let o = options(req.uri().query());
    if o.command.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    upgrade(req, move |upgraded, protocol| async move {
        let Some(conn) = channel::open(upgraded, protocol, &o).await else {
            return;
        };
        let exec_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        let process = ExecProcess {
            exec_id,
            args: o.command.clone(),
            tty: o.tty,
            stdin: o.stdin,
        };
        let started = session::exec(&target.shim_dir, &target.id, process).await;
        let (s, fds) = match started {
            Ok(v) => v,
            Err(e) => {
                let status = channel::failure(e.to_string());
                let end = End::Exit(std::future::ready(status));
                return channel::run(conn, no_stdio(), end).await;
            }
        };
        let stdio = match fds_to_stdio(fds, &o) {
            Ok(s) => s,
            Err(e) => {
                let end = End::Exit(std::future::ready(channel::failure(e.to_string())));
                return channel::run(conn, no_stdio(), end).await;
            }
        };
        let command = o.command.clone();
        let exit = async move {
            match s.wait().await {
                Ok(0) => channel::success(),
                Ok(code) => channel::exit_failure(code, &command),
                Err(e) => channel::failure(e.to_string()),
            }
        };
        channel::run(conn, stdio, End::Exit(exit)).await
    })
}

pub async fn attach(target: Target, req: Request<Incoming>) -> Response<Body> {
    let o = options(req.uri().query());
    upgrade(req, move |upgraded, protocol| async move {
        let Some(conn) = channel::open(upgraded, protocol, &o).await else {
            return;
        };
        let stdio = session::attach(&target.shim_dir, &target.id)
            .await
            .map_err(|e| e.to_string())
            .and_then(|fds| fds_to_stdio(fds, &o).map_err(|e| e.to_string()));
        match stdio {
            Ok(stdio) => {
                channel::run::<std::future::Ready<Value>>(conn, stdio, End::OutputClosed).await
            }
            Err(e) => {
                let end = End::Exit(std::future::ready(channel::failure(e)));
                channel::run(conn, no_stdio(), end).await
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_every_command_word() {
        let o = options(Some(
            "command=sh&command=-c&command=echo%20a%26b&stdin=true&stdout=true&tty=false",
        ));
        assert_eq!(o.command, ["sh", "-c", "echo a&b"]);
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
        assert_eq!(options(None), Options::default());
    }
}
