//! subPath mounts that a container cannot turn against the host. A volume's content belongs
//! to the pod, which may plant symlinks in it and swap them while the agent works, so a
//! subPath is never mounted by its path: the path is first resolved inside the volume
//! (in-volume symlinks allowed, escapes refused), then opened component by component with
//! `O_NOFOLLOW` from a descriptor of the volume root (one `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it), creating missing
//! directories with `mkdirat` beside those descriptors, and the open descriptor itself is
//! bind-mounted (`/proc/self/fd/N`) onto a target under the pod's directory, which the
//! container's mount then uses. A symlink swapped in after the check makes the open fail; it
//! can never redirect the mount. This module mounts and unmounts only under the pod's
//! `volume-subpaths` directory, and never deletes anything recursively there.

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Where the bound subPaths of a pod live, under its directory.
pub const DIR: &str = "volume-subpaths";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubPathError {
    #[error("subPath {sub:?} must be a relative path without '..'")]
    NotRelative { sub: String },
    #[error("subPath {sub:?} resolves outside its volume (through the symlink {link:?})")]
    Escapes { sub: String, link: String },
    #[error("subPath {sub:?}: {path:?} changed to a symlink while it was being mounted")]
    Raced { sub: String, path: String },
    #[error("subPath {sub:?}: {op} {path}: {errno}")]
    Os {
        sub: String,
        op: &'static str,
        path: String,
        errno: nix::errno::Errno,
    },
}

/// The relative path of `sub` inside the volume at `base` (canonical), with every existing
/// component's symlinks resolved on the host; missing components are kept as written. Errs
/// when a symlink leads out of the volume. Nothing is created.
pub fn resolve(base: &Path, sub: &str) -> Result<PathBuf, SubPathError> {
    if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
        return Err(SubPathError::NotRelative { sub: sub.into() });
    }
    let mut cur = base.to_path_buf();
    let mut parts = sub.split('/').filter(|p| !p.is_empty() && *p != ".");
    for part in parts.by_ref() {
        let next = cur.join(part);
        if std::fs::symlink_metadata(&next).is_err() {
            cur = next;
            break;
        }
        cur = std::fs::canonicalize(&next).map_err(|e| SubPathError::Os {
            sub: sub.into(),
            op: "resolve",
            path: next.display().to_string(),
            errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        if !cur.starts_with(base) {
            let link = next
                .strip_prefix(base)
                .unwrap_or(&next)
                .display()
                .to_string();
            return Err(SubPathError::Escapes {
                sub: sub.into(),
                link,
            });
        }
    }
    for part in parts {
        cur.push(part);
    }
    Ok(cur
        .strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_default())
}

/// Open `rel` (symlink-free, from [`resolve`]) beneath the directory `root`, creating the
/// missing directories, refusing any symlink met on the way. An `O_PATH` descriptor.
pub fn open_beneath(root: &OwnedFd, rel: &Path, sub: &str) -> Result<OwnedFd, SubPathError> {
    if let Some(fd) = openat2_beneath(root, rel) {
        return Ok(fd);
    }
    let os = |op: &'static str, path: &Path, errno| SubPathError::Os {
        sub: sub.into(),
        op,
        path: path.display().to_string(),
        errno,
    };
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut cur = dup(root).map_err(|e| os("dup", Path::new("."), e))?;
    let mut walked = PathBuf::new();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(SubPathError::NotRelative { sub: sub.into() });
        };
        walked.push(name);
        let fd = match openat(Some(cur.as_raw_fd()), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => {
                // mkdirat never follows a symlink at `name`: one put there meanwhile is EEXIST.
                match mkdirat(Some(cur.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(os("mkdir", &walked, e)),
                }
                openat(Some(cur.as_raw_fd()), name, flags, Mode::empty())
                    .map_err(|e| os("open", &walked, e))?
            }
            Err(e) => return Err(os("open", &walked, e)),
        };
        // SAFETY: openat returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = fstat(fd.as_raw_fd()).map_err(|e| os("stat", &walked, e))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            return Err(SubPathError::Raced {
                sub: sub.into(),
                path: walked.display().to_string(),
            });
        }
        cur = fd;
    }
    Ok(cur)
}

/// The kernel's own beneath-only, symlink-free open, in one call; None where the kernel lacks
/// openat2 or the path does not exist yet (the component walk creates it).
fn openat2_beneath(root: &OwnedFd, rel: &Path) -> Option<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(rel.as_os_str().as_bytes()).ok()?;
    let path = if rel.as_os_str().is_empty() {
        c".".to_owned()
    } else {
        path
    };
    // The kernel's `struct open_how` (libc's cannot be built outside libc).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 reads `path` and `how`, both alive for the call, and returns a new fd
    // or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    // SAFETY: a non-negative result is a descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, nix::errno::Errno> {
    fd.try_clone()
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

