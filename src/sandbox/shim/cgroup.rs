//! A container's cgroup as the shim handles it after libcontainer made it: what it says about
//! an OOM kill, killing what is left in it, removing it and the pod level above it.
//!
//! These are plain file operations on the cgroup filesystems, done here rather than through
//! libcgroups' manager, whose construction reads `/proc/self/mountinfo` once per controller
//! (a dozen times per container on a v1 host full of overlay mounts). This module never
//! creates a cgroup or writes a limit: that stays libcontainer's, at create.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// rmdir of a cgroup whose processes were just killed waits for them to leave it; a
/// SIGKILLed process is gone within milliseconds unless it is stuck in the kernel.
const REMOVE_ATTEMPTS: u32 = 8;
const FIRST_RETRY: Duration = Duration::from_millis(2);

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove cgroup {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The directories a cgroup path lives under: the root on a unified (v2) host, and each
/// mounted hierarchy (`cpu`, `memory`, ..., named ones) on a v1 or hybrid host, whose root is
/// a plain tmpfs holding no cgroup. Symlinks such as `cpu -> cpu,cpuacct` name a hierarchy
/// already listed.
pub fn hierarchies(cgroup_root: &Path) -> Vec<PathBuf> {
    // Only a cgroup2 filesystem has `cgroup.controllers` at its root.
    if cgroup_root.join("cgroup.controllers").exists() {
        return vec![cgroup_root.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(cgroup_root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// SIGKILLs every process left in the container's cgroup and removes it in every hierarchy,
/// as libcgroups' `remove` does. A cgroup already gone is not an error.
pub fn remove(cgroup_root: &Path, cgroup_path: &str) -> Result<(), CgroupError> {
    let rel = cgroup_path.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(());
    }
    let dirs: Vec<PathBuf> = hierarchies(cgroup_root)
        .into_iter()
        .map(|h| h.join(rel))
        .filter(|d| d.is_dir())
        .collect();
    for dir in &dirs {
        kill_all(dir)?;
    }
    for dir in &dirs {
        remove_dir(dir)?;
    }
    Ok(())
}

fn kill_all(dir: &Path) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.procs");
    let procs = match std::fs::read_to_string(&path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(CgroupError::Read { path, source }),
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // ESRCH: it exited since the read, which is what we want.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let mut delay = FIRST_RETRY;
    for attempt in 1..=REMOVE_ATTEMPTS {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // EBUSY while killed processes are still on their way out.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < REMOVE_ATTEMPTS => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Whether the kernel OOM-killed a process of this cgroup (v1 `memory.oom_control`, v2
/// `memory.events`). Read before the cgroup is removed.
pub fn oom_killed(cgroup_root: &Path, cgroup_path: &str) -> bool {
    let rel = cgroup_path.trim_start_matches('/');
    let candidates: [PathBuf; 2] = [
        cgroup_root
            .join("memory")
            .join(rel)
            .join("memory.oom_control"),
        cgroup_root.join(rel).join("memory.events"),
    ];
    candidates.iter().any(|p| {
        std::fs::read_to_string(p)
            .map(|text| {
                text.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
            .unwrap_or(false)
    })
}

/// libcgroups creates the whole cgroup path but removes only the leaf; the pod level
/// (`/k1s/pod<uid>` of `/k1s/pod<uid>/<id>`) goes when the pod's last container does. The
/// top level (`/k1s`) is shared by all pods and stays. Non-empty directories are left alone.
pub fn remove_empty_parents(cgroup_root: &Path, cgroup_path: &str) {
    let rel = Path::new(cgroup_path.trim_start_matches('/'));
    for h in hierarchies(cgroup_root) {
        for parent in rel.ancestors().skip(1) {
            if parent.components().count() < 2 {
                break;
            }
            // rmdir only succeeds on an empty cgroup, which is exactly the condition wanted.
            let _ = std::fs::remove_dir(h.join(parent));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake v1 layout: a tmpfs-like root with hierarchy directories.
    fn v1_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for h in ["cpu", "memory", "pids"] {
            std::fs::create_dir_all(root.path().join(h).join("k1s/pod1/c1")).unwrap();
        }
        root
    }

    #[test]
    fn remove_takes_the_leaf_in_every_hierarchy_and_parents_only_when_empty() {
        let root = v1_root();
        std::fs::create_dir_all(root.path().join("memory/k1s/pod1/c2")).unwrap();
        remove(root.path(), "/k1s/pod1/c1").unwrap();
        for h in ["cpu", "memory", "pids"] {
            assert!(!root.path().join(h).join("k1s/pod1/c1").exists(), "{h}");
        }
        // Gone already: still fine.
        remove(root.path(), "/k1s/pod1/c1").unwrap();
        remove_empty_parents(root.path(), "/k1s/pod1/c1");
        assert!(!root.path().join("cpu/k1s/pod1").exists());
        assert!(root.path().join("memory/k1s/pod1/c2").exists());
        assert!(root.path().join("cpu/k1s").exists(), "the top level stays");
    }

    #[test]
    fn v1_hierarchies_are_the_mounted_directories_not_the_root_or_symlinks() {
        let root = v1_root();
        std::os::unix::fs::symlink("cpu", root.path().join("cpu,cpuacct")).unwrap();
        let mut found = hierarchies(root.path());
        found.sort();
        let want: Vec<PathBuf> = ["cpu", "memory", "pids"]
            .iter()
            .map(|h| root.path().join(h))
            .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn a_unified_root_is_its_own_only_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        std::fs::create_dir_all(root.path().join("system.slice")).unwrap();
        assert_eq!(hierarchies(root.path()), vec![root.path().to_path_buf()]);
    }

    #[test]
    fn a_non_empty_directory_is_an_error_not_a_hang() {
        let root = v1_root();
        // A plain directory with a child cannot be removed: ENOTEMPTY, reported at once.
        std::fs::create_dir_all(root.path().join("cpu/k1s/pod1/c1/sub")).unwrap();
        let err = remove(root.path(), "/k1s/pod1/c1").unwrap_err().to_string();
        assert!(err.contains("cpu/k1s/pod1/c1"), "{err}");
    }
}
