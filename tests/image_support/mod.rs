//! Shared helpers of the integration tests.
#![allow(dead_code)]

pub mod hang;
pub mod registry;
pub mod slow_proxy;
pub mod tls;
pub mod token_proxy;

use std::path::{Path, PathBuf};

use k1s::sandbox::image::ImageStore;

/// Unmounts a container rootfs when the test ends, even when it fails.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = ImageStore::unmount_rootfs(&self.0);
    }
}

/// `registries.yaml` text mirroring `registry` (e.g. docker.io) to a plain-HTTP endpoint.
pub fn mirror_yaml(registry: &str, addr: &str) -> String {
    format!("mirrors:\n  \"{registry}\":\n    endpoint:\n      - \"http://{addr}\"\n")
}

pub fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}
