//! The node agent's `/portForward/{ns}/{pod}`: Kubernetes' `portforward.k8s.io` protocol
//! over SPDY/3.1, reached either by a plain SPDY upgrade or, as kubectl 1.31+ does by
//! default, tunnelled in WebSocket binary messages (subprotocol
//! `SPDY/3.1+portforward.k8s.io`).
//!
//! Per forwarded connection the client opens an error stream and a data stream that share a
//! `requestid` header and name the `port`; the agent connects to 127.0.0.1:port inside the
//! pod's network namespace (on a thread of its own that enters the namespace, so the agent's
//! other threads stay in theirs) and copies bytes until both sides are done. This module
//! owns the stream bookkeeping; the frames are `spdy`'s. It never connects anywhere but the
//! pod's loopback.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message, Role};
use tokio_tungstenite::WebSocketStream;

use super::channel;
use super::server::{empty, text, Body};
use super::spdy::{self, Frame};

const PROTOCOL: &str = "portforward.k8s.io";
const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Who a session forwards for: the pod's network namespace and names for error messages.
#[derive(Clone)]
pub struct PodNet {
    pub netns: PathBuf,
    pub name: String,
    pub uid: String,
}

/// Answers the upgrade (WebSocket tunnel or SPDY) and runs the session on it.
pub fn serve(pod: PodNet, mut req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers();
    let websocket = channel::is_websocket(headers);
    let mut answer = empty();
    if websocket {
        if !channel::offered(headers).iter().any(|p| p == TUNNEL) {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "unable to upgrade: port-forward over WebSocket needs subprotocol {TUNNEL}"
                ),
            );
        }
        let Some((status, h)) = channel::switching(headers, TUNNEL) else {
            return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
        };
        *answer.status_mut() = status;
        *answer.headers_mut() = h;
    } else {
        let spdy = headers
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
        let versions: Vec<&str> = headers
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if !spdy || !versions.contains(&PROTOCOL) {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Upgrade request required: SPDY/3.1 with X-Stream-Protocol-Version {PROTOCOL}, or a WebSocket with subprotocol {TUNNEL}"),
            );
        }
        *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = answer.headers_mut();
        h.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        );
        h.insert(http::header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        h.insert(
            "x-stream-protocol-version",
            HeaderValue::from_static(PROTOCOL),
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = TokioIo::new(upgraded);
        if websocket {
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            let (session_end, bridge_end) = tokio::io::duplex(64 * 1024);
            tokio::join!(session(session_end, pod), bridge(ws, bridge_end));
        } else {
            session(io, pod).await;
        }
    });
    answer
}

/// WebSocket binary messages <-> a byte stream, both ways, until either side ends.
async fn bridge<S>(ws: WebSocketStream<S>, end: tokio::io::DuplexStream)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut incoming) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(end);
    let inbound = async {
        while let Some(Ok(m)) = incoming.next().await {
            match m {
                Message::Binary(d) if wr.write_all(&d).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0
                || sink
                    .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
            {
                break;
            }
        }
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
    };
    tokio::join!(inbound, outbound);
}

#[derive(Default)]
struct Pair {
    port: u16,
    data: Option<u32>,
    error: Option<u32>,
    input: Option<mpsc::Receiver<Option<Vec<u8>>>>,
}

