//! Noticing changes in the manifests directory: inotify on the directory, read through tokio
//! so no thread waits on it, reporting which names changed. A file counts as changed once it is
//! complete: closed after writing, renamed in or out, deleted, touched, or created as a
//! symlink; never at its creation or on each write, when a reader could see it half written
//! (and an empty file would prune every object it declared). When inotify cannot be used (no
//! watches left, the directory removed) it says so and the caller polls instead. It only
//! reports; it never reads the files.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// What changed since the last report.
#[derive(Debug, Default)]
pub struct Changes {
    /// File names in the directory.
    pub names: BTreeSet<String>,
    /// Events were lost (queue overflow) or the watch ended: look at everything.
    pub everything: bool,
    /// The watch itself is gone (the directory was removed or moved).
    pub gone: bool,
}

struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct DirWatch {
    fd: AsyncFd<Fd>,
    dir: std::path::PathBuf,
}

impl DirWatch {
    pub fn new(dir: &Path) -> std::io::Result<DirWatch> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        ino.add_watch(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_ATTRIB
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF,
        )?;
        // SAFETY: the Inotify owns its descriptor and is moved into the AsyncFd, which owns
        // it until dropped: the descriptor stays open and the same for the AsyncFd's lifetime.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(ino), Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(DirWatch {
            fd,
            dir: dir.to_path_buf(),
        })
    }

    /// Wait for the next batch of events.
    pub async fn next(&self) -> std::io::Result<Changes> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                Ok(Ok(events)) => return Ok(collect(&self.dir, events)),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Whatever else is already queued, without waiting.
    pub fn drain(&self, into: &mut Changes) {
        if let Ok(events) = self.fd.get_ref().0.read_events() {
            let more = collect(&self.dir, events);
            into.names.extend(more.names);
            into.everything |= more.everything;
            into.gone |= more.gone;
        }
    }
}

fn collect(dir: &Path, events: Vec<nix::sys::inotify::InotifyEvent>) -> Changes {
    let mut c = Changes::default();
    for e in events {
        if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            c.everything = true;
        }
        if e.mask.intersects(
            AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF,
        ) {
            c.gone = true;
            c.everything = true;
        }
        let Some(n) = e.name.as_ref().and_then(|n| n.to_str()) else {
            continue;
        };
        let complete = e.mask.intersects(
            AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_ATTRIB,
        ) || (e.mask.contains(AddWatchFlags::IN_CREATE)
            && std::fs::symlink_metadata(dir.join(n)).is_ok_and(|m| m.file_type().is_symlink()));
        if complete {
            c.names.insert(n.to_string());
        }
    }
    c
}
