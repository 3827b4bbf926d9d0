//! Exec and attach over SPDY/3.1 (`v4.channel.k8s.io` as a SPDY stream protocol): what
//! kubectl falls back to when a WebSocket upgrade fails, and what kubectl before 1.30 and
//! other client-go programs still speak. The client opens one SPDY stream per channel,
//! named by a `streamtype` header (error, stdin, stdout, stderr, resize); output goes out as
//! DATA frames ending with FIN, the final `metav1.Status` on the error stream.
//!
//! This module owns that stream bookkeeping only; frames are `spdy`'s, the process side
//! (fds, final status) is handed in by `channel::run`, exactly as for a WebSocket.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, ReadHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::channel::{self, End, Fd, Stdio, DRAIN};
use super::exec::Options;
use super::spdy::{self, Frame};

/// The marker `exec::upgrade` passes for a SPDY session.
pub const SPDY_V4: &str = "spdy/v4.channel.k8s.io";

/// How long the client may take to open its streams, as upstream's kubelet allows.
const STREAM_CREATION: Duration = Duration::from_secs(30);

/// A SPDY connection whose streams are all open: the process may start.
pub struct Conn {
    rd: ReadHalf<TokioIo<hyper::upgrade::Upgraded>>,
    reader: spdy::Reader,
    tx: mpsc::Sender<Vec<u8>>,
    writer: JoinHandle<()>,
    /// Stream id by `streamtype`.
    ids: HashMap<String, u32>,
}

/// Answers the client's streams until every one the request implies is open (error, and
/// stdin, stdout, stderr, resize as asked); `None` if the client goes away or is too slow.
pub async fn accept(upgraded: hyper::upgrade::Upgraded, o: &Options) -> Option<Conn> {
    let (mut rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
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
    let mut want = vec!["error"];
    for (on, kind) in [
        (o.stdin, "stdin"),
        (o.stdout, "stdout"),
        (o.stderr && !o.tty, "stderr"),
        (o.tty, "resize"),
    ] {
        if on {
            want.push(kind);
        }
    }
    let mut reader = spdy::Reader::default();
    let mut compress = spdy::Writer::default();
    let mut ids = HashMap::new();
    let opened = tokio::time::timeout(STREAM_CREATION, async {
        while !want.iter().all(|k| ids.contains_key(*k)) {
            match reader.next(&mut rd).await {
                Ok(Some(Frame::SynStream { id, headers, .. })) => {
                    let _ = tx.send(compress.syn_reply(id, &[])).await;
                    if let Some((_, kind)) = headers.into_iter().find(|(k, _)| k == "streamtype") {
                        ids.insert(kind, id);
                    }
                }
                Ok(Some(Frame::Ping(id))) => {
                    let _ = tx.send(spdy::ping(id)).await;
                }
                Ok(Some(Frame::GoAway)) | Ok(None) | Err(_) => return false,
                Ok(Some(_)) => {}
            }
        }
        true
    })
    .await;
    if opened != Ok(true) {
        drop(tx);
        let _ = writer.await;
        return None;
    }
    Some(Conn {
        rd,
        reader,
        tx,
        writer,
        ids,
    })
}

/// Runs one session on an accepted connection: see the module docs.
pub async fn run<F>(conn: Conn, stdio: Stdio, end: End<F>)
where
    F: Future<Output = Value> + Send,
{
    let Conn {
        mut rd,
        mut reader,
        tx,
        writer,
        ids,
    } = conn;
    let mut pumps = tokio::task::JoinSet::new();
    let mut output_ids = Vec::new();
    for (ch, fd) in stdio.outputs {
        let id = match ch {
            channel::STDOUT => ids.get("stdout").copied(),
            channel::STDERR => ids.get("stderr").copied(),
            _ => None,
        };
        output_ids.extend(id);
        pumps.spawn(pump(id, fd, tx.clone()));
    }
    let (stdin_id, resize_id, error_id) = (
        ids.get("stdin").copied(),
        ids.get("resize").copied(),
        ids.get("error").copied(),
    );
    let mut stdin = stdio.stdin;
    let pty = stdio.pty;
    let tx_in = tx.clone();
    let input = async move {
        let mut resize_buf = Vec::new();
        while let Ok(Some(frame)) = reader.next(&mut rd).await {
            match frame {
                Frame::Data { id, flags, data } if Some(id) == stdin_id => {
                    if let Some(fd) = &stdin {
                        if fd.write_all(&data).await.is_err() {
                            stdin = None;
                        }
                    }
                    if flags & spdy::FLAG_FIN != 0 {
                        stdin = None;
                    }
                }
                Frame::Data { id, data, .. } if Some(id) == resize_id => {
                    resize_buf.extend_from_slice(&data);
                    resize(&pty, &mut resize_buf);
                }
                Frame::Ping(id) => {
                    let _ = tx_in.send(spdy::ping(id)).await;
                }
                Frame::GoAway => break,
                _ => {}
            }
        }
    };
    let finish = async {
        let mut done = HashSet::new();
        let status = match end {
            End::Exit(exit) => {
                let status = exit.await;
                let _ = tokio::time::timeout(DRAIN, async {
                    while let Some(r) = pumps.join_next().await {
                        done.extend(r.ok().flatten());
                    }
                })
                .await;
                status
            }
            End::OutputClosed => {
                while let Some(r) = pumps.join_next().await {
                    done.extend(r.ok().flatten());
                }
                channel::success()
            }
        };
        // Every output ends with FIN (the client waits for all of them), then the status.
        pumps.abort_all();
        for id in output_ids.iter().filter(|id| !done.contains(*id)) {
            let _ = tx.send(spdy::data(*id, spdy::FLAG_FIN, &[])).await;
        }
        if let Some(error_id) = error_id {
            let body = serde_json::to_vec(&status).unwrap_or_default();
            let _ = tx.send(spdy::data(error_id, 0, &body)).await;
            let _ = tx.send(spdy::data(error_id, spdy::FLAG_FIN, &[])).await;
        }
    };
    tokio::select! {
        _ = input => {}
        _ = finish => {}
    }
    drop(pumps);
    drop(tx);
    let _ = writer.await;
}

/// Applies each complete `{"Width":..,"Height":..}` in `buf` (they arrive concatenated).
fn resize(pty: &Option<Arc<Fd>>, buf: &mut Vec<u8>) {
    let mut used = 0;
    let mut sizes = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
    while let Some(Ok(size)) = sizes.next() {
        used = sizes.byte_offset();
        if let Some(fd) = pty {
            let dim = |k: &str| size[k].as_u64().unwrap_or(0).min(u16::MAX as u64) as u16;
            let _ = fd.resize(dim("Width"), dim("Height"));
        }
    }
    buf.drain(..used);
}

/// Copies one output fd to stream `id` (or nowhere), ending with FIN; returns the id once
/// its FIN is queued.
async fn pump(id: Option<u32>, fd: Arc<Fd>, tx: mpsc::Sender<Vec<u8>>) -> Option<u32> {
    let mut buf = vec![0u8; spdy::MAX_DATA];
    loop {
        match fd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(id) = id {
                    if tx.send(spdy::data(id, 0, &buf[..n])).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }
    let id = id?;
    tx.send(spdy::data(id, spdy::FLAG_FIN, &[])).await.ok()?;
    Some(id)
}
