//! The content-addressed layer store: `<root>/layers/sha256/<diffid>/` is one unpacked layer
//! (an overlayfs lower dir) shared by every image, with `<diffid>.json` beside it recording
//! its size. A layer is unpacked into `<root>/tmp/` and renamed into place only once complete
//! and synced, so a crash never leaves a half layer visible; concurrent requests for the same
//! layer wait on one another and the work is done once. It never decides which layers are
//! needed: the image store asks, and garbage collection removes.

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ImageError;
use super::manifest::digest_hex;
use super::unpack::{decompress, unpack_layer};

/// Async locks by key (layer diff id, image reference), so concurrent pulls of the same thing
/// do the work once. Entries vanish when nobody holds them.
#[derive(Default)]
pub struct KeyedLocks {
    map: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, w| w.strong_count() > 0);
            match map.get(key).and_then(Weak::upgrade) {
                Some(m) => m,
                None => {
                    let m = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key.to_string(), Arc::downgrade(&m));
                    m
                }
            }
        };
        m.lock_owned().await
    }
}

#[derive(Serialize, Deserialize)]
struct LayerMeta {
    size: u64,
}

pub struct LayerStore {
    dir: PathBuf,
    tmp: PathBuf,
    locks: KeyedLocks,
    counter: AtomicU64,
    /// Layers an unfinished pull or import relies on, with a count; GC leaves them alone.
    pins: Mutex<HashMap<String, usize>>,
}

/// Keeps layers pinned until dropped.
pub struct PinGuard {
    store: Arc<LayerStore>,
    ids: Vec<String>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut pins = self.store.pins.lock().unwrap_or_else(|p| p.into_inner());
        for id in &self.ids {
            if let Some(n) = pins.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(id);
                }
            }
        }
    }
}

