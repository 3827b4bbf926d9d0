//! The node agent's handle on a pod's shim: spawning it detached, reconnecting to it after
//! an agent restart, and one async method per request.
//!
//! This runs inside the agent's tokio process: it only talks over the socket and runs the
//! shim binary; it never calls libcontainer and never waits on the shim process itself (the
//! shim detaches, so killing the agent leaves it and its containers running).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{ContainerState, ErrorKind, LogLimits, Request, Response, PROTOCOL_VERSION};
use super::server::socket_path;
use super::state::{self, StateError};
use crate::sandbox::spec::ContainerSpec;

/// Start-up reads a state file and binds a socket; this is generous for a loaded Pi.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Create clones processes and sets up cgroups and mounts; Shutdown has its own budget.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("run shim {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("shim for {dir} failed to start: {message}")]
    SpawnFailed { dir: PathBuf, message: String },
    #[error("no shim serves {dir} (gone after a reboot or crash?): {source}")]
    Gone {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("shim for {dir}: {what} timed out after {after:?}")]
    Timeout {
        dir: PathBuf,
        what: &'static str,
        after: Duration,
    },
    #[error("shim for {dir}: connection: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("shim for {dir}: unexpected answer: {message}")]
    Protocol { dir: PathBuf, message: String },
    #[error("shim for {dir} speaks protocol {found}, want {PROTOCOL_VERSION}")]
    Version { dir: PathBuf, found: u32 },
    #[error("shim for {dir}: {message}")]
    Shim {
        dir: PathBuf,
        kind: ErrorKind,
        message: String,
    },
}