/// Prepare subPath `sub` of the volume at `root` for a container: resolved and opened
/// safely, then bound onto `target` (made a file or directory like the source). Returns
/// `target`, the path the container mounts.
pub fn bind(root: &Path, sub: &str, target: &Path) -> Result<PathBuf, SubPathError> {
    let os = |op: &'static str, path: &Path, errno| SubPathError::Os {
        sub: sub.into(),
        op,
        path: path.display().to_string(),
        errno,
    };
    let errno = |e: std::io::Error| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let base = std::fs::canonicalize(root).map_err(|e| os("resolve", root, errno(e)))?;
    let rel = resolve(&base, sub)?;
    let raw = nix::fcntl::open(
        &base,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| os("open", &base, e))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    let root_fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let fd = open_beneath(&root_fd, &rel, sub)?;
    let st = fstat(fd.as_raw_fd()).map_err(|e| os("stat", &rel, e))?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;

    // The target: what an earlier start of the container left is unmounted first.
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| os("mkdir", parent, errno(e)))?;
    }
    let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
    let made = if is_dir {
        std::fs::create_dir(target)
    } else {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(target)
            .map(drop)
    };
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(os("create", target, errno(e))),
    }
    let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    nix::mount::mount(
        Some(&source),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| os("bind-mount", target, e))?;
    Ok(target.to_path_buf())
}

/// Unmount and remove every bound subPath of the pod at `pod_dir`, never recursively: a
/// target still mounted makes this fail rather than reach into the volume behind it.
pub fn cleanup(pod_dir: &Path) -> std::io::Result<()> {
    let base = pod_dir.join(DIR);
    if !base.exists() {
        return Ok(());
    }
    for vol in read_dir(&base) {
        for container in read_dir(&vol) {
            for target in read_dir(&container) {
                let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
                if target.is_dir() {
                    std::fs::remove_dir(&target)?;
                } else {
                    std::fs::remove_file(&target)?;
                }
            }
            std::fs::remove_dir(&container)?;
        }
        std::fs::remove_dir(&vol)?;
    }
    std::fs::remove_dir(&base)
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_fd(p: &Path) -> OwnedFd {
        let raw = nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        unsafe { OwnedFd::from_raw_fd(raw) }
    }

    #[test]
    fn resolution_follows_links_inside_and_refuses_escapes() {
        let vol = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(vol.path()).unwrap();
        std::fs::create_dir(base.join("inner")).unwrap();
        std::os::unix::fs::symlink("inner", base.join("alias")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("escape")).unwrap();
        std::os::unix::fs::symlink("../..", base.join("up")).unwrap();
        assert_eq!(resolve(&base, "a/b").unwrap(), Path::new("a/b"));
        assert_eq!(resolve(&base, "alias/x").unwrap(), Path::new("inner/x"));
        assert_eq!(resolve(&base, "./alias").unwrap(), Path::new("inner"));
        for bad in ["escape", "escape/passwd", "up/etc"] {
            assert!(
                matches!(resolve(&base, bad), Err(SubPathError::Escapes { .. })),
                "{bad}"
            );
        }
        for bad in ["/etc", "a/../../etc", ".."] {
            assert!(
                matches!(resolve(&base, bad), Err(SubPathError::NotRelative { .. })),
                "{bad}"
            );
        }
    }

    /// The race made deterministic: the path is checked, then a component is swapped for a
    /// symlink to the host's /etc before the open. Both the kernel's openat2 and the
    /// component walk refuse it, and nothing is created outside.
    #[test]
    fn a_symlink_swapped_in_after_the_check_is_refused() {
        let vol = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(vol.path()).unwrap();
        std::fs::create_dir(base.join("data")).unwrap();
        let rel = resolve(&base, "data/new").unwrap();
        assert_eq!(rel, Path::new("data/new"));
        // The swap.
        std::fs::remove_dir(base.join("data")).unwrap();
        std::os::unix::fs::symlink(outside.path(), base.join("data")).unwrap();
        let root = root_fd(&base);
        assert!(openat2_beneath(&root, &rel).is_none());
        let err = open_beneath(&root, &rel, "data/new").unwrap_err();
        assert!(
            matches!(err, SubPathError::Raced { .. }) || matches!(err, SubPathError::Os { .. }),
            "{err}"
        );
        assert!(!outside.path().join("new").exists(), "created outside");
        // A symlink as the last component is refused too.
        let err = open_beneath(&root, Path::new("data"), "data").unwrap_err();
        assert!(matches!(err, SubPathError::Raced { .. }), "{err}");
    }

    #[test]
    fn missing_directories_are_made_beneath_the_root() {
        let vol = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(vol.path()).unwrap();
        let root = root_fd(&base);
        let fd = open_beneath(&root, Path::new("x/y/z"), "x/y/z").unwrap();
        let st = fstat(fd.as_raw_fd()).unwrap();
        assert_eq!(
            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT,
            SFlag::S_IFDIR
        );
        assert!(base.join("x/y/z").is_dir());
        // And the kernel's one-call open finds it now that it exists.
        assert!(openat2_beneath(&root, Path::new("x/y/z")).is_some());
    }
}
