//! Image garbage collection with upstream's default thresholds: when the filesystem holding
//! the image store is over 85% full, images no pod on this node uses are removed, least
//! recently used first, until it would be at 80%. Checked every five minutes.

use super::Runtime;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const HIGH_PERCENT: u64 = 85;
const LOW_PERCENT: u64 = 80;
const EVERY: Duration = Duration::from_secs(300);

/// How many bytes of images to keep, given the filesystem's size and free space and what
/// the images take; None when nothing needs freeing.
pub fn keep_bytes(total: u64, avail: u64, images: u64) -> Option<u64> {
    let used = total.saturating_sub(avail);
    if used.saturating_mul(100) <= total.saturating_mul(HIGH_PERCENT) {
        return None;
    }
    let to_free = used.saturating_sub(total / 100 * LOW_PERCENT);
    Some(images.saturating_sub(to_free))
}

pub async fn run(rt: Arc<Runtime>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let Ok(fs) = nix::sys::statvfs::statvfs(rt.images.root()) else {
            continue;
        };
        // The field types are narrower on 32-bit ARM, hence the casts.
        #[allow(clippy::unnecessary_cast)]
        let (total, avail) = (
            fs.blocks() as u64 * fs.fragment_size() as u64,
            fs.blocks_available() as u64 * fs.fragment_size() as u64,
        );
        let Some(keep) = keep_bytes(total, avail, rt.images.disk_usage()) else {
            continue;
        };
        let api: Api<Pod> = Api::all(rt.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={}", rt.node_name));
        let Ok(pods) = api.list(&lp).await else {
            continue;
        };
        let in_use: HashSet<String> = pods
            .items
            .iter()
            .filter_map(|p| p.spec.as_ref())
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .filter_map(|c| c.image.clone())
            .collect();
        match rt.images.gc(&in_use, 0, keep) {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(images = removed.len(), "removed unused images")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "image garbage collection"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_only_past_the_high_mark_and_down_to_the_low_one() {
        let gib = 1u64 << 30;
        assert_eq!(keep_bytes(100 * gib, 50 * gib, 10 * gib), None);
        assert_eq!(keep_bytes(100 * gib, 15 * gib, 10 * gib), None);
        // 90% used: free 10% of the disk, from 30 GiB of images.
        let keep = keep_bytes(100 * gib, 10 * gib, 30 * gib).unwrap();
        assert!((19 * gib..=21 * gib).contains(&keep), "{keep}");
        // Images smaller than what must go: keep none.
        assert_eq!(keep_bytes(100 * gib, 5 * gib, gib), Some(0));
    }
}