/// One SPDY connection: streams paired by request id, each pair forwarded to its port.
async fn session<S>(io: S, pod: PodNet)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                return;
            }
            // TLS buffers records: push them out once nothing else is queued.
            if rx.is_empty() && wr.flush().await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut reader = spdy::Reader::default();
    let mut compress = spdy::Writer::default();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut inputs: HashMap<u32, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    loop {
        let frame = match reader.next(&mut rd).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, pod = %pod.name, "port-forward session ended");
                break;
            }
        };
        match frame {
            Frame::SynStream { id, headers, .. } => {
                let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let port = get("port")
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p > 0);
                let (Some(kind), Some(port)) = (get("streamtype"), port) else {
                    let _ = tx
                        .send(spdy::rst_stream(id, spdy::RST_PROTOCOL_ERROR))
                        .await;
                    continue;
                };
                let request = get("requestid").unwrap_or_else(|| port.to_string());
                let _ = tx.send(compress.syn_reply(id, &[])).await;
                let pair = pairs.entry(request.clone()).or_default();
                pair.port = port;
                match kind.as_str() {
                    "data" => {
                        let (itx, irx) = mpsc::channel(16);
                        inputs.insert(id, itx);
                        pair.data = Some(id);
                        pair.input = Some(irx);
                    }
                    "error" => pair.error = Some(id),
                    _ => {
                        let _ = tx
                            .send(spdy::rst_stream(id, spdy::RST_PROTOCOL_ERROR))
                            .await;
                        continue;
                    }
                }
                let complete = pairs
                    .get(&request)
                    .is_some_and(|p| p.data.is_some() && p.error.is_some());
                if complete {
                    if let Some(Pair {
                        port,
                        data: Some(data),
                        error: Some(error),
                        input: Some(input),
                    }) = pairs.remove(&request)
                    {
                        tokio::spawn(forward(pod.clone(), port, data, error, input, tx.clone()));
                    }
                }
            }
            Frame::Data { id, flags, data } => {
                if let Some(input) = inputs.get(&id) {
                    if !data.is_empty() && input.send(Some(data)).await.is_err() {
                        inputs.remove(&id);
                        continue;
                    }
                    if flags & spdy::FLAG_FIN != 0 {
                        let _ = input.send(None).await;
                        inputs.remove(&id);
                    }
                }
            }
            Frame::RstStream { id, .. } => {
                inputs.remove(&id);
            }
            Frame::Ping(id) => {
                let _ = tx.send(spdy::ping(id)).await;
            }
            Frame::GoAway => break,
            Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Ignored => {}
        }
    }
    drop(inputs);
    drop(tx);
    let _ = writer.await;
}

/// One forwarded connection: pod's port <-> the data stream; failures on the error stream.
async fn forward(
    pod: PodNet,
    port: u16,
    data: u32,
    error: u32,
    mut input: mpsc::Receiver<Option<Vec<u8>>>,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let tcp = match connect(&pod.netns, port).await {
        Ok(t) => t,
        Err(e) => {
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: {e}",
                pod.name, pod.uid
            );
            let _ = tx.send(spdy::data(error, 0, msg.as_bytes())).await;
            let _ = tx.send(spdy::data(error, spdy::FLAG_FIN, &[])).await;
            let _ = tx.send(spdy::data(data, spdy::FLAG_FIN, &[])).await;
            return;
        }
    };
    let (mut r, mut w) = tcp.into_split();
    tokio::spawn(async move {
        while let Some(Some(chunk)) = input.recv().await {
            if w.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut buf = vec![0u8; spdy::MAX_DATA];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send(spdy::data(data, 0, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
    // The client reads the error stream to its end once the data stream ended.
    let _ = tx.send(spdy::data(data, spdy::FLAG_FIN, &[])).await;
    let _ = tx.send(spdy::data(error, spdy::FLAG_FIN, &[])).await;
}

/// Connects to 127.0.0.1:`port` inside `netns` (the host's when it does not exist: a
/// hostNetwork pod). The thread that enters the namespace is used for this socket only.
async fn connect(netns: &Path, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let netns = netns.to_path_buf();
    let (otx, orx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("k1s-portforward".into())
        .spawn(move || {
            let res = (|| -> std::io::Result<std::net::TcpStream> {
                if netns.exists() {
                    let f = std::fs::File::open(&netns)?;
                    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)?;
                }
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let s = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })();
            let _ = otx.send(res);
        })?;
    let std_stream = orx
        .await
        .map_err(|_| std::io::Error::other("connect thread ended without an answer"))??;
    tokio::net::TcpStream::from_std(std_stream)
}
