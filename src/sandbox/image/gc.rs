//! Image garbage collection, kubelet style: when unpacked layers use more than the high
//! threshold, remove images nobody uses, least recently used first, until use is at most the
//! low threshold; then remove every layer no image refers to. It never removes an image in
//! the caller's in-use set, nor a layer pinned by a pull or import still in progress.

use std::collections::HashSet;
use std::fs;

use super::error::ImageError;
use super::layers::sync_dir;
use super::store::ImageStore;

pub(super) fn gc(
    store: &ImageStore,
    in_use: &HashSet<String>,
    high_bytes: u64,
    low_bytes: u64,
) -> Result<Vec<String>, ImageError> {
    // The in-use set may name images by id, tag or digest reference.
    let keep: HashSet<String> = in_use
        .iter()
        .filter_map(|s| store.lookup(s).map(|i| i.id))
        .collect();
    let layers = &store.inner.layers;
    let mut removed = Vec::new();
    let mut usage = store.disk_usage();
    if usage > high_bytes {
        let mut images = store
            .inner
            .images
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut candidates: Vec<(u64, String)> = images
            .values()
            .filter(|r| !keep.contains(&r.image.id))
            .map(|r| (r.last_used, r.image.id.clone()))
            .collect();
        candidates.sort();
        for (_, id) in candidates {
            if usage <= low_bytes {
                break;
            }
            let Some(record) = images.remove(&id) else {
                continue;
            };
            let path = store.record_path(&id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    images.insert(id, record);
                    return Err(ImageError::io("remove", &path, e));
                }
            }
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            let mine: HashSet<&String> = record.image.layers.iter().collect();
            let freed = layers.remove_where(|l| {
                mine.contains(&l.to_string())
                    && !images
                        .values()
                        .any(|r| r.image.layers.iter().any(|x| x == l))
            })?;
            usage = usage.saturating_sub(freed);
            removed.push(id);
        }
    }
    let images = store.inner.images.read().unwrap_or_else(|p| p.into_inner());
    let referenced: HashSet<&String> = images
        .values()
        .flat_map(|r| r.image.layers.iter())
        .collect();
    layers.remove_where(|l| !referenced.contains(&l.to_string()))?;
    Ok(removed)
}
