//! Pinned network namespaces: a pod's network namespace lives as a bind mount of an nsfs file on
//! a path such as `/run/k1s/netns/<pod-uid>`, so it outlives every process in it and there is no
//! pause container. This module creates, probes and removes those pins. It must never change the
//! network namespace of a thread it did not create: the `unshare` happens on a dedicated,
//! short-lived std thread, never on a tokio worker or the main thread, because a thread that
//! switched namespace would silently move every task scheduled on it later.
//!
//! The functions block (a thread spawn and a few syscalls, well under a millisecond); async
//! callers run them through `spawn_blocking`. Concurrent `create` calls for the same path are
//! not coordinated here: the node agent handles one pod on one worker at a time.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

use crate::cni::error::CniError;

/// Creates a new network namespace and pins it on `path`. If `path` already pins a namespace,
/// that one is kept and returned: calling `create` again after a crash is safe.
pub fn create(path: &Path) -> Result<PathBuf, CniError> {
    check_path(path)?;
    if exists(path) {
        return Ok(path.to_path_buf());
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| CniError::io("create directory", dir, e))?;
    make_private_mount(dir)?;

    // The mount point must exist as a file; a leftover empty file from a crash is reused.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(CniError::io("create mount point", path, e)),
    }

    let target = path.to_path_buf();
    let pinned = std::thread::Builder::new()
        .name("k1s-netns".into())
        .spawn(move || pin_new_netns(&target))
        .map_err(|e| CniError::io("spawn namespace thread for", path, e))?
        .join()
        .unwrap_or_else(|_| {
            Err(CniError::io(
                "pin",
                path,
                io::Error::other("namespace thread panicked"),
            ))
        });
    if let Err(e) = pinned {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(path.to_path_buf())
}

/// Runs on its own thread, which exits right after: the new namespace stays alive only through
/// the bind mount.
fn pin_new_netns(path: &Path) -> Result<(), CniError> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|source| CniError::Netns {
        op: "unshare",
        path: path.to_path_buf(),
        source,
    })?;
    let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
    mount(
        Some(own.as_str()),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| CniError::Netns {
        op: "bind-mount",
        path: path.to_path_buf(),
        source,
    })
}

/// True if `path` is a pinned namespace (an nsfs mount), false if it is missing or a plain file.
pub fn exists(path: &Path) -> bool {
    matches!(statfs(path), Ok(fs) if fs.filesystem_type() == NSFS_MAGIC)
}

/// The namespace's inode number, which identifies it for as long as it lives: a namespace
/// re-created on the same path (after a reboot) has a different one. None if not pinned.
pub fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    if !exists(path) {
        return None;
    }
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Unpins the namespace and deletes the mount point. Already gone is fine. The namespace itself
/// dies when the last process in it exits.
pub fn remove(path: &Path) -> Result<(), CniError> {
    check_path(path)?;
    // A crash between two creates can stack mounts; peel them all off.
    for _ in 0..8 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => break,
            Err(source) => {
                return Err(CniError::Netns {
                    op: "unmount",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CniError::io("remove mount point", path, e)),
    }
}

/// Unmounts the private mount `create` made of a namespace directory. For uninstall and tests:
/// the agent leaves its directory mounted, as `ip netns` leaves `/run/netns`.
pub fn release_dir(dir: &Path) -> Result<(), CniError> {
    match umount2(dir, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(source) => Err(CniError::Netns {
            op: "unmount directory of",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Makes `dir` a mount point of its own with private propagation. On hosts whose root is shared
/// (systemd), a pin made under a shared mount would be copied into every peer mount namespace,
/// where our unmount would not release it; a private directory keeps the pin in one place.
/// Container mount namespaces copy it, but the runtime's pivot_root detaches the old root.
fn make_private_mount(dir: &Path) -> Result<(), CniError> {
    let private = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match private() {
        Ok(()) => return Ok(()),
        // EINVAL: not a mount point yet.
        Err(Errno::EINVAL) => {}
        Err(source) => {
            return Err(CniError::Netns {
                op: "make private the directory of",
                path: dir.to_path_buf(),
                source,
            })
        }
    }
    mount(
        Some(dir),
        dir,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .and_then(|()| private())
    .map_err(|source| CniError::Netns {
        op: "bind-mount the directory of",
        path: dir.to_path_buf(),
        source,
    })
}

fn check_path(path: &Path) -> Result<(), CniError> {
    let shown = || path.display().to_string();
    if !path.is_absolute() {
        return Err(CniError::invalid(
            "network namespace path",
            shown(),
            "must be absolute",
        ));
    }
    if path.file_name().is_none() || path.components().any(|c| c.as_os_str() == "..") {
        return Err(CniError::invalid(
            "network namespace path",
            shown(),
            "must name a file and contain no '..'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_relative_and_dotdot_paths() {
        assert!(matches!(
            create(Path::new("run/ns")),
            Err(CniError::InvalidInput { .. })
        ));
        assert!(matches!(
            remove(Path::new("/run/../etc/passwd")),
            Err(CniError::InvalidInput { .. })
        ));
    }

    #[test]
    fn missing_path_does_not_exist() {
        assert!(!exists(Path::new("/nonexistent/k1s/netns/x")));
        assert!(!exists(Path::new("/etc/hostname")));
    }
}
