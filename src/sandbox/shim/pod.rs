//! The containers of one pod as the shim tracks them: a lifecycle with guarded transitions
//! (Created → Running → Exited, then removed), persisted to `state.json` after every change.
//!
//! Each verb checks the status allows it, acts through `runtime` (libcontainer), records the
//! result and saves. This module owns exit codes (from the reaper) and log files; it never
//! polls or reads sockets: the loop in `server` feeds it requests, exits and pipe data.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::logs::{timestamp, ContainerLog, Stream};
use super::protocol::{ContainerState, ErrorKind, LogLimits, Response, Status};
use super::{cgroup, runtime, state};
use crate::sandbox::spec::{self, ContainerSpec};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One container: its record, its log and the read ends of its stdout/stderr pipes.
pub struct Entry {
    pub state: ContainerState,
    pub log: Option<ContainerLog>,
    /// Indexed by `Stream as usize`; `None` once the stream hit EOF.
    pub pipes: [Option<OwnedFd>; 2],
    /// For containers of a previous shim: not our children, so watched, not reaped.
    pub pidfd: Option<OwnedFd>,
    /// Write end of the container's stdin (`stdin: true`), handed out to attachers. Lost
    /// when the shim restarts: a pipe cannot be reopened.
    pub stdin: Option<OwnedFd>,
    /// Close our copy once the first attacher has it, so its EOF reaches the container.
    pub stdin_once: bool,
    /// Attachers' output pipes (write ends), indexed by `Stream as usize`.
    pub attached: Vec<[Option<OwnedFd>; 2]>,
    /// A terminal container's pty master: its output is read as stdout, attachers write
    /// its input and resize it. Lost when the shim restarts, like `stdin`.
    pub pty: Option<OwnedFd>,
}

pub struct Pod {
    pub dir: PathBuf,
    /// This boot's id, written into every save.
    boot_id: String,
    pub state_root: PathBuf,
    pub containers: BTreeMap<String, Entry>,
}

pub type Reply = Result<Response, (ErrorKind, String)>;

