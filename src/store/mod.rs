//! The revisioned key-value store that stands in for etcd: string keys, byte values, one
//! global revision, history for reads at past revisions, watches, and compaction. It owns
//! durability (a write returns only once it is on disk) and the on-disk layout; it must never
//! know about Kubernetes types or value encodings, and must never block writers on slow
//! watchers.
//!
//! Layout (see `keys`): every backend stores one ordered keyspace. Each write is one atomic
//! batch of three records: the new version in history (`key 0x00 rev`, holding the value;
//! deletes write a small tombstone), a 16-byte current pointer (`key -> create, mod`) used for
//! compare-and-swap and counting, and a revision-log record (`rev -> kind, time, key`) for
//! watch catch-up and age-based compaction. Values are therefore written once. Reads go to
//! history at a durable revision, so lists are consistent snapshots even during writes.
//!
//! Durability: writers apply under a short lock and then wait for the flusher thread, which
//! flushes once for all writes applied so far (group commit) before publishing their events.

mod backend;
mod compact;
mod core;
mod keys;
mod read;
mod sled_backend;
mod watch;

use self::core::{Core, Write};
use bytes::Bytes;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use self::watch::WatchStream;

pub type Revision = u64;

/// Default sled page-cache size for edge devices.
pub const DEFAULT_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// Default history retention of the background compactor.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub kind: EventKind,
    /// For a delete: the last value, with `mod_revision` set to the delete's revision.
    pub kv: KeyValue,
    /// The value before this event; `None` for a create.
    pub prev: Option<KeyValue>,
}

pub struct ListResult {
    pub kvs: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: Revision,
    pub more: bool,
    /// Keys after this page; exact unless keys changed after `revision`.
    pub remaining: u64,
}

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    #[error("conflict on key {key}: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is in the future (current revision {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("store backend: {0}")]
    Backend(String),
    #[error("store is closed")]
    Closed,
}

/// Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Handle>,
}

/// Owned by the `Store` clones only (the flusher thread holds just the core), so dropping the
/// last clone ends watches and stops the flusher.
struct Handle {
    core: Arc<Core>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.core.end_watches();
        self.core.stop_flusher();
        // Joined so that the database is released (sled holds a file lock) by the time the
        // last clone is gone, and a reopen right after succeeds.
        if let Some(t) = self.flusher.take() {
            if t.join().is_err() {
                tracing::error!("store flusher thread panicked");
            }
        }
    }
}

impl Store {
    /// Opens (creating if needed) a sled store in `path` with a page cache of `cache_bytes`
    /// (`DEFAULT_CACHE_BYTES` suits edge devices).
    pub fn open_sled(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Store::with_backend(Box::new(sled_backend::SledBackend::open(
            path,
            cache_bytes,
        )?))
    }

    /// A volatile store with the same semantics.
    pub fn memory() -> Store {
        // An empty in-memory keyspace cannot fail to load; only spawning the flusher thread
        // can, which `std::thread::spawn` treats as fatal too.
        match Store::with_backend(Box::<backend::MemoryBackend>::default()) {
            Ok(s) => s,
            Err(e) => panic!("cannot start in-memory store: {e}"),
        }
    }

    fn with_backend(backend: Box<dyn backend::Backend>) -> Result<Store, StoreError> {
        let core = Arc::new(Core::new(backend)?);
        let flusher = core.clone();
        let thread = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || flusher.run_flusher())
            .map_err(|e| StoreError::Backend(format!("spawn flusher thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Handle {
                core,
                flusher: Some(thread),
            }),
        })
    }

    fn core(&self) -> &Arc<Core> {
        &self.inner.core
    }

    pub async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        self.core().write(key, Write::Create(value)).await
    }

    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let core = self.core();
        core.check_open()?;
        keys::check_key(key)?;
        let _gate = core.read_gate()?;
        core.get_at(key.as_bytes(), core.durable())
    }

    /// Keys starting with `prefix`, in key order, after `start_after`, at most `limit`
    /// (0 = no limit), as of `revision` (`None` or 0 = current).
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListResult, StoreError> {
        self.core().list(prefix, start_after, limit, revision)
    }

    pub async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        self.core().count(prefix)
    }

    /// Compare-and-swap on `mod_revision`.
    pub async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<KeyValue, StoreError> {
        self.core().write(key, Write::Update(value, expected)).await
    }

    /// Returns the deleted value with `mod_revision` set to the deletion's revision.
    pub async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        self.core().write(key, Write::Delete(expected)).await
    }

    /// Events with revision above `from` (0 = only new events) for keys under `prefix`.
    pub fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        watch::watch(self.core().clone(), prefix, from)
    }

    /// The newest durable revision.
    pub fn current_revision(&self) -> Revision {
        self.core().durable()
    }

    pub fn compacted_revision(&self) -> Revision {
        self.core().compacted()
    }

    /// Drops history at or below `revision` except what the state at `revision` needs.
    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let core = self.core().clone();
        core.check_open()?;
        let _one_at_a_time = core.compact_lock.lock().await;
        let worker = core.clone();
        tokio::task::spawn_blocking(move || worker.compact_blocking(revision))
            .await
            .map_err(|e| StoreError::Backend(format!("compaction task failed: {e}")))?
    }

    /// Every `interval`, compacts to the newest revision committed more than `retention` ago,
    /// until `cancel` fires or the store is closed or dropped.
    pub fn spawn_compactor(
        &self,
        interval: Duration,
        retention: Duration,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        // Weak, so a running compactor does not keep a dropped store alive.
        let weak: Weak<Handle> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                let store = Store { inner };
                match store.compact_by_age(retention).await {
                    Ok(()) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => tracing::warn!(error = %e, "store compaction failed"),
                }
            }
        })
    }

    async fn compact_by_age(&self, retention: Duration) -> Result<(), StoreError> {
        let core = self.core().clone();
        core.check_open()?;
        let cutoff = core::now_ms().saturating_sub(retention.as_millis() as u64);
        let _one_at_a_time = core.compact_lock.lock().await;
        let worker = core.clone();
        tokio::task::spawn_blocking(move || match worker.revision_before(cutoff)? {
            Some(rev) if rev > worker.compacted() => worker.compact_blocking(rev),
            _ => Ok(()),
        })
        .await
        .map_err(|e| StoreError::Backend(format!("compaction task failed: {e}")))?
    }

    /// sled: bytes under the database directory; memory: approximate bytes held.
    pub async fn size_on_disk(&self) -> u64 {
        self.core().backend.size()
    }

    /// Waits for pending writes to be durable, flushes, and ends watch streams with `Closed`.
    /// The database stays open (and locked) until the last clone and watch stream are dropped.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.core().close().await
    }
}
