//! The shim's event loop: one thread, one `poll(2)` over the listening socket, the agent's
//! connections, the containers' stdout/stderr pipes, pidfds of adopted containers and a
//! signalfd for SIGCHLD/SIGTERM/SIGINT.
//!
//! It owns all I/O of the shim process and the shutdown sequence; container logic is in
//! `pod`. It must never start a thread or an async runtime (libcontainer clones this process)
//! and never block for long on one source: each pipe gives at most one read per turn, so a
//! container writing fast cannot starve the others or the agent's requests.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SigSet, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::conn::{flush, read_lines, Client};
use super::exec::Execs;
use super::exec::FdReply;
use super::logs::Stream;
use super::pod::Pod;
use super::protocol::{ErrorKind, Request, Response, PROTOCOL_VERSION};

/// How much one pipe may give per loop turn.
const READ_CHUNK: usize = 64 * 1024;
/// After SIGKILL, how long to wait for the kernel to let us reap before cleaning up anyway.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Grace period when the shim itself gets SIGTERM.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("shim {what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Sys { what, source }
}

struct Shutdown {
    deadline: Instant,
    killed: bool,
    /// Clients waiting for the Shutdown reply.
    waiters: Vec<u64>,
}

/// What a pollfd stands for.
#[derive(Clone)]
enum Token {
    Listener,
    Signals,
    Client(u64),
    Pipe(String, Stream),
    PidFd(String),
}

pub struct Server {
    pod: Pod,
    listener: UnixListener,
    socket_path: PathBuf,
    signals: SignalFd,
    clients: BTreeMap<u64, Client>,
    next_client: u64,
    shutdown: Option<Shutdown>,
    execs: Execs,
}

/// The signals the loop takes through its signalfd; blocked for normal delivery.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

