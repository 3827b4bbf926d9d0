//! `pods/exec`, `pods/attach` and `pods/portforward` (GET and POST, as kubectl sends them):
//! checked against the pod as upstream's apiserver and kubectl check them, then the upgrade
//! request is passed to the node agent over HTTPS (the same node client as `pods/log`), and
//! once both sides switched protocols, bytes are copied both ways until either closes.
//!
//! This module never interprets the streams (WebSocket channels, SPDY): the node agent
//! speaks them; the API server only authorizes, validates and splices. A refusal from the
//! agent (container not found, protocol not supported) reaches the client as the agent said
//! it, which is how kubectl shows it ("unable to upgrade connection: ...").

use super::nodeproxy::{pick_container, NodeConn};
use super::request::{Query, RequestInfo};
use super::response::{self, Body};
use super::ApiServer;
use crate::registry::ApiError;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::Arc;

/// The request headers an upgrade needs on the way to the agent.
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Whether `info` is one of the streaming subresources this module serves.
pub(super) fn is_streaming(info: &RequestInfo) -> bool {
    info.is_resource_request
        && info.group.is_empty()
        && info.resource == "pods"
        && info.name.is_some()
        && matches!(
            info.subresource.as_deref(),
            Some("exec" | "attach" | "portforward")
        )
}

/// Upstream's check that there is something to stream to: kubectl makes the same check
/// and message before it asks; other clients get it from here.
fn check_running(pod: &Value, sub: &str) -> Result<(), ApiError> {
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        let what = match sub {
            "attach" => "attach to",
            _ => "exec into",
        };
        return Err(ApiError::bad_request(format!(
            "cannot {what} a container in a completed pod; current phase is {phase}"
        )));
    }
    Ok(())
}

pub(super) async fn proxy<B>(
    srv: &Arc<ApiServer>,
    mut req: Request<B>,
    info: &RequestInfo,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let sub = info.subresource.clone().unwrap_or_default();
    if req.method() != Method::GET && req.method() != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({sub})"
        )));
    }
    let ns = info.namespace.as_deref().unwrap_or("default");
    let name = info.name.as_deref().unwrap_or_default();
    let pods = srv
        .registry
        .catalog()
        .snapshot()
        .lookup("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let pod = srv.registry.get(&pods, Some(ns), name).await?;
    let raw_query = req.uri().query().unwrap_or_default().to_string();
    let path = if sub == "portforward" {
        format!("/portForward/{ns}/{name}")
    } else {
        check_running(&pod, &sub)?;
        let container = pick_container(&pod, query.get("container"), name)?;
        format!("/{sub}/{ns}/{name}/{container}")
    };
    let path = if raw_query.is_empty() {
        path
    } else {
        format!("{path}?{raw_query}")
    };

    let client_upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let node = NodeConn::open(srv, &pod, name).await?;
    let (addr, unavailable) = (node.addr, node.unavailable());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(node.stream))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut up = Request::builder()
        .method(req.method().clone())
        .uri(path)
        .header(http::header::HOST, addr.to_string());
    for h in UPGRADE_HEADERS {
        for v in req.headers().get_all(*h) {
            up = up.header(*h, v.clone());
        }
    }
    let up = up
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = sender
        .send_request(up)
        .await
        .map_err(|e| unavailable(e.to_string()))?;

    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Passed through as the agent said it, as upstream's upgrade-aware proxy does.
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/plain; charset=utf-8")
            .to_string();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Ok(response::bytes_response(status, &ctype, body.to_vec()));
    }
    let Some(client_upgrade) = client_upgrade else {
        return Err(ApiError::bad_request(
            "this connection cannot be upgraded (HTTP/2 or an in-process client)",
        ));
    };
    let mut answer = Response::new(
        Empty::<bytes::Bytes>::new()
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    copy_upgrade_headers(resp.headers(), answer.headers_mut());
    let node_upgrade = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (client, node) = match tokio::join!(client_upgrade, node_upgrade) {
            (Ok(c), Ok(n)) => (c, n),
            _ => return,
        };
        let mut client = TokioIo::new(client);
        let mut node = TokioIo::new(node);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
    });
    Ok(answer)
}

fn copy_upgrade_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for h in [
        "connection",
        "upgrade",
        "sec-websocket-accept",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "x-stream-protocol-version",
    ] {
        for v in from.get_all(h) {
            to.append(h, v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completed_pods_refuse_with_upstreams_words() {
        let done = json!({"status": {"phase": "Succeeded"}});
        let e = check_running(&done, "exec").unwrap_err();
        assert_eq!(
            e.message,
            "cannot exec into a container in a completed pod; current phase is Succeeded"
        );
        let e = check_running(&json!({"status": {"phase": "Failed"}}), "attach").unwrap_err();
        assert_eq!(
            e.message,
            "cannot attach to a container in a completed pod; current phase is Failed"
        );
        assert!(check_running(&json!({"status": {"phase": "Running"}}), "exec").is_ok());
    }
}
