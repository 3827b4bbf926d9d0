//! The Kubernetes WebSocket channel protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`) that
//! kubectl speaks for exec and attach: each binary message starts with a channel byte (0
//! stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize, and in v5 255 "close channel N").
//!
//! This module owns the handshake answer and the pump between one WebSocket and a process's
//! stdio fds. The framing itself is `tungstenite`'s (a small, well-kept crate; RFC 6455 has
//! enough corner cases - masking, fragmentation, control frames between fragments - that
//! writing it again would buy nothing). It never looks at pods or the shim: callers hand it
//! fds and a future of the final status.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper_util::rt::TokioIo;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde_json::{json, Value};
use tokio::io::unix::AsyncFd;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message, Role};
use tokio_tungstenite::WebSocketStream;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;
/// Not a wire channel: output the client did not ask for is read and dropped, so the
/// process does not die of a broken pipe.
pub const DISCARD: u8 = 254;

/// After the process exits, how long output still in flight may take to arrive (a
/// background child holding stdout open must not keep the session forever).
pub const DRAIN: Duration = Duration::from_secs(2);

/// The subprotocols we answer, best first. The base64 variants are not offered.
const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Whether the request asks for a WebSocket upgrade.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name: http::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(http::header::CONNECTION, "upgrade") && has(http::header::UPGRADE, "websocket")
}

/// The client's subprotocols, in its order.
pub fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The channel protocol both sides speak, ours preferred.
pub fn negotiate(headers: &HeaderMap) -> Option<&'static str> {
    let offered = offered(headers);
    PROTOCOLS
        .iter()
        .copied()
        .find(|p| offered.iter().any(|o| o == p))
}

/// The 101 answer's status and headers; `None` without a `Sec-WebSocket-Key`.
pub fn switching(headers: &HeaderMap, protocol: &str) -> Option<(StatusCode, HeaderMap)> {
    let key = headers.get(http::header::SEC_WEBSOCKET_KEY)?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        http::header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).ok()?,
    );
    h.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(protocol).ok()?,
    );
    Some((StatusCode::SWITCHING_PROTOCOLS, h))
}

/// `metav1.Status` Success, as written on the error channel.
pub fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// `metav1.Status` for a non-zero exit: kubectl exits with the code in the cause.
pub fn exit_failure(code: i32, command: &[String]) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// `metav1.Status` Failure with a message (the exec could not start, the shim is gone).
pub fn failure(message: impl Into<String>) -> Value {
    json!({"metadata": {}, "status": "Failure", "message": message.into(), "reason": "InternalError", "code": 500})
}

/// A non-blocking fd driven by tokio's reactor: a pipe end or a pty master.
pub struct Fd(AsyncFd<OwnedFd>);

impl Fd {
    pub fn new(fd: OwnedFd) -> io::Result<Fd> {
        let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
        // SAFETY: an OwnedFd is a valid open fd that stays the same until it is dropped,
        // which happens only with the AsyncFd that owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Fd(fd))
    }

    /// Reads some bytes; 0 at EOF (a pty master's EIO, once the last slave closed, too).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.as_raw_fd(), buf).map_err(io::Error::from))
            {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), buf).map_err(io::Error::from))
            {
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// TIOCSWINSZ on a pty master: the process sees SIGWINCH and the new size.
    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize through a valid pointer; the fd is open.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The process side of a session.
pub struct Stdio {
    pub stdin: Option<Arc<Fd>>,
    /// Output fds and the channel each goes to.
    pub outputs: Vec<(u8, Arc<Fd>)>,
    /// The pty master, for resize (also in `stdin`/`outputs` when a tty).
    pub pty: Option<Arc<Fd>>,
}

/// An upgraded connection ready for a session.
pub enum Conn {
    WebSocket(
        WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
        &'static str,
    ),
    Spdy(super::spdyexec::Conn),
}

/// Takes over an upgraded connection; for SPDY, once the client opened its streams (the
/// process must not start before its resize stream exists). `None`: the client left.
pub async fn open(
    upgraded: hyper::upgrade::Upgraded,
    protocol: &'static str,
    o: &super::exec::Options,
) -> Option<Conn> {
    if protocol == super::spdyexec::SPDY_V4 {
        return super::spdyexec::accept(upgraded, o).await.map(Conn::Spdy);
    }
    let io = TokioIo::new(upgraded);
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    Some(Conn::WebSocket(ws, protocol))
}

/// How the session ends: exec waits for the exit status; attach ends with the output.
pub enum End<F> {
    Exit(F),
    OutputClosed,
}

/// Runs one session until the process side is done (the status goes on channel 3 and the
/// WebSocket is closed) or the client goes away (the fds are dropped: stdin closes, a tty
/// hangs up).
pub async fn run<F>(conn: Conn, stdio: Stdio, end: End<F>)
where
    F: Future<Output = Value> + Send,
{
    let (ws, protocol) = match conn {
        Conn::WebSocket(ws, protocol) => (ws, protocol),
        Conn::Spdy(c) => return super::spdyexec::run(c, stdio, end).await,
    };
    let (mut sink, mut incoming) = ws.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        // A normal closure (1000): client-go treats a close without a code as an error.
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
        let _ = sink.close().await;
    });
    let mut outputs = tokio::task::JoinSet::new();
    for (ch, fd) in stdio.outputs {
        outputs.spawn(pump(ch, fd, tx.clone()));
    }
    let v5 = protocol.starts_with("v5.");
    let mut stdin = stdio.stdin;
    let pty = stdio.pty;
    let input = async {
        while let Some(Ok(msg)) = incoming.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&ch, payload)) = data.split_first() else {
                continue;
            };
            match ch {
                STDIN => {
                    if let Some(fd) = &stdin {
                        if fd.write_all(payload).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                RESIZE => {
                    if let (Some(fd), Ok(size)) = (&pty, serde_json::from_slice::<Value>(payload)) {
                        let dim =
                            |k: &str| size[k].as_u64().unwrap_or(0).min(u16::MAX as u64) as u16;
                        let _ = fd.resize(dim("Width"), dim("Height"));
                    }
                }
                CLOSE if v5 && payload.first() == Some(&STDIN) => stdin = None,
                _ => {}
            }
        }
    };
    let finish = async {
        match end {
            End::Exit(exit) => {
                let status = exit.await;
                let _ = tokio::time::timeout(DRAIN, async {
                    while outputs.join_next().await.is_some() {}
                })
                .await;
                status
            }
            End::OutputClosed => {
                while outputs.join_next().await.is_some() {}
                success()
            }
        }
    };
    tokio::select! {
        _ = input => {}
        status = finish => {
            let mut msg = vec![ERROR];
            msg.extend(serde_json::to_vec(&status).unwrap_or_default());
            let _ = tx.send(Message::Binary(Bytes::from(msg))).await;
        }
    }
    // Pumps still running (a process that left a child holding stdout) end here.
    drop(outputs);
    drop(tx);
    let _ = writer.await;
}

async fn pump(ch: u8, fd: Arc<Fd>, tx: tokio::sync::mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        buf[0] = ch;
        match fd.read(&mut buf[1..]).await {
            Ok(0) | Err(_) => return,
            Ok(_) if ch == DISCARD => {}
            Ok(n) => {
                let msg = Message::Binary(Bytes::copy_from_slice(&buf[..=n]));
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        }
    }
}
