//! `pods/log`: checked here against the pod (container named and known, not still waiting),
//! then proxied over HTTPS to the node agent that runs the pod, with the API server's node
//! client certificate, and streamed back as upstream's apiserver does.

use super::request::Query;
use super::response::Body;
use super::ApiServer;
use crate::registry::ApiError;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The query parameters `pods/log` passes on to the node.
const LOG_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "timestamps",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect()
}

/// Which container of `pod` the request means, with upstream's errors.
pub(super) fn pick_container(
    pod: &Value,
    wanted: Option<&str>,
    name: &str,
) -> Result<String, ApiError> {
    let spec = &pod["spec"];
    let regular = names(&spec["containers"]);
    let mut all = regular.clone();
    all.extend(names(&spec["initContainers"]));
    all.extend(names(&spec["ephemeralContainers"]));
    match wanted.filter(|w| !w.is_empty()) {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if regular.len() == 1 => Ok(regular[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            regular.join(" ")
        ))),
    }
}

/// Refuse logs of a container that never ran, as upstream says it.
fn check_started(pod: &Value, container: &str, name: &str, previous: bool) -> Result<(), ApiError> {
    let status = &pod["status"];
    let all = status["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            status["initContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten(),
        );
    let Some(cs) = all.into_iter().find(|c| c["name"] == container) else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let waiting = &cs["state"]["waiting"];
    let ran_before = cs["lastState"]["terminated"].is_object();
    if waiting.is_object() && !ran_before && !previous {
        let reason = waiting["reason"].as_str().unwrap_or("ContainerCreating");
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    Ok(())
}

/// Where the node agent of `node` listens.
fn node_endpoint(node: &Value) -> Option<SocketAddr> {
    let addrs = node["status"]["addresses"].as_array()?;
    let ip: IpAddr = addrs
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addrs.first())?["address"]
        .as_str()?
        .parse()
        .ok()?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(10250) as u16;
    Some(SocketAddr::new(ip, port))
}

/// A TLS connection to the node agent that runs a pod, with the API server's node client.
pub(super) struct NodeConn {
    pub addr: SocketAddr,
    pub node_name: String,
    pub stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

impl NodeConn {
    pub async fn open(srv: &Arc<ApiServer>, pod: &Value, name: &str) -> Result<NodeConn, ApiError> {
        let nodes = srv
            .registry
            .catalog()
            .snapshot()
            .lookup("", "v1", "nodes")
            .ok_or_else(|| ApiError::internal("nodes are not served"))?;
        let node_name = pod["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(format!("pod {name} does not have a host assigned"))
            })?
            .to_string();
        let node = srv.registry.get(&nodes, None, &node_name).await?;
        let addr = node_endpoint(&node)
            .ok_or_else(|| ApiError::internal(format!("node {node_name} has no address")))?;
        let tls = srv
            .node_client
            .get()
            .cloned()
            .ok_or_else(|| ApiError::internal("no client for node agents is configured"))?;
        let unavailable = unavailable(&node_name, addr);
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|_| unavailable("timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
        let server_name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(NodeConn {
            addr,
            node_name,
            stream,
        })
    }

    pub fn unavailable(&self) -> impl Fn(String) -> ApiError {
        unavailable(&self.node_name, self.addr)
    }
}

fn unavailable(node_name: &str, addr: SocketAddr) -> impl Fn(String) -> ApiError {
    let node_name = node_name.to_string();
    move |e: String| {
        ApiError::unavailable(format!(
            "reaching the node agent of {node_name} at {addr}: {e}"
        ))
    }
}

pub(super) async fn pod_logs(
    srv: &Arc<ApiServer>,
    ns: &str,
    name: &str,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let pods = srv
        .registry
        .catalog()
        .snapshot()
        .lookup("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let pod = srv.registry.get(&pods, Some(ns), name).await?;
    let container = pick_container(&pod, query.get("container"), name)?;
    let previous = query.flag("previous");
    check_started(&pod, &container, name, previous)?;
    let mut path = format!("/containerLogs/{ns}/{name}/{container}");
    let params: Vec<String> = LOG_PARAMS
        .iter()
        .filter_map(|k| query.get(k).map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    if !params.is_empty() {
        path.push('?');
        path.push_str(&params.join("&"));
    }
    let node = NodeConn::open(srv, &pod, name).await?;
    let (addr, unavailable) = (node.addr, node.unavailable());
    let stream = node.stream;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let status = resp.status();
    if status != StatusCode::OK {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let msg = String::from_utf8_lossy(&body).trim().to_string();
        return Err(if status == StatusCode::BAD_REQUEST {
            ApiError::bad_request(msg)
        } else if status == StatusCode::NOT_FOUND {
            ApiError::unavailable(msg)
        } else {
            ApiError::internal(format!("node agent answered {status}: {msg}"))
        });
    }
    let body = resp
        .into_body()
        .map_err(std::io::Error::other)
        .boxed_unsync();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(r)
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice_and_errors_follow_upstream() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(pick_container(&pod, Some("i"), "p").unwrap(), "i");
        let e = pick_container(&pod, None, "p").unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        let e = pick_container(&pod, Some("z"), "p").unwrap_err();
        assert_eq!(e.message, "container z is not valid for pod p");
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(pick_container(&one, None, "p").unwrap(), "only");
    }

    #[test]
    fn waiting_containers_have_no_logs() {
        let pod = json!({"status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        let e = check_started(&pod, "c", "p", false).unwrap_err();
        assert_eq!(
            e.message,
            "container \"c\" in pod \"p\" is waiting to start: ImagePullBackOff"
        );
        let restarted = json!({"status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}}]}});
        assert!(check_started(&restarted, "c", "p", false).is_ok());
    }

    #[test]
    fn node_endpoint_uses_internal_ip_and_kubelet_port() {
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": "192.0.2.9"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}}}});
        assert_eq!(
            node_endpoint(&node),
            Some("192.0.2.9:12345".parse().unwrap())
        );
    }
}