/// What `create_in` made: libcontainer's container and, for a terminal, the pty master.
struct Created {
    runtime: runtime::Created,
    pty: Option<OwnedFd>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Pod {
    /// Loads `state.json` left by a previous shim. Containers it recorded as alive are
    /// watched through a pidfd when their process still exists (same boot), and marked
    /// exited with an unknown code otherwise.
    pub fn open(dir: &Path) -> Result<Pod, state::StateError> {
        let state_root = dir.join("state");
        std::fs::create_dir_all(&state_root).map_err(|source| state::StateError::Io {
            path: state_root.clone(),
            source,
        })?;
        let saved = state::load(dir)?;
        let boot_id = state::boot_id();
        let same_boot = saved.boot_id.is_empty() || saved.boot_id == boot_id;
        let mut pod = Pod {
            dir: dir.to_path_buf(),
            boot_id,
            state_root,
            containers: BTreeMap::new(),
        };
        for mut st in saved.containers {
            let mut pidfd = None;
            if st.status != Status::Exited {
                pidfd = st.pid.filter(|_| same_boot).and_then(pidfd_open);
                if pidfd.is_none() {
                    st.status = Status::Exited;
                    st.exit_code = None;
                    st.finished_at = Some(now());
                }
            }
            let entry = Entry {
                state: st,
                log: None,
                pipes: [None, None],
                pidfd,
                stdin: None,
                stdin_once: false,
                attached: Vec::new(),
                pty: None,
            };
            pod.containers.insert(entry.state.id.clone(), entry);
        }
        pod.save()?;
        Ok(pod)
    }

    pub fn save(&self) -> Result<(), state::StateError> {
        let st = state::PodState {
            boot_id: self.boot_id.clone(),
            containers: self.containers.values().map(|e| e.state.clone()).collect(),
        };
        state::save(&self.dir, &st)
    }

    fn saved(&self, ok: Response) -> Reply {
        self.save()
            .map(|_| ok)
            .map_err(|e| (ErrorKind::Failed, e.to_string()))
    }

    pub(super) fn get(&mut self, id: &str) -> Result<&mut Entry, (ErrorKind, String)> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| (ErrorKind::NotFound, format!("container {id} not found")))
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.dir.join("bundles").join(id)
    }

    pub fn create(&mut self, spec: &ContainerSpec, log_path: &Path, limits: LogLimits) -> Reply {
        spec.validate()
            .map_err(|e| (ErrorKind::BadRequest, e.to_string()))?;
        if self.containers.contains_key(&spec.id) {
            return Err((
                ErrorKind::AlreadyExists,
                format!("container {} already exists", spec.id),
            ));
        }
        if !spec.rootfs.is_dir() {
            return Err((
                ErrorKind::BadRequest,
                format!(
                    "container {}: rootfs {} does not exist or is not a directory",
                    spec.id,
                    spec.rootfs.display()
                ),
            ));
        }
        if !log_path.is_absolute() {
            return Err((
                ErrorKind::BadRequest,
                format!("log path {} must be absolute", log_path.display()),
            ));
        }
        let spec = &with_reachable_nofile(spec);
        let bundle = self.bundle(&spec.id);
        spec::write_bundle(spec, &bundle).map_err(|e| (ErrorKind::BadRequest, e.to_string()))?;
        let log =
            ContainerLog::open(log_path, limits).map_err(|e| (ErrorKind::Failed, e.to_string()))?;
        let created = self.create_in(spec, &bundle).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&bundle);
        })?;
        // A terminal's output is its master's: read as stdout.
        let (pty, stdout) = match created.pty {
            Some(master) => {
                let read = master
                    .try_clone()
                    .map_err(|e| (ErrorKind::Failed, format!("pty of {}: {e}", spec.id)))?;
                (Some(master), Some(read))
            }
            None => (None, created.runtime.stdout),
        };
        let entry = Entry {
            state: ContainerState {
                id: spec.id.clone(),
                status: Status::Created,
                pid: Some(created.runtime.pid),
                exit_code: None,
                created_at: now(),
                started_at: None,
                finished_at: None,
                oom_killed: false,
                log_path: log_path.to_path_buf(),
                cgroup_path: spec.cgroup_path.clone(),
            },
            log: Some(log),
            pipes: [stdout, created.runtime.stderr],
            pidfd: None,
            stdin: created.runtime.stdin,
            stdin_once: spec.stdin_once,
            attached: Vec::new(),
            pty,
        };
        self.containers.insert(spec.id.clone(), entry);
        self.saved(Response::Ok)
    }

    /// The container made by libcontainer; for a terminal, with its pty master, received on a
    /// console socket of this pod's directory.
    fn create_in(
        &self,
        spec: &ContainerSpec,
        bundle: &Path,
    ) -> Result<Created, (ErrorKind, String)> {
        let failed = |e: runtime::RuntimeError| (ErrorKind::Failed, e.to_string());
        if !spec.tty {
            return runtime::create(&self.state_root, bundle, &spec.id, spec.stdin, None)
                .map(|runtime| Created { runtime, pty: None })
                .map_err(failed);
        }
        let sock = self.dir.join(format!("tty-{}.sock", spec.id));
        let _ = std::fs::remove_file(&sock);
        let listener = std::os::unix::net::UnixListener::bind(&sock)
            .map_err(|e| (ErrorKind::Failed, format!("bind {}: {e}", sock.display())))?;
        let res = runtime::create(&self.state_root, bundle, &spec.id, false, Some(&sock))
            .map_err(failed)
            .and_then(|runtime| {
                let master = super::exec::receive_master(&listener)?;
                nix::fcntl::fcntl(
                    master.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                )
                .map_err(|e| (ErrorKind::Failed, format!("pty of {}: {e}", spec.id)))?;
                Ok(Created {
                    runtime,
                    pty: Some(master),
                })
            });
        let _ = std::fs::remove_file(&sock);
        res
    }

    pub fn start(&mut self, id: &str) -> Reply {
        let state_root = self.state_root.clone();
        let e = self.get(id)?;
        if e.state.status != Status::Created {
            return Err((
                ErrorKind::InvalidState,
                format!("container {id} is {:?}, not Created", e.state.status),
            ));
        }
        runtime::start(&state_root, id).map_err(|e| (ErrorKind::Failed, e.to_string()))?;
        e.state.status = Status::Running;
        e.state.started_at = Some(now());
        self.saved(Response::Ok)
    }

    pub fn kill(&mut self, id: &str, signal: i32) -> Reply {
        let sig = Signal::try_from(signal)
            .map_err(|_| (ErrorKind::BadRequest, format!("invalid signal {signal}")))?;
        let e = self.get(id)?;
        match (e.state.status, e.state.pid) {
            (Status::Created | Status::Running, Some(pid)) => {
                // Our child's pid cannot be reused before we reap it; an adopted container is
                // signalled through its pidfd for the same guarantee.
                let res = match &e.pidfd {
                    Some(fd) => pidfd_send_signal(fd, sig),
                    None => kill(Pid::from_raw(pid), sig),
                };
                res.map(|_| Response::Ok).map_err(|err| {
                    (
                        ErrorKind::Failed,
                        format!("kill container {id} (pid {pid}) with {sig}: {err}"),
                    )
                })
            }
            (status, _) => Err((
                ErrorKind::InvalidState,
                format!("container {id} is {status:?}, nothing to signal"),
            )),
        }
    }

    pub fn remove(&mut self, id: &str) -> Reply {
        let e = self.get(id)?;
        if e.state.status == Status::Running {
            return Err((
                ErrorKind::InvalidState,
                format!("container {id} is Running; kill it first"),
            ));
        }
        let cgroup_path = e.state.cgroup_path.clone();
        runtime::delete(&self.state_root, id, Path::new(CGROUP_ROOT), &cgroup_path)
            .map_err(|e| (ErrorKind::Failed, e.to_string()))?;
        let _ = std::fs::remove_dir_all(self.bundle(id));
        self.containers.remove(id);
        self.saved(Response::Ok)
    }

    pub fn state(&self) -> Response {
        Response::State {
            containers: self.containers.values().map(|e| e.state.clone()).collect(),
        }
    }

    /// Records a reaped child. Returns false when the pid is not one of our containers (an
    /// orphan we inherited as subreaper).
    pub fn exited(&mut self, pid: i32, exit_code: Option<i32>) -> bool {
        let Some(e) = self
            .containers
            .values_mut()
            .find(|e| e.state.pid == Some(pid) && e.state.status != Status::Exited)
        else {
            return false;
        };
        e.state.status = Status::Exited;
        e.state.exit_code = exit_code;
        e.state.finished_at = Some(now());
        e.state.oom_killed = cgroup::oom_killed(Path::new(CGROUP_ROOT), &e.state.cgroup_path);
        e.pidfd = None;
        if let Err(err) = self.save() {
            tracing::error!(%err, "recording exit of pid {pid}");
        }
        true
    }

    /// Writes what was read from a container's pipe; an empty chunk means EOF.
    pub fn log(&mut self, id: &str, stream: Stream, chunk: &[u8]) {
        let Some(e) = self.containers.get_mut(id) else {
            return;
        };
        super::attach::forward(&mut e.attached, stream, chunk);
        let Some(log) = e.log.as_mut() else { return };
        let ts = timestamp();
        let res = if chunk.is_empty() {
            e.pipes[stream as usize] = None;
            log.finish(stream, &ts)
        } else {
            log.write_chunk(stream, chunk, &ts)
        };
        // A full disk must not stop the shim; the container keeps running, lines are lost.
        if let Err(err) = res {
            tracing::warn!(%err, "dropping log output of {id}");
        }
    }

    /// Signals every live container: `created` to those that never started (their init
    /// still has the shim's signals blocked, so only SIGKILL reaches it), `running` to the
    /// others.
    pub fn signal_all(&self, created: Signal, running: Signal) {
        for e in self.containers.values() {
            let sig = match e.state.status {
                Status::Created => created,
                Status::Running => running,
                Status::Exited => continue,
            };
            let res = match (&e.pidfd, e.state.pid) {
                (Some(fd), _) => pidfd_send_signal(fd, sig),
                (None, Some(pid)) => kill(Pid::from_raw(pid), sig),
                (None, None) => continue,
            };
            if let Err(err) = res {
                tracing::warn!(%err, "signal {sig} to container {}", e.state.id);
            }
        }
    }

    /// Containers whose process is still alive (Created or Running).
    pub fn live(&self) -> impl Iterator<Item = &ContainerState> {
        self.containers
            .values()
            .map(|e| &e.state)
            .filter(|s| s.status != Status::Exited)
    }

    /// Final clean-up of a shutdown: every container removed, libcontainer's root, the
    /// bundles and the state file deleted.
    pub fn remove_all(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        let root = Path::new(CGROUP_ROOT);
        for id in ids {
            let Some(e) = self.containers.remove(&id) else {
                continue;
            };
            if let Err(err) = runtime::delete(&self.state_root, &id, root, &e.state.cgroup_path) {
                errors.push(err.to_string());
            }
            cgroup::remove_empty_parents(root, &e.state.cgroup_path);
        }
        for dir in [self.state_root.clone(), self.dir.join("bundles")] {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    errors.push(format!("remove {}: {e}", dir.display()));
                }
            }
        }
        if let Err(e) = state::remove(&self.dir) {
            errors.push(e.to_string());
        }
        errors
    }
}

/// Clamps RLIMIT_NOFILE to what this process can grant: without CAP_SYS_RESOURCE (some
/// hosts drop it), asking for more than our own hard limit fails the whole create with EPERM.
fn with_reachable_nofile(spec: &ContainerSpec) -> ContainerSpec {
    let mut spec = spec.clone();
    let want = spec.nofile_limit.unwrap_or(spec::NOFILE_LIMIT);
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        if want > hard {
            tracing::info!(id = %spec.id, want, hard, "RLIMIT_NOFILE clamped to the shim's hard limit");
            spec.nofile_limit = Some(hard);
        }
    }
    spec
}

fn pidfd_send_signal(fd: &OwnedFd, sig: Signal) -> nix::Result<()> {
    // SAFETY: plain syscall on an fd we own; a null siginfo means "as kill(2) would".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig as i32,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    nix::errno::Errno::result(rc).map(drop)
}

/// A pidfd for a process that is not our child; it polls readable when the process exits.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
