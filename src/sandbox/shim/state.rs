//! The pod directory's `state.json`: the shim's record of its containers (status, pid, exit
//! code, times), written atomically after every change.
//!
//! It is what a restarted agent reads when the shim is gone (the machine rebooted), and what a
//! restarted shim starts from, so both agree on the last known exit codes. This module only
//! reads and writes the file; the shim's loop decides what goes in it.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::protocol::ContainerState;

pub const STATE_FILE: &str = "state.json";

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodState {
    /// The kernel's boot id when written: pids from another boot mean nothing.
    #[serde(default)]
    pub boot_id: String,
    pub containers: Vec<ContainerState>,
}

/// `/proc/sys/kernel/random/boot_id`, or empty if unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("shim state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("shim state {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads `<dir>/state.json`; a missing file is an empty pod.
pub fn load(dir: &Path) -> Result<PodState, StateError> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path, source })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PodState::default()),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

/// Replaces `<dir>/state.json` so that a crash of the shim leaves either the old or the new
/// file: written aside, then renamed over it.
///
/// Not fsynced: the pod directory lives under `/run` (tmpfs), where a sync does nothing, and
/// its readers (a restarted shim, the agent) are on the same boot and read the page cache.
/// After a power loss the containers, their pids and the directory itself are gone, so no
/// reader could use a durable copy; runc treats its own `state.json` the same way. Syncing
/// cost two disk flushes per lifecycle step when the directory was on a disk.
pub fn save(dir: &Path, state: &PodState) -> Result<(), StateError> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    let bytes = serde_json::to_vec_pretty(state).map_err(|source| StateError::Corrupt {
        path: path.clone(),
        source,
    })?;
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&bytes).map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(())
}

pub fn remove(dir: &Path) -> Result<(), StateError> {
    let path = dir.join(STATE_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StateError::Io { path, source: e }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::shim::protocol::Status;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), PodState::default());
        let st = PodState {
            boot_id: boot_id(),
            containers: vec![ContainerState {
                id: "a".into(),
                status: Status::Exited,
                pid: Some(42),
                exit_code: Some(137),
                created_at: "2026-01-01T00:00:00Z".into(),
                started_at: None,
                finished_at: None,
                oom_killed: true,
                log_path: "/x/0.log".into(),
                cgroup_path: "/k1s/a".into(),
            }],
        };
        save(dir.path(), &st).unwrap();
        assert_eq!(load(dir.path()).unwrap(), st);
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
        remove(dir.path()).unwrap();
        remove(dir.path()).unwrap();
    }
}