impl Server {
    /// `signals` must already be blocked (before any child can exit unnoticed).
    pub fn new(
        pod: Pod,
        listener: UnixListener,
        socket_path: PathBuf,
    ) -> Result<Server, ServeError> {
        listener
            .set_nonblocking(true)
            .map_err(|e| sys("listener")(io_errno(e)))?;
        let signals = SignalFd::with_flags(
            &handled_signals(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )
        .map_err(sys("signalfd"))?;
        Ok(Server {
            pod,
            listener,
            socket_path,
            signals,
            clients: BTreeMap::new(),
            next_client: 0,
            shutdown: None,
            execs: Execs::default(),
        })
    }

    /// Serves until a shutdown completes.
    pub fn run(mut self) -> Result<(), ServeError> {
        // A child may have exited before the signalfd existed.
        self.reap();
        loop {
            let ready = self.wait()?;
            for token in ready {
                match token {
                    Token::Listener => self.accept(),
                    Token::Signals => self.signals(),
                    Token::Client(id) => self.client_io(id),
                    Token::Pipe(id, stream) => self.pipe(&id, stream),
                    Token::PidFd(id) => self.adopted_exit(&id),
                }
            }
            let gone: Vec<u64> = self
                .clients
                .iter()
                .filter(|(_, c)| c.closed && c.outbuf.is_empty())
                .map(|(id, _)| *id)
                .collect();
            for cid in gone {
                self.clients.remove(&cid);
                self.execs.client_gone(cid);
            }
            if self.advance_shutdown() {
                return Ok(());
            }
        }
    }

    fn wait(&mut self) -> Result<Vec<Token>, ServeError> {
        let mut tokens = vec![Token::Listener, Token::Signals];
        let mut fds: Vec<BorrowedFd<'_>> = vec![self.listener.as_fd(), self.signals.as_fd()];
        let mut flags = vec![PollFlags::POLLIN, PollFlags::POLLIN];
        for (id, c) in &self.clients {
            let mut f = PollFlags::empty();
            if !c.closed {
                f |= PollFlags::POLLIN;
            }
            if !c.outbuf.is_empty() {
                f |= PollFlags::POLLOUT;
            }
            tokens.push(Token::Client(*id));
            fds.push(c.stream.as_fd());
            flags.push(f);
        }
        for (id, e) in &self.pod.containers {
            for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
                if let Some(fd) = &e.pipes[i] {
                    tokens.push(Token::Pipe(id.clone(), stream));
                    fds.push(fd.as_fd());
                    flags.push(PollFlags::POLLIN);
                }
            }
            if let Some(fd) = &e.pidfd {
                tokens.push(Token::PidFd(id.clone()));
                fds.push(fd.as_fd());
                flags.push(PollFlags::POLLIN);
            }
        }
        let mut pollfds: Vec<PollFd<'_>> = fds
            .iter()
            .zip(&flags)
            .map(|(fd, f)| PollFd::new(*fd, *f))
            .collect();
        let timeout = match &self.shutdown {
            // Progress is checked on a short tick while stopping.
            Some(_) => PollTimeout::from(100u16),
            None => PollTimeout::NONE,
        };
        match poll(&mut pollfds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(sys("poll")(e)),
        }
        Ok(pollfds
            .iter()
            .zip(tokens)
            .filter(|(p, _)| p.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, t)| t)
            .collect())
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.next_client += 1;
                    self.clients.insert(self.next_client, Client::new(stream));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(%e, "accept");
                    return;
                }
            }
        }
    }

    fn signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap(),
                Ok(Signal::SIGTERM | Signal::SIGINT) => self.begin_shutdown(DEFAULT_GRACE, None),
                _ => {}
            }
        }
    }

    /// Collects every exited child; SIGCHLD coalesces, so one signal may stand for many.
    fn reap(&mut self) {
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!(%e, "waitpid");
                    return;
                }
            };
            match self.execs.exited(pid.as_raw(), code) {
                Some(Some((cid, reply))) => {
                    self.respond(cid, &reply, Vec::new());
                    if let Some(c) = self.clients.get_mut(&cid) {
                        flush(c);
                    }
                }
                Some(None) => {}
                None => {
                    self.pod.exited(pid.as_raw(), Some(code));
                }
            }
        }
    }

    fn adopted_exit(&mut self, id: &str) {
        let pid = self.pod.containers.get(id).and_then(|e| e.state.pid);
        if let Some(pid) = pid {
            // Not our child: the exit code went to whoever reaped it.
            self.pod.exited(pid, None);
        }
    }

    fn pipe(&mut self, id: &str, stream: Stream) {
        let Some(fd) = self
            .pod
            .containers
            .get(id)
            .and_then(|e| e.pipes[stream as usize].as_ref())
        else {
            return;
        };
        let mut buf = vec![0u8; READ_CHUNK];
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(n) => self.pod.log(id, stream, &buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!(%e, "reading {stream:?} of {id}");
                self.pod.log(id, stream, &[]);
            }
        }
    }

    fn client_io(&mut self, cid: u64) {
        let mut lines = Vec::new();
        if let Some(c) = self.clients.get_mut(&cid) {
            if !c.closed {
                read_lines(c, &mut lines);
            }
        }
        for line in lines {
            let reply = match line {
                Ok(line) => self.handle(cid, &line),
                Err(msg) => Some(Ok((
                    Response::Error {
                        kind: ErrorKind::BadRequest,
                        message: msg,
                    },
                    Vec::new(),
                ))),
            };
            match reply {
                Some(Ok((reply, fds))) => self.respond(cid, &reply, fds),
                Some(Err((kind, message))) => {
                    self.respond(cid, &Response::Error { kind, message }, Vec::new())
                }
                None => {}
            }
        }
        if let Some(c) = self.clients.get_mut(&cid) {
            flush(c);
        }
    }

    fn respond(&mut self, cid: u64, reply: &Response, fds: Vec<OwnedFd>) {
        if let Some(c) = self.clients.get_mut(&cid) {
            // Serializing our own types cannot fail; an empty line would still keep order.
            let mut bytes = serde_json::to_vec(reply).unwrap_or_default();
            bytes.push(b'\n');
            c.queue(&bytes, fds);
        }
    }

    /// Answers one request line; `None` when the answer comes later (Shutdown, ExecWait).
    fn handle(&mut self, cid: u64, line: &[u8]) -> Option<FdReply> {
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                return Some(Err((
                    ErrorKind::BadRequest,
                    format!("malformed request: {e}"),
                )))
            }
        };
        if self.shutdown.is_some()
            && !matches!(
                req,
                Request::Ping | Request::State | Request::Shutdown { .. }
            )
        {
            return Some(Err((
                ErrorKind::ShuttingDown,
                "shim is shutting down".into(),
            )));
        }
        let reply = match req {
            Request::Ping => Ok(Response::Pong {
                version: PROTOCOL_VERSION,
                pid: std::process::id(),
            }),
            Request::Create {
                spec,
                log_path,
                log_limits,
            } => self
                .pod
                .create(&spec, &log_path, log_limits.unwrap_or_default()),
            Request::Start { id } => self.pod.start(&id),
            Request::Kill { id, signal } => self.pod.kill(&id, signal),
            Request::Remove { id } => self.pod.remove(&id),
            Request::State => Ok(self.pod.state()),
            Request::Shutdown { grace_seconds } => {
                self.begin_shutdown(Duration::from_secs(grace_seconds.min(3600)), Some(cid));
                return None;
            }
            Request::Exec { id, process } => {
                return Some(self.execs.start(&self.pod, cid, &id, &process))
            }
            Request::ExecWait { exec_id } => self.execs.wait(cid, &exec_id)?,
            Request::Attach { id } => return Some(self.pod.attach(&id)),
        };
        Some(reply.map(|r| (r, Vec::new())))
    }

    fn begin_shutdown(&mut self, grace: Duration, waiter: Option<u64>) {
        let deadline = Instant::now() + grace;
        let sd = self.shutdown.get_or_insert_with(|| Shutdown {
            deadline,
            killed: false,
            waiters: Vec::new(),
        });
        sd.waiters.extend(waiter);
        if sd.deadline > deadline {
            sd.deadline = deadline;
        }
        self.pod.signal_all(Signal::SIGKILL, Signal::SIGTERM);
    }

    /// Returns true when the shim may exit.
    fn advance_shutdown(&mut self) -> bool {
        let Some(sd) = &mut self.shutdown else {
            return false;
        };
        let now = Instant::now();
        if self.pod.live().next().is_some() {
            if now < sd.deadline {
                return false;
            }
            if !sd.killed {
                self.pod.signal_all(Signal::SIGKILL, Signal::SIGKILL);
                sd.killed = true;
                sd.deadline = now + KILL_WAIT;
                return false;
            }
            tracing::warn!(
                "containers still alive {KILL_WAIT:?} after SIGKILL; cleaning up anyway"
            );
        }
        let waiters = std::mem::take(&mut sd.waiters);
        self.drain_pipes();
        let errors = self.pod.remove_all();
        let reply = if errors.is_empty() {
            Response::Ok
        } else {
            Response::Error {
                kind: ErrorKind::Failed,
                message: errors.join("; "),
            }
        };
        for cid in waiters {
            self.respond(cid, &reply, Vec::new());
            if let Some(c) = self.clients.get_mut(&cid) {
                // The process exits next: give the answer a moment to leave.
                let _ = c.stream.set_nonblocking(false);
                let _ = c.stream.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = c.stream.write_all(&c.outbuf);
            }
        }
        let _ = std::fs::remove_file(&self.socket_path);
        true
    }

    /// Whatever the containers wrote before dying still belongs in their logs.
    fn drain_pipes(&mut self) {
        let ids: Vec<String> = self.pod.containers.keys().cloned().collect();
        for id in ids {
            for stream in [Stream::Stdout, Stream::Stderr] {
                // Bounded: a grandchild holding the pipe open must not keep us here.
                for _ in 0..64 {
                    let open = self
                        .pod
                        .containers
                        .get(&id)
                        .is_some_and(|e| e.pipes[stream as usize].is_some());
                    if !open {
                        break;
                    }
                    if self.would_block(&id, stream) {
                        self.pod.log(&id, stream, &[]);
                        break;
                    }
                    self.pipe(&id, stream);
                }
            }
        }
    }

    fn would_block(&self, id: &str, stream: Stream) -> bool {
        let Some(fd) = self
            .pod
            .containers
            .get(id)
            .and_then(|e| e.pipes[stream as usize].as_ref())
        else {
            return false;
        };
        let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut p, PollTimeout::ZERO), Ok(0))
    }
}

fn io_errno(e: io::Error) -> nix::Error {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("shim.sock")
}