impl LayerStore {
    pub fn open(dir: PathBuf, tmp: PathBuf) -> Result<Self, ImageError> {
        fs::create_dir_all(&dir).map_err(|e| ImageError::io("create", &dir, e))?;
        // A size file without its layer is from a crash between the two renames.
        let rd = fs::read_dir(&dir).map_err(|e| ImageError::io("read", &dir, e))?;
        for entry in rd.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "json") && !p.with_extension("").is_dir() {
                let _ = fs::remove_file(&p);
            }
        }
        Ok(LayerStore {
            dir,
            tmp,
            locks: KeyedLocks::default(),
            counter: AtomicU64::new(0),
            pins: Mutex::new(HashMap::new()),
        })
    }

    /// Pin `ids` against garbage collection until the guard drops. Pin before checking
    /// whether a layer is present, so GC cannot remove it between the check and the commit.
    pub fn pin(self: &Arc<Self>, ids: &[String]) -> PinGuard {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            *pins.entry(id.clone()).or_insert(0) += 1;
        }
        PinGuard {
            store: self.clone(),
            ids: ids.to_vec(),
        }
    }

    /// Remove every layer for which `unwanted` says so and that nobody has pinned; returns
    /// the bytes freed. Holding the pin lock throughout keeps new pins out meanwhile.
    pub fn remove_where(&self, unwanted: impl Fn(&str) -> bool) -> Result<u64, ImageError> {
        let pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        let mut freed = 0;
        for id in self.list() {
            if pins.contains_key(&id) || !unwanted(&id) {
                continue;
            }
            freed += self.size(&id).unwrap_or(0);
            self.remove(&id)?;
        }
        Ok(freed)
    }

    pub fn path(&self, diff_id: &str) -> PathBuf {
        self.dir.join(digest_hex(diff_id))
    }

    fn meta_path(&self, diff_id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", digest_hex(diff_id)))
    }

    /// The layer's unpacked size, if it is fully present.
    pub fn size(&self, diff_id: &str) -> Option<u64> {
        if !self.path(diff_id).is_dir() {
            return None;
        }
        let bytes = fs::read(self.meta_path(diff_id)).ok()?;
        serde_json::from_slice::<LayerMeta>(&bytes)
            .ok()
            .map(|m| m.size)
    }

    /// A fresh name under the store's temp dir.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Make sure layer `diff_id` is present. If not, `fetch` produces the blob file (removed
    /// afterwards when `temporary`), which is unpacked and checked against the diff id (and
    /// against `blob_digest`, when the caller has not already verified it).
    pub async fn ensure<F, Fut>(
        self: &Arc<Self>,
        diff_id: &str,
        blob_digest: Option<String>,
        fetch: F,
    ) -> Result<u64, ImageError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(PathBuf, bool), ImageError>>,
    {
        let _guard = self.locks.lock(diff_id).await;
        if let Some(size) = self.size(diff_id) {
            return Ok(size);
        }
        let (blob, temporary) = fetch().await?;
        let this = self.clone();
        let diff = diff_id.to_string();
        let file = blob.clone();
        let result =
            tokio::task::spawn_blocking(move || this.install(&file, &diff, blob_digest.as_deref()))
                .await
                .map_err(|e| ImageError::Layer {
                    digest: diff_id.to_string(),
                    reason: format!("unpack task failed: {e}"),
                })
                .and_then(|r| r);
        if temporary {
            let _ = fs::remove_file(&blob);
        }
        result
    }

    /// Unpack `blob` into place as layer `diff_id` (blocking).
    fn install(
        &self,
        blob: &Path,
        diff_id: &str,
        blob_digest: Option<&str>,
    ) -> Result<u64, ImageError> {
        if let Some(expected) = blob_digest {
            let actual = hash_file(blob)?;
            if actual != expected {
                return Err(ImageError::DigestMismatch {
                    what: "layer blob".into(),
                    digest: expected.to_string(),
                    actual,
                });
            }
        }
        let staging = self.temp_path("layer");
        fs::create_dir(&staging).map_err(|e| ImageError::io("create", &staging, e))?;
        let result = self.unpack_and_commit(blob, diff_id, &staging);
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }

    fn unpack_and_commit(
        &self,
        blob: &Path,
        diff_id: &str,
        staging: &Path,
    ) -> Result<u64, ImageError> {
        let file = fs::File::open(blob).map_err(|e| ImageError::io("open", blob, e))?;
        let reader = decompress(std::io::BufReader::new(file), diff_id)?;
        let unpacked = unpack_layer(reader, staging, diff_id)?;
        if unpacked.diff_id != diff_id {
            return Err(ImageError::DigestMismatch {
                what: "layer (uncompressed)".into(),
                digest: diff_id.to_string(),
                actual: unpacked.diff_id,
            });
        }
        let meta = serde_json::to_vec(&LayerMeta {
            size: unpacked.size,
        })
        .map_err(|e| ImageError::Layer {
            digest: diff_id.to_string(),
            reason: e.to_string(),
        })?;
        write_durable(&self.meta_path(diff_id), &meta)?;
        // One syncfs flushes every file of the layer before it becomes visible.
        let dir = fs::File::open(staging).map_err(|e| ImageError::io("open", staging, e))?;
        nix::unistd::syncfs(dir.as_raw_fd())
            .map_err(|e| ImageError::io("syncfs", staging, e.into()))?;
        let target = self.path(diff_id);
        match fs::rename(staging, &target) {
            Ok(()) => {}
            // Another process (an earlier k1s) got there first: keep theirs.
            Err(_) if target.is_dir() => {
                let _ = fs::remove_dir_all(staging);
            }
            Err(e) => return Err(ImageError::io("rename", &target, e)),
        }
        sync_dir(&self.dir)?;
        Ok(unpacked.size)
    }

    /// All layers present, by diff id.
    pub fn list(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().to_str().map(|n| format!("sha256:{n}")))
            .collect()
    }

    fn remove(&self, diff_id: &str) -> Result<(), ImageError> {
        // Rename first so a crash mid-delete never leaves a partial layer under its real name.
        let doomed = self.temp_path("remove");
        let path = self.path(diff_id);
        match fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io("rename", &path, e)),
        }
        let _ = fs::remove_file(self.meta_path(diff_id));
        fs::remove_dir_all(&doomed)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| ImageError::io("remove", &doomed, e))
    }
}

pub fn hash_file(path: &Path) -> Result<String, ImageError> {
    let mut f = fs::File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| ImageError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{:x}", h.finalize()))
}

/// Write a small file so that it is complete on disk before it is visible under its name.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| ImageError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| ImageError::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| ImageError::io("rename", path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io("sync", dir, e))
}
