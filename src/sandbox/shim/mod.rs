//! The per-pod shim: `k1s shim --dir <pod-dir>`, a single-threaded process that starts the
//! pod's containers through libcontainer, is their parent and subreaper, writes their output
//! to CRI log files, records exit codes in `<pod-dir>/state.json`, and outlives the agent.
//!
//! This module owns the process's set-up (daemonizing, signals, the lock, the socket) and
//! the agent-side [`ShimClient`]. The shim side must never start a thread or a tokio runtime:
//! libcontainer clones the calling process. The agent side never calls libcontainer.
//!
//! It also starts processes inside running containers (exec) and hands out a container's
//! stdin and live output (attach); their stdio leaves the shim as fds passed over the
//! socket, so the agent streams them without the shim in the data path.
//!
//! Pod directory layout: `shim.sock` (requests), `shim.lock` (one shim per dir), `shim.log`
//! (the shim's own stderr), `state.json`, `state/` (libcontainer's root), `bundles/<id>/`,
//! and briefly `tty-<exec-id>.sock` while a tty exec's pty master is handed over.

mod attach;
mod cgroup;
mod client;
mod conn;
mod exec;
mod logs;
mod pod;
pub mod protocol;
mod runtime;
mod server;
pub mod session;
mod state;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::signal::{SigHandler, SigmaskHow, Signal};
use nix::unistd::{fork, ForkResult};

pub use client::{last_known_state, ShimClient, ShimError};
pub use logs::MAX_LINE_BYTES;
pub use protocol::{
    ContainerState, ErrorKind, ExecProcess, LogLimits, Request, Response, Status, Stdio,
};
pub use server::socket_path;
pub use state::StateError;

/// Entry point of `k1s shim --dir <pod-dir>`. Forks: the parent waits until the shim serves
/// (or failed, printing why to stderr) and exits; the child detaches into its own session
/// and serves until shut down. Must be called before the process starts any thread.
pub fn main(dir: &Path) -> ! {
    let (ready_r, ready_w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => fail(&format!("shim: readiness pipe: {e}")),
    };
    // SAFETY: the `shim` subcommand runs before any thread or runtime exists, so the child
    // is a complete copy of a single-threaded process.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {
            drop(ready_w);
            let mut msg = String::new();
            let _ = File::from(ready_r).read_to_string(&mut msg);
            if msg == "ok" {
                std::process::exit(0);
            }
            let msg = if msg.is_empty() {
                "shim exited during start-up".to_string()
            } else {
                msg
            };
            fail(&msg)
        }
        Ok(ForkResult::Child) => {
            drop(ready_r);
            let code = match serve(dir, ready_w) {
                Ok(()) => 0,
                Err(msg) => {
                    eprintln!("{msg}");
                    1
                }
            };
            std::process::exit(code)
        }
        Err(e) => fail(&format!("shim: fork: {e}")),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(1)
}

/// Sets the process up, reports readiness through `ready`, then runs the loop.
fn serve(dir: &Path, ready: OwnedFd) -> Result<(), String> {
    let mut ready = File::from(ready);
    let server = match setup(dir) {
        Ok(s) => s,
        Err(msg) => {
            let _ = ready.write_all(msg.as_bytes());
            return Err(msg);
        }
    };
    let _ = ready.write_all(b"ok");
    drop(ready);
    let (server, _lock) = server;
    server.run().map_err(|e| e.to_string())
}

type Ready = (server::Server, Flock<File>);

fn setup(dir: &Path) -> Result<Ready, String> {
    let ctx = |what: &str| {
        let what = format!("shim {}: {what}", dir.display());
        move |e: &dyn std::fmt::Display| format!("{what}: {e}")
    };
    std::fs::create_dir_all(dir).map_err(|e| ctx("create dir")(&e))?;

    // Our own session: a signal to the agent's process group must not reach the shim.
    nix::unistd::setsid().map_err(|e| ctx("setsid")(&e))?;
    redirect_stdio(dir).map_err(|e| ctx("redirect stdio to shim.log")(&e))?;

    let lock_path = dir.join("shim.lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| ctx("open shim.lock")(&e))?;
    let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| ctx("another shim already serves this pod (shim.lock)")(&e))?;

    raise_nofile();
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| ctx("set child subreaper")(&e))?;
    // SAFETY: SIG_IGN installs no handler code; no other thread exists.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }
        .map_err(|e| ctx("ignore SIGPIPE")(&e))?;
    // Blocked before any container exists, so no exit is missed; the signalfd takes them.
    nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&server::handled_signals()),
        None,
    )
    .map_err(|e| ctx("block signals")(&e))?;

    let pod = pod::Pod::open(dir).map_err(|e| ctx("load state")(&e))?;

    let sock = socket_path(dir);
    // Holding the lock, a leftover socket is a dead shim's.
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).map_err(|e| ctx(&format!("bind {}", sock.display()))(&e))?;
    let server = server::Server::new(pod, listener, sock).map_err(|e| ctx("start")(&e))?;
    Ok((server, lock))
}

/// Containers get RLIMIT_NOFILE 1048576 as under containerd when the shim may grant it.
fn raise_nofile() {
    use nix::sys::resource::{setrlimit, Resource};
    let max = crate::sandbox::spec::NOFILE_LIMIT;
    if setrlimit(Resource::RLIMIT_NOFILE, max, max).is_err() {
        tracing::info!("cannot raise RLIMIT_NOFILE to {max} (no CAP_SYS_RESOURCE); containers get the shim's limit");
    }
}

fn redirect_stdio(dir: &Path) -> std::io::Result<()> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shim.log"))?;
    let null = File::open("/dev/null")?;
    for (src, dst) in [
        (null.as_raw_fd(), 0),
        (log.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        nix::unistd::dup2(src, dst).map_err(std::io::Error::from)?;
    }
    Ok(())
}
