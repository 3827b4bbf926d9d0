//! The shim's use of youki's libcontainer: create, start, exec in and delete one container.
//!
//! Only the shim process may call into this module: libcontainer clones the calling process,
//! which is unsound in a multi-threaded (tokio) process. It never reaps: the container's init
//! is the shim's child and the shim's loop owns `waitpid`.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{SigSet, SigmaskHow};

use super::cgroup;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{op} container {id}: {message}")]
    Libcontainer {
        op: &'static str,
        id: String,
        message: String,
    },
    #[error("create pipes for container {id}: {source}")]
    Pipe {
        id: String,
        #[source]
        source: nix::Error,
    },
}

/// A created container: its init waits for `start`; the shim reads the pipes and keeps the
/// write end of its stdin when it has one.
#[derive(Debug)]
pub struct Created {
    pub pid: i32,
    /// The output pipes; with a terminal, the init's console is the pty and there are none.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
}

/// Where an exec'd process's stdio comes from.
pub enum ExecStdio {
    /// The process's ends of three pipes (or /dev/null); consumed by the start.
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A listening socket's path: the process makes a pty and sends its master there.
    Console(PathBuf),
}

/// libcontainer's errors keep the useful part (the syscall, the path) in their sources.
fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        msg.push_str(": ");
        msg.push_str(&e.to_string());
        next = e.source();
    }
    msg
}

fn lc_err(
    op: &'static str,
    id: &str,
) -> impl FnOnce(libcontainer::error::LibcontainerError) -> RuntimeError {
    let id = id.to_string();
    move |e| RuntimeError::Libcontainer {
        op,
        id,
        message: chain(&e),
    }
}

fn nonblocking_pipe(id: &str) -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    let err = |source| RuntimeError::Pipe {
        id: id.to_string(),
        source,
    };
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(err)?;
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&r),
        FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
    )
    .map_err(err)?;
    Ok((r, w))
}

/// Creates the container from `<bundle>/config.json`, with state under `state_root`.
/// With `stdin`, the container reads a pipe whose write end the shim keeps (for attach).
/// With `console` (the spec asks for a terminal), its init gets a pty instead, whose master
/// libcontainer sends over that socket.
pub fn create(
    state_root: &Path,
    bundle: &Path,
    id: &str,
    stdin: bool,
    console: Option<&Path>,
) -> Result<Created, RuntimeError> {
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(ShimExecutor)
        .with_root_path(state_root)
        .map_err(lc_err("create", id))?;
    let (mut stdout, mut stderr) = (None, None);
    if let Some(sock) = console {
        builder = builder.with_console_socket(Some(sock));
    } else {
        let (out_r, out_w) = nonblocking_pipe(id)?;
        let (err_r, err_w) = nonblocking_pipe(id)?;
        builder = builder.with_stdout(out_w).with_stderr(err_w);
        (stdout, stderr) = (Some(out_r), Some(err_r));
    }
    let mut stdin_w = None;
    if stdin && console.is_none() {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|source| RuntimeError::Pipe {
            id: id.to_string(),
            source,
        })?;
        builder = builder.with_stdin(r);
        stdin_w = Some(w);
    }
    let container = builder
        .validate_id()
        .map_err(lc_err("create", id))?
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(lc_err("create", id))?;
    let pid = container
        .pid()
        .map(|p| p.as_raw())
        .ok_or_else(|| RuntimeError::Libcontainer {
            op: "create",
            id: id.to_string(),
            message: "libcontainer reported no init pid".into(),
        })?;
    Ok(Created {
        pid,
        stdout,
        stderr,
        stdin: stdin_w,
    })
}

/// Starts `process` (an OCI process JSON file) in the namespaces and cgroup of running
/// container `id`; returns the new process's pid. Like a container's init it becomes the
/// shim's child (or orphan: the shim is the subreaper), reaped by the loop.
pub fn exec(
    state_root: &Path,
    id: &str,
    process: &Path,
    stdio: ExecStdio,
) -> Result<i32, RuntimeError> {
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(ShimExecutor)
        .with_root_path(state_root)
        .map_err(lc_err("exec in", id))?;
    builder = match stdio {
        ExecStdio::Pipes {
            stdin,
            stdout,
            stderr,
        } => builder
            .with_stdin(stdin)
            .with_stdout(stdout)
            .with_stderr(stderr),
        ExecStdio::Console(path) => builder.with_console_socket(Some(path)),
    };
    let pid = builder
        .as_tenant()
        .with_process(Some(process))
        .with_detach(true)
        .build()
        .map_err(lc_err("exec in", id))?;
    Ok(pid.as_raw())
}

pub fn start(state_root: &Path, id: &str) -> Result<(), RuntimeError> {
    let mut c = Container::load(state_root.join(id)).map_err(lc_err("start", id))?;
    c.start().map_err(lc_err("start", id))
}

/// Kills whatever is left in the container's cgroup, removes the cgroup and libcontainer's
/// state directory: what libcontainer's `Container::delete` does for our containers (no
/// hooks, no Intel RDT, no systemd), without building a cgroup manager for it (see `cgroup`).
pub fn delete(
    state_root: &Path,
    id: &str,
    cgroup_root: &Path,
    cgroup_path: &str,
) -> Result<(), RuntimeError> {
    let err = |message: String| RuntimeError::Libcontainer {
        op: "delete",
        id: id.to_string(),
        message,
    };
    cgroup::remove(cgroup_root, cgroup_path).map_err(|e| err(e.to_string()))?;
    let dir = state_root.join(id);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(err(format!("remove {}: {e}", dir.display())))
        }
        _ => Ok(()),
    }
}

/// The kernel's `struct sigaction` for rt_sigaction(2) on the generic ABI (x86_64, arm,
/// aarch64): handler, flags, restorer, mask.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: usize,
    restorer: usize,
    mask: u64,
}

/// Every signal back to SIG_DFL: an ignored disposition survives `execve`. Besides the
/// shim's SIGPIPE, containers were seen with glibc's internal signals (32, 33)
/// ignored, which glibc's own `signal()` refuses to touch, hence the raw syscall.
fn reset_signal_dispositions() {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads `dfl` (a valid struct of the kernel's layout, size 8
        // mask) and writes nothing (null old action); SIG_DFL runs no code of ours.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
}

/// libcontainer's default executor, after undoing the shim's signal set-up.
///
/// The shim blocks SIGCHLD/SIGTERM (for its signalfd) and ignores SIGPIPE; both survive
/// `execve`, so without this a container could not be stopped with SIGTERM and would not die
/// on a broken pipe.
#[derive(Clone)]
struct ShimExecutor;

impl Executor for ShimExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
            .map_err(|e| ExecutorError::Other(format!("reset signal mask: {e}")))?;
        reset_signal_dispositions();
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}
