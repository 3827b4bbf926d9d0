//! The storage seam: an ordered byte keyspace with atomic batches and an explicit flush.
//!
//! Backends know nothing of revisions or events; everything above raw bytes (revision
//! assignment, history, watch, compaction) lives in the shared core so both backends behave
//! the same. Calls are synchronous: they are short in-memory operations except `flush`,
//! which the core only calls from its dedicated flusher thread or a blocking task.

use super::StoreError;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// One mutation inside an atomic batch.
pub(crate) enum Op {
    Put(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

pub(crate) type Entry = (Vec<u8>, Bytes);

pub(crate) trait Backend: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    /// The smallest entry in `[lo, hi)`.
    fn first(&self, lo: &[u8], hi: &[u8]) -> Result<Option<Entry>, StoreError>;
    /// The largest entry in `[lo, hi)`.
    fn last(&self, lo: &[u8], hi: &[u8]) -> Result<Option<Entry>, StoreError>;
    /// Up to `limit` entries of `[lo, hi)` in key order.
    fn scan(&self, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// Number of keys in `[lo, hi)`.
    fn count(&self, lo: &[u8], hi: &[u8]) -> Result<u64, StoreError>;
    /// Applies every op or none, also across a crash.
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Returns once everything applied before the call is durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Bytes used: on disk for persistent backends, an estimate of the data for memory.
    fn size(&self) -> u64;
}

/// Volatile backend: a sorted map behind a lock. Values are `Bytes`, so reads never copy.
#[derive(Default)]
pub(crate) struct MemoryBackend {
    map: RwLock<BTreeMap<Vec<u8>, Bytes>>,
    bytes: AtomicU64,
}

impl MemoryBackend {
    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Bytes>>, StoreError> {
        self.map
            .read()
            .map_err(|_| StoreError::Backend("memory backend lock poisoned".into()))
    }
}

/// `[lo, hi)` in the form `BTreeMap::range` accepts for unsized `[u8]` bounds.
fn span<'a>(lo: &'a [u8], hi: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (Bound::Included(lo), Bound::Excluded(hi))
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.read()?.get(key).cloned())
    }

    fn first(&self, lo: &[u8], hi: &[u8]) -> Result<Option<Entry>, StoreError> {
        if lo >= hi {
            return Ok(None);
        }
        Ok(self
            .read()?
            .range::<[u8], _>(span(lo, hi))
            .next()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn last(&self, lo: &[u8], hi: &[u8]) -> Result<Option<Entry>, StoreError> {
        if lo >= hi {
            return Ok(None);
        }
        Ok(self
            .read()?
            .range::<[u8], _>(span(lo, hi))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn scan(&self, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        let map = self.read()?;
        let it = map
            .range::<[u8], _>(span(lo, hi))
            .map(|(k, v)| (k.clone(), v.clone()));
        Ok(if limit == 0 {
            it.collect()
        } else {
            it.take(limit).collect()
        })
    }

    fn count(&self, lo: &[u8], hi: &[u8]) -> Result<u64, StoreError> {
        if lo >= hi {
            return Ok(0);
        }
        Ok(self.read()?.range::<[u8], _>(span(lo, hi)).count() as u64)
    }

    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        // One write lock for the whole batch makes it atomic to readers.
        let mut map = self
            .map
            .write()
            .map_err(|_| StoreError::Backend("memory backend lock poisoned".into()))?;
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let added = (k.len() + v.len()) as u64;
                    if let Some(old) = map.insert(k.clone(), Bytes::from(v)) {
                        self.bytes
                            .fetch_sub((k.len() + old.len()) as u64, Ordering::Relaxed);
                    }
                    self.bytes.fetch_add(added, Ordering::Relaxed);
                }
                Op::Remove(k) => {
                    if let Some(old) = map.remove(&k) {
                        self.bytes
                            .fetch_sub((k.len() + old.len()) as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn size(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}
