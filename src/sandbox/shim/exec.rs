//! Processes started inside running containers (kubectl exec) and the shim's record of
//! them until their exit status has been told.
//!
//! This module owns the exec's stdio (pipes, or a pty whose master libcontainer sends back
//! over a console socket), the process JSON it derives from the container's own process, and
//! the exec table. It never reads or writes the stdio: the agent's ends leave the shim with
//! the answer, and the shim keeps no copy, so EOF and hang-ups reach both sides. It never
//! waits on a process: the loop reaps and calls [`Execs::exited`].

use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use super::pod::{Pod, Reply};
use super::protocol::{ErrorKind, ExecProcess, Response, Status, Stdio};
use super::runtime::{self, ExecStdio};

/// The pty master is sent before the process execs, so it is there when `build` returns;
/// this only bounds a surprise.
const CONSOLE_WAIT_MS: u16 = 2000;
const MAX_EXEC_ID: usize = 32;

struct Exec {
    pid: i32,
    /// The client that started it; `None` once that connection is gone.
    owner: Option<u64>,
    exit_code: Option<i32>,
    /// A client waiting for the exit (`ExecWait`).
    waiter: Option<u64>,
}

#[derive(Default)]
pub struct Execs {
    table: BTreeMap<String, Exec>,
}

/// A reply and the fds that travel with it.
pub type FdReply = Result<(Response, Vec<OwnedFd>), (ErrorKind, String)>;

fn failed(what: impl std::fmt::Display) -> (ErrorKind, String) {
    (ErrorKind::Failed, what.to_string())
}

impl Execs {
    /// Starts `p` in container `id` for client `owner`.
    pub fn start(&mut self, pod: &Pod, owner: u64, id: &str, p: &ExecProcess) -> FdReply {
        let bad = |m: String| Err((ErrorKind::BadRequest, m));
        if p.exec_id.is_empty()
            || p.exec_id.len() > MAX_EXEC_ID
            || !p
                .exec_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad(format!(
                "exec id {:?} must be 1-{MAX_EXEC_ID} letters, digits or '-'",
                p.exec_id
            ));
        }
        if p.args.is_empty() {
            return bad("exec needs a command".into());
        }
        if self.table.contains_key(&p.exec_id) {
            return Err((
                ErrorKind::AlreadyExists,
                format!("exec {} already exists", p.exec_id),
            ));
        }
        let entry = pod
            .containers
            .get(id)
            .ok_or_else(|| (ErrorKind::NotFound, format!("container {id} not found")))?;
        if entry.state.status != Status::Running {
            return Err((
                ErrorKind::InvalidState,
                format!("container {id} is {:?}, not Running", entry.state.status),
            ));
        }
        let bundle = pod.dir.join("bundles").join(id);
        let process_file = bundle.join(format!("exec-{}.json", p.exec_id));
        write_process(&bundle.join("config.json"), &process_file, p)?;
        let res = if p.tty {
            start_tty(pod, id, &process_file, &p.exec_id)
        } else {
            start_pipes(pod, id, &process_file, p.stdin)
        };
        let _ = std::fs::remove_file(&process_file);
        let (pid, fds, names) = res?;
        self.table.insert(
            p.exec_id.clone(),
            Exec {
                pid,
                owner: Some(owner),
                exit_code: None,
                waiter: None,
            },
        );
        Ok((Response::ExecStarted { pid, fds: names }, fds))
    }

    /// Records a reaped pid; returns the waiting client and its answer when one waits.
    /// `None` in the outer option: not an exec's pid.
    pub fn exited(&mut self, pid: i32, code: i32) -> Option<Option<(u64, Response)>> {
        let (exec_id, e) = self.table.iter_mut().find(|(_, e)| e.pid == pid)?;
        e.exit_code = Some(code);
        let exec_id = exec_id.clone();
        if let Some(w) = e.waiter {
            self.table.remove(&exec_id);
            return Some(Some((w, Response::Exited { exit_code: code })));
        }
        if e.owner.is_none() {
            self.table.remove(&exec_id);
        }
        Some(None)
    }

    /// `ExecWait`: the answer now when the exec has exited, else `None` (told later).
    pub fn wait(&mut self, cid: u64, exec_id: &str) -> Option<Reply> {
        let Some(e) = self.table.get_mut(exec_id) else {
            return Some(Err((
                ErrorKind::NotFound,
                format!("exec {exec_id} not found"),
            )));
        };
        if let Some(code) = e.exit_code {
            self.table.remove(exec_id);
            return Some(Ok(Response::Exited { exit_code: code }));
        }
        if e.waiter.is_some_and(|w| w != cid) {
            return Some(Err((
                ErrorKind::InvalidState,
                format!("exec {exec_id} already has a waiter"),
            )));
        }
        e.waiter = Some(cid);
        None
    }

    /// A connection closed: its execs keep running, but nobody will ask for their status.
    pub fn client_gone(&mut self, cid: u64) {
        self.table.retain(|_, e| {
            if e.waiter == Some(cid) {
                e.waiter = None;
            }
            if e.owner == Some(cid) {
                e.owner = None;
            }
            e.owner.is_some() || e.waiter.is_some() || e.exit_code.is_none()
        });
    }
}

