//! kubectl attach on the shim's side: handing an attacher the container's stdin and new
//! pipes that receive its output from now on, and copying each chunk of output to them.
//!
//! The container's own pipes and log stay `pod`'s; this module only fans output out. It
//! never blocks: an attacher that cannot keep up loses output (the log file keeps it all).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::logs::Stream;
use super::pod::Pod;
use super::protocol::{ErrorKind, Response, Status, Stdio};

impl Pod {
    /// `Attach`: new pipes that get the container's output from now on, and its stdin
    /// (a duplicate, or ours itself when `stdinOnce`, so the attacher's close is the EOF;
    /// for a terminal, its pty master, which also takes resizes).
    pub fn attach(&mut self, id: &str) -> super::exec::FdReply {
        let e = self.get(id)?;
        if e.state.status != Status::Running {
            return Err((
                ErrorKind::InvalidState,
                format!("container {id} is {:?}, not Running", e.state.status),
            ));
        }
        let failed = |what: &str, err: &dyn std::fmt::Display| {
            (ErrorKind::Failed, format!("attach to {id}: {what}: {err}"))
        };
        let mut fds = Vec::new();
        let mut names = Vec::new();
        if let Some(pty) = &e.pty {
            // A terminal's input is its master: the attacher writes there and resizes it.
            let dup = pty.try_clone().map_err(|err| failed("dup pty", &err))?;
            fds.push(dup);
            names.push(Stdio::Stdin);
        } else if e.stdin_once {
            if let Some(fd) = e.stdin.take() {
                fds.push(fd);
                names.push(Stdio::Stdin);
            }
        } else if let Some(fd) = &e.stdin {
            let dup = fd.try_clone().map_err(|err| failed("dup stdin", &err))?;
            fds.push(dup);
            names.push(Stdio::Stdin);
        }
        let mut ours = [None, None];
        for (i, name) in [Stdio::Stdout, Stdio::Stderr].into_iter().enumerate() {
            let (r, w) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|err| failed("pipe", &err))?;
            fcntl(w.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                .map_err(|err| failed("pipe", &err))?;
            // A stream already at EOF gives the attacher EOF at once.
            if e.pipes[i].is_some() {
                ours[i] = Some(w);
            }
            fds.push(r);
            names.push(name);
        }
        e.attached.push(ours);
        Ok((Response::Attached { fds: names }, fds))
    }
}

/// Copies a chunk of output to the attachers without ever blocking: an attacher too slow to
/// take it loses the chunk (the log file still has it); one that hung up is dropped.
pub(super) fn forward(attached: &mut Vec<[Option<OwnedFd>; 2]>, stream: Stream, chunk: &[u8]) {
    for a in attached.iter_mut() {
        let slot = &mut a[stream as usize];
        let Some(fd) = slot.as_ref() else { continue };
        if chunk.is_empty() {
            *slot = None;
            continue;
        }
        let mut rest = chunk;
        while !rest.is_empty() {
            match nix::unistd::write(fd, rest) {
                Ok(n) => rest = &rest[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    *slot = None;
                    break;
                }
            }
        }
    }
    attached.retain(|a| a.iter().any(Option::is_some));
}
