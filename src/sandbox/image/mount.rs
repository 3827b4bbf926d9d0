//! Container root filesystems: an overlayfs mount at `<container_dir>/rootfs` with the
//! image's layers as lower dirs (top layer first in the option string) and
//! `<container_dir>/upper` + `<container_dir>/work` as the writable layer. Mounting is
//! idempotent (a restarted agent re-attaching finds it mounted) and so is unmounting. It
//! never writes into a lower dir and never removes the upper dir (the caller owns the
//! container directory's lifetime).

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

use super::error::ImageError;

/// overlayfs refuses more lower layers than this (OVL_MAX_STACK).
const MAX_LOWERS: usize = 500;
/// Mount options must fit in one page including the terminating NUL.
const MAX_OPTIONS: usize = 4095;

pub fn mount_overlay(lowers: &[PathBuf], container_dir: &Path) -> Result<PathBuf, ImageError> {
    let target = container_dir.join("rootfs");
    let bad = |reason: String| ImageError::Mount {
        target: target.clone(),
        reason,
    };
    let dir_str = container_dir
        .to_str()
        .ok_or_else(|| bad("path is not UTF-8".into()))?;
    // overlayfs separates options with ',' and lower dirs with ':'; neither can be escaped
    // reliably on every kernel we run on.
    if dir_str.contains([',', ':', '\\']) {
        return Err(bad("container dir contains ',', ':' or '\\'".into()));
    }
    if lowers.len() > MAX_LOWERS {
        return Err(bad(format!(
            "image has {} layers; overlayfs allows at most {MAX_LOWERS}",
            lowers.len()
        )));
    }
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    for d in [&upper, &work, &target] {
        fs::create_dir_all(d).map_err(|e| ImageError::io("create", d, e))?;
    }
    if is_mounted(&target, container_dir)? {
        return Ok(target);
    }
    let mut lowers: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
    if lowers.is_empty() {
        // An image with no layers still needs one lower dir.
        let empty = container_dir.join("empty");
        fs::create_dir_all(&empty).map_err(|e| ImageError::io("create", &empty, e))?;
        lowers.push(empty);
    }
    let tail = format!(",upperdir={},workdir={}", upper.display(), work.display());
    let plain = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let options = format!("lowerdir={plain}{tail}");
    // Long stacks do not fit in a page: name each lower dir by an O_PATH descriptor instead
    // (`/proc/self/fd/N` is ~17 bytes). The descriptors must stay open during mount(2).
    let mut _fds: Vec<OwnedFd> = Vec::new();
    let options = if options.len() <= MAX_OPTIONS {
        options
    } else {
        let mut short = Vec::with_capacity(lowers.len());
        for l in &lowers {
            let fd = open(
                l,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| ImageError::io("open", l, e.into()))?;
            // SAFETY: `open` just returned this descriptor and nothing else owns it.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            short.push(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            _fds.push(fd);
        }
        let options = format!("lowerdir={}{tail}", short.join(":"));
        if options.len() > MAX_OPTIONS {
            return Err(bad(format!(
                "mount options for {} layers exceed one page even with short paths",
                lowers.len()
            )));
        }
        options
    };
    mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| bad(format!("overlay mount failed: {e}")))?;
    Ok(target)
}

/// A mount point has a different device from its parent directory.
fn is_mounted(target: &Path, parent: &Path) -> Result<bool, ImageError> {
    let t = fs::metadata(target).map_err(|e| ImageError::io("stat", target, e))?;
    let p = fs::metadata(parent).map_err(|e| ImageError::io("stat", parent, e))?;
    Ok(t.dev() != p.dev())
}

pub fn unmount_overlay(container_dir: &Path) -> Result<(), ImageError> {
    let target = container_dir.join("rootfs");
    match umount2(&target, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        // Something still has it open (a lingering exec); detach so the container can go.
        Err(Errno::EBUSY) => {
            umount2(&target, MntFlags::MNT_DETACH).map_err(|e| ImageError::Mount {
                target: target.clone(),
                reason: format!("unmount (detach) failed: {e}"),
            })
        }
        Err(e) => Err(ImageError::Mount {
            target,
            reason: format!("unmount failed: {e}"),
        }),
    }
}
