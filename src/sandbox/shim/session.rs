//! The agent's side of exec and attach: each on a connection of its own, because their
//! answers carry file descriptors (SCM_RIGHTS) that a buffered reader would silently drop,
//! and because an exec's wait lasts as long as the process.
//!
//! Runs in the agent's tokio process: it only talks over the socket and hands the received
//! fds to the caller; it never calls libcontainer and never touches the processes.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use super::client::ShimError;
use super::protocol::{ExecProcess, Request, Response, Stdio, MAX_REQUEST_BYTES};
use super::server::socket_path;

/// Received stdio, by name.
pub type Fds = Vec<(Stdio, OwnedFd)>;

/// A started exec: ask for its exit status with [`ExecSession::wait`].
pub struct ExecSession {
    dir: PathBuf,
    conn: UnixStream,
    exec_id: String,
    pub pid: i32,
}

struct Conn {
    dir: PathBuf,
    stream: UnixStream,
}

impl Conn {
    async fn open(dir: &Path) -> Result<Conn, ShimError> {
        let stream = UnixStream::connect(socket_path(dir))
            .await
            .map_err(|source| ShimError::Gone {
                dir: dir.to_path_buf(),
                source,
            })?;
        Ok(Conn {
            dir: dir.to_path_buf(),
            stream,
        })
    }

    fn io(&self) -> impl Fn(std::io::Error) -> ShimError + '_ {
        move |source| ShimError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    async fn send(&mut self, req: &Request) -> Result<(), ShimError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ShimError::Protocol {
            dir: self.dir.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        let dir = self.dir.clone();
        self.stream
            .write_all(&line)
            .await
            .map_err(|source| ShimError::Io { dir, source })
    }

    /// Reads one answer line and the fds that came with it. Reads byte-exact up to the
    /// newline (one answer per request, no pipelining), so nothing of a later answer is lost.
    async fn receive(&mut self) -> Result<(Response, Vec<OwnedFd>), ShimError> {
        let mut line = Vec::new();
        let mut fds = Vec::new();
        loop {
            self.stream.readable().await.map_err(self.io())?;
            let fd = self.stream.as_raw_fd();
            let res = self.stream.try_io(Interest::READABLE, || {
                let mut buf = [0u8; 4096];
                let mut iov = [IoSliceMut::new(&mut buf)];
                let mut space = nix::cmsg_space!([RawFd; 4]);
                let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
                    .map_err(std::io::Error::from)?;
                let mut got = Vec::new();
                for c in msg.cmsgs().map_err(std::io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel installed these fds in our table for us alone.
                        got.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
                    }
                }
                let n = msg.bytes;
                Ok((buf[..n].to_vec(), got))
            });
            let (bytes, got) = match res {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(self.io()(e)),
            };
            fds.extend(got);
            if bytes.is_empty() {
                return Err(self.io()(std::io::ErrorKind::UnexpectedEof.into()));
            }
            line.extend_from_slice(&bytes);
            if line.ends_with(b"\n") {
                break;
            }
            if line.len() > MAX_REQUEST_BYTES {
                return Err(self.protocol("answer too long".into()));
            }
        }
        let resp = serde_json::from_slice(&line).map_err(|e| {
            self.protocol(format!("{e}: {}", String::from_utf8_lossy(&line).trim()))
        })?;
        Ok((resp, fds))
    }

    fn protocol(&self, message: String) -> ShimError {
        ShimError::Protocol {
            dir: self.dir.clone(),
            message,
        }
    }

    fn error(&self, r: Response) -> ShimError {
        match r {
            Response::Error { kind, message } => ShimError::Shim {
                dir: self.dir.clone(),
                kind,
                message,
            },
            other => self.protocol(format!("{other:?}")),
        }
    }

    fn named(&self, names: Vec<Stdio>, fds: Vec<OwnedFd>) -> Result<Fds, ShimError> {
        if names.len() != fds.len() {
            return Err(self.protocol(format!(
                "answer names {} fds but carried {}",
                names.len(),
                fds.len()
            )));
        }
        Ok(names.into_iter().zip(fds).collect())
    }
}

/// Starts `process` in container `id` of the pod whose shim serves `dir`.
pub async fn exec(
    dir: &Path,
    id: &str,
    process: ExecProcess,
) -> Result<(ExecSession, Fds), ShimError> {
    let mut conn = Conn::open(dir).await?;
    let exec_id = process.exec_id.clone();
    conn.send(&Request::Exec {
        id: id.to_string(),
        process,
    })
    .await?;
    match conn.receive().await? {
        (Response::ExecStarted { pid, fds: names }, fds) => {
            let fds = conn.named(names, fds)?;
            Ok((
                ExecSession {
                    dir: conn.dir,
                    conn: conn.stream,
                    exec_id,
                    pid,
                },
                fds,
            ))
        }
        (other, _) => Err(conn.error(other)),
    }
}

impl ExecSession {
    /// Waits for the process to exit; its status, or 128+signal.
    pub async fn wait(self) -> Result<i32, ShimError> {
        let mut conn = Conn {
            dir: self.dir,
            stream: self.conn,
        };
        conn.send(&Request::ExecWait {
            exec_id: self.exec_id,
        })
        .await?;
        match conn.receive().await? {
            (Response::Exited { exit_code }, _) => Ok(exit_code),
            (other, _) => Err(conn.error(other)),
        }
    }
}

/// Attaches to container `id`: its stdin (when it has one) and its output from now on.
pub async fn attach(dir: &Path, id: &str) -> Result<Fds, ShimError> {
    let mut conn = Conn::open(dir).await?;
    conn.send(&Request::Attach { id: id.to_string() }).await?;
    match conn.receive().await? {
        (Response::Attached { fds: names }, fds) => conn.named(names, fds),
        (other, _) => Err(conn.error(other)),
    }
}
