//! The wire protocol between the node agent and a pod's shim: one JSON request per line on
//! `<pod-dir>/shim.sock`, answered by one JSON response per line, in order.
//!
//! This module owns the message types and nothing else: no I/O, no policy. Both sides (the
//! shim's loop and the agent's `ShimClient`) compile against these exact types, so a field
//! added here is added on both ends at once.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sandbox::spec::ContainerSpec;

/// Bumped when a message changes incompatibly; `Ping` reports it so a new agent can tell an
/// old shim it must not drive.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the shim accepts; a spec is a few KiB.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// Writes the bundle and creates the container (process waiting to exec, cgroup applied).
    Create {
        spec: Box<ContainerSpec>,
        /// CRI log file, e.g. `/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log`.
        log_path: PathBuf,
        #[serde(default)]
        log_limits: Option<LogLimits>,
    },
    Start {
        id: String,
    },
    Kill {
        id: String,
        signal: i32,
    },
    /// Only for a container that is not running: cleans libcontainer's state and the cgroup.
    Remove {
        id: String,
    },
    State,
    /// SIGTERM everything, SIGKILL after the grace period, remove all, exit.
    Shutdown {
        grace_seconds: u64,
    },
    /// Starts a process in running container `id` (kubectl exec). The answer, `ExecStarted`,
    /// carries the agent's ends of the process's stdio as SCM_RIGHTS fds, in the order of
    /// its `fds` list; the shim keeps none of them.
    Exec {
        id: String,
        #[serde(flatten)]
        process: ExecProcess,
    },
    /// Answered when exec `exec_id` has exited (at once if it already has), with `Exited`.
    /// One waiter per exec; the record is dropped once told.
    ExecWait {
        exec_id: String,
    },
    /// Live output of container `id` from now on, and its stdin when it has one (kubectl
    /// attach): `Attached` carries the fds, named in its `fds` list.
    Attach {
        id: String,
    },
}

/// What to run for an exec; the container's own process (user, env, cwd, capabilities) is
/// the base, as runc and containerd do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecProcess {
    pub exec_id: String,
    pub args: Vec<String>,
    /// A pseudo-terminal instead of pipes: one fd, `pty`, both ways; the process gets it as
    /// its controlling terminal.
    #[serde(default)]
    pub tty: bool,
    /// Without it the process reads /dev/null.
    #[serde(default)]
    pub stdin: bool,
}

/// The name of one fd passed with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stdio {
    /// Write end of the process's stdin.
    Stdin,
    /// Read end of its stdout.
    Stdout,
    /// Read end of its stderr.
    Stderr,
    /// The pseudo-terminal's master: read output, write input, resize with TIOCSWINSZ.
    Pty,
}

/// CRI log rotation; kubelet's defaults are 10 MiB and 5 files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLimits {
    pub max_size_bytes: u64,
    /// Files kept per container, the current one included.
    pub max_files: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_size_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Pong {
        version: u32,
        pid: u32,
    },
    Ok,
    State {
        containers: Vec<ContainerState>,
    },
    ExecStarted {
        pid: i32,
        fds: Vec<Stdio>,
    },
    Attached {
        fds: Vec<Stdio>,
    },
    /// An exec's exit status, or 128+signal.
    Exited {
        exit_code: i32,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Not JSON, unknown op, or a spec that does not validate.
    BadRequest,
    NotFound,
    AlreadyExists,
    /// The container's status does not allow the operation (e.g. Remove while Running).
    InvalidState,
    /// The operation was valid but the system refused (libcontainer, a syscall, the disk).
    Failed,
    /// The shim is shutting down and takes no new work.
    ShuttingDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// What the shim knows about one container; also the record persisted in `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub status: Status,
    pub pid: Option<i32>,
    /// The exit status, or 128+signal; `None` while running, or when the exit could not be
    /// observed (the shim was restarted and could only watch the process, not reap it).
    pub exit_code: Option<i32>,
    /// RFC 3339.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    #[serde(default)]
    pub oom_killed: bool,
    pub log_path: PathBuf,
    pub cgroup_path: String,
}