/// The container's process with the exec's args and terminal: same user, env, cwd,
/// capabilities and limits, as `runc exec` and containerd do.
fn write_process(config: &Path, out: &Path, p: &ExecProcess) -> Result<(), (ErrorKind, String)> {
    let text = std::fs::read(config).map_err(|e| failed(format!("{}: {e}", config.display())))?;
    let spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| failed(format!("{}: {e}", config.display())))?;
    let mut process = spec
        .get("process")
        .cloned()
        .ok_or_else(|| failed(format!("{}: no process", config.display())))?;
    process["args"] = serde_json::json!(p.args);
    process["terminal"] = serde_json::json!(p.tty);
    if let Some(obj) = process.as_object_mut() {
        obj.remove("consoleSize");
    }
    let bytes = serde_json::to_vec(&process).map_err(failed)?;
    std::fs::write(out, bytes).map_err(|e| failed(format!("{}: {e}", out.display())))
}

type Started = (i32, Vec<OwnedFd>, Vec<Stdio>);

fn start_pipes(
    pod: &Pod,
    id: &str,
    process: &Path,
    stdin: bool,
) -> Result<Started, (ErrorKind, String)> {
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| failed(format!("pipe: {e}")));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let mut fds = Vec::new();
    let mut names = Vec::new();
    let child_stdin: OwnedFd = if stdin {
        let (r, w) = pipe()?;
        fds.push(w);
        names.push(Stdio::Stdin);
        r
    } else {
        std::fs::File::open("/dev/null")
            .map_err(|e| failed(format!("/dev/null: {e}")))?
            .into()
    };
    let stdio = ExecStdio::Pipes {
        stdin: child_stdin,
        stdout: out_w,
        stderr: err_w,
    };
    // The builder owns the child's ends and closes them once the process has them.
    let pid = runtime::exec(&pod.state_root, id, process, stdio).map_err(failed)?;
    fds.extend([out_r, err_r]);
    names.extend([Stdio::Stdout, Stdio::Stderr]);
    Ok((pid, fds, names))
}

fn start_tty(
    pod: &Pod,
    id: &str,
    process: &Path,
    exec_id: &str,
) -> Result<Started, (ErrorKind, String)> {
    let sock: PathBuf = pod.dir.join(format!("tty-{exec_id}.sock"));
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).map_err(|e| failed(format!("bind {}: {e}", sock.display())))?;
    let res = runtime::exec(
        &pod.state_root,
        id,
        process,
        ExecStdio::Console(sock.clone()),
    )
    .map_err(failed)
    .and_then(|pid| receive_master(&listener).map(|fd| (pid, fd)));
    let _ = std::fs::remove_file(&sock);
    let (pid, master) = res?;
    Ok((pid, vec![master], vec![Stdio::Pty]))
}

/// Accepts libcontainer's console connection and takes the pty master it carries.
pub(super) fn receive_master(listener: &UnixListener) -> Result<OwnedFd, (ErrorKind, String)> {
    let mut p = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    match poll(&mut p, PollTimeout::from(CONSOLE_WAIT_MS)) {
        Ok(n) if n > 0 => {}
        _ => return Err(failed("the exec's pty master never arrived")),
    }
    let (conn, _) = listener
        .accept()
        .map_err(|e| failed(format!("accept console: {e}")))?;
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| failed(format!("receive pty master: {e}")))?;
    for c in msg
        .cmsgs()
        .map_err(|e| failed(format!("pty master: {e}")))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd in our table for us alone.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(failed("console message carried no fd"))
}