impl ShimError {
    /// The shim's error kind, when the shim answered with an error.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ShimError::Shim { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

pub struct ShimClient {
    dir: PathBuf,
    conn: BufReader<UnixStream>,
    pid: u32,
}

/// The containers recorded in `<dir>/state.json`: what a shim last knew, readable when the
/// shim is gone.
pub fn last_known_state(dir: &Path) -> Result<Vec<ContainerState>, StateError> {
    state::load(dir).map(|s| s.containers)
}

impl ShimClient {
    /// Runs `<exe> shim --dir <dir>`, which detaches and reports when it serves, then
    /// connects. `exe` is normally `std::env::current_exe()`.
    pub async fn spawn(exe: &Path, dir: &Path) -> Result<ShimClient, ShimError> {
        let (exe, dir) = (exe.to_path_buf(), dir.to_path_buf());
        let (exe2, dir2) = (exe.clone(), dir.clone());
        // The launcher exits as soon as the detached shim is ready; std's blocking wait on
        // that short-lived process keeps tokio's "process" feature out of the agent.
        let run = tokio::task::spawn_blocking(move || {
            Command::new(&exe2)
                .arg("shim")
                .arg("--dir")
                .arg(&dir2)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
        });
        let out = tokio::time::timeout(SPAWN_TIMEOUT, run)
            .await
            .map_err(|_| ShimError::Timeout {
                dir: dir.clone(),
                what: "spawn",
                after: SPAWN_TIMEOUT,
            })?
            .map_err(|e| ShimError::Spawn {
                exe: exe.clone(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| ShimError::Spawn { exe, source })?;
        if !out.status.success() {
            return Err(ShimError::SpawnFailed {
                dir,
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Self::connect(&dir).await
    }

    /// Connects to the shim serving `dir` and checks it answers Ping.
    pub async fn connect(dir: &Path) -> Result<ShimClient, ShimError> {
        let stream = UnixStream::connect(socket_path(dir))
            .await
            .map_err(|source| ShimError::Gone {
                dir: dir.to_path_buf(),
                source,
            })?;
        let mut client = ShimClient {
            dir: dir.to_path_buf(),
            conn: BufReader::new(stream),
            pid: 0,
        };
        client.pid = client.ping().await?;
        Ok(client)
    }

    /// The shim's pid (for diagnostics; the agent never signals or waits on it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub async fn ping(&mut self) -> Result<u32, ShimError> {
        match self.call(&Request::Ping).await? {
            Response::Pong { version, pid } if version == PROTOCOL_VERSION => Ok(pid),
            Response::Pong { version, .. } => Err(ShimError::Version {
                dir: self.dir.clone(),
                found: version,
            }),
            other => Err(self.unexpected(other)),
        }
    }

    pub async fn create(
        &mut self,
        spec: &ContainerSpec,
        log_path: &Path,
        log_limits: Option<LogLimits>,
    ) -> Result<(), ShimError> {
        let req = Request::Create {
            spec: Box::new(spec.clone()),
            log_path: log_path.to_path_buf(),
            log_limits,
        };
        self.ok(&req).await
    }

    pub async fn start(&mut self, id: &str) -> Result<(), ShimError> {
        self.ok(&Request::Start { id: id.into() }).await
    }

    pub async fn kill(&mut self, id: &str, signal: i32) -> Result<(), ShimError> {
        self.ok(&Request::Kill {
            id: id.into(),
            signal,
        })
        .await
    }

    pub async fn remove(&mut self, id: &str) -> Result<(), ShimError> {
        self.ok(&Request::Remove { id: id.into() }).await
    }

    pub async fn state(&mut self) -> Result<Vec<ContainerState>, ShimError> {
        match self.call(&Request::State).await? {
            Response::State { containers } => Ok(containers),
            other => Err(self.unexpected(other)),
        }
    }

    /// Stops every container (SIGTERM, SIGKILL after `grace`), cleans up; the shim exits.
    pub async fn shutdown(mut self, grace: Duration) -> Result<(), ShimError> {
        let req = Request::Shutdown {
            grace_seconds: grace.as_secs(),
        };
        let budget = grace + REQUEST_TIMEOUT;
        self.ok_within(&req, budget).await
    }

    /// Sends any request and returns the shim's answer, errors included as `Response::Error`.
    pub async fn call(&mut self, req: &Request) -> Result<Response, ShimError> {
        self.call_within(req, REQUEST_TIMEOUT).await
    }

    async fn call_within(
        &mut self,
        req: &Request,
        budget: Duration,
    ) -> Result<Response, ShimError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ShimError::Protocol {
            dir: self.dir.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        let dir = self.dir.clone();
        let io = |source| ShimError::Io {
            dir: dir.clone(),
            source,
        };
        let exchange = async {
            self.conn.get_mut().write_all(&line).await.map_err(io)?;
            let mut answer = String::new();
            let n = self.conn.read_line(&mut answer).await.map_err(io)?;
            Ok::<_, ShimError>((n, answer))
        };
        let (n, answer) =
            tokio::time::timeout(budget, exchange)
                .await
                .map_err(|_| ShimError::Timeout {
                    dir: self.dir.clone(),
                    what: "request",
                    after: budget,
                })??;
        if n == 0 {
            return Err(ShimError::Io {
                dir: self.dir.clone(),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        serde_json::from_str(&answer).map_err(|e| ShimError::Protocol {
            dir: self.dir.clone(),
            message: format!("{e}: {}", answer.trim()),
        })
    }

    async fn ok(&mut self, req: &Request) -> Result<(), ShimError> {
        self.ok_within(req, REQUEST_TIMEOUT).await
    }

    async fn ok_within(&mut self, req: &Request, budget: Duration) -> Result<(), ShimError> {
        match self.call_within(req, budget).await? {
            Response::Ok => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    fn unexpected(&self, r: Response) -> ShimError {
        match r {
            Response::Error { kind, message } => ShimError::Shim {
                dir: self.dir.clone(),
                kind,
                message,
            },
            other => ShimError::Protocol {
                dir: self.dir.clone(),
                message: format!("{other:?}"),
            },
        }
    }
}
